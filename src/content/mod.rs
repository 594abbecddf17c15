//! The verified streaming payload cache behind `/Content/XX/<SHA1>.<ext>`.
//!
//! It owns the content folder (`<data_dir>/content`) and every decision about a payload: the
//! upstream fetches that fill it, verification, publishing, eviction, maintenance, and the
//! answer to a payload request (status, headers, where the body comes from). It does not own
//! the wire ([`crate::http`]: routing, bodies, heads, `sendfile`) nor the index storage
//! ([`crate::store`], reached through [`index::ObjectIndex`]).
//!
//! # Rules
//!
//! 1. **Verify before keep.** A download is hashed (SHA-1 + SHA-256, one pass) while it is
//!    written to `.partial/`; at the end it is checked against the content index (declared
//!    size, SHA-1, SHA-256) or, when metadata does not know the file, the SHA-1 in its name.
//!    Only a match is published (fsync, rename into `XX/`, fsync of the folder). A file under
//!    `XX/` is therefore always complete and verified, and hits are served from there only.
//! 2. **One upstream fetch per object.** Concurrent requests for an object being downloaded
//!    join the running download ([`lock`], [`inflight`]); its bytes are readable as soon as
//!    they are written. A ranged miss of a file whose size metadata declares is filled by
//!    slices instead ([`slices`]): asked ranges first, the rest in the background, each byte
//!    asked from upstream once.
//! 3. **Ranges from an object still in flight.** A range that does not reach the object's last
//!    byte is answered from the unverified bytes as soon as they have arrived: Windows (WUA,
//!    Delivery Optimization, BITS) verifies each file's SHA-256 itself after assembling it, so
//!    a bad piece is rejected there. A response that reaches the last byte of the object
//!    (including every full `200` body) holds back that last byte until the digest is known.
//!    A client therefore never receives a complete copy of a bad object from wsus-edge.
//! 4. **Mismatch.** The temp file is deleted, the event is logged and counted
//!    (`wsus_edge_hash_mismatches_total`), every response still streaming the object ends
//!    with an error so the connection is aborted (never finished as if good), and the next
//!    request fetches from upstream again.
//! 5. **Crash.** Start-up removes leftover temp files (not resumed: the object is fetched again
//!    on the next request) and reconciles the object index with the files on disk.
//! 6. **Bounded disk.** Past `content.max_size` the least recently used objects are evicted;
//!    objects being served or written are pinned and never evicted.
//! 7. **An object is its SHA-1.** It is stored once, under the extension it was first fetched
//!    as; a request under another extension is served from that copy (with the MIME type of
//!    the name asked), and eviction sees one object. A zero-length object is answered only
//!    after its (empty) hash is checked, like any response that completes an object.
//! 8. **Upstream is not trusted.** No head goes out before upstream has answered a miss
//!    (502/504 otherwise); redirects stay on the upstream's origin (or
//!    `upstream.redirect_hosts`) and off local addresses; a length other than declared is
//!    refused; a stall longer than `upstream.stall_timeout` ends a fetch.
//!
//! # Rooms
//!
//! | module | owns |
//! |---|---|
//! | [`key`] | request path → [`key::ContentKey`] → disk and upstream paths |
//! | [`store`] | the folder: temp files, publishing (with a [`verify::Verified`] only), removal |
//! | [`verify`] | the one hasher (SHA-1 + SHA-256) and the only maker of `Verified` |
//! | [`lock`] | coalescing: one writer per object, readers join ([`lock::Role`]) |
//! | `miss` | running the writer's download: fetch, check, publish, index, verdict |
//! | [`fetch`] | the upstream HTTP client of a download (resume, retries, bandwidth) |
//! | [`source`] | where a miss's bytes come from: `/Content`, DownloadFiles then retry, `MUUrl` |
//! | [`inflight`] | a download's progress and the readers of its bytes (hold-back rule) |
//! | [`slices`] | a download filled out of order for ranged misses: slice map, ranged fetches, prefix hasher |
//! | `answer`, [`serve`], [`range`], [`hot`] | the answer to a request: plan, head, body source |
//! | `recency`, [`evict`] | last access and LRU eviction under `content.max_size` |
//! | `reconcile` | start-up: leftover temp files, index vs folder |
//! | [`maintain`] | admin verbs' file work: verify, quarantine, cleanup |
//! | [`index`] | the cache's view of the metadata store |
//!
//! Metrics: `wsus_edge_content_requests_total{result}` counts each payload request as `hit`,
//! `miss` (started a download), `coalesced` (joined one) or `error`;
//! `wsus_edge_content_bytes_total{source="upstream"}` counts bytes received from upstream and
//! `{source="cache"}` bytes served from complete objects.

mod answer;
pub use answer::{Answer, CacheStatus};
pub mod bandwidth;
pub mod evict;
pub mod fetch;
pub mod hot;
pub mod index;
pub mod inflight;
pub mod key;
pub mod lock;
pub mod maintain;
pub mod mime;
mod miss;
pub mod range;
mod recency;
mod reconcile;
pub mod serve;
pub mod slices;
pub mod source;
pub mod store;
mod store_index;
pub mod verify;

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::config::UpstreamConfig;
use evict::Pins;
use fetch::Upstream;
use index::ObjectIndex;
use inflight::{FetchError, Inflight, State};
use key::ContentKey;
use lock::Locks;
use recency::Recency;
use store::ContentDir;

