//! The content path that faces the upstream (issue 15 items 8–11, issue 18's 206-head gap),
//! through wsus-edge on loopback against a hostile or broken upstream
//! (`tests/upstream_double`): what a client gets when the upstream is down, silent, lying or
//! redirecting, and what is kept.

mod support;
mod upstream_double;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use sha1::{Digest, Sha1};
use sha2::Sha256;
use support::{bytes_of, client, content_path, TestEdge};
use upstream_double::{refused_addr, Double, Reply, Served};

const MIB: usize = 1 << 20;

fn record(data: &[u8]) -> wsus_edge::model::FileRecord {
    wsus_edge::model::FileRecord {
        name: "Windows11.0-KB5000001-x64.cab".into(),
        size: data.len() as u64,
        sha1: Sha1::digest(data).into(),
        sha256: Some(Sha256::digest(data).into()),
        upstream_url: None,
        patching_type: None,
    }
}

/// A wsus-edge in front of `upstream` whose store declares `files` (as after a sync).
async fn declaring(
    upstream: Option<String>,
    files: &[wsus_edge::model::FileRecord],
    tweak: impl FnOnce(&mut wsus_edge::config::Config),
) -> TestEdge {
    let edge = TestEdge::start(upstream, tweak).await;
    edge.state.store.put_expected_files(files).unwrap();
    edge
}

/// What a client got asking `edge` for `path`: the status, and the body or how many bytes came
/// before it failed.
async fn get(
    edge: &TestEdge,
    path: &str,
    range: Option<(u64, u64)>,
) -> (u16, Result<Vec<u8>, usize>) {
    let mut req = client().get(format!("{}{path}", edge.url()));
    if let Some((a, b)) = range {
        req = req.header("range", format!("bytes={a}-{b}"));
    }
    let resp = tokio::time::timeout(Duration::from_secs(60), req.send())
        .await
        .expect("an answer")
        .expect("a response head");
    let status = resp.status().as_u16();
    let mut s = resp.bytes_stream();
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(60), s.next()).await {
            Ok(Some(Ok(b))) => got.extend_from_slice(&b),
            Ok(Some(Err(_))) => return (status, Err(got.len())),
            Ok(None) => return (status, Ok(got)),
            Err(_) => panic!("body stalled after {} bytes", got.len()),
        }
    }
}

fn final_file(edge: &TestEdge, path: &str) -> std::path::PathBuf {
    edge.content_dir()
        .join(path.trim_start_matches("/Content/"))
}

