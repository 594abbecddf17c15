//! Measurement: generation speed of a 10,000-update catalog (printed, never asserted).

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
