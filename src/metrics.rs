//! The process-wide metrics registry (plain atomics) and its Prometheus text rendering.
//! Names are fixed by issue 7; other modules increment them through the functions here.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

static CONTENT_HIT: AtomicU64 = AtomicU64::new(0);
static CONTENT_MISS: AtomicU64 = AtomicU64::new(0);
static CONTENT_COALESCED: AtomicU64 = AtomicU64::new(0);
static CONTENT_ERROR: AtomicU64 = AtomicU64::new(0);
static BYTES_CACHE: AtomicU64 = AtomicU64::new(0);
static BYTES_UPSTREAM: AtomicU64 = AtomicU64::new(0);
static HASH_MISMATCHES: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS_SHED: AtomicU64 = AtomicU64::new(0);
static SYNC_LAST_SUCCESS: AtomicU64 = AtomicU64::new(0);
/// f64 bits.
static SYNC_DURATION: AtomicU64 = AtomicU64::new(0);
static CLIENTS_SEEN: AtomicU64 = AtomicU64::new(0);
static SYNC_SKIPPED: AtomicU64 = AtomicU64::new(0);
static HTTP: Mutex<BTreeMap<String, BTreeMap<u16, u64>>> = Mutex::new(BTreeMap::new());

/// Counts one payload request: `hit`, `miss`, `coalesced` or `error` (others are ignored).
pub fn content_request(result: &str) {
    let c = match result {
        "hit" => &CONTENT_HIT,
        "miss" => &CONTENT_MISS,
        "coalesced" => &CONTENT_COALESCED,
        "error" => &CONTENT_ERROR,
        _ => return,
    };
    c.fetch_add(1, Ordering::Relaxed);
}

/// The payload request count for `result`.
pub fn content_requests(result: &str) -> u64 {
    match result {
        "hit" => &CONTENT_HIT,
        "miss" => &CONTENT_MISS,
        "coalesced" => &CONTENT_COALESCED,
        "error" => &CONTENT_ERROR,
        _ => return 0,
    }
    .load(Ordering::Relaxed)
}

/// Adds bytes served from complete objects in the store.
pub fn add_content_bytes_cache(n: u64) {
    BYTES_CACHE.fetch_add(n, Ordering::Relaxed);
}

/// Adds bytes received from upstream.
pub fn add_content_bytes_upstream(n: u64) {
    BYTES_UPSTREAM.fetch_add(n, Ordering::Relaxed);
}

/// Payload bytes counted for `source` (`cache` or `upstream`).
pub fn content_bytes(source: &str) -> u64 {
    match source {
        "cache" => BYTES_CACHE.load(Ordering::Relaxed),
        "upstream" => BYTES_UPSTREAM.load(Ordering::Relaxed),
        _ => 0,
    }
}

/// Counts one downloaded object that failed verification.
pub fn hash_mismatch() {
    HASH_MISMATCHES.fetch_add(1, Ordering::Relaxed);
}

/// Hash mismatches so far.
pub fn hash_mismatches() -> u64 {
    HASH_MISMATCHES.load(Ordering::Relaxed)
}

/// Counts one client connection closed to make room for another (connection caps).
pub fn connection_shed() {
    CONNECTIONS_SHED.fetch_add(1, Ordering::Relaxed);
}

/// Counts one HTTP request answered by `service` (e.g. `content`, `client`) with `status`.
pub fn http_request(service: &str, status: u16) {
    let mut g = match HTTP.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    match g.get_mut(service) {
        Some(m) => *m.entry(status).or_insert(0) += 1,
        None => {
            g.insert(service.to_string(), BTreeMap::from([(status, 1)]));
        }
    }
}

/// Records a successful sync: its end time (unix seconds) and duration.
pub fn sync_succeeded(end_unix: u64, duration_secs: f64) {
    SYNC_LAST_SUCCESS.store(end_unix, Ordering::Relaxed);
    SYNC_DURATION.store(duration_secs.to_bits(), Ordering::Relaxed);
}

/// Counts revisions a sync isolated and skipped (unparsable, or faulted on by upstream).
pub fn sync_skipped(n: u64) {
    SYNC_SKIPPED.fetch_add(n, Ordering::Relaxed);
}

/// Sets the number of distinct clients seen.
pub fn set_clients_seen(n: u64) {
    CLIENTS_SEEN.store(n, Ordering::Relaxed);
}

