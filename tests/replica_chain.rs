//! A hierarchy from outside: a simulated upstream (in-process, so the test can expire, add and
//! change things on it), replicas A and B as real `wsus-edge serve` processes (B syncs from A),
//! checked with an independent MS-WSUSSS client (`support/sss_oracle.rs`), the admin CLI and a
//! scripted Windows Update Agent. Expected answers come from the simulator's catalog and from
//! what the upstream shows over MS-WSUSSS, never from the replica under test.

#[path = "support/edge_process.rs"]
mod edge_process;
#[path = "support/sss_oracle.rs"]
mod sss_oracle;
#[path = "support/sync_proxy.rs"]
mod sync_proxy;
#[path = "support/wusp_agent.rs"]
mod wusp_agent;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use edge_process::EdgeProcess;
use sss_oracle::{Oracle, View};
use uuid::Uuid;
use wsus_edge::app::SimUpstream;
use wsus_edge::config::Config;
use wsus_edge::model::UpdateKind;

const TOKEN: &str = "replica-chain-test-token";

async fn sim(dir: &Path, n: usize) -> SimUpstream {
    let mut c = Config::default();
    c.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    c.server.data_dir = dir.join("up");
    c.sync.interval = Duration::from_secs(24 * 3600);
    SimUpstream::start(n, 42, c).await.unwrap()
}

/// Starts a replica of `upstream` with `sync_extra` TOML lines in `[sync]`; waits for its
/// first sync to finish.
async fn start(dir: &Path, name: &str, upstream: &str, sync_extra: &str) -> EdgeProcess {
    let e = EdgeProcess::spawn(
        dir,
        name,
        upstream,
        TOKEN,
        "",
        &format!("[sync]\ninterval = \"24h\"\n{sync_extra}"),
        None,
    );
    e.wait_sync().await;
    e
}

/// Kills `e`, deletes its data directory (a rebuilt server), starts it again on the same
/// addresses and waits for its first sync.
async fn rebuild(e: &mut EdgeProcess) {
    e.kill();
    std::fs::remove_dir_all(&e.data).unwrap();
    e.restart();
    e.wait_sync().await;
}

/// What `e` serves over MS-WSUSSS, read by the independent client.
async fn view(e: &EdgeProcess) -> View {
    Oracle::connect(&e.url()).await.view().await
}

fn ids_of(v: &serde_json::Value) -> BTreeSet<Uuid> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Asserts two MS-WSUSSS views are the same hierarchy state.
fn assert_same(what: &str, a: &View, b: &View) {
    assert_eq!(a.revisions, b.revisions, "{what}: revision sets");
    assert_eq!(a.expired, b.expired, "{what}: expired");
    assert_eq!(a.approvals, b.approvals, "{what}: approvals");
    assert_eq!(a.declined, b.declined, "{what}: declines");
    assert_eq!(a.groups, b.groups, "{what}: groups");
}

