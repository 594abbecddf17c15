//! Update XML: real documents parse into the indexed record, and the derived MS-WUSP
//! fragments equal what a Windows Server 2025 WSUS sent a real client.

use std::path::PathBuf;

use uuid::{uuid, Uuid};
use wsus_edge::model::{CategoryType, UpdateKind};
use wsus_edge::wire::soap::decode;
use wsus_edge::wire::sss::GetUpdateDataResponse;
use wsus_edge::wire::update_xml::*;

fn fixture(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    s.trim_end_matches('\n').to_string()
}

const DEFENDER: Uuid = uuid!("8c3fcc84-7410-4a95-8b89-a166a0190486");
const DEFINITION_UPDATES: Uuid = uuid!("e0789628-ce08-4437-be74-2495b842f43b");

fn store_lookup(id: Uuid) -> Option<CategoryType> {
    if id == DEFENDER {
        Some(CategoryType::Product)
    } else {
        well_known_classification(id)
    }
}

/// The category document travels as a real LZX blob; decode it from the capture.
fn category_doc() -> String {
    let raw = fixture("wsusss/get_update_data_compressed.response.xml");
    let r: GetUpdateDataResponse = decode(raw.as_bytes()).unwrap();
    r.updates[0].blob.xml().unwrap()
}

#[test]
fn category_document_from_a_real_blob() {
    let xml = category_doc();
    let p = parse_update(&xml).unwrap();
    let r = &p.record;
    assert_eq!(
        r.key.update_id,
        uuid!("56309036-4c77-4dd9-951a-99ee9c246a94")
    );
    assert_eq!(r.key.revision, 101);
    assert_eq!(r.kind, UpdateKind::Category);
    assert_eq!(r.category_type, Some(CategoryType::Company));
    assert_eq!(r.title, "Microsoft");
    assert_eq!(r.creation_date.as_deref(), Some("2005-09-22T00:05:11.471Z"));
    assert!(r.files.is_empty() && r.prerequisites.is_empty() && !r.expired);
    assert!(p.related_ids().is_empty());
    assert_eq!(
        core_fragment(&xml).unwrap(),
        fixture("update_xml/56309036-4c77-4dd9-951a-99ee9c246a94-r101.core.xml")
    );
    let loc = localized_fragment(&xml, &["de", "xx", "en"]).unwrap();
    assert_eq!(loc.len(), 2);
    assert_eq!(loc[0].0, "de");
    assert_eq!(
        loc[1].1,
        "<LocalizedProperties><Language>en</Language><Title>Microsoft</Title><Description>Microsoft</Description></LocalizedProperties>"
    );
}

#[test]
fn leaf_with_a_file_and_plain_category_clause() {
    let xml = fixture("update_xml/ff36f0b5-dded-4780-8664-cd78af8b62c1-r200.trimmed.xml");
    let p = parse_update_with(&xml, &store_lookup).unwrap();
    let r = &p.record;
    assert_eq!(r.kind, UpdateKind::Software);
    assert_eq!(r.title, "AM Engine 1.1.26080.3 for Defender amd64fre Broad");
    assert_eq!(r.products, vec![DEFENDER]);
    assert_eq!(r.classification, None);
    assert_eq!(
        r.prerequisites,
        vec![
            vec![uuid!("be4048db-157c-4532-9582-7f05099590c9")],
            vec![uuid!("59653007-e2e9-4f71-8525-2ff588527978")],
            vec![uuid!("0aac58ee-82a0-4452-a7fa-19f68398f1fa")],
            vec![DEFENDER],
        ]
    );
    assert_eq!(r.files.len(), 1);
    let f = &r.files[0];
    assert_eq!(f.name, "AM_Engine.exe");
    assert_eq!(f.size, 6_662_560);
    assert_eq!(
        hex::encode(f.sha1),
        "bd789d42a2e027008ee3e7c4fbee6720dd6dc4c9"
    );
    assert_eq!(f.sha256.map(|h| h[0]), Some(0x15));
    assert_eq!(f.patching_type, None);
    assert_eq!(p.related_ids().len(), 4);
    assert!(p.related_ids().contains(&DEFENDER));
    // The extended fragment equals the one WS2025 served a native client.
    assert_eq!(
        extended_fragment(&xml).unwrap(),
        fixture("update_xml/ff36f0b5-dded-4780-8664-cd78af8b62c1-r200.extended.xml")
    );
    // Without a lookup the product clause stays a prerequisite (nothing marks it a category).
    let plain = parse_update(&xml).unwrap();
    assert_eq!(plain.record.prerequisites.len(), 4);
    assert!(plain.record.products.is_empty());
}

