//! The admin API: JSON over HTTP on its own listener (`[admin] listen`, default
//! `127.0.0.1:8590`), never on the client ports. It owns authentication ([`auth`]), the JSON
//! shapes ([`types`]), the handlers behind every CLI verb ([`api`], [`ops`]), `GET /metrics`,
//! `GET /healthz` and the read-only status page ([`page`]).
//!
//! # Access
//! - `GET /healthz` needs no token (it reveals only "ok" or "unhealthy", for load balancers
//!   and service managers).
//! - Everything else needs `Authorization: Bearer <token>`, compared in constant time.
//! - `GET /metrics` also accepts the read-only metrics token (`[admin] metrics_token_file` or
//!   `WSUS_EDGE_METRICS_TOKEN`), which opens nothing else, and with
//!   `[admin] metrics_loopback_without_token = true` needs no token from a loopback client.
//! - `GET` requests (the status page, `/metrics`, read-only JSON) also accept the session
//!   cookie that the login form (`POST /login`) sets after the admin pastes the token. Writes
//!   always need the bearer header, so a browser session cannot be abused cross-site.
//!
//! # Endpoints (all JSON unless noted)
//! | method, path | verb |
//! |---|---|
//! | `GET /api/updates?status=&classification=&product=&text=` | `updates list` |
//! | `GET /api/updates/show?id=` | `updates show` |
//! | `POST /api/updates/approve` | `updates approve` |
//! | `POST /api/updates/decline` | `updates decline` |
//! | `GET /api/groups`, `POST /api/groups`, `POST /api/groups/remove` | `groups list/add/remove` |
//! | `GET /api/computers?group=&stale=&status=&include_downstream=1`, `GET /api/computers/show?name=` | `computers list/show` |
//! | `POST /api/computers/move {name, group}`, `POST /api/computers/remove {name}` | `computers move/remove` |
//! | `GET /api/updates/status?id=` | `updates status` |
//! | `POST /api/rollup` | `rollup` (MS-WSUSSS reporting rollup to the upstream, now) |
//! | `GET /api/classifications`, `GET /api/products` | `classifications/products list` |
//! | `GET`/`PUT /api/subscription` | `subscription set` |
//! | `GET /api/sync`, `POST /api/sync` | `sync status`, `sync` |
//! | `GET /api/content`, `POST /api/content/verify` (NDJSON progress), `POST /api/content/prefetch` | `content ...` |
//! | `POST /api/cleanup?dry_run=1` | `cleanup` |
//! | `POST /api/export`, `POST /api/import` | `export`, `import` ([`transfer`]) |
//! | `GET /api/status` | `status` |
//!
//! The status page (HTML, [`page`]) is `GET /`; its per-update and per-computer views are
//! `GET /updates/status?id=ID|KB` and `GET /computers/show?name=NAME|ID` (the JSON paths
//! without `/api`, rendered from the same functions).

pub mod api;
pub mod auth;
mod catalog;
pub mod compliance;
mod computer;
mod content_cache;
pub mod ops;
pub mod page;
mod page_compliance;
mod query;
pub mod transfer;
pub mod types;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::metrics;
use crate::model::FileRecord;
use crate::store::{Store, StoreError};
use crate::sync::SyncHandle;
pub use auth::Token;

/// Largest admin request body accepted.
const MAX_BODY: usize = 1 << 20;

/// A response body: whole JSON/HTML, or a stream (verify progress).
pub type AdminBody = BoxBody<Bytes, std::io::Error>;

/// The future [`ContentOps::ensure`] returns.
pub type EnsureFuture =
    Pin<Box<dyn Future<Output = Result<(), crate::content::EnsureError>> + Send + 'static>>;

