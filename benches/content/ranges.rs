//! The `ranges` part (issue 18): a cold object asked in Delivery Optimization's pattern
//! (3 clients, each on its own keep-alive connection, closed 1 MiB ranges in shuffled order)
//! through wsus-edge and through nginx `slice 1m` + `proxy_cache_lock on`, both in front of the
//! same origin behind an emulated link, at 20 Mbit/s, 100 Mbit/s and 1 Gbit/s. Reports the
//! median and p99 time per range and the bytes that crossed the link while the ranges were
//! asked.
//!
//! The link is a paced origin written here: one token bucket for all connections together
//! (a branch link is shared; nginx `limit_rate` is per connection). wsus-edge fills by slices
//! only for files metadata declares, so its store is given the object's record before it
//! starts, as a sync would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{free_port, make_object, wait_port, Killed, Report, MIB};

/// Links: name, bytes per second, ranges asked per client.
const LINKS: [(&str, f64, usize); 3] = [
    ("20 Mbit/s", 2_500_000.0, 8),
    ("100 Mbit/s", 12_500_000.0, 16),
    ("1 Gbit/s", 125_000_000.0, 32),
];
const CLIENTS: u64 = 3;

/// An origin serving files under `root` through one shared token bucket.
struct PacedOrigin {
    addr: SocketAddr,
    crossed: Arc<AtomicU64>,
}

impl PacedOrigin {
    fn start(root: PathBuf, rate: f64) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let crossed = Arc::new(AtomicU64::new(0));
        let bucket = Arc::new(Mutex::new((0.0f64, Instant::now())));
        let c = crossed.clone();
        std::thread::spawn(move || {
            for s in l.incoming().map_while(Result::ok) {
                let (root, bucket, c) = (root.clone(), bucket.clone(), c.clone());
                std::thread::spawn(move || serve(s, &root, rate, &bucket, &c));
            }
        });
        Self { addr, crossed }
    }
}

fn take(bucket: &Mutex<(f64, Instant)>, rate: f64, n: usize) -> Duration {
    let mut g = bucket.lock().unwrap();
    let now = Instant::now();
    let t = (g.0 + now.duration_since(g.1).as_secs_f64() * rate).min(rate * 0.02);
    *g = (t - n as f64, now);
    Duration::from_secs_f64((n as f64 - t).max(0.0) / rate)
}

fn serve(
    s: TcpStream,
    root: &Path,
    rate: f64,
    bucket: &Mutex<(f64, Instant)>,
    crossed: &AtomicU64,
) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push(line);
        }
        let path = head[0].split(' ').nth(1).unwrap_or("/").to_string();
        let Ok(f) = std::fs::File::open(root.join(path.trim_start_matches('/'))) else {
            let _ = w.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
            continue;
        };
        let size = f.metadata().unwrap().len();
        let range = head.iter().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("range")
                .then(|| v.trim().strip_prefix("bytes=").map(str::to_string))?
        });
        let (a, b, status) = match range {
            Some(r) => {
                let (a, b) = r.split_once('-').unwrap();
                let a: u64 = a.parse().unwrap();
                let b = b.parse::<u64>().map_or(size - 1, |b| b.min(size - 1));
                (a, b + 1, "206 Partial Content")
            }
            None => (0, size, "200 OK"),
        };
        let mut h = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", b - a);
        if status.starts_with("206") {
            h += &format!("content-range: bytes {a}-{}/{size}\r\n", b - 1);
        }
        h += "\r\n";
        if w.write_all(h.as_bytes()).is_err() {
            return;
        }
        let mut buf = vec![0u8; 16 << 10];
        let mut at = a;
        while at < b {
            let n = (b - at).min(buf.len() as u64) as usize;
            std::thread::sleep(take(bucket, rate, n));
            f.read_exact_at(&mut buf[..n], at).unwrap();
            crossed.fetch_add(n as u64, Ordering::Relaxed);
            if w.write_all(&buf[..n]).is_err() {
                return;
            }
            at += n as u64;
        }
    }
}

/// GET `a..=b` on a keep-alive connection, discarding the body.
fn get_range(s: &mut TcpStream, path: &str, a: u64, b: u64) {
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nRange: bytes={a}-{b}\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 256 << 10];
    let mut have = 0;
    let end = loop {
        let n = s.read(&mut buf[have..]).unwrap();
        assert!(n > 0, "closed");
        have += n;
        if let Some(i) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 206"), "{head}");
    let mut got = (have - end) as u64;
    while got < b - a + 1 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "body cut");
        got += n as u64;
    }
}

