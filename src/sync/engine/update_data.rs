//! GetUpdateData batches (re-asking for what a short answer left out, one transaction per
//! answer) and the related-revisions step.
//!
//! # Odd documents
//! A document that does not parse is skipped on its own. A batch the upstream faults on (or
//! answers with something that does not decode) is bisected until the revisions it faults on
//! are alone; those are skipped. Each skip is logged with its id and reason, counted in
//! `wsus_edge_sync_skipped_total`, and written into the sync state with the anchor that passes
//! it, so the next sync asks for it again (see [`Syncer::retry_skipped`]). Expired revisions are stored like any other (the
//! store keeps them as declined, clients are never offered them, downstreams receive them),
//! as WSUS keeps an update Microsoft expires.

use std::collections::{HashMap, HashSet, VecDeque};

use uuid::Uuid;

use super::Syncer;
use crate::model::{CategoryType, RevisionKey, UpdateKind};
use crate::store::{NewRevision, SkippedRevision, Store, SyncState};
use crate::sync::SyncError;
use crate::wire::soap::FaultReaction;
use crate::wire::sss::{
    self, GetRevisionIdList, GetUpdateData, GetUpdateDataResponse, ServerSyncFilter,
};
use crate::wire::update_xml::parse_update_with;

/// One answer, parsed (stage 1): what to store and what it taught.
struct Parsed {
    /// Revisions to store.
    batch: Vec<NewRevision>,
    /// Revisions in `batch` that are expired upstream.
    expired: u64,
    /// Related ids of the revisions to store (prerequisites, bundle members, categories).
    related: Vec<(Uuid, Option<u32>)>,
    /// Category types learned from this answer.
    categories: Vec<(Uuid, CategoryType)>,
    /// Documents that did not parse.
    skipped: Vec<SkippedRevision>,
    /// The compressed blobs as received (base64 of the upstream's cabinet, LZX from a
    /// Windows upstream), served verbatim to downstreams.
    compressed: Vec<(RevisionKey, String)>,
}

/// One answer, committed (stage 2).
struct Committed {
    /// Revisions stored.
    fetched: u64,
    /// Of those, revisions expired upstream.
    expired: u64,
    /// Revisions handled.
    handled: u64,
}

/// Stage 1: decodes and parses one answer's update documents with the category types known
/// so far (and those of earlier updates in the same answer).
fn parse_batch(
    resp: GetUpdateDataResponse,
    mut categories: HashMap<Uuid, CategoryType>,
) -> Result<Parsed, SyncError> {
    let mut out = Parsed {
        batch: Vec::with_capacity(resp.updates.len()),
        expired: 0,
        related: Vec::new(),
        categories: Vec::new(),
        skipped: Vec::new(),
        compressed: Vec::new(),
    };
    for u in &resp.updates {
        let cats = &categories;
        let parsed = u.blob.xml().and_then(|xml| {
            parse_update_with(&xml, &|id| cats.get(&id).copied()).map(|p| (p, xml))
        });
        let (parsed, xml) = match parsed {
            Ok(p) => p,
            Err(e) => {
                out.skipped.push(SkippedRevision {
                    id: u.id.update_id,
                    revision: u.id.revision,
                    reason: format!("update document: {e}"),
                });
                continue;
            }
        };
        if let crate::wire::blob::UpdateBlob::Compressed(b64) = &u.blob {
            out.compressed.push((u.id, b64.clone()));
        }
        let mut record = parsed.record.clone();
        record.key = u.id;
        for f in &mut record.files {
            if let Some(url) = resp.mu_url(&f.sha1) {
                f.upstream_url = Some(url.to_string());
            }
        }
        if record.expired {
            out.expired += 1;
        }
        if let (UpdateKind::Category, Some(t)) = (record.kind, record.category_type) {
            categories.insert(record.key.update_id, t);
            out.categories.push((record.key.update_id, t));
        }
        out.related.extend(parsed.bundled_revisions.iter().copied());
        out.related
            .extend(parsed.related_ids().into_iter().map(|id| (id, None)));
        out.batch.push(NewRevision { record, xml });
    }
    Ok(out)
}

/// Stage 2: commits the batch in ONE transaction (with `state` when it is the phase's last).
fn commit_parsed(
    store: Store,
    parsed: Parsed,
    state: Option<SyncState>,
) -> Result<Committed, SyncError> {
    store.commit_batch(&parsed.batch, &[], state.as_ref())?;
    // The received compressed forms, kept so a downstream gets the same bytes (a cache beside
    // the committed XML: a crash here only means the form is rebuilt when first asked).
    for (key, b64) in &parsed.compressed {
        if let Some(r) = parsed.batch.iter().find(|r| r.record.key == *key) {
            store.put_compressed_blob(key, &r.xml, b64)?;
        }
    }
    Ok(Committed {
        fetched: parsed.batch.len() as u64,
        expired: parsed.expired,
        handled: parsed.batch.len() as u64,
    })
}

