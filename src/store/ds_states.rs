//! The per-update states of computers rolled up from downstream servers (SS §3.1.4.17 data
//! processing), kept as one value per computer in the side tree `ds_states`: a fixed-width
//! binary list sorted by UpdateID (`schema.rs` has the layout).
//!
//! Until schema 3 each state was its own key in `ds_status` with a JSON value: a full rollup of
//! 10,000 computers × 2,000 updates was 20 million sled inserts, and the upstream's store was
//! most of a rollup's cost. A rollup always sends a computer's states together (a full rollup
//! replaces them all), and every reader wants one computer's states at once, so one value
//! per computer is both what arrives and what is read. The v2 → v3 migration sets
//! `meta/ds_states_pending`; [`Store::open`] then converts `ds_status` here and drops it.

use std::collections::BTreeMap;

use sled::Transactional;
use uuid::Uuid;

use super::compliance::{DownstreamComputer, DownstreamStatus};
use super::schema::{self, dec, enc, Tree};
use super::states::{state_code, state_of};
use super::{Store, StoreError};

/// `meta` key: present while `ds_status` (schema 2) still has to be converted.
pub(super) const META_DS_STATES_PENDING: &[u8] = b"ds_states_pending";

/// The schema-2 tree: computer id ‖ 0x00 ‖ UpdateID → [`DownstreamStatus`] JSON.
const OLD_TREE: &str = "ds_status";

/// Bytes of one record: UpdateID (16) ‖ state (u8, as in `states.rs`) ‖ last change (i64 BE).
const REC: usize = 16 + 1 + 8;

/// One computer's part of a `RollupComputerStatus` request.
#[derive(Debug, Clone, Copy)]
pub struct ComputerStatuses<'a> {
    /// `ComputerId`.
    pub computer_id: &'a str,
    /// `RollupNumber`.
    pub rollup_number: i32,
    /// `IsFullRollup`: the statuses replace all that is stored.
    pub full: bool,
    /// The statuses, in any order (for one update, the last one sent counts).
    pub statuses: &'a [(Uuid, DownstreamStatus)],
}

fn encode_sorted<'a>(
    sorted: impl ExactSizeIterator<Item = (&'a Uuid, &'a DownstreamStatus)>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(sorted.len() * REC);
    for (id, s) in sorted {
        out.extend_from_slice(id.as_bytes());
        out.push(state_code(s.state));
        out.extend_from_slice(&s.last_change_unix.to_be_bytes());
    }
    out
}

fn decode(v: &[u8]) -> Result<BTreeMap<Uuid, DownstreamStatus>, StoreError> {
    if !v.len().is_multiple_of(REC) {
        return Err(schema::corrupt(
            schema::DS_STATES,
            format!("{} bytes", v.len()),
        ));
    }
    v.chunks_exact(REC)
        .map(|c| {
            let id = schema::parse_uuid(schema::DS_STATES, &c[..16])?;
            let state = state_of(c[16])
                .ok_or_else(|| schema::corrupt(schema::DS_STATES, format!("state {}", c[16])))?;
            let mut t = [0u8; 8];
            t.copy_from_slice(&c[17..]);
            Ok((
                id,
                DownstreamStatus {
                    state,
                    last_change_unix: i64::from_be_bytes(t),
                },
            ))
        })
        .collect()
}

/// A full rollup's value: sorted by update, the last status sent for an update kept.
fn encode_full(statuses: &[(Uuid, DownstreamStatus)]) -> Vec<u8> {
    let mut v: Vec<&(Uuid, DownstreamStatus)> = statuses.iter().collect();
    // Stable: equal ids keep their order, and the last of each run is the one kept.
    v.sort_by_key(|(id, _)| *id);
    let mut kept: Vec<(&Uuid, &DownstreamStatus)> = Vec::with_capacity(v.len());
    for (id, s) in v {
        match kept.last_mut() {
            Some(last) if last.0 == id => *last = (id, s),
            _ => kept.push((id, s)),
        }
    }
    encode_sorted(kept.into_iter())
}

impl Store {
    /// A rolled-up computer's update states.
    pub fn downstream_states(
        &self,
        computer_id: &str,
    ) -> Result<BTreeMap<Uuid, DownstreamStatus>, StoreError> {
        match self
            .named_tree(schema::DS_STATES)?
            .get(computer_id.as_bytes())?
        {
            Some(v) => decode(&v),
            None => Ok(BTreeMap::new()),
        }
    }

    /// Applies one `ComputerStatusRollupInfo` (see [`Store::apply_downstream_statuses`]);
    /// `false` (nothing written) for an unknown computer.
    pub fn apply_downstream_status(
        &self,
        computer_id: &str,
        rollup_number: i32,
        full: bool,
        statuses: &[(Uuid, DownstreamStatus)],
        received_unix: i64,
    ) -> Result<bool, StoreError> {
        let one = ComputerStatuses {
            computer_id,
            rollup_number,
            full,
            statuses,
        };
        Ok(self.apply_downstream_statuses(&[one], received_unix)?[0])
    }

