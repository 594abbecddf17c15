//! The verified streaming payload cache behind `/Content/XX/<SHA1>.<ext>`.
//!
//! It owns the content folder (`<data_dir>/content`), the upstream fetches that fill it and the
//! HTTP answers for payload requests. It does not own routing ([`crate::http`]) nor the index
//! storage ([`crate::store`], reached through [`index::ObjectIndex`]).
//!
//! # Rules
//!
//! 1. **Verify before keep.** A download is hashed (SHA-1 + SHA-256, one pass) while it is
//!    written to `.partial/`; at the end it is checked against the content index (declared
//!    size, SHA-1, SHA-256) or, when metadata does not know the file, the SHA-1 in its name.
//!    Only a match is published (fsync, rename into `XX/`, fsync of the folder). A file under
//!    `XX/` is therefore always complete and verified, and hits are served from there only.
//! 2. **One upstream fetch per object.** Concurrent requests for an object being downloaded
//!    join the running download ([`inflight`]); its bytes are readable as soon as they are
//!    written.
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
//!
//! Metrics: `wsus_edge_content_requests_total{result}` counts each payload request as `hit`,
//! `miss` (started a download), `coalesced` (joined one) or `error`;
//! `wsus_edge_content_bytes_total{source="upstream"}` counts bytes received from upstream and
//! `{source="cache"}` bytes served from complete objects.

pub mod bandwidth;
pub mod evict;
pub mod fetch;
pub mod hot;
pub mod index;
pub mod inflight;
pub mod key;
pub mod maintain;
pub mod mime;
pub mod range;
pub mod serve;
pub mod store;
mod store_index;
pub mod verify;

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use http::{HeaderMap, Method, Response, StatusCode};

use crate::config::UpstreamConfig;
use crate::http::body::Body;
use crate::metrics;
use evict::{Candidate, Pins};
use fetch::Upstream;
use index::{ObjectEntry, ObjectIndex};
use inflight::{FetchError, Inflight, State};
use key::ContentKey;
use range::Conditions;
use store::ContentDir;
use verify::Expected;

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
    inflight: Mutex<HashMap<[u8; 20], Arc<Inflight>>>,
    pins: Pins,
    hot: hot::HotSet,
    max_size: Option<u64>,
    total: AtomicU64,
    /// In-process access order, to break ties between objects touched in the same second.
    recency: Mutex<HashMap<[u8; 20], Recency>>,
    clock: AtomicU64,
    evicting: Mutex<()>,
}

/// How often (seconds) a hit writes its last access to the index.
const TOUCH_EVERY_SECS: i64 = 60;

/// In-process access record of one object.
#[derive(Debug, Clone, Copy, Default)]
struct Recency {
    /// Access order in this process.
    seq: u64,
    /// Last access (unix seconds), exact.
    seen: i64,
    /// Last access written to the index.
    written: i64,
}

enum Lookup {
    Hit(File),
    Fetching(Arc<Inflight>, bool),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn now_unix() -> i64 {
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
        let total = tokio::task::spawn_blocking(move || reconcile(&d2, i2.as_ref()))
            .await
            .map_err(|e| io(std::io::Error::other(e)))??;
        let cache = Self {
            inner: Arc::new(Inner {
                dir: cdir,
                index,
                upstream,
                inflight: Mutex::new(HashMap::new()),
                pins: Pins::default(),
                hot: hot::HotSet::default(),
                max_size,
                total: AtomicU64::new(total),
                recency: Mutex::new(HashMap::new()),
                clock: AtomicU64::new(0),
                evicting: Mutex::new(()),
            }),
        };
        cache.evict_if_needed().await;
        Ok(cache)
    }

    /// Bytes currently held in the store.
    pub fn total_size(&self) -> u64 {
        self.inner.total.load(Ordering::Relaxed)
    }

    /// The content folder.
    pub fn dir(&self) -> &Path {
        self.inner.dir.root()
    }

