//! Where a miss's bytes come from (issue 14 item 5; MS-WSUSSS §3.2.4.4, §3.1.4.11), in the
//! order the upstream's configuration gives:
//!
//! 1. when the upstream syncs catalog only (`CatalogOnlySync` from GetConfigData: it holds no
//!    files, clients fetch from Microsoft Update) and metadata stored the file's `MUUrl`: that
//!    URL; the same for an express file (declared `PatchingType="Express"`; not every `.psf`:
//!    UUP `.psf` files are SelfContained) when the upstream does not host express files
//!    (`ServerHostsPsfFiles` false: a DSS downloads them only when it is true, SS §3.2.4.4;
//!    a Windows DSS then has none, wsus-edge goes to Microsoft Update, so a site without
//!    Internet access gets 502/504 for them instead of 404);
//! 2. otherwise `/Content/XX/<SHA1>.<ext>` on the upstream; when it answers 404, the upstream
//!    is asked to obtain the file (DownloadFiles, through a [`FileRequester`] the sync side
//!    provides) and `/Content` is asked again with backoff for [`DOWNLOAD_FILES_WINDOW`]
//!    ([`retry_after`], the one rule the whole-object and the slice fetch share); except an
//!    express file the upstream does not host, whose 404 is final at once (asking would only
//!    keep the client waiting for the window).
//!
//! Whatever the source, the bytes are verified by the same digests before they are kept. A
//! `MUUrl` naming a loopback or link-local address is not used unless the upstream itself is
//! one (the rule of [`crate::config`]'s redirect policy).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inflight::FetchError;
use super::key::ContentKey;

/// How long `/Content` is asked again after a DownloadFiles request (the upstream fetches
/// the file from its own parent meanwhile).
pub const DOWNLOAD_FILES_WINDOW: Duration = Duration::from_secs(30);
/// First wait before asking `/Content` again after DownloadFiles (doubles, at most 8 s).
const FIRST_WAIT: Duration = Duration::from_millis(250);

/// A future a [`FileRequester`] returns.
pub type RequestFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Asks the upstream to obtain a file it does not hold (MS-WSUSSS DownloadFiles). Provided
/// by the sync side, which holds the upstream session.
pub trait FileRequester: Send + Sync + 'static {
    /// Asks for the file with this SHA-1; `Err` says why the request failed.
    fn request(&self, sha1: [u8; 20]) -> RequestFuture<'_>;
}

/// The source of one miss.
#[derive(Clone)]
pub struct Source {
    /// The URL the object is fetched from.
    pub url: String,
    /// How a 404 from it is recovered (DownloadFiles, then retries); `None`: a 404 is final.
    pub missing: Option<Arc<Missing>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("url", &self.url)
            .field("download_files", &self.missing.is_some())
            .finish()
    }
}

impl Source {
    /// The source of `key`: its `MUUrl` when the upstream is catalog-only, or does not host
    /// this express file (`express_not_hosted`), and the URL is acceptable; else `/Content`
    /// under `base` (with DownloadFiles recovery when a requester is set, unless
    /// `express_not_hosted`).
    pub fn choose(
        base: &str,
        key: &ContentKey,
        catalog_only: bool,
        express_not_hosted: bool,
        mu_url: Option<&str>,
        requester: Option<&Arc<dyn FileRequester>>,
    ) -> Self {
        if catalog_only || express_not_hosted {
            match mu_url.map(|u| (u, crate::config::upstream_may_fetch(base, u))) {
                Some((u, Ok(()))) => {
                    return Self {
                        url: u.to_string(),
                        missing: None,
                    }
                }
                Some((u, Err(why))) => {
                    tracing::warn!(key = %key, mu_url = u, %why, "MUUrl not used");
                }
                None => {}
            }
        }
        Self {
            url: format!("{base}/{}", key.url_path()),
            missing: requester.filter(|_| !express_not_hosted).map(|r| {
                Arc::new(Missing {
                    requester: r.clone(),
                    sha1: key.sha1,
                    step: tokio::sync::Mutex::new(Step::Fresh),
                })
            }),
        }
    }
}

/// Where a [`Missing`] stands.
enum Step {
    /// No 404 yet.
    Fresh,
    /// DownloadFiles was sent at this instant; this many retries followed.
    Asked(Instant, u32),
    /// DownloadFiles failed: a 404 is final.
    Failed,
}

/// The DownloadFiles recovery of one object: the first 404 asks the upstream for the file,
/// later ones wait and ask `/Content` again until [`DOWNLOAD_FILES_WINDOW`] has passed.
pub struct Missing {
    requester: Arc<dyn FileRequester>,
    sha1: [u8; 20],
    step: tokio::sync::Mutex<Step>,
}

impl std::fmt::Debug for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Missing")
            .field("sha1", &hex::encode(self.sha1))
            .finish()
    }
}

/// The one DownloadFiles rule for a failed GET of `/Content` (the whole-object fetch and the
/// slice fetch both ask it): when `err` is a 404, the upstream has not answered this object
/// before (`answered` false) and `missing` recovery is set, the wait before asking again (the
/// first such 404 sends DownloadFiles). `None`: the failure is handled as any other (a 404
/// is final when DownloadFiles failed or the window has passed).
pub async fn retry_after(
    missing: Option<&Missing>,
    err: &FetchError,
    answered: bool,
) -> Option<Duration> {
    match (err, missing) {
        (FetchError::Status(404), Some(m)) if !answered => m.after_404().await,
        _ => None,
    }
}

impl Missing {
    /// After a 404 from `/Content` (before upstream ever answered this object): the wait
    /// before asking again, or `None` when a 404 is now final (DownloadFiles failed, or the
    /// window has passed).
    async fn after_404(&self) -> Option<Duration> {
        let mut step = self.step.lock().await;
        let (at, n) = match *step {
            Step::Failed => return None,
            Step::Asked(at, n) => (at, n),
            Step::Fresh => {
                let hex = hex::encode(self.sha1);
                match self.requester.request(self.sha1).await {
                    Ok(()) => {
                        tracing::info!(sha1 = %hex, "upstream lacks the file: DownloadFiles sent")
                    }
                    Err(e) => {
                        tracing::warn!(sha1 = %hex, error = %e, "DownloadFiles failed");
                        *step = Step::Failed;
                        return None;
                    }
                }
                (Instant::now(), 0)
            }
        };
        if at.elapsed() >= DOWNLOAD_FILES_WINDOW {
            return None;
        }
        *step = Step::Asked(at, n + 1);
        Some((FIRST_WAIT * 2u32.saturating_pow(n.min(5))).min(Duration::from_secs(8)))
    }
}
