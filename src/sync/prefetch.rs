//! The content cache as the runner's [`Prefetcher`]: prefetch is `ContentCache::ensure`, so
//! it verifies against the metadata's SHA-256 and size and honours `upstream.max_bandwidth`
//! exactly like a client-triggered download.

use std::future::Future;
use std::pin::Pin;

use super::Prefetcher;
use crate::content::key::ContentKey;
use crate::content::ContentCache;
use crate::model::FileRecord;

impl Prefetcher for ContentCache {
    fn ensure(&self, file: FileRecord) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        let cache = self.clone();
        Box::pin(async move {
            let key = ContentKey::new(file.sha1, &file.extension()).map_err(|e| e.to_string())?;
            ContentCache::ensure(&cache, &key)
                .await
                .map_err(|e| e.to_string())
        })
    }
}
