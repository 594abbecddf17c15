//! The metadata store over sled: the content and object indexes, update revisions (records +
//! compressed XML, local revision ids), sync state and anchors, target groups, deployments,
//! declines, EULAs, computers and their events. The only module that names sled.
//!
//! # Layout
//! On disk: `dir/store.lock` (the exclusive lock, holder's pid inside) and `dir/db/` (sled).
//! Trees and key encodings: [`schema`](self) (`schema.rs`). Code by concern: `objects.rs`
//! (content + object index), `updates.rs` (revisions, `commit_batch`), `sync_state.rs`,
//! `target_groups.rs`, `approvals.rs` (deployments, declines, EULAs), `deployment_log.rs`
//! (the numbered deployment change log), `subscription.rs`, `approved_files.rs`,
//! `computers.rs` (computers, events), `snapshot.rs` (export/import).
//!
//! # API at a glance (all methods on [`Store`], all synchronous)
//! - lifecycle: `open(dir)` (runs the schema migrations, `migrate.rs`), `flush()`,
//!   `failure()` and `recover()` (a full disk: reopen once space is back, `recover.rs`),
//!   `schema_version()`, `server_id()`, `revision_epoch()`,
//!   `bump_revision_epoch()`, `catalog_generation()` (cache invalidation)
//! - content cache: `put_expected_files`, `expected_file`, `expected_files`,
//!   `remove_expected_files`, `put_object`, `get_object`,
//!   `touch_object`, `remove_object`, `objects`
//! - revisions: `commit_batch(&[NewRevision], &[FileRecord], Option<&SyncState>) -> Vec<u32>`,
//!   `compressed_blob`, `put_compressed_blob` (upstream side's wire-form cache, `blob_cache.rs`),
//!   `remove_revisions`, `revision`, `revision_xml`, `revision_by_local_id`,
//!   `revision_key_by_local_id`, `local_id`, `has_update`, `update_count`, `latest_revision`, `latest_revisions`,
//!   `revisions_of`, `revision_keys`, `revision_keys_since`, `revision_count`,
//!   `missing_revisions`, `next_local_id`, `removed_since`
//! - sync state: `sync_state`, `set_sync_state`, `cookie`, `set_cookie`, `setting`,
//!   `set_setting`, `settings`
//! - subscription: `subscription(&SyncConfig)` (stored, else configured), `stored_subscription`,
//!   `set_subscription`
//! - approved content: `approved_files` (also on a snapshot; `approved_files.rs` is the one
//!   definition of the files of approved updates)
//! - approvals: `groups`, `group`, `group_by_name`, `add_group`, `remove_group`,
//!   `deployments`, `deployments_of`, `set_deployment`, `remove_deployment`,
//!   `declined_updates`, `is_declined`, `decline`, `undecline`, `accepted_eulas`,
//!   `is_eula_accepted`, `accept_eula`, `apply_upstream_deployments(&UpstreamDeployments, ..)`,
//!   `deployment_count`, `deployment_seq`, `deployment_changes_since(seq)` (changed + dead)
//! - computers: `upsert_computer`, `computer`, `computers`, `remove_computer`,
//!   `set_computer_groups`, `record_computer_sync`, `add_events`, `events`, `prune_events`,
//!   `update_statuses`
//! - compliance (`compliance.rs`): `derive_states` (the one state derivation); its stored form
//!   (`states.rs`): `computer_states`, `derived_computer_states`, `update_states`,
//!   `status_counts`, `all_status_counts`;
//!   downstream servers/computers/states received by rollup (`downstream_*`,
//!   `apply_downstream_status`), own rollup bookkeeping (`rollup_sent`, `set_rollup_sent`)
//! - export/import: `snapshot`, `snapshot_since(high_water)`, `apply_snapshot(.., ApplyMode, ..)`
//!
//! # Invariants (what is atomic with what)
//! - **One owner.** One process (one [`Store`] value and its clones) owns a directory:
//!   [`Store::open`] takes `flock(LOCK_EX|LOCK_NB)` on `store.lock`; any other open, from
//!   this process or another, gets [`StoreError::Locked`] with the holder's pid.
//! - **One transaction per logical change.** Every write that touches more than one key goes
//!   through one sled transaction over all metadata trees, and metadata writers are serialized
//!   by a mutex (so the scans some of them do first cannot go stale). In particular:
//!   - `commit_batch`: the batch's revision records, their XML, local ids and reverse map, the
//!     latest index, the content index entries of their files, the id counter and (when given)
//!     the new [`SyncState`] with its anchors become visible together or not at all. A sync
//!     passes a phase's anchor only with the phase's last batch, so no anchor is ever visible
//!     without all of its records, and no batch is ever partly visible.
//!   - `remove_revisions`: records, XML, reverse map, tombstones and latest fallback together.
//!   - `apply_upstream_deployments`: groups, deployments, declines, EULAs, computers'
//!     assignments to removed groups and (when given) the deployment anchor together. A big
//!     set (first sync) is staged in chunks in the second deployment tree and made live by
//!     one small transaction that flips `meta/dep_live` (`staged.rs`): still all or nothing
//!     for readers and for a crash.
//!   - `apply_snapshot`: the whole import together (all or nothing).
//!   - `remove_group` (subtree + deployments + assignments), `decline` (+ removing approvals),
//!     `set_deployment` (+ replacing the same group's approval, un-declining), `add_events`
//!     (+ `last_report_unix` + the computer's stored states), `remove_computer` (+ events
//!     and stored states). `trim_events` and `prune_events` re-derive the stored states of the
//!     computers they touched under the same writer lock (`states.rs`).
//! - **Local revision ids** (MS-WUSP `UpdateInfo/ID`) come from one counter starting at 1:
//!   assigned at a revision's first insert, kept when it is re-inserted, never reused after a
//!   removal (a removal's tombstone also takes a number). So `next_local_id()` is a high-water
//!   mark: ids ≥ a mark were assigned after it (incremental export). The epoch changes only by
//!   `bump_revision_epoch` (for `ServerChanged`), which a rebuild of the id space must call.
//! - **Latest index** = the highest stored revision number per UpdateID, always.
//! - **Deployment log.** Every deployment put/removal is logged under a change number in the
//!   same transaction (a staged apply: in the transaction that makes it live, which moves
//!   `meta/dep_seq` over the staged entries), so `deployment_changes_since(n)` is exact
//!   (changed + dead) and never reports entries above `dep_seq`.
//! - **Built-in groups** All Computers (root) and Unassigned Computers (its child) always exist.
//! - **Deployments** name a `RevisionKey` but may refer to a revision not stored (arrived
//!   before it, or expired): consumers match on `update_id` and use the latest revision.
//! - **Not transactional** (single-key, independent): the object index (`touch_object` is a
//!   compare-and-swap that never moves time backwards and never resurrects a removed object),
//!   cookies, settings, `set_sync_state`, `upsert_computer`, `prune_events`.
//! - **Durability.** A returned write is durable after [`Store::flush`]; sled also flushes every
//!   500 ms. After a crash (kill -9) the store shows a prefix of the committed transactions,
//!   never part of one (tests/store_crash.rs checks this with SIGKILL in a loop).
//!
//! # Cost
//! sled transactions here are serialized (writer mutex + sled's own lock); a 100-revision
//! `commit_batch` is one transaction of ~500 writes. Scans (`latest_revisions`, `snapshot`,
//! `computers`) read everything: call them from `spawn_blocking` in async code.

