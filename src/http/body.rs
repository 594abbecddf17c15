//! The one response body type of the client-facing server, and its constructors, including
//! the hyper body of a content answer ([`content`]): positional reads of 256 KiB on the
//! blocking pool, so the file handle stays valid even if the object is evicted meanwhile.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Empty, Full, StreamBody};

use crate::content::evict::PinGuard;
use crate::content::inflight::InflightReader;
use crate::content::serve::Source;

const CHUNK: u64 = 256 * 1024;

/// A response body: bytes, or an I/O error that aborts the connection (never a clean end).
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A body of the given bytes.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body streamed from chunks; an `Err` item aborts the connection.
pub fn stream<S>(s: S) -> Body
where
    S: futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
{
    use futures_util::TryStreamExt;
    StreamBody::new(s.map_ok(http_body::Frame::data)).boxed_unsync()
}

/// A plain-text response with `status`.
pub fn text(status: http::StatusCode, msg: &str) -> http::Response<Body> {
    let mut r = http::Response::new(full(format!("{msg}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The hyper body of a content answer.
pub fn content(src: Source) -> Body {
    match src {
        Source::Empty => empty(),
        Source::Text(b) => full(b),
        Source::File {
            file,
            start,
            len,
            pin,
        } => file_body(file, start, len, pin),
        Source::Inflight { inf, start, len } => {
            stream(InflightReader::new(inf, start, start + len - 1).into_stream())
        }
    }
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
    stream(futures_util::stream::unfold(st, |mut st| async move {
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
