//! Unit tests of the upstream service: each operation through real envelopes.

use time::OffsetDateTime;
use uuid::Uuid;

use super::*;
use crate::model::{
    ApprovalAction, CategoryType, Deployment, FileRecord, RevisionKey, UpdateKind, UpdateRecord,
};
use crate::store::NewRevision;
use crate::wire::blob::UpdateBlob;
use crate::wire::soap::{decode, encode, Operation};
use crate::wire::sss::*;
use crate::wire::Anchor;

const PRODUCT: Uuid = Uuid::from_u128(0xA1);
const CLASS: Uuid = Uuid::from_u128(0xB1);
const OTHER_CLASS: Uuid = Uuid::from_u128(0xB2);

fn rec(n: u128, rev: u32, kind: UpdateKind, class: Option<Uuid>) -> NewRevision {
    let key = RevisionKey::new(Uuid::from_u128(n), rev);
    let mut sha1 = [0u8; 20];
    sha1[..16].copy_from_slice(&n.to_be_bytes());
    sha1[16..].copy_from_slice(&rev.to_be_bytes());
    let big = n.is_multiple_of(2);
    NewRevision {
        record: UpdateRecord {
            key,
            kind,
            category_type: (kind == UpdateKind::Category).then_some(CategoryType::Product),
            title: format!("u{n}"),
            kb: None,
            classification: class,
            products: if kind == UpdateKind::Software { vec![PRODUCT] } else { vec![] },
            prerequisites: vec![],
            bundled: vec![],
            supersedes: vec![],
            eula_id: None,
            files: if kind == UpdateKind::Software {
                vec![FileRecord {
                    name: format!("f{n}.cab"),
                    size: 10,
                    sha1,
                    sha256: Some([1; 32]),
                    upstream_url: None,
                    patching_type: None,
                }]
            } else {
                vec![]
            },
            expired: false,
            creation_date: None,
        },
        xml: format!(
            "<upd:Update xmlns:upd=\"http://schemas.microsoft.com/msus/2002/12/Update\">{}</upd:Update>",
            if big { "<x/>".repeat(2000) } else { format!("<n{n}/>") }
        ),
    }
}

struct Fx {
    _dir: tempfile::TempDir,
    svc: ServerSyncService,
}

fn fixture(ttl: Option<time::Duration>) -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut batch = vec![
        rec(0xA1, 1, UpdateKind::Category, None),
        rec(0xB1, 1, UpdateKind::Category, None),
        rec(0xD1, 1, UpdateKind::Detectoid, None),
    ];
    for n in 1..=150u128 {
        let class = if n % 10 == 0 { OTHER_CLASS } else { CLASS };
        batch.push(rec(0x1000 + n, 100, UpdateKind::Software, Some(class)));
    }
    store.commit_batch(&batch, &[], None).unwrap();
    let svc = ServerSyncService::new(
        store,
        ServerSyncOptions {
            advertised_url: Some("http://edge.example:8530/".into()),
            cookie_ttl: ttl,
            on_download: None,
            languages: Vec::new(),
        },
    )
    .unwrap();
    Fx { _dir: dir, svc }
}

#[allow(clippy::result_large_err)]
fn call<O: Operation>(svc: &ServerSyncService, op: &O) -> Result<O::Response, Fault> {
    let r = svc.handle_blocking(encode(op).as_bytes(), Some("h:1"));
    match decode::<O::Response>(r.body.as_bytes()) {
        Ok(v) => {
            assert_eq!(r.status, 200);
            Ok(v)
        }
        Err(WireError::Fault(f)) => {
            assert_eq!(r.status, 500);
            Err(*f)
        }
        Err(e) => panic!("undecodable answer: {e}: {}", r.body),
    }
}

fn session(svc: &ServerSyncService) -> Cookie {
    let auth = call(
        svc,
        &GetAuthorizationCookie {
            account_name: "branch.example.org".into(),
            account_guid: Uuid::new_v4().to_string(),
        },
    )
    .unwrap();
    call(
        svc,
        &GetCookie {
            auth_cookies: vec![auth.cookie],
            old_cookie: None,
            protocol_version: "1.20".into(),
        },
    )
    .unwrap()
    .cookie
}

