//! Client-facing HTTP: bytes on the wire. The one accept loop of every listener with its caps
//! and timeouts ([`listen`]), the plain HTTP/1.1 listener (keep-alive, graceful shutdown) and
//! its zero-copy path for payloads (`fastpath`, heads from [`head`], syscalls in `sys`), the
//! TLS listener ([`tls`]), response bodies ([`body`]), the access log and request-duration
//! histogram ([`access`], a tower layer where hyper serves) and request routing. Routing is case-insensitive on the path: `/Content/...` goes to the payload cache,
//! `/selfupdate/...` to the self-update proxy, SOAP endpoints to the [`SoapService`] registered
//! for their lower-case path, anything else is a 404. It owns no protocol logic itself.
//!
//! Adding a SOAP service is one line where the router is built (see [`crate::app::router`]):
//! `router.soap("/ClientWebService/client.asmx", Arc::new(MyService))`.

pub mod access;
pub mod body;
mod fastpath;
pub mod head;
pub mod listen;
mod selfupdate;
mod sys;
pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use body::Body;
pub use listen::Limits;
pub use selfupdate::SelfUpdateProxy;

use crate::content::ContentCache;
use crate::metrics;

/// A SOAP request as handed to a service: the body is complete and within
/// `server.max_request_body`.
#[derive(Debug, Clone)]
pub struct SoapRequest {
    /// The request path as received.
    pub path: String,
    /// The `SOAPAction` header (quotes removed), if any.
    pub soap_action: Option<String>,
    /// All request headers (Host, Content-Type, cookies, ...).
    pub headers: HeaderMap,
    /// The request body.
    pub body: Bytes,
    /// The client's address.
    pub peer: SocketAddr,
    /// The slot a body larger than the router's `max_request_body` holds ([`BIG_BODIES`]):
    /// it goes with the body, so a blocking task still working on it keeps it even when the
    /// connection is gone.
    pub big_body: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
}

/// The future a [`SoapService`] returns.
pub type SoapFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send + 'static>>;

/// A SOAP endpoint (ClientWebService, SimpleAuth, Reporting, ServerSync, DssAuth). Services
/// never fail: every error becomes a response (a `soap:Fault` with the right status).
pub trait SoapService: Send + Sync + 'static {
    /// A short name for logs and metrics (`client`, `simpleauth`, `reporting`, ...).
    fn name(&self) -> &'static str;
    /// Answers one POST.
    fn call(&self, req: SoapRequest) -> SoapFuture;
    /// Decides before the body is read: `Some(answer)` answers the request at once (the body
    /// is not read and the connection is closed after it). `body_len` is the declared length,
    /// or `max_request_body` for a chunked body; `soap_action` the `SOAPAction` header
    /// (unquoted). Reporting uses it to shed one address's flood
    /// ([`crate::client_service::shed`]).
    fn refuse_before_body(
        &self,
        _peer: SocketAddr,
        _body_len: u64,
        _soap_action: Option<&str>,
    ) -> Option<Response<Body>> {
        None
    }
    /// The largest body read for a request with `soap_action` when that is more than the
    /// router's `max_request_body` (which every request may use): a downstream server's
    /// status rollup is larger than any client request. At most [`BIG_BODIES`] bodies over
    /// the router's limit are read at once.
    fn body_limit(&self, _soap_action: Option<&str>) -> Option<u64> {
        None
    }
}

/// Most bytes of an oversized body read and dropped before its 413 ([`linger`]).
const DRAIN_BYTES: u64 = 16 << 20;
/// Longest time spent reading an oversized body before its 413 ([`linger`]).
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Answers `r` to a request whose body is not wanted, closing the connection after it: the
/// body is read and dropped first ([`linger`]), so a client still writing it sees `r`, not a
/// reset.
async fn refuse_unread(body: Incoming, mut r: Response<Body>) -> Response<Body> {
    linger(body, DRAIN_BYTES, DRAIN_TIME).await;
    r.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    r
}

