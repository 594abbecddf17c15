//! A fault-injecting HTTP proxy in front of a (simulated) upstream, for the replica sync tests:
//! forwards every request, counts SOAP operations (by SOAPAction) and keeps their answers, and
//! on request replaces the next answer to an operation with a SOAP fault, drops the connection,
//! shortens a GetUpdateData answer, or holds an answer until released. Persistent poisons model
//! odd documents: every GetUpdateData asking for a "faulty" update is answered with the fault
//! WS2025 gives for a revision it cannot produce, and a "corrupt" update's document has its
//! file `Digest` cut to 3 bytes, until [`SyncProxy::heal`].
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use wsus_edge::wire::blob::UpdateBlob;
use wsus_edge::wire::soap::{decode, encode, Fault};
use wsus_edge::wire::sss::GetUpdateDataResponse;
use wsus_edge::wire::ErrorCode;

/// What to do to the next answer of an operation.
#[derive(Debug, Clone)]
pub enum Inject {
    /// Answer with this fault (HTTP 500) instead of forwarding.
    Fault(ErrorCode, String),
    /// Close the connection without answering.
    Drop,
    /// Forward, but keep only the first `n` updates of a GetUpdateData answer.
    Shorten(usize),
    /// Forward, then hold the answer until [`SyncProxy::release`] (signals [`SyncProxy::held`]).
    Hold,
}

#[derive(Default)]
struct State {
    /// Injections per operation name, applied to the `n`-th next call (0 = next).
    rules: HashMap<String, Vec<(usize, Inject)>>,
    calls: HashMap<String, usize>,
    /// (operation, answer body) of every forwarded SOAP call.
    log: Vec<(String, String)>,
    /// GetUpdateData requests naming one of these (lower-case GUID text) get a fault.
    faulty: Vec<String>,
    /// Documents of these updates are corrupted in GetUpdateData answers.
    corrupt: Vec<uuid::Uuid>,
    /// (operation, request body) of every SOAP call.
    requests: Vec<(String, String)>,
    /// (operation, from, to): text replaced in every answer to the operation.
    rewrites: Vec<(String, String, String)>,
}

/// The proxy.
pub struct SyncProxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    held: Arc<Notify>,
    release: watch::Sender<bool>,
}

fn op_of(action: &str) -> String {
    action
        .trim_matches('"')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string()
}

