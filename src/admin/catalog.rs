//! A read view of the store for the admin handlers: latest revisions, category titles,
//! approvals, declined updates and groups, loaded once per request, and the conversions to the
//! JSON shapes of [`super::types`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::types::{ApprovalJson, FileJson, GroupJson, UpdateJson};
use super::{ApiError, ApiResult};
use crate::model::{ApprovalAction, CategoryType, Deployment, FileRecord, UpdateKind};
use crate::store::{Store, StoredRevision};

/// RFC 3339 text of a time.
pub fn rfc3339(t: OffsetDateTime) -> Option<String> {
    t.format(&Rfc3339).ok()
}

/// RFC 3339 text of unix seconds.
pub fn unix_rfc3339(unix: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(rfc3339)
}

/// The lower-case name of an action.
pub fn action_name(a: ApprovalAction) -> &'static str {
    match a {
        ApprovalAction::Install => "install",
        ApprovalAction::Uninstall => "uninstall",
        ApprovalAction::Scan => "scan",
        ApprovalAction::Block => "block",
    }
}

/// Category (classification, product, ...) titles and types by id.
pub type Categories = HashMap<Uuid, (String, Option<CategoryType>)>;

/// Everything a listing needs, read once.
pub struct View {
    /// Latest revisions of software and driver updates, by title.
    pub updates: Vec<StoredRevision>,
    /// Category (classification, product, ...) titles and types.
    pub categories: Categories,
    /// Deployments by update id.
    pub approvals: HashMap<Uuid, Vec<Deployment>>,
    /// Declined update ids.
    pub declined: BTreeSet<Uuid>,
    /// Group names by id.
    pub groups: BTreeMap<Uuid, String>,
}

/// The latest revisions split as [`View`] keeps them: software and driver updates sorted by
/// title (then key), and category titles and types.
fn read_revisions(store: &Store) -> ApiResult<(Vec<StoredRevision>, Categories)> {
    let mut updates = Vec::new();
    let mut categories = HashMap::new();
    for r in store.latest_revisions()? {
        match r.record.kind {
            UpdateKind::Software | UpdateKind::Driver => updates.push(r),
            UpdateKind::Category => {
                categories.insert(
                    r.record.key.update_id,
                    (r.record.title.clone(), r.record.category_type),
                );
            }
            UpdateKind::Detectoid => {}
        }
    }
    updates.sort_by(|a, b| {
        a.record
            .title
            .cmp(&b.record.title)
            .then(a.record.key.cmp(&b.record.key))
    });
    Ok((updates, categories))
}

/// One software or driver update by GUID or KB, as [`View::find_one`] resolves it, reading the
/// latest revisions only (not the approvals, declines and groups a whole [`View`] loads).
pub fn find_one_update(store: &Store, arg: &str) -> ApiResult<StoredRevision> {
    let (updates, _) = read_revisions(store)?;
    let i = find_one_in(&updates, arg)?;
    let mut updates = updates;
    Ok(updates.swap_remove(i))
}

/// [`View::find`] over `updates`: indexes of the matches.
fn find_in(updates: &[StoredRevision], arg: &str) -> ApiResult<Vec<usize>> {
    let arg = arg.trim();
    if let Ok(id) = arg.parse::<Uuid>() {
        return updates
            .iter()
            .position(|r| r.record.key.update_id == id)
            .map(|i| vec![i])
            .ok_or_else(|| ApiError::not_found(format!("no update {id}")));
    }
    let kb = arg
        .strip_prefix("KB")
        .or_else(|| arg.strip_prefix("kb"))
        .unwrap_or(arg);
    if !kb.is_empty() && kb.bytes().all(|b| b.is_ascii_digit()) {
        let v: Vec<usize> = (0..updates.len())
            .filter(|&i| updates[i].record.kb.as_deref() == Some(kb))
            .collect();
        if !v.is_empty() {
            return Ok(v);
        }
        return Err(ApiError::not_found(format!("no update with KB{kb}")));
    }
    Err(ApiError::bad(format!(
        "{arg:?} is neither an update GUID nor a KB number"
    )))
}

/// [`View::find_one`] over `updates`: the index of the one match.
fn find_one_in(updates: &[StoredRevision], arg: &str) -> ApiResult<usize> {
    let found = find_in(updates, arg)?;
    if let [one] = found[..] {
        return Ok(one);
    }
    let ids: Vec<String> = found
        .iter()
        .map(|&i| updates[i].record.key.update_id.to_string())
        .collect();
    Err(ApiError::bad(format!(
        "{arg} names {} updates; give one GUID: {}",
        ids.len(),
        ids.join(", ")
    )))
}

impl View {
    /// Reads the store.
    pub fn load(store: &Store) -> ApiResult<View> {
        let (updates, categories) = read_revisions(store)?;
        let mut approvals: HashMap<Uuid, Vec<Deployment>> = HashMap::new();
        for d in store.deployments()? {
            approvals.entry(d.update.update_id).or_default().push(d);
        }
        Ok(View {
            updates,
            categories,
            approvals,
            declined: store.declined_updates()?.into_iter().collect(),
            groups: store
                .groups()?
                .into_iter()
                .map(|g| (g.id, g.name))
                .collect(),
        })
    }

