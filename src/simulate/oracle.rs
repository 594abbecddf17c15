//! An independent oracle for the client-protocol tests: which updates a computer must be offered,
//! computed straight from the catalog (no store, no wire code).
//!
//! Rules, each with its source:
//! 1. A computer is in All Computers, in the groups it is assigned to, and (transitively) in their
//!    parents: approvals on a parent apply to children (PLAN §1.5 "Plan your WSUS deployment",
//!    computer groups; wsus-protocol.md §7.1).
//! 2. Conflicting approvals of one update: the deeper group wins; at equal depth Install beats
//!    Uninstall; then a deadline beats none and an earlier deadline beats a later one (PLAN §1.5,
//!    approval conflicts). Block and Scan (detect only) rank after Uninstall at equal depth
//!    **(unverified)**; a winning Block or Scan means "not offered" (ms822912 Block overrides;
//!    PreDeploymentCheck = don't offer, WUSP §2.2.2.2.4).
//! 3. Declined (hidden) updates are never offered (MS-WSUSSS §3.1.1 Revision table "Hidden";
//!    INV §12.19: 0 of 3,982 declined delivered). Expired updates are not offered (their newest
//!    revision is `PublicationState="Expired"`).
//! 4. Bundled updates come with their bundle, at any depth, with action Bundle and the bundle's deadline
//!    (WUSP §2.2.2.2.4; INV §12.19).
//! 5. An update is offered only when each prerequisite clause (AND of `AtLeastOne` ORs, a bare
//!    prerequisite being a clause of one, category clauses included) names at least one update in
//!    the client's installed non-leaf set (WUSP §3.1.5.7; wsus-protocol.md §3.4).
//! 6. The offered revision is the update's newest (wsus-protocol.md §3.4: one revision per
//!    update, the newest).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use time::OffsetDateTime;
use uuid::Uuid;

use super::catalog::Catalog;
use crate::model::{groups, ApprovalAction, Deployment, RevisionKey};

/// How an offered update is deployed to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferAction {
    /// Approved for install.
    Install,
    /// Approved for removal.
    Uninstall,
    /// Only here because an offered bundle bundles it.
    Bundle,
}

/// One offered update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// The action.
    pub action: OfferAction,
    /// The winning deadline, if any.
    pub deadline: Option<OffsetDateTime>,
}

fn action_rank(a: ApprovalAction) -> u8 {
    match a {
        ApprovalAction::Install => 0,
        ApprovalAction::Uninstall => 1,
        ApprovalAction::Block => 2,
        ApprovalAction::Scan => 3,
    }
}

impl Catalog {
    /// Depth of a group below All Computers (All Computers = 0), `None` for unknown groups.
    pub fn group_depth(&self, group: &Uuid) -> Option<usize> {
        let mut depth = 0;
        let mut cur = self.groups.iter().find(|g| g.id == *group)?;
        while let Some(parent) = cur.parent {
            depth += 1;
            cur = self.groups.iter().find(|g| g.id == parent)?;
            if depth > self.groups.len() {
                return None;
            }
        }
        Some(depth)
    }

    /// The groups a computer assigned to `assigned` belongs to: those, their ancestors, and All
    /// Computers.
    pub fn effective_groups(&self, assigned: &[Uuid]) -> BTreeSet<Uuid> {
        let mut out = BTreeSet::from([groups::ALL_COMPUTERS]);
        for g in assigned {
            let mut cur = Some(*g);
            while let Some(id) = cur {
                if !out.insert(id) && id == groups::ALL_COMPUTERS {
                    break;
                }
                cur = self
                    .groups
                    .iter()
                    .find(|x| x.id == id)
                    .and_then(|x| x.parent);
            }
        }
        out
    }

    /// The approval that wins for an update among the computer's groups (rule 2).
    pub fn winning_deployment(
        &self,
        update_id: &Uuid,
        member_of: &BTreeSet<Uuid>,
    ) -> Option<&Deployment> {
        self.deployments_of(update_id)
            .filter(|d| member_of.contains(&d.group))
            .min_by_key(|d| {
                (
                    std::cmp::Reverse(self.group_depth(&d.group).unwrap_or(0)),
                    action_rank(d.action),
                    d.deadline.is_none(),
                    d.deadline,
                    d.id,
                )
            })
    }

