//! Objects being downloaded: their shared progress (a `watch` channel) and the readers that
//! serve byte ranges of them while the single upstream fetch is still running (coalescing).
//! The hold-back rule of [`super`] is enforced here, in [`InflightReader`].

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;

use super::index::IndexError;
use super::key::ContentKey;
use super::slices::{SliceFetch, SliceReader};
use super::verify::Mismatch;

/// Largest chunk a reader hands to the connection at once.
const CHUNK: u64 = 256 * 1024;
/// Smallest read while the download is still running and the range needs more.
const MIN_BATCH: u64 = 64 * 1024;
/// Longest wait for a batch to fill.
const BATCH_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// An I/O error shared by every waiter of a download (`io::Error` is not `Clone`); two are
/// equal only when they are the same error.
#[derive(Debug, Clone)]
pub struct SharedIo(pub Arc<io::Error>);

impl PartialEq for SharedIo {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for SharedIo {}

impl std::fmt::Display for SharedIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl SharedIo {
    /// True for ENOSPC / EDQUOT (the disk or the quota is full).
    pub fn is_out_of_space(&self) -> bool {
        matches!(
            self.0.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT)
        )
    }
}

impl From<io::Error> for SharedIo {
    fn from(e: io::Error) -> Self {
        Self(Arc::new(e))
    }
}

/// Why a download ended without an object (cloneable: every waiter gets a copy).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// No upstream is configured.
    #[error("no upstream configured")]
    NoUpstream,
    /// Upstream answered with this status.
    #[error("upstream answered {0}")]
    Status(u16),
    /// Upstream could not be reached (connect error) after retries.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// Upstream's TLS certificate was refused (not retried: it will not change by itself;
    /// see `upstream.ca_file`).
    #[error("upstream TLS certificate refused ({0}); upstream.ca_file names a CA to trust")]
    Certificate(String),
    /// Upstream sent a length other than the one declared (metadata, `Content-Length`), or
    /// more than an undeclared object may have; the object is discarded, not retried.
    #[error("upstream length refused: {0}")]
    Length(String),
    /// Upstream redirected where the upstream client does not follow (another origin not in
    /// `upstream.redirect_hosts`, a local address); not retried.
    #[error("upstream redirect refused: {0}")]
    Redirect(String),
    /// Upstream timed out after retries.
    #[error("upstream timed out: {0}")]
    Timeout(String),
    /// The transfer kept failing mid-object after retries, or upstream broke the protocol.
    #[error("upstream transfer failed: {0}")]
    Transfer(String),
    /// The bytes did not match the declared digests; nothing was kept.
    #[error("verification failed: {0}")]
    Mismatch(#[from] Mismatch),
    /// Writing would take the disk below `content.min_free`; nothing was written.
    #[error("not enough free space: {0}")]
    LowSpace(String),
    /// The content folder could not be read or written (temp file, publish).
    #[error("local I/O error: {0}")]
    Disk(SharedIo),
    /// The object index in the metadata store failed.
    #[error("local I/O error: {0}")]
    Index(#[from] IndexError),
    /// The upstream client could not be built (`upstream.ca_file`, TLS set-up).
    #[error("upstream client: {0}")]
    Client(String),
    /// The download's writer went away without a verdict (a panic, the runtime shutting
    /// down, the hash thread failing).
    #[error("download ended without a verdict")]
    Abandoned,
}

impl From<io::Error> for FetchError {
    fn from(e: io::Error) -> Self {
        FetchError::Disk(e.into())
    }
}

impl FetchError {
    /// The status a client gets when the failure is known before its response started.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            FetchError::NoUpstream | FetchError::Status(404) | FetchError::Status(410) => {
                S::NOT_FOUND
            }
            FetchError::Timeout(_) => S::GATEWAY_TIMEOUT,
            FetchError::LowSpace(_) => S::INSUFFICIENT_STORAGE,
            FetchError::Disk(e) if e.is_out_of_space() => S::INSUFFICIENT_STORAGE,
            FetchError::Disk(_)
            | FetchError::Index(_)
            | FetchError::Client(_)
            | FetchError::Abandoned => S::INTERNAL_SERVER_ERROR,
            _ => S::BAD_GATEWAY,
        }
    }
}

/// Where a download stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Bytes are arriving.
    Running,
    /// All bytes arrived and match the expected digests; being made durable and published.
    Verified,
    /// Verified and published under its final name.
    Done,
    /// Ended without an object.
    Failed(FetchError),
}