    /// Applies the computers of one `RollupComputerStatus` request (SS §3.1.4.17 data
    /// processing) in one transaction: for each known computer, sets the rollup number and
    /// receipt time and either replaces its states (a full rollup) or keeps, per update, the
    /// newer of stored and received. Says per computer whether it was known (unknown ones are
    /// ignored, as the spec says).
    pub fn apply_downstream_statuses(
        &self,
        batch: &[ComputerStatuses<'_>],
        received_unix: i64,
    ) -> Result<Vec<bool>, StoreError> {
        let computers = self.named_tree(schema::DS_COMPUTERS)?;
        let states = self.named_tree(schema::DS_STATES)?;
        let _w = self.writer();
        let mut known = Vec::with_capacity(batch.len());
        let mut writes: Vec<(&str, Vec<u8>, Vec<u8>)> = Vec::with_capacity(batch.len());
        for b in batch {
            let Some(v) = computers.get(b.computer_id.as_bytes())? else {
                known.push(false);
                continue;
            };
            known.push(true);
            let mut c: DownstreamComputer = dec("ds_computers", &v)?;
            c.last_received_rollup_number = b.rollup_number;
            c.status_received_unix = Some(received_unix);
            let value = if b.full {
                encode_full(b.statuses)
            } else {
                let mut m = match writes.iter().rev().find(|w| w.0 == b.computer_id) {
                    Some(w) => decode(&w.2)?,
                    None => match states.get(b.computer_id.as_bytes())? {
                        Some(old) => decode(&old)?,
                        None => BTreeMap::new(),
                    },
                };
                for (id, s) in b.statuses {
                    if m.get(id)
                        .is_some_and(|old| old.last_change_unix > s.last_change_unix)
                    {
                        continue;
                    }
                    m.insert(*id, *s);
                }
                encode_sorted(m.iter())
            };
            writes.push((b.computer_id, enc(&c)?, value));
        }
        self.noted(
            (&computers, &states)
                .transaction(|(tc, ts)| {
                    for (id, record, value) in &writes {
                        tc.insert(id.as_bytes(), record.as_slice())?;
                        ts.insert(id.as_bytes(), value.as_slice())?;
                    }
                    Ok::<(), sled::transaction::ConflictableTransactionError<StoreError>>(())
                })
                .map_err(StoreError::from),
        )?;
        Ok(known)
    }

    /// Forgets a rolled-up computer's states.
    pub(super) fn remove_downstream_states(&self, id: &str) -> Result<(), StoreError> {
        self.named_tree(schema::DS_STATES)?.remove(id.as_bytes())?;
        Ok(())
    }

    /// Converts a schema-2 `ds_status` tree into `ds_states` when the migration asked for
    /// it, then drops it; the marker is cleared last, so an interrupted run starts again
    /// (from the intact old tree) at the next open.
    pub(super) fn finish_ds_states_migration(&self) -> Result<(), StoreError> {
        if self
            .tree(Tree::Meta)?
            .get(META_DS_STATES_PENDING)?
            .is_none()
        {
            return Ok(());
        }
        let _w = self.writer();
        let old = self.named_tree(OLD_TREE)?;
        let states = self.named_tree(schema::DS_STATES)?;
        let mut computers = 0usize;
        let mut current: Option<(Vec<u8>, BTreeMap<Uuid, DownstreamStatus>)> = None;
        let mut put = |c: Option<(Vec<u8>, BTreeMap<Uuid, DownstreamStatus>)>| {
            if let Some((id, m)) = c {
                computers += 1;
                states.insert(id, encode_sorted(m.iter()))?;
            }
            Ok::<(), StoreError>(())
        };
        for kv in old.iter() {
            let (k, v) = kv?;
            // computer id ‖ 0x00 ‖ UpdateID (16)
            if k.len() < 17 || k[k.len() - 17] != 0 {
                return Err(schema::corrupt(OLD_TREE, "key layout"));
            }
            let (computer, update) = (&k[..k.len() - 17], &k[k.len() - 16..]);
            let update = schema::parse_uuid(OLD_TREE, update)?;
            let status: DownstreamStatus = dec(OLD_TREE, &v)?;
            if current
                .as_ref()
                .is_none_or(|(c, _)| c.as_slice() != computer)
            {
                put(current.take())?;
                current = Some((computer.to_vec(), BTreeMap::new()));
            }
            if let Some((_, m)) = current.as_mut() {
                m.insert(update, status);
            }
        }
        put(current.take())?;
        self.flush()?;
        self.live()?.db.drop_tree(OLD_TREE)?;
        self.txn(|tx| tx.remove(Tree::Meta, META_DS_STATES_PENDING).map(|_| ()))?;
        tracing::info!(
            computers,
            "store: rolled-up states converted to one value per computer"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::store;
    use crate::store::UpdateState;

    fn uid(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn st(state: UpdateState, t: i64) -> DownstreamStatus {
        DownstreamStatus {
            state,
            last_change_unix: t,
        }
    }

    fn computer(s: &Store, id: &str) {
        s.put_downstream_computer(&DownstreamComputer {
            id: id.into(),
            name: format!("{id}.branch"),
            ..Default::default()
        })
        .unwrap();
    }

    #[test]
    fn every_state_and_time_survives_the_binary_value() {
        let m: BTreeMap<Uuid, DownstreamStatus> = [
            (uid(3), st(UpdateState::Installed, -5)),
            (uid(1), st(UpdateState::Needed, 0)),
            (uid(u128::MAX), st(UpdateState::Failed, i64::MAX)),
            (uid(2), st(UpdateState::NotApplicable, 1_700_000_000)),
            (uid(9), st(UpdateState::Unknown, i64::MIN)),
        ]
        .into_iter()
        .collect();
        let v = encode_sorted(m.iter());
        assert_eq!(v.len(), 5 * 25, "UpdateID 16 + state 1 + time 8 bytes each");
        assert_eq!(decode(&v).unwrap(), m);
        assert!(decode(&v[..REC + 3]).is_err(), "a cut value is corrupt");
    }

    #[test]
    fn a_full_rollup_keeps_the_last_status_sent_for_an_update() {
        let v = encode_full(&[
            (uid(2), st(UpdateState::Needed, 1)),
            (uid(1), st(UpdateState::Needed, 1)),
            (uid(2), st(UpdateState::Installed, 2)),
        ]);
        let m = decode(&v).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[&uid(2)], st(UpdateState::Installed, 2));
    }

    #[test]
    fn one_request_several_computers_one_unknown() {
        let (_d, s) = store();
        computer(&s, "a");
        computer(&s, "b");
        let sa = [(uid(1), st(UpdateState::Needed, 10))];
        let sb = [(uid(2), st(UpdateState::Failed, 11))];
        let known = s
            .apply_downstream_statuses(
                &[
                    ComputerStatuses {
                        computer_id: "a",
                        rollup_number: 1,
                        full: true,
                        statuses: &sa,
                    },
                    ComputerStatuses {
                        computer_id: "ghost",
                        rollup_number: 1,
                        full: true,
                        statuses: &sa,
                    },
                    ComputerStatuses {
                        computer_id: "b",
                        rollup_number: 7,
                        full: false,
                        statuses: &sb,
                    },
                ],
                500,
            )
            .unwrap();
        assert_eq!(known, vec![true, false, true]);
        assert_eq!(
            s.downstream_states("a").unwrap()[&uid(1)].state,
            UpdateState::Needed
        );
        assert_eq!(
            s.downstream_states("b").unwrap()[&uid(2)].state,
            UpdateState::Failed
        );
        assert!(s.downstream_states("ghost").unwrap().is_empty());
        assert!(s.downstream_computer("ghost").unwrap().is_none());
        let b = s.downstream_computer("b").unwrap().unwrap();
        assert_eq!(
            (b.last_received_rollup_number, b.status_received_unix),
            (7, Some(500))
        );
    }

    #[test]
    fn a_schema_2_store_is_converted_at_open() {
        let d = tempfile::tempdir().unwrap();
        {
            let s = Store::open(d.path()).unwrap();
            computer(&s, "pc1");
            computer(&s, "pc10");
            // What schema 2 wrote: one key per state, computer ‖ 0 ‖ update, JSON values.
            let old = s.named_tree(OLD_TREE).unwrap();
            let put = |c: &str, u: u128, v: &str| {
                let mut k = c.as_bytes().to_vec();
                k.push(0);
                k.extend_from_slice(uid(u).as_bytes());
                old.insert(k, v.as_bytes()).unwrap();
            };
            put("pc1", 2, r#"{"state":"installed","last_change_unix":20}"#);
            put("pc1", 1, r#"{"state":"failed","last_change_unix":10}"#);
            put("pc10", 1, r#"{"state":"needed","last_change_unix":30}"#);
            s.tree(Tree::Meta)
                .unwrap()
                .insert(
                    super::super::migrate::META_SCHEMA_VERSION,
                    &2u32.to_be_bytes(),
                )
                .unwrap();
            s.flush().unwrap();
        }
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), 3);
        let pc1 = s.downstream_states("pc1").unwrap();
        assert_eq!(pc1.len(), 2);
        assert_eq!(pc1[&uid(1)], st(UpdateState::Failed, 10));
        assert_eq!(pc1[&uid(2)], st(UpdateState::Installed, 20));
        assert_eq!(
            s.downstream_states("pc10").unwrap()[&uid(1)],
            st(UpdateState::Needed, 30)
        );
        let names = s.live().unwrap().db.tree_names();
        assert!(
            !names.iter().any(|n| n.as_ref() == OLD_TREE.as_bytes()),
            "the old tree is dropped"
        );
        assert!(s
            .tree(Tree::Meta)
            .unwrap()
            .get(META_DS_STATES_PENDING)
            .unwrap()
            .is_none());
    }
}
