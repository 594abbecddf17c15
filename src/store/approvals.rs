//! Deployments (approvals; their change log is `deployment_log.rs`), declined (hidden) updates, accepted EULAs,
//! and the replica-mode application of a GetDeployments answer. Groups: `target_groups.rs`.
//!
//! Replica mode replaces all of it from upstream's GetDeployments in one transaction
//! ([`Store::apply_upstream_deployments`]); autonomous mode edits it one item at a time.
//! All Computers and Unassigned Computers always exist and cannot be removed.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::deployment_log::DepLog;
use super::schema::{self, dec, enc, Tree};
use super::target_groups::{drop_groups, is_builtin};
use super::{Store, StoreError, SyncState, Tx, TxResult};
use crate::model::{groups, Deployment, TargetGroup};

/// What one GetDeployments answer carries (MS-WSUSSS §3.1.4.10), ready to apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamDeployments {
    /// ALL upstream target groups; local groups absent here are removed with their deployments.
    pub groups: Vec<TargetGroup>,
    /// Deployments added or changed (upserted by deployment id).
    pub deployments: Vec<Deployment>,
    /// Deployments deleted upstream (`DeadDeployments`).
    pub dead_deployments: Vec<Uuid>,
    /// When true, `deployments` is the complete set and every other deployment is removed.
    pub replace_all_deployments: bool,
    /// ALL hidden (declined) update ids.
    pub hidden_updates: Vec<Uuid>,
    /// ALL accepted EULA ids.
    pub accepted_eulas: Vec<Uuid>,
}

/// Above this many deployment writes (puts, removals, and with a full replacement every
/// stored deployment), [`Store::apply_upstream_deployments`] stages the new set in chunks
/// instead of writing it in one transaction.
pub(super) const STAGE_ABOVE: usize = 2000;

impl Store {
    /// The live deployment tree (see `meta/dep_live`).
    pub(super) fn live_deployments(&self) -> Result<sled::Tree, StoreError> {
        let live = self.tree(Tree::Meta)?.get(schema::META_DEP_LIVE)?;
        self.tree(schema::dep_tree(live.as_deref()))
    }

