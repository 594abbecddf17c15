//! Catalogue shapes the field has and the client-protocol tests need, added on demand to a
//! generated catalog by [`Catalog::add_field_shapes`] (the default generator is unchanged, so
//! other tests keep their catalogues):
//!
//! - a KB2267602-shaped Defender definition update: a top bundle that bundles hidden bundles
//!   that bundle the leaves carrying the files (two levels; the real one bundles ~124 bundles
//!   of ~308 leaves), approved for install;
//! - a software prerequisite that is not approved, and an approved update that requires it;
//! - an update nobody approved;
//! - drivers with hardware ids, two approved for one device (one named by its hardware id, one
//!   by a compatible id) and one left unapproved;
//! - the updates spread over several products and classifications (Windows, Defender).

use time::OffsetDateTime;
use uuid::Uuid;

use super::catalog::{Catalog, Handler};
use super::categories as cats;
use super::generate::{LeafSpec, ProductKind};
use crate::model::{groups, ApprovalAction, RevisionKey, UpdateKind};

/// What [`Catalog::add_field_shapes`] added.
#[derive(Debug, Clone)]
pub struct FieldShapes {
    /// The KB2267602-shaped top bundle.
    pub definition: RevisionKey,
    /// Its hidden bundles.
    pub middles: Vec<RevisionKey>,
    /// The leaves under them (with files).
    pub leaves: Vec<RevisionKey>,
    /// A software update nobody approved that `dependent` requires.
    pub prerequisite: RevisionKey,
    /// An approved update requiring `prerequisite`.
    pub dependent: RevisionKey,
    /// A Windows update nobody approved (delivered as PreDeploymentCheck).
    pub unapproved: RevisionKey,
    /// Approved driver matching [`FieldShapes::DEVICE_HW`] by hardware id.
    pub driver_hw: RevisionKey,
    /// Approved driver matching the device by a compatible id.
    pub driver_compat: RevisionKey,
    /// A driver for the device that is not approved.
    pub driver_unapproved: RevisionKey,
    /// The deployment deadline given to the definition update.
    pub deadline: OffsetDateTime,
}

impl FieldShapes {
    /// The device the drivers are for: its hardware ids (most specific first).
    pub const DEVICE_HW: [&'static str; 2] = [
        "PCI\\VEN_8086&DEV_2935&SUBSYS_11001AF4&REV_03",
        "PCI\\VEN_8086&DEV_2935&SUBSYS_11001AF4",
    ];
    /// Its compatible ids.
    pub const DEVICE_COMPAT: [&'static str; 2] = ["PCI\\VEN_8086&DEV_2935", "PCI\\VEN_8086"];
}

impl Catalog {
    fn field_spec(
        &self,
        pi: usize,
        title: String,
        class: Uuid,
        handler: Handler,
        kind: UpdateKind,
    ) -> LeafSpec {
        let p = &self.state.products[pi];
        let arch = p.archs[0];
        // Product and classification clauses only (no detectoid): every client of the
        // product evaluates them as met, so the tests see the shapes delivered.
        LeafSpec {
            kind,
            handler,
            title,
            kb: None,
            classification: class,
            products: vec![p.id],
            detectoids: Vec::new(),
            files: Vec::new(),
            supersedes: Vec::new(),
            bundled: Vec::new(),
            eula: None,
            big: false,
            explicitly_deployable: true,
            product_index: pi,
            arch,
            hardware_id: None,
        }
    }

