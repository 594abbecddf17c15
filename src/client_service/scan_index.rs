//! The in-memory scan index the client service answers SyncUpdates from, built from one store
//! snapshot: the newest revision of every update with its core fragment, the prerequisite graph
//! (as update indices), leaf flags, declined/expired state, the group tree and each group's
//! deployments; the per-group-set winning approvals are memoised, and so is, per group set, the
//! needed set for each distinct list of installed non-leaf updates (a fleet walks through the
//! same few states, so most SyncUpdates calls find theirs computed). Rebuilt when the store's
//! [`fingerprint`] changes.
//!
//! Approval rules (wsus-protocol.md §7.1, PLAN §1.5): a computer is in All Computers, its
//! groups and their ancestors; among the deployments of one update in those groups the deepest
//! group wins, then Install before Uninstall (before Block, Scan), then a deadline before none
//! and the earlier deadline. A winning Block or Scan means not offered. An offered bundle
//! brings its bundled updates with action Bundle and its deadline.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use uuid::Uuid;

use super::changes::Before;
use crate::model::{groups, ApprovalAction, FileRecord, RevisionKey, UpdateKind};
use crate::store::{Store, StoreError};
use crate::wire::update_xml::core_fragment;
use crate::wire::wusp::DeploymentAction;
use crate::wire::xml::Escaped;

/// Marks a prerequisite naming an update the store does not hold (never satisfied).
pub const UNKNOWN: u32 = u32::MAX;

/// One update (its newest revision).
#[derive(Debug)]
pub struct Entry {
    /// Local revision id (MS-WUSP `UpdateInfo/ID`).
    pub local_id: u32,
    /// Identity.
    pub key: RevisionKey,
    /// Kind.
    pub kind: UpdateKind,
    /// Prerequisite clauses as entry indices ([`UNKNOWN`] for absent updates).
    pub prereqs: Vec<Vec<u32>>,
    /// Bundled updates as entry indices.
    pub bundled: Vec<u32>,
    /// The updates that bundle this one (entry indices).
    pub bundled_by: Vec<u32>,
    /// No other update names this one as a prerequisite or category.
    pub is_leaf: bool,
    /// Not declined and not expired.
    pub offerable: bool,
    /// Classification and products (for `FilterCategoryIds`).
    pub categories: Vec<Uuid>,
    /// The core fragment, XML-escaped once here for `UpdateInfo/Xml`.
    pub core: Escaped,
    /// Files declared by this revision.
    pub files: Vec<FileRecord>,
    /// For drivers: what the driver pass matches against.
    pub driver: Option<super::drivers::DriverMeta>,
}

/// How one update is deployed to one group set by an approval (its own, or, for Bundle, the
/// approval of a bundle above it at any depth).
#[derive(Debug, Clone)]
pub struct Chosen {
    /// Client-protocol action (Install, Uninstall or Bundle).
    pub action: DeploymentAction,
    /// Deadline.
    pub deadline: Option<OffsetDateTime>,
    /// Client-protocol deployment id.
    pub deployment_id: i32,
    /// When the approval last changed.
    pub last_change: OffsetDateTime,
}

/// The winning approvals for one group set.
#[derive(Debug, Default)]
pub struct Approved {
    /// Entry index → deployment: winning Install/Uninstall approvals (Install only for
    /// drivers) and, with action Bundle, everything bundled below them at any depth.
    pub by_entry: BTreeMap<u32, Chosen>,
    /// Approved (winning Install) drivers, for the driver pass.
    pub drivers: Vec<u32>,
    /// Entry index → 1 + position of its deployment in `chosen` (0: none), filled from
    /// `by_entry` once it is complete: every answer looks up each update it sends, and the
    /// tree's search was a visible share of that.
    slot: Vec<u32>,
    chosen: Vec<Chosen>,
}

impl Approved {
    /// The deployment of entry `i`, if an approval gives it one.
    pub fn get(&self, i: u32) -> Option<&Chosen> {
        if self.slot.is_empty() {
            return self.by_entry.get(&i);
        }
        match self.slot.get(i as usize) {
            Some(&s) if s > 0 => self.chosen.get(s as usize - 1),
            _ => None,
        }
    }