/// DO's pattern against `server`: per-range times (s).
fn do_pattern(server: SocketAddr, path: &str, size: u64, per_client: usize) -> Vec<f64> {
    let n = size / MIB;
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..CLIENTS)
            .map(|c| {
                sc.spawn(move || {
                    let mut s = TcpStream::connect(server).unwrap();
                    s.set_nodelay(true).unwrap();
                    // A stuck answer fails the run with a message instead of hanging it.
                    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
                    let mut x = (c + 7).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    (0..per_client)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            let sl = x % n;
                            let t = Instant::now();
                            get_range(&mut s, path, sl * MIB, sl * MIB + MIB - 1);
                            t.elapsed().as_secs_f64()
                        })
                        .collect::<Vec<f64>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1]
}

/// A wsus-edge whose store declares the object at `path` (size and digests), as after a sync.
fn edge_with_record(dir: &Path, upstream: &str, object: &Path) -> super::Edge {
    std::fs::create_dir_all(dir).unwrap();
    let d = wsus_edge::content::verify::hash_file(object).unwrap();
    {
        let store = wsus_edge::store::Store::open(&dir.join("meta")).unwrap();
        store
            .put_expected_files(&[wsus_edge::model::FileRecord {
                name: "bench.wim".into(),
                size: d.size,
                sha1: d.sha1,
                sha256: Some(d.sha256),
                upstream_url: None,
                patching_type: None,
            }])
            .unwrap();
    }
    super::Edge::start(dir.to_path_buf(), upstream)
}

fn nginx_slice(bin: &Path, dir: &Path, upstream: SocketAddr) -> (Killed, SocketAddr) {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let port = free_port();
    // As the main nginx of the bench: workers as root when the bench runs as root (the
    // work dir is 0700).
    let user = if super::unsafe_is_root() {
        "user root;\n"
    } else {
        ""
    };
    let conf = format!(
        r#"{user}worker_processes auto;
daemon off;
error_log {d}/logs/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/ptemp;
    fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=content:50m max_size=40g inactive=1h use_temp_path=off;
    server {{
        listen 127.0.0.1:{port};
        location /Content/ {{
            slice 1m;
            proxy_cache content;
            proxy_cache_key $uri$slice_range;
            proxy_set_header Range $slice_range;
            proxy_cache_valid 200 206 1h;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 600s;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://{upstream};
        }}
    }}
}}
"#,
        d = dir.display()
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
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_port(addr);
    (Killed(child), addr)
}

/// Runs the part; `size` is the object's size.
pub fn run(rep: &Report, work: &Path, nginx: Option<&Path>, size: u64) {
    let root = work.join("ranges-origin");
    rep.line(format!(
        "ranges: cold {} MiB object, {CLIENTS} DO-style clients, shuffled closed 1 MiB ranges; shared emulated link; load: {}",
        size / MIB,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    ));
    for (i, (name, rate, per_client)) in LINKS.iter().enumerate() {
        // A fresh object per link: both caches are cold.
        let path = make_object(&root, size, 7000 + i as u64, "wim");
        let object = root.join(path.trim_start_matches('/'));
        let origin = PacedOrigin::start(root.clone(), *rate);
        let edge = edge_with_record(
            &work.join(format!("ranges-edge-{i}")),
            &format!("http://{}", origin.addr),
            &object,
        );
        let t0 = origin.crossed.load(Ordering::Relaxed);
        let mut e = do_pattern(edge.addr, &path, size, *per_client);
        let e_bytes = origin.crossed.load(Ordering::Relaxed) - t0;
        drop(edge);
        let mut line = format!(
            "  {name}: wsus-edge median {:.3}s p99 {:.3}s ({} ranges, {} MiB crossed the link while asked)",
            pct(&mut e, 0.5),
            pct(&mut e, 0.99),
            e.len(),
            e_bytes / MIB
        );
        if let Some(bin) = nginx {
            // Its own link (same rate): no byte of wsus-edge's fill is counted here.
            let origin = PacedOrigin::start(root.clone(), *rate);
            let (ngx, addr) =
                nginx_slice(bin, &work.join(format!("ranges-nginx-{i}")), origin.addr);
            let mut g = do_pattern(addr, &path, size, *per_client);
            let g_bytes = origin.crossed.load(Ordering::Relaxed);
            drop(ngx);
            line += &format!(
                "; nginx slice+lock median {:.3}s p99 {:.3}s ({} MiB crossed) => p99 ratio wsus-edge/nginx {:.2}",
                pct(&mut g, 0.5),
                pct(&mut g, 0.99),
                g_bytes / MIB,
                pct(&mut e, 0.99) / pct(&mut g, 0.99)
            );
        }
        rep.line(line);
    }
}
