//! Replica sync benchmark (harness = false): a full sync of N updates from the simulated
//! upstream on loopback, both as real `wsus-edge` processes.
//!
//! Reports per N (default 10,000 and 100,000; override with `WSUS_EDGE_BENCH_SYNC_N=1000,5000`):
//! - catalog generation + load time of `simulate-upstream` (not part of the sync),
//! - wall time of the replica's first sync (process start → "sync finished"), updates/s,
//! - the replica's peak RSS (VmHWM),
//! - the simulator's share: its CPU seconds during the sync / the sync's wall seconds.
//!
//! Target (issue 4): 100,000 updates in < 60 s with RSS < 256 MiB.
//!
//! Then the Patch Tuesday case (issue 14), for N = `WSUS_EDGE_BENCH_PT_N` (default 100,000;
//! 0 skips it). The simulator runs in this process, so the catalogue can change while the
//! replica (a real process) keeps running. The replica syncs the whole catalogue once. Then
//! 1,000 revisions are published upstream: about half are new updates and half are new
//! revisions of existing ones, whose approvals move with them. `sync --now` is sent through
//! the admin API. The bench reports the second sync's wall time as a share of the first
//! (goal: < 5 %), and the replica's RSS before and after it (goal: flat).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wsus-edge");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18530)
}

/// utime + stime of a process, seconds.
fn cpu_secs(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = 100.0; // sysconf(_SC_CLK_TCK) on Linux
    let u: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let k: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (u + k) / tick
}

/// Peak RSS (VmHWM), KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Spawns `args`, forwarding stderr+stdout lines to a channel.
fn spawn(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wsus-edge");
    let (tx, rx) = mpsc::channel();
    for r in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(r).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
    }
    (child, rx)
}

