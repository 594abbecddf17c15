//! GetRevisionIdList: which revisions changed since the downstream's anchor, through its
//! filter (SS §3.1.4.5; INV §9.5 for the observed rules).
//!
//! - `GetConfig=true`: categories and detectoids (no category filter applies).
//! - `GetConfig=false`: software and driver updates filed under ≥1 listed category (product)
//!   AND ≥1 listed classification; neither list → everything; only one list → nothing. The
//!   bundled updates and software prerequisites of a match come with it (a bundle is
//!   useless without its members).
//! - With an anchor, only updates whose newest revision is newer than it, unless a filter
//!   entry the update matched says `Delta=false` (then it is listed again, as WS2025 does).
//! - One revision per update: the newest.

use std::collections::{BTreeMap, HashMap};

use time::OffsetDateTime;
use uuid::Uuid;

use super::{OpError, ServerSyncService};
use crate::model::{RevisionKey, UpdateKind, UpdateRecord};
use crate::store::StoredRevision;
use crate::wire::sss::{GetRevisionIdList, GetRevisionIdListResponse, IdAndDelta};
use crate::wire::Anchor;

/// The filter's category lists as maps id → Delta.
struct Lists {
    categories: Option<HashMap<Uuid, bool>>,
    classifications: Option<HashMap<Uuid, bool>>,
}

fn to_map(v: &Option<Vec<IdAndDelta>>) -> Option<HashMap<Uuid, bool>> {
    v.as_ref()
        .map(|v| v.iter().map(|x| (x.id, x.delta)).collect())
}

impl Lists {
    /// `None` when the record does not pass; `Some(delta)` when it does, `delta` saying whether
    /// the anchor applies to it.
    fn matches(&self, r: &UpdateRecord) -> Option<bool> {
        match (&self.categories, &self.classifications) {
            (None, None) => Some(true),
            (Some(c), Some(k)) => {
                let cd: Vec<bool> = r
                    .products
                    .iter()
                    .filter_map(|p| c.get(p).copied())
                    .collect();
                let kd = r.classification.and_then(|x| k.get(&x).copied());
                match (cd.is_empty(), kd) {
                    (false, Some(kd)) => Some(kd && cd.iter().all(|d| *d)),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

impl ServerSyncService {
    pub(super) fn get_revision_id_list(
        &self,
        r: &GetRevisionIdList,
    ) -> Result<GetRevisionIdListResponse, OpError> {
        self.check_cookie(&r.cookie)?;
        let store = &self.inner.store;
        let f = &r.filter;
        let parsed = match &f.anchor {
            Some(a) => Some(Anchor::parse(a).map_err(|_| OpError::params("filter"))?),
            None => None,
        };
        let mark = parsed.as_ref().map(|a| a.counter);
        // An anchor older than this store was handed out by an earlier one.
        let before_store = match (&parsed, store.created_unix_ms()?) {
            (Some(a), Some(created)) => {
                let t = a.time.assume_utc();
                ((t.unix_timestamp_nanos() / 1_000_000) as i64) < created
            }
            _ => false,
        };
        // The high-water mark, taken before reading: anything inserted later is newer.
        let now_mark = store.next_local_id()?;
        // An anchor beyond anything this store ever numbered was handed out by an earlier
        // store (rebuilt since): "changed since" would silently be nothing. MS-WSUSSS has the
        // answer for that: ServerChanged, and the downstream starts over.
        if before_store || mark.is_some_and(|m| m > now_mark) {
            tracing::warn!(
                anchor = ?f.anchor,
                now_mark,
                "a downstream's anchor is from an earlier store: answering ServerChanged"
            );
            return Err(OpError::new(
                crate::wire::ErrorCode::ServerChanged,
                "the server's revision store was rebuilt",
            ));
        }
        let lists = Lists {
            categories: to_map(&f.categories),
            classifications: to_map(&f.classifications),
        };
        let any_full = lists
            .categories
            .iter()
            .chain(lists.classifications.iter())
            .any(|m| m.values().any(|d| !d));
        // Candidate newest revisions: all of them, or only those touched since the mark.
        let candidates: Vec<StoredRevision> = match mark {
            Some(m) if !any_full => self.changed_since(m, now_mark)?,
            _ => store.latest_revisions()?,
        };
        let newer = |row: &StoredRevision| match mark {
            Some(m) => row.local_id >= m,
            None => true,
        };
        let mut out: BTreeMap<Uuid, RevisionKey> = BTreeMap::new();
        if f.get_config {
            for row in &candidates {
                let k = row.record.kind;
                if matches!(k, UpdateKind::Category | UpdateKind::Detectoid) && newer(row) {
                    out.insert(row.record.key.update_id, row.record.key);
                }
            }
        } else {
            let mut closure: Vec<Uuid> = Vec::new();
            for row in &candidates {
                let rec = &row.record;
                if !matches!(rec.kind, UpdateKind::Software | UpdateKind::Driver) {
                    continue;
                }
                let Some(delta) = lists.matches(rec) else {
                    continue;
                };
                if delta && !newer(row) {
                    continue;
                }
                out.insert(rec.key.update_id, rec.key);
                closure.extend(rec.bundled.iter().copied());
                closure.extend(rec.prerequisite_ids());
            }
            // Bundle members and software prerequisites travel with their parents.
            while let Some(id) = closure.pop() {
                if out.contains_key(&id) {
                    continue;
                }
                let Some(row) = store.latest_revision(&id)? else {
                    continue;
                };
                if matches!(row.record.kind, UpdateKind::Software | UpdateKind::Driver) {
                    out.insert(id, row.record.key);
                    closure.extend(row.record.bundled.iter().copied());
                    closure.extend(row.record.prerequisite_ids());
                }
            }
        }
        Ok(GetRevisionIdListResponse {
            anchor: Anchor::new(now_mark, OffsetDateTime::now_utc()).to_string(),
            new_revisions: out.into_values().collect(),
        })
    }

    /// Newest revisions of the updates that got a revision with local id in `[mark, end)`.
    fn changed_since(&self, mark: u32, end: u32) -> Result<Vec<StoredRevision>, OpError> {
        let store = &self.inner.store;
        let mut ids: Vec<Uuid> = Vec::new();
        for id in mark.max(1)..end {
            if let Some(k) = store.revision_key_by_local_id(id)? {
                ids.push(k.update_id);
            }
        }
        ids.sort();
        ids.dedup();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = store.latest_revision(&id)? {
                out.push(row);
            }
        }
        Ok(out)
    }
}
