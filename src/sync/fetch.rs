//! GetUpdateData batches (re-asking for what a short answer left out, one transaction per
//! answer, expired revisions removing their update) and the related-revisions step.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::Syncer;
use crate::model::{CategoryType, RevisionKey, UpdateKind};
use crate::store::{NewRevision, Store, SyncState};
use crate::sync::SyncError;
use crate::wire::sss::{GetRevisionIdList, GetUpdateData, GetUpdateDataResponse, ServerSyncFilter};
use crate::wire::update_xml::parse_update_with;

/// What processing one GetUpdateData answer did (merged into the syncer in order).
struct BatchDone {
    /// Related ids of the stored revisions (prerequisites, bundle members, categories).
    related: Vec<(Uuid, Option<u32>)>,
    /// Category types learned from this batch.
    categories: Vec<(Uuid, CategoryType)>,
    /// Revisions stored.
    fetched: u64,
    /// Revisions removed (expired).
    removed: u64,
    /// Revisions handled (stored or expired).
    handled: u64,
}

/// Parses one answer's updates and commits them in ONE transaction (with `state` when it is
/// the phase's last): runs on the blocking pool while the next answer is on its way.
fn process_batch(
    store: Store,
    resp: GetUpdateDataResponse,
    mut categories: HashMap<Uuid, CategoryType>,
    state: Option<SyncState>,
) -> Result<BatchDone, SyncError> {
    let mut done = BatchDone {
        related: Vec::new(),
        categories: Vec::new(),
        fetched: 0,
        removed: 0,
        handled: 0,
    };
    let mut batch = Vec::with_capacity(resp.updates.len());
    let mut expired: Vec<Uuid> = Vec::new();
    for u in &resp.updates {
        let xml = u.blob.xml().map_err(|e| SyncError::Update {
            key: u.id.to_string(),
            source: e,
        })?;
        let cats = &categories;
        let parsed = parse_update_with(&xml, &|id| cats.get(&id).copied()).map_err(|e| {
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
            categories.insert(record.key.update_id, t);
            done.categories.push((record.key.update_id, t));
        }
        done.related
            .extend(parsed.bundled_revisions.iter().copied());
        done.related
            .extend(parsed.related_ids().into_iter().map(|id| (id, None)));
        batch.push(NewRevision { record, xml });
    }
    if !expired.is_empty() {
        let mut doomed = Vec::new();
        for id in &expired {
            doomed.extend(store.revisions_of(id)?.into_iter().map(|r| r.record.key));
        }
        done.removed = store.remove_revisions(&doomed)? as u64;
    }
    store.commit_batch(&batch, &[], state.as_ref())?;
    done.fetched = batch.len() as u64;
    done.handled = (batch.len() + expired.len()) as u64;
    Ok(done)
}

type Pending = tokio::task::JoinHandle<Result<BatchDone, SyncError>>;

impl Syncer {
    /// Fetches `keys` not yet stored in batches of ≤ `max`, re-asking for what a short answer
    /// left out; commits each answer in one transaction, the last one with `final_state`
    /// (alone, when nothing was missing). Appends the related ids of what it stored.
    ///
    /// Pipelined: an answer is parsed and committed on the blocking pool while the next one
    /// is requested; answers are still committed one at a time and in order, each parsed
    /// with the categories of the ones before.
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
        let mut inflight: Option<Pending> = None;
        let result = async {
            for (i, chunk) in chunks.into_iter().enumerate() {
                let mut pending = chunk;
                while !pending.is_empty() {
                    let ids = pending.clone();
                    let mut resp = self
                        .op(|c| GetUpdateData {
                            cookie: c.clone(),
                            update_ids: ids.clone(),
                        })
                        .await?;
                    self.summary.update_data_calls += 1;
                    let asked: HashSet<RevisionKey> = pending.iter().copied().collect();
                    resp.updates.retain(|u| asked.contains(&u.id));
                    if resp.updates.is_empty() {
                        return Err(SyncError::Protocol(format!(
                            "GetUpdateData returned none of the {} revisions asked",
                            pending.len()
                        )));
                    }
                    let rest = resp.missing_from(&pending);
                    if !rest.is_empty() {
                        tracing::debug!(
                            asked = pending.len(),
                            got = resp.updates.len(),
                            "short GetUpdateData answer; asking again for the rest"
                        );
                    }
                    // The previous answer first: its categories parse this one.
                    if let Some(h) = inflight.take() {
                        done += self.merge(h, related).await?;
                        self.progress("updates", done, total);
                    }
                    let last = i + 1 == n_chunks && rest.is_empty();
                    let st = if last { final_state.cloned() } else { None };
                    let store = self.store.clone();
                    let cats = self.categories.clone();
                    inflight = Some(tokio::task::spawn_blocking(move || {
                        process_batch(store, resp, cats, st)
                    }));
                    pending = rest;
                }
            }
            Ok(())
        }
        .await;
        // Even after an error, let a batch already being committed finish (it is whole).
        if let Some(h) = inflight.take() {
            let merged = self.merge(h, related).await;
            if result.is_ok() {
                done += merged?;
                self.progress("updates", done, total);
            }
        }
        result
    }

    /// Waits for a processed batch and takes in its results; returns how many it handled.
    async fn merge(
        &mut self,
        h: Pending,
        related: &mut Vec<(Uuid, Option<u32>)>,
    ) -> Result<u64, SyncError> {
        let b = h
            .await
            .map_err(|e| SyncError::Protocol(format!("commit task: {e}")))??;
        self.categories.extend(b.categories);
        related.extend(b.related);
        self.summary.fetched += b.fetched;
        self.summary.removed += b.removed;
        Ok(b.handled)
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
            if !seen.insert((id, rev)) || self.store.has_update(&id)? {
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
