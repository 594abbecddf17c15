//! Where imported payloads go: the content cache's folder, through the content store's own
//! publish path ([`ContentDir::publish`], which takes the hasher's [`Verified`] proof: temp
//! name, fsync, rename, fsync of the folder), and its object index in the metadata store, so
//! an imported payload is a plain cache hit.

use std::fs::{self, File};
use std::path::Path;

use super::manifest::FileEntry;
use super::TransferError;
use crate::content::key::ContentKey;
use crate::content::store::ContentDir;
use crate::content::verify::Verified;
use crate::store::Store;

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

    /// Whether a file already has this payload's final name (indexed or not).
    pub fn on_disk(&self, e: &FileEntry) -> Result<bool, TransferError> {
        Ok(self.dir.final_path(&Self::key(e)?).exists())
    }

    /// Publishes a staged file that the hasher verified (`proof`): hard-linked, or copied
    /// across file systems, to the content store's temp name, then published. Returns its
    /// SHA-1 and extension.
    pub fn publish(
        &self,
        e: &FileEntry,
        staged: &Path,
        proof: &Verified,
    ) -> Result<([u8; 20], String), TransferError> {
        let key = Self::key(e)?;
        let temp = self.dir.temp_path(&key);
        let _ = fs::remove_file(&temp);
        if fs::hard_link(staged, &temp).is_err() {
            fs::copy(staged, &temp).map_err(TransferError::io(&temp))?;
        }
        let file = File::open(&temp).map_err(TransferError::io(&temp))?;
        self.dir
            .publish(&key, &file, proof)
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
