//! The admin API inside the real server (`Server::with_admin`, as `wsus-edge serve` runs it):
//! token file created private, `content prefetch` through the real content cache from a
//! loopback upstream, a client download moving the metrics, `content verify` quarantining a
//! damaged object (and the cache's size total following), replica refusals, and none of the
//! admin endpoints on the client port.

mod support;

#[path = "support/admin_cli.rs"]
mod admin_cli;

use std::path::Path;

use admin_cli::cli;
use sha1::Digest;
use support::{bytes_of, Behaviour, TestUpstream};
use uuid::Uuid;
use wsus_edge::app::Server;
use wsus_edge::config::Config;
use wsus_edge::model::{
    groups, ApprovalAction, Deployment, FileRecord, RevisionKey, UpdateKind, UpdateRecord,
};
use wsus_edge::store::NewRevision;

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_in_the_running_server() {
    let up = TestUpstream::start().await;
    let data = bytes_of(300_000, 7);
    // (In replica mode the sync runner also talks to this upstream; only content GETs count.)
    let up_path = up.put(&data, "msu", Behaviour::Normal);
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.data_dir = dir.path().to_path_buf();
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.upstream.url = Some(up.url());
    let server = Server::bind(c).await.unwrap().with_admin().await.unwrap();
    let client_addr = server.local_addr();
    let admin = server.admin_addr().unwrap();
    assert_ne!(client_addr.port(), admin.port());
    let state = server.state().clone();

    // The token file was created private.
    let token_path = dir.path().join("admin.token");
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(token.len(), 64);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // An approved update whose file only upstream has (as a sync would leave it).
    let file = FileRecord {
        name: "windows11.0-kb5040100-x64.msu".into(),
        size: data.len() as u64,
        sha1: sha1::Sha1::digest(&data).into(),
        sha256: Some(sha2::Sha256::digest(&data).into()),
        upstream_url: None,
        patching_type: None,
    };
    let key = RevisionKey::new(Uuid::from_u128(0xabc), 100);
    let rec = UpdateRecord {
        key,
        kind: UpdateKind::Software,
        category_type: None,
        title: "2026-11 Cumulative Update".into(),
        kb: Some("5040100".into()),
        classification: None,
        products: vec![],
        prerequisites: vec![],
        bundled: vec![],
        supersedes: vec![],
        eula_id: None,
        files: vec![file.clone()],
        expired: false,
        creation_date: None,
    };
    state
        .store
        .commit_batch(
            &[NewRevision {
                record: rec,
                xml: "<Update/>".into(),
            }],
            &[],
            None,
        )
        .unwrap();
    state
        .store
        .set_deployment(&Deployment {
            id: Uuid::new_v4(),
            update: key,
            group: groups::ALL_COMPUTERS,
            action: ApprovalAction::Install,
            deadline: None,
            last_change: time::OffsetDateTime::now_utc(),
            admin_name: "upstream".into(),
            is_assigned: true,
            download_priority: 1,
        })
        .unwrap();

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));

    // Prefetch through the real cache.
    let o = cli(admin, &token, &["content", "prefetch", "--json"]).await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["downloaded"], 1, "{p}");
    assert_eq!(up.gets(&up_path), 1);
    assert_eq!(state.content.total_size(), data.len() as u64);

    // A client download is a hit and moves the metrics.
    let (_, m0) = get(&format!("http://{admin}/metrics"), Some(&token)).await;
    let hit = "wsus_edge_content_requests_total{result=\"hit\"}";
    let cache = "wsus_edge_content_bytes_total{source=\"cache\"}";
    let url = format!("http://{client_addr}/{}", file.content_path());
    let body = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(body.len(), data.len());
    let (_, m1) = get(&format!("http://{admin}/metrics"), Some(&token)).await;
    assert!(metric(&m1, hit) >= metric(&m0, hit) + 1.0, "{m1}");
    assert!(metric(&m1, cache) >= metric(&m0, cache) + data.len() as f64);

    let o = cli(admin, &token, &["content", "status", "--json"]).await;
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(s["bytes_stored"], data.len());
    assert_eq!(s["approved_missing"], 0);
    assert!(s["hits"].as_u64().unwrap() >= 1);

    // None of the admin API on the client port.
    for path in ["/api/status", "/metrics", "/", "/healthz"] {
        let (st, _) = get(&format!("http://{client_addr}{path}"), Some(&token)).await;
        assert_ne!(st, 200, "{path} answered on the client port");
    }

    // Replica: local approvals are refused.
    let o = cli(admin, &token, &["updates", "decline", "KB5040100"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("replica"));

    // Damage the object on disk: verify quarantines it and the cache forgets its size.
    let obj = Path::new(&state.config.content_dir()).join(&file.content_path()["Content/".len()..]);
    let mut bad = std::fs::read(&obj).unwrap();
    bad[5] ^= 1;
    std::fs::write(&obj, bad).unwrap();
    let o = cli(admin, &token, &["content", "verify"]).await;
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(!obj.exists());
    assert_eq!(state.content.total_size(), 0);
    assert!(dir.path().join("quarantine").read_dir().unwrap().count() == 1);
    // The next client request fetches it again from upstream, verified.
    let body = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], &data[..]);
    assert_eq!(up.gets(&up_path), 2);

    let _ = tx.send(());
    run.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(admin).await.is_err(),
        "the admin listener stops with the server"
    );
}
