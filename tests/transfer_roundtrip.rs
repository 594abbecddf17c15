//! Export/import through the library API between two data dirs: full and incremental
//! round trips, volumes, and every refusal leaving the importer exactly as it was.

#[path = "support/transfer_fixtures.rs"]
mod transfer_fixtures;

use std::path::{Path, PathBuf};

use transfer_fixtures::*;
use wsus_edge::store::Store;
use wsus_edge::transfer::{
    self, keys, Anchor, ExportOptions, ExportReport, ImportOptions, KeyPair, TransferError,
};

/// The site's signing key (fixed, so every export here is signed by the same site).
fn site_key() -> KeyPair {
    KeyPair {
        signing: ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]),
    }
}

/// The trust list of an importer that trusts the site.
fn site() -> Vec<ed25519_dalek::VerifyingKey> {
    vec![site_key().public()]
}

/// Exports `data`, signed by `key` or else by the site's key.
fn export(
    data: &Path,
    out: PathBuf,
    since: Option<Anchor>,
    vol: Option<u64>,
    key: Option<KeyPair>,
) -> ExportReport {
    let store = Store::open(&store_dir(data)).unwrap();
    transfer::export(
        &store,
        &content_dir(data),
        ExportOptions {
            out,
            since,
            approved_only: false,
            volume_size: vol,
            signing_key: key.or_else(|| Some(site_key())),
        },
    )
    .unwrap()
}

fn import(
    data: &Path,
    pkg: &Path,
    trust: Vec<ed25519_dalek::VerifyingKey>,
) -> Result<transfer::ImportReport, TransferError> {
    let store = Store::open(&store_dir(data)).unwrap();
    transfer::import(
        &store,
        &content_dir(data),
        &staging_dir(data),
        pkg,
        &ImportOptions {
            trust,
            allow_older: false,
        },
    )
}

fn same_metadata_and_content(a: &Path, b: &Path) {
    let (sa, sb) = (
        Store::open(&store_dir(a)).unwrap(),
        Store::open(&store_dir(b)).unwrap(),
    );
    let (x, y) = (sa.snapshot().unwrap(), sb.snapshot().unwrap());
    assert_eq!(x.revisions, y.revisions, "revisions and their XML");
    assert_eq!(x.files, y.files, "content index");
    assert_eq!(x.deployments, y.deployments, "approvals");
    assert_eq!(x.declined, y.declined, "declines");
    assert_eq!(x.accepted_eulas, y.accepted_eulas);
    let gx: Vec<_> = x.groups.iter().map(|g| (g.id, g.name.clone())).collect();
    let gy: Vec<_> = y.groups.iter().map(|g| (g.id, g.name.clone())).collect();
    assert_eq!(gx, gy, "groups");
    let ox = sa.objects().unwrap();
    let oy = sb.objects().unwrap();
    let kx: Vec<_> = ox.iter().map(|(k, o)| (k, o.size, o.sha256)).collect();
    let ky: Vec<_> = oy.iter().map(|(k, o)| (k, o.size, o.sha256)).collect();
    assert_eq!(kx, ky, "cached objects by digest");
    drop((sa, sb));
    assert_eq!(
        content_listing(a),
        content_listing(b),
        "content files by digest"
    );
}

#[test]
fn full_then_incremental_round_trip_between_two_data_dirs() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    seed_catalog(&src, 150, 2);
    let r = export(&src, t.path().join("full"), None, None, None);
    assert!(r.payloads > 5 && r.revisions > 100, "{r:?}");
    transfer::verify_package(&t.path().join("full"), &[]).unwrap();
    let ir = import(&dst, &t.path().join("full"), site()).unwrap();
    assert_eq!(ir.published, r.payloads);
    same_metadata_and_content(&src, &dst);

    // Source moves on: two new updates with payloads.
    {
        let store = Store::open(&store_dir(&src)).unwrap();
        for n in [1, 2] {
            let (rev, bytes) = extra_revision(n);
            store
                .commit_batch(std::slice::from_ref(&rev), &[], None)
                .unwrap();
            put_payload(
                &store,
                &src,
                &rev.record.files[0],
                &bytes,
                time::OffsetDateTime::now_utc().unix_timestamp(),
            );
        }
    }
    let inc = export(&src, t.path().join("inc"), Some(r.anchor), None, None);
    assert_eq!(inc.revisions, 2, "only the delta");
    assert_eq!(inc.payloads, 2, "only the delta's payloads");
    let m = std::fs::read_to_string(t.path().join("inc/manifest.json")).unwrap();
    assert!(m.contains(&format!("\"base_anchor\": \"{}\"", r.anchor)));
    let before = content_listing(&dst);
    import(&dst, &t.path().join("inc"), site()).unwrap();
    same_metadata_and_content(&src, &dst);
    let after = content_listing(&dst);
    for line in before.lines() {
        assert!(after.contains(line), "incremental import deleted {line}");
    }
    assert!(!staging_dir(&dst).join("x").exists());
    assert_eq!(
        std::fs::read_dir(staging_dir(&dst)).unwrap().count(),
        0,
        "staging cleaned"
    );
}

