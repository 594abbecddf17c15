//! MS-WSUSSS wire types against real Windows Server 2025 captures (tests/fixtures/wsusss):
//! every captured response decodes into the typed structs, and re-encoding it yields the same
//! element structure (names, order, nesting) as the capture.

use std::path::PathBuf;

use wsus_edge::wire::blob::UpdateBlob;
use wsus_edge::wire::soap::{decode, encode, parse_envelope, FaultCode, SoapBody};
use wsus_edge::wire::sss::*;
use wsus_edge::wire::xml::{parse_document, Element, Limits};
use wsus_edge::wire::{Anchor, ErrorCode};

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/wsusss")
        .join(name);
    let mut b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    while b.last() == Some(&b'\n') {
        b.pop();
    }
    b
}

/// Element structure of a document: `(depth, namespace, local name)` in document order.
fn shape(xml: &[u8]) -> Vec<(usize, Option<String>, String)> {
    fn walk(e: &Element, d: usize, out: &mut Vec<(usize, Option<String>, String)>) {
        out.push((d, e.ns.as_deref().map(str::to_string), e.name.to_string()));
        for c in e.elements() {
            walk(c, d + 1, out);
        }
    }
    let root = parse_document(std::str::from_utf8(xml).unwrap(), &Limits::default()).unwrap();
    let mut out = Vec::new();
    walk(&root, 0, &mut out);
    out
}

/// Decodes a capture as `T`, re-encodes it, and checks the element structure is identical.
fn same_shape_as_capture<T: SoapBody>(name: &str) -> T {
    let raw = fixture(name);
    let v: T = decode(&raw).unwrap_or_else(|e| panic!("{name}: {e}"));
    let ours = encode(&v);
    assert_eq!(
        shape(ours.as_bytes()),
        shape(&raw),
        "{name}: element structure differs"
    );
    v
}

#[test]
fn get_auth_config_response() {
    let r: GetAuthConfigResponse = same_shape_as_capture("get_auth_config.response.xml");
    assert_eq!(r.auth_info.len(), 1);
    assert_eq!(r.auth_info[0].plugin_id, PLUGIN_ID);
    assert_eq!(
        r.auth_info[0].service_url,
        "DssAuthWebService/DssAuthWebService.asmx"
    );
    assert_eq!(r.auth_info[0].parameter, None);
}

#[test]
fn get_cookie_response() {
    let r: GetCookieResponse = same_shape_as_capture("get_cookie.response.xml");
    assert_eq!(
        wsus_edge::wire::values::format_datetime(r.cookie.expiration),
        "2026-10-04T20:33:26.65455Z"
    );
    let data = r.cookie.encrypted_data.unwrap();
    assert!(!data.is_empty() && data.iter().all(|b| *b == 0));
}

#[test]
fn get_config_data_responses() {
    let r: GetConfigDataResponse = same_shape_as_capture("get_config_data.response.xml");
    assert!(!r.catalog_only_sync && r.lazy_sync && !r.server_hosts_psf_files);
    assert_eq!(r.max_updates_per_request, 100);
    assert_eq!(r.max_updates_per_decryption_request, 100);
    assert_eq!(r.protocol_version.as_deref(), Some(PROTOCOL_VERSION));
    assert_eq!(r.languages.len(), 4);
    assert_eq!(r.languages[0].id, 0);
    assert_eq!(r.languages[0].short, "all");
    let en = r.languages.iter().find(|l| l.short == "en").unwrap();
    assert!(en.enabled && en.id == 1033 && en.long == "English");
    let anchor = Anchor::parse(r.new_config_anchor.as_deref().unwrap()).unwrap();
    assert_eq!(anchor.counter, 9438);

    let r: GetConfigDataResponse =
        same_shape_as_capture("get_config_data_with_anchor.response.xml");
    assert!(r.languages.is_empty());
    assert_eq!(
        r.new_config_anchor.as_deref(),
        Some("9438,2026-10-04 16:33:26.668")
    );
}

#[test]
fn get_revision_id_list_responses() {
    let r: GetRevisionIdListResponse = same_shape_as_capture("get_revision_id_list.response.xml");
    assert_eq!(r.anchor, "9438,2026-10-04 16:33:26.671");
    assert_eq!(r.new_revisions.len(), 4);
    // WS2025 lists some GUIDs twice with two revisions, contrary to the spec.
    assert_eq!(r.new_revisions[0].update_id, r.new_revisions[1].update_id);
    assert_eq!(r.new_revisions[0].revision, 100);
    assert_eq!(r.new_revisions[1].revision, 1);

    let r: GetRevisionIdListResponse =
        same_shape_as_capture("get_revision_id_list_empty.response.xml");
    assert!(r.new_revisions.is_empty());
    let older = Anchor::parse("9438,2026-10-04 16:33:26.671").unwrap();
    assert!(Anchor::parse(&r.anchor).unwrap() > older);
}

