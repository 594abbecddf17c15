//! The content cache against its peers, in one run (issue 3 "Benchmarks"); prints a table of
//! numbers and ratios. Run with `benches/run.sh` (installs Debian's nginx when missing), or
//! `cargo bench --bench content`. `WSUS_EDGE_BENCH_QUICK=1` shrinks the objects for a dry run;
//! `WSUS_EDGE_BENCH_ONLY=verify,ranges,miss,link,hit,small,rss` runs only the named parts (for repeats on
//! a busy machine), `WSUS_EDGE_BENCH_ROUNDS=n` sets the rounds of the 64 KiB hit run,
//! `WSUS_EDGE_BENCH_REPEAT=n` the rounds of the cold-miss parts (default 3, median reported) and
//! `WSUS_EDGE_BENCH_BIN=path` serves with another wsus-edge build (A/B against a baseline).
//!
//! - verify: wsus-edge SHA-1+SHA-256 (one pass, two threads) and SHA-256 alone vs
//!   `openssl dgst -sha256` and `sha256sum` on the same warm file;
//! - cold miss (1 and 20 concurrent clients) through wsus-edge vs nginx `slice 1m` +
//!   `proxy_cache_lock on`, both in front of the same nginx origin, and vs fetching directly;
//! - cold miss over an emulated upstream link (nginx `limit_rate` at 1 and 10 Gbit/s) vs
//!   fetching directly over the same link: the time-to-last-byte cost of verifying in line;
//! - hits: one big object and many 64 KiB objects, wsus-edge vs nginx `sendfile on`;
//! - ranges: a cold object asked in DO's shuffled 1 MiB pattern over an emulated 20 Mbit/s,
//!   100 Mbit/s and 1 Gbit/s link, wsus-edge (slice fetcher) vs nginx `slice 1m` +
//!   `proxy_cache_lock on` (`content/ranges.rs`);
//! - peak RSS (VmHWM) of wsus-edge serving a 4 GiB object cold and warm.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

#[path = "content/ranges.rs"]
mod ranges;

const MIB: u64 = 1 << 20;

struct Report(Mutex<Vec<String>>);

impl Report {
    fn line(&self, s: String) {
        println!("{s}");
        self.0.lock().unwrap().push(s);
    }
}