#[test]
fn signed_volumes_with_split_files_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    seed_catalog(&src, 60, 1);
    let kp = KeyPair::generate();
    let public = kp.public();
    let r = export(&src, t.path().join("pkg"), None, Some(64 * 1024), Some(kp));
    assert!(r.outputs.len() > 3, "{:?}", r.outputs);
    let first = t.path().join("pkg.001");
    transfer::verify_package(&first, &[public]).unwrap();
    let e = transfer::verify_package(&first, &[KeyPair::generate().public()]).unwrap_err();
    assert!(matches!(e, TransferError::Untrusted { .. }), "{e}");
    import(&dst, &first, vec![public]).unwrap();
    same_metadata_and_content(&src, &dst);
}

/// Sets up a destination that already imported the full package, then checks that `bad`
/// is refused with an error containing `needle` and that nothing changed.
fn refused(dst: &Path, bad: &Path, trust: Vec<ed25519_dalek::VerifyingKey>, needle: &str) {
    let before = fingerprint(dst);
    let e = import(dst, bad, trust).unwrap_err().to_string();
    assert!(e.contains(needle), "error {e:?} should name {needle:?}");
    assert!(!e.contains('\n'), "one line: {e:?}");
    assert_eq!(
        fingerprint(dst),
        before,
        "refused import changed the server"
    );
}

#[test]
fn damaged_or_foreign_packages_are_refused_and_change_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    seed_catalog(&src, 60, 1);
    let full = export(&src, t.path().join("full"), None, None, None);
    import(&dst, &t.path().join("full"), site()).unwrap();
    {
        let store = Store::open(&store_dir(&src)).unwrap();
        let (rev, bytes) = extra_revision(9);
        store
            .commit_batch(std::slice::from_ref(&rev), &[], None)
            .unwrap();
        put_payload(
            &store,
            &src,
            &rev.record.files[0],
            &bytes,
            time::OffsetDateTime::now_utc().unix_timestamp(),
        );
    }

    // A flipped byte in a payload.
    let inc = t.path().join("inc");
    export(&src, inc.clone(), Some(full.anchor), None, None);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(inc.join("manifest.json")).unwrap()).unwrap();
    let payload = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().starts_with("content/"))
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    let p = inc.join(&payload);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&p, &bytes).unwrap();
    refused(&dst, &inc, site(), &format!("{payload}: SHA-256"));
    assert!(transfer::verify_package(&inc, &[])
        .unwrap_err()
        .to_string()
        .contains(&payload));
    bytes[100] ^= 1;
    std::fs::write(&p, &bytes).unwrap();

    // A tampered manifest (signature no longer verifies).
    let mp = inc.join("manifest.json");
    let orig = std::fs::read(&mp).unwrap();
    std::fs::write(
        &mp,
        String::from_utf8(orig.clone())
            .unwrap()
            .replacen("\"size\": 2", "\"size\": 3", 1),
    )
    .unwrap();
    refused(&dst, &inc, site(), "manifest.sig");
    std::fs::write(&mp, &orig).unwrap();

    // A wrong signature (another key's signature over the same manifest).
    let sig_path = inc.join("manifest.sig");
    let good_sig = std::fs::read(&sig_path).unwrap();
    std::fs::write(&sig_path, KeyPair::generate().sign(&orig)).unwrap();
    refused(&dst, &inc, site(), "signature does not verify");
    std::fs::write(&sig_path, &good_sig).unwrap();

    // Validly signed by a key that is not trusted.
    refused(
        &dst,
        &inc,
        vec![KeyPair::generate().public()],
        "not a trusted key",
    );

    // An incremental on the wrong base: its base is newer than anything imported here.
    let inc2 = t.path().join("inc2");
    let r2 = export(&src, t.path().join("mid"), Some(full.anchor), None, None);
    {
        let store = Store::open(&store_dir(&src)).unwrap();
        store
            .commit_batch(&[extra_revision(10).0], &[], None)
            .unwrap();
    }
    export(&src, inc2.clone(), Some(r2.anchor), None, None);
    refused(&dst, &inc2, site(), &r2.anchor.to_string());

    // An incremental from another server entirely.
    let other = t.path().join("other");
    seed_catalog(&other, 20, 5);
    let of = export(&other, t.path().join("ofull"), None, None, None);
    export(&other, t.path().join("oinc"), Some(of.anchor), None, None);
    refused(&dst, &t.path().join("oinc"), site(), &of.anchor.to_string());

    // The good incremental still imports afterwards.
    import(&dst, &inc, site()).unwrap();
    let _ = keys::fingerprint(&KeyPair::generate().public());
}

