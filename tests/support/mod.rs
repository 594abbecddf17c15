//! Shared fixtures for integration tests: a scriptable upstream HTTP server on 127.0.0.1:0
//! (counts GETs, honours Range, can be slow, drop mid-body, corrupt bytes, or pause at a gate),
//! an in-process wsus-edge on port 0, and raw HTTP/1.1 helpers.
//!
//! The one support tree of every integration test (`tests/support/`); a test includes the
//! files it uses with `#[path = "support/<file>.rs"] mod <file>;` (this file, as `support`,
//! brings [`link`]):
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the scriptable upstream, an in-process edge (also over self-signed HTTPS), a `serve` child, raw HTTP |
//! | `link.rs` | a Range-capable origin behind one shared token bucket (slow links) |
//! | `edge_process.rs` | a real `wsus-edge serve` child: config, log, admin CLI, sync waits |
//! | `admin_cli.rs` | one admin CLI verb against a running server |
//! | `wusp_agent.rs` | a scripted Windows Update Agent (MS-WUSP) |
//! | `sss_oracle.rs` | an independent MS-WSUSSS client reading what a server offers |
//! | `sync_proxy.rs` | a fault-injecting proxy between a replica and its upstream |
//! | `transfer_fixtures.rs` | data dirs seeded from the simulated catalog, state fingerprints |
//! | `reports.rs` | client reports in the store's form (events 156 and 182), a catalog's software updates, readers of `updates status --json` |
//! | `wire_events.rs` | `ReportingEvent`s in the wire form a `ReportEventBatch` carries (one builder, numbered flood events), a downstream's full status rollup |
#![allow(dead_code)]

pub mod link;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wsus_edge::app::{AppState, Server};
use wsus_edge::config::Config;

/// How the test upstream serves one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// All at once.
    Normal,
    /// `chunk` bytes every `delay_ms`.
    Slow { chunk: usize, delay_ms: u64 },
    /// The first GET sends `n` bytes then drops the connection; later GETs are normal.
    DropOnceAfter(usize),
    /// Every GET drops at absolute offset `n` of the object (no progress past it).
    AlwaysDropAfter(usize),
    /// Serves the bytes with one byte flipped (the name's SHA-1 no longer matches).
    Corrupt,
    /// Sends `n` bytes, then waits for [`TestUpstream::release`] before the rest.
    GatedAfter(usize),
}

struct Obj {
    data: Bytes,
    behaviour: Behaviour,
}

#[derive(Default)]
struct UpState {
    objects: Mutex<HashMap<String, Obj>>,
    gets: Mutex<HashMap<String, usize>>,
    ranges: Mutex<Vec<(String, Option<String>)>>,
    dropped_once: Mutex<std::collections::HashSet<String>>,
}

