//! Compliance state: the one derivation of each update's state on a computer from its reported
//! events ([`derive_states`]), the computers and per-update states rolled up from downstream
//! servers (MS-WSUSSS reporting rollup, upstream side), and the bookkeeping of this server's own
//! rollup to its upstream (downstream side).
//!
//! Derivation (WS2025 derives per-update status from event 156's `MiscData` lists and failures
//! from event 182; wsus-protocol.md §3.6): events are read in time order; a 156 event's `U=`
//! list marks its updates needed, `V=` installed, and every update the previous lists named
//! that neither list names any more is dropped (it left the client's lists: no drift upward);
//! a 182 event marks its update failed with its HRESULT, and a failure stays until a later 156
//! lists the update as installed (or drops it). Other event ids do not change states.
//!
//! Downstream data lives in three side trees (`ds_servers`, `ds_computers`, `ds_states`; see
//! `schema.rs`); the computers of one status rollup (records, rollup numbers and states) are
//! written in one transaction over the last two (`ds_states.rs`), so a replayed or interrupted
//! rollup never duplicates or half applies a computer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::schema::{self, dec, enc};
use super::{ReportedEvent, Store, StoreError};

/// An update's state on one computer, as the compliance views name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    /// Applicable and installed.
    Installed,
    /// Applicable and not installed.
    Needed,
    /// The last install attempt failed.
    Failed,
    /// Not applicable to the computer.
    NotApplicable,
    /// Nothing known.
    Unknown,
}

impl UpdateState {
    /// The view name (`installed`, `needed`, `failed`, `not_applicable`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installed => "installed",
            Self::Needed => "needed",
            Self::Failed => "failed",
            Self::NotApplicable => "not_applicable",
            Self::Unknown => "unknown",
        }
    }

    /// Parses a view name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "installed" => Self::Installed,
            "needed" => Self::Needed,
            "failed" => Self::Failed,
            "not_applicable" => Self::NotApplicable,
            "unknown" => Self::Unknown,
            _ => return None,
        })
    }

    /// `SummarizationState` of `ComputerStatusRollupUpdateStatus` (SS §3.1.4.17.3.4:
    /// 0 not applicable, 2 not installed, 4 installed, 5 failed); `None` for unknown.
    pub fn summarization_state(self) -> Option<i32> {
        match self {
            Self::NotApplicable => Some(0),
            Self::Needed => Some(2),
            Self::Installed => Some(4),
            Self::Failed => Some(5),
            Self::Unknown => None,
        }
    }

    /// The state a `SummarizationState` stands for (3 downloaded → needed, 6 installed
    /// pending restart → installed; anything else → unknown).
    pub fn from_summarization_state(v: i32) -> Self {
        match v {
            0 => Self::NotApplicable,
            2 | 3 => Self::Needed,
            4 | 6 => Self::Installed,
            5 => Self::Failed,
            _ => Self::Unknown,
        }
    }
}

/// One update's state on one computer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    /// The state.
    pub state: UpdateState,
    /// When it took this state (unix seconds, the client's event time).
    pub last_change_unix: i64,
    /// The HRESULT of the failure, for `failed`.
    pub error_code: Option<i32>,
}

/// Event id of the client status report carrying the `U=`/`V=` lists.
pub const EVENT_STATUS_LISTS: u32 = 156;
/// Event id of an install failure.
pub const EVENT_INSTALL_FAILED: u32 = 182;

/// The event ids the derivation reads, for other readers of the events.
pub mod events {
    /// Client status lists (`U=` not installed, `V=` installed).
    pub const STATUS_LISTS: u32 = super::EVENT_STATUS_LISTS;
    /// Install failed.
    pub const INSTALL_FAILED: u32 = super::EVENT_INSTALL_FAILED;
}

fn guid_list(s: &str) -> impl Iterator<Item = Uuid> + '_ {
    s.split([',', ' ', ';'])
        .filter_map(|t| t.trim().trim_matches(|c| c == '{' || c == '}').parse().ok())
}