fn main() {
    let quick = std::env::var_os("WSUS_EDGE_BENCH_QUICK").is_some();
    let (big, huge, small_n) = if quick {
        (64 * MIB, 256 * MIB, 50)
    } else {
        (1024 * MIB, 4096 * MIB, 200)
    };
    let base = std::env::var_os("WSUS_EDGE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("wsus-edge-bench")
        .tempdir_in(base)
        .unwrap();
    let origin = work.path().join("origin");
    let only = std::env::var("WSUS_EDGE_BENCH_ONLY").ok();
    let part = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| p == name))
    };
    let rep = Report(Mutex::new(Vec::new()));
    rep.line(format!(
        "wsus-edge content bench ({}), big={} MiB huge={} MiB small={}x64KiB, cpus={}",
        if quick { "quick" } else { "full" },
        big / MIB,
        huge / MIB,
        small_n,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    ));

    eprintln!("generating objects...");
    let big_path = make_object(&origin, big, 1, "cab");
    let big2_path = make_object(&origin, if part("miss") { big } else { MIB }, 2, "esd");
    let huge_path = make_object(&origin, if part("rss") { huge } else { MIB }, 3, "wim");
    let smalls: Vec<String> = (0..small_n)
        .map(|i| make_object(&origin, 64 * 1024, 100 + i, "exe"))
        .collect();
    let big_file = origin.join(big_path.trim_start_matches('/'));

    // ---- verify throughput ----
    if part("verify") {
        verify_bench(&rep, &big_file, big);
    }

    // ---- cold ranges over a thin link (issue 18) ----
    if part("ranges") {
        ranges::run(&rep, work.path(), find_nginx().as_deref(), big);
    }
    if only.as_deref() == Some("ranges") {
        return;
    }

    let Some(nginx) = find_nginx() else {
        rep.line("nginx not found: run benches/run.sh (installs Debian's nginx); peer comparisons skipped".into());
        return;
    };
    let origin_port = free_port();
    let proxy_port = free_port();
    let link_ports: Vec<u16> = LINKS.iter().map(|_| free_port()).collect();
    let ngx_dir = work.path().join("nginx");
    let nginx_proc = start_nginx(
        &nginx,
        &ngx_dir,
        &origin,
        origin_port,
        proxy_port,
        &link_ports,
    );
    let origin_addr: SocketAddr = format!("127.0.0.1:{origin_port}").parse().unwrap();
    let proxy_addr: SocketAddr = format!("127.0.0.1:{proxy_port}").parse().unwrap();
    wait_port(origin_addr);
    wait_port(proxy_addr);
    let upstream = format!("http://{origin_addr}");

    // ---- cold miss, one client and 20 concurrent: `reps` rounds, each on fresh objects ----
    warm_page_cache(&big_file);
    let edge = Edge::start(work.path().join("edge1"), &upstream);
    if !part("miss") {
        // The hit parts below need the object in the store.
        get_all(edge.addr, &big_path);
    } else {
        let reps: usize = std::env::var("WSUS_EDGE_BENCH_REPEAT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if quick { 1 } else { 3 });
        let (mut one, mut twenty) = (Vec::new(), Vec::new());
        for r in 0..reps {
            // A fresh pair of objects per round: both caches see a cold miss every time.
            let (p1, p20) = if r == 0 {
                (big_path.clone(), big2_path.clone())
            } else {
                let seed = 1000 + 2 * r as u64;
                (
                    make_object(&origin, big, seed, "cab"),
                    make_object(&origin, big, seed + 1, "esd"),
                )
            };
            for p in [&p1, &p20] {
                warm_page_cache(&origin.join(p.trim_start_matches('/')));
            }
            settle();
            let direct = time(|| get_all(origin_addr, &p1));
            settle();
            let cpu0 = cpu_ms(edge.child.0.id());
            let edge_t = time(|| get_all(edge.addr, &p1));
            let cpu1 = cpu_ms(edge.child.0.id());
            settle();
            let ngx = time(|| get_all(proxy_addr, &p1));
            rep.line(format!(
                "cold miss {} MiB, round {}: direct {:.2}s ({}), wsus-edge {:.2}s ({}, {:.2} CPU-s), nginx slice {:.2}s ({})",
                big / MIB, r + 1, direct, rate(big, direct), edge_t, rate(big, edge_t),
                (cpu1 - cpu0) / 1e3, ngx, rate(big, ngx)
            ));
            one.push((direct, edge_t, ngx));

            settle();
            let direct = time(|| parallel(20, |_| get_all(origin_addr, &p20)));
            settle();
            let cpu0 = cpu_ms(edge.child.0.id());
            let edge_t = time(|| parallel(20, |_| get_all(edge.addr, &p20)));
            let cpu1 = cpu_ms(edge.child.0.id());
            settle();
            let ngx = time(|| parallel(20, |_| get_all(proxy_addr, &p20)));
            let total = 20 * big;
            rep.line(format!(
                "20 concurrent cold misses of {} MiB, round {}: direct {:.2}s ({}), wsus-edge {:.2}s ({}, {:.2} CPU-s), nginx slice+lock {:.2}s ({})",
                big / MIB, r + 1, direct, rate(total, direct), edge_t, rate(total, edge_t),
                (cpu1 - cpu0) / 1e3, ngx, rate(total, ngx)
            ));
            twenty.push((direct, edge_t, ngx));
        }
        for (what, runs, bytes) in [("cold miss", &one, big), ("20-miss", &twenty, 20 * big)] {
            let med = |f: fn(&(f64, f64, f64)) -> f64| median(runs.iter().map(f).collect());
            let (direct, edge_t, ngx) = (med(|r| r.0), med(|r| r.1), med(|r| r.2));
            rep.line(format!(
                "  {what}, median of {}: direct {}, wsus-edge {}, nginx {}; ratio throughput wsus-edge/nginx = {:.2}x; wsus-edge time to last byte vs direct = {:+.1}%",
                runs.len(), rate(bytes, direct), rate(bytes, edge_t), rate(bytes, ngx),
                ngx / edge_t, (edge_t / direct - 1.0) * 100.0
            ));
        }
    }

    // ---- cold miss over an emulated upstream link ----
    if part("link") {
        for ((name, _), port) in LINKS.iter().zip(&link_ports) {
            let link: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            wait_port(link);
            let edge = Edge::start(
                work.path().join(format!("edge-link-{port}")),
                &format!("http://{link}"),
            );
            settle();
            let direct = time(|| get_all(link, &big_path));
            settle();
            let cold = time(|| get_all(edge.addr, &big_path));
            rep.line(format!(
                "cold miss {} MiB over a {name} upstream link: direct {:.2}s ({}), wsus-edge {:.2}s ({}); time to last byte vs direct = {:+.1}%",
                big / MIB,
                direct,
                rate(big, direct),
                cold,
                rate(big, cold),
                (cold / direct - 1.0) * 100.0
            ));
        }
    }

    // ---- hits: big object ----
    if part("hit") {
        let best = |addr: SocketAddr, p: &str| {
            (0..3)
                .map(|_| time(|| get_all(addr, p)))
                .fold(f64::MAX, f64::min)
        };
        let edge_hit = best(edge.addr, &big_path);
        let ngx_hit = best(origin_addr, &big_path);
        rep.line(format!(
            "hit {} MiB (best of 3): wsus-edge {} vs nginx sendfile {} => {:.2}x",
            big / MIB,
            rate(big, edge_hit),
            rate(big, ngx_hit),
            ngx_hit / edge_hit
        ));
    }

    // ---- hits: many 64 KiB objects over keep-alive, 8 connections ----
    if part("small") {
        parallel(1, |_| {
            let mut c = Conn::new(edge.addr);
            for p in &smalls {
                c.get(p);
            }
            0
        });
        let rounds = std::env::var("WSUS_EDGE_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(if quick { 5 } else { 20 });
        let small_run = |addr: SocketAddr| {
            time(|| {
                parallel(8, |i| {
                    let mut c = Conn::new(addr);
                    let mut n = 0;
                    for r in 0..rounds {
                        for k in 0..smalls.len() {
                            n += c.get(&smalls[(k + i * 7 + r) % smalls.len()]);
                        }
                    }
                    n
                })
            })
        };
        let reqs = (8 * rounds * smalls.len()) as f64;
        let edge_pid = edge.child.0.id();
        let ngx_pid = nginx_proc.0.id();
        let c0 = cpu_ms(edge_pid);
        let edge_small = small_run(edge.addr);
        let edge_cpu = cpu_ms(edge_pid) - c0;
        let c0 = cpu_ms(ngx_pid);
        let ngx_small = small_run(origin_addr);
        let ngx_cpu = cpu_ms(ngx_pid) - c0;
        rep.line(format!("hit 64 KiB x {} requests, 8 keep-alive connections: wsus-edge {:.0} req/s ({}) vs nginx sendfile {:.0} req/s ({}) => {:.2}x",
        reqs, reqs / edge_small, rate(reqs as u64 * 65536, edge_small), reqs / ngx_small, rate(reqs as u64 * 65536, ngx_small), ngx_small / edge_small));
        // Server CPU per request does not depend on what else the machine runs.
        rep.line(format!("  server CPU per 64 KiB hit: wsus-edge {:.1} us, nginx {:.1} us (both origin and proxy workers) => {:.2}x",
            edge_cpu * 1000.0 / reqs, ngx_cpu * 1000.0 / reqs, ngx_cpu / edge_cpu));
    }
    drop(edge);

    // ---- peak RSS serving the huge object cold, then warm after a restart ----
    if part("rss") {
        let dir = work.path().join("edge-rss");
        let edge = Edge::start(dir.clone(), &upstream);
        let t = time(|| get_all(edge.addr, &huge_path));
        let cold = edge.vm_hwm_kib();
        drop(edge);
        let edge = Edge::start(dir, &upstream);
        let t2 = time(|| get_all(edge.addr, &huge_path));
        let warm = edge.vm_hwm_kib();
        rep.line(format!("peak RSS (VmHWM) serving {} MiB: cold {:.1} MiB ({:.2}s), warm {:.1} MiB ({:.2}s); target < 64 MiB",
        huge / MIB, cold as f64 / 1024.0, t, warm as f64 / 1024.0, t2));
        drop(edge);
    }

    println!("\n==== summary ====");
    for l in rep.0.lock().unwrap().iter() {
        println!("{l}");
    }
}

/// Flushes dirty pages (the objects just generated, the previous run's cache files) so that
/// background writeback does not land in the next timed run.
fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_millis(200));
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rate(bytes: u64, secs: f64) -> String {
    format!("{:.0} MB/s", bytes as f64 / secs / 1e6)
}

