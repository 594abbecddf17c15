//! The needed set and each update's client action, from one [`ScanIndex`].
//!
//! Scope (what a software pass may deliver): every update that is not declined, not expired
//! and not a driver (WS2025 delivers all non-declined updates, approved or not: INV §12.19);
//! with `FilterCategoryIds`, only the updates in those categories (classification, product or
//! the category itself) plus their closure: everything they name as a prerequisite and
//! everything they bundle, transitively.
//!
//! Needed (per scope and installed non-leaf set, memoised: a fleet walks through few states):
//! the in-scope updates whose every prerequisite clause names an installed update and, for an
//! update some other update bundles, with at least one needed bundle above it, at any depth.
//!
//! Action (per group set): categories and detectoids Evaluate; the winning approval's Install
//! or Uninstall; Bundle for what an approved bundle holds at any depth, and for members of
//! unapproved bundles; Evaluate for an unapproved update another one names as a prerequisite
//! (not a leaf); PreDeploymentCheck for everything else (unapproved, or approved for Block or
//! detect-only), so the client evaluates and reports it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::scan_index::{Approved, Chosen, EntrySet, ScanIndex, UNKNOWN};
use crate::wire::wusp::DeploymentAction;

/// How many (scope, installed set) needed sets are kept.
const NEEDED_MEMO: usize = 512;

/// (filter, installed non-leaf entries).
type NeededKey = (Vec<Uuid>, Vec<u32>);

/// Memoised needed sets and filter scopes of one index.
#[derive(Debug, Default)]
pub struct Memo {
    needed: Mutex<HashMap<NeededKey, Arc<EntrySet>>>,
    scopes: Mutex<HashMap<Vec<Uuid>, Arc<EntrySet>>>,
    /// Needed-set lookups answered from the memo / computed.
    pub(super) hits: std::sync::atomic::AtomicU64,
    pub(super) misses: std::sync::atomic::AtomicU64,
}

/// Every entry's prerequisite clauses and bundling parents in one flat array: a needed set
/// walks them for all 20,000-odd entries, and following each entry's own vectors (scattered
/// over the heap, behind an `Entry` several cache lines long) made that walk most of its
/// cost.
#[derive(Debug, Default)]
pub struct Graph {
    /// Entry `i`'s part of `data` is `at[i]..at[i + 1]`.
    at: Vec<u32>,
    /// Per entry: the number of clauses, then each clause as its length and its entries
    /// ([`UNKNOWN`] for absent updates), then the number of parents and the parents.
    data: Vec<u32>,
}

impl Graph {
    /// The graph of `entries`.
    pub fn new(entries: &[super::scan_index::Entry]) -> Self {
        let mut g = Graph {
            at: Vec::with_capacity(entries.len() + 1),
            data: Vec::new(),
        };
        for e in entries {
            g.at.push(g.data.len() as u32);
            g.data.push(e.prereqs.len() as u32);
            for c in &e.prereqs {
                g.data.push(c.len() as u32);
                g.data.extend_from_slice(c);
            }
            g.data.push(e.bundled_by.len() as u32);
            g.data.extend_from_slice(&e.bundled_by);
        }
        g.at.push(g.data.len() as u32);
        g
    }

    fn part(&self, i: u32) -> &[u32] {
        let i = i as usize;
        match (self.at.get(i), self.at.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.data[a as usize..b as usize],
            _ => &[],
        }
    }

    /// Whether every prerequisite clause of entry `i` names an entry in `have`.
    pub fn satisfied(&self, i: u32, have: &[bool]) -> bool {
        self.clauses_and_parents(i, |clause| any_held(clause, have))
            .is_some()
    }

    /// Checks each clause of `i` with `ok`; the parents when all pass, `None` at the first
    /// that fails.
    fn clauses_and_parents(&self, i: u32, mut ok: impl FnMut(&[u32]) -> bool) -> Option<&[u32]> {
        let d = self.part(i);
        let (&n, mut rest) = d.split_first()?;
        for _ in 0..n {
            let (&len, r) = rest.split_first()?;
            let (clause, r) = r.split_at_checked(len as usize)?;
            if !ok(clause) {
                return None;
            }
            rest = r;
        }
        let (&np, r) = rest.split_first()?;
        r.get(..np as usize)
    }
}

/// An entry's client action without its deployment details.
#[derive(Debug, Clone, Copy)]
pub enum Derived<'a> {
    /// From an approval (own, or of a bundle above it).
    Approved(&'a Chosen),
    /// Evaluate, PreDeploymentCheck or Bundle without an approval.
    Plain(DeploymentAction),
}

impl ScanIndex {
    /// The scope of a software pass with `filter` (sorted, deduplicated; empty = no filter).
    pub fn scope(&self, filter: &[Uuid]) -> Arc<EntrySet> {
        let mut memo = self.memo.scopes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = memo.get(filter) {
            return s.clone();
        }
        let set = if filter.is_empty() {
            self.software.clone()
        } else {
            let closure = self.filter_closure(filter);
            let mut s = EntrySet::new(self.entries.len());
            for i in closure {
                if self.software.contains(i) {
                    s.insert(i);
                }
            }
            s
        };
        let set = Arc::new(set);
        if memo.len() > 256 {
            memo.clear();
        }
        memo.insert(filter.to_vec(), set.clone());
        set
    }

