//! Issue 3, points 1–9: the streaming content cache over real HTTP on loopback, against a
//! scriptable upstream (tests/support). One test (or a few) per point, named after it.

mod support;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use support::{bytes_of, client, raw, serve_child, Behaviour, TestEdge, TestUpstream};
use wsus_edge::metrics;

const MIB: usize = 1 << 20;

fn assert_not_chunked(r: &reqwest::Response) {
    assert!(
        r.headers().get("transfer-encoding").is_none(),
        "chunked response: {:?}",
        r.headers()
    );
}

fn final_file(edge: &TestEdge, path: &str) -> std::path::PathBuf {
    // path = /Content/XX/NAME.ext → content/XX/NAME.ext
    let rel = path.trim_start_matches("/Content/");
    edge.content_dir().join(rel)
}

/// The stored file of `path`, once published: the last byte goes out on verification, and
/// publishing (fsync, rename) follows. Waits up to 2 s.
async fn published(edge: &TestEdge, path: &str) -> std::path::PathBuf {
    let f = final_file(edge, path);
    for _ in 0..100 {
        if f.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f
}

/// Reads at least `n` bytes of a body; each chunk must come within 10 s (bytes flow while
/// upstream still holds back the rest).
async fn first_bytes(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    n: usize,
) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("bytes must flow before the upstream finishes")
            .expect("body ended early")
            .expect("body failed");
        got.extend_from_slice(&chunk);
    }
    got
}

