//! Sheds reporting traffic per client address before its body is read (issue 15: one address
//! posting `ReportEventBatch` bodies of ~2 MB as fast as they were answered took most of the
//! server's CPU for parsing them, so other clients' scans slowed to under a third).
//!
//! Each client address has a token bucket of request-body bytes for the Reporting endpoint:
//! `[clients] report_burst` bytes deep, refilled at `report_bytes_per_second`. A request costs
//! its `Content-Length` (a chunked body: the endpoint's largest body, `server.max_request_body`),
//! at most the whole bucket, so a single batch under the burst always passes once the
//! address has been quiet. Over budget, the request is answered at once with 503 and
//! `Retry-After` (what an overloaded WSUS/IIS answers; the Windows Update agent keeps its
//! events and sends them later) and its connection is closed without reading the body; it is
//! counted in `wsus_edge_client_requests_shed_total{reason="report_bytes"}` and logged at
//! most once per address per minute. IPv6 clients are counted per /64 (one host holds a
//! whole /64). The table is bounded by [`MAX_TRACKED_ADDRESSES`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderValue, Response, StatusCode};

use crate::config::ClientsConfig;
use crate::http::{body, Body};

/// Client addresses whose budgets are remembered; past it, full buckets are forgotten first.
pub const MAX_TRACKED_ADDRESSES: usize = 4096;
/// The longest wait a `Retry-After` asks for.
const MAX_RETRY_AFTER: u64 = 3600;
/// Shed requests of one address are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The decision for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Read and answer it.
    Admit,
    /// Refuse it now.
    Shed {
        /// Seconds until the budget allows it.
        retry_after: u64,
        /// Whether this is the first shed of its address in the last minute (log it).
        log: bool,
    },
}

struct Bucket {
    tokens: f64,
    at: Instant,
    logged: Option<Instant>,
}

/// Per-address byte budgets of the Reporting endpoint.
pub struct Shedder {
    rate: u64,
    burst: u64,
    table: Mutex<HashMap<IpAddr, Bucket>>,
}

/// The address a budget is kept for: IPv4 (also when mapped into IPv6), or an IPv6 /64.
fn key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

impl Shedder {
    /// Budgets from `[clients] report_bytes_per_second` and `report_burst` (a rate of 0
    /// sheds nothing).
    pub fn new(cfg: &ClientsConfig) -> Self {
        Self {
            rate: cfg.report_bytes_per_second,
            burst: cfg.report_burst.max(1),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// May `peer` send a body of `cost` bytes at `now`? Takes the bytes from its budget when
    /// it may.
    pub fn check(&self, peer: IpAddr, cost: u64, now: Instant) -> Verdict {
        if self.rate == 0 {
            return Verdict::Admit;
        }
        let (rate, burst) = (self.rate as f64, self.burst as f64);
        let cost = cost.min(self.burst) as f64;
        let k = key(peer);
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let level =
            |b: &Bucket| (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        if t.len() >= MAX_TRACKED_ADDRESSES && !t.contains_key(&k) {
            // A full bucket is the same as none.
            t.retain(|_, b| level(b) < burst);
            if t.len() >= MAX_TRACKED_ADDRESSES {
                // Forget the one closest to full: the least indebted address.
                let fullest = t
                    .iter()
                    .max_by(|a, b| level(a.1).total_cmp(&level(b.1)))
                    .map(|(a, _)| *a);
                if let Some(a) = fullest {
                    t.remove(&a);
                }
            }
        }
        let b = t.entry(k).or_insert(Bucket {
            tokens: burst,
            at: now,
            logged: None,
        });
        b.tokens = level(b);
        b.at = now;
        if b.tokens >= cost {
            b.tokens -= cost;
            return Verdict::Admit;
        }
        let wait = ((cost - b.tokens) / rate).ceil() as u64;
        let log = b.logged.is_none_or(|l| now.duration_since(l) >= LOG_EVERY);
        if log {
            b.logged = Some(now);
        }
        Verdict::Shed {
            retry_after: wait.clamp(1, MAX_RETRY_AFTER),
            log,
        }
    }

    /// The answer to a Reporting request of `cost` body bytes from `peer` when it is shed
    /// (503, `Retry-After`, counted and logged), or `None` to read and answer it.
    pub fn refuse(&self, peer: IpAddr, cost: u64) -> Option<Response<Body>> {
        let Verdict::Shed { retry_after, log } = self.check(peer, cost, Instant::now()) else {
            return None;
        };
        crate::metrics::client_request_shed("report_bytes");
        if log {
            tracing::warn!(
                %peer,
                bytes = cost,
                retry_after,
                rate = self.rate,
                burst = self.burst,
                "reporting traffic from this address over its budget: answering 503 \
                 (logged once a minute per address)"
            );
        }
        let mut r = body::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "reporting budget of this address exceeded; retry later",
        );
        r.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from(retry_after));
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shedder(rate: u64, burst: u64) -> Shedder {
        Shedder::new(&ClientsConfig {
            report_bytes_per_second: rate,
            report_burst: burst,
            ..ClientsConfig::default()
        })
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_bucket_empties_per_address_and_refills_at_the_rate() {
        let s = shedder(1000, 10_000);
        let t0 = Instant::now();
        assert_eq!(s.check(A, 6000, t0), Verdict::Admit);
        // 4000 left: 6000 more need 2 s of refill at 1000 B/s.
        assert_eq!(
            s.check(A, 6000, t0),
            Verdict::Shed {
                retry_after: 2,
                log: true
            }
        );
        assert_eq!(
            s.check(A, 6000, t0 + Duration::from_secs(1)),
            Verdict::Shed {
                retry_after: 1,
                log: false
            },
            "logged once a minute"
        );
        assert_eq!(s.check(B, 6000, t0), Verdict::Admit, "another address");
        assert_eq!(
            s.check(A, 6000, t0 + Duration::from_secs(2)),
            Verdict::Admit
        );
        // A body larger than the burst costs the whole bucket: it passes when the bucket is
        // full, never more often.
        let t1 = t0 + Duration::from_secs(100);
        assert_eq!(s.check(A, 4 << 20, t1), Verdict::Admit);
        assert!(matches!(s.check(A, 1, t1), Verdict::Shed { .. }));
        assert!(matches!(
            s.check(A, 1, t1 + Duration::from_secs(61)),
            Verdict::Admit
        ));
    }

    #[test]
    fn a_zero_rate_sheds_nothing() {
        let s = shedder(0, 1);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(s.check(A, 4 << 20, t0), Verdict::Admit);
        }
    }

    #[test]
    fn ipv6_is_counted_per_64_and_the_table_stays_bounded() {
        let s = shedder(1, 100);
        let t0 = Instant::now();
        let a1: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let a2: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(s.check(a1, 100, t0), Verdict::Admit);
        assert!(matches!(s.check(a2, 100, t0), Verdict::Shed { .. }));
        assert_eq!(s.check(A, 100, t0), Verdict::Admit);
        assert!(matches!(s.check(mapped, 100, t0), Verdict::Shed { .. }));
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 100) {
            let ip = IpAddr::from((0x0b00_0000u32 + i).to_be_bytes());
            assert_eq!(s.check(ip, 50, t0), Verdict::Admit);
        }
        let n = s.table.lock().unwrap().len();
        assert!(n <= MAX_TRACKED_ADDRESSES, "{n} addresses tracked");
    }
}
