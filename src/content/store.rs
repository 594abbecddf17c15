//! The content folder on disk and the only code that publishes into it: `XX/<SHA1HEX>.<ext>`
//! for complete, verified objects, `.partial/<SHA1HEX>.<ext>.part` for downloads in progress.
//! Publishing takes a [`Verified`] proof (made only by the hasher in [`super::verify`]) and is
//! temp file → fsync → rename → fsync of the folder, so after a crash a name under `XX/` is
//! always complete and verified; start-up removes leftover temp files.
//!
//! An object is its SHA-1: it is stored once, under the name (extension) it was first fetched
//! or imported as. A request under another extension opens that one copy
//! ([`ContentDir::open_final`]), and publishing a name removes any other name of the same
//! SHA-1, so the folder never holds two copies that eviction would see as one.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::key::ContentKey;
use super::verify::Verified;

/// Name of the folder holding downloads in progress.
pub const PARTIAL_DIR: &str = ".partial";

/// The content folder (`<data_dir>/content`).
#[derive(Debug, Clone)]
pub struct ContentDir {
    root: PathBuf,
}

impl ContentDir {
    /// Opens (creating) the folder and its temp folder.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root.join(PARTIAL_DIR))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a complete object lives.
    pub fn final_path(&self, key: &ContentKey) -> PathBuf {
        self.root.join(key.rel_path())
    }

    /// Where an object being downloaded is written.
    pub fn temp_path(&self, key: &ContentKey) -> PathBuf {
        self.root
            .join(PARTIAL_DIR)
            .join(format!("{}.part", key.file_name()))
    }