/// Issue 14, item 1: an update the upstream expires stays on A (declined, `"expired": true`),
/// reaches B through A, and is never offered to a client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_update_is_kept_declined_passed_down_and_never_offered() {
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path(), 300).await;
    let a = start(dir.path(), "a", &up.url(), "").await;
    let b = start(dir.path(), "b", &a.url(), "").await;

    // An approved leaf, expired upstream now (the simulator publishes an Expired revision and
    // drops its approvals, as Microsoft Update does).
    let victim = {
        let cat = up.catalog.read().unwrap();
        let non_leaf = cat.non_leaf_ids();
        let found = cat
            .latest_revisions()
            .filter(|r| r.record.kind == UpdateKind::Software && !r.record.expired)
            .map(|r| r.record.key.update_id)
            .find(|id| !non_leaf.contains(id) && cat.deployments_of(id).next().is_some());
        found.expect("an approved leaf")
    };
    let expired_key = up.mutate(|c| c.expire(victim)).unwrap().unwrap();
    a.sync_now().await;
    b.sync_now().await;

    let (vu, va, vb) = (
        Oracle::connect(&up.url()).await.view().await,
        view(&a).await,
        view(&b).await,
    );
    assert!(
        vu.expired.contains(&victim),
        "the upstream shows the expiry: {} expired, listed {:?}; {} products {} classes {} software",
        vu.expired.len(),
        vu.revisions.iter().find(|k| k.0 == victim), vu.products.len(), vu.classifications.len(), vu.software.len()
    );
    assert!(vu.revisions.contains(&(victim, expired_key.revision)));
    assert_same("upstream vs A", &vu, &va);
    assert_same("upstream vs B", &vu, &vb);

    // The admin view: expired updates are declined, flagged, and `--expired` lists only them.
    let expected: BTreeSet<Uuid> = vu.expired.intersection(&vu.software).copied().collect();
    assert!(expected.contains(&victim));
    for e in [&a, &b] {
        let declined = e.json(&["updates", "list", "--declined", "--json"]).await;
        let d_ids = ids_of(&declined);
        assert!(
            expected.is_subset(&d_ids),
            "declined lists every expired update"
        );
        for u in declined.as_array().unwrap() {
            let id: Uuid = u["id"].as_str().unwrap().parse().unwrap();
            assert_eq!(u["expired"], expected.contains(&id), "{u}");
            assert_eq!(u["declined"], true, "{u}");
        }
        let only = e.json(&["updates", "list", "--expired", "--json"]).await;
        assert_eq!(
            ids_of(&only),
            expected,
            "--expired lists exactly the expired ones"
        );
        let shown = e
            .json(&["updates", "show", &victim.to_string(), "--json"])
            .await;
        assert_eq!(shown["revision"], expired_key.revision);
        assert_eq!(shown["approvals"], serde_json::json!([]));
        // `status` counts declined updates the same way: declined upstream or expired.
        let status = e.json(&["status", "--json"]).await;
        let want = vu
            .declined
            .union(&vu.expired)
            .filter(|id| vu.software.contains(id))
            .count();
        assert_eq!(status["declined"], want, "{status}");
        assert_eq!(status["declined"], d_ids.len(), "{status}");
    }

    // A client of B is offered nothing expired.
    let mut agent = wusp_agent::Agent::new(&b.url());
    agent.handshake(None).await;
    let scan = agent.scan(None).await;
    assert!(
        !scan.offered().is_empty(),
        "the client is offered something"
    );
    for k in scan.offered() {
        assert!(
            !vu.expired.contains(&k.update_id),
            "{k} is expired upstream"
        );
    }
    let seen: BTreeSet<Uuid> = scan.received.values().map(|v| v.0.update_id).collect();
    assert!(
        !seen.contains(&victim),
        "the expired update is not sent to the client"
    );
    drop(b);
    drop(a);
    up.stop().await.unwrap();
}

/// Issue 14, item 4: a revision the upstream faults on and a document the parser rejects are
/// isolated (the batch bisected), logged, counted, listed in `sync status --json`, retried at
/// the next sync; the rest of the sync completes and `sync --now` exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_documents_are_isolated_reported_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path(), 300).await;
    let proxy = sync_proxy::SyncProxy::start(up.url()).await;
    let (faulty, corrupt) = {
        let cat = up.catalog.read().unwrap();
        let non_leaf = cat.non_leaf_ids();
        let v: Vec<(Uuid, u32)> = cat
            .latest_revisions()
            .filter(|r| {
                r.record.kind == UpdateKind::Software
                    && !r.record.expired
                    && !non_leaf.contains(&r.record.key.update_id)
                    && !cat.files_of(&r.record.key).is_empty()
            })
            .map(|r| (r.record.key.update_id, r.record.key.revision))
            .take(2)
            .collect();
        (v[0], v[1])
    };
    proxy.fault_on(faulty.0);
    proxy.corrupt(corrupt.0);
    let a = start(dir.path(), "a", &proxy.url(), "").await;

    let skipped = |st: &serde_json::Value| -> BTreeSet<(Uuid, u32)> {
        st["skipped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                assert!(!k["reason"].as_str().unwrap().is_empty(), "{k}");
                (
                    k["id"].as_str().unwrap().parse().unwrap(),
                    k["revision"].as_u64().unwrap() as u32,
                )
            })
            .collect()
    };
    let poisoned: BTreeSet<(Uuid, u32)> = [faulty, corrupt].into();
    let st = a.json(&["sync", "status", "--json"]).await;
    assert_eq!(st["last_result"], "ok", "{st}");
    assert_eq!(skipped(&st), poisoned, "{st}");
    assert!(a.metric("wsus_edge_sync_skipped_total").await >= 2.0);
    let log = a.log_text();
    for (id, _) in &poisoned {
        assert!(log.contains(&id.to_string()), "{id} logged");
    }
    // Everything else arrived.
    let vu = Oracle::connect(&up.url()).await.view().await;
    let va = view(&a).await;
    let want: BTreeSet<(Uuid, u32)> = vu.revisions.difference(&poisoned).copied().collect();
    assert_eq!(va.revisions, want);

    // Still poisoned: the next sync asks again, skips again, and still exits 0.
    a.sync_now().await;
    let st = a.json(&["sync", "status", "--json"]).await;
    assert_eq!(skipped(&st), poisoned, "{st}");
    assert!(a.metric("wsus_edge_sync_skipped_total").await >= 4.0);

    // Healed: they arrive although the anchor is already past them.
    proxy.heal();
    a.sync_now().await;
    let st = a.json(&["sync", "status", "--json"]).await;
    assert_eq!(skipped(&st), BTreeSet::new(), "{st}");
    let va = view(&a).await;
    assert_same("healed", &vu, &va);
    drop(a);
    up.stop().await.unwrap();
}