fn time<T>(f: impl FnOnce() -> T) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn parallel(n: usize, f: impl Fn(usize) -> u64 + Sync) -> u64 {
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let f = &f;
                s.spawn(move || f(i))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

/// Writes a pseudo-random object under `origin/Content/XX/<SHA1>.<ext>`; returns its URL path.
fn make_object(origin: &Path, size: u64, seed: u64, ext: &str) -> String {
    let tmp = origin.join(format!("tmp-{seed}"));
    std::fs::create_dir_all(origin).unwrap();
    let mut f = std::io::BufWriter::with_capacity(4 << 20, std::fs::File::create(&tmp).unwrap());
    let mut h = Sha1::new();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(MIB) as usize;
        f.write_all(&buf[..n]).unwrap();
        h.update(&buf[..n]);
        left -= n as u64;
    }
    f.flush().unwrap();
    let hex = hex::encode_upper(h.finalize());
    let rel = format!("Content/{}/{}.{}", &hex[38..], hex, ext);
    std::fs::create_dir_all(origin.join(&rel).parent().unwrap()).unwrap();
    std::fs::rename(&tmp, origin.join(&rel)).unwrap();
    format!("/{rel}")
}

fn warm_page_cache(p: &Path) {
    let mut f = std::fs::File::open(p).unwrap();
    let mut b = vec![0u8; 4 << 20];
    while f.read(&mut b).unwrap() > 0 {}
}