    /// Every deployment (approval).
    pub fn deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        self.live_deployments()?
            .iter()
            .values()
            .map(|v| dec("deployments", &v?))
            .collect()
    }

    /// Deployments of one update (any revision).
    pub fn deployments_of(&self, update_id: &Uuid) -> Result<Vec<Deployment>, StoreError> {
        Ok(self
            .deployments()?
            .into_iter()
            .filter(|d| d.update.update_id == *update_id)
            .collect())
    }

    /// Approves (autonomous mode): stores `d`, replacing any other deployment of the same
    /// update for the same group, and un-declines the update, in one transaction.
    /// The group must exist.
    pub fn set_deployment(&self, d: &Deployment) -> Result<(), StoreError> {
        let _w = self.catalog_writer();
        if self.group(&d.group)?.is_none() {
            return Err(StoreError::NotFound(format!("group {}", d.group)));
        }
        let same: Vec<Uuid> = self
            .deployments_of(&d.update.update_id)?
            .into_iter()
            .filter(|o| o.group == d.group && o.id != d.id)
            .map(|o| o.id)
            .collect();
        self.txn(|tx| {
            let log = DepLog::start(tx)?;
            for id in &same {
                log.del(tx, id)?;
            }
            log.put(tx, d)?;
            tx.remove(Tree::Declined, d.update.update_id.as_bytes())?;
            log.finish(tx)
        })
    }

    /// Number of deployments (counts keys; decodes nothing).
    pub fn deployment_count(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for k in self.live_deployments()?.iter().keys() {
            k?;
            n += 1;
        }
        Ok(n)
    }

    /// Removes one deployment (logged like every deployment change); false when unknown.
    pub fn remove_deployment(&self, id: &Uuid) -> Result<bool, StoreError> {
        let _w = self.catalog_writer();
        self.txn(|tx| {
            let log = DepLog::start(tx)?;
            let existed = log.del(tx, id)?;
            if existed {
                log.finish(tx)?;
            }
            Ok(existed)
        })
    }

    /// Declined (hidden) update ids.
    pub fn declined_updates(&self) -> Result<Vec<Uuid>, StoreError> {
        uuid_keys(&self.tree(Tree::Declined)?, "declined")
    }

    /// Whether the update is declined.
    pub fn is_declined(&self, update_id: &Uuid) -> Result<bool, StoreError> {
        Ok(self
            .tree(Tree::Declined)?
            .contains_key(update_id.as_bytes())?)
    }

    /// Declines an update (autonomous mode): marks it hidden and removes all its deployments,
    /// in one transaction (WSUS: "decline removes all approvals").
    pub fn decline(&self, update_id: &Uuid) -> Result<(), StoreError> {
        let _w = self.catalog_writer();
        let ids: Vec<Uuid> = self
            .deployments_of(update_id)?
            .iter()
            .map(|d| d.id)
            .collect();
        self.txn(|tx| {
            let log = DepLog::start(tx)?;
            for id in &ids {
                log.del(tx, id)?;
            }
            tx.put_raw(Tree::Declined, update_id.as_bytes(), &[])?;
            log.finish(tx)
        })
    }

    /// Un-declines an update.
    pub fn undecline(&self, update_id: &Uuid) -> Result<(), StoreError> {
        let _w = self.catalog_writer();
        self.tree(Tree::Declined)?.remove(update_id.as_bytes())?;
        Ok(())
    }

    /// Accepted EULA ids.
    pub fn accepted_eulas(&self) -> Result<Vec<Uuid>, StoreError> {
        uuid_keys(&self.tree(Tree::Eulas)?, "eulas")
    }

    /// Whether a EULA is accepted.
    pub fn is_eula_accepted(&self, eula_id: &Uuid) -> Result<bool, StoreError> {
        Ok(self.tree(Tree::Eulas)?.contains_key(eula_id.as_bytes())?)
    }

    /// Accepts a EULA (autonomous mode).
    pub fn accept_eula(&self, eula_id: &Uuid) -> Result<(), StoreError> {
        let _w = self.catalog_writer();
        self.tree(Tree::Eulas)?.insert(eula_id.as_bytes(), &[])?;
        Ok(())
    }

    /// Replica mode: applies a GetDeployments answer and (when given) the new sync state with
    /// its deployment anchor, in ONE transaction. Groups absent upstream are removed with their
    /// deployments and computers' assignments (built-ins are kept); hidden updates and accepted
    /// EULAs become exactly upstream's lists. An upstream parent of all-zero means none.
    ///
    /// A big answer (more than `STAGE_ABOVE` deployment writes, e.g. a first sync) is
    /// staged in chunks in the deployment tree readers do not look at and made live by one
    /// small transaction (see `staged.rs`): readers and the change log see the old set or the
    /// new one, never a mix, and an interruption before that transaction leaves the old one.
    pub fn apply_upstream_deployments(
        &self,
        up: &UpstreamDeployments,
        state: Option<&SyncState>,
    ) -> Result<(), StoreError> {
        self.apply_upstream_deployments_with(up, state, STAGE_ABOVE, super::staged::CHUNK)
    }

    /// [`Store::apply_upstream_deployments`] with explicit staging threshold and chunk size.
    pub(super) fn apply_upstream_deployments_with(
        &self,
        up: &UpstreamDeployments,
        state: Option<&SyncState>,
        stage_above: usize,
        chunk: usize,
    ) -> Result<(), StoreError> {
        let mut incoming: Vec<TargetGroup> = up.groups.clone();
        for g in &mut incoming {
            if g.parent == Some(Uuid::nil()) || g.id == groups::ALL_COMPUTERS {
                g.parent = None;
            }
        }
        let keep: BTreeSet<Uuid> = incoming.iter().map(|g| g.id).collect();
        let state = state.map(enc).transpose()?;
        let _w = self.catalog_writer();
        let doomed: BTreeSet<Uuid> = self
            .groups()?
            .into_iter()
            .map(|g| g.id)
            .filter(|id| !keep.contains(id) && !is_builtin(id))
            .collect();
        let computers = self.computers()?;
        let declined = self.declined_updates()?;
        let eulas = self.accepted_eulas()?;
        let mut writes = up.deployments.len() + up.dead_deployments.len();
        if up.replace_all_deployments || !doomed.is_empty() {
            writes += self.deployment_count()?;
        }
        let rest = super::staged::Rest {
            incoming: &incoming,
            doomed: &doomed,
            computers: &computers,
            declined: (&declined, &up.hidden_updates),
            eulas: (&eulas, &up.accepted_eulas),
            state: state.as_deref(),
        };
        if writes > stage_above {
            let staged = self.stage_deployments(up, &doomed, chunk)?;
            return self.make_staged_live(staged, &rest);
        }
        let deployments = self.deployments()?;
        let listed: BTreeSet<Uuid> = up.deployments.iter().map(|d| d.id).collect();
        let current: BTreeMap<Uuid, &Deployment> = deployments.iter().map(|d| (d.id, d)).collect();
        self.txn(|tx| {
            let log = DepLog::start(tx)?;
            drop_groups(tx, &log, &doomed, &deployments, &computers)?;
            if up.replace_all_deployments {
                for d in deployments.iter().filter(|d| !listed.contains(&d.id)) {
                    log.del(tx, &d.id)?;
                }
            }
            for id in &up.dead_deployments {
                log.del(tx, id)?;
            }
            // Unchanged deployments are not rewritten (nor logged as changed); those
            // targeting a group removed here are dropped.
            for d in up
                .deployments
                .iter()
                .filter(|d| current.get(&d.id) != Some(d) && !doomed.contains(&d.group))
            {
                log.put(tx, d)?;
            }
            log.finish(tx)?;
            rest.write(tx)
        })
    }
}

