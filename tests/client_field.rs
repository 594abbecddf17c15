//! The client service against what the field does (issue 13): a catalog with the shapes real
//! ones have (a KB2267602-shaped bundle of bundles, an unapproved software prerequisite,
//! drivers for one device; `Catalog::add_field_shapes`), a scripted agent that behaves like the
//! native one where it matters (StartCategoryScan before a filtered scan, cookie renewal with
//! `oldCookie`, ChangedUpdates applied, driver cache apart), and expected answers from the
//! catalog's independent delivery oracle (`Catalog::delivery`), never from the client service.

#[path = "support/wusp_agent.rs"]
mod agent;

use std::sync::Arc;
use std::time::Duration;

use agent::{seed, want_actions, Agent};
use wsus_edge::client_service::{ClientService, CookieKey, Options};
use wsus_edge::model::{groups, ApprovalAction, UpdateKind};
use wsus_edge::simulate::{categories as cats, Catalog, FieldShapes};
use wsus_edge::store::Store;
use wsus_edge::wire::soap::ErrorCode;
use wsus_edge::wire::wusp::{self, DeploymentAction, InstalledDriver, SpecDevice};

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    cat: Catalog,
    f: FieldShapes,
    server: agent::TestServer,
}

async fn world(opts: Options) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut cat = Catalog::generate(150, 11);
    let f = cat.add_field_shapes();
    seed(&store, &cat);
    let svc = Arc::new(ClientService::new(store.clone(), CookieKey::random(), opts).unwrap());
    let server = agent::start(svc, Arc::new(cat.clone())).await;
    World {
        _dir: dir,
        store,
        cat,
        f,
        server,
    }
}

