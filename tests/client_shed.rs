//! Issue 15, benchmark goal "scans keep ≥ 90 % of their speed while one address floods
//! events": before this, every `ReportEventBatch` body was read and parsed whatever its
//! sender had sent just before, so one address posting ~2 MB batches took most of the CPU.
//! Now each address has a byte budget for Reporting bodies (`[clients]
//! report_bytes_per_second`, `report_burst`), checked on the request head: through the real
//! server over loopback, a flooder from 127.0.0.2 over budget gets 503 with `Retry-After`
//! before it has sent its body, its events are not stored, a client from 127.0.0.1 is still
//! answered, a single batch under the burst passes, and the budget refills over time.

#[path = "support/wusp_agent.rs"]
mod agent;
#[path = "support/mod.rs"]
mod support;
#[path = "support/wire_events.rs"]
mod wire_events;

use std::net::SocketAddr;
use std::time::Duration;

use agent::Agent;
use support::{client_from, TestEdge};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wire_events::{numbered, numbered_update};
use wsus_edge::model::RevisionKey;
use wsus_edge::wire::{soap, wusp};

const FLOODER: [u8; 4] = [127, 0, 0, 2];
const OTHER: [u8; 4] = [127, 0, 0, 1];
/// RollupComputerStatus's SOAPAction (MS-WSUSSS WSDL).
const ROLLUP_COMPUTER_STATUS: &str =
    "http://www.microsoft.com/SoftwareDistribution/RollupComputerStatus";

/// A ReportEventBatch of events `ids` with 2,000 bytes of MiscData each.
fn batch(a: &Agent, ids: std::ops::Range<u32>) -> wusp::ReportEventBatch {
    let misc = "U=".to_string() + &"x".repeat(2000);
    wusp::ReportEventBatch {
        cookie: a.cookie.clone().unwrap(),
        client_time: time::OffsetDateTime::now_utc(),
        events: ids.map(|i| numbered(i, &misc)).collect(),
    }
}

/// Sends only the head of a Reporting POST declaring `len` body bytes from `from`, and reads
/// the answer (to the end: the server must close). Panics if nothing comes within 30 s: a
/// server that waits for the body never answers this.
async fn head_only(from: [u8; 4], to: SocketAddr, len: u64) -> (u16, Option<u64>, String) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((from, 0))).unwrap();
    let mut s = sock.connect(to).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {to}\r\nContent-Type: text/xml; charset=utf-8\r\n\
         SOAPAction: {}\r\nContent-Length: {len}\r\n\r\n",
        wusp::REPORTING_PATH,
        soap::soap_action_header(wusp::action::REPORT_EVENT_BATCH),
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .expect("no answer (and no close) before the body was sent")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let (status, retry_after) = support::status_and_retry_after(&text);
    (status, retry_after.and_then(|v| v.parse().ok()), text)
}

/// POSTs `body` to the Reporting endpoint of `e` with SOAPAction `action`.
async fn post_reporting(
    http: &reqwest::Client,
    e: &TestEdge,
    action: &str,
    body: String,
) -> reqwest::Result<reqwest::Response> {
    // The path and actions as the WSDL writes them, not the crate's constants the server
    // dispatches on.
    http.post(format!(
        "{}/ReportingWebService/ReportingWebService.asmx",
        e.url()
    ))
    .header("content-type", "text/xml; charset=utf-8")
    .header("soapaction", soap::soap_action_header(action))
    .body(body)
    .send()
    .await
}

fn shed_count() -> u64 {
    wsus_edge::metrics::render()
        .lines()
        .find_map(|l| {
            l.strip_prefix("wsus_edge_client_requests_shed_total{reason=\"report_bytes\"} ")
        })
        .and_then(|v| v.parse().ok())
        .expect("the shed counter is exported")
}

