//! The one definition of "the files of approved updates", used by prefetch (sync), `content
//! status` / `content prefetch` (admin) and `export --approved-only` (transfer):
//!
//! - every deployment with action Install whose update is not declined;
//! - its approved revision (the store's latest revision of the update when that one is gone);
//! - the revision's own files, plus the files of every update it bundles, recursively (a
//!   bundle such as a cumulative update, a Defender or an Office bundle has no files of its
//!   own: its members carry them). Members are taken at their latest revision, and are
//!   included even when declined on their own: the approved bundle installs them;
//! - deduplicated by SHA-1, in SHA-1 order.

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use super::{MetadataSnapshot, Store, StoreError};
use crate::model::{ApprovalAction, Deployment, FileRecord, RevisionKey, UpdateRecord};

impl Store {
    /// The files of approved updates (see the module doc), from the live store.
    pub fn approved_files(&self) -> Result<Vec<FileRecord>, StoreError> {
        let latest = |id: &Uuid| Ok(self.latest_revision(id)?.map(|r| r.record));
        collect(
            &self.deployments()?,
            |id| self.is_declined(id),
            |k| Ok(self.revision(k)?.map(|r| r.record)),
            latest,
        )
    }
}

impl MetadataSnapshot {
    /// The files of approved updates (see the module doc), from a snapshot (export).
    pub fn approved_files(&self) -> Vec<FileRecord> {
        let declined: HashSet<Uuid> = self.declined.iter().copied().collect();
        let by_key: HashMap<RevisionKey, &UpdateRecord> = self
            .revisions
            .iter()
            .map(|r| (r.record.key, &r.record))
            .collect();
        let mut latest: HashMap<Uuid, &UpdateRecord> = HashMap::new();
        for r in &self.revisions {
            let e = latest.entry(r.record.key.update_id).or_insert(&r.record);
            if r.record.key.revision > e.key.revision {
                *e = &r.record;
            }
        }
        let found = collect::<std::convert::Infallible>(
            &self.deployments,
            |id| Ok(declined.contains(id)),
            |k| Ok(by_key.get(k).map(|r| (*r).clone())),
            |id| Ok(latest.get(id).map(|r| (*r).clone())),
        );
        match found {
            Ok(files) => files,
            Err(never) => match never {},
        }
    }
}

