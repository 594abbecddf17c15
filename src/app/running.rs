//! Starting servers in-process: the simulated upstream (`simulate-upstream`: a generated
//! catalog loaded into a normal autonomous `serve`) and plain servers (replicas), each on
//! its own port (0 = any), stoppable. Used by the CLI verbs, the integration tests and the
//! benchmark.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{AppState, Server, ServerError};
use crate::config::Config;
use crate::simulate::upstream::{self as sim, SharedCatalog};
use crate::simulate::Catalog;
use crate::store::{Store, StoreError};

/// A server running on the current runtime.
pub struct RunningServer {
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Binds and starts `config` (the sync runner starts when `upstream.url` is set).
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        let server = Server::bind(config).await?;
        Ok(Self::run(server))
    }

    /// Starts an already bound server.
    pub fn run(server: Server) -> Self {
        let addr = server.local_addr();
        let admin = server.admin_addr();
        let state = server.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run_until(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            admin,
            state,
            stop: Some(tx),
            task,
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The admin API's address, when the server runs one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// The shared state (store, content, config, sync handle).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The metadata store.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Stops gracefully and waits (the store is flushed).
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "server task failed");
                Ok(())
            }
        }
    }
}

/// Why the simulated upstream could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The server failed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// Loading the catalog failed.
    #[error("loading the catalog: {0}")]
    Store(#[from] StoreError),
    /// The payload source could not listen.
    #[error("payload source: {0}")]
    Io(#[from] std::io::Error),
}

/// Generates a catalog on the blocking pool.
async fn generate(updates: usize, seed: u64) -> Result<Catalog, SimError> {
    let t = std::time::Instant::now();
    let cat = tokio::task::spawn_blocking(move || Catalog::generate(updates, seed))
        .await
        .map_err(|e| SimError::Io(std::io::Error::other(e)))?;
    tracing::info!(
        updates = cat.update_count(),
        revisions = cat.revision_count(),
        secs = t.elapsed().as_secs_f64(),
        "catalog generated"
    );
    Ok(cat)
}

/// The simulated upstream: a catalog, its payload source and the server over it.
pub struct SimUpstream {
    /// The server (autonomous: no `upstream.url`).
    pub server: RunningServer,
    /// The catalog (mutate with [`SimUpstream::mutate`]).
    pub catalog: SharedCatalog,
}

impl SimUpstream {
    /// Generates the catalog (`updates`, `seed`), starts the payload source, binds `config`
    /// (its `upstream.url` is cleared, `upstream.content_url` set to the source) and loads the
    /// catalog into the server's store.
    pub async fn start(updates: usize, seed: u64, mut config: Config) -> Result<Self, SimError> {
        let cat = generate(updates, seed).await?;
        Self::start_with(cat, &mut config).await
    }

    /// Like [`SimUpstream::start`] with a catalog already generated.
    pub async fn start_with(cat: Catalog, config: &mut Config) -> Result<Self, SimError> {
        Self::launch(cat, config, false).await
    }

    /// What `simulate-upstream` runs: like [`SimUpstream::start`], plus the admin API on
    /// `[admin] listen` with `[admin] token_file`, exactly as `serve` starts it (so every admin
    /// verb works against the simulated upstream; when it cannot start, the error is logged
    /// and the upstream runs without it).
    pub async fn start_with_admin(
        updates: usize,
        seed: u64,
        mut config: Config,
    ) -> Result<Self, SimError> {
        let cat = generate(updates, seed).await?;
        Self::launch(cat, &mut config, true).await
    }

    async fn launch(cat: Catalog, config: &mut Config, admin: bool) -> Result<Self, SimError> {
        let catalog: SharedCatalog = Arc::new(RwLock::new(cat));
        let src = sim::spawn_payload_source(catalog.clone()).await?;
        config.upstream.url = None;
        config.upstream.content_url = Some(format!("http://{src}"));
        let server = Server::bind(config.clone()).await?;
        let store = server.state().store.clone();
        let c2 = catalog.clone();
        tokio::task::spawn_blocking(move || {
            let cat = c2.read().unwrap_or_else(|p| p.into_inner());
            sim::load_catalog(&store, &cat)
        })
        .await
        .map_err(|e| SimError::Io(std::io::Error::other(e)))??;
        let mut server = server;
        if admin {
            super::start_admin(&mut server).await?;
        }
        Ok(Self {
            server: RunningServer::run(server),
            catalog,
        })
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The upstream's store.
    pub fn store(&self) -> &Store {
        self.server.store()
    }

    /// Applies `f` to the catalog, then stores its new revisions and its approvals.
    pub fn mutate<T>(&self, f: impl FnOnce(&mut Catalog) -> T) -> Result<T, StoreError> {
        let mut cat = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut cat);
        sim::load_new_revisions(self.store(), &cat)?;
        sim::sync_approvals(self.store(), &cat)?;
        Ok(out)
    }

    /// Stops the server.
    pub async fn stop(self) -> Result<(), ServerError> {
        self.server.stop().await
    }
}
