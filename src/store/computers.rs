//! Client computers (keyed by the client's GUID string) and the events they report
//! (ReportEventBatch), with per-computer needed / installed / failed status derived from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::schema::{self, dec, enc, Tree};
use super::{abort, Store, StoreError};
use crate::model::RevisionKey;

/// A client computer as the server knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Computer {
    /// The client id (a GUID string, as the agent sends it).
    pub id: String,
    /// DNS name the client registered with.
    pub name: String,
    /// Groups assigned on this server (server-side targeting). Empty = Unassigned Computers.
    pub groups: Vec<Uuid>,
    /// Target group names the client asked for (client-side targeting, from its cookie).
    pub requested_groups: Vec<String>,
    /// First registration (unix seconds).
    pub registered_unix: i64,
    /// Last SyncUpdates (unix seconds).
    pub last_sync_unix: Option<i64>,
    /// Last ReportEventBatch (unix seconds).
    pub last_report_unix: Option<i64>,
    /// OS version string as reported, if any.
    pub os_version: Option<String>,
    /// Agent version as reported, if any.
    pub client_version: Option<String>,
}

/// One reported event (`ReportingEvent/BasicData`), unknown event ids included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedEvent {
    /// `EventInstanceID`: with the time, the dedupe key (a re-sent event is stored once).
    pub instance_id: Uuid,
    /// The update concerned; `None` for the all-zero GUID.
    pub update: Option<RevisionKey>,
    /// `EventID` (147 detected, 161 download failed, 182 install failed, 183 installed, ...).
    pub event_id: u32,
    /// `Win32HResult`.
    pub hresult: i32,
    /// `TimeAtTarget` (unix seconds).
    pub time_unix: i64,
    /// `ExtendedData/MiscData` strings (`K=V`; event 156 carries `U=`/`V=` GUID lists).
    #[serde(default)]
    pub misc: Vec<String>,
}

/// What an event says about its update on that computer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Applicable and not (yet) installed.
    Needed,
    /// Installed.
    Installed,
    /// Download or install failed.
    Failed,
}

impl EventStatus {
    /// The status an event id implies for its update, if any (SUSDB event ids): 147 detected,
    /// 162/167 downloaded/started, 181 install started, 201 pending → needed; 183, 184
    /// (reboot required), 202 → installed; 161, 182, 203 → failed. Others: none.
    pub fn from_event_id(event_id: u32) -> Option<EventStatus> {
        match event_id {
            147 | 162 | 167 | 181 | 201 => Some(EventStatus::Needed),
            183 | 184 | 202 => Some(EventStatus::Installed),
            161 | 182 | 203 => Some(EventStatus::Failed),
            _ => None,
        }
    }
}

/// Per-computer counts of updates by latest status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Updates needed.
    pub needed: usize,
    /// Updates installed.
    pub installed: usize,
    /// Updates whose latest attempt failed.
    pub failed: usize,
}

impl Store {
    /// Inserts or replaces a computer.
    pub fn upsert_computer(&self, c: &Computer) -> Result<(), StoreError> {
        let v = enc(c)?;
        let _w = self.writer();
        self.tree(Tree::Computers)?.insert(c.id.as_bytes(), v)?;
        Ok(())
    }

    /// One computer by id.
    pub fn computer(&self, id: &str) -> Result<Option<Computer>, StoreError> {
        match self.tree(Tree::Computers)?.get(id.as_bytes())? {
            Some(v) => Ok(Some(dec("computers", &v)?)),
            None => Ok(None),
        }
    }

    /// Every computer, in id order.
    pub fn computers(&self) -> Result<Vec<Computer>, StoreError> {
        self.tree(Tree::Computers)?
            .iter()
            .values()
            .map(|v| dec("computers", &v?))
            .collect()
    }

