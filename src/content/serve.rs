//! Building content responses: status and headers from a [`range::Plan`], and a [`Source`]
//! saying where the body comes from (a complete object, an object still in flight, a short
//! text). The hyper path turns a source into a [`Body`] (positional reads of 256 KiB on the
//! blocking pool, so the file handle stays valid even if the object is evicted meanwhile); the
//! zero-copy path ([`crate::http`]) sends file bytes with `sendfile` instead, in-flight ones as
//! soon as they are written. Content responses always carry `Content-Length` (never chunked),
//! `Accept-Ranges: bytes` and a strong `ETag` derived from the SHA-1, so it never changes for
//! the object.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Response, StatusCode};

use super::evict::PinGuard;
use super::hot::HotObject;
use super::inflight::{Inflight, InflightReader};
use super::key::ContentKey;
use super::mime;
use super::range::Plan;
use crate::http::body::{self, Body};

const CHUNK: u64 = 256 * 1024;

/// Where the body of a content response comes from.
#[derive(Debug)]
pub enum Source {
    /// No body.
    Empty,
    /// A short text (error answers).
    Text(Bytes),
    /// `len` bytes at `start` of a complete object; the pin keeps it from eviction until the
    /// body is sent or dropped.
    File {
        /// The object.
        file: Arc<File>,
        /// First byte.
        start: u64,
        /// Length.
        len: u64,
        /// Eviction guard.
        pin: PinGuard,
    },
    /// `len` bytes at `start` of an object still being downloaded, sent as they arrive under
    /// the hold-back rule of [`InflightReader`].
    Inflight {
        /// The download.
        inf: Arc<Inflight>,
        /// First byte.
        start: u64,
        /// Length.
        len: u64,
    },
}

impl Source {
    /// The body for hyper.
    pub fn into_body(self) -> Body {
        match self {
            Source::Empty => body::empty(),
            Source::Text(b) => body::full(b),
            Source::File {
                file,
                start,
                len,
                pin,
            } => file_body(file, start, len, pin),
            Source::Inflight { inf, start, len } => {
                body::stream(InflightReader::new(inf, start, start + len - 1).into_stream())
            }
        }
    }
}

