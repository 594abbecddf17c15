//! Handlers of the metadata verbs: updates, approvals, groups, computers, categories, the
//! subscription and sync control. Each takes the [`AdminState`] and returns a JSON shape.

use std::collections::BTreeMap;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::catalog::{file_json, group_json, resolve_group, unix_rfc3339, View};
use super::query::Query;
use super::types::*;
use super::{AdminState, ApiError, ApiResult};
use crate::model::{ApprovalAction, CategoryType, Deployment, TargetGroup};
use crate::store::Store;

fn replica_refusal(state: &AdminState, what: &str) -> ApiError {
    ApiError::conflict(format!(
        "this server is a replica of {}: {what} come from upstream; make the change there (local changes are refused, as on a WSUS replica)",
        state.config.upstream.url.as_deref().unwrap_or("its upstream")
    ))
}

/// `updates list`: software and driver updates (latest revisions), filtered by `status`
/// (`approved` | `unapproved` | `declined` | `expired`; an update expired upstream counts as
/// declined, as WSUS keeps it), `classification`, `product` (GUID or title) and
/// `text` (in title, KB or id, case-insensitive).
pub fn list_updates(state: &AdminState, q: &Query) -> ApiResult<Vec<UpdateJson>> {
    let v = View::load(&state.store)?;
    let class = q
        .get("classification")
        .map(|c| v.resolve_category(c, CategoryType::UpdateClassification))
        .transpose()?;
    let product = q
        .get("product")
        .map(|p| v.resolve_category(p, CategoryType::Product))
        .transpose()?;
    let text = q.get("text").map(|t| t.to_lowercase());
    let status = q.get("status");
    if let Some(s) = status {
        if !["approved", "unapproved", "declined", "expired", "any"].contains(&s) {
            return Err(ApiError::bad(format!(
                "status must be approved, unapproved, declined or expired, got {s:?}"
            )));
        }
    }
    let mut out = Vec::new();
    for r in &v.updates {
        let rec = &r.record;
        let id = rec.key.update_id;
        let declined = v.is_declined(rec);
        let keep_status = match status {
            Some("approved") => v.is_approved(&id) && !declined,
            Some("unapproved") => !v.is_approved(&id) && !declined,
            Some("declined") => declined,
            Some("expired") => rec.expired,
            _ => true,
        };
        if !keep_status
            || class.is_some_and(|c| rec.classification != Some(c))
            || product.is_some_and(|p| !rec.products.contains(&p))
        {
            continue;
        }
        if let Some(t) = &text {
            let kb = rec
                .kb
                .as_deref()
                .map(|k| format!("kb{k}"))
                .unwrap_or_default();
            if !rec.title.to_lowercase().contains(t)
                && !kb.contains(t)
                && !id.to_string().contains(t)
            {
                continue;
            }
        }
        out.push(v.update_json(r));
    }
    Ok(out)
}

/// The base URL clients use for this server (`server.advertised_url`, else the listener).
pub fn client_base(state: &AdminState) -> String {
    state
        .config
        .server
        .advertised_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.config.server.listen))
}

/// `updates show ID`.
pub fn show_update(state: &AdminState, q: &Query) -> ApiResult<UpdateDetailJson> {
    let arg = q.get("id").ok_or_else(|| ApiError::bad("missing id"))?;
    let v = View::load(&state.store)?;
    let r = v.find_one(arg)?;
    let base = client_base(state);
    let mut files = Vec::new();
    for f in &r.record.files {
        let cached = state.store.get_object(&f.sha1)?.is_some();
        files.push(file_json(f, &base, cached));
    }
    let id = r.record.key.update_id;
    let superseded_by = v
        .updates
        .iter()
        .filter(|o| o.record.supersedes.contains(&id))
        .map(|o| o.record.key.update_id.to_string())
        .collect();
    Ok(UpdateDetailJson {
        update: v.update_json(r),
        files,
        supersedes: r.record.supersedes.iter().map(|u| u.to_string()).collect(),
        superseded_by,
        creation_date: r.record.creation_date.clone(),
    })
}

/// Parses a deadline: RFC 3339, or `YYYY-MM-DD` (midnight UTC).
pub fn parse_deadline(s: &str) -> ApiResult<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s.trim(), &Rfc3339) {
        return Ok(t);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s.trim(), &fmt)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            ApiError::bad(format!(
                "deadline {s:?}: expected RFC 3339 (2026-12-01T18:00:00Z) or a date (2026-12-01)"
            ))
        })
}

