//! MS-WUSP wire types against real captures (tests/fixtures/wusp/, see its README): every
//! captured request decodes with the types the server reads, and what the server writes has
//! the same element tree (names, namespaces, order) as what Windows Server 2025 sent.

use time::macros::datetime;
use wsus_edge::model::RevisionKey;
use wsus_edge::wire::soap::{self, ErrorCode, SoapBody};
use wsus_edge::wire::wusp::{self, *};
use wsus_edge::wire::xml::{Element, XmlWriter};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/wusp/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The element tree (namespaces, names, order; text of leaves) of a body, ignoring prefixes.
fn shape(el: &Element, out: &mut String, text: bool) {
    out.push_str(&format!(
        "<{{{}}}{}>",
        el.ns.as_deref().unwrap_or(""),
        el.name
    ));
    let kids: Vec<_> = el.elements().collect();
    if kids.is_empty() && text {
        out.push_str(el.text().trim());
    }
    for k in kids {
        shape(k, out, text);
    }
    out.push_str("</>");
}

fn body_shape(xml: &str, text: bool) -> String {
    let env = soap::parse_envelope(xml.as_bytes()).unwrap();
    let mut s = String::new();
    shape(&env.body, &mut s, text);
    s
}

fn ours<T: SoapBody>(b: &T) -> String {
    soap::encode(b)
}

#[test]
fn get_config_response_has_the_ws2025_shape() {
    let real = fixture("get_config.response.xml");
    let decoded: GetConfigResponse = soap::decode(real.as_bytes()).unwrap();
    let c = &decoded.result;
    assert_eq!(c.property("ProtocolVersion"), Some("3.2"));
    assert_eq!(c.auth_info[0].service_url, SIMPLE_AUTH_SERVICE_URL);
    assert_eq!(c.allowed_event_ids, None);
    // What we write for the same values has the same tree, element for element.
    let mine = ours(&decoded);
    assert_eq!(body_shape(&mine, true), body_shape(&real, true));
}

#[test]
fn simple_auth_and_get_cookie_captures_round_trip() {
    let req: GetAuthorizationCookie =
        soap::decode(fixture("get_authorization_cookie.request.xml").as_bytes()).unwrap();
    assert_eq!(req.client_id, "992ff43e-9bbb-4e77-a850-9d01d0e632b4");
    assert_eq!(req.target_group_name, None);
    assert_eq!(req.dns_name, "host3.invalid");
    let real = fixture("get_authorization_cookie.response.xml");
    let resp: GetAuthorizationCookieResponse = soap::decode(real.as_bytes()).unwrap();
    assert_eq!(resp.result.plugin_id, PLUGIN_ID);
    assert_eq!(body_shape(&ours(&resp), true), body_shape(&real, true));
    assert_eq!(
        body_shape(&ours(&req), true),
        body_shape(&fixture("get_authorization_cookie.request.xml"), true)
    );

    let native: GetCookie =
        soap::decode(fixture("get_cookie.native.request.xml").as_bytes()).unwrap();
    assert_eq!(native.protocol_version, "2.90");
    let old = native.old_cookie.as_ref().unwrap();
    assert_eq!(old.expiration, datetime!(2026-10-04 15:03:36 UTC));
    assert_eq!(old.encrypted_data, None);
    assert_eq!(native.auth_cookies.len(), 1);
    let real = fixture("get_cookie.response.xml");
    let c: GetCookieResponse = soap::decode(real.as_bytes()).unwrap();
    assert_eq!(body_shape(&ours(&c), true), body_shape(&real, true));
}

#[test]
fn register_computer_capture_decodes_typed_fields_only() {
    let real = fixture("register_computer.request.xml");
    let r: RegisterComputer = soap::decode(real.as_bytes()).unwrap();
    assert_eq!(r.computer_info.dns_name, "host3.invalid");
    assert_eq!(r.computer_info.os_version().as_deref(), Some("10.0.26100"));
    assert_eq!(r.computer_info.client_version, Some([10, 0, 26100, 0]));
    assert_eq!(r.computer_info.processor_architecture.as_deref(), Some("9"));
    let resp = fixture("register_computer.response.xml");
    assert_eq!(
        body_shape(&ours(&RegisterComputerResponse), true),
        body_shape(&resp, true)
    );
}

#[test]
fn native_sync_updates_request_and_real_response_shape() {
    let r: SyncUpdates =
        soap::decode(fixture("sync_updates.native_first.request.xml").as_bytes()).unwrap();
    // The native first call omits the id arrays entirely.
    assert_eq!(r.parameters.installed_non_leaf, None);
    assert_eq!(r.parameters.other_cached, None);
    assert!(!r.parameters.skip_software_sync);
    assert_eq!(r.parameters.filter_category_ids.len(), 1);

    let real = fixture("sync_updates.response.one_update.xml");
    let resp: SyncUpdatesResponse = soap::decode(real.as_bytes()).unwrap();
    let u = &resp.result.new_updates[0];
    assert_eq!(u.id, 107176);
    assert_eq!(u.deployment.action, DeploymentAction::Evaluate);
    assert_eq!(wusp::format_date(u.deployment.last_change), "2026-10-04");
    assert!(!u.is_leaf);
    assert!(u.xml.starts_with("<UpdateIdentity UpdateID=\"378c0b3f"));
    // Our encoding of the same answer: identical tree and leaf text (Xml escaped the same).
    assert_eq!(body_shape(&ours(&resp), true), body_shape(&real, true));
}

