//! A store written by the previous on-disk format opens with this version: the schema
//! migrations run, nothing recorded is lost, and the store stays at the new version.
//!
//! Fixture `tests/fixtures/store/v0-replica-meta.tar.gz`: the `meta/` directory of a replica
//! written by wsus-edge before schema versioning (commit 78b01b6, `wsus-edge demo --updates 40`:
//! a simulated upstream with 40 generated updates, one sync, stopped with SIGTERM). Facts
//! recorded at that time: 40 updates, one successful sync, the two built-in groups.

use std::path::Path;

use wsus_edge::store::{Store, SCHEMA_VERSION};

fn unpack(into: &Path) {
    let f = std::fs::File::open(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store/v0-replica-meta.tar.gz"),
    )
    .unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(f))
        .unpack(into)
        .unwrap();
}

#[test]
fn a_v0_store_opens_migrates_and_keeps_its_data() {
    let d = tempfile::tempdir().unwrap();
    unpack(d.path());
    let dir = d.path().join("meta");
    let server_id = {
        let s = Store::open(&dir).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(s.update_count().unwrap(), 40);
        let latest = s.latest_revisions().unwrap();
        assert_eq!(latest.len(), 40);
        for r in &latest {
            let xml = s.revision_xml(&r.record.key).unwrap().expect("xml kept");
            assert!(
                xml.contains("<Update") || xml.contains("<upd:Update"),
                "{xml:.80}"
            );
        }
        let st = s.sync_state().unwrap();
        let ok = st.last_success.expect("the fixture's sync is remembered");
        assert!(ok.success);
        assert_eq!(ok.revisions_added, 40);
        assert!(
            st.sync_anchor.is_some(),
            "anchors kept for the next incremental sync"
        );
        let names: Vec<String> = s.groups().unwrap().into_iter().map(|g| g.name).collect();
        assert!(names.contains(&"All Computers".to_string()), "{names:?}");
        assert!(
            names.contains(&"Unassigned Computers".to_string()),
            "{names:?}"
        );
        s.server_id().unwrap()
    };
    // Reopening does not migrate again or change identity.
    let s = Store::open(&dir).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(s.server_id().unwrap(), server_id);
    assert_eq!(s.update_count().unwrap(), 40);
}
