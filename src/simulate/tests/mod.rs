//! Tests of the simulated catalog: determinism, XML well-formedness and agreement with the
//! records, payload digests, the layered prerequisite graph and mutations. The oracle's tests
//! are in `oracle.rs`, the printed generation measurement in `measure.rs`.

mod measure;
mod oracle;

use std::collections::{BTreeSet, HashSet};
use std::io::Read;

use base64::Engine as _;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use sha1::{Digest as _, Sha1};
use sha2::Sha256;
use uuid::Uuid;

use super::categories::{self, is_classification};
use super::*;
use crate::model::{
    groups, ApprovalAction, CategoryType, FileRecord, RevisionKey, UpdateKind, UpdateRecord,
};

fn small() -> Catalog {
    Catalog::generate(600, 11)
}

fn attr(e: &quick_xml::events::BytesStart, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name.as_bytes())
        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
}

/// A small independent reader of the fields the record indexes, resolving namespaces (so it
/// does not depend on prefixes).
fn parse_record(xml: &str) -> UpdateRecord {
    let mut r = NsReader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut rec = UpdateRecord {
        key: RevisionKey::new(Uuid::nil(), 0),
        kind: UpdateKind::Software,
        category_type: None,
        title: String::new(),
        kb: None,
        classification: None,
        products: vec![],
        prerequisites: vec![],
        bundled: vec![],
        supersedes: vec![],
        eula_id: None,
        files: vec![],
        expired: false,
        creation_date: None,
    };
    let mut lang = String::new();
    let mut cat_clauses: Vec<Vec<Uuid>> = Vec::new();
    let mut in_cat_clause = false;
    loop {
        let (ns, ev) = r.read_resolved_event().expect("well-formed");
        let (is_empty, e) = match &ev {
            Event::Start(e) => (false, e.clone()),
            Event::Empty(e) => (true, e.clone()),
            Event::End(_) => {
                let top = path.pop().unwrap();
                if top == "AtLeastOne" {
                    in_cat_clause = false;
                }
                continue;
            }
            Event::Text(t) => {
                let text = t.unescape().unwrap().into_owned();
                match path.last().map(String::as_str) {
                    Some("Language") if path.iter().any(|p| p == "LocalizedProperties") => {
                        lang = text
                    }
                    Some("Title") if lang == "en" && rec.title.is_empty() => rec.title = text,
                    Some("KBArticleID") => rec.kb = Some(text),
                    Some("AdditionalDigest") => {
                        let b = base64::engine::general_purpose::STANDARD
                            .decode(text)
                            .unwrap();
                        rec.files.last_mut().unwrap().sha256 = Some(b.try_into().unwrap());
                    }
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let local = String::from_utf8(e.local_name().as_ref().to_vec()).unwrap();
        if path.is_empty() {
            assert_eq!(local, "Update");
            assert!(matches!(ns, ResolveResult::Bound(n) if n.as_ref() == NS_UPDATE.as_bytes()));
        }
        let parent = path.last().cloned().unwrap_or_default();
        match local.as_str() {
            "UpdateIdentity" => {
                let id: Uuid = attr(&e, "UpdateID").unwrap().parse().unwrap();
                match parent.as_str() {
                    "Update" => {
                        rec.key = RevisionKey::new(
                            id,
                            attr(&e, "RevisionNumber").unwrap().parse().unwrap(),
                        )
                    }
                    "Prerequisites" => rec.prerequisites.push(vec![id]),
                    "AtLeastOne" if path.iter().any(|p| p == "Prerequisites") => {
                        rec.prerequisites.last_mut().unwrap().push(id);
                        if in_cat_clause {
                            cat_clauses.last_mut().unwrap().push(id);
                        }
                    }
                    "SupersededUpdates" => rec.supersedes.push(id),
                    _ if path.iter().any(|p| p == "BundledUpdates") => rec.bundled.push(id),
                    _ => {}
                }
            }
            "AtLeastOne" if parent == "Prerequisites" => {
                rec.prerequisites.push(vec![]);
                in_cat_clause = attr(&e, "IsCategory").as_deref() == Some("true");
                if in_cat_clause {
                    cat_clauses.push(vec![]);
                }
            }
            "Properties" => {
                rec.kind = match attr(&e, "UpdateType").unwrap().as_str() {
                    "Software" => UpdateKind::Software,
                    "Driver" => UpdateKind::Driver,
                    "Category" => UpdateKind::Category,
                    "Detectoid" => UpdateKind::Detectoid,
                    other => panic!("type {other}"),
                };
                rec.expired = attr(&e, "PublicationState").as_deref() == Some("Expired");
                rec.creation_date = attr(&e, "CreationDate");
                rec.eula_id = attr(&e, "EulaID").map(|s| s.parse().unwrap());
            }
            "File" => {
                let d = base64::engine::general_purpose::STANDARD
                    .decode(attr(&e, "Digest").unwrap())
                    .unwrap();
                rec.files.push(FileRecord {
                    name: attr(&e, "FileName").unwrap(),
                    size: attr(&e, "Size").unwrap().parse().unwrap(),
                    sha1: d.try_into().unwrap(),
                    sha256: None,
                    upstream_url: None,
                    patching_type: attr(&e, "PatchingType"),
                });
            }
            "CategoryInformation" => {
                rec.category_type = Some(match attr(&e, "CategoryType").unwrap().as_str() {
                    "Company" => CategoryType::Company,
                    "ProductFamily" => CategoryType::ProductFamily,
                    "Product" => CategoryType::Product,
                    _ => CategoryType::UpdateClassification,
                })
            }
            _ => {}
        }
        if !is_empty {
            path.push(local);
        }
    }
    if matches!(rec.kind, UpdateKind::Software | UpdateKind::Driver) {
        for id in cat_clauses.into_iter().flatten() {
            if is_classification(&id) {
                rec.classification = Some(id);
            } else {
                rec.products.push(id);
            }
        }
    }
    rec
}

#[test]
fn same_seed_gives_identical_xml_and_records() {
    let a = small();
    let b = small();
    assert_eq!(a.revision_count(), b.revision_count());
    for (x, y) in a.revisions().zip(b.revisions()) {
        assert_eq!(x, y);
        assert_eq!(a.xml(&x.record.key), b.xml(&y.record.key));
    }
    assert_eq!(
        a.deployments().collect::<Vec<_>>(),
        b.deployments().collect::<Vec<_>>()
    );
    let c = Catalog::generate(600, 12);
    let ka: Vec<_> = a.revisions().map(|r| r.record.key).collect();
    let kc: Vec<_> = c.revisions().map(|r| r.record.key).collect();
    assert_ne!(ka, kc);
}

#[test]
fn every_xml_is_well_formed_and_parses_back_to_its_record() {
    let c = small();
    assert!(c.update_count() >= 600);
    for rev in c.revisions() {
        let xml = c.xml(&rev.record.key).unwrap();
        let parsed = parse_record(&xml);
        assert_eq!(parsed, rev.record, "{}", xml);
    }
}

#[test]
fn some_blobs_travel_compressed_and_some_do_not() {
    let c = small();
    let utf16 = |k: &RevisionKey| c.xml(k).unwrap().encode_utf16().count() * 2;
    let sizes: Vec<usize> = c.revisions().map(|r| utf16(&r.record.key)).collect();
    let big = sizes.iter().filter(|s| **s > 5120).count();
    assert!(big >= 20, "only {big} big blobs");
    assert!(sizes.iter().filter(|s| **s <= 5120).count() >= 20);
}

#[test]
fn digests_match_the_payload_bytes() {
    let c = small();
    let p = c.payloads();
    assert!(p.len() > 100);
    for (id, f) in p.iter().step_by(7) {
        let mut bytes = Vec::new();
        p.reader(id).unwrap().read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, f.size);
        assert_eq!(<[u8; 20]>::from(Sha1::digest(&bytes)), f.sha1);
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&bytes)), f.sha256);
        assert!(f.size >= 1024 && f.size <= 64 * 1024);
    }
    // Records carry the same digests as the payload table.
    for rev in c.revisions() {
        for (fid, rec) in rev.files.iter().zip(&rev.record.files) {
            assert_eq!(p.get(*fid).unwrap().record(), *rec);
        }
    }
}

