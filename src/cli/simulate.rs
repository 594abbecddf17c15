//! `simulate-upstream` (a generated catalog served by a normal autonomous server, with the admin
//! API on `[admin] listen` as `serve` runs it) and `demo`
//! (a simulated upstream plus a replica in one process, synced, ready for a client).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::app::{RunningServer, SimUpstream};
use crate::config::Config;

/// Flags of `simulate-upstream`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Number of distinct updates in the generated catalog.
    #[arg(long, default_value_t = 1000)]
    pub updates: usize,
    /// Catalog seed (same seed, same catalog).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Listener address (`server.listen`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Data directory (`server.data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Flags of `demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Updates in the simulated upstream's catalog.
    #[arg(long, default_value_t = 2000)]
    pub updates: usize,
    /// Catalog seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The replica's client listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8530")]
    pub listen: SocketAddr,
    /// Where both servers keep their data (default: a fresh temporary directory).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs `simulate-upstream` until SIGTERM or Ctrl-C.
pub fn simulate_upstream(
    mut config: Config,
    args: SimulateArgs,
) -> anyhow::Result<std::process::ExitCode> {
    super::private_files();
    if let Some(l) = args.listen {
        config.server.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.server.data_dir = d;
    }
    runtime()?.block_on(async move {
        let sim = SimUpstream::start_with_admin(args.updates, args.seed, config).await?;
        println!(
            "simulated upstream: {} updates (seed {}) at {}",
            args.updates,
            args.seed,
            sim.url()
        );
        if let Some(a) = sim.server.admin_addr() {
            println!("admin API at http://{a}");
        }
        crate::app::shutdown_signal().await;
        sim.stop().await?;
        Ok(std::process::ExitCode::SUCCESS)
    })
}

/// Runs `demo`: upstream + replica on loopback, first sync, then serves until a signal.
pub fn demo(config: Config, args: DemoArgs) -> anyhow::Result<std::process::ExitCode> {
    let (root, _tmp) = match args.data_dir {
        Some(d) => (d, None),
        None => {
            let t = tempfile_dir()?;
            (t.clone(), Some(TempDir(t)))
        }
    };
    runtime()?.block_on(async move {
        let mut up_cfg = config.clone();
        up_cfg.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        up_cfg.server.data_dir = root.join("upstream");
        up_cfg.server.advertised_url = None;
        let sim = SimUpstream::start(args.updates, args.seed, up_cfg).await?;
        println!("simulated upstream ({} updates) at {}", args.updates, sim.url());

        let mut cfg = config;
        cfg.server.listen = args.listen;
        cfg.server.data_dir = root.join("replica");
        cfg.upstream.url = Some(sim.url());
        cfg.upstream.content_url = None;
        let admin_want = cfg.admin.listen;
        let token_file = crate::admin::auth::token_path(&cfg);
        let mut server = crate::app::Server::bind(cfg)
            .await
            .with_context(|| format!("starting the replica on {}", args.listen))?;
        // The admin API for the CLI verbs; elsewhere when its usual port is taken.
        let admin = match server.start_admin_on(admin_want).await {
            Ok(a) => a,
            Err(_) => server
                .start_admin_on(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .context("starting the admin API")?,
        };
        let replica = RunningServer::run(server);
        println!("replica at {} is syncing...", replica.url());
        println!(
            "admin API at http://{admin} (try: WSUS_EDGE_TOKEN=$(cat {}) wsus-edge --admin http://{admin} updates list)",
            token_file.display()
        );
        let mut h = replica
            .state()
            .sync
            .clone()
            .context("the replica has no sync runner")?;
        let status = loop {
            let s = h.status();
            if s.runs > 0 && !s.running {
                break s;
            }
            if tokio::time::timeout(Duration::from_secs(600), h.changed())
                .await
                .ok()
                .flatten()
                .is_none()
            {
                anyhow::bail!("the sync did not finish");
            }
        };
        println!(
            "sync: {} ({} updates, {} approvals, {:.1} s)",
            status.last_result.as_deref().unwrap_or("?"),
            status.updates,
            status.approvals,
            status.last_duration_secs.unwrap_or(0.0)
        );
        let url = replica.url();
        println!();
        println!("Point a Windows client at the replica (as administrator):");
        println!("  reg add HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate /v WUServer /t REG_SZ /d {url} /f");
        println!("  reg add HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate /v WUStatusServer /t REG_SZ /d {url} /f");
        println!("  reg add HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate\\AU /v UseWUServer /t REG_DWORD /d 1 /f");
        println!("Server sync for another downstream: {url}/ServerSyncWebService/ServerSyncWebService.asmx");
        println!("Ctrl-C stops both servers.");
        crate::app::shutdown_signal().await;
        replica.stop().await?;
        sim.stop().await?;
        Ok(std::process::ExitCode::SUCCESS)
    })
}

/// A fresh directory under the system temp dir.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("wsus-edge-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d)
}

/// Removes a demo's temporary directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