fn all() -> Vec<uuid::Uuid> {
    vec![groups::UNASSIGNED_COMPUTERS]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_bundle_leaves_come_with_action_bundle_and_every_non_declined_update_is_delivered() {
    let w = world(Options::default()).await;
    let mut a = Agent::new(&w.server.base);
    a.handshake(None).await;
    let s = a.scan(None).await;
    let want = want_actions(&w.cat, &all(), &s.installed, &[]);
    assert_eq!(s.actions(), want, "delivery differs from the oracle");
    // The KB2267602 shape: the top Install with its deadline, both levels below Bundle with
    // the same deadline (the client installs the leaves: they carry the files).
    let act = |k| want.get(k).copied();
    assert_eq!(act(&w.f.definition), Some(DeploymentAction::Install));
    for k in w.f.middles.iter().chain(&w.f.leaves) {
        assert_eq!(act(k), Some(DeploymentAction::Bundle), "{k}");
        let d = s.deployment_of(k).unwrap();
        assert_eq!(d.deadline, Some(w.f.deadline), "{k}");
    }
    // Leaves' files are reachable through GetExtendedUpdateInfo.
    let leaf_ids: Vec<i32> = s
        .received
        .iter()
        .filter(|(_, (k, _, _))| w.f.leaves.contains(k))
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(leaf_ids.len(), w.f.leaves.len());
    let ext = a.extended(&leaf_ids).await;
    assert_eq!(ext.file_locations.len(), w.f.leaves.len());
    // Unapproved updates come as PreDeploymentCheck; the unapproved prerequisite as Evaluate;
    // no driver in the software pass; nothing declined.
    assert_eq!(
        act(&w.f.unapproved),
        Some(DeploymentAction::PreDeploymentCheck)
    );
    assert_eq!(act(&w.f.prerequisite), Some(DeploymentAction::Evaluate));
    for (k, _) in s.actions() {
        let r = w.cat.revision(&k).unwrap();
        assert_ne!(
            r.record.kind,
            UpdateKind::Driver,
            "driver {k} in the software pass"
        );
        assert!(!w.cat.is_declined(&k.update_id));
    }
    // The dependent update is offered exactly when its prerequisite is installed.
    assert_eq!(
        s.offered().contains(&w.f.dependent),
        s.installed.contains(&w.f.prerequisite.update_id)
    );
    // The walk ends: a rescan with the cache sends nothing new.
    let again = a.scan(Some(&s)).await;
    assert_eq!(again.calls, 1);
    assert_eq!(again.actions(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_added_while_the_cookie_expired_reaches_the_client_after_renewal() {
    let w = world(Options {
        cookie_ttl: Duration::from_secs(2),
        refresh_every: Duration::from_millis(1),
        ..Options::default()
    })
    .await;
    let mut a = Agent::new(&w.server.base);
    a.handshake(None).await;
    let s = a.scan(None).await;
    // Renewal with nothing changed: no ChangedUpdates.
    a.renew_cookie().await.unwrap();
    let quiet = a.scan(Some(&s)).await;
    assert!(quiet.changed.is_empty(), "{:?}", quiet.changed);
    // Upstream moves the deadline of KB2267602 (a new deployment replaces the old one).
    let mut cat = w.cat.clone();
    let new_deadline = w.f.deadline + time::Duration::days(3);
    cat.approve(
        w.f.definition.update_id,
        groups::ALL_COMPUTERS,
        ApprovalAction::Install,
        Some(new_deadline),
    )
    .unwrap();
    for d in w.store.deployments_of(&w.f.definition.update_id).unwrap() {
        w.store.remove_deployment(&d.id).unwrap();
    }
    for d in cat.deployments_of(&w.f.definition.update_id) {
        w.store.set_deployment(d).unwrap();
    }
    // The cookie expires in between; the agent renews with oldCookie and rescans.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let e = a.sync(Some(vec![]), Some(vec![])).await.unwrap_err();
    assert!(e.is_fault(&ErrorCode::CookieExpired), "{e}");
    a.renew_cookie().await.unwrap();
    let after = a.scan(Some(&s)).await;
    let changed: std::collections::BTreeSet<_> = after
        .changed
        .iter()
        .map(|(id, _)| after.received[id].0)
        .collect();
    for k in std::iter::once(&w.f.definition)
        .chain(&w.f.middles)
        .chain(&w.f.leaves)
    {
        assert!(changed.contains(k), "{k} not in ChangedUpdates");
        assert_eq!(after.deployment_of(k).unwrap().deadline, Some(new_deadline));
    }
    assert_eq!(
        after.actions(),
        want_actions(&cat, &all(), &after.installed, &[])
    );
    // Without a usable old cookie the server assumes nothing: every cached update is resent
    // as changed.
    a.cookie = None;
    let auth = a
        .call(
            wusp::SIMPLE_AUTH_PATH,
            &wusp::GetAuthorizationCookie {
                client_id: a.client_id.clone(),
                target_group_name: None,
                dns_name: "pc".into(),
            },
        )
        .await
        .unwrap()
        .result;
    a.get_cookie(auth).await.unwrap();
    let fresh = a.scan(Some(&after)).await;
    assert_eq!(fresh.changed.len(), after.received.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_driver_pass_matches_approved_drivers_to_the_devices_by_rank() {
    let w = world(Options::default()).await;
    let mut a = Agent::new(&w.server.base);
    a.handshake(None).await;
    let s = a.scan(None).await;
    let installed = Agent::installed_ids(&s);
    let device = SpecDevice {
        hardware_ids: FieldShapes::DEVICE_HW
            .iter()
            .map(|s| s.to_string())
            .collect(),
        compatible_ids: FieldShapes::DEVICE_COMPAT
            .iter()
            .map(|s| s.to_string())
            .collect(),
        installed: Some(InstalledDriver {
            matching_id: Some(FieldShapes::DEVICE_COMPAT[0].into()),
            ver_date: Some(time::macros::datetime!(2006-06-21 00:00 UTC)),
            ver_version: 10 << 48,
        }),
    };
    let other = SpecDevice {
        hardware_ids: vec!["ACPI\\PNP0303".into(), "*PNP0303".into()],
        ..Default::default()
    };
    let info = a
        .driver_scan(&installed, vec![other.clone(), device.clone()], None)
        .await;
    assert!(!info.driver_sync_not_needed);
    let got: Vec<_> = info
        .new_updates
        .iter()
        .map(|u| agent::identity_of(&u.xml).0)
        .collect();
    // A hardware-id match (driver_hw) beats the compatible-id one; the unapproved one never.
    assert_eq!(got, vec![w.f.driver_hw]);
    assert_eq!(
        info.new_updates[0].deployment.action,
        DeploymentAction::Install
    );
    let hw_id = info.new_updates[0].id;
    // Cached: nothing new, nothing out of scope.
    let again = a
        .driver_scan(&installed, vec![device.clone()], Some(vec![hw_id]))
        .await;
    assert!(again.new_updates.is_empty() && again.out_of_scope.is_empty());
    // A device nothing approved matches: DriverSyncNotNeeded.
    let none = a.driver_scan(&installed, vec![other], None).await;
    assert!(none.driver_sync_not_needed && none.new_updates.is_empty());
    // A cached driver that no longer matches goes out of scope.
    let compat_id = w.store.local_id(&w.f.driver_compat).unwrap().unwrap() as i32;
    let stale = a
        .driver_scan(&installed, vec![device], Some(vec![hw_id, compat_id]))
        .await;
    assert_eq!(stale.out_of_scope, vec![compat_id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_category_limited_scan_starts_with_start_category_scan_and_gets_only_its_closure() {
    let w = world(Options::default()).await;
    let mut a = Agent::new(&w.server.base);
    a.handshake(None).await;
    let filter = [cats::PRODUCT_DEFENDER];
    let s = a.scan_filtered(None, &filter).await;
    let want = want_actions(&w.cat, &all(), &s.installed, &filter);
    assert_eq!(s.actions(), want);
    let scope = w.cat.delivery_scope(&filter);
    assert!(s.actions().keys().all(|k| scope.contains(&k.update_id)));
    assert!(s.actions().contains_key(&w.f.definition));
    assert!(
        !s.actions().contains_key(&w.f.dependent),
        "a Windows update"
    );
    let full = want_actions(&w.cat, &all(), &s.installed, &[]);
    assert!(full.len() > want.len());
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/wusp/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The captured native requests (tests/fixtures/wusp, see its README), replayed against the
/// server with only the cookie placeholder swapped for a live session cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_native_requests_replay_against_the_server() {
    let w = world(Options::default()).await;
    let mut a = Agent::new(&w.server.base);
    a.handshake(None).await;
    // StartCategoryScan (no cookie): the answer WS2025 gave.
    let (st, body) = a
        .post_raw(
            wusp::CLIENT_PATH,
            wusp::action::START_CATEGORY_SCAN,
            fixture("start_category_scan.request.xml"),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let got: wusp::StartCategoryScanResponse =
        wsus_edge::wire::soap::decode(body.as_bytes()).unwrap();
    let real: wusp::StartCategoryScanResponse =
        wsus_edge::wire::soap::decode(fixture("start_category_scan.response.xml").as_bytes())
            .unwrap();
    assert_eq!(got, real);
    // The driver pass with the native SystemSpec.
    let s = a.scan(None).await;
    let c = a.cookie.clone().unwrap();
    let live = fixture("sync_updates.driver_pass.request.xml").replace(
        "<EncryptedData>AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA</EncryptedData>",
        &format!(
            "<EncryptedData>{}</EncryptedData>",
            wsus_edge::wire::values::format_base64(c.encrypted_data.as_deref().unwrap())
        ),
    );
    let installed: String = Agent::installed_ids(&s)
        .iter()
        .map(|i| format!("<int>{i}</int>"))
        .collect();
    let live = live.replace("<int>108226</int><int>108231</int>", &installed);
    let sync = |x: String| {
        let a = &a;
        async move {
            let (st, body) = a
                .post_raw(wusp::CLIENT_PATH, wusp::action::SYNC_UPDATES, x)
                .await;
            assert_eq!(st, 200, "{body}");
            wsus_edge::wire::soap::decode::<wusp::SyncUpdatesResponse>(body.as_bytes())
                .unwrap()
                .result
        }
    };
    // As captured (filtered to the OOBE category, which holds no driver here): nothing to do.
    let r = sync(live.clone()).await;
    assert!(r.driver_sync_not_needed && r.new_updates.is_empty());
    // Without the filter: the real device list's PCI device gets the approved driver that
    // names one of its hardware ids, not the compatible-id one.
    let start = live.find("<FilterCategoryIds>").unwrap();
    let end = live.find("</FilterCategoryIds>").unwrap() + "</FilterCategoryIds>".len();
    let unfiltered = format!("{}{}", &live[..start], &live[end..]);
    let r = sync(unfiltered).await;
    assert!(!r.driver_sync_not_needed);
    let got: Vec<_> = r
        .new_updates
        .iter()
        .map(|u| agent::identity_of(&u.xml).0)
        .collect();
    assert_eq!(got, vec![w.f.driver_hw]);
    // RefreshCache for the KB2267602 tree: the top with its approval, Bundle members left out
    // (as WS2025 did, INV §9.8); GetFileLocations for a leaf's file.
    let mut ids = vec![w.f.definition];
    ids.extend(w.f.leaves.iter().copied());
    let rc = a
        .call(
            wusp::CLIENT_PATH,
            &wusp::RefreshCache {
                cookie: a.cookie.clone().unwrap(),
                global_ids: ids,
            },
        )
        .await
        .unwrap();
    assert_eq!(rc.results.len(), 1);
    assert_eq!(rc.results[0].global_id, w.f.definition);
    assert_eq!(rc.results[0].deployment.action, DeploymentAction::Install);
    let leaf = w.cat.revision(&w.f.leaves[0]).unwrap();
    let digest = leaf.record.files[0].sha1;
    let fl = a
        .call(
            wusp::CLIENT_PATH,
            &wusp::GetFileLocations {
                cookie: a.cookie.clone().unwrap(),
                file_digests: vec![digest.to_vec()],
            },
        )
        .await
        .unwrap();
    assert_eq!(fl.file_locations.len(), 1);
    assert!(fl.file_locations[0]
        .url
        .starts_with(&format!("{}/Content/", w.server.base)));
}
