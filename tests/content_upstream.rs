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

/// What a client got: the status, and the body or how many bytes came before it failed.
async fn get(url: &str, range: Option<(u64, u64)>) -> (u16, Result<Vec<u8>, usize>) {
    let mut req = client().get(url);
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
    let edge = TestEdge::start(Some(format!("http://{down}")), |_| {}).await;
    let whole = bytes_of(300_000, 1);
    let big = bytes_of(3 * MIB, 2);
    edge.state
        .store
        .put_expected_files(&[record(&whole), record(&big)])
        .unwrap();
    // Whole object (sequential fetch).
    let (status, _) = get(
        &format!("{}{}", edge.url(), content_path(&whole, "cab")),
        None,
    )
    .await;
    assert_eq!(status, 502);
    // A range of a declared multi-slice object (slice fetch).
    let (status, _) = get(
        &format!("{}{}", edge.url(), content_path(&big, "cab")),
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
    let edge = TestEdge::start(Some(up.url()), |c| {
        c.upstream.stall_timeout = Duration::from_millis(500);
    })
    .await;
    edge.state
        .store
        .put_expected_files(&[record(&whole), record(&big)])
        .unwrap();
    let (status, _) = get(&format!("{}{pw}", edge.url()), None).await;
    assert_eq!(status, 504);
    let (status, _) = get(
        &format!("{}{pb}", edge.url()),
        Some((MIB as u64, MIB as u64)),
    )
    .await;
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
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    edge.state
        .store
        .put_expected_files(&[record(&a), record(&b), record(&c)])
        .unwrap();
    assert_eq!(get(&format!("{}{pa}", edge.url()), None).await.0, 502);
    assert_eq!(get(&format!("{}{pb}", edge.url()), None).await.0, 404);
    assert_eq!(
        get(
            &format!("{}{pb}", edge.url()),
            Some((MIB as u64, 2 * MIB as u64))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        get(&format!("{}{pc}", edge.url()), Some((0, 10))).await.0,
        502
    );
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
    let edge = TestEdge::start(Some(up.url()), |c| {
        c.upstream.stall_timeout = Duration::from_secs(30);
    })
    .await;
    edge.state
        .store
        .put_expected_files(&[record(&data)])
        .unwrap();
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
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    edge.state
        .store
        .put_expected_files(&[record(&declared)])
        .unwrap();
    let (status, _) = get(&format!("{}{pd}", edge.url()), None).await;
    assert_eq!(status, 502);
    let (status, _) = get(&format!("{}{pu}", edge.url()), None).await;
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
    let edge = TestEdge::start(Some(up.url()), |c| {
        c.upstream.redirect_hosts = vec![listed];
    })
    .await;
    edge.state
        .store
        .put_expected_files(&[record(&a), record(&b)])
        .unwrap();
    let (status, body) = get(&format!("{}{pa}", edge.url()), None).await;
    assert_eq!((status, body.as_deref().ok()), (200, Some(&a[..])));
    let (status, body) = get(&format!("{}{pb}", edge.url()), None).await;
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
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    edge.state
        .store
        .put_expected_files(&[record(&chunked), record(&lying)])
        .unwrap();
    let (status, body) = get(&format!("{}{pc}", edge.url()), None).await;
    assert_eq!(status, 200);
    let cut = body.expect_err("a response past the declared size must be aborted");
    assert!(
        cut < chunked.len(),
        "the last byte waits for a verdict: {cut}"
    );
    let (status, _) = get(&format!("{}{pl}", edge.url()), None).await;
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
    let (status, body) = get(&format!("{}{path}", edge.url()), None).await;
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
    let edge = TestEdge::start(Some(up.url()), |c| {
        c.upstream.stall_timeout = Duration::from_millis(300);
    })
    .await;
    edge.state
        .store
        .put_expected_files(&[record(&data)])
        .unwrap();
    let (status, body) = get(&format!("{}{path}", edge.url()), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body.expect_err("a stalled download must end the response"),
        300_000
    );
    // The first GET, then resumes from the stall that make no progress.
    assert_eq!(
        up.gets(&path),
        1 + wsus_edge::content::fetch::MAX_RETRIES as usize
    );
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
    let objects = edge.state.store.objects().unwrap();
    assert_eq!(objects.len(), 1);
    assert_eq!(edge.state.content.total_size(), data.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_copy_left_by_an_older_store_is_removed_at_start() {
    let up = Double::start().await;
    let data = Arc::new(bytes_of(70_000, 42));
    let (cab, exe) = (content_path(&data, "cab"), content_path(&data, "exe"));
    up.route(&cab, Reply::Object(Served::honest(&data)));
    let edge = TestEdge::start(Some(up.url()), |_| {}).await;
    assert_eq!(get(&format!("{}{cab}", edge.url()), None).await.0, 200);
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
    let (status, body) = get(&format!("{}{exe}", edge.url()), None).await;
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
    let (status, body) = get(&format!("{}{path}", edge.url()), None).await;
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
    let (status, body) = get(&format!("{}{path}", edge.url()), None).await;
    assert_eq!((status, body.as_deref().ok()), (200, Some(&[][..])));
    assert_eq!(settled(&edge).await, 0);
    assert_eq!(copies(&edge, &path).len(), 1);
}
