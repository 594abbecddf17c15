//! Staged application of a big upstream deployment set (a replica's first sync: tens of
//! thousands of approvals), so that no single sled transaction has to hold them all.
//!
//! There are two deployment trees, `deployments` and `deployments_b`; `meta/dep_live` names
//! the live one (readers and every transactional writer go through it), the other is
//! staging. A staged apply, under the metadata writer lock:
//! 1. discards staging leftovers: `dep_log` entries above the committed `meta/dep_seq` and
//!    whatever the staging tree holds (an older generation or an interrupted apply);
//! 2. writes the complete new set into the staging tree and its change-log entries under the
//!    numbers after `dep_seq`, in chunks (plain sled batches: nothing reads them yet);
//! 3. flushes, then makes it live in ONE small transaction: `dep_live` flips, `dep_seq`
//!    moves to the last staged number, and groups, computers' assignments to removed groups,
//!    declines, EULAs and the sync state (the deployment anchor) are written with it.
//!
//! Readers see the old set or the new one, never a mix; `deployment_changes_since` reads
//! the log only up to `dep_seq`, so staged entries are invisible until the flip. A crash
//! (or an error) before the flip leaves the previous state complete and visible; the next
//! staged apply (and the next open, for the log) discards the garbage. The retired
//! generation stays in the now-staging tree until the next staged apply clears it, so a
//! reader that looked up the live tree just before the flip still iterates a whole set.

use std::collections::{BTreeSet, HashMap, HashSet};

use uuid::Uuid;

use super::approvals::{replace_set, UpstreamDeployments};
use super::computers::Computer;
use super::deployment_log::{log_entry, DepLog};
use super::schema::{self, dec, enc, Tree};
use super::target_groups::drop_groups;
use super::{abort, Store, StoreError, Tx, TxResult};
use crate::model::{Deployment, TargetGroup};

/// Writes per staging batch.
pub(super) const CHUNK: usize = 1000;

/// What an upstream apply writes besides the deployments (small: one transaction).
pub(super) struct Rest<'a> {
    /// Upstream's groups (parents normalized).
    pub incoming: &'a [TargetGroup],
    /// Local groups to remove (absent upstream, not built-in).
    pub doomed: &'a BTreeSet<Uuid>,
    /// Every computer (their assignments to doomed groups go).
    pub computers: &'a [Computer],
    /// Declined updates now, and upstream's list.
    pub declined: (&'a [Uuid], &'a [Uuid]),
    /// Accepted EULAs now, and upstream's list.
    pub eulas: (&'a [Uuid], &'a [Uuid]),
    /// The encoded sync state to store with it.
    pub state: Option<&'a [u8]>,
}

impl Rest<'_> {
    /// Groups, declines, EULAs and the sync state (computers are `drop_groups`'s).
    pub(super) fn write(&self, tx: &Tx<'_>) -> TxResult<()> {
        for g in self.incoming {
            tx.put(Tree::Groups, g.id.as_bytes(), g)?;
        }
        replace_set(tx, Tree::Declined, self.declined.0, self.declined.1)?;
        replace_set(tx, Tree::Eulas, self.eulas.0, self.eulas.1)?;
        if let Some(s) = self.state {
            tx.put_raw(Tree::Sync, schema::SYNC_STATE, s)?;
        }
        Ok(())
    }
}

/// A deployment set written to the staging tree, not live yet.
#[derive(Debug)]
pub(super) struct Staged {
    /// The staging tree.
    tree: Tree,
    /// `dep_seq` when staging started (the flip checks nobody moved it).
    base_seq: u64,
    /// The last change number staged (= `base_seq` when nothing changed).
    last_seq: u64,
}

/// Chunked writer into the staging tree and the change log.
struct StageWriter<'a> {
    stage: &'a sled::Tree,
    log: &'a sled::Tree,
    stage_batch: sled::Batch,
    log_batch: sled::Batch,
    pending: usize,
    chunk: usize,
    next_seq: u64,
}