/// Whether a failed GetUpdateData may be about the revisions asked (then the batch is bisected
/// and what still fails alone is skipped): a SOAP fault other than the session ones, an answer
/// that does not decode, an HTTP 500 without a fault. Network trouble and ServerChanged are not.
fn isolatable(e: &SyncError) -> Option<String> {
    match e {
        SyncError::Fault(f) => match f.error_code.dss_reaction() {
            FaultReaction::Stop => Some(format!("upstream fault {}: {}", f.error_code, f.message)),
            _ => None,
        },
        SyncError::Wire { source, .. } => Some(format!("answer does not decode: {source}")),
        SyncError::Http { status, .. } if *status == 500 => Some("HTTP 500 from upstream".into()),
        _ => None,
    }
}

type Task<T> = tokio::task::JoinHandle<Result<T, SyncError>>;

async fn join<T>(h: Task<T>) -> Result<T, SyncError> {
    h.await
        .map_err(|e| SyncError::Protocol(format!("batch task: {e}")))?
}

/// The batches in flight: at most one being parsed and one being committed, while the main
/// task waits for the next answer.
#[derive(Default)]
struct Pipeline {
    parsing: Option<Task<Parsed>>,
    committing: Option<Task<Committed>>,
    /// Revisions handled so far (for progress).
    done: u64,
}

impl Syncer {
    /// Fetches `keys` not yet stored in batches of ≤ `max`, re-asking for what a short answer
    /// left out; commits each answer in one transaction, the last one with `final_state`
    /// (alone, when nothing was missing). Appends the related ids of what it stored.
    ///
    /// Pipelined on the blocking pool: while answer n+1 is requested, answer n is parsed
    /// and answer n−1 committed. Answers are still committed one at a time, in order, each
    /// parsed with the category types of the ones before it.
    pub(super) async fn fetch(
        &mut self,
        keys: &[RevisionKey],
        max: usize,
        final_state: Option<&SyncState>,
        related: &mut Vec<(Uuid, Option<u32>)>,
    ) -> Result<(), SyncError> {
        let missing = self.store.missing_revisions(keys)?;
        let total = missing.len() as u64;
        self.progress("updates", 0, total);
        let chunks: Vec<Vec<RevisionKey>> = missing.chunks(max).map(<[_]>::to_vec).collect();
        if chunks.is_empty() {
            if let Some(st) = final_state {
                self.store
                    .commit_batch(&[], &[], Some(&self.with_skipped(st)))?;
            }
            return Ok(());
        }
        let mut pipe = Pipeline::default();
        let result = self.fetch_all(chunks, &mut pipe, related, total).await;
        let result = match result {
            // The last answer: parsed, then committed with the phase's state.
            Ok(()) => self.drain(&mut pipe, final_state, related, total).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            // Let a batch already being committed finish (it is whole either way) and count
            // it; the first error is the one reported.
            let _ = self.finish_commit(&mut pipe, total).await;
        }
        result
    }

    /// Requests every chunk (and what short answers left out), feeding the pipeline.
    async fn fetch_all(
        &mut self,
        chunks: Vec<Vec<RevisionKey>>,
        pipe: &mut Pipeline,
        related: &mut Vec<(Uuid, Option<u32>)>,
        total: u64,
    ) -> Result<(), SyncError> {
        let mut queue: VecDeque<Vec<RevisionKey>> = chunks.into();
        while let Some(chunk) = queue.pop_front() {
            let mut pending = chunk;
            while !pending.is_empty() {
                let ids = pending.clone();
                let answer = self
                    .op(|c| GetUpdateData {
                        cookie: c.clone(),
                        update_ids: ids.clone(),
                    })
                    .await;
                self.summary.update_data_calls += 1;
                let mut resp = match answer {
                    Ok(r) => r,
                    Err(e) => match isolatable(&e) {
                        Some(reason) => {
                            self.bisect(&mut queue, pending, &reason, pipe.done, total);
                            break;
                        }
                        None => return Err(e),
                    },
                };
                let asked: HashSet<RevisionKey> = pending.iter().copied().collect();
                resp.updates.retain(|u| asked.contains(&u.id));
                if resp.updates.is_empty() {
                    let reason = "upstream returned none of the revisions asked".to_string();
                    self.bisect(&mut queue, pending, &reason, pipe.done, total);
                    break;
                }
                let rest = resp.missing_from(&pending);
                if !rest.is_empty() {
                    tracing::debug!(
                        asked = pending.len(),
                        got = resp.updates.len(),
                        "short GetUpdateData answer; asking again for the rest"
                    );
                }
                // The previous answer's parse first: its categories parse this one, and it
                // goes to the commit stage (not the phase's last: this answer follows it).
                let previous = self.take_parsed(pipe, related).await?;
                let cats = self.categories.clone();
                pipe.parsing = Some(tokio::task::spawn_blocking(move || parse_batch(resp, cats)));
                if let Some(parsed) = previous {
                    self.commit(pipe, parsed, None, total).await?;
                }
                pending = rest;
            }
        }
        Ok(())
    }