mod approvals;
mod approved_files;
mod blob_cache;
mod change_stamps;
mod compliance;
mod computers;
mod deployment_log;
mod ds_states;
mod error;
mod lock;
mod malloc;
mod migrate;
mod objects;
mod recover;
mod schema;
mod snapshot;
mod staged;
mod states;
mod subscription;
mod sync_state;
mod target_groups;
#[cfg(test)]
mod testutil;
mod updates;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use schema::Tree;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};
use sled::Transactional;
use uuid::Uuid;

pub use approvals::UpstreamDeployments;
pub use change_stamps::ChangeStamps;
pub use compliance::events as compliance_events;
pub use compliance::{
    derive_states, DownstreamComputer, DownstreamServer, DownstreamStatus, RollupSent,
    StatusRecord, UpdateState,
};
pub use computers::{Computer, EventStatus, ReportedEvent, StatusCounts};
pub use deployment_log::DeploymentChanges;
pub use ds_states::ComputerStatuses;
pub use error::StoreError;
pub use lock::LOCK_FILE;
pub use malloc::{limit_malloc_arenas, MALLOC_ARENAS, MMAP_THRESHOLD};
pub use migrate::SCHEMA_VERSION;
pub use objects::ObjectMeta;
pub use snapshot::{ApplyMode, MetadataSnapshot, SnapshotRevision, SNAPSHOT_FORMAT};
pub use subscription::{Subscription, SUBSCRIPTION_SETTING};
pub use sync_state::{AnchorCover, SkippedRevision, SyncOutcome, SyncState, UpstreamFlags};
pub use updates::{NewRevision, StoredRevision};

