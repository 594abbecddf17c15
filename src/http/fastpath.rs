//! The zero-copy path for plain TCP: reads each request head itself and, when it is a
//! GET/HEAD of an object complete in the store, writes the head and sends the body with
//! `sendfile` (the decision is the same [`crate::content::range`] plan the hyper path uses).
//! Anything else hands the connection, with the bytes already read, to hyper for good.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::Router;
use crate::content::serve;
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

/// Serves requests on `stream` with sendfile while they are hits; returns the stream (with
/// the bytes already read) to hand to hyper, or `None` when the connection is finished.
pub(crate) async fn run(mut stream: TcpStream, router: &Arc<Router>) -> Option<Prepended> {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
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
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) if buf.is_empty() => return None,
                Ok(0) | Err(_) => {
                    return Some(Prepended {
                        prefix: buf,
                        inner: stream,
                    })
                }
                Ok(_) => {}
            }
        };
        let hit = parse_head(&buf[..end]).and_then(|h| {
            router
                .content
                .zero_copy_hit(&h.method, &h.path, &h.headers)
                .map(|hit| (h, hit))
        });
        let Some((req, hit)) = hit else {
            return Some(Prepended {
                prefix: buf,
                inner: stream,
            });
        };
        buf.advance(end);
        let status = hit.head.status;
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {}\r\ndate: {}\r\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                httpdate::fmt_http_date(std::time::SystemTime::now())
            )
            .as_bytes(),
        );
        for (n, v) in hit.head.headers.iter() {
            out.extend_from_slice(n.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if req.close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let body_follows = hit.span.is_some() && req.method == Method::GET;
        let written = if body_follows {
            serve::write_head_more(&stream, &out).await
        } else {
            stream.write_all(&out).await
        };
        if written.is_err() {
            return None;
        }
        metrics::http_request("content", status.as_u16());
        if let (Some((start, len)), true) = (hit.span, req.method == Method::GET) {
            if let Err((sent, e)) = serve::sendfile(&stream, &hit.file, start, len).await {
                tracing::debug!(error = %e, sent, "sendfile ended early");
                return None;
            }
        }
        drop(hit);
        if req.close {
            let _ = stream.shutdown().await;
            return None;
        }
    }
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// A request head the fast path may answer.
struct Head {
    method: Method,
    path: String,
    headers: HeaderMap,
    close: bool,
}

/// Parses a GET/HEAD of `/Content/...` over HTTP/1.1 without a body; `None` for anything
/// else (hyper then parses it again and answers, errors included).
fn parse_head(b: &[u8]) -> Option<Head> {
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
    for line in lines.filter(|l| !l.is_empty()) {
        let (n, v) = line.split_once(':')?;
        let n = HeaderName::from_bytes(n.as_bytes()).ok()?;
        let v = HeaderValue::from_str(v.trim()).ok()?;
        headers.append(n, v);
    }
    if headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
    {
        return None;
    }
    let close = headers.get_all(http::header::CONNECTION).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("close"))
    });
    Some(Head {
        method,
        path: target.to_string(),
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
