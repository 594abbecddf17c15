//! The `wsus-edge` command line: one clap definition, one file per verb group.
//! Errors here are `anyhow`; expected failures print one line and exit non-zero.

pub mod admin_client;
pub mod catalog;
pub mod check_config;
pub mod cleanup;
pub mod compliance;
pub mod computers;
pub mod content;
pub mod groups;
pub mod status;
pub mod sync;
pub mod updates;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod simulate;
pub mod transfer;

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
    /// Log format: `text` (colour only on a terminal) or `json` (one object per line);
    /// default `[log] format`.
    #[arg(long, global = true, value_name = "FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<crate::config::LogFormat>,
    /// Admin API of the running server for the admin verbs (default: `[admin] listen`),
    /// e.g. http://127.0.0.1:8590. The token comes from WSUS_EDGE_TOKEN or `[admin] token_file`.
    #[arg(long, global = true, value_name = "URL")]
    pub admin: Option<String>,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

fn parse_log_format(s: &str) -> Result<crate::config::LogFormat, String> {
    match s {
        "text" => Ok(crate::config::LogFormat::Text),
        "json" => Ok(crate::config::LogFormat::Json),
        _ => Err(format!("expected text or json, got {s:?}")),
    }
}

/// Every verb.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the effective configuration as TOML and check that the files it names exist
    /// (exit 1 with one line per problem).
    CheckConfig {
        /// JSON instead of text: the TOML and the problems.
        #[arg(long)]
        json: bool,
    },
    /// Updates: list, show, approve, decline.
    #[command(subcommand, after_long_help = admin_client::EXIT_CODES)]
    Updates(updates::UpdatesCmd),
    /// Computer target groups: list, add, remove.
    #[command(subcommand, after_long_help = admin_client::EXIT_CODES)]
    Groups(groups::GroupsCmd),
    /// Client computers: list, show, move, remove.
    #[command(subcommand, after_long_help = admin_client::EXIT_CODES)]
    Computers(computers::ComputersCmd),
    /// Update classifications known to this server.
    #[command(subcommand, after_long_help = admin_client::EXIT_CODES)]
    Classifications(catalog::CategoryCmd),
    /// Products known to this server.
    #[command(subcommand, after_long_help = admin_client::EXIT_CODES)]
    Products(catalog::CategoryCmd),
    /// What sync downloads: products and classifications.
    #[command(subcommand, after_long_help = admin_client::EXIT_CODES)]
    Subscription(catalog::SubscriptionCmd),
    /// Sync from upstream now and follow its progress, or `sync status`.
    #[command(
        long_about = "Sync from upstream now and follow its progress (phase, done/total) to its end; \
exit 0 when it succeeded, 1 with the reason when it failed. `sync status` shows the last result.",
        after_long_help = admin_client::EXIT_CODES
    )]
    Sync(sync::SyncArgs),
    /// The payload cache: status, verify, prefetch.
    #[command(subcommand, after_long_help = admin_client::EXIT_CODES)]
    Content(content::ContentCmd),
    /// Remove declined, expired and superseded updates no longer needed, and their content.
    #[command(after_long_help = admin_client::EXIT_CODES)]
    Cleanup {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Roll this server's computers and their update status up to the upstream now.
    #[command(after_long_help = admin_client::EXIT_CODES)]
    Rollup {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One screen: is the server healthy? (exit 1 when it reports problems)
    #[command(after_long_help = admin_client::EXIT_CODES)]
    Status {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the server (content cache and client endpoints) until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Serve a generated WSUS catalog as an upstream (the normal server, autonomous mode).
    SimulateUpstream(simulate::SimulateArgs),
    /// Start a simulated upstream and a replica on loopback, sync, print how to use it.
    Demo(simulate::DemoArgs),
    /// Write a verifiable update package (through the running server; offline with --data-dir).
    Export(transfer::ExportArgs),
    /// Verify and import a package (through the running server; offline with --data-dir).
    Import(transfer::ImportArgs),
    /// Check a package's signature and every file's digest without importing it.
    VerifyPackage(transfer::VerifyArgs),
    /// Make a signing key pair: K.key (mode 0600) and K.pub.
    Keygen(transfer::KeygenArgs),
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

/// Everything a serving process creates is private from the start (files 0600, folders
/// 0700, whoever creates them: the store's files too), with no window in which another
/// local user could open them.
pub(crate) fn private_files() {
    #[cfg(unix)]
    // SAFETY: umask(2) only sets this process's file mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// The `serve` flags and `--log-format` over a loaded configuration.
fn apply_serve_flags(
    config: &mut crate::config::Config,
    args: &ServeArgs,
    log_format: Option<crate::config::LogFormat>,
) {
    if let Some(l) = args.listen {
        config.server.listen = l;
    }
    if let Some(d) = &args.data_dir {
        config.server.data_dir = d.clone();
    }
    if let Some(f) = log_format {
        config.log.format = f;
    }
    if let Some(u) = &args.upstream {
        config.upstream.url = Some(u.trim_end_matches('/').to_string());
    }
}

/// Runs `serve`: applies the flags over `config` and serves until a shutdown signal; SIGHUP
/// reads `path` again with the same flags.
fn serve(
    mut config: crate::config::Config,
    path: Option<PathBuf>,
    args: ServeArgs,
    log_format: Option<crate::config::LogFormat>,
) -> anyhow::Result<std::process::ExitCode> {
    use anyhow::Context;
    if let Some(u) = &args.upstream {
        anyhow::ensure!(
            u.starts_with("http://") || u.starts_with("https://"),
            "--upstream: expected an http:// or https:// URL, got {u:?}"
        );
    }
    apply_serve_flags(&mut config, &args, log_format);
    let reload: crate::app::reload::ReloadFn = Box::new(move || {
        let mut c = crate::config::Config::load(path.as_deref())?;
        apply_serve_flags(&mut c, &args, log_format);
        Ok(c)
    });
    private_files();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(crate::app::run_with_reload(config, reload))?;
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
    let path = cli.config_path();
    let config = crate::config::Config::load(path.as_deref())?;
    let admin = cli.admin.clone();
    let client = || admin_client::AdminClient::new(&config, admin.as_deref());
    match cli.command {
        Command::CheckConfig { json } => check_config::run(&config, path.as_deref(), json),
        Command::Updates(c) => admin_client::run_verb(|| updates::run(&client()?, c)),
        Command::Groups(c) => admin_client::run_verb(|| groups::run(&client()?, c)),
        Command::Computers(c) => admin_client::run_verb(|| computers::run(&client()?, c)),
        Command::Classifications(c) => {
            admin_client::run_verb(|| catalog::run_categories(&client()?, false, c))
        }
        Command::Products(c) => {
            admin_client::run_verb(|| catalog::run_categories(&client()?, true, c))
        }
        Command::Subscription(c) => {
            admin_client::run_verb(|| catalog::run_subscription(&client()?, c))
        }
        Command::Sync(a) => admin_client::run_verb(|| sync::run(&client()?, a)),
        Command::Content(c) => admin_client::run_verb(|| content::run(&client()?, c)),
        Command::Cleanup { dry_run, json } => {
            admin_client::run_verb(|| cleanup::run(&client()?, dry_run, json))
        }
        Command::Status { json } => admin_client::run_verb(|| status::run(&client()?, json)),
        Command::Rollup { json } => admin_client::run_verb(|| compliance::rollup(&client()?, json)),
        Command::Serve(args) => serve(config, path, args, cli.log_format),
        Command::SimulateUpstream(args) => simulate::simulate_upstream(config, args),
        Command::Demo(args) => simulate::demo(config, args),
        Command::Export(a) => transfer::export(config, a, admin.as_deref()),
        Command::Import(a) => transfer::import(config, a, admin.as_deref()),
        Command::VerifyPackage(a) => transfer::verify(a),
        Command::Keygen(a) => transfer::keygen(a),
    }
}