fn verify_bench(rep: &Report, file: &Path, size: u64) {
    warm_page_cache(file);
    let ours = (0..2)
        .map(|_| time(|| wsus_edge::content::verify::hash_file(file).unwrap()))
        .fold(f64::MAX, f64::min);
    let sha256_only = (0..2)
        .map(|_| {
            time(|| {
                let mut f = std::fs::File::open(file).unwrap();
                let mut h = sha2::Sha256::new();
                let mut b = vec![0u8; MIB as usize];
                loop {
                    let n = f.read(&mut b).unwrap();
                    if n == 0 {
                        break;
                    }
                    h.update(&b[..n]);
                }
                h.finalize()
            })
        })
        .fold(f64::MAX, f64::min);
    let ext = |cmd: &str, args: &[&str]| -> Option<f64> {
        let t = Instant::now();
        let ok = Command::new(cmd)
            .args(args)
            .arg(file)
            .stdout(Stdio::null())
            .status()
            .ok()?
            .success();
        ok.then(|| t.elapsed().as_secs_f64())
    };
    let openssl = (0..2)
        .filter_map(|_| ext("openssl", &["dgst", "-sha256"]))
        .fold(f64::MAX, f64::min);
    let coreutils = (0..2)
        .filter_map(|_| ext("sha256sum", &[]))
        .fold(f64::MAX, f64::min);
    rep.line(format!("verify {} MiB (warm): wsus-edge SHA-1+SHA-256 {}, wsus-edge SHA-256 alone {}, openssl dgst -sha256 {}, sha256sum {}",
        size / MIB, rate(size, ours), rate(size, sha256_only), rate(size, openssl), rate(size, coreutils)));
    rep.line(format!("  ratio SHA-256 alone / openssl = {:.2}x; SHA-1+SHA-256 / openssl SHA-256 = {:.2}x; vs sha256sum = {:.2}x",
        openssl / sha256_only, openssl / ours, coreutils / ours));
}

/// CPU time (user + system, ms) of process `pid` and of its direct children (nginx workers).
fn cpu_ms(pid: u32) -> f64 {
    let tick = 1000.0 / 100.0; // USER_HZ
    let mut total = 0u64;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split(' ').collect();
        let me: u32 = e
            .file_name()
            .to_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let ppid: u32 = f.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        if me == pid || ppid == pid {
            let ut: u64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0);
            let st: u64 = f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
            total += ut + st;
        }
    }
    total as f64 * tick
}

