//! Renders a [`SimRevision`] as the `upd:Update` document WSUS sends in GetUpdateData, with
//! quick-xml's writer (escaping done by the library). Shapes follow real WS2025 documents
//! (`CaddyGlow/wsus-rs` fixtures `docs/fixtures/wsus-m0-wsusss/docs/*.xml`) and MS-WSUSSS §3.1.1:
//! namespaces declared on the root, `UpdateIdentity`, `Properties`, `LocalizedPropertiesCollection`,
//! `Relationships` (Prerequisites, SupersededUpdates, BundledUpdates), `ApplicabilityRules`,
//! `Files`, `HandlerSpecificData`. Where no source settles a detail (e.g. `MsrcSeverity` as an
//! attribute, the WindowsPatch handler data) the choice is marked **(unverified)**.

use base64::Engine as _;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use super::catalog::{Handler, SimRevision};
use super::generate::LANGUAGES;
use super::payload::Payloads;
use crate::model::{CategoryType, UpdateKind};

/// `upd:` namespace.
pub const NS_UPDATE: &str = "http://schemas.microsoft.com/msus/2002/12/Update";
/// `b:` BaseApplicabilityRules.
pub const NS_BASE: &str = "http://schemas.microsoft.com/msus/2002/12/BaseApplicabilityRules";
/// `lar:` LogicalApplicabilityRules.
pub const NS_LOGICAL: &str = "http://schemas.microsoft.com/msus/2002/12/LogicalApplicabilityRules";
/// `pub:` Publishing.
pub const NS_PUBLISHING: &str = "http://schemas.microsoft.com/msus/2002/12/Publishing";
const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
const H_CATEGORY: &str = "http://schemas.microsoft.com/msus/2002/12/UpdateHandlers/Category";
const H_CBS: &str = "http://schemas.microsoft.com/msus/2002/12/UpdateHandlers/Cbs";
const H_CMD: &str =
    "http://schemas.microsoft.com/msus/2002/12/UpdateHandlers/CommandLineInstallation";
const H_MSP: &str = "http://schemas.microsoft.com/msus/2002/12/UpdateHandlers/WindowsPatch";
const H_DRV: &str = "http://schemas.microsoft.com/msus/2002/12/UpdateHandlers/WindowsDriver";
const H_OSI: &str = "http://schemas.microsoft.com/msus/2016/01/UpdateHandlers/OSInstaller";
/// Publisher id seen on Microsoft categories (real fixtures).
const PUBLISHER_CATEGORIES: &str = "42f20e12-2856-447d-a8b2-68f06c2e9b45";
/// Publisher id seen on Microsoft software updates (real fixtures).
const PUBLISHER_UPDATES: &str = "bccf8ca0-2819-4598-8d15-c1506e363e92";

/// A writer into memory: writing into a `Vec` cannot fail, so results are dropped.
struct X(Writer<Vec<u8>>);

impl X {
    fn start(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let e = BytesStart::new(name).with_attributes(attrs.iter().copied());
        let _ = self.0.write_event(Event::Start(e));
    }
    fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) {
        let e = BytesStart::new(name).with_attributes(attrs.iter().copied());
        let _ = self.0.write_event(Event::Empty(e));
    }
    fn end(&mut self, name: &str) {
        let _ = self.0.write_event(Event::End(BytesEnd::new(name)));
    }
    fn text_elem(&mut self, name: &str, text: &str) {
        self.start(name, &[]);
        let _ = self.0.write_event(Event::Text(BytesText::new(text)));
        self.end(name);
    }
}

fn handler_ns(h: Handler) -> Option<(&'static str, &'static str)> {
    match h {
        Handler::Category(_) => Some(("cat", H_CATEGORY)),
        Handler::Cbs => Some(("cbs", H_CBS)),
        Handler::CommandLine => Some(("cmd", H_CMD)),
        Handler::WindowsPatch => Some(("msp", H_MSP)),
        Handler::Driver => Some(("drv", H_DRV)),
        Handler::OsInstaller => Some(("osi", H_OSI)),
        Handler::Detectoid | Handler::Bundle => None,
    }
}

