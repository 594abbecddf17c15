//! The sync schedule: sync at start-up when the store never synced successfully, then every
//! `sync.interval` (plus up to 10% jitter), or at once when [`super::SyncHandle::trigger`] is
//! called. Progress and results go to the [`SyncReporter`]. After a successful sync with
//! `content.mode = "prefetch"`, the files of approved (Install) updates are queued for
//! background download through a [`Prefetcher`] (the content cache), only inside
//! `content.download_window`; the upstream bandwidth cap is the cache's own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{SyncOptions, SyncReporter, Syncer, UpstreamClient};
use crate::config::{Config, ContentMode};
use crate::model::FileRecord;
use crate::store::Store;
use crate::units::DailyWindow;

/// Downloads one payload into the local cache (implemented over the content cache).
pub trait Prefetcher: Send + Sync + 'static {
    /// Makes sure `file` is cached; `Err` says why it is not.
    fn ensure(
        &self,
        file: FileRecord,
    ) -> Pin<Box<dyn Future<Output = Result<(), crate::content::EnsureError>> + Send>>;
}

/// What the runner needs.
pub struct RunnerContext {
    /// The configuration (`upstream`, `sync`, `content`).
    pub config: Config,
    /// The store to sync into.
    pub store: Store,
    /// Where progress goes.
    pub reporter: SyncReporter,
    /// Trigger requests from [`super::SyncHandle::trigger`].
    pub trigger: mpsc::Receiver<()>,
    /// The content cache, for prefetch.
    pub prefetcher: Option<Arc<dyn Prefetcher>>,
    /// Stops the runner when it turns true.
    pub shutdown: watch::Receiver<bool>,
}

/// Starts the runner task.
pub fn spawn_runner(ctx: RunnerContext) -> JoinHandle<()> {
    tokio::spawn(run(ctx))
}

fn jittered(interval: Duration) -> Duration {
    let max = interval.as_millis() as u64 / 10;
    interval + Duration::from_millis(rand::thread_rng().gen_range(0..=max))
}

async fn run(mut ctx: RunnerContext) {
    let client = match UpstreamClient::new(&ctx.config.upstream) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "sync runner cannot start");
            ctx.reporter
                .update(|s| s.last_result = Some(format!("error: {e}")));
            return;
        }
    };
    let never = ctx
        .store
        .sync_state()
        .map(|s| s.last_success.is_none())
        .unwrap_or(true);
    let mut now = never;
    let mut prefetch: Option<JoinHandle<()>> = None;
    let mut trigger_open = true;
    loop {
        if !now {
            let sleep = tokio::time::sleep(jittered(ctx.config.sync.interval));
            tokio::select! {
                _ = sleep => {}
                t = ctx.trigger.recv(), if trigger_open => if t.is_none() {
                    // The handle is gone: keep the timer only.
                    trigger_open = false;
                    continue;
                },
                _ = ctx.shutdown.wait_for(|s| *s) => return,
            }
        }
        now = false;
        let ok = sync_once(&ctx, &client).await;
        if ok && ctx.config.content.mode == ContentMode::Prefetch {
            if let Some(p) = &ctx.prefetcher {
                if let Some(h) = prefetch.take() {
                    h.abort();
                }
                prefetch = Some(tokio::spawn(prefetch_approved(
                    ctx.store.clone(),
                    p.clone(),
                    ctx.config.content.download_window,
                    ctx.reporter.clone(),
                )));
            }
        }
    }
}

