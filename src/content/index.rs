//! The cache's view of the metadata store: what payloads metadata declares (the content index)
//! and what the cache holds (the object index, for LRU eviction across restarts). The real
//! implementation is [`crate::store::Store`]; [`MemIndex`] is an in-memory one for unit tests.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::model::FileRecord;

/// An index error (the store's error, as text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("index: {0}")]
pub struct IndexError(pub String);

/// One object held by the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEntry {
    /// Lower-case extension without the dot.
    pub ext: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 computed while storing it.
    pub sha256: [u8; 32],
    /// When it was stored (unix seconds).
    pub stored_unix: i64,
    /// Last served (unix seconds).
    pub last_access_unix: i64,
}

/// Which files the upstream holds, as its GetConfigData said at the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamFiles {
    /// `CatalogOnlySync`: it holds no files; content comes from the files' `MUUrl`.
    pub catalog_only: bool,
    /// `ServerHostsPsfFiles`: it holds express files.
    pub hosts_express: bool,
}

impl Default for UpstreamFiles {
    /// Before any sync has said otherwise: every file, express ones included.
    fn default() -> Self {
        Self {
            catalog_only: false,
            hosts_express: true,
        }
    }
}

/// What the content cache needs from the metadata store.
pub trait ObjectIndex: Send + Sync + 'static {
    /// Which files the upstream holds.
    fn upstream_files(&self) -> Result<UpstreamFiles, IndexError> {
        Ok(UpstreamFiles::default())
    }
    /// The file metadata declares with this SHA-1, if any.
    fn expected_file(&self, sha1: &[u8; 20]) -> Result<Option<FileRecord>, IndexError>;
    /// Records an object the cache now holds.
    fn put_object(&self, sha1: &[u8; 20], e: &ObjectEntry) -> Result<(), IndexError>;
    /// Updates an object's last access.
    fn touch_object(&self, sha1: &[u8; 20], unix: i64) -> Result<(), IndexError>;
    /// Forgets an object.
    fn remove_object(&self, sha1: &[u8; 20]) -> Result<(), IndexError>;
    /// Every object.
    fn objects(&self) -> Result<Vec<([u8; 20], ObjectEntry)>, IndexError>;
}

/// An in-memory index (unit tests; also a cache without persistence).
#[derive(Debug, Default)]
pub struct MemIndex {
    files: Mutex<HashMap<[u8; 20], FileRecord>>,
    objects: Mutex<HashMap<[u8; 20], ObjectEntry>>,
}

impl MemIndex {
    /// Declares files as metadata would.
    pub fn declare(&self, files: &[FileRecord]) {
        let mut g = lock(&self.files);
        for f in files {
            g.insert(f.sha1, f.clone());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl ObjectIndex for MemIndex {
    fn expected_file(&self, sha1: &[u8; 20]) -> Result<Option<FileRecord>, IndexError> {
        Ok(lock(&self.files).get(sha1).cloned())
    }
    fn put_object(&self, sha1: &[u8; 20], e: &ObjectEntry) -> Result<(), IndexError> {
        lock(&self.objects).insert(*sha1, e.clone());
        Ok(())
    }
    fn touch_object(&self, sha1: &[u8; 20], unix: i64) -> Result<(), IndexError> {
        if let Some(e) = lock(&self.objects).get_mut(sha1) {
            e.last_access_unix = unix;
        }
        Ok(())
    }
    fn remove_object(&self, sha1: &[u8; 20]) -> Result<(), IndexError> {
        lock(&self.objects).remove(sha1);
        Ok(())
    }
    fn objects(&self) -> Result<Vec<([u8; 20], ObjectEntry)>, IndexError> {
        Ok(lock(&self.objects)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect())
    }
}