fn partials(edge: &TestEdge) -> usize {
    std::fs::read_dir(edge.content_dir().join(".partial"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Waits (up to 5 s) until no download of the edge is left in `.partial/`.
async fn settled(edge: &TestEdge) -> usize {
    for _ in 0..100 {
        if partials(edge) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    partials(edge)
}

// ---- issue 15 item 10 / issue 18: no head before the upstream has answered ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_miss_with_the_upstream_refusing_is_a_502_not_a_cut_200_or_206() {
    let down = refused_addr().await;
    let whole = bytes_of(300_000, 1);
    let big = bytes_of(3 * MIB, 2);
    let edge = declaring(
        Some(format!("http://{down}")),
        &[record(&whole), record(&big)],
        |_| {},
    )
    .await;
    // Whole object (sequential fetch).
    let (status, _) = get(&edge, &content_path(&whole, "cab"), None).await;
    assert_eq!(status, 502);
    // A range of a declared multi-slice object (slice fetch).
    let (status, _) = get(
        &edge,
        &content_path(&big, "cab"),
        Some((2 * MIB as u64, 2 * MIB as u64 + 999)),
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(settled(&edge).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_miss_with_a_silent_upstream_is_a_504() {
    let up = Double::start().await;
    let whole = bytes_of(200_000, 3);
    let big = bytes_of(3 * MIB, 4);
    let (pw, pb) = (content_path(&whole, "cab"), content_path(&big, "cab"));
    up.route(&pw, Reply::Silent);
    up.route(&pb, Reply::Silent);
    let edge = declaring(Some(up.url()), &[record(&whole), record(&big)], |c| {
        c.upstream.stall_timeout = Duration::from_millis(500);
    })
    .await;
    let (status, _) = get(&edge, &pw, None).await;
    assert_eq!(status, 504);
    let (status, _) = get(&edge, &pb, Some((MIB as u64, MIB as u64))).await;
    assert_eq!(status, 504);
    assert_eq!(settled(&edge).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_miss_answered_404_or_500_upstream_gets_404_or_502_for_whole_and_ranges() {
    let up = Double::start().await;
    let a = bytes_of(100_000, 5);
    let b = bytes_of(2 * MIB + 7, 6);
    let c = bytes_of(2 * MIB + 9, 7);
    let (pa, pb, pc) = (
        content_path(&a, "cab"),
        content_path(&b, "psf"),
        content_path(&c, "psf"),
    );
    up.route(&pa, Reply::Status(500));
    up.route(&pc, Reply::Status(500));
    // b is not scripted: 404.
    let edge = declaring(
        Some(up.url()),
        &[record(&a), record(&b), record(&c)],
        |_| {},
    )
    .await;
    assert_eq!(get(&edge, &pa, None).await.0, 502);
    assert_eq!(get(&edge, &pb, None).await.0, 404);
    assert_eq!(
        get(&edge, &pb, Some((MIB as u64, 2 * MIB as u64))).await.0,
        404
    );
    assert_eq!(get(&edge, &pc, Some((0, 10))).await.0, 502);
    assert_eq!(settled(&edge).await, 0);
    assert!(!final_file(&edge, &pb).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_miss_still_streams_once_the_upstream_answers() {
    // The head waits for the upstream's answer, not for the object.
    let up = Double::start().await;
    let data = Arc::new(bytes_of(3 * MIB, 8));
    let path = content_path(&data, "cab");
    up.route(
        &path,
        Reply::Object(Served {
            stall_at: Some(MIB),
            ..Served::honest(&data)
        }),
    );
    let edge = declaring(Some(up.url()), &[record(&data)], |c| {
        c.upstream.stall_timeout = Duration::from_secs(30);
    })
    .await;
    let resp = client()
        .get(format!("{}{path}", edge.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut s = resp.bytes_stream();
    let mut got = 0usize;
    while got < MIB / 2 {
        got += tokio::time::timeout(Duration::from_secs(20), s.next())
            .await
            .expect("bytes flow before the upstream finishes")
            .unwrap()
            .unwrap()
            .len();
    }
}

// ---- issue 15 item 8: redirects only within the origin (or upstream.redirect_hosts) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_origin_is_refused_and_the_miss_fails_cleanly() {
    let up = Double::start().await;
    let elsewhere = Double::start().await;
    let declared = Arc::new(bytes_of(150_000, 21));
    let unknown = Arc::new(bytes_of(90_000, 22));
    let (pd, pu) = (
        content_path(&declared, "cab"),
        content_path(&unknown, "exe"),
    );
    for (p, d) in [(&pd, &declared), (&pu, &unknown)] {
        // Another port on the same loopback address is another origin.
        elsewhere.route(p, Reply::Object(Served::honest(d)));
        up.route(p, Reply::Redirect(format!("{}{p}", elsewhere.url())));
    }
    let edge = declaring(Some(up.url()), &[record(&declared)], |_| {}).await;
    let (status, _) = get(&edge, &pd, None).await;
    assert_eq!(status, 502);
    let (status, _) = get(&edge, &pu, None).await;
    assert_eq!(status, 502);
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
    // Refused once, not retried: the redirect will not change by itself.
    assert_eq!((up.gets(&pd), up.gets(&pu)), (1, 1));
    assert_eq!(settled(&edge).await, 0);
    assert!(!final_file(&edge, &pd).exists() && !final_file(&edge, &pu).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_origin_redirect_or_a_listed_host_is_followed_and_verified() {
    let up = Double::start().await;
    let cdn = Double::start().await;
    let a = Arc::new(bytes_of(120_000, 23));
    let b = Arc::new(bytes_of(130_000, 24));
    let (pa, pb) = (content_path(&a, "cab"), content_path(&b, "cab"));
    up.route(&pa, Reply::Redirect("/moved/a.cab".into()));
    up.route("/moved/a.cab", Reply::Object(Served::honest(&a)));
    cdn.route("/b.cab", Reply::Object(Served::honest(&b)));
    up.route(&pb, Reply::Redirect(format!("{}/b.cab", cdn.url())));
    let listed = cdn.addr.to_string();
    let edge = declaring(Some(up.url()), &[record(&a), record(&b)], |c| {
        c.upstream.redirect_hosts = vec![listed];
    })
    .await;
    let (status, body) = get(&edge, &pa, None).await;
    assert_eq!((status, body.as_deref().ok()), (200, Some(&a[..])));
    let (status, body) = get(&edge, &pb, None).await;
    assert_eq!((status, body.as_deref().ok()), (200, Some(&b[..])));
    assert_eq!(cdn.gets("/b.cab"), 1);
    assert_eq!(settled(&edge).await, 0);
}

// ---- issue 15 item 9: what is read from upstream is bounded ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_sending_more_than_declared_is_cut_and_nothing_is_kept() {
    let up = Double::start().await;
    let chunked = Arc::new(bytes_of(400_000, 31));
    let lying = Arc::new(bytes_of(300_000, 32));
    let (pc, pl) = (content_path(&chunked, "cab"), content_path(&lying, "cab"));
    // The declared bytes, then 200 KB more, without a length (chunked)...
    up.route(
        &pc,
        Reply::Object(Served {
            extra: 200_000,
            content_length: false,
            ..Served::honest(&chunked)
        }),
    );
    // ...and a Content-Length that disagrees with metadata.
    let mut longer = lying.to_vec();
    longer.extend_from_slice(&[0u8; 1000]);
    up.route(&pl, Reply::Object(Served::honest(&Arc::new(longer))));
    let edge = declaring(Some(up.url()), &[record(&chunked), record(&lying)], |_| {}).await;
    let (status, body) = get(&edge, &pc, None).await;
    assert_eq!(status, 200);
    let cut = body.expect_err("a response past the declared size must be aborted");
    assert!(
        cut < chunked.len(),
        "the last byte waits for a verdict: {cut}"
    );
    let (status, _) = get(&edge, &pl, None).await;
    assert_eq!(status, 502);
    // Discarded and not asked again: the upstream's length will not change by itself.
    assert_eq!((up.gets(&pc), up.gets(&pl)), (1, 1));
    assert_eq!(settled(&edge).await, 0);
    assert!(!final_file(&edge, &pc).exists() && !final_file(&edge, &pl).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undeclared_object_is_bounded_by_the_cache_size() {
    let up = Double::start().await;
    // Far more than socket buffers hold, so what the double wrote shows what was read.
    let data = Arc::new(bytes_of(24 * MIB, 33));
    let path = content_path(&data, "exe");
    // No metadata, no Content-Length: only content.max_size bounds it.
    up.route(
        &path,
        Reply::Object(Served {
            content_length: false,
            ..Served::honest(&data)
        }),
    );
    let edge = TestEdge::start(Some(up.url()), |c| {
        c.content.max_size = Some(MIB as u64);
    })
    .await;
    let (status, body) = get(&edge, &path, None).await;
    assert!(
        status == 200 && body.is_err() || status >= 500,
        "status {status}, body {:?}",
        body.map(|b| b.len())
    );
    assert!(up.sent() < 12 * MIB as u64, "read {} bytes", up.sent());
    assert_eq!(up.gets(&path), 1);
    assert_eq!(settled(&edge).await, 0);
    assert!(!final_file(&edge, &path).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_download_is_abandoned_after_the_stall_timeout() {
    let up = Double::start().await;
    let data = Arc::new(bytes_of(MIB, 34));
    let path = content_path(&data, "cab");
    up.route(
        &path,
        Reply::Object(Served {
            stall_at: Some(300_000),
            ..Served::honest(&data)
        }),
    );
    let edge = declaring(Some(up.url()), &[record(&data)], |c| {
        c.upstream.stall_timeout = Duration::from_millis(300);
    })
    .await;
    let (status, body) = get(&edge, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body.expect_err("a stalled download must end the response"),
        300_000
    );
    // The first GET, then resumes from the stall that make no progress: the README promises
    // at most 5 resumes in a row without progress, 6 requests in all.
    assert_eq!(up.gets(&path), 6);
    assert_eq!(settled(&edge).await, 0);
    assert!(!final_file(&edge, &path).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_answer_larger_than_max_answer_size_is_refused_while_it_streams() {
    use wsus_edge::config::UpstreamConfig;
    use wsus_edge::sync::upstream_client::UpstreamClient;
    use wsus_edge::wire::sss::GetAuthConfig;
    // 64 MiB of answer against a 1 MiB bound, chunked (no length to refuse up front) and
    // with a Content-Length.
    let piece = Arc::new(vec![b' '; 64 * 1024]);
    for content_length in [false, true] {
        let up = Double::start().await;
        up.big_answer(upstream_double::BigAnswer {
            piece: piece.clone(),
            count: 1024,
            content_length,
        });
        let client = UpstreamClient::new(&UpstreamConfig {
            url: Some(up.url()),
            max_answer_size: MIB as u64,
            ..Default::default()
        })
        .unwrap()
        .with_retries(3, Duration::from_millis(10));
        let err = client
            .call(
                &client.url("/ServerSyncWebService/ServerSyncWebService.asmx"),
                &GetAuthConfig,
            )
            .await
            .expect_err("an answer over the bound must be refused");
        assert!(
            err.to_string().contains("max_answer_size"),
            "content_length {content_length}: {err}"
        );
        // Refused, not retried, and not read to its end.
        let posts = up.seen().iter().filter(|s| s.method == "POST").count();
        assert_eq!(posts, 1, "content_length {content_length}");
        assert!(
            up.sent() < 16 * MIB as u64,
            "content_length {content_length}: {} bytes went out",
            up.sent()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_call_redirected_to_another_origin_is_refused_once() {
    use wsus_edge::config::UpstreamConfig;
    use wsus_edge::sync::upstream_client::UpstreamClient;
    use wsus_edge::wire::sss::GetAuthConfig;
    let up = Double::start().await;
    let elsewhere = Double::start().await;
    let svc = "/ServerSyncWebService/ServerSyncWebService.asmx";
    up.route(svc, Reply::Redirect(format!("{}{svc}", elsewhere.url())));
    let client = UpstreamClient::new(&UpstreamConfig {
        url: Some(up.url()),
        ..Default::default()
    })
    .unwrap()
    .with_retries(3, Duration::from_millis(10));
    let err = client
        .call(&client.url(svc), &GetAuthConfig)
        .await
        .expect_err("a redirect to another origin must fail the call");
    assert!(err.to_string().contains("redirect"), "{err}");
    assert!(elsewhere.seen().is_empty());
    assert_eq!(up.seen().len(), 1, "not retried");
}

// ---- issue 15 item 11: objects are their SHA-1 ----

/// Files under the content folder whose name starts with `hex` (any extension).
fn copies(edge: &TestEdge, path: &str) -> Vec<String> {
    let rel = path.trim_start_matches("/Content/");
    let (folder, name) = rel.split_once('/').unwrap();
    let hex = &name[..40];
    std::fs::read_dir(edge.content_dir().join(folder))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| {
                    n.to_ascii_uppercase()
                        .starts_with(&hex.to_ascii_uppercase())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bytes_under_two_extensions_are_stored_once_and_served_under_both_names() {
    let up = Double::start().await;
    let data = Arc::new(bytes_of(200_000, 41));
    let (cab, exe) = (content_path(&data, "cab"), content_path(&data, "exe"));
    up.route(&cab, Reply::Object(Served::honest(&data)));
    up.route(&exe, Reply::Object(Served::honest(&data)));
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    // IIS's MIME map: .cab is application/vnd.ms-cab-compressed, .exe application/octet-stream.
    let want = [
        (&cab, "application/vnd.ms-cab-compressed"),
        (&exe, "application/octet-stream"),
    ];
    for round in 0..2 {
        for (path, mime) in want {
            // The sendfile path, then hyper's (a query string takes it).
            for query in ["", "?via=hyper"] {
                let r = client()
                    .get(format!("{}{path}{query}", edge.url()))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{path}{query} round {round}");
                assert_eq!(r.headers()["content-type"], mime, "{path}{query}");
                assert_eq!(r.bytes().await.unwrap(), data[..], "{path}{query}");
            }
        }
    }
    // One upstream fetch, one file, one index entry, counted once.
    assert_eq!(settled(&edge).await, 0);
    assert_eq!(up.gets(&cab) + up.gets(&exe), 1);
    assert_eq!(copies(&edge, &cab).len(), 1, "{:?}", copies(&edge, &cab));
    // The index entry and the total follow the rename: wait for them.
    let indexed = || {
        (
            edge.state.store.objects().unwrap().len(),
            edge.state.content.total_size(),
        )
    };
    for _ in 0..100 {
        if indexed() == (1, data.len() as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(indexed(), (1, data.len() as u64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_copy_left_by_an_older_store_is_removed_at_start() {
    let up = Double::start().await;
    let data = Arc::new(bytes_of(70_000, 42));
    let (cab, exe) = (content_path(&data, "cab"), content_path(&data, "exe"));
    up.route(&cab, Reply::Object(Served::honest(&data)));
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    assert_eq!(get(&edge, &cab, None).await.0, 200);
    assert_eq!(settled(&edge).await, 0);
    let dir = edge.shutdown().await;
    // As an older wsus-edge left it: the same bytes again under another extension.
    let content = dir.path().join("content");
    std::fs::copy(
        content.join(cab.trim_start_matches("/Content/")),
        content.join(exe.trim_start_matches("/Content/")),
    )
    .unwrap();
    let edge = TestEdge::start_in(dir, Some(up.url()), |_| {}).await;
    assert_eq!(copies(&edge, &cab).len(), 1, "{:?}", copies(&edge, &cab));
    assert_eq!(edge.state.content.total_size(), data.len() as u64);
    let (status, body) = get(&edge, &exe, None).await;
    assert_eq!((status, body.as_deref().ok()), (200, Some(&data[..])));
    assert_eq!(up.gets(&exe), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_length_miss_is_answered_only_after_its_hash_is_checked() {
    let up = Double::start().await;
    let empty: Arc<Vec<u8>> = Arc::new(Vec::new());
    let path = content_path(&empty, "txt");
    up.route(&path, Reply::Object(Served::honest(&empty)));
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    // Metadata declares the empty file with a SHA-256 that is not the hash of nothing.
    let mut wrong = record(&empty);
    wrong.sha256 = Some(Sha256::digest(b"not empty").into());
    edge.state.store.put_expected_files(&[wrong]).unwrap();
    let before = wsus_edge::metrics::hash_mismatches();
    let (status, body) = get(&edge, &path, None).await;
    assert_ne!(
        (status, body.as_deref().ok()),
        (200, Some(&[][..])),
        "a complete empty answer before the hash was checked"
    );
    assert_eq!(status, 502);
    assert!(wsus_edge::metrics::hash_mismatches() > before);
    assert!(copies(&edge, &path).is_empty());
    // With the right digests it is answered (empty) and kept.
    edge.state
        .store
        .put_expected_files(&[record(&empty)])
        .unwrap();
    let (status, body) = get(&edge, &path, None).await;
    assert_eq!((status, body.as_deref().ok()), (200, Some(&[][..])));
    assert_eq!(settled(&edge).await, 0);
    assert_eq!(copies(&edge, &path).len(), 1);
}

// ---- issue 14 item 5: content comes from where the upstream's configuration says ----

/// A "Microsoft Update" server holding `files` at `/c/msdownload/update/software/secu/…`;
/// returns it with each file's content path and MUUrl.
async fn microsoft_update(files: &[(&Arc<Vec<u8>>, &str)]) -> (Double, Vec<(String, String)>) {
    let mu = Double::start().await;
    let mut out = Vec::new();
    for (data, ext) in files {
        let path = content_path(data, ext);
        let sha1 = hex::encode(Sha1::digest(&data[..]));
        let at = format!("/c/msdownload/update/software/secu/2026/10/kb_{sha1}.{ext}");
        mu.route(&at, Reply::Object(Served::honest(data)));
        out.push((path, format!("{}{at}", mu.url())));
    }
    (mu, out)
}

fn record_at(data: &[u8], mu_url: &str) -> wsus_edge::model::FileRecord {
    wsus_edge::model::FileRecord {
        upstream_url: Some(mu_url.to_string()),
        ..record(data)
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/wsusss/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// MS-WSUSSS §2.1: the server-sync and DSS-auth services' paths.
const SERVER_SYNC: &str = "/ServerSyncWebService/ServerSyncWebService.asmx";
const DSS_AUTH: &str = "/DssAuthWebService/DssAuthWebService.asmx";
/// The SOAPAction headers as the SOAP 1.1 HTTP binding sends them (the URI in quotes), each
/// URI the literal `soapAction` of its operation (SS §3.1.4.1, §3.1.4.2, §3.1.4.3, §3.1.4.11).
const GET_AUTH_CONFIG: &str = "\"http://www.microsoft.com/SoftwareDistribution/GetAuthConfig\"";
const GET_COOKIE: &str = "\"http://www.microsoft.com/SoftwareDistribution/GetCookie\"";
const GET_AUTHORIZATION_COOKIE: &str = "\"http://www.microsoft.com/SoftwareDistribution/Server/DssAuthWebService/GetAuthorizationCookie\"";
const DOWNLOAD_FILES: &str = "\"http://www.microsoft.com/SoftwareDistribution/DownloadFiles\"";
/// The namespaces of a DownloadFiles request: SOAP 1.1's envelope, the WSDL's target namespace.
const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SD: &str = "http://www.microsoft.com/SoftwareDistribution";

/// The digests (base64 text, in order) of a DownloadFiles request shaped as MS-WSUSSS
/// §3.1.4.11 writes it: `soap:Envelope/soap:Body/DownloadFiles` with `cookie` and
/// `fileDigestList/base64Binary` children, the operation and its children in the
/// SoftwareDistribution namespace. `Err` says what is not so.
fn download_files_digests(body: &[u8]) -> Result<Vec<String>, String> {
    use quick_xml::events::Event;
    use quick_xml::name::{Namespace, ResolveResult};
    let mut r = quick_xml::NsReader::from_reader(body);
    // (namespace, local name) of each open element.
    let mut open: Vec<(String, String)> = Vec::new();
    let (mut operations, mut lists) = (0, 0);
    let mut digests = Vec::new();
    loop {
        let (ns, ev) = r.read_resolved_event().map_err(|e| e.to_string())?;
        let ns = match ns {
            ResolveResult::Bound(Namespace(n)) => String::from_utf8_lossy(n).into_owned(),
            _ => String::new(),
        };
        let (start, empty) = match &ev {
            Event::Start(e) => (Some(e.local_name()), false),
            Event::Empty(e) => (Some(e.local_name()), true),
            _ => (None, false),
        };
        if let Some(local) = start {
            let local = String::from_utf8_lossy(local.as_ref()).into_owned();
            let parent: Vec<&str> = open.iter().map(|(_, l)| l.as_str()).collect();
            let want: Option<&[(&str, &str)]> = match parent.as_slice() {
                [] => Some(&[(SOAP_ENV, "Envelope")]),
                ["Envelope"] => Some(&[(SOAP_ENV, "Header"), (SOAP_ENV, "Body")]),
                ["Envelope", "Body"] => Some(&[(SD, "DownloadFiles")]),
                ["Envelope", "Body", "DownloadFiles"] => {
                    Some(&[(SD, "cookie"), (SD, "fileDigestList")])
                }
                ["Envelope", "Body", "DownloadFiles", "fileDigestList"] => {
                    Some(&[(SD, "base64Binary")])
                }
                _ => None, // inside the cookie or the header: not checked here
            };
            if let Some(want) = want {
                if !want.contains(&(ns.as_str(), local.as_str())) {
                    return Err(format!("{{{ns}}}{local} under {}", parent.join("/")));
                }
            }
            operations += usize::from(local == "DownloadFiles" && parent.len() == 2);
            lists += usize::from(local == "fileDigestList" && parent.len() == 3);
            if !empty {
                open.push((ns, local));
            }
            continue;
        }
        match ev {
            Event::Text(t) if open.len() == 5 && open[4].1 == "base64Binary" => {
                digests.push(t.unescape().map_err(|e| e.to_string())?.trim().to_string());
            }
            Event::End(_) => {
                open.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if (operations, lists) != (1, 1) {
        return Err(format!(
            "{operations} DownloadFiles elements, {lists} fileDigestList elements"
        ));
    }
    Ok(digests)
}

/// A DownloadFiles fault as WS2025 writes it. No DownloadFiles fault was captured
/// (tests/fixtures/README.md), so this is the captured WS2025 `InvalidParameters` fault of the
/// same service (`wsusss/fault_invalid_parameters.response.xml`: `soap:Client`, faultactor,
/// `detail{ErrorCode, Message, ID, Method}`) with its detail's ErrorCode, Message and Method
/// (the quoted SOAPAction of the failed call) put to this call's.
fn download_files_fault(error_code: &str, message: &str) -> Vec<u8> {
    let captured = String::from_utf8(fixture("fault_invalid_parameters.response.xml")).unwrap();
    let mut fault = captured.clone();
    for (from, to) in [
        (
            "<ErrorCode>InvalidParameters</ErrorCode>".to_string(),
            format!("<ErrorCode>{error_code}</ErrorCode>"),
        ),
        (
            "<Message>filter</Message>".to_string(),
            format!("<Message>{message}</Message>"),
        ),
        (
            "<Method>\"http://www.microsoft.com/SoftwareDistribution/GetRevisionIdList\"</Method>"
                .to_string(),
            format!("<Method>{DOWNLOAD_FILES}</Method>"),
        ),
    ] {
        assert_eq!(captured.matches(&from).count(), 1, "{from} in the capture");
        fault = fault.replace(&from, &to);
    }
    fault.into_bytes()
}

/// The upstream WSUS's SOAP side as far as DownloadFiles needs it, each operation answered
/// only at its service's path with its literal SOAPAction: GetAuthConfig and GetCookie with
/// the WS2025 captures, GetAuthorizationCookie as MS-WSUSSS §3.1.4.2.3.2 shapes it, and
/// DownloadFiles (§3.1.4.11) answered empty after starting to fetch each named file from its
/// MUUrl into `/Content` (as a WSUS does in the background). The log returned holds each
/// asked digest (upper-case hex), `fault` for a FileDigestsMissing answer and
/// `malformed DownloadFiles: …` for a body not shaped as the spec writes it.
fn wsus_soap(up: &Double, files: &[(String, String)]) -> Arc<std::sync::Mutex<Vec<String>>> {
    use base64::Engine;
    let asked: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let (routes, files, log) = (up.routes(), files.to_vec(), asked.clone());
    up.on_soap(Arc::new(move |path, action, body| {
        match (path, action) {
            (SERVER_SYNC, GET_AUTH_CONFIG) => (200, fixture("get_auth_config.response.xml")),
            (SERVER_SYNC, GET_COOKIE) => (200, fixture("get_cookie.response.xml")),
            (DSS_AUTH, GET_AUTHORIZATION_COOKIE) => (
                200,
                concat!(
                    r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">"#,
                    r#"<soap:Body><GetAuthorizationCookieResponse xmlns="http://www.microsoft.com/SoftwareDistribution/Server/DssAuthWebService">"#,
                    r#"<GetAuthorizationCookieResult><PlugInId>DssTargeting</PlugInId><CookieData>AAAAAAAAAAAAAAAA</CookieData>"#,
                    r#"</GetAuthorizationCookieResult></GetAuthorizationCookieResponse></soap:Body></soap:Envelope>"#
                )
                .as_bytes()
                .to_vec(),
            ),
            (SERVER_SYNC, DOWNLOAD_FILES) => {
                let digests = match download_files_digests(body) {
                    Ok(d) => d,
                    Err(why) => {
                        // SS §3.1.4.11: fileDigestList MUST be present → InvalidParameters.
                        log.lock().unwrap().push(format!("malformed DownloadFiles: {why}"));
                        return (500, download_files_fault("InvalidParameters", "fileDigestList"));
                    }
                };
                let hex_of = |b64: &str| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map(hex::encode_upper)
                        .unwrap_or_default()
                };
                // A digest it has no metadata for: the FileDigestsMissing fault (SS §3.1.4.11:
                // Message = the missing digests joined by "|").
                let unknown: Vec<&str> = digests
                    .iter()
                    .map(String::as_str)
                    .filter(|b64| {
                        let hex = hex_of(b64);
                        hex.is_empty() || !files.iter().any(|(p, _)| p.contains(&hex))
                    })
                    .collect();
                if !unknown.is_empty() {
                    log.lock().unwrap().push("fault".into());
                    return (500, download_files_fault("FileDigestsMissing", &unknown.join("|")));
                }
                for b64 in &digests {
                    let hex = hex_of(b64);
                    log.lock().unwrap().push(hex.clone());
                    if let Some((path, mu_url)) = files.iter().find(|(p, _)| p.contains(&hex)) {
                        let (routes, path, mu_url) = (routes.clone(), path.clone(), mu_url.clone());
                        tokio::spawn(async move {
                            let bytes = reqwest::get(&mu_url).await.unwrap().bytes().await.unwrap();
                            routes.route(&path, Reply::Object(Served::honest(&Arc::new(bytes.to_vec()))));
                        });
                    }
                }
                (
                    200,
                    concat!(
                        r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">"#,
                        r#"<soap:Body><DownloadFilesResponse xmlns="http://www.microsoft.com/SoftwareDistribution" /></soap:Body></soap:Envelope>"#
                    )
                    .as_bytes()
                    .to_vec(),
                )
            }
            // The start-up sync's later calls (GetConfigData on) stop here; a DownloadFiles at
            // another path or under another SOAPAction is never acted on (its file never
            // arrives, the digest is not logged).
            _ => (500, Vec::new()),
        }
    }));
    asked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_the_upstream_lacks_is_asked_for_with_download_files_then_fetched_and_verified() {
    let small = Arc::new(bytes_of(150_000, 51));
    let big = Arc::new(bytes_of(3 * MIB, 52));
    let (mu, files) = microsoft_update(&[(&small, "cab"), (&big, "psf")]).await;
    let up = Double::start().await; // holds no files
    let asked = wsus_soap(&up, &files);
    let edge = declaring(
        Some(up.url()),
        &[record_at(&small, &files[0].1), record_at(&big, &files[1].1)],
        |_| {},
    )
    .await;
    // A whole file (sequential fetch) and a range of a big one (slice fetch).
    let (status, body) = get(&edge, &files[0].0, None).await;
    assert_eq!((status, body.as_deref().ok()), (200, Some(&small[..])));
    let (a, b) = (2 * MIB as u64, 2 * MIB as u64 + 4095);
    let (status, body) = get(&edge, &files[1].0, Some((a, b))).await;
    assert_eq!(
        (status, body.as_deref().ok()),
        (206, Some(&big[a as usize..=b as usize]))
    );
    // One DownloadFiles per file, each after a 404 for it; MU was asked by the upstream only
    // (the upstream is not catalog-only, so the edge itself never goes there).
    let want: Vec<String> = [&small, &big]
        .iter()
        .map(|d| hex::encode_upper(Sha1::digest(&d[..])))
        .collect();
    assert_eq!(*asked.lock().unwrap(), want);
    for (path, mu_url) in &files {
        assert!(up.gets(path) >= 2, "{path}: {}", up.gets(path));
        let at = mu_url.trim_start_matches(&mu.url());
        assert_eq!(mu.gets(at), 1, "{at}");
    }
    // Both verified and kept (the big one once the background fill completes it).
    assert_eq!(settled(&edge).await, 0);
    for _ in 0..100 {
        if final_file(&edge, &files[1].0).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(final_file(&edge, &files[0].0).exists() && final_file(&edge, &files[1].0).exists());
}

/// Stores the GetConfigData flags a sync from the upstream would have stored: the edge's
/// start-up sync fails against a double without SOAP, so they are set once it has written its
/// outcome.
async fn upstream_says(edge: &TestEdge, catalog_only_sync: bool, server_hosts_psf_files: bool) {
    let mut synced = false;
    for _ in 0..600 {
        if edge.state.store.sync_state().unwrap().last_sync.is_some() {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(synced, "the edge's start-up sync wrote its outcome");
    let mut state = edge.state.store.sync_state().unwrap();
    state.upstream_flags = Some(wsus_edge::store::UpstreamFlags {
        catalog_only_sync,
        lazy_sync: true,
        server_hosts_psf_files,
    });
    edge.state.store.set_sync_state(&state).unwrap();
}

/// MS-WSUSSS §3.2.4.4: a downstream server downloads express files (`PatchingType="Express"`)
/// only when its upstream says `ServerHostsPsfFiles` true. With false (WS2025's default), an
/// express file a client asks for comes from its `MUUrl`, and without a usable one its 404 is
/// final at once: no DownloadFiles, no 30 s wait. Other files still come from `/Content`,
/// `.psf` ones too: what makes a file express is its declared PatchingType (UUP `.psf` files
/// are SelfContained).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn express_files_an_upstream_does_not_host_come_from_the_mu_url_or_404_at_once() {
    let psf = Arc::new(bytes_of(200_000, 58));
    let uup_psf = Arc::new(bytes_of(40_000, 62));
    let express_cab = Arc::new(bytes_of(70_000, 59));
    let unreachable = Arc::new(bytes_of(60_000, 60));
    let plain = Arc::new(bytes_of(50_000, 61));
    let (mu, files) =
        microsoft_update(&[(&psf, "psf"), (&express_cab, "cab"), (&uup_psf, "psf")]).await;
    let up = Double::start().await;
    let asked = wsus_soap(&up, &[]);
    let plain_path = content_path(&plain, "cab");
    up.route(&plain_path, Reply::Object(Served::honest(&plain)));
    let uup_path = content_path(&uup_psf, "psf");
    up.route(&uup_path, Reply::Object(Served::honest(&uup_psf)));
    let unreachable_path = content_path(&unreachable, "psf");
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    upstream_says(&edge, false, false).await;
    let express = |data: &[u8], mu_url: Option<&str>| wsus_edge::model::FileRecord {
        upstream_url: mu_url.map(str::to_string),
        patching_type: Some("Express".into()),
        ..record(data)
    };
    edge.state
        .store
        .put_expected_files(&[
            express(&psf, Some(&files[0].1)),
            express(&express_cab, Some(&files[1].1)),
            express(&unreachable, None),
            record(&plain),
            wsus_edge::model::FileRecord {
                patching_type: Some("SelfContained".into()),
                ..record_at(&uup_psf, &files[2].1)
            },
        ])
        .unwrap();

    for (data, (path, mu_url)) in [(&psf, &files[0]), (&express_cab, &files[1])] {
        let (status, body) = get(&edge, path, None).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            body.is_ok_and(|b| b == data[..]),
            "{path}: not the file's bytes"
        );
        assert_eq!(mu.gets(mu_url.trim_start_matches(&mu.url())), 1, "{path}");
        assert_eq!(up.gets(path), 0, "{path} not asked of the upstream");
    }
    let (status, _) = get(&edge, &unreachable_path, None).await;
    assert_eq!(status, 404);
    assert_eq!(up.gets(&unreachable_path), 1, "asked once, not again");
    for (data, path) in [(&plain, &plain_path), (&uup_psf, &uup_path)] {
        let (status, body) = get(&edge, path, None).await;
        assert_eq!(status, 200, "{path}");
        assert!(
            body.is_ok_and(|b| b == data[..]),
            "{path}: not the file's bytes"
        );
        assert_eq!(up.gets(path), 1, "{path} from the upstream");
    }
    assert_eq!(
        mu.gets(files[2].1.trim_start_matches(&mu.url())),
        0,
        "a SelfContained .psf is not fetched from its MUUrl"
    );
    assert!(
        asked.lock().unwrap().is_empty(),
        "no DownloadFiles: {:?}",
        asked.lock().unwrap()
    );
    assert_eq!(settled(&edge).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_only_upstream_sends_the_edge_to_the_mu_url_verified_by_the_same_digests() {
    let small = Arc::new(bytes_of(150_000, 53));
    let big = Arc::new(bytes_of(3 * MIB, 54));
    let bad = Arc::new(bytes_of(120_000, 55));
    let (mu, files) = microsoft_update(&[(&small, "exe"), (&big, "wim"), (&bad, "cab")]).await;
    // Microsoft Update serves the third file with a byte flipped.
    let mut corrupt = bad.to_vec();
    corrupt[60_000] ^= 0xff;
    let at_bad = files[2].1.trim_start_matches(&mu.url()).to_string();
    mu.route(&at_bad, Reply::Object(Served::honest(&Arc::new(corrupt))));
    let up = Double::start().await; // holds no files, answers no SOAP
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    upstream_says(&edge, true, false).await;
    edge.state
        .store
        .put_expected_files(&[
            record_at(&small, &files[0].1),
            record_at(&big, &files[1].1),
            record_at(&bad, &files[2].1),
        ])
        .unwrap();
    let (status, body) = get(&edge, &files[0].0, None).await;
    assert_eq!((status, body.as_deref().ok()), (200, Some(&small[..])));
    let (a, b) = (MIB as u64 + 17, 2 * MIB as u64 + 17);
    let (status, body) = get(&edge, &files[1].0, Some((a, b))).await;
    assert_eq!(
        (status, body.as_deref().ok()),
        (206, Some(&big[a as usize..=b as usize]))
    );
    let (status, body) = get(&edge, &files[2].0, None).await;
    assert_eq!(status, 200);
    assert!(
        body.is_err(),
        "a corrupt MU file must not be answered complete"
    );
    assert!(
        up.seen().iter().all(|s| s.method != "GET"),
        "{:?}",
        up.seen()
    );
    for (_, mu_url) in &files[..1] {
        assert_eq!(mu.gets(mu_url.trim_start_matches(&mu.url())), 1);
    }
    assert_eq!(settled(&edge).await, 0);
    assert!(final_file(&edge, &files[0].0).exists());
    assert!(!final_file(&edge, &files[2].0).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_download_files_fails_the_404_stands_at_once() {
    let data = Arc::new(bytes_of(90_000, 56));
    let path = content_path(&data, "cab");
    let up = Double::start().await; // holds no files and knows none
    let asked = wsus_soap(&up, &[]);
    let edge = declaring(Some(up.url()), &[record(&data)], |_| {}).await;
    let (status, _) = get(&edge, &path, None).await;
    assert_eq!(status, 404);
    // One DownloadFiles, refused; /Content not asked again.
    assert_eq!(*asked.lock().unwrap(), ["fault"]);
    assert_eq!(up.gets(&path), 1);
    assert_eq!(settled(&edge).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mu_url_on_a_local_address_is_not_used_for_an_upstream_that_is_not_local() {
    let data = Arc::new(bytes_of(80_000, 57));
    let (mu, files) = microsoft_update(&[(&data, "cab")]).await;
    // An upstream that is not on this machine (a name that never resolves), catalog-only,
    // whose metadata points the file at a loopback address.
    let edge = TestEdge::start(Some("http://wsus.invalid:8530".into()), |_| {}).await;
    let mut state = edge.state.store.sync_state().unwrap();
    state.upstream_flags = Some(wsus_edge::store::UpstreamFlags {
        catalog_only_sync: true,
        lazy_sync: true,
        server_hosts_psf_files: false,
    });
    edge.state.store.set_sync_state(&state).unwrap();
    edge.state
        .store
        .put_expected_files(&[record_at(&data, &files[0].1)])
        .unwrap();
    let (status, _) = get(&edge, &files[0].0, None).await;
    assert!(status == 502 || status == 504, "{status}");
    assert!(mu.seen().is_empty(), "{:?}", mu.seen());
    assert_eq!(settled(&edge).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_trickles_is_a_stall_too() {
    let up = Double::start().await;
    let whole = Arc::new(bytes_of(300_000, 61));
    let big = Arc::new(bytes_of(3 * MIB, 62));
    let (pw, pb) = (content_path(&whole, "cab"), content_path(&big, "wim"));
    // A byte every 50 ms after the first part: the connection never goes quiet for the stall
    // timeout, yet far fewer than a KiB arrives in one.
    up.route(
        &pw,
        Reply::Object(Served {
            trickle_at: Some((100_000, 50)),
            ..Served::honest(&whole)
        }),
    );
    up.route(
        &pb,
        Reply::Object(Served {
            trickle_at: Some((MIB + 100_000, 50)),
            ..Served::honest(&big)
        }),
    );
    let edge = declaring(Some(up.url()), &[record(&whole), record(&big)], |c| {
        c.upstream.stall_timeout = Duration::from_millis(500);
    })
    .await;
    let within = |f| async move {
        tokio::time::timeout(Duration::from_secs(60), f)
            .await
            .expect("a trickling upstream must be given up, not waited for")
    };
    let (status, body) = within(get(&edge, &pw, None)).await;
    assert_eq!(status, 200);
    assert!(body.is_err(), "the response must be aborted");
    assert_eq!(up.gets(&pw), 6, "6 requests in all, as the README promises");
    let (a, b) = (MIB as u64, 2 * MIB as u64 - 1);
    let (status, body) = within(get(&edge, &pb, Some((a, b)))).await;
    assert_eq!(status, 206);
    assert!(body.is_err(), "the ranged response must be aborted");
    assert_eq!(settled(&edge).await, 0);
    assert!(!final_file(&edge, &pw).exists() && !final_file(&edge, &pb).exists());
}
