//! Compliance views and verbs in the running server, driven by the real `wsus-edge` binary:
//! a server-side group move changes what a scripted agent is offered at its next scan;
//! `updates status --json`, `computers list --json|--csv` with `--status`/`--stale`, and
//! `computers show` follow the client reports by the spec rules (event 156 `U=`/`V=` lists,
//! event 182 failures; wsus-protocol.md §3.6) with counts that fall when an update leaves a
//! client's lists; `cleanup --dry-run` keeps a declined update a computer reported needed.

#[path = "support/wusp_agent.rs"]
mod wusp_agent;

#[path = "support/admin_cli.rs"]
mod admin_cli;
#[path = "support/reports.rs"]
mod reports;

use std::collections::BTreeSet;

use admin_cli::{cli, json, ok, AdminEdge};
use reports::{failure, software_updates, state_of, status_lists};
use uuid::Uuid;
use wsus_edge::model::groups;
use wsus_edge::simulate::Catalog;
use wsus_edge::store::Computer;
use wusp_agent::{seed, Agent};

fn count(v: &serde_json::Value, state: &str) -> u64 {
    v["counts"][state].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_verbs_group_moves_and_cleanup_grace() {
    let cat = Catalog::generate(300, 7);
    let edge = AdminEdge::start(|store| seed(store, &cat)).await;
    let (base, admin, token, store) = (
        edge.base.clone(),
        edge.admin,
        edge.token.clone(),
        edge.store.clone(),
    );

    // --- Server-side group move changes the next scan (the catalog's oracle says what). ---
    let target = cat.group_named("Servers").unwrap().clone();
    let mut agent = Agent::new(&base);
    agent.handshake(None).await;
    let before = agent.scan(None).await;
    let want_before =
        wusp_agent::want_offered(&cat, &[groups::UNASSIGNED_COMPUTERS], &before.installed);
    assert_eq!(before.offered(), want_before);
    let out = ok(&cli(
        admin,
        &token,
        &[
            "computers",
            "move",
            &agent.client_id,
            "--group",
            &target.name,
        ],
    )
    .await);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(&target.name), "{out}");
    let after = agent.scan(None).await;
    let want_after = wusp_agent::want_offered(&cat, &[target.id], &after.installed);
    assert_ne!(
        want_after, want_before,
        "the catalog approves differently for Servers"
    );
    assert_eq!(after.offered(), want_after);
    let listed = json(
        &cli(
            admin,
            &token,
            &["computers", "list", "--group", &target.name, "--json"],
        )
        .await,
    );
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], agent.client_id.as_str());

    // --- States from reports. ---
    let software = software_updates(&cat);
    let (u1, u2, u3) = (software[0], software[1], software[2]);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // A second computer that has not reported for 30 days.
    store
        .upsert_computer(&Computer {
            id: "old-pc".into(),
            name: "old.branch.test".into(),
            registered_unix: now - 90 * 86400,
            ..Default::default()
        })
        .unwrap();
    store
        .add_events(
            "old-pc",
            &[status_lists(now - 31 * 86400, 90, &[], &[u1])],
            now - 30 * 86400,
        )
        .unwrap();
    let me = agent.client_id.clone();
    store
        .add_events(
            &me,
            &[
                status_lists(now - 100, 1, &[u1, u2], &[u3]),
                failure(now - 50, 2, u1, 0x8024_0022),
            ],
            now,
        )
        .unwrap();

    let s1 = json(
        &cli(
            admin,
            &token,
            &["updates", "status", &u1.to_string(), "--json"],
        )
        .await,
    );
    assert_eq!(s1["id"], u1.to_string());
    let record = |u: Uuid| {
        cat.revisions()
            .filter(|r| r.record.key.update_id == u)
            .max_by_key(|r| r.record.key.revision)
            .unwrap()
            .record
            .clone()
    };
    assert_eq!(s1["title"], record(u1).title.as_str());
    assert_eq!(count(&s1, "failed"), 1);
    assert_eq!(count(&s1, "installed"), 1, "old-pc has it installed");
    assert_eq!(count(&s1, "needed") + count(&s1, "not_applicable"), 0);
    let total = s1["computers"].as_array().unwrap().len() as u64;
    assert_eq!(total, 2);
    assert_eq!(count(&s1, "unknown"), 0);
    let mine = s1["computers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == me.as_str())
        .unwrap()
        .clone();
    assert_eq!(mine["state"], "failed");
    assert_eq!(mine["error_code"], "0x80240022");
    assert!(mine["downstream_server"].is_null());
    assert!(mine["last_change"].is_string());
    let s2 = json(
        &cli(
            admin,
            &token,
            &["updates", "status", &u2.to_string(), "--json"],
        )
        .await,
    );
    assert_eq!((count(&s2, "needed"), count(&s2, "unknown")), (1, 1));
    assert_eq!(state_of(&s2, "old-pc"), "unknown");
    assert_eq!(state_of(&s2, &me), "needed");
    assert_eq!(state_of(&s1, "old-pc"), "installed");

    // Lists and filters.
    let all = json(&cli(admin, &token, &["computers", "list", "--json"]).await);
    let row = all
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == me.as_str())
        .unwrap()
        .clone();
    for k in [
        "id",
        "name",
        "groups",
        "last_sync",
        "last_report",
        "needed",
        "failed",
        "installed",
        "downstream_server",
    ] {
        assert!(
            row.get(k).is_some(),
            "computers list --json carries {k}: {row}"
        );
    }
    assert_eq!(
        (
            row["needed"].as_u64(),
            row["failed"].as_u64(),
            row["installed"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    let failed = json(
        &cli(
            admin,
            &token,
            &["computers", "list", "--status", "failed", "--json"],
        )
        .await,
    );
    assert_eq!(failed.as_array().unwrap().len(), 1);
    let uptodate = json(
        &cli(
            admin,
            &token,
            &["computers", "list", "--status", "uptodate", "--json"],
        )
        .await,
    );
    assert_eq!(uptodate[0]["id"], "old-pc");
    let stale = json(
        &cli(
            admin,
            &token,
            &["computers", "list", "--stale", "7d", "--json"],
        )
        .await,
    );
    assert_eq!(stale.as_array().unwrap().len(), 1);
    assert_eq!(stale[0]["id"], "old-pc");
    let needed = json(
        &cli(
            admin,
            &token,
            &["computers", "list", "--status", "needed", "--json"],
        )
        .await,
    );
    assert_eq!(needed.as_array().unwrap().len(), 1, "{needed}");
    assert_eq!(needed[0]["id"], me.as_str());
    // `computers show NAME`: by DNS name, each update's state (old-pc has u1 installed).
    let old = json(
        &cli(
            admin,
            &token,
            &["computers", "show", "old.branch.test", "--json"],
        )
        .await,
    );
    assert_eq!(old["id"], "old-pc");
    let u1_row = old["updates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == u1.to_string())
        .unwrap_or_else(|| panic!("{old}"));
    assert_eq!(u1_row["state"], "installed", "{u1_row}");
    // The summary gauges in /metrics say the same: me needs u2 and failed u1; old-pc is up to
    // date and has not reported for 30 days.
    let metrics = reqwest::Client::new()
        .get(format!("http://{admin}/metrics"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (name, want) in [
        ("wsus_edge_compliance_computers{origin=\"own\"}", 2),
        ("wsus_edge_compliance_computers{origin=\"downstream\"}", 0),
        ("wsus_edge_compliance_computers_needing", 1),
        ("wsus_edge_compliance_computers_failing", 1),
        ("wsus_edge_compliance_computers_up_to_date", 1),
        ("wsus_edge_compliance_computers_stale", 1),
        ("wsus_edge_compliance_downstream_servers", 0),
    ] {
        let line = metrics
            .lines()
            .find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(' ')))
            .unwrap_or_else(|| panic!("{name} in /metrics:\n{metrics}"));
        assert_eq!(line, format!("{name} {want}"));
    }
    // `updates status KB`: an update whose KB number no other update of the catalog carries.
    let kbs: Vec<(Uuid, String)> = cat
        .revisions()
        .filter_map(|r| Some((r.record.key.update_id, r.record.kb.clone()?)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (by_kb, kb) = kbs
        .iter()
        .find(|(u, kb)| kbs.iter().all(|(v, k)| k != kb || v == u))
        .unwrap()
        .clone();
    let s = json(
        &cli(
            admin,
            &token,
            &["updates", "status", &format!("KB{kb}"), "--json"],
        )
        .await,
    );
    assert_eq!(s["id"], by_kb.to_string());
    assert_eq!(s["title"], record(by_kb).title.as_str());
    let csv = ok(&cli(admin, &token, &["computers", "list", "--csv"]).await);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,name,groups,last_sync,last_report,needed,failed,installed,downstream_server"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    let show = ok(&cli(admin, &token, &["computers", "show", &me]).await);
    assert!(
        show.contains("0x80240022") && show.contains("failed") && show.contains("needed"),
        "{show}"
    );
    let status_csv = ok(&cli(
        admin,
        &token,
        &["updates", "status", &u1.to_string(), "--csv"],
    )
    .await);
    assert!(status_csv.starts_with("name,id,state,error_code,last_change,downstream_server\r\n"));
    assert_eq!(status_csv.lines().count(), 3);

    // u2 leaves the client's lists (superseded): the needed count falls, nothing drifts up.
    store
        .add_events(&me, &[status_lists(now - 10, 3, &[u1], &[u3])], now)
        .unwrap();
    let s2 = json(
        &cli(
            admin,
            &token,
            &["updates", "status", &u2.to_string(), "--json"],
        )
        .await,
    );
    assert_eq!((count(&s2, "needed"), count(&s2, "unknown")), (0, 2));
    let s1 = json(
        &cli(
            admin,
            &token,
            &["updates", "status", &u1.to_string(), "--json"],
        )
        .await,
    );
    assert_eq!(
        count(&s1, "failed"),
        1,
        "still listed not installed: the failure stands"
    );

    // --- Cleanup grace: a declined update reported needed is kept and said so. ---
    ok(&cli(admin, &token, &["updates", "decline", &u1.to_string()]).await);
    let dry = json(&cli(admin, &token, &["cleanup", "--dry-run", "--json"]).await);
    let kept: Vec<String> = dry["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert!(
        kept.iter()
            .any(|k| k.starts_with(&u1.to_string()) && k.contains("30d")),
        "{kept:?}"
    );
    assert!(!dry["updates"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u.as_str().unwrap().starts_with(&u1.to_string())));
    let text = ok(&cli(admin, &token, &["cleanup", "--dry-run"]).await);
    assert!(text.contains(&format!("keep {u1}")), "{text}");

    // --- Remove. ---
    let out = ok(&cli(admin, &token, &["computers", "remove", "old.branch.test"]).await);
    assert_eq!(out.lines().count(), 1);
    assert!(store.computer("old-pc").unwrap().is_none());
    // `--json` on move and remove: what changed, by id.
    let moved = json(
        &cli(
            admin,
            &token,
            &[
                "computers",
                "move",
                &me,
                "--group",
                "Unassigned Computers",
                "--json",
            ],
        )
        .await,
    );
    assert_eq!(moved["ids"], serde_json::json!([me]));
    assert!(moved["message"].as_str().is_some_and(|m| !m.is_empty()));
    let removed = json(&cli(admin, &token, &["computers", "remove", &me, "--json"]).await);
    assert_eq!(removed["ids"], serde_json::json!([me]));
    assert!(store.computer(&me).unwrap().is_none());

    edge.stop().await;
}
