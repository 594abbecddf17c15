//! Recovery from a full disk without a restart (issue 15). After one write fails for lack of
//! space, sled keeps a sticky error and fails every later write until the database is opened
//! again, even once space is back. A failed write that says so marks the store unhealthy
//! ([`Store::failure`], shown by `/healthz`); [`Store::recover`], called periodically by the
//! app while the store is unhealthy, reopens sled once the file system has room again and
//! checks that a write reaches the disk. What the failed writes carried is lost (each was
//! refused to its caller, or, for sled's buffered writes, never became durable); every
//! committed transaction before them is still there, as after a crash.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Db, Store, StoreError};

/// Free space the file system must have before a reopen is tried: sled's log writes in
/// segments of up to 8 MiB, and a reopen into a still-full disk would fail at once.
pub const RECOVER_MIN_FREE: u64 = 16 << 20;

/// How long a reopen waits for operations still holding the old database to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// The setting a recovery writes and flushes to prove the store writes again.
const PROBE_KEY: &str = "store.recovery_probe";

impl Store {
    /// Why the store is unhealthy, or `None` when it is healthy.
    pub fn failure(&self) -> Option<String> {
        self.inner
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A small write (not flushed), passed through the same check as every other: once
    /// sled's background flush has met a full disk, sled refuses it, and the store is marked
    /// unhealthy even when the write that met the full disk was one of the single-key
    /// writes outside transactions. The app calls it every few seconds.
    pub fn probe(&self) -> Result<(), StoreError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        let r = self.live()?.kv.insert(PROBE_KEY, now.as_bytes());
        self.noted(r.map(|_| ()).map_err(StoreError::from))
    }

    /// Brings an unhealthy store back: when the file system has room again, reopens sled
    /// (dropping the database that keeps failing) and writes and flushes a probe. `Ok(true)`
    /// when the store is healthy afterwards (or was), `Ok(false)` when it is left as it is
    /// for a later try (still no room, or operations kept the old database busy); `Err`
    /// when the reopen or the probe failed (still unhealthy; tried again later). Blocking:
    /// call it from `spawn_blocking`.
    pub fn recover(&self) -> Result<bool, StoreError> {
        if self.failure().is_none() {
            return Ok(true);
        }
        if let Some((free, _)) = crate::metrics::disk_space(&self.inner.dir) {
            if free < RECOVER_MIN_FREE {
                return Ok(false);
            }
        }
        let mut live = self.inner.live.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = live.take() {
            // Operations in progress hold the old database; they are short (scans run in
            // blocking tasks), so wait for them, but never for long.
            let deadline = Instant::now() + DRAIN;
            while Arc::strong_count(&old) > 1 {
                if Instant::now() >= deadline {
                    *live = Some(old);
                    return Ok(false);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            // Its final flush fails (the sticky error); dropping it closes sled's files.
            drop(old);
        }
        let db = Db::open(&self.inner.dir)?;
        *live = Some(Arc::new(db));
        drop(live);
        // sled accepts a write into its buffer before the flush finds the disk full, so the
        // probe is flushed: only a write on disk proves the store works again.
        let now = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        let probe = self.live()?.kv.insert(PROBE_KEY, now.as_bytes());
        probe.map_err(StoreError::from)?;
        self.live()?.db.flush()?;
        *self.inner.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!("metadata store: reopened after the disk was full; writing again");
        Ok(true)
    }
}
