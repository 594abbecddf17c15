//! Export/import of all metadata as one plain serde structure ([`MetadataSnapshot`]):
//! revisions with their XML, the content index, groups, deployments, declines, accepted EULAs.
//! Computers and their events are site-local and never exported.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::approvals::replace_set;
use super::deployment_log::DepLog;
use super::schema::{self, dec, enc, Tree};
use super::updates::{insert_in_tx, prepare, remove_in_tx};
use super::{Store, StoreError, SyncState};
use crate::model::{groups, Deployment, FileRecord, RevisionKey, TargetGroup, UpdateRecord};

/// Version of the [`MetadataSnapshot`] layout.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// One revision in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRevision {
    /// Indexed fields.
    pub record: UpdateRecord,
    /// Full update XML.
    pub xml: String,
}

/// All exportable metadata (or, with `since`, what changed after a high-water mark).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataSnapshot {
    /// [`SNAPSHOT_FORMAT`].
    pub format: u32,
    /// The exporting server's id.
    pub server_id: Uuid,
    /// The exporter's [`Store::next_local_id`] when taken: pass it as `since` for the next
    /// incremental snapshot (an export anchor).
    pub high_water: u32,
    /// For an incremental snapshot, the high-water mark it starts from.
    pub since: Option<u32>,
    /// Revisions (all, or inserted since `since`).
    pub revisions: Vec<SnapshotRevision>,
    /// Revisions removed since `since` (empty for a full snapshot).
    pub removed: Vec<RevisionKey>,
    /// Content index entries (all, or those of `revisions`).
    pub files: Vec<FileRecord>,
    /// All target groups.
    pub groups: Vec<TargetGroup>,
    /// All deployments.
    pub deployments: Vec<Deployment>,
    /// All declined update ids.
    pub declined: Vec<Uuid>,
    /// All accepted EULA ids.
    pub accepted_eulas: Vec<Uuid>,
    /// The exporter's sync state (informational: anchors of the source).
    pub sync_state: SyncState,
}

/// How [`Store::apply_snapshot`] treats what the store already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyMode {
    /// The store ends with exactly the snapshot's revisions and content index.
    Replace,
    /// Adds the snapshot's revisions and files, removes its `removed` (an incremental import).
    Merge,
}

impl Store {
    /// A full snapshot of all exportable metadata, consistent (writers wait while it is taken).
    pub fn snapshot(&self) -> Result<MetadataSnapshot, StoreError> {
        self.snapshot_inner(None)
    }

    /// Only what changed after the high-water mark `since` (an earlier snapshot's
    /// `high_water`): revisions first inserted after it (local id ≥ `since`), revisions
    /// removed after it, and their files. Approval state is always complete.
    pub fn snapshot_since(&self, since: u32) -> Result<MetadataSnapshot, StoreError> {
        self.snapshot_inner(Some(since))
    }

    fn snapshot_inner(&self, since: Option<u32>) -> Result<MetadataSnapshot, StoreError> {
        let _w = self.writer();
        let mut revisions = Vec::new();
        for kv in self.tree(Tree::Revisions)?.iter() {
            let (k, v) = kv?;
            let row = super::updates::decode_row(&v)?;
            if since.is_some_and(|s| row.local_id < s) {
                continue;
            }
            let xml = match self.tree(Tree::Xml)?.get(&k)? {
                Some(x) => schema::decompress(&x)?,
                None => {
                    return Err(schema::corrupt(
                        "xml",
                        format!("missing for {}", row.record.key),
                    ))
                }
            };
            revisions.push(SnapshotRevision {
                record: row.record,
                xml,
            });
        }
        let files = match since {
            None => self
                .tree(Tree::Content)?
                .iter()
                .values()
                .map(|v| dec("content", &v?))
                .collect::<Result<Vec<FileRecord>, _>>()?,
            Some(_) => {
                let mut m = BTreeMap::new();
                for f in revisions.iter().flat_map(|r| &r.record.files) {
                    m.insert(f.sha1, f.clone());
                }
                m.into_values().collect()
            }
        };
        Ok(MetadataSnapshot {
            format: SNAPSHOT_FORMAT,
            server_id: self.server_id()?,
            high_water: self.next_local_id()?,
            since,
            revisions,
            removed: match since {
                Some(s) => self.removed_since(s)?,
                None => Vec::new(),
            },
            files,
            groups: self.groups()?,
            deployments: self.deployments()?,
            declined: self.declined_updates()?,
            accepted_eulas: self.accepted_eulas()?,
            sync_state: self.sync_state()?,
        })
    }