#[test]
fn the_400_cap_fault_matches_the_real_one() {
    let real = fixture("sync_updates.fault_401_installed.response.xml");
    let env = soap::parse_envelope(real.as_bytes()).unwrap();
    let f = env.fault().unwrap();
    assert_eq!(f.error_code, ErrorCode::InvalidParameters);
    let mine = soap::Fault::new(
        ErrorCode::InvalidParameters,
        "parameters.InstalledNonLeafUpdateIDs",
        wusp::action::SYNC_UPDATES,
    );
    let mine_env = soap::parse_envelope(mine.to_envelope().as_bytes()).unwrap();
    let back = mine_env.fault().unwrap();
    assert_eq!(back.message, f.message);
    assert_eq!(back.method, f.method);
    assert_eq!(
        body_shape(&mine.to_envelope(), false),
        body_shape(&real, false)
    );
}

#[test]
fn native_report_event_batch_decodes_and_answer_matches() {
    let r: ReportEventBatch =
        soap::decode(fixture("report_event_batch.native.request.xml").as_bytes()).unwrap();
    let e = &r.events[0];
    assert_eq!(e.event_id, 182);
    assert_eq!(e.target_sid, "e1da06a3-5601-43c9-bac3-52d5db701494");
    assert_eq!(
        e.update,
        RevisionKey::new(uuid::uuid!("a2fef9b0-7951-4c2c-a42b-9e351dd1c1fe"), 200)
    );
    assert_eq!(e.hresult, -2145099769);
    assert_eq!(e.replacement_strings.len(), 2);
    assert_eq!(e.os_locale_id, Some(1033));
    let real = fixture("report_event_batch.response.xml");
    assert_eq!(
        body_shape(&ours(&ReportEventBatchResponse { result: true }), true),
        body_shape(&real, true)
    );
}

#[test]
fn every_operation_round_trips() {
    fn rt<T: SoapBody + PartialEq + std::fmt::Debug>(v: T) {
        let back: T = soap::decode(soap::encode(&v).as_bytes()).unwrap();
        assert_eq!(back, v);
    }
    let cookie = Cookie {
        expiration: datetime!(2026-10-04 16:03:35.9967236 UTC),
        encrypted_data: Some(vec![1, 2, 3]),
    };
    let dep = Deployment {
        id: 7,
        action: DeploymentAction::Install,
        deadline: Some(datetime!(2026-12-01 10:00 UTC)),
        is_assigned: true,
        last_change: time::macros::date!(2026 - 10 - 04),
        auto_select: 0,
        auto_download: 0,
        supersedence_behavior: 0,
    };
    let key = RevisionKey::new(uuid::Uuid::from_u128(5), 200);
    rt(RefreshCache {
        cookie: cookie.clone(),
        global_ids: vec![key],
    });
    rt(RefreshCacheResponse {
        results: vec![RefreshCacheResult {
            revision_id: 3,
            global_id: key,
            is_leaf: true,
            deployment: dep.clone(),
        }],
    });
    rt(GetFileLocations {
        cookie: cookie.clone(),
        file_digests: vec![vec![9; 20]],
    });
    rt(GetFileLocationsResponse {
        file_locations: vec![FileLocation {
            digest: [1; 20],
            url: "http://x/Content/01/AB.cab".into(),
        }],
        new_cookie: Some(cookie.clone()),
    });
    rt(GetExtendedUpdateInfo {
        cookie: cookie.clone(),
        revision_ids: vec![1, 2],
        info_types: vec!["Extended".into()],
        locales: vec!["en".into()],
    });
    rt(GetExtendedUpdateInfoResponse {
        result: ExtendedUpdateInfo {
            updates: vec![(1, "<ExtendedProperties />".into())],
            file_locations: vec![],
            out_of_scope: vec![4],
        },
    });
    rt(SyncUpdatesResponse {
        result: SyncInfo {
            new_updates: vec![UpdateInfo {
                id: 1,
                deployment: dep.clone(),
                is_leaf: true,
                xml: "<a/>".into(),
            }],
            out_of_scope: vec![2, 3],
            changed_updates: vec![UpdateInfo {
                id: 4,
                deployment: dep,
                is_leaf: false,
                xml: String::new(),
            }],
            truncated: true,
            new_cookie: cookie,
            driver_sync_not_needed: false,
        },
    });
    let _ = XmlWriter::new();
}