use crate::model::{groups, TargetGroup};

/// sled's page cache budget (its default, 1 GiB, would blow the 256 MiB RSS target of a
/// 100,000-update sync; sled's cache is a soft limit).
const CACHE_BYTES: u64 = 64 << 20;

/// The metadata store. Cheap to clone (an `Arc` inside); `Send + Sync`; every method is
/// synchronous (async callers use small ops directly and `spawn_blocking` for big scans).
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Shared>,
}

/// What every clone shares. Field order matters: the sled handles drop before the lock is
/// released.
#[derive(Debug)]
struct Shared {
    /// The open database; `None` only while [`Store::recover`] reopens it (or after a reopen
    /// failed: every operation then answers [`StoreError::Unavailable`]).
    live: RwLock<Option<Arc<Db>>>,
    /// Serializes metadata writers that read outside their transaction (scans) before writing.
    write: Mutex<()>,
    /// Bumped after every write that may change the catalog or approvals (in-memory).
    generation: AtomicU64,
    /// Why the store is unhealthy: a write failed for lack of space, after which sled fails
    /// every write until it is reopened ([`Store::recover`]).
    failure: Mutex<Option<String>>,
    /// `dir`, for reopening.
    dir: PathBuf,
    _lock: lock::DirLock,
}

/// One open sled database and its trees.
#[derive(Debug)]
struct Db {
    db: sled::Db,
    objects: sled::Tree,
    kv: sled::Tree,
    /// The trees of [`Tree::ALL`], in that order.
    meta: Vec<sled::Tree>,
}

impl Drop for Db {
    /// The last clone going away flushes, so a clean shutdown loses nothing even without an
    /// explicit [`Store::flush`] (sled's own background flush covers the rest).
    fn drop(&mut self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!(error = %e, "store: final flush failed");
        }
    }
}

impl Db {
    /// Opens sled under `dir/db` with its trees. sled takes its own flock on its files, and
    /// a child being spawned by another thread can share them for a moment after their
    /// owner closed them (fork to exec); holding the dir lock, nobody else can really own
    /// them, so it retries for 500 ms, after which it counts as locked.
    fn open(dir: &Path) -> Result<Db, StoreError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        let db = loop {
            let opened = sled::Config::new()
                .path(dir.join("db"))
                .flush_every_ms(Some(500))
                .cache_capacity(CACHE_BYTES)
                .open();
            match opened {
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked { pid: None });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => break r?,
            }
        };
        let objects = db.open_tree(schema::OBJECTS)?;
        let kv = db.open_tree(schema::KV)?;
        let meta = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Db {
            db,
            objects,
            kv,
            meta,
        })
    }
}

/// Result type inside a transaction closure.
type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// Aborts a transaction with a store error.
fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

/// The transactional view of every metadata tree (addressed by [`Tree`]).
struct Tx<'a>(&'a [TransactionalTree]);

