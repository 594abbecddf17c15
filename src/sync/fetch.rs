//! GetUpdateData batches (re-asking for what a short answer left out, one transaction per
//! answer, expired revisions removing their update) and the related-revisions step.

use std::collections::HashSet;

use uuid::Uuid;

use super::Syncer;
use crate::model::{RevisionKey, UpdateKind};
use crate::store::{NewRevision, SyncState};
use crate::sync::SyncError;
use crate::wire::sss::{GetRevisionIdList, GetUpdateData, ServerSyncFilter};
use crate::wire::update_xml::parse_update_with;

impl Syncer {
    /// Fetches `keys` not yet stored in batches of ≤ `max`, re-asking for what a short answer
    /// left out; commits each answer in one transaction, the last one with `final_state`
    /// (alone, when nothing was missing). Appends the related ids of what it stored.
    pub(super) async fn fetch(
        &mut self,
        keys: &[RevisionKey],
        max: usize,
        final_state: Option<&SyncState>,
        related: &mut Vec<(Uuid, Option<u32>)>,
    ) -> Result<(), SyncError> {
        let missing = self.store.missing_revisions(keys)?;
        let total = missing.len() as u64;
        let mut done = 0u64;
        self.progress("updates", 0, total);
        let chunks: Vec<Vec<RevisionKey>> = missing.chunks(max).map(<[_]>::to_vec).collect();
        let n_chunks = chunks.len();
        if n_chunks == 0 {
            if let Some(st) = final_state {
                self.store.commit_batch(&[], &[], Some(st))?;
            }
            return Ok(());
        }
        for (i, chunk) in chunks.into_iter().enumerate() {
            let mut pending = chunk;
            while !pending.is_empty() {
                let ids = pending.clone();
                let resp = self
                    .op(|c| GetUpdateData {
                        cookie: c.clone(),
                        update_ids: ids.clone(),
                    })
                    .await?;
                self.summary.update_data_calls += 1;
                let asked: HashSet<RevisionKey> = pending.iter().copied().collect();
                let got: Vec<_> = resp
                    .updates
                    .iter()
                    .filter(|u| asked.contains(&u.id))
                    .collect();
                if got.is_empty() {
                    return Err(SyncError::Protocol(format!(
                        "GetUpdateData returned none of the {} revisions asked",
                        pending.len()
                    )));
                }
                let rest = resp.missing_from(&pending);
                if !rest.is_empty() {
                    tracing::debug!(
                        asked = pending.len(),
                        got = got.len(),
                        "short GetUpdateData answer; asking again for the rest"
                    );
                }
                let mut batch = Vec::with_capacity(got.len());
                let mut expired: Vec<Uuid> = Vec::new();
                for u in got {
                    let xml = u.blob.xml().map_err(|e| SyncError::Update {
                        key: u.id.to_string(),
                        source: e,
                    })?;
                    let cats = &self.categories;
                    let parsed =
                        parse_update_with(&xml, &|id| cats.get(&id).copied()).map_err(|e| {
                            SyncError::Update {
                                key: u.id.to_string(),
                                source: e,
                            }
                        })?;
                    let mut record = parsed.record.clone();
                    record.key = u.id;
                    for f in &mut record.files {
                        if let Some(url) = resp.mu_url(&f.sha1) {
                            f.upstream_url = Some(url.to_string());
                        }
                    }
                    if record.expired {
                        expired.push(record.key.update_id);
                        continue;
                    }
                    if let (UpdateKind::Category, Some(t)) = (record.kind, record.category_type) {
                        self.categories.insert(record.key.update_id, t);
                    }
                    related.extend(parsed.bundled_revisions.iter().copied());
                    related.extend(parsed.related_ids().into_iter().map(|id| (id, None)));
                    batch.push(NewRevision { record, xml });
                }
                if !expired.is_empty() {
                    let mut doomed = Vec::new();
                    for id in &expired {
                        doomed.extend(
                            self.store
                                .revisions_of(id)?
                                .into_iter()
                                .map(|r| r.record.key),
                        );
                    }
                    self.summary.removed += self.store.remove_revisions(&doomed)? as u64;
                }
                let last = i + 1 == n_chunks && rest.is_empty();
                let st = if last { final_state } else { None };
                let store = self.store.clone();
                let st = st.cloned();
                let n = batch.len() + expired.len();
                tokio::task::spawn_blocking(move || store.commit_batch(&batch, &[], st.as_ref()))
                    .await
                    .map_err(|e| SyncError::Protocol(format!("commit task: {e}")))??;
                self.summary.fetched += (n - expired.len()) as u64;
                done += n as u64;
                self.progress("updates", done, total);
                pending = rest;
            }
        }
        Ok(())
    }

    /// Related revisions (prerequisites, bundle members, categories, detectoids) that the store
    /// lacks: bundle members name their revision; others are looked up in a full config list.
    pub(super) async fn missing_related(
        &mut self,
        related: Vec<(Uuid, Option<u32>)>,
    ) -> Result<Vec<RevisionKey>, SyncError> {
        let mut keys = Vec::new();
        let mut unknown: HashSet<Uuid> = HashSet::new();
        let mut seen = HashSet::new();
        for (id, rev) in related {
            if !seen.insert((id, rev)) || self.store.latest_revision(&id)?.is_some() {
                continue;
            }
            match rev {
                Some(r) => keys.push(RevisionKey::new(id, r)),
                None => {
                    unknown.insert(id);
                }
            }
        }
        for k in &keys {
            unknown.remove(&k.update_id);
        }
        if !unknown.is_empty() {
            let list = self
                .op(|c| GetRevisionIdList {
                    cookie: c.clone(),
                    filter: ServerSyncFilter::config(None),
                })
                .await?;
            for k in list.new_revisions {
                if unknown.remove(&k.update_id) {
                    keys.push(k);
                }
            }
            if !unknown.is_empty() {
                tracing::debug!(
                    count = unknown.len(),
                    "related updates not offered by upstream"
                );
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}
