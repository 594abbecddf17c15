//! Building content responses: status and headers from a `range::Plan` ([`respond`], the one
//! place a content answer's head is decided, for hyper and the zero-copy path alike), and a
//! [`Source`] saying where the body comes from (a complete object, an object still in flight,
//! a short text). How those bytes go on the wire is [`crate::http`]'s: a hyper body, or
//! `sendfile` on the zero-copy path. Content responses always carry `Content-Length` (never
//! chunked); object answers also `Accept-Ranges: bytes` and a strong `ETag` derived from the
//! SHA-1, so it never changes for the object.

use std::fs::File;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use super::evict::PinGuard;
use super::hot::HotObject;
use super::inflight::Inflight;
use super::key::ContentKey;
use super::mime;
use super::range::Plan;

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
    /// the hold-back rule of [`super::inflight::InflightReader`].
    Inflight {
        /// The download.
        inf: Arc<Inflight>,
        /// First byte.
        start: u64,
        /// Length.
        len: u64,
    },
}

/// A plain-text answer with `status` (errors).
pub fn text(status: StatusCode, msg: &str) -> Response<Source> {
    let mut r = Response::new(Source::Text(Bytes::from(format!("{msg}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(msg.len() + 1));
    r
}

/// A hit to send with `sendfile`: the response head, the object and the byte range.
#[derive(Debug)]
pub struct ZeroCopyHit {
    /// Status of the answer.
    pub status: StatusCode,
    /// The object (open handle and the headers of its full answer).
    pub object: Arc<HotObject>,
    /// Headers of answers other than a plain `200`; `None` means the object's full-answer
    /// headers.
    pub headers: Option<http::HeaderMap>,
    /// `(start, len)` of the body, `None` when the response has no body.
    pub span: Option<(u64, u64)>,
    /// Keeps the object from eviction while it is sent.
    pub pin: PinGuard,
}

impl ZeroCopyHit {
    /// The response headers (not the status line).
    pub fn headers(&self) -> &http::HeaderMap {
        self.headers.as_ref().unwrap_or(&self.object.headers)
    }

    /// The file to send from.
    pub fn file(&self) -> &File {
        &self.object.file
    }
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