fn partial_files(edge: &TestEdge) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(edge.content_dir().join(".partial"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p1_miss_streams_through_while_upstream_is_still_sending_then_hits() {
    let up = TestUpstream::start().await;
    let data = bytes_of(2 * MIB + 17, 1);
    let path = up.put(&data, "cab", Behaviour::GatedAfter(MIB));
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    let (miss0, hit0) = (
        metrics::content_requests("miss"),
        metrics::content_requests("hit"),
    );

    let resp = client()
        .get(format!("{}{}", edge.url(), path))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_not_chunked(&resp);
    assert_eq!(
        resp.headers()["content-length"],
        data.len().to_string().as_str()
    );
    let mut stream = resp.bytes_stream();
    // The first MiB arrives while upstream is still holding back the rest: stream-through.
    let mut got = first_bytes(&mut stream, MIB).await;
    assert!(
        !final_file(&edge, &path).exists(),
        "published before verification"
    );
    up.release();
    while let Some(c) = stream.next().await {
        got.extend_from_slice(&c.unwrap());
    }
    assert_eq!(got, data);
    // Kept after verification; the second request is a hit (no new upstream GET).
    assert_eq!(std::fs::read(published(&edge, &path).await).unwrap(), data);
    let again = client()
        .get(format!("{}{}", edge.url(), path))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert!(again.headers().contains_key("last-modified"));
    assert_eq!(again.bytes().await.unwrap(), data);
    assert_eq!(up.gets(&path), 1);
    assert!(partial_files(&edge).is_empty());
    assert!(metrics::content_requests("miss") > miss0);
    assert!(metrics::content_requests("hit") > hit0);
    assert!(metrics::render().contains("wsus_edge_content_bytes_total{source=\"upstream\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_corrupt_upstream_aborts_connection_keeps_nothing_and_refetches() {
    // Plain requests take the sendfile path; one with a query string goes through hyper.
    corrupt_upstream_aborts_and_refetches("").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_corrupt_upstream_aborts_the_hyper_path_too() {
    corrupt_upstream_aborts_and_refetches("?via=hyper").await;
}

async fn corrupt_upstream_aborts_and_refetches(query: &str) {
    let up = TestUpstream::start().await;
    let data = bytes_of(300_000, 2);
    let path = up.put(&data, "exe", Behaviour::Corrupt);
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    let before = wsus_edge::metrics::hash_mismatches();

    let resp = client()
        .get(format!("{}{}{query}", edge.url(), path))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut n = 0;
    let mut failed = false;
    while let Some(c) = stream.next().await {
        match c {
            Ok(b) => n += b.len(),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "a bad object must abort the connection");
    assert!(
        n < data.len(),
        "the client must never get a complete bad body ({n} bytes)"
    );
    assert!(wsus_edge::metrics::hash_mismatches() > before);
    assert!(!final_file(&edge, &path).exists());
    assert!(partial_files(&edge).is_empty());

    // Upstream repaired: the next request goes upstream again and succeeds.
    up.put(&data, "exe", Behaviour::Normal);
    let ok = client()
        .get(format!("{}{}{query}", edge.url(), path))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_not_chunked(&ok);
    assert_eq!(ok.bytes().await.unwrap(), data);
    assert_eq!(up.gets(&path), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_of_a_failed_miss_has_no_body_and_the_connection_stays_in_step() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = TestUpstream::start().await;
    let data = bytes_of(70_000, 43);
    let good = up.put(&data, "cab", Behaviour::Normal);
    // A well-formed name upstream does not have: a 404 from the cache, with a text body.
    let missing = format!("/Content/00/{}00.cab", "AB".repeat(19));
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    let mut s = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    async fn read_head(s: &mut tokio::net::TcpStream) -> String {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 1, "connection closed after {head:?}");
            head.push(b[0]);
        }
        String::from_utf8_lossy(&head).to_ascii_lowercase()
    }
    for method in ["HEAD", "GET"] {
        s.write_all(format!("{method} {missing} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("http/1.1 404"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .expect("content-length");
        assert!(len > 0);
        if method == "GET" {
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).await.unwrap();
        }
    }
    // The next answer on the same connection starts where it should.
    s.write_all(format!("HEAD {good} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}", data.len())),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_response_in_progress() {
    let up = TestUpstream::start().await;
    let data = bytes_of(2 * MIB + 5, 41);
    let path = up.put(&data, "cab", Behaviour::GatedAfter(MIB));
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    let resp = client()
        .get(format!("{}{}", edge.url(), path))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let mut got = first_bytes(&mut stream, MIB).await;
    // Shutdown starts while the miss is half sent: the server waits for it.
    let stopping = tokio::spawn(edge.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown must wait for the response"
    );
    up.release();
    while let Some(c) = stream.next().await {
        got.extend_from_slice(&c.expect("the response is finished, not cut"));
    }
    assert_eq!(got, data);
    stopping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_over_https_trusts_the_ca_file_and_nothing_else() {
    let up = TestUpstream::start().await;
    let data = bytes_of(3 * MIB + 17, 31);
    let path = up.put(&data, "esd", Behaviour::Normal);
    // Site A serves HTTPS with a self-signed certificate; site B is its downstream.
    let certs = tempfile::tempdir().unwrap();
    let (a, a_https, cert) = TestEdge::start_self_signed(up.url(), certs.path()).await;

    // Without the CA file, B refuses A's certificate: a clear 502, nothing fetched, and no
    // retry (a certificate does not fix itself).
    let untrusting = TestEdge::start(Some(a_https.clone()), |_| {}).await;
    let r = client()
        .get(format!("{}{}", untrusting.url(), path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let why = r.text().await.unwrap();
    assert!(why.contains("TLS certificate refused"), "{why}");
    assert_eq!(up.gets(&path), 0);

    // With `upstream.ca_file` naming A's certificate, the payload flows up the chain once
    // (A streams its in-flight bytes over TLS, through hyper) and is verified at both sites.
    let b = TestEdge::start(Some(a_https), |c| c.upstream.ca_file = Some(cert.clone())).await;
    let r = client()
        .get(format!("{}{}", b.url(), path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_not_chunked(&r);
    assert_eq!(r.bytes().await.unwrap(), data);
    assert_eq!(up.gets(&path), 1);
    for site in [&a, &b] {
        assert_eq!(std::fs::read(published(site, &path).await).unwrap(), data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p2_declared_sha256_is_enforced_and_wrong_folder_is_404_without_upstream() {
    let up = TestUpstream::start().await;
    let data = bytes_of(100_000, 3);
    let path = up.put(&data, "cab", Behaviour::Normal);
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    let sha1: [u8; 20] = sha1::Sha1::digest(&data).into();
    let rec = |sha256: [u8; 32]| wsus_edge::model::FileRecord {
        name: "x.cab".into(),
        size: data.len() as u64,
        sha1,
        sha256: Some(sha256),
        upstream_url: None,
        patching_type: None,
    };
    edge.state
        .store
        .put_expected_files(&[rec([0u8; 32])])
        .unwrap();
    let r = client()
        .get(format!("{}{}", edge.url(), path))
        .send()
        .await
        .unwrap();
    assert!(
        r.bytes().await.is_err(),
        "SHA-1 matches but the declared SHA-256 does not"
    );
    assert!(!final_file(&edge, &path).exists());
    edge.state
        .store
        .put_expected_files(&[rec(Sha256::digest(&data).into())])
        .unwrap();
    let r = client()
        .get(format!("{}{}", edge.url(), path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), data);
    assert_eq!(up.gets(&path), 2);

    let mut segs: Vec<&str> = path.split('/').collect();
    segs[2] = if segs[2] == "00" { "01" } else { "00" };
    let wrong = segs.join("/");
    let before = up.total_gets();
    let r = client()
        .get(format!("{}{}", edge.url(), wrong))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(up.total_gets(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p3_fifty_concurrent_clients_share_one_upstream_get() {
    let up = TestUpstream::start().await;
    let data = bytes_of(2 * MIB, 4);
    let path = up.put(
        &data,
        "psf",
        Behaviour::Slow {
            chunk: 64 * 1024,
            delay_ms: 10,
        },
    );
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    let url = format!("{}{}", edge.url(), path);
    let coalesced0 = metrics::content_requests("coalesced");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let r = client().get(url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                assert_not_chunked(&r);
                r.bytes().await.unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), data);
    }
    assert_eq!(up.gets(&path), 1, "exactly one upstream GET for 50 clients");
    assert!(metrics::content_requests("coalesced") > coalesced0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p4_shuffled_1mib_ranges_on_a_miss_over_keepalive_connections() {
    let up = TestUpstream::start().await;
    let size = 6 * MIB + 12_345;
    let data = bytes_of(size, 5);
    let path = up.put(&data, "esd", Behaviour::GatedAfter(2 * MIB));
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    let url = format!("{}{}", edge.url(), path);

    let check = |r: &reqwest::Response, a: usize, b: usize| {
        assert_eq!(r.status(), 206, "range {a}-{b}");
        assert_not_chunked(r);
        let h = r.headers();
        assert_eq!(h["content-range"], format!("bytes {a}-{b}/{size}").as_str());
        assert_eq!(h["content-length"], (b - a + 1).to_string().as_str());
        assert_eq!(h["accept-ranges"], "bytes");
        assert_eq!(h["content-type"], "application/vnd.ms-cab-compressed");
        h["etag"].to_str().unwrap().to_string()
    };
    // A range whose bytes have arrived is answered while upstream is still paused.
    let first = client();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        first
            .get(&url)
            .header("range", "bytes=1048576-2097151")
            .send(),
    )
    .await
    .expect("answered before the whole file arrived")
    .unwrap();
    let etag = check(&r, MIB, 2 * MIB - 1);
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong etag {etag}"
    );
    let body = tokio::time::timeout(Duration::from_secs(10), r.bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&body[..], &data[MIB..2 * MIB]);

    // The rest, shuffled, over 4 keep-alive connections; then let upstream continue.
    let mut ranges: Vec<(usize, usize)> = (0..size)
        .step_by(MIB)
        .map(|a| (a, (a + MIB - 1).min(size - 1)))
        .collect();
    ranges.retain(|r| r.0 != MIB);
    let n = ranges.len();
    for i in 0..n {
        ranges.swap(i, (i * 7 + 3) % n);
    }
    let mut tasks = Vec::new();
    for conn in 0..4 {
        let mine: Vec<_> = ranges.iter().copied().skip(conn).step_by(4).collect();
        let (url, data, etag) = (url.clone(), data.clone(), etag.clone());
        tasks.push(tokio::spawn(async move {
            let c = client();
            for (a, b) in mine {
                let r = c
                    .get(&url)
                    .header("range", format!("bytes={a}-{b}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 206);
                assert!(r.headers().get("transfer-encoding").is_none());
                assert_eq!(
                    r.headers()["content-range"],
                    format!("bytes {a}-{b}/{}", data.len()).as_str()
                );
                assert_eq!(
                    r.headers()["content-length"],
                    (b - a + 1).to_string().as_str()
                );
                assert_eq!(r.headers()["accept-ranges"], "bytes");
                assert_eq!(r.headers()["etag"], etag.as_str());
                assert_eq!(&r.bytes().await.unwrap()[..], &data[a..=b]);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    up.release();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(up.gets(&path), 1, "one upstream fetch for all ranges");

    // Hits (once published): same ETag, HEAD, conditionals, 416.
    published(&edge, &path).await;
    let c = client();
    let r = c.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], size.to_string().as_str());
    assert_eq!(r.headers()["etag"], etag.as_str());
    let lm = r.headers()["last-modified"].to_str().unwrap().to_string();
    let r = c
        .get(&url)
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    check(&r, 0, 99);
    assert_eq!(&r.bytes().await.unwrap()[..], &data[..100]);
    let r = c
        .get(&url)
        .header("if-none-match", etag.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = c
        .get(&url)
        .header("range", "bytes=10-19")
        .header("if-range", etag.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let r = c
        .get(&url)
        .header("range", "bytes=10-19")
        .header("if-range", lm.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    let r = c
        .get(&url)
        .header("range", "bytes=10-19")
        .header("if-range", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), size);
    let r = c
        .get(&url)
        .header("range", format!("bytes={size}-"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{size}").as_str()
    );
    let r = c
        .get(&url)
        .header("if-match", "\"other\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(up.gets(&path), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p5_mime_table_and_unknown_extension() {
    let up = TestUpstream::start().await;
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    let table = [
        ("wim", "application/x-ms-wim"),
        ("msu", "application/octet-stream"),
        ("cab", "application/vnd.ms-cab-compressed"),
        ("esd", "application/vnd.ms-cab-compressed"),
        ("exe", "application/octet-stream"),
        ("msi", "application/octet-stream"),
        ("msp", "application/octet-stream"),
        ("psf", "application/octet-stream"),
        ("dat", "application/octet-stream"),
        ("appx", "application/appx"),
        ("appxbundle", "application/appxbundle"),
        ("msix", "application/msix"),
        ("msixbundle", "application/msixbundle"),
        ("json", "application/json"),
        ("xml", "text/xml"),
        ("txt", "text/plain"),
        ("zzz", "application/octet-stream"),
    ];
    let c = client();
    for (i, (ext, ty)) in table.iter().enumerate() {
        let data = bytes_of(1000 + i, 100 + i as u64);
        let path = up.put(&data, ext, Behaviour::Normal);
        for round in ["miss", "hit"] {
            let r = c
                .get(format!("{}{}", edge.url(), path))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{ext} {round}");
            assert_eq!(r.headers()["content-type"], *ty, "{ext} {round}");
            assert_eq!(r.bytes().await.unwrap(), data);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p6_dropped_upstream_is_resumed_with_range() {
    let up = TestUpstream::start().await;
    let data = bytes_of(800_000, 6);
    let path = up.put(&data, "cab", Behaviour::DropOnceAfter(300_000));
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    let r = client()
        .get(format!("{}{}", edge.url(), path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), data);
    assert_eq!(up.gets(&path), 2);
    let ranges = up.ranges(&path);
    assert_eq!(ranges[0], None);
    let resume = ranges[1]
        .clone()
        .expect("second GET must be a Range request");
    let from: u64 = resume
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(from > 0 && from <= 300_000, "resumed from {from}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p6_upstream_down_hits_still_served_misses_get_502() {
    let up = TestUpstream::start().await;
    let data = bytes_of(50_000, 7);
    let path = up.put(&data, "cab", Behaviour::Normal);
    let missing = support::content_path(&bytes_of(10, 8), "cab");
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    let c = client();
    assert_eq!(
        c.get(format!("{}{}", edge.url(), path))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
        data
    );
    up.stop();
    let r = client()
        .get(format!("{}{}", edge.url(), path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), data);
    let r = client()
        .get(format!("{}{}", edge.url(), missing))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p6_upstream_that_keeps_dropping_gives_up_and_aborts() {
    let up = TestUpstream::start().await;
    let data = bytes_of(200_000, 9);
    let path = up.put(&data, "cab", Behaviour::AlwaysDropAfter(50_000));
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    let r = client()
        .get(format!("{}{}", edge.url(), path))
        .send()
        .await
        .unwrap();
    assert!(r.bytes().await.is_err());
    assert!(!final_file(&edge, &path).exists());
    // The first GET, then MAX_RETRIES resumes that make no progress.
    assert_eq!(
        up.gets(&path),
        1 + wsus_edge::content::fetch::MAX_RETRIES as usize
    );
    assert!(up.ranges(&path)[1..]
        .iter()
        .all(|r| r.as_deref() == Some("bytes=50000-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p6_kill_9_mid_download_then_restart_serves_nothing_half_written() {
    let up = TestUpstream::start().await;
    let data = bytes_of(3 * MIB, 10);
    let path = up.put(&data, "wim", Behaviour::GatedAfter(MIB));
    let dir = tempfile::tempdir().unwrap();
    let spawn = || serve_child(&up.url(), dir.path());
    let (mut child, addr) = spawn();
    let url = format!("http://{addr}{path}");
    let r = client().get(&url).send().await.unwrap();
    let mut stream = r.bytes_stream();
    let mut got = 0;
    while got < MIB / 2 {
        got += stream.next().await.unwrap().unwrap().len();
    }
    let partial = dir.path().join("content/.partial");
    assert_eq!(
        std::fs::read_dir(&partial).unwrap().count(),
        1,
        "download in progress"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let final_path = dir
        .path()
        .join("content")
        .join(path.trim_start_matches("/Content/"));
    assert!(
        !final_path.exists(),
        "nothing half-written under its final name"
    );

    up.put(&data, "wim", Behaviour::Normal);
    let (mut child, addr) = spawn();
    assert_eq!(
        std::fs::read_dir(&partial).unwrap().count(),
        0,
        "leftover temp removed at start-up"
    );
    let r = client()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), data);
    assert_eq!(up.gets(&path), 2);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p7_bandwidth_cap_holds_within_10_percent_across_fetches() {
    let up = TestUpstream::start().await;
    let a = bytes_of(3_000_000, 11);
    let b = bytes_of(3_000_000, 12);
    let pa = up.put(&a, "cab", Behaviour::Normal);
    let pb = up.put(&b, "cab", Behaviour::Normal);
    // 16 Mbit/s = 2,000,000 bytes/s shared: 6,000,000 bytes take 3 s.
    let edge = TestEdge::start(Some(up.url()), |c| {
        c.upstream.max_bandwidth = Some(2_000_000)
    })
    .await;
    let t0 = Instant::now();
    let (ra, rb) = tokio::join!(
        async {
            client()
                .get(format!("{}{}", edge.url(), pa))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        },
        async {
            client()
                .get(format!("{}{}", edge.url(), pb))
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        },
    );
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(ra, a);
    assert_eq!(rb, b);
    let rate = 6_000_000.0 / secs;
    assert!(
        (1_800_000.0..=2_200_000.0).contains(&rate),
        "rate {rate:.0} B/s over {secs:.2}s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p8_lru_eviction_skips_recent_and_survives_restart() {
    let up = TestUpstream::start().await;
    let objs: Vec<Vec<u8>> = (0..4).map(|i| bytes_of(100_000, 20 + i)).collect();
    let paths: Vec<String> = objs
        .iter()
        .map(|d| up.put(d, "cab", Behaviour::Normal))
        .collect();
    let edge = TestEdge::start(Some(up.url()), |c| c.content.max_size = Some(250_000)).await;
    let c = client();
    let get = |p: &str| c.get(format!("{}{}", edge.url(), p)).send();
    get(&paths[0]).await.unwrap().bytes().await.unwrap();
    get(&paths[1]).await.unwrap().bytes().await.unwrap();
    get(&paths[0]).await.unwrap().bytes().await.unwrap(); // 0 is now more recent than 1
    get(&paths[2]).await.unwrap().bytes().await.unwrap(); // 300 000 > 250 000: evict 1
                                                          // Publishing (fsync, rename) and eviction finish shortly after the last byte is served.
    let settled = || {
        final_file(&edge, &paths[0]).exists()
            && final_file(&edge, &paths[2]).exists()
            && !final_file(&edge, &paths[1]).exists()
            && edge.state.content.total_size() == 200_000
    };
    for _ in 0..250 {
        if settled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !final_file(&edge, &paths[1]).exists(),
        "least recently used evicted"
    );
    assert!(final_file(&edge, &paths[0]).exists());
    assert!(final_file(&edge, &paths[2]).exists());
    assert_eq!(edge.state.content.total_size(), 200_000);
    let indexed: Vec<[u8; 20]> = edge
        .state
        .store
        .objects()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(indexed.len(), 2);

    // The index survives a restart and keeps bounding the store.
    let dir = edge.shutdown().await;
    let edge =
        TestEdge::start_in(dir, Some(up.url()), |c| c.content.max_size = Some(250_000)).await;
    assert_eq!(edge.state.content.total_size(), 200_000);
    assert_eq!(edge.state.store.objects().unwrap().len(), 2);
    let r = client()
        .get(format!("{}{}", edge.url(), paths[1]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap(), objs[1]);
    assert_eq!(up.gets(&paths[1]), 2, "evicted object fetched again");
    assert_eq!(up.gets(&paths[0]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p9_hostile_paths_methods_and_long_urls_get_4xx_without_touching_anything() {
    let up = TestUpstream::start().await;
    let data = bytes_of(1000, 30);
    let path = up.put(&data, "cab", Behaviour::Normal);
    up.put_at("/etc/passwd", b"secret");
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    // A file outside the store that traversal would reach.
    std::fs::write(edge.dir.path().join("secret.txt"), b"secret").unwrap();
    let hex = path.rsplit('/').next().unwrap().to_string();
    let long = "A".repeat(2000);
    let targets = [
        "/Content/../secret.txt".to_string(),
        "/Content/%2e%2e/secret.txt".to_string(),
        "/Content/%2E%2E/%2E%2E/etc/passwd".to_string(),
        "/Content/..%2fsecret.txt".to_string(),
        "/Content\\..\\secret.txt".to_string(),
        "/Content/..%5csecret.txt".to_string(),
        "/Content/%5c..%5csecret.txt".to_string(),
        "//etc/passwd".to_string(),
        "/Content//etc/passwd".to_string(),
        "/Content/AB/not-hex.cab".to_string(),
        format!("/Content/ZZ/{hex}"),
        format!("/Content/{long}"),
        "/etc/passwd".to_string(),
        "http://evil.example/../../etc/passwd".to_string(),
    ];
    for t in &targets {
        let (status, head) = raw(
            edge.addr,
            &format!("GET {t} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!((400..500).contains(&status), "{t}: {head}");
        assert!(!head.contains("secret"), "{t}");
    }
    for m in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let (status, head) = raw(
            edge.addr,
            &format!(
                "{m} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(status, 405, "{m}: {head}");
        assert!(
            head.to_ascii_lowercase().contains("allow: get, head"),
            "{head}"
        );
    }
    let (status, _) = raw(
        edge.addr,
        &format!("GET /Content/{long} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 414);
    assert_eq!(up.total_gets(), 0, "no hostile request reached upstream");
    // A valid request in any letter case still works.
    let lower = path.to_ascii_lowercase();
    let (status, _) = raw(
        edge.addr,
        &format!("GET {lower} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200);
}

#[test]
fn deploy_sample_config_documents_every_key_and_parses() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/wsus-edge.toml"
    ))
    .unwrap();
    let path = std::path::Path::new("deploy/wsus-edge.toml");
    wsus_edge::config::Config::from_toml(&text, path, |_| None).unwrap();
    // Uncommenting every example must still parse: each documented key is a real key. A key
    // the file sets (e.g. `listen = "0.0.0.0:8530"`) keeps its value; its commented
    // alternatives stay comments.
    let is_key = |k: &str| k.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    let mut set: std::collections::HashSet<(String, String)> = Default::default();
    let mut table = String::new();
    for l in text.lines() {
        if l.starts_with('[') {
            table = l.to_string();
        } else if let Some((k, _)) = l.split_once(" = ").filter(|(k, _)| is_key(k)) {
            set.insert((table.clone(), k.to_string()));
        }
    }
    let mut table = String::new();
    let all: String = text
        .lines()
        .map(|l| {
            if l.starts_with('[') {
                table = l.to_string();
            }
            match l.strip_prefix("# ") {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(k, _)| {
                        is_key(k) && !set.contains(&(table.clone(), k.to_string()))
                    }) =>
                {
                    rest
                }
                _ => l,
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let c = wsus_edge::config::Config::from_toml(&all, path, |_| None).unwrap();
    assert_eq!(c.content.max_size, Some(500 << 30));
    assert_eq!(c.upstream.max_bandwidth, Some(2_500_000));
    for key in [
        "listen",
        "data_dir",
        "advertised_url",
        "tls_listen",
        "tls_cert",
        "tls_key",
        "max_request_body",
        "url",
        "content_url",
        "max_bandwidth",
        "ca_file",
        "mode",
        "download_window",
        "max_size",
        "interval",
        "products",
        "classifications",
        "languages",
        "token_file",
    ] {
        assert!(
            text.contains(&format!("# {key} = ")) || text.contains(&format!("\n{key} = ")),
            "{key} undocumented"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_over_one_keepalive_connection_use_exact_lengths() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let up = TestUpstream::start().await;
    let data = bytes_of(70_000, 40);
    let path = up.put(&data, "cab", Behaviour::Normal);
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    client()
        .get(format!("{}{}", edge.url(), path))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    // Two pipelined hits on one fresh connection: head + exact body, twice, nothing more.
    let mut s = tokio::net::TcpStream::connect(edge.addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nRange: bytes=5-9\r\n\r\nGET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.starts_with("HTTP/1.1 206"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(!text.to_ascii_lowercase().contains("transfer-encoding"));
    let first_end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(&out[first_end..first_end + 5], &data[5..10]);
    let rest = &out[first_end + 5..];
    assert!(rest.starts_with(b"HTTP/1.1 200"));
    let body_at = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(&rest[body_at..], &data[..]);
}
