//! Mutations for tests: new updates and revisions, approvals, declines, expiry. Each stamps a new
//! change number, so a server built over the catalog can answer "what changed since X".

use time::OffsetDateTime;
use uuid::Uuid;

use super::catalog::{Catalog, SimDeployment};
use crate::model::{ApprovalAction, Deployment, RevisionKey, UpdateKind};

/// Errors of catalog mutations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MutateError {
    /// No update with that id.
    #[error("unknown update {0}")]
    UnknownUpdate(Uuid),
    /// No target group with that id.
    #[error("unknown target group {0}")]
    UnknownGroup(Uuid),
    /// Categories and detectoids cannot be approved.
    #[error("update {0} is not approvable (category or detectoid)")]
    NotApprovable(Uuid),
    /// The update is declined: approving it needs it undeclined first (WSUS bb294934).
    #[error("update {0} is declined")]
    Declined(Uuid),
}

impl Catalog {
    /// Publishes `n` new revisions with later change numbers: about half brand-new updates, half
    /// new revisions of existing software/driver updates (their live approvals move to the new
    /// revision: the old deployment dies, a new one is created). Returns the new revision keys,
    /// bundle children included (so the count can exceed `n` by a few).
    pub fn add_revisions(&mut self, n: usize) -> Vec<RevisionKey> {
        let mut out = Vec::new();
        while out.len() < n {
            if self.rng.percent(50) {
                out.extend(self.gen_leaf(false));
                continue;
            }
            let candidates: Vec<Uuid> = self
                .latest_revisions()
                .filter(|r| {
                    matches!(r.record.kind, UpdateKind::Software | UpdateKind::Driver)
                        && r.detail.explicitly_deployable
                        && !r.record.expired
                })
                .map(|r| r.record.key.update_id)
                .collect();
            if candidates.is_empty() {
                out.extend(self.gen_leaf(false));
                continue;
            }
            let id = *self.rng.pick(&candidates);
            if let Some(key) = self.publish_new_revision(id, false) {
                self.move_deployments(id, key);
                out.push(key);
            }
        }
        out
    }

    fn move_deployments(&mut self, update_id: Uuid, to: RevisionKey) {
        let old: Vec<Deployment> = self.deployments_of(&update_id).cloned().collect();
        for d in old {
            self.approve_key(to, d.group, d.action, d.deadline);
        }
    }

    fn kill_deployment(&mut self, id: Uuid) {
        if let Some(d) = self.deployments.remove(&id) {
            if let Some(set) = self.by_update.get_mut(&d.deployment.update.update_id) {
                set.remove(&id);
            }
            let c = self.next_change();
            self.dead.push((id, c));
        }
    }

    /// Approves the newest revision of `update_id` for `group` (replacing any approval of that
    /// update for that group, which becomes a dead deployment). Approving accepts its EULA
    /// (WSUS ms747134: approval requires acceptance). Returns the new deployment id.
    pub fn approve(
        &mut self,
        update_id: Uuid,
        group: Uuid,
        action: ApprovalAction,
        deadline: Option<OffsetDateTime>,
    ) -> Result<Uuid, MutateError> {
        let rev = self
            .latest(&update_id)
            .ok_or(MutateError::UnknownUpdate(update_id))?;
        if matches!(
            rev.record.kind,
            UpdateKind::Category | UpdateKind::Detectoid
        ) {
            return Err(MutateError::NotApprovable(update_id));
        }
        if !self.groups.iter().any(|g| g.id == group) {
            return Err(MutateError::UnknownGroup(group));
        }
        if self.is_declined(&update_id) {
            return Err(MutateError::Declined(update_id));
        }
        let (key, eula) = (rev.record.key, rev.record.eula_id);
        if let Some(eula) = eula {
            self.accepted_eulas.insert(eula);
        }
        Ok(self.approve_key(key, group, action, deadline))
    }

    fn approve_key(
        &mut self,
        key: RevisionKey,
        group: Uuid,
        action: ApprovalAction,
        deadline: Option<OffsetDateTime>,
    ) -> Uuid {
        let old: Vec<Uuid> = self
            .deployments_of(&key.update_id)
            .filter(|d| d.group == group)
            .map(|d| d.id)
            .collect();
        for id in old {
            self.kill_deployment(id);
        }
        let id = self.rng.uuid();
        let change = self.next_change();
        let deployment = Deployment {
            id,
            update: key,
            group,
            action,
            deadline,
            last_change: Catalog::time_of(change),
            admin_name: "WUS Server".into(),
            is_assigned: matches!(action, ApprovalAction::Install | ApprovalAction::Uninstall),
            download_priority: 1,
        };
        self.deployments
            .insert(id, SimDeployment { deployment, change });
        self.by_update.entry(key.update_id).or_default().insert(id);
        id
    }

    /// Removes the approval of `update_id` for `group` (the deployment becomes dead).
    /// Returns whether there was one.
    pub fn unapprove(&mut self, update_id: Uuid, group: Uuid) -> bool {
        let ids: Vec<Uuid> = self
            .deployments_of(&update_id)
            .filter(|d| d.group == group)
            .map(|d| d.id)
            .collect();
        for id in &ids {
            self.kill_deployment(*id);
        }
        !ids.is_empty()
    }

    /// Declines an update: removes all its approvals and hides it; declining a bundle declines
    /// its children (WSUS bb294934, ms751988).
    pub fn decline(&mut self, update_id: Uuid) -> Result<(), MutateError> {
        let rev = self
            .latest(&update_id)
            .ok_or(MutateError::UnknownUpdate(update_id))?;
        let children = rev.record.bundled.clone();
        for id in std::iter::once(update_id).chain(children) {
            let dead: Vec<Uuid> = self.deployments_of(&id).map(|d| d.id).collect();
            for d in dead {
                self.kill_deployment(d);
            }
            if !self.declined.contains_key(&id) {
                let c = self.next_change();
                self.declined.insert(id, c);
            }
        }
        Ok(())
    }

    /// Undoes a decline (the update gets no approvals back).
    pub fn undecline(&mut self, update_id: Uuid) -> bool {
        let was = self.declined.remove(&update_id).is_some();
        if was {
            self.next_change();
        }
        was
    }

    /// Expires an update: publishes a new revision with `PublicationState="Expired"` and
    /// removes its approvals (expired updates are not offered). Returns the expired revision.
    pub fn expire(&mut self, update_id: Uuid) -> Result<RevisionKey, MutateError> {
        let key = self
            .publish_new_revision(update_id, true)
            .ok_or(MutateError::UnknownUpdate(update_id))?;
        let dead: Vec<Uuid> = self.deployments_of(&update_id).map(|d| d.id).collect();
        for d in dead {
            self.kill_deployment(d);
        }
        Ok(key)
    }
}