    /// Applies a snapshot in ONE transaction (all or nothing), with `state` as the new sync
    /// state when given. Revisions already stored keep their local ids; new ones get new ids
    /// from this store's counter. Groups, deployments, declines and EULAs become the
    /// snapshot's (built-in groups kept; computers' assignments to vanished groups dropped).
    /// The whole snapshot is held in memory and in one transaction: size it accordingly.
    pub fn apply_snapshot(
        &self,
        snap: &MetadataSnapshot,
        mode: ApplyMode,
        state: Option<&SyncState>,
    ) -> Result<(), StoreError> {
        if snap.format != SNAPSHOT_FORMAT {
            return Err(StoreError::Invalid(format!(
                "snapshot format {} (this build reads {SNAPSHOT_FORMAT})",
                snap.format
            )));
        }
        let prepared = prepare(snap.revisions.iter().map(|r| (&r.record, r.xml.as_str())))?;
        let files = snap
            .files
            .iter()
            .map(|f| Ok((f.sha1, enc(f)?)))
            .collect::<Result<BTreeMap<_, _>, StoreError>>()?;
        let state = state.map(enc).transpose()?;
        let _w = self.catalog_writer();

        // Final revision set → doomed keys and the latest index of every touched update.
        let existing: BTreeSet<RevisionKey> = self.revision_keys()?.into_iter().collect();
        let incoming: BTreeSet<RevisionKey> = snap.revisions.iter().map(|r| r.record.key).collect();
        let doomed: BTreeSet<RevisionKey> = match mode {
            ApplyMode::Replace => existing.difference(&incoming).copied().collect(),
            ApplyMode::Merge => snap
                .removed
                .iter()
                .filter(|k| existing.contains(k) && !incoming.contains(k))
                .copied()
                .collect(),
        };
        let touched: BTreeSet<Uuid> = doomed
            .iter()
            .chain(&incoming)
            .map(|k| k.update_id)
            .collect();
        let mut latest: BTreeMap<Uuid, Option<u32>> = touched.iter().map(|u| (*u, None)).collect();
        for k in existing.difference(&doomed).chain(&incoming) {
            if let Some(l) = latest.get_mut(&k.update_id) {
                *l = Some(l.map_or(k.revision, |r| r.max(k.revision)));
            }
        }
        let stale_files: Vec<sled::IVec> = match mode {
            ApplyMode::Replace => self
                .tree(Tree::Content)?
                .iter()
                .keys()
                .filter(|k| {
                    k.as_ref().map_or(true, |k| {
                        <[u8; 20]>::try_from(&k[..]).map_or(true, |a| !files.contains_key(&a))
                    })
                })
                .collect::<Result<_, _>>()?,
            ApplyMode::Merge => Vec::new(),
        };

        // Approval state, replaced whole.
        let mut new_groups = snap.groups.clone();
        for g in &mut new_groups {
            if g.parent == Some(Uuid::nil()) || g.id == groups::ALL_COMPUTERS {
                g.parent = None;
            }
        }
        let keep: BTreeSet<Uuid> = new_groups.iter().map(|g| g.id).collect();
        let old_groups = self.groups()?;
        let gone_groups: BTreeSet<Uuid> = old_groups
            .iter()
            .map(|g| g.id)
            .filter(|id| {
                !keep.contains(id)
                    && *id != groups::ALL_COMPUTERS
                    && *id != groups::UNASSIGNED_COMPUTERS
            })
            .collect();
        let old_deployments = self.deployments()?;
        let new_ids: BTreeSet<Uuid> = snap.deployments.iter().map(|d| d.id).collect();
        let computers = self.computers()?;
        let old_declined = self.declined_updates()?;
        let old_eulas = self.accepted_eulas()?;

        self.txn(|tx| {
            insert_in_tx(tx, &prepared)?;
            remove_in_tx(tx, &doomed, &latest)?;
            for k in &stale_files {
                tx.remove(Tree::Content, k)?;
            }
            for (sha1, v) in &files {
                tx.put_raw(Tree::Content, sha1, v)?;
            }
            for id in &gone_groups {
                tx.remove(Tree::Groups, id.as_bytes())?;
            }
            for g in &new_groups {
                tx.put(Tree::Groups, g.id.as_bytes(), g)?;
            }
            for c in computers
                .iter()
                .filter(|c| c.groups.iter().any(|g| gone_groups.contains(g)))
            {
                let mut c = c.clone();
                c.groups.retain(|g| !gone_groups.contains(g));
                tx.put(Tree::Computers, c.id.as_bytes(), &c)?;
            }
            let log = DepLog::start(tx)?;
            for d in old_deployments.iter().filter(|d| !new_ids.contains(&d.id)) {
                log.del(tx, &d.id)?;
            }
            for d in snap
                .deployments
                .iter()
                .filter(|d| !old_deployments.contains(d))
            {
                log.put(tx, d)?;
            }
            log.finish(tx)?;
            replace_set(tx, Tree::Declined, &old_declined, &snap.declined)?;
            replace_set(tx, Tree::Eulas, &old_eulas, &snap.accepted_eulas)?;
            if let Some(s) = &state {
                tx.put_raw(Tree::Sync, schema::SYNC_STATE, s)?;
            }
            Ok(())
        })?;
        tracing::info!(
            revisions = snap.revisions.len(),
            removed = doomed.len(),
            ?mode,
            "snapshot applied"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ApprovalAction;
    use crate::store::testutil::{revision, store, uid};
    use time::OffsetDateTime;

    fn seed(s: &Store) {
        s.commit_batch(&[revision(1, 1), revision(1, 2), revision(2, 1)], &[], None)
            .unwrap();
        let g = s
            .add_group(&TargetGroup {
                id: Uuid::from_u128(0x77),
                name: "Kiosks".into(),
                parent: None,
            })
            .unwrap();
        s.set_deployment(&Deployment {
            id: Uuid::from_u128(0xd1),
            update: revision(1, 2).record.key,
            group: g.id,
            action: ApprovalAction::Install,
            deadline: None,
            last_change: OffsetDateTime::UNIX_EPOCH,
            admin_name: "admin".into(),
            is_assigned: true,
            download_priority: 1,
        })
        .unwrap();
        s.decline(&uid(2)).unwrap();
        s.accept_eula(&uid(9)).unwrap();
    }

    #[test]
    fn full_snapshot_round_trips_through_json_into_another_store() {
        let (_a, a) = store();
        seed(&a);
        let snap = a.snapshot().unwrap();
        assert_eq!(snap.revisions.len(), 3);
        assert_eq!(snap.files.len(), 3);
        let json = serde_json::to_vec(&snap).unwrap();
        let snap: MetadataSnapshot = serde_json::from_slice(&json).unwrap();

        let (_b, b) = store();
        b.commit_batch(&[revision(5, 1)], &[], None).unwrap(); // replaced away
        b.apply_snapshot(&snap, ApplyMode::Replace, None).unwrap();
        assert_eq!(b.revision_keys().unwrap(), a.revision_keys().unwrap());
        for k in a.revision_keys().unwrap() {
            assert_eq!(b.revision_xml(&k).unwrap(), a.revision_xml(&k).unwrap());
        }
        assert_eq!(
            b.latest_revision(&uid(1))
                .unwrap()
                .unwrap()
                .record
                .key
                .revision,
            2
        );
        assert_eq!(b.latest_revision(&uid(5)).unwrap(), None);
        assert!(b
            .expected_file(&revision(5, 1).record.files[0].sha1)
            .unwrap()
            .is_none());
        assert_eq!(b.groups().unwrap(), a.groups().unwrap());
        assert_eq!(b.deployments().unwrap(), a.deployments().unwrap());
        assert_eq!(b.declined_updates().unwrap(), vec![uid(2)]);
        assert_eq!(b.accepted_eulas().unwrap(), vec![uid(9)]);
        // b's own id counter: the replaced revision's id 1 is not reused.
        assert!(b
            .revisions_of(&uid(1))
            .unwrap()
            .iter()
            .all(|r| r.local_id > 1));
    }

    #[test]
    fn incremental_snapshot_carries_only_the_delta() {
        let (_a, a) = store();
        seed(&a);
        let (_b, b) = store();
        let full = a.snapshot().unwrap();
        b.apply_snapshot(&full, ApplyMode::Replace, None).unwrap();

        a.commit_batch(&[revision(3, 1)], &[], None).unwrap();
        a.remove_revisions(&[revision(1, 2).record.key]).unwrap();
        let inc = a.snapshot_since(full.high_water).unwrap();
        assert_eq!(inc.since, Some(full.high_water));
        assert_eq!(inc.revisions.len(), 1);
        assert_eq!(inc.revisions[0].record.key, revision(3, 1).record.key);
        assert_eq!(inc.removed, vec![revision(1, 2).record.key]);
        assert_eq!(inc.files.len(), 1);

        b.apply_snapshot(&inc, ApplyMode::Merge, None).unwrap();
        assert_eq!(b.revision_keys().unwrap(), a.revision_keys().unwrap());
        assert_eq!(
            b.latest_revision(&uid(1))
                .unwrap()
                .unwrap()
                .record
                .key
                .revision,
            1
        );
        // Merge never drops content index entries.
        assert!(b
            .expected_file(&revision(1, 2).record.files[0].sha1)
            .unwrap()
            .is_some());

        let mut bad = inc.clone();
        bad.format = 99;
        assert!(matches!(
            b.apply_snapshot(&bad, ApplyMode::Merge, None),
            Err(StoreError::Invalid(_))
        ));
    }
}
