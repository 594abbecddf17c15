//! Replica sync: the downstream side of MS-WSUSSS (pull metadata, approvals and content from
//! an upstream WSUS or wsus-edge) and the control surface the scheduler and the admin API use.
//!
//! | module | owns |
//! |---|---|
//! | [`handle`] | [`SyncHandle`] (admin API: trigger, status) and [`SyncReporter`] (runner) |
//! | [`upstream_client`] | SOAP over HTTP(S) to the upstream, retries with exponential backoff |
//! | [`engine`] | one sync, in the spec's order, each batch committed with its anchors (`engine::update_data`: GetUpdateData batches, related revisions) |
//! | [`runner`] | the schedule (start-up, interval with jitter, triggers) and content prefetch |
//! | [`download_files`] | the content cache's DownloadFiles requests for files the upstream lacks |

pub mod download_files;
pub mod engine;
pub mod handle;
mod prefetch;
pub mod runner;
pub mod upstream_client;

pub use engine::{SyncOptions, SyncSummary, Syncer};
pub use handle::{SyncHandle, SyncReporter, SyncStatus};
pub use runner::{spawn_runner, Prefetcher, RunnerContext};
pub use upstream_client::UpstreamClient;

use crate::store::StoreError;
use crate::wire::{Fault, WireError};

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The configuration does not allow a sync (no upstream URL, unreadable CA file).
    #[error("configuration: {0}")]
    Config(String),
    /// The upstream could not be reached, or the connection broke (after retries).
    #[error("network: {0}")]
    Network(String),
    /// The upstream answered with an unexpected HTTP status.
    #[error("HTTP {status} from {url}")]
    Http {
        /// The status.
        status: u16,
        /// The URL.
        url: String,
    },
    /// The upstream answered with a SOAP fault.
    #[error("upstream fault {}: {}", .0.error_code, .0.message)]
    Fault(Box<Fault>),
    /// The upstream's answer could not be decoded.
    #[error("bad answer to {op}: {source}")]
    Wire {
        /// Which response.
        op: &'static str,
        /// The decoding error.
        source: WireError,
    },
    /// An update document could not be parsed.
    #[error("update {key}: {source}")]
    Update {
        /// The revision.
        key: String,
        /// The parse error.
        source: WireError,
    },
    /// The local store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The upstream broke the protocol (e.g. returned none of the asked updates).
    #[error("protocol: {0}")]
    Protocol(String),
}

#[cfg(test)]
mod tests;
