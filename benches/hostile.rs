//! Issue 15's benchmark: what hostile LAN input costs the server, in one run.
//!
//! 1. **Adversarial SOAP bodies.** Each body is about 4 MiB, the client listener's body limit,
//!    and is posted as a `SyncUpdates` call. The same sizes are timed for a normal `SyncUpdates`
//!    whose `OtherCachedUpdateIDs` list fills the 4 MiB. Each adversarial shape aims at one
//!    place where an XML reader can go quadratic or blow up: attributes at the per-element
//!    limit, one element with 100,000 attributes, 63 namespace declarations per element,
//!    nesting at the depth limit, a million empty elements, entity and character references,
//!    comments and processing instructions, a DOCTYPE with internal entities, one huge element
//!    name, and unclosed tags. Each is timed in process, as `ClientService::handle`: reading,
//!    answering or faulting, with no HTTP. The reported number is the median of 5 runs. The
//!    goal is that the worst adversarial body costs at most 2x the normal one.
//! 2. **Scans under an event flood.** A real server (`Server::bind`, the production router and
//!    HTTP loop) runs with a simulated catalogue. Scanning agents on 127.0.0.1 do full scans
//!    for a fixed time, once alone and once while flooders on 127.0.0.2 send
//!    `ReportEventBatch` calls as fast as they are answered. Each flood call carries 1,000
//!    events with 2 KB of MiscData. The goal is at least 90 % of the unflooded scans/s.
//!
//! `cargo bench --bench hostile`. Environment: `WSUS_EDGE_BENCH_UPDATES` (catalogue size,
//! default 2,000), `WSUS_EDGE_BENCH_SECS` (seconds per flood phase, default 20),
//! `WSUS_EDGE_BENCH_SCANNERS` (concurrent scanning agents, default 8) and
//! `WSUS_EDGE_BENCH_FLOODERS` (concurrent flooding connections, default 4).

#[path = "../tests/support/wusp_agent.rs"]
mod agent;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::{seed, Agent};
use wsus_edge::app::Server;
use wsus_edge::client_service::{ClientService, CookieKey, Endpoint, Options, Request};
use wsus_edge::config::Config;
use wsus_edge::model::RevisionKey;
use wsus_edge::simulate::Catalog;
use wsus_edge::store::Store;
use wsus_edge::wire::soap;
use wsus_edge::wire::wusp;

const BODY: usize = 4 << 20;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The envelope around a `SyncUpdates` call whose `parameters` hold `inner`.
fn sync_envelope(cookie_xml: &str, inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope \
         xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>\
         <SyncUpdates xmlns=\"{}\">{cookie_xml}<parameters><ExpressQuery>false</ExpressQuery>\
         {inner}</parameters></SyncUpdates></soap:Body></soap:Envelope>",
        wusp::CLIENT_NS
    )
}

/// Repeats `unit` until `inner` is about `BODY` bytes.
fn fill(unit: &str) -> String {
    let n = BODY / unit.len().max(1);
    unit.repeat(n)
}

/// The adversarial bodies, each about 4 MiB: (name, body).
fn adversarial(cookie_xml: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let attrs = |n: usize| {
        let mut s = String::from("<j");
        for i in 0..n {
            let _ = write!(s, " a{i}=\"v\"");
        }
        s.push_str("/>");
        s
    };
    out.push((
        "127 attributes per element",
        sync_envelope(cookie_xml, &fill(&attrs(127))),
    ));
    out.push((
        "one element, 100k+ attributes",
        sync_envelope(cookie_xml, &attrs(BODY / 12)),
    ));
    let mut ns = String::from("<j");
    for i in 0..63 {
        let _ = write!(ns, " xmlns:p{i}=\"urn:x:{i}\"");
    }
    ns.push_str("><p62:k p0:a=\"1\"/></j>");
    out.push((
        "63 namespace declarations per element",
        sync_envelope(cookie_xml, &fill(&ns)),
    ));
    let deep = "<d>".repeat(120) + &"</d>".repeat(120);
    out.push((
        "nesting at the depth limit",
        sync_envelope(cookie_xml, &fill(&deep)),
    ));
    out.push((
        "a million empty elements",
        sync_envelope(cookie_xml, &fill("<a/>")),
    ));
    out.push((
        "entity and character references",
        sync_envelope(
            cookie_xml,
            &format!(
                "<OtherCachedUpdateIDs><int>{}</int></OtherCachedUpdateIDs>",
                fill("&amp;&#65;&#x42;&lt;")
            ),
        ),
    ));
    out.push((
        "comments and processing instructions",
        sync_envelope(cookie_xml, &fill("<!--c--><?p x?>")),
    ));
    let doctype = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE lol [<!ENTITY a \"{}\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]>{}",
        "a".repeat(1000),
        sync_envelope(cookie_xml, &fill("<j>&b;</j>"))
            .trim_start_matches("<?xml version=\"1.0\" encoding=\"utf-8\"?>")
    );
    out.push(("DOCTYPE with internal entities", doctype));
    let name = "n".repeat(BODY - 1024);
    out.push((
        "one 4 MiB element name",
        sync_envelope(cookie_xml, &format!("<{name}/>")),
    ));
    out.push(("unclosed tags", sync_envelope(cookie_xml, &fill("<u>"))));
    out
}

