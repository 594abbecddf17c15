//! Replica sync: the downstream side of MS-WSUSSS (pull metadata, approvals and content from
//! an upstream WSUS or wsus-edge) and the control surface the scheduler and the admin API use.
//!
//! [`handle`] is the shared control surface: the admin API calls [`SyncHandle::trigger`] and
//! [`SyncHandle::status`]; the sync runner reports progress through [`SyncReporter`].

pub mod handle;

pub use handle::{SyncHandle, SyncReporter, SyncStatus};
