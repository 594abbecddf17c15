//! The files of the approved closure: what a server that prefetches must hold so that every
//! client can install what is approved for it. One function, used by the prefetcher and by the
//! admin API's `content status` / `content prefetch`.

use std::collections::{BTreeMap, HashSet};

use uuid::Uuid;

use super::{Store, StoreError};
use crate::model::{ApprovalAction, FileRecord};

impl Store {
    /// Files of the updates approved for Install — not declined, not expired — and of every
    /// update they bundle (`BundledUpdates`, recursively: a bundle has no files of its own; its
    /// members carry them), deduplicated by SHA-1, in SHA-1 order. An approval names a
    /// revision; when that revision is gone the update's latest is used. Bundle members are
    /// taken at their latest revision.
    pub fn approved_closure_files(&self) -> Result<Vec<FileRecord>, StoreError> {
        let mut out: BTreeMap<[u8; 20], FileRecord> = BTreeMap::new();
        let mut seen: HashSet<Uuid> = HashSet::new();
        let mut members: Vec<Uuid> = Vec::new();
        for d in self.deployments()? {
            if d.action != ApprovalAction::Install || self.is_declined(&d.update.update_id)? {
                continue;
            }
            let rev = match self.revision(&d.update)? {
                Some(r) => Some(r),
                None => self.latest_revision(&d.update.update_id)?,
            };
            let Some(r) = rev else { continue };
            if r.record.expired || !seen.insert(d.update.update_id) {
                continue;
            }
            members.extend(r.record.bundled.iter().copied());
            for f in r.record.files {
                out.entry(f.sha1).or_insert(f);
            }
        }
        while let Some(id) = members.pop() {
            if !seen.insert(id) {
                continue;
            }
            let Some(r) = self.latest_revision(&id)? else {
                continue;
            };
            members.extend(r.record.bundled.iter().copied());
            for f in r.record.files {
                out.entry(f.sha1).or_insert(f);
            }
        }
        Ok(out.into_values().collect())
    }
}
