//! One replica sync, in the order MS-WSUSSS §3.2.4 requires:
//! GetAuthConfig → GetAuthorizationCookie → GetCookie (1.20) → GetConfigData →
//! GetRevisionIdList config pass → GetUpdateData → GetRevisionIdList software pass (the
//! subscribed products and classifications, all when none are configured; `Delta=true` with
//! the previous anchor) → GetUpdateData → related revisions → GetDeployments.
//!
//! # Consistency
//! Every GetUpdateData answer is committed as ONE store transaction. A pass's anchor is written
//! only with the last batch of that pass (or alone when the pass brought nothing), so after a
//! crash the store shows the previous complete state plus whole batches, and the next sync asks
//! again from the old anchor and fetches only what is still missing. Approvals and the
//! deployment anchor are applied together in one transaction.
//!
//! # Recovery
//! An expired cookie (checked locally, or `InvalidCookie` from upstream) → authorize again and
//! go on; `ServerChanged` → forget the anchors and start over (once); any other fault → stop,
//! with the code and message logged. Network errors are retried by [`UpstreamClient`].
//! Expired revisions (`PublicationState="Expired"`) are stored like any other: the update stays,
//! declined, never offered to clients, and passed on to downstreams; superseded ones are kept.

use std::collections::HashMap;
use std::time::Instant;

use time::OffsetDateTime;
use uuid::Uuid;

use super::{SyncError, SyncReporter, UpstreamClient};

mod update_data;
use crate::model::{CategoryType, UpdateKind};
use crate::store::{
    AnchorCover, SkippedRevision, Store, SyncOutcome, SyncState, UpstreamDeployments,
};
use crate::wire::soap::FaultReaction;
use crate::wire::sss::{
    self, AuthorizationCookie, Cookie, GetAuthConfig, GetAuthorizationCookie, GetConfigData,
    GetCookie, GetDeployments, GetRevisionIdList, ServerSyncFilter,
};

/// What to subscribe to (from `[sync]`).
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Product GUIDs or titles; empty = every product the upstream has.
    pub products: Vec<String>,
    /// Classification GUIDs or titles; empty = all.
    pub classifications: Vec<String>,
    /// Language short names; empty = all.
    pub languages: Vec<String>,
}

impl SyncOptions {
    /// From the `[sync]` table.
    pub fn from_config(c: &crate::config::SyncConfig) -> Self {
        Self {
            products: c.products.clone(),
            classifications: c.classifications.clone(),
            languages: c.languages.clone(),
        }
    }
}

/// What one sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Revisions fetched and stored.
    pub fetched: u64,
    /// Of the revisions fetched, those expired upstream (kept, shown as declined).
    pub expired: u64,
    /// Deployments after the sync.
    pub deployments: u64,
    /// Updates (latest revisions) in the store after the sync.
    pub updates: u64,
    /// The new sync anchor.
    pub anchor: String,
    /// GetUpdateData calls made.
    pub update_data_calls: u64,
    /// Revisions isolated and skipped (asked for again at the next sync).
    pub skipped: Vec<SkippedRevision>,
}

struct Session {
    auth: AuthorizationCookie,
    cookie: Cookie,
}

/// Runs syncs against one upstream into one store.
pub struct Syncer {
    store: Store,
    client: UpstreamClient,
    opts: SyncOptions,
    reporter: Option<SyncReporter>,
    session: Option<Session>,
    /// Known category types (from the store and this sync), for the update-XML parser.
    categories: HashMap<Uuid, CategoryType>,
    summary: SyncSummary,
    /// Revisions this run skipped.
    skipped: Vec<SkippedRevision>,
}

/// Logs the process's resident and peak memory at a phase boundary (Linux `/proc`; nothing
/// elsewhere), so a sync's memory profile can be read from its log.
fn log_memory(phase: &str) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return;
    };
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    tracing::debug!(
        phase,
        rss_mib = kib("VmRSS:") / 1024,
        peak_mib = kib("VmHWM:") / 1024,
        "sync memory"
    );
}

/// Setting holding the known category types (JSON map id → type).
const CATEGORIES_SETTING: &str = "sync/categories";

fn sync_url() -> &'static str {
    sss::SERVER_SYNC_PATH
}

