//! The running server that `wsus-edge serve` builds: opens the metadata store and the content
//! cache, binds `server.listen`, routes requests ([`crate::http::Router`]) and shuts down
//! gracefully on SIGTERM or Ctrl-C (stop accepting, finish requests, flush the store).
//!
//! Other parts of the server plug in here: SOAP services in [`build_router`] (one line
//! each), background tasks (sync, admin API) from [`Server::state`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::content::{ContentCache, ContentError};
use crate::http::{self, Router, SelfUpdateProxy};
use crate::store::{Store, StoreError};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The metadata store could not be opened (e.g. another process holds it).
    #[error("metadata store: {0}")]
    Store(#[from] StoreError),
    /// The content cache could not be opened.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The admin API could not start (token file, listener).
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] http::tls::TlsError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

/// Everything a request handler or background task may need.
pub struct AppState {
    /// The effective configuration.
    pub config: Config,
    /// The metadata store.
    pub store: Store,
    /// The payload cache.
    pub content: ContentCache,
    /// The sync runner's control handle (`Some` when `upstream.url` is set).
    pub sync: Option<crate::sync::SyncHandle>,
}

/// Builds the request router. SOAP services are registered here, one line each, e.g.
/// `.soap("/ClientWebService/client.asmx", Arc::new(client_service))`.
pub fn build_router(state: &AppState) -> Router {
    let selfupdate = state
        .config
        .upstream
        .url
        .as_ref()
        .and_then(|u| SelfUpdateProxy::new(u.trim_end_matches('/').to_string()));
    let mut router = Router::new(state.content.clone(), state.config.server.max_request_body)
        .selfupdate(selfupdate);
    if let Some(client) = client_service(state) {
        for (path, svc) in crate::client_service::http::SoapEndpoint::all(&client) {
            router = router.soap(path, svc);
        }
    }
    crate::upstream::service::register(router, state)
}

/// The MS-WUSP client service over the state's store (cookie key kept in the data dir).
fn client_service(state: &AppState) -> Option<Arc<crate::client_service::ClientService>> {
    use crate::client_service::{ClientService, CookieKey, Options};
    let key_path = state.config.server.data_dir.join("cookie.key");
    let key = CookieKey::load_or_create(&key_path).unwrap_or_else(|e| {
        tracing::warn!(path = %key_path.display(), error = %e, "cookie key not persisted; using a random one");
        CookieKey::random()
    });
    let opts = Options {
        advertised_url: state.config.server.advertised_url.clone(),
        content_port: Some(state.config.server.listen.port()),
        ..Options::default()
    };
    match ClientService::new(state.store.clone(), key, opts) {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            tracing::error!(error = %e, "client service disabled: store error");
            None
        }
    }
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    state: Arc<AppState>,
    router: Arc<Router>,
    /// The sync runner's side, started by [`Server::run_until`].
    sync_runner: Option<(crate::sync::SyncReporter, tokio::sync::mpsc::Receiver<()>)>,
    admin: Option<crate::admin::AdminServer>,
}

