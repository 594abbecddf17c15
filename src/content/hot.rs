//! Hot objects: for complete objects that were hit recently, the open file handle, its size
//! and validators and the headers of a plain `200` answer (decided once by
//! [`serve::respond`]), so a repeated hit costs one `fstat` instead of open + fstat + dup + two
//! closes and no header building.
//!
//! Entries are dropped when the cache evicts or forgets the object, and a hit re-checks the
//! handle with `fstat`: a file unlinked behind the cache's back (link count 0) or changed in
//! size or modification time is reopened from its path. The set is bounded
//! ([`MAX_HOT`] handles), so it never holds many descriptors or deleted files' space.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use super::key::ContentKey;
use super::range::Plan;
use super::serve;

/// Most objects kept open at once.
pub const MAX_HOT: usize = 256;

/// One open, complete object and its precomputed answer headers.
#[derive(Debug)]
pub struct HotObject {
    /// Extension the object is stored under (a request for another one is not this object).
    pub ext: String,
    /// The object, opened read-only (used with positional I/O only).
    pub file: File,
    /// Size in bytes.
    pub size: u64,
    /// Modification time (the `Last-Modified` validator).
    pub modified: Option<SystemTime>,
    /// Strong ETag, quoted.
    pub etag: String,
    /// Headers of a full `200` answer, as [`serve::respond`] makes them for hyper.
    pub headers: http::HeaderMap,
    ino: u64,
    mtime_ns: (i64, i64),
}

impl HotObject {
    /// Builds the entry for `file`, the complete object of `key`.
    pub fn new(key: &ContentKey, file: File) -> io::Result<Self> {
        let md = file.metadata()?;
        let modified = md.modified().ok();
        let etag = serve::etag(key);
        let m = serve::Meta {
            key,
            size: md.len(),
            last_modified: modified,
        };
        let (parts, _) =
            serve::respond(Plan::Full, true, &m, |_, _| serve::Source::Empty).into_parts();
        Ok(Self {
            ext: key.ext.clone(),
            size: md.len(),
            modified,
            etag,
            headers: parts.headers,
            ino: md.ino(),
            mtime_ns: (md.mtime(), md.mtime_nsec()),
            file,
        })
    }

    /// Whether the handle still is the object's file as it was opened: linked, same inode,
    /// size and modification time.
    fn still_valid(&self) -> bool {
        match self.file.metadata() {
            Ok(md) => {
                md.nlink() > 0
                    && md.ino() == self.ino
                    && md.len() == self.size
                    && (md.mtime(), md.mtime_nsec()) == self.mtime_ns
            }
            Err(_) => false,
        }
    }
}

/// The bounded set of hot objects, keyed by SHA-1.
#[derive(Debug, Default)]
pub struct HotSet {
    map: Mutex<HashMap<[u8; 20], Arc<HotObject>>>,
}

impl HotSet {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 20], Arc<HotObject>>> {
        match self.map.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The hot entry of `key` if it is still valid; otherwise opens the object with `open`
    /// (`Ok(None)`: not in the store) and remembers it.
    pub fn get_or_open(
        &self,
        key: &ContentKey,
        open: impl FnOnce() -> io::Result<Option<File>>,
    ) -> io::Result<Option<Arc<HotObject>>> {
        if let Some(h) = self.get(key) {
            return Ok(Some(h));
        }
        let Some(file) = open()? else {
            return Ok(None);
        };
        self.insert(key, file).map(Some)
    }

    /// The hot entry of `key` if there is one and it is still valid (a stale one is dropped).
    pub fn get(&self, key: &ContentKey) -> Option<Arc<HotObject>> {
        let h = self.lock().get(&key.sha1).cloned()?;
        if h.ext == key.ext && h.still_valid() {
            return Some(h);
        }
        self.remove(&key.sha1);
        None
    }

    /// Remembers `file`, the complete object of `key`, just opened from the store.
    pub fn insert(&self, key: &ContentKey, file: File) -> io::Result<Arc<HotObject>> {
        let h = Arc::new(HotObject::new(key, file)?);
        let mut m = self.lock();
        if m.len() >= MAX_HOT && !m.contains_key(&key.sha1) {
            if let Some(k) = m.keys().next().copied() {
                m.remove(&k);
            }
        }
        m.insert(key.sha1, h.clone());
        Ok(h)
    }

    /// Drops the entry of `sha1` (evicted, forgotten or found stale).
    pub fn remove(&self, sha1: &[u8; 20]) {
        self.lock().remove(sha1);
    }

    /// Number of open entries.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no object is held open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reopens_when_unlinked_or_changed_and_stays_bounded() {
        let t = tempfile::tempdir().unwrap();
        let key = ContentKey::new([0x42; 20], "cab").unwrap();
        let p = t.path().join("obj");
        std::fs::write(&p, b"hello").unwrap();
        let set = HotSet::default();
        let open = || -> io::Result<Option<File>> {
            match File::open(&p) {
                Ok(f) => Ok(Some(f)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        };
        let a = set.get_or_open(&key, open).unwrap().unwrap();
        assert_eq!(a.size, 5);
        assert_eq!(a.headers["accept-ranges"], "bytes");
        assert_eq!(a.headers["etag"], a.etag.as_str());
        assert_eq!(
            a.headers["content-type"],
            crate::content::mime::content_type("cab")
        );
        assert_eq!(a.headers["content-length"], "5");
        // A second hit reuses the handle.
        let b = set
            .get_or_open(&key, || panic!("must not reopen"))
            .unwrap()
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // Another extension is another object.
        let other_ext = ContentKey::new([0x42; 20], "exe").unwrap();
        assert!(set.get_or_open(&other_ext, || Ok(None)).unwrap().is_none());
        // Unlinked behind the cache's back: not served from the stale handle.
        let a = set.get_or_open(&key, open).unwrap().unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(set.get_or_open(&key, open).unwrap().is_none());
        // Rewritten with another size: reopened.
        drop(a);
        std::fs::write(&p, b"hello").unwrap();
        set.get_or_open(&key, open).unwrap().unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"!")
            .unwrap();
        assert_eq!(set.get_or_open(&key, open).unwrap().unwrap().size, 6);
        // Bounded.
        for i in 0..(MAX_HOT + 10) {
            let mut s = [0u8; 20];
            s[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let k = ContentKey::new(s, "cab").unwrap();
            set.get_or_open(&k, || Ok(Some(File::open(&p)?))).unwrap();
        }
        assert!(set.len() <= MAX_HOT);
        set.remove(&key.sha1);
    }
}
