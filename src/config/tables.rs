//! The typed, validated configuration tables ([`Config`] and one struct per `[table]`) with
//! the default of every key, and the folders derived from `[server] data_dir`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::UpstreamConfig;
use crate::units::DailyWindow;

/// How payloads of approved updates reach the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentMode {
    /// Download approved content in the background after each sync.
    Prefetch,
    /// Download on the first client request.
    OnDemand,
}

/// `[server]`: the client-facing listeners and where data lives.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Plain HTTP listener for clients and downstream servers (WSUS: 8530).
    pub listen: SocketAddr,
    /// Data directory: the metadata store and the content folder.
    pub data_dir: PathBuf,
    /// Base URL written into file locations and handed to downstream servers; else the request's Host.
    pub advertised_url: Option<String>,
    /// HTTPS listener (WSUS: 8531), served when a certificate and key are configured.
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS.
    pub tls_key: Option<PathBuf>,
    /// Largest SOAP request body accepted, bytes.
    pub max_request_body: u64,
    /// Most client connections open at once, per listener (past it the least recently active
    /// connection of the address holding the most is closed).
    pub max_connections: usize,
    /// Most client connections from one address, per listener (past it that address's least
    /// recently active connection is closed).
    pub max_connections_per_address: usize,
    /// Longest wait for a request on a connection with nothing received.
    pub idle_timeout: Duration,
    /// Longest time from a request's first byte to the end of its head.
    pub header_read_timeout: Duration,
}

/// `[content]`: the payload cache.
#[derive(Debug, Clone)]
pub struct ContentConfig {
    /// Prefetch approved content, or fetch on demand.
    pub mode: ContentMode,
    /// Daily window in which background downloads may run; `None` = any time.
    pub download_window: Option<DailyWindow>,
    /// Store size above which least recently used objects are evicted; `None` = unbounded.
    pub max_size: Option<u64>,
    /// Free space kept on the data dir's file system: no payload is written below it, so the
    /// metadata store's own writes never meet a full disk (0 = no floor).
    pub min_free: u64,
}

/// `[clients]`: what one client may make the server store (see the README's security notes).
#[derive(Debug, Clone)]
pub struct ClientsConfig {
    /// Most computers the server keeps; registrations of new ones beyond it are refused.
    pub max_computers: usize,
    /// New computers one client address may register per minute.
    pub registrations_per_minute: u32,
    /// Most events kept per computer (the oldest are dropped first).
    pub max_events_per_computer: usize,
    /// Most event bytes kept per computer (the oldest are dropped first).
    pub max_event_bytes_per_computer: u64,
    /// Events older than this are not stored, and are pruned hourly.
    pub event_retention: Duration,
    /// Reporting request-body bytes one client address may send per second, on average
    /// (over it: 503 before the body is read; 0 = no limit).
    pub report_bytes_per_second: u64,
    /// Reporting request-body bytes one client address may send at once (the bucket's depth).
    pub report_burst: u64,
}

impl Default for ClientsConfig {
    fn default() -> Self {
        Self {
            max_computers: 5000,
            registrations_per_minute: 30,
            max_events_per_computer: 2000,
            max_event_bytes_per_computer: 512 << 10,
            event_retention: Duration::from_secs(90 * 86400),
            report_bytes_per_second: 64 << 10,
            report_burst: 4 << 20,
        }
    }
}

/// `[import]`: offline packages.
#[derive(Debug, Clone, Default)]
pub struct ImportConfig {
    /// Public key files a package must be signed by (used when `import` gets no `--trust`).
    pub trusted_keys: Vec<PathBuf>,
}

/// `[sync]`: replication from upstream.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Time between scheduled syncs (a random jitter of up to 10% is added).
    pub interval: Duration,
    /// Product category GUIDs or titles to subscribe to; empty = all.
    pub products: Vec<String>,
    /// Classification GUIDs or titles to subscribe to; empty = all.
    pub classifications: Vec<String>,
    /// Language short names (`en`, `de`); empty = all.
    pub languages: Vec<String>,
}

