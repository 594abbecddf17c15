//! The metadata store over sled: the content index, the object index, and (later) updates,
//! revisions, groups, approvals, anchors and computers. The only module that names sled.
//!
//! # Layout on disk
//! `dir/store.lock` (the exclusive lock, holder's pid inside) and `dir/db/` (the sled database).
//!
//! # Invariants
//! - One process (one [`Store`]) owns a directory at a time: [`Store::open`] takes
//!   `flock(LOCK_EX|LOCK_NB)` on `store.lock`; any other open gets [`StoreError::Locked`].
//! - `put_expected_files` applies its whole slice atomically (one sled batch).
//! - `touch_object` never moves `last_access_unix` backwards and never resurrects a removed
//!   object (compare-and-swap).
//! - Durability: writes are durable after [`Store::flush`] (sled also flushes in the background
//!   every 500 ms). After a crash the store holds a prefix of the committed operations.

mod error;
mod lock;
mod objects;
mod schema;

use std::path::Path;
use std::sync::Arc;

pub use error::StoreError;
pub use lock::LOCK_FILE;
pub use objects::ObjectMeta;

/// The metadata store. Cheap to clone (an `Arc` inside); `Send + Sync`; every method is
/// synchronous (async callers use small ops directly and `spawn_blocking` for big scans).
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

// Field order matters: sled handles drop before the lock is released.
#[derive(Debug)]
struct Inner {
    db: sled::Db,
    content: sled::Tree,
    objects: sled::Tree,
    _lock: lock::DirLock,
}

impl Store {
    /// Opens (creating) the store under `dir` and takes an exclusive lock (a lock file with
    /// flock/pid); a dir already held by another process → [`StoreError::Locked`].
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir)?;
        let lock = lock::DirLock::acquire(dir)?;
        let db = sled::Config::new()
            .path(dir.join("db"))
            .flush_every_ms(Some(500))
            .open()?;
        let content = db.open_tree(schema::CONTENT)?;
        let objects = db.open_tree(schema::OBJECTS)?;
        tracing::debug!(dir = %dir.display(), "store opened");
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                content,
                objects,
                _lock: lock,
            }),
        })
    }

    /// Flushes every pending write to disk (sled flush). Returns once durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHILD_ENV: &str = "WSUS_EDGE_STORE_LOCK_CHILD";

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
