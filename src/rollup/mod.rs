//! The MS-WSUSSS reporting rollup, both ways: [`dss`] rolls this server's computers (and those
//! rolled up from below) up to its upstream on a schedule and after each successful sync;
//! [`uss`] accepts the same operations from downstream servers at the Reporting endpoint.
//! Wire shapes: [`crate::wire::sss::rollup`]; stored state: `store/compliance.rs`.

pub mod dss;
pub mod uss;

use std::time::Duration;

use crate::config::Config;
use crate::store::Store;

pub use dss::{run_once, RollupError, RollupReport};

/// Held while a rollup runs.
pub static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs rollups until `shutdown` turns true: once shortly after start, every
/// `[rollup] interval`, and after each sync that succeeded since the last rollup (checked every
/// minute). One rollup at a time in the process ([`LOCK`], shared with the admin API's
/// `rollup` verb).
pub fn spawn(
    config: Config,
    store: Store,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_sync_seen: Option<i64> = None;
        let mut next = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let synced = store
                .sync_state()
                .ok()
                .and_then(|s| s.last_success)
                .map(|o| o.finished_unix);
            let after_sync = synced.is_some() && synced != last_sync_seen;
            if !after_sync && tokio::time::Instant::now() < next {
                continue;
            }
            last_sync_seen = synced;
            next = tokio::time::Instant::now() + config.rollup.interval;
            let _g = LOCK.lock().await;
            match run_once(&config, &store).await {
                Ok(r) => tracing::info!(
                    servers = r.servers,
                    computers = r.computers,
                    statuses = r.statuses,
                    requests = r.requests,
                    "rollup to upstream finished"
                ),
                Err(e) => tracing::warn!(error = %e, "rollup to upstream failed"),
            }
        }
    })
}