/// Reads and drops `body` until it ends, `max_bytes` have come or `max_time` has passed.
async fn linger(mut body: Incoming, max_bytes: u64, max_time: std::time::Duration) {
    let read = async {
        let mut n = 0u64;
        while n < max_bytes {
            match body.frame().await {
                Some(Ok(f)) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(max_time, read).await;
}

/// How many request bodies larger than the router's `max_request_body` (allowed by
/// [`SoapService::body_limit`]) are read at once; another is answered 503 with
/// `Retry-After` before its body is read. Each is held in memory whole, so this bounds what
/// large requests can take, whoever sends them (the body is read before its cookie is checked).
pub const BIG_BODIES: usize = 2;

/// The `Retry-After` of a large request refused because [`BIG_BODIES`] are being read.
const BIG_BODY_RETRY_AFTER: &str = "30";

/// How long a request refused before its body ([`SoapService::refuse_before_body`]) waits
/// before its answer.
pub const SHED_HOLD: std::time::Duration = std::time::Duration::from_secs(1);

/// Routes requests to the content cache, the self-update proxy and the SOAP services.
pub struct Router {
    content: ContentCache,
    selfupdate: Option<SelfUpdateProxy>,
    soap: HashMap<String, Arc<dyn SoapService>>,
    max_request_body: u64,
    big_bodies: Arc<tokio::sync::Semaphore>,
    limits: Limits,
    access_log: bool,
}

impl Router {
    /// A router serving `/Content/` from `content`; SOAP bodies are limited to
    /// `max_request_body` bytes (413 past it).
    pub fn new(content: ContentCache, max_request_body: u64) -> Self {
        Self {
            content,
            selfupdate: None,
            soap: HashMap::new(),
            max_request_body,
            big_bodies: Arc::new(tokio::sync::Semaphore::new(BIG_BODIES)),
            limits: Limits::default(),
            access_log: true,
        }
    }

    /// Writes an access-log line per request (`[log] access`, [`access`]) or not.
    pub fn access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    /// Serves connections under `limits` (caps and timeouts, [`listen`]) instead of the
    /// defaults of `[server]`.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Serves `/selfupdate/...` through `proxy`.
    pub fn selfupdate(mut self, proxy: Option<SelfUpdateProxy>) -> Self {
        self.selfupdate = proxy;
        self
    }

    /// Registers a SOAP service at `path` (matched case-insensitively).
    pub fn soap(mut self, path: &str, service: Arc<dyn SoapService>) -> Self {
        self.add_soap(path, service);
        self
    }

    /// Registers a SOAP service at `path` in place.
    pub fn add_soap(&mut self, path: &str, service: Arc<dyn SoapService>) {
        self.soap.insert(path.to_ascii_lowercase(), service);
    }

    /// Answers one request; the response carries the name of the service that answered
    /// ([`access::ServiceName`]) for the access log.
    pub async fn route(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let path = req.uri().path().to_string();
        let lower = path.to_ascii_lowercase();
        let method = req.method().clone();
        let (service, resp) = if lower.starts_with("/content/") {
            let r = self
                .content
                .answer(&method, &path, req.headers())
                .await
                .map(body::content);
            ("content", r)
        } else if lower.starts_with("/selfupdate/") {
            let r = match &self.selfupdate {
                Some(p) => p.handle(&method, &path, req.headers()).await,
                None => body::text(StatusCode::NOT_FOUND, "no upstream for self-update"),
            };
            ("selfupdate", r)
        } else if let Some(svc) = self.soap.get(&lower).cloned() {
            (
                svc.name(),
                self.call_soap(svc, req, path.clone(), peer).await,
            )
        } else {
            ("none", body::text(StatusCode::NOT_FOUND, "not found"))
        };
        metrics::http_request(service, resp.status().as_u16());
        let mut resp = resp;
        resp.extensions_mut().insert(access::ServiceName(service));
        resp
    }

    async fn call_soap(
        &self,
        svc: Arc<dyn SoapService>,
        req: Request<Incoming>,
        path: String,
        peer: SocketAddr,
    ) -> Response<Body> {
        if req.method() != Method::POST {
            let mut r = body::text(StatusCode::METHOD_NOT_ALLOWED, "SOAP endpoints take POST");
            r.headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
            return r;
        }
        let (parts, incoming) = req.into_parts();
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let soap_action = parts
            .headers
            .get("soapaction")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.trim().trim_matches('"').to_string());
        let limit = svc
            .body_limit(soap_action.as_deref())
            .map_or(self.max_request_body, |l| l.max(self.max_request_body));
        if declared.is_some_and(|n| n > limit) {
            // Read (and drop) what the client is sending before answering: closing on unread
            // bytes makes the kernel reset the connection, and a client still writing its body
            // then sees "connection reset" instead of the 413 (tests/client_server caught it
            // about one run in ten). Bounded, so a huge or trickling body costs little.
            let r = body::text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
            return refuse_unread(incoming, r).await;
        }
        let body_len = http_body::Body::size_hint(&incoming)
            .exact()
            .unwrap_or(self.max_request_body);
        // A body that may be larger than the usual limit takes one of the few slots for
        // large bodies, held as long as the body is (it goes into the request).
        let big_body = if limit > self.max_request_body
            && declared.is_none_or(|n| n > self.max_request_body)
        {
            match self.big_bodies.clone().try_acquire_owned() {
                Ok(permit) => Some(Arc::new(permit)),
                Err(_) => {
                    tracing::warn!(%peer, soap_action = soap_action.as_deref().unwrap_or(""), "large request refused: other large requests are being read");
                    let mut r = body::text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "other large requests are being read; retry later",
                    );
                    r.headers_mut().insert(
                        http::header::RETRY_AFTER,
                        http::HeaderValue::from_static(BIG_BODY_RETRY_AFTER),
                    );
                    return refuse_unread(incoming, r).await;
                }
            }
        } else {
            None
        };
        if let Some(mut r) = svc.refuse_before_body(peer, body_len, soap_action.as_deref()) {
            r.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            // Held a moment before it goes out: a refused flooder would otherwise reconnect
            // and resend at once, hundreds of times a second, and the churn (accepts, resets,
            // the bytes it pushes before the reset) costs the LAN and this host more than the
            // refusal. Holding costs no CPU; the per-address connection cap bounds the sockets.
            tokio::time::sleep(SHED_HOLD).await;
            return r;
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let bytes = match http_body_util::Limited::new(incoming, limit)
            .collect()
            .await
        {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return body::text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
                }
                return body::text(StatusCode::BAD_REQUEST, "could not read request body");
            }
        };
        svc.call(SoapRequest {
            path,
            soap_action,
            headers: parts.headers,
            body: bytes,
            peer,
            big_body,
        })
        .await
    }
}

