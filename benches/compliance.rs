//! Compliance at branch scale (issue 16): 10,000 computers × 2,000 updates of status.
//!
//! Seeds a store with 2,000 software updates and 10,000 computers, each reporting through the
//! production ingest path (`Store::add_events`, what ReportEventBatch calls): a status event
//! 156 whose `U=`/`V=` lists name all 2,000 updates (about 15 % not installed), a day later a
//! second one with a few more installed, and on every 20th computer three install failures
//! (event 182). Then serves the store with `wsus-edge serve`'s server and admin API in this
//! process and times, over HTTP with the bearer token exactly as the CLI calls them:
//! - `updates status ID` (`GET /api/updates/status?id=`), for a few different updates;
//! - `computers list --status failed` (`GET /api/computers?status=failed`);
//! - a full rollup of all of it (`rollup::run_once`, what `wsus-edge rollup` runs) to a second
//!   wsus-edge in this process acting as the upstream (DoDetailedRollup on, its own limits).
//!
//! For comparison it also times, in process, the pass every view made before the states were
//! stored: deriving each computer's states from its events (`Store::derived_computer_states`,
//! the oracle the stored states are tested against).
//!
//! Prints each view's first (cold) and median time, the rollup's duration, requests and
//! statuses, and this process's RSS (both servers live here: VmHWM is the peak of the whole
//! run, seeding included) plus the store's size on disk.
//!
//! `cargo bench --bench compliance` (env: WSUS_EDGE_BENCH_COMPUTERS (10000),
//! WSUS_EDGE_BENCH_UPDATES (2000), WSUS_EDGE_BENCH_STORE=/some/dir to keep the seeded store
//! between runs (a copy is served, so the kept one stays as seeded),
//! WSUS_EDGE_BENCH_ROLLUP=0 to skip the rollup).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uuid::Uuid;

use wsus_edge::app::Server;
use wsus_edge::config::Config;
use wsus_edge::model::{RevisionKey, UpdateKind, UpdateRecord};
use wsus_edge::store::{Computer, NewRevision, ReportedEvent, Store};

const TOKEN: &str = "compliance-bench-token-0123456789";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_kib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

fn rss_mib() -> f64 {
    status_kib("VmRSS:") / 1024.0
}

fn hwm_mib() -> f64 {
    status_kib("VmHWM:") / 1024.0
}

