//! Leaf updates: CBS, bundles with their children, Defender definitions, Office patches,
//! drivers and UUP feature updates, with their payload files, supersedence lines, extra and
//! expired revisions.

use uuid::Uuid;

use super::catalog::{Catalog, Description, Handler, SimRevision};
use super::categories as cats;
use super::generate::{
    creation_date, detail, year_month, LeafSpec, Product, ProductKind, LANGUAGES,
};
use super::payload::FileId;
use crate::model::{RevisionKey, UpdateKind, UpdateRecord};

impl Catalog {
    pub(crate) fn add_file(
        &mut self,
        name: String,
        large: bool,
        patching: bool,
        folder: &'static str,
    ) -> FileId {
        let o = &self.options;
        let size = if large {
            o.large_file_size
        } else {
            self.rng
                .range(o.min_file_size.min(o.max_file_size), o.max_file_size)
        };
        self.payloads
            .add(name, size, patching, folder, self.change + 1)
    }

    /// Turns a spec into a revision (revision number 200) with the descriptive details drawn from
    /// the generator stream.
    pub(crate) fn build_leaf(&mut self, s: LeafSpec) -> SimRevision {
        let id = self.rng.uuid();
        let mut d = detail(s.handler);
        let mut prerequisites: Vec<Vec<Uuid>> = s.detectoids.iter().map(|x| vec![*x]).collect();
        d.category_clause = vec![false; prerequisites.len()];
        prerequisites.push(s.products.clone());
        prerequisites.push(vec![s.classification]);
        d.category_clause.extend([true, true]);
        d.bundled_revisions = s.bundled.iter().map(|k| k.revision).collect();
        let sentences = if s.big {
            12
        } else {
            1 + self.rng.below(2) as usize
        };
        d.description = Description::Sentences(sentences as u8);
        let n_lang = if s.big {
            LANGUAGES.len()
        } else if self.rng.percent(30) {
            self.rng.range(2, 8) as usize
        } else {
            0
        };
        d.languages = n_lang as u8;
        d.extra_rules = if s.big { 40 } else { self.rng.below(4) as u32 };
        d.explicitly_deployable = s.explicitly_deployable;
        if s.classification == cats::SECURITY_UPDATES {
            d.msrc_severity = Some(*self.rng.pick(&["Critical", "Important", "Moderate", "Low"]));
        }
        let p = &self.state.products[s.product_index];
        d.os_build = p.build;
        d.arch = s.arch;
        d.hardware_id = s.hardware_id;
        let files = s
            .files
            .iter()
            .filter_map(|f| self.payloads.get(*f).map(|p| p.record()))
            .collect();
        SimRevision {
            record: UpdateRecord {
                key: RevisionKey::new(id, 200),
                kind: s.kind,
                category_type: None,
                title: s.title,
                kb: s.kb,
                classification: Some(s.classification),
                products: s.products,
                prerequisites,
                bundled: s.bundled.iter().map(|k| k.update_id).collect(),
                supersedes: s.supersedes,
                eula_id: s.eula,
                files,
                expired: false,
                creation_date: Some(creation_date(self.change + 1)),
            },
            change: 0,
            files: s.files,
            detail: d,
        }
    }

    /// Publishes a leaf, sometimes followed by newer revisions, sometimes ending expired.
    fn publish_leaf(&mut self, rev: SimRevision, revisions: bool) -> RevisionKey {
        let mut key = self.publish(rev);
        if revisions && self.rng.percent(10) {
            for _ in 0..self.rng.range(1, 2) {
                key = self
                    .publish_new_revision(key.update_id, false)
                    .unwrap_or(key);
            }
        }
        if revisions && self.rng.percent(3) {
            key = self
                .publish_new_revision(key.update_id, true)
                .unwrap_or(key);
        }
        key
    }

    /// Publishes revision n+1 of an update (same files), optionally expired.
    pub(crate) fn publish_new_revision(
        &mut self,
        update_id: Uuid,
        expired: bool,
    ) -> Option<RevisionKey> {
        let mut rev = self.latest(&update_id)?.clone();
        rev.record.key.revision += 1;
        rev.record.expired = expired;
        rev.record.creation_date = Some(creation_date(self.change + 1));
        rev.detail.extra_rules += 1;
        Some(self.publish(rev))
    }

    fn next_kb(&mut self) -> String {
        self.state.next_kb += 1 + self.rng.below(7) as u32;
        self.state.next_kb.to_string()
    }