/// What the admin API needs from the payload cache beyond the store's object index
/// (implemented for [`crate::content::ContentCache`]).
pub trait ContentOps: Send + Sync + 'static {
    /// Makes sure a file is in the cache, downloading it now if needed.
    fn ensure(&self, file: &FileRecord) -> EnsureFuture;
    /// Tells the cache an object left its folder behind its back (quarantine, cleanup).
    fn forget(&self, sha1: &[u8; 20], size: u64);
}

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The token could not be loaded or created.
    #[error(transparent)]
    Token(#[from] auth::TokenError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr} (admin): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Everything the admin handlers use.
pub struct AdminState {
    /// The effective configuration.
    pub config: Config,
    /// The metadata store (shared with the server).
    pub store: Store,
    /// The payload cache, when the server runs one.
    pub content: Option<Arc<dyn ContentOps>>,
    /// The sync runner's control handle (replica mode).
    pub sync: Option<SyncHandle>,
    /// The bearer token.
    pub token: Token,
    /// Serializes `content verify`, `prefetch` and `cleanup` (one at a time).
    pub maintenance: Arc<tokio::sync::Mutex<()>>,
    /// Failed authentications per address (rate limit on token guessing).
    pub failures: auth::Failures,
}

impl AdminState {
    /// State for `config` and `store`, with no cache and no sync runner attached.
    pub fn new(config: Config, store: Store, token: Token) -> Self {
        Self {
            config,
            store,
            content: None,
            sync: None,
            token,
            maintenance: Arc::new(tokio::sync::Mutex::new(())),
            failures: auth::Failures::default(),
        }
    }

    /// Replica mode: `upstream.url` is set, approvals and groups come from upstream.
    pub fn is_replica(&self) -> bool {
        self.config.upstream.url.is_some()
    }
}

/// An error answered as `{"error": "..."}` with a status.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// One line.
    pub message: String,
}

impl ApiError {
    /// 400.
    pub fn bad(m: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: m.into(),
        }
    }
    /// 404.
    pub fn not_found(m: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: m.into(),
        }
    }
    /// 409: refused in the current mode or state.
    pub fn conflict(m: impl Into<String>) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            message: m.into(),
        }
    }
    /// 500.
    pub fn internal(m: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: m.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Self::not_found(format!("not found: {m}")),
            StoreError::Invalid(m) => Self::bad(m),
            other => Self::internal(format!("metadata store: {other}")),
        }
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// A whole body.
pub fn full(b: impl Into<Bytes>) -> AdminBody {
    Full::new(b.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, v: &T) -> Response<AdminBody> {
    match serde_json::to_vec_pretty(v) {
        Ok(mut b) => {
            b.push(b'\n');
            with_type(status, "application/json", full(b))
        }
        Err(e) => error(&ApiError::internal(format!("encoding JSON: {e}"))),
    }
}

/// An error response.
pub fn error(e: &ApiError) -> Response<AdminBody> {
    json(
        e.status,
        &types::ErrorJson {
            error: e.message.clone(),
        },
    )
}

/// A response with a content type.
pub fn with_type(status: StatusCode, ctype: &'static str, body: AdminBody) -> Response<AdminBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Turns a handler result into a response.
fn answer<T: Serialize>(r: ApiResult<T>) -> Response<AdminBody> {
    match r {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => error(&e),
    }
}

/// Runs a synchronous handler on the blocking pool.
async fn blocking<T: Serialize + Send + 'static>(
    state: &Arc<AdminState>,
    f: impl FnOnce(&AdminState) -> ApiResult<T> + Send + 'static,
) -> Response<AdminBody> {
    let s = state.clone();
    match tokio::task::spawn_blocking(move || f(&s)).await {
        Ok(r) => answer(r),
        Err(e) => error(&ApiError::internal(format!("handler failed: {e}"))),
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A bound admin listener.
pub struct AdminServer {
    listener: TcpListener,
    state: Arc<AdminState>,
}

impl AdminServer {
    /// Binds `addr` (port 0 picks one).
    pub async fn bind(addr: SocketAddr, state: Arc<AdminState>) -> Result<Self, AdminError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| AdminError::Bind { addr, source })?;
        Ok(Self { listener, state })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.admin.listen)
    }

    /// Serves until `shutdown` becomes true, then lets open requests finish (up to 10 s),
    /// through the server's one accept loop ([`crate::http::listen`]: caps, header and idle
    /// timeouts of `[server]`).
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        tracing::info!("admin API on http://{}", self.local_addr());
        let limits = crate::http::Limits::from_config(&self.state.config.server);
        let state = self.state;
        crate::http::listen::accept_loop(
            self.listener,
            shutdown,
            "admin",
            limits,
            move |stream, peer, conn, mut stop| {
                let state = state.clone();
                async move {
                    let access = crate::http::access::AccessLayer::new(
                        "admin",
                        peer,
                        state.config.log.access,
                    );
                    let svc = tower::ServiceBuilder::new()
                        .layer(access)
                        .service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(route(state, req, peer).await) }
                        });
                    let svc = hyper_util::service::TowerToHyperService::new(svc);
                    let io = crate::http::listen::Tracked::new(stream, conn);
                    let conn = limits.http1().serve_connection(TokioIo::new(io), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        r = conn.as_mut() => {
                            if let Err(e) = r {
                                tracing::debug!(error = %e, "admin connection ended");
                            }
                        }
                        _ = stopped(&mut stop) => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                }
            },
        )
        .await
    }
}