    /// Removes a computer and all its events in one transaction; false when unknown.
    pub fn remove_computer(&self, id: &str) -> Result<bool, StoreError> {
        let _w = self.writer();
        let keys: Vec<sled::IVec> = self
            .tree(Tree::Events)?
            .scan_prefix(schema::events_prefix(id))
            .keys()
            .collect::<Result<_, _>>()?;
        let old = self.computer_states(id)?;
        use super::states::at;
        self.state_txn(|v| {
            for k in &keys {
                v[at::EVENTS].remove(k)?;
            }
            super::states::write_states(v, id, &old, &BTreeMap::new())?;
            Ok(v[at::COMPUTERS].remove(id.as_bytes())?.is_some())
        })
    }

    /// Sets a computer's server-assigned groups (each must exist).
    pub fn set_computer_groups(&self, id: &str, groups: &[Uuid]) -> Result<(), StoreError> {
        for g in groups {
            if self.group(g)?.is_none() {
                return Err(StoreError::NotFound(format!("group {g}")));
            }
        }
        self.modify_computer(id, |c| c.groups = groups.to_vec())
    }

    /// Records a SyncUpdates from the computer.
    pub fn record_computer_sync(&self, id: &str, unix: i64) -> Result<(), StoreError> {
        self.modify_computer(id, |c| c.last_sync_unix = Some(unix))
    }

    fn modify_computer(&self, id: &str, f: impl Fn(&mut Computer)) -> Result<(), StoreError> {
        let _w = self.writer();
        let mut c = self
            .computer(id)?
            .ok_or_else(|| StoreError::NotFound(format!("computer {id}")))?;
        f(&mut c);
        self.tree(Tree::Computers)?
            .insert(id.as_bytes(), enc(&c)?)?;
        Ok(())
    }