#[test]
fn get_update_data_with_a_real_lzx_blob() {
    let raw = fixture("get_update_data_compressed.response.xml");
    let r: GetUpdateDataResponse = decode(&raw).unwrap();
    assert_eq!(r.updates.len(), 1);
    assert!(r.file_urls.is_empty());
    let u = &r.updates[0];
    assert_eq!(u.id.revision, 101);
    assert!(u.file_digests.is_none());
    assert!(matches!(u.blob, UpdateBlob::Compressed(_)));
    let xml = u.blob.xml().unwrap();
    assert!(
        xml.starts_with("<upd:Update "),
        "{}",
        &xml[..40.min(xml.len())]
    );
    assert!(xml.contains("UpdateID=\"56309036-4C77-4DD9-951A-99EE9C246A94\""));
    assert!(xml.contains("CategoryType=\"Company\""));
    assert!(xml.ends_with("</upd:Update>"));
    // Our re-encoding (MSZIP) keeps the element structure and the document.
    let ours = encode(&r);
    assert_eq!(shape(ours.as_bytes()), shape(&raw));
    let back: GetUpdateDataResponse = decode(ours.as_bytes()).unwrap();
    assert_eq!(back.updates[0].blob.xml().unwrap(), xml);
}

#[test]
fn captured_faults_decode_to_typed_errors() {
    let raw = fixture("fault_internal_server_error.response.xml");
    let err = decode::<GetUpdateDataResponse>(&raw).unwrap_err();
    let f = err.fault().unwrap();
    assert_eq!(f.error_code, ErrorCode::InternalServerError);
    assert_eq!(f.code, FaultCode::Server);
    assert_eq!(f.string, "Fault occurred");
    assert_eq!(
        f.method,
        "\"http://www.microsoft.com/SoftwareDistribution/GetUpdateData\""
    );
    assert!(f.message.is_empty());
    assert!(f.id.is_some());
    // Our fault for the same situation has the same structure.
    let ours = f.to_envelope();
    assert_eq!(shape(ours.as_bytes()), shape(&raw));

    let raw = fixture("fault_invalid_parameters.response.xml");
    let env = parse_envelope(&raw).unwrap();
    let f = env.fault().unwrap();
    assert_eq!(f.error_code, ErrorCode::InvalidParameters);
    assert_eq!(f.code, FaultCode::Client);
    assert_eq!(f.message, "filter");
    assert_eq!(
        f.actor.as_deref(),
        Some("http://127.0.0.1:8530/ServerSyncWebService/ServerSyncWebService.asmx")
    );
}

#[test]
fn requests_match_the_spec_and_capture_shapes() {
    // GetRevisionIdList as the capture (000008 in the notes) shows it, with our cookie.
    let cookie = Cookie {
        expiration: wsus_edge::wire::values::parse_datetime("e", "2026-10-04T20:33:26.65455Z")
            .unwrap(),
        encrypted_data: Some(vec![0; 30]),
    };
    let req = GetRevisionIdList {
        cookie: cookie.clone(),
        filter: ServerSyncFilter {
            anchor: Some("9438,2026-10-04 16:33:26.668".into()),
            get_config: false,
            get_63_language_only: false,
            categories: Some(vec![IdAndDelta {
                id: uuid::uuid!("8c3fcc84-7410-4a95-8b89-a166a0190486"),
                delta: true,
            }]),
            classifications: Some(vec![IdAndDelta {
                id: uuid::uuid!("e0789628-ce08-4437-be74-2495b842f43b"),
                delta: true,
            }]),
            languages: None,
        },
    };
    let expected = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetRevisionIdList xmlns="http://www.microsoft.com/SoftwareDistribution"><cookie><Expiration>x</Expiration><EncryptedData>x</EncryptedData></cookie><filter><Anchor>x</Anchor><GetConfig>x</GetConfig><Get63LanguageOnly>x</Get63LanguageOnly><Categories><IdAndDelta><Id>x</Id><Delta>x</Delta></IdAndDelta></Categories><Classifications><IdAndDelta><Id>x</Id><Delta>x</Delta></IdAndDelta></Classifications></filter></GetRevisionIdList></soap:Body></soap:Envelope>"#;
    assert_eq!(shape(encode(&req).as_bytes()), shape(expected.as_bytes()));

    // GetDeployments first call (SS §4 sample 2): cookie + syncAnchor only.
    let req = GetDeployments {
        cookie,
        deployment_anchor: None,
        sync_anchor: "4742,2006-05-26 18:59:26.192".into(),
    };
    let expected = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetDeployments xmlns="http://www.microsoft.com/SoftwareDistribution"><cookie><Expiration>x</Expiration><EncryptedData>x</EncryptedData></cookie><syncAnchor>x</syncAnchor></GetDeployments></soap:Body></soap:Envelope>"#;
    assert_eq!(shape(encode(&req).as_bytes()), shape(expected.as_bytes()));
}
