//! The configuration: one TOML file (documented in `deploy/wsus-edge.toml`), sane defaults
//! for every key, environment overrides (`WSUS_EDGE_<TABLE>_<KEY>`, e.g.
//! `WSUS_EDGE_UPSTREAM_URL`), then command-line flags applied by the caller. A wrong key or
//! value is refused with the file, the line and what was expected.
//!
//! This module owns the error type and re-exports the pieces: the typed tables and their
//! defaults (`tables`), the file's TOML shape (`raw`), reading the file and merging the
//! environment into validated tables (`load`), and `[upstream]` with its HTTP client
//! (`upstream`). Units (sizes, durations, rates, daily windows) are parsed by
//! [`crate::units`].

use std::path::PathBuf;

mod load;
mod raw;
mod tables;
mod upstream;

pub use tables::{
    AdminConfig, CleanupConfig, ClientsConfig, Config, ContentConfig, ContentMode, ImportConfig,
    LogConfig, LogFormat, RollupConfig, ServerConfig, SyncConfig,
};
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

#[cfg(test)]
mod tests;
