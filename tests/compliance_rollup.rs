//! Reporting rollup in a chain: a simulated upstream → A → B, A and B real `wsus-edge serve`
//! processes, B syncing from A through a fault-injecting proxy, scripted agents on B reporting
//! over MS-WUSP. After `wsus-edge rollup` on B, A lists B's computers with
//! `computers list --include-downstream` and counts them in `updates status`; a rollup cut off
//! after A applied it and before B heard back (B killed mid-rollup, then restarted) neither
//! duplicates nor loses a computer. Expected states follow the reports by the spec rules
//! (event 156 `U=`/`V=` lists, 182 failures), written here from what the agents sent.

#[path = "support/edge_process.rs"]
mod edge_process;
#[path = "support/reports.rs"]
mod reports;
#[path = "support/sync_proxy.rs"]
mod sync_proxy;
#[path = "support/wusp_agent.rs"]
mod wusp_agent;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use edge_process::EdgeProcess;
use sync_proxy::{Inject, SyncProxy};
use uuid::Uuid;
use wsus_edge::app::SimUpstream;
use wsus_edge::config::Config;
use wsus_edge::model::RevisionKey;
use wsus_edge::simulate::Catalog;
use wsus_edge::wire::wusp;
use wusp_agent::Agent;

const TOKEN: &str = "compliance-rollup-test-token";
const N: usize = 80;

/// Starts `<name>`, a replica of `upstream` advertised as `http://<name>.example:8530`, on
/// the addresses of `keep` (a restart) or free ones.
fn spawn(
    dir: &Path,
    name: &str,
    upstream: &str,
    keep: Option<(SocketAddr, SocketAddr)>,
) -> EdgeProcess {
    EdgeProcess::spawn(
        dir,
        name,
        upstream,
        TOKEN,
        &format!("advertised_url = \"http://{name}.example:8530\""),
        "[sync]\ninterval = \"24h\"\n[rollup]\ninterval = \"24h\"",
        keep,
    )
}