fn category_type_name(ct: CategoryType) -> &'static str {
    match ct {
        CategoryType::Company => "Company",
        CategoryType::ProductFamily => "ProductFamily",
        CategoryType::Product => "Product",
        CategoryType::UpdateClassification => "UpdateClassification",
    }
}

/// The `upd:Update` document of `rev`.
pub(crate) fn render(rev: &SimRevision, payloads: &Payloads) -> String {
    let r = &rev.record;
    let d = &rev.detail;
    let mut x = X(Writer::new(Vec::with_capacity(4096)));
    let hns = handler_ns(d.handler);
    let mut root: Vec<(&str, &str)> = vec![
        ("xmlns:upd", NS_UPDATE),
        ("xmlns:b", NS_BASE),
        ("xmlns:lar", NS_LOGICAL),
        ("xmlns:pub", NS_PUBLISHING),
    ];
    let hattr;
    if let Some((p, ns)) = hns {
        hattr = format!("xmlns:{p}");
        root.push((&hattr, ns));
    }
    x.start("upd:Update", &root);

    // Real category documents write their own identity in upper case (fixtures 56309036-…-r101,
    // 6964aab4-…-r100); everything else is lower case. Parsers must accept both.
    let id = if r.kind == UpdateKind::Category {
        r.key.update_id.to_string().to_uppercase()
    } else {
        r.key.update_id.to_string()
    };
    let revno = r.key.revision.to_string();
    x.empty(
        "upd:UpdateIdentity",
        &[("UpdateID", &id), ("RevisionNumber", &revno)],
    );

    // Properties.
    let update_type = match r.kind {
        UpdateKind::Software => "Software",
        UpdateKind::Driver => "Driver",
        UpdateKind::Category => "Category",
        UpdateKind::Detectoid => "Detectoid",
    };
    let max_size: u64 = rev
        .files
        .iter()
        .filter_map(|f| payloads.get(*f))
        .map(|f| f.size)
        .sum();
    let max_size = max_size.to_string();
    let eula = r.eula_id.map(|e| e.to_string());
    let creation = r.creation_date.clone().unwrap_or_default();
    let leaf = matches!(r.kind, UpdateKind::Software | UpdateKind::Driver);
    let mut props: Vec<(&str, &str)> = vec![
        ("UpdateType", update_type),
        ("DefaultPropertiesLanguage", "en"),
    ];
    if let Some((_, ns)) = hns {
        props.push(("Handler", ns));
    }
    if r.kind == UpdateKind::Category {
        props.push(("IsPublic", "true"));
    }
    if leaf {
        if d.explicitly_deployable {
            props.push(("AutoSelectOnWebSites", "true"));
        }
        props.push((
            "ExplicitlyDeployable",
            if d.explicitly_deployable {
                "true"
            } else {
                "false"
            },
        ));
        props.push(("MaxDownloadSize", &max_size));
        props.push(("MinDownloadSize", "0"));
    }
    if let Some(sev) = d.msrc_severity {
        props.push(("MsrcSeverity", sev)); // [unverified] attribute vs element
    }
    if let Some(e) = &eula {
        props.push(("EulaID", e));
    }
    props.push((
        "PublicationState",
        if r.expired { "Expired" } else { "Published" },
    ));
    props.push(("CreationDate", &creation));
    props.push((
        "PublisherID",
        if leaf {
            PUBLISHER_UPDATES
        } else {
            PUBLISHER_CATEGORIES
        },
    ));
    x.start("upd:Properties", &props);
    if leaf && d.handler != Handler::Bundle {
        x.empty(
            "upd:InstallationBehavior",
            &[("RebootBehavior", "CanRequestReboot")],
        );
    }
    // Security updates name a bulletin (derived from the KB) beside their MSRC severity.
    if let (Some(_), Some(kb)) = (d.msrc_severity, &r.kb) {
        x.text_elem(
            "upd:SecurityBulletinID",
            &format!("MS26-{}", &kb[kb.len().saturating_sub(3)..]),
        );
    }
    if let Some(kb) = &r.kb {
        x.text_elem("upd:KBArticleID", kb);
    }
    if d.handler == Handler::OsInstaller {
        x.text_elem("upd:Language", "all");
    }
    x.end("upd:Properties");

    // Localized properties: en first, then the others (same text, as real category documents do).
    x.start("upd:LocalizedPropertiesCollection", &[]);
    let description = d.description.text(&r.title);
    let langs = &LANGUAGES[..(d.languages as usize).min(LANGUAGES.len())];
    let more_info =
        r.kb.as_ref()
            .map(|kb| format!("https://support.microsoft.com/help/{kb}"));
    for lang in std::iter::once("en").chain(langs.iter().copied()) {
        x.start("upd:LocalizedProperties", &[]);
        x.text_elem("upd:Language", lang);
        x.text_elem("upd:Title", &r.title);
        if let Some(text) = &description {
            x.text_elem("upd:Description", text);
        }
        if let Some(u) = &more_info {
            x.text_elem("upd:MoreInfoUrl", u);
        }
        x.end("upd:LocalizedProperties");
    }
    x.end("upd:LocalizedPropertiesCollection");

    // Relationships.
    if !r.prerequisites.is_empty() || !r.supersedes.is_empty() || !r.bundled.is_empty() {
        x.start("upd:Relationships", &[]);
        if !r.prerequisites.is_empty() {
            x.start("upd:Prerequisites", &[]);
            for (i, clause) in r.prerequisites.iter().enumerate() {
                let is_cat = d.category_clause.get(i).copied().unwrap_or(false);
                if clause.len() == 1 && !is_cat {
                    x.empty(
                        "upd:UpdateIdentity",
                        &[("UpdateID", &clause[0].to_string())],
                    );
                    continue;
                }
                if is_cat {
                    x.start("upd:AtLeastOne", &[("IsCategory", "true")]);
                } else {
                    x.start("upd:AtLeastOne", &[]);
                }
                for u in clause {
                    x.empty("upd:UpdateIdentity", &[("UpdateID", &u.to_string())]);
                }
                x.end("upd:AtLeastOne");
            }
            x.end("upd:Prerequisites");
        }
        if !r.supersedes.is_empty() {
            x.start("upd:SupersededUpdates", &[]);
            for u in &r.supersedes {
                x.empty("upd:UpdateIdentity", &[("UpdateID", &u.to_string())]);
            }
            x.end("upd:SupersededUpdates");
        }
        if !r.bundled.is_empty() {
            x.start("upd:BundledUpdates", &[]);
            let wrap = r.bundled.len() > 1;
            if wrap {
                x.start("upd:AtLeastOne", &[]);
            }
            for (u, rn) in r.bundled.iter().zip(&d.bundled_revisions) {
                x.empty(
                    "upd:UpdateIdentity",
                    &[
                        ("UpdateID", &u.to_string()),
                        ("RevisionNumber", &rn.to_string()),
                    ],
                );
            }
            if wrap {
                x.end("upd:AtLeastOne");
            }
            x.end("upd:BundledUpdates");
        }
        x.end("upd:Relationships");
    }

    applicability(&mut x, rev);

    // Files.
    if !rev.files.is_empty() {
        x.start("upd:Files", &[]);
        let b64 = base64::engine::general_purpose::STANDARD;
        for f in rev.files.iter().filter_map(|f| payloads.get(*f)) {
            let sha1 = b64.encode(f.sha1);
            let size = f.size.to_string();
            let modified = f.modified();
            let mut attrs: Vec<(&str, &str)> = vec![
                ("Digest", &sha1),
                ("DigestAlgorithm", "SHA1"),
                ("FileName", &f.name),
                ("Size", &size),
                ("Modified", &modified),
            ];
            if let Some(p) = f.patching_type() {
                attrs.push(("PatchingType", p));
            }
            x.start("upd:File", &attrs);
            x.start("upd:AdditionalDigest", &[("Algorithm", "SHA256")]);
            let _ =
                x.0.write_event(Event::Text(BytesText::new(&b64.encode(f.sha256))));
            x.end("upd:AdditionalDigest");
            x.end("upd:File");
        }
        x.end("upd:Files");
    }

    handler_data(&mut x, rev);
    x.end("upd:Update");
    String::from_utf8(x.0.into_inner()).unwrap_or_default()
}

