//! Recency and eviction: the in-process access order of objects (exact) beside the last access
//! written to the index (minute precision, so a hit does not write the store each time), and
//! the eviction that keeps the folder under `content.max_size` (least recently used first;
//! objects being served or downloaded are pinned). [`super::evict`] chooses the victims.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::evict::{self, Candidate};
use super::index;
use super::key::ContentKey;
use super::{lock, now_unix, ContentCache};

/// How often (seconds) a hit writes its last access to the index.
const TOUCH_EVERY_SECS: i64 = 60;

/// In-process access record of one object.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Recency {
    /// Access order in this process.
    seq: u64,
    /// Last access (unix seconds), exact.
    seen: i64,
    /// Last access written to the index.
    written: i64,
}

impl ContentCache {
    /// Records an access to an object (in process; in the index at most once a minute).
    pub(super) fn touch(&self, sha1: &[u8; 20]) {
        let n = self.inner.clock.fetch_add(1, Ordering::Relaxed) + 1;
        let now = now_unix();
        let stale = {
            let mut r = lock(&self.inner.recency);
            let e = r.entry(*sha1).or_default();
            let stale = now - e.written >= TOUCH_EVERY_SECS;
            e.seq = n;
            e.seen = now;
            if stale {
                e.written = now;
            }
            stale
        };
        // The persistent last access only needs minute precision; in-process order is exact.
        if !stale {
            return;
        }
        if let Err(e) = self.inner.index.touch_object(sha1, now) {
            tracing::debug!(error = %e, "could not record last access");
        }
    }

    /// Notes that an object left the folder by another path (the admin's `content verify`
    /// quarantine or `cleanup`, which removed the file and its index entry): adjusts the size
    /// total and forgets its recency.
    pub fn forget(&self, sha1: &[u8; 20], size: u64) {
        self.inner.hot.remove(sha1);
        lock(&self.inner.recency).remove(sha1);
        let _ = self
            .inner
            .total
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(size))
            });
    }

    /// Evicts least recently used, unpinned objects while the store is over `max_size`.
    pub async fn evict_if_needed(&self) {
        let Some(max) = self.inner.max_size else {
            return;
        };
        if self.total_size() <= max {
            return;
        }
        let me = self.clone();
        let r = tokio::task::spawn_blocking(move || me.evict_blocking(max)).await;
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "eviction failed");
        }
    }

    fn evict_blocking(&self, max: u64) -> Result<(), index::IndexError> {
        let _one = lock(&self.inner.evicting);
        let objects = self.inner.index.objects()?;
        let recency = lock(&self.inner.recency).clone();
        let mut exts = HashMap::new();
        let cands: Vec<Candidate> = objects
            .into_iter()
            .map(|(sha1, e)| {
                exts.insert(sha1, e.ext.clone());
                Candidate {
                    sha1,
                    size: e.size,
                    last_access: e
                        .last_access_unix
                        .max(recency.get(&sha1).map(|r| r.seen).unwrap_or(0)),
                    seq: recency.get(&sha1).map(|r| r.seq).unwrap_or(0),
                }
            })
            .collect();
        let victims = self.inner.locks.with_downloading(|downloading| {
            let pins = &self.inner.pins;
            evict::plan(cands, self.total_size(), max, |s| {
                pins.is_pinned(s) || downloading(s)
            })
        });
        for v in victims {
            let ext = exts.get(&v.sha1).cloned().unwrap_or_default();
            let Ok(key) = ContentKey::new(v.sha1, &ext) else {
                continue;
            };
            self.inner.hot.remove(&v.sha1);
            if let Err(e) = self.inner.dir.remove(&key) {
                tracing::warn!(key = %key, error = %e, "could not evict");
                continue;
            }
            // Again: a hit may have reopened it between the first drop and the unlink.
            self.inner.hot.remove(&v.sha1);
            self.inner.index.remove_object(&v.sha1)?;
            lock(&self.inner.recency).remove(&v.sha1);
            self.inner
                .total
                .fetch_sub(v.size.min(self.total_size()), Ordering::Relaxed);
            tracing::info!(key = %key, size = v.size, "evicted (least recently used)");
        }
        Ok(())
    }
}