    fn supersede(&mut self, line: String, id: Uuid) -> Vec<Uuid> {
        self.state.lines.insert(line, id).into_iter().collect()
    }

    /// Generates one leaf update (or a bundle with its children). `revisions`: may add extra
    /// and expired revisions.
    pub(crate) fn gen_leaf(&mut self, revisions: bool) -> Vec<RevisionKey> {
        let roll = self.rng.below(100);
        let products = self.state.products.clone();
        let by_kind = |k: ProductKind| -> Vec<usize> {
            products
                .iter()
                .enumerate()
                .filter(|(_, p)| p.kind == k)
                .map(|(i, _)| i)
                .collect()
        };
        let windows: Vec<usize> = by_kind(ProductKind::Windows)
            .into_iter()
            .chain(by_kind(ProductKind::Server))
            .collect();
        let mut out = Vec::new();
        match roll {
            0..=7 => {
                out.push(self.gen_driver(&products, &by_kind(ProductKind::Windows), revisions))
            }
            8..=11 => out.push(self.gen_uup(&products, revisions)),
            12..=21 => out.extend(self.gen_bundle(&products, &windows, revisions)),
            22..=31 => out.push(self.gen_defender(&products, revisions)),
            32..=41 => {
                out.push(self.gen_office(&products, &by_kind(ProductKind::Office), revisions))
            }
            _ => out.push(self.gen_cbs(&products, &windows, revisions)),
        }
        out
    }

    fn target(&mut self, products: &[Product], pi: usize) -> (&'static str, Uuid) {
        let arch = *self.rng.pick(products[pi].archs);
        (arch, self.state.targets[&(pi, arch)])
    }

    fn gen_cbs(&mut self, products: &[Product], windows: &[usize], revisions: bool) -> RevisionKey {
        let pi = *self.rng.pick(windows);
        let p = &products[pi];
        let (arch, det) = self.target(products, pi);
        let kb = self.next_kb();
        let (class, what) = *self.rng.pick(&[
            (cats::SECURITY_UPDATES, "Cumulative Update"),
            (cats::SECURITY_UPDATES, "Security Update"),
            (cats::CRITICAL_UPDATES, "Critical Update"),
            (cats::UPDATES, "Update"),
            (cats::UPDATE_ROLLUPS, "Update Rollup"),
            (cats::FEATURE_PACKS, "Feature Pack"),
            (cats::SERVICE_PACKS, "Servicing Stack Update"),
            (cats::TOOLS, "Windows Malicious Software Removal Tool"),
        ]);
        let ym = year_month(self.change + 1).replace('/', "-");
        let title = format!(
            "{ym} {what} for {} for {arch}-based Systems (KB{kb})",
            p.name
        );
        let ext = if self.rng.percent(60) { "msu" } else { "cab" };
        let folder = if class == cats::SECURITY_UPDATES {
            "secu"
        } else {
            "updt"
        };
        let mut files = vec![self.add_file(
            format!("{}-KB{kb}-{arch}.{ext}", p.stem,),
            false,
            true,
            folder,
        )];
        if self.rng.percent(15) {
            files.push(self.add_file(format!("{}-KB{kb}-{arch}.psf", p.stem), false, true, folder));
        }
        let id_hint = self.rng.percent(25);
        let mut spec = LeafSpec {
            kind: UpdateKind::Software,
            handler: Handler::Cbs,
            title,
            kb: Some(kb),
            classification: class,
            products: vec![p.id],
            detectoids: vec![det],
            files,
            supersedes: Vec::new(),
            bundled: Vec::new(),
            eula: None,
            big: self.rng.percent(6),
            explicitly_deployable: true,
            product_index: pi,
            arch,
            hardware_id: None,
        };
        if id_hint && p.kind == ProductKind::Windows {
            // Some updates apply to both client products (one AtLeastOne clause of two).
            let other = if p.id == cats::PRODUCT_WINDOWS_10 {
                cats::PRODUCT_WINDOWS_11
            } else {
                cats::PRODUCT_WINDOWS_10
            };
            spec.products.push(other);
        }
        let mut rev = self.build_leaf(spec);
        if what == "Cumulative Update" {
            rev.record.supersedes =
                self.supersede(format!("lcu-{pi}-{arch}"), rev.record.key.update_id);
        }
        self.publish_leaf(rev, revisions)
    }

