//! Engine tests against the upstream service over real HTTP on loopback (a minimal hyper
//! front; the full server is exercised in tests/sync_replica.rs).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::*;
use crate::config::UpstreamConfig;
use crate::server_sync::{ServerSyncOptions, ServerSyncService};
use crate::simulate::upstream as sim;
use crate::simulate::Catalog;
use crate::store::Store;

async fn front(svc: ServerSyncService) -> SocketAddr {
    let l = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let svc = svc.clone();
            tokio::spawn(async move {
                let f =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let svc = svc.clone();
                        async move {
                            let host = req
                                .headers()
                                .get("host")
                                .and_then(|h| h.to_str().ok())
                                .map(str::to_string);
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let r = svc.handle(body, host).await;
                            let mut resp = http::Response::new(Full::new(Bytes::from(r.body)));
                            *resp.status_mut() = http::StatusCode::from_u16(r.status).unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), f)
                    .await;
            });
        }
    });
    addr
}

struct Up {
    _dir: tempfile::TempDir,
    store: Store,
    cat: Catalog,
    addr: SocketAddr,
}

async fn upstream(n: usize) -> Up {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cat = Catalog::generate(n, 11);
    sim::load_catalog(&store, &cat).unwrap();
    let svc = ServerSyncService::new(store.clone(), ServerSyncOptions::default()).unwrap();
    let addr = front(svc).await;
    Up {
        _dir: dir,
        store,
        cat,
        addr,
    }
}

fn syncer(addr: SocketAddr, store: &Store) -> Syncer {
    let client = UpstreamClient::new(&UpstreamConfig {
        url: Some(format!("http://{addr}/")),
        ..Default::default()
    })
    .unwrap();
    Syncer::new(store.clone(), client, SyncOptions::default(), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_then_incremental_sync_matches_upstream() {
    let n: usize = std::env::var("SYNC_TEST_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let mut up = upstream(n).await;
    let t0 = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let down = Store::open(dir.path()).unwrap();
    let mut s = syncer(up.addr, &down);
    let first = s.run().await.unwrap();
    eprintln!("first sync of {n}: {:?} {first:?}", t0.elapsed());
    assert!(first.fetched > 0);
    // Everything arrived, expired revisions included (WSUS keeps them), with the same XML.
    assert!(up.cat.latest_revisions().any(|r| r.record.expired));
    let want: Vec<_> = up.cat.latest_revisions().map(|r| r.record.key).collect();
    let got: Vec<_> = down
        .latest_revisions()
        .unwrap()
        .into_iter()
        .map(|r| r.record.key)
        .collect();
    assert_eq!(got, want);
    for k in want.iter().take(40) {
        assert_eq!(down.revision_xml(k).unwrap(), up.cat.xml(k));
    }
    assert_eq!(
        down.deployments().unwrap().len(),
        up.store.deployments().unwrap().len()
    );
    // Nothing new: nothing fetched.
    let second = s.run().await.unwrap();
    assert_eq!(second.fetched, 0);
    assert_eq!(second.update_data_calls, 0);
    // New revisions upstream: exactly those.
    let new = up.cat.add_revisions(30);
    sim::load_new_revisions(&up.store, &up.cat).unwrap();
    sim::sync_approvals(&up.store, &up.cat).unwrap();
    let third = s.run().await.unwrap();
    // Only the newest revision of each touched update is listed (SS §3.1.4.5).
    let newest: Vec<_> = new
        .iter()
        .filter(|k| up.cat.latest(&k.update_id).map(|l| l.record.key) == Some(**k))
        .collect();
    assert!(newest.len() >= 25, "{}", newest.len());
    assert_eq!(third.fetched as usize, newest.len());
    for k in newest {
        assert!(down.revision(k).unwrap().is_some(), "{k}");
    }
    assert_eq!(
        down.deployments().unwrap().len(),
        up.store.deployments().unwrap().len()
    );
    let st = down.sync_state().unwrap();
    assert!(
        st.last_success.is_some() && st.sync_anchor.is_some() && st.deployment_anchor.is_some()
    );
}
