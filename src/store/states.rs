//! The stored compliance state of this server's own computers: each computer's per-update
//! states as [`derive_states`] gives them from its events, kept up to date on every change to
//! the events (ingest, trim, prune, removal) so the views read them instead of re-deriving
//! every computer's events on every query.
//!
//! Three side trees, written in one transaction ([`Store::state_txn`]) with the `computers`
//! and `events` changes that changed them (layouts in `schema.rs`). They stay out of the
//! every-tree transaction set: three more trees there made a full disk lose a write that had
//! been acknowledged before it (`tests/disk_full.rs` caught it; the cause is in sled, not
//! found):
//! - `states`: computer id → the computer's states, a fixed-width binary list sorted by update
//!   id (2,000 updates a computer is 60 KB here, several times that as JSON);
//! - `states_by_update`: update id ‖ computer id → one state (`updates status` reads one
//!   update's prefix: one short scan instead of every computer);
//! - `state_counts`: computer id → needed / failed / installed / not-applicable counts
//!   (`computers list --status` reads these only).
//!
//! The derivation stays the one in `compliance.rs`: every write here re-derives the computer's
//! states from all its events (under the writer lock) and stores the difference, so the stored
//! state is the derived one by construction; a test checks it against [`derive_states`] after
//! random report sequences. Stores from before these trees (schema 1) are filled once at open
//! (`meta/states_pending`, set by the v1 → v2 migration, cleared when every computer is done).

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::compliance::{derive_states, StatusRecord, UpdateState};
use super::computers::StatusCounts;
use super::schema::{self, Tree};
use sled::transaction::{Transactional, TransactionalTree};

use super::{ReportedEvent, Store, StoreError, TxResult};

/// `meta` key: present while stored states still have to be derived for every computer.
pub(super) const META_STATES_PENDING: &[u8] = b"states_pending";

/// Bytes of one record in a `states` value: update id, then the by-update value.
const REC: usize = 16 + VAL;
/// Bytes of a `states_by_update` value: state, last change (i64 BE), error flag, error (i32 BE).
const VAL: usize = 1 + 8 + 1 + 4;

pub(super) fn state_code(s: UpdateState) -> u8 {
    match s {
        UpdateState::Installed => 0,
        UpdateState::Needed => 1,
        UpdateState::Failed => 2,
        UpdateState::NotApplicable => 3,
        UpdateState::Unknown => 4,
    }
}

pub(super) fn state_of(code: u8) -> Option<UpdateState> {
    Some(match code {
        0 => UpdateState::Installed,
        1 => UpdateState::Needed,
        2 => UpdateState::Failed,
        3 => UpdateState::NotApplicable,
        4 => UpdateState::Unknown,
        _ => return None,
    })
}

fn encode_value(r: &StatusRecord) -> [u8; VAL] {
    let mut v = [0u8; VAL];
    v[0] = state_code(r.state);
    v[1..9].copy_from_slice(&r.last_change_unix.to_be_bytes());
    if let Some(e) = r.error_code {
        v[9] = 1;
        v[10..14].copy_from_slice(&e.to_be_bytes());
    }
    v
}

fn decode_value(tree: &'static str, v: &[u8]) -> Result<StatusRecord, StoreError> {
    let bad = || schema::corrupt(tree, format!("state value of {} bytes", v.len()));
    if v.len() != VAL {
        return Err(bad());
    }
    let state = state_of(v[0]).ok_or_else(bad)?;
    let mut t = [0u8; 8];
    t.copy_from_slice(&v[1..9]);
    let mut e = [0u8; 4];
    e.copy_from_slice(&v[10..14]);
    Ok(StatusRecord {
        state,
        last_change_unix: i64::from_be_bytes(t),
        error_code: (v[9] == 1).then_some(i32::from_be_bytes(e)),
    })
}

fn encode_states(m: &BTreeMap<Uuid, StatusRecord>) -> Vec<u8> {
    let mut out = Vec::with_capacity(m.len() * REC);
    for (id, r) in m {
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&encode_value(r));
    }
    out
}

fn decode_states(v: &[u8]) -> Result<BTreeMap<Uuid, StatusRecord>, StoreError> {
    if !v.len().is_multiple_of(REC) {
        return Err(schema::corrupt("states", format!("{} bytes", v.len())));
    }
    v.chunks_exact(REC)
        .map(|c| {
            let id = schema::parse_uuid("states", &c[..16])?;
            Ok((id, decode_value("states", &c[16..])?))
        })
        .collect()
}

fn by_update_key(update: &Uuid, computer: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(16 + computer.len());
    k.extend_from_slice(update.as_bytes());
    k.extend_from_slice(computer.as_bytes());
    k
}