fn du_mib(p: &Path) -> f64 {
    fn walk(p: &Path) -> u64 {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => std::fs::read_dir(p)
                .map(|d| d.flatten().map(|e| walk(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    walk(p) as f64 / (1 << 20) as f64
}

fn update_id(n: usize) -> Uuid {
    Uuid::from_u128(0x1600_0000_0000_4000_8000_0000_0000_0000 | n as u128)
}

fn computer_id(c: usize) -> String {
    Uuid::from_u128(0xc0_0000_0000_4000_8000_0000_0000_0000 | c as u128).to_string()
}

/// Whether update `u` is not installed on computer `c` at day `day` (deterministic spread:
/// about 15 % on day 0, a third of those installed by day 1).
fn needed(c: usize, u: usize, day: usize) -> bool {
    let h = (c as u64)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add((u as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f));
    let h = h ^ (h >> 29);
    h % 100 < 15 && !(day == 1 && h.is_multiple_of(3))
}

fn seed(dir: &Path, computers: usize, updates: usize) {
    let t = Instant::now();
    let store = Store::open(dir).unwrap();
    let revs: Vec<NewRevision> = (0..updates)
        .map(|n| {
            let key = RevisionKey::new(update_id(n), 200);
            NewRevision {
                record: UpdateRecord {
                    key,
                    kind: UpdateKind::Software,
                    category_type: None,
                    title: format!("2026-11 Cumulative Update KB{} (bench {n})", 5_100_000 + n),
                    kb: Some(format!("{}", 5_100_000 + n)),
                    classification: Some(Uuid::from_u128(1)),
                    products: vec![Uuid::from_u128(2)],
                    prerequisites: vec![],
                    bundled: vec![],
                    supersedes: vec![],
                    eula_id: None,
                    files: vec![],
                    expired: false,
                    creation_date: None,
                },
                xml: format!(
                    "<upd:Update xmlns:upd=\"http://schemas.microsoft.com/msus/2002/12/Update\"><upd:UpdateIdentity UpdateID=\"{}\" RevisionNumber=\"200\"/><upd:Properties UpdateType=\"Software\"/></upd:Update>",
                    key.update_id
                ),
            }
        })
        .collect();
    for chunk in revs.chunks(500) {
        store.commit_batch(chunk, &[], None).unwrap();
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let day0 = now - 2 * 86400;
    for c in 0..computers {
        let id = computer_id(c);
        store
            .upsert_computer(&Computer {
                id: id.clone(),
                name: format!("pc{c:05}.branch.example"),
                registered_unix: day0,
                os_version: Some("10.0.26100.1".into()),
                client_version: Some("10.0.26100.1".into()),
                ..Default::default()
            })
            .unwrap();
        for day in 0..2 {
            let (mut u, mut v) = (String::new(), String::new());
            for n in 0..updates {
                let l = if needed(c, n, day) { &mut u } else { &mut v };
                if !l.is_empty() {
                    l.push(',');
                }
                l.push_str(&update_id(n).to_string());
            }
            let t = day0 + day as i64 * 86400;
            let mut events = vec![ReportedEvent {
                instance_id: Uuid::from_u128(((c as u128) << 8) | day as u128),
                update: None,
                event_id: 156,
                hresult: 0,
                time_unix: t,
                misc: vec![format!("U={u}"), format!("V={v}")],
            }];
            if day == 0 && c % 20 == 0 {
                for k in 0..3usize {
                    let n = (c / 20 * 7 + k * 13) % updates;
                    events.push(ReportedEvent {
                        instance_id: Uuid::from_u128(((c as u128) << 8) | 0x80 | k as u128),
                        update: Some(RevisionKey::new(update_id(n), 200)),
                        event_id: 182,
                        hresult: 0x8024_2006u32 as i32,
                        time_unix: t + 3600,
                        misc: vec![],
                    });
                }
            }
            store.add_events(&id, &events, t + 60).unwrap();
        }
        if (c + 1) % 1000 == 0 {
            eprintln!(
                "  seeded {} computers after {:.0}s",
                c + 1,
                t.elapsed().as_secs_f64()
            );
        }
    }
    store.flush().unwrap();
    println!(
        "seeded {computers} computers × {updates} updates in {:.1}s",
        t.elapsed().as_secs_f64()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        let target = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

fn config(data: &Path) -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.data_dir = data.to_path_buf();
    c.server.advertised_url = Some("http://edge.bench.example:8530".into());
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.upstream.url = None;
    c.clients.max_computers = 1_000_000;
    c
}

/// Times `GET path` on the admin API `runs` times: (first, median) in ms, and the last body.
async fn timed(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    runs: usize,
) -> (f64, f64, serde_json::Value) {
    let mut ms = Vec::new();
    let mut last = serde_json::Value::Null;
    for _ in 0..runs {
        let t = Instant::now();
        let r = http
            .get(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        last = r.json().await.unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let first = ms[0];
    ms.sort_by(f64::total_cmp);
    (first, ms[ms.len() / 2], last)
}

fn main() {
    let computers = env_usize("WSUS_EDGE_BENCH_COMPUTERS", 10_000);
    let updates = env_usize("WSUS_EDGE_BENCH_UPDATES", 2_000);
    let rollup = std::env::var("WSUS_EDGE_BENCH_ROLLUP").map_or(true, |v| v != "0");
    // SAFETY (edition 2021: set_var is safe): before any thread exists.
    std::env::set_var("WSUS_EDGE_TOKEN", TOKEN);
    let tmp = tempfile::tempdir().unwrap();
    let kept: Option<PathBuf> = std::env::var("WSUS_EDGE_BENCH_STORE")
        .ok()
        .map(|d| PathBuf::from(format!("{d}-{computers}x{updates}")));
    let seeded = match &kept {
        Some(k) if k.join("seeded").exists() => k.clone(),
        Some(k) => {
            seed(&k.join("meta"), computers, updates);
            std::fs::write(k.join("seeded"), b"1").unwrap();
            k.clone()
        }
        None => {
            let d = tmp.path().join("seed");
            seed(&d.join("meta"), computers, updates);
            d
        }
    };
    // A kept store is served from a copy (opening migrates, serving writes rollup
    // bookkeeping); one seeded for this run is served as it is.
    let data = if kept.is_some() {
        let d = tmp.path().join("edge");
        copy_dir(&seeded.join("meta"), &d.join("meta"));
        d
    } else {
        seeded
    };
    println!(
        "store: {:.0} MiB on disk; RSS {:.0} MiB before opening",
        du_mib(&data),
        rss_mib()
    );
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let t = Instant::now();
            let mut edge = Server::bind(config(&data)).await.unwrap();
            let admin = edge
                .start_admin_on("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            let store = edge.state().store.clone();
            println!(
                "opened (schema migrations included) in {:.1}s, RSS {:.0} MiB",
                t.elapsed().as_secs_f64(),
                rss_mib()
            );
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let serving = tokio::spawn(edge.run_until(async {
                let _ = stop_rx.await;
            }));
            let base = format!("http://{admin}");
            let http = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(600))
                .build()
                .unwrap();
            let rss0 = rss_mib();
            // Before the stored states, every view (and the rollup, and the metrics gauges)
            // derived every computer's states from its events: time that pass alone.
            let t = Instant::now();
            let mut failing = 0usize;
            for c in store.computers().unwrap() {
                let st = store.derived_computer_states(&c.id).unwrap();
                failing += usize::from(
                    st.values()
                        .any(|r| r.state == wsus_edge::store::UpdateState::Failed),
                );
            }
            println!(
                "deriving every computer's states from its events (what each view did before the stored states): {:.0} ms ({failing} computers with a failure), RSS {:.0} MiB",
                t.elapsed().as_secs_f64() * 1e3,
                rss_mib()
            );
            for n in [0usize, updates / 2, updates - 1] {
                let id = update_id(n);
                let (first, median, body) =
                    timed(&http, &base, &format!("/api/updates/status?id={id}"), 5).await;
                let counts = &body["counts"];
                println!(
                    "updates status {id}: first {first:.1} ms, median of 5 {median:.1} ms ({} computers: {} installed, {} needed, {} failed)",
                    body["computers"].as_array().map_or(0, Vec::len),
                    counts["installed"], counts["needed"], counts["failed"]
                );
            }
            let (first, median, body) =
                timed(&http, &base, "/api/computers?status=failed", 5).await;
            println!(
                "computers list --status failed: first {first:.1} ms, median of 5 {median:.1} ms ({} computers)",
                body.as_array().map_or(0, Vec::len)
            );
            println!(
                "RSS: {rss0:.0} MiB before the views, {:.0} MiB after",
                rss_mib()
            );
            if rollup {
                let up_dir = tempfile::tempdir().unwrap();
                let upstream = Server::bind(config(up_dir.path())).await.unwrap();
                let up_addr = upstream.local_addr();
                let up_store = upstream.state().store.clone();
                let (up_tx, up_rx) = tokio::sync::oneshot::channel::<()>();
                let up_serving = tokio::spawn(upstream.run_until(async {
                    let _ = up_rx.await;
                }));
                let mut cfg = config(&data);
                cfg.upstream.url = Some(format!("http://{up_addr}"));
                let t = Instant::now();
                let report = match wsus_edge::rollup::run_once(&cfg, &store).await {
                    Ok(r) => r,
                    Err(e) => panic!("rollup failed: {e}"),
                };
                let took = t.elapsed().as_secs_f64();
                let arrived = up_store.downstream_computers().unwrap().len();
                println!(
                    "full rollup to an in-process wsus-edge upstream: {took:.1}s, {} requests, {} computers, {} with status ({arrived} computers on the upstream)",
                    report.requests, report.computers, report.statuses
                );
                let _ = up_tx.send(());
                let _ = up_serving.await;
                let with_upstream = rss_mib();
                drop(up_store);
                drop(up_dir);
                let closed = rss_mib();
                extern "C" {
                    fn malloc_trim(pad: usize) -> i32;
                }
                // SAFETY: glibc's malloc_trim only returns free heap memory to the OS.
                unsafe { malloc_trim(0) };
                println!(
                    "RSS after the rollup: {with_upstream:.0} MiB, {closed:.0} MiB once the upstream's store is closed, {:.0} MiB after malloc_trim",
                    rss_mib()
                );
            }
            println!(
                "RSS now {:.0} MiB, peak (VmHWM, seeding included when seeded here) {:.0} MiB",
                rss_mib(),
                hwm_mib()
            );
            let _ = stop_tx.send(());
            let _ = serving.await;
        });
}