/// The definition, over any source of records.
fn collect<E>(
    deployments: &[Deployment],
    is_declined: impl Fn(&Uuid) -> Result<bool, E>,
    revision: impl Fn(&RevisionKey) -> Result<Option<UpdateRecord>, E>,
    latest: impl Fn(&Uuid) -> Result<Option<UpdateRecord>, E>,
) -> Result<Vec<FileRecord>, E> {
    let mut todo: Vec<UpdateRecord> = Vec::new();
    for d in deployments {
        if d.action != ApprovalAction::Install || is_declined(&d.update.update_id)? {
            continue;
        }
        let rec = match revision(&d.update)? {
            Some(r) => Some(r),
            None => latest(&d.update.update_id)?,
        };
        todo.extend(rec);
    }
    let mut out: BTreeMap<[u8; 20], FileRecord> = BTreeMap::new();
    let mut expanded: HashSet<RevisionKey> = HashSet::new();
    while let Some(r) = todo.pop() {
        if !expanded.insert(r.key) {
            continue;
        }
        for m in &r.bundled {
            todo.extend(latest(m)?);
        }
        for f in r.files {
            out.entry(f.sha1).or_insert(f);
        }
    }
    Ok(out.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{groups, UpdateKind};
    use crate::store::NewRevision;
    use time::OffsetDateTime;

    fn file(n: u8) -> FileRecord {
        FileRecord {
            name: format!("f{n}.cab"),
            size: 100 + u64::from(n),
            sha1: [n; 20],
            sha256: Some([n; 32]),
            upstream_url: None,
            patching_type: None,
        }
    }

    fn rec(id: u128, rev: u32, files: &[u8], bundled: &[u128]) -> NewRevision {
        NewRevision {
            record: UpdateRecord {
                key: RevisionKey::new(Uuid::from_u128(id), rev),
                kind: UpdateKind::Software,
                category_type: None,
                title: format!("u{id}"),
                kb: None,
                classification: None,
                products: vec![],
                prerequisites: vec![],
                bundled: bundled.iter().map(|b| Uuid::from_u128(*b)).collect(),
                supersedes: vec![],
                eula_id: None,
                files: files.iter().map(|n| file(*n)).collect(),
                expired: false,
                creation_date: None,
            },
            xml: "<Update/>".into(),
        }
    }

    fn dep(n: u128, id: u128, rev: u32, action: ApprovalAction) -> Deployment {
        Deployment {
            id: Uuid::from_u128(0xd000 + n),
            update: RevisionKey::new(Uuid::from_u128(id), rev),
            group: groups::ALL_COMPUTERS,
            action,
            deadline: None,
            last_change: OffsetDateTime::UNIX_EPOCH,
            admin_name: "t".into(),
            is_assigned: true,
            download_priority: 1,
        }
    }

    /// Expected answers written out by hand from the fixture below, not computed.
    #[test]
    fn install_approvals_not_declined_with_nested_bundle_members() {
        let (_d, store) = crate::store::testutil::store();
        store
            .commit_batch(
                &[
                    // 1: plain update, approved (revision 1 stored; revision 2 too).
                    rec(1, 1, &[1], &[]),
                    rec(1, 2, &[12], &[]),
                    // 2: bundle without files -> 3 (files 3) -> 4 (files 4, nested bundle).
                    rec(2, 1, &[], &[3]),
                    rec(3, 1, &[3], &[4]),
                    rec(4, 1, &[4], &[]),
                    // 5: approved, then declined.
                    rec(5, 1, &[5], &[]),
                    // 6: approved for Scan only.
                    rec(6, 1, &[6], &[]),
                    // 7: never approved; bundles 3 (not reachable from an approval).
                    rec(7, 1, &[7], &[3]),
                    // 8: approved at revision 1, only revision 3 stored.
                    rec(8, 3, &[8], &[]),
                ],
                &[],
                None,
            )
            .unwrap();
        // As a replica gets them from upstream: approvals and declines side by side.
        store
            .apply_upstream_deployments(
                &crate::store::UpstreamDeployments {
                    groups: store.groups().unwrap(),
                    deployments: vec![
                        dep(1, 1, 1, ApprovalAction::Install),
                        dep(2, 2, 1, ApprovalAction::Install),
                        dep(5, 5, 1, ApprovalAction::Install),
                        dep(6, 6, 1, ApprovalAction::Scan),
                        dep(8, 8, 1, ApprovalAction::Install),
                    ],
                    dead_deployments: vec![],
                    replace_all_deployments: true,
                    hidden_updates: vec![Uuid::from_u128(5)],
                    accepted_eulas: vec![],
                },
                None,
            )
            .unwrap();
        assert_eq!(store.deployments_of(&Uuid::from_u128(5)).unwrap().len(), 1);
        assert!(store.is_declined(&Uuid::from_u128(5)).unwrap());
        let got: Vec<u8> = store
            .approved_files()
            .unwrap()
            .iter()
            .map(|f| f.sha1[0])
            .collect();
        // 1 (the approved revision, not 12), 3 and 4 (members of bundle 2, nested), 8 (the
        // latest revision stands in for the missing approved one).
        assert_eq!(got, vec![1, 3, 4, 8]);
        // The snapshot gives the same answer.
        let snap: Vec<u8> = store
            .snapshot()
            .unwrap()
            .approved_files()
            .iter()
            .map(|f| f.sha1[0])
            .collect();
        assert_eq!(snap, vec![1, 3, 4, 8]);
    }
}