    /// Answers a payload request (`path` is the raw request path, `/Content/...`) for hyper.
    pub async fn handle(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
        self.answer(method, path, headers)
            .await
            .map(serve::Source::into_body)
    }

    /// Answers a payload request: status, headers and where the body comes from. A miss starts
    /// (or joins) the download and answers from the bytes as they arrive.
    pub async fn answer(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Response<serve::Source> {
        if method != Method::GET && method != Method::HEAD {
            let mut r = serve::text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
            r.headers_mut().insert(
                http::header::ALLOW,
                http::HeaderValue::from_static("GET, HEAD"),
            );
            return r;
        }
        let key = match ContentKey::parse_path(path) {
            Ok(k) => k,
            Err(e) => {
                tracing::debug!(path, error = %e, "refused content path");
                return serve::text(e.status(), &e.to_string());
            }
        };
        let head = method == Method::HEAD;
        let conds = Conditions::from_headers(headers);
        match self.lookup(&key) {
            Err(e) => {
                metrics::content_request("error");
                tracing::warn!(key = %key, error = %e, "content miss failed");
                serve::text(e.status(), &e.to_string())
            }
            Ok(Lookup::Hit(file)) => {
                metrics::content_request("hit");
                match self.hit_response(&key, file, &conds, head) {
                    Ok(resp) => resp,
                    Err(e) => serve::text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                }
            }
            Ok(Lookup::Fetching(inf, started)) => {
                if !started {
                    self.touch(&key.sha1);
                }
                let p = inf.wait_size().await;
                let size = match (&p.state, p.size) {
                    (State::Failed(e), _) => {
                        metrics::content_request("error");
                        return serve::text(e.status(), &e.to_string());
                    }
                    (_, Some(s)) => s,
                    (_, None) => p.written,
                };
                metrics::content_request(if started { "miss" } else { "coalesced" });
                let etag = serve::etag(&key);
                let plan = range::plan(&conds, size, &etag, None);
                let m = serve::Meta {
                    key: &key,
                    size,
                    last_modified: None,
                };
                serve::respond(plan, head, &m, move |start, len| serve::Source::Inflight {
                    inf,
                    start,
                    len,
                })
            }
        }
    }

    /// The response for a hit.
    fn hit_response(
        &self,
        key: &ContentKey,
        file: File,
        conds: &Conditions<'_>,
        head: bool,
    ) -> std::io::Result<Response<serve::Source>> {
        let md = file.metadata()?;
        self.touch(&key.sha1);
        let etag = serve::etag(key);
        let plan = range::plan(conds, md.len(), &etag, md.modified().ok());
        let m = serve::Meta {
            key,
            size: md.len(),
            last_modified: md.modified().ok(),
        };
        let pin = self.inner.pins.pin(key.sha1);
        let file = Arc::new(file);
        Ok(serve::respond(plan, head, &m, |start, len| {
            serve::Source::File {
                file,
                start,
                len,
                pin,
            }
        }))
    }

    /// For the zero-copy path: when `path` names an object complete in the store, the
    /// response head to write and the file range to send with `sendfile`. `None` for
    /// anything else (misses, errors, other methods), which then go through [`Self::answer`].
    /// Recently hit objects stay open with their headers precomputed ([`hot`]).
    pub fn zero_copy_hit(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<serve::ZeroCopyHit> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let key = ContentKey::parse_path(path).ok()?;
        let object = self
            .inner
            .hot
            .get_or_open(&key, || self.inner.dir.open_final(&key))
            .ok()??;
        let pin = self.inner.pins.pin(key.sha1);
        self.touch(&key.sha1);
        metrics::content_request("hit");
        let conds = Conditions::from_headers(headers);
        let plain = conds.range.is_none()
            && conds.if_range.is_none()
            && conds.if_match.is_none()
            && conds.if_none_match.is_none()
            && conds.if_modified_since.is_none();
        if plain {
            return Some(serve::ZeroCopyHit {
                status: StatusCode::OK,
                span: (method == Method::GET && object.size > 0).then_some((0, object.size)),
                object,
                headers: None,
                pin,
            });
        }
        let plan = range::plan(&conds, object.size, &object.etag, object.modified);
        let m = serve::Meta {
            key: &key,
            size: object.size,
            last_modified: object.modified,
        };
        let mut span = None;
        let resp = serve::respond(plan, method == Method::HEAD, &m, |start, len| {
            span = Some((start, len));
            serve::Source::Empty
        });
        let mut lines = Vec::with_capacity(256);
        for (n, v) in resp.headers() {
            lines.extend_from_slice(n.as_str().as_bytes());
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(v.as_bytes());
            lines.extend_from_slice(b"\r\n");
        }
        Some(serve::ZeroCopyHit {
            status: resp.status(),
            object,
            headers: Some(lines),
            span,
            pin,
        })
    }

    fn touch(&self, sha1: &[u8; 20]) {
        let n = self.inner.clock.fetch_add(1, Ordering::Relaxed) + 1;
        let now = now_unix();
        let stale = {
            let mut r = lock(&self.inner.recency);
            let e = r.entry(*sha1).or_default();
            let stale = now - e.written >= TOUCH_EVERY_SECS;
            e.seq = n;
            e.seen = now;
            if stale {
                e.written = now;
            }
            stale
        };
        // The persistent last access only needs minute precision; in-process order is exact.
        if !stale {
            return;
        }
        if let Err(e) = self.inner.index.touch_object(sha1, now) {
            tracing::debug!(error = %e, "could not record last access");
        }
    }

    /// Makes sure an object is in the store, downloading it if needed (prefetch for sync).
    pub async fn ensure(&self, key: &ContentKey) -> Result<(), FetchError> {
        match self.lookup(key)? {
            Lookup::Hit(_) => Ok(()),
            Lookup::Fetching(inf, _) => {
                let mut rx = inf.progress.subscribe();
                loop {
                    match rx.borrow_and_update().state.clone() {
                        State::Done => return Ok(()),
                        State::Failed(e) => return Err(e),
                        State::Running | State::Verified => {}
                    }
                    if rx.changed().await.is_err() {
                        return Err(FetchError::Io("download abandoned".into()));
                    }
                }
            }
        }
    }

    fn lookup(&self, key: &ContentKey) -> Result<Lookup, FetchError> {
        let io = |e: std::io::Error| FetchError::Io(e.to_string());
        if let Some(f) = self.inner.dir.open_final(key).map_err(io)? {
            return Ok(Lookup::Hit(f));
        }
        let mut map = lock(&self.inner.inflight);
        if let Some(inf) = map.get(&key.sha1) {
            return Ok(Lookup::Fetching(inf.clone(), false));
        }
        // A download may have finished between the first look and taking the lock.
        if let Some(f) = self.inner.dir.open_final(key).map_err(io)? {
            return Ok(Lookup::Hit(f));
        }
        let Some(upstream) = self.inner.upstream.clone() else {
            return Err(FetchError::NoUpstream);
        };
        let declared = self
            .inner
            .index
            .expected_file(&key.sha1)
            .map_err(|e| FetchError::Io(e.to_string()))?;
        let expected = Expected {
            sha1: key.sha1,
            sha256: declared.as_ref().and_then(|f| f.sha256),
            size: declared.as_ref().map(|f| f.size),
        };
        let file = self.inner.dir.create_temp(key).map_err(io)?;
        let inf = Arc::new(Inflight::new(key.clone(), file, expected.size));
        map.insert(key.sha1, inf.clone());
        drop(map);
        tracing::info!(key = %key, "content miss: fetching from upstream");
        let me = self.clone();
        let job = inf.clone();
        tokio::spawn(async move { me.run_fetch(upstream, job, expected).await });
        Ok(Lookup::Fetching(inf, true))
    }

    async fn run_fetch(self, upstream: Upstream, inf: Arc<Inflight>, expected: Expected) {
        let _verdict = VerdictGuard {
            cache: self.clone(),
            inf: inf.clone(),
        };
        let key = inf.key.clone();
        let res = upstream.download(inf.clone(), expected.size).await;
        let outcome = match res {
            Ok(d) => match expected.check(&d) {
                Ok(proof) => {
                    // Readers may finish now: the bytes are known good; durability follows.
                    // Recency is recorded first, so a hit that follows the last byte is newer.
                    let verified_at = now_unix();
                    self.touch(&key.sha1);
                    inf.finish(State::Verified);
                    self.publish(&inf, proof, verified_at)
                        .await
                        .map(|_| proof.size())
                }
                Err(m) => {
                    metrics::hash_mismatch();
                    tracing::error!(key = %key, mismatch = %m, "downloaded object does not match its digests; discarded");
                    Err(FetchError::Mismatch(m.to_string()))
                }
            },
            Err(e) => Err(e),
        };
        let stored = {
            let mut map = lock(&self.inner.inflight);
            let r = match outcome {
                Ok(size) => {
                    inf.finish(State::Done);
                    Some(size)
                }
                Err(e) => {
                    self.inner.dir.discard(&key);
                    inf.finish(State::Failed(e.clone()));
                    tracing::warn!(key = %key, error = %e, "content fetch failed");
                    None
                }
            };
            map.remove(&key.sha1);
            r
        };
        if let Some(size) = stored {
            self.inner.total.fetch_add(size, Ordering::Relaxed);
            tracing::info!(key = %key, size, "content stored");
            self.evict_if_needed().await;
        }
    }

    async fn publish(
        &self,
        inf: &Arc<Inflight>,
        proof: verify::Verified,
        now: i64,
    ) -> Result<(), FetchError> {
        let (dir, inf2) = (self.inner.dir.clone(), inf.clone());
        tokio::task::spawn_blocking(move || dir.publish(&inf2.key, &inf2.file, &proof))
            .await
            .map_err(|e| FetchError::Io(e.to_string()))?
            .map_err(|e| FetchError::Io(e.to_string()))?;

        let entry = ObjectEntry {
            ext: inf.key.ext.clone(),
            size: proof.size(),
            sha256: proof.sha256(),
            stored_unix: now,
            last_access_unix: now,
        };
        self.inner
            .index
            .put_object(&inf.key.sha1, &entry)
            .map_err(|e| FetchError::Io(e.to_string()))
    }

    /// Notes that an object left the folder by another path (the admin's `content verify`
    /// quarantine or `cleanup`, which removed the file and its index entry): adjusts the size
    /// total and forgets its recency.
    pub fn forget(&self, sha1: &[u8; 20], size: u64) {
        self.inner.hot.remove(sha1);
        lock(&self.inner.recency).remove(sha1);
        let _ = self
            .inner
            .total
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(size))
            });
    }

    /// Evicts least recently used, unpinned objects while the store is over `max_size`.
    pub async fn evict_if_needed(&self) {
        let Some(max) = self.inner.max_size else {
            return;
        };
        if self.total_size() <= max {
            return;
        }
        let me = self.clone();
        let r = tokio::task::spawn_blocking(move || me.evict_blocking(max)).await;
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "eviction failed");
        }
    }

    fn evict_blocking(&self, max: u64) -> Result<(), index::IndexError> {
        let _one = lock(&self.inner.evicting);
        let objects = self.inner.index.objects()?;
        let recency = lock(&self.inner.recency).clone();
        let mut exts = HashMap::new();
        let cands: Vec<Candidate> = objects
            .into_iter()
            .map(|(sha1, e)| {
                exts.insert(sha1, e.ext.clone());
                Candidate {
                    sha1,
                    size: e.size,
                    last_access: e
                        .last_access_unix
                        .max(recency.get(&sha1).map(|r| r.seen).unwrap_or(0)),
                    seq: recency.get(&sha1).map(|r| r.seq).unwrap_or(0),
                }
            })
            .collect();
        let victims = {
            let inflight = lock(&self.inner.inflight);
            let pins = &self.inner.pins;
            evict::plan(cands, self.total_size(), max, |s| {
                pins.is_pinned(s) || inflight.contains_key(s)
            })
        };
        for v in victims {
            let ext = exts.get(&v.sha1).cloned().unwrap_or_default();
            let Ok(key) = ContentKey::new(v.sha1, &ext) else {
                continue;
            };
            self.inner.hot.remove(&v.sha1);
            if let Err(e) = self.inner.dir.remove(&key) {
                tracing::warn!(key = %key, error = %e, "could not evict");
                continue;
            }
            // Again: a hit may have reopened it between the first drop and the unlink.
            self.inner.hot.remove(&v.sha1);
            self.inner.index.remove_object(&v.sha1)?;
            lock(&self.inner.recency).remove(&v.sha1);
            self.inner
                .total
                .fetch_sub(v.size.min(self.total_size()), Ordering::Relaxed);
            tracing::info!(key = %key, size = v.size, "evicted (least recently used)");
        }
        Ok(())
    }
}

