//! SyncUpdates (the layered walk), RefreshCache, GetExtendedUpdateInfo and GetFileLocations.
//!
//! SyncUpdates, per call: the computer's groups (cookie target group names that exist, else
//! its server-assigned groups, else Unassigned Computers; always All Computers and ancestors);
//! the needed set = categories and detectoids (action Evaluate) plus the winning approvals
//! (Install / Uninstall, and Bundle for what an offered bundle contains), each kept only when
//! it is not declined or expired and every prerequisite clause names an update the client
//! reports in `InstalledNonLeafUpdateIDs`; `NewUpdates` = needed minus the client's cached ids,
//! non-leaf kinds first then by local id, at most `page_size` with `Truncated`;
//! `OutOfScopeRevisionIDs` = cached minus needed; `ChangedUpdates` = cached needed updates whose
//! approval changed after the cookie's watermark.

use std::collections::HashSet;

use uuid::Uuid;

use time::OffsetDateTime;

use super::drivers;
use super::needed::Derived;
use super::ops::split_groups;
use super::scan_index::{Approved, Chosen, EntrySet, ScanIndex};
use super::{Claims, ClientService, OpError, Reply, Request};
use crate::model::{groups, UpdateKind};
use crate::wire::soap::{Envelope, ErrorCode};
use crate::wire::update_xml::{core_fragment, extended_fragment, localized_fragment};
use crate::wire::wusp::{
    self, Deployment, DeploymentAction, ExtendedUpdateInfo, FileLocation, RefreshCacheResult,
    SyncInfo, UpdateInfoOut,
};

impl ClientService {
    /// The computer's effective groups.
    fn member_of(&self, idx: &ScanIndex, claims: &Claims) -> Result<Vec<uuid::Uuid>, OpError> {
        let mut assigned: Vec<uuid::Uuid> = split_groups(&claims.target_groups)
            .iter()
            .filter_map(|n| idx.group_named(n))
            .collect();
        if assigned.is_empty() {
            match self.store.computer(&claims.client_id)? {
                Some(c) => assigned = c.groups,
                None => {
                    return Err(OpError::Fault(
                        ErrorCode::RegistrationRequired,
                        "computer not registered".into(),
                    ))
                }
            }
        }
        if assigned.is_empty() {
            assigned.push(groups::UNASSIGNED_COMPUTERS);
        }
        Ok(idx.effective_groups(&assigned))
    }

    fn plain(&self, e_local: u32, action: DeploymentAction) -> Deployment {
        Deployment {
            id: e_local as i32,
            action,
            deadline: None,
            is_assigned: true,
            last_change: self.config_change.date(),
            auto_select: 0,
            auto_download: 0,
            supersedence_behavior: 0,
        }
    }

    fn deployment(c: &Chosen) -> Deployment {
        Deployment {
            id: c.deployment_id,
            action: c.action,
            deadline: c.deadline,
            is_assigned: true,
            last_change: c.last_change.date(),
            auto_select: 0,
            auto_download: 0,
            supersedence_behavior: 0,
        }
    }

    /// The client `Deployment` of entry `i`.
    fn deployment_of(&self, idx: &ScanIndex, i: u32, approved: &Approved) -> Deployment {
        match idx.derived(i, approved) {
            Derived::Approved(c) => Self::deployment(c),
            Derived::Plain(a) => self.plain(idx.entries[i as usize].local_id, a),
        }
    }

