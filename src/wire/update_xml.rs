//! `upd:Update` documents (the XML inside `XmlUpdateBlob[Compressed]`): parse one into the
//! indexed [`UpdateRecord`], list the related updates a new revision needs, and derive the
//! MS-WUSP client fragments (core, extended, localized). Namespace-aware: prefixes in the
//! document do not matter.
//!
//! **Categories.** WSUS files an update under its product and classification by naming those
//! category updates as prerequisites (`Relationships/Prerequisites`), usually as
//! `<AtLeastOne IsCategory="true">`, but real WS2025 documents also carry plain `AtLeastOne`
//! clauses of category ids. So a prerequisite clause counts as categories when it is marked
//! `IsCategory="true"` or when every id in it is known to be a category (the caller's lookup,
//! normally the store after the GetConfig pass; [`well_known_classification`] as fallback).
//! Category clauses stay in [`UpdateRecord::prerequisites`] (clients report categories as
//! installed non-leaf updates, so the layered SyncUpdates walk needs them); their ids also
//! become the classification (type `UpdateClassification`) and products (type `Product`, or
//! any unknown id in an `IsCategory` clause).
//!
//! **Fragments** (WUSP §3.1.1.1, checked against what a WS2025 server sent a real client):
//! namespace declarations are dropped; elements of `BaseApplicabilityRules`,
//! `MsiApplicabilityRules` and the `WindowsDriver` handler get the prefixes `b.`, `m.`, `d.`,
//! every other element is written unprefixed; `xsi:type` becomes `type`; attribute values and
//! text are copied (re-escaped). Core = `UpdateIdentity`, `Properties` reduced to
//! [`CORE_PROPERTIES`] (in that order, when present), `Relationships`, `ApplicabilityRules`.
//! Extended = `Properties` renamed `ExtendedProperties` without [`NOT_EXTENDED`] attributes,
//! its child elements, `Files`, `HandlerSpecificData`. Localized = the `LocalizedProperties`
//! of one language. Fragments are concatenations, not documents.

use uuid::{uuid, Uuid};

use super::values::{parse_base64, parse_guid, parse_u32};
use super::xml::{is_ns_decl, local_part, parse_document, Element, Limits, Node, XmlWriter};
use super::WireError;
use crate::model::{CategoryType, FileRecord, RevisionKey, UpdateKind, UpdateRecord};

/// The update-XML namespace.
pub const UPDATE_NS: &str = "http://schemas.microsoft.com/msus/2002/12/Update";
/// Base applicability rules (`b.` in fragments).
pub const BAR_NS: &str = "http://schemas.microsoft.com/msus/2002/12/BaseApplicabilityRules";
/// MSI applicability rules (`m.` in fragments).
pub const MAR_NS: &str = "http://schemas.microsoft.com/msus/2002/12/MsiApplicabilityRules";
/// Windows driver handler (`d.` in fragments).
pub const DRIVER_NS: &str =
    "http://schemas.microsoft.com/msus/2002/12/UpdateHandlers/WindowsDriver";
/// `Properties` attributes kept in the core fragment, in this order.
pub const CORE_PROPERTIES: [&str; 6] = [
    "UpdateType",
    "ExplicitlyDeployable",
    "AutoSelectOnWebSites",
    "EulaID",
    "PerUser",
    "OSUpgrade",
];
/// `Properties` attributes left out of the extended fragment.
pub const NOT_EXTENDED: [&str; 12] = [
    "UpdateType",
    "ExplicitlyDeployable",
    "AutoSelectOnWebSites",
    "EulaID",
    "PublicationState",
    "PublisherID",
    "CreationDate",
    "IsPublic",
    "LegacyName",
    "DetectoidType",
    "OSUpgrade",
    "PerUser",
];

