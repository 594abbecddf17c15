//! The control surface of the sync runner: trigger a sync, watch its progress and last result.
//! The admin API and the scheduler hold a [`SyncHandle`]; the runner holds the matching
//! [`SyncReporter`] and the trigger receiver. No protocol logic lives here.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, watch};

/// What `sync status` shows, also the admin API's JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SyncStatus {
    /// A sync is running now.
    pub running: bool,
    /// Current phase (`auth`, `config`, `revisions`, `updates`, `deployments`, `content`).
    pub phase: Option<String>,
    /// Items done in the current phase.
    pub done: u64,
    /// Items expected in the current phase (0 when unknown).
    pub total: u64,
    /// `"ok"` or `"error: <reason>"` for the last finished sync.
    pub last_result: Option<String>,
    /// RFC 3339 start of the last (or current) sync.
    pub last_started: Option<String>,
    /// RFC 3339 end of the last finished sync.
    pub last_finished: Option<String>,
    /// Wall time of the last finished sync, seconds.
    pub last_duration_secs: Option<f64>,
    /// The sync anchor after the last successful sync.
    pub anchor: Option<String>,
    /// Updates (latest revisions) in the store after the last sync.
    pub updates: u64,
    /// Revisions fetched by the last sync.
    pub fetched: u64,
    /// Approvals (deployments) after the last sync.
    pub approvals: u64,
    /// Sequence number of the last finished sync (0 = never ran in this process).
    pub runs: u64,
    /// Revisions the last sync isolated and skipped (retried at the next sync).
    pub skipped: Vec<crate::store::SkippedRevision>,
}

/// Cloneable handle: ask for a sync, read or await its status.
#[derive(Debug, Clone)]
pub struct SyncHandle {
    trigger: mpsc::Sender<()>,
    status: watch::Receiver<SyncStatus>,
}

/// The runner's side: publishes status.
#[derive(Debug, Clone)]
pub struct SyncReporter {
    status: Arc<watch::Sender<SyncStatus>>,
}

/// Makes a connected handle, reporter and trigger receiver.
pub fn channel() -> (SyncHandle, SyncReporter, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel(1);
    let (stx, srx) = watch::channel(SyncStatus::default());
    (
        SyncHandle {
            trigger: tx,
            status: srx,
        },
        SyncReporter {
            status: Arc::new(stx),
        },
        rx,
    )
}

impl SyncHandle {
    /// Asks the runner to sync now. Returns false when a request is already pending or the
    /// runner is gone (a running sync is not interrupted; the request runs after it).
    pub fn trigger(&self) -> bool {
        self.trigger.try_send(()).is_ok()
    }

    /// The current status.
    pub fn status(&self) -> SyncStatus {
        self.status.borrow().clone()
    }

    /// Waits until the status changes (for progress streaming); returns the new status, or
    /// `None` when the runner is gone.
    pub async fn changed(&mut self) -> Option<SyncStatus> {
        self.status.changed().await.ok()?;
        Some(self.status.borrow_and_update().clone())
    }
}

impl SyncReporter {
    /// Applies `f` to the published status.
    pub fn update(&self, f: impl FnOnce(&mut SyncStatus)) {
        self.status.send_modify(f);
    }

    /// The current status.
    pub fn status(&self) -> SyncStatus {
        self.status.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_and_progress() {
        let (mut h, rep, mut rx) = channel();
        assert!(h.trigger());
        assert!(
            !h.trigger(),
            "a second request while one is pending is coalesced"
        );
        assert!(rx.recv().await.is_some());
        rep.update(|s| {
            s.running = true;
            s.phase = Some("updates".into());
        });
        let s = h.changed().await.unwrap();
        assert!(s.running);
        assert_eq!(h.status().phase.as_deref(), Some("updates"));
    }
}
