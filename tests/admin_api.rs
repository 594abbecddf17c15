//! The admin API and every admin CLI verb against a running admin listener with a seeded
//! store: the real `wsus-edge` binary talks over loopback HTTP to an admin server started in
//! this process on port 0 (store in a temp dir, a scripted sync runner behind a real
//! `SyncHandle`, a content source that publishes real verified files).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sha1::Digest;
use tokio::sync::watch;
use uuid::Uuid;
use wsus_edge::admin::{AdminServer, AdminState, ContentOps, EnsureFuture, Token};
use wsus_edge::config::Config;
use wsus_edge::content::inflight::FetchError;
use wsus_edge::content::verify::Mismatch;
use wsus_edge::model::{
    groups, ApprovalAction, CategoryType, Deployment, FileRecord, RevisionKey, TargetGroup,
    UpdateKind, UpdateRecord,
};
use wsus_edge::store::{Computer, NewRevision, ObjectMeta, ReportedEvent, Store};

const TOKEN: &str = "test-token-0123456789";

fn uid(n: u128) -> Uuid {
    Uuid::from_u128(0xa11c_e000_0000_0000_0000_0000_0000_0000 | n)
}
const SECURITY: u128 = 0x100;
const CRITICAL: u128 = 0x101;
const WIN11: u128 = 0x200;
const SERVER: u128 = 0x201;
const PILOT: u128 = 0x300;

/// A payload and its file record.
fn payload(n: u8, len: usize) -> (FileRecord, Vec<u8>) {
    let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ n).collect();
    let sha1: [u8; 20] = sha1::Sha1::digest(&data).into();
    let sha256: [u8; 32] = sha2::Sha256::digest(&data).into();
    (
        FileRecord {
            name: format!("windows-kb{n}-x64.msu"),
            size: len as u64,
            sha1,
            sha256: Some(sha256),
            upstream_url: Some(format!("http://upstream.invalid/{n}.msu")),
            patching_type: None,
        },
        data,
    )
}