#[test]
fn the_layered_walk_is_acyclic_and_has_at_least_three_layers() {
    let c = small();
    let non_leaf = c.non_leaf_ids();
    let mut installed: HashSet<Uuid> = HashSet::new();
    let mut layers = 0;
    loop {
        let new: Vec<Uuid> = non_leaf
            .iter()
            .filter(|id| !installed.contains(*id))
            .filter(|id| {
                c.latest(id)
                    .unwrap()
                    .record
                    .prerequisites
                    .iter()
                    .all(|cl| cl.iter().any(|u| installed.contains(u)))
            })
            .copied()
            .collect();
        if new.is_empty() {
            break;
        }
        layers += 1;
        installed.extend(new);
    }
    assert_eq!(
        installed.len(),
        non_leaf.len(),
        "a cycle or a dangling prerequisite"
    );
    assert!(layers >= 3, "{layers} layers");
    // Every prerequisite names an update of the catalog.
    for rev in c.revisions() {
        for id in rev
            .record
            .prerequisite_ids()
            .chain(rev.record.bundled.iter().copied())
        {
            assert!(c.latest(&id).is_some(), "dangling {id}");
        }
    }
    // Leaves are not named as prerequisites.
    assert!(c
        .of_kind(UpdateKind::Software)
        .all(|r| !non_leaf.contains(&r.record.key.update_id)));
}

