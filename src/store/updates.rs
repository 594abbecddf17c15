//! Update revisions: records + compressed XML keyed by (UpdateID, RevisionNumber), the
//! latest-revision index, local revision ids (and their reverse map), and `commit_batch`, the
//! one transaction that makes a sync batch and its anchors visible together.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::schema::{self, dec, enc, rev_key, Tree};
use super::{abort, Store, StoreError, SyncState, Tx, TxResult};
use crate::model::{FileRecord, RevisionKey, UpdateRecord};

/// A revision to insert: its indexed fields and its full update XML (as received upstream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRevision {
    /// The indexed fields (its `key` is the revision's identity).
    pub record: UpdateRecord,
    /// The full update XML.
    pub xml: String,
}

/// A stored revision: its local revision id (the MS-WUSP `UpdateInfo/ID`) and its record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRevision {
    /// Local revision id: assigned at first insert, never reused, stable across re-inserts.
    pub local_id: u32,
    /// The indexed fields.
    pub record: UpdateRecord,
}

/// One revision prepared outside the transaction (encoding and compression are not retried).
pub(super) struct Prepared<'a> {
    key: [u8; 20],
    record: &'a UpdateRecord,
    /// The record's JSON (the row minus its local id prefix).
    json: Vec<u8>,
    xml: Vec<u8>,
}

/// A `revisions` row: local id (u32 BE) ‖ record JSON; the id is readable without parsing.
fn encode_row(local_id: u32, json: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + json.len());
    v.extend_from_slice(&local_id.to_be_bytes());
    v.extend_from_slice(json);
    v
}

/// The local id of a `revisions` row.
fn row_local_id(row: &[u8]) -> Result<u32, StoreError> {
    schema::parse_u32("revisions", row.get(..4).unwrap_or_default())
}

/// Decodes a `revisions` row.
pub(super) fn decode_row(row: &[u8]) -> Result<StoredRevision, StoreError> {
    Ok(StoredRevision {
        local_id: row_local_id(row)?,
        record: dec("revisions", row.get(4..).unwrap_or_default())?,
    })
}

/// Compresses the XML of each revision.
pub(super) fn prepare<'a>(
    revs: impl Iterator<Item = (&'a UpdateRecord, &'a str)>,
) -> Result<Vec<Prepared<'a>>, StoreError> {
    let mut z = schema::Compressor::new();
    revs.map(|(record, xml)| {
        Ok(Prepared {
            key: rev_key(&record.key),
            record,
            json: enc(record)?,
            xml: z.compress(xml)?,
        })
    })
    .collect()
}

/// Inserts prepared revisions inside a transaction: keeps existing local ids, assigns new
/// ones from the counter (and advances it), fills the reverse map, moves `latest` forward.
pub(super) fn insert_in_tx(tx: &Tx<'_>, prepared: &[Prepared<'_>]) -> TxResult<Vec<u32>> {
    let mut next = next_local_id(tx)?;
    let mut ids = Vec::with_capacity(prepared.len());
    for p in prepared {
        let existing = tx.get_raw(Tree::Revisions, &p.key)?;
        let local_id = match existing {
            Some(row) => {
                // Re-inserted: a cached wire form may describe the old XML.
                tx.remove(Tree::WireBlobs, &p.key)?;
                row_local_id(&row).map_err(abort)?
            }
            None => {
                let id = next;
                next = next.checked_add(1).ok_or_else(|| {
                    abort(StoreError::Invalid("local revision ids exhausted".into()))
                })?;
                id
            }
        };
        tx.put_raw(Tree::Revisions, &p.key, &encode_row(local_id, &p.json))?;
        tx.put_raw(Tree::Xml, &p.key, &p.xml)?;
        tx.put_raw(Tree::LocalIds, &local_id.to_be_bytes(), &p.key)?;
        let uid = p.record.key.update_id;
        let newer = match tx.get_raw(Tree::Latest, uid.as_bytes())? {
            Some(v) => schema::parse_u32("latest", &v).map_err(abort)? <= p.record.key.revision,
            None => true,
        };
        if newer {
            tx.put_raw(
                Tree::Latest,
                uid.as_bytes(),
                &p.record.key.revision.to_be_bytes(),
            )?;
        }
        ids.push(local_id);
    }
    tx.put_raw(Tree::Meta, schema::META_NEXT_LOCAL_ID, &next.to_be_bytes())?;
    Ok(ids)
}