impl Tx<'_> {
    fn get_raw(&self, i: Tree, key: &[u8]) -> TxResult<Option<sled::IVec>> {
        Ok(self.0[i.index()].get(key)?)
    }
    fn put_raw(&self, i: Tree, key: &[u8], value: &[u8]) -> TxResult<()> {
        self.0[i.index()].insert(key, value)?;
        Ok(())
    }
    fn put<T: Serialize>(&self, i: Tree, key: &[u8], value: &T) -> TxResult<()> {
        let v = schema::enc(value).map_err(abort)?;
        self.0[i.index()].insert(key, v)?;
        Ok(())
    }
    fn remove(&self, i: Tree, key: &[u8]) -> TxResult<bool> {
        Ok(self.0[i.index()].remove(key)?.is_some())
    }
}

impl Store {
    /// Opens (creating) the store under `dir` and takes an exclusive lock (a lock file with
    /// flock/pid); a dir already held by another process → [`StoreError::Locked`].
    /// On first open it makes the server id, epoch 1 and the built-in groups.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        create_private_dir(dir)?;
        // A lock can stay held for a moment after its owner let go: a child being spawned by
        // another thread shares the lock's open file description until its exec. Retry
        // briefly (500 ms); a lock really held by another process still fails.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        let lock = loop {
            match lock::DirLock::acquire(dir) {
                Err(StoreError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                r => break r?,
            }
        };
        let db = Db::open(dir)?;
        let store = Store {
            inner: Arc::new(Shared {
                live: RwLock::new(Some(Arc::new(db))),
                write: Mutex::new(()),
                generation: AtomicU64::new(1),
                failure: Mutex::new(None),
                dir: dir.to_path_buf(),
                _lock: lock,
            }),
        };
        let fresh = store
            .tree(Tree::Meta)?
            .get(schema::META_SERVER_ID)?
            .is_none();
        store.init()?;
        store.migrate(fresh)?;
        store.finish_state_rebuild()?;
        store.finish_ds_states_migration()?;
        // Change-log entries of a staged deployment apply that never became live.
        let discarded = store.discard_uncommitted_log(store.deployment_seq()?)?;
        if discarded > 0 {
            tracing::info!(
                discarded,
                "store: discarded the log of an unfinished deployment apply"
            );
        }
        tracing::debug!(dir = %dir.display(), server_id = %store.server_id()?, "store opened");
        Ok(store)
    }

    /// First-open initialisation, idempotent: server id, epoch, id counter, built-in groups.
    fn init(&self) -> Result<(), StoreError> {
        let fresh_id = Uuid::new_v4();
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        self.txn(|tx| {
            if tx.get_raw(Tree::Meta, schema::META_SERVER_ID)?.is_none() {
                tx.put_raw(Tree::Meta, schema::META_SERVER_ID, fresh_id.as_bytes())?;
                tx.put_raw(Tree::Meta, schema::META_CREATED, &now_ms.to_be_bytes())?;
            }
            if tx.get_raw(Tree::Meta, schema::META_EPOCH)?.is_none() {
                tx.put_raw(Tree::Meta, schema::META_EPOCH, &1u32.to_be_bytes())?;
            }
            if tx
                .get_raw(Tree::Meta, schema::META_NEXT_LOCAL_ID)?
                .is_none()
            {
                tx.put_raw(Tree::Meta, schema::META_NEXT_LOCAL_ID, &1u32.to_be_bytes())?;
            }
            for g in builtin_groups() {
                if tx.get_raw(Tree::Groups, g.id.as_bytes())?.is_none() {
                    tx.put(Tree::Groups, g.id.as_bytes(), &g)?;
                }
            }
            Ok(())
        })
    }

    /// Flushes every pending write to disk (sled flush). Returns once durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        let r = self.live()?.db.flush();
        self.noted(r.map(|_| ()).map_err(StoreError::from))
    }

    /// This server's GUID, generated at first open and kept for the life of the data dir.
    pub fn server_id(&self) -> Result<Uuid, StoreError> {
        let v = self
            .tree(Tree::Meta)?
            .get(schema::META_SERVER_ID)?
            .ok_or_else(|| schema::corrupt("meta", "server id missing"))?;
        schema::parse_uuid("meta", &v)
    }

    /// When this store was created (unix milliseconds); `None` for a store older than the
    /// record. Anchors handed out before it come from an earlier store.
    pub fn created_unix_ms(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .tree(Tree::Meta)?
            .get(schema::META_CREATED)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(i64::from_be_bytes))
    }

    /// The revision-id-space epoch (starts at 1). Clients' cookies embed it; when it differs
    /// from theirs the client service answers `ServerChanged`.
    pub fn revision_epoch(&self) -> Result<u32, StoreError> {
        let v = self
            .tree(Tree::Meta)?
            .get(schema::META_EPOCH)?
            .ok_or_else(|| schema::corrupt("meta", "epoch missing"))?;
        schema::parse_u32("meta", &v)
    }

    /// Starts a new revision-id epoch (after the local id space was rebuilt, e.g. a replacing
    /// import); returns the new epoch.
    pub fn bump_revision_epoch(&self) -> Result<u32, StoreError> {
        self.txn(bump_epoch)
    }

    /// The open database.
    fn live(&self) -> Result<Arc<Db>, StoreError> {
        let g = self.inner.live.read().unwrap_or_else(|p| p.into_inner());
        match &*g {
            Some(db) => Ok(db.clone()),
            None => Err(StoreError::Unavailable(
                self.failure()
                    .unwrap_or_else(|| "being reopened".to_string()),
            )),
        }
    }

    /// A metadata tree by index.
    fn tree(&self, t: Tree) -> Result<sled::Tree, StoreError> {
        Ok(self.live()?.meta[t.index()].clone())
    }

    /// The tree named `name` (opened, or created, on first use).
    fn named_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.live()?.db.open_tree(name)?)
    }

    /// Passes `r` through; a write that failed for lack of space marks the store unhealthy
    /// ([`Store::failure`]) until [`Store::recover`] brings it back.
    fn noted<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &r {
            if e.is_disk_full() {
                let mut f = self.inner.failure.lock().unwrap_or_else(|p| p.into_inner());
                if f.is_none() {
                    tracing::error!(error = %e, "metadata store: a write failed, the disk is full; the store recovers once space is freed");
                    *f = Some(format!("the disk holding the store is full ({e})"));
                }
            }
        }
        r
    }

    /// Takes the metadata writer lock (see [`Shared::write`]).
    fn writer(&self) -> MutexGuard<'_, ()> {
        self.inner.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer lock for a write to revisions, groups, approvals, declines or EULAs: bumps
    /// [`Store::catalog_generation`] when released (after the write is visible).
    fn catalog_writer(&self) -> CatalogGuard<'_> {
        CatalogGuard {
            _lock: self.writer(),
            generation: &self.inner.generation,
        }
    }

    /// A number that changes after every write to revisions, groups, deployments, declines or
    /// EULAs (not computers, events, sync state or the content cache). Readers that cache the
    /// catalog (the client service) read it BEFORE loading and reload when it differs.
    /// In-memory: restarts from 1 with the process.
    pub fn catalog_generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Runs `f` as ONE sled transaction over every metadata tree. `f` may run more than once
    /// (conflict retries): it must have no side effects outside the transaction.
    fn txn<A>(&self, f: impl Fn(&Tx<'_>) -> TxResult<A>) -> Result<A, StoreError> {
        let db = self.live()?;
        let trees: Vec<&sled::Tree> = db.meta.iter().collect();
        let r = trees.as_slice().transaction(|view| f(&Tx(view)));
        self.noted(r.map_err(StoreError::from))
    }
}