    /// A category's title, else its GUID.
    pub fn category_name(&self, id: &Uuid) -> String {
        self.categories
            .get(id)
            .map(|(t, _)| t.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// Resolves a category argument (GUID or title, case-insensitive) of type `ty`.
    pub fn resolve_category(&self, arg: &str, ty: CategoryType) -> ApiResult<Uuid> {
        if let Ok(id) = arg.parse::<Uuid>() {
            return Ok(id);
        }
        self.categories
            .iter()
            .find(|(_, (t, k))| *k == Some(ty) && t.eq_ignore_ascii_case(arg.trim()))
            .map(|(id, _)| *id)
            .ok_or_else(|| {
                let what = match ty {
                    CategoryType::UpdateClassification => "classification",
                    _ => "product",
                };
                ApiError::not_found(format!(
                    "unknown {what} {arg:?} (see `wsus-edge {what}s list`)"
                ))
            })
    }

    /// Whether an update counts as declined: declined here or upstream, or expired upstream
    /// (WSUS keeps a withdrawn update as declined). The one rule for `updates list` and
    /// `status`.
    pub fn is_declined(&self, rec: &crate::model::UpdateRecord) -> bool {
        rec.expired || self.declined.contains(&rec.key.update_id)
    }

    /// Whether an update has approvals (install or uninstall).
    pub fn is_approved(&self, id: &Uuid) -> bool {
        self.approvals.get(id).is_some_and(|v| {
            v.iter().any(|d| {
                matches!(
                    d.action,
                    ApprovalAction::Install | ApprovalAction::Uninstall
                )
            })
        })
    }

    /// The JSON of one update.
    pub fn update_json(&self, r: &StoredRevision) -> UpdateJson {
        let rec = &r.record;
        let id = rec.key.update_id;
        let mut approvals: Vec<ApprovalJson> = Vec::new();
        let mut other: Vec<ApprovalJson> = Vec::new();
        for d in self.approvals.get(&id).map(Vec::as_slice).unwrap_or(&[]) {
            let j = ApprovalJson {
                group: self
                    .groups
                    .get(&d.group)
                    .cloned()
                    .unwrap_or_else(|| d.group.to_string()),
                group_id: d.group.to_string(),
                action: action_name(d.action).to_string(),
                deadline: d.deadline.and_then(rfc3339),
            };
            match d.action {
                ApprovalAction::Install | ApprovalAction::Uninstall => approvals.push(j),
                ApprovalAction::Scan | ApprovalAction::Block => other.push(j),
            }
        }
        approvals.sort_by(|a, b| a.group.cmp(&b.group));
        other.sort_by(|a, b| a.group.cmp(&b.group));
        UpdateJson {
            id: id.to_string(),
            revision: rec.key.revision,
            title: rec.title.clone(),
            kb: rec.kb.clone(),
            classification: rec.classification.map(|c| self.category_name(&c)),
            classification_id: rec.classification.map(|c| c.to_string()),
            products: rec.products.iter().map(|p| self.category_name(p)).collect(),
            product_ids: rec.products.iter().map(|p| p.to_string()).collect(),
            // WSUS keeps an update expired upstream as declined.
            declined: self.declined.contains(&id) || rec.expired,
            expired: rec.expired,
            approvals,
            other_deployments: other,
            size: rec.files.iter().map(|f| f.size).sum(),
        }
    }

    /// Finds updates by GUID, or by KB number (`KB5040000` or `5040000`; all that match).
    pub fn find(&self, arg: &str) -> ApiResult<Vec<&StoredRevision>> {
        Ok(find_in(&self.updates, arg)?
            .into_iter()
            .map(|i| &self.updates[i])
            .collect())
    }

    /// Like [`Self::find`], for verbs about one update: a KB that names several is refused
    /// with their GUIDs.
    pub fn find_one(&self, arg: &str) -> ApiResult<&StoredRevision> {
        Ok(&self.updates[find_one_in(&self.updates, arg)?])
    }

    /// Resolves a group argument: GUID or name (case-insensitive).
    pub fn resolve_group(&self, arg: &str) -> ApiResult<Uuid> {
        resolve_group(&self.groups, arg)
    }
}

/// Resolves a group (GUID or case-insensitive name) among `groups`.
pub fn resolve_group(groups: &BTreeMap<Uuid, String>, arg: &str) -> ApiResult<Uuid> {
    let arg = arg.trim();
    if let Ok(id) = arg.parse::<Uuid>() {
        if groups.contains_key(&id) {
            return Ok(id);
        }
    }
    groups
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(arg))
        .map(|(id, _)| *id)
        .ok_or_else(|| {
            ApiError::not_found(format!("no group {arg:?} (see `wsus-edge groups list`)"))
        })
}

/// The JSON of a group.
pub fn group_json(id: &Uuid, name: &str, parent: Option<Uuid>) -> GroupJson {
    GroupJson {
        id: id.to_string(),
        name: name.to_string(),
        parent: parent.map(|p| p.to_string()),
    }
}

/// The JSON of a file; `base` is the URL clients use for this server.
pub fn file_json(f: &FileRecord, base: &str, cached: bool) -> FileJson {
    FileJson {
        name: f.name.clone(),
        size: f.size,
        sha1: hex::encode(f.sha1),
        sha256: f.sha256.map(hex::encode),
        url: format!("{}/{}", base.trim_end_matches('/'), f.content_path()),
        upstream_url: f.upstream_url.clone(),
        cached,
    }
}
