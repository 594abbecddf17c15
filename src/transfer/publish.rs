//! Where imported payloads go: the content cache's folder, through the content store's own
//! publish path ([`ContentDir::commit`]: temp name, fsync, rename, fsync of the folder), and
//! its object index in the metadata store, so an imported payload is a plain cache hit.

use std::fs::{self, File};
use std::path::Path;

use super::manifest::FileEntry;
use super::TransferError;
use crate::store::Store;
use shim::{ContentDir, ContentKey};

/// The content folder an import publishes into.
pub(super) struct ContentTarget {
    dir: ContentDir,
}

impl ContentTarget {
    /// Opens (creating) the content folder.
    pub fn open(root: &Path) -> Result<Self, TransferError> {
        Ok(Self {
            dir: ContentDir::open(root).map_err(TransferError::io(root))?,
        })
    }

    /// The cache key of a `content/XX/<SHA1>.<ext>` entry (its name must carry its SHA-1).
    fn key(e: &FileEntry) -> Result<ContentKey, TransferError> {
        let rest = e.path.strip_prefix("content/").unwrap_or(&e.path);
        let key = ContentKey::parse_path(&format!("/Content/{rest}")).map_err(|x| {
            TransferError::Manifest(format!("{}: not a content path ({x})", e.path))
        })?;
        if hex::encode(key.sha1) != e.sha1 {
            return Err(TransferError::Manifest(format!(
                "{}: SHA-1 in the name differs from the listed one",
                e.path
            )));
        }
        Ok(key)
    }

    /// Whether the cache already holds this payload (same size and SHA-256 in its index).
    pub fn holds(&self, store: &Store, e: &FileEntry) -> Result<bool, TransferError> {
        let key = Self::key(e)?;
        let on_disk = fs::metadata(self.dir.final_path(&key)).is_ok_and(|m| m.len() == e.size);
        if !on_disk {
            return Ok(false);
        }
        Ok(store
            .get_object(&key.sha1)?
            .is_some_and(|o| o.size == e.size && hex::encode(o.sha256) == e.sha256))
    }

    /// Publishes a verified staged file (hard-linked, or copied across file systems, to the
    /// content store's temp name, then committed). Returns its SHA-1 and extension.
    pub fn publish(
        &self,
        e: &FileEntry,
        staged: &Path,
    ) -> Result<([u8; 20], String), TransferError> {
        let key = Self::key(e)?;
        let temp = self.dir.temp_path(&key);
        let _ = fs::remove_file(&temp);
        if fs::hard_link(staged, &temp).is_err() {
            fs::copy(staged, &temp).map_err(TransferError::io(&temp))?;
        }
        let file = File::open(&temp).map_err(TransferError::io(&temp))?;
        self.dir
            .commit(&key, &file)
            .map_err(TransferError::io(self.dir.final_path(&key)))?;
        Ok((key.sha1, key.ext.clone()))
    }

    /// Removes a payload this import published (rollback of a failed commit).
    pub fn unpublish(&self, store: &Store, e: &FileEntry) -> Result<(), TransferError> {
        let key = Self::key(e)?;
        self.dir
            .remove(&key)
            .map_err(TransferError::io(self.dir.final_path(&key)))?;
        store.remove_object(&key.sha1)?;
        Ok(())
    }
}

/// TEMPORARY until the `content` branch lands in main: the same API as
/// `crate::content::{key::ContentKey, store::ContentDir}`, to be deleted at that merge.
mod shim {
    use std::fs::{self, File};
    use std::io;
    use std::path::{Path, PathBuf};

    #[derive(Debug, Clone)]
    pub struct ContentKey {
        pub sha1: [u8; 20],
        pub ext: String,
    }
    impl ContentKey {
        pub fn parse_path(p: &str) -> Result<Self, String> {
            let rest = p.strip_prefix("/Content/").ok_or("not content")?;
            let (folder, name) = rest.split_once('/').ok_or("no folder")?;
            let (h, ext) = name.split_once('.').unwrap_or((name, ""));
            let mut sha1 = [0u8; 20];
            hex::decode_to_slice(h, &mut sha1).map_err(|e| e.to_string())?;
            if folder.len() != 2 || !folder.eq_ignore_ascii_case(&h[38..]) {
                return Err("wrong folder".into());
            }
            Ok(Self {
                sha1,
                ext: ext.to_ascii_lowercase(),
            })
        }
        fn rel(&self) -> PathBuf {
            let h = hex::encode_upper(self.sha1);
            let n = if self.ext.is_empty() {
                h.clone()
            } else {
                format!("{h}.{}", self.ext)
            };
            PathBuf::from(&h[38..]).join(n)
        }
    }
    #[derive(Debug, Clone)]
    pub struct ContentDir {
        root: PathBuf,
    }
    impl ContentDir {
        pub fn open(root: &Path) -> io::Result<Self> {
            fs::create_dir_all(root.join(".partial"))?;
            Ok(Self {
                root: root.to_path_buf(),
            })
        }
        pub fn final_path(&self, k: &ContentKey) -> PathBuf {
            self.root.join(k.rel())
        }
        pub fn temp_path(&self, k: &ContentKey) -> PathBuf {
            let n = k.rel();
            let n = n
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            self.root.join(".partial").join(format!("{n}.part"))
        }
        pub fn commit(&self, k: &ContentKey, f: &File) -> io::Result<PathBuf> {
            f.sync_all()?;
            let dest = self.final_path(k);
            let folder = dest.parent().map(Path::to_path_buf).unwrap_or_default();
            fs::create_dir_all(&folder)?;
            fs::rename(self.temp_path(k), &dest)?;
            File::open(&folder)?.sync_all()?;
            Ok(dest)
        }
        pub fn remove(&self, k: &ContentKey) -> io::Result<()> {
            match fs::remove_file(self.final_path(k)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
    }
}
