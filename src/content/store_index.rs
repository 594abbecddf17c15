//! [`ObjectIndex`] over the metadata store ([`crate::store::Store`]): the content index and
//! the object index live in sled, owned by the store module.

use super::index::{IndexError, ObjectEntry, ObjectIndex, UpstreamFiles};
use crate::model::FileRecord;
use crate::store::{ObjectMeta, Store, StoreError};

fn e(err: StoreError) -> IndexError {
    IndexError(err.to_string())
}

impl From<&ObjectEntry> for ObjectMeta {
    fn from(o: &ObjectEntry) -> Self {
        ObjectMeta {
            ext: o.ext.clone(),
            size: o.size,
            sha256: o.sha256,
            stored_unix: o.stored_unix,
            last_access_unix: o.last_access_unix,
        }
    }
}

impl From<ObjectMeta> for ObjectEntry {
    fn from(o: ObjectMeta) -> Self {
        ObjectEntry {
            ext: o.ext,
            size: o.size,
            sha256: o.sha256,
            stored_unix: o.stored_unix,
            last_access_unix: o.last_access_unix,
        }
    }
}

impl ObjectIndex for Store {
    fn upstream_files(&self) -> Result<UpstreamFiles, IndexError> {
        Ok(Store::sync_state(self)
            .map_err(e)?
            .upstream_flags
            .map_or_else(UpstreamFiles::default, |f| UpstreamFiles {
                catalog_only: f.catalog_only_sync,
                hosts_express: f.server_hosts_psf_files,
            }))
    }
    fn expected_file(&self, sha1: &[u8; 20]) -> Result<Option<FileRecord>, IndexError> {
        Store::expected_file(self, sha1).map_err(e)
    }
    fn put_object(&self, sha1: &[u8; 20], o: &ObjectEntry) -> Result<(), IndexError> {
        Store::put_object(self, sha1, &ObjectMeta::from(o)).map_err(e)
    }
    fn touch_object(&self, sha1: &[u8; 20], unix: i64) -> Result<(), IndexError> {
        Store::touch_object(self, sha1, unix).map_err(e)
    }
    fn remove_object(&self, sha1: &[u8; 20]) -> Result<(), IndexError> {
        Store::remove_object(self, sha1).map_err(e)
    }
    fn objects(&self) -> Result<Vec<([u8; 20], ObjectEntry)>, IndexError> {
        Ok(Store::objects(self)
            .map_err(e)?
            .into_iter()
            .map(|(k, v)| (k, v.into()))
            .collect())
    }
}
