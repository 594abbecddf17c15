//! The slice fetcher: fills one object from upstream out of order, asked ranges first
//! (issue 18; docs/design.md, "Cold ranges: the slice fetcher").
//!
//! It owns, for one object in flight: the [`map::SliceMap`] (which slices are missing, claimed
//! or held), the ranged upstream requests (`Range: bytes=a-b`, one per run of slices; asked
//! runs have priority over the background fill, which fetches one slice at a time and waits
//! while any asked run is being fetched), the `pwrite`s into the sparse temp file, the hasher
//! that follows the contiguous held prefix, and the readers ([`SliceReader`]) with the
//! hold-back rule of [`super`]: a response reaching the object's last byte gets that byte only
//! after the verdict. It does not own the temp file's name nor publishing: the cache creates
//! the file, waits for [`SliceFetch::verdict`] and publishes or discards.

pub mod map;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use super::bandwidth::Bandwidth;
use super::fetch::MAX_RETRIES;
use super::inflight::{FetchError, State};
use super::verify::{DualHasher, Expected, Verified};
use map::{Run, SliceMap};

/// Slice size: Delivery Optimization's piece size.
pub const SLICE: u64 = 1 << 20;
/// Most slices one asked upstream request covers.
pub const MAX_RUN: usize = 8;
/// Bytes of one run written to the temp file at once (and then shown to readers).
const WRITE_BATCH: usize = 64 << 10;
/// Bytes the hasher reads back per blocking call.
const HASH_BATCH: u64 = 4 << 20;
/// Largest chunk a reader hands to the connection at once.
const CHUNK: u64 = 256 * 1024;

/// Where a slice fetch gets its bytes.
#[derive(Debug, Clone)]
pub struct SliceSource {
    /// The HTTP client.
    pub client: reqwest::Client,
    /// The object's full URL.
    pub url: String,
    /// How a 404 is recovered (DownloadFiles, then retries); `None`: a 404 is final.
    pub missing: Option<Arc<super::source::Missing>>,
    /// The shared `upstream.max_bandwidth` bucket, if capped.
    pub bandwidth: Option<Arc<Bandwidth>>,
    /// Slice size (normally [`SLICE`]).
    pub slice: u64,
    /// First retry delay (doubles, at most 3 s).
    pub backoff: Duration,
    /// `upstream.stall_timeout`: fewer than [`super::fetch::STALL_MIN_BYTES`] over this much
    /// waiting ends a request.
    pub stall: Duration,
}

/// Progress of a slice fetch, published to readers and the cache.
#[derive(Debug, Clone)]
pub struct SliceProgress {
    /// Bumped whenever bytes arrive.
    pub version: u64,
    /// Running, Verified or Failed.
    pub state: State,
    /// Upstream has answered one of this object's ranged requests with an acceptable 206:
    /// until then no client gets a head (a dead upstream is a 502/504, not a cut 206).
    pub answered: bool,
    /// The proof the object matched its digests, once verified (what publishing takes).
    pub verified: Option<Verified>,
}