    /// Fills the dense lookup for entries `0..n` from `by_entry`.
    fn seal(&mut self, n: usize) {
        self.slot = vec![0; n];
        self.chosen = Vec::with_capacity(self.by_entry.len());
        for (i, c) in &self.by_entry {
            if let Some(s) = self.slot.get_mut(*i as usize) {
                self.chosen.push(c.clone());
                *s = self.chosen.len() as u32;
            }
        }
    }
}

/// A set of entry indices (a bitset over the index's entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySet {
    words: Vec<u64>,
}

impl EntrySet {
    /// An empty set able to hold entries `0..n`.
    pub fn new(n: usize) -> Self {
        EntrySet {
            words: vec![0; n.div_ceil(64)],
        }
    }

    /// Adds entry `i` (ignored when out of range).
    pub fn insert(&mut self, i: u32) {
        if let Some(w) = self.words.get_mut(i as usize / 64) {
            *w |= 1 << (i % 64);
        }
    }

    /// Whether entry `i` is in the set.
    pub fn contains(&self, i: u32) -> bool {
        self.words
            .get(i as usize / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Members that are also in `mask` (or, with `outside`, not in `mask`), ascending.
    pub fn iter_masked<'a>(
        &'a self,
        mask: &'a EntrySet,
        outside: bool,
    ) -> impl Iterator<Item = u32> + 'a {
        self.words.iter().enumerate().flat_map(move |(wi, w)| {
            let m = mask.words.get(wi).copied().unwrap_or(0);
            let mut bits = w & if outside { !m } else { m };
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let b = bits.trailing_zeros();
                    bits &= bits - 1;
                    wi as u32 * 64 + b
                })
            })
        })
    }
}

/// The scan index.
#[derive(Debug)]
pub struct ScanIndex {
    /// The store fingerprint this index was built from.
    pub fingerprint: u64,
    /// Revision-id epoch.
    pub epoch: u32,
    /// When this index was built (unix milliseconds, strictly increasing per process): the
    /// watermark a session cookie carries after a SyncUpdates answered from it.
    pub stamp: i64,
    /// Entries in local-id order.
    pub entries: Vec<Entry>,
    /// Per entry: the [`ScanIndex::stamp`] of the build that first saw its current deployment
    /// state, leaf flag or offerability (see `super::changes`).
    pub changed: Vec<i64>,
    /// Per entry: the digest behind `changed`.
    pub(super) digests: Vec<u64>,
    /// Local id → entry index + 1 (0: not a newest revision), dense: local ids are small
    /// sequential numbers, and every SyncUpdates call looks up a thousand of them.
    by_local: Vec<u32>,
    /// Update id → entry index.
    pub by_update: HashMap<Uuid, u32>,
    /// Categories and detectoids, in local-id order.
    pub non_leaf_kinds: Vec<u32>,
    /// The same, as a set.
    pub non_leaf_set: EntrySet,
    /// What a software pass may deliver: offerable entries that are not drivers.
    pub software: EntrySet,
    /// File SHA-1 → record.
    pub files: HashMap<[u8; 20], FileRecord>,
    group_parent: HashMap<Uuid, Option<Uuid>>,
    group_by_name: HashMap<String, Uuid>,
    /// Group → (entry, deployment) pairs.
    deployments: HashMap<Uuid, Vec<(u32, crate::model::Deployment)>>,
    /// Update → its deployments in every group (for the change digests).
    pub(super) deployments_of: HashMap<u32, Vec<crate::model::Deployment>>,
    approved: Mutex<HashMap<Vec<Uuid>, Arc<Approved>>>,
    /// Memoised needed sets and filter scopes (see [`super::needed`]).
    pub(super) memo: super::needed::Memo,
    /// Prerequisites and bundling parents, flat (see [`super::needed::Graph`]).
    pub(super) graph: super::needed::Graph,
}

