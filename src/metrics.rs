//! The process-wide metrics registry (plain atomics) and its Prometheus text rendering.
//! Names are fixed by issues 7 and 17; other modules increment them through the functions
//! here. Also the gauges read at scrape time ([`system`]): build info, free disk, store size
//! and the standard `process_*` metrics from `/proc/self`.

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
static REQUESTS_SHED_REPORT_BYTES: AtomicU64 = AtomicU64::new(0);
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

/// Upper bounds (seconds) of the request-duration histogram buckets.
pub const REQUEST_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];
/// Upper bounds (seconds) of the sync-duration histogram buckets.
pub const SYNC_BUCKETS: [f64; 9] = [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0];

/// A fixed-bucket histogram: cumulative counts per bucket, sum and count.
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.buckets.len() != bounds.len() {
            self.buckets = vec![0; bounds.len()];
        }
        for (b, le) in self.buckets.iter_mut().zip(bounds) {
            if v <= *le {
                *b += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str, bounds: &[f64]) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, le) in bounds.iter().enumerate() {
            let n = self.buckets.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let l = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{l} {}", self.sum);
        let _ = writeln!(out, "{name}_count{l} {}", self.count);
    }
}

static REQUEST_DURATION: Mutex<BTreeMap<String, Histogram>> = Mutex::new(BTreeMap::new());
static SYNC_HISTOGRAM: Mutex<Option<Histogram>> = Mutex::new(None);

/// Records how long one HTTP request of `service` took, from its head to its last byte.
pub fn observe_request(service: &str, secs: f64) {
    let mut g = match REQUEST_DURATION.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    match g.get_mut(service) {
        Some(h) => h.observe(&REQUEST_BUCKETS, secs),
        None => {
            let mut h = Histogram::default();
            h.observe(&REQUEST_BUCKETS, secs);
            g.insert(service.to_string(), h);
        }
    }
}

/// Records the duration of one finished sync (successful or not).
pub fn observe_sync(secs: f64) {
    let mut g = match SYNC_HISTOGRAM.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    g.get_or_insert_with(Histogram::default)
        .observe(&SYNC_BUCKETS, secs);
}

/// Counts one client connection closed to make room for another (connection caps).
pub fn connection_shed() {
    CONNECTIONS_SHED.fetch_add(1, Ordering::Relaxed);
}