fn lists(
    client: &str,
    t: time::OffsetDateTime,
    needed: &[Uuid],
    installed: &[Uuid],
) -> wusp::ReportingEvent {
    let list = |v: &[Uuid]| {
        v.iter()
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    event(
        client,
        t,
        156,
        RevisionKey::new(Uuid::nil(), 0),
        0,
        vec![
            format!("U={}", list(needed)),
            format!("V={}", list(installed)),
        ],
    )
}

fn event(
    client: &str,
    t: time::OffsetDateTime,
    id: i32,
    update: RevisionKey,
    hr: i32,
    misc: Vec<String>,
) -> wusp::ReportingEvent {
    wusp::ReportingEvent {
        target_sid: client.to_string(),
        sequence_number: 0,
        time_at_target: t,
        instance_id: Uuid::new_v4(),
        namespace_id: 1,
        event_id: id,
        source_id: 101,
        update,
        hresult: hr,
        replacement_strings: vec![],
        misc_data: misc,
        computer_brand: None,
        computer_model: None,
        os_locale_id: Some(1033),
    }
}

async fn report(a: &Agent, events: Vec<wusp::ReportingEvent>) {
    let r = a
        .call(
            wusp::REPORTING_PATH,
            &wusp::ReportEventBatch {
                cookie: a.cookie.clone().unwrap(),
                client_time: time::OffsetDateTime::now_utc(),
                events,
            },
        )
        .await
        .unwrap();
    assert!(r.result);
}

fn counts(v: &serde_json::Value) -> [u64; 5] {
    ["installed", "needed", "failed", "not_applicable", "unknown"]
        .map(|k| v["counts"][k].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_rollup_shows_downstream_computers_and_survives_a_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.server.data_dir = dir.path().join("up");
    c.sync.interval = Duration::from_secs(24 * 3600);
    let up = SimUpstream::start(N, 42, c).await.unwrap();
    let cat = Catalog::generate(N, 42);
    let software = reports::software_updates(&cat);
    let (u1, u2, u3) = (software[0], software[1], software[2]);

    let a = spawn(dir.path(), "a", &up.url(), None);
    a.wait_sync().await;
    let proxy = SyncProxy::start(a.url()).await;
    let mut b = spawn(dir.path(), "b", &proxy.url(), None);
    b.wait_sync().await;

    // Two clients on B report.
    let now = time::OffsetDateTime::now_utc();
    let mut pc1 = Agent::new(&b.url());
    pc1.handshake(None).await;
    let mut pc2 = Agent::new(&b.url());
    pc2.handshake(None).await;
    report(
        &pc1,
        vec![
            lists(
                &pc1.client_id,
                now - time::Duration::minutes(10),
                &[u1, u2],
                &[u3],
            ),
            event(
                &pc1.client_id,
                now - time::Duration::minutes(5),
                182,
                RevisionKey::new(u1, 1),
                0x8024_0022u32 as i32,
                vec![],
            ),
        ],
    )
    .await;
    report(
        &pc2,
        vec![lists(
            &pc2.client_id,
            now - time::Duration::minutes(10),
            &[],
            &[u1, u2],
        )],
    )
    .await;

    // Before any rollup A knows none of them.
    let listed = a
        .json(&["computers", "list", "--include-downstream", "--json"])
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 0);

    let r = b.json(&["rollup", "--json"]).await;
    assert_eq!(r["detailed"], true);
    assert_eq!(r["computers"], 2);
    assert_eq!(r["statuses"], 2);
    assert_eq!(proxy.calls("GetRollupConfiguration"), 1);
    assert_eq!(
        proxy.calls("RollupComputers"),
        1,
        "details sent the first time: no NewParent round"
    );

    let listed = a
        .json(&["computers", "list", "--include-downstream", "--json"])
        .await;
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed}");
    for row in rows {
        assert_eq!(row["downstream_server"], "b.example", "{row}");
    }
    let own_only = a.json(&["computers", "list", "--json"]).await;
    assert_eq!(
        own_only.as_array().unwrap().len(),
        0,
        "without the flag: A's own clients only"
    );
    let pc1_row = rows
        .iter()
        .find(|r| r["id"] == pc1.client_id.as_str())
        .unwrap();
    assert_eq!(
        (
            pc1_row["needed"].as_u64(),
            pc1_row["failed"].as_u64(),
            pc1_row["installed"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    // Names and counts are what B itself shows.
    let on_b = b.json(&["computers", "list", "--json"]).await;
    for row in on_b.as_array().unwrap() {
        let there = rows.iter().find(|r| r["id"] == row["id"]).unwrap();
        for k in ["name", "needed", "failed", "installed"] {
            assert_eq!(there[k], row[k], "{k}: {there} vs {row}");
        }
    }

    let s1 = a
        .json(&["updates", "status", &u1.to_string(), "--json"])
        .await;
    assert_eq!(counts(&s1), [1, 0, 1, 0, 0], "{s1}");
    let s2 = a
        .json(&["updates", "status", &u2.to_string(), "--json"])
        .await;
    assert_eq!(counts(&s2), [1, 1, 0, 0, 0], "{s2}");
    for c in s1["computers"].as_array().unwrap() {
        assert_eq!(c["downstream_server"], "b.example");
    }

    // pc2 changes: u2 leaves its lists. The rollup is cut after A applied it: the proxy holds
    // A's answer and B is killed before it hears back.
    report(
        &pc2,
        vec![lists(
            &pc2.client_id,
            now - time::Duration::minutes(1),
            &[],
            &[u1],
        )],
    )
    .await;
    proxy.inject("RollupComputerStatus", 0, Inject::Hold);
    let mut rollup = b.cli_command(&["rollup"]);
    let cut = tokio::task::spawn_blocking(move || rollup.output().unwrap());
    tokio::time::timeout(Duration::from_secs(60), proxy.held())
        .await
        .expect("rollup reached A");
    b.kill();
    proxy.release();
    let o = cut.await.unwrap();
    assert!(!o.status.success(), "the rollup did not finish on B");
    let s2 = a
        .json(&["updates", "status", &u2.to_string(), "--json"])
        .await;
    assert_eq!(
        counts(&s2),
        [0, 1, 0, 0, 1],
        "A applied the cut rollup once: {s2}"
    );

    // B restarts on the same data and rolls up again: same two computers, same states.
    let keep = Some((b.listen, b.admin));
    let conf_dir = dir.path().to_path_buf();
    drop(b);
    let b = spawn(&conf_dir, "b", &proxy.url(), keep);
    // Wait for its admin API.
    let mut up_again = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if b.cli(&["computers", "list", "--json"])
            .await
            .status
            .success()
        {
            up_again = true;
            break;
        }
    }
    assert!(up_again, "{}", b.log_text());
    let r = b.json(&["rollup", "--json"]).await;
    assert_eq!(r["computers"], 2);
    let listed = a
        .json(&["computers", "list", "--include-downstream", "--json"])
        .await;
    let mut ids: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut want = vec![pc1.client_id.clone(), pc2.client_id.clone()];
    want.sort();
    assert_eq!(ids, want, "no duplicate, none lost");
    // B was killed hard: whatever of pc2's last report its store kept is B's truth now, and A
    // shows exactly that (the report may or may not have reached B's disk before the kill).
    let on_b = b.json(&["computers", "list", "--json"]).await;
    for row in on_b.as_array().unwrap() {
        let there = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == row["id"])
            .unwrap();
        for k in ["needed", "failed", "installed"] {
            assert_eq!(there[k], row[k], "{k}: {there} vs {row}");
        }
    }
    let s1 = a
        .json(&["updates", "status", &u1.to_string(), "--json"])
        .await;
    assert_eq!(counts(&s1), [1, 0, 1, 0, 0], "{s1}");
    // Rolling up again changes nothing on A (a status is resent whole at most, never added).
    let before = a
        .json(&["computers", "list", "--include-downstream", "--json"])
        .await;
    b.json(&["rollup", "--json"]).await;
    let after = a
        .json(&["computers", "list", "--include-downstream", "--json"])
        .await;
    assert_eq!(before, after);
    drop(a);
    drop(b);
    drop(up);
}