impl StageWriter<'_> {
    fn put(&mut self, id: &Uuid, value: &[u8]) -> Result<(), StoreError> {
        self.stage_batch.insert(id.as_bytes(), value);
        self.tick()
    }

    fn log(&mut self, id: &Uuid, put: bool) -> Result<(), StoreError> {
        self.log_batch
            .insert(&self.next_seq.to_be_bytes(), &log_entry(id, put));
        self.next_seq += 1;
        self.tick()
    }

    fn tick(&mut self) -> Result<(), StoreError> {
        self.pending += 1;
        if self.pending >= self.chunk {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.stage
            .apply_batch(std::mem::take(&mut self.stage_batch))?;
        self.log.apply_batch(std::mem::take(&mut self.log_batch))?;
        self.pending = 0;
        Ok(())
    }
}

impl Store {
    /// Removes `dep_log` entries above the committed number `seq` (an unfinished staged
    /// apply's). Returns how many.
    pub(super) fn discard_uncommitted_log(&self, seq: u64) -> Result<usize, StoreError> {
        let log = self.tree(Tree::DepLog)?;
        let mut n = 0;
        loop {
            let keys = log
                .range((seq + 1).to_be_bytes()..)
                .keys()
                .take(CHUNK)
                .collect::<Result<Vec<_>, _>>()?;
            if keys.is_empty() {
                return Ok(n);
            }
            let mut b = sled::Batch::default();
            for k in &keys {
                b.remove(k);
            }
            log.apply_batch(b)?;
            n += keys.len();
        }
    }

    /// Empties tree `i` in batches of `chunk`.
    fn clear_tree(&self, i: Tree, chunk: usize) -> Result<(), StoreError> {
        let t = self.tree(i)?;
        loop {
            let keys = t
                .iter()
                .keys()
                .take(chunk.max(1))
                .collect::<Result<Vec<_>, _>>()?;
            if keys.is_empty() {
                return Ok(());
            }
            let mut b = sled::Batch::default();
            for k in &keys {
                b.remove(k);
            }
            t.apply_batch(b)?;
        }
    }

    /// Steps 1–2: writes the deployment set that applying `up` to the live one gives (minus
    /// deployments of `doomed` groups) into the staging tree, with its change-log entries,
    /// in chunks of `chunk` writes, then flushes. Nothing is visible until
    /// [`Store::make_staged_live`]. The caller holds the writer lock.
    pub(super) fn stage_deployments(
        &self,
        up: &UpstreamDeployments,
        doomed: &BTreeSet<Uuid>,
        chunk: usize,
    ) -> Result<Staged, StoreError> {
        let live_i = schema::dep_tree(
            self.tree(Tree::Meta)?
                .get(schema::META_DEP_LIVE)?
                .as_deref(),
        );
        let stage_i = schema::other_dep_tree(live_i);
        let base_seq = self.deployment_seq()?;
        let discarded = self.discard_uncommitted_log(base_seq)?;
        self.clear_tree(stage_i, chunk)?;
        let result = self.stage_into(up, doomed, chunk, live_i, stage_i, base_seq);
        if result.is_err() {
            // Best effort: the next staged apply or open discards it anyway.
            let _ = self.discard_uncommitted_log(base_seq);
        }
        let last_seq = result?;
        self.flush()?;
        tracing::debug!(
            discarded,
            changes = last_seq - base_seq,
            "deployments staged"
        );
        Ok(Staged {
            tree: stage_i,
            base_seq,
            last_seq,
        })
    }

