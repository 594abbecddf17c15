//! The client protocol end to end: a scripted Windows Update Agent plays the whole sequence
//! over loopback HTTP against a store seeded from the simulated catalog, and what it is offered
//! is checked against the catalog's independent oracle.

#[path = "support/wusp_agent.rs"]
mod agent;
#[path = "support/wire_events.rs"]
mod wire_events;

use std::collections::HashSet;
use std::sync::Arc;

use agent::{group_path, seed, sha256, Agent};
use wire_events::reporting_event;
use wsus_edge::client_service::{ClientService, CookieKey, Options};
use wsus_edge::simulate::Catalog;
use wsus_edge::store::Store;
use wsus_edge::wire::soap::ErrorCode;
use wsus_edge::wire::wusp::{self, DeploymentAction};

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    cat: Arc<Catalog>,
    server: agent::TestServer,
}

async fn world(n: usize, seed_no: u64) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cat = Arc::new(Catalog::generate(n, seed_no));
    seed(&store, &cat);
    let svc = Arc::new(
        ClientService::new(store.clone(), CookieKey::random(), Options::default()).unwrap(),
    );
    let server = agent::start(svc, cat.clone()).await;
    World {
        _dir: dir,
        store,
        cat,
        server,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sequence_offers_exactly_the_oracle_set_and_downloads_verify() {
    let w = world(300, 7).await;
    let mut a = Agent::new(&w.server.base);
    let cfg = a.handshake(Some("Pilot")).await;
    assert_eq!(cfg.property("ProtocolVersion"), Some("3.2"));
    assert!(cfg.is_registration_required);
    assert_eq!(cfg.auth_info[0].plugin_id, "SimpleTargeting");
    // The computer is stored with its requested group.
    let comp = w.store.computer(&a.client_id).unwrap().unwrap();
    assert_eq!(comp.requested_groups, vec!["Pilot".to_string()]);
    assert_eq!(comp.os_version.as_deref(), Some("10.0.26100"));

    let scan = a.scan(None).await;
    assert!(scan.calls > 2, "layered walk takes several calls");
    let want = agent::want_offered(&w.cat, &group_path(&w.cat, Some("Pilot")), &scan.installed);
    let got = scan.offered();
    assert!(!want.is_empty());
    assert_eq!(got, want, "offered set differs from the oracle");
    // Every delivered update with the action the independent oracle gives it.
    assert_eq!(
        scan.actions(),
        agent::want_actions(
            &w.cat,
            &group_path(&w.cat, Some("Pilot")),
            &scan.installed,
            &[]
        ),
        "delivered actions differ from the oracle"
    );
    // A rescan with everything cached brings nothing new.
    let again = a.scan(Some(&scan)).await;
    assert_eq!(again.calls, 1);
    assert_eq!(again.offered(), want);

    // Extended info + file locations for the offered leaves.
    let ids: Vec<i32> = scan
        .received
        .iter()
        .filter(|(_, (k, _, _))| want.contains(k))
        .map(|(id, _)| *id)
        .collect();
    let ext = a.extended(&ids).await;
    assert!(ext.out_of_scope.is_empty());
    assert!(ext
        .updates
        .iter()
        .any(|(_, x)| x.starts_with("<ExtendedProperties")));
    assert!(ext
        .updates
        .iter()
        .any(|(_, x)| x.starts_with("<LocalizedProperties><Language>en</Language>")));
    assert!(!ext.file_locations.is_empty());
    let mut checked = 0;
    for loc in ext.file_locations.iter().take(4) {
        assert!(
            loc.url.starts_with(&format!("{}/Content/", w.server.base)),
            "{}",
            loc.url
        );
        let fid = w
            .cat
            .payloads()
            .by_sha1(&loc.digest)
            .expect("file in catalog");
        let pf = w.cat.payloads().get(fid).unwrap();
        let bytes = a.download(&loc.url, pf.size).await;
        assert_eq!(sha256(&bytes), pf.sha256, "SHA-256 of {}", loc.url);
        checked += 1;
    }
    assert!(checked > 0);

    // Reports: a 156 status list (one installed, one unapproved update not installed), a
    // failure, and an unknown event id are all stored; status follows 156 and 182 only.
    let keys: Vec<_> = want.iter().take(2).copied().collect();
    let unapproved = scan
        .actions()
        .into_iter()
        .find(|(_, act)| *act == DeploymentAction::PreDeploymentCheck)
        .map(|(k, _)| k)
        .expect("an unapproved update is delivered");
    let ev = |id: i32, k: wsus_edge::model::RevisionKey| wusp::ReportingEvent {
        target_sid: a.client_id.clone(),
        misc_data: vec!["C=1".into()],
        computer_brand: Some("QEMU".into()),
        os_locale_id: Some(1033),
        ..reporting_event(id, k, time::OffsetDateTime::now_utc())
    };
    let r = a
        .call(
            wusp::REPORTING_PATH,
            &wusp::ReportEventBatch {
                cookie: a.cookie.clone().unwrap(),
                client_time: time::OffsetDateTime::now_utc(),
                events: vec![
                    wusp::ReportingEvent {
                        misc_data: vec![
                            format!("U={}", unapproved.update_id),
                            format!("V={}", keys[0].update_id),
                        ],
                        ..ev(
                            156,
                            wsus_edge::model::RevisionKey::new(uuid::Uuid::nil(), 0),
                        )
                    },
                    ev(182, keys[1]),
                    ev(9999, keys[0]),
                ],
            },
        )
        .await
        .unwrap();
    assert!(r.result);
    let stored = w.store.events(&a.client_id).unwrap();
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().any(|e| e.event_id == 9999));
    // Status as WS2025 derives it: the 156 lists and 182 (wsus-protocol.md §3.6, INV §9.11).
    let counts = w.store.status_counts(&a.client_id).unwrap();
    assert_eq!((counts.needed, counts.installed, counts.failed), (1, 1, 1));
    let st = w.store.update_statuses(&a.client_id).unwrap();
    assert_eq!(
        st.get(&unapproved.update_id),
        Some(&wsus_edge::store::EventStatus::Needed),
        "an unapproved update the client lists as not installed is Needed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_see_different_sets_and_a_decline_removes_an_update() {
    let w = world(300, 7).await;
    let mut pilot = Agent::new(&w.server.base);
    pilot.handshake(Some("Pilot")).await;
    let mut server = Agent::new(&w.server.base);
    server.handshake(None).await;
    // Server-side targeting for the second computer.
    let servers = w.cat.group_named("Servers").unwrap().id;
    w.store
        .set_computer_groups(&server.client_id, &[servers])
        .unwrap();

    let sp = pilot.scan(None).await;
    let ss = server.scan(None).await;
    let want_p = agent::want_offered(
        &w.cat,
        &[w.cat.group_named("Pilot").unwrap().id],
        &sp.installed,
    );
    let want_s = agent::want_offered(&w.cat, &[servers], &ss.installed);
    assert_eq!(sp.offered(), want_p);
    assert_eq!(ss.offered(), want_s);
    assert_ne!(want_p, want_s, "groups see different approved sets");

    // Decline one update offered to both (an All Computers approval) and rescan from cache.
    let both: Vec<_> = want_p.intersection(&want_s).copied().collect();
    let victim = both
        .iter()
        .find(|k| {
            sp.received
                .values()
                .any(|(kk, a, _)| kk == *k && *a == DeploymentAction::Install)
        })
        .copied()
        .expect("an update offered to both");
    w.store.decline(&victim.update_id).unwrap();
    w.server.svc.invalidate();
    let mut cat = (*w.cat).clone();
    cat.decline(victim.update_id).unwrap();
    let sp2 = pilot.scan(Some(&sp)).await;
    let ss2 = server.scan(Some(&ss)).await;
    assert!(!sp2.offered().contains(&victim));
    assert!(!ss2.offered().contains(&victim));
    assert_eq!(
        sp2.offered(),
        agent::want_offered(
            &cat,
            &[cat.group_named("Pilot").unwrap().id],
            &sp2.installed
        )
    );
    assert_eq!(
        ss2.offered(),
        agent::want_offered(&cat, &[servers], &ss2.installed)
    );
    let victim_id = sp
        .received
        .iter()
        .find(|(_, (k, _, _))| *k == victim)
        .map(|(id, _)| *id)
        .unwrap();
    assert!(
        sp2.out_of_scope.contains(&victim_id),
        "declined update reported out of scope"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unassigned_computer_gets_all_computers_and_unassigned_approvals() {
    let w = world(200, 3).await;
    let mut a = Agent::new(&w.server.base);
    a.handshake(Some("No Such Group")).await;
    let s = a.scan(None).await;
    let want = agent::want_offered(
        &w.cat,
        &[wsus_edge::model::groups::UNASSIGNED_COMPUTERS],
        &s.installed,
    );
    assert_eq!(s.offered(), want);
    let hs: HashSet<_> = s.received.values().map(|(_, act, _)| *act).collect();
    assert!(hs.contains(&DeploymentAction::Evaluate));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_get_the_right_faults() {
    let w = world(60, 5).await;
    let mut a = Agent::new(&w.server.base);
    a.handshake(None).await;
    // Malformed XML → 400.
    let (s, _) = a
        .post_raw(
            wusp::CLIENT_PATH,
            wusp::action::SYNC_UPDATES,
            "<soap:Envelope".into(),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = a
        .post_raw(
            wusp::CLIENT_PATH,
            wusp::action::SYNC_UPDATES,
            "<!DOCTYPE x [<!ENTITY a 'b'>]><x/>".into(),
        )
        .await;
    assert_eq!(s, 400);
    // Wrong SOAPAction → InvalidParameters fault.
    let body = agent::envelope(&wusp::GetConfig {
        protocol_version: "1.8".into(),
    });
    let (s, t) = a
        .post_raw(wusp::CLIENT_PATH, wusp::action::SYNC_UPDATES, body.clone())
        .await;
    assert_eq!(s, 500);
    assert!(
        t.contains("<ErrorCode>InvalidParameters</ErrorCode>"),
        "{t}"
    );
    // Operation of another service at this endpoint → fault.
    let (s, t) = a
        .post_raw(wusp::REPORTING_PATH, wusp::action::GET_CONFIG, body)
        .await;
    assert_eq!(s, 500);
    assert!(t.contains("InvalidParameters"));
    // Unknown method.
    let unknown = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><Frobnicate xmlns="http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService"/></s:Body></s:Envelope>"#;
    let (s, t) = a.post_raw(wusp::CLIENT_PATH, "x", unknown.into()).await;
    assert_eq!(s, 500);
    assert!(t.contains("unknown operation Frobnicate"));
    // Forged cookie → InvalidCookie.
    let mut forged = a.cookie.clone().unwrap();
    if let Some(d) = forged.encrypted_data.as_mut() {
        d[20] ^= 0x55;
    }
    let good = a.cookie.replace(forged).unwrap();
    let e = a.sync(None, None).await.unwrap_err();
    assert!(e.is_fault(&ErrorCode::InvalidCookie), "{e}");
    a.cookie = Some(good);
    // > 400 installed non-leaf ids → InvalidParameters naming the parameter.
    let e = a
        .sync(Some((1..=401).collect()), Some(vec![]))
        .await
        .unwrap_err();
    assert!(e.is_fault(&ErrorCode::InvalidParameters));
    assert_eq!(
        e.fault().unwrap().message,
        "parameters.InstalledNonLeafUpdateIDs"
    );
    // 400 is fine.
    a.sync(Some((1..=400).collect()), Some(vec![]))
        .await
        .unwrap();
    // Forged authorization cookie.
    let e = a
        .get_cookie(wusp::AuthorizationCookie {
            plugin_id: "SimpleTargeting".into(),
            cookie_data: vec![1, 2, 3],
        })
        .await
        .unwrap_err();
    assert!(e.is_fault(&ErrorCode::InvalidAuthorizationCookie), "{e}");
    // Revision-id epoch change → ServerChanged.
    w.store.bump_revision_epoch().unwrap();
    let e = a.sync(None, None).await.unwrap_err();
    assert!(e.is_fault(&ErrorCode::ServerChanged), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_cookie_gets_cookie_expired() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let cat = Arc::new(Catalog::generate(30, 1));
    seed(&store, &cat);
    let opts = Options {
        cookie_ttl: std::time::Duration::ZERO,
        ..Options::default()
    };
    let svc = Arc::new(ClientService::new(store.clone(), CookieKey::random(), opts).unwrap());
    let server = agent::start(svc, cat).await;
    let a = Agent::new(&server.base);
    let auth = a
        .call(
            wusp::SIMPLE_AUTH_PATH,
            &wusp::GetAuthorizationCookie {
                client_id: a.client_id.clone(),
                target_group_name: None,
                dns_name: "x".into(),
            },
        )
        .await
        .unwrap()
        .result;
    let mut a = a;
    a.get_cookie(auth).await.unwrap();
    let e = a.sync(None, None).await.unwrap_err();
    assert!(e.is_fault(&ErrorCode::CookieExpired), "{e}");
}