/// A cheap digest of everything the index depends on: revision ids, epoch, groups,
/// deployments and declines.
pub fn fingerprint(store: &Store) -> Result<u64, StoreError> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    store.next_local_id()?.hash(&mut h);
    store.revision_epoch()?.hash(&mut h);
    store.removed_since(0)?.len().hash(&mut h);
    for g in store.groups()? {
        (g.id, g.parent, g.name).hash(&mut h);
    }
    for d in store.deployments()? {
        (
            d.id,
            d.update,
            d.group,
            d.action.code(),
            d.deadline,
            d.last_change,
        )
            .hash(&mut h);
    }
    store.declined_updates()?.hash(&mut h);
    Ok(h.finish())
}

/// A client-protocol deployment id from a deployment GUID (positive, stable).
pub fn deployment_id(id: &Uuid) -> i32 {
    let b = id.as_bytes();
    (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x3fff_ffff) as i32 + 1
}

fn rank(a: ApprovalAction) -> u8 {
    match a {
        ApprovalAction::Install => 0,
        ApprovalAction::Uninstall => 1,
        ApprovalAction::Block => 2,
        ApprovalAction::Scan => 3,
    }
}

impl ScanIndex {
    /// Builds the index from the store (a full read; call from a blocking thread). `prev` is
    /// the index this one replaces (change stamps carry over from it); without one (the
    /// service's start) they carry over from what the last build stored, and when nothing
    /// was stored every entry gets `floor`. Stores this build's stamps for the next start.
    pub fn build(
        store: &Store,
        prev: Option<&ScanIndex>,
        floor: i64,
    ) -> Result<ScanIndex, StoreError> {
        let fp = fingerprint(store)?;
        let epoch = store.revision_epoch()?;
        let mut latest = store.latest_revisions()?;
        latest.sort_by_key(|r| r.local_id);
        let declined: HashSet<Uuid> = store.declined_updates()?.into_iter().collect();
        let by_update: HashMap<Uuid, u32> = latest
            .iter()
            .enumerate()
            .map(|(i, r)| (r.record.key.update_id, i as u32))
            .collect();
        let mut referenced: HashSet<Uuid> = HashSet::new();
        for r in &latest {
            referenced.extend(r.record.prerequisite_ids());
            referenced.extend(r.record.category_ids());
        }
        let idx = |u: &Uuid| by_update.get(u).copied().unwrap_or(UNKNOWN);
        let mut entries = Vec::with_capacity(latest.len());
        let mut files = HashMap::new();
        for r in latest {
            let rec = r.record;
            let xml = store.revision_xml(&rec.key)?;
            let core = match &xml {
                Some(xml) => match core_fragment(xml) {
                    Ok(c) => Escaped::new(&c),
                    Err(e) => {
                        tracing::warn!(key = %rec.key, error = %e, "core fragment failed");
                        Escaped::default()
                    }
                },
                None => Escaped::default(),
            };
            let driver = match (&rec.kind, &xml) {
                (UpdateKind::Driver, Some(xml)) => super::drivers::DriverMeta::from_xml(xml),
                _ => None,
            };
            for f in &rec.files {
                files.insert(f.sha1, f.clone());
            }
            entries.push(Entry {
                local_id: r.local_id,
                key: rec.key,
                kind: rec.kind,
                prereqs: rec
                    .prerequisites
                    .iter()
                    .map(|c| c.iter().map(idx).collect())
                    .collect(),
                bundled: rec
                    .bundled
                    .iter()
                    .map(idx)
                    .filter(|i| *i != UNKNOWN)
                    .collect(),
                bundled_by: Vec::new(),
                is_leaf: !referenced.contains(&rec.key.update_id),
                offerable: !rec.expired && !declined.contains(&rec.key.update_id),
                categories: rec.category_ids().collect(),
                core,
                files: rec.files,
                driver,
            });
        }
        for i in 0..entries.len() {
            for c in entries[i].bundled.clone() {
                entries[c as usize].bundled_by.push(i as u32);
            }
        }
        let non_leaf_kinds: Vec<u32> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.kind, UpdateKind::Category | UpdateKind::Detectoid))
            .map(|(i, _)| i as u32)
            .collect();
        let mut non_leaf_set = EntrySet::new(entries.len());
        for i in &non_leaf_kinds {
            non_leaf_set.insert(*i);
        }
        let mut software = EntrySet::new(entries.len());
        for (i, e) in entries.iter().enumerate() {
            if e.offerable && e.kind != UpdateKind::Driver {
                software.insert(i as u32);
            }
        }
        let top = entries.iter().map(|e| e.local_id).max().unwrap_or(0) as usize;
        let mut by_local = vec![0u32; if entries.is_empty() { 0 } else { top + 1 }];
        for (i, e) in entries.iter().enumerate() {
            by_local[e.local_id as usize] = i as u32 + 1;
        }
        let groups = store.groups()?;
        let group_parent = groups.iter().map(|g| (g.id, g.parent)).collect();
        let group_by_name = groups
            .iter()
            .map(|g| (g.name.to_ascii_lowercase(), g.id))
            .collect();
        let mut deployments: HashMap<Uuid, Vec<(u32, crate::model::Deployment)>> = HashMap::new();
        let mut deployments_of: HashMap<u32, Vec<crate::model::Deployment>> = HashMap::new();
        for d in store.deployments()? {
            if let Some(i) = by_update.get(&d.update.update_id) {
                deployments_of.entry(*i).or_default().push(d.clone());
                deployments.entry(d.group).or_default().push((*i, d));
            }
        }
        let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        // At the service's start, what the last process observed (unreadable: as if nothing).
        let stored = match prev {
            Some(_) => None,
            None => store.change_stamps().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "stored change stamps unreadable; every update counts as changed");
                None
            }),
        };
        let before = match (prev, &stored) {
            (Some(p), _) => Before::Index(p),
            (None, Some(s)) => Before::Stored(s),
            (None, None) => Before::Nothing,
        };
        let stamp = before.next_stamp(now_ms, floor);
        let graph = super::needed::Graph::new(&entries);
        let mut index = ScanIndex {
            graph,
            fingerprint: fp,
            epoch,
            stamp,
            changed: Vec::new(),
            digests: Vec::new(),
            entries,
            by_local,
            by_update,
            non_leaf_kinds,
            non_leaf_set,
            software,
            files,
            group_parent,
            group_by_name,
            deployments,
            deployments_of,
            approved: Mutex::new(HashMap::new()),
            memo: Default::default(),
        };
        super::changes::stamp_changes(&mut index, before, floor);
        let kept = index
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.key.update_id, index.digests[i], index.changed[i]));
        if let Err(e) = store.put_change_stamps(index.stamp, kept) {
            // Not fatal, but what is stored is now older than the cookies this index issues:
            // a deployment that changed here and changed back while the server is down would
            // match its stored digest. Forgetting it makes the next start assume every update
            // changed (if even that write fails, the disk is full and the store unhealthy).
            tracing::warn!(error = %e, "could not store the client change stamps; forgetting them");
            if let Err(e) = store.forget_change_stamps() {
                tracing::warn!(error = %e, "could not forget the stored client change stamps");
            }
        }
        Ok(index)
    }

    /// The entry of a client-protocol revision id, when it names a newest revision.
    pub fn entry_of(&self, revision_id: i32) -> Option<u32> {
        let l = usize::try_from(revision_id).ok()?;
        self.by_local.get(l).and_then(|e| e.checked_sub(1))
    }

    /// A group id by name (ASCII case-insensitive).
    pub fn group_named(&self, name: &str) -> Option<Uuid> {
        self.group_by_name
            .get(&name.trim().to_ascii_lowercase())
            .copied()
    }

    /// Depth below All Computers.
    fn depth(&self, g: &Uuid) -> usize {
        let mut d = 0;
        let mut cur = *g;
        while let Some(Some(p)) = self.group_parent.get(&cur) {
            d += 1;
            cur = *p;
            if d > self.group_parent.len() {
                break;
            }
        }
        d
    }

    /// `assigned` groups, their ancestors and All Computers, sorted.
    pub fn effective_groups(&self, assigned: &[Uuid]) -> Vec<Uuid> {
        let mut out = vec![groups::ALL_COMPUTERS];
        for g in assigned {
            let mut cur = Some(*g);
            let mut steps = 0;
            while let Some(id) = cur {
                if !self.group_parent.contains_key(&id) || out.contains(&id) && id != *g {
                    break;
                }
                if !out.contains(&id) {
                    out.push(id);
                }
                cur = self.group_parent.get(&id).copied().flatten();
                steps += 1;
                if steps > self.group_parent.len() {
                    break;
                }
            }
        }
        out.sort();
        out
    }

    /// The winning approvals for a group set (from [`ScanIndex::effective_groups`]), memoised.
    pub fn approved(&self, member_of: &[Uuid]) -> Arc<Approved> {
        let mut cache = self.approved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = cache.get(member_of) {
            return a.clone();
        }
        let a = Arc::new(self.compute_approved(member_of));
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert(member_of.to_vec(), a.clone());
        a
    }

    fn compute_approved(&self, member_of: &[Uuid]) -> Approved {
        type Key = (
            std::cmp::Reverse<usize>,
            u8,
            bool,
            Option<OffsetDateTime>,
            Uuid,
        );
        let mut best: HashMap<u32, (Key, &crate::model::Deployment)> = HashMap::new();
        for g in member_of {
            let depth = self.depth(g);
            for (i, d) in self.deployments.get(g).into_iter().flatten() {
                let k: Key = (
                    std::cmp::Reverse(depth),
                    rank(d.action),
                    d.deadline.is_none(),
                    d.deadline,
                    d.id,
                );
                match best.get(i) {
                    Some((old, _)) if *old <= k => {}
                    _ => {
                        best.insert(*i, (k, d));
                    }
                }
            }
        }
        let mut out = Approved::default();
        let mut roots: Vec<(Uuid, u32)> = Vec::new();
        for (i, (_, d)) in &best {
            let action = match d.action {
                ApprovalAction::Install => DeploymentAction::Install,
                ApprovalAction::Uninstall => DeploymentAction::Uninstall,
                ApprovalAction::Block | ApprovalAction::Scan => continue,
            };
            let e = &self.entries[*i as usize];
            if e.kind == UpdateKind::Driver {
                if action != DeploymentAction::Install {
                    continue;
                }
                if e.offerable {
                    out.drivers.push(*i);
                }
            } else {
                roots.push((e.key.update_id, *i));
            }
            out.by_entry.insert(
                *i,
                Chosen {
                    action,
                    deadline: d.deadline,
                    deployment_id: deployment_id(&d.id),
                    last_change: d.last_change,
                },
            );
        }
        out.drivers.sort_unstable();
        // Everything below an approved bundle, at any depth, rides along with action Bundle
        // and the approval of the first approved bundle above it (in update-id order).
        roots.sort();
        for (_, root) in roots {
            let Some(c) = out.by_entry.get(&root).cloned() else {
                continue;
            };
            let bundle = Chosen {
                action: DeploymentAction::Bundle,
                ..c
            };
            let mut stack: Vec<u32> = self.entries[root as usize].bundled.clone();
            let mut seen: HashSet<u32> = HashSet::new();
            while let Some(child) = stack.pop() {
                if !seen.insert(child) || out.by_entry.contains_key(&child) {
                    continue;
                }
                out.by_entry.insert(child, bundle.clone());
                stack.extend(self.entries[child as usize].bundled.iter().copied());
            }
        }
        out.seal(self.entries.len());
        out
    }

    /// Whether every prerequisite clause of entry `i` names an installed entry.
    pub fn satisfied(&self, i: u32, installed: &[bool]) -> bool {
        self.graph.satisfied(i, installed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Deployment, TargetGroup, UpdateRecord};
    use crate::store::NewRevision;

    fn rev(n: u128, kind: UpdateKind, prereqs: Vec<Vec<Uuid>>, bundled: Vec<Uuid>) -> NewRevision {
        let key = RevisionKey::new(Uuid::from_u128(n), 1);
        NewRevision {
            record: UpdateRecord {
                key,
                kind,
                category_type: None,
                title: format!("u{n}"),
                kb: None,
                classification: None,
                products: vec![],
                prerequisites: prereqs,
                bundled,
                supersedes: vec![],
                eula_id: None,
                files: vec![],
                expired: false,
                creation_date: None,
            },
            xml: format!(
                "<upd:Update xmlns:upd=\"http://schemas.microsoft.com/msus/2002/12/Update\"><upd:UpdateIdentity UpdateID=\"{}\" RevisionNumber=\"1\"/></upd:Update>",
                key.update_id
            ),
        }
    }

    fn dep(
        n: u128,
        u: u128,
        group: Uuid,
        action: ApprovalAction,
        deadline_day: Option<i64>,
    ) -> Deployment {
        let t = time::macros::datetime!(2026-11-01 00:00 UTC);
        Deployment {
            id: Uuid::from_u128(1000 + n),
            update: RevisionKey::new(Uuid::from_u128(u), 1),
            group,
            action,
            deadline: deadline_day.map(|d| t + time::Duration::days(d)),
            last_change: t,
            admin_name: "t".into(),
            is_assigned: true,
            download_priority: 1,
        }
    }

    #[test]
    fn entry_sets_iterate_in_order_inside_and_outside_a_mask() {
        let mut s = EntrySet::new(200);
        let mut mask = EntrySet::new(200);
        for i in [0, 3, 63, 64, 130, 199] {
            s.insert(i);
        }
        s.insert(500); // out of range: ignored
        for i in [3, 64, 150] {
            mask.insert(i);
        }
        assert!(s.contains(63) && !s.contains(62) && !s.contains(500));
        assert_eq!(s.iter_masked(&mask, false).collect::<Vec<_>>(), [3, 64]);
        assert_eq!(
            s.iter_masked(&mask, true).collect::<Vec<_>>(),
            [0, 63, 130, 199]
        );
    }

    #[test]
    fn change_stamps_carry_over_a_restart_and_only_a_change_made_meanwhile_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.commit_batch(
            &[
                rev(2, UpdateKind::Software, vec![], vec![Uuid::from_u128(5)]),
                rev(3, UpdateKind::Software, vec![], vec![]),
                rev(4, UpdateKind::Software, vec![], vec![]),
                rev(5, UpdateKind::Software, vec![], vec![]),
            ],
            &[],
            None,
        )
        .unwrap();
        for (n, u) in [(1, 2), (2, 3), (3, 4)] {
            s.set_deployment(&dep(
                n,
                u,
                groups::ALL_COMPUTERS,
                ApprovalAction::Install,
                None,
            ))
            .unwrap();
        }
        // The first start ever: everything gets the floor.
        let first = ScanIndex::build(&s, None, 1_000).unwrap();
        assert!(first.changed.iter().all(|t| *t == 1_000));
        drop(first);
        drop(s);
        // A later process: stamps carry over, and its own stamp is after the last build's (a
        // cookie from before carries at most that one).
        let s = Store::open(dir.path()).unwrap();
        let built = s.change_stamps().unwrap().unwrap().built;
        let again = ScanIndex::build(&s, None, 1_000).unwrap();
        assert!(again.changed.iter().all(|t| *t == 1_000));
        assert!(again.stamp > built);
        // A deadline given to 2 while no process ran: 2 and the 5 it bundles are new, 3 and
        // 4 keep their stamps.
        s.set_deployment(&dep(
            1,
            2,
            groups::ALL_COMPUTERS,
            ApprovalAction::Install,
            Some(3),
        ))
        .unwrap();
        drop(again);
        let third = ScanIndex::build(&s, None, 1_000).unwrap();
        let at = |u: u128| third.changed[third.by_update[&Uuid::from_u128(u)] as usize];
        assert_eq!((at(2), at(5)), (third.stamp, third.stamp));
        assert_eq!((at(3), at(4)), (1_000, 1_000));
    }

    #[test]
    fn conflicts_resolve_deeper_then_install_then_earlier_deadline_and_bundles_follow() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let det = Uuid::from_u128(1);
        s.commit_batch(
            &[
                rev(1, UpdateKind::Detectoid, vec![], vec![]),
                rev(
                    2,
                    UpdateKind::Software,
                    vec![vec![det]],
                    vec![Uuid::from_u128(5)],
                ),
                rev(3, UpdateKind::Software, vec![], vec![]),
                rev(4, UpdateKind::Software, vec![], vec![]),
                rev(5, UpdateKind::Software, vec![], vec![]),
            ],
            &[],
            None,
        )
        .unwrap();
        let ws = Uuid::from_u128(0xa1);
        let pilot = Uuid::from_u128(0xa2);
        let other = Uuid::from_u128(0xa3);
        s.add_group(&TargetGroup {
            id: ws,
            name: "WS".into(),
            parent: None,
        })
        .unwrap();
        s.add_group(&TargetGroup {
            id: pilot,
            name: "Pilot".into(),
            parent: Some(ws),
        })
        .unwrap();
        s.add_group(&TargetGroup {
            id: other,
            name: "Other".into(),
            parent: None,
        })
        .unwrap();
        // 2: Install on All Computers, Uninstall on Pilot (deeper) → Uninstall.
        s.set_deployment(&dep(
            1,
            2,
            groups::ALL_COMPUTERS,
            ApprovalAction::Install,
            None,
        ))
        .unwrap();
        s.set_deployment(&dep(2, 2, pilot, ApprovalAction::Uninstall, None))
            .unwrap();
        // 3: same depth (WS, Other): Uninstall vs Install → Install.
        s.set_deployment(&dep(3, 3, ws, ApprovalAction::Uninstall, None))
            .unwrap();
        s.set_deployment(&dep(4, 3, other, ApprovalAction::Install, Some(9)))
            .unwrap();
        // 4: same depth, both Install: earlier deadline wins; then Block on Pilot hides it.
        s.set_deployment(&dep(5, 4, ws, ApprovalAction::Install, Some(5)))
            .unwrap();
        s.set_deployment(&dep(6, 4, other, ApprovalAction::Install, Some(2)))
            .unwrap();
        let idx = ScanIndex::build(&s, None, 0).unwrap();
        let e = |u: u128| idx.by_update[&Uuid::from_u128(u)];
        assert!(!idx.entries[e(1) as usize].is_leaf);
        assert!(idx.entries[e(3) as usize].is_leaf);

        let m = idx.effective_groups(&[pilot, other]);
        assert_eq!(m.len(), 4);
        let a = idx.approved(&m);
        assert_eq!(a.by_entry[&e(2)].action, DeploymentAction::Uninstall);
        assert_eq!(a.by_entry[&e(3)].action, DeploymentAction::Install);
        assert_eq!(
            a.by_entry[&e(4)].deadline,
            Some(time::macros::datetime!(2026-11-03 00:00 UTC))
        );
        // The bundled child of 2 rides along with 2's deadline, only once 2 is needed.
        let child = &a.by_entry[&e(5)];
        assert_eq!(child.action, DeploymentAction::Bundle);
        let scope = idx.scope(&[]);
        // The needed set: the detectoid alone first; with it installed, 2 (Uninstall), its
        // bundled 5, 3 and 4; the memoised answer is the same set.
        let before = idx.needed(&[], &scope, &[]);
        let mut free = vec![e(3), e(4)];
        free.sort_unstable();
        assert_eq!(
            before
                .iter_masked(&idx.non_leaf_set, true)
                .collect::<Vec<_>>(),
            free,
            "3 and 4 have no prerequisites"
        );
        assert!(before.contains(e(1)) && !before.contains(e(2)) && !before.contains(e(5)));
        let after = idx.needed(&[], &scope, &[e(1)]);
        for u in [1, 2, 3, 4, 5] {
            assert!(after.contains(e(u)), "update {u} needed");
        }
        assert!(Arc::ptr_eq(&after, &idx.needed(&[], &scope, &[e(1)])));

        s.set_deployment(&dep(7, 4, pilot, ApprovalAction::Block, None))
            .unwrap();
        let idx = ScanIndex::build(&s, None, 0).unwrap();
        assert!(!idx
            .approved(&idx.effective_groups(&[pilot]))
            .by_entry
            .contains_key(&e(4)));
        // A decline removes the update's approvals and makes it unofferable.
        s.decline(&Uuid::from_u128(3)).unwrap();
        let idx = ScanIndex::build(&s, None, 0).unwrap();
        assert!(!idx.entries[e(3) as usize].offerable);
        assert!(!idx
            .approved(&idx.effective_groups(&[other]))
            .by_entry
            .contains_key(&e(3)));
    }
}