    /// The copy/merge pass of [`Store::stage_deployments`]; returns the last change number.
    fn stage_into(
        &self,
        up: &UpstreamDeployments,
        doomed: &BTreeSet<Uuid>,
        chunk: usize,
        live_i: Tree,
        stage_i: Tree,
        base_seq: u64,
    ) -> Result<u64, StoreError> {
        let listed: HashMap<Uuid, &Deployment> = up.deployments.iter().map(|d| (d.id, d)).collect();
        let dead: HashSet<&Uuid> = up.dead_deployments.iter().collect();
        let (stage, log) = (self.tree(stage_i)?, self.tree(Tree::DepLog)?);
        let mut w = StageWriter {
            stage: &stage,
            log: &log,
            stage_batch: sled::Batch::default(),
            log_batch: sled::Batch::default(),
            pending: 0,
            chunk: chunk.max(1),
            next_seq: base_seq + 1,
        };
        let mut written: HashSet<Uuid> = HashSet::with_capacity(listed.len());
        for kv in self.tree(live_i)?.iter() {
            let (k, v) = kv?;
            let id = schema::parse_uuid("deployments", &k)?;
            if let Some(d) = listed.get(&id).filter(|d| !doomed.contains(&d.group)) {
                // Listed upstream: its new value; logged only when it changed.
                written.insert(id);
                let old: Deployment = dec("deployments", &v)?;
                w.put(&id, &enc(*d)?)?;
                if old != **d {
                    w.log(&id, true)?;
                }
                continue;
            }
            let gone = up.replace_all_deployments
                || dead.contains(&id)
                || (!doomed.is_empty()
                    && doomed.contains(&dec::<Deployment>("deployments", &v)?.group));
            if gone {
                w.log(&id, false)?;
            } else {
                w.put(&id, &v)?;
            }
        }
        for d in &up.deployments {
            // The last listing of an id wins, as with sequential puts.
            let d = listed.get(&d.id).copied().unwrap_or(d);
            if !doomed.contains(&d.group) && written.insert(d.id) {
                w.put(&d.id, &enc(d)?)?;
                w.log(&d.id, true)?;
            }
        }
        w.flush()?;
        Ok(w.next_seq - 1)
    }