/// `updates approve ID... --group G [--action] [--deadline]` (autonomous mode only).
pub fn approve(state: &AdminState, req: &ApproveRequest) -> ApiResult<ChangedJson> {
    if state.is_replica() {
        return Err(replica_refusal(state, "approvals"));
    }
    if req.ids.is_empty() {
        return Err(ApiError::bad("no update given"));
    }
    let action = match req.action.as_deref().unwrap_or("install") {
        "install" => ApprovalAction::Install,
        "uninstall" => ApprovalAction::Uninstall,
        other => {
            return Err(ApiError::bad(format!(
                "action must be install or uninstall, got {other:?}"
            )))
        }
    };
    let deadline = req.deadline.as_deref().map(parse_deadline).transpose()?;
    let v = View::load(&state.store)?;
    let group = v.resolve_group(&req.group)?;
    let mut keys = Vec::new();
    for arg in &req.ids {
        for r in v.find(arg)? {
            keys.push(r.record.key);
        }
    }
    let now = OffsetDateTime::now_utc();
    for key in &keys {
        state.store.set_deployment(&Deployment {
            id: Uuid::new_v4(),
            update: *key,
            group,
            action,
            deadline,
            last_change: now,
            admin_name: "wsus-edge".into(),
            is_assigned: true,
            download_priority: 1,
        })?;
    }
    let gname = v.groups.get(&group).cloned().unwrap_or_default();
    tracing::info!(updates = keys.len(), group = %gname, ?action, "approved");
    Ok(ChangedJson {
        message: format!(
            "approved {} update(s) for {} to {}{}",
            keys.len(),
            gname,
            super::catalog::action_name(action),
            deadline
                .and_then(super::catalog::rfc3339)
                .map(|d| format!(" by {d}"))
                .unwrap_or_default()
        ),
        ids: keys.iter().map(|k| k.update_id.to_string()).collect(),
    })
}

/// `updates decline ID...` (autonomous mode only): hides them and removes their approvals.
pub fn decline(state: &AdminState, req: &IdsRequest) -> ApiResult<ChangedJson> {
    if state.is_replica() {
        return Err(replica_refusal(state, "approvals and declines"));
    }
    if req.ids.is_empty() {
        return Err(ApiError::bad("no update given"));
    }
    let v = View::load(&state.store)?;
    let mut ids = Vec::new();
    for arg in &req.ids {
        for r in v.find(arg)? {
            ids.push(r.record.key.update_id);
        }
    }
    for id in &ids {
        state.store.decline(id)?;
    }
    tracing::info!(updates = ids.len(), "declined");
    Ok(ChangedJson {
        message: format!("declined {} update(s)", ids.len()),
        ids: ids.iter().map(|i| i.to_string()).collect(),
    })
}

/// `groups list`.
pub fn list_groups(state: &AdminState) -> ApiResult<Vec<GroupJson>> {
    let mut g = state.store.groups()?;
    g.sort_by(|a, b| {
        a.parent
            .is_some()
            .cmp(&b.parent.is_some())
            .then(a.name.to_lowercase().cmp(&b.name.to_lowercase()))
    });
    Ok(g.iter()
        .map(|g| group_json(&g.id, &g.name, g.parent))
        .collect())
}

pub(crate) fn group_names(store: &Store) -> ApiResult<BTreeMap<Uuid, String>> {
    Ok(store
        .groups()?
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect())
}

/// `groups add NAME [--parent P]` (autonomous mode only).
pub fn add_group(state: &AdminState, req: &NewGroupRequest) -> ApiResult<GroupJson> {
    if state.is_replica() {
        return Err(replica_refusal(state, "target groups"));
    }
    let name = req.name.trim();
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(ApiError::bad(
            "a group name is 1 to 256 printable characters",
        ));
    }
    let parent = match &req.parent {
        Some(p) => Some(resolve_group(&group_names(&state.store)?, p)?),
        None => None,
    };
    let g = state.store.add_group(&TargetGroup {
        id: Uuid::new_v4(),
        name: name.to_string(),
        parent,
    })?;
    Ok(group_json(&g.id, &g.name, g.parent))
}

/// `groups remove NAME|ID` (autonomous mode only): removes it and its subgroups.
pub fn remove_group(state: &AdminState, req: &NewGroupRequest) -> ApiResult<ChangedJson> {
    if state.is_replica() {
        return Err(replica_refusal(state, "target groups"));
    }
    let id = resolve_group(&group_names(&state.store)?, &req.name)?;
    let removed = state.store.remove_group(&id)?;
    Ok(ChangedJson {
        message: format!("removed {} group(s)", removed.len()),
        ids: removed.iter().map(|i| i.to_string()).collect(),
    })
}

/// The subscription in force ([`Store::subscription`]), as JSON.
fn subscription(store: &Store, config: &crate::config::Config) -> SubscriptionJson {
    let s = store.subscription(&config.sync);
    SubscriptionJson {
        products: s.products,
        classifications: s.classifications,
    }
}

fn subscribed(list: &[String], id: &Uuid, title: &str) -> bool {
    list.is_empty()
        || list
            .iter()
            .any(|e| e.parse::<Uuid>().ok() == Some(*id) || e.trim().eq_ignore_ascii_case(title))
}

