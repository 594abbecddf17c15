//! The disconnected side: after an import, `serve` with no upstream answers payload requests
//! for imported files as cache hits, byte-exact, and holds the imported approvals.

mod support;
#[path = "support/transfer_fixtures.rs"]
mod transfer_fixtures;

use sha2::{Digest, Sha256};
use support::TestEdge;
use transfer_fixtures::*;
use wsus_edge::metrics;
use wsus_edge::store::Store;
use wsus_edge::transfer::{self, ExportOptions, ImportOptions, KeyPair};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_payloads_are_cache_hits_without_upstream() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    seed_catalog(&src, 60, 1);
    let dst = tempfile::tempdir().unwrap();
    let (want_revs, want_deps, files) = {
        let store = Store::open(&store_dir(&src)).unwrap();
        transfer::export(
            &store,
            &content_dir(&src),
            ExportOptions {
                out: t.path().join("pkg"),
                since: None,
                approved_only: false,
                volume_size: None,
                signing_key: Some(KeyPair {
                    signing: ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]),
                }),
            },
        )
        .unwrap();
        let objects = store.objects().unwrap();
        let files: Vec<_> = objects
            .iter()
            .take(5)
            .map(|(sha1, _)| store.expected_file(sha1).unwrap().unwrap())
            .collect();
        (store.revision_count(), store.deployments().unwrap(), files)
    };
    {
        let store = Store::open(&store_dir(dst.path())).unwrap();
        transfer::import(
            &store,
            &content_dir(dst.path()),
            &staging_dir(dst.path()),
            &t.path().join("pkg"),
            &ImportOptions {
                trust: vec![ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]).verifying_key()],
                allow_older: false,
            },
        )
        .unwrap();
    }

    let edge = TestEdge::start_in(dst, None, |_| {}).await;
    assert_eq!(edge.state.store.revision_count(), want_revs);
    assert_eq!(edge.state.store.deployments().unwrap(), want_deps);
    let (hits, misses) = (
        metrics::content_requests("hit"),
        metrics::content_requests("miss"),
    );
    let client = support::client();
    for f in &files {
        let url = format!("{}/{}", edge.url(), f.content_path());
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        let body = resp.bytes().await.unwrap();
        assert_eq!(body.len() as u64, f.size);
        let got: [u8; 32] = Sha256::digest(&body).into();
        assert_eq!(Some(got), f.sha256, "{url}");
    }
    assert_eq!(
        metrics::content_requests("hit") - hits,
        files.len() as u64,
        "every imported payload is a hit"
    );
    assert_eq!(metrics::content_requests("miss"), misses, "no miss");
    edge.shutdown().await;
}

/// Starts an admin listener on 127.0.0.1:0 over the store of `data` (held, as a running
/// server holds it). Returns its URL and the shutdown sender.
async fn admin_over(
    data: &std::path::Path,
    store: Store,
) -> (String, tokio::sync::watch::Sender<bool>) {
    use wsus_edge::admin::{AdminServer, AdminState, Token};
    let mut config = wsus_edge::config::Config::default();
    config.server.data_dir = data.to_path_buf();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    let state = AdminState::new(config, store, Token::new(ADMIN_TOKEN, "test").unwrap());
    let s = AdminServer::bind("127.0.0.1:0".parse().unwrap(), std::sync::Arc::new(state))
        .await
        .unwrap();
    let url = format!("http://{}", s.local_addr());
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(s.run(rx));
    (url, tx)
}

const ADMIN_TOKEN: &str = "transfer-test-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_import_through_the_admin_api_of_running_servers() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    seed_catalog(&src, 60, 1);
    let client = reqwest::Client::new();
    let (src_url, _s1) = admin_over(&src, Store::open(&store_dir(&src)).unwrap()).await;
    let dst_store = Store::open(&store_dir(&dst)).unwrap();
    let (dst_url, _s2) = admin_over(&dst, dst_store.clone()).await;

    // Offline use of a held data dir is refused; the API is the way in.
    let pkg = t.path().join("pkg");
    let (key, public, _) = transfer::keygen(&t.path().join("site")).unwrap();
    let r = client
        .post(format!("{src_url}/api/export"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"out": pkg, "volume_size": "256KiB", "sign": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["anchor"].as_str().unwrap().starts_with("wse1."), "{v}");

    let bad = client
        .post(format!("{dst_url}/api/import"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"path": t.path().join("pkg.002"), "trust": [&public]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let e: serde_json::Value = bad.json().await.unwrap();
    assert!(e["error"].as_str().unwrap().contains("first volume"), "{e}");

    // No trust list in the request and none in the server's config: refused.
    let untrusted = client
        .post(format!("{dst_url}/api/import"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"path": t.path().join("pkg.001")}))
        .send()
        .await
        .unwrap();
    assert_eq!(untrusted.status(), 400);
    let e: serde_json::Value = untrusted.json().await.unwrap();
    assert!(
        e["error"].as_str().unwrap().contains("no trusted keys"),
        "{e}"
    );
    assert_eq!(dst_store.revision_count(), 0);

    let r = client
        .post(format!("{dst_url}/api/import"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"path": t.path().join("pkg.001"), "trust": [public]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["published"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(content_listing(&src), content_listing(&dst));
    assert!(dst_store.revision_count() > 0);
    let unauth = client
        .post(format!("{dst_url}/api/import"))
        .json(&serde_json::json!({"path": t.path().join("pkg.001")}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_online_mode_goes_through_the_admin_api() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    seed_catalog(&src, 40, 1);
    let (src_url, _s1) = admin_over(&src, Store::open(&store_dir(&src)).unwrap()).await;
    let (dst_url, _s2) = admin_over(&dst, Store::open(&store_dir(&dst)).unwrap()).await;
    let w = t.path().to_path_buf();
    let bin = env!("CARGO_BIN_EXE_wsus-edge");
    let run = move |args: Vec<String>| {
        std::process::Command::new(bin)
            .args(&args)
            .current_dir(&w)
            .env("WSUS_EDGE_TOKEN", ADMIN_TOKEN)
            .output()
            .unwrap()
    };
    transfer::keygen(&t.path().join("site")).unwrap();
    let r2 = run.clone();
    let (e, held) = tokio::task::spawn_blocking(move || {
        let held = r2(vec![
            "export".into(),
            "--out".into(),
            "p".into(),
            "--data-dir".into(),
            src.display().to_string(),
        ]);
        let e = r2(vec![
            "--admin".into(),
            src_url,
            "export".into(),
            "--out".into(),
            "pkg".into(),
            "--sign".into(),
            "site.key".into(),
        ]);
        (e, held)
    })
    .await
    .unwrap();
    assert!(!held.status.success());
    assert!(String::from_utf8_lossy(&held.stderr).contains("leave out --data-dir"));
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    let out = String::from_utf8_lossy(&e.stdout).into_owned();
    assert!(
        out.lines().last().unwrap().starts_with("anchor: wse1."),
        "{out}"
    );
    let i = tokio::task::spawn_blocking(move || {
        run(vec![
            "--admin".into(),
            dst_url,
            "import".into(),
            "pkg".into(),
            "--trust".into(),
            "site.pub".into(),
        ])
    })
    .await
    .unwrap();
    assert!(i.status.success(), "{}", String::from_utf8_lossy(&i.stderr));
    assert!(String::from_utf8_lossy(&i.stdout).contains("payloads published: "));
    assert_eq!(
        content_listing(&t.path().join("src")),
        content_listing(&dst)
    );
}
