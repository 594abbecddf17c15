//! SyncUpdates under load on a simulated catalog (default 20,000 updates plus the field shapes:
//! a KB2267602-shaped bundle of bundles, an unapproved prerequisite, drivers). Phases:
//! - `cold`: one full scan from an empty cache per installed state (default 100 states: which
//!   detectoids a machine has), all at once; every needed set is computed here.
//! - `full-burst`, the shape: N new machines (default 1,000; machine i in state i % 100)
//!   register and scan from an empty cache, all started at once. Each sends what its state's
//!   cold walk sent and checks each answer against it (see [`follow`]).
//! - `first-burst`: N machines new to this server but with their state's cache (re-imaged or
//!   moved here), all at once.
//! - their next daily rescan (renewing the session with `oldCookie`), all at once and with at
//!   most WSUS_EDGE_BENCH_FLEET (default 50) scanning at a time (agents scan at randomized
//!   times; see [`run_clients`]).
//!
//! Each scan is a full scan (handshake, then the layered SyncUpdates walk to the end), over
//! loopback HTTP against one `ClientService` behind the production router and HTTP loop (what
//! `wsus-edge serve` runs). Prints scans/s, SyncUpdates p50/p99 latency, calls per scan, server
//! and load-generator CPU per scan, the needed-set memo hit rate and the server's RSS
//! before/peak/after.
//!
//! `cargo bench --bench client_scan` (env: WSUS_EDGE_BENCH_CLIENTS, WSUS_EDGE_BENCH_STATES,
//! WSUS_EDGE_BENCH_UPDATES, WSUS_EDGE_BENCH_FLEET,
//! WSUS_EDGE_BENCH_PAGE=n for a SyncUpdates page size other than the default 30 (WS2025 sends at
//! most 30; MS-WUSP's product note <55> says WSUS truncates at 200),
//! WSUS_EDGE_BENCH_INPROC=1 to run the clients inside the server process,
//! WSUS_EDGE_BENCH_PIN=1 to keep the server on CPU 0 and the clients on CPU 1,
//! WSUS_EDGE_BENCH_REPLAY=n for the one-thread replay's number of full scans (default 2),
//! WSUS_EDGE_BENCH_STORE=/some/dir to keep the seeded store between runs).
//!
//! The load generator is deliberately light so that it measures the server: the handshake uses
//! the scripted test agent, but the SyncUpdates walk builds its request bodies as strings and
//! scans each response for the few fields it needs (ids, action, leaf flag, update id, the new
//! cookie, truncation) instead of parsing it into trees. By default the clients run in a child
//! process (this binary re-executed), so the server's CPU time and RSS are its own; both still
//! share the machine's cores, so scans/s is a lower bound.

#[path = "../tests/support/wusp_agent.rs"]
mod agent;

use std::collections::HashMap;

use memchr::memmem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsus_edge::client_service::http::SoapEndpoint;
use wsus_edge::client_service::{ClientService, CookieKey, Endpoint, Options, Request};
use wsus_edge::config::UpstreamConfig;
use wsus_edge::content::ContentCache;
use wsus_edge::http::Router;
use wsus_edge::simulate::Catalog;
use wsus_edge::store::Store;
use wsus_edge::wire::soap;
use wsus_edge::wire::wusp;

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

/// User + system CPU seconds of this process.
fn cpu_s() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the zeroed struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// What the clients measured.
#[derive(Debug, Default)]
struct ClientStats {
    calls: usize,
    offered: usize,
    elapsed: f64,
    /// SyncUpdates latencies in microseconds, sorted.
    lat_us: Vec<u64>,
    /// Whole scans (handshake + walk) in microseconds, sorted.
    scan_us: Vec<u64>,
    cpu: f64,
}

impl ClientStats {
    fn pct(&self, p: f64) -> f64 {
        pct_ms(&self.lat_us, p)
    }
}

/// The `p` quantile of sorted microseconds, in milliseconds.
fn pct_ms(v: &[u64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)] as f64 / 1e3
}

/// The text between the first `open` and the next `close` (SIMD substring search: the load
/// generator must stay light next to the server it measures).
fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let a = memmem::find(s.as_bytes(), open.as_bytes())? + open.len();
    let b = memmem::find(&s.as_bytes()[a..], close.as_bytes())? + a;
    s.get(a..b)
}

/// Like [`between`] with `str::find`, for short texts (a memmem searcher costs more to set up
/// than it saves on the few hundred bytes before an update's `Xml`).
fn between_short<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let a = find_short(s.as_bytes(), open.as_bytes())? + open.len();
    let b = find_short(&s.as_bytes()[a..], close.as_bytes())? + a;
    s.get(a..b)
}

/// The first `pat` in `h`: `memchr` for its first byte, then a compare (no searcher set-up).
fn find_short(h: &[u8], pat: &[u8]) -> Option<usize> {
    let (&first, rest) = pat.split_first()?;
    let mut at = 0;
    while let Some(k) = memchr::memchr(first, &h[at..]) {
        let i = at + k;
        if h[i + 1..].starts_with(rest) {
            return Some(i);
        }
        at = i + 1;
    }
    None
}

