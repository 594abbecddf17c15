//! An independent oracle for what a software pass delivers (field behaviour of a Windows
//! Server 2025 WSUS), computed straight from the catalog: no store, no wire, no client-service
//! code.
//!
//! Rules and sources:
//! 1. Scope: every update's newest revision that is not declined, not expired and not a driver
//!    (INV §12.19: WS2025 delivered all non-declined updates, approved or not; drivers come in
//!    the driver pass, WUSP §3.1.5.7). With `FilterCategoryIds`, only the updates whose
//!    classification or product is one of them (or that are one of them), plus everything
//!    those name as a prerequisite or bundle, transitively (WUSP §3.1.5.7: the prerequisite
//!    and bundle closure).
//! 2. Needed: every prerequisite clause names an installed update (WUSP §3.1.5.7), and an
//!    update that some update in scope bundles is delivered only with a needed bundle above it.
//! 3. Actions (INV §12.19): categories and detectoids Evaluate; the winning approval (the
//!    [`Catalog::winning_deployment`] rules) Install or Uninstall; Bundle for what an approved
//!    bundle holds at any depth (with that approval's deadline; the first approved bundle in
//!    update-id order whose tree holds it), and for members of unapproved bundles (no
//!    deadline); Evaluate for other updates some update names as a prerequisite (dependencies
//!    that are not deployed, WUSP §2.2.2.2.4); PreDeploymentCheck for the rest (unapproved,
//!    Block, detect-only).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use time::OffsetDateTime;
use uuid::Uuid;

use super::catalog::Catalog;
use crate::model::{ApprovalAction, RevisionKey, UpdateKind};

/// The action an update is delivered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryAction {
    /// Approved for install.
    Install,
    /// Approved for removal.
    Uninstall,
    /// Inside a bundle.
    Bundle,
    /// Evaluated only (categories, detectoids, undeployed prerequisites).
    Evaluate,
    /// Detected and reported, not offered.
    PreDeploymentCheck,
}

/// One delivered update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The action.
    pub action: DeliveryAction,
    /// The deadline, if any.
    pub deadline: Option<OffsetDateTime>,
}

impl Catalog {
    /// Update ids in the scope of a software pass with `filter` (rule 1).
    pub fn delivery_scope(&self, filter: &[Uuid]) -> BTreeSet<Uuid> {
        let ok = |id: &Uuid| {
            !self.is_declined(id)
                && self
                    .latest(id)
                    .is_some_and(|r| !r.record.expired && r.record.kind != UpdateKind::Driver)
        };
        if filter.is_empty() {
            return self
                .latest_revisions()
                .map(|r| r.record.key.update_id)
                .filter(ok)
                .collect();
        }
        let mut todo: Vec<Uuid> = self
            .latest_revisions()
            .filter(|r| {
                filter.contains(&r.record.key.update_id)
                    || r.record.classification.is_some_and(|c| filter.contains(&c))
                    || r.record.products.iter().any(|p| filter.contains(p))
            })
            .map(|r| r.record.key.update_id)
            .collect();
        let mut seen = HashSet::new();
        while let Some(id) = todo.pop() {
            if !seen.insert(id) {
                continue;
            }
            if let Some(r) = self.latest(&id) {
                todo.extend(r.record.prerequisites.iter().flatten().copied());
                todo.extend(r.record.bundled.iter().copied());
            }
        }
        seen.into_iter().filter(ok).collect()
    }

    /// What a computer in `group_path` reporting `installed` non-leaf updates is delivered by
    /// a software pass with `filter` (rules 1-3), by newest revision.
    pub fn delivery(
        &self,
        group_path: &[Uuid],
        installed: &HashSet<Uuid>,
        filter: &[Uuid],
    ) -> BTreeMap<RevisionKey, Delivered> {
        let scope = self.delivery_scope(filter);
        let member_of = self.effective_groups(group_path);
        let latest = |id: &Uuid| self.latest(id).map(|r| &r.record);
        // Who bundles whom, and who is named as a prerequisite or category.
        let mut parents: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
        let mut named: HashSet<Uuid> = HashSet::new();
        for r in self.latest_revisions() {
            for c in &r.record.bundled {
                parents.entry(*c).or_default().push(r.record.key.update_id);
            }
            named.extend(r.record.prerequisites.iter().flatten().copied());
            named.extend(r.record.classification);
            named.extend(r.record.products.iter().copied());
        }
        let met = |id: &Uuid| {
            latest(id).is_some_and(|r| {
                r.prerequisites
                    .iter()
                    .all(|cl| cl.iter().any(|u| installed.contains(u)))
            })
        };
        // Rule 2, bundles resolved top-down by repeated passes.
        let mut needed: BTreeMap<Uuid, bool> = BTreeMap::new();
        for _ in 0..16 {
            let mut moved = false;
            for id in &scope {
                let ps: Vec<&Uuid> = parents
                    .get(id)
                    .map(|v| v.iter().collect())
                    .unwrap_or_default();
                let v =
                    met(id) && (ps.is_empty() || ps.iter().any(|p| needed.get(*p) == Some(&true)));
                if needed.get(id) != Some(&v) {
                    needed.insert(*id, v);
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        // Approved roots and their bundle trees.
        let approval = |id: &Uuid| {
            self.winning_deployment(id, &member_of)
                .and_then(|d| match d.action {
                    ApprovalAction::Install => Some((DeliveryAction::Install, d.deadline)),
                    ApprovalAction::Uninstall => Some((DeliveryAction::Uninstall, d.deadline)),
                    _ => None,
                })
        };
        let mut via_bundle: BTreeMap<Uuid, Option<OffsetDateTime>> = BTreeMap::new();
        let roots: BTreeSet<Uuid> = scope
            .iter()
            .filter(|id| approval(id).is_some())
            .copied()
            .collect();
        for root in &roots {
            let deadline = approval(root).and_then(|a| a.1);
            let mut todo: Vec<Uuid> = latest(root).map(|r| r.bundled.clone()).unwrap_or_default();
            let mut seen = HashSet::new();
            while let Some(c) = todo.pop() {
                if !seen.insert(c) || roots.contains(&c) {
                    continue;
                }
                via_bundle.entry(c).or_insert(deadline);
                todo.extend(latest(&c).map(|r| r.bundled.clone()).unwrap_or_default());
            }
        }
        let mut out = BTreeMap::new();
        for id in &scope {
            if needed.get(id) != Some(&true) {
                continue;
            }
            let Some(r) = latest(id) else { continue };
            let d = if matches!(r.kind, UpdateKind::Category | UpdateKind::Detectoid) {
                Delivered {
                    action: DeliveryAction::Evaluate,
                    deadline: None,
                }
            } else if let Some((action, deadline)) = approval(id) {
                Delivered { action, deadline }
            } else if let Some(deadline) = via_bundle.get(id) {
                Delivered {
                    action: DeliveryAction::Bundle,
                    deadline: *deadline,
                }
            } else if parents.contains_key(id) {
                Delivered {
                    action: DeliveryAction::Bundle,
                    deadline: None,
                }
            } else if named.contains(id) {
                Delivered {
                    action: DeliveryAction::Evaluate,
                    deadline: None,
                }
            } else {
                Delivered {
                    action: DeliveryAction::PreDeploymentCheck,
                    deadline: None,
                }
            };
            out.insert(r.key, d);
        }
        out
    }
}
