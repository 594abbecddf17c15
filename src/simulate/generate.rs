//! Catalog generation: the entry point ([`Catalog::generate_with`]), categories, layered
//! detectoids, EULAs and the shared leaf builder. The leaf kinds are in `leaves.rs`, target
//! groups and approvals in `approvals.rs`.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::catalog::{Catalog, Description, Detail, Eula, GenOptions, Handler, SimRevision};
use super::categories as cats;
use super::payload::{FileId, Payloads};
use super::rng::Rng;
use crate::model::{CategoryType, RevisionKey, UpdateKind, UpdateRecord};

/// Languages of the localized properties, after `en` (the 24 of a real category document).
pub(crate) const LANGUAGES: [&str; 23] = [
    "ar", "cs", "da", "de", "el", "es", "fi", "fr", "he", "hu", "it", "ja", "ko", "nl", "no", "pl",
    "pt", "pt-br", "ru", "sv", "tr", "zh-cn", "zh-tw",
];

/// A product the catalog ships updates for.
#[derive(Debug, Clone)]
pub(crate) struct Product {
    pub id: Uuid,
    pub name: &'static str,
    /// File-name stem, e.g. `Windows11.0`.
    pub stem: &'static str,
    pub build: u32,
    pub archs: &'static [&'static str],
    pub kind: ProductKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProductKind {
    Windows,
    Server,
    Defender,
    Office,
}

/// Generator state kept for the mutations.
#[derive(Debug, Clone, Default)]
pub(crate) struct GenState {
    pub products: Vec<Product>,
    /// Per (product index, arch): the deepest detectoid a leaf for it requires.
    pub targets: BTreeMap<(usize, &'static str), Uuid>,
    /// Per product id: its base detectoid (NT 10 or Office) and its "is installed" detectoid.
    pub product_detectoids: BTreeMap<Uuid, (Uuid, Uuid)>,
    /// Processor architecture detectoids.
    pub arch_detectoids: BTreeMap<&'static str, Uuid>,
    /// The extra detectoids, in creation order.
    pub extra_detectoids: Vec<Uuid>,
    /// Supersedence lines: the newest update of each line.
    pub lines: BTreeMap<String, Uuid>,
    pub next_kb: u32,
    pub large_left: usize,
    pub defender_build: u32,
    pub eulas: Vec<Uuid>,
    /// Group ids by name.
    pub group_ids: BTreeMap<&'static str, Uuid>,
}

/// What a leaf needs; turned into a [`SimRevision`] by [`Catalog::build_leaf`].
pub(crate) struct LeafSpec {
    pub kind: UpdateKind,
    pub handler: Handler,
    pub title: String,
    pub kb: Option<String>,
    pub classification: Uuid,
    pub products: Vec<Uuid>,
    pub detectoids: Vec<Uuid>,
    pub files: Vec<FileId>,
    pub supersedes: Vec<Uuid>,
    pub bundled: Vec<RevisionKey>,
    pub eula: Option<Uuid>,
    pub big: bool,
    pub explicitly_deployable: bool,
    pub product_index: usize,
    pub arch: &'static str,
    pub hardware_id: Option<String>,
}

pub(crate) fn detail(handler: Handler) -> Detail {
    Detail {
        handler,
        description: Description::None,
        languages: 0,
        category_clause: Vec::new(),
        bundled_revisions: Vec::new(),
        extra_rules: 0,
        msrc_severity: None,
        explicitly_deployable: false,
        display_order: 0,
        os_build: 0,
        arch: "x64",
        hardware_id: None,
        detect_rule: 0,
    }
}

/// `CreationDate` text of change number `change`.
pub(crate) fn creation_date(change: u64) -> String {
    let t = Catalog::time_of(change);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        (change * 37) % 1000
    )
}