/// Holds the writer lock; bumps the catalog generation on drop (after the lock's write).
struct CatalogGuard<'a> {
    _lock: MutexGuard<'a, ()>,
    generation: &'a AtomicU64,
}

impl Drop for CatalogGuard<'_> {
    fn drop(&mut self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// Increments the epoch inside a transaction.
fn bump_epoch(tx: &Tx<'_>) -> TxResult<u32> {
    let cur = match tx.get_raw(Tree::Meta, schema::META_EPOCH)? {
        Some(v) => schema::parse_u32("meta", &v).map_err(abort)?,
        None => 0,
    };
    let next = cur.wrapping_add(1).max(1);
    tx.put_raw(Tree::Meta, schema::META_EPOCH, &next.to_be_bytes())?;
    Ok(next)
}

/// Creates `dir` and its missing parents with mode 0700 (created so, not changed after:
/// no window in which another user could open it). An existing folder is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// All Computers (root) and Unassigned Computers (its child): always present.
pub fn builtin_groups() -> [TargetGroup; 2] {
    [
        TargetGroup {
            id: groups::ALL_COMPUTERS,
            name: "All Computers".into(),
            parent: None,
        },
        TargetGroup {
            id: groups::UNASSIGNED_COMPUTERS,
            name: "Unassigned Computers".into(),
            parent: Some(groups::ALL_COMPUTERS),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD_ENV: &str = "WSUS_EDGE_STORE_LOCK_CHILD";

    #[test]
    fn sled_lock_still_held_by_someone_else_waits_then_counts_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        // Someone still has sled's files open (as a forked child does until its exec).
        let holder = sled::open(dir.path().join("db")).unwrap();
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Locked { pid: None })
        ));
        // Released within the wait: the open succeeds.
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(holder);
        });
        Store::open(dir.path()).unwrap();
        release.join().unwrap();
    }

    #[test]
    fn second_open_in_process_is_locked_and_lock_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let s2 = s.clone();
        match Store::open(dir.path()) {
            Err(StoreError::Locked { pid }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(s);
        // A clone keeps it locked.
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Locked { .. })
        ));
        drop(s2);
        Store::open(dir.path()).unwrap();
    }

    /// Runs in the child process only (re-executed test binary); a no-op otherwise.
    #[test]
    fn lock_child_probe() {
        let Ok(dir) = std::env::var(CHILD_ENV) else {
            return;
        };
        match Store::open(Path::new(&dir)) {
            Err(StoreError::Locked { pid }) => println!("LOCKED pid={pid:?}"),
            Err(e) => println!("ERROR {e}"),
            Ok(_) => println!("OPENED"),
        }
    }

    #[test]
    fn dropping_the_last_clone_persists_without_explicit_flush() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let st = SyncState {
                sync_anchor: Some("only anchor".into()),
                ..Default::default()
            };
            // An empty batch still commits its anchor (a sync with nothing new).
            s.commit_batch(&[], &[], Some(&st)).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            s.sync_state().unwrap().sync_anchor.as_deref(),
            Some("only anchor")
        );
        assert_eq!(s.revision_count(), 0);
    }

    #[test]
    fn store_is_send_sync_clone() {
        fn assert<T: Send + Sync + Clone + 'static>() {}
        assert::<Store>();
    }

    #[test]
    fn server_id_and_epoch_persist() {
        let dir = tempfile::tempdir().unwrap();
        let (id, epoch) = {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.revision_epoch().unwrap(), 1);
            assert_eq!(s.bump_revision_epoch().unwrap(), 2);
            (s.server_id().unwrap(), s.revision_epoch().unwrap())
        };
        assert!(!id.is_nil());
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.server_id().unwrap(), id);
        assert_eq!(s.revision_epoch().unwrap(), epoch);
        assert_eq!(s.groups().unwrap().len(), 2);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(Store::open(other.path()).unwrap().server_id().unwrap(), id);
    }

    #[test]
    fn catalog_generation_moves_on_catalog_writes_only() {
        let (_d, s) = testutil::store();
        let g0 = s.catalog_generation();
        s.commit_batch(&[testutil::revision(1, 1)], &[], None)
            .unwrap();
        let g1 = s.catalog_generation();
        assert!(g1 > g0);
        s.upsert_computer(&Computer {
            id: "c".into(),
            ..Default::default()
        })
        .unwrap();
        s.set_cookie("x", Some(b"y")).unwrap();
        assert_eq!(s.catalog_generation(), g1);
        s.decline(&testutil::uid(1)).unwrap();
        assert!(s.catalog_generation() > g1);
    }

    #[test]
    fn open_from_another_process_is_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Store::open(dir.path()).unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "store::tests::lock_child_probe", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_ENV, dir.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let want = format!("LOCKED pid=Some({})", std::process::id());
        assert!(stdout.contains(&want), "child said: {stdout}");
    }
}