fn windows_version(x: &mut X, comparison: &str, build: u32) {
    let b = build.to_string();
    x.empty(
        "b:WindowsVersion",
        &[
            ("Comparison", comparison),
            ("MajorVersion", "10"),
            ("MinorVersion", "0"),
            ("BuildNumber", &b),
        ],
    );
}

fn arch_code(arch: &str) -> &'static str {
    match arch {
        "x86" => "0",
        "arm64" => "12",
        _ => "9",
    }
}

fn applicability(x: &mut X, rev: &SimRevision) {
    let d = &rev.detail;
    let r = &rev.record;
    x.start("upd:ApplicabilityRules", &[]);
    match d.handler {
        Handler::Category(_) => {
            x.start("upd:IsInstalled", &[]);
            x.empty("lar:True", &[]);
            x.end("upd:IsInstalled");
        }
        Handler::Detectoid => {
            x.start("upd:IsInstalled", &[]);
            match d.detect_rule {
                0 => windows_version(x, "GreaterThanOrEqualTo", 10240),
                1..=3 => x.empty(
                    "b:Processor",
                    &[("Architecture", ["0", "9", "12"][d.detect_rule as usize - 1])],
                ),
                4 => x.empty(
                    "b:RegKeyExists",
                    &[
                        ("Key", "HKEY_LOCAL_MACHINE"),
                        ("Subkey", "SOFTWARE\\Microsoft\\Office\\ClickToRun"),
                    ],
                ),
                _ => {
                    x.start("lar:And", &[]);
                    windows_version(x, "GreaterThanOrEqualTo", 10240);
                    x.empty(
                        "b:RegSz",
                        &[
                            ("Key", "HKEY_LOCAL_MACHINE"),
                            ("Subkey", "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"),
                            ("Value", "ProductName"),
                            ("Comparison", "Contains"),
                            ("Data", &r.title),
                        ],
                    );
                    x.end("lar:And");
                }
            }
            x.end("upd:IsInstalled");
        }
        Handler::Driver => {
            x.start("upd:Metadata", &[]);
            let hw = d.hardware_id.clone().unwrap_or_default();
            let date = r
                .creation_date
                .as_deref()
                .unwrap_or("2026-01-01")
                .get(..10)
                .unwrap_or("2026-01-01")
                .to_string();
            let version = r
                .title
                .rsplit(" - ")
                .next()
                .unwrap_or("1.0.0.0")
                .to_string();
            let vendor = r
                .title
                .split(" - ")
                .next()
                .unwrap_or("Microsoft")
                .to_string();
            x.empty(
                "drv:WindowsDriverMetaData",
                &[
                    ("HardwareID", &hw),
                    ("WhqlDriverID", &r.key.update_id.simple().to_string()),
                    ("Manufacturer", &vendor),
                    ("Company", &vendor),
                    ("Provider", &vendor),
                    ("DriverVerDate", &date),
                    ("DriverVerVersion", &version),
                ],
            );
            x.end("upd:Metadata");
        }
        _ => {
            let file = r
                .files
                .first()
                .map(|f| f.name.clone())
                .unwrap_or_else(|| "ntoskrnl.exe".into());
            x.start("upd:IsInstalled", &[]);
            x.start("lar:And", &[]);
            windows_version(x, "GreaterThanOrEqualTo", d.os_build);
            x.empty(
                "b:FileVersion",
                &[
                    ("Csidl", "37"),
                    ("Path", &file),
                    ("Comparison", "GreaterThanOrEqualTo"),
                    (
                        "Version",
                        &format!("10.0.{}.{}", d.os_build, r.key.revision),
                    ),
                ],
            );
            if d.extra_rules > 0 {
                x.start("lar:Or", &[]);
                for i in 0..d.extra_rules {
                    x.empty(
                        "b:FileVersion",
                        &[
                            ("Csidl", "37"),
                            ("Path", &format!("drivers\\component{i}.sys")),
                            ("Comparison", "GreaterThanOrEqualTo"),
                            ("Version", &format!("10.0.{}.{}", d.os_build, 1000 + i)),
                        ],
                    );
                }
                x.end("lar:Or");
            }
            x.end("lar:And");
            x.end("upd:IsInstalled");
            x.start("upd:IsInstallable", &[]);
            x.start("lar:And", &[]);
            windows_version(x, "GreaterThanOrEqualTo", d.os_build);
            x.empty("b:Processor", &[("Architecture", arch_code(d.arch))]);
            x.end("lar:And");
            x.end("upd:IsInstallable");
        }
    }
    x.end("upd:ApplicabilityRules");
}

