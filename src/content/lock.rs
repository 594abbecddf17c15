//! The per-object download lock (coalescing): the first request for an object that is not in
//! the store becomes its one writer, every later one a reader of the same [`Inflight`], as
//! pingora-cache's cache lock hands out roles. [`Locks::acquire`] answers with a [`Role`]:
//!
//! - [`Role::Hit`]: the object is complete in the store (checked before and again under the
//!   lock, so a download that just finished is not started twice);
//! - [`Role::Writer`]: this caller starts the download and holds its [`WritePermit`];
//! - [`Role::Reader`]: a download is running; read its bytes as they arrive.
//!
//! A permit ends with [`WritePermit::finish`]. A permit dropped without a verdict (a panic,
//! the runtime shutting down) fails the download: its readers get an error instead of waiting
//! forever, the temp file goes and the next request starts a new download.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex, MutexGuard};

use super::inflight::{FetchError, Inflight, State};
use super::key::ContentKey;
use super::store::ContentDir;
use super::verify::Expected;

/// What [`Locks::acquire`] hands a caller.
pub enum Role {
    /// The object is complete in the store.
    Hit(File),
    /// This caller fetches the object; everyone else reads through the same [`Inflight`].
    Writer(WritePermit),
    /// A download of the object is running.
    Reader(Arc<Inflight>),
}

/// The downloads in progress, by SHA-1, and the folder their temp files live in.
#[derive(Debug)]
pub struct Locks {
    dir: ContentDir,
    map: Mutex<HashMap<[u8; 20], Arc<Inflight>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Locks {
    /// No downloads yet; temp files go to `dir`.
    pub fn new(dir: ContentDir) -> Arc<Self> {
        Arc::new(Self {
            dir,
            map: Mutex::new(HashMap::new()),
        })
    }

    /// The role of a caller asking for `key`. When a download must start, `start` says what
    /// the object must hash to (or refuses, e.g. without an upstream); it runs under the lock,
    /// only for the caller that becomes the writer.
    pub fn acquire(
        self: &Arc<Self>,
        key: &ContentKey,
        start: impl FnOnce() -> Result<Expected, FetchError>,
        prepare: impl FnOnce(&Arc<Inflight>, &Expected),
    ) -> Result<Role, FetchError> {
        if let Some(f) = self.dir.open_exact(key)? {
            return Ok(Role::Hit(f));
        }
        let mut map = lock(&self.map);
        if let Some(inf) = map.get(&key.sha1) {
            return Ok(Role::Reader(inf.clone()));
        }
        // A download may have finished between the first look and taking the lock; or the
        // object is stored under another extension (it is its SHA-1).
        if let Some(f) = self.dir.open_final(key)? {
            return Ok(Role::Hit(f));
        }
        let expected = start()?;
        let file = self.dir.create_temp(key)?;
        let inf = Arc::new(Inflight::new(key.clone(), file, expected.size));
        // Before anyone can join: a reader must find the download as it will run (filled by
        // slices or sequentially), never switch mode after it looked.
        prepare(&inf, &expected);
        map.insert(key.sha1, inf.clone());
        Ok(Role::Writer(WritePermit {
            inf,
            expected,
            locks: self.clone(),
            done: false,
        }))
    }

    /// Runs `f` with the set of objects being downloaded held still (eviction's pins).
    pub fn with_downloading<R>(&self, f: impl FnOnce(&dyn Fn(&[u8; 20]) -> bool) -> R) -> R {
        let map = lock(&self.map);
        f(&|s| map.contains_key(s))
    }

    /// Ends `inf`'s download with `outcome` under the lock: `Done`, or `Failed` with its temp
    /// file deleted; the object is no longer downloading (if `inf` still is its download).
    fn settle(&self, inf: &Arc<Inflight>, outcome: Result<(), FetchError>) {
        let mut map = lock(&self.map);
        match outcome {
            Ok(()) => inf.finish(State::Done),
            Err(e) => {
                self.dir.discard(&inf.key);
                inf.finish(State::Failed(e));
            }
        }
        if map.get(&inf.key.sha1).is_some_and(|i| Arc::ptr_eq(i, inf)) {
            map.remove(&inf.key.sha1);
        }
    }
}

/// The writer's role: the one caller that fetches an object. Dropped without
/// [`Self::finish`], it fails the download.
pub struct WritePermit {
    inf: Arc<Inflight>,
    expected: Expected,
    locks: Arc<Locks>,
    done: bool,
}

impl WritePermit {
    /// The download, shared with its readers.
    pub fn inflight(&self) -> &Arc<Inflight> {
        &self.inf
    }

    /// What the object must hash to.
    pub fn expected(&self) -> Expected {
        self.expected
    }

    /// Gives the download its verdict: `Ok` once the object is published (`Done`), or the
    /// error (readers fail, the temp file goes). Releases the lock either way.
    pub fn finish(mut self, outcome: Result<(), FetchError>) {
        self.done = true;
        if let Err(e) = &outcome {
            tracing::warn!(key = %self.inf.key, error = %e, "content fetch failed");
        }
        self.locks.settle(&self.inf, outcome);
    }
}

impl Drop for WritePermit {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if std::thread::panicking() {
            tracing::error!(key = %self.inf.key, "content download ended without a verdict (a panic); discarded");
        } else {
            // Its task was dropped: the server is stopping (a normal stop mid-fill), or the
            // task was cancelled. The temp file goes; the next request starts again.
            tracing::warn!(key = %self.inf.key, "content download stopped before its end (server stopping?); discarded");
        }
        self.locks.settle(&self.inf, Err(FetchError::Abandoned));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> Result<Expected, FetchError> {
        Ok(Expected {
            sha1: [7; 20],
            sha256: None,
            size: Some(3),
        })
    }

    #[test]
    fn one_writer_then_readers_and_a_dropped_writer_fails_them() {
        let t = tempfile::tempdir().unwrap();
        let locks = Locks::new(ContentDir::open(t.path()).unwrap());
        let key = ContentKey::new([7; 20], "cab").unwrap();
        let Ok(Role::Writer(w)) = locks.acquire(&key, expected, |_, _| {}) else {
            panic!("first caller must write")
        };
        let Ok(Role::Reader(r)) =
            locks.acquire(&key, || panic!("a reader starts nothing"), |_, _| {})
        else {
            panic!("second caller must read")
        };
        assert!(Arc::ptr_eq(&r, w.inflight()));
        assert!(locks.with_downloading(|busy| busy(&key.sha1)));
        drop(w);
        assert_eq!(
            r.progress.borrow().state,
            State::Failed(FetchError::Abandoned)
        );
        assert!(!locks.with_downloading(|busy| busy(&key.sha1)));
        // The next caller writes again; a refused start leaves nothing behind.
        let Ok(Role::Writer(w)) = locks.acquire(&key, expected, |_, _| {}) else {
            panic!("a new download after the failed one")
        };
        w.finish(Ok(()));
        let other = ContentKey::new([8; 20], "cab").unwrap();
        assert_eq!(
            locks
                .acquire(&other, || Err(FetchError::NoUpstream), |_, _| {})
                .err(),
            Some(FetchError::NoUpstream)
        );
        assert!(!locks.with_downloading(|busy| busy(&other.sha1)));
    }
}
