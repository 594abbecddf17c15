//! A downstream server's `RollupComputerStatus` against wsus-edge as its upstream, through the
//! real server over loopback. MS-WSUSSS §3.1.4.17 bounds a request by the number of computers
//! (`RollupComputerStatusMaxBatchSize`, from GetRollupConfiguration), not by their statuses,
//! and a full rollup sends every status of each computer. With Windows' 500 a request can be
//! hundreds of megabytes; wsus-edge announces 50 and reads such a request up to
//! `[rollup] max_request_body` (64 MiB), above the 4 MiB every other request gets, while at
//! most two bodies that large are read at once.

#[path = "support/mod.rs"]
mod support;
#[path = "support/wire_events.rs"]
mod wire_events;

use std::net::SocketAddr;
use std::time::Duration;

use support::TestEdge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wsus_edge::wire::soap;

/// The Reporting path and the SOAPActions as the WSDLs write them.
const REPORTING: &str = "/ReportingWebService/ReportingWebService.asmx";
const ROLLUP_COMPUTER_STATUS: &str =
    "http://www.microsoft.com/SoftwareDistribution/RollupComputerStatus";
const GET_ROLLUP_CONFIGURATION: &str =
    "http://www.microsoft.com/SoftwareDistribution/GetRollupConfiguration";
const REPORT_EVENT_BATCH: &str =
    "http://www.microsoft.com/SoftwareDistribution/Server/ReportingWebService/ReportEventBatch";

/// A RollupComputerStatus of `computers` computers with `statuses` statuses each.
fn rollup(computers: u128, statuses: u128) -> String {
    soap::encode(&wire_events::status_rollup(
        (0..computers).map(|c| format!("pc-{c}.branch.test")),
        statuses,
    ))
}

async fn post(e: &TestEdge, action: &str, body: String) -> (u16, String) {
    let r = support::client()
        .post(format!("{}{REPORTING}", e.url()))
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", format!("\"{action}\""))
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The head of a RollupComputerStatus POST declaring `len` body bytes (with `expect`, asking
/// for `100 Continue` before the body).
fn head(to: SocketAddr, len: u64, expect: bool) -> String {
    format!(
        "POST {REPORTING} HTTP/1.1\r\nHost: {to}\r\nContent-Type: text/xml; charset=utf-8\r\n\
         SOAPAction: \"{ROLLUP_COMPUTER_STATUS}\"\r\nContent-Length: {len}\r\n{}\r\n",
        if expect {
            "Expect: 100-continue\r\n"
        } else {
            ""
        }
    )
}

/// Opens a connection, sends the head of a RollupComputerStatus declaring `len` bytes and,
/// once the server says `100 Continue` (it does when it starts reading the body, after it has
/// taken a slot for it), the first KiB of the body; keeps the connection open.
async fn hold(to: SocketAddr, len: u64) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(to).await.unwrap();
    s.write_all(head(to, len, true).as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&got).contains("100 Continue\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("100 Continue")
            .unwrap();
        assert!(
            n > 0,
            "closed before 100 Continue: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    s.write_all(&[b' '; 1024]).await.unwrap();
    s
}

/// The status and `Retry-After` of a RollupComputerStatus head declaring `len` bytes, sent
/// without its body; the server must answer (and close) without waiting for it.
async fn head_only(to: SocketAddr, len: u64) -> (u16, Option<String>) {
    let mut s = tokio::net::TcpStream::connect(to).await.unwrap();
    s.write_all(head(to, len, false).as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .expect("answered before the body was sent")
        .unwrap();
    support::status_and_retry_after(&String::from_utf8_lossy(&buf))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_rollup_of_the_announced_batch_is_read_past_the_client_limit() {
    let e = TestEdge::start(None, |_| {}).await;
    let addr: SocketAddr = e.url().trim_start_matches("http://").parse().unwrap();

    // GetRollupConfiguration announces 50 computers per RollupComputerStatus.
    let config = String::from(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>\
         <GetRollupConfiguration xmlns=\"http://www.microsoft.com/SoftwareDistribution\">\
         <cookie><Expiration>2030-01-01T00:00:00Z</Expiration><EncryptedData>AAAA</EncryptedData></cookie>\
         </GetRollupConfiguration></soap:Body></soap:Envelope>"
    );
    let (status, text) = post(&e, GET_ROLLUP_CONFIGURATION, config).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("<RollupComputerStatusMaxBatchSize>50</RollupComputerStatusMaxBatchSize>"),
        "{text}"
    );

    // Two bodies over the 4 MiB client limit are being read: a third is told to come back
    // later before its body is read, and says when.
    let big = 8u64 << 20;
    let first = hold(addr, big).await;
    let second = hold(addr, big).await;
    let (status, retry) = head_only(addr, big).await;
    assert_eq!(status, 503);
    assert_eq!(retry.as_deref(), Some("30"));
    // Small requests are not held up by them.
    let (status, text) = post(&e, ROLLUP_COMPUTER_STATUS, rollup(1, 10)).await;
    assert_eq!(status, 200, "{text}");
    drop(first);
    drop(second);

    // 50 computers with 700 statuses each: about 6.5 MB, read and answered (once the server
    // has seen the two held connections close and given their slots back).
    let body = rollup(50, 700);
    assert!(body.len() > 6 << 20, "{}", body.len());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (status, text) = loop {
        let (status, text) = post(&e, ROLLUP_COMPUTER_STATUS, body.clone()).await;
        if status != 503 || std::time::Instant::now() > deadline {
            break (status, text);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, 200, "{}", &text[..text.len().min(500)]);
    assert!(text.contains("<RollupComputerStatusResult>true<"), "{text}");

    // Over the 16 MiB the general decoder reads, a request is read only as a stream; one that
    // cannot be (here cut short) is answered with a SOAP fault saying so, not a bare 400.
    let mut cut = rollup(50, 1800);
    assert!(cut.len() > 16 << 20, "{}", cut.len());
    cut.truncate(cut.len() - 100);
    let (status, text) = post(&e, ROLLUP_COMPUTER_STATUS, cut).await;
    assert_eq!(status, 500, "{}", &text[..text.len().min(300)]);
    assert!(
        text.contains("Fault") && text.contains("plain shape"),
        "{text}"
    );

    // One computer more than announced is refused with a fault.
    let (status, text) = post(&e, ROLLUP_COMPUTER_STATUS, rollup(51, 1)).await;
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("Fault"), "{text}");

    // Every other request keeps the client limit: a client's 6.5 MB batch is refused unread.
    let batch = format!(
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>\
         <ReportEventBatch xmlns=\"http://www.microsoft.com/SoftwareDistribution/Server/ReportingWebService\">{}\
         </ReportEventBatch></soap:Body></soap:Envelope>",
        " ".repeat(13 << 19)
    );
    let (status, _) = post(&e, REPORT_EVENT_BATCH, batch).await;
    assert_eq!(status, 413);
    // A rollup over `[rollup] max_request_body` is refused unread too.
    let (status, _) = head_only(addr, 65 << 20).await;
    assert_eq!(status, 413);
}