/// Completes when the shutdown flag becomes true (or its sender is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Reads a JSON request body.
async fn body_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> ApiResult<T> {
    let bytes = body_bytes(req).await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("request body: {e}")))
}

async fn body_bytes(req: Request<Incoming>) -> ApiResult<Bytes> {
    Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ApiError::bad(format!("request body: {e}")))
}

/// 429 for an address that failed to authenticate too often this minute.
fn too_many_failures() -> Response<AdminBody> {
    let mut r = error(&ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: format!(
            "more than {} failed admin authentications from this address in a minute; wait",
            auth::MAX_FAILURES_PER_MINUTE
        ),
    });
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    r
}

/// Routes one request and counts it in `wsus_edge_http_requests_total{service="admin"}` (its
/// duration and access-log line come from the listener's [`crate::http::access`] layer).
async fn route(
    state: Arc<AdminState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<AdminBody> {
    let resp = dispatch(state, req, peer).await;
    metrics::http_request("admin", resp.status().as_u16());
    resp
}

async fn dispatch(
    state: Arc<AdminState>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<AdminBody> {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let q = query::Query::parse(req.uri().query().unwrap_or(""));
    let now = unix_now();
    let instant = std::time::Instant::now();

    // Unauthenticated: health and the login form.
    match (&method, path.as_str()) {
        (&Method::GET, "/healthz") => return ops::healthz(&state),
        (&Method::POST, "/login") => {
            if state.failures.blocked(peer.ip(), instant) {
                return too_many_failures();
            }
            let body = body_bytes(req).await.unwrap_or_default();
            let r = page::login(&state, &body, now);
            if r.status() == StatusCode::UNAUTHORIZED {
                state.failures.record(peer.ip(), instant);
            }
            return r;
        }
        (&Method::POST, "/logout") => return page::logout(),
        // The read-only metrics token (or, when configured, a loopback client) reads
        // /metrics and nothing else.
        (&Method::GET, "/metrics")
            if (state.config.admin.metrics_loopback_without_token && peer.ip().is_loopback())
                || auth::metrics_token(&state.config)
                    .is_some_and(|t| t.bearer_ok(req.headers())) =>
        {
            return ops::metrics_text(&state).await
        }
        _ => {}
    }
    let presented = req.headers().contains_key(header::AUTHORIZATION);
    if presented && state.failures.blocked(peer.ip(), instant) {
        return too_many_failures();
    }
    let bearer = state.token.bearer_ok(req.headers());
    let cookie = method == Method::GET && state.token.session_ok(req.headers(), now);
    if presented && !bearer {
        state.failures.record(peer.ip(), instant);
    }
    if !bearer && !cookie {
        if method == Method::GET
            && (path.is_empty()
                || path == "/login"
                || path == page_compliance::UPDATE_PATH
                || path == page_compliance::COMPUTER_PATH)
        {
            return page::login_form(StatusCode::UNAUTHORIZED, None);
        }
        let mut r = error(&ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or wrong admin token (Authorization: Bearer <token>)".into(),
        });
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"wsus-edge admin\""),
        );
        return r;
    }

    match (&method, path.as_str()) {
        (&Method::GET, "") | (&Method::GET, "/login") => page::status_page(&state).await,
        (&Method::GET, "/metrics") => ops::metrics_text(&state).await,
        (&Method::GET, page_compliance::UPDATE_PATH) => {
            page_compliance::update_page(&state, q).await
        }
        (&Method::GET, page_compliance::COMPUTER_PATH) => {
            page_compliance::computer_page(&state, q).await
        }
        (&Method::GET, "/api/status") => ops::status(&state).await,
        (&Method::GET, "/api/updates") => blocking(&state, move |s| api::list_updates(s, &q)).await,
        (&Method::GET, "/api/updates/show") => {
            blocking(&state, move |s| api::show_update(s, &q)).await
        }
        (&Method::POST, "/api/updates/approve") => match body_json(req).await {
            Ok(b) => blocking(&state, move |s| api::approve(s, &b)).await,
            Err(e) => error(&e),
        },
        (&Method::POST, "/api/updates/decline") => match body_json(req).await {
            Ok(b) => blocking(&state, move |s| api::decline(s, &b)).await,
            Err(e) => error(&e),
        },
        (&Method::GET, "/api/groups") => blocking(&state, api::list_groups).await,
        (&Method::POST, "/api/groups") => match body_json(req).await {
            Ok(b) => blocking(&state, move |s| api::add_group(s, &b)).await,
            Err(e) => error(&e),
        },
        (&Method::POST, "/api/groups/remove") => match body_json(req).await {
            Ok(b) => blocking(&state, move |s| api::remove_group(s, &b)).await,
            Err(e) => error(&e),
        },
        (&Method::GET, "/api/computers") => {
            blocking(&state, move |s| compliance::list_computers(s, &q)).await
        }
        (&Method::GET, "/api/computers/show") => {
            blocking(&state, move |s| compliance::show_computer(s, &q)).await
        }
        (&Method::POST, "/api/computers/move") => match body_json(req).await {
            Ok(b) => blocking(&state, move |s| compliance::move_computer(s, &b)).await,
            Err(e) => error(&e),
        },
        (&Method::POST, "/api/computers/remove") => match body_json(req).await {
            Ok(b) => blocking(&state, move |s| compliance::remove_computer(s, &b)).await,
            Err(e) => error(&e),
        },
        (&Method::GET, "/api/updates/status") => {
            blocking(&state, move |s| compliance::update_status(s, &q)).await
        }
        (&Method::GET, "/api/classifications") => {
            blocking(&state, |s| {
                api::list_categories(s, crate::model::CategoryType::UpdateClassification)
            })
            .await
        }
        (&Method::GET, "/api/products") => {
            blocking(&state, |s| {
                api::list_categories(s, crate::model::CategoryType::Product)
            })
            .await
        }
        (&Method::GET, "/api/subscription") => blocking(&state, api::get_subscription).await,
        (&Method::PUT, "/api/subscription") | (&Method::POST, "/api/subscription") => {
            match body_json(req).await {
                Ok(b) => blocking(&state, move |s| api::set_subscription(s, b)).await,
                Err(e) => error(&e),
            }
        }
        (&Method::GET, "/api/sync") => answer(Ok(api::sync_status(&state))),
        (&Method::POST, "/api/sync") => answer(api::sync_trigger(&state)),
        (&Method::GET, "/api/content") => blocking(&state, |s| Ok(ops::content_status(s))).await,
        (&Method::POST, "/api/content/verify") => ops::verify(state).await,
        (&Method::POST, "/api/content/prefetch") => answer(ops::prefetch(&state).await),
        (&Method::POST, "/api/rollup") => answer(compliance::rollup_now(&state).await),
        (&Method::POST, "/api/cleanup") => {
            let dry = q.flag("dry_run");
            answer(ops::cleanup(&state, dry).await)
        }
        (&Method::POST, "/api/export") => match body_json(req).await {
            Ok(b) => answer(transfer::export(&state, b).await),
            Err(e) => error(&e),
        },
        (&Method::POST, "/api/import") => match body_json(req).await {
            Ok(b) => answer(transfer::import(&state, b).await),
            Err(e) => error(&e),
        },
        _ => error(&ApiError::not_found(format!("no endpoint {method} {path}"))),
    }
}