/// Searchers built once (building one per search was a visible share of the client's time).
struct Finders {
    update_info: memmem::Finder<'static>,
    xml: memmem::Finder<'static>,
    category: memmem::Finder<'static>,
    new_updates_end: memmem::FinderRev<'static>,
    new_cookie: memmem::FinderRev<'static>,
}

static FINDERS: std::sync::LazyLock<Finders> = std::sync::LazyLock::new(|| Finders {
    update_info: memmem::Finder::new("<UpdateInfo>"),
    xml: memmem::Finder::new("<Xml>"),
    category: memmem::Finder::new("UpdateType=\"Category\""),
    new_updates_end: memmem::FinderRev::new("</NewUpdates>"),
    new_cookie: memmem::FinderRev::new("<NewCookie>"),
});

/// The ids of one cached list as request XML (`<int>..</int>` items), kept up to date as the
/// walk appends, so each call copies it instead of formatting every id again.
#[derive(Default)]
struct IdList {
    ids: Vec<i32>,
    xml: String,
}

impl IdList {
    fn new(ids: Vec<i32>) -> Self {
        let mut l = IdList::default();
        for i in ids {
            l.push(i);
        }
        l
    }

    fn push(&mut self, i: i32) {
        push_int_items(&mut self.xml, &[i]);
        self.ids.push(i);
    }

    /// Drops `gone` (rare: out-of-scope ids), rewriting the XML.
    fn remove(&mut self, gone: i32) {
        if self.ids.contains(&gone) {
            self.ids.retain(|i| *i != gone);
            self.xml.clear();
            push_int_items(&mut self.xml, &self.ids);
        }
    }

    /// `<name>items</name>`, or `<name />` when empty (as the scripted agent writes it).
    fn write(&self, out: &mut String, name: &str) {
        if self.ids.is_empty() {
            out.push('<');
            out.push_str(name);
            out.push_str(" />");
        } else {
            out.push('<');
            out.push_str(name);
            out.push('>');
            out.push_str(&self.xml);
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
    }
}

/// Like [`between`], searching for `open` from the end (for the fields after the updates).
fn between_last<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let a = memmem::rfind(s.as_bytes(), open.as_bytes())? + open.len();
    let b = memmem::find(&s.as_bytes()[a..], close.as_bytes())? + a;
    s.get(a..b)
}

const TAIL: &str = "<SkipSoftwareSync>false</SkipSoftwareSync><NeedTwoGroupOutOfScopeUpdates>true</NeedTwoGroupOutOfScopeUpdates><AlsoPerformRegularSync>false</AlsoPerformRegularSync></parameters></SyncUpdates></soap:Body></soap:Envelope>";

/// `<int>n</int>` for each id.
fn push_int_items(out: &mut String, v: &[i32]) {
    let mut digits = [0u8; 12];
    for &i in v {
        out.push_str("<int>");
        // Formatted by hand: `write!` per id was a visible share of the client's time.
        let mut n = i.unsigned_abs();
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if i < 0 {
            out.push('-');
        }
        out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or("0"));
        out.push_str("</int>");
    }
}

/// The agent's SyncUpdates walk (same decisions as `Agent::scan`), with string-built requests
/// and scanned responses, over HTTP. Returns (calls, offered, latencies in µs).
async fn light_scan(a: &agent::Agent, state: u8, prior: Option<(Vec<i32>, Vec<i32>)>) -> Walked {
    // One raw keep-alive HTTP/1.1 connection per client: a general-purpose HTTP client costs
    // more CPU per request than the server spends answering it.
    let addr = a.base.trim_start_matches("http://").to_string();
    let conn = Arc::new(tokio::sync::Mutex::new(RawConn::connect(&addr).await));
    let mut send = |body: String| {
        let conn = conn.clone();
        async move { conn.lock().await.post(wusp::CLIENT_PATH, &body).await }
    };
    walk(a, &mut send, state, prior).await
}

/// A minimal HTTP/1.1 client for one keep-alive connection: POSTs a SOAP body, reads the
/// response by `Content-Length` (what the server sends for SOAP answers).
struct RawConn {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    host: String,
    action: String,
}

impl RawConn {
    async fn connect(addr: &str) -> Self {
        let s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        RawConn {
            stream: tokio::io::BufReader::with_capacity(256 * 1024, s),
            host: addr.to_string(),
            action: soap::soap_action_header(wusp::action::SYNC_UPDATES),
        }
    }

    async fn post(&mut self, path: &str, body: &str) -> (u16, String) {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml; charset=utf-8\r\nSOAPAction: {}\r\nContent-Length: {}\r\n\r\n",
            self.host,
            self.action,
            body.len()
        );
        // One write, as a client sending a small request in one go does (two writes with
        // TCP_NODELAY are two segments, and two wake-ups of the server).
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body.as_bytes());
        self.stream
            .get_mut()
            .write_all(&request)
            .await
            .expect("write request");
        let mut line = String::new();
        self.stream.read_line(&mut line).await.expect("status line");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("status code");
        let mut len = None;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("header");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                }
            }
        }
        let mut buf = vec![0u8; len.expect("Content-Length (never chunked)")];
        self.stream.read_exact(&mut buf).await.expect("body");
        (status, String::from_utf8(buf).expect("UTF-8"))
    }
}

