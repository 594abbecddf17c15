//! An emulated thin upstream link for the slice-fetch tests (issue 18): a loopback HTTP/1.1
//! origin written here (not wsus-edge code) that honours `Range` (`bytes=a-b`, `bytes=a-`)
//! and paces every byte it sends, over all connections together, through one token bucket,
//! as a shared branch link does. It logs each request and counts the bytes that crossed.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KIB: u64 = 1024;

/// One request the link saw: asked bytes `start..end` and the link's byte count when it came.
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub start: u64,
    pub end: u64,
}

/// The emulated link and the origin behind it.
pub struct Link {
    pub addr: SocketAddr,
    crossed: Arc<AtomicU64>,
    pub log: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

pub struct Origin {
    pub data: Arc<Vec<u8>>,
    pub path: String,
    /// Offset of a byte sent flipped.
    pub corrupt_at: Option<u64>,
    /// Bytes per second over all connections.
    pub rate: f64,
}

/// A token bucket shared by every connection (the link), 20 ms of burst.
struct Bucket {
    rate: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn wait_for(&self, n: usize) -> Duration {
        let mut g = self.state.lock().unwrap();
        let now = Instant::now();
        let burst = self.rate * 0.02;
        let tokens = (g.0 + now.duration_since(g.1).as_secs_f64() * self.rate).min(burst);
        let left = tokens - n as f64;
        *g = (left, now);
        if left >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-left / self.rate)
        }
    }
}

impl Link {
    pub async fn start(origin: Origin) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let crossed = Arc::new(AtomicU64::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let bucket = Arc::new(Bucket {
            rate: origin.rate,
            state: Mutex::new((0.0, Instant::now())),
        });
        let origin = Arc::new(origin);
        let (c, l) = (crossed.clone(), log.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve_conn(
                    s,
                    origin.clone(),
                    bucket.clone(),
                    c.clone(),
                    l.clone(),
                ));
            }
        });
        Link {
            addr,
            crossed,
            log,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The origin's base URL (what `upstream.url` names).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn crossed(&self) -> u64 {
        self.crossed.load(Ordering::SeqCst)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves requests on one keep-alive connection: `GET <path>` with an optional
/// `Range: bytes=a-b` / `bytes=a-`; 206 for a range, 200 without, 404 for other paths.
async fn serve_conn(
    mut s: TcpStream,
    o: Arc<Origin>,
    bucket: Arc<Bucket>,
    crossed: Arc<AtomicU64>,
    log: Arc<Mutex<Vec<Seen>>>,
) {
    let mut buf = Vec::new();
    loop {
        let head = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..p]).to_string();
                buf.drain(..p + 4);
                break head;
            }
            let mut b = [0u8; 4096];
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&b[..n]),
            }
        };
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        let size = o.data.len() as u64;
        if path != o.path {
            let _ = s
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await;
            continue;
        }
        let range = head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("range")
                .then(|| v.trim().to_string())
        });
        let (start, end, status) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
            Some(r) => {
                let (a, b) = r.split_once('-').unwrap();
                let a: u64 = a.parse().unwrap();
                let b: u64 = if b.is_empty() {
                    size - 1
                } else {
                    b.parse::<u64>().unwrap().min(size - 1)
                };
                (a, b + 1, 206)
            }
            None => (0, size, 200),
        };
        log.lock().unwrap().push(Seen { start, end });
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\ncontent-type: application/octet-stream\r\n",
            if status == 206 { "Partial Content" } else { "OK" },
            end - start
        );
        if status == 206 {
            head += &format!("content-range: bytes {start}-{}/{size}\r\n", end - 1);
        }
        head += "\r\n";
        if s.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let mut at = start;
        while at < end {
            let n = (end - at).min(16 * KIB);
            let wait = bucket.wait_for(n as usize);
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            let mut chunk = o.data[at as usize..(at + n) as usize].to_vec();
            if let Some(c) = o.corrupt_at.filter(|c| (at..at + n).contains(c)) {
                chunk[(c - at) as usize] ^= 0x5a;
            }
            crossed.fetch_add(n, Ordering::SeqCst);
            if s.write_all(&chunk).await.is_err() {
                return;
            }
            at += n;
        }
    }
}