    /// Step 3: makes a staged set live with everything else an apply writes, in ONE
    /// transaction. The caller holds the writer lock it staged under.
    pub(super) fn make_staged_live(
        &self,
        staged: Staged,
        rest: &Rest<'_>,
    ) -> Result<(), StoreError> {
        self.txn(|tx| {
            if super::deployment_log::dep_seq_in_tx(tx)? != staged.base_seq {
                return Err(abort(StoreError::Invalid(
                    "deployments changed while a new set was staged".into(),
                )));
            }
            // Only its tree index is used (no deployment goes through it here).
            let log = DepLog::start(tx)?;
            drop_groups(tx, &log, rest.doomed, &[], rest.computers)?;
            rest.write(tx)?;
            tx.put_raw(
                Tree::Meta,
                schema::META_DEP_LIVE,
                &schema::dep_live_value(staged.tree),
            )?;
            tx.put_raw(
                Tree::Meta,
                schema::META_DEP_SEQ,
                &staged.last_seq.to_be_bytes(),
            )
        })?;
        tracing::info!(
            changes = staged.last_seq - staged.base_seq,
            "staged deployments made live"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{groups, ApprovalAction};
    use crate::store::testutil::{dep, group, uid};
    use crate::store::SyncState;

    fn all_computers() -> TargetGroup {
        TargetGroup {
            id: groups::ALL_COMPUTERS,
            name: "All Computers".into(),
            parent: Some(Uuid::nil()),
        }
    }

    fn state(anchor: &str) -> SyncState {
        SyncState {
            deployment_anchor: Some(anchor.into()),
            ..Default::default()
        }
    }

    /// Upstream answers in sequence: a full set, a delta, a full set with a group gone.
    fn answers() -> Vec<UpstreamDeployments> {
        let g2 = group(2, Some(groups::ALL_COMPUTERS));
        let g3 = group(3, Some(groups::ALL_COMPUTERS));
        let first: Vec<Deployment> = (1..=40)
            .map(|n| {
                dep(
                    n,
                    n,
                    if n % 2 == 0 { g2.id } else { g3.id },
                    ApprovalAction::Install,
                )
            })
            .collect();
        let mut changed = dep(4, 4, g2.id, ApprovalAction::Uninstall);
        changed.deadline = Some(time::OffsetDateTime::UNIX_EPOCH);
        vec![
            UpstreamDeployments {
                groups: vec![all_computers(), g2.clone(), g3.clone()],
                deployments: first.clone(),
                replace_all_deployments: true,
                hidden_updates: (100..110).map(uid).collect(),
                accepted_eulas: vec![uid(200)],
                ..Default::default()
            },
            UpstreamDeployments {
                groups: vec![all_computers(), g2.clone(), g3.clone()],
                // One changed, one unchanged, one new listed twice (the last wins).
                deployments: vec![
                    changed,
                    first[5].clone(),
                    dep(50, 50, g3.id, ApprovalAction::Install),
                    dep(50, 50, g3.id, ApprovalAction::Block),
                ],
                dead_deployments: vec![first[0].id, first[1].id, Uuid::from_u128(0xdead)],
                hidden_updates: (105..115).map(uid).collect(),
                accepted_eulas: vec![],
                ..Default::default()
            },
            UpstreamDeployments {
                // g3 is gone upstream: its deployments go with it.
                groups: vec![all_computers(), g2.clone()],
                deployments: first[10..30].to_vec(),
                replace_all_deployments: false,
                hidden_updates: vec![uid(101)],
                accepted_eulas: vec![uid(201)],
                ..Default::default()
            },
            UpstreamDeployments {
                groups: vec![all_computers(), g2.clone()],
                deployments: first[20..26].to_vec(),
                replace_all_deployments: true,
                ..Default::default()
            },
        ]
    }

    fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
        v.sort();
        v
    }

    /// The deployment ids of an upstream answer, sorted as [`view`] lists them.
    fn deployment_ids(up: &UpstreamDeployments) -> Vec<String> {
        sorted(up.deployments.iter().map(|d| d.id.to_string()).collect())
    }

    /// What readers see (the change numbers themselves may differ: the one-transaction path
    /// logs an id listed twice twice).
    fn view(s: &Store) -> [Vec<String>; 6] {
        let strs = |v: Vec<Uuid>| -> Vec<String> { v.iter().map(Uuid::to_string).collect() };
        let ch = s.deployment_changes_since(0).unwrap();
        [
            strs(sorted(
                s.deployments().unwrap().iter().map(|d| d.id).collect(),
            )),
            sorted(
                s.deployments()
                    .unwrap()
                    .iter()
                    .map(|d| format!("{d:?}"))
                    .collect(),
            ),
            strs(sorted(s.groups().unwrap().iter().map(|g| g.id).collect())),
            strs(sorted(s.declined_updates().unwrap())),
            strs(sorted(ch.dead)),
            strs(sorted(ch.changed.iter().map(|d| d.id).collect())),
        ]
    }

    #[test]
    fn staged_apply_gives_what_one_transaction_gives() {
        let (_d1, one) = crate::store::testutil::store();
        let (_d2, staged) = crate::store::testutil::store();
        for s in [&one, &staged] {
            s.add_group(&group(9, None)).unwrap(); // local, absent upstream
            s.upsert_computer(&Computer {
                id: "c".into(),
                groups: vec![group(9, None).id],
                ..Default::default()
            })
            .unwrap();
        }
        for (i, up) in answers().iter().enumerate() {
            let st = state(&format!("D{i}"));
            one.apply_upstream_deployments_with(up, Some(&st), usize::MAX, CHUNK)
                .unwrap();
            // Chunks of 3: many batches, the live tree flips every time.
            staged
                .apply_upstream_deployments_with(up, Some(&st), 0, 3)
                .unwrap();
            assert_eq!(view(&one), view(&staged), "after answer {i}");
            assert_eq!(
                one.accepted_eulas().unwrap(),
                staged.accepted_eulas().unwrap()
            );
            assert_eq!(
                staged.sync_state().unwrap().deployment_anchor,
                Some(format!("D{i}"))
            );
            assert_eq!(
                one.deployment_count().unwrap(),
                staged.deployment_count().unwrap()
            );
        }
        assert!(staged.computer("c").unwrap().unwrap().groups.is_empty());
        assert_eq!(staged.deployments().unwrap().len(), 6);
        // Autonomous edits after staged applies land in the live tree.
        let g2 = group(2, Some(groups::ALL_COMPUTERS)).id;
        staged
            .set_deployment(&dep(77, 77, g2, ApprovalAction::Install))
            .unwrap();
        assert_eq!(staged.deployments_of(&uid(77)).unwrap().len(), 1);
        assert!(staged
            .remove_deployment(&Uuid::from_u128(0xd000 + 77))
            .unwrap());
        let seq = staged.deployment_seq().unwrap();
        let ch = staged.deployment_changes_since(seq - 2).unwrap();
        assert!(ch.changed.is_empty());
        assert_eq!(ch.dead, vec![Uuid::from_u128(0xd000 + 77)]);
    }

    /// Makes `ups[2]` the live set (anchor "old") in one transaction; returns its view and
    /// the deployment sequence number then.
    fn apply_old_set(s: &Store, ups: &[UpstreamDeployments]) -> ([Vec<String>; 6], u64) {
        s.apply_upstream_deployments_with(&ups[2], Some(&state("old")), usize::MAX, CHUNK)
            .unwrap();
        (view(s), s.deployment_seq().unwrap())
    }

    #[test]
    fn interrupted_staged_apply_leaves_the_old_set_and_the_next_apply_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let ups = answers();
        let (before, seq0) = {
            let s = Store::open(dir.path()).unwrap();
            let (before, seq0) = apply_old_set(&s, &ups);
            // Stage a different full set in small chunks, then "crash" before the flip.
            let _w = s.writer();
            let staged = s.stage_deployments(&ups[0], &BTreeSet::new(), 2).unwrap();
            assert!(staged.last_seq > seq0);
            drop(_w);
            assert_eq!(view(&s), before, "staged, not live");
            assert_eq!(s.deployment_seq().unwrap(), seq0);
            assert!(
                s.deployment_changes_since(seq0).unwrap().changed.is_empty(),
                "staged changes are not reported"
            );
            (before, seq0)
        };
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(view(&s), before);
        assert_eq!(
            s.sync_state().unwrap().deployment_anchor.as_deref(),
            Some("old")
        );
        // The staged log was discarded at open: a later change gets the next number and is
        // the only one reported.
        let g2 = group(2, Some(groups::ALL_COMPUTERS)).id;
        s.set_deployment(&dep(60, 60, g2, ApprovalAction::Install))
            .unwrap();
        assert_eq!(s.deployment_seq().unwrap(), seq0 + 1);
        let ch = s.deployment_changes_since(seq0).unwrap();
        assert_eq!(ch.changed.len(), 1);
        assert!(ch.dead.is_empty());
        // The next (staged) apply succeeds over the leftovers.
        s.apply_upstream_deployments_with(&ups[0], Some(&state("new")), 0, 2)
            .unwrap();
        assert_eq!(view(&s)[0], deployment_ids(&ups[0]));
        assert_eq!(
            s.sync_state().unwrap().deployment_anchor.as_deref(),
            Some("new")
        );
        let ch = s.deployment_changes_since(seq0 + 1).unwrap();
        assert_eq!(
            ch.changed.len() + ch.dead.len(),
            s.deployment_seq().unwrap() as usize - seq0 as usize - 1
        );
        assert!(ch.dead.contains(&Uuid::from_u128(0xd000 + 60)));
    }