#[test]
fn truncated_and_missing_volumes_are_refused_and_change_nothing() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    seed_catalog(&src, 60, 1);
    let r = export(&src, t.path().join("pkg"), None, Some(64 * 1024), None);
    let n = r.outputs.len();
    assert!(n >= 3);
    std::fs::create_dir_all(&dst).unwrap();
    Store::open(&store_dir(&dst)).unwrap();
    let first = t.path().join("pkg.001");

    let mid = r.outputs[n / 2].clone();
    let saved = std::fs::read(&mid).unwrap();
    std::fs::write(&mid, &saved[..saved.len() / 2]).unwrap();
    let name = mid.file_name().unwrap().to_string_lossy().into_owned();
    refused(&dst, &first, site(), &name);
    assert!(transfer::verify_package(&first, &[])
        .unwrap_err()
        .to_string()
        .contains(&name));

    std::fs::remove_file(&mid).unwrap();
    refused(
        &dst,
        &first,
        site(),
        &format!("volume {} is missing", mid.display()),
    );

    let last = r.outputs[n - 1].clone();
    let last_bytes = std::fs::read(&last).unwrap();
    std::fs::write(&mid, &saved).unwrap();
    std::fs::remove_file(&last).unwrap();
    refused(
        &dst,
        &first,
        site(),
        &last.file_name().unwrap().to_string_lossy(),
    );

    // Completing the set lets the import through; files verified by the refused runs are
    // kept in staging and not copied again.
    std::fs::write(&last, &last_bytes).unwrap();
    let ir = import(&dst, &first, site()).unwrap();
    assert!(ir.resumed > 0, "{ir:?}");
    assert!(ir.copied > 0, "{ir:?}");
    same_metadata_and_content(&src, &dst);
}

#[test]
fn approved_only_carries_approved_updates_what_they_need_and_categories() {
    use wsus_edge::model::{ApprovalAction, UpdateKind};
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    seed_catalog(&src, 150, 1);
    let store = Store::open(&store_dir(&src)).unwrap();
    let r = transfer::export(
        &store,
        &content_dir(&src),
        ExportOptions {
            out: t.path().join("pkg"),
            since: None,
            approved_only: true,
            volume_size: None,
            signing_key: Some(site_key()),
        },
    )
    .unwrap();
    let full = store.snapshot().unwrap();
    drop(store);
    import(&dst, &t.path().join("pkg"), site()).unwrap();
    let got = Store::open(&store_dir(&dst)).unwrap().snapshot().unwrap();
    assert!(
        got.revisions.len() < full.revisions.len(),
        "something was left out"
    );
    assert_eq!(got.revisions.len(), r.revisions);
    let have: std::collections::BTreeSet<_> = got.revisions.iter().map(|r| r.record.key).collect();
    for rev in &full.revisions {
        if matches!(
            rev.record.kind,
            UpdateKind::Category | UpdateKind::Detectoid
        ) {
            assert!(
                have.contains(&rev.record.key),
                "category/detectoid {} kept",
                rev.record.key
            );
        }
    }
    let mut approved = 0;
    for d in &full.deployments {
        let wanted = matches!(d.action, ApprovalAction::Install | ApprovalAction::Scan)
            && !full.declined.contains(&d.update.update_id);
        if wanted && full.revisions.iter().any(|r| r.record.key == d.update) {
            assert!(have.contains(&d.update), "approved {} missing", d.update);
            approved += 1;
        }
    }
    assert!(approved > 0);
    for rev in &got.revisions {
        for id in rev.record.bundled.iter() {
            assert!(
                have.iter().any(|k| k.update_id == *id),
                "bundled {id} of {} missing",
                rev.record.key
            );
        }
    }
    assert_eq!(
        got.deployments, full.deployments,
        "approval state is complete"
    );
}