impl SyncProxy {
    /// Starts a proxy to `target` (`http://host:port`).
    pub async fn start(target: String) -> Self {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let held = Arc::new(Notify::new());
        let (release, release_rx) = watch::channel(false);
        let client = reqwest::Client::new();
        let (st, hd) = (state.clone(), held.clone());
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                let (st, hd, rx, client, target) = (
                    st.clone(),
                    hd.clone(),
                    release_rx.clone(),
                    client.clone(),
                    target.clone(),
                );
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (st, hd, mut rx, client, target) = (
                                st.clone(),
                                hd.clone(),
                                rx.clone(),
                                client.clone(),
                                target.clone(),
                            );
                            async move {
                                let (parts, body) = req.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let action = parts
                                    .headers
                                    .get("soapaction")
                                    .and_then(|v| v.to_str().ok())
                                    .map(op_of);
                                let inject = action.as_ref().and_then(|op| {
                                    let mut s = st.lock().unwrap();
                                    *s.calls.entry(op.clone()).or_insert(0) += 1;
                                    let rules = s.rules.entry(op.clone()).or_default();
                                    let mut hit = None;
                                    for r in rules.iter_mut() {
                                        if r.0 == 0 && hit.is_none() {
                                            hit = Some(r.1.clone());
                                            r.0 = usize::MAX;
                                        } else if r.0 != usize::MAX {
                                            r.0 -= 1;
                                        }
                                    }
                                    rules.retain(|r| r.0 != usize::MAX);
                                    hit
                                });
                                if let Some(op) = &action {
                                    st.lock().unwrap().requests.push((
                                        op.clone(),
                                        String::from_utf8_lossy(&body).into_owned(),
                                    ));
                                }
                                let poisoned = action.as_deref() == Some("GetUpdateData") && {
                                    let text = String::from_utf8_lossy(&body).to_lowercase();
                                    st.lock().unwrap().faulty.iter().any(|f| text.contains(f))
                                };
                                if poisoned {
                                    let f = Fault::new(
                                        ErrorCode::InternalServerError,
                                        "revision not available",
                                        "",
                                    );
                                    let mut r = http::Response::new(Full::new(Bytes::from(
                                        f.to_envelope(),
                                    )));
                                    *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                                    return Ok::<_, std::io::Error>(r);
                                }
                                if let Some(Inject::Fault(code, msg)) = &inject {
                                    let f = Fault::new(code.clone(), msg.clone(), "");
                                    let mut r = http::Response::new(Full::new(Bytes::from(
                                        f.to_envelope(),
                                    )));
                                    *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                                    return Ok::<_, std::io::Error>(r);
                                }
                                if let Some(Inject::Drop) = &inject {
                                    return Err(std::io::Error::other("dropped by the test proxy"));
                                }
                                let url = format!(
                                    "{target}{}",
                                    parts
                                        .uri
                                        .path_and_query()
                                        .map(|p| p.as_str())
                                        .unwrap_or("/")
                                );
                                let mut fwd = client.request(parts.method.clone(), url).body(body);
                                for (k, v) in parts.headers.iter() {
                                    if k != http::header::HOST && k != http::header::CONTENT_LENGTH
                                    {
                                        fwd = fwd.header(k, v);
                                    }
                                }
                                let resp = match fwd.send().await {
                                    Ok(r) => r,
                                    Err(e) => return Err(std::io::Error::other(e.to_string())),
                                };
                                let status = resp.status();
                                let headers = resp.headers().clone();
                                let mut bytes = resp
                                    .bytes()
                                    .await
                                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                                if let Some(Inject::Shorten(n)) = &inject {
                                    let mut r: GetUpdateDataResponse = decode(&bytes).unwrap();
                                    r.updates.truncate(*n);
                                    bytes = Bytes::from(encode(&r));
                                }
                                let rewrites = st.lock().unwrap().rewrites.clone();
                                for (op, from, to) in &rewrites {
                                    if action.as_deref() == Some(op.as_str()) {
                                        let t = String::from_utf8_lossy(&bytes).replace(from, to);
                                        bytes = Bytes::from(t);
                                    }
                                }
                                let corrupt = st.lock().unwrap().corrupt.clone();
                                if action.as_deref() == Some("GetUpdateData")
                                    && status.is_success()
                                    && !corrupt.is_empty()
                                {
                                    let mut r: GetUpdateDataResponse = decode(&bytes).unwrap();
                                    for u in &mut r.updates {
                                        if corrupt.contains(&u.id.update_id) {
                                            let xml = u.blob.xml().unwrap();
                                            u.blob = UpdateBlob::Plain(cut_digest(&xml));
                                        }
                                    }
                                    bytes = Bytes::from(encode(&r));
                                }
                                if let Some(op) = &action {
                                    st.lock().unwrap().log.push((
                                        op.clone(),
                                        String::from_utf8_lossy(&bytes).into_owned(),
                                    ));
                                }
                                if let Some(Inject::Hold) = &inject {
                                    hd.notify_one();
                                    let _ = rx.wait_for(|r| *r).await;
                                }
                                let mut r = http::Response::new(Full::new(bytes));
                                *r.status_mut() = status;
                                for (k, v) in headers.iter() {
                                    if k != http::header::CONTENT_LENGTH
                                        && k != http::header::TRANSFER_ENCODING
                                    {
                                        r.headers_mut().insert(k, v.clone());
                                    }
                                }
                                Ok(r)
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Self {
            addr,
            state,
            held,
            release,
        }
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Injects `what` into the call to `op` that comes after `skip` more calls.
    pub fn inject(&self, op: &str, skip: usize, what: Inject) {
        self.state
            .lock()
            .unwrap()
            .rules
            .entry(op.to_string())
            .or_default()
            .push((skip, what));
    }

    /// Calls of `op` seen so far.
    pub fn calls(&self, op: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .get(op)
            .copied()
            .unwrap_or(0)
    }

    /// Forgets counts and answers.
    pub fn reset(&self) {
        let mut s = self.state.lock().unwrap();
        s.calls.clear();
        s.log.clear();
    }

    /// The answers forwarded for `op`, in order.
    pub fn answers(&self, op: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// From now on, GetUpdateData requests naming `id` are answered with a fault.
    pub fn fault_on(&self, id: uuid::Uuid) {
        self.state.lock().unwrap().faulty.push(id.to_string());
    }

    /// From now on, `id`'s update document has a 3-byte SHA-1 `Digest` (MS-WSUSSS: 20).
    pub fn corrupt(&self, id: uuid::Uuid) {
        self.state.lock().unwrap().corrupt.push(id);
    }

    /// From now on, every answer to `op` has `from` replaced by `to`.
    pub fn rewrite(&self, op: &str, from: &str, to: &str) {
        self.state
            .lock()
            .unwrap()
            .rewrites
            .push((op.into(), from.into(), to.into()));
    }

    /// Ends every poison.
    pub fn heal(&self) {
        let mut s = self.state.lock().unwrap();
        s.faulty.clear();
        s.corrupt.clear();
    }

    /// The requests seen for `op`, in order.
    pub fn requests(&self, op: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Waits until an answer is held.
    pub async fn held(&self) {
        self.held.notified().await
    }

    /// Lets held answers go.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }
}

/// The document with the first `Digest="…"` replaced by a 3-byte one.
fn cut_digest(xml: &str) -> String {
    let Some(i) = xml.find(" Digest=\"") else {
        return xml.replacen("<upd:Properties", "<upd:Properties EulaID=\"\"", 1);
    };
    let start = i + " Digest=\"".len();
    let end = start + xml[start..].find('"').unwrap();
    format!("{}AAAA{}", &xml[..start], &xml[end..])
}