/// `classifications list` / `products list`.
pub fn list_categories(state: &AdminState, ty: CategoryType) -> ApiResult<Vec<CategoryJson>> {
    let v = View::load(&state.store)?;
    let sub = subscription(&state.store, &state.config);
    let list = match ty {
        CategoryType::UpdateClassification => &sub.classifications,
        _ => &sub.products,
    };
    let mut counts: BTreeMap<Uuid, usize> = BTreeMap::new();
    for r in &v.updates {
        for c in r.record.category_ids() {
            *counts.entry(c).or_default() += 1;
        }
    }
    let mut out: Vec<CategoryJson> = v
        .categories
        .iter()
        .filter(|(_, (_, k))| *k == Some(ty))
        .map(|(id, (title, _))| CategoryJson {
            id: id.to_string(),
            title: title.clone(),
            subscribed: subscribed(list, id, title),
            updates: counts.get(id).copied().unwrap_or(0),
        })
        .collect();
    out.sort_by_key(|a| a.title.to_lowercase());
    Ok(out)
}

/// `GET /api/subscription`.
pub fn get_subscription(state: &AdminState) -> ApiResult<SubscriptionJson> {
    Ok(subscription(&state.store, &state.config))
}

/// `subscription set`: each entry a GUID or a known title; titles are stored as GUIDs.
pub fn set_subscription(state: &AdminState, req: SubscriptionJson) -> ApiResult<SubscriptionJson> {
    let v = View::load(&state.store)?;
    let resolve = |list: &[String], ty| -> ApiResult<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for e in list.iter().filter(|e| !e.trim().is_empty()) {
            let id = v.resolve_category(e, ty)?.to_string();
            if !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    };
    let s = SubscriptionJson {
        products: resolve(&req.products, CategoryType::Product)?,
        classifications: resolve(&req.classifications, CategoryType::UpdateClassification)?,
    };
    state.store.set_subscription(&crate::store::Subscription {
        products: s.products.clone(),
        classifications: s.classifications.clone(),
    })?;
    tracing::info!(
        products = s.products.len(),
        classifications = s.classifications.len(),
        "subscription set"
    );
    Ok(s)
}

/// `sync status`.
pub fn sync_status(state: &AdminState) -> SyncJson {
    match &state.sync {
        Some(h) => SyncJson::from_status(h.status(), true),
        None => {
            let mut j = SyncJson::default();
            if let Ok(st) = state.store.sync_state() {
                j.anchor = st.sync_anchor;
                j.skipped = st
                    .skipped
                    .into_iter()
                    .map(|k| crate::admin::types::SkippedJson {
                        id: k.id.to_string(),
                        revision: k.revision,
                        reason: k.reason,
                    })
                    .collect();
                if let Some(o) = st.last_sync {
                    j.last_result = Some(if o.success {
                        "ok".into()
                    } else {
                        format!("error: {}", o.message)
                    });
                    j.last_started = unix_rfc3339(o.started_unix);
                    j.last_finished = unix_rfc3339(o.finished_unix);
                }
            }
            j
        }
    }
}

/// `sync`: asks the runner to sync now; answers the status at the time of the request.
pub fn sync_trigger(state: &AdminState) -> ApiResult<SyncJson> {
    let Some(h) = &state.sync else {
        return Err(ApiError::conflict(if state.is_replica() {
            "the sync runner is not running on this server".to_string()
        } else {
            "no upstream configured ([upstream] url): this server is autonomous and does not sync"
                .to_string()
        }));
    };
    let before = h.status();
    if !h.trigger() && !before.running {
        // A pending request already exists (it will run); not an error.
        tracing::debug!("sync already requested");
    }
    Ok(SyncJson::from_status(before, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines() {
        let t = parse_deadline("2026-12-01T18:00:00Z").unwrap();
        assert_eq!(t.unix_timestamp(), 1_796_148_000);
        let d = parse_deadline("2026-12-01").unwrap();
        assert_eq!(d.unix_timestamp(), 1_796_083_200);
        let off = parse_deadline("2026-12-01T19:00:00+01:00").unwrap();
        assert_eq!(off.unix_timestamp(), t.unix_timestamp());
        assert_eq!(parse_deadline("tomorrow").unwrap_err().status, 400);
    }

    #[test]
    fn subscribed_matches_guid_or_title() {
        let id = Uuid::from_u128(7);
        assert!(subscribed(&[], &id, "Windows 11"), "empty = all");
        assert!(subscribed(&[id.to_string()], &id, "x"));
        assert!(subscribed(&["windows 11".into()], &id, "Windows 11"));
        assert!(!subscribed(&["Windows 10".into()], &id, "Windows 11"));
    }
}