    /// Waits for the answer being parsed, if any, and takes in what it taught.
    async fn take_parsed(
        &mut self,
        pipe: &mut Pipeline,
        related: &mut Vec<(Uuid, Option<u32>)>,
    ) -> Result<Option<Parsed>, SyncError> {
        let Some(h) = pipe.parsing.take() else {
            return Ok(None);
        };
        let mut parsed = join(h).await?;
        for sk in parsed.skipped.drain(..) {
            self.skip(sk);
        }
        self.categories.extend(parsed.categories.drain(..));
        related.append(&mut parsed.related);
        Ok(Some(parsed))
    }

    /// Waits for the commit in flight, then starts committing `parsed`.
    async fn commit(
        &mut self,
        pipe: &mut Pipeline,
        parsed: Parsed,
        state: Option<SyncState>,
        total: u64,
    ) -> Result<(), SyncError> {
        self.finish_commit(pipe, total).await?;
        let store = self.store.clone();
        pipe.committing = Some(tokio::task::spawn_blocking(move || {
            commit_parsed(store, parsed, state)
        }));
        Ok(())
    }

    /// Waits for the commit in flight, if any, and counts it.
    async fn finish_commit(&mut self, pipe: &mut Pipeline, total: u64) -> Result<(), SyncError> {
        if let Some(h) = pipe.committing.take() {
            let c = join(h).await?;
            self.summary.fetched += c.fetched;
            self.summary.expired += c.expired;
            pipe.done += c.handled;
            self.progress("updates", pipe.done, total);
        }
        Ok(())
    }

    /// Commits the last answer with the phase's state and waits for everything.
    async fn drain(
        &mut self,
        pipe: &mut Pipeline,
        final_state: Option<&SyncState>,
        related: &mut Vec<(Uuid, Option<u32>)>,
        total: u64,
    ) -> Result<(), SyncError> {
        match self.take_parsed(pipe, related).await? {
            Some(parsed) => {
                // The skips of this last answer are known now: they go with the anchor.
                let st = final_state.map(|s| self.with_skipped(s));
                self.commit(pipe, parsed, st, total).await?;
            }
            None => {
                // Every batch was isolated away: the phase's state still goes in.
                self.finish_commit(pipe, total).await?;
                if let Some(st) = final_state {
                    self.store
                        .commit_batch(&[], &[], Some(&self.with_skipped(st)))?;
                }
            }
        }
        self.finish_commit(pipe, total).await
    }

    /// `state` with this run's skipped revisions (written with the anchor that passes them).
    fn with_skipped(&self, state: &SyncState) -> SyncState {
        let mut st = state.clone();
        st.skipped = self.skipped.clone();
        st
    }

    /// Records one skipped revision (logged; counted when the run ends).
    fn skip(&mut self, s: SkippedRevision) {
        tracing::warn!(id = %s.id, revision = s.revision, reason = %s.reason, "skipping a revision this sync cannot take; it is asked for again at the next sync");
        if !self
            .skipped
            .iter()
            .any(|x| x.id == s.id && x.revision == s.revision)
        {
            self.skipped.push(s);
        }
    }

    /// A batch the upstream could not answer: split it in two (in order, at the front of the
    /// queue), or skip it when it is one revision.
    fn bisect(
        &mut self,
        queue: &mut VecDeque<Vec<RevisionKey>>,
        mut batch: Vec<RevisionKey>,
        reason: &str,
        done: u64,
        total: u64,
    ) {
        if batch.len() == 1 {
            let k = batch[0];
            self.skip(SkippedRevision {
                id: k.update_id,
                revision: k.revision,
                reason: reason.to_string(),
            });
            self.progress("updates", done, total);
            return;
        }
        tracing::info!(
            revisions = batch.len(),
            reason,
            "GetUpdateData failed for a batch: bisecting it"
        );
        let back = batch.split_off(batch.len() / 2);
        queue.push_front(back);
        queue.push_front(batch);
    }

    /// The revisions the last sync skipped (from the stored state), to be asked for again.
    pub(super) fn retry_skipped(&self, state: &SyncState) -> Vec<RevisionKey> {
        state
            .skipped
            .iter()
            .map(|s| RevisionKey::new(s.id, s.revision))
            .collect()
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
                .op_with(
                    |c| GetRevisionIdList {
                        cookie: c.clone(),
                        filter: ServerSyncFilter::config(None),
                    },
                    sss::decode_revision_id_list_response,
                )
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
