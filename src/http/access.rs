//! The access log and the request-duration histogram: one line per request, on the hyper
//! paths (client HTTP, client HTTPS, admin) through the tower layer [`AccessLayer`], and on
//! the zero-copy content path through [`Entry`] directly. Either way the line is written, and
//! `wsus_edge_http_request_duration_seconds{service}` observed, when the response's last
//! byte has gone out (or the response was cut short), so `bytes` and `duration_ms` cover the
//! body, not only the head.
//!
//! A line is an `info` event of target [`TARGET`] (`wsus_edge::access`, so a `RUST_LOG`
//! directive can filter it) with the fields `method`, `path`, `status`, `bytes` (body bytes
//! sent), `cache` (`hit`, `miss`, `coalesced` or `-`), `duration_ms`, plus `service` and
//! `peer`; with `--log-format json` they are fields of the line's JSON object.
//! `[log] access = false` turns the lines off (the histogram stays).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Buf;
use http::{Method, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::content::CacheStatus;
use crate::metrics;

/// The tracing target of access-log lines.
pub const TARGET: &str = "wsus_edge::access";

/// Which service answered, set by the router on its responses (extension); the layer's own
/// name is used when a response carries none.
#[derive(Debug, Clone, Copy)]
pub struct ServiceName(pub &'static str);

/// One request being answered: what the line and the histogram need, finished once.
#[derive(Debug)]
pub struct Entry {
    service: &'static str,
    method: Method,
    path: String,
    peer: SocketAddr,
    started: Instant,
    status: u16,
    cache: Option<CacheStatus>,
    bytes: u64,
    log: bool,
}

impl Entry {
    /// A request whose head has just been read.
    pub fn start(
        service: &'static str,
        method: Method,
        path: &str,
        peer: SocketAddr,
        log: bool,
    ) -> Self {
        Self {
            service,
            method,
            path: path.to_string(),
            peer,
            started: Instant::now(),
            status: 0,
            cache: None,
            bytes: 0,
            log,
        }
    }

    /// Records the answer's status, the cache's verdict and the service that answered.
    pub fn answered(
        &mut self,
        service: &'static str,
        status: http::StatusCode,
        cache: Option<CacheStatus>,
    ) {
        self.service = service;
        self.status = status.as_u16();
        self.cache = cache;
    }

    /// Adds `n` body bytes sent.
    pub fn sent(&mut self, n: u64) {
        self.bytes += n;
    }

    /// The response is over: observes its duration and writes the line.
    pub fn finish(self) {
        let elapsed = self.started.elapsed();
        metrics::observe_request(self.service, elapsed.as_secs_f64());
        if !self.log {
            return;
        }
        let cache = match self.cache {
            Some(c) => c.as_str(),
            None => "-",
        };
        // Milliseconds with microsecond resolution.
        let duration_ms = (elapsed.as_micros() as f64) / 1000.0;
        tracing::info!(
            target: TARGET,
            method = %self.method,
            path = %self.path,
            status = self.status,
            bytes = self.bytes,
            cache = %cache,
            duration_ms,
            service = %self.service,
            peer = %self.peer,
            "access"
        );
    }
}

/// The tower layer writing the access log of a hyper connection from `peer`. `service` names
/// the answers that carry no [`ServiceName`] (the admin API's); `log` is `[log] access`.
#[derive(Debug, Clone, Copy)]
pub struct AccessLayer {
    service: &'static str,
    peer: SocketAddr,
    log: bool,
}

impl AccessLayer {
    /// A layer for one connection.
    pub fn new(service: &'static str, peer: SocketAddr, log: bool) -> Self {
        Self { service, peer, log }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = Access<S>;
    fn layer(&self, inner: S) -> Access<S> {
        Access {
            inner,
            layer: *self,
        }
    }
}

/// The service [`AccessLayer`] makes: answers through the inner service and hands each
/// response body an [`Entry`] to finish when the body ends or is dropped.
#[derive(Debug, Clone)]
pub struct Access<S> {
    inner: S,
    layer: AccessLayer,
}

/// The future of [`Access`].
pub type AccessFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<AccessBody<B>>, E>> + Send + 'static>>;

impl<S, ReqB, B> tower::Service<Request<ReqB>> for Access<S>
where
    S: tower::Service<Request<ReqB>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: 'static,
{
    type Response = Response<AccessBody<B>>;
    type Error = S::Error;
    type Future = AccessFuture<B, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let l = self.layer;
        let mut entry = Entry::start(
            l.service,
            req.method().clone(),
            req.uri().path(),
            l.peer,
            l.log,
        );
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            let service = resp
                .extensions()
                .get::<ServiceName>()
                .map_or(l.service, |s| s.0);
            let cache = resp.extensions().get::<CacheStatus>().copied();
            entry.answered(service, resp.status(), cache);
            Ok(resp.map(|body| AccessBody {
                inner: body,
                entry: Some(entry),
            }))
        })
    }
}

/// A response body that counts the bytes it yields and finishes its [`Entry`] at its end,
/// on an error, or when dropped unfinished (client gone, HEAD).
#[derive(Debug)]
pub struct AccessBody<B> {
    inner: B,
    entry: Option<Entry>,
}

impl<B> AccessBody<B> {
    fn finish(&mut self) {
        if let Some(e) = self.entry.take() {
            e.finish();
        }
    }
}

impl<B> Drop for AccessBody<B> {
    fn drop(&mut self) {
        self.finish();
    }
}

impl<B> HttpBody for AccessBody<B>
where
    B: HttpBody + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(d), Some(e)) = (frame.data_ref(), this.entry.as_mut()) {
                    e.sent(d.remaining() as u64);
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => this.finish(),
            Poll::Pending => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::{Layer, Service, ServiceExt};

    #[tokio::test]
    async fn the_body_counts_what_it_yields_and_the_service_names_come_through() {
        let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let inner = tower::service_fn(|req: Request<()>| async move {
            let mut r = Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
                b"hello world",
            )));
            if req.uri().path() == "/c" {
                r.extensions_mut().insert(ServiceName("content"));
                r.extensions_mut().insert(CacheStatus::Coalesced);
            }
            Ok::<_, std::convert::Infallible>(r)
        });
        let mut svc = AccessLayer::new("admin", peer, false).layer(inner);
        let req = Request::get("/c").body(()).unwrap();
        let resp = svc.ready().await.unwrap().call(req).await.unwrap();
        let mut body = resp.into_body();
        {
            let e = body.entry.as_ref().unwrap();
            assert_eq!(e.service, "content");
            assert_eq!(e.cache, Some(CacheStatus::Coalesced));
            assert_eq!(e.status, 200);
            assert_eq!(e.bytes, 0);
        }
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap().len(), 11);
        assert!(body.entry.is_none(), "finished with its last byte");

        let req = Request::get("/x").body(()).unwrap();
        let resp = svc.ready().await.unwrap().call(req).await.unwrap();
        let e = resp.body().entry.as_ref().unwrap();
        assert_eq!((e.service, e.cache), ("admin", None));
    }
}