    fn gen_bundle(
        &mut self,
        products: &[Product],
        windows: &[usize],
        revisions: bool,
    ) -> Vec<RevisionKey> {
        let pi = *self.rng.pick(windows);
        let p = &products[pi];
        let (arch, det) = self.target(products, pi);
        let kb = self.next_kb();
        let mut keys = Vec::new();
        for c in 0..self.rng.range(1, 3) {
            let files = vec![
                self.add_file(
                    format!("{}-KB{kb}-{arch}-part{c}.cab", p.stem).to_lowercase(),
                    false,
                    true,
                    "secu",
                ),
                self.add_file(
                    format!("{}-KB{kb}-{arch}-part{c}.psf", p.stem).to_lowercase(),
                    false,
                    true,
                    "secu",
                ),
            ];
            let spec = LeafSpec {
                kind: UpdateKind::Software,
                handler: Handler::Cbs,
                title: format!("{} KB{kb} package {c} ({arch})", p.name),
                kb: Some(kb.clone()),
                classification: cats::SECURITY_UPDATES,
                products: vec![p.id],
                detectoids: vec![det],
                files,
                supersedes: Vec::new(),
                bundled: Vec::new(),
                eula: None,
                big: false,
                explicitly_deployable: false,
                product_index: pi,
                arch,
                hardware_id: None,
            };
            let rev = self.build_leaf(spec);
            keys.push(self.publish(rev));
        }
        let ym = year_month(self.change + 1).replace('/', "-");
        let spec = LeafSpec {
            kind: UpdateKind::Software,
            handler: Handler::Bundle,
            title: format!(
                "{ym} Security Update for {} for {arch}-based Systems (KB{kb})",
                p.name
            ),
            kb: Some(kb),
            classification: cats::SECURITY_UPDATES,
            products: vec![p.id],
            detectoids: vec![det],
            files: Vec::new(),
            supersedes: Vec::new(),
            bundled: keys.clone(),
            eula: None,
            big: self.rng.percent(10),
            explicitly_deployable: true,
            product_index: pi,
            arch,
            hardware_id: None,
        };
        let mut rev = self.build_leaf(spec);
        rev.record.supersedes =
            self.supersede(format!("bundle-{pi}-{arch}"), rev.record.key.update_id);
        // Bundles keep one revision: their children's revisions are pinned in BundledUpdates.
        let _ = revisions;
        keys.insert(0, self.publish(rev));
        keys
    }

    fn gen_defender(&mut self, products: &[Product], revisions: bool) -> RevisionKey {
        let pi = products
            .iter()
            .position(|p| p.kind == ProductKind::Defender)
            .unwrap_or(0);
        let (arch, det) = self.target(products, pi);
        self.state.defender_build += 1 + self.rng.below(3) as u32;
        let version = format!(
            "1.{}.{}.0",
            400 + self.state.defender_build / 1000,
            self.state.defender_build % 1000
        );
        let file = self.add_file(
            format!("am_delta_patch_{version}.exe"),
            false,
            false,
            "defu",
        );
        let spec = LeafSpec {
            kind: UpdateKind::Software,
            handler: Handler::CommandLine,
            title: format!(
                "Security Intelligence Update for Microsoft Defender Antivirus - KB2267602 (Version {version})"
            ),
            kb: Some("2267602".into()),
            classification: cats::DEFINITION_UPDATES,
            products: vec![products[pi].id],
            detectoids: vec![det],
            files: vec![file],
            supersedes: Vec::new(),
            bundled: Vec::new(),
            eula: None,
            big: false,
            explicitly_deployable: true,
            product_index: pi,
            arch,
            hardware_id: None,
        };
        let mut rev = self.build_leaf(spec);
        rev.record.supersedes = self.supersede("defender".into(), rev.record.key.update_id);
        self.publish_leaf(rev, revisions)
    }

    fn gen_office(
        &mut self,
        products: &[Product],
        office: &[usize],
        revisions: bool,
    ) -> RevisionKey {
        let pi = *self.rng.pick(office);
        let (arch, det) = self.target(products, pi);
        let kb = self.next_kb();
        let class = if self.rng.percent(50) {
            cats::SECURITY_UPDATES
        } else {
            cats::UPDATES
        };
        let bits = if arch == "x86" { "32" } else { "64" };
        let name = format!("{}-kb{kb}-fullfile-{arch}-glb.cab", products[pi].stem);
        let file = self.add_file(name, false, false, "secu");
        let eula = self
            .rng
            .percent(20)
            .then(|| *self.rng.pick(&self.state.eulas.clone()));
        let spec = LeafSpec {
            kind: UpdateKind::Software,
            handler: Handler::WindowsPatch,
            title: format!(
                "Update for {} ({bits}-bit edition) (KB{kb})",
                products[pi].name
            ),
            kb: Some(kb),
            classification: class,
            products: vec![products[pi].id],
            detectoids: vec![det],
            files: vec![file],
            supersedes: Vec::new(),
            bundled: Vec::new(),
            eula,
            big: self.rng.percent(5),
            explicitly_deployable: true,
            product_index: pi,
            arch,
            hardware_id: None,
        };
        let rev = self.build_leaf(spec);
        self.publish_leaf(rev, revisions)
    }