/// Issue 15 item 6: `import` with no trusted key accepted a package signed by any key.
#[test]
fn an_import_without_trusted_keys_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    seed_catalog(&src, 20, 2);
    std::fs::create_dir_all(&dst).unwrap();
    Store::open(&store_dir(&dst)).unwrap();
    // Signed by a key nobody here knows.
    export(
        &src,
        t.path().join("pkg"),
        None,
        None,
        Some(KeyPair::generate()),
    );
    refused(&dst, &t.path().join("pkg"), vec![], "no trusted keys");
    let e = import(&dst, &t.path().join("pkg"), vec![]).unwrap_err();
    assert!(matches!(e, TransferError::NoTrustedKeys), "{e}");
}

/// Issue 15 item 5: an older package imported after a newer one was accepted; the decline
/// the newer one carried was undone and the recorded anchor moved back.
#[test]
fn an_older_package_is_refused_unless_allowed() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    seed_catalog(&src, 40, 2);
    let old = export(&src, t.path().join("old"), None, None, None);
    // The source declines an update and moves on.
    let victim = {
        let store = Store::open(&store_dir(&src)).unwrap();
        let snap = store.snapshot().unwrap();
        let victim = snap
            .revisions
            .iter()
            .map(|r| r.record.key.update_id)
            .find(|id| !snap.declined.contains(id))
            .unwrap();
        store.decline(&victim).unwrap();
        store
            .commit_batch(&[extra_revision(3).0], &[], None)
            .unwrap();
        victim
    };
    let new = export(&src, t.path().join("new"), None, None, None);
    assert!(new.anchor.high_water > old.anchor.high_water);
    import(&dst, &t.path().join("new"), site()).unwrap();
    let declined = |d: &Path| {
        Store::open(&store_dir(d))
            .unwrap()
            .declined_updates()
            .unwrap()
            .contains(&victim)
    };
    assert!(declined(&dst));

    refused(
        &dst,
        &t.path().join("old"),
        site(),
        &format!("anchor {} is older", old.anchor),
    );
    assert!(declined(&dst), "the decline stands");
    let anchors =
        transfer::import::imported_anchors(&Store::open(&store_dir(&dst)).unwrap()).unwrap();
    assert_eq!(
        anchors.values().next().unwrap().anchor,
        new.anchor.to_string()
    );

    // Re-importing the same (newest) package is fine; an explicit --allow-older goes back.
    import(&dst, &t.path().join("new"), site()).unwrap();
    let store = Store::open(&store_dir(&dst)).unwrap();
    transfer::import(
        &store,
        &content_dir(&dst),
        &staging_dir(&dst),
        &t.path().join("old"),
        &ImportOptions {
            trust: site(),
            allow_older: true,
        },
    )
    .unwrap();
    drop(store);
    assert!(!declined(&dst), "the older state, as asked");
}

/// Issue 15 item 7: a package whose payload was tampered with was accepted (exit 0) when
/// the server already held everything it carried, because held payloads were not read.
#[test]
fn a_tampered_payload_is_refused_even_when_the_server_holds_everything() {
    let t = tempfile::tempdir().unwrap();
    let (src, dst) = (t.path().join("src"), t.path().join("dst"));
    seed_catalog(&src, 150, 2);
    let pkg = t.path().join("pkg");
    let r = export(&src, pkg.clone(), None, None, None);
    assert!(r.payloads > 0);
    let first = import(&dst, &pkg, site()).unwrap();
    assert_eq!(first.published, r.payloads);
    // Every payload is held now; flip a byte of one in the package.
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pkg.join("manifest.json")).unwrap()).unwrap();
    let payload = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .find(|p| p.starts_with("content/"))
        .unwrap();
    let p = pkg.join(&payload);
    let mut bytes = std::fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&p, &bytes).unwrap();
    refused(&dst, &pkg, site(), &format!("{payload}: SHA-256"));
    // A missing one is noticed too.
    std::fs::remove_file(&p).unwrap();
    refused(&dst, &pkg, site(), &payload);
}
