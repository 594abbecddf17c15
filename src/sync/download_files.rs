//! The content cache's requests for files its upstream answers 404 for: MS-WSUSSS
//! DownloadFiles (SS §3.1.4.11; the DSS calls it after a content GET returned 404,
//! SS §3.2.4.4), sent over the upstream's one HTTP client with a session of its own
//! (authorized once, renewed as needed), one request at a time.

use std::sync::Arc;

use crate::content::source::{FileRequester, RequestFuture};
use crate::store::Store;

use super::{SyncOptions, Syncer, UpstreamClient};

/// Sends DownloadFiles for the content cache ([`crate::content::ContentCache::set_file_requester`]).
pub struct DownloadFilesRequester {
    syncer: tokio::sync::Mutex<Syncer>,
}

impl DownloadFilesRequester {
    /// A requester talking to `client`'s upstream, as the server whose identity `store` holds.
    pub fn new(store: Store, client: UpstreamClient) -> Arc<Self> {
        Arc::new(Self {
            syncer: tokio::sync::Mutex::new(Syncer::new(
                store,
                client,
                SyncOptions::default(),
                None,
            )),
        })
    }
}

impl FileRequester for DownloadFilesRequester {
    fn request(&self, sha1: [u8; 20]) -> RequestFuture<'_> {
        Box::pin(async move {
            let mut s = self.syncer.lock().await;
            s.download_files(&[sha1]).await.map_err(|e| e.to_string())
        })
    }
}