impl Server {
    /// Opens the store and the cache under `server.data_dir` and binds `server.listen`
    /// (port 0 picks a free port; see [`Server::local_addr`]).
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        std::fs::create_dir_all(&config.server.data_dir).map_err(|source| ContentError::Io {
            path: config.server.data_dir.clone(),
            source,
        })?;
        let store = Store::open(&config.store_dir())?;
        let content = ContentCache::open(
            &config.content_dir(),
            Arc::new(store.clone()),
            &config.upstream,
            config.content.max_size,
        )
        .await?;
        let addr = config.server.listen;
        let listener = http::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
        // The bound address (port 0 picks one): content URLs name this port.
        let mut config = config;
        if let Ok(bound) = listener.local_addr() {
            config.server.listen = bound;
        }
        let tls = match (
            config.server.tls_listen,
            &config.server.tls_cert,
            &config.server.tls_key,
        ) {
            (Some(addr), Some(cert), Some(key)) => {
                let acceptor = http::tls::acceptor(cert, key)?;
                let l = http::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
                Some((l, acceptor))
            }
            _ => None,
        };
        let (sync, sync_runner) = if config.upstream.url.is_some() {
            let (h, r, rx) = crate::sync::handle::channel();
            (Some(h), Some((r, rx)))
        } else {
            (None, None)
        };
        let state = AppState {
            config,
            store,
            content,
            sync,
        };
        let router = Arc::new(build_router(&state));
        Ok(Self {
            listener,
            tls,
            state: Arc::new(state),
            router,
            sync_runner,
            admin: None,
        })
    }

    /// Binds the admin API on `[admin] listen` (creating the token file when missing); it
    /// runs and stops with the server. Call after the state is complete (sync handle set).
    pub async fn with_admin(mut self) -> Result<Self, ServerError> {
        let addr = self.state.config.admin.listen;
        self.start_admin_on(addr).await?;
        Ok(self)
    }

    /// Like [`Server::with_admin`] on `addr` (port 0 picks one); on error the server is kept,
    /// so a caller may retry elsewhere. Returns the bound address.
    pub async fn start_admin_on(&mut self, addr: SocketAddr) -> Result<SocketAddr, ServerError> {
        let st = &self.state;
        let token = crate::admin::Token::load_or_create(&st.config)
            .map_err(crate::admin::AdminError::from)?;
        let mut admin = crate::admin::AdminState::new(st.config.clone(), st.store.clone(), token);
        admin.content = Some(Arc::new(st.content.clone()));
        admin.sync = st.sync.clone();
        let server = crate::admin::AdminServer::bind(addr, Arc::new(admin)).await?;
        let local = server.local_addr();
        self.admin = Some(server);
        Ok(local)
    }

    /// The admin API's bound address, when [`Server::with_admin`] was called.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.local_addr())
    }

    /// Registers a SOAP service before the server runs (embedders and tests; the server's
    /// own services are registered in [`build_router`]).
    pub fn soap(mut self, path: &str, service: Arc<dyn http::SoapService>) -> Self {
        if let Some(r) = Arc::get_mut(&mut self.router) {
            r.add_soap(path, service);
        }
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.server.listen)
    }

    /// The bound HTTPS address, when TLS is configured.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The shared state.
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `shutdown` completes, then drains connections and flushes the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let addr = self.local_addr();
        tracing::info!("listening on http://{addr}");
        let (tx, rx) = tokio::sync::watch::channel(false);
        let tls_serving = self.tls.map(|(l, acceptor)| {
            if let Ok(a) = l.local_addr() {
                tracing::info!("listening on https://{a}");
            }
            tokio::spawn(http::tls::serve_tls(
                l,
                acceptor,
                self.router.clone(),
                rx.clone(),
            ))
        });
        let admin = self.admin.map(|a| tokio::spawn(a.run(rx.clone())));
        let serving = tokio::spawn(http::serve(self.listener, self.router, rx.clone()));
        let runner = self.sync_runner.map(|(reporter, trigger)| {
            crate::sync::spawn_runner(crate::sync::RunnerContext {
                config: self.state.config.clone(),
                store: self.state.store.clone(),
                reporter,
                trigger,
                prefetcher: Some(Arc::new(self.state.content.clone())),
                shutdown: rx,
            })
        });
        shutdown.await;
        tracing::info!("shutting down");
        let _ = tx.send(true);
        if let Some(r) = runner {
            r.abort();
            let _ = r.await;
        }
        let _ = serving.await;
        if let Some(a) = admin {
            let _ = a.await;
        }
        if let Some(t) = tls_serving {
            let _ = t.await;
        }
        self.state.store.flush()?;
        Ok(())
    }
}

/// Runs the server with `config` until SIGTERM or Ctrl-C.
/// The admin API is secondary to serving clients: when it cannot start (port taken, token
/// file unreadable) the error is logged and the server runs without it.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let mut server = Server::bind(config).await?;
    let admin = server.state().config.admin.listen;
    if let Err(e) = server.start_admin_on(admin).await {
        tracing::error!(error = %e, "admin API not started: admin verbs, /metrics and the status page are unavailable until a restart");
    }
    server.run_until(shutdown_signal()).await
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