/// Issue 14, item 3: a product added to the subscription brings all of its updates at the
/// next sync (the anchor notwithstanding), and a `[sync] languages` filter is sent on every
/// sync, not only the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_growth_brings_everything_new_and_languages_hold() {
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path(), 300).await;
    let proxy = sync_proxy::SyncProxy::start(up.url()).await;
    let oracle = Oracle::connect(&up.url()).await;
    let vu = oracle.view().await;
    // Two products that each hold updates the other does not.
    let per_product: Vec<(Uuid, BTreeSet<(Uuid, u32)>)> = {
        let mut v = Vec::new();
        for p in &vu.products {
            let l: BTreeSet<(Uuid, u32)> = oracle
                .revision_ids(Some(&[*p]), Some(&vu.classifications))
                .await
                .into_iter()
                .collect();
            if !l.is_empty() {
                v.push((*p, l));
            }
        }
        v
    };
    let (p1, l1) = per_product[0].clone();
    let (p2, l2) = per_product
        .iter()
        .find(|(_, l)| !l.is_subset(&l1))
        .cloned()
        .expect("a second product with other updates");
    let a = start(
        dir.path(),
        "a",
        &proxy.url(),
        &format!("products = [\"{p1}\"]\nlanguages = [\"en\"]"),
    )
    .await;
    let software = |v: &View| -> BTreeSet<(Uuid, u32)> {
        v.revisions
            .iter()
            .filter(|k| v.software.contains(&k.0))
            .copied()
            .collect()
    };
    assert_eq!(software(&view(&a).await), l1, "product 1 only");

    // Some time passes: new revisions upstream move A's anchor on.
    up.mutate(|c| c.add_revisions(20)).unwrap();
    a.sync_now().await;

    // Product 2 joins the subscription: everything of it arrives.
    let o = a
        .cli(&[
            "subscription",
            "set",
            "--product",
            &p1.to_string(),
            "--product",
            &p2.to_string(),
            "--classification",
            "all",
        ])
        .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.sync_now().await;
    let want: BTreeSet<(Uuid, u32)> = oracle
        .revision_ids(Some(&[p1, p2]), Some(&vu.classifications))
        .await
        .into_iter()
        .collect();
    assert!(!l2.is_subset(&l1));
    assert_eq!(software(&view(&a).await), want, "products 1 and 2, whole");

    // The language filter (en = LCID 1033) went with every software pass.
    let passes: Vec<String> = proxy
        .requests("GetRevisionIdList")
        .into_iter()
        .filter(|r| r.contains("<GetConfig>false</GetConfig>"))
        .collect();
    assert!(passes.len() >= 3, "{} software passes", passes.len());
    for r in &passes {
        let langs = r.split("<Languages>").nth(1).expect("a Languages filter");
        assert!(langs.contains("<Id>1033</Id>"), "{r}");
    }
    drop(a);
    up.stop().await.unwrap();
}

