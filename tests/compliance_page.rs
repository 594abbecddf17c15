//! The status page's compliance views in the running server, fetched over HTTP with the admin
//! token: the per-update page (`/updates/status?id=ID|KB`) puts each computer in the state its
//! seeded reports give it by the status rules (event 156 `U=` needed / `V=` installed, event
//! 182 failed with its HRESULT, a downstream server's rolled-up state, no report unknown;
//! wsus-protocol.md §3.6; the expected states are written out here, see [`expected`]) and
//! lists exactly the computers `wsus-edge updates status --json` lists, with error code, last
//! change and downstream server; the per-computer page (`/computers/show?name=`) matches
//! `computers show --json` and the same expected states; the main page links its failing
//! computers and top updates to those pages and has the search boxes; text from clients and
//! downstream servers (a computer named `<script>…`) comes out escaped; without credentials
//! the pages answer the login form.

#[path = "support/wusp_agent.rs"]
mod wusp_agent;

#[path = "support/admin_cli.rs"]
mod admin_cli;
#[path = "support/reports.rs"]
mod reports;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use admin_cli::{cli, json, AdminEdge};
use reports::{failure, software_updates, states_of, status_lists};
use uuid::Uuid;
use wsus_edge::simulate::Catalog;
use wsus_edge::store::{
    Computer, DownstreamComputer, DownstreamServer, DownstreamStatus, UpdateState,
};
use wusp_agent::{seed, Agent};

const EVIL_NAME: &str = "<script>alert(\"pc\")</script>.branch.test";
const EVIL_ID: &str = "evil&\"id'<b>";
const DS_NAME: &str = "<i>b</i>.example";

/// Inverse of HTML escaping for the five entities the page writes (an oracle written here,
/// not the page's own function).
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Text of an HTML fragment: tags removed, entities decoded.
fn text(s: &str) -> String {
    let mut o = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => o.push(c),
            _ => {}
        }
    }
    unescape(&o)
}

/// The `<table id="ID">…</table>` fragment, if any.
fn table<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let start = html.find(&format!("<table id=\"{id}\">"))?;
    let end = html[start..].find("</table>")? + start;
    Some(&html[start..end])
}

/// Rows of a table carrying `data-id`: (unescaped data-id, cell texts, the raw row).
fn rows(table: &str) -> Vec<(String, Vec<String>, String)> {
    table
        .split("<tr data-id=\"")
        .skip(1)
        .map(|r| {
            let (id, rest) = r.split_once('"').unwrap();
            let cells = rest
                .split("<td")
                .skip(1)
                .map(|c| {
                    let inner = &c[c.find('>').unwrap() + 1..];
                    text(&inner[..inner.find("</td>").unwrap()])
                })
                .collect();
            (unescape(id), cells, r.to_string())
        })
        .collect()
}

/// A JSON string or null as the page prints it (`-` for null).
fn shown(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or("-").to_string()
}

