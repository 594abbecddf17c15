//! The zero-copy (sendfile) path and the hyper path answer a payload request with the same
//! head and body: same status, same headers (apart from `date`), same bytes. Each request is
//! sent twice over raw TCP to a real server: as is (the fast path takes plain GET/HEAD of
//! `/Content/...`) and with a query string (which the fast path leaves to hyper; routing ignores
//! the query). The expected header set is not computed here: both must simply agree, and the
//! statuses are the ones RFC 9110 prescribes for each case.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{bytes_of, Behaviour, TestEdge, TestUpstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `method path` with `extra` header lines and `Connection: close`; returns the status
/// line, the header lines without `date` (sorted) and the body.
async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra: &str,
) -> (String, Vec<String>, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: edge\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("the server closes after the answer")
        .unwrap();
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head")
        + 4;
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let status = lines.next().unwrap().to_string();
    let mut headers: Vec<String> = lines
        .map(|l| l.to_ascii_lowercase())
        .filter(|l| !l.starts_with("date:"))
        .collect();
    headers.sort();
    (status, headers, buf[end..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_copy_and_hyper_heads_agree() {
    let up = TestUpstream::start().await;
    let data = bytes_of(100_000, 7);
    let path = up.put(&data, "cab", Behaviour::Normal);
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;

    // Publish the object first (a miss), so the cases below are hits.
    let (status, _, body) = exchange(edge.addr, "GET", &path, "").await;
    assert_eq!(
        (status.as_str(), body.len()),
        ("HTTP/1.1 200 OK", data.len())
    );
    let stored = edge
        .content_dir()
        .join(path.trim_start_matches("/Content/"));
    for _ in 0..250 {
        if stored.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stored.exists(), "published");
    let etag = format!("\"{}\"", path[12..52].to_ascii_lowercase());
    let missing = support::content_path(b"not upstream", "cab");

    let cases: Vec<(&str, &str, String, u16)> = vec![
        ("GET", path.as_str(), String::new(), 200),
        ("HEAD", path.as_str(), String::new(), 200),
        ("GET", path.as_str(), "Range: bytes=10-19\r\n".into(), 206),
        ("HEAD", path.as_str(), "Range: bytes=-5\r\n".into(), 206),
        (
            "GET",
            path.as_str(),
            format!("If-None-Match: {etag}\r\n"),
            304,
        ),
        ("GET", path.as_str(), "Range: bytes=999999-\r\n".into(), 416),
        ("GET", path.as_str(), "If-Match: \"other\"\r\n".into(), 412),
        (
            "GET",
            path.as_str(),
            format!("Range: bytes=0-0\r\nIf-Range: {etag}\r\n"),
            206,
        ),
        ("GET", missing.as_str(), String::new(), 404),
        ("HEAD", missing.as_str(), String::new(), 404),
    ];
    for (method, p, extra, want) in &cases {
        let fast = exchange(edge.addr, method, p, extra).await;
        let hyper = exchange(edge.addr, method, &format!("{p}?via=hyper"), extra).await;
        let code: u16 = fast.0[9..12].parse().unwrap();
        assert_eq!(code, *want, "{method} {p} {extra:?}: {fast:?}");
        assert_eq!(fast.0, hyper.0, "status of {method} {p} {extra:?}");
        assert_eq!(fast.1, hyper.1, "headers of {method} {p} {extra:?}");
        assert_eq!(fast.2, hyper.2, "body of {method} {p} {extra:?}");
    }
    edge.shutdown().await;
}