/// Progress of one download, published to every reader.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Total size, once known (from metadata or upstream's `Content-Length`).
    pub size: Option<u64>,
    /// Bytes written to the temp file so far (a prefix of the object).
    pub written: u64,
    /// Upstream has answered this download with an acceptable head (200, or 206 on resume):
    /// until then no client gets a head, so a dead upstream is a 502/504, not a cut body.
    pub answered: bool,
    /// Where it stands.
    pub state: State,
}

/// One object being downloaded.
#[derive(Debug)]
pub struct Inflight {
    /// The object.
    pub key: ContentKey,
    /// The temp file, shared by the writer and all readers (positional reads; the handle stays
    /// valid after the rename into the store).
    pub file: Arc<File>,
    /// Progress, updated by the writer.
    pub progress: watch::Sender<Progress>,
    /// When the download started.
    pub started: SystemTime,
    /// Set when the object is filled out of order by slices (a range miss); readers then
    /// follow the slice map instead of `written`.
    pub slices: std::sync::OnceLock<Arc<SliceFetch>>,
}

impl Inflight {
    /// A new download with nothing written.
    pub fn new(key: ContentKey, file: File, size: Option<u64>) -> Self {
        let (progress, _) = watch::channel(Progress {
            size,
            written: 0,
            answered: false,
            state: State::Running,
        });
        Self {
            key,
            file: Arc::new(file),
            progress,
            started: SystemTime::now(),
            slices: std::sync::OnceLock::new(),
        }
    }

    /// Waits until a response head may be sent: upstream has answered and the size is known,
    /// or the download ended. A zero-length object waits for its verdict (its complete,
    /// empty response must not go out before the hash of nothing is checked). Returns the
    /// progress then.
    pub async fn wait_answer(&self) -> Progress {
        let mut rx = self.progress.subscribe();
        loop {
            let p = rx.borrow_and_update().clone();
            let ready = match (&p.state, p.size) {
                (State::Running, Some(0)) => false,
                (State::Running, Some(_)) => p.answered,
                (State::Running, None) => false,
                _ => true,
            };
            if ready {
                return p;
            }
            if rx.changed().await.is_err() {
                return self.progress.borrow().clone();
            }
        }
    }

    /// Records that upstream answered this download with an acceptable head.
    pub fn mark_answered(&self) {
        self.progress
            .send_if_modified(|p| !std::mem::replace(&mut p.answered, true));
    }

    /// Marks the download ended.
    pub fn finish(&self, state: State) {
        self.progress.send_modify(|p| {
            if matches!(state, State::Done | State::Verified) {
                p.size = Some(p.written);
            }
            p.state = state;
        });
    }
}

/// Streams bytes `start..=end` of an in-flight object as they arrive.
///
/// Hold-back rule: while the object is not yet verified, a response whose range reaches the
/// object's last byte is held one byte short; that byte is only sent once the object is
/// verified and published. On failure the stream ends with an error, so the connection is
/// aborted and the client never sees a complete response.
pub struct InflightReader {
    inf: Arc<Inflight>,
    rx: watch::Receiver<Progress>,
    pos: u64,
    end: u64,
    /// The slice reader, when the object is filled by slices.
    slices: Option<SliceReader>,
}

impl InflightReader {
    /// A reader of `start..=end` (inclusive). The object's size must be known.
    pub fn new(inf: Arc<Inflight>, start: u64, end: u64) -> Self {
        let rx = inf.progress.subscribe();
        let slices = inf.slices.get().map(|s| s.reader(start, end));
        Self {
            inf,
            rx,
            pos: start,
            end,
            slices,
        }
    }