/// A scan's first SyncUpdates body for agent `a` (empty cache), with what comes before its
/// `<cookie>` element and the cookie's inner XML: later bodies are built around them.
fn first_request(a: &agent::Agent) -> (String, String, String) {
    let first = soap::encode(&wusp::SyncUpdates {
        cookie: a.cookie.clone().expect("cookie"),
        parameters: Default::default(),
    });
    let (head, rest) = first.split_once("<cookie>").expect("cookie element");
    let cookie = rest.split_once("</cookie>").expect("cookie end").0;
    let (head, cookie) = (head.to_string(), cookie.to_string());
    (first, head, cookie)
}

/// What one walk did: calls, offered, latencies (µs), the cache it ends with (installed
/// non-leaf ids, other cached ids), the last `NewCookie` (its inner XML) and, for a walk from
/// an empty cache, its steps (what a machine in the same state sends and gets, see [`follow`]).
type Walked = (
    usize,
    usize,
    Vec<u64>,
    Vec<i32>,
    Vec<i32>,
    String,
    Vec<Step>,
);

/// One call of a recorded walk: the request body after `</cookie>`, and the response's length
/// without its `NewCookie` (the only part that differs between machines in one state).
#[derive(Clone)]
struct Step {
    rest: String,
    answer_len: usize,
}

/// The walk itself; `send` posts one SyncUpdates body and returns (status, response body).
/// `state` (0..100) picks which detectoids this machine has (a real fleet is not one build);
/// `prior` is the cache a returning client starts from.
async fn walk<F, Fut>(
    a: &agent::Agent,
    send: &mut F,
    state: u8,
    prior: Option<(Vec<i32>, Vec<i32>)>,
) -> Walked
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = (u16, String)>,
{
    let (first, head, mut cookie) = first_request(a);
    // id → (action is Install/Uninstall/Bundle)
    let mut received: HashMap<i32, bool> = HashMap::new();
    let warm = prior.is_some();
    let (installed0, other0) = prior.unwrap_or_default();
    let (mut installed, mut other) = (IdList::new(installed0), IdList::new(other0));
    let f = &*FINDERS;
    let mut lat = Vec::new();
    let mut steps = Vec::new();
    let mut calls = 0usize;
    loop {
        calls += 1;
        assert!(calls < 5000, "scan does not converge");
        let body = if calls == 1 && !warm {
            first.clone()
        } else {
            let mut b = String::with_capacity(
                head.len() + cookie.len() + 400 + installed.xml.len() + other.xml.len(),
            );
            b.push_str(&head);
            b.push_str("<cookie>");
            b.push_str(&cookie);
            b.push_str("</cookie><parameters><ExpressQuery>false</ExpressQuery>");
            installed.write(&mut b, "InstalledNonLeafUpdateIDs");
            other.write(&mut b, "OtherCachedUpdateIDs");
            b.push_str(TAIL);
            b
        };
        let rest = (!warm).then(|| {
            let at = memmem::find(body.as_bytes(), b"</cookie>").expect("cookie end");
            body[at + "</cookie>".len()..].to_string()
        });
        let started = Instant::now();
        let (status, text) = send(body).await;
        lat.push(started.elapsed().as_micros() as u64);
        assert_eq!(status, 200, "{text}");
        // `NewUpdates` first, then the short fields: searched only after it (the update XML is
        // escaped text, so no tag inside it can match).
        let (new, tail) = match f.new_updates_end.rfind(text.as_bytes()) {
            Some(end) => {
                let start = memmem::find(text.as_bytes(), b"<NewUpdates>").expect("NewUpdates")
                    + "<NewUpdates>".len();
                (&text[start..end], &text[end..])
            }
            None => ("", text.as_str()),
        };
        cookie = between_last(tail, "<NewCookie>", "</NewCookie>")
            .expect("NewCookie")
            .to_string();
        if let Some(rest) = rest {
            steps.push(Step {
                rest,
                answer_len: text.len() - cookie.len(),
            });
        }
        if let Some(oos) = between_last(tail, "<OutOfScopeRevisionIDs>", "</OutOfScopeRevisionIDs>")
        {
            for gone in oos.split("<int>").filter_map(|x| {
                x.split_once("</int>")
                    .and_then(|(n, _)| n.parse::<i32>().ok())
            }) {
                received.remove(&gone);
                installed.remove(gone);
                other.remove(gone);
            }
        }
        let mut non_leaf = false;
        let starts: Vec<usize> = f.update_info.find_iter(new.as_bytes()).collect();
        for (k, &at) in starts.iter().enumerate() {
            let u = &new[at..starts.get(k + 1).copied().unwrap_or(new.len())];
            // Everything but the update XML sits in the few hundred bytes before `<Xml>`.
            let x = f.xml.find(u.as_bytes()).expect("UpdateInfo/Xml");
            let fields = &u[..x];
            let id: i32 = between_short(fields, "<ID>", "</ID>")
                .and_then(|x| x.parse().ok())
                .expect("UpdateInfo/ID");
            let action = between_short(fields, "<Action>", "</Action>").expect("Action");
            let is_leaf = between_short(fields, "<IsLeaf>", "</IsLeaf>") == Some("true");
            let xml = &u[x + "<Xml>".len()..u.rfind("</Xml>").expect("Xml end")];
            let uid = between_short(xml, "UpdateID=\"", "\"").expect("UpdateID");
            let first_byte = u8::from_str_radix(&uid[..2], 16).expect("hex");
            let second = u8::from_str_radix(&uid[2..4], 16).expect("hex");
            let has = !(first_byte ^ second.wrapping_mul(state.wrapping_add(1))).is_multiple_of(4);
            let is_cat = || f.category.find(xml.as_bytes()).is_some();
            received.insert(id, matches!(action, "Install" | "Uninstall" | "Bundle"));
            if !is_leaf {
                non_leaf = true;
            }
            if !is_leaf
                && action == "Evaluate"
                && (has || is_cat())
                && installed.ids.len() < wusp::MAX_INSTALLED_NON_LEAF
            {
                installed.push(id);
            } else {
                other.push(id);
            }
        }
        let truncated = between_last(tail, "<Truncated>", "</Truncated>") == Some("true");
        if !truncated && !non_leaf {
            break;
        }
    }
    (
        calls,
        received.values().filter(|o| **o).count(),
        lat,
        installed.ids,
        other.ids,
        cookie,
        steps,
    )
}

