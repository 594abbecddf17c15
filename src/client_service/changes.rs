//! Change stamps for `ChangedUpdates` (MS-WUSP §3.1.5.7: cached updates whose Deployment or
//! IsLeaf changed since the client's last sync).
//!
//! Every index build digests, per update, what its client-visible deployment depends on: all
//! its deployments in every group (action, deadline, id), its leaf flag, whether it is
//! offerable, and whether something bundles it; a bundled update also inherits the stamps of
//! the bundles above it (their approval is its Bundle deployment). An update whose digest
//! differs from the one observed before gets the new index's stamp; an unchanged one keeps its
//! old stamp. "Before" is the previous index in this process or, at the service's start, what
//! the last process stored ([`Store::change_stamps`](crate::store::Store::change_stamps)), so a
//! restart does not make every client's next scan re-send its whole cache as changed. With
//! neither (a new store) every update gets the start stamp, so a cookie from before sees
//! everything as changed: when the server cannot know what changed, it assumes everything did.
//! Stamps are observed times, not upstream `LastChangeTime`s, so an approval made upstream long
//! ago but replicated today still counts as a change today.

use sha2::{Digest, Sha256};

use super::scan_index::ScanIndex;
use crate::store::ChangeStamps;

/// What a build compares its digests with.
#[derive(Clone, Copy)]
pub(super) enum Before<'a> {
    /// The index this one replaces, in this process.
    Index(&'a ScanIndex),
    /// What the last process stored.
    Stored(&'a ChangeStamps),
    /// Nothing known: every update gets the start floor (at most the build's stamp).
    Nothing,
}

impl Before<'_> {
    /// The new build's stamp at `now` (unix ms; `floor` is the service's start): strictly
    /// after every stamp a cookie may carry, the previous build's in this process or the last
    /// one (the clock may have gone back across a restart).
    pub(super) fn next_stamp(self, now: i64, floor: i64) -> i64 {
        match self {
            Before::Index(p) => now.max(p.stamp + 1),
            Before::Stored(s) => now.max(floor).max(s.built.saturating_add(1)),
            Before::Nothing => now.max(floor),
        }
    }
}

/// The digest of one entry's client-visible state: stable across processes and versions
/// (explicit bytes through SHA-256), because it is compared with stored digests.
fn digest(index: &ScanIndex, i: usize) -> u64 {
    let e = &index.entries[i];
    let mut deps: Vec<_> = index
        .deployments_of
        .get(&(i as u32))
        .map(|v| {
            v.iter()
                .map(|d| {
                    let deadline = d.deadline.map(|t| t.unix_timestamp_nanos());
                    (d.id, d.group, d.action.code(), deadline)
                })
                .collect()
        })
        .unwrap_or_default();
    deps.sort();
    let mut h = Sha256::new();
    h.update((deps.len() as u64).to_be_bytes());
    for (id, group, action, deadline) in deps {
        h.update(id.as_bytes());
        h.update(group.as_bytes());
        h.update(action.to_be_bytes());
        match deadline {
            Some(t) => {
                h.update([1]);
                h.update(t.to_be_bytes());
            }
            None => h.update([0]),
        }
    }
    h.update([
        u8::from(e.is_leaf),
        u8::from(e.offerable),
        u8::from(e.bundled_by.is_empty()),
    ]);
    h.update(e.local_id.to_be_bytes());
    let out = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&out[..8]);
    u64::from_be_bytes(first)
}

/// Fills `index.digests` and `index.changed` (`floor`: the service's start, for [`Before::Nothing`]).
pub(super) fn stamp_changes(index: &mut ScanIndex, before: Before<'_>, floor: i64) {
    let n = index.entries.len();
    let mut digests = Vec::with_capacity(n);
    let mut changed = Vec::with_capacity(n);
    for i in 0..n {
        let d = digest(index, i);
        let update_id = index.entries[i].key.update_id;
        let stamp = match before {
            Before::Index(p) => p
                .by_update
                .get(&update_id)
                .map(|j| *j as usize)
                .filter(|j| p.digests.get(*j) == Some(&d))
                .map_or(index.stamp, |j| p.changed[j]),
            Before::Stored(s) => match s.by_update.get(&update_id) {
                Some((old, t)) if *old == d => *t,
                _ => index.stamp,
            },
            Before::Nothing => floor.min(index.stamp),
        };
        digests.push(d);
        changed.push(stamp);
    }
    // Bundled updates inherit the stamps of the bundles above them (a few passes: bundle
    // trees are shallow; the bound keeps a cyclic catalog finite).
    for _ in 0..8 {
        let mut moved = false;
        for i in 0..n {
            let top = index.entries[i]
                .bundled_by
                .iter()
                .map(|p| changed[*p as usize])
                .max()
                .unwrap_or(i64::MIN);
            if top > changed[i] {
                changed[i] = top;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    index.digests = digests;
    index.changed = changed;
}
