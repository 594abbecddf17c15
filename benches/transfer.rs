//! Export + import of 10,000 updates and ~2 GiB of cached payloads, against the physical
//! floor measured in the same run: `tar cf` of the same payload files plus `sha256sum -c`
//! of them. Prints both times, the throughputs and the ratio (target ≤ 1.5x).
//!
//! `cargo bench --bench transfer` (env `TRANSFER_BENCH_GIB` changes the payload volume,
//! `TRANSFER_BENCH_DIR` the scratch folder; default the system temp dir).

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use wsus_edge::simulate::{Catalog, GenOptions};
use wsus_edge::store::{
    ApplyMode, MetadataSnapshot, ObjectMeta, SnapshotRevision, Store, SNAPSHOT_FORMAT,
};
use wsus_edge::transfer::{self, ExportOptions, ImportOptions};

const UPDATES: usize = 10_000;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("transfer: bench");
        return;
    }
    let gib: f64 = std::env::var("TRANSFER_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2.0);
    let target = (gib * (1u64 << 30) as f64) as u64;
    let base = std::env::var("TRANSFER_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let t = tempfile::tempdir_in(base).expect("scratch dir");
    let w = t.path();

    // Size the payloads so that the catalog's files add up to the target.
    let probe = Catalog::generate(UPDATES, 7);
    let nfiles = probe.payloads().len() as u64;
    drop(probe);
    let avg = (target / nfiles.max(1)).max(1024);
    let mut opts = GenOptions::new(UPDATES, 7);
    opts.min_file_size = avg / 2;
    opts.max_file_size = avg + avg / 2;
    let t0 = Instant::now();
    let cat = Catalog::generate_with(&opts);
    let src = w.join("src");
    let store = Store::open(&src.join("meta")).expect("store");
    let revisions: Vec<SnapshotRevision> = cat
        .revisions()
        .map(|r| SnapshotRevision {
            record: r.record.clone(),
            xml: cat.xml(&r.record.key).unwrap_or_default(),
        })
        .collect();
    let mut files = std::collections::BTreeMap::new();
    for r in &revisions {
        for f in &r.record.files {
            files.insert(f.sha1, f.clone());
        }
    }
    let snap = MetadataSnapshot {
        format: SNAPSHOT_FORMAT,
        server_id: store.server_id().expect("id"),
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
        .expect("seed");
    let content = src.join("content");
    let mut sums = String::new();
    let mut total = 0u64;
    let mut count = 0u64;
    for (id, pf) in cat.payloads().iter() {
        let Some(rec) = files.get(&pf.sha1) else {
            continue;
        };
        let rel = rec.content_path();
        let rel = rel.trim_start_matches("Content/");
        let p = content.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let mut f = std::fs::File::create(&p).expect("create");
        std::io::copy(&mut cat.payloads().reader(id).expect("payload"), &mut f).expect("write");
        f.flush().expect("flush");
        store
            .put_object(
                &pf.sha1,
                &ObjectMeta {
                    ext: rec.extension(),
                    size: pf.size,
                    sha256: pf.sha256,
                    stored_unix: 0,
                    last_access_unix: 0,
                },
            )
            .expect("index");
        sums.push_str(&format!("{}  {}\n", hex::encode(pf.sha256), rel));
        total += pf.size;
        count += 1;
    }
    store.flush().expect("flush");
    std::fs::write(content.join("BENCH.SHA256SUMS"), &sums).expect("sums");
    println!(
        "setup: {} updates ({} revisions), {count} payload files, {:.2} GiB, {:.1}s",
        UPDATES,
        cat.revision_count(),
        total as f64 / (1u64 << 30) as f64,
        secs(t0.elapsed())
    );
    drop(cat);
    // Let the kernel write the seed back before timing anything.
    let _ = Command::new("sync").status();

    // Floor: tar cf of the same files, then sha256sum -c of them.
    let t1 = Instant::now();
    let st = Command::new("tar")
        .arg("cf")
        .arg(w.join("floor.tar"))
        .arg("-C")
        .arg(&content)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success());
    let tar_t = t1.elapsed();
    let ts = Instant::now();
    let _ = Command::new("sync").status();
    let tar_sync_t = ts.elapsed();
    let t2 = Instant::now();
    let st = Command::new("sha256sum")
        .args(["-c", "--quiet", "BENCH.SHA256SUMS"])
        .current_dir(&content)
        .status()
        .expect("sha256sum");
    assert!(st.success());
    let sum_t = t2.elapsed();
    let floor = tar_t + sum_t;
    let _ = std::fs::remove_file(w.join("floor.tar"));
    let _ = Command::new("sync").status();

    // wsus-edge: export to volumes (4 GiB, FAT32-sized), then import into a fresh data dir.
    let t3 = Instant::now();
    let r = transfer::export(
        &store,
        &content,
        ExportOptions {
            out: w.join("pkg"),
            since: None,
            approved_only: false,
            volume_size: Some(4 << 30),
            signing_key: None,
        },
    )
    .expect("export");
    let export_t = t3.elapsed();
    drop(store);
    let dst = w.join("dst");
    let dstore = Store::open(&dst.join("meta")).expect("dst store");
    let t4 = Instant::now();
    let ir = transfer::import(
        &dstore,
        &dst.join("content"),
        &dst.join("import-staging"),
        &w.join("pkg.001"),
        &ImportOptions::default(),
    )
    .expect("import");
    let import_t = t4.elapsed();
    assert_eq!(ir.published as u64, count);
    let ours = export_t + import_t;
    // For the breakdown: reading and hashing the package alone.
    let t5 = Instant::now();
    transfer::verify_package(&w.join("pkg.001"), &[]).expect("verify");
    let verify_t = t5.elapsed();

    let gib_s = |d: Duration| total as f64 / (1u64 << 30) as f64 / secs(d).max(1e-9);
    println!(
        "floor:  tar cf {:.2}s + sha256sum -c {:.2}s = {:.2}s ({:.2} GiB/s)",
        secs(tar_t),
        secs(sum_t),
        secs(floor),
        gib_s(floor)
    );
    println!(
        "wsus-edge: export {:.2}s ({} volumes, {} revisions) + import {:.2}s ({} published) = {:.2}s ({:.2} GiB/s)",
        secs(export_t),
        r.outputs.len(),
        r.revisions,
        secs(import_t),
        ir.published,
        secs(ours),
        gib_s(ours)
    );
    println!(
        "ratio: {:.2}x (target <= 1.5x)",
        secs(ours) / secs(floor).max(1e-9)
    );
}
