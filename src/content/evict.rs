//! LRU eviction under `content.max_size`: pins for objects being served or written, and the
//! pure choice of victims. Victims are only chosen here; the cache deletes them (file, then
//! index entry).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Counts of readers/writers per object; a pinned object is never evicted.
#[derive(Debug, Default, Clone)]
pub struct Pins {
    inner: Arc<Mutex<HashMap<[u8; 20], usize>>>,
}

/// Holds a pin until dropped.
#[derive(Debug)]
pub struct PinGuard {
    pins: Pins,
    sha1: [u8; 20],
}

impl Pins {
    /// Pins `sha1` until the guard drops.
    pub fn pin(&self, sha1: [u8; 20]) -> PinGuard {
        *self.lock().entry(sha1).or_insert(0) += 1;
        PinGuard {
            pins: self.clone(),
            sha1,
        }
    }

    /// Whether `sha1` is pinned now.
    pub fn is_pinned(&self, sha1: &[u8; 20]) -> bool {
        self.lock().contains_key(sha1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 20], usize>> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        let mut g = self.pins.lock();
        if let Some(n) = g.get_mut(&self.sha1) {
            *n -= 1;
            if *n == 0 {
                g.remove(&self.sha1);
            }
        }
    }
}

/// One candidate: identity, size, last access (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// SHA-1.
    pub sha1: [u8; 20],
    /// Bytes on disk.
    pub size: u64,
    /// Last access, unix seconds.
    pub last_access: i64,
    /// In-process access order, breaking ties within one second (0 = unknown, oldest).
    pub seq: u64,
}

/// Least recently used first, skipping pinned objects, until `total` is at most `max`.
pub fn plan(
    mut objects: Vec<Candidate>,
    total: u64,
    max: u64,
    pinned: impl Fn(&[u8; 20]) -> bool,
) -> Vec<Candidate> {
    if total <= max {
        return Vec::new();
    }
    objects.sort_by_key(|c| (c.last_access, c.seq, c.sha1));
    let mut over = total - max;
    let mut out = Vec::new();
    for c in objects {
        if over == 0 {
            break;
        }
        if pinned(&c.sha1) {
            continue;
        }
        over = over.saturating_sub(c.size);
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(b: u8, size: u64, t: i64) -> Candidate {
        Candidate {
            sha1: [b; 20],
            size,
            last_access: t,
            seq: 0,
        }
    }

    #[test]
    fn oldest_first_until_under_and_pins_respected() {
        let objs = vec![c(1, 10, 300), c(2, 10, 100), c(3, 10, 200), c(4, 10, 50)];
        assert!(plan(objs.clone(), 40, 40, |_| false).is_empty());
        let v = plan(objs.clone(), 40, 25, |_| false);
        assert_eq!(v.iter().map(|c| c.sha1[0]).collect::<Vec<_>>(), vec![4, 2]);
        let pins = Pins::default();
        let g = pins.pin([4; 20]);
        let v = plan(objs.clone(), 40, 25, |s| pins.is_pinned(s));
        assert_eq!(v.iter().map(|c| c.sha1[0]).collect::<Vec<_>>(), vec![2, 3]);
        drop(g);
        assert!(!pins.is_pinned(&[4; 20]));
        // Everything pinned: nothing to evict, never a pinned one.
        assert!(plan(objs, 40, 0, |_| true).is_empty());
        // Same second: the in-process order decides.
        let same = vec![
            Candidate {
                seq: 9,
                ..c(1, 10, 5)
            },
            Candidate {
                seq: 3,
                ..c(2, 10, 5)
            },
        ];
        assert_eq!(plan(same, 20, 10, |_| false)[0].sha1[0], 2);
    }
}