/// Every update's state on a computer from its events (oldest first): the rules in the
/// module documentation. The one place states are derived for this server's own clients.
pub fn derive_states(events: &[ReportedEvent]) -> BTreeMap<Uuid, StatusRecord> {
    let mut out: BTreeMap<Uuid, StatusRecord> = BTreeMap::new();
    let mut ordered: Vec<&ReportedEvent> = events.iter().collect();
    // Events are stored by instance id, so ties in time come back in random order: within one
    // second a 156 snapshot is read before the other events of that second, so a failure (182)
    // reported in the same batch is never wiped by the list that came with it.
    ordered.sort_by_key(|e| (e.time_unix, e.event_id != EVENT_STATUS_LISTS));
    for e in ordered {
        match e.event_id {
            EVENT_STATUS_LISTS => {
                let mut listed: BTreeMap<Uuid, UpdateState> = BTreeMap::new();
                for m in &e.misc {
                    match m.split_once('=') {
                        Some(("U", l)) => {
                            for id in guid_list(l) {
                                listed.insert(id, UpdateState::Needed);
                            }
                        }
                        Some(("V", l)) => {
                            for id in guid_list(l) {
                                listed.insert(id, UpdateState::Installed);
                            }
                        }
                        _ => {}
                    }
                }
                // Event times are whole seconds: a failure reported in the same second as the
                // lists is not older than them and stays.
                out.retain(|id, r| {
                    listed.contains_key(id)
                        || (r.state == UpdateState::Failed && r.last_change_unix >= e.time_unix)
                });
                for (id, state) in listed {
                    match out.get_mut(&id) {
                        Some(r)
                            if r.state == UpdateState::Failed && state == UpdateState::Needed => {}
                        Some(r) if r.state == state => {}
                        Some(r) => {
                            *r = StatusRecord {
                                state,
                                last_change_unix: e.time_unix,
                                error_code: None,
                            }
                        }
                        None => {
                            out.insert(
                                id,
                                StatusRecord {
                                    state,
                                    last_change_unix: e.time_unix,
                                    error_code: None,
                                },
                            );
                        }
                    }
                }
            }
            EVENT_INSTALL_FAILED => {
                if let Some(u) = e.update.filter(|u| !u.update_id.is_nil()) {
                    out.insert(
                        u.update_id,
                        StatusRecord {
                            state: UpdateState::Failed,
                            last_change_unix: e.time_unix,
                            error_code: Some(e.hresult),
                        },
                    );
                }
            }
            _ => {}
        }
    }
    out
}

/// A server below this one that rolled itself up (`DownstreamServerRollupInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownstreamServer {
    /// `ServerId`.
    pub id: Uuid,
    /// `FullDomainName`.
    pub name: String,
    /// `ParentServerId`, with the all-zero GUID resolved to this server's id.
    pub parent: Uuid,
    /// `LastSyncTime` (unix seconds), `None` for never.
    pub last_sync_unix: Option<i64>,
    /// `LastRollupTime` (unix seconds).
    pub last_rollup_unix: Option<i64>,
    /// `Version`.
    pub version: String,
    /// `IsReplica`.
    pub is_replica: bool,
}

/// A computer rolled up from a downstream server (`ComputerRollupInfo` + `Details`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownstreamComputer {
    /// `ComputerId`.
    pub id: String,
    /// `FullDomainName` from the details (the id until details arrive).
    pub name: String,
    /// `ParentServerId`: the downstream server the computer gets updates from.
    pub parent_server: Uuid,
    /// `TargetGroupIdList`.
    pub groups: Vec<Uuid>,
    /// `RequestedTargetGroupNames`.
    pub requested_groups: Vec<String>,
    /// `LastSyncTime`.
    pub last_sync_unix: Option<i64>,
    /// `LastReportedStatusTime`.
    pub last_report_unix: Option<i64>,
    /// `OSDescription`.
    pub os_description: Option<String>,
    /// `ClientVersion`.
    pub client_version: Option<String>,
    /// Whether details were ever received.
    pub has_details: bool,
    /// `LastReceivedRollupNumber` (0 = no status received).
    pub last_received_rollup_number: i32,
    /// When the last status rollup for it arrived here (unix seconds).
    pub status_received_unix: Option<i64>,
}

/// One update's rolled-up state on a downstream computer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownstreamStatus {
    /// The state.
    pub state: UpdateState,
    /// `LastChangeTime` (unix seconds).
    pub last_change_unix: i64,
}

/// What this server, as a downstream, last sent its upstream about one computer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollupSent {
    /// `LastSentStatusRollupNumber`.
    pub last_sent_rollup_number: i32,
    /// When the last accepted status rollup of it was sent (unix seconds); `None` = send
    /// everything next time.
    pub last_status_rollup_unix: Option<i64>,
    /// Whether the upstream has its details.
    pub details_sent: bool,
    /// The upstream answered `Deleted`: it wants nothing more about this computer.
    pub upstream_deleted: bool,
}

impl Store {
    /// How this server's own computers stand: (computers, needing at least one update,
    /// failing at least one, reported and needing nothing). What a replica tells its upstream
    /// about itself in a rollup; computers rolled up from below are counted by their own
    /// servers, not here.
    pub fn own_compliance_counts(&self) -> Result<(usize, usize, usize, usize), StoreError> {
        let (mut computers, mut needing, mut failing, mut up_to_date) = (0, 0, 0, 0);
        let counts = self.all_status_counts()?;
        for c in self.computers()? {
            computers += 1;
            let n = counts.get(&c.id).copied().unwrap_or_default();
            let needs = n.needed > 0;
            let fails = n.failed > 0;
            needing += usize::from(needs);
            failing += usize::from(fails);
            up_to_date += usize::from(c.last_report_unix.is_some() && !needs && !fails);
        }
        Ok((computers, needing, failing, up_to_date))
    }