fn ids(c: &[Uuid]) -> Option<Vec<IdAndDelta>> {
    Some(
        c.iter()
            .map(|id| IdAndDelta {
                id: *id,
                delta: true,
            })
            .collect(),
    )
}

fn list(
    svc: &ServerSyncService,
    cookie: &Cookie,
    f: ServerSyncFilter,
) -> GetRevisionIdListResponse {
    call(
        svc,
        &GetRevisionIdList {
            cookie: cookie.clone(),
            filter: f,
        },
    )
    .unwrap()
}

#[test]
fn auth_and_cookie_faults() {
    let fx = fixture(None);
    let svc = &fx.svc;
    let cfg = call(svc, &GetAuthConfig).unwrap();
    assert_eq!(cfg.auth_info[0].plugin_id, "DssTargeting");
    let bad = call(
        svc,
        &GetAuthorizationCookie {
            account_name: "x.example".into(),
            account_guid: "not-a-guid".into(),
        },
    )
    .unwrap_err();
    assert_eq!(bad.error_code, ErrorCode::InvalidParameters);
    assert_eq!(bad.message, "accountGuid");
    let forged = call(
        svc,
        &GetCookie {
            auth_cookies: vec![AuthorizationCookie {
                plugin_id: PLUGIN_ID.into(),
                cookie_data: vec![1; 57],
            }],
            old_cookie: None,
            protocol_version: "1.20".into(),
        },
    )
    .unwrap_err();
    assert_eq!(forged.error_code, ErrorCode::InvalidAuthorizationCookie);
    let c = session(svc);
    assert!(c.expiration > OffsetDateTime::now_utc() + time::Duration::minutes(239));
    let mut tampered = c.clone();
    if let Some(d) = tampered.encrypted_data.as_mut() {
        d[3] ^= 0x40;
    }
    let f = call(
        svc,
        &GetConfigData {
            cookie: tampered,
            config_anchor: None,
        },
    )
    .unwrap_err();
    assert_eq!(f.error_code, ErrorCode::InvalidCookie);
    assert_eq!(
        f.method,
        "\"http://www.microsoft.com/SoftwareDistribution/GetConfigData\""
    );
    let cfg = call(
        svc,
        &GetConfigData {
            cookie: c.clone(),
            config_anchor: None,
        },
    )
    .unwrap();
    assert_eq!(cfg.max_updates_per_request, 100);
    assert!(!cfg.languages.is_empty());
    let again = call(
        svc,
        &GetConfigData {
            cookie: c,
            config_anchor: cfg.new_config_anchor.clone(),
        },
    )
    .unwrap();
    assert!(again.languages.is_empty());
}

#[test]
fn expired_cookie_is_refused() {
    let fx = fixture(Some(time::Duration::milliseconds(1)));
    let c = session(&fx.svc);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let f = call(
        &fx.svc,
        &GetConfigData {
            cookie: c,
            config_anchor: None,
        },
    )
    .unwrap_err();
    assert_eq!(f.error_code, ErrorCode::InvalidCookie);
}

#[test]
fn revision_list_filters_and_deltas() {
    let fx = fixture(None);
    let svc = &fx.svc;
    let c = session(svc);
    let cfg = list(
        svc,
        &c,
        ServerSyncFilter {
            get_config: true,
            ..Default::default()
        },
    );
    assert_eq!(cfg.new_revisions.len(), 3, "two categories and a detectoid");
    let all = ServerSyncFilter {
        categories: ids(&[PRODUCT]),
        classifications: ids(&[CLASS, OTHER_CLASS]),
        ..Default::default()
    };
    let first = list(svc, &c, all.clone());
    assert_eq!(first.new_revisions.len(), 150);
    Anchor::parse(&first.anchor).expect("Windows-format anchor");
    let one_class = list(
        svc,
        &c,
        ServerSyncFilter {
            classifications: ids(&[OTHER_CLASS]),
            ..all.clone()
        },
    );
    assert_eq!(one_class.new_revisions.len(), 15);
    let only_one_list = list(
        svc,
        &c,
        ServerSyncFilter {
            classifications: None,
            ..all.clone()
        },
    );
    assert!(only_one_list.new_revisions.is_empty());
    // Nothing new: empty. A new revision: exactly it.
    let delta = ServerSyncFilter {
        anchor: Some(first.anchor.clone()),
        ..all.clone()
    };
    assert!(list(svc, &c, delta.clone()).new_revisions.is_empty());
    let newer = rec(0x1005, 101, UpdateKind::Software, Some(CLASS));
    svc.store()
        .commit_batch(std::slice::from_ref(&newer), &[], None)
        .unwrap();
    let got = list(svc, &c, delta.clone());
    assert_eq!(got.new_revisions, vec![newer.record.key]);
    // Delta=false re-lists everything under that entry.
    let full = list(
        svc,
        &c,
        ServerSyncFilter {
            classifications: Some(vec![IdAndDelta {
                id: CLASS,
                delta: false,
            }]),
            ..delta
        },
    );
    assert_eq!(full.new_revisions.len(), 135);
    let bad = call(
        svc,
        &GetRevisionIdList {
            cookie: c,
            filter: ServerSyncFilter {
                anchor: Some("garbage".into()),
                ..all
            },
        },
    )
    .unwrap_err();
    assert_eq!(
        (bad.error_code, bad.message.as_str()),
        (ErrorCode::InvalidParameters, "filter")
    );
}

