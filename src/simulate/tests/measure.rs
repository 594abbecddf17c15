//! Measurements: generation speed (printed, never asserted) and sample dumps.

use std::io::Read;

use crate::model::CategoryType;
use crate::simulate::*;

#[test]
fn generating_ten_thousand_updates_is_measured() {
    let t = std::time::Instant::now();
    let c = Catalog::generate(10_000, 1);
    let gen = t.elapsed();
    let t = std::time::Instant::now();
    let bytes: usize = c
        .revisions()
        .map(|r| c.xml(&r.record.key).unwrap().len())
        .sum();
    let render = t.elapsed();
    eprintln!(
        "10,000 updates: {} revisions, {} files, {} deployments; generate {:?}, render all XML ({} MB) {:?}",
        c.revision_count(),
        c.payloads().len(),
        c.deployments().count(),
        gen,
        bytes / 1_000_000,
        render
    );
    assert!(c.update_count() >= 10_000);
}

#[test]
#[ignore = "prints samples for eyeballing"]
fn dump_samples() {
    let c = Catalog::generate(300, 5);
    for h in [
        Handler::Bundle,
        Handler::Driver,
        Handler::OsInstaller,
        Handler::Detectoid,
        Handler::Category(CategoryType::Product),
    ] {
        let r = c.latest_revisions().find(|r| r.handler() == h).unwrap();
        println!("{}\n", c.xml(&r.record.key).unwrap());
    }
}

#[test]
#[ignore = "measures payload fill vs hashing"]
fn measure_fill() {
    let mut p = Payloads::new(1);
    let t = std::time::Instant::now();
    p.add("x.cab".into(), 100 << 20, false, "secu", 1);
    eprintln!("add (fill+hash) 100 MiB: {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let mut r = p.reader(FileId(0)).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    while r.read(&mut buf).unwrap() > 0 {}
    eprintln!("fill only 100 MiB: {:?}", t.elapsed());
}

#[test]
#[ignore = "measures a 100,000-update catalog (run with /usr/bin/time -v for peak RSS)"]
fn measure_hundred_thousand() {
    let t = std::time::Instant::now();
    let c = Catalog::generate(100_000, 1);
    eprintln!(
        "100,000 updates: {} revisions, {} files; generate {:?}",
        c.revision_count(),
        c.payloads().len(),
        t.elapsed()
    );
}