/// A machine in the same installed state as a recorded walk, scanning from an empty cache: it
/// would make the same decisions on the same answers, so it sends the recorded requests with
/// its own cookie, and checks that each answer has the recorded length (its own cookie aside).
/// The load generator shares the server's two cores; replaying instead of re-parsing every
/// answer leaves them to the server. Returns (calls, latencies in µs, last cookie).
async fn follow(a: &agent::Agent, steps: &[Step]) -> (usize, Vec<u64>, String) {
    let (_, head, mut cookie) = first_request(a);
    let addr = a.base.trim_start_matches("http://").to_string();
    let mut conn = RawConn::connect(&addr).await;
    let mut lat = Vec::with_capacity(steps.len());
    for (k, step) in steps.iter().enumerate() {
        let mut body = String::with_capacity(head.len() + cookie.len() + 20 + step.rest.len());
        body.push_str(&head);
        body.push_str("<cookie>");
        body.push_str(&cookie);
        body.push_str("</cookie>");
        body.push_str(&step.rest);
        let started = Instant::now();
        let (status, text) = conn.post(wusp::CLIENT_PATH, &body).await;
        lat.push(started.elapsed().as_micros() as u64);
        assert_eq!(status, 200, "{text}");
        let at = FINDERS
            .new_cookie
            .rfind(text.as_bytes())
            .expect("NewCookie")
            + "<NewCookie>".len();
        let end =
            memmem::find(&text.as_bytes()[at..], b"</NewCookie>").expect("NewCookie end") + at;
        cookie = text[at..end].to_string();
        assert_eq!(
            text.len() - cookie.len(),
            step.answer_len,
            "call {k}: the answer differs from the recorded one for this installed state"
        );
    }
    (steps.len(), lat, cookie)
}

/// A `Cookie` from the inner XML of a `NewCookie` (what the agent keeps for `oldCookie`).
fn cookie_of(inner: &str) -> wusp::Cookie {
    use base64::Engine;
    let data = between(inner, "<EncryptedData>", "</EncryptedData>").expect("EncryptedData");
    let exp = between(inner, "<Expiration>", "</Expiration>")
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .unwrap_or_else(time::OffsetDateTime::now_utc);
    wusp::Cookie {
        expiration: exp,
        encrypted_data: Some(
            base64::engine::general_purpose::STANDARD
                .decode(data)
                .expect("base64 cookie"),
        ),
    }
}

/// The returning agent's daily start: GetConfig, a new authorization cookie (with its
/// client-side target group), then GetCookie with yesterday's session cookie as `oldCookie`,
/// so the server knows what the client already holds (no RegisterComputer: the agent
/// registers once, and again only when told to).
async fn renew(a: &mut agent::Agent, group: &str) {
    a.call(
        wusp::CLIENT_PATH,
        &wusp::GetConfig {
            protocol_version: "2.90".into(),
        },
    )
    .await
    .expect("GetConfig");
    let auth = a
        .call(
            wusp::SIMPLE_AUTH_PATH,
            &wusp::GetAuthorizationCookie {
                client_id: a.client_id.clone(),
                target_group_name: Some(group.to_string()),
                dns_name: format!("{}.branch.test", &a.client_id[..8]),
            },
        )
        .await
        .expect("GetAuthorizationCookie")
        .result;
    let c = a
        .call(
            wusp::CLIENT_PATH,
            &wusp::GetCookie {
                auth_cookies: vec![auth],
                old_cookie: a.cookie.clone(),
                last_change: a.last_change,
                current_time: Some(time::OffsetDateTime::now_utc()),
                protocol_version: "2.90".into(),
            },
        )
        .await
        .expect("GetCookie")
        .result;
    a.cookie = Some(c);
}

const GROUPS: [&str; 5] = [
    "Pilot",
    "Workstations",
    "Finance",
    "Servers",
    "Unassigned Computers",
];

