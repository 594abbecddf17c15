//! The zero-copy path for plain TCP: reads each request head itself and, when it is a
//! GET/HEAD of a well-formed payload name, asks the cache once
//! ([`crate::content::ContentCache::answer_zero_copy`]), writes the head ([`super::head`], from
//! the same response parts the hyper path sends) and sends the body with `sendfile`: from the
//! store for a hit, from the temp file as it is written for a miss. Anything else hands the
//! connection, with the bytes already read, to hyper for good.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::access::Entry;
use super::head::{self, DateCache};
use super::listen::Conn;
use super::{sys, Router};
use crate::content::inflight::{Inflight, InflightReader};
use crate::content::key::ContentKey;
use crate::content::serve::{Source, ZeroCopyHit};
use crate::content::{Answer, CacheStatus};
use crate::metrics;

/// Largest request head read by the fast path; longer ones go to hyper (which answers 431).
const MAX_HEAD: usize = 16 * 1024;

/// A stream that first yields already-read bytes.
pub(crate) struct Prepended {
    prefix: BytesMut,
    inner: TcpStream,
}

impl AsyncRead for Prepended {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prepended {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves payload requests on `stream` with sendfile; returns the stream (with the bytes
/// already read) to hand to hyper, or `None` when the connection is finished. Once `stop`
/// turns true the response in progress is finished and the connection closed, as hyper's
/// graceful shutdown does (the listener gives connections 10 s). Each answer writes its
/// access-log line ([`super::access`]) once its last byte is sent or the send failed.
pub(crate) async fn run(
    mut stream: TcpStream,
    peer: std::net::SocketAddr,
    router: &Arc<Router>,
    conn: &Conn,
    stop: &mut watch::Receiver<bool>,
) -> Option<Prepended> {
    let limits = router.limits;
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::with_capacity(512);
    let mut date = DateCache::default();
    loop {
        // Idle until a request's first byte, then the head must complete in time.
        let mut deadline = (!buf.is_empty()).then(|| Instant::now() + limits.header_read_timeout);
        let end = loop {
            if let Some(i) = find_head_end(&buf) {
                break i;
            }
            if buf.len() > MAX_HEAD {
                return Some(Prepended {
                    prefix: buf,
                    inner: stream,
                });
            }
            let wait = deadline.unwrap_or_else(|| Instant::now() + limits.idle_timeout);
            let read = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return None,
                r = stream.read_buf(&mut buf) => r,
                _ = tokio::time::sleep_until(wait) => {
                    tracing::debug!(partial = !buf.is_empty(), "client connection timed out waiting for a request");
                    return None;
                }
            };
            match read {
                Ok(0) | Err(_) if buf.is_empty() => return None,
                Ok(0) | Err(_) => {
                    return Some(Prepended {
                        prefix: buf,
                        inner: stream,
                    })
                }
                Ok(_) => {
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + limits.header_read_timeout);
                    }
                }
            }
        };
        conn.touch();
        let Some(h) = parse_head(&buf[..end]) else {
            return Some(Prepended {
                prefix: buf,
                inner: stream,
            });
        };
        // A well-formed payload name is answered here, anything else by hyper.
        let Ok(key) = ContentKey::parse_path(h.path) else {
            return Some(Prepended {
                prefix: buf,
                inner: stream,
            });
        };
        // Once shutdown has begun, this answer is the connection's last.
        let (method, close) = (h.method.clone(), h.close || *stop.borrow());
        let mut entry = Entry::start("content", method.clone(), h.path, peer, router.access_log);
        let (status, body) = match router
            .content
            .answer_zero_copy(&h.method, &key, &h.headers)
            .await
        {
            Answer::ZeroCopy(hit) => {
                let status = hit.status;
                entry.answered("content", status, Some(CacheStatus::Hit));
                head::write(&mut out, status, hit.headers(), &mut date, close);
                let body = match hit.span {
                    Some((start, len)) if method == Method::GET => Reply::Hit(hit, start, len),
                    _ => Reply::HeadOnly,
                };
                (status, body)
            }
            // A miss: an in-flight body goes out with sendfile as it is written.
            Answer::Response(resp) => {
                let (parts, source) = resp.into_parts();
                let cache = parts.extensions.get::<CacheStatus>().copied();
                entry.answered("content", parts.status, cache);
                head::write(&mut out, parts.status, &parts.headers, &mut date, close);
                (parts.status, Reply::Source(source))
            }
        };
        buf.advance(end);
        let (n, sent) = match body {
            Reply::HeadOnly => (0, stream.write_all(&out).await),
            Reply::Hit(hit, start, len) => {
                let r = send_file(&stream, &out, hit.file(), start, len).await;
                drop(hit);
                r
            }
            Reply::Source(Source::Empty) => (0, stream.write_all(&out).await),
            Reply::Source(Source::Text(t)) => {
                // HEAD: the length of the text, but not the text.
                let n = if method == Method::GET {
                    out.extend_from_slice(&t);
                    t.len() as u64
                } else {
                    0
                };
                let r = stream.write_all(&out).await;
                (if r.is_ok() { n } else { 0 }, r)
            }
            Reply::Source(Source::File {
                file, start, len, ..
            }) => send_file(&stream, &out, &file, start, len).await,
            Reply::Source(Source::Inflight { inf, start, len }) => {
                // Not corked (MSG_MORE) like a hit's head: the first bytes may not have arrived
                // yet, and a corked head would wait for the kernel's probe timer (~200 ms).
                match stream.write_all(&out).await {
                    Ok(()) => sendfile_inflight(&stream, inf, start, len).await,
                    Err(e) => (0, Err(e)),
                }
            }
        };
        metrics::http_request("content", status.as_u16());
        entry.sent(n);
        entry.finish();
        if let Err(e) = sent {
            tracing::debug!(error = %e, "content response ended early");
            return None;
        }
        if close {
            let _ = stream.shutdown().await;
            return None;
        }
        conn.touch();
    }
}