impl Store {
    /// Inserts a batch of revisions, fills the content index with their files (plus `files`,
    /// e.g. files known from elsewhere) and, when given, replaces the [`SyncState`]: all in ONE
    /// transaction. Returns the local ids, in the order of `revisions`.
    ///
    /// A revision already stored keeps its local id (record and XML are overwritten). The
    /// latest index moves only forward. A sync must pass the anchor that covers a phase only
    /// with that phase's LAST batch (intermediate batches pass `None`), so an anchor is never
    /// visible without all of its records.
    pub fn commit_batch(
        &self,
        revisions: &[NewRevision],
        files: &[FileRecord],
        state: Option<&SyncState>,
    ) -> Result<Vec<u32>, StoreError> {
        let prepared = prepare(revisions.iter().map(|r| (&r.record, r.xml.as_str())))?;
        let mut content: BTreeMap<[u8; 20], Vec<u8>> = BTreeMap::new();
        for f in revisions
            .iter()
            .flat_map(|r| r.record.files.iter())
            .chain(files)
        {
            content.insert(f.sha1, enc(f)?);
        }
        let state = state.map(enc).transpose()?;

        let _w = self.catalog_writer();
        let ids = self.txn(|tx| {
            let ids = insert_in_tx(tx, &prepared)?;
            for (sha1, v) in &content {
                tx.put_raw(Tree::Content, sha1, v)?;
            }
            if let Some(s) = &state {
                tx.put_raw(Tree::Sync, schema::SYNC_STATE, s)?;
            }
            Ok(ids)
        })?;
        tracing::debug!(
            revisions = ids.len(),
            anchors = state.is_some(),
            "batch committed"
        );
        Ok(ids)
    }

    /// Removes revisions (e.g. expired upstream) in one transaction: record, XML, local id map;
    /// the latest index falls back to the newest remaining revision. Each removal is
    /// tombstoned under a fresh number from the id counter (see [`Store::removed_since`]);
    /// local ids are never reused. The content index and
    /// deployments are left alone (cleanup's business). Returns how many existed.
    pub fn remove_revisions(&self, keys: &[RevisionKey]) -> Result<usize, StoreError> {
        let _w = self.catalog_writer();
        // New latest per touched update, computed from a scan under the writer lock.
        let doomed: std::collections::BTreeSet<RevisionKey> = keys.iter().copied().collect();
        let mut latest: BTreeMap<Uuid, Option<u32>> = BTreeMap::new();
        for k in &doomed {
            if latest.contains_key(&k.update_id) {
                continue;
            }
            let mut best = None;
            for kv in self
                .tree(Tree::Revisions)?
                .scan_prefix(k.update_id.as_bytes())
            {
                let (key, _) = kv?;
                let rk = schema::parse_rev_key("revisions", &key)?;
                if !doomed.contains(&rk) {
                    best = Some(rk.revision);
                }
            }
            latest.insert(k.update_id, best);
        }
        self.txn(|tx| remove_in_tx(tx, &doomed, &latest))
    }

    /// The stored revision, if any.
    pub fn revision(&self, key: &RevisionKey) -> Result<Option<StoredRevision>, StoreError> {
        match self.tree(Tree::Revisions)?.get(rev_key(key))? {
            Some(v) => Ok(Some(decode_row(&v)?)),
            None => Ok(None),
        }
    }

    /// The full update XML of a stored revision (decompressed).
    pub fn revision_xml(&self, key: &RevisionKey) -> Result<Option<String>, StoreError> {
        match self.tree(Tree::Xml)?.get(rev_key(key))? {
            Some(v) => Ok(Some(schema::decompress(&v)?)),
            None => Ok(None),
        }
    }

    /// The revision key behind a local revision id (MS-WUSP revision ids).
    pub fn revision_key_by_local_id(
        &self,
        local_id: u32,
    ) -> Result<Option<RevisionKey>, StoreError> {
        match self.tree(Tree::LocalIds)?.get(local_id.to_be_bytes())? {
            Some(v) => Ok(Some(schema::parse_rev_key("local_ids", &v)?)),
            None => Ok(None),
        }
    }

    /// The stored revision behind a local revision id.
    pub fn revision_by_local_id(
        &self,
        local_id: u32,
    ) -> Result<Option<StoredRevision>, StoreError> {
        match self.revision_key_by_local_id(local_id)? {
            Some(k) => self.revision(&k),
            None => Ok(None),
        }
    }