/// `[cleanup]`: what `cleanup` keeps.
#[derive(Debug, Clone)]
pub struct CleanupConfig {
    /// An update some computer reported needed or failed within this period is kept even when
    /// declined, expired or superseded.
    pub keep_needed_for: Duration,
}

/// `[rollup]`: the MS-WSUSSS reporting rollup, both ways.
#[derive(Debug, Clone)]
pub struct RollupConfig {
    /// Roll this server's computers up to `[upstream] url` (replica mode).
    pub enabled: bool,
    /// Time between scheduled rollups (a rollup also follows each successful sync).
    pub interval: Duration,
    /// As an upstream: ask downstream servers for computers and per-update status
    /// (`DoDetailedRollup`).
    pub accept_detailed: bool,
    /// As an upstream: the largest `RollupComputerStatus` body read from a downstream server
    /// (at least `server.max_request_body`). One such request may carry
    /// `RollupComputerStatusMaxBatchSize` computers with every status of each.
    pub max_request_body: u64,
}

/// `[admin]`: the admin API listener.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// Admin listener (default `127.0.0.1:8590`; never the client ports).
    pub listen: SocketAddr,
    /// File holding the bearer token; created with a random token when missing.
    pub token_file: Option<PathBuf>,
    /// File holding a read-only token that reads `/metrics` and nothing else
    /// (`WSUS_EDGE_METRICS_TOKEN` overrides it). Never created by the server.
    pub metrics_token_file: Option<PathBuf>,
    /// Whether loopback clients read `/metrics` without any token.
    pub metrics_loopback_without_token: bool,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human text (colour only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`: logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `text` or `json`; the `--log-format` flag overrides it.
    pub format: LogFormat,
    /// `access`: one access-log line per HTTP request (target `wsus_edge::access`).
    pub access: bool,
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[upstream]`.
    pub upstream: UpstreamConfig,
    /// `[content]`.
    pub content: ContentConfig,
    /// `[sync]`.
    pub sync: SyncConfig,
    /// `[cleanup]`.
    pub cleanup: CleanupConfig,
    /// `[rollup]`.
    pub rollup: RollupConfig,
    /// `[admin]`.
    pub admin: AdminConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[clients]`.
    pub clients: ClientsConfig,
    /// `[import]`.
    pub import: ImportConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8530)),
                data_dir: PathBuf::from("./data"),
                advertised_url: None,
                tls_listen: None,
                tls_cert: None,
                tls_key: None,
                max_request_body: 4 << 20,
                max_connections: 8192,
                max_connections_per_address: 256,
                idle_timeout: Duration::from_secs(60),
                header_read_timeout: Duration::from_secs(30),
            },
            upstream: UpstreamConfig::default(),
            content: ContentConfig {
                mode: ContentMode::OnDemand,
                download_window: None,
                max_size: None,
                min_free: 256 << 20,
            },
            sync: SyncConfig {
                interval: Duration::from_secs(6 * 3600),
                products: Vec::new(),
                classifications: Vec::new(),
                languages: Vec::new(),
            },
            cleanup: CleanupConfig {
                keep_needed_for: Duration::from_secs(30 * 86400),
            },
            rollup: RollupConfig {
                enabled: true,
                interval: Duration::from_secs(3600),
                accept_detailed: true,
                max_request_body: 64 << 20,
            },
            admin: AdminConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8590)),
                token_file: None,
                metrics_token_file: None,
                metrics_loopback_without_token: false,
            },
            log: LogConfig {
                format: LogFormat::Text,
                access: true,
            },
            clients: ClientsConfig::default(),
            import: ImportConfig::default(),
        }
    }
}

impl Config {
    /// The folder holding the metadata store.
    pub fn store_dir(&self) -> PathBuf {
        self.server.data_dir.join("meta")
    }

    /// The folder holding payloads (`content/XX/<SHA1>.<ext>`).
    pub fn content_dir(&self) -> PathBuf {
        self.server.data_dir.join("content")
    }
}
