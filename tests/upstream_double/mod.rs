//! A hostile or broken upstream for the tests of the content path that faces it (issues 14,
//! 15, 18): a loopback HTTP/1.1 server written here (raw TCP, not wsus-edge code) whose
//! answer to each path is scripted: silence, a bare status, a redirect, or an object served
//! with `Range` support and optional lies (more bytes than announced, a stall mid-body). POSTs
//! go to a scripted SOAP handler. Every request is logged; every answer closes its connection,
//! so each exchange is one connection.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An object as the double serves it.
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// The object's bytes.
    pub data: Arc<Vec<u8>>,
    /// Bytes sent after the object's own, as if they were part of it.
    pub extra: usize,
    /// Send `Content-Length` (the object's length, not counting `extra`); without it the body
    /// is chunked.
    pub content_length: bool,
    /// Stop sending (but keep the connection open) at this offset of the object, on every
    /// request (a resumed one starting there sends nothing).
    pub stall_at: Option<usize>,
    /// From this offset of the object on, send one byte every this many milliseconds.
    pub trickle_at: Option<(usize, u64)>,
}

impl Served {
    /// The object, served honestly with a `Content-Length`.
    pub fn honest(data: &Arc<Vec<u8>>) -> Self {
        Self {
            data: data.clone(),
            content_length: true,
            ..Self::default()
        }
    }
}

/// The double's answer to a request for a path.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Read the request, never answer, keep the connection open.
    Silent,
    /// This status with an empty body.
    Status(u16),
    /// `302 Found` to this location.
    Redirect(String),
    /// The object (200, or 206 for a `Range` request).
    Object(Served),
}

/// A SOAP handler: (path, SOAPAction, body) → (status, body).
pub type SoapHandler = Arc<dyn Fn(&str, &str, &[u8]) -> (u16, Vec<u8>) + Send + Sync>;

/// A SOAP answer streamed in pieces (to test bounds on what is read).
#[derive(Clone)]
pub struct BigAnswer {
    /// The piece repeated.
    pub piece: Arc<Vec<u8>>,
    /// How many times.
    pub count: usize,
    /// Announce the total with `Content-Length` (else chunked).
    pub content_length: bool,
}

/// One request the double saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub soap_action: Option<String>,
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Reply>>,
    soap: Mutex<Option<SoapHandler>>,
    big: Mutex<Option<BigAnswer>>,
    log: Mutex<Vec<Seen>>,
    /// Body bytes written to the socket without error, over all answers.
    sent: AtomicU64,
    /// Open connections held by `Silent` and stalls (kept so they stay open).
    held: Mutex<Vec<TcpStream>>,
}

/// Scripts a [`Double`]'s answers from anywhere (a SOAP handler, a task).
#[derive(Clone)]
pub struct Routes(Arc<State>);

impl Routes {
    /// Scripts the answer for `path`.
    pub fn route(&self, path: &str, reply: Reply) {
        self.0
            .routes
            .lock()
            .unwrap()
            .insert(path.to_string(), reply);
    }
}