#[test]
fn bundle_with_categories_as_prerequisites() {
    let xml = fixture("update_xml/ccb78947-6453-4ecc-9de8-bc0305c98f2d-r200.xml");
    let p = parse_update_with(&xml, &store_lookup).unwrap();
    let r = &p.record;
    assert_eq!(r.classification, Some(DEFINITION_UPDATES));
    assert_eq!(r.products, vec![DEFENDER]);
    // Category clauses stay prerequisites (clients report categories installed).
    assert!(r
        .prerequisites
        .iter()
        .flatten()
        .all(|id| *id == DEFINITION_UPDATES || *id == DEFENDER));
    assert_eq!(r.bundled.len(), 4);
    assert_eq!(
        p.bundled_revisions[0],
        (uuid!("b6f443c9-ad38-4347-bab3-f1dc0b03d533"), Some(200))
    );
    assert_eq!(p.related_ids().len(), 6);
    let core = core_fragment(&xml).unwrap();
    assert!(core.starts_with("<UpdateIdentity UpdateID=\"ccb78947-6453-4ecc-9de8-bc0305c98f2d\" RevisionNumber=\"200\" /><Properties UpdateType=\"Software\" /><Relationships><Prerequisites><AtLeastOne><UpdateIdentity UpdateID=\"e0789628-ce08-4437-be74-2495b842f43b\" /></AtLeastOne>"));
    assert!(core.ends_with("</AtLeastOne></BundledUpdates></Relationships>"));
}

const SYNTHETIC: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<u:Update xmlns:u="http://schemas.microsoft.com/msus/2002/12/Update"
          xmlns:m="http://schemas.microsoft.com/msus/2002/12/MsiApplicabilityRules"
          xmlns:l="http://schemas.microsoft.com/msus/2002/12/LogicalApplicabilityRules">
  <u:UpdateIdentity UpdateID="11111111-1111-4111-8111-111111111111" RevisionNumber="3"/>
  <u:Properties UpdateType="Software" EulaID="99999999-9999-4999-8999-999999999999"
      PublicationState="Expired" CreationDate="2026-01-02T03:04:05Z" AutoSelectOnWebSites="true"
      ExplicitlyDeployable="false" IsPublic="true" MaxDownloadSize="12">
    <u:KBArticleID>KB5043080</u:KBArticleID>
  </u:Properties>
  <u:LocalizedPropertiesCollection>
    <u:LocalizedProperties><u:Language>de</u:Language><u:Title>Beispiel</u:Title></u:LocalizedProperties>
    <u:LocalizedProperties><u:Language>en</u:Language><u:Title>Example &amp; &lt;test&gt;</u:Title></u:LocalizedProperties>
  </u:LocalizedPropertiesCollection>
  <u:Relationships>
    <u:Prerequisites>
      <u:UpdateIdentity UpdateID="22222222-2222-4222-8222-222222222222"/>
      <u:AtLeastOne>
        <u:UpdateIdentity UpdateID="33333333-3333-4333-8333-333333333333"/>
        <u:UpdateIdentity UpdateID="44444444-4444-4444-8444-444444444444"/>
      </u:AtLeastOne>
      <u:AtLeastOne IsCategory="true">
        <u:UpdateIdentity UpdateID="0fa1201d-4330-4fa8-8ae9-b877473b6441"/>
      </u:AtLeastOne>
      <u:AtLeastOne IsCategory="true">
        <u:UpdateIdentity UpdateID="55555555-5555-4555-8555-555555555555"/>
      </u:AtLeastOne>
    </u:Prerequisites>
    <u:SupersededUpdates>
      <u:UpdateIdentity UpdateID="66666666-6666-4666-8666-666666666666"/>
    </u:SupersededUpdates>
  </u:Relationships>
  <u:ApplicabilityRules>
    <u:IsInstalled><l:Not><m:MsiProductInstalled ProductCode="{AB}" /></l:Not></u:IsInstalled>
  </u:ApplicabilityRules>
  <u:Files>
    <u:File Digest="AAAAAAAAAAAAAAAAAAAAAAAAAAA=" FileName="x.psf" Size="12" PatchingType="Express"/>
  </u:Files>