/// Gives a download a verdict if its task ends without one (a panic, or the runtime shutting
/// down): readers hold the sender side of the progress channel themselves, so they would
/// otherwise wait forever, and later requests would join a download that no longer runs.
struct VerdictGuard {
    cache: ContentCache,
    inf: Arc<Inflight>,
}

impl Drop for VerdictGuard {
    fn drop(&mut self) {
        if matches!(
            self.inf.progress.borrow().state,
            State::Done | State::Failed(_)
        ) {
            return;
        }
        let key = &self.inf.key;
        tracing::error!(key = %key, "content download ended without a verdict; discarded");
        let mut map = lock(&self.cache.inner.inflight);
        self.cache.inner.dir.discard(key);
        self.inf.finish(State::Failed(FetchError::Io(
            "download ended without a verdict".into(),
        )));
        if map
            .get(&key.sha1)
            .is_some_and(|i| Arc::ptr_eq(i, &self.inf))
        {
            map.remove(&key.sha1);
        }
    }
}

/// Start-up: drops temp files and makes the index and the folder agree. Returns the total size.
fn reconcile(dir: &ContentDir, index: &dyn ObjectIndex) -> Result<u64, ContentError> {
    let io = |source| ContentError::Io {
        path: dir.root().to_path_buf(),
        source,
    };
    let n = dir.remove_leftovers().map_err(io)?;
    if n > 0 {
        tracing::warn!(count = n, "removed partial downloads left by a crash");
    }
    let on_disk = dir.scan().map_err(io)?;
    let indexed: HashMap<[u8; 20], ObjectEntry> = index.objects()?.into_iter().collect();
    let mut total = 0u64;
    let mut seen = std::collections::HashSet::new();
    for (key, size) in on_disk {
        seen.insert(key.sha1);
        match indexed.get(&key.sha1) {
            Some(e) if e.size == size && e.ext == key.ext => total += size,
            _ => {
                // Published but not indexed (crash between rename and index write): re-verify.
                let path = dir.final_path(&key);
                let good = verify::hash_file(&path).ok().filter(|d| d.sha1 == key.sha1);
                match good {
                    Some(d) => {
                        let now = now_unix();
                        index.put_object(
                            &key.sha1,
                            &ObjectEntry {
                                ext: key.ext.clone(),
                                size: d.size,
                                sha256: d.sha256,
                                stored_unix: now,
                                last_access_unix: now,
                            },
                        )?;
                        total += d.size;
                    }
                    None => {
                        tracing::warn!(key = %key, "removing unverifiable file from the store");
                        let _ = dir.remove(&key);
                    }
                }
            }
        }
    }
    for sha1 in indexed.keys() {
        if !seen.contains(sha1) {
            index.remove_object(sha1)?;
        }
    }
    Ok(total)
}