/// The registry in Prometheus text exposition format.
pub fn render() -> String {
    let mut s = String::new();
    let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let _ = writeln!(
        s,
        "# HELP wsus_edge_content_requests_total Payload requests by result."
    );
    let _ = writeln!(s, "# TYPE wsus_edge_content_requests_total counter");
    for (r, c) in [
        ("hit", &CONTENT_HIT),
        ("miss", &CONTENT_MISS),
        ("coalesced", &CONTENT_COALESCED),
        ("error", &CONTENT_ERROR),
    ] {
        let _ = writeln!(
            s,
            "wsus_edge_content_requests_total{{result=\"{r}\"}} {}",
            l(c)
        );
    }
    let _ = writeln!(s, "# HELP wsus_edge_content_bytes_total Payload bytes served from the cache / received from upstream.");
    let _ = writeln!(s, "# TYPE wsus_edge_content_bytes_total counter");
    let _ = writeln!(
        s,
        "wsus_edge_content_bytes_total{{source=\"cache\"}} {}",
        l(&BYTES_CACHE)
    );
    let _ = writeln!(
        s,
        "wsus_edge_content_bytes_total{{source=\"upstream\"}} {}",
        l(&BYTES_UPSTREAM)
    );
    let _ = writeln!(s, "# HELP wsus_edge_hash_mismatches_total Downloads discarded because their digests did not match.");
    let _ = writeln!(s, "# TYPE wsus_edge_hash_mismatches_total counter");
    let _ = writeln!(s, "wsus_edge_hash_mismatches_total {}", l(&HASH_MISMATCHES));
    let _ = writeln!(s, "# HELP wsus_edge_connections_shed_total Connections closed to stay within server.max_connections and server.max_connections_per_address.");
    let _ = writeln!(s, "# TYPE wsus_edge_connections_shed_total counter");
    let _ = writeln!(
        s,
        "wsus_edge_connections_shed_total {}",
        l(&CONNECTIONS_SHED)
    );
    let _ = writeln!(
        s,
        "# HELP wsus_edge_http_requests_total HTTP requests by service and status."
    );
    let _ = writeln!(s, "# TYPE wsus_edge_http_requests_total counter");
    {
        let g = match HTTP.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for (svc, st, n) in g
            .iter()
            .flat_map(|(s, m)| m.iter().map(move |(st, n)| (s, st, n)))
        {
            let svc = svc.replace(['\\', '"', '\n'], "_");
            let _ = writeln!(
                s,
                "wsus_edge_http_requests_total{{service=\"{svc}\",status=\"{st}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP wsus_edge_sync_last_success_timestamp_seconds End of the last successful sync."
    );
    let _ = writeln!(
        s,
        "# TYPE wsus_edge_sync_last_success_timestamp_seconds gauge"
    );
    let _ = writeln!(
        s,
        "wsus_edge_sync_last_success_timestamp_seconds {}",
        l(&SYNC_LAST_SUCCESS)
    );
    let _ = writeln!(
        s,
        "# HELP wsus_edge_sync_duration_seconds Duration of the last successful sync."
    );
    let _ = writeln!(s, "# TYPE wsus_edge_sync_duration_seconds gauge");
    let _ = writeln!(
        s,
        "wsus_edge_sync_duration_seconds {}",
        f64::from_bits(l(&SYNC_DURATION))
    );
    let _ = writeln!(
        s,
        "# HELP wsus_edge_sync_skipped_total Revisions a sync isolated and skipped (retried at the next sync)."
    );
    let _ = writeln!(s, "# TYPE wsus_edge_sync_skipped_total counter");
    let _ = writeln!(s, "wsus_edge_sync_skipped_total {}", l(&SYNC_SKIPPED));
    let _ = writeln!(
        s,
        "# HELP wsus_edge_clients_seen Distinct client computers seen."
    );
    let _ = writeln!(s, "# TYPE wsus_edge_clients_seen gauge");
    let _ = writeln!(s, "wsus_edge_clients_seen {}", l(&CLIENTS_SEEN));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_every_name() {
        content_request("hit");
        http_request("content", 206);
        let t = render();
        for name in [
            "wsus_edge_content_requests_total{result=\"hit\"}",
            "wsus_edge_content_requests_total{result=\"miss\"}",
            "wsus_edge_content_requests_total{result=\"coalesced\"}",
            "wsus_edge_content_requests_total{result=\"error\"}",
            "wsus_edge_content_bytes_total{source=\"cache\"}",
            "wsus_edge_content_bytes_total{source=\"upstream\"}",
            "wsus_edge_hash_mismatches_total ",
            "wsus_edge_connections_shed_total ",
            "wsus_edge_http_requests_total{service=\"content\",status=\"206\"}",
            "wsus_edge_sync_last_success_timestamp_seconds ",
            "wsus_edge_sync_duration_seconds ",
            "wsus_edge_sync_skipped_total ",
            "wsus_edge_clients_seen ",
        ] {
            assert!(t.contains(name), "{name} missing in\n{t}");
        }
        assert!(content_requests("hit") >= 1);
    }
}
