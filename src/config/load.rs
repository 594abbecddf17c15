//! Loading the configuration: the file read and parsed (`raw`), each key's
//! environment override (`WSUS_EDGE_<TABLE>_<KEY>`; an empty value means unset) picked over
//! the file, and every value validated into the typed tables, with the origin (`file:line`
//! or the variable) in each error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::RawFile;
use super::{Config, ConfigError, ContentMode, LogFormat};
use crate::units::{parse_bandwidth, parse_duration, parse_size, DailyWindow};

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
}