fn handler_data(x: &mut X, rev: &SimRevision) {
    let d = &rev.detail;
    let r = &rev.record;
    if handler_ns(d.handler).is_none() {
        return;
    }
    let ty = match d.handler {
        Handler::Category(_) => "cat:Category",
        Handler::Cbs => "cbs:Cbs",
        Handler::CommandLine => "cmd:CommandLineInstallation",
        Handler::WindowsPatch => "msp:WindowsPatch",
        Handler::Driver => "drv:WindowsDriver",
        _ => "osi:OSInstallerMetadata",
    };
    x.start(
        "upd:HandlerSpecificData",
        &[("xsi:type", ty), ("xmlns:xsi", NS_XSI)],
    );
    match d.handler {
        Handler::Category(ct) => {
            let order = d.display_order.to_string();
            let prohibits_updates =
                matches!(ct, CategoryType::Company | CategoryType::ProductFamily);
            x.empty(
                "cat:CategoryInformation",
                &[
                    ("CategoryType", category_type_name(ct)),
                    ("ProhibitsSubcategories", "false"),
                    (
                        "ProhibitsUpdates",
                        if prohibits_updates { "true" } else { "false" },
                    ),
                    ("DisplayOrder", &order),
                ],
            );
        }
        Handler::Cbs => {
            let pkg = format!(
                "Package_for_KB{}~31bf3856ad364e35~{}~~10.0.{}.{}",
                r.kb.as_deref().unwrap_or("0"),
                if d.arch == "arm64" { "arm64" } else { "amd64" },
                d.os_build,
                r.key.revision
            );
            x.empty("cbs:CbsData", &[("PackageIdentity", &pkg)]);
        }
        Handler::CommandLine => {
            let program = r.files.first().map(|f| f.name.clone()).unwrap_or_default();
            x.start(
                "cmd:InstallCommand",
                &[("Program", &program), ("Arguments", "-q")],
            );
            x.empty("cmd:ReturnCode", &[("Code", "0"), ("Result", "Succeeded")]);
            x.end("cmd:InstallCommand");
        }
        Handler::WindowsPatch => {
            // [unverified] element and attribute names.
            x.empty(
                "msp:PatchData",
                &[(
                    "PatchCode",
                    &format!("{{{}}}", r.key.update_id).to_uppercase(),
                )],
            );
        }
        Handler::Driver => {}
        _ => x.empty("osi:OSInstallData", &[("InitialModule", "UpdateAgent.dll")]),
    }
    x.end("upd:HandlerSpecificData");
}