async fn get(admin: SocketAddr, path_and_query: &str, token: Option<&str>) -> (u16, String) {
    let mut r = reqwest::Client::new().get(format!("http://{admin}{path_and_query}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The seeded updates and the one real agent's client id.
struct Seeded {
    me: String,
    u1: Uuid,
    u2: Uuid,
    u3: Uuid,
}

/// Every computer's (state, error code) for update `u`, from the reports the test seeds, by
/// the status rules (not by src/): the agent (`me`) listed u1 and u2 in `U=` and u3 in `V=`,
/// then failed u1 with 0x80240022; old-pc listed u1 in `V=`; the hostile-named computer listed
/// u1 in `U=` and failed u2 (not in its lists) with 0x80070643; the downstream server rolled
/// up ds-pc as not applicable for u1 and needing u2; quiet-pc never reported. Anything not
/// named is unknown.
fn expected(s: &Seeded, u: Uuid) -> BTreeMap<String, (&'static str, Option<&'static str>)> {
    let mut want: BTreeMap<String, (&'static str, Option<&'static str>)> =
        [s.me.as_str(), "old-pc", EVIL_ID, "quiet-pc", "ds-pc"]
            .into_iter()
            .map(|c| (c.to_string(), ("unknown", None)))
            .collect();
    let me = s.me.as_str();
    let facts: [(Uuid, &str, &'static str, Option<&'static str>); 8] = [
        (s.u1, me, "failed", Some("0x80240022")),
        (s.u2, me, "needed", None),
        (s.u3, me, "installed", None),
        (s.u1, "old-pc", "installed", None),
        (s.u1, EVIL_ID, "needed", None),
        (s.u2, EVIL_ID, "failed", Some("0x80070643")),
        (s.u1, "ds-pc", "not_applicable", None),
        (s.u2, "ds-pc", "needed", None),
    ];
    for (v, c, st, e) in facts {
        if v == u {
            want.insert(c.to_string(), (st, e));
        }
    }
    want
}

/// Percent-encodes a query value (written here independently of the page's links).
fn q(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The update page puts every computer in the state `expect` gives it (with its error code),
/// and agrees with `updates status --json` computer by computer in every state.
async fn check_update_page(
    admin: SocketAddr,
    token: &str,
    arg: &str,
    expect: &BTreeMap<String, (&'static str, Option<&'static str>)>,
) -> serde_json::Value {
    let want = json(&cli(admin, token, &["updates", "status", arg, "--json"]).await);
    let expect_states: BTreeMap<String, String> = expect
        .iter()
        .map(|(c, (st, _))| (c.clone(), st.to_string()))
        .collect();
    assert_eq!(states_of(&want), expect_states, "updates status {arg}");
    for c in want["computers"].as_array().unwrap() {
        let code = expect[c["id"].as_str().unwrap()].1;
        assert_eq!(c["error_code"].as_str(), code, "{c}");
    }
    let (code, html) = get(
        admin,
        &format!("/updates/status?id={}", q(arg)),
        Some(token),
    )
    .await;
    assert_eq!(code, 200, "{html}");
    assert!(html.contains(&format!(
        "<code id=\"update-id\">{}</code>",
        want["id"].as_str().unwrap()
    )));
    let title_at = html.find("<h1 id=\"title\">").unwrap();
    let title_end = html[title_at..].find("</h1>").unwrap() + title_at;
    assert_eq!(
        text(&html[title_at..title_end]),
        want["title"].as_str().unwrap()
    );
    let mut seen = 0;
    for state in ["installed", "needed", "failed", "not_applicable", "unknown"] {
        let n = want["counts"][state].as_u64().unwrap();
        assert!(
            html.contains(&format!("id=\"count-{state}\">{n}</td>")),
            "count {state} = {n} on the page"
        );
        let want_rows: BTreeMap<String, Vec<String>> = want["computers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["state"] == state)
            .map(|c| {
                (
                    c["id"].as_str().unwrap().to_string(),
                    vec![
                        c["name"].as_str().unwrap().to_string(),
                        shown(&c["error_code"]),
                        shown(&c["last_change"]),
                        shown(&c["downstream_server"]),
                    ],
                )
            })
            .collect();
        assert_eq!(want_rows.len() as u64, n, "the JSON counts its own list");
        let got: BTreeMap<String, Vec<String>> = match table(&html, &format!("computers-{state}")) {
            Some(t) => rows(t).into_iter().map(|(id, c, _)| (id, c)).collect(),
            None => BTreeMap::new(),
        };
        let expect_ids: BTreeSet<&str> = expect
            .iter()
            .filter(|(_, (st, _))| *st == state)
            .map(|(c, _)| c.as_str())
            .collect();
        assert_eq!(
            got.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            expect_ids,
            "the page's computers in state {state} for {arg}"
        );
        assert_eq!(got, want_rows, "computers in state {state}");
        seen += got.len();
    }
    assert_eq!(seen, want["computers"].as_array().unwrap().len());
    want
}

/// The computer page agrees with `computers show --json`, and shows each update of `expect`
/// (update id → state) in that state.
async fn check_computer_page(
    admin: SocketAddr,
    token: &str,
    href: &str,
    id: &str,
    expect: &BTreeMap<String, &str>,
) -> String {
    let want = json(&cli(admin, token, &["computers", "show", id, "--json"]).await);
    let (code, html) = get(admin, href, Some(token)).await;
    assert_eq!(code, 200, "{html}");
    let h1 = html.find("<h1 id=\"name\">").unwrap();
    let h1_end = html[h1..].find("</h1>").unwrap() + h1;
    assert_eq!(text(&html[h1..h1_end]), want["name"].as_str().unwrap());
    let details = text(table(&html, "details").unwrap());
    assert!(details.contains(want["id"].as_str().unwrap()), "{details}");
    assert!(
        details.contains(&shown(&want["downstream_server"])),
        "{details}"
    );
    let want_rows: BTreeMap<String, (String, String, String)> = want["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["id"].as_str().unwrap().to_string(),
                (
                    u["state"].as_str().unwrap().to_string(),
                    shown(&u["last_change"]),
                    shown(&u["error_code"]),
                ),
            )
        })
        .collect();
    let got: BTreeMap<String, (String, String, String)> = table(&html, "updates")
        .map(rows)
        .unwrap_or_default()
        .into_iter()
        .map(|(id, c, raw)| {
            let st = raw.split("data-state=\"").nth(1).unwrap();
            let st = unescape(&st[..st.find('"').unwrap()]);
            (id, (st, c[2].clone(), c[3].clone()))
        })
        .collect();
    assert_eq!(got, want_rows);
    for (u, st) in expect {
        let shown = got.get(u).map(|r| r.0.as_str()).unwrap_or("unknown");
        assert_eq!(shown, *st, "{id}'s page, update {u}");
    }
    html
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_computer_pages_match_the_json() {
    let cat = Catalog::generate(300, 7);
    let edge = AdminEdge::start(|store| seed(store, &cat)).await;
    let (base, admin, token, store) = (
        edge.base.clone(),
        edge.admin,
        edge.token.clone(),
        edge.store.clone(),
    );

    // A real agent registers and scans over MS-WUSP.
    let mut agent = Agent::new(&base);
    agent.handshake(None).await;
    agent.scan(None).await;
    let me = agent.client_id.clone();

    let software = software_updates(&cat);
    let (u1, u2, u3) = (software[0], software[1], software[2]);
    let seeded = Seeded {
        me: me.clone(),
        u1,
        u2,
        u3,
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // u1 in all five states: the agent failed it, old-pc has it, the hostile-named computer
    // needs it, the downstream computer does not apply it, quiet-pc never reported.
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
    for (id, name, events) in [
        (
            "old-pc",
            "old.branch.test",
            vec![status_lists(now - 31 * 86400, 3, &[], &[u1])],
        ),
        (
            EVIL_ID,
            EVIL_NAME,
            vec![
                status_lists(now - 200, 4, &[u1], &[]),
                failure(now - 150, 5, u2, 0x8007_0643),
            ],
        ),
        ("quiet-pc", "quiet.branch.test", vec![]),
    ] {
        store
            .upsert_computer(&Computer {
                id: id.into(),
                name: name.into(),
                registered_unix: now - 90 * 86400,
                ..Default::default()
            })
            .unwrap();
        if !events.is_empty() {
            store.add_events(id, &events, now - 60).unwrap();
        }
    }
    let ds = Uuid::from_u128(0xb0b);
    store
        .put_downstream_server(&DownstreamServer {
            id: ds,
            name: DS_NAME.into(),
            parent: Uuid::nil(),
            last_sync_unix: None,
            last_rollup_unix: Some(now),
            version: "10.0".into(),
            is_replica: true,
        })
        .unwrap();
    store
        .put_downstream_computer(&DownstreamComputer {
            id: "ds-pc".into(),
            name: "pc9.b.example".into(),
            parent_server: ds,
            has_details: true,
            ..Default::default()
        })
        .unwrap();
    assert!(store
        .apply_downstream_status(
            "ds-pc",
            1,
            true,
            &[
                (
                    u1,
                    DownstreamStatus {
                        state: UpdateState::NotApplicable,
                        last_change_unix: now - 500,
                    },
                ),
                (
                    u2,
                    DownstreamStatus {
                        state: UpdateState::Needed,
                        last_change_unix: now - 400,
                    },
                ),
            ],
            now,
        )
        .unwrap());

    // Per-update pages: each computer in the state its reports give it (u1 has someone in
    // every state), and the same as the JSON.
    let s1 = check_update_page(admin, &token, &u1.to_string(), &expected(&seeded, u1)).await;
    for state in ["installed", "needed", "failed", "not_applicable", "unknown"] {
        assert_eq!(s1["counts"][state], 1, "{state}: {s1}");
    }
    for u in [u2, u3] {
        check_update_page(admin, &token, &u.to_string(), &expected(&seeded, u)).await;
    }
    let (_, p1) = get(admin, &format!("/updates/status?id={u1}"), Some(&token)).await;
    assert!(p1.contains("0x80240022") && p1.contains("&lt;i&gt;b&lt;/i&gt;.example"));
    // By KB, as the search box sends it.
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
    let s = check_update_page(admin, &token, &format!("KB{kb}"), &expected(&seeded, by_kb)).await;
    assert_eq!(s["id"], by_kb.to_string());

    // Escaping: the hostile name never comes out as markup anywhere.
    let escaped = "&lt;script&gt;alert(&quot;pc&quot;)&lt;/script&gt;.branch.test";
    let (_, main) = get(admin, "/", Some(&token)).await;
    for html in [&p1, &main] {
        assert!(!html.contains("<script"), "unescaped computer name");
        assert!(!html.contains("<i>b</i>") && !html.contains(EVIL_ID));
    }
    assert!(p1.contains(escaped));
    assert!(main.contains(escaped), "the failing table lists it");

    // The main page: search boxes and links from the failing table to each computer page.
    assert!(main.contains("action=\"/updates/status\"") && main.contains("name=\"id\""));
    assert!(main.contains("action=\"/computers/show\""));
    let failing = rows(table(&main, "failing").unwrap());
    let failing_ids: BTreeSet<String> = failing.iter().map(|r| r.0.clone()).collect();
    let want_failing: BTreeSet<String> = json(
        &cli(
            admin,
            &token,
            &[
                "computers",
                "list",
                "--status",
                "failed",
                "--include-downstream",
                "--json",
            ],
        )
        .await,
    )
    .as_array()
    .unwrap()
    .iter()
    .map(|c| c["id"].as_str().unwrap().to_string())
    .collect();
    assert_eq!(failing_ids, want_failing);
    assert_eq!(
        failing_ids,
        BTreeSet::from([EVIL_ID.to_string(), me.clone()]),
        "the two computers with a failure"
    );
    // One computer's expected states over the three updates (unknown ones included).
    let per_computer = |c: &str| -> BTreeMap<String, &'static str> {
        [u1, u2, u3]
            .into_iter()
            .map(|u| (u.to_string(), expected(&seeded, u)[c].0))
            .collect()
    };
    for (id, _, raw) in &failing {
        let href = raw.split("href=\"").nth(1).unwrap();
        let href = unescape(&href[..href.find('"').unwrap()]);
        let html = check_computer_page(admin, &token, &href, id, &per_computer(id)).await;
        if id == EVIL_ID {
            assert!(html.contains(escaped) && !html.contains("<script"));
            assert!(html.contains("0x80070643"));
        }
        // Each update row links to its update page, which lists this computer.
        let first = rows(table(&html, "updates").unwrap()).remove(0).2;
        let uhref = first.split("href=\"").nth(1).unwrap();
        let uhref = unescape(&uhref[..uhref.find('"').unwrap()]);
        let (code, up) = get(admin, &uhref, Some(&token)).await;
        assert_eq!(code, 200);
        assert!(up.contains(&format!(
            "<tr data-id=\"{}\">",
            id.replace('&', "&amp;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        )));
    }
    // A rolled-up computer's page names its downstream server, escaped.
    let ds_html = check_computer_page(
        admin,
        &token,
        "/computers/show?name=ds-pc",
        "ds-pc",
        &per_computer("ds-pc"),
    )
    .await;
    assert!(ds_html.contains("&lt;i&gt;b&lt;/i&gt;.example"));

    // Errors are pages too, with the argument escaped; no credentials: the login form.
    let (code, html) = get(admin, "/updates/status?id=%3Cscript%3E", Some(&token)).await;
    assert!(code == 400 || code == 404, "{code}");
    assert!(
        !html.contains("<script") && html.contains("id=\"error\""),
        "{html}"
    );
    let (code, html) = get(admin, "/computers/show?name=nobody", Some(&token)).await;
    assert_eq!(code, 404, "{html}");
    for path in ["/updates/status?id=KB1", "/computers/show?name=x"] {
        let (code, html) = get(admin, path, None).await;
        assert_eq!(code, 401);
        assert!(html.contains("action=\"/login\""), "{html}");
        assert!(!html.contains("quiet.branch.test"));
    }

    edge.stop().await;
}
