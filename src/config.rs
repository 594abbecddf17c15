//! The configuration: one TOML file (documented in `deploy/wsus-edge.toml`), sane defaults
//! for every key, environment overrides (`WSUS_EDGE_<TABLE>_<KEY>`, e.g.
//! `WSUS_EDGE_UPSTREAM_URL`), then command-line flags applied by the caller. A wrong key or
//! value is refused with the file, the line and what was expected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::units::{parse_bandwidth, parse_duration, parse_size, DailyWindow};

mod upstream;
pub use upstream::{
    upstream_may_fetch, HttpClientError, UpstreamConfig, DEFAULT_MAX_ANSWER_SIZE,
    UPSTREAM_CONNECT_TIMEOUT, UPSTREAM_READ_TIMEOUT, USER_AGENT,
};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a wrong type.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What was wrong and what was expected.
        message: String,
    },
    /// A value has the right type but cannot be used.
    #[error("{origin}: {key}: {message}")]
    Value {
        /// Where the value came from (`file:line`, an environment variable, a flag).
        origin: String,
        /// The key, as `table.key`.
        key: String,
        /// What was expected.
        message: String,
    },
}

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    content: RawContent,
    #[serde(default)]
    sync: RawSync,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    cleanup: RawCleanup,
    #[serde(default)]
    rollup: RawRollup,
    #[serde(default)]
    clients: RawClients,
    #[serde(default)]
    import: RawImport,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCleanup {
    keep_needed_for: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClients {
    max_computers: Option<u64>,
    registrations_per_minute: Option<u64>,
    max_events_per_computer: Option<u64>,
    max_event_bytes_per_computer: Option<String>,
    event_retention: Option<String>,
    report_bytes_per_second: Option<String>,
    report_burst: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollup {
    enabled: Option<bool>,
    interval: Option<String>,
    accept_detailed: Option<bool>,
    max_request_body: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImport {
    trusted_keys: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    advertised_url: Option<String>,
    tls_listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_request_body: Option<String>,
    max_connections: Option<u64>,
    max_connections_per_address: Option<u64>,
    idle_timeout: Option<String>,
    header_read_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    url: Option<String>,
    content_url: Option<String>,
    max_bandwidth: Option<String>,
    ca_file: Option<PathBuf>,
    stall_timeout: Option<String>,
    max_answer_size: Option<String>,
    redirect_hosts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContent {
    mode: Option<String>,
    download_window: Option<String>,
    max_size: Option<String>,
    min_free: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    interval: Option<String>,
    products: Option<Vec<String>>,
    classifications: Option<Vec<String>>,
    languages: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    token_file: Option<PathBuf>,
    metrics_token_file: Option<PathBuf>,
    metrics_loopback_without_token: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    access: Option<bool>,
}

/// One setting as text plus where it came from, before it is validated.
struct Setting {
    value: String,
    origin: String,
}

impl Config {
    /// Loads `path` (defaults when `None`), then applies `WSUS_EDGE_*` environment overrides.
    /// An empty string (in the file or the environment) leaves an optional key unset.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?,
                p.to_path_buf(),
            ),
            None => (String::new(), PathBuf::from("<defaults>")),
        };
        Self::from_toml(&text, &origin, |k| std::env::var(k).ok())
    }

    /// Parses TOML text; `env` looks up override variables (tests pass their own).
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                message: e.message().to_string(),
            }
        })?;
        let line_of = |table: &str, key: &str| -> String {
            // Find the key's line inside its table for error messages.
            let mut in_table = false;
            for (i, l) in text.lines().enumerate() {
                let t = l.trim();
                if t.starts_with('[') {
                    in_table = t.trim_matches(|c| c == '[' || c == ']').trim() == table;
                } else if in_table && t.split('=').next().map(str::trim) == Some(key) {
                    return format!("{}:{}", path.display(), i + 1);
                }
            }
            path.display().to_string()
        };
        let pick = |table: &str, key: &str, file: Option<String>| -> Option<Setting> {
            let var = format!("WSUS_EDGE_{}_{}", table.to_uppercase(), key.to_uppercase());
            // An empty value means "unset" (the default), wherever it comes from.
            if let Some(v) = env(&var) {
                return (!v.trim().is_empty()).then_some(Setting {
                    value: v,
                    origin: var,
                });
            }
            file.filter(|v| !v.trim().is_empty()).map(|value| Setting {
                value,
                origin: line_of(table, key),
            })
        };
        let bad = |s: &Setting, key: &str, message: String| ConfigError::Value {
            origin: s.origin.clone(),
            key: key.to_string(),
            message,
        };
        let addr = |s: Setting, key: &str| -> Result<SocketAddr, ConfigError> {
            s.value.parse().map_err(|_| {
                bad(
                    &s,
                    key,
                    format!(
                        "expected host:port such as 127.0.0.1:8530, got {:?}",
                        s.value
                    ),
                )
            })
        };
        let url = |s: Setting, key: &str| -> Result<String, ConfigError> {
            if s.value.starts_with("http://") || s.value.starts_with("https://") {
                Ok(s.value.trim_end_matches('/').to_string())
            } else {
                Err(bad(
                    &s,
                    key,
                    format!("expected an http:// or https:// URL, got {:?}", s.value),
                ))
            }
        };
        let path_of = |table: &str, key: &str, file: Option<PathBuf>| -> Option<PathBuf> {
            pick(table, key, file.map(|p| p.to_string_lossy().into_owned()))
                .map(|s| PathBuf::from(s.value))
        };
        let list = |table: &str, key: &str, file: Option<Vec<String>>| -> Vec<String> {
            let var = format!("WSUS_EDGE_{}_{}", table.to_uppercase(), key.to_uppercase());
            match env(&var) {
                Some(v) => v
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                None => file.unwrap_or_default(),
            }
        };

        let mut cfg = Config::default();
        let r = raw.server;
        if let Some(s) = pick("server", "listen", r.listen) {
            cfg.server.listen = addr(s, "server.listen")?;
        }
        if let Some(p) = path_of("server", "data_dir", r.data_dir) {
            cfg.server.data_dir = p;
        }
        if let Some(s) = pick("server", "advertised_url", r.advertised_url) {
            cfg.server.advertised_url = Some(url(s, "server.advertised_url")?);
        }
        if let Some(s) = pick("server", "tls_listen", r.tls_listen) {
            cfg.server.tls_listen = Some(addr(s, "server.tls_listen")?);
        }
        cfg.server.tls_cert = path_of("server", "tls_cert", r.tls_cert);
        cfg.server.tls_key = path_of("server", "tls_key", r.tls_key);
        if cfg.server.tls_cert.is_some() != cfg.server.tls_key.is_some() {
            return Err(ConfigError::Value {
                origin: path.display().to_string(),
                key: "server.tls_cert".into(),
                message: "tls_cert and tls_key must be given together".into(),
            });
        }
        if cfg.server.tls_cert.is_some() && cfg.server.tls_listen.is_none() {
            let mut a = cfg.server.listen;
            a.set_port(a.port().wrapping_add(1));
            cfg.server.tls_listen = Some(a);
        }
        if let Some(s) = pick("server", "max_request_body", r.max_request_body) {
            cfg.server.max_request_body = parse_size(&s.value)
                .map_err(|e| bad(&s, "server.max_request_body", e.to_string()))?;
        }
        let count = |s: Setting, key: &str| -> Result<usize, ConfigError> {
            match s.value.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad(&s, key, "expected a whole number above 0".into())),
            }
        };
        let timeout = |s: Setting, key: &str| -> Result<Duration, ConfigError> {
            match parse_duration(&s.value) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(bad(&s, key, "expected more than 0s".into())),
                Err(e) => Err(bad(&s, key, e.to_string())),
            }
        };
        if let Some(s) = pick(
            "server",
            "max_connections",
            r.max_connections.map(|v| v.to_string()),
        ) {
            cfg.server.max_connections = count(s, "server.max_connections")?;
        }
        if let Some(s) = pick(
            "server",
            "max_connections_per_address",
            r.max_connections_per_address.map(|v| v.to_string()),
        ) {
            cfg.server.max_connections_per_address =
                count(s, "server.max_connections_per_address")?;
        }
        if let Some(s) = pick("server", "idle_timeout", r.idle_timeout) {
            cfg.server.idle_timeout = timeout(s, "server.idle_timeout")?;
        }
        if let Some(s) = pick("server", "header_read_timeout", r.header_read_timeout) {
            cfg.server.header_read_timeout = timeout(s, "server.header_read_timeout")?;
        }

        let r = raw.upstream;
        if let Some(s) = pick("upstream", "url", r.url) {
            cfg.upstream.url = Some(url(s, "upstream.url")?);
        }
        if let Some(s) = pick("upstream", "content_url", r.content_url) {
            cfg.upstream.content_url = Some(url(s, "upstream.content_url")?);
        }
        if let Some(s) = pick("upstream", "max_bandwidth", r.max_bandwidth) {
            let v = parse_bandwidth(&s.value)
                .map_err(|e| bad(&s, "upstream.max_bandwidth", e.to_string()))?;
            cfg.upstream.max_bandwidth = (v > 0).then_some(v);
        }
        cfg.upstream.ca_file = path_of("upstream", "ca_file", r.ca_file);
        if let Some(s) = pick("upstream", "stall_timeout", r.stall_timeout) {
            cfg.upstream.stall_timeout = timeout(s, "upstream.stall_timeout")?;
        }
        if let Some(s) = pick("upstream", "max_answer_size", r.max_answer_size) {
            let v = parse_size(&s.value)
                .map_err(|e| bad(&s, "upstream.max_answer_size", e.to_string()))?;
            if v == 0 {
                return Err(bad(
                    &s,
                    "upstream.max_answer_size",
                    "expected more than 0".into(),
                ));
            }
            cfg.upstream.max_answer_size = v;
        }
        cfg.upstream.redirect_hosts = list("upstream", "redirect_hosts", r.redirect_hosts);

        let r = raw.content;
        if let Some(s) = pick("content", "mode", r.mode) {
            cfg.content.mode = match s.value.as_str() {
                "prefetch" => ContentMode::Prefetch,
                "on-demand" => ContentMode::OnDemand,
                other => {
                    return Err(bad(
                        &s,
                        "content.mode",
                        format!("expected \"prefetch\" or \"on-demand\", got {other:?}"),
                    ))
                }
            };
        }
        if let Some(s) = pick("content", "download_window", r.download_window) {
            cfg.content.download_window = Some(
                DailyWindow::parse(&s.value)
                    .map_err(|e| bad(&s, "content.download_window", e.to_string()))?,
            );
        }
        if let Some(s) = pick("content", "max_size", r.max_size) {
            let v = parse_size(&s.value).map_err(|e| bad(&s, "content.max_size", e.to_string()))?;
            cfg.content.max_size = (v > 0).then_some(v);
        }
        if let Some(s) = pick("content", "min_free", r.min_free) {
            cfg.content.min_free =
                parse_size(&s.value).map_err(|e| bad(&s, "content.min_free", e.to_string()))?;
        }

        let r = raw.sync;
        if let Some(s) = pick("sync", "interval", r.interval) {
            let d =
                parse_duration(&s.value).map_err(|e| bad(&s, "sync.interval", e.to_string()))?;
            if d < Duration::from_secs(60) {
                return Err(bad(&s, "sync.interval", "expected at least 60s".into()));
            }
            cfg.sync.interval = d;
        }
        cfg.sync.products = list("sync", "products", r.products);
        cfg.sync.classifications = list("sync", "classifications", r.classifications);
        cfg.sync.languages = list("sync", "languages", r.languages);

        let r = raw.cleanup;
        if let Some(s) = pick("cleanup", "keep_needed_for", r.keep_needed_for) {
            cfg.cleanup.keep_needed_for = parse_duration(&s.value)
                .map_err(|e| bad(&s, "cleanup.keep_needed_for", e.to_string()))?;
        }

        let r = raw.rollup;
        let boolean = |s: Setting, key: &str| -> Result<bool, ConfigError> {
            match s.value.as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                other => Err(bad(
                    &s,
                    key,
                    format!("expected true or false, got {other:?}"),
                )),
            }
        };
        if let Some(s) = pick("rollup", "enabled", r.enabled.map(|b| b.to_string())) {
            cfg.rollup.enabled = boolean(s, "rollup.enabled")?;
        }
        if let Some(s) = pick("rollup", "interval", r.interval) {
            let d =
                parse_duration(&s.value).map_err(|e| bad(&s, "rollup.interval", e.to_string()))?;
            if d < Duration::from_secs(60) {
                return Err(bad(&s, "rollup.interval", "expected at least 60s".into()));
            }
            cfg.rollup.interval = d;
        }
        if let Some(s) = pick(
            "rollup",
            "accept_detailed",
            r.accept_detailed.map(|b| b.to_string()),
        ) {
            cfg.rollup.accept_detailed = boolean(s, "rollup.accept_detailed")?;
        }
        if let Some(s) = pick("rollup", "max_request_body", r.max_request_body) {
            cfg.rollup.max_request_body = parse_size(&s.value)
                .map_err(|e| bad(&s, "rollup.max_request_body", e.to_string()))?;
        }

        let r = raw.admin;
        if let Some(s) = pick("admin", "listen", r.listen) {
            cfg.admin.listen = addr(s, "admin.listen")?;
        }
        cfg.admin.token_file = path_of("admin", "token_file", r.token_file);
        cfg.admin.metrics_token_file = path_of("admin", "metrics_token_file", r.metrics_token_file);
        if let Some(s) = pick(
            "admin",
            "metrics_loopback_without_token",
            r.metrics_loopback_without_token.map(|b| b.to_string()),
        ) {
            cfg.admin.metrics_loopback_without_token = match s.value.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => {
                    return Err(bad(
                        &s,
                        "admin.metrics_loopback_without_token",
                        format!("expected true or false, got {other:?}"),
                    ))
                }
            };
        }
        if let Some(s) = pick("log", "format", raw.log.format) {
            cfg.log.format = match s.value.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(bad(
                        &s,
                        "log.format",
                        format!("expected \"text\" or \"json\", got {other:?}"),
                    ))
                }
            };
        }
        if let Some(s) = pick("log", "access", raw.log.access.map(|b| b.to_string())) {
            cfg.log.access = boolean(s, "log.access")?;
        }
        let r = raw.clients;
        let count = |s: Setting, key: &str| -> Result<u64, ConfigError> {
            s.value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    bad(
                        &s,
                        key,
                        format!("expected a positive number, got {:?}", s.value),
                    )
                })
        };
        if let Some(s) = pick(
            "clients",
            "max_computers",
            r.max_computers.map(|n| n.to_string()),
        ) {
            cfg.clients.max_computers = count(s, "clients.max_computers")? as usize;
        }
        if let Some(s) = pick(
            "clients",
            "registrations_per_minute",
            r.registrations_per_minute.map(|n| n.to_string()),
        ) {
            let n = count(s, "clients.registrations_per_minute")?;
            cfg.clients.registrations_per_minute = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(s) = pick(
            "clients",
            "max_events_per_computer",
            r.max_events_per_computer.map(|n| n.to_string()),
        ) {
            cfg.clients.max_events_per_computer =
                count(s, "clients.max_events_per_computer")? as usize;
        }
        if let Some(s) = pick(
            "clients",
            "max_event_bytes_per_computer",
            r.max_event_bytes_per_computer,
        ) {
            cfg.clients.max_event_bytes_per_computer = parse_size(&s.value)
                .map_err(|e| bad(&s, "clients.max_event_bytes_per_computer", e.to_string()))?;
        }
        if let Some(s) = pick("clients", "event_retention", r.event_retention) {
            cfg.clients.event_retention = parse_duration(&s.value)
                .map_err(|e| bad(&s, "clients.event_retention", e.to_string()))?;
        }
        if let Some(s) = pick(
            "clients",
            "report_bytes_per_second",
            r.report_bytes_per_second,
        ) {
            cfg.clients.report_bytes_per_second = parse_size(&s.value)
                .map_err(|e| bad(&s, "clients.report_bytes_per_second", e.to_string()))?;
        }
        if let Some(s) = pick("clients", "report_burst", r.report_burst) {
            cfg.clients.report_burst =
                parse_size(&s.value)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        bad(
                            &s,
                            "clients.report_burst",
                            format!("expected a positive size, got {:?}", s.value),
                        )
                    })?;
        }
        cfg.import.trusted_keys = list("import", "trusted_keys", raw.import.trusted_keys)
            .into_iter()
            .map(PathBuf::from)
            .collect();

        // Port 0 asks the system for a free port: two listeners on port 0 never share one.
        let client_ports = [Some(cfg.server.listen), cfg.server.tls_listen];
        if cfg.admin.listen.port() != 0 && client_ports.contains(&Some(cfg.admin.listen)) {
            return Err(ConfigError::Value {
                origin: path.display().to_string(),
                key: "admin.listen".into(),
                message: "the admin listener must not share an address with the client listeners"
                    .into(),
            });
        }
        Ok(cfg)
    }

    /// The folder holding the metadata store.
    pub fn store_dir(&self) -> PathBuf {
        self.server.data_dir.join("meta")
    }

    /// The folder holding payloads (`content/XX/<SHA1>.<ext>`).
    pub fn content_dir(&self) -> PathBuf {
        self.server.data_dir.join("content")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("t.toml"), |_| None)
    }

    #[test]
    fn the_admin_listener_may_not_take_a_client_port_but_port_zero_is_always_free() {
        let clash =
            parse("[server]\nlisten = \"127.0.0.1:8530\"\n[admin]\nlisten = \"127.0.0.1:8530\"\n");
        assert!(clash.is_err());
        // Both on port 0 (tests, benches, several servers on one box): two different ports.
        let c = parse("[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n")
            .unwrap();
        assert_eq!(c.admin.listen.port(), 0);
    }

    #[test]
    fn clients_and_import_tables() {
        let c = parse(
            "[clients]\nmax_computers = 7\nmax_event_bytes_per_computer = \"1MiB\"\nevent_retention = \"2d\"\n[import]\ntrusted_keys = [\"/k.pub\"]\n",
        )
        .unwrap();
        assert_eq!(c.clients.max_computers, 7);
        assert_eq!(c.clients.max_event_bytes_per_computer, 1 << 20);
        assert_eq!(c.clients.event_retention, Duration::from_secs(2 * 86400));
        assert_eq!(c.clients.report_bytes_per_second, 64 << 10, "default");
        assert_eq!(c.clients.report_burst, 4 << 20, "default");
        let r = parse("[clients]\nreport_bytes_per_second = \"1KiB\"\nreport_burst = \"32KiB\"\n")
            .unwrap();
        assert_eq!(r.clients.report_bytes_per_second, 1024);
        assert_eq!(r.clients.report_burst, 32 << 10);
        assert!(parse("[clients]\nreport_burst = \"0\"\n").is_err());
        assert_eq!(c.import.trusted_keys, vec![PathBuf::from("/k.pub")]);
        let env = Config::from_toml("", Path::new("t.toml"), |k| {
            (k == "WSUS_EDGE_CLIENTS_REGISTRATIONS_PER_MINUTE").then(|| "3".to_string())
        })
        .unwrap();
        assert_eq!(env.clients.registrations_per_minute, 3);
        assert!(parse("[clients]\nmax_computers = 0\n").is_err());
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8530");
        assert_eq!(c.server.data_dir, PathBuf::from("./data"));
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:8590");
        assert_eq!(c.content.mode, ContentMode::OnDemand);
    }

    #[test]
    fn full_file() {
        let c = parse(
            r#"
[server]
listen = "0.0.0.0:8530"
data_dir = "/var/lib/wsus-edge"
[upstream]
url = "http://wsus.example:8530/"
max_bandwidth = "20Mbit"
[content]
mode = "prefetch"
download_window = "22:00-06:00"
max_size = "500GiB"
[sync]
interval = "6h"
products = ["Windows 11"]
[admin]
listen = "127.0.0.1:9000"
"#,
        )
        .unwrap();
        assert_eq!(c.upstream.url.as_deref(), Some("http://wsus.example:8530"));
        assert_eq!(
            c.upstream.content_base().as_deref(),
            Some("http://wsus.example:8530")
        );
        assert_eq!(c.upstream.max_bandwidth, Some(2_500_000));
        assert_eq!(c.content.max_size, Some(500 << 30));
        assert_eq!(c.sync.products, vec!["Windows 11".to_string()]);
    }

    #[test]
    fn unknown_key_names_line() {
        let e = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("t.toml:3:"), "{msg}");
        assert!(msg.contains("lisen"), "{msg}");
    }

    #[test]
    fn bad_value_names_line_and_expectation() {
        let e = parse("[content]\n\nmax_size = \"huge\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("t.toml:3")
                && msg.contains("content.max_size")
                && msg.contains("expected"),
            "{msg}"
        );
    }

    #[test]
    fn env_overrides_file() {
        let c = Config::from_toml("[upstream]\nurl = \"http://a\"\n", Path::new("t"), |k| {
            (k == "WSUS_EDGE_UPSTREAM_URL").then(|| "http://b:8530".to_string())
        })
        .unwrap();
        assert_eq!(c.upstream.url.as_deref(), Some("http://b:8530"));
    }

    #[test]
    fn an_empty_string_means_unset() {
        let c = parse(
            "[upstream]\nurl = \"\"\ncontent_url = \"\"\nca_file = \"\"\n[server]\ntls_cert = \"\"\ntls_key = \"\"\n[content]\nmax_size = \"\"\n",
        )
        .unwrap();
        assert_eq!(c.upstream.url, None);
        assert_eq!(c.upstream.content_url, None);
        assert_eq!(c.upstream.ca_file, None);
        assert_eq!(c.server.tls_cert, None);
        assert_eq!(c.server.tls_listen, None);
        let c = Config::from_toml(
            "[upstream]\nurl = \"http://a:8530\"\n",
            Path::new("t"),
            |k| (k == "WSUS_EDGE_UPSTREAM_URL").then(String::new),
        )
        .unwrap();
        assert_eq!(c.upstream.url, None, "an empty env variable unsets the key");
    }

    #[test]
    fn log_and_metrics_keys() {
        let c = parse("[log]\nformat = \"json\"\n[admin]\nmetrics_token_file = \"/etc/m\"\nmetrics_loopback_without_token = true\n").unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.admin.metrics_token_file, Some(PathBuf::from("/etc/m")));
        assert!(c.admin.metrics_loopback_without_token);
        assert!(parse("[log]\nformat = \"xml\"\n").is_err());
        assert!(c.log.access, "the access log is on by default");
        assert!(!parse("[log]\naccess = false\n").unwrap().log.access);
    }

    #[test]
    fn cleanup_and_rollup_keys() {
        let c = parse("").unwrap();
        assert_eq!(c.cleanup.keep_needed_for, Duration::from_secs(30 * 86400));
        assert!(c.rollup.enabled && c.rollup.accept_detailed);
        let c = parse(
            "[cleanup]\nkeep_needed_for = \"7d\"\n[rollup]\nenabled = false\ninterval = \"2h\"\naccept_detailed = false\n",
        )
        .unwrap();
        assert_eq!(c.cleanup.keep_needed_for, Duration::from_secs(7 * 86400));
        assert!(!c.rollup.enabled && !c.rollup.accept_detailed);
        assert_eq!(c.rollup.interval, Duration::from_secs(7200));
        assert!(parse("[cleanup]\nkeep_needed_for = \"soon\"\n").is_err());
        assert!(parse("[rollup]\ninterval = \"5s\"\n").is_err());
    }

    #[test]
    fn upstream_limits_and_redirect_hosts() {
        let c = parse("").unwrap();
        assert_eq!(c.upstream.stall_timeout, Duration::from_secs(60));
        assert_eq!(c.upstream.max_answer_size, 256 << 20);
        assert!(c.upstream.redirect_hosts.is_empty());
        let c = parse(
            "[upstream]\nstall_timeout = \"90s\"\nmax_answer_size = \"64MiB\"\nredirect_hosts = [\"cdn.example\", \"dl.example:8080\"]\n",
        )
        .unwrap();
        assert_eq!(c.upstream.stall_timeout, Duration::from_secs(90));
        assert_eq!(c.upstream.max_answer_size, 64 << 20);
        assert_eq!(
            c.upstream.redirect_hosts,
            ["cdn.example", "dl.example:8080"]
        );
        assert!(parse("[upstream]\nstall_timeout = \"0s\"\n").is_err());
        assert!(parse("[upstream]\nmax_answer_size = \"0\"\n").is_err());
    }

    #[test]
    fn admin_must_not_share_client_port() {
        assert!(parse("[admin]\nlisten = \"127.0.0.1:8530\"\n").is_err());
    }
}