/// Accept backlog of the client listeners: after Patch Tuesday a whole site's agents connect
/// at once; the kernel caps it at `net.core.somaxconn` (4096 on current kernels).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds a client listener with [`LISTEN_BACKLOG`] (tokio's `TcpListener::bind` uses 1024,
/// which a burst of a thousand connecting agents overflows: the kernel then resets some).
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves HTTP/1.1 on `listener` until `shutdown` turns true; then stops accepting, lets
/// in-flight requests finish (up to 10 s) and returns.
pub async fn serve(listener: TcpListener, router: Arc<Router>, shutdown: watch::Receiver<bool>) {
    let limits = router.limits;
    listen::accept_loop(
        listener,
        shutdown,
        "http",
        limits,
        move |stream, peer, conn, mut stop| {
            let router = router.clone();
            async move {
                // Payloads go out with sendfile until a request needs hyper.
                let fast = fastpath::run(stream, peer, &router, &conn, &mut stop).await;
                if let Some(stream) = fast {
                    serve_connection(stream, router, peer, conn, false, stop).await;
                }
            }
        },
    )
    .await
}

/// Runs one keep-alive HTTP/1.1 connection through the router until it ends, or until `stop`
/// turns true (then shuts it down gracefully). `tls` says whether it arrived over TLS: the
/// internal [`tls::TLS_MARK_HEADER`] is set then, and stripped from anything a client sends
/// on the plain listener.
pub(crate) async fn serve_connection<I>(
    io: I,
    router: Arc<Router>,
    peer: SocketAddr,
    conn: Arc<listen::Conn>,
    tls: bool,
    mut stop: watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = router.limits;
    let access = access::AccessLayer::new("none", peer, router.access_log);
    let svc =
        tower::ServiceBuilder::new()
            .layer(access)
            .service_fn(move |mut req: Request<Incoming>| {
                let router = router.clone();
                req.headers_mut().remove(tls::TLS_MARK_HEADER);
                if tls {
                    req.headers_mut()
                        .insert(tls::TLS_MARK_HEADER, http::HeaderValue::from_static("1"));
                }
                async move { Ok::<_, std::convert::Infallible>(router.route(req, peer).await) }
            });
    let svc = hyper_util::service::TowerToHyperService::new(svc);
    let conn = limits
        .http1()
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(listen::Tracked::new(io, conn)), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, tls, error = %e, "connection ended with error");
            }
        }
        _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