    /// Stores reported events of a known computer and sets its `last_report_unix` to
    /// `received_unix`, in one transaction with the computer's stored states re-derived from
    /// all its events (`states.rs`). Re-sent events (same instance id and time) are stored
    /// once. Returns how many were new.
    pub fn add_events(
        &self,
        computer_id: &str,
        events: &[ReportedEvent],
        received_unix: i64,
    ) -> Result<usize, StoreError> {
        let rows = events
            .iter()
            .map(|e| {
                Ok((
                    schema::event_key(computer_id, e.time_unix, &e.instance_id),
                    enc(e)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let _w = self.writer();
        let added: Vec<(Vec<u8>, &ReportedEvent)> = rows
            .iter()
            .zip(events)
            .map(|((k, _), e)| (k.clone(), e))
            .collect();
        let old_states = self.computer_states(computer_id)?;
        let new_states = self.states_after(computer_id, &added)?;
        use super::states::at;
        self.state_txn(|v| {
            let mut c: Computer = match v[at::COMPUTERS].get(computer_id.as_bytes())? {
                Some(b) => dec("computers", &b).map_err(abort)?,
                None => {
                    return Err(abort(StoreError::NotFound(format!(
                        "computer {computer_id}"
                    ))))
                }
            };
            let mut new = 0;
            for (k, val) in &rows {
                if v[at::EVENTS].get(k)?.is_none() {
                    new += 1;
                }
                v[at::EVENTS].insert(k.as_slice(), val.as_slice())?;
            }
            c.last_report_unix = Some(received_unix);
            v[at::COMPUTERS].insert(computer_id.as_bytes(), enc(&c).map_err(abort)?)?;
            super::states::write_states(v, computer_id, &old_states, &new_states)?;
            Ok(new)
        })
    }

    /// A computer's events, oldest first.
    pub fn events(&self, computer_id: &str) -> Result<Vec<ReportedEvent>, StoreError> {
        self.tree(Tree::Events)?
            .scan_prefix(schema::events_prefix(computer_id))
            .values()
            .map(|v| dec("events", &v?))
            .collect()
    }

    /// Deletes events older than `before_unix` (all computers) and re-derives the stored
    /// states of the computers that lost some; returns how many events went.
    pub fn prune_events(&self, before_unix: i64) -> Result<usize, StoreError> {
        let t = self.tree(Tree::Events)?;
        let _w = self.writer();
        let mut n = 0;
        let mut touched: Vec<String> = Vec::new();
        for kv in t.iter() {
            let (k, v) = kv?;
            let e: ReportedEvent = dec("events", &v)?;
            if e.time_unix < before_unix {
                t.remove(&k)?;
                n += 1;
                let id = k.split(|b| *b == 0).next().unwrap_or_default();
                if touched.last().map(String::as_bytes) != Some(id) {
                    touched.push(String::from_utf8_lossy(id).into_owned());
                }
            }
        }
        for id in &touched {
            self.refresh_states_locked(id)?;
        }
        Ok(n)
    }

    /// Drops a computer's oldest events until at most `max_count` remain and their stored
    /// size (key + value bytes) is at most `max_bytes`; returns how many were dropped. The
    /// per-computer half of the bound on what clients can make the server store.
    pub fn trim_events(
        &self,
        computer_id: &str,
        max_count: usize,
        max_bytes: u64,
    ) -> Result<usize, StoreError> {
        let t = self.tree(Tree::Events)?;
        let _w = self.writer();
        // Oldest first (keys sort by time).
        let mut rows: Vec<(sled::IVec, u64)> = Vec::new();
        let mut bytes = 0u64;
        for kv in t.scan_prefix(schema::events_prefix(computer_id)) {
            let (k, v) = kv?;
            let n = (k.len() + v.len()) as u64;
            bytes += n;
            rows.push((k, n));
        }
        let mut count = rows.len();
        let mut dropped = 0;
        for (k, n) in &rows {
            if count <= max_count && bytes <= max_bytes {
                break;
            }
            t.remove(k)?;
            count -= 1;
            bytes -= n;
            dropped += 1;
        }
        if dropped > 0 {
            self.refresh_states_locked(computer_id)?;
        }
        Ok(dropped)
    }

    /// How many computers the server knows.
    pub fn computer_count(&self) -> Result<usize, StoreError> {
        Ok(self.tree(Tree::Computers)?.len())
    }

    /// Each update's needed / installed / failed status on a computer, from
    /// [`derive_states`](super::derive_states) (the one derivation; not-applicable states are
    /// left out here).
    pub fn update_statuses(
        &self,
        computer_id: &str,
    ) -> Result<BTreeMap<Uuid, EventStatus>, StoreError> {
        use super::UpdateState;
        Ok(self
            .computer_states(computer_id)?
            .into_iter()
            .filter_map(|(id, r)| {
                let s = match r.state {
                    UpdateState::Needed => EventStatus::Needed,
                    UpdateState::Installed => EventStatus::Installed,
                    UpdateState::Failed => EventStatus::Failed,
                    UpdateState::NotApplicable | UpdateState::Unknown => return None,
                };
                Some((id, s))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{store, uid};

    fn ev(inst: u128, update: u128, event_id: u32, t: i64) -> ReportedEvent {
        ReportedEvent {
            instance_id: Uuid::from_u128(inst),
            update: Some(RevisionKey::new(uid(update), 1)),
            event_id,
            hresult: if event_id == 182 { -2145124329 } else { 0 },
            time_unix: t,
            misc: vec![],
        }
    }

    fn pc(id: &str) -> Computer {
        Computer {
            id: id.into(),
            name: format!("{id}.branch.example"),
            registered_unix: 100,
            ..Default::default()
        }
    }

    #[test]
    fn computers_round_trip_and_groups_must_exist() {
        let (_d, s) = store();
        s.upsert_computer(&pc("b")).unwrap();
        s.upsert_computer(&pc("a")).unwrap();
        assert_eq!(s.computers().unwrap().len(), 2);
        assert_eq!(s.computer("a").unwrap().unwrap().name, "a.branch.example");
        s.set_computer_groups("a", &[crate::model::groups::UNASSIGNED_COMPUTERS])
            .unwrap();
        assert!(matches!(
            s.set_computer_groups("a", &[Uuid::from_u128(3)]),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.record_computer_sync("zz", 5),
            Err(StoreError::NotFound(_))
        ));
        s.record_computer_sync("a", 500).unwrap();
        let a = s.computer("a").unwrap().unwrap();
        assert_eq!(a.last_sync_unix, Some(500));
        assert_eq!(a.groups, vec![crate::model::groups::UNASSIGNED_COMPUTERS]);
    }

    #[test]
    fn events_dedupe_keep_unknown_ids_and_derive_counts() {
        let (_d, s) = store();
        s.upsert_computer(&pc("c")).unwrap();
        s.upsert_computer(&pc("other")).unwrap();
        let batch = vec![
            ev(1, 1, 147, 10), // needed
            ev(2, 1, 183, 20), // then installed
            ev(3, 2, 147, 10),
            ev(4, 2, 182, 30), // failed
            ev(5, 3, 147, 10), // needed
            ev(6, 4, 9999, 5), // unknown id: kept, no status
        ];
        assert_eq!(s.add_events("c", &batch, 1000).unwrap(), 6);
        assert_eq!(s.add_events("c", &batch[..2], 1001).unwrap(), 0, "re-sent");
        s.add_events("other", &[ev(7, 1, 182, 1)], 1).unwrap();
        let got = s.events("c").unwrap();
        assert_eq!(got.len(), 6);
        assert_eq!(got[0].event_id, 9999, "time order");
        assert_eq!(
            s.computer("c").unwrap().unwrap().last_report_unix,
            Some(1001)
        );
        // Only 182 (install failed) sets a state outside the 156 lists.
        let c = s.status_counts("c").unwrap();
        assert_eq!((c.needed, c.installed, c.failed), (0, 0, 1));

        // Event 156 status lists.
        let mut status = ev(8, 0, 156, 40);
        status.update = None;
        status.misc = vec![format!("U={},{}", uid(5), uid(6)), format!("V={}", uid(3))];
        s.add_events("c", &[status], 1002).unwrap();
        let st = s.update_statuses("c").unwrap();
        assert_eq!(st.get(&uid(3)), Some(&EventStatus::Installed));
        assert_eq!(st.get(&uid(5)), Some(&EventStatus::Needed));
        // The failure of update 2 (not in the lists) left with the lists.
        let c = s.status_counts("c").unwrap();
        assert_eq!((c.needed, c.installed, c.failed), (2, 1, 0));

        assert!(matches!(
            s.add_events("ghost", &batch, 1),
            Err(StoreError::NotFound(_))
        ));
        assert!(s.events("ghost").unwrap().is_empty());

        assert_eq!(s.prune_events(10).unwrap(), 2); // t=5 on c, t=1 on other
        assert!(s.remove_computer("c").unwrap());
        assert!(s.events("c").unwrap().is_empty());
        assert!(!s.remove_computer("c").unwrap());
        assert!(s.events("other").unwrap().is_empty());
    }

    #[test]
    fn trimming_keeps_the_newest_events_within_count_and_bytes() {
        let (_d, s) = store();
        s.upsert_computer(&pc("c")).unwrap();
        s.upsert_computer(&pc("d")).unwrap();
        let batch: Vec<_> = (0..10)
            .map(|i| ev(100 + i, 1, 147, 1000 + i as i64))
            .collect();
        s.add_events("c", &batch, 1).unwrap();
        s.add_events("d", &batch, 1).unwrap();
        assert_eq!(s.trim_events("c", 4, u64::MAX).unwrap(), 6);
        let kept: Vec<i64> = s.events("c").unwrap().iter().map(|e| e.time_unix).collect();
        assert_eq!(kept, vec![1006, 1007, 1008, 1009], "the newest four");
        assert_eq!(
            s.events("d").unwrap().len(),
            10,
            "another computer is untouched"
        );
        // By bytes: one event's size, measured from what a scan of the tree returns.
        let one = s.events("d").unwrap()[0].clone();
        let row = serde_json::to_vec(&one).unwrap().len() as u64;
        let dropped = s.trim_events("d", 100, 3 * (row + 60)).unwrap();
        let left = s.events("d").unwrap();
        assert!((1..=3).contains(&left.len()), "{} left", left.len());
        assert_eq!(dropped + left.len(), 10);
        assert_eq!(left.last().unwrap().time_unix, 1009);
        assert_eq!(s.computer_count().unwrap(), 2);
    }
}