    fn gen_driver(
        &mut self,
        products: &[Product],
        windows: &[usize],
        revisions: bool,
    ) -> RevisionKey {
        let pi = *self.rng.pick(windows);
        let (arch, det) = self.target(products, pi);
        let (vendor, class) = *self.rng.pick(&[
            ("Intel", "Display"),
            ("Realtek", "MEDIA"),
            ("Intel", "Net"),
            ("AMD", "System"),
            ("Qualcomm", "Bluetooth"),
        ]);
        let ven = 0x1000 + self.rng.below(0x8000);
        let dev = self.rng.below(0x10000);
        let hwid = format!("PCI\\VEN_{ven:04X}&DEV_{dev:04X}");
        let version = format!(
            "31.0.{}.{}",
            100 + self.rng.below(900),
            self.rng.below(10000)
        );
        let file = self.add_file(
            format!(
                "{}-{vendor}-{class}-{version}.cab",
                hwid.replace(['\\', '&'], "_")
            )
            .to_lowercase(),
            false,
            false,
            "drvs",
        );
        let spec = LeafSpec {
            kind: UpdateKind::Driver,
            handler: Handler::Driver,
            title: format!("{vendor} - {class} - {version}"),
            kb: None,
            classification: cats::DRIVERS,
            products: vec![products[pi].id],
            detectoids: vec![det],
            files: vec![file],
            supersedes: Vec::new(),
            bundled: Vec::new(),
            eula: None,
            big: false,
            explicitly_deployable: true,
            product_index: pi,
            arch,
            hardware_id: Some(hwid),
        };
        let rev = self.build_leaf(spec);
        self.publish_leaf(rev, revisions)
    }

    fn gen_uup(&mut self, products: &[Product], revisions: bool) -> RevisionKey {
        let pi = products
            .iter()
            .position(|p| p.id == cats::PRODUCT_WINDOWS_11)
            .unwrap_or(0);
        let (arch, det) = self.target(products, pi);
        let kb = self.next_kb();
        let large = self.state.large_left > 0;
        if large {
            self.state.large_left -= 1;
        }
        let build = 26100 + self.rng.below(200);
        let (h1, h2, ssu) = (
            self.rng.next_u64(),
            self.rng.next_u64(),
            self.rng.below(9000),
        );
        let files = vec![
            self.add_file(format!("{h1:016X}_Edition.wim"), large, true, "upgr"),
            self.add_file(
                format!("professional_en-us_{arch}.esd"),
                false,
                true,
                "upgr",
            ),
            self.add_file(
                format!("Windows11.0-KB{kb}-{arch}.psf"),
                false,
                true,
                "upgr",
            ),
            self.add_file(
                format!("Windows11.0-KB{kb}-{arch}.msu"),
                false,
                true,
                "upgr",
            ),
            self.add_file(format!("SSU-{build}.{ssu}-{arch}.cab"), false, true, "upgr"),
            self.add_file(
                format!("{h2:016X}_Wsus.AggregatedMetadata.cab"),
                false,
                false,
                "upgr",
            ),
        ];
        let eula = Some(self.state.eulas[0]);
        let spec = LeafSpec {
            kind: UpdateKind::Software,
            handler: Handler::OsInstaller,
            title: format!("Windows 11, version 25H2 {arch} (KB{kb}) - build 10.0.{build}"),
            kb: Some(kb),
            classification: cats::UPGRADES,
            products: vec![products[pi].id],
            detectoids: vec![det],
            files,
            supersedes: Vec::new(),
            bundled: Vec::new(),
            eula,
            big: true,
            explicitly_deployable: true,
            product_index: pi,
            arch,
            hardware_id: None,
        };
        let mut rev = self.build_leaf(spec);
        rev.record.supersedes = self.supersede(format!("uup-{arch}"), rev.record.key.update_id);
        self.publish_leaf(rev, revisions)
    }
}