    fn side(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.named_tree(name)
    }

    /// Downstream servers, in id order.
    pub fn downstream_servers(&self) -> Result<Vec<DownstreamServer>, StoreError> {
        self.side(schema::DS_SERVERS)?
            .iter()
            .values()
            .map(|v| dec("ds_servers", &v?))
            .collect()
    }

    /// One downstream server.
    pub fn downstream_server(&self, id: &Uuid) -> Result<Option<DownstreamServer>, StoreError> {
        match self.side(schema::DS_SERVERS)?.get(id.as_bytes())? {
            Some(v) => Ok(Some(dec("ds_servers", &v)?)),
            None => Ok(None),
        }
    }

    /// Inserts or replaces a downstream server.
    pub fn put_downstream_server(&self, s: &DownstreamServer) -> Result<(), StoreError> {
        self.side(schema::DS_SERVERS)?
            .insert(s.id.as_bytes(), enc(s)?)?;
        Ok(())
    }

    /// Computers rolled up from downstream servers, in id order.
    pub fn downstream_computers(&self) -> Result<Vec<DownstreamComputer>, StoreError> {
        self.side(schema::DS_COMPUTERS)?
            .iter()
            .values()
            .map(|v| dec("ds_computers", &v?))
            .collect()
    }

    /// One rolled-up computer.
    pub fn downstream_computer(&self, id: &str) -> Result<Option<DownstreamComputer>, StoreError> {
        match self.side(schema::DS_COMPUTERS)?.get(id.as_bytes())? {
            Some(v) => Ok(Some(dec("ds_computers", &v)?)),
            None => Ok(None),
        }
    }

    /// Inserts or replaces a rolled-up computer's record (not its statuses).
    pub fn put_downstream_computer(&self, c: &DownstreamComputer) -> Result<(), StoreError> {
        self.side(schema::DS_COMPUTERS)?
            .insert(c.id.as_bytes(), enc(c)?)?;
        Ok(())
    }

    /// Forgets a rolled-up computer and its states; false when unknown.
    pub fn remove_downstream_computer(&self, id: &str) -> Result<bool, StoreError> {
        let computers = self.side(schema::DS_COMPUTERS)?;
        let _w = self.writer();
        self.remove_downstream_states(id)?;
        Ok(computers.remove(id.as_bytes())?.is_some())
    }

    /// What was last sent upstream about each computer (downstream side of the rollup).
    pub fn rollup_sent(&self) -> Result<BTreeMap<String, RollupSent>, StoreError> {
        let mut out = BTreeMap::new();
        for kv in self.side(schema::ROLLUP_SENT)?.iter() {
            let (k, v) = kv?;
            let id =
                String::from_utf8(k.to_vec()).map_err(|e| schema::corrupt("rollup_sent", e))?;
            out.insert(id, dec("rollup_sent", &v)?);
        }
        Ok(out)
    }

    /// Records what was sent upstream about one computer.
    pub fn set_rollup_sent(&self, computer_id: &str, r: &RollupSent) -> Result<(), StoreError> {
        self.side(schema::ROLLUP_SENT)?
            .insert(computer_id.as_bytes(), enc(r)?)?;
        Ok(())
    }