/// The scriptable upstream.
pub struct TestUpstream {
    pub addr: SocketAddr,
    state: Arc<UpState>,
    gate: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

/// `Content/XX/<SHA1HEX>.<ext>` path of `data` (leading slash).
pub fn content_path(data: &[u8], ext: &str) -> String {
    let h = hex::encode_upper(Sha1::digest(data));
    format!("/Content/{}/{}.{}", &h[38..], h, ext)
}

/// Deterministic pseudo-random bytes.
pub fn bytes_of(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

impl TestUpstream {
    /// Starts on 127.0.0.1:0.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(UpState::default());
        let (gate, _) = watch::channel(false);
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (st, g, c) = (state.clone(), gate.clone(), conns.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (st, g) = (st.clone(), g.clone());
                let h = tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let (st, g) = (st.clone(), g.clone());
                        async move { Ok::<_, Infallible>(handle(st, g, req)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                c.lock().unwrap().push(h.abort_handle());
            }
        });
        Self {
            addr,
            state,
            gate,
            task,
            conns,
        }
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds (or replaces) an object named after the SHA-1 of `data`; returns its path.
    pub fn put(&self, data: &[u8], ext: &str, behaviour: Behaviour) -> String {
        let path = content_path(data, ext);
        self.state.objects.lock().unwrap().insert(
            path.clone(),
            Obj {
                data: Bytes::copy_from_slice(data),
                behaviour,
            },
        );
        path
    }

    /// Adds raw bytes at an arbitrary path.
    pub fn put_at(&self, path: &str, data: &[u8]) {
        self.state.objects.lock().unwrap().insert(
            path.to_string(),
            Obj {
                data: Bytes::copy_from_slice(data),
                behaviour: Behaviour::Normal,
            },
        );
    }

    /// GETs received for `path`.
    pub fn gets(&self, path: &str) -> usize {
        self.state
            .gets
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// GETs received in total.
    pub fn total_gets(&self) -> usize {
        self.state.gets.lock().unwrap().values().sum()
    }

    /// The Range headers seen for `path`, in order.
    pub fn ranges(&self, path: &str) -> Vec<Option<String>> {
        self.state
            .ranges
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Opens the gate of [`Behaviour::GatedAfter`] objects.
    pub fn release(&self) {
        let _ = self.gate.send(true);
    }

    /// Stops serving: closes the listener and every connection.
    pub fn stop(&self) {
        self.task.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

type UpBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

fn handle(
    st: Arc<UpState>,
    gate: watch::Sender<bool>,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<UpBody> {
    let path = req.uri().path().to_string();
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // Only payload requests count: a replica's sync runner POSTs SOAP to the same upstream.
    if req.method() != hyper::Method::POST {
        *st.gets.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
    }
    st.ranges
        .lock()
        .unwrap()
        .push((path.clone(), range.clone()));
    let found = st
        .objects
        .lock()
        .unwrap()
        .get(&path)
        .map(|o| (o.data.clone(), o.behaviour));
    let Some((mut data, behaviour)) = found else {
        return hyper::Response::builder()
            .status(404)
            .body(
                http_body_util::Full::new(Bytes::new())
                    .map_err(|n| match n {})
                    .boxed(),
            )
            .unwrap();
    };
    if behaviour == Behaviour::Corrupt {
        let mut v = data.to_vec();
        let i = v.len() / 2;
        v[i] ^= 0xff;
        data = Bytes::from(v);
    }
    let size = data.len() as u64;
    let (status, start, end) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
        Some(spec) => {
            let (a, b) = spec.split_once('-').unwrap();
            let a: u64 = a.parse().unwrap();
            let b: u64 = if b.is_empty() {
                size - 1
            } else {
                b.parse::<u64>().unwrap().min(size - 1)
            };
            (206, a, b + 1)
        }
        None => (200, 0, size),
    };
    let body_bytes = data.slice(start as usize..end as usize);
    let cut = match behaviour {
        Behaviour::DropOnceAfter(n) => {
            if st.dropped_once.lock().unwrap().insert(path.clone()) {
                Some(n)
            } else {
                None
            }
        }
        Behaviour::AlwaysDropAfter(n) => Some(n.saturating_sub(start as usize)),
        _ => None,
    };
    let rx = gate.subscribe();
    let stream = async_stream(body_bytes, behaviour, cut, move || {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|g| *g).await;
        }
    });
    let mut b = hyper::Response::builder()
        .status(status)
        .header("content-length", end - start)
        .header("content-type", "application/octet-stream");
    if status == 206 {
        b = b.header(
            "content-range",
            format!("bytes {}-{}/{}", start, end - 1, size),
        );
    }
    b.body(StreamBody::new(stream).boxed()).unwrap()
}

fn async_stream<F, Fut>(
    data: Bytes,
    behaviour: Behaviour,
    cut: Option<usize>,
    wait_gate: F,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> + Send + Sync
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
    tokio::spawn(async move {
        let chunk = match behaviour {
            Behaviour::Slow { chunk, .. } => chunk,
            _ => 64 * 1024,
        };
        let mut pos = 0usize;
        while pos < data.len() {
            if let Some(n) = cut {
                if pos >= n {
                    // Let the bytes already sent reach the client before the connection drops.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let _ = tx
                        .send(Err(std::io::Error::other("dropped on purpose")))
                        .await;
                    return;
                }
            }
            if let Behaviour::GatedAfter(n) = behaviour {
                if pos >= n {
                    wait_gate().await;
                }
            }
            let mut take = chunk.min(data.len() - pos);
            if let Some(n) = cut {
                if pos < n {
                    take = take.min(n - pos);
                }
            }
            if let Behaviour::GatedAfter(n) = behaviour {
                if pos < n {
                    take = take.min(n - pos);
                }
            }
            if tx
                .send(Ok(Frame::data(data.slice(pos..pos + take))))
                .await
                .is_err()
            {
                return;
            }
            pos += take;
            if let Behaviour::Slow { delay_ms, .. } = behaviour {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
}

/// An in-process wsus-edge on 127.0.0.1:0 with its own data directory.
pub struct TestEdge {
    pub addr: SocketAddr,
    /// The TLS listener, when `server.tls_listen` was set.
    pub tls_addr: Option<SocketAddr>,
    pub state: Arc<AppState>,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestEdge {
    /// Starts with `upstream`, also serving HTTPS with a self-signed certificate for
    /// `localhost` written into `certs`. Returns the edge, its `https://localhost:PORT` base
    /// URL and the certificate's path (what a downstream's `upstream.ca_file` names).
    pub async fn start_self_signed(
        upstream: String,
        certs: &std::path::Path,
    ) -> (Self, String, PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, key) = (certs.join("a.pem"), certs.join("a.key"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        let edge = TestEdge::start(Some(upstream), |c| {
            c.server.tls_listen = Some("127.0.0.1:0".parse().unwrap());
            c.server.tls_cert = Some(cert.clone());
            c.server.tls_key = Some(key.clone());
        })
        .await;
        let https = format!("https://localhost:{}", edge.tls_addr.unwrap().port());
        (edge, https, cert)
    }

    /// Starts with `upstream` (if any) and config tweaks.
    pub async fn start(upstream: Option<String>, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, upstream, tweak).await
    }

    /// Starts in an existing data directory.
    pub async fn start_in(
        dir: tempfile::TempDir,
        upstream: Option<String>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut c = Config::default();
        c.server.listen = "127.0.0.1:0".parse().unwrap();
        c.server.data_dir = dir.path().to_path_buf();
        c.upstream.url = upstream;
        tweak(&mut c);
        let server = Server::bind(c).await.unwrap();
        let addr = server.local_addr();
        let tls_addr = server.tls_local_addr();
        let state = server.state().clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run_until(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            tls_addr,
            state,
            dir,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The content folder.
    pub fn content_dir(&self) -> PathBuf {
        self.dir.path().join("content")
    }

    /// Stops it and returns the data directory for a restart.
    pub async fn shutdown(mut self) -> tempfile::TempDir {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let TestEdge { dir, .. } = self;
        dir
    }
}

/// A reqwest client that keeps one HTTP/1.1 connection alive.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap()
}

/// A client whose connections come from `ip` (a 127.x address: tests of per-address budgets
/// and limits act as several LAN machines from one host).
pub fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .build()
        .unwrap()
}

/// Starts the real binary, `wsus-edge serve` on 127.0.0.1:0 (admin on any free port) with
/// `upstream` and `data_dir`; returns the child and its client address (`ip:port`), read
/// from its log (the rest of the log is drained in a thread).
pub fn serve_child(upstream: &str, data_dir: &std::path::Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsus-edge"))
        .args(["--log", "info", "serve", "--listen", "127.0.0.1:0"])
        .args(["--upstream", upstream, "--data-dir"])
        .arg(data_dir)
        .env("NO_COLOR", "1")
        // Any free admin port: a clash on the default one stops the server.
        .env("WSUS_EDGE_ADMIN_LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches(|c: char| !c.is_ascii_digit())
                .to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// The status code and `Retry-After` value of a raw HTTP response (0 and `None` when absent).
pub fn status_and_retry_after(text: &str) -> (u16, Option<String>) {
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let retry_after = text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("retry-after")
            .then(|| v.trim().to_string())
    });
    (status, retry_after)
}

/// Sends a raw request and returns the status code and the whole raw response head.
pub async fn raw(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut tmp))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}