</u:Update>"#;

#[test]
fn synthetic_document_covers_every_field() {
    let p = parse_update(SYNTHETIC).unwrap();
    let r = &p.record;
    assert_eq!(r.title, "Example & <test>");
    assert_eq!(r.kb.as_deref(), Some("5043080"));
    assert_eq!(
        r.eula_id,
        Some(uuid!("99999999-9999-4999-8999-999999999999"))
    );
    assert!(r.expired);
    assert_eq!(
        r.classification,
        Some(uuid!("0fa1201d-4330-4fa8-8ae9-b877473b6441"))
    );
    assert_eq!(
        r.products,
        vec![uuid!("55555555-5555-4555-8555-555555555555")]
    );
    assert_eq!(
        r.prerequisites.len(),
        4,
        "two real clauses + two category clauses"
    );
    assert_eq!(r.prerequisites[1].len(), 2);
    assert_eq!(
        r.supersedes,
        vec![uuid!("66666666-6666-4666-8666-666666666666")]
    );
    assert_eq!(r.files[0].patching_type.as_deref(), Some("Express"));
    assert_eq!(r.files[0].sha256, None);
    assert_eq!(p.categories.len(), 2);
    // Superseded updates are not needed to use this one.
    assert!(!p
        .related_ids()
        .contains(&uuid!("66666666-6666-4666-8666-666666666666")));
    assert_eq!(p.related_ids().len(), 5);

    let core = core_fragment(SYNTHETIC).unwrap();
    assert!(core.contains("<Properties UpdateType=\"Software\" ExplicitlyDeployable=\"false\" AutoSelectOnWebSites=\"true\" EulaID=\"99999999-9999-4999-8999-999999999999\" />"));
    assert!(core.contains("<AtLeastOne IsCategory=\"true\"><UpdateIdentity UpdateID=\"0fa1201d-4330-4fa8-8ae9-b877473b6441\" /></AtLeastOne>"));
    assert!(core.contains("<ApplicabilityRules><IsInstalled><Not><m.MsiProductInstalled ProductCode=\"{AB}\" /></Not></IsInstalled></ApplicabilityRules>"));
    assert!(!core.contains("xmlns"));
    let ext = extended_fragment(SYNTHETIC).unwrap();
    assert!(ext.starts_with("<ExtendedProperties MaxDownloadSize=\"12\"><KBArticleID>KB5043080</KBArticleID></ExtendedProperties><Files>"));
    let loc = localized_fragment(SYNTHETIC, &["en"]).unwrap();
    assert_eq!(
        loc[0].1,
        "<LocalizedProperties><Language>en</Language><Title>Example &amp; &lt;test&gt;</Title></LocalizedProperties>"
    );
}

#[test]
fn bad_documents_are_errors() {
    assert!(parse_update("<Update/>").is_err());
    assert!(parse_update(
        r#"<u:Update xmlns:u="http://schemas.microsoft.com/msus/2002/12/Update"/>"#
    )
    .is_err());
    let bad_digest = SYNTHETIC.replace("AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "AAAA");
    assert!(parse_update(&bad_digest).is_err());
    let bad_id = SYNTHETIC.replace("11111111-1111-4111-8111-111111111111", "nope");
    assert!(parse_update(&bad_id).is_err());
    for cut in (0..SYNTHETIC.len()).step_by(7) {
        if let Some(s) = SYNTHETIC.get(..cut) {
            let _ = parse_update(s);
            let _ = core_fragment(s);
        }
    }
}