/// Standard Microsoft Update classification ids (public catalog facts).
const CLASSIFICATIONS: [Uuid; 11] = [
    uuid!("e6cf1350-c01b-414d-a61f-263d14d133b4"), // Critical Updates
    uuid!("e0789628-ce08-4437-be74-2495b842f43b"), // Definition Updates
    uuid!("ebfc1fc5-71a4-4f7b-9aca-3b9a503104a0"), // Drivers
    uuid!("b54e7d24-7add-428f-8b75-90a396fa584f"), // Feature Packs
    uuid!("0fa1201d-4330-4fa8-8ae9-b877473b6441"), // Security Updates
    uuid!("68c5b0a3-d1a6-4553-ae49-01d3a7827828"), // Service Packs
    uuid!("b4832bd8-e735-4761-8daf-37f882276dab"), // Tools
    uuid!("28bc880e-0592-4cbf-8f95-c79b17911d5f"), // Update Rollups
    uuid!("cd5ffd1e-e932-4e3a-bf74-18bf0b1bbd83"), // Updates
    uuid!("3689bdc8-b205-4af4-8d4a-a63924c5e9d5"), // Upgrades
    uuid!("5c9376ab-8ce6-464a-b136-22113dd69801"), // Applications
];

/// The category type of a standard classification id, `None` for anything else.
pub fn well_known_classification(id: Uuid) -> Option<CategoryType> {
    CLASSIFICATIONS
        .contains(&id)
        .then_some(CategoryType::UpdateClassification)
}

/// A parsed update: the indexed record plus what the sync needs beyond it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedUpdate {
    /// The indexed fields.
    pub record: UpdateRecord,
    /// Every id named in a category clause (classification, products, and any other).
    pub categories: Vec<Uuid>,
    /// Bundled revisions, with their revision number when the document gives one.
    pub bundled_revisions: Vec<(Uuid, Option<u32>)>,
}

impl ParsedUpdate {
    /// Update ids this revision needs present before it is usable: prerequisites (detectoids
    /// included), bundled updates and categories; deduplicated, itself excluded. The sync's
    /// related-revisions step fetches those it does not hold yet.
    pub fn related_ids(&self) -> Vec<Uuid> {
        let mut out: Vec<Uuid> = Vec::new();
        let me = self.record.key.update_id;
        for id in self
            .record
            .prerequisite_ids()
            .chain(self.record.bundled.iter().copied())
            .chain(self.categories.iter().copied())
        {
            if id != me && !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }
}

fn parse_root(xml: &str) -> Result<Element, WireError> {
    let root = parse_document(xml, &Limits::default())?;
    if !root.is(UPDATE_NS, "Update") {
        return Err(WireError::bad("Update", &root.name));
    }
    Ok(root)
}

fn upd<'a>(el: &'a Element, name: &str) -> Option<&'a Element> {
    el.elements()
        .find(|e| e.name == name && e.ns.as_deref() == Some(UPDATE_NS))
}

/// Parses with the built-in classification table only (see [`parse_update_with`]).
pub fn parse_update(xml: &str) -> Result<ParsedUpdate, WireError> {
    parse_update_with(xml, &well_known_classification)
}