/// The scriptable upstream.
pub struct Double {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Double {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback address nothing listens on (connections are refused).
pub async fn refused_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

impl Double {
    /// Starts on 127.0.0.1:0.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(st.clone(), s));
            }
        });
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Scripts the answer for `path` (anything unscripted is a 404).
    pub fn route(&self, path: &str, reply: Reply) {
        self.routes().route(path, reply);
    }

    /// A handle that scripts answers (for handlers that add files later).
    pub fn routes(&self) -> Routes {
        Routes(self.state.clone())
    }

    /// Removes the script of `path` (it becomes a 404).
    pub fn unroute(&self, path: &str) {
        self.state.routes.lock().unwrap().remove(path);
    }

    /// Sets the handler of every POST.
    pub fn on_soap(&self, h: SoapHandler) {
        *self.state.soap.lock().unwrap() = Some(h);
    }

    /// Every POST is answered with this big body instead.
    pub fn big_answer(&self, a: BigAnswer) {
        *self.state.big.lock().unwrap() = Some(a);
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.log.lock().unwrap().clone()
    }

    /// GETs seen for `path`.
    pub fn gets(&self, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == "GET" && s.path == path)
            .count()
    }

    /// Body bytes written without error so far.
    pub fn sent(&self) -> u64 {
        self.state.sent.load(Ordering::Relaxed)
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_request(s: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

async fn serve(st: Arc<State>, mut s: TcpStream) {
    let Some(req) = read_request(&mut s).await else {
        return;
    };
    st.log.lock().unwrap().push(Seen {
        method: req.method.clone(),
        path: req.path.clone(),
        range: req.header("range").map(str::to_string),
        soap_action: req.header("soapaction").map(str::to_string),
    });
    let reply = st.routes.lock().unwrap().get(&req.path).cloned();
    if let (true, Some(Reply::Redirect(to))) = (req.method == "POST", &reply) {
        let head = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let _ = s.write_all(head.as_bytes()).await;
        return;
    }
    if req.method == "POST" {
        let big = st.big.lock().unwrap().clone();
        if let Some(big) = big {
            return send_big(&st, s, big).await;
        }
        let h = st.soap.lock().unwrap().clone();
        let (status, body) = match h {
            Some(h) => h(&req.path, req.header("soapaction").unwrap_or(""), &req.body),
            None => (404, Vec::new()),
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes()).await;
        let _ = s.write_all(&body).await;
        return;
    }
    match reply {
        None => status(s, 404).await,
        Some(Reply::Status(code)) => status(s, code).await,
        Some(Reply::Silent) => st.held.lock().unwrap().push(s),
        Some(Reply::Redirect(to)) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = s.write_all(head.as_bytes()).await;
        }
        Some(Reply::Object(o)) => object(&st, s, &req, o).await,
    }
}

async fn status(mut s: TcpStream, code: u16) {
    let head = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = s.write_all(head.as_bytes()).await;
}

/// `bytes=a-b` / `bytes=a-` against `size`: the half-open range.
fn parse_range(r: &str, size: u64) -> Option<(u64, u64)> {
    let (a, b) = r.strip_prefix("bytes=")?.split_once('-')?;
    let a: u64 = a.parse().ok()?;
    let b: u64 = if b.is_empty() {
        size.checked_sub(1)?
    } else {
        b.parse::<u64>().ok()?.min(size.checked_sub(1)?)
    };
    (a <= b).then_some((a, b + 1))
}

async fn object(st: &Arc<State>, mut s: TcpStream, req: &Request, o: Served) {
    let size = o.data.len() as u64;
    let range = req.header("range").and_then(|r| parse_range(r, size));
    let (code, start, end) = match range {
        Some((a, b)) => (206, a, b),
        None => (200, 0, size),
    };
    let mut head = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n"
    );
    if code == 206 {
        head.push_str(&format!(
            "Content-Range: bytes {start}-{}/{size}\r\n",
            end - 1
        ));
    }
    let chunked = !o.content_length;
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n", end - start));
    }
    head.push_str("\r\n");
    if s.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut body = o.data[start as usize..end as usize].to_vec();
    body.extend(std::iter::repeat_n(0x5a, o.extra));
    let limit = o
        .stall_at
        .or(o.trickle_at.map(|t| t.0))
        .map_or(usize::MAX, |n| n.saturating_sub(start as usize))
        .min(body.len());
    for piece in body[..limit].chunks(64 * 1024) {
        let ok = if chunked {
            let mut c = format!("{:x}\r\n", piece.len()).into_bytes();
            c.extend_from_slice(piece);
            c.extend_from_slice(b"\r\n");
            s.write_all(&c).await.is_ok()
        } else {
            s.write_all(piece).await.is_ok()
        };
        if !ok {
            return;
        }
        st.sent.fetch_add(piece.len() as u64, Ordering::Relaxed);
    }
    if let (Some((_, ms)), true) = (o.trickle_at, limit < body.len()) {
        for b in &body[limit..] {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            let piece = if chunked {
                [&b"1\r\n"[..], &[*b], b"\r\n"].concat()
            } else {
                vec![*b]
            };
            if s.write_all(&piece).await.is_err() {
                return;
            }
            st.sent.fetch_add(1, Ordering::Relaxed);
        }
    } else if limit < body.len() {
        let _ = s.flush().await;
        st.held.lock().unwrap().push(s);
        return;
    }
    if chunked {
        let _ = s.write_all(b"0\r\n\r\n").await;
    }
    let _ = s.flush().await;
}

async fn send_big(st: &Arc<State>, mut s: TcpStream, big: BigAnswer) {
    let total = big.piece.len() * big.count;
    let mut head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nConnection: close\r\n"
            .to_string();
    if big.content_length {
        head.push_str(&format!("Content-Length: {total}\r\n\r\n"));
    } else {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    }
    if s.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    for _ in 0..big.count {
        let ok = if big.content_length {
            s.write_all(&big.piece).await.is_ok()
        } else {
            let mut c = format!("{:x}\r\n", big.piece.len()).into_bytes();
            c.extend_from_slice(&big.piece);
            c.extend_from_slice(b"\r\n");
            s.write_all(&c).await.is_ok()
        };
        if !ok {
            return;
        }
        st.sent.fetch_add(big.piece.len() as u64, Ordering::Relaxed);
    }
    if !big.content_length {
        let _ = s.write_all(b"0\r\n\r\n").await;
    }
}