/// Phase `cold`: one client per installed state (`states` of them) scans from an empty cache,
/// all at once. Phase `first-burst`: `clients` machines new to this server, machine i in state
/// i % states with that state's cache (re-imaged, or moved here), all started at once; with
/// no session cookie to renew, the server assumes nothing and lists every cached update as
/// changed. Then the same machines' next daily scan (renewing with `oldCookie`, see
/// [`renew`]): `rescan-burst` starts all of them at once, `rescan-fleet` keeps at most `fleet`
/// scanning at a time, a new one starting when one finishes. A real fleet is the last shape:
/// agents scan about every 22 hours at a randomized offset, so even a morning boot storm
/// spreads a branch's thousand machines over many minutes, and a few dozen scanning at the
/// same moment is already a heavy hour. `mark(phase)` is called as each phase ends (the
/// server samples its CPU time there).
async fn run_clients(
    base: String,
    clients: usize,
    states: usize,
    fleet: usize,
    mark: &dyn Fn(&str),
) -> Vec<(&'static str, ClientStats)> {
    let cpu0 = cpu_s();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..states {
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let mut a = agent::Agent::new(&base);
            a.handshake(Some(GROUPS[s % GROUPS.len()])).await;
            let w = light_scan(&a, s as u8, None).await;
            (w, t.elapsed().as_micros() as u64)
        }));
    }
    let mut cold = ClientStats::default();
    let mut caches = Vec::new();
    let mut walks = Vec::new();
    for t in tasks {
        let ((c, o, l, inst, other, _, steps), us) = t.await.expect("client task");
        cold.calls += c;
        cold.offered += o;
        cold.lat_us.extend(l);
        cold.scan_us.push(us);
        caches.push((inst, other));
        walks.push((steps, o));
    }
    cold.elapsed = started.elapsed().as_secs_f64();
    cold.cpu = cpu_s() - cpu0;
    cold.lat_us.sort_unstable();
    cold.scan_us.sort_unstable();
    mark("cold");
    eprintln!("  {states} cold scans done after {:.1}s", cold.elapsed);
    let caches = Arc::new(caches);
    let full = full_burst(&base, clients, Arc::new(walks)).await;
    mark("full-burst");
    eprintln!(
        "  {clients} full scans from an empty cache, all at once: {:.1}s",
        full.elapsed
    );
    let (burst, fleet_agents) = warm(&base, clients, &caches, clients).await;
    mark("first-burst");
    eprintln!(
        "  {clients} first scans with a cache, all at once: {:.1}s",
        burst.elapsed
    );
    let (rescan_burst, fleet_agents) = rescan(fleet_agents, clients).await;
    mark("rescan-burst");
    eprintln!(
        "  {clients} daily rescans, all at once: {:.1}s",
        rescan_burst.elapsed
    );
    let (rescan_fleet, _) = rescan(fleet_agents, fleet.max(1)).await;
    mark("rescan-fleet");
    eprintln!(
        "  {clients} daily rescans, at most {fleet} at a time: {:.1}s",
        rescan_fleet.elapsed
    );
    vec![
        ("cold", cold),
        ("full-burst", full),
        ("first-burst", burst),
        ("rescan-burst", rescan_burst),
        ("rescan-fleet", rescan_fleet),
    ]
}

/// One returning machine between its scans: the agent, its state, its cache.
type Machine = (agent::Agent, usize, (Vec<i32>, Vec<i32>));

/// One machine's scan task: its walk, the whole scan's µs, the agent and its state.
type ScanTask = tokio::task::JoinHandle<(Walked, u64, agent::Agent, usize)>;

/// Awaits a phase's scan tasks and sums what they measured (the phase started at `started`
/// with the server at `cpu0` CPU seconds); returns the machines for the next phase.
async fn gather(tasks: Vec<ScanTask>, started: Instant, cpu0: f64) -> (ClientStats, Vec<Machine>) {
    let mut st = ClientStats::default();
    let mut out = Vec::new();
    for t in tasks {
        let ((c, o, l, inst, other, _, _), us, a, s) = t.await.expect("client task");
        st.calls += c;
        st.offered += o;
        st.lat_us.extend(l);
        st.scan_us.push(us);
        out.push((a, s, (inst, other)));
    }
    st.elapsed = started.elapsed().as_secs_f64();
    st.cpu = cpu_s() - cpu0;
    st.lat_us.sort_unstable();
    st.scan_us.sort_unstable();
    (st, out)
}

/// Every machine's daily rescan, at most `at_once` at a time: renew the session with
/// `oldCookie` ([`renew`]), then the walk from its cache.
async fn rescan(machines: Vec<Machine>, at_once: usize) -> (ClientStats, Vec<Machine>) {
    let cpu0 = cpu_s();
    let started = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut tasks = Vec::new();
    for (mut a, s, cache) in machines {
        let slots = slots.clone();
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("slots");
            let t = Instant::now();
            renew(&mut a, GROUPS[s % GROUPS.len()]).await;
            let w = light_scan(&a, s as u8, Some(cache)).await;
            let us = t.elapsed().as_micros() as u64;
            a.cookie = Some(cookie_of(&w.5));
            (w, us, a, s)
        }));
    }
    gather(tasks, started, cpu0).await
}