fn category(n: u128, title: &str, ty: CategoryType) -> NewRevision {
    NewRevision {
        record: UpdateRecord {
            key: RevisionKey::new(uid(n), 1),
            kind: UpdateKind::Category,
            category_type: Some(ty),
            title: title.into(),
            kb: None,
            classification: None,
            products: vec![],
            prerequisites: vec![],
            bundled: vec![],
            supersedes: vec![],
            eula_id: None,
            files: vec![],
            expired: false,
            creation_date: None,
        },
        xml: "<Update/>".into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn update(
    n: u128,
    title: &str,
    kb: &str,
    class: u128,
    product: u128,
    files: Vec<FileRecord>,
    supersedes: Vec<Uuid>,
    expired: bool,
) -> NewRevision {
    NewRevision {
        record: UpdateRecord {
            key: RevisionKey::new(uid(n), 200 + n as u32),
            kind: UpdateKind::Software,
            category_type: None,
            title: title.into(),
            kb: Some(kb.into()),
            classification: Some(uid(class)),
            products: vec![uid(product)],
            prerequisites: vec![],
            bundled: vec![],
            supersedes,
            eula_id: None,
            files,
            expired,
            creation_date: Some("2026-11-10T00:00:00Z".into()),
        },
        xml: "<Update/>".into(),
    }
}

fn put_file(store: &Store, content_dir: &Path, f: &FileRecord, data: &[u8]) {
    let path =
        wsus_edge::content::maintain::object_path(content_dir, &f.sha1, &f.extension()).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, data).unwrap();
    store
        .put_object(
            &f.sha1,
            &ObjectMeta {
                ext: f.extension(),
                size: data.len() as u64,
                sha256: sha2::Sha256::digest(data).into(),
                stored_unix: 1,
                last_access_unix: 1,
            },
        )
        .unwrap();
}

/// Files only "upstream" has until prefetched, by SHA-1.
type Upstream = Arc<Mutex<HashMap<[u8; 20], Vec<u8>>>>;

/// What the seeded store holds.
struct Seed {
    /// Cached, approved: update 1's file.
    f1: FileRecord,
    /// Cached, but corrupted on disk (update 2).
    f2: FileRecord,
    /// Not cached; approved (update 6): prefetch fetches it.
    f6: FileRecord,
    /// Cached; update 3 (superseded) only: cleanup removes it.
    f3: FileRecord,
}

fn seed(store: &Store, content_dir: &Path, upstream: &Upstream) -> Seed {
    let (f1, d1) = payload(1, 70_000);
    let (f2, d2) = payload(2, 5_000);
    let (f3, d3) = payload(3, 3_000);
    let (f6, d6) = payload(6, 9_000);
    let revs = vec![
        category(
            SECURITY,
            "Security Updates",
            CategoryType::UpdateClassification,
        ),
        category(
            CRITICAL,
            "Critical Updates",
            CategoryType::UpdateClassification,
        ),
        category(WIN11, "Windows 11", CategoryType::Product),
        category(SERVER, "Windows Server 2025", CategoryType::Product),
        update(
            1,
            "2026-11 Cumulative Update for Windows 11",
            "5040001",
            SECURITY,
            WIN11,
            vec![f1.clone()],
            vec![],
            false,
        ),
        update(
            2,
            "2026-11 Servicing Stack Update for Windows Server 2025",
            "5040002",
            CRITICAL,
            SERVER,
            vec![f2.clone()],
            vec![uid(3)],
            false,
        ),
        update(
            3,
            "2026-10 Servicing Stack Update for Windows Server 2025",
            "5040003",
            CRITICAL,
            SERVER,
            vec![f3.clone()],
            vec![],
            false,
        ),
        update(
            4,
            "Old Defender definition",
            "5040004",
            SECURITY,
            WIN11,
            vec![],
            vec![],
            false,
        ),
        update(
            5,
            "Expired language pack",
            "5040005",
            CRITICAL,
            WIN11,
            vec![],
            vec![],
            true,
        ),
        update(
            6,
            "2026-11 .NET Framework update for Windows 11",
            "5040006",
            SECURITY,
            WIN11,
            vec![f6.clone()],
            vec![],
            false,
        ),
    ];
    store.commit_batch(&revs, &[], None).unwrap();
    put_file(store, content_dir, &f1, &d1);
    // Indexed with the right digests, but the bytes on disk are damaged.
    put_file(store, content_dir, &f2, &d2);
    let mut bad = d2.clone();
    bad[100] ^= 0xff;
    std::fs::write(
        wsus_edge::content::maintain::object_path(content_dir, &f2.sha1, "msu").unwrap(),
        bad,
    )
    .unwrap();
    put_file(store, content_dir, &f3, &d3);
    upstream.lock().unwrap().insert(f6.sha1, d6);

    store
        .add_group(&TargetGroup {
            id: uid(PILOT),
            name: "Pilot".into(),
            parent: None,
        })
        .unwrap();
    for (n, g) in [(1, uid(PILOT)), (6, groups::ALL_COMPUTERS)] {
        store
            .set_deployment(&Deployment {
                id: Uuid::new_v4(),
                update: RevisionKey::new(uid(n), 200 + n as u32),
                group: g,
                action: ApprovalAction::Install,
                deadline: None,
                last_change: time::OffsetDateTime::now_utc(),
                admin_name: "test".into(),
                is_assigned: true,
                download_priority: 1,
            })
            .unwrap();
    }
    // Upstream-style "not approved" for one group: not an approval.
    store
        .set_deployment(&Deployment {
            id: Uuid::new_v4(),
            update: RevisionKey::new(uid(1), 201),
            group: groups::UNASSIGNED_COMPUTERS,
            action: ApprovalAction::Block,
            deadline: None,
            last_change: time::OffsetDateTime::now_utc(),
            admin_name: "test".into(),
            is_assigned: true,
            download_priority: 1,
        })
        .unwrap();
    store.decline(&uid(4)).unwrap();

    let pc = |id: &str, name: &str, groups: Vec<Uuid>| Computer {
        id: id.into(),
        name: name.into(),
        groups,
        registered_unix: 1_790_000_000,
        last_sync_unix: Some(1_795_000_000),
        ..Default::default()
    };
    store
        .upsert_computer(&pc(
            "c0ffee00-0000-0000-0000-000000000001",
            "pc1.branch.example",
            vec![uid(PILOT)],
        ))
        .unwrap();
    store
        .upsert_computer(&pc(
            "c0ffee00-0000-0000-0000-000000000002",
            "pc2.branch.example",
            vec![],
        ))
        .unwrap();
    let ev = |n: u128, event_id: u32| ReportedEvent {
        instance_id: Uuid::new_v4(),
        update: Some(RevisionKey::new(uid(n), 200 + n as u32)),
        event_id,
        hresult: 0,
        time_unix: 1_795_000_100 + n as i64,
        misc: vec![],
    };
    // As WS2025 derives states: event 156 lists (U= not installed, V= installed), 182 failed.
    let mut lists = ev(0, 156);
    lists.update = None;
    lists.misc = vec![format!("U={},{}", uid(6), uid(2)), format!("V={}", uid(1))];
    store
        .add_events(
            "c0ffee00-0000-0000-0000-000000000001",
            &[lists, ev(1, 183), ev(2, 182), ev(6, 147)],
            1_795_000_200,
        )
        .unwrap();
    Seed { f1, f2, f6, f3 }
}

/// Publishes files from the in-memory upstream into the content folder, verified.
struct FakeContent {
    store: Store,
    dir: PathBuf,
    upstream: Upstream,
}

impl ContentOps for FakeContent {
    fn ensure(&self, file: &FileRecord) -> EnsureFuture {
        let data = self.upstream.lock().unwrap().get(&file.sha1).cloned();
        let (store, dir, f) = (self.store.clone(), self.dir.clone(), file.clone());
        Box::pin(async move {
            let data = data.ok_or(FetchError::Status(404))?;
            let got: [u8; 20] = sha1::Sha1::digest(&data).into();
            if got != f.sha1 {
                return Err(FetchError::Mismatch(Mismatch {
                    what: "sha1",
                    expected: hex::encode(f.sha1),
                    actual: hex::encode(got),
                })
                .into());
            }
            put_file(&store, &dir, &f, &data);
            Ok(())
        })
    }
    fn forget(&self, _sha1: &[u8; 20], _size: u64) {}
}

struct TestServer {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    store: Store,
    seed: Seed,
    fail_sync: Arc<AtomicBool>,
    release_sync: Arc<AtomicBool>,
    _shutdown: watch::Sender<bool>,
    _rt: tokio::runtime::Runtime,
}

impl TestServer {
    fn start(replica: bool) -> TestServer {
        Self::start_with(replica, true)
    }

    fn start_with(replica: bool, with_sync: bool) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_path_buf();
        config.admin.listen = "127.0.0.1:0".parse().unwrap();
        if replica {
            config.upstream.url = Some("http://upstream.invalid:8530".into());
        }
        let store = Store::open(&config.store_dir()).unwrap();
        let upstream: Upstream = Arc::default();
        let seed = seed(&store, &config.content_dir(), &upstream);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (handle, reporter, mut triggers) = wsus_edge::sync::handle::channel();
        let fail_sync = Arc::new(AtomicBool::new(false));
        let fail = fail_sync.clone();
        // The scripted sync runner: a quick `config` phase, then `revisions` 1/3 until the test
        // releases it (after the CLI showed that phase), then `updates`, then ok or an error.
        let release = Arc::new(AtomicBool::new(false));
        let gate = release.clone();
        rt.spawn(async move {
            while triggers.recv().await.is_some() {
                reporter.update(|s| {
                    s.running = true;
                    s.last_started = Some("2026-11-25T16:00:00Z".into());
                });
                for done in 0..=3 {
                    reporter.update(|s| {
                        s.phase = Some("config".into());
                        s.done = done;
                        s.total = 3;
                    });
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                reporter.update(|s| {
                    s.phase = Some("revisions".into());
                    s.done = 1;
                });
                // Safety valve only: a test that never releases fails on its own assertions.
                for _ in 0..3000 {
                    if gate.load(Ordering::SeqCst) {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                reporter.update(|s| {
                    s.phase = Some("updates".into());
                    s.done = 3;
                });
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let failed = fail.load(Ordering::SeqCst);
                reporter.update(|s| {
                    s.running = false;
                    s.phase = None;
                    s.last_result = Some(if failed {
                        "error: upstream answered 503 to GetRevisionIdList".into()
                    } else {
                        "ok".into()
                    });
                    s.last_finished = Some("2026-11-25T16:00:02Z".into());
                    s.last_duration_secs = Some(2.0);
                    s.anchor = Some("2026-11-25T16:00:01.000Z".into());
                    s.updates = 6;
                    s.fetched = 10;
                    s.approvals = 2;
                    s.runs += 1;
                });
            }
        });
        let mut state = AdminState::new(
            config.clone(),
            store.clone(),
            Token::new(TOKEN, "test").unwrap(),
        );
        state.sync = with_sync.then_some(handle);
        state.content = Some(Arc::new(FakeContent {
            store: store.clone(),
            dir: config.content_dir(),
            upstream,
        }));
        let (tx, rx) = watch::channel(false);
        let addr = rt.block_on(async {
            let s = AdminServer::bind(config.admin.listen, Arc::new(state))
                .await
                .unwrap();
            let addr = s.local_addr();
            tokio::spawn(s.run(rx));
            addr
        });
        TestServer {
            addr,
            dir,
            store,
            seed,
            fail_sync,
            release_sync: release,
            _shutdown: tx,
            _rt: rt,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs the binary with `--admin` and the token in the environment.
    fn cli(&self, args: &[&str]) -> Output {
        cli_with(
            args,
            &["--admin", &self.url(), "--config", &self.empty_config()],
            Some(TOKEN),
        )
    }

    fn empty_config(&self) -> String {
        let p = self.dir.path().join("empty.toml");
        if !p.exists() {
            std::fs::write(&p, "").unwrap();
        }
        p.to_string_lossy().into_owned()
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, String, String) {
        let (st, ct, _, body) = http("GET", &format!("{}{path}", self.url()), token, &[], None);
        (st, ct, body)
    }
}

/// Blocking HTTP over reqwest (a runtime per call keeps the tests simple): returns
/// (status, content type, set-cookie, body).
fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<(&str, String)>,
) -> (u16, String, Option<String>, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let mut r = c.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some((ct, b)) = body {
            r = r.header("content-type", ct).body(b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let (ct, cookie) = (h("content-type").unwrap_or_default(), h("set-cookie"));
        (status, ct, cookie, resp.text().await.unwrap())
    })
}

fn cli_with(args: &[&str], global: &[&str], token: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wsus-edge"));
    c.args(global).args(args);
    // No stray configuration from the environment.
    for (k, _) in std::env::vars() {
        if k.starts_with("WSUS_EDGE_") {
            c.env_remove(k);
        }
    }
    match token {
        Some(t) => c.env("WSUS_EDGE_TOKEN", t),
        None => c.env_remove("WSUS_EDGE_TOKEN"),
    };
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

fn id_of(n: u128) -> String {
    uid(n).to_string()
}

fn metric(text: &str, line_prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

fn id_set(ns: &[u128]) -> Vec<String> {
    let mut v: Vec<String> = ns.iter().map(|n| id_of(*n)).collect();
    v.sort();
    v
}

#[test]
fn updates_list_json_shape_and_filters() {
    let s = TestServer::start(false);
    let all = json(&s.cli(&["updates", "list", "--json"]));
    assert_eq!(
        ids(&all),
        id_set(&[1, 2, 3, 4, 5, 6]),
        "updates only, no categories"
    );
    let u1 = all
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id_of(1))
        .unwrap();
    assert_eq!(u1["revision"], 201);
    assert_eq!(u1["title"], "2026-11 Cumulative Update for Windows 11");
    assert_eq!(u1["kb"], "5040001");
    assert_eq!(u1["classification"], "Security Updates");
    assert_eq!(u1["products"], serde_json::json!(["Windows 11"]));
    assert_eq!(u1["declined"], false);
    assert_eq!(
        u1["approvals"],
        serde_json::json!([{"group": "Pilot", "group_id": id_of(PILOT), "action": "install", "deadline": null}])
    );

    assert_eq!(
        u1["other_deployments"],
        serde_json::json!([{"group": "Unassigned Computers", "group_id": groups::UNASSIGNED_COMPUTERS.to_string(), "action": "block", "deadline": null}])
    );
    for u in all.as_array().unwrap() {
        for a in u["approvals"].as_array().unwrap() {
            assert!(
                a["action"] == "install" || a["action"] == "uninstall",
                "{a}"
            );
        }
    }
    let q = |args: &[&str]| {
        let mut a = vec!["updates", "list", "--json"];
        a.extend_from_slice(args);
        ids(&json(&s.cli(&a)))
    };
    assert_eq!(q(&["--approved"]), id_set(&[1, 6]));
    // WSUS keeps an update expired upstream as declined (issue 14): 5 is expired.
    assert_eq!(q(&["--declined"]), id_set(&[4, 5]));
    assert_eq!(q(&["--expired"]), id_set(&[5]));
    assert_eq!(q(&["--unapproved"]), id_set(&[2, 3]));
    let d = json(&s.cli(&["updates", "list", "--declined", "--json"]));
    for u in d.as_array().unwrap() {
        assert_eq!(u["declined"], true, "{u}");
        assert_eq!(u["expired"], u["id"] == id_of(5), "{u}");
    }
    assert_eq!(
        q(&["--classification", "critical updates"]),
        id_set(&[2, 3, 5])
    );
    assert_eq!(
        q(&["--classification", &id_of(CRITICAL)]),
        id_set(&[2, 3, 5])
    );
    assert_eq!(q(&["--product", "Windows Server 2025"]), id_set(&[2, 3]));
    assert_eq!(q(&["--text", "KB5040006"]), id_set(&[6]));
    assert_eq!(q(&["--text", "servicing", "--unapproved"]), id_set(&[2, 3]));

    // Flags of one group are exclusive (usage error, exit 2).
    let o = s.cli(&["updates", "list", "--approved", "--declined"]);
    assert_eq!(o.status.code(), Some(2));

    let o = s.cli(&["updates", "list", "--classification", "Nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("unknown classification"),
        "{}",
        stderr(&o)
    );

    // Human output: an aligned table.
    let t = ok(&s.cli(&["updates", "list"]));
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 7, "{t}");
    let col = lines[0].find("TITLE").unwrap();
    for l in &lines[1..] {
        assert!(l.len() > col, "{l}");
        assert_ne!(&l[col..col + 1], " ", "title column starts at {col}: {l:?}");
        assert_eq!(
            &l[col - 2..col],
            "  ",
            "two spaces before the column: {l:?}"
        );
    }
}

#[test]
fn updates_show_has_files() {
    let s = TestServer::start(false);
    let u = json(&s.cli(&["updates", "show", &id_of(1), "--json"]));
    assert_eq!(u["id"], id_of(1));
    assert_eq!(u["kb"], "5040001");
    let f = &u["files"][0];
    assert_eq!(f["name"], s.seed.f1.name);
    assert_eq!(f["size"], 70_000);
    assert_eq!(f["sha1"], hex::encode(s.seed.f1.sha1));
    assert_eq!(f["sha256"], hex::encode(s.seed.f1.sha256.unwrap()));
    assert!(
        f["url"]
            .as_str()
            .unwrap()
            .ends_with(&s.seed.f1.content_path()),
        "{f}"
    );
    assert_eq!(f["cached"], true);
    let u6 = json(&s.cli(&["updates", "show", "KB5040006", "--json"]));
    assert_eq!(u6["files"][0]["cached"], false);
    let u3 = json(&s.cli(&["updates", "show", &id_of(3), "--json"]));
    assert_eq!(u3["superseded_by"], serde_json::json!([id_of(2)]));

    let t = ok(&s.cli(&["updates", "show", "KB5040001"]));
    assert!(
        t.contains("Cumulative Update") && t.contains("Pilot:install"),
        "{t}"
    );
    let o = s.cli(&["updates", "show", &Uuid::nil().to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o).lines().count(), 1);
}

#[test]
fn approve_and_decline_in_autonomous_mode() {
    let s = TestServer::start(false);
    let out = ok(&s.cli(&[
        "updates",
        "approve",
        &id_of(3),
        "KB5040005",
        "--group",
        "pilot",
        "--deadline",
        "2026-12-01T18:00:00Z",
    ]));
    assert!(out.contains("approved 2 update(s) for Pilot"), "{out}");
    ok(&s.cli(&[
        "updates",
        "approve",
        &id_of(3),
        "--group",
        &groups::UNASSIGNED_COMPUTERS.to_string(),
        "--action",
        "uninstall",
    ]));
    let u3 = json(&s.cli(&["updates", "show", &id_of(3), "--json"]));
    let approvals = u3["approvals"].as_array().unwrap();
    assert_eq!(approvals.len(), 2, "{u3}");
    assert!(approvals.contains(&serde_json::json!({"group": "Pilot", "group_id": id_of(PILOT), "action": "install", "deadline": "2026-12-01T18:00:00Z"})));
    assert!(approvals
        .iter()
        .any(|a| a["group"] == "Unassigned Computers"
            && a["action"] == "uninstall"
            && a["deadline"].is_null()));
    assert_eq!(s.store.deployments_of(&uid(3)).unwrap().len(), 2);

    ok(&s.cli(&["updates", "decline", &id_of(2), &id_of(3)]));
    assert!(s.store.is_declined(&uid(3)).unwrap());
    assert!(
        s.store.deployments_of(&uid(3)).unwrap().is_empty(),
        "decline removes approvals"
    );
    let d = json(&s.cli(&["updates", "list", "--declined", "--json"]));
    assert_eq!(ids(&d), id_set(&[2, 3, 4, 5]));

    let o = s.cli(&["updates", "approve", &id_of(1), "--group", "No Such Group"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no group"), "{}", stderr(&o));
    let o = s.cli(&[
        "updates",
        "approve",
        &id_of(1),
        "--group",
        "Pilot",
        "--deadline",
        "soon",
    ]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn replica_refuses_local_approvals_and_groups() {
    let s = TestServer::start(true);
    for args in [
        vec!["updates", "approve", "KB5040002", "--group", "Pilot"],
        vec!["updates", "decline", "KB5040002"],
        vec!["groups", "add", "Local"],
        vec!["groups", "remove", "Pilot"],
    ] {
        let o = s.cli(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = stderr(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.contains("replica of http://upstream.invalid:8530"), "{e}");
    }
    assert!(s.store.deployments_of(&uid(2)).unwrap().is_empty());
    assert!(!s.store.is_declined(&uid(2)).unwrap());
    // Reading still works.
    assert_eq!(
        ids(&json(&s.cli(&["updates", "list", "--approved", "--json"]))),
        id_set(&[1, 6])
    );
    let st = json(&s.cli(&["status", "--json"]));
    assert_eq!(st["mode"], "replica");
}

#[test]
fn groups_list_add_remove() {
    let s = TestServer::start(false);
    let g = json(&s.cli(&["groups", "list", "--json"]));
    let all = groups::ALL_COMPUTERS.to_string();
    assert!(g
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"id": all, "name": "All Computers", "parent": null})));
    assert!(g.as_array().unwrap().contains(&serde_json::json!({"id": groups::UNASSIGNED_COMPUTERS.to_string(), "name": "Unassigned Computers", "parent": all})));
    assert!(g
        .as_array()
        .unwrap()
        .contains(&serde_json::json!({"id": id_of(PILOT), "name": "Pilot", "parent": all})));

    let added = json(&s.cli(&["groups", "add", "Servers", "--parent", "Pilot", "--json"]));
    assert_eq!(added["parent"], id_of(PILOT));
    let g = json(&s.cli(&["groups", "list", "--json"]));
    assert!(g
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["name"] == "Servers" && x["parent"] == id_of(PILOT)));
    let o = s.cli(&["groups", "add", "servers"]);
    assert_eq!(o.status.code(), Some(1), "duplicate names are refused");

    let t = ok(&s.cli(&["groups", "list"]));
    assert!(
        t.starts_with("ID") && t.contains("Servers") && t.contains("Pilot"),
        "{t}"
    );

    ok(&s.cli(&["groups", "remove", "Pilot"]));
    let g = json(&s.cli(&["groups", "list", "--json"]));
    assert_eq!(
        g.as_array().unwrap().len(),
        2,
        "Pilot and its subgroup are gone: {g}"
    );
    let o = s.cli(&["groups", "remove", "All Computers"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("built-in"), "{}", stderr(&o));
}

#[test]
fn computers_list_and_show() {
    let s = TestServer::start(false);
    let c = json(&s.cli(&["computers", "list", "--json"]));
    let arr = c.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    let pc1 = &arr[0];
    assert_eq!(pc1["name"], "pc1.branch.example");
    assert_eq!(pc1["id"], "c0ffee00-0000-0000-0000-000000000001");
    assert_eq!(pc1["groups"], serde_json::json!(["Pilot"]));
    assert_eq!(
        (
            pc1["needed"].as_u64(),
            pc1["installed"].as_u64(),
            pc1["failed"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(pc1["last_sync"], "2026-11-18T11:06:40Z");
    assert_eq!(pc1["last_report"], "2026-11-18T11:10:00Z");
    assert_eq!(
        arr[1]["groups"],
        serde_json::json!(["Unassigned Computers"])
    );
    assert!(arr[1]["last_report"].is_null());

    let by = |g: &str| {
        json(&s.cli(&["computers", "list", "--group", g, "--json"]))
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(by("Pilot"), ["pc1.branch.example"]);
    assert_eq!(by(&id_of(PILOT)), ["pc1.branch.example"]);
    assert_eq!(
        by(&groups::UNASSIGNED_COMPUTERS.to_string()),
        ["pc2.branch.example"]
    );
    assert_eq!(by("All Computers").len(), 2);

    let d = json(&s.cli(&["computers", "show", "PC1", "--json"]));
    assert_eq!(d["name"], "pc1.branch.example");
    let st: HashMap<String, String> = d["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["id"].as_str().unwrap().into(),
                u["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(st[&id_of(1)], "installed");
    assert_eq!(st[&id_of(2)], "failed");
    assert_eq!(st[&id_of(6)], "needed");
    let t = ok(&s.cli(&["computers", "show", "pc1.branch.example"]));
    assert!(t.contains("Last report:") && t.contains("failed"), "{t}");
    let t = ok(&s.cli(&["computers", "list"]));
    assert!(
        t.starts_with("NAME") && t.contains("pc2.branch.example"),
        "{t}"
    );
    let o = s.cli(&["computers", "show", "nobody"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn classifications_products_and_subscription() {
    let s = TestServer::start(false);
    let c = json(&s.cli(&["classifications", "list", "--json"]));
    assert_eq!(c.as_array().unwrap().len(), 2);
    assert!(c
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["subscribed"] == true));
    let crit = c
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["title"] == "Critical Updates")
        .unwrap();
    assert_eq!(crit["updates"], 3);

    let out = ok(&s.cli(&["subscription", "set", "--product", "windows 11"]));
    assert!(out.contains(&id_of(WIN11)), "{out}");
    let p = json(&s.cli(&["products", "list", "--json"]));
    let sub = |t: &str| {
        p.as_array()
            .unwrap()
            .iter()
            .find(|x| x["title"] == t)
            .unwrap()["subscribed"]
            .clone()
    };
    assert_eq!(sub("Windows 11"), true);
    assert_eq!(sub("Windows Server 2025"), false);
    let c = json(&s.cli(&["classifications", "list", "--json"]));
    assert!(
        c.as_array()
            .unwrap()
            .iter()
            .all(|x| x["subscribed"] == true),
        "classifications unchanged"
    );

    ok(&s.cli(&[
        "subscription",
        "set",
        "--classification",
        "Security Updates",
        "--product",
        "all",
    ]));
    let sj = json(&s.cli(&["subscription", "show", "--json"]));
    assert_eq!(sj["products"], serde_json::json!([]));
    assert_eq!(sj["classifications"], serde_json::json!([id_of(SECURITY)]));
    // The sync runner reads it from the store.
    let stored = s.store.subscription(&Config::default().sync);
    assert_eq!(stored.classifications, vec![id_of(SECURITY)]);

    let o = s.cli(&["subscription", "set", "--product", "Windows 95"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown product"), "{}", stderr(&o));
    let t = ok(&s.cli(&["products", "list"]));
    assert!(t.starts_with("ID") && t.contains("SUBSCRIBED"), "{t}");
}

#[test]
fn sync_follows_progress_and_reports_the_result() {
    let s = TestServer::start(true);
    // Follow the CLI's progress lines; release the runner once it showed `revisions`.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsus-edge"))
        .args(["--admin", &s.url(), "--config", &s.empty_config(), "sync"])
        .env("WSUS_EDGE_TOKEN", TOKEN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut err, &mut line).unwrap() == 0 {
            break;
        }
        seen.push(line.clone());
        if line.contains("sync: revisions") {
            s.release_sync.store(true, Ordering::SeqCst);
            break;
        }
    }
    assert!(
        s.release_sync.load(Ordering::SeqCst),
        "progress shown: {seen:?}"
    );
    let o = child.wait_with_output().unwrap();
    let out = ok(&o);
    assert!(
        out.contains("sync finished: 6 updates, 10 revisions fetched, 2 approvals"),
        "{out}"
    );
    let st = json(&s.cli(&["sync", "status", "--json"]));
    assert_eq!(st["last_result"], "ok");
    assert_eq!(st["runs"], 1);
    assert_eq!(st["running"], false);
    assert_eq!(st["available"], true);
    let t = ok(&s.cli(&["sync", "status"]));
    assert!(t.contains("last result:   ok"), "{t}");
    let m = s.get("/metrics", Some(TOKEN)).2;
    assert_eq!(
        metric(&m, "wsus_edge_sync_last_result_success "),
        1.0,
        "{m}"
    );
    // 2026-11-25T16:00:02Z, as the runner reported it.
    assert!(metric(&m, "wsus_edge_sync_last_success_timestamp_seconds ") >= 1_795_000_000.0);

    s.fail_sync.store(true, Ordering::SeqCst);
    let o = s.cli(&["sync", "--now"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    let last = e.lines().last().unwrap();
    assert!(last.contains("sync failed: upstream answered 503"), "{e}");
    assert_eq!(json(&s.cli(&["sync", "status", "--json"]))["runs"], 2);
    let m = s.get("/metrics", Some(TOKEN)).2;
    assert_eq!(
        metric(&m, "wsus_edge_sync_last_result_success "),
        0.0,
        "{m}"
    );
    assert_eq!(metric(&m, "wsus_edge_sync_running "), 0.0);
}

#[test]
fn content_status_verify_prefetch() {
    let s = TestServer::start(false);
    let st = json(&s.cli(&["content", "status", "--json"]));
    assert_eq!(st["bytes_stored"], 70_000 + 5_000 + 3_000);
    assert_eq!(st["objects"], 3);
    assert_eq!(st["approved_missing"], 1);
    for k in [
        "hit_ratio",
        "bytes_saved",
        "bytes_upstream",
        "hits",
        "misses",
    ] {
        assert!(st.get(k).is_some(), "{k} missing: {st}");
    }
    let t = ok(&s.cli(&["content", "status"]));
    assert!(
        t.contains("stored:") && t.contains("hit ratio:") && t.contains("saved on uplink:"),
        "{t}"
    );

    let before = metric(
        &s.get("/metrics", Some(TOKEN)).2,
        "wsus_edge_hash_mismatches_total",
    );
    let o = s.cli(&["content", "verify"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a bad object was found: {}",
        stdout(&o)
    );
    let out = stdout(&o);
    assert!(
        out.contains("checked 3 object(s)") && out.contains("1 quarantined"),
        "{out}"
    );
    let bad = s.seed.f2.content_path();
    let bad_name = bad.rsplit('/').next().unwrap();
    assert!(s.dir.path().join("quarantine").join(bad_name).is_file());
    assert!(!wsus_edge::content::maintain::object_path(
        &s.dir.path().join("content"),
        &s.seed.f2.sha1,
        "msu"
    )
    .unwrap()
    .exists());
    assert!(s.store.get_object(&s.seed.f2.sha1).unwrap().is_none());
    let after = metric(
        &s.get("/metrics", Some(TOKEN)).2,
        "wsus_edge_hash_mismatches_total",
    );
    assert!(after >= before + 1.0, "{before} -> {after}");
    let v = json(&s.cli(&["content", "verify", "--json"]));
    assert_eq!(v["done"], 2);
    assert_eq!(v["quarantined"], serde_json::json!([]));

    let p = json(&s.cli(&["content", "prefetch", "--json"]));
    assert_eq!(
        (
            p["files"].as_u64(),
            p["cached"].as_u64(),
            p["downloaded"].as_u64()
        ),
        (Some(2), Some(1), Some(1)),
        "{p}"
    );
    assert!(s.store.get_object(&s.seed.f6.sha1).unwrap().is_some());
    assert_eq!(
        json(&s.cli(&["content", "status", "--json"]))["approved_missing"],
        0
    );
}

#[test]
fn cleanup_dry_run_then_for_real() {
    let s = TestServer::start(false);
    let f3_path = wsus_edge::content::maintain::object_path(
        &s.dir.path().join("content"),
        &s.seed.f3.sha1,
        "msu",
    )
    .unwrap();
    let d = json(&s.cli(&["cleanup", "--dry-run", "--json"]));
    assert_eq!(d["dry_run"], true);
    let ups = d["updates"].as_array().unwrap();
    assert_eq!(ups.len(), 3, "{d}");
    for (n, why) in [(3, "superseded"), (4, "declined"), (5, "expired")] {
        assert!(
            ups.iter()
                .any(|u| u.as_str().unwrap().starts_with(&id_of(n))
                    && u.as_str().unwrap().ends_with(&format!("({why})"))),
            "{d}"
        );
    }
    assert_eq!(d["files"], 1);
    assert_eq!(d["bytes"], 3_000);
    assert!(f3_path.is_file(), "dry run changes nothing");
    assert_eq!(ids(&json(&s.cli(&["updates", "list", "--json"]))).len(), 6);

    let t = ok(&s.cli(&["cleanup"]));
    assert!(
        t.contains("removed 3 update(s), 3 revision(s), 1 file(s)"),
        "{t}"
    );
    assert!(!f3_path.exists());
    assert!(s.store.get_object(&s.seed.f3.sha1).unwrap().is_none());
    assert_eq!(
        ids(&json(&s.cli(&["updates", "list", "--json"]))),
        id_set(&[1, 2, 6])
    );
    assert!(
        s.store.get_object(&s.seed.f1.sha1).unwrap().is_some(),
        "approved content stays"
    );
}

#[test]
fn status_one_screen() {
    let s = TestServer::start(false);
    let st = json(&s.cli(&["status", "--json"]));
    assert_eq!(st["health"], "ok");
    assert_eq!(st["mode"], "autonomous");
    assert_eq!(st["updates"], 6);
    assert_eq!(st["approved"], 2);
    // 4 declined and 5 expired upstream: both declined, as `updates list --declined` shows
    // (the seed; issue 14).
    assert_eq!(st["declined"], 2);
    assert_eq!(st["computers"], 2);
    assert_eq!(st["computers_with_failures"], 1);
    let t = ok(&s.cli(&["status"]));
    assert!(t.starts_with("health:     ok\n"), "{t}");
    assert!(t.contains("computers:  2 (1 with failures)"), "{t}");
}

#[test]
fn unreachable_server_and_bad_tokens_are_one_line_errors() {
    let s = TestServer::start(false);
    // Nothing listens on port 1.
    let o = cli_with(
        &["updates", "list"],
        &[
            "--admin",
            "http://127.0.0.1:1",
            "--config",
            &s.empty_config(),
        ],
        Some(TOKEN),
    );
    assert_eq!(o.status.code(), Some(3));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("cannot reach the admin API at http://127.0.0.1:1"),
        "{e}"
    );

    let o = cli_with(
        &["status"],
        &["--admin", &s.url(), "--config", &s.empty_config()],
        Some("wrong"),
    );
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    let o = cli_with(
        &["groups", "list"],
        &["--admin", &s.url(), "--config", &s.empty_config()],
        None,
    );
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));

    // Exit codes are documented in --help.
    let h = stdout(&cli_with(&["updates", "--help"], &[], None));
    assert!(
        h.contains("Exit codes:") && h.contains("3  the admin API cannot be reached"),
        "{h}"
    );
}

#[test]
fn config_file_gives_the_address_and_the_token() {
    let s = TestServer::start(false);
    let token_file = s.dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let cfg = s.dir.path().join("wsus-edge.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ndata_dir = \"{}\"\n[admin]\nlisten = \"{}\"\ntoken_file = \"{}\"\n",
            s.dir.path().display(),
            s.addr,
            token_file.display()
        ),
    )
    .unwrap();
    let g = json(&cli_with(
        &["groups", "list", "--json"],
        &["--config", cfg.to_str().unwrap()],
        None,
    ));
    assert_eq!(g.as_array().unwrap().len(), 3);
}

#[test]
fn api_refuses_missing_or_wrong_token() {
    let s = TestServer::start(false);
    let (st, ct, body) = s.get("/api/updates", None);
    assert_eq!(st, 401);
    assert!(ct.starts_with("application/json"));
    assert!(body.contains("\"error\""), "{body}");
    assert_eq!(s.get("/api/updates", Some("test-token-012345678")).0, 401);
    assert_eq!(s.get("/api/updates", Some(&format!("{TOKEN}x"))).0, 401);
    assert_eq!(s.get("/metrics", None).0, 401);
    assert_eq!(s.get("/api/updates", Some(TOKEN)).0, 200);
    let (st, _, body) = s.get("/healthz", None);
    assert_eq!((st, body.as_str()), (200, "ok\n"), "health needs no token");
    let (st, _, _, _) = http(
        "POST",
        &format!("{}/api/updates/decline", s.url()),
        Some("nope"),
        &[],
        Some((
            "application/json",
            format!("{{\"ids\":[\"{}\"]}}", id_of(2)),
        )),
    );
    assert_eq!(st, 401);
    assert!(!s.store.is_declined(&uid(2)).unwrap());
    assert_eq!(s.get("/api/nope", Some(TOKEN)).0, 404);
}

#[test]
fn metrics_change_as_requests_are_served() {
    let s = TestServer::start(false);
    let (st, ct, m) = s.get("/metrics", Some(TOKEN));
    assert_eq!(st, 200);
    assert!(ct.starts_with("text/plain"), "{ct}");
    for name in [
        "wsus_edge_content_requests_total{result=\"hit\"}",
        "wsus_edge_content_requests_total{result=\"miss\"}",
        "wsus_edge_content_requests_total{result=\"coalesced\"}",
        "wsus_edge_content_requests_total{result=\"error\"}",
        "wsus_edge_content_bytes_total{source=\"cache\"}",
        "wsus_edge_content_bytes_total{source=\"upstream\"}",
        "wsus_edge_hash_mismatches_total ",
        "wsus_edge_sync_last_success_timestamp_seconds ",
        "wsus_edge_sync_duration_seconds ",
        "wsus_edge_clients_seen ",
        "wsus_edge_http_requests_total{service=\"admin\",status=\"200\"}",
    ] {
        assert!(m.contains(name), "{name} missing:\n{m}");
    }
    assert_eq!(metric(&m, "wsus_edge_clients_seen "), 2.0);
    let ok200 = "wsus_edge_http_requests_total{service=\"admin\",status=\"200\"}";
    let e401 = "wsus_edge_http_requests_total{service=\"admin\",status=\"401\"}";
    let (a, b) = (metric(&m, ok200), metric(&m, e401));
    for _ in 0..3 {
        assert_eq!(s.get("/api/groups", Some(TOKEN)).0, 200);
    }
    assert_eq!(s.get("/api/groups", None).0, 401);
    let m2 = s.get("/metrics", Some(TOKEN)).2;
    assert!(
        metric(&m2, ok200) >= a + 4.0,
        "{} -> {}",
        a,
        metric(&m2, ok200)
    );
    assert!(metric(&m2, e401) >= b + 1.0);
}

#[test]
fn status_page_with_bearer_or_session_cookie() {
    let s = TestServer::start(false);
    let (st, ct, html) = s.get("/", Some(TOKEN));
    assert_eq!(st, 200);
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(html.contains("id=\"health\">healthy<"), "{html}");
    assert!(
        html.contains("2026-11 Cumulative Update for Windows 11"),
        "top updates by bytes"
    );
    assert!(
        html.contains("pc1.branch.example"),
        "computers with failures"
    );
    assert!(!html.contains("<script"), "no scripts");

    let (st, ct, html) = s.get("/", None);
    assert_eq!(st, 401);
    assert!(ct.starts_with("text/html"));
    assert!(
        html.contains("<form method=\"post\" action=\"/login\""),
        "{html}"
    );

    let url = format!("{}/login", s.url());
    let form = "application/x-www-form-urlencoded";
    let (st, _, cookie, _) = http("POST", &url, None, &[], Some((form, "token=wrong".into())));
    assert_eq!(st, 401);
    assert!(cookie.is_none());
    let (st, _, cookie, _) = http(
        "POST",
        &url,
        None,
        &[],
        Some((form, format!("token={TOKEN}"))),
    );
    assert_eq!(st, 303);
    let cookie = cookie.unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let (st, ct, _, html) = http(
        "GET",
        &format!("{}/", s.url()),
        None,
        &[("cookie", &pair)],
        None,
    );
    assert_eq!(st, 200);
    assert!(ct.starts_with("text/html") && html.contains("Hit ratio"));
    // The cookie is for reading only.
    let (st, _, _, _) = http(
        "POST",
        &format!("{}/api/cleanup", s.url()),
        None,
        &[("cookie", &pair)],
        None,
    );
    assert_eq!(st, 401);
    let (st, _, _, _) = http(
        "GET",
        &format!("{}/api/status", s.url()),
        None,
        &[("cookie", &pair)],
        None,
    );
    assert_eq!(st, 200);
}

/// Renders the status page in headless Chromium (Debian's `chromium`) through
/// `tests/ui/screenshot.sh`; skipped when Chromium is not installed.
#[test]
fn status_page_screenshot_in_headless_chromium() {
    let have = Command::new("sh")
        .args(["-c", "command -v chromium || command -v chromium-browser"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        eprintln!("chromium not installed: screenshot check skipped");
        return;
    }
    let s = TestServer::start(false);
    let png = s.dir.path().join("status.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui/screenshot.sh");
    let o = Command::new("bash")
        .arg(&script)
        .arg(s.url())
        .arg(&png)
        .env("WSUS_EDGE_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((w, h), (1200, 900));
    assert!(
        bytes.len() > 15_000,
        "a rendered page, not a blank one: {} bytes",
        bytes.len()
    );
    // Kept for a human look: target/tmp/admin-status.png.
    let _ = std::fs::copy(
        &png,
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("admin-status.png"),
    );
}

#[test]
fn sync_on_an_autonomous_server_says_why_not() {
    let s = TestServer::start_with(false, false);
    let o = s.cli(&["sync"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("no upstream configured"), "{e}");
    let st = json(&s.cli(&["sync", "status", "--json"]));
    assert_eq!(st["available"], false);
}
