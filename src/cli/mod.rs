//! The `wsus-edge` command line: one clap definition, one file per verb group.
//! Errors here are `anyhow`; expected failures print one line and exit non-zero.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The top-level command line.
#[derive(Debug, Parser)]
#[command(
    name = "wsus-edge",
    version,
    about = "A branch office's Windows update server: WSUS replica, client service and verified content cache"
)]
pub struct Cli {
    /// Config file (default: /etc/wsus-edge/wsus-edge.toml, then ./wsus-edge.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log filter, e.g. `info`, `wsus_edge=debug` (env RUST_LOG also works).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// Every verb.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the effective configuration and exit.
    CheckConfig,
    /// Run the server (content cache and client endpoints) until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
}

/// Flags of `serve`; each overrides the config file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Client listener address (`server.listen`), e.g. 0.0.0.0:8530.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Data directory (`server.data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Upstream WSUS or wsus-edge base URL (`upstream.url`).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
}

/// Runs `serve`: applies the flags over `config` and serves until a shutdown signal.
fn serve(
    mut config: crate::config::Config,
    args: ServeArgs,
) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context;
    if let Some(l) = args.listen {
        config.server.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.server.data_dir = d;
    }
    if let Some(u) = args.upstream {
        anyhow::ensure!(
            u.starts_with("http://") || u.starts_with("https://"),
            "--upstream: expected an http:// or https:// URL, got {u:?}"
        );
        config.upstream.url = Some(u.trim_end_matches('/').to_string());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(crate::server::run(config))?;
    Ok(std::process::ExitCode::SUCCESS)
}

impl Cli {
    /// The config file to read: `--config`, else the first default that exists, else none.
    pub fn config_path(&self) -> Option<PathBuf> {
        if let Some(p) = &self.config {
            return Some(p.clone());
        }
        ["/etc/wsus-edge/wsus-edge.toml", "./wsus-edge.toml"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    }
}

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let config = crate::config::Config::load(cli.config_path().as_deref())?;
    match cli.command {
        Command::CheckConfig => {
            println!("{config:#?}");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Serve(args) => serve(config, args),
    }
}