    /// Adds the shapes listed in the module doc, approved in All Computers, and returns them.
    pub fn add_field_shapes(&mut self) -> FieldShapes {
        let find = |c: &Catalog, k: ProductKind| {
            c.state
                .products
                .iter()
                .position(|p| p.kind == k)
                .unwrap_or(0)
        };
        let def = find(self, ProductKind::Defender);
        let win = find(self, ProductKind::Windows);
        // KB2267602: 3 hidden bundles of 2 leaves each.
        let mut leaves = Vec::new();
        let mut middles = Vec::new();
        for m in 0..3 {
            let mut mine = Vec::new();
            for l in 0..2 {
                let f = self.add_file(format!("mpam-d-1.459.{m}{l}.exe"), false, false, "defu");
                let mut s = self.field_spec(
                    def,
                    format!("Defender definition part {m}.{l}"),
                    cats::DEFINITION_UPDATES,
                    Handler::Cbs,
                    UpdateKind::Software,
                );
                s.files = vec![f];
                s.explicitly_deployable = false;
                let rev = self.build_leaf(s);
                mine.push(self.publish(rev));
            }
            let mut s = self.field_spec(
                def,
                format!("Defender definition bundle {m}"),
                cats::DEFINITION_UPDATES,
                Handler::Bundle,
                UpdateKind::Software,
            );
            s.bundled = mine.clone();
            s.explicitly_deployable = false;
            let rev = self.build_leaf(s);
            middles.push(self.publish(rev));
            leaves.extend(mine);
        }
        let mut s = self.field_spec(
            def,
            "Security Intelligence Update for Microsoft Defender Antivirus - KB2267602 (Version 1.459.547.0)".into(),
            cats::DEFINITION_UPDATES,
            Handler::Bundle,
            UpdateKind::Software,
        );
        s.kb = Some("2267602".into());
        s.bundled = middles.clone();
        let rev = self.build_leaf(s);
        let definition = self.publish(rev);
        // A servicing-stack-like prerequisite nobody approves, and an update requiring it.
        let mut s = self.field_spec(
            win,
            "Servicing Stack Update (field prerequisite)".into(),
            cats::CRITICAL_UPDATES,
            Handler::Cbs,
            UpdateKind::Software,
        );
        s.files = vec![self.add_file("ssu-field.cab".into(), false, false, "secu")];
        let rev = self.build_leaf(s);
        let prerequisite = self.publish(rev);
        let mut s = self.field_spec(
            win,
            "Cumulative Update requiring the servicing stack (field)".into(),
            cats::SECURITY_UPDATES,
            Handler::Cbs,
            UpdateKind::Software,
        );
        s.files = vec![self.add_file("lcu-field.cab".into(), false, false, "secu")];
        let mut rev = self.build_leaf(s);
        rev.record
            .prerequisites
            .insert(0, vec![prerequisite.update_id]);
        rev.detail.category_clause.insert(0, false);
        let dependent = self.publish(rev);
        let mut s = self.field_spec(
            win,
            "Update for Windows nobody approved (field)".into(),
            cats::UPDATES,
            Handler::Cbs,
            UpdateKind::Software,
        );
        s.files = vec![self.add_file("unapproved-field.cab".into(), false, false, "secu")];
        let rev = self.build_leaf(s);
        let unapproved = self.publish(rev);
        // Drivers for one device.
        let driver = |c: &mut Catalog, hw: &str, version: &str| {
            let mut s = c.field_spec(
                win,
                format!("Intel - System - {version}"),
                cats::DRIVERS,
                Handler::Driver,
                UpdateKind::Driver,
            );
            s.hardware_id = Some(hw.to_string());
            s.files = vec![c.add_file(format!("drv-field-{version}.cab"), false, false, "drvs")];
            let rev = c.build_leaf(s);
            c.publish(rev)
        };
        let driver_hw = driver(self, FieldShapes::DEVICE_HW[1], "10.1.0.5");
        let driver_compat = driver(self, FieldShapes::DEVICE_COMPAT[0], "10.9.0.0");
        let driver_unapproved = driver(self, FieldShapes::DEVICE_HW[0], "10.2.0.0");
        let deadline = Catalog::time_of(self.change + 1) + time::Duration::days(7);
        for (k, d) in [
            (definition, Some(deadline)),
            (dependent, None),
            (driver_hw, None),
            (driver_compat, None),
        ] {
            // The update exists and All Computers too: approval cannot fail here.
            let _ = self.approve(
                k.update_id,
                groups::ALL_COMPUTERS,
                ApprovalAction::Install,
                d,
            );
        }
        FieldShapes {
            definition,
            middles,
            leaves,
            prerequisite,
            dependent,
            unapproved,
            driver_hw,
            driver_compat,
            driver_unapproved,
            deadline,
        }
    }
}