    /// SyncUpdates answered from `idx` (the current index).
    pub(super) fn sync_updates(
        &self,
        req: wusp::SyncUpdates,
        idx: &ScanIndex,
    ) -> Result<Reply, OpError> {
        let claims = self.session(&req.cookie)?;
        let p = &req.parameters;
        let installed_ids = p.installed_non_leaf.as_deref().unwrap_or(&[]);
        if installed_ids.len() > wusp::MAX_INSTALLED_NON_LEAF {
            return Err(OpError::Fault(
                ErrorCode::InvalidParameters,
                "parameters.InstalledNonLeafUpdateIDs".into(),
            ));
        }
        if p.system_spec && !p.skip_software_sync {
            return Err(OpError::Fault(
                ErrorCode::InvalidParameters,
                "parameters.SystemSpec".into(),
            ));
        }
        let member = self.member_of(idx, &claims)?;
        let approved = idx.approved(&member);
        let new_cookie = self.issue_session(Claims {
            watermark: idx.stamp,
            ..claims.clone()
        })?;
        let mut filter = p.filter_category_ids.clone();
        filter.sort_unstable();
        filter.dedup();
        let mut installed: Vec<u32> = installed_ids
            .iter()
            .filter_map(|id| idx.entry_of(*id))
            .collect();
        installed.sort_unstable();
        installed.dedup();
        if p.skip_software_sync {
            return self.driver_pass(idx, &approved, &filter, &installed, p, new_cookie);
        }
        // The needed set depends only on the filter and the installed non-leaf entries, so it
        // is looked up (memoised in the index); this call then only walks the set's members
        // and the client's cached ids, never the whole catalog.
        let scope = idx.scope(&filter);
        let needed = idx.needed(&filter, &scope, &installed);
        // The client's cached ids as a set of entries (duplicates fold, no sort of the
        // thousands of ids a late page carries); ids that name no newest revision are out of
        // scope as they are.
        let mut cached = EntrySet::new(idx.entries.len());
        let mut out_of_scope: Vec<i32> = Vec::new();
        for &id in installed_ids
            .iter()
            .chain(p.other_cached.as_deref().unwrap_or(&[]))
        {
            match idx.entry_of(id) {
                Some(i) => cached.insert(i),
                None => out_of_scope.push(id),
            }
        }
        let info = |i: u32, xml: bool| {
            let e = &idx.entries[i as usize];
            UpdateInfoOut {
                id: e.local_id as i32,
                deployment: self.deployment_of(idx, i, &approved),
                is_leaf: e.is_leaf,
                xml: xml.then_some(&e.core),
            }
        };
        // New updates: non-leaf kinds first, then the others, each in local-id order; never
        // one the client lists as cached (so the walk ends).
        let mut new_updates = Vec::with_capacity(self.opts.page_size.min(1024));
        let mut remaining = 0usize;
        let candidates = needed
            .iter_masked(&idx.non_leaf_set, false)
            .chain(needed.iter_masked(&idx.non_leaf_set, true))
            .filter(|i| !cached.contains(*i));
        for i in candidates {
            if new_updates.len() < self.opts.page_size {
                new_updates.push(info(i, true));
            } else {
                remaining += 1;
                break;
            }
        }
        // Cached ids: still needed (changed since the cookie's watermark, or not) or out of
        // scope. Watermark 0 (no usable old cookie) = assume every cached update changed.
        // An entry's id is its local id, so both lists come out in id order.
        let changed_at: Vec<u32> = cached
            .iter_masked(&needed, false)
            .filter(|i| idx.changed[*i as usize] > claims.watermark)
            .collect();
        out_of_scope.extend(
            cached
                .iter_masked(&needed, true)
                .map(|i| idx.entries[i as usize].local_id as i32),
        );
        out_of_scope.sort_unstable();
        out_of_scope.dedup();
        let changed: Vec<UpdateInfoOut<'_>> =
            changed_at.into_iter().map(|i| info(i, false)).collect();
        let truncated = remaining > 0;
        if !truncated {
            self.record_sync(&claims);
        }
        Ok(Reply {
            status: 200,
            body: wusp::SyncUpdatesReply {
                new_updates,
                out_of_scope,
                changed_updates: changed,
                truncated,
                new_cookie,
                driver_sync_not_needed: false,
            }
            .encode(),
        })
    }

    fn record_sync(&self, claims: &Claims) {
        if let Err(e) = self.store.record_computer_sync(
            &claims.client_id,
            OffsetDateTime::now_utc().unix_timestamp(),
        ) {
            tracing::debug!(error = %e, "could not record the sync time");
        }
    }