    const CRASH_CHILD_ENV: &str = "WSUS_EDGE_STAGED_CRASH_CHILD";

    /// Runs in the child process only (re-executed test binary): stages a new set and dies
    /// without unwinding (no destructor, no flush on drop), as a kill -9 before the flip.
    #[test]
    fn staged_crash_child() {
        let Ok(dir) = std::env::var(CRASH_CHILD_ENV) else {
            return;
        };
        let s = Store::open(std::path::Path::new(&dir)).unwrap();
        let _w = s.writer();
        s.stage_deployments(&answers()[0], &BTreeSet::new(), 2)
            .unwrap();
        std::process::abort();
    }

    #[test]
    fn a_process_dying_after_staging_leaves_the_old_set() {
        let dir = tempfile::tempdir().unwrap();
        let ups = answers();
        let (before, seq0) = {
            let s = Store::open(dir.path()).unwrap();
            let old = apply_old_set(&s, &ups);
            s.flush().unwrap();
            old
        };
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "store::staged::tests::staged_crash_child"])
            .args(["--nocapture", "--test-threads", "1"])
            .env(CRASH_CHILD_ENV, dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "the child must die: {out:?}");
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(view(&s), before);
        assert_eq!(s.deployment_seq().unwrap(), seq0);
        assert_eq!(
            s.sync_state().unwrap().deployment_anchor.as_deref(),
            Some("old")
        );
        assert!(s.deployment_changes_since(seq0).unwrap().changed.is_empty());
        s.apply_upstream_deployments_with(&ups[0], Some(&state("new")), 0, 5)
            .unwrap();
        assert_eq!(view(&s)[0], deployment_ids(&ups[0]));
    }
}
