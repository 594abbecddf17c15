//! Maintenance of the content folder for the admin verbs: re-verifying stored objects against
//! their index entry and the update's declared digests (`content verify`), moving bad ones
//! into the quarantine folder, and deleting objects no update needs any more (`cleanup`).
//!
//! Every file operation on the folder outside the cache's own fetch/publish/evict path lives
//! here, so the folder's layout ([`ContentKey::rel_path`]), the hasher ([`super::verify`]) and
//! the index bookkeeping have one owner. Callers keep a running [`super::ContentCache`] in step
//! with `ContentCache::forget` after an object left the folder.

use std::io;
use std::path::{Path, PathBuf};

use super::index::{IndexError, ObjectEntry, ObjectIndex};
use super::key::ContentKey;
use super::verify;

/// Where an object lives in the content folder (`<dir>/XX/<SHA1HEX>.<ext>`), `None` when the
/// extension is not one the cache would ever store.
pub fn object_path(content_dir: &Path, sha1: &[u8; 20], ext: &str) -> Option<PathBuf> {
    ContentKey::new(*sha1, ext)
        .ok()
        .map(|k| content_dir.join(k.rel_path()))
}

/// The object's name relative to the content folder (`XX/<SHA1HEX>.<ext>`), for reports.
pub fn object_name(sha1: &[u8; 20], ext: &str) -> String {
    match ContentKey::new(*sha1, ext) {
        Ok(k) => k.rel_path().to_string_lossy().into_owned(),
        Err(_) => format!("{}.{ext}", hex::encode_upper(sha1)),
    }
}

/// What re-verifying one stored object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The bytes match the index entry and the update's declared digests.
    Good,
    /// The bytes do not match; the reason.
    Bad(String),
    /// The indexed object is not on disk.
    Missing,
}

/// Why a maintenance step failed.
#[derive(Debug, thiserror::Error)]
pub enum MaintainError {
    /// A file could not be read, moved or deleted.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The object index refused the change.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The index names an extension the cache never stores.
    #[error("{0}: not a content object name")]
    BadName(String),
}

/// The content folder, its quarantine folder and the object index, for maintenance.
pub struct Maintenance<'a> {
    dir: PathBuf,
    quarantine: PathBuf,
    index: &'a dyn ObjectIndex,
}

impl<'a> Maintenance<'a> {
    /// Maintenance of `content_dir` (bad objects go to `quarantine_dir`) with its `index`.
    pub fn new(content_dir: &Path, quarantine_dir: &Path, index: &'a dyn ObjectIndex) -> Self {
        Self {
            dir: content_dir.to_path_buf(),
            quarantine: quarantine_dir.to_path_buf(),
            index,
        }
    }

    fn path(&self, sha1: &[u8; 20], ext: &str) -> Result<PathBuf, MaintainError> {
        object_path(&self.dir, sha1, ext)
            .ok_or_else(|| MaintainError::BadName(object_name(sha1, ext)))
    }

    /// Re-hashes one indexed object and compares it with its index entry and, when metadata
    /// declares the file, the update's digests. Changes nothing.
    pub fn check(&self, sha1: &[u8; 20], entry: &ObjectEntry) -> Result<Verdict, MaintainError> {
        let path = self.path(sha1, &entry.ext)?;
        let d = match verify::hash_file(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Verdict::Missing),
            Err(source) => return Err(MaintainError::Io { path, source }),
        };
        if d.size != entry.size {
            return Ok(Verdict::Bad(format!(
                "size {}, indexed {}",
                d.size, entry.size
            )));
        }
        if d.sha1 != *sha1 {
            return Ok(Verdict::Bad("SHA-1 differs from its name".into()));
        }
        if d.sha256 != entry.sha256 {
            return Ok(Verdict::Bad("SHA-256 differs from the index".into()));
        }
        if let Ok(Some(f)) = self.index.expected_file(sha1) {
            if f.sha256.is_some_and(|s| s != d.sha256) || f.size != d.size {
                return Ok(Verdict::Bad(
                    "differs from the update's declared digests".into(),
                ));
            }
        }
        Ok(Verdict::Good)
    }

    /// Moves a bad object into the quarantine folder and drops it from the index (an index
    /// failure is logged: the file is gone from the folder either way).
    pub fn quarantine(&self, sha1: &[u8; 20], ext: &str) -> Result<(), MaintainError> {
        let path = self.path(sha1, ext)?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MaintainError::Io { path, source }
        };
        std::fs::create_dir_all(&self.quarantine).map_err(io(&self.quarantine))?;
        let name = path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        std::fs::rename(&path, self.quarantine.join(name)).map_err(io(&path))?;
        if let Err(e) = self.index.remove_object(sha1) {
            tracing::warn!(error = %e, "could not drop a quarantined object from the index");
        }
        Ok(())
    }

    /// Drops an object found missing on disk from the index.
    pub fn forget_missing(&self, sha1: &[u8; 20]) -> Result<(), MaintainError> {
        Ok(self.index.remove_object(sha1)?)
    }

    /// Deletes an object (cleanup): its file, then its index entry. A file already gone is
    /// not an error.
    pub fn remove(&self, sha1: &[u8; 20], ext: &str) -> Result<(), MaintainError> {
        let path = self.path(sha1, ext)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(MaintainError::Io { path, source }),
        }
        Ok(self.index.remove_object(sha1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::index::MemIndex;

    fn entry(data: &[u8], ext: &str) -> ([u8; 20], ObjectEntry) {
        use sha1::Digest;
        let sha1: [u8; 20] = sha1::Sha1::digest(data).into();
        let sha256: [u8; 32] = sha2::Sha256::digest(data).into();
        (
            sha1,
            ObjectEntry {
                ext: ext.into(),
                size: data.len() as u64,
                sha256,
                stored_unix: 0,
                last_access_unix: 0,
            },
        )
    }

    #[test]
    fn check_quarantine_and_remove() {
        let t = tempfile::tempdir().unwrap();
        let (dir, q) = (t.path().join("content"), t.path().join("quarantine"));
        let index = MemIndex::default();
        let m = Maintenance::new(&dir, &q, &index);
        let (good, ge) = entry(b"good bytes", "cab");
        let (bad, be) = entry(b"bad bytes", "msu");
        for (s, e, data) in [(good, &ge, &b"good bytes"[..]), (bad, &be, b"BAD bytes")] {
            let p = object_path(&dir, &s, &e.ext).unwrap();
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data).unwrap();
            index.put_object(&s, e).unwrap();
        }
        assert_eq!(m.check(&good, &ge).unwrap(), Verdict::Good);
        assert_eq!(
            m.check(&bad, &be).unwrap(),
            Verdict::Bad("SHA-1 differs from its name".into())
        );
        m.quarantine(&bad, "msu").unwrap();
        assert!(!object_path(&dir, &bad, "msu").unwrap().exists());
        assert!(q.join(format!("{}.msu", hex::encode_upper(bad))).exists());
        assert_eq!(m.check(&bad, &be).unwrap(), Verdict::Missing);
        assert_eq!(index.objects().unwrap().len(), 1);
        m.remove(&good, "cab").unwrap();
        m.remove(&good, "cab").unwrap();
        assert!(index.objects().unwrap().is_empty());
        assert!(object_path(&dir, &good, "../x").is_none());
    }
}