/// A plain-text answer with `status` (errors).
pub fn text(status: StatusCode, msg: &str) -> Response<Source> {
    let mut r = Response::new(Source::Text(Bytes::from(format!("{msg}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A hit to send with `sendfile`: the response head, the object and the byte range.
#[derive(Debug)]
pub struct ZeroCopyHit {
    /// Status of the answer.
    pub status: StatusCode,
    /// The object (open handle and precomputed headers).
    pub object: Arc<HotObject>,
    /// Header lines for answers other than a plain `200` (each ending in CRLF); `None` means
    /// the object's precomputed full-answer headers.
    pub headers: Option<Vec<u8>>,
    /// `(start, len)` of the body, `None` when the response has no body.
    pub span: Option<(u64, u64)>,
    /// Keeps the object from eviction while it is sent.
    pub pin: PinGuard,
}

impl ZeroCopyHit {
    /// Appends the header lines (not the status line, not the final empty line) to `out`.
    pub fn write_headers(&self, out: &mut Vec<u8>) {
        match &self.headers {
            Some(h) => out.extend_from_slice(h),
            None => out.extend_from_slice(&self.object.full_headers),
        }
    }

    /// The file to send from.
    pub fn file(&self) -> &File {
        &self.object.file
    }
}

/// Sends `len` bytes of `file` from `offset` to `socket` with `sendfile(2)` (no copy through
/// user space). Returns the bytes sent; on error, how many were sent before it. The caller
/// counts them in the metrics.
pub async fn sendfile(
    socket: &tokio::net::TcpStream,
    file: &File,
    mut offset: u64,
    len: u64,
) -> Result<u64, (u64, io::Error)> {
    use std::os::fd::AsRawFd;
    let (out_fd, in_fd) = (socket.as_raw_fd(), file.as_raw_fd());
    let mut sent = 0u64;
    while sent < len {
        if let Err(e) = socket.writable().await {
            return Err((sent, e));
        }
        let want = (len - sent).min(1 << 30) as usize;
        let r = socket.try_io(tokio::io::Interest::WRITABLE, || {
            let mut off = offset as libc::off_t;
            // SAFETY: both descriptors are open for the whole call (borrowed from `socket` and
            // `file`, which outlive it), `off` is a valid local the kernel updates, and
            // sendfile does not touch user memory otherwise.
            let n = unsafe { libc::sendfile(out_fd, in_fd, &mut off, want) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as u64)
            }
        });
        match r {
            Ok(0) => {
                return Err((
                    sent,
                    io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"),
                ))
            }
            Ok(n) => {
                sent += n;
                offset += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((sent, e)),
        }
    }
    Ok(sent)
}

/// Sends `len` bytes at `start` of an in-flight object to `socket` with `sendfile`, each span
/// as soon as it is written to the temp file, under the hold-back rule of [`InflightReader`].
/// An error (the download failed, the client left) means the response is cut short.
pub async fn sendfile_inflight(
    socket: &tokio::net::TcpStream,
    inf: Arc<Inflight>,
    start: u64,
    len: u64,
) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    let file = inf.file.clone();
    let mut reader = InflightReader::new(inf, start, start + len - 1);
    while let Some((off, n)) = reader.next_span(u64::MAX).await? {
        sendfile(socket, &file, off, n).await.map_err(|(_, e)| e)?;
    }
    Ok(())
}

/// Writes a response head with `MSG_MORE`, so the kernel sends it in the same segments as the
/// `sendfile` body that follows (no lone small packet per response).
pub async fn write_head_more(socket: &tokio::net::TcpStream, mut buf: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    while !buf.is_empty() {
        socket.writable().await?;
        let r = socket.try_io(tokio::io::Interest::WRITABLE, || {
            // SAFETY: `buf` is a valid, initialised slice for the whole call and `fd` is the
            // socket borrowed from `socket`, open for the call's duration.
            let n = unsafe {
                libc::send(
                    fd,
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_MORE | libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The strong ETag of an object: its SHA-1 in lower-case hex, quoted.
pub fn etag(key: &ContentKey) -> String {
    format!("\"{}\"", hex::encode(key.sha1))
}

/// What a response is about.
pub struct Meta<'a> {
    /// The object.
    pub key: &'a ContentKey,
    /// Its size.
    pub size: u64,
    /// Last-Modified, when the object is complete.
    pub last_modified: Option<SystemTime>,
}

/// The response for `plan`; `body(start, len)` says where the body of a 200/206 GET comes from.
pub fn respond(
    plan: Plan,
    head: bool,
    m: &Meta<'_>,
    body: impl FnOnce(u64, u64) -> Source,
) -> Response<Source> {
    let tag = etag(m.key);
    let (status, range) = match plan {
        Plan::Full => (StatusCode::OK, Some((0, m.size))),
        Plan::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, Some((start, end - start + 1)))
        }
        Plan::NotModified => (StatusCode::NOT_MODIFIED, None),
        Plan::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, None),
        Plan::Unsatisfiable => (StatusCode::RANGE_NOT_SATISFIABLE, None),
    };
    let b = match range {
        Some((start, len)) if !head && len > 0 => body(start, len),
        _ => Source::Empty,
    };
    let mut r = Response::new(b);
    *r.status_mut() = status;
    let h = r.headers_mut();
    let v = |s: String| HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, v(tag));
    if let Some(lm) = m.last_modified {
        h.insert(header::LAST_MODIFIED, v(httpdate::fmt_http_date(lm)));
    }
    match (plan, range) {
        (_, Some((start, len))) => {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(mime::content_type(&m.key.ext)),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            if status == StatusCode::PARTIAL_CONTENT {
                h.insert(
                    header::CONTENT_RANGE,
                    v(format!("bytes {}-{}/{}", start, start + len - 1, m.size)),
                );
            }
        }
        (Plan::Unsatisfiable, _) => {
            h.insert(header::CONTENT_RANGE, v(format!("bytes */{}", m.size)));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
        }
        (Plan::PreconditionFailed, _) => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
        }
        _ => {}
    }
    r
}

/// A body of `len` bytes at `start` of a complete object. The pin keeps it from eviction
/// until the body is finished or dropped.
fn file_body(file: Arc<File>, start: u64, len: u64, pin: PinGuard) -> Body {
    struct St {
        file: Arc<File>,
        pos: u64,
        end: u64,
        _pin: PinGuard,
    }
    let st = St {
        file,
        pos: start,
        end: start + len,
        _pin: pin,
    };
    body::stream(futures_util::stream::unfold(st, |mut st| async move {
        if st.pos >= st.end {
            return None;
        }
        let n = (st.end - st.pos).min(CHUNK) as usize;
        let (f, off) = (st.file.clone(), st.pos);
        let r = tokio::task::spawn_blocking(move || -> io::Result<Bytes> {
            let mut b = BytesMut::zeroed(n);
            f.read_exact_at(&mut b, off)?;
            Ok(b.freeze())
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        match r {
            Ok(b) => {
                st.pos += b.len() as u64;
                crate::metrics::add_content_bytes_cache(b.len() as u64);
                Some((Ok(b), st))
            }
            Err(e) => {
                st.pos = st.end;
                Some((Err(e), st))
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_for_each_plan() {
        let key = ContentKey::new([0x11; 20], "wim").unwrap();
        let m = Meta {
            key: &key,
            size: 100,
            last_modified: Some(SystemTime::UNIX_EPOCH),
        };
        let r = respond(Plan::Partial { start: 10, end: 19 }, false, &m, |_, _| {
            Source::Empty
        });
        assert_eq!(r.status(), 206);
        let h = r.headers();
        assert_eq!(h["content-range"], "bytes 10-19/100");
        assert_eq!(h["content-length"], "10");
        assert_eq!(h["accept-ranges"], "bytes");
        assert_eq!(h["content-type"], "application/x-ms-wim");
        assert_eq!(h["etag"], format!("\"{}\"", "11".repeat(20)).as_str());
        assert_eq!(h["last-modified"], "Thu, 01 Jan 1970 00:00:00 GMT");
        let r = respond(Plan::Unsatisfiable, false, &m, |_, _| unreachable!());
        assert_eq!(r.status(), 416);
        assert_eq!(r.headers()["content-range"], "bytes */100");
        let r = respond(Plan::Full, true, &m, |_, _| unreachable!());
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-length"], "100");
        assert_eq!(
            respond(Plan::NotModified, false, &m, |_, _| unreachable!()).status(),
            304
        );
        assert_eq!(
            respond(Plan::PreconditionFailed, false, &m, |_, _| unreachable!()).status(),
            412
        );
    }
}