fn counts_of(m: &BTreeMap<Uuid, StatusRecord>) -> [u32; 4] {
    let mut c = [0u32; 4];
    for r in m.values() {
        match r.state {
            UpdateState::Needed => c[0] += 1,
            UpdateState::Failed => c[1] += 1,
            UpdateState::Installed => c[2] += 1,
            UpdateState::NotApplicable => c[3] += 1,
            UpdateState::Unknown => {}
        }
    }
    c
}

fn encode_counts(c: [u32; 4]) -> [u8; 16] {
    let mut v = [0u8; 16];
    for (i, n) in c.iter().enumerate() {
        v[i * 4..i * 4 + 4].copy_from_slice(&n.to_be_bytes());
    }
    v
}

fn decode_counts(v: &[u8]) -> Result<StatusCounts, StoreError> {
    let n = |i: usize| -> Result<usize, StoreError> {
        let b: [u8; 4] = v
            .get(i * 4..i * 4 + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| schema::corrupt("state_counts", format!("{} bytes", v.len())))?;
        Ok(u32::from_be_bytes(b) as usize)
    };
    Ok(StatusCounts {
        needed: n(0)?,
        failed: n(1)?,
        installed: n(2)?,
    })
}

/// The trees of a [`Store::state_txn`], by position in its view.
pub(super) mod at {
    /// `computers`.
    pub const COMPUTERS: usize = 0;
    /// `events`.
    pub const EVENTS: usize = 1;
    pub(super) const STATES: usize = 2;
    pub(super) const BY_UPDATE: usize = 3;
    pub(super) const COUNTS: usize = 4;
}

/// Writes the difference between a computer's stored states `old` and its derived states
/// `new` (inside the caller's [`Store::state_txn`]).
pub(super) fn write_states(
    v: &[TransactionalTree],
    computer: &str,
    old: &BTreeMap<Uuid, StatusRecord>,
    new: &BTreeMap<Uuid, StatusRecord>,
) -> TxResult<()> {
    for id in old.keys().filter(|id| !new.contains_key(id)) {
        v[at::BY_UPDATE].remove(by_update_key(id, computer))?;
    }
    for (id, r) in new.iter().filter(|(id, r)| old.get(id) != Some(r)) {
        v[at::BY_UPDATE].insert(by_update_key(id, computer), &encode_value(r)[..])?;
    }
    if new.is_empty() {
        v[at::STATES].remove(computer.as_bytes())?;
        v[at::COUNTS].remove(computer.as_bytes())?;
    } else if old != new {
        v[at::STATES].insert(computer.as_bytes(), encode_states(new))?;
        v[at::COUNTS].insert(computer.as_bytes(), &encode_counts(counts_of(new))[..])?;
    }
    Ok(())
}

impl Store {
    /// One transaction over `computers`, `events` and the three state trees (positions in
    /// [`at`]): a computer's events and its stored states change together.
    pub(super) fn state_txn<A>(
        &self,
        f: impl Fn(&[TransactionalTree]) -> TxResult<A>,
    ) -> Result<A, StoreError> {
        let trees = [
            self.tree(Tree::Computers)?,
            self.tree(Tree::Events)?,
            self.named_tree(schema::STATES)?,
            self.named_tree(schema::STATES_BY_UPDATE)?,
            self.named_tree(schema::STATE_COUNTS)?,
        ];
        let view: Vec<&sled::Tree> = trees.iter().collect();
        let r = view.as_slice().transaction(|v| f(v));
        self.noted(r.map_err(StoreError::from))
    }

    /// Every update's state on one of this server's own computers: the stored form of
    /// [`derive_states`] over its events (empty for a computer that never reported).
    pub fn computer_states(
        &self,
        computer_id: &str,
    ) -> Result<BTreeMap<Uuid, StatusRecord>, StoreError> {
        match self
            .named_tree(schema::STATES)?
            .get(computer_id.as_bytes())?
        {
            Some(v) => decode_states(&v),
            None => Ok(BTreeMap::new()),
        }
    }

    /// The same, derived from the computer's events now ([`derive_states`]; what
    /// [`Store::computer_states`] stores).
    pub fn derived_computer_states(
        &self,
        computer_id: &str,
    ) -> Result<BTreeMap<Uuid, StatusRecord>, StoreError> {
        Ok(derive_states(&self.events(computer_id)?))
    }

