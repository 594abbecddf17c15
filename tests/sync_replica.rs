//! Replica sync end to end: a simulated upstream (the real server over a generated catalog),
//! replicas (the real server with `upstream.url`), a fault-injecting proxy between them, and
//! the real binary for the kill -9 test. Real HTTP on loopback, port 0 everywhere.

#[path = "support/sync_proxy.rs"]
mod sync_proxy;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sha1::{Digest, Sha1};
use sync_proxy::{Inject, SyncProxy};
use uuid::Uuid;
use wsus_edge::app::{RunningServer, SimUpstream};
use wsus_edge::config::Config;
use wsus_edge::model::{groups, ApprovalAction, RevisionKey};
use wsus_edge::store::Store;
use wsus_edge::sync::{SyncHandle, SyncStatus};
use wsus_edge::wire::soap::decode;
use wsus_edge::wire::sss::GetRevisionIdListResponse;
use wsus_edge::wire::ErrorCode;

fn config(dir: &Path) -> Config {
    let mut c = Config::default();
    c.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.server.data_dir = dir.to_path_buf();
    c.sync.interval = Duration::from_secs(24 * 3600);
    c
}

async fn sim(dir: &Path, n: usize) -> SimUpstream {
    SimUpstream::start(n, 42, config(&dir.join("up")))
        .await
        .unwrap()
}

async fn replica(dir: &Path, name: &str, upstream: &str) -> RunningServer {
    let mut c = config(&dir.join(name));
    c.upstream.url = Some(upstream.to_string());
    RunningServer::start(c).await.unwrap()
}

fn handle(s: &RunningServer) -> SyncHandle {
    s.state().sync.clone().expect("a replica has a sync runner")
}

/// Waits until `runs` syncs have finished.
async fn synced(s: &RunningServer, runs: u64) -> SyncStatus {
    let mut h = handle(s);
    loop {
        let st = h.status();
        if st.runs >= runs && !st.running {
            return st;
        }
        tokio::time::timeout(Duration::from_secs(300), h.changed())
            .await
            .expect("sync progress")
            .expect("runner alive");
    }
}

/// Triggers a sync and waits for it.
async fn resync(s: &RunningServer) -> SyncStatus {
    let runs = handle(s).status().runs;
    assert!(handle(s).trigger());
    synced(s, runs + 1).await
}

/// Newest revisions of non-expired updates.
fn live_updates(store: &Store) -> BTreeSet<RevisionKey> {
    store
        .latest_revisions()
        .unwrap()
        .into_iter()
        .filter(|r| !r.record.expired)
        .map(|r| r.record.key)
        .collect()
}

fn approvals(store: &Store) -> BTreeSet<(Uuid, RevisionKey, Uuid, i32)> {
    store
        .deployments()
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.update, d.group, d.action.code()))
        .collect()
}

fn assert_mirrors(up: &Store, down: &Store) {
    assert_eq!(live_updates(up), live_updates(down), "updates");
    assert_eq!(approvals(up), approvals(down), "approvals");
    assert_eq!(
        up.declined_updates().unwrap(),
        down.declined_updates().unwrap()
    );
    assert_eq!(up.accepted_eulas().unwrap(), down.accepted_eulas().unwrap());
    let g = |s: &Store| -> BTreeSet<Uuid> { s.groups().unwrap().iter().map(|g| g.id).collect() };
    assert_eq!(g(up), g(down), "groups");
}