fn find_nginx() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(a: SocketAddr) {
    for _ in 0..200 {
        if TcpStream::connect(a).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{a} never came up");
}

/// A child stopped on drop: SIGTERM first (nginx's master then stops its workers, which a
/// SIGKILL would leave running), SIGKILL if it is still there after 2 s.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.0.id()) {
            // SAFETY: kill(2) with a pid we spawned and have not reaped yet; no memory involved.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            for _ in 0..40 {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Upstream links the "miss over a link" part emulates (nginx `limit_rate`, bytes/s, per
/// connection): 1 to 10 Gbit/s. A branch office's upstream is a WAN link; loopback
/// without a cap is faster than one core can hash, which the plain miss parts show.
const LINKS: [(&str, u64); 4] = [
    ("1 Gbit/s", 125_000_000),
    ("2.5 Gbit/s", 312_500_000),
    ("5 Gbit/s", 625_000_000),
    ("10 Gbit/s", 1_250_000_000),
];

fn start_nginx(
    bin: &Path,
    dir: &Path,
    origin: &Path,
    origin_port: u16,
    proxy_port: u16,
    link_ports: &[u16],
) -> Killed {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::create_dir_all(dir.join("cache")).unwrap();
    let user = if unsafe_is_root() { "user root;\n" } else { "" };
    let links: String = LINKS
        .iter()
        .zip(link_ports)
        .map(|((_, rate), port)| {
            format!(
                "    server {{\n        listen 127.0.0.1:{port};\n        root {};\n        limit_rate {rate};\n    }}\n",
                origin.display()
            )
        })
        .collect();
    let conf = format!(
        r#"{user}worker_processes auto;
daemon off;
master_process on;
error_log {d}/logs/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/ptemp;
    fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    default_type application/octet-stream;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=content:50m max_size=40g inactive=1h use_temp_path=off;
    server {{
        listen 127.0.0.1:{origin_port};
        root {o};
    }}
    server {{
        listen 127.0.0.1:{proxy_port};
        location /Content/ {{
            slice 1m;
            proxy_cache content;
            proxy_cache_key $uri$slice_range;
            proxy_set_header Range $slice_range;
            proxy_cache_valid 200 206 1h;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 600s;
            proxy_cache_lock_age 600s;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://127.0.0.1:{origin_port};
        }}
    }}
{links}}}
"#,
        d = dir.display(),
        o = origin.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(bin)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start nginx");
    Killed(child)
}

fn unsafe_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

struct Edge {
    child: Killed,
    addr: SocketAddr,
}

impl Edge {
    fn start(dir: PathBuf, upstream: &str) -> Self {
        // WSUS_EDGE_BENCH_BIN runs another build (e.g. the previous commit's) for an A/B.
        let bin = std::env::var_os("WSUS_EDGE_BENCH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_wsus-edge")));
        // Admin API on a free port: several servers (and other checkouts) run side by side.
        let conf = dir.with_extension("toml");
        std::fs::write(&conf, "[admin]\nlisten = \"127.0.0.1:0\"\n").unwrap();
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&conf)
            .args([
                "--log",
                // The listening line: `app` since the renovation, `server` in older builds (A/B runs).
                "warn,wsus_edge::app=info,wsus_edge::server=info",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                upstream,
                "--data-dir",
            ])
            .arg(&dir)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsus-edge");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let l = lines.next().expect("wsus-edge exited").unwrap();
            if let Some(rest) = l.split("listening on http://").nth(1) {
                let a: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                break a.parse().unwrap();
            }
        };
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                eprintln!("  [edge] {l}");
            }
        });
        Edge {
            child: Killed(child),
            addr,
        }
    }

    fn vm_hwm_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.0.id()))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap()
    }
}

/// A minimal keep-alive HTTP/1.1 client that discards bodies (so the client is not the
/// bottleneck of either server).
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(a: SocketAddr) -> Self {
        let s = TcpStream::connect(a).unwrap();
        s.set_nodelay(true).unwrap();
        Self {
            s,
            buf: vec![0u8; 1 << 20],
        }
    }

    fn get(&mut self, path: &str) -> u64 {
        write!(self.s, "GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").unwrap();
        let mut have = 0;
        let head_end = loop {
            let n = self.s.read(&mut self.buf[have..]).unwrap();
            assert!(n > 0, "connection closed");
            have += n;
            if let Some(i) = self.buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        assert!(
            head.starts_with("http/1.1 200") || head.starts_with("http/1.1 206"),
            "{head}"
        );
        assert!(!head.contains("transfer-encoding"), "{head}");
        let len: u64 = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .expect("content-length");
        let mut got = (have - head_end) as u64;
        while got < len {
            let n = self.s.read(&mut self.buf).unwrap();
            assert!(n > 0, "body cut at {got} of {len}");
            got += n as u64;
        }
        assert_eq!(got, len, "pipelined bytes unexpected");
        len
    }
}

fn get_all(a: SocketAddr, path: &str) -> u64 {
    Conn::new(a).get(path)
}
