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

use time::OffsetDateTime;

use super::ops::split_groups;
use super::scan_index::{Chosen, EntrySet, ScanIndex};
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

    fn evaluate(&self, e_local: u32) -> Deployment {
        Deployment {
            id: e_local as i32,
            action: DeploymentAction::Evaluate,
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

    pub(super) fn sync_updates(&self, req: wusp::SyncUpdates) -> Result<Reply, OpError> {
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
        let idx = self.index()?;
        let member = self.member_of(&idx, &claims)?;
        let approved = idx.approved(&member);
        let new_cookie = self.issue_session(Claims {
            watermark: approved.watermark,
            ..claims.clone()
        })?;
        if p.skip_software_sync {
            // Driver pass: drivers are offered with the software pass (by approval), so there
            // is nothing more to match against the SystemSpec.
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
        // The needed set depends only on the group set and the installed non-leaf entries, so
        // it is looked up (memoised in the index); this call then only walks the set's members
        // and the client's cached ids, never the whole catalog.
        let mut installed: Vec<u32> = installed_ids
            .iter()
            .filter_map(|id| idx.entry_of(*id))
            .collect();
        installed.sort_unstable();
        installed.dedup();
        let needed = idx.needed(&approved, &installed);
        let mut cached_ids: Vec<i32> = installed_ids
            .iter()
            .chain(p.other_cached.as_deref().unwrap_or(&[]))
            .copied()
            .collect();
        cached_ids.sort_unstable();
        cached_ids.dedup();
        let mut cached = EntrySet::new(idx.entries.len());
        let cached_entries: Vec<(i32, Option<u32>)> = cached_ids
            .iter()
            .map(|&id| {
                let e = idx.entry_of(id);
                if let Some(i) = e {
                    cached.insert(i);
                }
                (id, e)
            })
            .collect();
        // Categories and detectoids are evaluated; the rest carry their winning approval.
        let chosen = |i: u32| -> Option<&Chosen> {
            if idx.non_leaf_set.contains(i) {
                None
            } else {
                approved.by_entry.get(&i)
            }
        };
        let info = |i: u32, c: Option<&Chosen>, xml: bool| {
            let e = &idx.entries[i as usize];
            UpdateInfoOut {
                id: e.local_id as i32,
                deployment: c.map_or_else(|| self.evaluate(e.local_id), Self::deployment),
                is_leaf: e.is_leaf,
                xml: xml.then_some(&e.core),
            }
        };
        // New updates: non-leaf kinds first, then the others, each in local-id order.
        let mut new_updates = Vec::new();
        let mut remaining = 0usize;
        let candidates = needed
            .iter_masked(&idx.non_leaf_set, false)
            .chain(needed.iter_masked(&idx.non_leaf_set, true))
            .filter(|i| !cached.contains(*i));
        for i in candidates {
            if new_updates.len() < self.opts.page_size {
                new_updates.push(info(i, chosen(i), true));
            } else {
                remaining += 1;
                break;
            }
        }
        // Cached ids: still needed (maybe changed) or out of scope.
        let mut changed_at: Vec<(u32, &Chosen)> = Vec::new();
        let mut out_of_scope: Vec<i32> = Vec::new();
        // Only a cookie older than the newest approval change can hold changed updates (the
        // usual call, mid-walk, carries the current watermark and skips the lookups).
        let may_have_changed = claims.watermark > 0 && claims.watermark < approved.watermark;
        for &(id, e) in &cached_entries {
            match e.filter(|i| needed.contains(*i)) {
                Some(i) if may_have_changed => {
                    if let Some(ch) = chosen(i) {
                        if ch.last_change.unix_timestamp() > claims.watermark {
                            changed_at.push((i, ch));
                        }
                    }
                }
                Some(_) => {}
                None => out_of_scope.push(id),
            }
        }
        out_of_scope.sort_unstable();
        changed_at.sort_unstable_by_key(|(i, _)| *i);
        let changed: Vec<UpdateInfoOut<'_>> = changed_at
            .into_iter()
            .map(|(i, c)| info(i, Some(c), false))
            .collect();
        let truncated = remaining > 0;
        if !truncated {
            if let Err(e) = self.store.record_computer_sync(
                &claims.client_id,
                OffsetDateTime::now_utc().unix_timestamp(),
            ) {
                tracing::debug!(error = %e, "could not record the sync time");
            }
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
            let dep = match approved.by_entry.get(&i) {
                Some(c) if c.action == DeploymentAction::Bundle => continue,
                Some(c) => Self::deployment(c),
                None if matches!(e.kind, UpdateKind::Category | UpdateKind::Detectoid) => {
                    self.evaluate(e.local_id)
                }
                None => continue,
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

    fn content_base(&self, req: &Request<'_>) -> String {
        if let Some(u) = &self.opts.advertised_url {
            return u.trim_end_matches('/').to_string();
        }
        let host = req
            .host
            .map(str::trim)
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 255
                    && h.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                    })
            })
            .unwrap_or("localhost");
        format!("{}://{}", if req.tls { "https" } else { "http" }, host)
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