/// Keys of a tree of GUIDs.
fn uuid_keys(tree: &sled::Tree, name: &'static str) -> Result<Vec<Uuid>, StoreError> {
    tree.iter()
        .keys()
        .map(|k| schema::parse_uuid(name, &k?))
        .collect()
}

/// Makes GUID-set tree `i` exactly `new` (given its current content `old`); writes only the
/// differences.
pub(super) fn replace_set(tx: &Tx<'_>, i: Tree, old: &[Uuid], new: &[Uuid]) -> TxResult<()> {
    let new_set: BTreeSet<&Uuid> = new.iter().collect();
    let old_set: BTreeSet<&Uuid> = old.iter().collect();
    for id in old.iter().filter(|id| !new_set.contains(id)) {
        tx.remove(i, id.as_bytes())?;
    }
    for id in new.iter().filter(|id| !old_set.contains(id)) {
        tx.put_raw(i, id.as_bytes(), &[])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ApprovalAction;
    use crate::store::testutil::{dep, group, store, uid};
    use time::OffsetDateTime;

    #[test]
    fn approve_replaces_same_group_and_decline_removes_approvals() {
        let (_d, s) = store();
        let g = groups::UNASSIGNED_COMPUTERS;
        s.set_deployment(&dep(1, 1, g, ApprovalAction::Install))
            .unwrap();
        s.set_deployment(&dep(2, 1, g, ApprovalAction::Uninstall))
            .unwrap();
        s.set_deployment(&dep(3, 1, groups::ALL_COMPUTERS, ApprovalAction::Install))
            .unwrap();
        let d = s.deployments_of(&uid(1)).unwrap();
        assert_eq!(d.len(), 2);
        assert!(d.iter().any(|d| d.id == Uuid::from_u128(0xd002)));
        assert!(matches!(
            s.set_deployment(&dep(4, 1, Uuid::from_u128(5), ApprovalAction::Install)),
            Err(StoreError::NotFound(_))
        ));

        s.decline(&uid(1)).unwrap();
        assert!(s.is_declined(&uid(1)).unwrap());
        assert!(s.deployments_of(&uid(1)).unwrap().is_empty());
        // Approving again un-declines.
        s.set_deployment(&dep(5, 1, g, ApprovalAction::Install))
            .unwrap();
        assert!(!s.is_declined(&uid(1)).unwrap());
        assert!(s.remove_deployment(&Uuid::from_u128(0xd005)).unwrap());
        assert!(!s.remove_deployment(&Uuid::from_u128(0xd005)).unwrap());

        s.accept_eula(&uid(50)).unwrap();
        assert!(s.is_eula_accepted(&uid(50)).unwrap());
        assert_eq!(s.accepted_eulas().unwrap(), vec![uid(50)]);
    }

    #[test]
    fn deployment_log_reports_changed_and_dead_since_a_number() {
        let (_d, s) = store();
        assert_eq!(s.deployment_seq().unwrap(), 0);
        let g = groups::UNASSIGNED_COMPUTERS;
        s.set_deployment(&dep(1, 1, g, ApprovalAction::Install))
            .unwrap();
        s.set_deployment(&dep(2, 2, g, ApprovalAction::Install))
            .unwrap();
        let all = s.deployment_changes_since(0).unwrap();
        assert_eq!(all.changed.len(), 2);
        assert!(all.dead.is_empty());
        let n = all.seq;
        assert_eq!(n, 2);

        s.set_deployment(&dep(3, 1, g, ApprovalAction::Uninstall))
            .unwrap(); // replaces 1
        s.decline(&uid(2)).unwrap(); // removes 2
        let ch = s.deployment_changes_since(n).unwrap();
        assert_eq!(ch.changed, vec![dep(3, 1, g, ApprovalAction::Uninstall)]);
        let mut dead = ch.dead.clone();
        dead.sort();
        assert_eq!(dead, vec![Uuid::from_u128(0xd001), Uuid::from_u128(0xd002)]);
        assert_eq!(s.deployment_changes_since(ch.seq).unwrap().changed.len(), 0);

        // Re-applying identical upstream deployments logs nothing.
        let up = UpstreamDeployments {
            groups: s.groups().unwrap(),
            deployments: s.deployments().unwrap(),
            ..Default::default()
        };
        s.apply_upstream_deployments(&up, None).unwrap();
        assert_eq!(s.deployment_seq().unwrap(), ch.seq);
        assert!(!s.remove_deployment(&Uuid::from_u128(0xd001)).unwrap());
        assert_eq!(s.deployment_seq().unwrap(), ch.seq);
    }

    #[test]
    fn upstream_deployments_mirror_upstream_in_one_step() {
        let (_d, s) = store();
        let local = s.add_group(&group(1, None)).unwrap();
        s.set_deployment(&dep(9, 9, local.id, ApprovalAction::Install))
            .unwrap();
        s.decline(&uid(70)).unwrap();
        s.accept_eula(&uid(80)).unwrap();
        let up_all = TargetGroup {
            id: groups::ALL_COMPUTERS,
            name: "All Computers".into(),
            parent: Some(Uuid::nil()),
        };
        let g2 = group(2, Some(groups::ALL_COMPUTERS));
        let first = UpstreamDeployments {
            groups: vec![up_all.clone(), g2.clone()],
            deployments: vec![
                dep(1, 1, g2.id, ApprovalAction::Install),
                dep(2, 2, g2.id, ApprovalAction::Install),
            ],
            hidden_updates: vec![uid(71)],
            accepted_eulas: vec![uid(81)],
            ..Default::default()
        };
        let st = SyncState {
            deployment_anchor: Some("D1".into()),
            ..Default::default()
        };
        s.apply_upstream_deployments(&first, Some(&st)).unwrap();
        assert!(
            s.group(&local.id).unwrap().is_none(),
            "absent upstream → removed"
        );
        assert!(s.group(&groups::UNASSIGNED_COMPUTERS).unwrap().is_some());
        assert_eq!(
            s.group(&groups::ALL_COMPUTERS).unwrap().unwrap().parent,
            None
        );
        let mut ids: Vec<Uuid> = s.deployments().unwrap().iter().map(|d| d.id).collect();
        ids.sort();
        assert_eq!(ids, vec![Uuid::from_u128(0xd001), Uuid::from_u128(0xd002)]);
        assert_eq!(s.declined_updates().unwrap(), vec![uid(71)]);
        assert_eq!(s.accepted_eulas().unwrap(), vec![uid(81)]);
        assert_eq!(
            s.sync_state().unwrap().deployment_anchor.as_deref(),
            Some("D1")
        );

        // Delta: one changed, one dead.
        let mut changed = dep(1, 1, g2.id, ApprovalAction::Uninstall);
        changed.deadline = Some(OffsetDateTime::UNIX_EPOCH);
        let second = UpstreamDeployments {
            groups: vec![up_all, g2],
            deployments: vec![changed.clone()],
            dead_deployments: vec![Uuid::from_u128(0xd002)],
            ..Default::default()
        };
        s.apply_upstream_deployments(&second, None).unwrap();
        assert_eq!(s.deployments().unwrap(), vec![changed]);
        assert!(s.declined_updates().unwrap().is_empty());
        assert_eq!(
            s.sync_state().unwrap().deployment_anchor.as_deref(),
            Some("D1")
        );

        // Full replacement drops what is not listed.
        let third = UpstreamDeployments {
            groups: vec![],
            replace_all_deployments: true,
            ..Default::default()
        };
        s.apply_upstream_deployments(&third, None).unwrap();
        assert!(s.deployments().unwrap().is_empty());
        assert_eq!(s.groups().unwrap().len(), 2);
    }
}