pub(crate) fn modified(change: u64) -> String {
    let t = Catalog::time_of(change.saturating_sub(90));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(crate) fn year_month(change: u64) -> String {
    let t = Catalog::time_of(change);
    format!("{:04}/{:02}", t.year(), u8::from(t.month()))
}

impl Catalog {
    /// Generates the catalog for `options`.
    pub fn generate_with(options: &GenOptions) -> Catalog {
        let seed = options.seed;
        let mut cat = Catalog {
            options: options.clone(),
            rng: Rng::new(seed, 1),
            change: 0,
            revisions: BTreeMap::new(),
            latest: BTreeMap::new(),
            payloads: Payloads::new(seed),
            groups: Vec::new(),
            deployments: BTreeMap::new(),
            by_update: BTreeMap::new(),
            dead: Vec::new(),
            declined: BTreeMap::new(),
            eulas: BTreeMap::new(),
            accepted_eulas: BTreeSet::new(),
            state: GenState {
                next_kb: 5_040_000,
                large_left: options.large_uup_files,
                defender_build: 1_000,
                ..GenState::default()
            },
        };
        cat.gen_categories();
        cat.gen_detectoids();
        cat.gen_eulas();
        while cat.latest.len() < options.updates {
            cat.gen_leaf(true);
        }
        cat.gen_groups();
        cat.gen_approvals();
        tracing::debug!(
            updates = cat.latest.len(),
            revisions = cat.revisions.len(),
            files = cat.payloads.len(),
            "simulated catalog generated"
        );
        cat
    }

    fn category(
        &mut self,
        id: Uuid,
        title: &str,
        ct: CategoryType,
        parent: Option<Uuid>,
        order: u32,
    ) {
        let mut d = detail(Handler::Category(ct));
        d.description = Description::Title;
        d.languages = LANGUAGES.len() as u8;
        d.display_order = order;
        let prerequisites: Vec<Vec<Uuid>> = parent.into_iter().map(|p| vec![p]).collect();
        d.category_clause = vec![true; prerequisites.len()];
        let record = UpdateRecord {
            key: RevisionKey::new(
                id,
                if ct == CategoryType::Company {
                    101
                } else {
                    100
                },
            ),
            kind: UpdateKind::Category,
            category_type: Some(ct),
            title: title.to_string(),
            kb: None,
            classification: None,
            products: Vec::new(),
            prerequisites,
            bundled: Vec::new(),
            supersedes: Vec::new(),
            eula_id: None,
            files: Vec::new(),
            expired: false,
            creation_date: Some(creation_date(self.change + 1)),
        };
        self.publish(SimRevision {
            record,
            change: 0,
            files: Vec::new(),
            detail: d,
        });
    }

    fn gen_categories(&mut self) {
        let office_family = self.rng.uuid();
        let office_2019 = self.rng.uuid();
        let office_ltsc = self.rng.uuid();
        self.category(
            cats::COMPANY_MICROSOFT,
            "Microsoft",
            CategoryType::Company,
            None,
            1,
        );
        let fam = Some(cats::COMPANY_MICROSOFT);
        self.category(
            cats::FAMILY_WINDOWS,
            "Windows",
            CategoryType::ProductFamily,
            fam,
            2,
        );
        self.category(office_family, "Office", CategoryType::ProductFamily, fam, 3);
        let w = Some(cats::FAMILY_WINDOWS);
        let o = Some(office_family);
        let products = [
            (
                cats::PRODUCT_WINDOWS_10,
                "Windows 10",
                "Windows10.0",
                19045,
                w,
                ProductKind::Windows,
            ),
            (
                cats::PRODUCT_WINDOWS_11,
                "Windows 11",
                "Windows11.0",
                26100,
                w,
                ProductKind::Windows,
            ),
            (
                cats::PRODUCT_SERVER_2025,
                "Microsoft Server Operating System-24H2",
                "Windows11.0",
                26100,
                w,
                ProductKind::Server,
            ),
            (
                cats::PRODUCT_DEFENDER,
                "Microsoft Defender Antivirus",
                "AM",
                26100,
                w,
                ProductKind::Defender,
            ),
            (
                office_2019,
                "Office 2019",
                "office2019",
                10417,
                o,
                ProductKind::Office,
            ),
            (
                office_ltsc,
                "Office LTSC 2021",
                "officeltsc2021",
                14332,
                o,
                ProductKind::Office,
            ),
        ];
        for (i, (id, name, stem, build, parent, kind)) in products.into_iter().enumerate() {
            self.category(id, name, CategoryType::Product, parent, 10 + i as u32);
            let archs: &'static [&'static str] = match kind {
                ProductKind::Windows => &["x64", "arm64"],
                ProductKind::Server | ProductKind::Defender => &["x64"],
                ProductKind::Office => &["x86", "x64"],
            };
            self.state.products.push(Product {
                id,
                name,
                stem,
                build,
                archs,
                kind,
            });
        }
        for (i, (id, title)) in cats::CLASSIFICATIONS.iter().enumerate() {
            self.category(
                *id,
                title,
                CategoryType::UpdateClassification,
                None,
                100 + i as u32,
            );
        }
    }

    fn detectoid(&mut self, title: String, prerequisites: Vec<Vec<Uuid>>, rule: u32) -> Uuid {
        let id = self.rng.uuid();
        let mut d = detail(Handler::Detectoid);
        d.category_clause = vec![false; prerequisites.len()];
        d.detect_rule = rule;
        let record = UpdateRecord {
            key: RevisionKey::new(id, 100 + self.rng.below(3) as u32),
            kind: UpdateKind::Detectoid,
            category_type: None,
            title,
            kb: None,
            classification: None,
            products: Vec::new(),
            prerequisites,
            bundled: Vec::new(),
            supersedes: Vec::new(),
            eula_id: None,
            files: Vec::new(),
            expired: false,
            creation_date: Some(creation_date(self.change + 1)),
        };
        self.publish(SimRevision {
            record,
            change: 0,
            files: Vec::new(),
            detail: d,
        });
        id
    }

    /// Layer A: no prerequisites; layer B: per product, on A; layer C: per (product, arch), on B
    /// and an architecture detectoid of A; extra ones hang under random earlier ones (layer D+).
    fn gen_detectoids(&mut self) {
        let nt10 = self.detectoid("Windows NT 10.0 or later".into(), vec![], 0);
        let mut arch_ids = BTreeMap::new();
        for (i, arch) in ["x86", "x64", "arm64"].into_iter().enumerate() {
            let id = self.detectoid(format!("{arch}-based processor"), vec![], 1 + i as u32);
            arch_ids.insert(arch, id);
        }
        self.state.arch_detectoids = arch_ids.clone();
        let office = self.detectoid("Microsoft Office Click-to-Run installed".into(), vec![], 4);
        let mut all = vec![nt10, office];
        let products = self.state.products.clone();
        for (pi, p) in products.iter().enumerate() {
            let base = if p.kind == ProductKind::Office {
                office
            } else {
                nt10
            };
            let b = self.detectoid(format!("{} is installed", p.name), vec![vec![base]], 5);
            self.state.product_detectoids.insert(p.id, (base, b));
            all.push(b);
            for arch in p.archs {
                let a = arch_ids[arch];
                let c = self.detectoid(
                    format!("{} for {arch}-based systems", p.name),
                    vec![vec![b], vec![a]],
                    6,
                );
                self.state.targets.insert((pi, *arch), c);
                all.push(c);
            }
        }
        let extra = self.options.updates / 200;
        for i in 0..extra {
            let a = *self.rng.pick(&all);
            let b = *self.rng.pick(&all);
            let prereq = if a == b {
                vec![vec![a]]
            } else {
                vec![vec![a, b]]
            };
            let id = self.detectoid(format!("Applicability detectoid {}", i + 1), prereq, 7);
            self.state.extra_detectoids.push(id);
            all.push(id);
        }
    }

    fn gen_eulas(&mut self) {
        for i in 0..3 {
            let id = self.rng.uuid();
            let text = format!(
                "MICROSOFT SOFTWARE LICENSE TERMS (simulated licence #{}). These terms are an \
                 agreement between you and the simulated publisher. By installing the software \
                 you accept these terms.",
                i + 1
            );
            self.eulas.insert(id, Eula { id, text });
            self.state.eulas.push(id);
        }
    }
}
