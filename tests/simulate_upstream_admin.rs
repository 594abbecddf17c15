//! `wsus-edge simulate-upstream --config FILE` runs the admin API on `[admin] listen` with
//! `[admin] token_file`, as `serve` does (issue 14, item 2): the real binary is started, the
//! admin verbs run against it as separate processes with only `--config`, and their effect is
//! checked through the admin API and through MS-WSUSSS, by a downstream replica that syncs
//! from the simulated upstream.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use uuid::Uuid;
use wsus_edge::app::RunningServer;
use wsus_edge::config::Config;
use wsus_edge::model::ApprovalAction;

/// The simulated upstream process; killed when dropped (a failing test leaves nothing behind).
struct SimProcess {
    child: Child,
    url: String,
    admin: String,
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `simulate-upstream` and reads its address and its admin API's from stdout.
fn start_sim(conf: &Path) -> SimProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsus-edge"))
        .args(["--config", conf.to_str().unwrap(), "--log", "warn"])
        .args(["simulate-upstream", "--updates", "120", "--seed", "7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut sim = SimProcess {
        child,
        url: String::new(),
        admin: String::new(),
    };
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("simulated upstream: ") {
            sim.url = u.rsplit(' ').next().unwrap().to_string();
        }
        if let Some(a) = line.strip_prefix("admin API at ") {
            sim.admin = a.to_string();
            break;
        }
    }
    assert!(sim.url.starts_with("http://"), "no upstream line");
    assert!(!sim.admin.is_empty(), "no admin API line");
    sim
}

/// Runs an admin verb as its own process with nothing but `--config` (no `--admin`, no token
/// in the environment): the address and the token come from the config file.
fn cli(conf: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsus-edge"))
        .arg("--config")
        .arg(conf)
        .args(args)
        .env_remove("WSUS_EDGE_TOKEN")
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).unwrap()
}

fn write_config(dir: &Path) -> (PathBuf, PathBuf, String) {
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let token = dir.join("secrets").join("sim-admin.token");
    let conf = dir.join("sim.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[admin]\nlisten = \"{admin}\"\ntoken_file = \"{}\"\n",
            dir.join("sim").display(),
            token.display()
        ),
    )
    .unwrap();
    (conf, token, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_verbs_work_against_simulate_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let (conf, token_path, admin) = write_config(dir.path());
    let sim = start_sim(&conf);
    assert_eq!(
        sim.admin,
        format!("http://{admin}"),
        "[admin] listen honoured"
    );

    // The token file is where `[admin] token_file` says, created private as `serve` does.
    let token = std::fs::read_to_string(&token_path).unwrap();
    assert_eq!(token.trim().len(), 64);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(!dir.path().join("sim").join("admin.token").exists());

    // Two updates nobody has approved or declined yet.
    let unapproved = json(&cli(&conf, &["updates", "list", "--unapproved", "--json"]));
    let ids: Vec<String> = unapproved
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 2, "{unapproved}");
    let (approve, decline) = (ids[0].clone(), ids[1].clone());

    // Groups, approve, decline: each a separate process against the simulated upstream.
    ok(&cli(&conf, &["groups", "add", "Branch Kiosks"]));
    let groups = json(&cli(&conf, &["groups", "list", "--json"]));
    let kiosks = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "Branch Kiosks")
        .unwrap_or_else(|| panic!("{groups}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&cli(&conf, &["groups", "add", "Doomed"]));
    ok(&cli(&conf, &["groups", "remove", "Doomed"]));
    let groups = json(&cli(&conf, &["groups", "list", "--json"]));
    assert!(!groups.to_string().contains("Doomed"), "{groups}");
    ok(&cli(
        &conf,
        &["updates", "approve", &approve, "--group", "Branch Kiosks"],
    ));
    ok(&cli(&conf, &["updates", "decline", &decline]));

    // The effect, through the admin API.
    let shown = json(&cli(&conf, &["updates", "show", &approve, "--json"]));
    let approvals = shown["approvals"].as_array().unwrap();
    assert!(
        approvals
            .iter()
            .any(|a| a["group"] == "Branch Kiosks" && a["action"] == "install"),
        "{shown}"
    );
    let declined = json(&cli(&conf, &["updates", "list", "--declined", "--json"]));
    assert!(
        declined
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == decline.as_str()),
        "{declined}"
    );

    // Every other verb answers (read-only ones; `sync --now` is a replica's verb).
    for verb in [
        &["computers", "list", "--json"][..],
        &["classifications", "list"],
        &["products", "list"],
        &["subscription", "show", "--json"],
        &["sync", "status", "--json"],
        &["content", "status", "--json"],
        &["cleanup", "--dry-run", "--json"],
        &["status", "--json"],
    ] {
        let o = cli(&conf, verb);
        assert!(
            o.status.code() == Some(0),
            "{verb:?}: exit {:?}: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let st = json(&cli(&conf, &["sync", "status", "--json"]));
    assert_eq!(st["available"], false, "{st}");

    // Through MS-WSUSSS: a replica syncs from the simulated upstream and has the new group,
    // the approval for it and the decline (GetDeployments' TargetGroups, Deployments and
    // HiddenUpdates).
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.data_dir = dir.path().join("replica");
    c.admin.listen = "127.0.0.1:0".parse().unwrap();
    c.upstream.url = Some(sim.url.clone());
    let replica = RunningServer::start(c).await.unwrap();
    let mut h = replica.state().sync.clone().unwrap();
    let status = loop {
        let st = h.status();
        if st.runs >= 1 && !st.running {
            break st;
        }
        tokio::time::timeout(Duration::from_secs(300), h.changed())
            .await
            .expect("the replica's sync finished")
            .expect("sync handle open");
    };
    assert_eq!(status.last_result.as_deref(), Some("ok"), "{status:?}");
    let store = replica.store();
    let kiosks: Uuid = kiosks.parse().unwrap();
    assert_eq!(
        store.group(&kiosks).unwrap().map(|g| g.name),
        Some("Branch Kiosks".to_string())
    );
    let approve: Uuid = approve.parse().unwrap();
    let deps = store.deployments_of(&approve).unwrap();
    assert!(
        deps.iter()
            .any(|d| d.group == kiosks && d.action == ApprovalAction::Install),
        "{deps:?}"
    );
    let decline: Uuid = decline.parse().unwrap();
    assert!(store.is_declined(&decline).unwrap());
    replica.stop().await.unwrap();
    drop(sim);
}
