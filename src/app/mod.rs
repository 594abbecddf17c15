//! The application layer: the one place that wires the server together. It opens the
//! metadata store and the content cache, builds the protocol services from explicit parts
//! ([`router`]: MS-WUSP for clients, MS-WSUSSS for downstream servers, `/Content/`, the
//! self-update proxy), binds the listeners (clients, TLS, admin), starts the sync runner, and
//! shuts down gracefully on SIGTERM or Ctrl-C (stop accepting, finish requests, flush the
//! store). It also holds the in-process runners the CLI, the tests and the benchmarks start
//! ([`running`]: a server, the simulated upstream).
//!
//! Nothing below this layer sees [`AppState`]: services and tasks get the parts they use.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::content::{ContentCache, ContentError};
use crate::http::{self, Router};
use crate::store::{Store, StoreError};

pub mod reload;
pub mod router;
pub mod running;

pub use router::build_router;
pub use running::{RunningServer, SimError, SimUpstream};

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

/// The parts the app wires together (the app's own bag: services and tasks below this layer
/// receive the parts they use, never this).
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

/// Share of the data dir's file system the content cache may fill when `content.max_size`
/// is not set (the rest is for the metadata store, imports in progress and the system).
pub const DEFAULT_CONTENT_SHARE_PERCENT: u64 = 80;

/// `content.max_size` when unset: [`DEFAULT_CONTENT_SHARE_PERCENT`] of the file system
/// holding `data_dir` (unbounded when its size cannot be read).
pub fn default_max_size(data_dir: &std::path::Path) -> Option<u64> {
    let (_, total) = crate::metrics::disk_space(data_dir)?;
    let max = total / 100 * DEFAULT_CONTENT_SHARE_PERCENT;
    tracing::info!(
        max_size = max,
        "content.max_size not set: {DEFAULT_CONTENT_SHARE_PERCENT}% of the file system holding the data dir"
    );
    Some(max)
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    /// The HTTPS certificate, reloaded on SIGHUP.
    cert: Option<Arc<http::tls::CertSlot>>,
    state: Arc<AppState>,
    router: Arc<Router>,
    /// The sync runner's side, started by [`Server::run_until`].
    sync_runner: Option<(crate::sync::SyncReporter, tokio::sync::mpsc::Receiver<()>)>,
    admin: Option<crate::admin::AdminServer>,
}

