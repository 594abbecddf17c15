//! The one response body type of the client-facing server, and its constructors.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, StreamBody};

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