    /// Forgets everything sent upstream (a new upstream or a `RollupResetGuid` change: the
    /// next rollup is a full one).
    pub fn clear_rollup_sent(&self) -> Result<(), StoreError> {
        self.side(schema::ROLLUP_SENT)?.clear()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RevisionKey;
    use crate::store::testutil::{store, uid};

    fn status_event(t: i64, u: &[u128], v: &[u128]) -> ReportedEvent {
        let list = |ids: &[u128]| {
            ids.iter()
                .map(|i| uid(*i).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        ReportedEvent {
            instance_id: Uuid::from_u128(t as u128 + 1000),
            update: None,
            event_id: 156,
            hresult: 0,
            time_unix: t,
            misc: vec![format!("U={}", list(u)), format!("V={}", list(v))],
        }
    }

    fn failure(t: i64, u: u128, hr: i32) -> ReportedEvent {
        ReportedEvent {
            instance_id: Uuid::from_u128(t as u128 + 5000),
            update: Some(RevisionKey::new(uid(u), 1)),
            event_id: 182,
            hresult: hr,
            time_unix: t,
            misc: vec![],
        }
    }

    fn state(m: &BTreeMap<Uuid, StatusRecord>, u: u128) -> Option<UpdateState> {
        m.get(&uid(u)).map(|r| r.state)
    }

    #[test]
    fn lists_and_failures_follow_the_spec_rules() {
        // 1 and 2 needed, 3 installed.
        let mut ev = vec![status_event(10, &[1, 2], &[3])];
        let m = derive_states(&ev);
        assert_eq!(state(&m, 1), Some(UpdateState::Needed));
        assert_eq!(state(&m, 3), Some(UpdateState::Installed));
        assert_eq!(m[&uid(1)].last_change_unix, 10);
        // 1 fails (0x80240022 as i32).
        ev.push(failure(20, 1, 0x8024_0022u32 as i32));
        let m = derive_states(&ev);
        assert_eq!(state(&m, 1), Some(UpdateState::Failed));
        assert_eq!(m[&uid(1)].error_code, Some(0x8024_0022u32 as i32));
        // Still listed as not installed: the failure stands; 2 unchanged keeps its time.
        ev.push(status_event(30, &[1, 2], &[3]));
        let m = derive_states(&ev);
        assert_eq!(state(&m, 1), Some(UpdateState::Failed));
        assert_eq!(m[&uid(2)].last_change_unix, 10);
        // 1 installed now; 2 left the lists (superseded): gone, not counted anywhere.
        ev.push(status_event(40, &[], &[1, 3]));
        let m = derive_states(&ev);
        assert_eq!(state(&m, 1), Some(UpdateState::Installed));
        assert_eq!(m[&uid(1)].error_code, None);
        assert_eq!(m[&uid(1)].last_change_unix, 40);
        assert_eq!(state(&m, 2), None);
        assert_eq!(m.len(), 2);
        // A failure in the same second as the lists is not older than them: it stays,
        // whichever order the two are read in.
        let same = vec![failure(60, 7, 1), status_event(60, &[], &[1, 3])];
        assert_eq!(state(&derive_states(&same), 7), Some(UpdateState::Failed));
        let same = vec![status_event(60, &[], &[1, 3]), failure(60, 7, 1)];
        assert_eq!(state(&derive_states(&same), 7), Some(UpdateState::Failed));
        // Other event ids (147 detected, 183 installed) change nothing.
        let mut e = failure(50, 9, 0);
        e.event_id = 147;
        ev.push(e);
        assert_eq!(derive_states(&ev).len(), 2);
    }

    #[test]
    fn a_failure_in_the_same_second_as_the_lists_survives_whatever_the_stored_order() {
        // Events come back from the store by instance id: either order must give one answer.
        let a = vec![failure(50, 4, 5), status_event(50, &[1], &[2])];
        let b = vec![status_event(50, &[1], &[2]), failure(50, 4, 5)];
        for ev in [a, b] {
            let m = derive_states(&ev);
            assert_eq!(state(&m, 4), Some(UpdateState::Failed));
            assert_eq!(state(&m, 1), Some(UpdateState::Needed));
        }
    }

    #[test]
    fn downstream_status_rollup_is_idempotent_and_full_replaces() {
        let (_d, s) = store();
        let st = |state, t| DownstreamStatus {
            state,
            last_change_unix: t,
        };
        assert!(!s.apply_downstream_status("ghost", 1, true, &[], 5).unwrap());
        s.put_downstream_computer(&DownstreamComputer {
            id: "pc1".into(),
            name: "pc1.branch".into(),
            ..Default::default()
        })
        .unwrap();
        let batch = [
            (uid(1), st(UpdateState::Needed, 10)),
            (uid(2), st(UpdateState::Installed, 10)),
        ];
        for _ in 0..2 {
            assert!(s
                .apply_downstream_status("pc1", 1, true, &batch, 100)
                .unwrap());
        }
        assert_eq!(s.downstream_states("pc1").unwrap().len(), 2);
        // An older delta loses against the stored state; a newer one wins.
        s.apply_downstream_status(
            "pc1",
            2,
            false,
            &[(uid(1), st(UpdateState::Failed, 5))],
            101,
        )
        .unwrap();
        assert_eq!(
            s.downstream_states("pc1").unwrap()[&uid(1)].state,
            UpdateState::Needed
        );
        s.apply_downstream_status(
            "pc1",
            3,
            false,
            &[(uid(1), st(UpdateState::Failed, 20))],
            102,
        )
        .unwrap();
        assert_eq!(
            s.downstream_states("pc1").unwrap()[&uid(1)].state,
            UpdateState::Failed
        );
        // Full: only what is sent remains.
        s.apply_downstream_status(
            "pc1",
            4,
            true,
            &[(uid(3), st(UpdateState::Needed, 30))],
            103,
        )
        .unwrap();
        let m = s.downstream_states("pc1").unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), vec![&uid(3)]);
        let c = s.downstream_computer("pc1").unwrap().unwrap();
        assert_eq!(c.last_received_rollup_number, 4);
        assert_eq!(c.status_received_unix, Some(103));
    }
}
