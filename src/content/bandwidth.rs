//! The upstream bandwidth cap: one token bucket shared by every upstream fetch
//! (`upstream.max_bandwidth`, bytes per second). A fetch takes tokens for each chunk it
//! receives; when the bucket is in debt the fetch sleeps, which stops reading the socket and
//! lets TCP flow control slow the sender.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A shared token bucket. Cheap to call per chunk.
#[derive(Debug)]
pub struct Bandwidth {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bandwidth {
    /// A bucket refilled at `bytes_per_sec`, holding at most 50 ms worth (at least 16 KiB).
    pub fn new(bytes_per_sec: u64) -> Self {
        let rate = bytes_per_sec.max(1) as f64;
        let burst = (rate * 0.05).max(16384.0);
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// The configured rate, bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate as u64
    }

    /// Takes `n` tokens, returning how long the caller must wait before using them.
    pub fn reserve(&self, n: usize) -> Duration {
        let mut g = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let now = Instant::now();
        let (tokens, last) = *g;
        let refilled =
            (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        let left = refilled - n as f64;
        *g = (left, now);
        if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-left / self.rate)
        }
    }

    /// Takes `n` tokens, sleeping while the bucket is in debt.
    pub async fn take(&self, n: usize) {
        let d = self.reserve(n);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_turns_into_wait() {
        let b = Bandwidth::new(1_000_000);
        // The initial burst (50 KB) is free, then each byte costs 1 µs.
        assert_eq!(b.reserve(50_000), Duration::ZERO);
        let d = b.reserve(100_000);
        assert!(
            d >= Duration::from_millis(90) && d <= Duration::from_millis(101),
            "{d:?}"
        );
        // Debt accumulates across callers: the next one waits behind the first.
        let d2 = b.reserve(100_000);
        assert!(d2 >= Duration::from_millis(190), "{d2:?}");
    }
}