    /// The local revision id of a stored revision.
    pub fn local_id(&self, key: &RevisionKey) -> Result<Option<u32>, StoreError> {
        match self.tree(Tree::Revisions)?.get(rev_key(key))? {
            Some(v) => Ok(Some(row_local_id(&v)?)),
            None => Ok(None),
        }
    }

    /// The newest stored revision of an update.
    pub fn latest_revision(&self, update_id: &Uuid) -> Result<Option<StoredRevision>, StoreError> {
        match self.tree(Tree::Latest)?.get(update_id.as_bytes())? {
            Some(v) => {
                let rev = schema::parse_u32("latest", &v)?;
                self.revision(&RevisionKey::new(*update_id, rev))
            }
            None => Ok(None),
        }
    }

    /// Number of stored updates (distinct UpdateIDs: keys of the latest index).
    pub fn update_count(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for k in self.tree(Tree::Latest)?.iter().keys() {
            k?;
            n += 1;
        }
        Ok(n)
    }

    /// Whether any revision of the update is stored (an index lookup; decodes nothing).
    pub fn has_update(&self, update_id: &Uuid) -> Result<bool, StoreError> {
        Ok(self
            .tree(Tree::Latest)?
            .contains_key(update_id.as_bytes())?)
    }

    /// The newest revision of every stored update, in UpdateID byte order (one sequential
    /// scan; use `spawn_blocking` from async code).
    pub fn latest_revisions(&self) -> Result<Vec<StoredRevision>, StoreError> {
        let mut out: Vec<StoredRevision> = Vec::new();
        for kv in self.tree(Tree::Revisions)?.iter() {
            let (_, v) = kv?;
            let row = decode_row(&v)?;
            match out.last_mut() {
                // Keys sort by (UpdateID, revision): a same-update successor is newer.
                Some(last) if last.record.key.update_id == row.record.key.update_id => *last = row,
                _ => out.push(row),
            }
        }
        Ok(out)
    }

    /// Every stored revision of one update, oldest first.
    pub fn revisions_of(&self, update_id: &Uuid) -> Result<Vec<StoredRevision>, StoreError> {
        self.tree(Tree::Revisions)?
            .scan_prefix(update_id.as_bytes())
            .map(|kv| decode_row(&kv?.1))
            .collect()
    }

    /// Every stored revision key (for the upstream side's GetRevisionIdList), in key order.
    pub fn revision_keys(&self) -> Result<Vec<RevisionKey>, StoreError> {
        self.tree(Tree::Revisions)?
            .iter()
            .keys()
            .map(|k| schema::parse_rev_key("revisions", &k?))
            .collect()
    }

    /// Revisions first inserted at or after the high-water mark `since`, with their local ids,
    /// in local id order (the upstream side's GetRevisionIdList delta; cheap: no records read).
    pub fn revision_keys_since(&self, since: u32) -> Result<Vec<(u32, RevisionKey)>, StoreError> {
        self.tree(Tree::LocalIds)?
            .range(since.to_be_bytes()..)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((
                    schema::parse_u32("local_ids", &k)?,
                    schema::parse_rev_key("local_ids", &v)?,
                ))
            })
            .collect()
    }

    /// Number of stored revisions (a scan).
    pub fn revision_count(&self) -> usize {
        self.tree(Tree::Revisions).map_or(0, |t| t.len())
    }

    /// The subset of `keys` not stored (what a resumed sync still has to fetch), in input order.
    pub fn missing_revisions(&self, keys: &[RevisionKey]) -> Result<Vec<RevisionKey>, StoreError> {
        let t = self.tree(Tree::Revisions)?;
        let mut out = Vec::new();
        for k in keys {
            if !t.contains_key(rev_key(k))? {
                out.push(*k);
            }
        }
        Ok(out)
    }

    /// The next local id to be assigned: a high-water mark. Revisions with a local id at or
    /// above a mark taken earlier were inserted after it (incremental export).
    pub fn next_local_id(&self) -> Result<u32, StoreError> {
        match self.tree(Tree::Meta)?.get(schema::META_NEXT_LOCAL_ID)? {
            Some(v) => schema::parse_u32("meta", &v),
            None => Ok(1),
        }
    }

    /// Revisions removed after the high-water mark `since` was taken (each removal takes a
    /// number from the local id counter).
    pub fn removed_since(&self, since: u32) -> Result<Vec<RevisionKey>, StoreError> {
        self.tree(Tree::Removed)?
            .range(since.to_be_bytes()..)
            .values()
            .map(|v| schema::parse_rev_key("removed", &v?))
            .collect()
    }
}

