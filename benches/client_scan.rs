//! SyncUpdates under load: N simulated clients (default 1,000), each doing a full scan
//! (handshake, then the layered SyncUpdates walk to the end) of a simulated catalog (default
//! 10,000 updates), all concurrently over loopback HTTP against one `ClientService`.
//! Prints scans/s, SyncUpdates p50/p99 latency, calls per scan and RSS before/after.
//!
//! `cargo bench --bench client_scan` (env: WSUS_EDGE_BENCH_CLIENTS, WSUS_EDGE_BENCH_UPDATES).
//! Server and clients share the process (and the 2 cores): the numbers are a lower bound.

#[path = "../tests/support/wusp_agent.rs"]
mod agent;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wsus_edge::client_service::{ClientService, CookieKey, Options};
use wsus_edge::simulate::Catalog;
use wsus_edge::store::Store;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let clients = env_usize("WSUS_EDGE_BENCH_CLIENTS", 1000);
    let updates = env_usize("WSUS_EDGE_BENCH_UPDATES", 10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let t = Instant::now();
        let cat = Arc::new(Catalog::generate(updates, 42));
        agent::seed(&store, &cat);
        println!(
            "catalog: {} updates, {} revisions, seeded in {:.1}s",
            cat.update_count(),
            cat.revision_count(),
            t.elapsed().as_secs_f64()
        );
        let svc = Arc::new(
            ClientService::new(store.clone(), CookieKey::random(), Options::default()).unwrap(),
        );
        let t = Instant::now();
        let idx = svc.index().unwrap();
        println!(
            "scan index: {} entries built in {:.2}s",
            idx.entries.len(),
            t.elapsed().as_secs_f64()
        );
        let server = agent::start(svc, cat.clone()).await;
        let rss0 = rss_mib();
        let groups = ["Pilot", "Workstations", "Finance", "Servers", "Unassigned Computers"];
        let sem = Arc::new(tokio::sync::Semaphore::new(clients));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..clients {
            let base = server.base.clone();
            let sem = sem.clone();
            tasks.push(tokio::spawn(async move {
                let _p = sem.acquire().await.unwrap();
                let mut a = agent::Agent::new(&base);
                a.handshake(Some(groups[i % groups.len()])).await;
                let s = a.scan(None).await;
                (s.calls, s.offered().len(), s.latencies)
            }));
        }
        let mut lat: Vec<Duration> = Vec::new();
        let mut calls = 0usize;
        let mut offered = 0usize;
        let mut rss_peak = rss0;
        for (n, t) in tasks.into_iter().enumerate() {
            let (c, o, l) = t.await.unwrap();
            if (n + 1) % 100 == 0 {
                eprintln!("  {} scans done after {:.1}s", n + 1, started.elapsed().as_secs_f64());
            }
            calls += c;
            offered += o;
            lat.extend(l);
            rss_peak = rss_peak.max(rss_mib());
        }
        let el = started.elapsed().as_secs_f64();
        lat.sort();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        println!(
            "{clients} clients: {:.1} full scans/s ({el:.1}s), {:.0} SyncUpdates/s, {:.1} calls/scan, {:.1} offered/scan",
            clients as f64 / el,
            calls as f64 / el,
            calls as f64 / clients as f64,
            offered as f64 / clients as f64
        );
        println!(
            "SyncUpdates latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            lat[lat.len() - 1].as_secs_f64() * 1e3
        );
        println!(
            "RSS: {rss0:.0} MiB before the scans, {rss_peak:.0} MiB peak, {:.0} MiB after",
            rss_mib()
        );
    });
}
