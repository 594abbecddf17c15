//! The content index (payloads that metadata declares, keyed by SHA-1) and the object index
//! (payloads the content cache holds, with their last access for LRU eviction).

use serde::{Deserialize, Serialize};

use super::schema::{self, dec, enc, Tree};
use super::{Store, StoreError};
use crate::model::FileRecord;

/// What the content cache holds for one SHA-1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Lower-case extension without dot (`""` if none).
    pub ext: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the stored bytes.
    pub sha256: [u8; 32],
    /// When the object was stored (unix seconds).
    pub stored_unix: i64,
    /// Last time it was served (unix seconds).
    pub last_access_unix: i64,
}

impl Store {
    /// Records the expected size/digests of files (keyed by SHA-1). Overwrites. The whole slice
    /// is applied atomically.
    pub fn put_expected_files(&self, files: &[FileRecord]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for f in files {
            batch.insert(&f.sha1[..], enc(f)?);
        }
        self.tree(Tree::Content)?.apply_batch(batch)?;
        Ok(())
    }

    /// The declared file with this SHA-1, if any metadata declares one.
    pub fn expected_file(&self, sha1: &[u8; 20]) -> Result<Option<FileRecord>, StoreError> {
        match self.tree(Tree::Content)?.get(sha1)? {
            Some(v) => Ok(Some(dec("content", &v)?)),
            None => Ok(None),
        }
    }

    /// Every declared file (for prefetch planning, cleanup and stats), in SHA-1 order.
    pub fn expected_files(&self) -> Result<Vec<FileRecord>, StoreError> {
        self.tree(Tree::Content)?
            .iter()
            .values()
            .map(|v| dec("content", &v?))
            .collect()
    }

    /// Forgets declared files (cleanup, after their revisions are gone), atomically.
    pub fn remove_expected_files(&self, sha1s: &[[u8; 20]]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for s in sha1s {
            batch.remove(&s[..]);
        }
        self.tree(Tree::Content)?.apply_batch(batch)?;
        Ok(())
    }

    /// Records (overwrites) what the cache holds for `sha1`.
    pub fn put_object(&self, sha1: &[u8; 20], meta: &ObjectMeta) -> Result<(), StoreError> {
        let v = enc(meta)?;
        let r = self.live()?.objects.insert(sha1, v);
        self.noted(r.map(|_| ()).map_err(StoreError::from))
    }

    /// What the cache holds for `sha1`, if anything.
    pub fn get_object(&self, sha1: &[u8; 20]) -> Result<Option<ObjectMeta>, StoreError> {
        match self.live()?.objects.get(sha1)? {
            Some(v) => Ok(Some(dec(schema::OBJECTS, &v)?)),
            None => Ok(None),
        }
    }

    /// Updates `last_access_unix` (cheap; may be called on every hit). A no-op for an unknown
    /// object; never moves the access time backwards.
    pub fn touch_object(&self, sha1: &[u8; 20], last_access_unix: i64) -> Result<(), StoreError> {
        let db = self.live()?;
        let tree = &db.objects;
        loop {
            let Some(old) = tree.get(sha1)? else {
                return Ok(());
            };
            let mut meta: ObjectMeta = dec(schema::OBJECTS, &old)?;
            if meta.last_access_unix >= last_access_unix {
                return Ok(());
            }
            meta.last_access_unix = last_access_unix;
            let new = enc(&meta)?;
            // Compare-and-swap so a concurrent put/remove is never overwritten by a stale touch.
            match tree.compare_and_swap(sha1, Some(old), Some(new))? {
                Ok(()) => return Ok(()),
                Err(_) => continue,
            }
        }
    }

    /// Forgets the object (no-op when unknown).
    pub fn remove_object(&self, sha1: &[u8; 20]) -> Result<(), StoreError> {
        let r = self.live()?.objects.remove(sha1);
        self.noted(r.map(|_| ()).map_err(StoreError::from))
    }

    /// All objects (for eviction planning / startup reconcile / stats), in SHA-1 order.
    pub fn objects(&self) -> Result<Vec<([u8; 20], ObjectMeta)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.live()?.objects.iter() {
            let (k, v) = kv?;
            out.push((
                schema::sha1_key(schema::OBJECTS, &k)?,
                dec(schema::OBJECTS, &v)?,
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: u8) -> FileRecord {
        FileRecord {
            name: format!("f{n}.cab"),
            size: 100 + n as u64,
            sha1: [n; 20],
            sha256: Some([n; 32]),
            upstream_url: Some(format!("http://up/{n}")),
            patching_type: None,
        }
    }

    fn meta(ext: &str, t: i64) -> ObjectMeta {
        ObjectMeta {
            ext: ext.into(),
            size: 42,
            sha256: [7; 32],
            stored_unix: t,
            last_access_unix: t,
        }
    }

    #[test]
    fn content_index_round_trips_and_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.expected_file(&[1; 20]).unwrap(), None);
        s.put_expected_files(&[file(1), file(2)]).unwrap();
        assert_eq!(s.expected_file(&[1; 20]).unwrap(), Some(file(1)));
        assert_eq!(s.expected_file(&[2; 20]).unwrap(), Some(file(2)));
        let mut changed = file(1);
        changed.size = 9;
        s.put_expected_files(&[changed.clone()]).unwrap();
        assert_eq!(s.expected_file(&[1; 20]).unwrap(), Some(changed.clone()));
        assert_eq!(s.expected_file(&[3; 20]).unwrap(), None);
        assert_eq!(s.expected_files().unwrap(), vec![changed, file(2)]);
        s.remove_expected_files(&[[2; 20], [9; 20]]).unwrap();
        assert_eq!(s.expected_file(&[2; 20]).unwrap(), None);
        assert_eq!(s.expected_files().unwrap().len(), 1);
    }

    #[test]
    fn object_index_put_get_touch_remove_list() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.put_object(&[2; 20], &meta("cab", 10)).unwrap();
        s.put_object(&[1; 20], &meta("", 20)).unwrap();
        assert_eq!(s.get_object(&[2; 20]).unwrap(), Some(meta("cab", 10)));

        s.touch_object(&[2; 20], 50).unwrap();
        let m = s.get_object(&[2; 20]).unwrap().unwrap();
        assert_eq!((m.stored_unix, m.last_access_unix), (10, 50));
        // Never backwards.
        s.touch_object(&[2; 20], 30).unwrap();
        assert_eq!(
            s.get_object(&[2; 20]).unwrap().unwrap().last_access_unix,
            50
        );
        // Touching an unknown object does not create it.
        s.touch_object(&[9; 20], 30).unwrap();
        assert_eq!(s.get_object(&[9; 20]).unwrap(), None);

        let all = s.objects().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].0, [1; 20]);
        assert_eq!(all[1].0, [2; 20]);

        s.remove_object(&[1; 20]).unwrap();
        assert_eq!(s.get_object(&[1; 20]).unwrap(), None);
        assert_eq!(s.objects().unwrap().len(), 1);
    }

    #[test]
    fn indexes_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.put_expected_files(&[file(3)]).unwrap();
            s.put_object(&[3; 20], &meta("msu", 5)).unwrap();
            s.flush().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.expected_file(&[3; 20]).unwrap(), Some(file(3)));
        assert_eq!(s.get_object(&[3; 20]).unwrap(), Some(meta("msu", 5)));
    }
}