/// Reads the id counter inside a transaction.
pub(super) fn next_local_id(tx: &Tx<'_>) -> TxResult<u32> {
    match tx.get_raw(Tree::Meta, schema::META_NEXT_LOCAL_ID)? {
        Some(v) => Ok(schema::parse_u32("meta", &v).map_err(abort)?),
        None => Ok(1),
    }
}

/// Removes `doomed` revisions and sets the precomputed latest index, inside a transaction.
pub(super) fn remove_in_tx(
    tx: &Tx<'_>,
    doomed: &std::collections::BTreeSet<RevisionKey>,
    latest: &BTreeMap<Uuid, Option<u32>>,
) -> TxResult<usize> {
    let mut n = 0;
    let mut next = next_local_id(tx)?;
    for k in doomed {
        let key = rev_key(k);
        let Some(row) = tx.get_raw(Tree::Revisions, &key)? else {
            continue;
        };
        let local_id = row_local_id(&row).map_err(abort)?;
        n += 1;
        tx.remove(Tree::Revisions, &key)?;
        tx.remove(Tree::Xml, &key)?;
        tx.remove(Tree::WireBlobs, &key)?;
        tx.remove(Tree::LocalIds, &local_id.to_be_bytes())?;
        // The tombstone takes a number from the id counter, so it sorts after any earlier
        // high-water mark (removed_since).
        tx.put_raw(Tree::Removed, &next.to_be_bytes(), &key)?;
        next = next
            .checked_add(1)
            .ok_or_else(|| abort(StoreError::Invalid("local revision ids exhausted".into())))?;
    }
    tx.put_raw(Tree::Meta, schema::META_NEXT_LOCAL_ID, &next.to_be_bytes())?;
    for (uid, rev) in latest {
        match rev {
            Some(r) => tx.put_raw(Tree::Latest, uid.as_bytes(), &r.to_be_bytes())?,
            None => {
                tx.remove(Tree::Latest, uid.as_bytes())?;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::{revision, store, uid};

    fn anchored(a: &str) -> SyncState {
        SyncState {
            sync_anchor: Some(a.into()),
            ..Default::default()
        }
    }

    #[test]
    fn commit_batch_stores_everything_with_monotonic_local_ids() {
        let (_d, s) = store();
        let batch = vec![revision(1, 10), revision(2, 20), revision(3, 30)];
        let ids = s.commit_batch(&batch, &[], Some(&anchored("A1"))).unwrap();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(s.next_local_id().unwrap(), 4);
        assert_eq!(s.sync_state().unwrap().sync_anchor.as_deref(), Some("A1"));
        for (r, id) in batch.iter().zip(&ids) {
            let got = s.revision(&r.record.key).unwrap().unwrap();
            assert_eq!((got.local_id, &got.record), (*id, &r.record));
            assert_eq!(s.revision_xml(&r.record.key).unwrap().unwrap(), r.xml);
            assert_eq!(
                s.revision_by_local_id(*id).unwrap().unwrap().record,
                r.record
            );
            let f = &r.record.files[0];
            assert_eq!(s.expected_file(&f.sha1).unwrap().as_ref(), Some(f));
        }
        assert_eq!(s.revision_by_local_id(99).unwrap(), None);
        // Re-inserting keeps the id; a new revision of an update gets a new one.
        let mut again = revision(2, 20);
        again.record.title = "changed".into();
        let ids = s
            .commit_batch(&[again, revision(2, 21)], &[], None)
            .unwrap();
        assert_eq!(ids, vec![2, 4]);
        assert_eq!(
            s.revision_by_local_id(2).unwrap().unwrap().record.title,
            "changed"
        );
        // The anchor is untouched by a batch without state.
        assert_eq!(s.sync_state().unwrap().sync_anchor.as_deref(), Some("A1"));
    }

    #[test]
    fn latest_index_moves_forward_and_agrees_with_the_scan() {
        let (_d, s) = store();
        s.commit_batch(&[revision(1, 5), revision(2, 1)], &[], None)
            .unwrap();
        s.commit_batch(&[revision(1, 3), revision(1, 7)], &[], None)
            .unwrap();
        assert_eq!(
            s.latest_revision(&uid(1))
                .unwrap()
                .unwrap()
                .record
                .key
                .revision,
            7
        );
        assert_eq!(s.revisions_of(&uid(1)).unwrap().len(), 3);
        let all = s.latest_revisions().unwrap();
        assert_eq!(all.len(), 2);
        for r in &all {
            let l = s.latest_revision(&r.record.key.update_id).unwrap().unwrap();
            assert_eq!(&l, r);
        }
        assert_eq!(s.latest_revision(&uid(9)).unwrap(), None);
    }

    #[test]
    fn removal_falls_back_latest_tombstones_and_never_reuses_ids() {
        let (_d, s) = store();
        s.commit_batch(&[revision(1, 1), revision(1, 2), revision(2, 1)], &[], None)
            .unwrap();
        let mark = s.next_local_id().unwrap();
        let k12 = revision(1, 2).record.key;
        let k21 = revision(2, 1).record.key;
        assert_eq!(
            s.remove_revisions(&[k12, k21, revision(7, 7).record.key])
                .unwrap(),
            2
        );
        assert_eq!(
            s.latest_revision(&uid(1))
                .unwrap()
                .unwrap()
                .record
                .key
                .revision,
            1
        );
        assert_eq!(s.latest_revision(&uid(2)).unwrap(), None);
        assert_eq!(s.revision_xml(&k12).unwrap(), None);
        assert_eq!(s.revision_by_local_id(2).unwrap(), None);
        assert_eq!(s.removed_since(mark).unwrap(), vec![k12, k21]);
        assert_eq!(
            s.revision_keys_since(1).unwrap(),
            vec![(1, revision(1, 1).record.key)]
        );
        assert_eq!(
            s.removed_since(mark + 2).unwrap(),
            Vec::<RevisionKey>::new()
        );
        assert_eq!(
            s.missing_revisions(&[k12, revision(1, 1).record.key])
                .unwrap(),
            vec![k12]
        );
        assert_eq!(
            s.next_local_id().unwrap(),
            6,
            "two tombstones numbered 4 and 5"
        );
        // Coming back, it gets a fresh id.
        assert_eq!(
            s.commit_batch(&[revision(1, 2)], &[], None).unwrap(),
            vec![6]
        );
        assert_eq!(s.latest_revision(&uid(1)).unwrap().unwrap().local_id, 6);
        assert_eq!(s.revision_count(), 2);
    }

    #[test]
    fn a_failed_commit_leaves_no_trace() {
        let (_d, s) = store();
        s.commit_batch(&[revision(1, 1)], &[], Some(&anchored("A1")))
            .unwrap();
        // Two ids left before exhaustion: the third new revision aborts the transaction.
        s.tree(Tree::Meta)
            .unwrap()
            .insert(schema::META_NEXT_LOCAL_ID, &(u32::MAX - 1).to_be_bytes())
            .unwrap();
        let batch = vec![revision(2, 1), revision(3, 1), revision(4, 1)];
        let err = s
            .commit_batch(&batch, &[], Some(&anchored("A2")))
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        for r in &batch {
            assert_eq!(s.revision(&r.record.key).unwrap(), None);
            assert_eq!(s.expected_file(&r.record.files[0].sha1).unwrap(), None);
            assert_eq!(s.latest_revision(&r.record.key.update_id).unwrap(), None);
        }
        assert_eq!(s.revision_by_local_id(u32::MAX - 1).unwrap(), None);
        assert_eq!(s.sync_state().unwrap().sync_anchor.as_deref(), Some("A1"));
        assert_eq!(s.next_local_id().unwrap(), u32::MAX - 1);
    }

    /// 5,000 revisions in batches of 100 (set WSUS_EDGE_STORE_BENCH_N for more); prints the
    /// rate for the report, asserts only correctness.
    #[test]
    fn many_small_batches() {
        let n: u128 = std::env::var("WSUS_EDGE_STORE_BENCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5_000);
        let (_d, s) = store();
        let t = std::time::Instant::now();
        for b in 0..n.div_ceil(100) {
            let batch: Vec<_> = (b * 100..((b + 1) * 100).min(n))
                .map(|i| revision(i, 1))
                .collect();
            let st = anchored(&format!("{b}"));
            s.commit_batch(&batch, &[], Some(&st)).unwrap();
        }
        let commit = t.elapsed();
        s.flush().unwrap();
        let flushed = t.elapsed();
        let latest = s.latest_revisions().unwrap();
        let scan = t.elapsed() - flushed;
        eprintln!(
            "store: {n} revisions: commit {:.2?} ({:.0}/s), +flush {:.2?}, latest scan {:.2?}",
            commit,
            n as f64 / commit.as_secs_f64(),
            flushed - commit,
            scan
        );
        assert_eq!(latest.len() as u128, n);
        assert_eq!(s.next_local_id().unwrap() as u128, n + 1);
    }
}
