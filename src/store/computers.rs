//! Client computers (keyed by the client's GUID string) and the events they report
//! (ReportEventBatch), with per-computer needed / installed / failed status derived from them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::schema::{self, dec, enc};
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
    /// The status an event id implies for the update it names, if any. As WS2025 derives it
    /// (wsus-protocol.md §3.6, INV §9.11): only 182 (install failed) sets a status from the
    /// event id; Installed / NotInstalled come from event 156's `V=` / `U=` lists (see
    /// [`Store::update_statuses`]). Download and progress events (147, 161, 162, 167, 181,
    /// 183, 184, 201-203, ...) are kept but imply nothing.
    pub fn from_event_id(event_id: u32) -> Option<EventStatus> {
        match event_id {
            182 => Some(EventStatus::Failed),
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
        self.tree(schema::COMPUTERS).insert(c.id.as_bytes(), v)?;
        Ok(())
    }

    /// One computer by id.
    pub fn computer(&self, id: &str) -> Result<Option<Computer>, StoreError> {
        match self.tree(schema::COMPUTERS).get(id.as_bytes())? {
            Some(v) => Ok(Some(dec("computers", &v)?)),
            None => Ok(None),
        }
    }

    /// Every computer, in id order.
    pub fn computers(&self) -> Result<Vec<Computer>, StoreError> {
        self.tree(schema::COMPUTERS)
            .iter()
            .values()
            .map(|v| dec("computers", &v?))
            .collect()
    }

    /// Removes a computer and all its events in one transaction; false when unknown.
    pub fn remove_computer(&self, id: &str) -> Result<bool, StoreError> {
        let _w = self.writer();
        let keys: Vec<sled::IVec> = self
            .tree(schema::EVENTS)
            .scan_prefix(schema::events_prefix(id))
            .keys()
            .collect::<Result<_, _>>()?;
        self.txn(|tx| {
            for k in &keys {
                tx.remove(schema::EVENTS, k)?;
            }
            tx.remove(schema::COMPUTERS, id.as_bytes())
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
        self.tree(schema::COMPUTERS)
            .insert(id.as_bytes(), enc(&c)?)?;
        Ok(())
    }

    /// Stores reported events of a known computer and sets its `last_report_unix` to
    /// `received_unix`, in one transaction. Re-sent events (same instance id and time) are
    /// stored once. Returns how many were new.
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
        self.txn(|tx| {
            let mut c: Computer = tx
                .get(schema::COMPUTERS, computer_id.as_bytes())?
                .ok_or_else(|| abort(StoreError::NotFound(format!("computer {computer_id}"))))?;
            let mut new = 0;
            for (k, v) in &rows {
                if tx.get_raw(schema::EVENTS, k)?.is_none() {
                    new += 1;
                }
                tx.put_raw(schema::EVENTS, k, v)?;
            }
            c.last_report_unix = Some(received_unix);
            tx.put(schema::COMPUTERS, computer_id.as_bytes(), &c)?;
            Ok(new)
        })
    }

    /// A computer's events, oldest first.
    pub fn events(&self, computer_id: &str) -> Result<Vec<ReportedEvent>, StoreError> {
        self.tree(schema::EVENTS)
            .scan_prefix(schema::events_prefix(computer_id))
            .values()
            .map(|v| dec("events", &v?))
            .collect()
    }

    /// Deletes events older than `before_unix` (all computers); returns how many.
    pub fn prune_events(&self, before_unix: i64) -> Result<usize, StoreError> {
        let t = self.tree(schema::EVENTS);
        let mut n = 0;
        for kv in t.iter() {
            let (k, v) = kv?;
            let e: ReportedEvent = dec("events", &v)?;
            if e.time_unix < before_unix {
                t.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Each update's status on a computer, from its events in time order: event 156's
    /// `U=` list (applicable, not installed: Needed) and `V=` list (installed), comma-, space-
    /// or semicolon-separated GUIDs, and 182 (install failed). A failure stands until a later
    /// 156 lists the update as installed (a `U=` listing does not clear it). Approval plays no
    /// part: an unapproved update a client lists in `U=` is Needed.
    pub fn update_statuses(
        &self,
        computer_id: &str,
    ) -> Result<BTreeMap<Uuid, EventStatus>, StoreError> {
        let mut out = BTreeMap::new();
        for e in self.events(computer_id)? {
            if let (Some(u), Some(s)) = (e.update, EventStatus::from_event_id(e.event_id)) {
                if !u.update_id.is_nil() {
                    out.insert(u.update_id, s);
                }
            }
            if e.event_id == 156 {
                for m in &e.misc {
                    let (status, list) = match m.split_once('=') {
                        Some(("U", l)) => (EventStatus::Needed, l),
                        Some(("V", l)) => (EventStatus::Installed, l),
                        _ => continue,
                    };
                    for id in list.split([',', ' ', ';']).filter_map(|s| s.parse().ok()) {
                        if status == EventStatus::Needed
                            && out.get(&id) == Some(&EventStatus::Failed)
                        {
                            continue;
                        }
                        out.insert(id, status);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Needed / installed / failed counts of a computer (from [`Store::update_statuses`]).
    pub fn status_counts(&self, computer_id: &str) -> Result<StatusCounts, StoreError> {
        let mut c = StatusCounts::default();
        for s in self.update_statuses(computer_id)?.values() {
            match s {
                EventStatus::Needed => c.needed += 1,
                EventStatus::Installed => c.installed += 1,
                EventStatus::Failed => c.failed += 1,
            }
        }
        Ok(c)
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
            ev(1, 1, 147, 10), // detected: no status from the id
            ev(2, 1, 183, 20), // installed event: no status either (156 says it)
            ev(3, 2, 147, 10),
            ev(4, 2, 182, 30), // failed
            ev(5, 3, 147, 10),
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
        let c = s.status_counts("c").unwrap();
        assert_eq!((c.needed, c.installed, c.failed), (0, 0, 1));

        // Event 156 status lists: U= not installed, V= installed; the failed update 2 listed
        // in U= stays Failed.
        let mut status = ev(8, 0, 156, 40);
        status.update = None;
        status.misc = vec![
            format!("U={},{},{}", uid(5), uid(6), uid(2)),
            format!("V={}", uid(3)),
        ];
        s.add_events("c", &[status], 1002).unwrap();
        let st = s.update_statuses("c").unwrap();
        assert_eq!(st.get(&uid(3)), Some(&EventStatus::Installed));
        assert_eq!(st.get(&uid(5)), Some(&EventStatus::Needed));
        assert_eq!(st.get(&uid(2)), Some(&EventStatus::Failed));
        let c = s.status_counts("c").unwrap();
        assert_eq!((c.needed, c.installed, c.failed), (2, 1, 1));
        // A later 156 with it installed clears the failure.
        let mut later = ev(9, 0, 156, 50);
        later.update = None;
        later.misc = vec![format!("V={}", uid(2))];
        s.add_events("c", &[later], 1003).unwrap();
        assert_eq!(
            s.update_statuses("c").unwrap().get(&uid(2)),
            Some(&EventStatus::Installed)
        );

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
}