    /// What a computer assigned to `group_path` (its groups; ancestors are implied) must be
    /// offered, given the non-leaf updates (categories, detectoids) it reports installed.
    pub fn offers(
        &self,
        group_path: &[Uuid],
        installed_non_leaf: &HashSet<Uuid>,
    ) -> BTreeMap<RevisionKey, Offer> {
        let member_of = self.effective_groups(group_path);
        let mut out = BTreeMap::new();
        let approved: BTreeSet<Uuid> = self
            .deployments()
            .filter(|d| member_of.contains(&d.group))
            .map(|d| d.update.update_id)
            .collect();
        for id in approved {
            let Some(d) = self.winning_deployment(&id, &member_of) else {
                continue;
            };
            let action = match d.action {
                ApprovalAction::Install => OfferAction::Install,
                ApprovalAction::Uninstall => OfferAction::Uninstall,
                ApprovalAction::Block | ApprovalAction::Scan => continue,
            };
            let deadline = d.deadline;
            let Some(key) = self.offerable(&id, installed_non_leaf) else {
                continue;
            };
            out.insert(key, Offer { action, deadline });
            // Bundles nest (KB2267602: bundles of bundles of leaves): every level rides along.
            let mut todo: Vec<Uuid> = self
                .revision(&key)
                .map(|r| r.record.bundled.clone())
                .unwrap_or_default();
            let mut seen = HashSet::new();
            while let Some(child) = todo.pop() {
                if !seen.insert(child) {
                    continue;
                }
                if let Some(ck) = self.offerable(&child, installed_non_leaf) {
                    out.entry(ck).or_insert(Offer {
                        action: OfferAction::Bundle,
                        deadline,
                    });
                    todo.extend(
                        self.revision(&ck)
                            .map(|r| r.record.bundled.clone())
                            .unwrap_or_default(),
                    );
                }
            }
        }
        out
    }

    /// The products updates are published for: (category id, title).
    pub fn products(&self) -> Vec<(Uuid, &'static str)> {
        self.state.products.iter().map(|p| (p.id, p.name)).collect()
    }

    /// The non-leaf updates a machine running `products` on `arch` (`x86`, `x64`, `arm64`)
    /// evaluates as installed: every category (their rule is `True`), the architecture and
    /// product detectoids, the (product, arch) detectoids that exist, and about half of the
    /// extra detectoids whose prerequisites it meets (chosen from their ids, deterministically).
    /// Feed it to [`Catalog::offers`] as `installed_non_leaf`.
    pub fn machine_installed(&self, products: &[Uuid], arch: &str) -> HashSet<Uuid> {
        let mut out: HashSet<Uuid> = self
            .latest_revisions()
            .filter(|r| r.record.kind == crate::model::UpdateKind::Category)
            .map(|r| r.record.key.update_id)
            .collect();
        out.extend(self.state.arch_detectoids.get(arch).copied());
        for (pi, p) in self.state.products.iter().enumerate() {
            if !products.contains(&p.id) {
                continue;
            }
            if let Some((base, b)) = self.state.product_detectoids.get(&p.id) {
                out.extend([*base, *b]);
            }
            if let Some(c) = self
                .state
                .targets
                .iter()
                .find_map(|((i, a), id)| (*i == pi && *a == arch).then_some(*id))
            {
                out.insert(c);
            }
        }
        for id in &self.state.extra_detectoids {
            let met = self.latest(id).is_some_and(|r| {
                r.record
                    .prerequisites
                    .iter()
                    .all(|cl| cl.iter().any(|u| out.contains(u)))
            });
            if met && id.as_bytes()[15] % 2 == 0 {
                out.insert(*id);
            }
        }
        out
    }

    /// [`Catalog::offers`] as a set of revisions.
    pub fn offered(
        &self,
        group_path: &[Uuid],
        installed_non_leaf: &HashSet<Uuid>,
    ) -> BTreeSet<RevisionKey> {
        self.offers(group_path, installed_non_leaf)
            .into_keys()
            .collect()
    }

    /// The newest revision of `id` if it is not declined, not expired and its prerequisites are
    /// met by `installed` (rules 3, 5, 6).
    fn offerable(&self, id: &Uuid, installed: &HashSet<Uuid>) -> Option<RevisionKey> {
        if self.is_declined(id) {
            return None;
        }
        let rev = self.latest(id)?;
        if rev.record.expired {
            return None;
        }
        rev.record
            .prerequisites
            .iter()
            .all(|clause| clause.iter().any(|u| installed.contains(u)))
            .then_some(rev.record.key)
    }
}