impl Syncer {
    /// A syncer; `reporter` receives progress.
    pub fn new(
        store: Store,
        client: UpstreamClient,
        opts: SyncOptions,
        reporter: Option<SyncReporter>,
    ) -> Self {
        Self {
            store,
            client,
            opts,
            reporter,
            session: None,
            categories: HashMap::new(),
            summary: SyncSummary::default(),
            skipped: Vec::new(),
        }
    }

    fn progress(&self, phase: &str, done: u64, total: u64) {
        if done == 0 {
            log_memory(phase);
        }
        if let Some(r) = &self.reporter {
            r.update(|s| {
                s.phase = Some(phase.to_string());
                s.done = done;
                s.total = total;
            });
        }
    }

    /// Runs one complete sync. The outcome (success or the error) is recorded in the store's
    /// sync state either way.
    pub async fn run(&mut self) -> Result<SyncSummary, SyncError> {
        let started = OffsetDateTime::now_utc();
        let t = Instant::now();
        self.summary = SyncSummary::default();
        self.skipped.clear();
        let mut result = self.run_inner(started).await;
        if let Err(SyncError::Fault(f)) = &result {
            if f.error_code.dss_reaction() == FaultReaction::ResetAnchors {
                tracing::warn!("upstream says ServerChanged: forgetting anchors and starting over");
                let mut st = self.store.sync_state()?;
                st.reset_anchors();
                self.store.set_sync_state(&st)?;
                self.session = None;
                self.skipped.clear();
                result = self.run_inner(started).await;
            }
        }
        crate::metrics::sync_skipped(self.skipped.len() as u64);
        if let Ok(s) = &mut result {
            s.skipped = self.skipped.clone();
        }
        match &result {
            Ok(s) => tracing::info!(
                fetched = s.fetched,
                expired = s.expired,
                updates = s.updates,
                deployments = s.deployments,
                secs = t.elapsed().as_secs_f64(),
                "sync finished"
            ),
            Err(e) => {
                if let SyncError::Fault(f) = e {
                    tracing::error!(code = %f.error_code, message = %f.message, method = %f.method, "sync stopped by an upstream fault");
                } else {
                    tracing::error!(error = %e, "sync failed");
                }
                let mut st = self.store.sync_state()?;
                st.last_sync = Some(SyncOutcome {
                    started_unix: started.unix_timestamp(),
                    finished_unix: OffsetDateTime::now_utc().unix_timestamp(),
                    success: false,
                    message: e.to_string(),
                    revisions_added: self.summary.fetched,
                    revisions_removed: 0,
                    deployments: 0,
                });
                self.store.set_sync_state(&st)?;
            }
        }
        result
    }