    /// The driver pass (`SkipSoftwareSync` with a `SystemSpec`): the approved drivers that best
    /// match the devices (see [`super::drivers`]), their prerequisites met; `CachedDriverIDs`
    /// no longer matched are out of scope. `DriverSyncNotNeeded` only when no approved driver
    /// names any id the devices carry and the client caches no driver.
    fn driver_pass(
        &self,
        idx: &ScanIndex,
        approved: &Approved,
        filter: &[Uuid],
        installed: &[u32],
        p: &wusp::SyncUpdateParameters,
        new_cookie: wusp::Cookie,
    ) -> Result<Reply, OpError> {
        let mut have = vec![false; idx.entries.len()];
        for i in installed {
            have[*i as usize] = true;
        }
        let in_filter = (!filter.is_empty()).then(|| idx.filter_closure(filter));
        let ids = drivers::device_ids(&p.devices);
        let cands: Vec<u32> = approved
            .drivers
            .iter()
            .copied()
            .filter(|i| in_filter.as_ref().is_none_or(|f| f.contains(i)))
            .filter(|i| {
                idx.entries[*i as usize]
                    .driver
                    .as_ref()
                    .is_some_and(|d| ids.contains(&d.hardware_id))
            })
            .collect();
        let cached: Vec<i32> = p.cached_driver_ids.clone().unwrap_or_default();
        if cands.is_empty() && cached.is_empty() {
            return Ok(Reply::ok(&wusp::SyncUpdatesResponse {
                result: SyncInfo {
                    new_updates: Vec::new(),
                    out_of_scope: Vec::new(),
                    changed_updates: Vec::new(),
                    truncated: false,
                    new_cookie,
                    driver_sync_not_needed: true,
                },
            }));
        }
        let metas: Vec<&drivers::DriverMeta> = cands
            .iter()
            .filter_map(|i| idx.entries[*i as usize].driver.as_ref())
            .collect();
        let matched: HashSet<u32> = drivers::best_matches(&p.devices, &metas)
            .into_iter()
            .map(|k| cands[k])
            .filter(|i| idx.satisfied(*i, &have))
            .collect();
        let cached_entries: HashSet<u32> =
            cached.iter().filter_map(|id| idx.entry_of(*id)).collect();
        let mut new: Vec<u32> = matched
            .iter()
            .copied()
            .filter(|i| !cached_entries.contains(i))
            .collect();
        new.sort_unstable();
        let truncated = new.len() > self.opts.page_size;
        new.truncate(self.opts.page_size);
        let mut out_of_scope: Vec<i32> = cached
            .iter()
            .copied()
            .filter(|id| idx.entry_of(*id).is_none_or(|i| !matched.contains(&i)))
            .collect();
        out_of_scope.sort_unstable();
        out_of_scope.dedup();
        let new_updates = new
            .into_iter()
            .map(|i| {
                let e = &idx.entries[i as usize];
                UpdateInfoOut {
                    id: e.local_id as i32,
                    deployment: self.deployment_of(idx, i, approved),
                    is_leaf: e.is_leaf,
                    xml: Some(&e.core),
                }
            })
            .collect();
        Ok(Reply {
            status: 200,
            body: wusp::SyncUpdatesReply {
                new_updates,
                out_of_scope,
                changed_updates: Vec::new(),
                truncated,
                new_cookie,
                driver_sync_not_needed: false,
            }
            .encode(),
        })
    }

    /// StartCategoryScan: sent without a cookie before a category-limited scan; WS2025 answers
    /// with the requested category ids as `preferredCategoryIds` (capture scan/000005).
    pub(super) fn start_category_scan(&self, env: &Envelope) -> Result<Reply, OpError> {
        let req: wusp::StartCategoryScan = env.decode()?;
        let mut preferred: Vec<Uuid> = Vec::new();
        for c in req.requested.iter().take(1024) {
            if !preferred.contains(&c.category_id) {
                preferred.push(c.category_id);
            }
        }
        Ok(Reply::ok(&wusp::StartCategoryScanResponse { preferred }))
    }

    pub(super) fn refresh_cache(&self, env: &Envelope) -> Result<Reply, OpError> {
        let req: wusp::RefreshCache = env.decode()?;
        let claims = self.session(&req.cookie)?;
        let idx = self.index()?;
        let member = self.member_of(&idx, &claims)?;
        let approved = idx.approved(&member);
        let mut results = Vec::new();
        for k in &req.global_ids {
            let Some(&i) = idx.by_update.get(&k.update_id) else {
                continue;
            };
            let e = &idx.entries[i as usize];
            if e.key != *k || !e.offerable {
                continue;
            }
            let dep = if e.kind == UpdateKind::Driver {
                if !approved.drivers.contains(&i) {
                    continue;
                }
                self.deployment_of(&idx, i, &approved)
            } else {
                // WS2025 leaves Bundle-action revisions out of the answer (INV §9.8).
                let d = self.deployment_of(&idx, i, &approved);
                if d.action == DeploymentAction::Bundle {
                    continue;
                }
                d
            };
            results.push(RefreshCacheResult {
                revision_id: e.local_id as i32,
                global_id: e.key,
                is_leaf: e.is_leaf,
                deployment: dep,
            });
        }
        Ok(Reply::ok(&wusp::RefreshCacheResponse { results }))
    }