/// Parses an `upd:Update` document; `lookup` says which ids are categories, and of what type.
pub fn parse_update_with(
    xml: &str,
    lookup: &dyn Fn(Uuid) -> Option<CategoryType>,
) -> Result<ParsedUpdate, WireError> {
    let root = parse_root(xml)?;
    let ident = upd(&root, "UpdateIdentity").ok_or_else(|| missing("UpdateIdentity"))?;
    let key = RevisionKey::new(
        parse_guid("UpdateID", ident.attr("UpdateID").unwrap_or_default())?,
        parse_u32(
            "RevisionNumber",
            ident.attr("RevisionNumber").unwrap_or("0"),
        )?,
    );
    let props = upd(&root, "Properties").ok_or_else(|| missing("Properties"))?;
    let kind = match props.attr("UpdateType").unwrap_or("Software") {
        "Driver" => UpdateKind::Driver,
        "Category" => UpdateKind::Category,
        "Detectoid" => UpdateKind::Detectoid,
        _ => UpdateKind::Software,
    };
    let category_type = upd(&root, "HandlerSpecificData")
        .and_then(|h| h.elements().find(|e| e.name == "CategoryInformation"))
        .and_then(|c| c.attr("CategoryType"))
        .and_then(|t| match t {
            "Company" => Some(CategoryType::Company),
            "ProductFamily" => Some(CategoryType::ProductFamily),
            "Product" => Some(CategoryType::Product),
            "UpdateClassification" => Some(CategoryType::UpdateClassification),
            _ => None,
        });
    let kb = upd(props, "KBArticleID").map(|e| {
        let t = e.text();
        let t = t.trim();
        t.strip_prefix("KB").unwrap_or(t).to_string()
    });
    let eula_id = props
        .attr("EulaID")
        .map(|v| parse_guid("EulaID", v))
        .transpose()?;

    let mut prerequisites = Vec::new();
    let mut categories = Vec::new();
    let mut bundled = Vec::new();
    let mut bundled_revisions = Vec::new();
    let mut supersedes = Vec::new();
    if let Some(rel) = upd(&root, "Relationships") {
        if let Some(pre) = upd(rel, "Prerequisites") {
            for c in pre.elements() {
                let (ids, marked) = match c.name.as_str() {
                    "UpdateIdentity" => (vec![identity_id(c)?], false),
                    "AtLeastOne" => (
                        c.children_named("UpdateIdentity")
                            .map(identity_id)
                            .collect::<Result<Vec<_>, _>>()?,
                        c.attr("IsCategory") == Some("true"),
                    ),
                    _ => continue,
                };
                if ids.is_empty() {
                    continue;
                }
                if marked || ids.iter().all(|i| lookup(*i).is_some()) {
                    categories.extend(ids.iter().copied());
                }
                prerequisites.push(ids);
            }
        }
        if let Some(b) = upd(rel, "BundledUpdates") {
            for id_el in descendants_named(b, "UpdateIdentity") {
                let id = identity_id(id_el)?;
                let rev = id_el
                    .attr("RevisionNumber")
                    .map(|r| parse_u32("RevisionNumber", r))
                    .transpose()?;
                bundled.push(id);
                bundled_revisions.push((id, rev));
            }
        }
        if let Some(s) = upd(rel, "SupersededUpdates") {
            for id_el in descendants_named(s, "UpdateIdentity") {
                supersedes.push(identity_id(id_el)?);
            }
        }
    }
    let mut classification = None;
    let mut products = Vec::new();
    for id in &categories {
        match lookup(*id) {
            Some(CategoryType::UpdateClassification) if classification.is_none() => {
                classification = Some(*id)
            }
            Some(CategoryType::UpdateClassification)
            | Some(CategoryType::Company)
            | Some(CategoryType::ProductFamily) => {}
            Some(CategoryType::Product) | None => {
                if !products.contains(id) {
                    products.push(*id)
                }
            }
        }
    }

    let files = match upd(&root, "Files") {
        Some(f) => f
            .children_named("File")
            .map(parse_file)
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };

    Ok(ParsedUpdate {
        record: UpdateRecord {
            key,
            kind,
            category_type,
            title: title(&root),
            kb,
            classification,
            products,
            prerequisites,
            bundled,
            supersedes,
            eula_id,
            files,
            expired: props.attr("PublicationState") == Some("Expired"),
            creation_date: props.attr("CreationDate").map(str::to_string),
        },
        categories,
        bundled_revisions,
    })
}

fn missing(name: &str) -> WireError {
    WireError::Missing {
        parent: "Update".into(),
        name: name.into(),
    }
}

fn identity_id(el: &Element) -> Result<Uuid, WireError> {
    parse_guid("UpdateID", el.attr("UpdateID").unwrap_or_default())
}

fn descendants_named<'a>(el: &'a Element, name: &'a str) -> Vec<&'a Element> {
    let mut out = Vec::new();
    for c in el.elements() {
        if c.name == name {
            out.push(c);
        } else {
            out.extend(descendants_named(c, name));
        }
    }
    out
}

fn title(root: &Element) -> String {
    let Some(coll) = upd(root, "LocalizedPropertiesCollection") else {
        return String::new();
    };
    let all: Vec<&Element> = coll.children_named("LocalizedProperties").collect();
    let lang = |e: &&Element| e.child_text("Language").unwrap_or_default();
    all.iter()
        .find(|e| lang(e).eq_ignore_ascii_case("en"))
        .or_else(|| all.first())
        .and_then(|e| e.child_text("Title"))
        .unwrap_or_default()
}

