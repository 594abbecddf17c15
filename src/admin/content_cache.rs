//! [`ContentOps`] over the real payload cache ([`ContentCache`]): prefetch downloads go
//! through the cache (one fetch per object, verified before kept, bandwidth cap), removals
//! done by the admin keep its size total right.

use super::{ContentOps, EnsureFuture};
use crate::content::key::ContentKey;
use crate::content::ContentCache;
use crate::model::FileRecord;

impl ContentOps for ContentCache {
    fn ensure(&self, file: &FileRecord) -> EnsureFuture {
        let cache = self.clone();
        let key = ContentKey::new(file.sha1, &file.extension());
        Box::pin(async move {
            let key = key.map_err(|e| e.to_string())?;
            ContentCache::ensure(&cache, &key)
                .await
                .map_err(|e| e.to_string())
        })
    }

    fn forget(&self, sha1: &[u8; 20], size: u64) {
        ContentCache::forget(self, sha1, size);
    }
}