    /// Every entry in one of `filter`'s categories (or one of them), plus what those name as
    /// prerequisites and bundle, transitively; drivers included.
    pub fn filter_closure(&self, filter: &[Uuid]) -> HashSet<u32> {
        let want: HashSet<&Uuid> = filter.iter().collect();
        let mut stack: Vec<u32> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                want.contains(&e.key.update_id) || e.categories.iter().any(|c| want.contains(c))
            })
            .map(|(i, _)| i as u32)
            .collect();
        let mut out = HashSet::new();
        while let Some(i) = stack.pop() {
            if i == UNKNOWN || !out.insert(i) {
                continue;
            }
            let e = &self.entries[i as usize];
            stack.extend(e.prereqs.iter().flatten().copied());
            stack.extend(e.bundled.iter().copied());
        }
        out
    }

    /// The needed set for `scope` (from [`ScanIndex::scope`] with `filter`) and the installed
    /// non-leaf entries `installed` (sorted, deduplicated). Memoised.
    pub fn needed(&self, filter: &[Uuid], scope: &EntrySet, installed: &[u32]) -> Arc<EntrySet> {
        use std::sync::atomic::Ordering::Relaxed;
        let key = (filter.to_vec(), installed.to_vec());
        if let Some(s) = self
            .memo
            .needed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            self.memo.hits.fetch_add(1, Relaxed);
            return s.clone();
        }
        self.memo.misses.fetch_add(1, Relaxed);
        let set = Arc::new(self.compute_needed(scope, installed));
        let mut memo = self.memo.needed.lock().unwrap_or_else(|p| p.into_inner());
        if memo.len() >= NEEDED_MEMO {
            memo.clear();
        }
        memo.insert(key, set.clone());
        set
    }

    fn compute_needed(&self, scope: &EntrySet, installed: &[u32]) -> EntrySet {
        let n = self.entries.len();
        let mut have = vec![false; n];
        for i in installed {
            if let Some(h) = have.get_mut(*i as usize) {
                *h = true;
            }
        }
        // 0 unknown, 1 visiting, 2 needed, 3 not needed.
        let mut state = vec![0u8; n];
        let mut set = EntrySet::new(n);
        let mut stack = Vec::new();
        for i in 0..n as u32 {
            if self.is_needed(i, scope, &have, &mut state, &mut stack) {
                set.insert(i);
            }
        }
        set
    }

    /// Whether entry `i` is needed, resolving bundles above it first (iteratively: bundle
    /// chains are short, but a hostile catalog could make them long or cyclic). `stack` is
    /// scratch space, empty on entry and on return (one allocation for the whole set).
    fn is_needed(
        &self,
        i: u32,
        scope: &EntrySet,
        have: &[bool],
        state: &mut [u8],
        stack: &mut Vec<u32>,
    ) -> bool {
        if state[i as usize] >= 2 {
            return state[i as usize] == 2;
        }
        stack.push(i);
        while let Some(&cur) = stack.last() {
            let c = cur as usize;
            if state[c] >= 2 {
                stack.pop();
                continue;
            }
            let parents = match scope
                .contains(cur)
                .then(|| {
                    self.graph
                        .clauses_and_parents(cur, |clause| any_held(clause, have))
                })
                .flatten()
            {
                Some(p) => p,
                None => {
                    state[c] = 3;
                    stack.pop();
                    continue;
                }
            };
            if parents.is_empty() {
                state[c] = 2;
                stack.pop();
                continue;
            }
            if state[c] == 0 {
                state[c] = 1;
                let before = stack.len();
                stack.extend(parents.iter().copied().filter(|p| state[*p as usize] == 0));
                if stack.len() > before {
                    continue;
                }
            }
            // Parents resolved (or on the stack: a cycle, which counts as not needed).
            state[c] = if parents.iter().any(|p| state[*p as usize] == 2) {
                2
            } else {
                3
            };
            stack.pop();
        }
        state[i as usize] == 2
    }

    /// The action of entry `i` for a computer with the winning approvals `approved`.
    pub fn derived<'a>(&self, i: u32, approved: &'a Approved) -> Derived<'a> {
        if self.non_leaf_set.contains(i) {
            return Derived::Plain(DeploymentAction::Evaluate);
        }
        if let Some(c) = approved.get(i) {
            return Derived::Approved(c);
        }
        let e = &self.entries[i as usize];
        Derived::Plain(if !e.bundled_by.is_empty() {
            DeploymentAction::Bundle
        } else if !e.is_leaf {
            DeploymentAction::Evaluate
        } else {
            DeploymentAction::PreDeploymentCheck
        })
    }

    /// Needed-set memo lookups so far: (answered from the memo, computed).
    pub fn memo_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.memo.hits.load(Relaxed), self.memo.misses.load(Relaxed))
    }
}

/// Whether `have` holds any entry of `clause` (a prerequisite clause is satisfied by any one).
#[inline]
fn any_held(clause: &[u32], have: &[bool]) -> bool {
    clause
        .iter()
        .any(|p| have.get(*p as usize).copied().unwrap_or(false))
}