    async fn run_inner(&mut self, started: OffsetDateTime) -> Result<SyncSummary, SyncError> {
        self.progress("auth", 0, 0);
        self.authorize().await?;
        let mut state = self.store.sync_state()?;

        self.progress("config", 0, 0);
        // Without a stored language table a language filter cannot be resolved: ask for the
        // whole configuration (no anchor) to learn it.
        let config_anchor = if state.language_table.is_empty() && !self.opts.languages.is_empty() {
            None
        } else {
            state.config_anchor.clone()
        };
        let cfg = self
            .op(|c| GetConfigData {
                cookie: c.clone(),
                config_anchor: config_anchor.clone(),
            })
            .await?;
        let max = usize::try_from(cfg.max_updates_per_request)
            .ok()
            .filter(|m| *m > 0)
            .unwrap_or(100);
        state.max_updates_per_request = Some(max as u32);
        state.upstream_flags = Some(crate::store::UpstreamFlags {
            catalog_only_sync: cfg.catalog_only_sync,
            lazy_sync: cfg.lazy_sync,
            server_hosts_psf_files: cfg.server_hosts_psf_files,
        });
        if !cfg.languages.is_empty() {
            state.languages = cfg
                .languages
                .iter()
                .filter(|l| l.enabled)
                .map(|l| l.short.clone())
                .collect();
            state.language_table = cfg
                .languages
                .iter()
                .map(|l| (l.id, l.short.clone()))
                .collect();
        }
        if cfg.new_config_anchor.is_some() {
            state.config_anchor = cfg.new_config_anchor.clone();
        }
        self.load_categories()?;

        // Config pass: categories, classifications, detectoids.
        self.progress("revisions", 0, 0);
        let list = self
            .op_with(
                |c| GetRevisionIdList {
                    cookie: c.clone(),
                    filter: ServerSyncFilter::config(state.categories_anchor.clone()),
                },
                sss::decode_revision_id_list_response,
            )
            .await?;
        state.categories_anchor = Some(list.anchor.clone());
        // What the last sync skipped is asked for again first (whatever its pass).
        let mut keys = self.retry_skipped(&state);
        keys.extend(list.new_revisions.iter().copied());
        let mut config_related = Vec::new();
        self.fetch(&keys, max, Some(&state), &mut config_related)
            .await?;
        state.skipped = self.skipped.clone();
        self.save_categories()?;

        // Software pass.
        let (products, classes) = self.subscription()?;
        let langs = self.language_ids(&state.language_table);
        let filter = software_filter(&state, &products, &classes, &langs);
        let list = self
            .op_with(
                |c| GetRevisionIdList {
                    cookie: c.clone(),
                    filter: filter.clone(),
                },
                sss::decode_revision_id_list_response,
            )
            .await?;
        let sync_anchor = list.anchor.clone();
        let mut related = config_related;
        self.fetch(&list.new_revisions, max, None, &mut related)
            .await?;
        state.sync_anchor = Some(sync_anchor.clone());
        state.anchor_covers = AnchorCover {
            products,
            classifications: classes,
            languages: langs,
        };
        // Related revisions the new updates need and the store lacks.
        let needed = self.missing_related(related).await?;
        let mut more = Vec::new();
        self.fetch(&needed, max, Some(&state), &mut more).await?;
        state.skipped = self.skipped.clone();

        // Replica approvals.
        self.progress("deployments", 0, 0);
        // Streamed: a first sync's answer holds every approval upstream has.
        let dep = self
            .op_with(
                |c| GetDeployments {
                    cookie: c.clone(),
                    deployment_anchor: state.deployment_anchor.clone(),
                    sync_anchor: sync_anchor.clone(),
                },
                sss::decode_deployments_response,
            )
            .await?;
        log_memory("deployments decoded");
        let mut deployments = Vec::with_capacity(dep.deployments.len());
        for d in dep.deployments {
            match d.to_model() {
                Ok(m) => deployments.push(m),
                Err(e) => {
                    tracing::warn!(deployment = %d.deployment_guid, error = %e, "skipping deployment")
                }
            }
        }
        let up = UpstreamDeployments {
            groups: dep.groups.iter().map(|g| g.to_model()).collect(),
            deployments,
            dead_deployments: dep.dead_deployments,
            replace_all_deployments: state.deployment_anchor.is_none(),
            hidden_updates: dep.hidden_updates,
            accepted_eulas: dep.accepted_eulas,
        };
        state.deployment_anchor = Some(dep.anchor);
        let total_deployments = {
            // Count after applying: the delta may add and remove.
            let store = self.store.clone();
            let outcome_state = state.clone();
            tokio::task::spawn_blocking(move || -> Result<u64, SyncError> {
                store.apply_upstream_deployments(&up, Some(&outcome_state))?;
                Ok(store.deployment_count()? as u64)
            })
            .await
            .map_err(|e| SyncError::Protocol(format!("deployment task: {e}")))??
        };
        log_memory("deployments applied");
        self.summary.deployments = total_deployments;
        self.summary.anchor = sync_anchor;
        self.summary.updates = {
            let store = self.store.clone();
            // One key per update in the latest index (no record read or decoded).
            tokio::task::spawn_blocking(move || store.update_count())
                .await
                .map_err(|e| SyncError::Protocol(format!("count task: {e}")))?? as u64
        };
        let outcome = SyncOutcome {
            started_unix: started.unix_timestamp(),
            finished_unix: OffsetDateTime::now_utc().unix_timestamp(),
            success: true,
            message: "ok".into(),
            revisions_added: self.summary.fetched,
            revisions_removed: 0,
            deployments: total_deployments,
        };
        state.last_sync = Some(outcome.clone());
        state.last_success = Some(outcome);
        self.store.set_sync_state(&state)?;
        Ok(self.summary.clone())
    }