    /// The next span `(offset, len)` of at most `max` bytes that may be sent now, waiting for
    /// it to arrive; `Ok(None)` when the range is complete. The span counts as sent.
    pub async fn next_span(&mut self, max: u64) -> io::Result<Option<(u64, u64)>> {
        if let Some(r) = &mut self.slices {
            return r.next_span(max).await;
        }
        if self.pos > self.end {
            return Ok(None);
        }
        loop {
            let p = self.rx.borrow_and_update().clone();
            let limit = match &p.state {
                State::Failed(e) => return Err(io::Error::other(e.clone())),
                State::Done | State::Verified => self.end + 1,
                State::Running => {
                    let mut l = p.written.min(self.end + 1);
                    if p.size == Some(self.end + 1) {
                        l = l.min(self.end);
                    }
                    l
                }
            };
            // Batch small increments while more is coming (for at most 5 ms), so many
            // readers of a fast download do not each wake for every network chunk.
            let more_coming = p.state == State::Running && limit <= self.end;
            let mut ready = self.pos < limit && (limit - self.pos >= MIN_BATCH || !more_coming);
            if self.pos < limit && !ready {
                match tokio::time::timeout(BATCH_WAIT, self.rx.changed()).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(_)) => return Err(io::Error::other("download abandoned")),
                    Err(_) => ready = true,
                }
            }
            if ready {
                let span = (self.pos, (limit - self.pos).min(max));
                self.pos += span.1;
                return Ok(Some(span));
            }
            if self.rx.changed().await.is_err() {
                // The writer vanished without a verdict: never finish this response.
                return Err(io::Error::other("download abandoned"));
            }
        }
    }

    /// The next chunk, copied from the temp file; `Ok(None)` when the range is complete.
    pub async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        let Some((off, len)) = self.next_span(CHUNK).await? else {
            return Ok(None);
        };
        let file = self.inf.file.clone();
        let buf = tokio::task::spawn_blocking(move || -> io::Result<Bytes> {
            let mut b = BytesMut::zeroed(len as usize);
            file.read_exact_at(&mut b, off)?;
            Ok(b.freeze())
        })
        .await
        .map_err(io::Error::other)??;
        Ok(Some(buf))
    }

    /// Turns the reader into a stream of chunks.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send {
        futures_util::stream::unfold(self, |mut r| async move {
            match r.next_chunk().await {
                Ok(Some(b)) => Some((Ok(b), r)),
                Ok(None) => None,
                Err(e) => {
                    r.pos = r.end + 1;
                    r.slices = None;
                    Some((Err(e), r))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn setup(data: &[u8]) -> Arc<Inflight> {
        let t = tempfile::tempfile().unwrap();
        let key = ContentKey::new([1; 20], "cab").unwrap();
        Arc::new(Inflight::new(key, t, Some(data.len() as u64)))
    }

    fn write(inf: &Inflight, data: &[u8], upto: usize) {
        let mut f = inf.file.as_ref();
        f.write_all(&data[inf.progress.borrow().written as usize..upto])
            .unwrap();
        inf.progress.send_modify(|p| p.written = upto as u64);
    }

    #[tokio::test]
    async fn middle_range_served_before_verify_last_byte_held() {
        let data: Vec<u8> = (0..100u8).collect();
        let inf = setup(&data);
        write(&inf, &data, 100);
        // A range not reaching the end is complete while still running.
        let mut r = InflightReader::new(inf.clone(), 10, 19);
        assert_eq!(&r.next_chunk().await.unwrap().unwrap()[..], &data[10..20]);
        assert!(r.next_chunk().await.unwrap().is_none());
        // The full body gets everything but the last byte, then waits for the verdict.
        let mut full = InflightReader::new(inf.clone(), 0, 99);
        assert_eq!(full.next_chunk().await.unwrap().unwrap().len(), 99);
        let waiting =
            tokio::spawn(async move { full.next_chunk().await.map(|b| b.map(|b| b.to_vec())) });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        inf.finish(State::Done);
        assert_eq!(waiting.await.unwrap().unwrap().unwrap(), vec![99]);
    }

    #[tokio::test]
    async fn failure_aborts_waiting_reader() {
        let data = vec![7u8; 50];
        let inf = setup(&data);
        write(&inf, &data, 50);
        let mut full = InflightReader::new(inf.clone(), 0, 49);
        assert_eq!(full.next_chunk().await.unwrap().unwrap().len(), 49);
        inf.finish(State::Failed(FetchError::Abandoned));
        assert!(full.next_chunk().await.is_err());
    }

    #[test]
    fn statuses() {
        assert_eq!(FetchError::Status(404).status(), 404);
        assert_eq!(FetchError::Unreachable("x".into()).status(), 502);
        assert_eq!(FetchError::Timeout("x".into()).status(), 504);
        assert_eq!(FetchError::Certificate("x".into()).status(), 502);
        assert_eq!(FetchError::Redirect("x".into()).status(), 502);
        assert_eq!(FetchError::Abandoned.status(), 500);
        let io = FetchError::from(io::Error::other("disk"));
        assert_eq!((io.status().as_u16(), io.clone() == io), (500, true));
    }
}