/// One object being filled out of order.
pub struct SliceFetch {
    src: SliceSource,
    file: Arc<File>,
    expected: Expected,
    map: Mutex<SliceMap>,
    progress: watch::Sender<SliceProgress>,
    /// Asked runs being fetched; the background fill waits while this is above 0.
    asked: watch::Sender<usize>,
    upstream_bytes: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl SliceFetch {
    /// Starts filling `file` with the `size` bytes of the object at `src.url`: the background
    /// fill and the hasher start now; [`Self::ask`] puts ranges first. Needs a tokio runtime.
    pub fn start(src: SliceSource, file: Arc<File>, size: u64, expected: Expected) -> Arc<Self> {
        let map = SliceMap::new(size, src.slice);
        let (progress, _) = watch::channel(SliceProgress {
            version: 0,
            state: State::Running,
            answered: false,
            verified: None,
        });
        let (asked, _) = watch::channel(0);
        let me = Arc::new(Self {
            src,
            file,
            expected,
            map: Mutex::new(map),
            progress,
            asked,
            upstream_bytes: AtomicU64::new(0),
        });
        me.spawn(me.clone().background());
        me.spawn(me.clone().hasher());
        me
    }

    /// Runs one of this fetch's tasks. A panic in it fails the whole fetch (readers get an
    /// error, [`Self::verdict`] says why), so nothing waits for a task that is gone and the
    /// cache's lock is released with the failed verdict.
    fn spawn(self: &Arc<Self>, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let guard = TaskGuard {
            fetch: self.clone(),
            armed: true,
        };
        tokio::spawn(async move {
            let mut guard = guard;
            task.await;
            guard.armed = false;
        });
    }

    /// Waits until a response head may be sent: upstream has answered one of this object's
    /// requests, or the fetch failed (the error a client then gets).
    pub async fn wait_answer(&self) -> Result<(), FetchError> {
        let mut rx = self.progress.subscribe();
        loop {
            let p = rx.borrow_and_update().clone();
            match p.state {
                State::Failed(e) => return Err(e),
                State::Verified | State::Done => return Ok(()),
                State::Running if p.answered => return Ok(()),
                State::Running => {}
            }
            if rx.changed().await.is_err() {
                return Err(FetchError::Abandoned);
            }
        }
    }

    /// The object's size.
    pub fn size(&self) -> u64 {
        lock(&self.map).size()
    }

    /// The temp file.
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Body bytes received from upstream so far.
    pub fn upstream_bytes(&self) -> u64 {
        self.upstream_bytes.load(Ordering::Relaxed)
    }

    /// A receiver of the progress (state and digests).
    pub fn subscribe(&self) -> watch::Receiver<SliceProgress> {
        self.progress.subscribe()
    }

    /// Waits for the verdict: the proof that the complete object matched, or why not.
    pub async fn verdict(&self) -> Result<Verified, FetchError> {
        let mut rx = self.progress.subscribe();
        loop {
            let p = rx.borrow_and_update().clone();
            match p.state {
                State::Failed(e) => return Err(e),
                State::Verified | State::Done => return p.verified.ok_or(FetchError::Abandoned),
                State::Running => {}
            }
            if rx.changed().await.is_err() {
                return Err(FetchError::Abandoned);
            }
        }
    }

    /// Puts bytes `start..=end` first: the free slices they touch are fetched now, each run
    /// of consecutive slices with one ranged request. Slices already claimed or held are
    /// waited for, not asked again.
    pub fn ask(self: &Arc<Self>, start: u64, end: u64) {
        let runs = lock(&self.map).claim_range(start, end, MAX_RUN);
        for run in runs {
            let guard = AskedGuard::new(&self.asked);
            let me = self.clone();
            self.spawn(async move {
                me.fetch(run).await;
                drop(guard);
            });
        }
    }

    /// A reader of bytes `start..=end` (inclusive). It asks its bytes first, a window of
    /// [`MAX_RUN`] slices at a time (a full-object reader does not claim the whole object at
    /// once).
    pub fn reader(self: &Arc<Self>, start: u64, end: u64) -> SliceReader {
        SliceReader {
            fetch: self.clone(),
            rx: self.progress.subscribe(),
            pos: start,
            end,
        }
    }

    fn fail(&self, e: FetchError) {
        self.progress.send_modify(|p| {
            if p.state == State::Running {
                p.state = State::Failed(e);
            }
        });
    }

    fn is_running(&self) -> bool {
        self.progress.borrow().state == State::Running
    }

    /// Fetches a claimed run, resuming at the first missing byte after a failure; after
    /// [`MAX_RETRIES`] failures without progress the whole object fails.
    async fn fetch(self: Arc<Self>, run: Run) {
        let mut todo = vec![run];
        let mut failures = 0u32;
        while let Some(run) = todo.pop() {
            if !self.is_running() {
                lock(&self.map).release(&run);
                continue;
            }
            let (got, err) = match self.attempt(&run).await {
                Ok(()) => continue,
                Err(x) => x,
            };
            // Upstream lacks the file: ask it to obtain it (DownloadFiles), then ask again.
            let answered = self.progress.borrow().answered;
            let missing = self.src.missing.as_deref();
            if let Some(wait) = super::source::retry_after(missing, &err, answered).await {
                {
                    let mut m = lock(&self.map);
                    m.release(&run);
                    todo.extend(
                        m.claim_range(run.from, run.to - 1, MAX_RUN)
                            .into_iter()
                            .rev(),
                    );
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            // Progress: a meaningful part of the run (a trickle that keeps being resumed
            // still runs out of retries).
            if got >= super::fetch::PROGRESS_BYTES.min(run.to - run.from) {
                failures = 0;
            }
            failures += 1;
            let answered = self.progress.borrow().answered;
            let retry = failures <= MAX_RETRIES && !super::fetch::gives_up(&err, got, answered);
            {
                let mut m = lock(&self.map);
                m.release(&run);
                if retry {
                    todo.extend(
                        m.claim_range(run.from, run.to - 1, MAX_RUN)
                            .into_iter()
                            .rev(),
                    );
                }
            }
            if !retry {
                tracing::warn!(url = %self.src.url, range = %run.range_header(), error = %err, "slice fetch failed");
                self.fail(err);
                return;
            }
            let wait =
                (self.src.backoff * 2u32.saturating_pow(failures - 1)).min(Duration::from_secs(3));
            tracing::warn!(url = %self.src.url, range = %run.range_header(), error = %err, retry_in = ?wait, "slice fetch interrupted; resuming");
            tokio::time::sleep(wait).await;
        }
    }

    /// One ranged GET of `run`. On failure, the bytes it delivered and why.
    async fn attempt(&self, run: &Run) -> Result<(), (u64, FetchError)> {
        let resp = self
            .src
            .client
            .get(&self.src.url)
            .header("accept-encoding", "identity")
            .header("range", run.range_header())
            .send()
            .await
            .map_err(|e| (0, super::fetch::classify(e)))?;
        let size = self.size();
        match resp.status().as_u16() {
            206 => {
                let cr = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let want = format!("bytes {}-{}/", run.from, run.to - 1);
                let total = cr.strip_prefix(&want);
                if !total.is_some_and(|t| t == "*" || t == size.to_string()) {
                    return Err((
                        0,
                        FetchError::Transfer(format!(
                            "asked {}, upstream answered Content-Range {cr:?}",
                            run.range_header()
                        )),
                    ));
                }
            }
            200 => {
                return Err((
                    0,
                    FetchError::Transfer("upstream ignored a Range request".into()),
                ))
            }
            s if s >= 500 => {
                return Err((0, FetchError::Transfer(format!("upstream answered {s}"))))
            }
            s => return Err((0, FetchError::Status(s))),
        }
        self.progress
            .send_if_modified(|p| !std::mem::replace(&mut p.answered, true));
        let mut off = run.from;
        let mut buf = BytesMut::new();
        let mut stream = resp.bytes_stream();
        let mut watch = super::fetch::StallWatch::new(self.src.stall);
        let mut done = false;
        while !done {
            let item = match watch.next(&mut stream).await {
                Ok(item) => item,
                Err(e) => {
                    let _ = self.write(off, buf.split().freeze()).await;
                    return Err((self.map_progress(run), e));
                }
            };
            if let Some(Ok(chunk)) = &item {
                watch.saw(chunk.len() as u64);
            }
            match item {
                Some(Ok(chunk)) => {
                    if off + (buf.len() + chunk.len()) as u64 > run.to {
                        return Err((
                            off - run.from,
                            FetchError::Length(format!(
                                "more than the {} bytes asked",
                                run.to - run.from
                            )),
                        ));
                    }
                    if let Some(bw) = &self.src.bandwidth {
                        bw.take(chunk.len()).await;
                    }
                    self.upstream_bytes
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    crate::metrics::add_content_bytes_upstream(chunk.len() as u64);
                    buf.extend_from_slice(&chunk);
                    if buf.len() < WRITE_BATCH {
                        continue;
                    }
                }
                Some(Err(e)) => {
                    // Keep what arrived: the retry starts after it.
                    let _ = self.write(off, buf.split().freeze()).await;
                    let got = self.map_progress(run);
                    return Err((got, super::fetch::classify(e)));
                }
                None => done = true,
            }
            let n = buf.len() as u64;
            self.write(off, buf.split().freeze())
                .await
                .map_err(|e| (off - run.from, e))?;
            off += n;
        }
        if off != run.to {
            return Err((
                off - run.from,
                FetchError::Transfer(format!("upstream ended the range at byte {off}")),
            ));
        }
        Ok(())
    }

    /// Bytes of `run` that have arrived.
    fn map_progress(&self, run: &Run) -> u64 {
        lock(&self.map).available_from(run.from) - run.from
    }

    /// Writes `data` at `off`, records it in the map and tells readers.
    async fn write(&self, off: u64, data: Bytes) -> Result<(), FetchError> {
        if data.is_empty() {
            return Ok(());
        }
        let file = self.file.clone();
        let n = data.len() as u64;
        tokio::task::spawn_blocking(move || file.write_all_at(&data, off))
            .await
            .map_err(|_| FetchError::Abandoned)??;
        lock(&self.map)
            .record(off, n)
            .map_err(|e| FetchError::Transfer(e.to_string()))?;
        self.progress.send_modify(|p| p.version += 1);
        Ok(())
    }

    /// The background fill: the next free slice after the last one, one slice per request,
    /// only while no asked run is being fetched.
    async fn background(self: Arc<Self>) {
        let mut asked = self.asked.subscribe();
        let mut rx = self.progress.subscribe();
        let mut cursor = 0usize;
        loop {
            if asked.wait_for(|n| *n == 0).await.is_err() {
                return;
            }
            rx.borrow_and_update();
            if !self.is_running() {
                return;
            }
            let next = {
                let mut m = lock(&self.map);
                if m.is_complete() {
                    return;
                }
                m.claim_next(cursor)
            };
            match next {
                Some(run) => {
                    cursor = run.last + 1;
                    self.clone().fetch(run).await;
                }
                // Every missing slice is being fetched by an asked run: wait for bytes.
                None => {
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Hashes the held prefix as it grows (read back from the temp file), then gives the
    /// verdict.
    async fn hasher(self: Arc<Self>) {
        let mut rx = self.progress.subscribe();
        let size = self.size();
        let mut h = DualHasher::new();
        let mut hashed = 0u64;
        while hashed < size {
            rx.borrow_and_update();
            if !self.is_running() {
                return;
            }
            let prefix = lock(&self.map).prefix();
            if prefix == hashed {
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let n = (prefix - hashed).min(HASH_BATCH);
            let file = self.file.clone();
            let r = tokio::task::spawn_blocking(move || -> io::Result<DualHasher> {
                let mut at = hashed;
                while at < hashed + n {
                    let len = (hashed + n - at).min(1 << 20) as usize;
                    let mut b = BytesMut::zeroed(len);
                    file.read_exact_at(&mut b, at)?;
                    h.update(b.freeze());
                    at += len as u64;
                }
                Ok(h)
            })
            .await;
            h = match r {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => return self.fail(e.into()),
                Err(_) => return self.fail(FetchError::Abandoned),
            };
            hashed += n;
        }
        let d = tokio::task::spawn_blocking(move || h.finish()).await;
        let Ok(Some(d)) = d else {
            return self.fail(FetchError::Abandoned);
        };
        match self.expected.check(&d) {
            Ok(v) => self.progress.send_modify(|p| {
                if p.state == State::Running {
                    p.state = State::Verified;
                    p.verified = Some(v);
                }
            }),
            Err(m) => {
                tracing::error!(url = %self.src.url, mismatch = %m, "object filled by slices does not match its digests");
                self.fail(FetchError::Mismatch(m));
            }
        }
    }
}

impl std::fmt::Debug for SliceFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SliceFetch")
            .field("url", &self.src.url)
            .field("size", &self.size())
            .field("upstream_bytes", &self.upstream_bytes())
            .finish()
    }
}

/// Fails its fetch when dropped before its task completed (the task panicked, or was
/// dropped unfinished).
struct TaskGuard {
    fetch: Arc<SliceFetch>,
    armed: bool,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.armed {
            tracing::error!(url = %self.fetch.src.url, "a slice fetch task ended without finishing; the fetch fails");
            self.fetch.fail(FetchError::Abandoned);
        }
    }
}

/// Counts one asked run as being fetched for as long as it lives.
struct AskedGuard(watch::Sender<usize>);

impl AskedGuard {
    fn new(asked: &watch::Sender<usize>) -> Self {
        asked.send_modify(|n| *n += 1);
        Self(asked.clone())
    }
}

impl Drop for AskedGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Streams bytes `start..=end` of an object being filled by slices, as they arrive.
///
/// Hold-back rule: while the object is not verified, a response whose range reaches the
/// object's last byte is held one byte short; on failure the stream ends with an error.
pub struct SliceReader {
    fetch: Arc<SliceFetch>,
    rx: watch::Receiver<SliceProgress>,
    pos: u64,
    end: u64,
}

impl SliceReader {
    /// The next span `(offset, len)` of at most `max` bytes that may be sent now, waiting for
    /// it to arrive; `Ok(None)` when the range is complete. The span counts as sent.
    pub async fn next_span(&mut self, max: u64) -> io::Result<Option<(u64, u64)>> {
        if self.pos > self.end {
            return Ok(None);
        }
        loop {
            let state = self.rx.borrow_and_update().state.clone();
            let (avail, size) = {
                let m = lock(&self.fetch.map);
                (m.available_from(self.pos).min(self.end + 1), m.size())
            };
            let limit = match state {
                State::Failed(e) => return Err(io::Error::other(e)),
                State::Verified | State::Done => avail,
                State::Running if self.end + 1 == size => avail.min(self.end),
                State::Running => avail,
            };
            if self.pos < limit {
                let span = (self.pos, (limit - self.pos).min(max));
                self.pos += span.1;
                return Ok(Some(span));
            }
            if avail <= self.end {
                let window = self.fetch.src.slice * MAX_RUN as u64;
                self.fetch
                    .ask(avail, self.end.min(avail.saturating_add(window - 1)));
            }
            if self.rx.changed().await.is_err() {
                return Err(io::Error::other("slice fetch abandoned"));
            }
        }
    }

    /// The next chunk, copied from the temp file; `Ok(None)` when the range is complete.
    pub async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        let Some((off, len)) = self.next_span(CHUNK).await? else {
            return Ok(None);
        };
        let file = self.fetch.file.clone();
        let buf = tokio::task::spawn_blocking(move || -> io::Result<Bytes> {
            let mut b = BytesMut::zeroed(len as usize);
            file.read_exact_at(&mut b, off)?;
            Ok(b.freeze())
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Some(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_task_fails_the_fetch_its_readers_and_its_verdict() {
        // An upstream that accepts and never answers: nothing else ends the fetch.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                open.push(s);
            }
        });
        let src = SliceSource {
            client: reqwest::Client::new(),
            url: format!("http://{addr}/Content/00/x.cab"),
            missing: None,
            stall: Duration::from_secs(60),
            bandwidth: None,
            slice: 1024,
            backoff: Duration::from_millis(10),
        };
        let file = Arc::new(tempfile::tempfile().unwrap());
        let expected = Expected {
            sha1: [0; 20],
            sha256: None,
            size: Some(10_000),
        };
        let sf = SliceFetch::start(src, file, 10_000, expected);
        let mut reader = sf.reader(2_000, 2_999);
        let reading = tokio::spawn(async move { reader.next_span(1024).await });
        let answer = tokio::spawn({
            let sf = sf.clone();
            async move { sf.wait_answer().await }
        });
        sf.spawn(async { panic!("injected panic in a slice task") });
        assert!(reading.await.unwrap().is_err(), "the reader must fail");
        assert_eq!(answer.await.unwrap(), Err(FetchError::Abandoned));
        assert_eq!(sf.verdict().await.unwrap_err(), FetchError::Abandoned);
        held.abort();
    }
}