    /// Asks the upstream to obtain files it does not hold (MS-WSUSSS DownloadFiles,
    /// SS §3.1.4.11: at most [`sss::MAX_DOWNLOAD_FILES`] digests, an empty answer; the upstream
    /// fetches them from its own parent in the background), authorizing first if needed.
    pub async fn download_files(&mut self, digests: &[[u8; 20]]) -> Result<(), SyncError> {
        for chunk in digests.chunks(sss::MAX_DOWNLOAD_FILES) {
            self.op(|c| sss::DownloadFiles {
                cookie: c.clone(),
                file_digests: chunk.to_vec(),
            })
            .await?;
        }
        Ok(())
    }

    /// GetAuthConfig → GetAuthorizationCookie → GetCookie.
    async fn authorize(&mut self) -> Result<(), SyncError> {
        let url = self.client.url(sync_url());
        let cfg = self.client.call(&url, &GetAuthConfig).await?;
        let plug = cfg
            .auth_info
            .iter()
            .find(|p| p.plugin_id.eq_ignore_ascii_case(sss::PLUGIN_ID))
            .or(cfg.auth_info.first())
            .ok_or_else(|| SyncError::Protocol("GetAuthConfig lists no plug-in".into()))?;
        let auth_url = self.client.url(&plug.service_url);
        let id = self.store.server_id()?;
        let simple = id.simple().to_string();
        let auth = self
            .client
            .call(
                &auth_url,
                &GetAuthorizationCookie {
                    account_name: format!("wsus-edge-{}.local", &simple[..12]),
                    account_guid: id.to_string(),
                },
            )
            .await?
            .cookie;
        let old = self.session.as_ref().map(|s| s.cookie.clone());
        let cookie = self
            .client
            .call(&url, &GetCookie::new(auth.clone(), old))
            .await?
            .cookie;
        self.session = Some(Session { auth, cookie });
        Ok(())
    }

    /// Renews the cookie with the authorization cookie, or authorizes from scratch.
    async fn renew(&mut self) -> Result<(), SyncError> {
        if let Some(s) = &self.session {
            let url = self.client.url(sync_url());
            let req = GetCookie::new(s.auth.clone(), Some(s.cookie.clone()));
            if let Ok(r) = self.client.call(&url, &req).await {
                if let Some(s) = self.session.as_mut() {
                    s.cookie = r.cookie;
                }
                return Ok(());
            }
        }
        self.authorize().await
    }

    /// Calls a cookie-carrying operation on the server sync service; renews an expired cookie
    /// (locally known or reported by upstream) and retries once.
    async fn op<O: crate::wire::soap::Operation>(
        &mut self,
        make: impl Fn(&Cookie) -> O,
    ) -> Result<O::Response, SyncError> {
        self.op_with(make, crate::wire::soap::decode::<O::Response>)
            .await
    }

    /// [`Syncer::op`] with the answer decoded by `decoder`.
    async fn op_with<O: crate::wire::soap::Operation>(
        &mut self,
        make: impl Fn(&Cookie) -> O,
        decoder: super::upstream_client::Decoder<O::Response>,
    ) -> Result<O::Response, SyncError> {
        let soon = OffsetDateTime::now_utc() + time::Duration::seconds(30);
        let stale = match &self.session {
            Some(s) => s.cookie.is_expired(soon),
            None => true,
        };
        if stale {
            tracing::info!("cookie expired or about to: renewing");
            self.renew().await?;
        }
        let url = self.client.url(sync_url());
        for attempt in 0..2 {
            let cookie = match &self.session {
                Some(s) => s.cookie.clone(),
                None => return Err(SyncError::Protocol("no session".into())),
            };
            match self.client.call_with(&url, &make(&cookie), decoder).await {
                Err(SyncError::Fault(f))
                    if attempt == 0
                        && f.error_code.dss_reaction() == FaultReaction::Reauthorize =>
                {
                    tracing::info!(code = %f.error_code, "upstream refused the cookie: authorizing again");
                    self.session = None;
                    self.authorize().await?;
                }
                other => return other,
            }
        }
        Err(SyncError::Protocol("cookie refused twice".into()))
    }