#[test]
fn the_catalog_has_every_shape_the_protocol_tests_need() {
    let c = small();
    let latest: Vec<&SimRevision> = c.latest_revisions().collect();
    for (id, _) in categories::CLASSIFICATIONS {
        assert_eq!(
            c.latest(&id).unwrap().record.category_type,
            Some(CategoryType::UpdateClassification)
        );
    }
    assert!(c.latest(&categories::COMPANY_MICROSOFT).is_some());
    assert!(c.of_kind(UpdateKind::Driver).count() >= 5);
    assert!(c.of_kind(UpdateKind::Detectoid).count() >= 10);
    assert!(latest.iter().any(|r| !r.record.bundled.is_empty()));
    assert!(
        latest
            .iter()
            .filter(|r| !r.record.supersedes.is_empty())
            .count()
            >= 10
    );
    assert!(latest.iter().any(|r| r.record.expired));
    assert!(latest.iter().any(|r| r.record.eula_id.is_some()));
    assert!(latest.iter().any(|r| r.record.products.len() == 2));
    assert!(c.revision_count() > c.update_count());
    let exts: BTreeSet<String> = latest
        .iter()
        .filter(|r| r.handler() == Handler::OsInstaller)
        .flat_map(|r| r.record.files.iter().map(|f| f.extension()))
        .collect();
    for e in ["esd", "wim", "psf", "msu", "cab"] {
        assert!(exts.contains(e), "no .{e}");
    }
    assert!(c
        .groups()
        .iter()
        .any(|g| g.id == groups::ALL_COMPUTERS && g.parent.is_none()));
    assert!(c
        .groups()
        .iter()
        .any(|g| g.id == groups::UNASSIGNED_COMPUTERS));
    let pilot = c.group_named("Pilot").unwrap();
    assert_eq!(
        pilot.parent,
        Some(c.group_named("Workstations").unwrap().id)
    );
    let deps: Vec<_> = c.deployments().collect();
    assert!(deps.iter().any(|d| d.deadline.is_some()));
    assert!(deps.iter().any(|d| d.action == ApprovalAction::Uninstall));
    assert!(c.declined().count() > 0);
    assert!(c.accepted_eulas().count() > 0);
    assert!(c.eula(&c.accepted_eulas().next().unwrap()).is_some());
    assert_eq!(c.revisions_changed_since(0).len(), c.update_count());
}