/// What the fast path sends after the head.
enum Reply {
    /// Nothing (HEAD, or an answer without a body).
    HeadOnly,
    /// `len` bytes at `start` of a hit, with sendfile.
    Hit(ZeroCopyHit, u64, u64),
    /// The body of a cache answer (a miss, an error).
    Source(Source),
}

/// Sends `len` bytes at `start` of an in-flight object to `socket` with `sendfile`, each span
/// as soon as it is written to the temp file, under the hold-back rule of [`InflightReader`].
/// An error (the download failed, the client left) means the response is cut short. Returns
/// the body bytes sent with the outcome.
async fn sendfile_inflight(
    socket: &TcpStream,
    inf: Arc<Inflight>,
    start: u64,
    len: u64,
) -> (u64, io::Result<()>) {
    if len == 0 {
        return (0, Ok(()));
    }
    let file = inf.file.clone();
    let mut reader = InflightReader::new(inf, start, start + len - 1);
    let mut total = 0;
    loop {
        let (off, n) = match reader.next_span(u64::MAX).await {
            Ok(Some(span)) => span,
            Ok(None) => return (total, Ok(())),
            Err(e) => return (total, Err(e)),
        };
        match sys::sendfile(socket, &file, off, n).await {
            Ok(sent) => total += sent,
            Err((sent, e)) => return (total + sent, Err(e)),
        }
    }
}

/// Writes the head with `MSG_MORE`, then `len` bytes of `file` at `start` with sendfile.
/// Returns the body bytes sent with the outcome.
async fn send_file(
    stream: &TcpStream,
    head: &[u8],
    file: &std::fs::File,
    start: u64,
    len: u64,
) -> (u64, io::Result<()>) {
    if let Err(e) = sys::send_more(stream, head).await {
        return (0, Err(e));
    }
    let r = sys::sendfile(stream, file, start, len).await;
    let sent = match &r {
        Ok(n) => *n,
        Err((n, _)) => *n,
    };
    metrics::add_content_bytes_cache(sent);
    (sent, r.map(|_| ()).map_err(|(_, e)| e))
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// A request head the fast path may answer. `headers` holds only the ones that shape the
/// answer (Range and the conditionals); the others are checked and dropped.
struct Head<'a> {
    method: Method,
    path: &'a str,
    headers: HeaderMap,
    close: bool,
}

/// Request headers the answer depends on.
fn shapes_answer(n: &HeaderName) -> bool {
    use http::header as h;
    *n == h::RANGE
        || *n == h::IF_RANGE
        || *n == h::IF_MATCH
        || *n == h::IF_NONE_MATCH
        || *n == h::IF_MODIFIED_SINCE
}

/// Parses a GET/HEAD of `/Content/...` over HTTP/1.1 without a body; `None` for anything
/// else (hyper then parses it again and answers, errors included).
fn parse_head(b: &[u8]) -> Option<Head<'_>> {
    let s = std::str::from_utf8(b).ok()?;
    let mut lines = s.split("\r\n");
    let mut rl = lines.next()?.split(' ');
    let (method, target, version) = (rl.next()?, rl.next()?, rl.next()?);
    if rl.next().is_some()
        || version != "HTTP/1.1"
        || !target.starts_with('/')
        || target.contains('?')
    {
        return None;
    }
    let method = match method {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        _ => return None,
    };
    if !target.get(..9)?.eq_ignore_ascii_case("/content/") {
        return None;
    }
    let mut headers = HeaderMap::new();
    let mut close = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let (n, v) = line.split_once(':')?;
        let n = HeaderName::from_bytes(n.as_bytes()).ok()?;
        let v = HeaderValue::from_str(v.trim()).ok()?;
        if n == http::header::TRANSFER_ENCODING
            || (n == http::header::CONTENT_LENGTH && v.as_bytes() != b"0")
        {
            return None;
        }
        if n == http::header::CONNECTION {
            close |= v
                .to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("close"));
        } else if shapes_answer(&n) {
            headers.append(n, v);
        }
    }
    Some(Head {
        method,
        path: target,
        headers,
        close,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_plain_content_gets() {
        let h = parse_head(b"GET /content/AB/x HTTP/1.1\r\nHost: a\r\nRange: bytes=0-1\r\nConnection: Close\r\n\r\n").unwrap();
        assert_eq!(h.method, Method::GET);
        assert_eq!(h.headers["range"], "bytes=0-1");
        assert!(h.close);
        for bad in [
            &b"POST /Content/AB/x HTTP/1.1\r\n\r\n"[..],
            b"GET /Content/AB/x HTTP/1.0\r\n\r\n",
            b"GET /ClientWebService/client.asmx HTTP/1.1\r\n\r\n",
            b"GET /Content/AB/x?a=b HTTP/1.1\r\n\r\n",
            b"GET /Content/AB/x HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            b"GET /Content/AB/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /Content/AB/x HTTP/1.1\r\nbad header\r\n\r\n",
            b"GET http://h/Content/AB/x HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                parse_head(bad).is_none(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
    }
}
