//! The content cache as the runner's [`Prefetcher`]: prefetch is `ContentCache::ensure`, so
//! it verifies against the metadata's SHA-256 and size and honours `upstream.max_bandwidth`
//! exactly like a client-triggered download.

use std::future::Future;
use std::pin::Pin;

use super::Prefetcher;
use crate::content::{ContentCache, EnsureError};
use crate::model::FileRecord;

impl Prefetcher for ContentCache {
    fn ensure(
        &self,
        file: FileRecord,
    ) -> Pin<Box<dyn Future<Output = Result<(), EnsureError>> + Send>> {
        let cache = self.clone();
        Box::pin(async move { cache.ensure_file(&file).await })
    }
}