/// Issue 14, the chain: simulated upstream → A → B. After a full sync, an expiry upstream, a
/// subscription change on A and an approval change upstream, what A and B offer downstream
/// over MS-WSUSSS is what the upstream offers (A starts subscribed to one product: until the
/// subscription change, B equals A and A is that product's share of the upstream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_upstream_a_b_stays_identical() {
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path(), 400).await;
    let oracle = Oracle::connect(&up.url()).await;
    let vu = oracle.view().await;
    let p1 = {
        let mut best = (vu.products[0], 0);
        for p in &vu.products {
            let n = oracle
                .revision_ids(Some(&[*p]), Some(&vu.classifications))
                .await
                .len();
            if n > best.1 {
                best = (*p, n);
            }
        }
        best.0
    };
    let a = start(
        dir.path(),
        "a",
        &up.url(),
        &format!("products = [\"{p1}\"]"),
    )
    .await;
    let b = start(dir.path(), "b", &a.url(), "").await;
    let share = |v: &View| -> BTreeSet<(Uuid, u32)> {
        v.revisions
            .iter()
            .filter(|k| v.software.contains(&k.0))
            .copied()
            .collect()
    };
    let p1_list: BTreeSet<(Uuid, u32)> = oracle
        .revision_ids(Some(&[p1]), Some(&vu.classifications))
        .await
        .into_iter()
        .collect();
    // 1. Full sync.
    let (va, vb) = (view(&a).await, view(&b).await);
    assert_eq!(share(&va), p1_list, "A holds product 1");
    assert_same("full sync: A vs B", &va, &vb);

    // 2. An approved update of product 1 expires upstream.
    let victim = {
        let cat = up.catalog.read().unwrap();
        let non_leaf = cat.non_leaf_ids();
        let found = cat
            .latest_revisions()
            .filter(|r| {
                r.record.kind == UpdateKind::Software
                    && !r.record.expired
                    && r.record.products.contains(&p1)
            })
            .map(|r| r.record.key.update_id)
            .find(|id| !non_leaf.contains(id) && cat.deployments_of(id).next().is_some());
        found.expect("an approved leaf of product 1")
    };
    up.mutate(|c| c.expire(victim)).unwrap().unwrap();
    a.sync_now().await;
    b.sync_now().await;
    let (va, vb) = (view(&a).await, view(&b).await);
    assert!(va.expired.contains(&victim) && vb.expired.contains(&victim));
    assert_same("expiry: A vs B", &va, &vb);

    // 3. A subscribes to everything.
    let o = a
        .cli(&[
            "subscription",
            "set",
            "--product",
            "all",
            "--classification",
            "all",
        ])
        .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.sync_now().await;
    b.sync_now().await;
    let vu = oracle.view().await;
    let (va, vb) = (view(&a).await, view(&b).await);
    assert_same("subscription: upstream vs A", &vu, &va);
    assert_same("subscription: upstream vs B", &vu, &vb);

    // 4. Approvals change upstream: a new approval, a decline.
    {
        let groups: Vec<Uuid> = up
            .catalog
            .read()
            .unwrap()
            .groups()
            .iter()
            .map(|g| g.id)
            .collect();
        let (fresh, doomed) = {
            let cat = up.catalog.read().unwrap();
            let non_leaf = cat.non_leaf_ids();
            let leaves: Vec<Uuid> = cat
                .latest_revisions()
                .filter(|r| {
                    r.record.kind == UpdateKind::Software
                        && !r.record.expired
                        && !non_leaf.contains(&r.record.key.update_id)
                        && !cat.is_declined(&r.record.key.update_id)
                })
                .map(|r| r.record.key.update_id)
                .collect();
            let fresh = *leaves
                .iter()
                .find(|id| cat.deployments_of(id).next().is_none())
                .expect("an unapproved leaf");
            let doomed = *leaves
                .iter()
                .find(|id| **id != fresh && cat.deployments_of(id).next().is_some())
                .expect("an approved leaf");
            (fresh, doomed)
        };
        up.mutate(|c| {
            c.approve(
                fresh,
                *groups.last().unwrap(),
                wsus_edge::model::ApprovalAction::Install,
                None,
            )
            .unwrap();
            c.decline(doomed).unwrap();
        })
        .unwrap();
    }
    a.sync_now().await;
    b.sync_now().await;
    let vu2 = oracle.view().await;
    assert_ne!(
        vu2.approvals, vu.approvals,
        "the approvals changed upstream"
    );
    let (va, vb) = (view(&a).await, view(&b).await);
    assert_same("approvals: upstream vs A", &vu2, &va);
    assert_same("approvals: upstream vs B", &vu2, &vb);
    drop(b);
    drop(a);
    up.stop().await.unwrap();
}

