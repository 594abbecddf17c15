//! Issue 15 item 4, the part this branch covers: the `[content] min_free` floor and the
//! health check. A real full disk cannot be made here (no small tmpfs or loop mount in the
//! test environment), so "the disk is full" is a floor set above the disk's real free space:
//! that proves the floor's behaviour (a miss refused with 507 before anything is written,
//! `/healthz` unhealthy with the reason, and serving again by itself once the condition is
//! gone), not what sled does on a real ENOSPC (see the README's security notes).

#[path = "support/mod.rs"]
mod support;

use support::{bytes_of, client, Behaviour, TestEdge, TestUpstream};
use wsus_edge::admin::{AdminServer, AdminState, Token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_below_the_free_space_floor_gets_507_and_writes_nothing() {
    let up = TestUpstream::start().await;
    let data = bytes_of(300_000, 15);
    let path = up.put(&data, "cab", Behaviour::Normal);
    // More than any disk here has free.
    let edge = TestEdge::start(Some(up.url()), |c| c.content.min_free = u64::MAX / 4).await;
    let r = client()
        .get(format!("{}{}", edge.url(), path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 507);
    let body = r.text().await.unwrap();
    assert!(body.contains("content.min_free"), "{body}");
    assert_eq!(up.gets(&path), 0, "upstream not asked");
    let files: Vec<_> = walk(&edge.content_dir());
    assert!(files.is_empty(), "nothing written: {files:?}");

    // Space is back (here: the floor is under the free space again): served without a
    // restart.
    edge.state.content.set_min_free(1 << 20);
    let r = client()
        .get(format!("{}{}", edge.url(), path))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data[..]);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_unhealthy_with_the_reason_when_the_disk_is_below_the_floor() {
    let t = tempfile::tempdir().unwrap();
    let store = wsus_edge::store::Store::open(&t.path().join("meta")).unwrap();
    let start = |min_free: u64, store: wsus_edge::store::Store| {
        let mut config = wsus_edge::config::Config::default();
        config.server.data_dir = t.path().to_path_buf();
        config.content.min_free = min_free;
        AdminState::new(
            config,
            store,
            Token::new("healthz-test-token-0123", "t").unwrap(),
        )
    };
    for (floor, want) in [(u64::MAX / 4, 503), (1 << 20, 200)] {
        let s = AdminServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            std::sync::Arc::new(start(floor, store.clone())),
        )
        .await
        .unwrap();
        let url = format!("http://{}/healthz", s.local_addr());
        let (_tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(s.run(rx));
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(r.status(), want);
        let body = r.text().await.unwrap();
        if want == 503 {
            assert!(body.starts_with("unhealthy: disk: "), "{body}");
            assert!(body.contains("content.min_free"), "{body}");
        } else {
            assert_eq!(body, "ok\n");
        }
    }
}