#[test]
fn mutations_are_stamped_and_visible_as_changes() {
    let mut c = small();
    let before = c.change_counter();
    let updates_before = c.update_count();
    assert!(c.revisions_changed_since(before).is_empty());
    let new = c.add_revisions(100);
    assert!(new.len() >= 100);
    assert!(c.change_counter() > before);
    let changed: BTreeSet<RevisionKey> = c.revisions_changed_since(before).into_iter().collect();
    for k in &new {
        let newest = c.latest(&k.update_id).unwrap().record.key;
        assert!(changed.contains(&newest));
        assert!(c.revision(k).unwrap().change > before);
    }
    assert!(c.update_count() > updates_before, "some brand-new updates");
    assert!(new.iter().any(|k| k.revision > 200), "some new revisions");
    // A new revision of an approved update carries its approvals along.
    for d in c.deployments() {
        assert_eq!(d.update, c.latest(&d.update.update_id).unwrap().record.key);
    }

    let leaf = c
        .of_kind(UpdateKind::Software)
        .find(|r| {
            !c.is_declined(&r.record.key.update_id)
                && r.detail.explicitly_deployable
                && !r.record.expired
        })
        .unwrap()
        .record
        .key
        .update_id;
    let pilot = c.group_named("Pilot").unwrap().id;
    let anchor = c.change_counter();
    let d1 = c
        .approve(leaf, pilot, ApprovalAction::Install, None)
        .unwrap();
    let delta = c.deployments_changed_since(anchor);
    assert!(delta.deployments.iter().any(|d| d.id == d1));
    let anchor = c.change_counter();
    let d2 = c
        .approve(leaf, pilot, ApprovalAction::Uninstall, None)
        .unwrap();
    let delta = c.deployments_changed_since(anchor);
    assert_eq!(delta.dead, vec![d1]);
    assert_eq!(delta.deployments.len(), 1);
    assert_eq!(delta.deployments[0].id, d2);
    assert!(c.unapprove(leaf, pilot));
    assert!(c.deployments_changed_since(anchor).dead.contains(&d2));

    let anchor = c.change_counter();
    c.decline(leaf).unwrap();
    assert!(c.is_declined(&leaf));
    assert!(c.change_counter() > anchor);
    assert_eq!(
        c.approve(leaf, pilot, ApprovalAction::Install, None),
        Err(MutateError::Declined(leaf))
    );
    assert!(c.undecline(leaf));

    let anchor = c.change_counter();
    let k = c.expire(leaf).unwrap();
    assert!(c.latest(&leaf).unwrap().record.expired);
    assert_eq!(c.revisions_changed_since(anchor), vec![k]);
    assert!(parse_record(&c.xml(&k).unwrap()).expired);
    assert_eq!(
        c.approve(
            categories::SECURITY_UPDATES,
            pilot,
            ApprovalAction::Install,
            None
        ),
        Err(MutateError::NotApprovable(categories::SECURITY_UPDATES))
    );
}

#[test]
fn large_uup_files_are_streamed_and_hashed_without_holding_them() {
    let mut o = GenOptions::new(300, 3);
    o.large_uup_files = 2;
    o.large_file_size = 3 * 1024 * 1024 + 17;
    let c = Catalog::generate_with(&o);
    let p = c.payloads();
    let large: Vec<FileId> = p
        .iter()
        .filter(|(_, f)| f.size == o.large_file_size)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(large.len(), 2);
    for id in large {
        let f = p.get(id).unwrap();
        assert!(f.name.ends_with(".wim"));
        let (mut s1, mut s256) = (Sha1::new(), Sha256::new());
        let mut off = 0;
        while off < f.size {
            let n = (f.size - off).min(1 << 20);
            let chunk = p.read_range(id, off, n).unwrap();
            s1.update(&chunk);
            s256.update(&chunk);
            off += n;
        }
        assert_eq!(<[u8; 20]>::from(s1.finalize()), f.sha1);
        assert_eq!(<[u8; 32]>::from(s256.finalize()), f.sha256);
        assert_eq!(p.by_sha1(&f.sha1), Some(id));
        assert!(f
            .mu_url()
            .ends_with(&format!("_{}.wim", hex::encode(f.sha1))));
    }
}

#[test]
fn anchors_follow_the_change_counter() {
    assert_eq!(Catalog::windows_anchor(0), "1,2026-01-01 00:00:00.000");
    assert_eq!(Catalog::windows_anchor(61), "1,2026-01-01 01:01:00.000");
    assert!(Catalog::time_of(5) < Catalog::time_of(6));
}