impl Server {
    /// Opens the store and the cache under `server.data_dir` and binds `server.listen`
    /// (port 0 picks a free port; see [`Server::local_addr`]).
    pub async fn bind(mut config: Config) -> Result<Self, ServerError> {
        crate::store::create_private_dir(&config.server.data_dir).map_err(|source| {
            ContentError::Io {
                path: config.server.data_dir.clone(),
                source,
            }
        })?;
        if config.content.max_size.is_none() {
            config.content.max_size = default_max_size(&config.server.data_dir);
        }
        let store = Store::open(&config.store_dir())?;
        let content = ContentCache::open(
            &config.content_dir(),
            Arc::new(store.clone()),
            &config.upstream,
            config.content.max_size,
        )
        .await?;
        content.set_min_free(config.content.min_free);
        // A file the upstream answers 404 for is asked for with DownloadFiles (issue 14).
        if config.upstream.url.is_some() {
            match crate::sync::UpstreamClient::new(&config.upstream) {
                Ok(c) => content.set_file_requester(
                    crate::sync::download_files::DownloadFilesRequester::new(store.clone(), c),
                ),
                Err(e) => tracing::warn!(error = %e, "no DownloadFiles requests: upstream client"),
            }
        }
        let addr = config.server.listen;
        let listener = http::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
        // The bound address (port 0 picks one): content URLs name this port.
        let mut config = config;
        if let Ok(bound) = listener.local_addr() {
            config.server.listen = bound;
        }
        let mut cert = None;
        let tls = match (
            config.server.tls_listen,
            &config.server.tls_cert,
            &config.server.tls_key,
        ) {
            (Some(addr), Some(c), Some(key)) => {
                let (acceptor, slot) = http::tls::reloadable_acceptor(c, key)?;
                cert = Some(slot);
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
            cert,
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
        let pruning = tokio::spawn(prune_events_hourly(
            self.state.store.clone(),
            self.state.config.clients.event_retention,
            rx.clone(),
        ));
        let recovering = tokio::spawn(recover_store(self.state.store.clone(), rx.clone()));
        let rollup = (self.state.config.upstream.url.is_some() && self.state.config.rollup.enabled)
            .then(|| {
                crate::rollup::spawn(
                    self.state.config.clone(),
                    self.state.store.clone(),
                    rx.clone(),
                )
            });
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
        if let Some(r) = rollup {
            r.abort();
            let _ = r.await;
        }
        let _ = serving.await;
        let _ = pruning.await;
        let _ = recovering.await;
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

/// Deletes events older than `retention` at start-up and then every hour, until shutdown
/// (the age half of the bound on stored client data; the count and size half is applied
/// as events arrive).
async fn prune_events_hourly(
    store: Store,
    retention: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let store = store.clone();
        let before = time::OffsetDateTime::now_utc().unix_timestamp()
            - i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        match tokio::task::spawn_blocking(move || store.prune_events(before)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(events = n, "pruned events past clients.event_retention"),
            Ok(Err(e)) => tracing::warn!(error = %e, "event pruning failed"),
            Err(e) => tracing::warn!(error = %e, "event pruning task failed"),
        }
    }
}

/// Probes the store every 30 s; while it is unhealthy (a write failed on a full disk), tries
/// every 2 s to bring it back ([`Store::recover`]: once the file system has room, sled is reopened), until
/// shutdown. The server keeps serving meanwhile and `/healthz` names the reason.
async fn recover_store(store: Store, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        ticks += 1;
        if store.failure().is_none() {
            // Every 30 s, also catches a full disk met by sled's background flush or by a
            // write that is not checked on its own (the probe is refused then).
            if ticks.is_multiple_of(15) {
                let _ = store.probe();
            }
            continue;
        }
        let s = store.clone();
        match tokio::task::spawn_blocking(move || s.recover()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "metadata store: reopening failed; trying again")
            }
            Err(e) => tracing::warn!(error = %e, "metadata store: recovery task failed"),
        }
    }
}

/// Runs the server with `config` until SIGTERM or Ctrl-C. An admin API that cannot start
/// (port taken, token file unreadable or too short) is an error: a server that silently
/// runs without it cannot be administered or monitored.
pub async fn run(config: Config) -> Result<(), ServerError> {
    let mut server = Server::bind(config).await?;
    start_admin(&mut server).await?;
    server.run_until(shutdown_signal()).await
}

/// Like [`run`], and SIGHUP calls `reload` and applies what can change while serving
/// (see [`reload`]); SIGHUP never stops the server.
pub async fn run_with_reload(config: Config, reload: reload::ReloadFn) -> Result<(), ServerError> {
    let hup = reload::listen();
    let running = config.clone();
    let mut server = Server::bind(config).await?;
    reload::spawn(hup, running, reload, server.cert.clone());
    start_admin(&mut server).await?;
    server.run_until(shutdown_signal()).await
}

/// Starts the admin API on `[admin] listen` (warning when that is every interface).
/// `serve` and `simulate-upstream` both start it this way.
pub async fn start_admin(server: &mut Server) -> Result<(), ServerError> {
    let admin = server.state().config.admin.listen;
    if admin.ip().is_unspecified() {
        tracing::warn!(%admin, "the admin API listens on every interface: anyone who can reach it may try tokens; prefer 127.0.0.1 or a management address");
    }
    server.start_admin_on(admin).await.map(|_| ())
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