/// Why the cache could not start.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The content folder could not be prepared.
    #[error("content folder {path}: {source}")]
    Io {
        /// The folder.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The index could not be read.
    #[error(transparent)]
    Index(#[from] index::IndexError),
    /// The upstream client could not be built.
    #[error("upstream: {0}")]
    Upstream(FetchError),
}

/// The payload cache. Cheap to clone.
#[derive(Clone)]
pub struct ContentCache {
    inner: Arc<Inner>,
}

struct Inner {
    dir: ContentDir,
    index: Arc<dyn ObjectIndex>,
    upstream: Option<Upstream>,
    locks: Arc<Locks>,
    pins: Pins,
    hot: hot::HotSet,
    max_size: Option<u64>,
    total: AtomicU64,
    /// In-process access order, to break ties between objects touched in the same second.
    recency: Mutex<HashMap<[u8; 20], Recency>>,
    clock: AtomicU64,
    evicting: Mutex<()>,
    /// Free space kept on the content folder's file system (`content.min_free`).
    min_free: AtomicU64,
    /// Asks the upstream for files it lacks (DownloadFiles), when the sync side set one.
    requester: std::sync::OnceLock<Arc<dyn source::FileRequester>>,
}

/// Where a request for an object stands.
enum Lookup {
    /// Complete in the store.
    Hit(File),
    /// This request started its download.
    Started(Arc<Inflight>),
    /// A download was running; this request joined it.
    Joined(Arc<Inflight>),
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl ContentCache {
    /// Opens the cache in `dir`: removes leftover temp files, reconciles `index` with the
    /// files on disk (indexing verified strays, deleting bad ones), then evicts if over
    /// `max_size`.
    pub async fn open(
        dir: &Path,
        index: Arc<dyn ObjectIndex>,
        upstream: &UpstreamConfig,
        max_size: Option<u64>,
    ) -> Result<Self, ContentError> {
        let io = |source| ContentError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let cdir = ContentDir::open(dir).map_err(io)?;
        let upstream = Upstream::from_config(upstream).map_err(ContentError::Upstream)?;
        let (d2, i2) = (cdir.clone(), index.clone());
        let total = tokio::task::spawn_blocking(move || reconcile::reconcile(&d2, i2.as_ref()))
            .await
            .map_err(|e| io(std::io::Error::other(e)))??;
        let cache = Self {
            inner: Arc::new(Inner {
                locks: Locks::new(cdir.clone()),
                dir: cdir,
                index,
                upstream,
                pins: Pins::default(),
                hot: hot::HotSet::default(),
                max_size,
                total: AtomicU64::new(total),
                recency: Mutex::new(HashMap::new()),
                clock: AtomicU64::new(0),
                evicting: Mutex::new(()),
                min_free: AtomicU64::new(0),
                requester: std::sync::OnceLock::new(),
            }),
        };
        cache.evict_if_needed().await;
        Ok(cache)
    }

    /// Keeps `bytes` free on the content folder's file system: a miss that would go below it
    /// is refused (507) before anything is written, so payloads never fill the disk the
    /// metadata store writes to (`content.min_free`; 0 = no floor).
    pub fn set_min_free(&self, bytes: u64) {
        self.inner.min_free.store(bytes, Ordering::Relaxed);
    }

    /// Sets who asks the upstream for a file it answers 404 for (MS-WSUSSS DownloadFiles);
    /// without one, a 404 from upstream is final. Set once.
    pub fn set_file_requester(&self, r: Arc<dyn source::FileRequester>) {
        let _ = self.inner.requester.set(r);
    }

    /// Bytes currently held in the store.
    pub fn total_size(&self) -> u64 {
        self.inner.total.load(Ordering::Relaxed)
    }

    /// The content folder.
    pub fn dir(&self) -> &Path {
        self.inner.dir.root()
    }

    /// Makes sure the payload of `file` is in the store, downloading it if needed: the
    /// prefetch of sync and of the admin API.
    pub async fn ensure_file(&self, file: &crate::model::FileRecord) -> Result<(), EnsureError> {
        let key = ContentKey::new(file.sha1, &file.extension())?;
        Ok(self.ensure(&key).await?)
    }

    /// Makes sure an object is in the store, downloading it if needed (prefetch for sync).
    pub async fn ensure(&self, key: &ContentKey) -> Result<(), FetchError> {
        match self.lookup(key, false)? {
            Lookup::Hit(_) => Ok(()),
            Lookup::Started(inf) | Lookup::Joined(inf) => {
                let mut rx = inf.progress.subscribe();
                loop {
                    match rx.borrow_and_update().state.clone() {
                        State::Done => return Ok(()),
                        State::Failed(e) => return Err(e),
                        State::Running | State::Verified => {}
                    }
                    if rx.changed().await.is_err() {
                        return Err(FetchError::Abandoned);
                    }
                }
            }
        }
    }
}

/// Why a payload could not be made present ([`ContentCache::ensure_file`]).
#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    /// The file's name makes no content key (its extension is not a payload's).
    #[error("no content key: {0}")]
    Key(#[from] key::KeyError),
    /// The download failed, or the object did not verify.
    #[error(transparent)]
    Fetch(#[from] FetchError),
}
