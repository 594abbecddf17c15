//! A client's daily rescan across a restart of the server (issue 13, ChangedUpdates): a real
//! `wsus-edge serve` replica of a simulated upstream, killed with SIGKILL and started again on
//! the same data, and the scripted Windows Update Agent renewing its session with `oldCookie`.
//!
//! MS-WUSP §3.1.5.7: `ChangedUpdates` carries the cached updates whose Deployment or IsLeaf
//! changed since the client's last sync. A restart changes nothing a client sees, so the rescan
//! after it lists nothing as changed; an approval changed upstream while the server was down
//! lists exactly that update. Expected answers come from the simulator's catalog (what the
//! test changed there), not from the server.

#[path = "support/edge_process.rs"]
mod edge_process;
#[path = "support/wusp_agent.rs"]
mod wusp_agent;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use edge_process::EdgeProcess;
use wsus_edge::app::SimUpstream;
use wsus_edge::config::Config;
use wsus_edge::model::{groups, ApprovalAction, RevisionKey, UpdateKind};
use wsus_edge::wire::wusp::DeploymentAction;

const TOKEN: &str = "client-restart-test-token";

async fn sim(dir: &Path) -> SimUpstream {
    let mut c = Config::default();
    c.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.server.data_dir = dir.join("up");
    c.sync.interval = Duration::from_secs(24 * 3600);
    SimUpstream::start(200, 7, c).await.unwrap()
}

/// Waits until the restarted replica's admin API answers and no sync runs.
async fn back_up(e: &EdgeProcess) {
    let up = async {
        loop {
            if let Some(v) = e.status().await {
                if v["running"] == false {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), up)
        .await
        .expect("the restarted server answers");
}

/// The revisions in a scan's `ChangedUpdates`.
fn changed(s: &wusp_agent::ScanResult) -> BTreeSet<RevisionKey> {
    s.changed.iter().map(|(id, _)| s.received[id].0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_changes_nothing_a_client_sees_but_a_change_while_down_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path()).await;
    let mut edge = EdgeProcess::spawn(
        dir.path(),
        "edge",
        &up.url(),
        TOKEN,
        "",
        "[sync]\ninterval = \"24h\"\n",
        None,
    );
    edge.wait_sync().await;

    let mut agent = wusp_agent::Agent::new(&edge.url());
    agent.handshake(None).await;
    let first = agent.scan(None).await;
    assert!(first.changed.is_empty(), "a first scan has nothing cached");

    // An update the client was offered for install that bundles nothing and that no bundle
    // contains: a new approval of it changes its own Deployment and nobody else's.
    let target = {
        let cat = up.catalog.read().unwrap();
        let bundled: BTreeSet<_> = cat
            .latest_revisions()
            .flat_map(|r| r.record.bundled.iter().copied())
            .collect();
        let mut offered: Vec<RevisionKey> = first
            .received
            .values()
            .filter(|(_, a, leaf)| *a == DeploymentAction::Install && *leaf)
            .map(|(k, _, _)| *k)
            .filter(|k| {
                let r = cat.revision(k).unwrap();
                r.record.kind == UpdateKind::Software
                    && r.record.bundled.is_empty()
                    && !bundled.contains(&k.update_id)
            })
            .collect();
        offered.sort();
        offered
            .first()
            .copied()
            .expect("an approved standalone update")
    };

    // Killed and started again on the same data: the client's next scan (its session renewed
    // with oldCookie) is told nothing changed.
    edge.restart();
    back_up(&edge).await;
    agent.renew_cookie().await.unwrap();
    let quiet = agent.scan(Some(&first)).await;
    assert_eq!(
        changed(&quiet),
        BTreeSet::new(),
        "nothing changed for the client across the restart"
    );

    // While the server is down, upstream gives the update a deadline. After the restart and
    // the sync that brings it, the rescan lists exactly that update as changed, with it.
    edge.kill();
    let deadline = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap()
        + time::Duration::days(5);
    up.mutate(|c| {
        c.approve(
            target.update_id,
            groups::ALL_COMPUTERS,
            ApprovalAction::Install,
            Some(deadline),
        )
    })
    .unwrap()
    .unwrap();
    edge.restart();
    back_up(&edge).await;
    edge.sync_now().await;
    agent.renew_cookie().await.unwrap();
    let after = agent.scan(Some(&quiet)).await;
    assert_eq!(changed(&after), BTreeSet::from([target]));
    let d = after.deployment_of(&target).unwrap();
    assert_eq!(d.deadline, Some(deadline));
    assert_eq!(d.action, DeploymentAction::Install);

    drop(edge);
    up.stop().await.unwrap();
}
