//! Cross-check: the update-XML parser (`wire::update_xml`) must read back, field by field,
//! exactly the records the simulated catalog generator says its documents hold. The two were
//! written independently, so agreement is evidence both follow the update XML format.

use std::collections::HashMap;

use uuid::Uuid;
use wsus_edge::model::{CategoryType, UpdateKind};
use wsus_edge::simulate::Catalog;
use wsus_edge::wire::update_xml::{core_fragment, extended_fragment, parse_update_with};

#[test]
fn parser_reads_back_every_generated_revision() {
    let catalog = Catalog::generate(600, 7);
    let categories: HashMap<Uuid, CategoryType> = catalog
        .of_kind(UpdateKind::Category)
        .filter_map(|r| Some((r.record.key.update_id, r.record.category_type?)))
        .collect();
    let lookup = |id: Uuid| categories.get(&id).copied();
    let mut checked = 0;
    for rev in catalog.revisions() {
        let xml = catalog
            .xml(&rev.record.key)
            .expect("xml for a listed revision");
        let parsed =
            parse_update_with(&xml, &lookup).unwrap_or_else(|e| panic!("{}: {e}", rev.record.key));
        assert_eq!(parsed.record, rev.record, "record of {}", rev.record.key);
        // The client fragments must be derivable from every document.
        let core = core_fragment(&xml).expect("core fragment");
        assert!(core.contains("UpdateIdentity"), "{}", rev.record.key);
        extended_fragment(&xml).expect("extended fragment");
        checked += 1;
    }
    assert!(checked > 600, "checked {checked} revisions");
}
