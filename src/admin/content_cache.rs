//! [`ContentOps`] over the real payload cache ([`ContentCache`]): prefetch downloads go
//! through the cache (one fetch per object, verified before kept, bandwidth cap), removals
//! done by the admin keep its size total right.

use super::{ContentOps, EnsureFuture};
use crate::content::ContentCache;
use crate::model::FileRecord;

impl ContentOps for ContentCache {
    fn ensure(&self, file: &FileRecord) -> EnsureFuture {
        let (cache, file) = (self.clone(), file.clone());
        Box::pin(async move { cache.ensure_file(&file).await })
    }

    fn forget(&self, sha1: &[u8; 20], size: u64) {
        ContentCache::forget(self, sha1, size);
    }
}