/// Issue 14, item 7: as an upstream, A relays what its upstream said (GetConfigData languages
/// and flags, `MUUrl`), and after A's store is rebuilt B is told `ServerChanged` and ends
/// equal to A instead of silently missing what changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_upstream_a_relays_and_a_rebuild_raises_server_changed() {
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path(), 200).await;
    let proxy = sync_proxy::SyncProxy::start(up.url()).await;
    // The upstream's configuration, as the proxy makes it: not lazy, hosting PSF files,
    // German enabled.
    proxy.rewrite(
        "GetConfigData",
        "<LazySync>true</LazySync>",
        "<LazySync>false</LazySync>",
    );
    proxy.rewrite(
        "GetConfigData",
        "<ServerHostsPsfFiles>false</ServerHostsPsfFiles>",
        "<ServerHostsPsfFiles>true</ServerHostsPsfFiles>",
    );
    proxy.rewrite(
        "GetConfigData",
        "<ShortLanguage>de</ShortLanguage><LongLanguage>German</LongLanguage><Enabled>false</Enabled>",
        "<ShortLanguage>de</ShortLanguage><LongLanguage>German</LongLanguage><Enabled>true</Enabled>",
    );
    let mut a = start(dir.path(), "a", &proxy.url(), "").await;
    let b = start(dir.path(), "b", &a.url(), "").await;

    let seen = Oracle::connect(&proxy.url()).await.config_data().await;
    assert_eq!(
        seen.text_of("LazySync").as_deref(),
        Some("false"),
        "the rewrite works"
    );
    let cfg = Oracle::connect(&a.url()).await.config_data().await;
    for flag in ["CatalogOnlySync", "LazySync", "ServerHostsPsfFiles"] {
        assert_eq!(cfg.text_of(flag), seen.text_of(flag), "{flag} relayed");
    }
    let langs = |c: &sss_oracle::El| -> BTreeSet<(String, String, String)> {
        c.child("LanguageUpdateList")
            .map(|l| {
                l.all("ServerSyncLanguageData")
                    .map(|d| {
                        (
                            d.text_of("LanguageID").unwrap_or_default(),
                            d.text_of("ShortLanguage").unwrap_or_default(),
                            d.text_of("Enabled").unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(langs(&seen).contains(&("1031".into(), "de".into(), "true".into())));
    assert_eq!(langs(&cfg), langs(&seen), "languages relayed");

    // MUUrl: what the upstream said, not A's own address.
    let vu = Oracle::connect(&up.url()).await.view().await;
    let va = view(&a).await;
    assert!(!vu.mu_urls.is_empty());
    assert_eq!(va.mu_urls, vu.mu_urls, "MUUrl relayed");

    // A is rebuilt (its data directory lost) while the upstream changes; B's next sync is told
    // ServerChanged and ends equal to A.
    up.mutate(|c| c.add_revisions(30)).unwrap();
    rebuild(&mut a).await;
    b.sync_now().await;
    assert!(b.log_text().contains("ServerChanged"), "{}", b.log_text());
    let (va, vb) = (view(&a).await, view(&b).await);
    assert_same("after A's rebuild: A vs B", &va, &vb);
    let vu = Oracle::connect(&up.url()).await.view().await;
    assert_same("after A's rebuild: upstream vs B", &vu, &vb);
    drop(b);
    drop(a);
    up.stop().await.unwrap();
}

/// Issue 14, item 7 in autonomous mode: a server with no upstream relays its own `[sync]
/// languages` in GetConfigData (those enabled, the rest and `all` not), as read by the
/// independent MS-WSUSSS client; without the setting it still offers a table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autonomous_get_config_data_enables_the_local_languages() {
    let dir = tempfile::tempdir().unwrap();
    let enabled = |cfg: &sss_oracle::El| -> BTreeSet<String> {
        cfg.child("LanguageUpdateList")
            .map(|l| {
                l.all("ServerSyncLanguageData")
                    .filter(|d| d.text_of("Enabled").as_deref() == Some("true"))
                    .map(|d| d.text_of("ShortLanguage").unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    };
    let configured = EdgeProcess::spawn(
        dir.path(),
        "solo",
        "",
        TOKEN,
        "",
        "[sync]\nlanguages = [\"de\", \"FR\"]",
        None,
    );
    let plain = EdgeProcess::spawn(dir.path(), "plain", "", TOKEN, "", "", None);
    for e in [&configured, &plain] {
        // Up once its admin API answers.
        for _ in 0..300 {
            if e.status().await.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let cfg = Oracle::connect(&configured.url()).await.config_data().await;
    let want: BTreeSet<String> = ["de".to_string(), "fr".to_string()].into();
    assert_eq!(
        enabled(&cfg),
        want,
        "the configured languages, nothing else"
    );
    let plain_cfg = Oracle::connect(&plain.url()).await.config_data().await;
    assert!(
        enabled(&plain_cfg).contains("all"),
        "no languages configured: all of them"
    );
}

/// The base64 text of the one `XmlUpdateBlobCompressed` in `text`, whitespace removed.
fn compressed_blob_text(text: &str) -> Option<String> {
    let open = "<XmlUpdateBlobCompressed>";
    let i = text.find(open)? + open.len();
    let j = i + text[i..].find("</XmlUpdateBlobCompressed>")?;
    Some(text[i..j].split_whitespace().collect())
}

/// Issue 14, item 7: a compressed update blob received from upstream travels down the chain
/// byte for byte. The upstream serves, for the Microsoft company category (56309036… r101),
/// the real LZX cabinet a Windows Server 2025 WSUS sent (tests/fixtures/wsusss, verbatim);
/// A syncs it, B syncs from A, and the independent client reads identical bytes from A and
/// from B (the edge cannot write LZX: anything it re-packed would be MSZIP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_lzx_blob_is_relayed_byte_for_byte() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let up = sim(dir.path(), 60).await;
    let capture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/wsusss/get_update_data_compressed.response.xml"),
    )
    .unwrap();
    let lzx_b64 = compressed_blob_text(&capture).expect("the capture's blob");
    let lzx = base64::engine::general_purpose::STANDARD
        .decode(&lzx_b64)
        .unwrap();
    // A cabinet (MS-CAB) whose first folder is LZX-compressed: CFFOLDER.typeCompress, low
    // nibble 3 (MSZIP is 1). The folder entry follows the 36-byte CFHEADER (no reserve).
    assert_eq!(&lzx[..4], b"MSCF");
    assert_eq!(lzx[30] & 0x04, 0, "no reserved fields in the header");
    assert_eq!(lzx[36 + 6] & 0x0f, 3, "the capture's blob is LZX");

    // Seed the upstream's store with that revision and that exact wire form.
    let xml = wsus_edge::wire::blob::decompress(&lzx_b64).unwrap();
    let record = wsus_edge::wire::update_xml::parse_update(&xml)
        .unwrap()
        .record;
    let key = record.key;
    assert_eq!(
        (key.update_id, key.revision),
        ("56309036-4c77-4dd9-951a-99ee9c246a94".parse().unwrap(), 101)
    );
    up.store()
        .commit_batch(
            &[wsus_edge::store::NewRevision {
                record,
                xml: xml.clone(),
            }],
            &[],
            None,
        )
        .unwrap();
    assert!(up
        .store()
        .put_compressed_blob(&key, &xml, &lzx_b64)
        .unwrap());

    let a = start(dir.path(), "a", &up.url(), "").await;
    let b = start(dir.path(), "b", &a.url(), "").await;
    for (name, url) in [("upstream", up.url()), ("A", a.url()), ("B", b.url())] {
        let (docs, res) = Oracle::connect(&url)
            .await
            .update_data(&[(key.update_id, key.revision)])
            .await;
        assert_eq!(docs.len(), 1, "{name} serves the revision");
        assert_eq!(docs[0].1, xml, "{name}: the same document");
        let got = res
            .find("XmlUpdateBlobCompressed")
            .map(|e| e.text.split_whitespace().collect::<String>());
        let got = base64::engine::general_purpose::STANDARD
            .decode(got.unwrap_or_else(|| panic!("{name}: no compressed blob")))
            .unwrap();
        assert!(got == lzx, "{name}: the blob is not the LZX bytes received");
    }
    drop(b);
    drop(a);
    up.stop().await.unwrap();
}