/// Phase `full-burst`: `clients` new machines, machine i in state i % states, all started at
/// once, each registering and then scanning from an empty cache as its state's cold walk did
/// (`walks`: each state's steps and updates offered; see [`follow`]).
async fn full_burst(
    base: &str,
    clients: usize,
    walks: Arc<Vec<(Vec<Step>, usize)>>,
) -> ClientStats {
    let cpu0 = cpu_s();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let base = base.to_string();
        let walks = walks.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let s = i % walks.len();
            let mut a = agent::Agent::new(&base);
            a.handshake(Some(GROUPS[s % GROUPS.len()])).await;
            let (calls, lat, _) = follow(&a, &walks[s].0).await;
            (calls, walks[s].1, lat, t.elapsed().as_micros() as u64)
        }));
    }
    let mut st = ClientStats::default();
    for t in tasks {
        let (c, o, l, us) = t.await.expect("client task");
        st.calls += c;
        st.offered += o;
        st.lat_us.extend(l);
        st.scan_us.push(us);
    }
    st.elapsed = started.elapsed().as_secs_f64();
    st.cpu = cpu_s() - cpu0;
    st.lat_us.sort_unstable();
    st.scan_us.sort_unstable();
    st
}

/// `clients` machines new to this server with a cache (client i in state i % states, from
/// that state's cache: re-imaged or moved from another server, no session cookie to renew),
/// at most `at_once` scanning at a time; returns them for their daily rescans.
async fn warm(
    base: &str,
    clients: usize,
    caches: &Arc<Vec<(Vec<i32>, Vec<i32>)>>,
    at_once: usize,
) -> (ClientStats, Vec<Machine>) {
    let cpu0 = cpu_s();
    let started = Instant::now();
    let slots = Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let base = base.to_string();
        let caches = caches.clone();
        let slots = slots.clone();
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await.expect("slots");
            let t = Instant::now();
            let s = i % caches.len();
            let mut a = agent::Agent::new(&base);
            a.handshake(Some(GROUPS[s % GROUPS.len()])).await;
            let w = light_scan(&a, s as u8, Some(caches[s].clone())).await;
            let us = t.elapsed().as_micros() as u64;
            a.cookie = Some(cookie_of(&w.5));
            (w, us, a, s)
        }));
    }
    gather(tasks, started, cpu0).await
}

/// Server CPU per SyncUpdates call without HTTP or contention: one client handshakes over HTTP,
/// then walks `rounds` full scans calling `ClientService::handle` directly on this thread,
/// timing only `handle` with the thread's CPU clock. Returns (calls, µs per call).
async fn replay(svc: &ClientService, base: &str, rounds: usize) -> (usize, f64) {
    let mut a = agent::Agent::new(base);
    a.handshake(Some("Workstations")).await;
    let mut cpu = 0f64;
    let mut calls = 0usize;
    for _ in 0..rounds {
        let mut send = |body: String| {
            let t = thread_cpu_s();
            let r = svc.handle(&Request {
                endpoint: Endpoint::Client,
                soap_action: Some(wusp::action::SYNC_UPDATES),
                host: Some("bench"),
                tls: false,
                body: body.as_bytes(),
                peer: None,
            });
            cpu += thread_cpu_s() - t;
            calls += 1;
            std::future::ready((r.status, r.body))
        };
        walk(&a, &mut send, 0, None).await;
    }
    (calls, cpu * 1e6 / calls.max(1) as f64)
}

/// Confines this process (and the threads it starts after) to CPU `cpu`, with
/// WSUS_EDGE_BENCH_PIN=1: the server on CPU 0, the load generator on CPU 1, so the server's
/// capacity on one core of its own is measured rather than computed.
fn pin_to(cpu: usize) {
    if std::env::var("WSUS_EDGE_BENCH_PIN").is_ok_and(|v| v == "1") {
        // SAFETY: the set is a zeroed cpu_set_t we own; sched_setaffinity only reads it.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            let rc = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            assert_eq!(rc, 0, "sched_setaffinity");
        }
    }
}