/// Runs one sync with status reporting; true on success.
pub async fn sync_once(ctx: &RunnerContext, client: &UpstreamClient) -> bool {
    let t = Instant::now();
    let started = OffsetDateTime::now_utc();
    ctx.reporter.update(|s| {
        s.running = true;
        s.phase = Some("auth".into());
        s.done = 0;
        s.total = 0;
        s.last_started = started
            .format(&time::format_description::well_known::Rfc3339)
            .ok();
    });
    let mut opts = SyncOptions::from_config(&ctx.config.sync);
    // `wsus-edge subscription set` (kept in the store) overrides `[sync] products/classifications`.
    let sub = ctx.store.subscription(&ctx.config.sync);
    (opts.products, opts.classifications) = (sub.products, sub.classifications);
    let mut syncer = Syncer::new(
        ctx.store.clone(),
        client.clone(),
        opts,
        Some(ctx.reporter.clone()),
    );
    let r = syncer.run().await;
    crate::metrics::observe_sync(t.elapsed().as_secs_f64());
    let finished = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .ok();
    ctx.reporter.update(|s| {
        s.running = false;
        s.phase = None;
        s.runs += 1;
        s.last_finished = finished;
        s.last_duration_secs = Some(t.elapsed().as_secs_f64());
        match &r {
            Ok(sum) => {
                s.last_result = Some("ok".into());
                s.anchor = Some(sum.anchor.clone());
                s.updates = sum.updates;
                s.fetched = sum.fetched;
                s.approvals = sum.deployments;
                s.skipped = sum.skipped.clone();
            }
            Err(e) => s.last_result = Some(format!("error: {e}")),
        }
    });
    r.is_ok()
}

/// Local wall-clock minute of the day (libc `localtime_r`; UTC if that fails).
fn minute_of_day() -> u16 {
    let now = OffsetDateTime::now_utc();
    let t: libc::time_t = now.unix_timestamp() as libc::time_t;
    // SAFETY: localtime_r writes only into the `tm` we own; a null return is handled.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok {
        (tm.tm_hour as u16) * 60 + tm.tm_min as u16
    } else {
        u16::from(now.hour()) * 60 + u16::from(now.minute())
    }
}

/// Returns once `clock()` (minute of the day) is inside `window`, looking once a minute.
async fn wait_for_window(window: &DailyWindow, clock: impl Fn() -> u16) {
    let mut logged = false;
    while !window.contains(clock()) {
        if !logged {
            tracing::info!(
                start = window.start,
                end = window.end,
                "prefetch waits for content.download_window"
            );
            logged = true;
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

/// Downloads the approved files, 4 at a time, waiting for the download window.
async fn prefetch_approved(
    store: Store,
    p: Arc<dyn Prefetcher>,
    window: Option<DailyWindow>,
    reporter: SyncReporter,
) {
    let files = match tokio::task::spawn_blocking(move || store.approved_files()).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return tracing::warn!(error = %e, "prefetch: cannot list approved files"),
        Err(e) => return tracing::warn!(error = %e, "prefetch task failed"),
    };
    let total = files.len() as u64;
    tracing::info!(files = total, "prefetching approved content");
    let sem = Arc::new(tokio::sync::Semaphore::new(4));
    let mut tasks = tokio::task::JoinSet::new();
    let mut failed = 0u64;
    for f in files {
        if let Some(w) = &window {
            wait_for_window(w, minute_of_day).await;
        }
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let p = p.clone();
        tasks.spawn(async move {
            let name = f.name.clone();
            let r = p.ensure(f).await;
            drop(permit);
            if let Err(e) = &r {
                tracing::warn!(file = %name, error = %e, "prefetch failed");
            }
            r.is_ok()
        });
    }
    let mut done = 0u64;
    while let Some(r) = tasks.join_next().await {
        done += 1;
        if !matches!(r, Ok(true)) {
            failed += 1;
        }
    }
    reporter.update(|s| {
        if s.phase.as_deref() == Some("content") {
            s.phase = None;
        }
    });
    tracing::info!(done, failed, "prefetch finished");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that starts at `start` (minute of the day) and follows tokio's (paused) time.
    fn clock_from(start: u16, t0: tokio::time::Instant) -> impl Fn() -> u16 {
        move || ((u64::from(start) + t0.elapsed().as_secs() / 60) % 1440) as u16
    }

    #[tokio::test(start_paused = true)]
    async fn prefetch_waits_for_the_download_window() {
        let night = DailyWindow::parse("22:00-06:00").unwrap();
        // Inside the window (past midnight): no wait at all.
        let t0 = tokio::time::Instant::now();
        wait_for_window(&night, clock_from(5 * 60 + 59, t0)).await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
        // At 21:57 it waits until 22:00, looking once a minute.
        let t0 = tokio::time::Instant::now();
        wait_for_window(&night, clock_from(21 * 60 + 57, t0)).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(180));
        // At 06:00 the window has just closed: the next opening is 16 hours away.
        let t0 = tokio::time::Instant::now();
        wait_for_window(&night, clock_from(6 * 60, t0)).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(16 * 3600));
    }
}