fn revision_lists(p: &SyncProxy) -> Vec<GetRevisionIdListResponse> {
    p.answers("GetRevisionIdList")
        .iter()
        .map(|b| decode(b.as_bytes()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_of_10000_updates_then_incremental() {
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path(), 10_000).await;
    let proxy = SyncProxy::start(up.url()).await;
    let edge = replica(dir.path(), "edge", &proxy.url()).await;
    let st = synced(&edge, 1).await;
    assert_eq!(st.last_result.as_deref(), Some("ok"), "{st:?}");
    assert_mirrors(up.store(), edge.store());
    assert!(live_updates(edge.store()).len() > 9_000);
    let batches = proxy.calls("GetUpdateData");
    assert!(batches >= 100, "batches of at most 100: {batches}");

    // Nothing new: only anchors and empty lists.
    proxy.reset();
    let st = resync(&edge).await;
    assert_eq!(st.last_result.as_deref(), Some("ok"));
    assert_eq!(st.fetched, 0);
    assert_eq!(proxy.calls("GetUpdateData"), 0);
    let lists = revision_lists(&proxy);
    assert_eq!(lists.len(), 2, "config pass and software pass");
    assert!(lists.iter().all(|l| l.new_revisions.is_empty()));

    // 100 new revisions upstream: exactly those (the newest per update).
    let new = up.mutate(|c| c.add_revisions(100)).unwrap();
    let newest: BTreeSet<RevisionKey> = {
        let cat = up.catalog.read().unwrap();
        new.iter()
            .filter(|k| cat.latest(&k.update_id).map(|l| l.record.key) == Some(**k))
            .copied()
            .collect()
    };
    let before = live_updates(edge.store());
    proxy.reset();
    let st = resync(&edge).await;
    assert_eq!(st.last_result.as_deref(), Some("ok"));
    let listed: BTreeSet<RevisionKey> = revision_lists(&proxy)
        .into_iter()
        .flat_map(|l| l.new_revisions)
        .collect();
    // Exactly the new revisions, plus bundle members and prerequisites of them that travel
    // with their parents and that the replica already had (so they are not fetched again).
    assert!(newest.is_subset(&listed));
    for k in listed.difference(&newest) {
        assert!(before.contains(k), "{k} listed but neither new nor held");
    }
    assert_eq!(st.fetched as usize, newest.len());
    assert_mirrors(up.store(), edge.store());
    edge.stop().await.unwrap();
    up.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_changes_upstream_reach_the_replica() {
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path(), 600).await;
    let edge = replica(dir.path(), "edge", &up.url()).await;
    synced(&edge, 1).await;
    assert_mirrors(up.store(), edge.store());
    let (approved, removed, declined) = up
        .mutate(|c| {
            let ids: Vec<Uuid> = c
                .of_kind(wsus_edge::model::UpdateKind::Software)
                .filter(|r| !r.record.expired && !c.is_declined(&r.record.key.update_id))
                .filter(|r| c.deployments_of(&r.record.key.update_id).next().is_none())
                .map(|r| r.record.key.update_id)
                .take(2)
                .collect();
            let gone = c
                .deployments()
                .next()
                .map(|d| (d.update.update_id, d.group))
                .unwrap();
            let dep = c
                .approve(
                    ids[0],
                    groups::ALL_COMPUTERS,
                    wsus_edge::model::ApprovalAction::Install,
                    None,
                )
                .unwrap();
            assert!(c.unapprove(gone.0, gone.1));
            c.decline(ids[1]).unwrap();
            (dep, gone, ids[1])
        })
        .unwrap();
    let st = resync(&edge).await;
    assert_eq!(st.last_result.as_deref(), Some("ok"), "{st:?}");
    assert_mirrors(up.store(), edge.store());
    let deps = edge.store().deployments().unwrap();
    assert!(deps.iter().any(|d| d.id == approved));
    assert!(!deps
        .iter()
        .any(|d| d.update.update_id == removed.0 && d.group == removed.1));
    assert!(edge.store().is_declined(&declined).unwrap());
    edge.stop().await.unwrap();
    up.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_drops_cookie_expiry_and_short_answers() {
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path(), 800).await;
    let proxy = SyncProxy::start(up.url()).await;
    // A SOAP fault on one batch (issue 14): the batch is bisected; its halves answer, so
    // nothing is skipped and the sync completes.
    proxy.inject(
        "GetUpdateData",
        3,
        Inject::Fault(ErrorCode::InternalServerError, "boom".into()),
    );
    let edge = replica(dir.path(), "edge", &proxy.url()).await;
    let st = synced(&edge, 1).await;
    assert_eq!(st.last_result.as_deref(), Some("ok"), "{st:?}");
    assert!(st.skipped.is_empty(), "{st:?}");
    assert_mirrors(up.store(), edge.store());
    // A fault outside GetUpdateData is not about one revision: it stops the sync cleanly,
    // with its reason, and no anchor moves.
    proxy.inject(
        "GetRevisionIdList",
        1,
        Inject::Fault(ErrorCode::InternalServerError, "boom".into()),
    );
    let before = edge.store().sync_state().unwrap().sync_anchor;
    let st = resync(&edge).await;
    let msg = st.last_result.clone().unwrap();
    assert!(
        msg.contains("InternalServerError") && msg.contains("boom"),
        "{msg}"
    );
    let state = edge.store().sync_state().unwrap();
    assert_eq!(state.sync_anchor, before);
    assert!(!state.last_sync.unwrap().success);

    // Dropped connections (retried), an expired cookie (renewed) and a short answer (the
    // rest asked again) in one sync of new revisions: it still completes and mirrors upstream.
    up.mutate(|c| c.add_revisions(700)).unwrap();
    proxy.reset();
    proxy.inject("GetRevisionIdList", 1, Inject::Drop);
    proxy.inject("GetUpdateData", 0, Inject::Drop);
    proxy.inject(
        "GetUpdateData",
        2,
        Inject::Fault(ErrorCode::InvalidCookie, "cookie expired".into()),
    );
    proxy.inject("GetUpdateData", 4, Inject::Shorten(30));
    let st = resync(&edge).await;
    assert_eq!(st.last_result.as_deref(), Some("ok"), "{st:?}");
    assert_mirrors(up.store(), edge.store());
    assert_eq!(proxy.calls("GetCookie"), 2, "renewed once");
    assert_eq!(proxy.calls("GetAuthorizationCookie"), 2);
    edge.stop().await.unwrap();
    up.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instance_chain_with_content_through_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path(), 400).await;
    let a = replica(dir.path(), "a", &up.url()).await;
    synced(&a, 1).await;
    let b = replica(dir.path(), "b", &a.url()).await;
    let st = synced(&b, 1).await;
    assert_eq!(st.last_result.as_deref(), Some("ok"), "{st:?}");
    assert_mirrors(a.store(), b.store());
    assert_mirrors(up.store(), b.store());
    // Same content digests declared.
    let files = |s: &Store| -> BTreeSet<([u8; 20], Option<[u8; 32]>, u64)> {
        s.latest_revisions()
            .unwrap()
            .into_iter()
            .filter(|r| !r.record.expired)
            .flat_map(|r| r.record.files)
            .map(|f| (f.sha1, f.sha256, f.size))
            .collect()
    };
    let (fu, fb) = (files(up.store()), files(b.store()));
    assert!(
        fu == fb,
        "content digests: {} upstream, {} on B",
        fu.len(),
        fb.len()
    );
    // B's content miss is filled through A's cache.
    let f = b
        .store()
        .latest_revisions()
        .unwrap()
        .into_iter()
        .flat_map(|r| r.record.files)
        .next()
        .unwrap();
    let url = format!("{}/{}", b.url(), f.content_path());
    let body = reqwest::get(&url).await.unwrap();
    assert_eq!(body.status(), 200);
    let bytes = body.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, f.size);
    assert_eq!(<[u8; 20]>::from(Sha1::digest(&bytes)), f.sha1);
    // A publishes (fsync + rename) just after releasing the last byte: give it a moment.
    let in_a = a.state().config.content_dir().join(&f.content_path()[8..]);
    for _ in 0..100 {
        if in_a.is_file() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(in_a.is_file(), "A cached {}", in_a.display());
    b.stop().await.unwrap();
    a.stop().await.unwrap();
    up.stop().await.unwrap();
}

/// The real binary, killed with SIGKILL while a GetUpdateData answer is held, then restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_get_update_data() {
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path(), 2_000).await;
    let proxy = SyncProxy::start(up.url()).await;
    proxy.inject("GetUpdateData", 12, Inject::Hold);
    let data = dir.path().join("edge");
    let conf = dir.path().join("edge.toml");
    // The child's admin API (to learn when the resumed sync has finished) on a free port.
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[upstream]\nurl = \"{}\"\n[sync]\ninterval = \"24h\"\n[admin]\nlisten = \"{}\"\n",
            data.display(),
            proxy.url(),
            admin
        ),
    )
    .unwrap();
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_wsus-edge"))
            .args(["--config", conf.to_str().unwrap(), "--log", "warn", "serve"])
            .env("WSUS_EDGE_TOKEN", "kill9-test-token")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = spawn();
    tokio::time::timeout(Duration::from_secs(300), proxy.held())
        .await
        .expect("the sync reached the held batch");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    proxy.release();

    // No partial batch: every delivered GetUpdateData answer is in the store whole or not
    // at all, and no software anchor was written.
    let delivered: Vec<Vec<RevisionKey>> = proxy
        .answers("GetUpdateData")
        .iter()
        .map(|b| {
            let r: wsus_edge::wire::sss::GetUpdateDataResponse = decode(b.as_bytes()).unwrap();
            r.updates.iter().map(|u| u.id).collect()
        })
        .collect();
    {
        let store = Store::open(&data.join("meta")).unwrap();
        for batch in &delivered {
            let present = batch
                .iter()
                .filter(|k| store.revision(k).unwrap().is_some())
                .count();
            assert!(
                present == 0 || present == batch.len(),
                "partial batch: {present} of {}",
                batch.len()
            );
        }
        assert!(store.revision_count() > 0);
        assert_eq!(store.sync_state().unwrap().sync_anchor, None);
    }

    // Restart: the sync resumes and ends equal to an uninterrupted one.
    let mut child = spawn();
    let done = async {
        let http = reqwest::Client::new();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let status = http
                .get(format!("http://{admin}/api/sync"))
                .bearer_auth("kill9-test-token")
                .send()
                .await;
            let Ok(r) = status else { continue };
            let Ok(v) = r.json::<serde_json::Value>().await else {
                continue;
            };
            if v["last_result"] == "ok" {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(300), done)
        .await
        .expect("resumed sync finished");
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    let store = Store::open(&data.join("meta")).unwrap();
    assert!(store.sync_state().unwrap().last_success.is_some());
    let clean = replica(dir.path(), "clean", &up.url()).await;
    synced(&clean, 1).await;
    assert_mirrors(clean.store(), &store);
    assert_mirrors(up.store(), &store);
    clean.stop().await.unwrap();
    up.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_downloads_approved_content_after_sync() {
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path(), 300).await;
    let mut c = config(&dir.path().join("edge"));
    c.upstream.url = Some(up.url());
    c.content.mode = wsus_edge::config::ContentMode::Prefetch;
    let edge = RunningServer::start(c).await.unwrap();
    let st = synced(&edge, 1).await;
    assert_eq!(st.last_result.as_deref(), Some("ok"));
    // What must be fetched, computed from the upstream's catalog (not from the replica's
    // store): Install approvals of updates neither declined nor expired, their approved
    // revision's payloads, and the payloads of every bundled update, recursively, at its
    // latest revision.
    let (want_sha1s, member_only) = {
        let cat = up.catalog.read().unwrap();
        let live = |k: &RevisionKey| cat.revision(k).filter(|r| !r.record.expired);
        let mut todo: Vec<RevisionKey> = cat
            .deployments()
            .filter(|d| d.action == ApprovalAction::Install)
            .filter(|d| !cat.is_declined(&d.update.update_id))
            .map(|d| d.update)
            .filter(|k| live(k).is_some())
            .collect();
        let direct: BTreeSet<[u8; 20]> = todo
            .iter()
            .flat_map(|k| cat.files_of(k).into_iter().map(|f| f.sha1))
            .collect();
        let (mut seen, mut sha1s) = (BTreeSet::new(), BTreeSet::new());
        while let Some(k) = todo.pop() {
            if !seen.insert(k) {
                continue;
            }
            sha1s.extend(cat.files_of(&k).into_iter().map(|f| f.sha1));
            let Some(r) = live(&k) else { continue };
            for m in &r.record.bundled {
                if let Some(latest) = cat.latest(m).filter(|r| !r.record.expired) {
                    todo.push(latest.record.key);
                }
            }
        }
        let member_only = sha1s.difference(&direct).count();
        (sha1s, member_only)
    };
    assert!(
        member_only > 0,
        "the catalog approves bundles whose members carry files"
    );
    let want = edge.store().approved_files().unwrap();
    assert_eq!(
        want.iter().map(|f| f.sha1).collect::<BTreeSet<_>>(),
        want_sha1s,
        "the replica's approved files are the catalog's"
    );
    let content = edge.state().config.content_dir();
    let all_there = || {
        want.iter()
            .all(|f| content.join(&f.content_path()[8..]).is_file())
    };
    let t = std::time::Instant::now();
    while !all_there() {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "prefetch did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Only approved (Install) content was fetched: an unapproved update's file is absent.
    let approved: BTreeSet<[u8; 20]> = want.iter().map(|f| f.sha1).collect();
    let other = edge
        .store()
        .latest_revisions()
        .unwrap()
        .into_iter()
        .flat_map(|r| r.record.files)
        .find(|f| !approved.contains(&f.sha1))
        .unwrap();
    assert!(!content.join(&other.content_path()[8..]).is_file());
    edge.stop().await.unwrap();
    up.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_endpoints_answer_any_case_and_the_double_slash_path() {
    use wsus_edge::wire::soap::{encode, soap_action_header, Operation};
    use wsus_edge::wire::sss::{
        GetAuthConfig, GetAuthConfigResponse, GetAuthorizationCookie,
        GetAuthorizationCookieResponse, GetConfigData, GetConfigDataResponse,
    };
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path(), 50).await;
    let http = reqwest::Client::new();
    async fn post<O: Operation>(http: &reqwest::Client, url: String, op: &O) -> (u16, String) {
        let r = http
            .post(url)
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", soap_action_header(O::ACTION))
            .body(encode(op))
            .send()
            .await
            .unwrap();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/xml"), "{ct}");
        (r.status().as_u16(), r.text().await.unwrap())
    }
    let (s, b) = post(
        &http,
        format!(
            "{}/serversyncwebservice/SERVERSYNCWEBSERVICE.asmx",
            up.url()
        ),
        &GetAuthConfig,
    )
    .await;
    assert_eq!(s, 200);
    let cfg: GetAuthConfigResponse = decode(b.as_bytes()).unwrap();
    let svc = &cfg.auth_info[0].service_url;
    let auth = GetAuthorizationCookie {
        account_name: "b.example.org".into(),
        account_guid: Uuid::new_v4().to_string(),
    };
    for path in [
        format!("/{svc}"),
        format!("//{svc}"),
        "/dssauthwebservice/dssauthwebservice.asmx".into(),
    ] {
        let (s, b) = post(&http, format!("{}{path}", up.url()), &auth).await;
        assert_eq!(s, 200, "{path}");
        let _: GetAuthorizationCookieResponse = decode(b.as_bytes()).unwrap();
    }
    // A forged cookie: HTTP 500 with a WSUS-shaped fault.
    let (s, b) = post(
        &http,
        format!(
            "{}/ServerSyncWebService/ServerSyncWebService.asmx",
            up.url()
        ),
        &GetConfigData {
            cookie: wsus_edge::wire::sss::Cookie {
                expiration: time::OffsetDateTime::now_utc(),
                encrypted_data: Some(vec![0; 57]),
            },
            config_anchor: None,
        },
    )
    .await;
    assert_eq!(s, 500);
    assert!(
        b.contains("<faultcode>soap:Client</faultcode>")
            && b.contains("<ErrorCode>InvalidCookie</ErrorCode>"),
        "{b}"
    );
    assert!(decode::<GetConfigDataResponse>(b.as_bytes()).is_err());
    up.stop().await.unwrap();
}