#[test]
fn update_data_limits_compression_and_urls() {
    let fx = fixture(None);
    let svc = &fx.svc;
    let c = session(svc);
    let keys: Vec<RevisionKey> = (1..=101u128)
        .map(|n| RevisionKey::new(Uuid::from_u128(0x1000 + n), 100))
        .collect();
    let f = call(
        svc,
        &GetUpdateData {
            cookie: c.clone(),
            update_ids: keys.clone(),
        },
    )
    .unwrap_err();
    assert_eq!(
        (f.error_code, f.message.as_str()),
        (ErrorCode::InvalidParameters, "updateIds")
    );
    let r = call(
        svc,
        &GetUpdateData {
            cookie: c.clone(),
            update_ids: keys[..100].to_vec(),
        },
    )
    .unwrap();
    assert_eq!(r.updates.len(), 100);
    for u in &r.updates {
        let want = svc.store().revision_xml(&u.id).unwrap().unwrap();
        assert_eq!(u.blob.xml().unwrap(), want);
        let big = u.id.update_id.as_u128() % 2 == 0;
        assert_eq!(matches!(u.blob, UpdateBlob::Compressed(_)), big, "{}", u.id);
        assert_eq!(u.file_digests.as_ref().map(Vec::len), Some(1));
    }
    assert_eq!(r.file_urls.len(), 100);
    // The first answer cached the compressed forms; the second is served from the cache,
    // byte for byte the same envelope.
    let req = encode(&GetUpdateData {
        cookie: c.clone(),
        update_ids: keys[..100].to_vec(),
    });
    let cached = (1..=100u128)
        .filter(|n| {
            svc.store()
                .compressed_blob(&RevisionKey::new(Uuid::from_u128(0x1000 + n), 100))
                .unwrap()
                .is_some()
        })
        .count();
    assert_eq!(cached, 50, "the big (compressed) half");
    let again = svc.handle_blocking(req.as_bytes(), Some("h:1"));
    assert_eq!(again.body, encode(&r));
    assert!(r.file_urls[0]
        .mu_url
        .as_deref()
        .unwrap()
        .starts_with("http://edge.example:8530/Content/"));
    let unknown = call(
        svc,
        &GetUpdateData {
            cookie: c,
            update_ids: vec![RevisionKey::new(Uuid::from_u128(0x1001), 7)],
        },
    )
    .unwrap_err();
    assert_eq!(unknown.error_code, ErrorCode::InternalServerError);
}

