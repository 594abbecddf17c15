//! Change stamps for `ChangedUpdates` (MS-WUSP §3.1.5.7: cached updates whose Deployment or
//! IsLeaf changed since the client's last sync).
//!
//! Every index build digests, per update, what its client-visible deployment depends on: all
//! its deployments in every group (action, deadline, id), its leaf flag, whether it is
//! offerable, and whether something bundles it; a bundled update also inherits the stamps of
//! the bundles above it (their approval is its Bundle deployment). An update whose digest
//! differs from the previous index's gets the new index's stamp; an unchanged one keeps its
//! old stamp. With no previous index (service start) every update gets the start stamp, so a
//! cookie from before the start sees everything as changed: when the server cannot know what
//! changed, it assumes everything did. Stamps are observed times, not upstream
//! `LastChangeTime`s, so an approval made upstream long ago but replicated today still counts
//! as a change today.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use super::scan_index::ScanIndex;

/// Fills `index.digests` and `index.changed`.
pub(super) fn stamp_changes(index: &mut ScanIndex, prev: Option<&ScanIndex>, floor: i64) {
    let n = index.entries.len();
    let mut digests = Vec::with_capacity(n);
    let mut changed = Vec::with_capacity(n);
    for (i, e) in index.entries.iter().enumerate() {
        let mut h = DefaultHasher::new();
        let mut deps: Vec<_> = index
            .deployments_of
            .get(&(i as u32))
            .map(|v| {
                v.iter()
                    .map(|d| (d.id, d.group, d.action.code(), d.deadline))
                    .collect()
            })
            .unwrap_or_default();
        deps.sort();
        deps.hash(&mut h);
        (e.is_leaf, e.offerable, e.bundled_by.is_empty(), e.local_id).hash(&mut h);
        let d = h.finish();
        let old = prev.and_then(|p| {
            let j = *p.by_update.get(&e.key.update_id)? as usize;
            (p.digests.get(j) == Some(&d)).then(|| p.changed[j])
        });
        let stamp = match (prev, old) {
            (_, Some(t)) => t,
            (Some(_), None) => index.stamp,
            (None, None) => floor.min(index.stamp),
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