    /// Where content URLs point: `server.advertised_url` when set, else plain HTTP at the
    /// Host the client used. Content is verified by hash, so WS2025 (and this server) gives
    /// `http://` on the client (content) port to TLS clients too; a TLS request's Host names
    /// the TLS port, which is replaced by the HTTP one. Any Host that is a legal URI authority
    /// (RFC 3986 reg-name, IP literal, port) is used as sent, `_` included.
    fn content_base(&self, req: &Request<'_>) -> String {
        if let Some(u) = &self.opts.advertised_url {
            return u.trim_end_matches('/').to_string();
        }
        let host = req
            .host
            .map(str::trim)
            .filter(|h| !h.is_empty() && h.len() <= 255 && h.chars().all(legal_authority_char))
            .unwrap_or("localhost");
        if !req.tls {
            return format!("http://{host}");
        }
        let name = match host.rfind(':') {
            Some(i) if !host[i..].contains(']') => &host[..i],
            _ => host,
        };
        match self.opts.content_port {
            Some(80) | None => format!("http://{name}"),
            Some(p) => format!("http://{name}:{p}"),
        }
    }

    pub(super) fn get_extended_update_info(
        &self,
        env: &Envelope,
        req: &Request<'_>,
    ) -> Result<Reply, OpError> {
        let r: wusp::GetExtendedUpdateInfo = env.decode()?;
        self.session(&r.cookie)?;
        if r.revision_ids.len() > wusp::MAX_EXTENDED_UPDATES_PER_REQUEST {
            return Err(OpError::Fault(
                ErrorCode::InvalidParameters,
                "revisionIDs".into(),
            ));
        }
        let want = |t: &str| r.info_types.iter().any(|x| x.eq_ignore_ascii_case(t));
        let mut langs: Vec<String> = Vec::new();
        for l in r.locales.iter().take(16) {
            for cand in [l.as_str(), l.split('-').next().unwrap_or("")] {
                if !cand.is_empty() && !langs.iter().any(|x| x.eq_ignore_ascii_case(cand)) {
                    langs.push(cand.to_string());
                }
            }
        }
        let lang_refs: Vec<&str> = langs.iter().map(String::as_str).collect();
        let base = self.content_base(req);
        let mut out = ExtendedUpdateInfo::default();
        let mut localized = Vec::new();
        let mut seen_files = HashSet::new();
        for &id in &r.revision_ids {
            let rev = match u32::try_from(id) {
                Ok(l) => self.store.revision_by_local_id(l)?,
                Err(_) => None,
            };
            let xml = match &rev {
                Some(rev) => self.store.revision_xml(&rev.record.key)?,
                None => None,
            };
            let (Some(rev), Some(xml)) = (rev, xml) else {
                out.out_of_scope.push(id);
                continue;
            };
            if want("Core") {
                out.updates.push((id, core_fragment(&xml)?));
            }
            if want("Extended") {
                out.updates.push((id, extended_fragment(&xml)?));
                for f in &rev.record.files {
                    if seen_files.insert(f.sha1) {
                        out.file_locations.push(FileLocation {
                            digest: f.sha1,
                            url: format!("{base}/{}", f.content_path()),
                        });
                    }
                }
            }
            if want("LocalizedProperties") {
                let mut got = HashSet::new();
                for (lang, frag) in localized_fragment(&xml, &lang_refs)? {
                    if got.insert(lang.to_ascii_lowercase()) && got.len() == 1 {
                        localized.push((id, frag));
                    }
                }
            }
        }
        out.updates.extend(localized);
        Ok(Reply::ok(&wusp::GetExtendedUpdateInfoResponse {
            result: out,
        }))
    }

    pub(super) fn get_file_locations(
        &self,
        env: &Envelope,
        req: &Request<'_>,
    ) -> Result<Reply, OpError> {
        let r: wusp::GetFileLocations = env.decode()?;
        self.session(&r.cookie)?;
        let idx = self.index()?;
        let base = self.content_base(req);
        let mut file_locations = Vec::new();
        for d in r.file_digests.iter().take(10_000) {
            let Ok(sha1) = <[u8; 20]>::try_from(d.as_slice()) else {
                continue;
            };
            let rec = match idx.files.get(&sha1) {
                Some(f) => Some(f.clone()),
                None => self.store.expected_file(&sha1)?,
            };
            if let Some(f) = rec {
                file_locations.push(FileLocation {
                    digest: sha1,
                    url: format!("{base}/{}", f.content_path()),
                });
            }
        }
        Ok(Reply::ok(&wusp::GetFileLocationsResponse {
            file_locations,
            new_cookie: None,
        }))
    }
}

/// A character a URI authority may hold (RFC 3986 §3.2: unreserved, sub-delims, `%` of
/// pct-encoding, `:` and the IP-literal brackets); `@` (userinfo) is refused.
fn legal_authority_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.'
                | '_'
                | '~'
                | '!'
                | '$'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | '+'
                | ','
                | ';'
                | '='
                | '%'
                | ':'
                | '['
                | ']'
        )
}