    /// One update's state on every own computer that has one, by computer id.
    pub fn update_states(&self, update: &Uuid) -> Result<Vec<(String, StatusRecord)>, StoreError> {
        self.named_tree(schema::STATES_BY_UPDATE)?
            .scan_prefix(update.as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                let id = std::str::from_utf8(&k[16..])
                    .map_err(|e| schema::corrupt("states_by_update", e))?
                    .to_string();
                Ok((id, decode_value("states_by_update", &v)?))
            })
            .collect()
    }

    /// Needed / failed / installed counts of every own computer with stored states.
    pub fn all_status_counts(&self) -> Result<HashMap<String, StatusCounts>, StoreError> {
        self.named_tree(schema::STATE_COUNTS)?
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let id = String::from_utf8(k.to_vec())
                    .map_err(|e| schema::corrupt("state_counts", e))?;
                Ok((id, decode_counts(&v)?))
            })
            .collect()
    }

    /// Needed / failed / installed counts of one computer (zero when it never reported).
    pub fn status_counts(&self, computer_id: &str) -> Result<StatusCounts, StoreError> {
        match self
            .named_tree(schema::STATE_COUNTS)?
            .get(computer_id.as_bytes())?
        {
            Some(v) => decode_counts(&v),
            None => Ok(StatusCounts::default()),
        }
    }

    /// Re-derives one computer's states from its events and stores the difference (caller
    /// holds the writer lock).
    pub(super) fn refresh_states_locked(&self, computer_id: &str) -> Result<(), StoreError> {
        let old = self.computer_states(computer_id)?;
        let new = self.derived_computer_states(computer_id)?;
        if old != new {
            self.state_txn(|v| write_states(v, computer_id, &old, &new))?;
        }
        Ok(())
    }

    /// A computer's events after `added` are stored (existing ones merged by key, as
    /// [`Store::add_events`] writes them), and the states they derive. Caller holds the
    /// writer lock.
    pub(super) fn states_after(
        &self,
        computer_id: &str,
        added: &[(Vec<u8>, &ReportedEvent)],
    ) -> Result<BTreeMap<Uuid, StatusRecord>, StoreError> {
        let mut all: BTreeMap<Vec<u8>, ReportedEvent> = BTreeMap::new();
        for kv in self
            .tree(Tree::Events)?
            .scan_prefix(schema::events_prefix(computer_id))
        {
            let (k, v) = kv?;
            all.insert(k.to_vec(), schema::dec("events", &v)?);
        }
        for (k, e) in added {
            all.insert(k.clone(), (*e).clone());
        }
        let events: Vec<ReportedEvent> = all.into_values().collect();
        Ok(derive_states(&events))
    }

    /// Derives and stores every computer's states when a migration asked for it (a store
    /// from before the state trees); one transaction per computer, the marker cleared last,
    /// so an interrupted run starts again at the next open.
    pub(super) fn finish_state_rebuild(&self) -> Result<(), StoreError> {
        if self.tree(Tree::Meta)?.get(META_STATES_PENDING)?.is_none() {
            return Ok(());
        }
        let _w = self.writer();
        let computers = self.computers()?;
        for c in &computers {
            self.refresh_states_locked(&c.id)?;
        }
        self.txn(|tx| tx.remove(Tree::Meta, META_STATES_PENDING).map(|_| ()))?;
        tracing::info!(
            computers = computers.len(),
            "store: compliance states derived"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RevisionKey;
    use crate::store::testutil::{store, uid};
    use crate::store::Computer;
    use rand::{Rng, SeedableRng};

    fn pc(id: &str) -> Computer {
        Computer {
            id: id.into(),
            name: format!("{id}.branch.example"),
            registered_unix: 1,
            ..Default::default()
        }
    }

    /// A random report batch: status lists over a few of 12 updates (some in neither list),
    /// failures, and other event ids, at times that repeat (ties in a second matter).
    fn batch(rng: &mut rand::rngs::StdRng, t: &mut i64, seq: &mut u128) -> Vec<ReportedEvent> {
        let mut out = Vec::new();
        for _ in 0..rng.gen_range(1..4) {
            *t += rng.gen_range(0..3);
            *seq += 1;
            let kind = rng.gen_range(0..10);
            let update = uid(rng.gen_range(1..13));
            out.push(if kind < 5 {
                let (mut u, mut v) = (Vec::new(), Vec::new());
                for n in 1..13u128 {
                    match rng.gen_range(0..4) {
                        0 => u.push(uid(n).to_string()),
                        1 => v.push(format!("{{{}}}", uid(n))),
                        _ => {}
                    }
                }
                ReportedEvent {
                    instance_id: Uuid::from_u128(*seq),
                    update: None,
                    event_id: 156,
                    hresult: 0,
                    time_unix: *t,
                    misc: vec![format!("U={}", u.join(",")), format!("V={}", v.join(","))],
                }
            } else {
                ReportedEvent {
                    instance_id: Uuid::from_u128(*seq),
                    update: Some(RevisionKey::new(update, 1)),
                    event_id: if kind < 8 { 182 } else { 183 },
                    hresult: -(rng.gen_range(1..1000)),
                    time_unix: *t,
                    misc: vec![],
                }
            });
        }
        // A re-sent event now and then (stored once).
        if *seq > 3 && rng.gen_bool(0.2) {
            out.push(out[0].clone());
        }
        out
    }

    /// The stored form agrees with itself: the by-update index and the counts say what the
    /// per-computer list says.
    fn check_indexes(s: &Store, ids: &[&str]) {
        let counts = s.all_status_counts().unwrap();
        for id in ids {
            let mine = s.computer_states(id).unwrap();
            let mut c = StatusCounts::default();
            for r in mine.values() {
                match r.state {
                    UpdateState::Needed => c.needed += 1,
                    UpdateState::Failed => c.failed += 1,
                    UpdateState::Installed => c.installed += 1,
                    _ => {}
                }
            }
            assert_eq!(counts.get(*id).copied().unwrap_or_default(), c, "{id}");
            assert_eq!(s.status_counts(id).unwrap(), c);
        }
        for n in 1..13u128 {
            for (computer, r) in s.update_states(&uid(n)).unwrap() {
                assert_eq!(
                    s.computer_states(&computer).unwrap().get(&uid(n)),
                    Some(&r),
                    "{computer} {n}"
                );
            }
            let listed: usize = ids
                .iter()
                .filter(|id| s.computer_states(id).unwrap().contains_key(&uid(n)))
                .count();
            assert_eq!(s.update_states(&uid(n)).unwrap().len(), listed);
        }
    }

    #[test]
    fn stored_states_equal_the_derivation_after_any_report_sequence() {
        let (_d, s) = store();
        let ids = ["pc-a", "pc-b", "pc-c"];
        for id in ids {
            s.upsert_computer(&pc(id)).unwrap();
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(16);
        let (mut t, mut seq) = (1_000i64, 0u128);
        for round in 0..120 {
            let id = ids[rng.gen_range(0..ids.len())];
            s.add_events(id, &batch(&mut rng, &mut t, &mut seq), t)
                .unwrap();
            match round % 17 {
                // The per-computer bound drops the oldest events.
                5 => {
                    s.trim_events(id, rng.gen_range(1..6), u64::MAX).unwrap();
                }
                // Retention drops old events of every computer.
                11 => {
                    s.prune_events(t - rng.gen_range(2..20)).unwrap();
                }
                _ => {}
            }
            for id in ids {
                // The oracle: the derivation over the events as stored now.
                assert_eq!(
                    s.computer_states(id).unwrap(),
                    derive_states(&s.events(id).unwrap()),
                    "{id} after round {round}"
                );
            }
            check_indexes(&s, &ids);
        }
        assert!(ids
            .iter()
            .any(|id| !s.computer_states(id).unwrap().is_empty()));
        // Removing a computer removes its states from every index.
        s.remove_computer("pc-b").unwrap();
        assert!(s.computer_states("pc-b").unwrap().is_empty());
        assert!(!s.all_status_counts().unwrap().contains_key("pc-b"));
        for n in 1..13u128 {
            assert!(s
                .update_states(&uid(n))
                .unwrap()
                .iter()
                .all(|(c, _)| c != "pc-b"));
        }
    }

    #[test]
    fn a_store_from_before_the_state_trees_derives_them_at_open() {
        let d = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let (mut t, mut seq) = (50i64, 0u128);
        {
            let s = Store::open(d.path()).unwrap();
            for id in ["x", "y"] {
                s.upsert_computer(&pc(id)).unwrap();
                for _ in 0..5 {
                    s.add_events(id, &batch(&mut rng, &mut t, &mut seq), t)
                        .unwrap();
                }
            }
            // What a schema-1 store holds: events, no state trees, version 1.
            for tr in [
                schema::STATES,
                schema::STATES_BY_UPDATE,
                schema::STATE_COUNTS,
            ] {
                s.named_tree(tr).unwrap().clear().unwrap();
            }
            s.tree(Tree::Meta)
                .unwrap()
                .insert(
                    super::super::migrate::META_SCHEMA_VERSION,
                    &1u32.to_be_bytes(),
                )
                .unwrap();
            s.flush().unwrap();
            assert!(s.computer_states("x").unwrap().is_empty());
        }
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), super::super::SCHEMA_VERSION);
        assert!(s
            .tree(Tree::Meta)
            .unwrap()
            .get(META_STATES_PENDING)
            .unwrap()
            .is_none());
        for id in ["x", "y"] {
            let want = derive_states(&s.events(id).unwrap());
            assert!(!want.is_empty());
            assert_eq!(s.computer_states(id).unwrap(), want);
        }
        check_indexes(&s, &["x", "y"]);
    }
}