/// A normal `SyncUpdates` of about 4 MiB: a real cookie and a long cached-id list.
fn normal(cookie: &wusp::Cookie) -> String {
    // Ten-digit ids: the client service reads at most 200,000 elements per request, so a
    // 4 MiB list of short ids would be refused (400) rather than answered.
    let mut ids = Vec::new();
    let mut len = 0;
    let mut i = 1_000_000_000i32;
    while len < BODY - 2048 && ids.len() < 190_000 {
        len += format!("<int>{i}</int>").len();
        ids.push(i);
        i += 7;
    }
    soap::encode(&wusp::SyncUpdates {
        cookie: cookie.clone(),
        parameters: wusp::SyncUpdateParameters {
            installed_non_leaf: Some(Vec::new()),
            other_cached: Some(ids),
            ..Default::default()
        },
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time_handle(svc: &ClientService, body: &[u8]) -> (Duration, u16) {
    let mut times = Vec::new();
    let mut status = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let r = svc.handle(&Request {
            endpoint: Endpoint::Client,
            soap_action: Some(wusp::action::SYNC_UPDATES),
            host: Some("edge.test:8530"),
            tls: false,
            body,
            peer: None,
        });
        times.push(t.elapsed());
        status = r.status;
    }
    (median(times), status)
}

async fn part_bodies(updates: usize) -> (f64, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let cat = Catalog::generate(updates, 15);
    seed(&store, &cat);
    let svc =
        Arc::new(ClientService::new(store, CookieKey::random(), Options::default()).expect("svc"));
    let server = agent::start(svc.clone(), Arc::new(cat)).await;
    let mut a = Agent::new(&server.base);
    a.handshake(None).await;
    let cookie = a.cookie.clone().expect("cookie");
    let normal_body = normal(&cookie);
    // The cookie as the adversarial envelopes carry it: cut from the normal body.
    let start = normal_body.find("<cookie>").expect("cookie start");
    let end = normal_body.find("</cookie>").expect("cookie end") + "</cookie>".len();
    let cookie_xml = normal_body[start..end].to_string();

    let svc2 = svc.clone();
    let nb = normal_body.clone();
    let (normal_t, normal_status) =
        tokio::task::spawn_blocking(move || time_handle(&svc2, nb.as_bytes()))
            .await
            .expect("join");
    let mut report = String::new();
    let _ = writeln!(
        report,
        "normal SyncUpdates {:.1} MiB: {:.1} ms (HTTP {normal_status})",
        normal_body.len() as f64 / 1048576.0,
        normal_t.as_secs_f64() * 1e3
    );
    let mut worst = 0f64;
    for (name, body) in adversarial(&cookie_xml) {
        let svc2 = svc.clone();
        let len = body.len();
        let (t, status) = tokio::task::spawn_blocking(move || time_handle(&svc2, body.as_bytes()))
            .await
            .expect("join");
        let ratio = t.as_secs_f64() / normal_t.as_secs_f64();
        worst = worst.max(ratio);
        let _ = writeln!(
            report,
            "  {name:<40} {:.1} MiB: {:>8.1} ms (HTTP {status}) = {ratio:.2}x normal",
            len as f64 / 1048576.0,
            t.as_secs_f64() * 1e3
        );
    }
    (worst, report)
}

fn flood_event(i: u32, misc: &str) -> wusp::ReportingEvent {
    wusp::ReportingEvent {
        target_sid: String::new(),
        sequence_number: i as i32,
        time_at_target: time::OffsetDateTime::now_utc(),
        instance_id: uuid::Uuid::new_v4(),
        namespace_id: 1,
        event_id: 147,
        source_id: 101,
        update: RevisionKey::new(uuid::Uuid::from_u128(u128::from(i % 5000) + 1), 1),
        hresult: 0,
        replacement_strings: vec![],
        misc_data: vec![misc.to_string()],
        computer_brand: None,
        computer_model: None,
        os_locale_id: None,
    }
}

fn agent_from(base: &str, ip: [u8; 4]) -> Agent {
    let http = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(ip))
        .build()
        .expect("client");
    Agent::with_client(base, http)
}

/// Full scans per second for `secs`, with `flooders` flooding from 127.0.0.2 meanwhile.
async fn scans_per_s(base: &str, scanners: usize, flooders: usize, secs: u64) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let scans = Arc::new(AtomicU64::new(0));
    let flood_calls = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..flooders {
        let (base, stop, flood_calls) = (base.to_string(), stop.clone(), flood_calls.clone());
        tasks.push(tokio::spawn(async move {
            let mut f = agent_from(&base, [127, 0, 0, 2]);
            f.handshake(None).await;
            let misc = "U=".to_string() + &"x".repeat(2000);
            let Some(cookie) = f.cookie.clone() else {
                return;
            };
            // The flood's bodies are built once: on a real LAN the flooder is another machine,
            // so its own CPU must not be taken from the scanners here.
            let bodies: Vec<String> = (0..4u32)
                .map(|n| {
                    soap::encode(&wusp::ReportEventBatch {
                        cookie: cookie.clone(),
                        client_time: time::OffsetDateTime::now_utc(),
                        events: (0..1000)
                            .map(|i| flood_event(n * 1000 + i, &misc))
                            .collect(),
                    })
                })
                .collect();
            let http = reqwest::Client::builder()
                .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
                .build()
                .expect("client");
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let body = bodies[n % bodies.len()].clone();
                n += 1;
                // Errors (a shed connection, a 503) are part of the flood: keep sending.
                if let Ok(r) = http
                    .post(format!("{base}{}", wusp::REPORTING_PATH))
                    .header("content-type", "text/xml; charset=utf-8")
                    .header(
                        "soapaction",
                        soap::soap_action_header(wusp::action::REPORT_EVENT_BATCH),
                    )
                    .body(body)
                    .send()
                    .await
                {
                    let _ = r.bytes().await;
                }
                flood_calls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let t0 = Instant::now();
    for _ in 0..scanners {
        let (base, stop, scans) = (base.to_string(), stop.clone(), scans.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut a = agent_from(&base, [127, 0, 0, 1]);
                a.handshake(None).await;
                let _ = a.scan(None).await;
                if !stop.load(Ordering::Relaxed) {
                    scans.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    (
        scans.load(Ordering::Relaxed) as f64 / elapsed,
        flood_calls.load(Ordering::Relaxed),
    )
}

async fn part_flood(updates: usize, secs: u64, scanners: usize, flooders: usize) -> (f64, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().expect("addr");
    c.server.data_dir = dir.path().to_path_buf();
    // Every scanner is a new computer from 127.0.0.1 (a whole fleet behind one address here).
    c.clients.registrations_per_minute = u32::MAX;
    c.clients.max_computers = usize::MAX;
    let server = Server::bind(c).await.expect("bind");
    let base = format!("http://{}", server.local_addr());
    let state = server.state().clone();
    let cat = Catalog::generate(updates, 16);
    seed(&state.store, &cat);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stop_rx.await;
    }));
    // One warm-up scan, so neither phase pays for building the index.
    let mut w = Agent::new(&base);
    w.handshake(None).await;
    let _ = w.scan(None).await;

    let (calm, _) = scans_per_s(&base, scanners, 0, secs).await;
    let (flooded, flood_calls) = scans_per_s(&base, scanners, flooders, secs).await;
    let du = dir_size(dir.path());
    let _ = stop_tx.send(());
    let _ = running.await;
    let ratio = flooded / calm;
    let report = format!(
        "scans: {calm:.1} full scans/s alone, {flooded:.1}/s during the flood \
         ({flood_calls} ReportEventBatch calls of 1,000 events from {flooders} flooding connections) \
         = {:.0}% of unflooded; data dir {:.1} MiB after\n",
        ratio * 100.0,
        du as f64 / 1048576.0
    );
    (ratio, report)
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn main() {
    let updates = env_usize("WSUS_EDGE_BENCH_UPDATES", 2000);
    let secs = env_usize("WSUS_EDGE_BENCH_SECS", 20) as u64;
    let scanners = env_usize("WSUS_EDGE_BENCH_SCANNERS", 8);
    let flooders = env_usize("WSUS_EDGE_BENCH_FLOODERS", 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (worst, bodies) = part_bodies(updates).await;
        let (ratio, flood) = part_flood(updates, secs, scanners, flooders).await;
        println!("==== summary ====");
        println!(
            "wsus-edge hostile-input bench: catalogue {updates} updates, cpus={}",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        print!("{bodies}");
        println!("  worst adversarial / normal = {worst:.2}x (goal <= 2x)");
        print!("{flood}");
        println!(
            "  flooded / unflooded scan throughput = {:.0}% (goal >= 90%)",
            ratio * 100.0
        );
    });
}