#[test]
fn big_answers_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // 100 revisions of ~60 KB of incompressible-ish XML each: more than 2 MB.
    let batch: Vec<NewRevision> = (1..=100u128)
        .map(|n| {
            let mut r = rec(0x2000 + n, 1, UpdateKind::Software, Some(CLASS));
            let noise: String = (0..6000u32)
                .map(|i| {
                    format!(
                        "<a v=\"{:x}\"/>",
                        (i as u128 * 2654435761 + n * 97) % 1_000_003
                    )
                })
                .collect();
            r.xml = format!("<Update>{noise}</Update>");
            r
        })
        .collect();
    store.commit_batch(&batch, &[], None).unwrap();
    let svc = ServerSyncService::new(store, ServerSyncOptions::default()).unwrap();
    let c = session(&svc);
    let keys: Vec<RevisionKey> = batch.iter().map(|r| r.record.key).collect();
    let r = call(
        &svc,
        &GetUpdateData {
            cookie: c,
            update_ids: keys.clone(),
        },
    )
    .unwrap();
    assert!(
        !r.updates.is_empty() && r.updates.len() < 100,
        "{}",
        r.updates.len()
    );
    assert_eq!(r.updates[0].id, keys[0], "in request order");
    // File URLs follow the Host header when nothing is advertised.
    assert!(r.file_urls[0]
        .mu_url
        .as_deref()
        .unwrap()
        .starts_with("http://h:1/Content/"));
}

#[test]
fn deployments_deltas_with_dead_ones() {
    let fx = fixture(None);
    let svc = &fx.svc;
    let c = session(svc);
    let store = svc.store();
    let dep = |n: u128| Deployment {
        id: Uuid::from_u128(0xD000 + n),
        update: RevisionKey::new(Uuid::from_u128(0x1000 + n), 100),
        group: crate::model::groups::ALL_COMPUTERS,
        action: ApprovalAction::Install,
        deadline: None,
        last_change: OffsetDateTime::now_utc(),
        admin_name: "admin".into(),
        is_assigned: true,
        download_priority: 1,
    };
    for n in 1..=3 {
        store.set_deployment(&dep(n)).unwrap();
    }
    store.decline(&Uuid::from_u128(0x1009)).unwrap();
    let get = |anchor: Option<String>| {
        call(
            svc,
            &GetDeployments {
                cookie: c.clone(),
                deployment_anchor: anchor,
                sync_anchor: "5,2026-01-01 00:00:00.000".into(),
            },
        )
        .unwrap()
    };
    let first = get(None);
    assert_eq!(first.deployments.len(), 3);
    assert_eq!(first.groups.len(), 2);
    assert_eq!(first.hidden_updates, vec![Uuid::from_u128(0x1009)]);
    let same = get(Some(first.anchor.clone()));
    assert!(same.deployments.is_empty() && same.dead_deployments.is_empty());
    assert_eq!(
        Anchor::parse(&same.anchor).unwrap().counter,
        Anchor::parse(&first.anchor).unwrap().counter
    );
    store.remove_deployment(&dep(2).id).unwrap();
    let mut changed = dep(3);
    changed.action = ApprovalAction::Uninstall;
    store.set_deployment(&changed).unwrap();
    store.set_deployment(&dep(4)).unwrap();
    let d = get(Some(first.anchor));
    assert_eq!(d.dead_deployments, vec![dep(2).id]);
    let mut got: Vec<Uuid> = d.deployments.iter().map(|x| x.deployment_guid).collect();
    got.sort();
    assert_eq!(got, vec![dep(3).id, dep(4).id]);
    let missing = call(
        svc,
        &GetDeployments {
            cookie: c,
            deployment_anchor: None,
            sync_anchor: String::new(),
        },
    )
    .unwrap_err();
    assert_eq!(missing.error_code, ErrorCode::InvalidParameters);
}

#[test]
fn download_files_knows_its_digests() {
    let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let h2 = hits.clone();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = rec(0x1001, 100, UpdateKind::Software, Some(CLASS));
    store
        .commit_batch(std::slice::from_ref(&r), &[], None)
        .unwrap();
    let svc = ServerSyncService::new(
        store,
        ServerSyncOptions {
            on_download: Some(Arc::new(move |f| h2.lock().unwrap().extend(f))),
            ..Default::default()
        },
    )
    .unwrap();
    let c = session(&svc);
    let sha = r.record.files[0].sha1;
    call(
        &svc,
        &DownloadFiles {
            cookie: c.clone(),
            file_digests: vec![sha],
        },
    )
    .unwrap();
    assert_eq!(hits.lock().unwrap().len(), 1);
    let f = call(
        &svc,
        &DownloadFiles {
            cookie: c,
            file_digests: vec![sha, [9; 20]],
        },
    )
    .unwrap_err();
    assert_eq!(f.error_code, ErrorCode::FileDigestsMissing);
    assert_eq!(f.message, crate::wire::values::format_base64(&[9; 20]));
}