    /// Opens a complete object for reading, `None` when it is not in the store. The object
    /// is its SHA-1: a copy stored under another extension is the same object.
    pub fn open_final(&self, key: &ContentKey) -> io::Result<Option<File>> {
        if let Some(f) = self.open_exact(key)? {
            return Ok(Some(f));
        }
        for other in self.names_of(key)? {
            match File::open(self.final_path(&other)) {
                Ok(f) => return Ok(Some(f)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Opens the object under exactly the name of `key` (no other extension), `None` when
    /// there is no such file.
    pub fn open_exact(&self, key: &ContentKey) -> io::Result<Option<File>> {
        match File::open(self.final_path(key)) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every name under which the object of `key` (its SHA-1, any extension) is stored.
    pub fn names_of(&self, key: &ContentKey) -> io::Result<Vec<ContentKey>> {
        let folder = key.folder();
        let hex = key.hex();
        let entries = match fs::read_dir(self.root.join(&folder)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for f in entries {
            let name = f?.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name
                .get(..hex.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(&hex))
            {
                continue;
            }
            if let Ok(k) = ContentKey::parse_path(&format!("/Content/{folder}/{name}")) {
                if k.sha1 == key.sha1 {
                    out.push(k);
                }
            }
        }
        Ok(out)
    }

    /// Creates (truncating) the temp file of `key`, readable and writable.
    pub fn create_temp(&self, key: &ContentKey) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.temp_path(key))
    }

    /// Publishes the temp file of `key` (open as `file`) that the hasher verified (`proof`):
    /// fsync it, rename it to its final name, fsync the folder. Refused when the proof is for
    /// another object or the file's length is not the length that was hashed.
    pub fn publish(&self, key: &ContentKey, file: &File, proof: &Verified) -> io::Result<PathBuf> {
        let len = file.metadata()?.len();
        if proof.sha1() != key.sha1 || proof.size() != len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{key}: the file is not the object that was verified"),
            ));
        }
        file.sync_all()?;
        let dest = self.final_path(key);
        let folder = self.root.join(key.folder());
        fs::create_dir_all(&folder)?;
        fs::rename(self.temp_path(key), &dest)?;
        // One copy per SHA-1: another name of the same object (an import racing a miss, or a
        // store written before objects were identified by SHA-1 alone) goes.
        for other in self.names_of(key)? {
            if other.ext != key.ext {
                self.remove(&other)?;
            }
        }
        File::open(&folder)?.sync_all()?;
        Ok(dest)
    }

    /// Deletes the temp file of `key` (a failed or refused download).
    pub fn discard(&self, key: &ContentKey) {
        if let Err(e) = fs::remove_file(self.temp_path(key)) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(key = %key, error = %e, "could not delete temp file");
            }
        }
    }

    /// Deletes a complete object (eviction). Open readers keep their file handle.
    pub fn remove(&self, key: &ContentKey) -> io::Result<()> {
        match fs::remove_file(self.final_path(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Start-up: removes every leftover temp file (a crash mid-download). Returns how many.
    /// They are not resumed: the next request fetches the object again, and nothing partial
    /// was ever reachable under a final name.
    pub fn remove_leftovers(&self) -> io::Result<usize> {
        let mut n = 0;
        for e in fs::read_dir(self.root.join(PARTIAL_DIR))? {
            let e = e?;
            if e.file_type()?.is_file() {
                fs::remove_file(e.path())?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Every complete object on disk with its size (files whose name is not a key are skipped).
    pub fn scan(&self) -> io::Result<Vec<(ContentKey, u64)>> {
        let mut out = Vec::new();
        for d in fs::read_dir(&self.root)? {
            let d = d?;
            let folder = d.file_name();
            let Some(folder) = folder.to_str() else {
                continue;
            };
            if folder.len() != 2 || !d.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(d.path())? {
                let f = f?;
                let name = f.file_name();
                let Some(name) = name.to_str() else { continue };
                if let Ok(key) = ContentKey::parse_path(&format!("/Content/{folder}/{name}")) {
                    out.push((key, f.metadata()?.len()));
                }
            }
        }
        Ok(out)
    }
}

/// Bytes available to this process on the file system holding `path` (statvfs).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    crate::metrics::fs_space(path).map(|(free, _)| free)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn publish_takes_a_matching_proof_and_leftovers_go() {
        use crate::content::verify::{hash_reader, Expected};
        let t = tempfile::tempdir().unwrap();
        let d = ContentDir::open(t.path()).unwrap();
        let digests = hash_reader(&b"hello"[..]).unwrap();
        let proof = Expected {
            sha1: digests.sha1,
            sha256: None,
            size: None,
        }
        .check(&digests)
        .unwrap();
        let key = ContentKey::new(digests.sha1, "cab").unwrap();
        assert!(d.open_final(&key).unwrap().is_none());
        let mut f = d.create_temp(&key).unwrap();
        f.write_all(b"hell").unwrap();
        // Not the bytes that were hashed (one short), and a proof for another object: refused.
        let short = d.publish(&key, &f, &proof).unwrap_err();
        assert_eq!(short.kind(), io::ErrorKind::InvalidInput);
        f.write_all(b"o").unwrap();
        let other = ContentKey::new([0xab; 20], "cab").unwrap();
        d.create_temp(&other).unwrap();
        assert!(d.publish(&other, &f, &proof).is_err());
        assert!(d.open_final(&other).unwrap().is_none());
        d.discard(&other);
        let p = d.publish(&key, &f, &proof).unwrap();
        let hexname = hex::encode_upper(digests.sha1);
        assert_eq!(
            p,
            t.path().join(&hexname[38..]).join(format!("{hexname}.cab"))
        );
        assert!(d.open_final(&key).unwrap().is_some());
        assert!(!d.temp_path(&key).exists());
        assert_eq!(d.scan().unwrap(), vec![(key.clone(), 5)]);

        let other = ContentKey::new([0x01; 20], "exe").unwrap();
        d.create_temp(&other).unwrap();
        assert_eq!(d.remove_leftovers().unwrap(), 1);
        assert!(!d.temp_path(&other).exists());
        d.remove(&key).unwrap();
        d.remove(&key).unwrap();
        assert!(d.scan().unwrap().is_empty());
    }
}