fn stored_updates(e: &TestEdge, a: &Agent) -> Vec<RevisionKey> {
    e.state
        .store
        .events(&a.client_id)
        .unwrap()
        .iter()
        .filter_map(|ev| ev.update)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_address_is_shed_before_its_body_is_read_and_others_are_still_answered() {
    const RATE: u64 = 1024;
    const BURST: u64 = 300 << 10;
    let e = TestEdge::start(None, |c| {
        c.clients.report_bytes_per_second = RATE;
        c.clients.report_burst = BURST;
    })
    .await;
    let mut flooder = Agent::with_client(&e.url(), client_from(FLOODER));
    flooder.handshake(None).await;
    let mut other = Agent::with_client(&e.url(), client_from(OTHER));
    other.handshake(None).await;
    let shed_before = shed_count();

    // A legitimate large batch under the burst passes and is stored whole.
    let first = batch(&flooder, 0..100);
    let first_len = soap::encode(&first).len() as u64;
    assert!(first_len < BURST && first_len > BURST / 2, "{first_len}");
    let r = flooder.call(wusp::REPORTING_PATH, &first).await.unwrap();
    assert!(r.result);
    assert_eq!(stored_updates(&e, &flooder).len(), 100);

    // Over budget: 503 with Retry-After on the head alone, the connection closed.
    let declared = 200_000u64;
    let (status, retry_after, text) = head_only(FLOODER, e.addr, declared).await;
    assert_eq!(status, 503, "{text}");
    let retry_after = retry_after.unwrap_or_else(|| panic!("no Retry-After in {text}"));
    // What is missing from the budget, at RATE bytes per second (with 30 s of slack for a slow
    // test machine refilling meanwhile).
    let missing_secs = (declared - (BURST - first_len)) / RATE;
    assert!(
        retry_after + 30 >= missing_secs && retry_after <= missing_secs + 1,
        "Retry-After {retry_after}, budget short by {missing_secs} s"
    );

    // The flood's further batches are refused (503, or the connection closed on the unsent
    // rest of the body) and none of their events is stored.
    let http = client_from(FLOODER);
    for round in 1..6u32 {
        let b = soap::encode(&batch(&flooder, round * 1000..round * 1000 + 100));
        let r = post_reporting(&http, &e, wusp::action::REPORT_EVENT_BATCH, b).await;
        if let Ok(r) = r {
            assert_eq!(r.status().as_u16(), 503);
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    // Another address is answered meanwhile, and its event stored.
    let r = other
        .call(wusp::REPORTING_PATH, &batch(&other, 0..1))
        .await
        .unwrap();
    assert!(r.result);
    assert_eq!(stored_updates(&e, &other), vec![numbered_update(0)]);

    // A downstream server's rollup from the same address is not charged to the clients'
    // budget (a full rollup is gigabytes): a RollupComputerStatus larger than what is left of
    // the address's whole burst is read and answered.
    let body = soap::encode(&wire_events::status_rollup(["pc-below".to_string()], 1200));
    assert!(body.len() as u64 > BURST / 2, "{}", body.len());
    let r = post_reporting(&http, &e, ROLLUP_COMPUTER_STATUS, body)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "a rollup call is answered");
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("<RollupComputerStatusResult>true<"));
    // ...and claiming a rollup SOAPAction does not smuggle events past it: the body's
    // operation must be the one its SOAPAction names.
    let b = soap::encode(&batch(&flooder, 9000..9100));
    let r = post_reporting(&http, &e, ROLLUP_COMPUTER_STATUS, b)
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        500,
        "a mismatched SOAPAction is a fault"
    );
    assert!(r.text().await.unwrap().contains("Fault"));

    let kept = stored_updates(&e, &flooder);
    assert_eq!(kept.len(), 100, "only the first batch is stored");
    assert!(kept
        .iter()
        .all(|u| (0..100).any(|i| numbered_update(i) == *u)));
    assert!(
        shed_count() > shed_before,
        "the refusals are counted in wsus_edge_client_requests_shed_total"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_refills_at_its_rate() {
    const RATE: u64 = 8 << 10;
    const BURST: u64 = 32 << 10;
    let e = TestEdge::start(None, |c| {
        c.clients.report_bytes_per_second = RATE;
        c.clients.report_burst = BURST;
    })
    .await;
    let mut a = Agent::with_client(&e.url(), client_from(FLOODER));
    a.handshake(None).await;
    let first = batch(&a, 0..10);
    let len = soap::encode(&first).len() as u64;
    assert!(len < BURST && 2 * len > BURST, "{len}");
    assert!(a.call(wusp::REPORTING_PATH, &first).await.unwrap().result);

    // A full burst does not fit now; it will once the bucket has refilled, at most
    // BURST / RATE seconds later.
    let (status, retry_after, text) = head_only(FLOODER, e.addr, BURST).await;
    assert_eq!(status, 503, "{text}");
    let wait = retry_after.unwrap_or_else(|| panic!("no Retry-After in {text}"));
    assert!((1..=BURST.div_ceil(RATE)).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(300)).await;
    let second = batch(&a, 10..20);
    assert!(a.call(wusp::REPORTING_PATH, &second).await.unwrap().result);
    assert_eq!(stored_updates(&e, &a).len(), 20);
}