/// Counts one client request refused before its body was read; `reason` is `report_bytes`
/// (a Reporting body over its address's budget, `[clients] report_bytes_per_second`).
pub fn client_request_shed(reason: &str) {
    if reason == "report_bytes" {
        REQUESTS_SHED_REPORT_BYTES.fetch_add(1, Ordering::Relaxed);
    }
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
    let _ = writeln!(s, "# HELP wsus_edge_client_requests_shed_total Client requests answered 503 before their body was read, by reason (report_bytes: over clients.report_bytes_per_second).");
    let _ = writeln!(s, "# TYPE wsus_edge_client_requests_shed_total counter");
    let _ = writeln!(
        s,
        "wsus_edge_client_requests_shed_total{{reason=\"report_bytes\"}} {}",
        l(&REQUESTS_SHED_REPORT_BYTES)
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
    let _ = writeln!(
        s,
        "# HELP wsus_edge_http_request_duration_seconds Time from a request's head to its last byte, by service."
    );
    let _ = writeln!(
        s,
        "# TYPE wsus_edge_http_request_duration_seconds histogram"
    );
    {
        let g = match REQUEST_DURATION.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for (svc, h) in g.iter() {
            let svc = svc.replace(['\\', '"', '\n'], "_");
            h.render(
                &mut s,
                "wsus_edge_http_request_duration_seconds",
                &format!("service=\"{svc}\""),
                &REQUEST_BUCKETS,
            );
        }
    }
    let _ = writeln!(
        s,
        "# HELP wsus_edge_sync_run_duration_seconds Duration of finished syncs (successful or not)."
    );
    let _ = writeln!(s, "# TYPE wsus_edge_sync_run_duration_seconds histogram");
    {
        let g = match SYNC_HISTOGRAM.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.clone().unwrap_or_default().render(
            &mut s,
            "wsus_edge_sync_run_duration_seconds",
            "",
            &SYNC_BUCKETS,
        );
    }
    s
}

/// Gauges read at scrape time: `wsus_edge_build_info`, free and total bytes of the file
/// system holding `data_dir`, the metadata store's size on disk, and the standard
/// `process_*` metrics (Linux `/proc/self`; left out elsewhere).
pub fn system(data_dir: &std::path::Path) -> String {
    let mut s = String::new();
    let mut gauge = |name: &str, kind: &str, help: &str, labels: &str, v: f64| {
        let _ = writeln!(
            s,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{labels} {v}"
        );
    };
    gauge(
        "wsus_edge_build_info",
        "gauge",
        "Always 1; the labels say which build runs.",
        &format!(
            "{{version=\"{}\",arch=\"{}\",os=\"{}\"}}",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH,
            std::env::consts::OS
        ),
        1.0,
    );
    if let Some((free, total)) = disk_space(data_dir) {
        gauge(
            "wsus_edge_disk_free_bytes",
            "gauge",
            "Bytes available to the server on the file system holding data_dir.",
            "",
            free as f64,
        );
        gauge(
            "wsus_edge_disk_size_bytes",
            "gauge",
            "Size of the file system holding data_dir.",
            "",
            total as f64,
        );
    }
    gauge(
        "wsus_edge_store_size_bytes",
        "gauge",
        "Bytes the metadata store (data_dir/meta) takes on disk.",
        "",
        dir_size(&data_dir.join("meta")) as f64,
    );
    if let Some(p) = process() {
        gauge(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            "",
            p.cpu_seconds,
        );
        gauge(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            "",
            p.resident_bytes as f64,
        );
        gauge(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            "",
            p.virtual_bytes as f64,
        );
        gauge(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            "",
            p.start_time,
        );
        gauge(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            "",
            p.open_fds as f64,
        );
        if let Some(m) = p.max_fds {
            gauge(
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                "",
                m as f64,
            );
        }
    }
    s
}

/// Bytes available to an unprivileged user and total size of the file system holding `p`.
pub fn disk_space(p: &std::path::Path) -> Option<(u64, u64)> {
    fs_space(p).ok()
}

/// Like [`disk_space`], with the reason when `statvfs` fails (the content cache's free-space
/// floor reports it).
pub fn fs_space(p: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL byte")
    })?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid C string and `st` points to writable memory of the right type.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::useless_conversion)] // c_ulong / fsblkcnt_t are u32 on some targets
    let (avail, blocks, frsize) = (
        u64::from(st.f_bavail),
        u64::from(st.f_blocks),
        u64::from(st.f_frsize),
    );
    Ok((avail.saturating_mul(frsize), blocks.saturating_mul(frsize)))
}

/// Bytes of the regular files under `dir` (0 when it cannot be read).
pub fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

struct Process {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    start_time: f64,
    open_fds: usize,
    max_fds: Option<u64>,
}

/// This process's figures from `/proc/self` (proc(5)).
fn process() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    // proc(5) numbering: state is field 3, so field n is f[n - 3].
    let utime = num(14 - 3)?;
    let stime = num(15 - 3)?;
    let starttime = num(22 - 3)?;
    let vsize = num(23 - 3)?;
    let rss = num(24 - 3)?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    let boot = now - uptime;
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        });
    Some(Process {
        cpu_seconds: (utime + stime) as f64 / ticks,
        resident_bytes: rss * page,
        virtual_bytes: vsize,
        start_time: boot + starttime as f64 / ticks,
        open_fds: std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count())
            .unwrap_or(0),
        max_fds,
    })
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
            "wsus_edge_client_requests_shed_total{reason=\"report_bytes\"} ",
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

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut h = Histogram::default();
        let b = [0.1, 1.0];
        for v in [0.05, 0.5, 0.5, 5.0] {
            h.observe(&b, v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "service=\"a\"", &b);
        assert_eq!(
            out,
            "x_bucket{service=\"a\",le=\"0.1\"} 1\nx_bucket{service=\"a\",le=\"1\"} 3\nx_bucket{service=\"a\",le=\"+Inf\"} 4\nx_sum{service=\"a\"} 6.05\nx_count{service=\"a\"} 4\n"
        );
    }

    #[test]
    fn process_figures_match_proc() {
        let p = process().expect("linux /proc");
        // The test process has at least stdin/stdout/stderr and some resident memory.
        assert!(p.open_fds >= 3);
        assert!(p.resident_bytes > 1 << 20);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            p.start_time <= now + 1.0 && p.start_time > now - 3600.0,
            "{}",
            p.start_time
        );
        let d = tempfile::tempdir().unwrap();
        let (free, total) = disk_space(d.path()).unwrap();
        assert!(free <= total && total > 0);
    }
}