/// CPU seconds of the calling thread.
fn thread_cpu_s() -> f64 {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes into the zeroed struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Serves `svc` the way `wsus-edge serve` does (the production router and HTTP loop, content
/// cache without upstream in `dir`), on a loopback port; returns its base URL.
async fn serve_production(
    svc: &Arc<ClientService>,
    store: &Store,
    dir: &std::path::Path,
) -> String {
    let content = ContentCache::open(
        &dir.join("content"),
        Arc::new(store.clone()),
        &UpstreamConfig::default(),
        None,
    )
    .await
    .expect("content cache");
    // The whole simulated fleet comes from 127.0.0.1: lift the per-address connection cap that
    // protects a real LAN (issue 15), or most of the 1,000 clients would be shed.
    let mut router = Router::new(content, 4 << 20).limits(wsus_edge::http::listen::Limits {
        max_connections: 1 << 16,
        max_per_address: 1 << 16,
        ..Default::default()
    });
    for (path, ep) in SoapEndpoint::all(svc) {
        router = router.soap(path, ep);
    }
    let listener = wsus_edge::http::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Kept alive for the process: the server runs until the bench exits.
    std::mem::forget(stop_tx);
    tokio::spawn(wsus_edge::http::serve(listener, Arc::new(router), stop_rx));
    format!("http://{addr}")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Child role: run the clients against `base`; print `PHASE name` as each phase ends, then
/// one RESULT line per phase.
fn client_main(base: String, clients: usize, states: usize, fleet: usize) {
    use std::io::Write;
    pin_to(1);
    let mark = |phase: &str| {
        println!("PHASE {phase}");
        let _ = std::io::stdout().flush();
    };
    let phases = runtime().block_on(run_clients(base, clients, states, fleet, &mark));
    for (tag, st) in phases {
        println!(
            "RESULT {tag} {} {} {} {} {} {} {} {} {}",
            st.calls,
            st.offered,
            st.elapsed,
            st.pct(0.5),
            st.pct(0.99),
            st.pct(1.0),
            st.cpu,
            pct_ms(&st.scan_us, 0.5),
            pct_ms(&st.scan_us, 0.99),
        );
    }
}

/// What a phase measured, as the report needs it (from the child's RESULT line or in-process).
#[derive(Debug, Default, Clone)]
struct PhaseReport {
    calls: usize,
    offered: usize,
    elapsed: f64,
    /// SyncUpdates p50, p99, max (ms).
    lat: [f64; 3],
    /// Load-generator CPU seconds.
    cpu: f64,
    /// Whole-scan p50, p99 (ms).
    scan: [f64; 2],
}

impl From<&ClientStats> for PhaseReport {
    fn from(st: &ClientStats) -> Self {
        PhaseReport {
            calls: st.calls,
            offered: st.offered,
            elapsed: st.elapsed,
            lat: [st.pct(0.5), st.pct(0.99), st.pct(1.0)],
            cpu: st.cpu,
            scan: [pct_ms(&st.scan_us, 0.5), pct_ms(&st.scan_us, 0.99)],
        }
    }
}

fn parse_result(out: &str, tag: &str) -> PhaseReport {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("RESULT {tag} ")))
        .expect("client RESULT line");
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(2)
        .map(|x| x.parse().expect("number"))
        .collect();
    PhaseReport {
        calls: f[0] as usize,
        offered: f[1] as usize,
        elapsed: f[2],
        lat: [f[3], f[4], f[5]],
        cpu: f[6],
        scan: [f[7], f[8]],
    }
}

fn report(label: &str, n: usize, st: &PhaseReport, inproc: bool, server_cpu: f64) {
    let el = st.elapsed;
    println!(
        "{label}: {n} full scans ({}): {:.1} full scans/s ({el:.2}s), {:.0} SyncUpdates/s, {:.1} calls/scan, {:.1} offered/scan",
        if inproc { "in-process" } else { "separate client process" },
        n as f64 / el,
        st.calls as f64 / el,
        st.calls as f64 / n as f64,
        st.offered as f64 / n as f64
    );
    let [p50, p99, max] = st.lat;
    println!(
        "  SyncUpdates latency p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms; whole scan (handshake + walk) p50 {:.1} ms, p99 {:.1} ms",
        st.scan[0], st.scan[1]
    );
    println!(
        "  CPU: server {:.2} ms per scan, {:.0} µs per SyncUpdates (handshakes included), load generator {:.2} ms per scan",
        server_cpu * 1e3 / n as f64,
        server_cpu * 1e6 / st.calls.max(1) as f64,
        st.cpu * 1e3 / n as f64,
    );
}

fn main() {
    let clients = env_usize("WSUS_EDGE_BENCH_CLIENTS", 1000);
    let states = env_usize("WSUS_EDGE_BENCH_STATES", 100).clamp(1, 250);
    let fleet = env_usize("WSUS_EDGE_BENCH_FLEET", 50);
    if let Ok(base) = std::env::var("WSUS_EDGE_BENCH_BASE") {
        return client_main(base, clients, states, fleet);
    }
    pin_to(0);
    let page_size = env_usize("WSUS_EDGE_BENCH_PAGE", wusp::PAGE_SIZE);
    let updates = env_usize("WSUS_EDGE_BENCH_UPDATES", 20_000);
    let inproc = std::env::var("WSUS_EDGE_BENCH_INPROC").is_ok_and(|v| v == "1");
    runtime().block_on(async move {
        // WSUS_EDGE_BENCH_STORE=dir keeps the seeded store there for the next run (seeding
        // 20,000 updates takes minutes).
        let tmp = tempfile::tempdir().unwrap();
        let kept = std::env::var("WSUS_EDGE_BENCH_STORE")
            .ok()
            .map(|d| std::path::PathBuf::from(format!("{d}-{updates}-field")));
        let path = kept.clone().unwrap_or_else(|| tmp.path().to_path_buf());
        let marker = path.join("seeded");
        let store = Store::open(&path).unwrap();
        let t = Instant::now();
        // The generated catalog plus the field shapes: a KB2267602-shaped bundle of bundles,
        // an unapproved prerequisite, drivers with hardware ids.
        let mut cat = Catalog::generate(updates, 42);
        cat.add_field_shapes();
        let cat = Arc::new(cat);
        if !marker.exists() {
            agent::seed(&store, &cat);
            if kept.is_some() {
                std::fs::write(&marker, b"1").unwrap();
            }
        }
        println!(
            "catalog: {} updates, {} revisions (nested bundles included), seeded in {:.1}s",
            cat.update_count(),
            cat.revision_count(),
            t.elapsed().as_secs_f64()
        );
        let svc = Arc::new(
            ClientService::new(
                store.clone(),
                CookieKey::random(),
                Options {
                    // One loopback address registers the whole fleet (see serve_production).
                    clients: wsus_edge::config::ClientsConfig {
                        registrations_per_minute: u32::MAX,
                        ..Default::default()
                    },
                    page_size,
                    ..Options::default()
                },
            )
            .unwrap(),
        );
        println!("SyncUpdates page size: {page_size}");
        let t = Instant::now();
        let idx = svc.index().unwrap();
        println!(
            "scan index: {} entries built in {:.2}s",
            idx.entries.len(),
            t.elapsed().as_secs_f64()
        );
        drop(idx);
        let base = serve_production(&svc, &store, tmp.path()).await;
        let (calls, us) = replay(&svc, &base, env_usize("WSUS_EDGE_BENCH_REPLAY", 2)).await;
        println!(
            "one thread, no HTTP: {us:.0} µs of server CPU per SyncUpdates call ({calls} calls, {} cold full scans)", env_usize("WSUS_EDGE_BENCH_REPLAY", 2)
        );
        let memo0 = svc.index().unwrap().memo_counts();
        let rss0 = rss_mib();
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut peak = 0f64;
                while !done.load(Ordering::Relaxed) {
                    peak = peak.max(rss_mib());
                    std::thread::sleep(Duration::from_millis(50));
                }
                peak
            })
        };
        // Server CPU per phase: sampled as each phase ends (the child says so on stdout).
        let cpu0 = cpu_s();
        let marks = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
        let phases: Vec<(String, PhaseReport)> = if inproc {
            let m = marks.clone();
            let mark = move |_: &str| m.lock().unwrap().push(cpu_s());
            run_clients(base.clone(), clients, states, fleet, &mark)
                .await
                .iter()
                .map(|(t, st)| (t.to_string(), PhaseReport::from(st)))
                .collect()
        } else {
            let exe = std::env::current_exe().unwrap();
            let mut child = std::process::Command::new(exe)
                .env("WSUS_EDGE_BENCH_BASE", &base)
                .env("WSUS_EDGE_BENCH_CLIENTS", clients.to_string())
                .env("WSUS_EDGE_BENCH_STATES", states.to_string())
                .env("WSUS_EDGE_BENCH_FLEET", fleet.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .unwrap();
            let m = marks.clone();
            let text = tokio::task::spawn_blocking(move || {
                use std::io::BufRead;
                let mut text = String::new();
                let out = child.stdout.take().expect("child stdout");
                for line in std::io::BufReader::new(out).lines() {
                    let line = line.expect("child output");
                    if line.starts_with("PHASE ") {
                        m.lock().unwrap().push(cpu_s());
                    }
                    text.push_str(&line);
                    text.push('\n');
                }
                assert!(child.wait().unwrap().success(), "client process failed");
                text
            })
            .await
            .unwrap();
            ["cold", "full-burst", "first-burst", "rescan-burst", "rescan-fleet"]
                .iter()
                .map(|t| (t.to_string(), parse_result(&text, t)))
                .collect()
        };
        done.store(true, Ordering::Relaxed);
        let rss_peak = sampler.join().unwrap().max(rss0);
        let marks = marks.lock().unwrap().clone();
        let mut prev = cpu0;
        for (k, (tag, st)) in phases.iter().enumerate() {
            let at = marks.get(k).copied().unwrap_or(prev);
            let (label, n) = match tag.as_str() {
                "cold" => (
                    format!("cold (empty cache, {states} distinct installed states, all at once)"),
                    states,
                ),
                "full-burst" => (
                    format!("full scan ({clients} new machines in {states} installed states, empty cache, all started at once)"),
                    clients,
                ),
                "first-burst" => (
                    format!("first scan with a cache ({clients} machines new to this server in {states} installed states, no cookie to renew, all started at once)"),
                    clients,
                ),
                "rescan-burst" => (
                    format!("daily rescan ({clients} machines renewing with oldCookie, all started at once)"),
                    clients,
                ),
                _ => (
                    format!("daily rescan, fleet ({clients} machines renewing with oldCookie, at most {fleet} scanning at a time)"),
                    clients,
                ),
            };
            report(&label, n, st, inproc, at - prev);
            prev = at;
        }
        let (h, m) = svc.index().unwrap().memo_counts();
        let (h, m) = (h - memo0.0, m - memo0.1);
        println!(
            "needed-set memo: {h} hits, {m} computed ({:.1}% hit rate over {} SyncUpdates calls)",
            100.0 * h as f64 / (h + m).max(1) as f64,
            h + m
        );
        println!(
            "server RSS: {rss0:.0} MiB before the scans, {rss_peak:.0} MiB peak, {:.0} MiB after",
            rss_mib()
        );
    });
}
