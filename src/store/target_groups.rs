//! Target groups: All Computers (root) and Unassigned Computers (its child) always exist
//! and cannot be removed; other groups nest under them. Removing a group removes its subtree,
//! their deployments and computers' assignments to them, in one transaction.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::computers::Computer;
use super::deployment_log::DepLog;
use super::schema::{dec, enc, Tree};
use super::{abort, Store, StoreError, Tx, TxResult};
use crate::model::{groups, Deployment, TargetGroup};

/// Whether `id` is a built-in group.
pub(super) fn is_builtin(id: &Uuid) -> bool {
    *id == groups::ALL_COMPUTERS || *id == groups::UNASSIGNED_COMPUTERS
}

impl Store {
    /// Every target group (All Computers and Unassigned Computers included), in id order.
    pub fn groups(&self) -> Result<Vec<TargetGroup>, StoreError> {
        self.tree(Tree::Groups)?
            .iter()
            .values()
            .map(|v| dec("groups", &v?))
            .collect()
    }

    /// One group by id.
    pub fn group(&self, id: &Uuid) -> Result<Option<TargetGroup>, StoreError> {
        match self.tree(Tree::Groups)?.get(id.as_bytes())? {
            Some(v) => Ok(Some(dec("groups", &v)?)),
            None => Ok(None),
        }
    }

    /// One group by name (ASCII case-insensitive, as WSUS compares them).
    pub fn group_by_name(&self, name: &str) -> Result<Option<TargetGroup>, StoreError> {
        Ok(self
            .groups()?
            .into_iter()
            .find(|g| g.name.eq_ignore_ascii_case(name)))
    }

    /// Adds a group (autonomous mode). Its parent must exist (`None` means All Computers);
    /// the id and the name must be new.
    pub fn add_group(&self, group: &TargetGroup) -> Result<TargetGroup, StoreError> {
        let mut g = group.clone();
        g.parent = Some(g.parent.unwrap_or(groups::ALL_COMPUTERS));
        let _w = self.catalog_writer();
        if self.group(&g.id)?.is_some() {
            return Err(StoreError::Invalid(format!("group {} exists", g.id)));
        }
        if self.group_by_name(&g.name)?.is_some() {
            return Err(StoreError::Invalid(format!(
                "group name {:?} exists",
                g.name
            )));
        }
        let parent = g.parent.unwrap_or(groups::ALL_COMPUTERS);
        if self.group(&parent)?.is_none() {
            return Err(StoreError::NotFound(format!("parent group {parent}")));
        }
        self.tree(Tree::Groups)?.insert(g.id.as_bytes(), enc(&g)?)?;
        Ok(g)
    }

    /// Removes a group, its descendant groups, their deployments and computers' assignments
    /// to them, in one transaction. Built-in groups are refused. Returns the removed ids.
    pub fn remove_group(&self, id: &Uuid) -> Result<Vec<Uuid>, StoreError> {
        if is_builtin(id) {
            return Err(StoreError::Invalid(
                "built-in groups cannot be removed".into(),
            ));
        }
        let _w = self.catalog_writer();
        let all = self.groups()?;
        if !all.iter().any(|g| g.id == *id) {
            return Err(StoreError::NotFound(format!("group {id}")));
        }
        let mut doomed: BTreeSet<Uuid> = BTreeSet::from([*id]);
        loop {
            let before = doomed.len();
            for g in &all {
                if g.parent.is_some_and(|p| doomed.contains(&p)) {
                    doomed.insert(g.id);
                }
            }
            if doomed.len() == before {
                break;
            }
        }
        let deployments = self.deployments()?;
        let computers = self.computers()?;
        self.txn(|tx| {
            let log = DepLog::start(tx)?;
            drop_groups(tx, &log, &doomed, &deployments, &computers)?;
            log.finish(tx)
        })?;
        Ok(doomed.into_iter().collect())
    }
}

/// Removes groups `doomed`, the deployments targeting them and computers' assignments to them.
pub(super) fn drop_groups(
    tx: &Tx<'_>,
    log: &DepLog,
    doomed: &BTreeSet<Uuid>,
    deployments: &[Deployment],
    computers: &[Computer],
) -> TxResult<()> {
    if doomed.iter().any(is_builtin) {
        return Err(abort(StoreError::Invalid(
            "built-in groups cannot be removed".into(),
        )));
    }
    for id in doomed {
        tx.remove(Tree::Groups, id.as_bytes())?;
    }
    for d in deployments.iter().filter(|d| doomed.contains(&d.group)) {
        log.del(tx, &d.id)?;
    }
    for c in computers {
        if c.groups.iter().any(|g| doomed.contains(g)) {
            let mut c = c.clone();
            c.groups.retain(|g| !doomed.contains(g));
            tx.put(Tree::Computers, c.id.as_bytes(), &c)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ApprovalAction;
    use crate::store::testutil::{dep, group, store};

    #[test]
    fn builtin_groups_exist_and_cannot_be_removed() {
        let (_d, s) = store();
        let gs = s.groups().unwrap();
        assert_eq!(gs.len(), 2);
        let un = s.group(&groups::UNASSIGNED_COMPUTERS).unwrap().unwrap();
        assert_eq!(un.parent, Some(groups::ALL_COMPUTERS));
        assert_eq!(
            s.group(&groups::ALL_COMPUTERS).unwrap().unwrap().parent,
            None
        );
        assert!(s.group_by_name("all computers").unwrap().is_some());
        assert!(matches!(
            s.remove_group(&groups::ALL_COMPUTERS),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn removing_a_group_removes_its_subtree_deployments_and_assignments() {
        let (_d, s) = store();
        let g1 = s.add_group(&group(1, None)).unwrap();
        assert_eq!(g1.parent, Some(groups::ALL_COMPUTERS));
        let g2 = s.add_group(&group(2, Some(g1.id))).unwrap();
        let g3 = s.add_group(&group(3, None)).unwrap();
        assert!(s.add_group(&group(1, None)).is_err(), "duplicate id");
        let mut dup_name = group(9, None);
        dup_name.name = "g1".into();
        assert!(s.add_group(&dup_name).is_err(), "duplicate name");
        assert!(matches!(
            s.add_group(&group(4, Some(Uuid::from_u128(77)))),
            Err(StoreError::NotFound(_))
        ));
        s.set_deployment(&dep(1, 1, g2.id, ApprovalAction::Install))
            .unwrap();
        s.set_deployment(&dep(2, 1, g3.id, ApprovalAction::Install))
            .unwrap();
        s.upsert_computer(&Computer {
            id: "c1".into(),
            groups: vec![g2.id, g3.id],
            ..Default::default()
        })
        .unwrap();
        let removed = s.remove_group(&g1.id).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(s.group(&g2.id).unwrap().is_none());
        let deps = s.deployments().unwrap();
        assert_eq!(deps.len(), 1);
        assert_eq!(deps[0].group, g3.id);
        assert_eq!(s.computer("c1").unwrap().unwrap().groups, vec![g3.id]);
    }
}