fn parse_file(f: &Element) -> Result<FileRecord, WireError> {
    let digest = f.attr("Digest").unwrap_or_default();
    let sha1: [u8; 20] = parse_base64("Digest", digest)?
        .try_into()
        .map_err(|_| WireError::bad("Digest", digest))?;
    let mut sha256 = None;
    for a in f.children_named("AdditionalDigest") {
        if a.attr("Algorithm")
            .is_some_and(|v| v.eq_ignore_ascii_case("SHA256"))
        {
            let t = a.text();
            sha256 = Some(
                parse_base64("AdditionalDigest", &t)?
                    .try_into()
                    .map_err(|_| WireError::bad("AdditionalDigest", &t))?,
            );
        }
    }
    let size = f.attr("Size").unwrap_or("0");
    Ok(FileRecord {
        name: f.attr("FileName").unwrap_or_default().to_string(),
        size: size
            .trim()
            .parse()
            .map_err(|_| WireError::bad("Size", size))?,
        sha1,
        sha256,
        upstream_url: None,
        patching_type: f.attr("PatchingType").map(str::to_string),
    })
}

/// Writes `el` the way fragments spell elements (see the module doc).
fn write_fragment_element(w: &mut XmlWriter, el: &Element, rename: Option<&str>) {
    let name = match rename {
        Some(n) => n.to_string(),
        None => fragment_name(el),
    };
    w.start(&name);
    write_fragment_attrs(w, el, |_| true);
    write_fragment_children(w, el);
    w.end();
}

fn fragment_name(el: &Element) -> String {
    let prefix = match el.ns.as_deref() {
        Some(BAR_NS) => "b.",
        Some(MAR_NS) => "m.",
        Some(DRIVER_NS) => "d.",
        _ => "",
    };
    format!("{prefix}{}", el.name)
}

fn write_fragment_attrs(w: &mut XmlWriter, el: &Element, keep: impl Fn(&str) -> bool) {
    for a in &el.attrs {
        if is_ns_decl(&a.qname) {
            continue;
        }
        let name = if local_part(&a.qname) == "type" && a.qname.contains(':') {
            "type"
        } else {
            a.qname.as_str()
        };
        if keep(name) {
            w.attr(name, &a.value);
        }
    }
}

fn write_fragment_children(w: &mut XmlWriter, el: &Element) {
    let has_elements = el.elements().next().is_some();
    for c in &el.children {
        match c {
            Node::Element(e) => write_fragment_element(w, e, None),
            Node::Text(t) if has_elements && t.trim().is_empty() => {}
            Node::Text(t) => {
                w.text(t);
            }
        }
    }
}

/// The MS-WUSP core fragment of an update document.
pub fn core_fragment(xml: &str) -> Result<String, WireError> {
    let root = parse_root(xml)?;
    let mut w = XmlWriter::new();
    if let Some(id) = upd(&root, "UpdateIdentity") {
        write_fragment_element(&mut w, id, None);
    }
    if let Some(p) = upd(&root, "Properties") {
        w.start("Properties");
        for name in CORE_PROPERTIES {
            if let Some(v) = p.attr(name) {
                w.attr(name, v);
            }
        }
        w.end();
    }
    for name in ["Relationships", "ApplicabilityRules"] {
        if let Some(e) = upd(&root, name) {
            write_fragment_element(&mut w, e, None);
        }
    }
    Ok(w.finish())
}

/// The MS-WUSP extended fragment of an update document.
pub fn extended_fragment(xml: &str) -> Result<String, WireError> {
    let root = parse_root(xml)?;
    let mut w = XmlWriter::new();
    if let Some(p) = upd(&root, "Properties") {
        w.start("ExtendedProperties");
        write_fragment_attrs(&mut w, p, |n| !NOT_EXTENDED.contains(&n));
        write_fragment_children(&mut w, p);
        w.end();
    }
    for name in ["Files", "HandlerSpecificData"] {
        if let Some(e) = upd(&root, name) {
            write_fragment_element(&mut w, e, None);
        }
    }
    Ok(w.finish())
}

/// The MS-WUSP localized-properties fragments for the requested languages, in request order,
/// as `(language, fragment)`; languages the document lacks are skipped.
pub fn localized_fragment(
    xml: &str,
    languages: &[&str],
) -> Result<Vec<(String, String)>, WireError> {
    let root = parse_root(xml)?;
    let Some(coll) = upd(&root, "LocalizedPropertiesCollection") else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for want in languages {
        let found = coll.children_named("LocalizedProperties").find(|lp| {
            lp.child_text("Language")
                .is_some_and(|l| l.trim().eq_ignore_ascii_case(want))
        });
        if let Some(lp) = found {
            let mut w = XmlWriter::new();
            write_fragment_element(&mut w, lp, None);
            out.push((want.to_string(), w.finish()));
        }
    }
    Ok(out)
}