fn wait_for(rx: &mpsc::Receiver<String>, needle: &str, limit: Duration) -> Option<String> {
    let end = Instant::now() + limit;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return Some(l),
            // The replica's per-phase memory profile (debug lines of the sync engine).
            Ok(l) if l.contains("sync memory") => println!("  {}", l.trim()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

fn run(n: usize, dir: &Path) -> String {
    let port = free_port();
    let up_dir = dir.join(format!("up-{n}"));
    let t = Instant::now();
    let (mut up, up_rx) = spawn(&[
        "--log",
        "warn",
        "simulate-upstream",
        "--updates",
        &n.to_string(),
        "--seed",
        "1",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        up_dir.to_str().unwrap(),
    ]);
    if wait_for(&up_rx, "simulated upstream", Duration::from_secs(1800)).is_none() {
        let _ = up.kill();
        return format!("{n}: simulated upstream did not start");
    }
    let gen_load = t.elapsed().as_secs_f64();
    let up_cpu0 = cpu_secs(up.id());

    let conf = dir.join(format!("replica-{n}.toml"));
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[upstream]\nurl = \"http://127.0.0.1:{port}\"\n[sync]\ninterval = \"24h\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            dir.join(format!("replica-{n}")).display()
        ),
    )
    .unwrap();
    let t = Instant::now();
    let (mut rep, rep_rx) = spawn(&[
        "--config",
        conf.to_str().unwrap(),
        "--log",
        "info,wsus_edge::sync=debug",
        "serve",
    ]);
    // The admin API gets a free port: the simulator holds the default one, and a port clash
    // is fatal for `serve` (issue 15), so the replica would exit at once.
    let done = wait_for(&rep_rx, "sync finished", Duration::from_secs(3600));
    let wall = t.elapsed().as_secs_f64();
    let rss = peak_rss_kib(rep.id());
    let up_cpu = cpu_secs(up.id()) - up_cpu0;
    let rep_cpu = cpu_secs(rep.id());
    let _ = rep.kill();
    let _ = up.kill();
    let _ = rep.wait();
    let _ = up.wait();
    match done {
        Some(line) => {
            let updates = line
                .split("updates=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(n as f64);
            format!(
                "{n} updates: generate+load {gen_load:.1}s (not counted); sync {wall:.1}s, {:.0} updates/s; replica peak RSS {:.1} MiB, CPU {rep_cpu:.1}s; simulator CPU {up_cpu:.1}s = {:.0}% of the sync's wall time",
                updates / wall,
                rss as f64 / 1024.0,
                100.0 * up_cpu / wall
            )
        }
        None => format!("{n}: the sync did not finish"),
    }
}

/// The replica's current RSS (VmRSS), KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The Patch Tuesday case: see the module doc.
fn patch_tuesday(n: usize, dir: &Path) -> String {
    const CHANGED: usize = 1000;
    const TOKEN: &str = "bench-token-0123456789abcdef";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let up_dir = dir.join(format!("pt-up-{n}"));
    let mut cfg = wsus_edge::config::Config::default();
    cfg.server.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.server.data_dir = up_dir;
    let t = Instant::now();
    let sim = match rt.block_on(wsus_edge::app::SimUpstream::start(n, 1, cfg)) {
        Ok(s) => s,
        Err(e) => return format!("patch tuesday {n}: simulator failed: {e}"),
    };
    let gen_load = t.elapsed().as_secs_f64();
    let admin_port = free_port();
    let token = dir.join("pt-token");
    std::fs::write(&token, TOKEN).expect("token");
    let conf = dir.join(format!("pt-replica-{n}.toml"));
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[upstream]\nurl = \"{}\"\n[sync]\ninterval = \"24h\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken_file = \"{}\"\n",
            dir.join(format!("pt-replica-{n}")).display(),
            sim.url(),
            token.display()
        ),
    )
    .expect("config");
    let t = Instant::now();
    let (mut rep, rep_rx) = spawn(&[
        "--config",
        conf.to_str().expect("utf-8"),
        "--log",
        "info",
        "serve",
    ]);
    let first = wait_for(&rep_rx, "sync finished", Duration::from_secs(3600));
    let full = t.elapsed().as_secs_f64();
    if first.is_none() {
        let _ = rep.kill();
        return format!("patch tuesday {n}: the first sync did not finish");
    }
    // Let the post-sync work (prefetch of nothing, rollup) settle before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let rss_before = rss_kib(rep.id());
    let hwm_before = peak_rss_kib(rep.id());
    let changed = match sim.mutate(|c| c.add_revisions(CHANGED).len()) {
        Ok(k) => k,
        Err(e) => {
            let _ = rep.kill();
            return format!("patch tuesday {n}: mutate failed: {e}");
        }
    };
    let t = Instant::now();
    let out = Command::new(BIN)
        .args([
            "--admin",
            &format!("http://127.0.0.1:{admin_port}"),
            "sync",
            "--now",
        ])
        .env("WSUS_EDGE_TOKEN", TOKEN)
        .output()
        .expect("sync --now");
    let second = wait_for(&rep_rx, "sync finished", Duration::from_secs(1800));
    let pt = t.elapsed().as_secs_f64();
    let rss_after = rss_kib(rep.id());
    let hwm_after = peak_rss_kib(rep.id());
    let _ = rep.kill();
    let _ = rep.wait();
    let _ = rt.block_on(sim.stop());
    match second {
        Some(line) => format!(
            "patch tuesday on {n} updates (simulator generate+load {gen_load:.1}s, not counted): full sync {full:.1}s; \
             {changed} changed revisions synced in {pt:.2}s = {:.1}% of the full sync (goal < 5%); \
             replica RSS {:.1} MiB before, {:.1} MiB after, peak {:.1} -> {:.1} MiB (sync --now exit {}; {})",
            100.0 * pt / full,
            rss_before as f64 / 1024.0,
            rss_after as f64 / 1024.0,
            hwm_before as f64 / 1024.0,
            hwm_after as f64 / 1024.0,
            out.status.code().unwrap_or(-1),
            line.trim()
        ),
        None => format!(
            "patch tuesday {n}: the second sync did not finish (sync --now: {})",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

fn main() {
    let ns: Vec<usize> = std::env::var("WSUS_EDGE_BENCH_SYNC_N")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000]);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut lines = Vec::new();
    for n in ns {
        let l = run(n, dir.path());
        println!("{l}");
        lines.push(l);
    }
    let pt_n = std::env::var("WSUS_EDGE_BENCH_PT_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000usize);
    if pt_n > 0 {
        let l = patch_tuesday(pt_n, dir.path());
        println!("{l}");
        lines.push(l);
    }
    println!("\n==== summary (target: 100,000 updates < 60 s, RSS < 256 MiB) ====");
    for l in lines {
        println!("{l}");
    }
}
