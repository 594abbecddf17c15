//! The configuration file's TOML shape: one struct per table, every key optional and unknown
//! keys refused (`deny_unknown_fields`), values as written (units are parsed by `load`).

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) upstream: RawUpstream,
    #[serde(default)]
    pub(super) content: RawContent,
    #[serde(default)]
    pub(super) sync: RawSync,
    #[serde(default)]
    pub(super) admin: RawAdmin,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) cleanup: RawCleanup,
    #[serde(default)]
    pub(super) rollup: RawRollup,
    #[serde(default)]
    pub(super) clients: RawClients,
    #[serde(default)]
    pub(super) import: RawImport,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCleanup {
    pub(super) keep_needed_for: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClients {
    pub(super) max_computers: Option<u64>,
    pub(super) registrations_per_minute: Option<u64>,
    pub(super) max_events_per_computer: Option<u64>,
    pub(super) max_event_bytes_per_computer: Option<String>,
    pub(super) event_retention: Option<String>,
    pub(super) report_bytes_per_second: Option<String>,
    pub(super) report_burst: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRollup {
    pub(super) enabled: Option<bool>,
    pub(super) interval: Option<String>,
    pub(super) accept_detailed: Option<bool>,
    pub(super) max_request_body: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawImport {
    pub(super) trusted_keys: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) data_dir: Option<PathBuf>,
    pub(super) advertised_url: Option<String>,
    pub(super) tls_listen: Option<String>,
    pub(super) tls_cert: Option<PathBuf>,
    pub(super) tls_key: Option<PathBuf>,
    pub(super) max_request_body: Option<String>,
    pub(super) max_connections: Option<u64>,
    pub(super) max_connections_per_address: Option<u64>,
    pub(super) idle_timeout: Option<String>,
    pub(super) header_read_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    pub(super) url: Option<String>,
    pub(super) content_url: Option<String>,
    pub(super) max_bandwidth: Option<String>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) stall_timeout: Option<String>,
    pub(super) max_answer_size: Option<String>,
    pub(super) redirect_hosts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContent {
    pub(super) mode: Option<String>,
    pub(super) download_window: Option<String>,
    pub(super) max_size: Option<String>,
    pub(super) min_free: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSync {
    pub(super) interval: Option<String>,
    pub(super) products: Option<Vec<String>>,
    pub(super) classifications: Option<Vec<String>>,
    pub(super) languages: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) metrics_token_file: Option<PathBuf>,
    pub(super) metrics_loopback_without_token: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: Option<String>,
    pub(super) access: Option<bool>,
}
