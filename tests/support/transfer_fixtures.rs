//! Shared fixtures for the transfer tests: a source data dir seeded from the simulated
//! catalog (metadata, approvals, declines and cached payloads), and a fingerprint of a data
//! dir's visible state to prove "nothing changed".
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wsus_edge::model::{FileRecord, RevisionKey, UpdateKind, UpdateRecord};
use wsus_edge::simulate::Catalog;
use wsus_edge::store::{
    ApplyMode, MetadataSnapshot, NewRevision, ObjectMeta, SnapshotRevision, Store, SNAPSHOT_FORMAT,
};

/// `<data>/meta`, as `Config::store_dir` lays it out.
pub fn store_dir(data: &Path) -> PathBuf {
    data.join("meta")
}

/// `<data>/content`.
pub fn content_dir(data: &Path) -> PathBuf {
    data.join("content")
}

/// `<data>/import-staging`.
pub fn staging_dir(data: &Path) -> PathBuf {
    data.join("import-staging")
}

/// Writes a payload into the content folder the way the cache stores it and indexes it.
pub fn put_payload(store: &Store, data: &Path, f: &FileRecord, bytes: &[u8], stored_unix: i64) {
    let rel = f.content_path();
    let p = content_dir(data).join(rel.strip_prefix("Content/").unwrap());
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    store
        .put_object(
            &f.sha1,
            &ObjectMeta {
                ext: f.extension(),
                size: bytes.len() as u64,
                sha256: Sha256::digest(bytes).into(),
                stored_unix,
                last_access_unix: stored_unix,
            },
        )
        .unwrap();
}

/// Seeds `data` with the simulated catalog of `updates` updates: all metadata, groups,
/// approvals, declines, EULAs, and the payloads of every `every`-th file in the cache.
/// Returns the catalog.
pub fn seed_catalog(data: &Path, updates: usize, every: usize) -> Catalog {
    let cat = Catalog::generate(updates, 42);
    let store = Store::open(&store_dir(data)).unwrap();
    let revisions: Vec<SnapshotRevision> = cat
        .revisions()
        .map(|r| SnapshotRevision {
            record: r.record.clone(),
            xml: cat.xml(&r.record.key).unwrap(),
        })
        .collect();
    let mut files: BTreeMap<[u8; 20], FileRecord> = BTreeMap::new();
    for r in &revisions {
        for f in &r.record.files {
            files.insert(f.sha1, f.clone());
        }
    }
    let snap = MetadataSnapshot {
        format: SNAPSHOT_FORMAT,
        server_id: store.server_id().unwrap(),
        high_water: 0,
        since: None,
        revisions,
        removed: vec![],
        files: files.values().cloned().collect(),
        groups: cat.groups().to_vec(),
        deployments: cat.deployments().cloned().collect(),
        declined: cat.declined().collect(),
        accepted_eulas: cat.accepted_eulas().collect(),
        sync_state: Default::default(),
    };
    store
        .apply_snapshot(&snap, ApplyMode::Replace, None)
        .unwrap();
    let old = time::OffsetDateTime::now_utc().unix_timestamp() - 3600;
    for (i, (id, pf)) in cat.payloads().iter().enumerate() {
        if i % every != 0 || !files.contains_key(&pf.sha1) {
            continue;
        }
        let mut bytes = Vec::new();
        cat.payloads()
            .reader(id)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        put_payload(&store, data, &files[&pf.sha1], &bytes, old);
    }
    store.flush().unwrap();
    cat
}

/// A hand-made software update revision with one payload (bytes derived from `n`).
pub fn extra_revision(n: u32) -> (NewRevision, Vec<u8>) {
    let bytes: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(n + 7) % 253) as u8)
        .collect();
    let sha1: [u8; 20] = sha1::Sha1::digest(&bytes).into();
    let key = RevisionKey::new(uuid::Uuid::from_u128(0xeeee_0000 + n as u128), 1);
    let record = UpdateRecord {
        key,
        kind: UpdateKind::Software,
        category_type: None,
        title: format!("Extra {n}"),
        kb: None,
        classification: None,
        products: vec![],
        prerequisites: vec![],
        bundled: vec![],
        supersedes: vec![],
        eula_id: None,
        files: vec![FileRecord {
            name: format!("extra{n}.cab"),
            size: bytes.len() as u64,
            sha1,
            sha256: Some(Sha256::digest(&bytes).into()),
            upstream_url: None,
            patching_type: None,
        }],
        expired: false,
        creation_date: None,
    };
    let xml = format!(
        "<Update><UpdateIdentity UpdateID=\"{}\" RevisionNumber=\"1\"/></Update>",
        key.update_id
    );
    (NewRevision { record, xml }, bytes)
}

/// Everything a client or admin could see in a data dir, as text: revisions (with XML
/// digests), content index, groups, approvals, declines, EULAs, cached objects and the files
/// of the content folder with their SHA-256 (temp folders excluded).
pub fn fingerprint(data: &Path) -> String {
    let store = open_when_free(&store_dir(data));
    let mut s = String::new();
    let snap = store.snapshot().unwrap();
    for r in &snap.revisions {
        s += &format!(
            "rev {} {:x}\n",
            r.record.key,
            Sha256::digest(r.xml.as_bytes())
        );
    }
    s += &format!("files {:?}\n", snap.files);
    s += &format!("groups {:?}\n", snap.groups);
    s += &format!("deployments {:?}\n", snap.deployments);
    s += &format!(
        "declined {:?}\neulas {:?}\n",
        snap.declined, snap.accepted_eulas
    );
    for (sha1, o) in store.objects().unwrap() {
        s += &format!("object {} {} {:x?}\n", hex::encode(sha1), o.size, o.sha256);
    }
    s += &format!("settings {:?}\n", store.settings().unwrap());
    s += &content_listing(data);
    s
}

/// `path sha256` of every file under the content folder, outside temp folders.
pub fn content_listing(data: &Path) -> String {
    let mut out = Vec::new();
    let root = content_dir(data);
    if let Ok(dirs) = std::fs::read_dir(&root) {
        for d in dirs.flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !d.path().is_dir() {
                continue;
            }
            for f in std::fs::read_dir(d.path()).unwrap().flatten() {
                let bytes = std::fs::read(f.path()).unwrap();
                out.push(format!(
                    "content {name}/{} {:x}\n",
                    f.file_name().to_string_lossy(),
                    Sha256::digest(&bytes)
                ));
            }
        }
    }
    out.sort();
    out.concat()
}

/// Opens a store, waiting up to 10 s while another process still holds its lock. Seen once in
/// a full-suite run right after a SIGKILLed import had been reaped (cause not proven: a
/// parallel test's spawned child briefly sharing the lock's file description is the suspect);
/// a lock that is really held still fails after the wait.
pub fn open_when_free(dir: &Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(dir) {
            Err(wsus_edge::store::StoreError::Locked { .. })
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            r => return r.unwrap(),
        }
    }
}