    /// Category types known from the store.
    fn load_categories(&mut self) -> Result<(), SyncError> {
        if !self.categories.is_empty() {
            return Ok(());
        }
        // The map is kept in a setting so a sync does not decode the whole store to find the
        // few hundred categories; a store without it is scanned once.
        if let Some(v) = self.store.setting(CATEGORIES_SETTING)? {
            if let Ok(m) = serde_json::from_slice::<HashMap<Uuid, CategoryType>>(&v) {
                self.categories = m;
                return Ok(());
            }
        }
        for r in self.store.latest_revisions()? {
            if let (UpdateKind::Category, Some(t)) = (r.record.kind, r.record.category_type) {
                self.categories.insert(r.record.key.update_id, t);
            }
        }
        self.save_categories()
    }

    /// Persists the category map (after the config pass).
    pub(super) fn save_categories(&self) -> Result<(), SyncError> {
        let v = serde_json::to_vec(&self.categories)
            .map_err(|e| SyncError::Protocol(format!("category map: {e}")))?;
        self.store.set_setting(CATEGORIES_SETTING, Some(&v))?;
        Ok(())
    }

    /// The filter's products and classifications: configured (GUIDs or titles) or all known.
    fn subscription(&self) -> Result<(Vec<Uuid>, Vec<Uuid>), SyncError> {
        let mut titles: HashMap<String, Uuid> = HashMap::new();
        let mut products = Vec::new();
        let mut classes = Vec::new();
        for (id, t) in &self.categories {
            if *t == CategoryType::UpdateClassification {
                classes.push(*id);
            } else {
                products.push(*id);
            }
        }
        if !self.opts.products.is_empty() || !self.opts.classifications.is_empty() {
            for id in self.categories.keys() {
                if let Some(r) = self.store.latest_revision(id)? {
                    titles.insert(r.record.title.to_ascii_lowercase(), *id);
                }
            }
        }
        let resolve = |names: &[String], all: Vec<Uuid>| -> Vec<Uuid> {
            if names.is_empty() {
                return all;
            }
            let mut out = Vec::new();
            for n in names {
                match Uuid::parse_str(n.trim())
                    .ok()
                    .or_else(|| titles.get(&n.trim().to_ascii_lowercase()).copied())
                {
                    Some(id) => out.push(id),
                    None => tracing::warn!(name = %n, "subscribed category not known upstream"),
                }
            }
            out
        };
        let mut p = resolve(&self.opts.products, products);
        let mut c = resolve(&self.opts.classifications, classes);
        p.sort();
        c.sort();
        Ok((p, c))
    }

    /// The configured languages as the upstream's LCIDs (its table is kept in the sync state,
    /// so the filter holds on syncs whose GetConfigData carries no table).
    fn language_ids(&self, table: &[(i32, String)]) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .opts
            .languages
            .iter()
            .filter_map(|l| {
                let id = table
                    .iter()
                    .find(|(_, short)| short.eq_ignore_ascii_case(l.trim()))
                    .map(|(id, _)| *id);
                if id.is_none() {
                    tracing::warn!(language = %l, "configured language not offered by upstream");
                }
                id
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// The software pass's filter: `Delta=true` (with the anchor) only for the products,
/// classifications and languages the stored anchor already covers; anything added to the
/// subscription since is asked in full (`Delta=false`), so all of its updates arrive.
fn software_filter(
    state: &SyncState,
    products: &[Uuid],
    classes: &[Uuid],
    langs: &[i32],
) -> ServerSyncFilter {
    let mut f = ServerSyncFilter::updates(state.sync_anchor.clone(), products, classes, langs);
    if state.sync_anchor.is_some() {
        let cover = &state.anchor_covers;
        let mut fresh = 0;
        for x in f.categories.iter_mut().flatten() {
            x.delta = cover.products.contains(&x.id);
            fresh += usize::from(!x.delta);
        }
        for x in f.classifications.iter_mut().flatten() {
            x.delta = cover.classifications.contains(&x.id);
            fresh += usize::from(!x.delta);
        }
        // The anchor was taken without a language filter: it covers every language.
        let all_langs = cover.languages.is_empty();
        for x in f.languages.iter_mut().flatten() {
            x.delta = all_langs || cover.languages.contains(&x.id);
            fresh += usize::from(!x.delta);
        }
        if fresh > 0 {
            tracing::info!(
                new = fresh,
                "subscription grew since the last sync: asking for the new categories in full"
            );
        }
    }
    f
}
