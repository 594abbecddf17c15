//! Handlers of the operational verbs: health, metrics, `status`, `content status/verify/
//! prefetch` and `cleanup`. They decide which objects to check or drop; the files themselves
//! are only touched through [`crate::content::maintain`], downloads go through `ContentOps`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use uuid::Uuid;

use super::catalog::{unix_rfc3339, View};
use super::types::*;
use super::{full, json, with_type, AdminBody, AdminState, ApiError, ApiResult};
use crate::config::ContentMode;
use crate::content::index::ObjectEntry;
use crate::content::maintain::{self, Maintenance, Verdict};
use crate::metrics;
use crate::model::{FileRecord, RevisionKey};
use crate::store::ObjectMeta;

/// Key the health check writes (and so proves the store still takes writes).
const HEALTH_PROBE_KEY: &str = "health.probe";

/// `GET /healthz`: `ok` when the metadata store reads and takes a write and the data dir's
/// file system has `content.min_free` free; else 503 with the reason on one line
/// (`unhealthy: metadata store: ...`, `unhealthy: disk: ...`). No token needed.
pub fn healthz(state: &AdminState) -> Response<AdminBody> {
    let unhealthy = |reason: String| {
        tracing::warn!(reason, "health check failed");
        with_type(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            full(format!("unhealthy: {reason}\n")),
        )
    };
    if let Some(reason) = state.store.failure() {
        return unhealthy(format!("metadata store: {reason}"));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
    let store = state.store.server_id().and_then(|_| {
        state
            .store
            .set_setting(HEALTH_PROBE_KEY, Some(now.as_bytes()))
    });
    if let Err(e) = store {
        return unhealthy(format!("metadata store: {e}"));
    }
    let floor = state.config.content.min_free;
    if floor > 0 {
        match crate::content::store::free_bytes(&state.config.server.data_dir) {
            Ok(free) if free < floor => {
                return unhealthy(format!(
                    "disk: {free} bytes free under {}, below content.min_free ({floor})",
                    state.config.server.data_dir.display()
                ))
            }
            Ok(_) => {}
            Err(e) => return unhealthy(format!("disk: {e}")),
        }
    }
    with_type(StatusCode::OK, "text/plain; charset=utf-8", full("ok\n"))
}

/// Refreshes the registry's gauges that are derived from the store and the sync runner
/// (clients seen, last successful sync: also right after a restart), and renders the
/// admin-only gauges appended to the registry's text.
fn refresh_and_extra(state: &AdminState) -> String {
    use std::fmt::Write;
    if let Ok(c) = state.store.computers() {
        metrics::set_clients_seen(c.len() as u64);
    }
    let live = state.sync.as_ref().map(|h| h.status());
    let finished = live
        .as_ref()
        .filter(|s| s.last_result.as_deref() == Some("ok"))
        .and_then(|s| {
            let end = time::OffsetDateTime::parse(
                s.last_finished.as_deref()?,
                &time::format_description::well_known::Rfc3339,
            )
            .ok()?;
            Some((end.unix_timestamp(), s.last_duration_secs.unwrap_or(0.0)))
        });
    let stored = state.store.sync_state().ok().and_then(|s| s.last_success);
    let best = match (finished, stored) {
        (Some(a), Some(b)) if b.finished_unix > a.0 => {
            Some((b.finished_unix, (b.finished_unix - b.started_unix) as f64))
        }
        (Some(a), _) => Some(a),
        (None, Some(b)) => Some((b.finished_unix, (b.finished_unix - b.started_unix) as f64)),
        (None, None) => None,
    };
    if let Some((end, dur)) = best.filter(|(e, _)| *e > 0) {
        metrics::sync_succeeded(end as u64, dur.max(0.0));
    }
    let mut s = String::new();
    let mut gauge = |name: &str, help: &str, v: f64| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    if let Some(st) = &live {
        gauge(
            "wsus_edge_sync_running",
            "1 while a sync runs.",
            f64::from(u8::from(st.running)),
        );
        if let Some(r) = &st.last_result {
            gauge(
                "wsus_edge_sync_last_result_success",
                "1 when the last finished sync succeeded, 0 when it failed.",
                f64::from(u8::from(r == "ok")),
            );
        }
    }
    if let Ok(objects) = state.store.objects() {
        gauge(
            "wsus_edge_content_stored_bytes",
            "Bytes held in the content cache.",
            objects.iter().map(|(_, m)| m.size).sum::<u64>() as f64,
        );
        gauge(
            "wsus_edge_content_stored_objects",
            "Objects held in the content cache.",
            objects.len() as f64,
        );
    }
    s.push_str(&super::compliance::metrics_text(&state.store));
    s
}

/// `GET /metrics`: the registry ([`metrics::render`]) plus admin-derived gauges.
pub async fn metrics_text(state: &Arc<AdminState>) -> Response<AdminBody> {
    let s = state.clone();
    let extra = tokio::task::spawn_blocking(move || refresh_and_extra(&s))
        .await
        .unwrap_or_default();
    let mut text = metrics::render();
    text.push_str(&extra);
    text.push_str(&metrics::system(&state.config.server.data_dir));
    with_type(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        full(text),
    )
}

/// Files of approved updates ([`Store::approved_files`], the one definition).
fn approved_files(state: &AdminState) -> ApiResult<Vec<FileRecord>> {
    Ok(state.store.approved_files()?)
}

/// `content status`.
pub fn content_status(state: &AdminState) -> ContentStatusJson {
    let objects = state.store.objects().unwrap_or_default();
    let hits = metrics::content_requests("hit");
    let misses = metrics::content_requests("miss");
    let coalesced = metrics::content_requests("coalesced");
    let total = hits + misses + coalesced;
    let approved_missing = approved_files(state)
        .map(|v| {
            v.iter()
                .filter(|f| matches!(state.store.get_object(&f.sha1), Ok(None)))
                .count() as u64
        })
        .unwrap_or(0);
    ContentStatusJson {
        bytes_stored: objects.iter().map(|(_, m)| m.size).sum(),
        objects: objects.len() as u64,
        max_size: state.config.content.max_size,
        hits,
        misses,
        coalesced,
        errors: metrics::content_requests("error"),
        hit_ratio: (total > 0).then(|| hits as f64 / total as f64),
        bytes_saved: metrics::content_bytes("cache"),
        bytes_upstream: metrics::content_bytes("upstream"),
        approved_missing,
        mode: match state.config.content.mode {
            ContentMode::Prefetch => "prefetch",
            ContentMode::OnDemand => "on-demand",
        }
        .into(),
    }
}

/// `status`: health and the headline numbers.
pub fn status_json(state: &AdminState) -> StatusJson {
    let mut problems = Vec::new();
    let server_id = match state.store.server_id() {
        Ok(id) => id.to_string(),
        Err(e) => {
            problems.push(format!("metadata store: {e}"));
            String::new()
        }
    };
    let sync = super::api::sync_status(state);
    if state.is_replica() {
        if !sync.available {
            problems.push("replica without a sync runner".into());
        }
        if let Some(r) = sync.last_result.as_deref().filter(|r| *r != "ok") {
            problems.push(format!("last sync failed: {r}"));
        }
    }
    let (mut updates, mut approved, mut declined) = (0, 0, 0);
    match View::load(&state.store) {
        Ok(v) => {
            // As `updates list` counts them: an expired update is declined, and a declined
            // one is not approved.
            updates = v.updates.len();
            declined = v
                .updates
                .iter()
                .filter(|r| v.is_declined(&r.record))
                .count();
            approved = v
                .updates
                .iter()
                .filter(|r| !v.is_declined(&r.record) && v.is_approved(&r.record.key.update_id))
                .count();
        }
        Err(e) => problems.push(e.message),
    }
    let computers = state.store.computers().unwrap_or_default();
    let with_failures = computers
        .iter()
        .filter(|c| {
            state
                .store
                .status_counts(&c.id)
                .map(|s| s.failed > 0)
                .unwrap_or(false)
        })
        .count();
    let content = content_status(state);
    if let Some(max) = content.max_size {
        if content.bytes_stored > max {
            problems.push("content store above content.max_size".into());
        }
    }
    let last_sync_success = state
        .store
        .sync_state()
        .ok()
        .and_then(|s| s.last_success)
        .and_then(|o| unix_rfc3339(o.finished_unix));
    StatusJson {
        health: if problems.is_empty() {
            "ok"
        } else {
            "degraded"
        }
        .into(),
        problems,
        version: env!("CARGO_PKG_VERSION").into(),
        mode: if state.is_replica() {
            "replica"
        } else {
            "autonomous"
        }
        .into(),
        upstream: state.config.upstream.url.clone(),
        server_id,
        listen: state.config.server.listen.to_string(),
        updates,
        approved,
        declined,
        computers: computers.len(),
        computers_with_failures: with_failures,
        sync,
        last_sync_success,
        content,
    }
}

/// `GET /api/status`.
pub async fn status(state: &Arc<AdminState>) -> Response<AdminBody> {
    let s = state.clone();
    match tokio::task::spawn_blocking(move || status_json(&s)).await {
        Ok(v) => json(StatusCode::OK, &v),
        Err(e) => super::error(&ApiError::internal(e.to_string())),
    }
}

/// The blocking body of `content verify`: re-hashes every indexed object, quarantines bad
/// ones, drops missing ones from the index; `progress` receives each progress line.
pub fn verify_blocking(
    state: &AdminState,
    mut progress: impl FnMut(&VerifyProgressJson),
) -> VerifyProgressJson {
    let mut p = VerifyProgressJson::default();
    let objects = match state.store.objects() {
        Ok(o) => o,
        Err(e) => {
            p.finished = true;
            p.error = Some(format!("metadata store: {e}"));
            return p;
        }
    };
    p.total = objects.len() as u64;
    progress(&p);
    let dir = state.config.content_dir();
    let qdir = state.config.server.data_dir.join("quarantine");
    let m = Maintenance::new(&dir, &qdir, &state.store);
    let mut last = std::time::Instant::now();
    for (sha1, meta) in &objects {
        let name = maintain::object_name(sha1, &meta.ext);
        let entry = ObjectEntry::from(meta.clone());
        match m.check(sha1, &entry) {
            Ok(Verdict::Good) => p.bytes += meta.size,
            Ok(Verdict::Bad(why)) => {
                tracing::warn!(object = %name, %why, "content verify: bad object, quarantined");
                metrics::hash_mismatch();
                match m.quarantine(sha1, &meta.ext) {
                    Ok(()) => {
                        if let Some(c) = &state.content {
                            c.forget(sha1, meta.size);
                        }
                        p.quarantined.push(name)
                    }
                    Err(e) => {
                        p.error = Some(format!("{name}: cannot quarantine: {e}"));
                    }
                }
            }
            Ok(Verdict::Missing) => {
                tracing::warn!(object = %name, "content verify: indexed object missing on disk");
                let _ = m.forget_missing(sha1);
                if let Some(c) = &state.content {
                    c.forget(sha1, meta.size);
                }
                p.missing.push(name);
            }
            Err(e) => p.error = Some(format!("{name}: {e}")),
        }
        p.done += 1;
        if last.elapsed() >= std::time::Duration::from_millis(200) {
            last = std::time::Instant::now();
            progress(&p);
        }
    }
    p.finished = true;
    p
}

/// `POST /api/content/verify`: streams NDJSON progress lines, the last one `finished`.
pub async fn verify(state: Arc<AdminState>) -> Response<AdminBody> {
    let Ok(guard) = state.maintenance.clone().try_lock_owned() else {
        return super::error(&ApiError::conflict(
            "another content verify, prefetch or cleanup is running",
        ));
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        let _guard = guard;
        let line = |p: &VerifyProgressJson| {
            let mut v = serde_json::to_vec(p).unwrap_or_default();
            v.push(b'\n');
            Bytes::from(v)
        };
        let fin = verify_blocking(&st, |p| {
            // A gone client does not stop the check.
            let _ = tx.blocking_send(line(p));
        });
        tracing::info!(
            checked = fin.done,
            quarantined = fin.quarantined.len(),
            missing = fin.missing.len(),
            "content verify finished"
        );
        let _ = tx.blocking_send(line(&fin));
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::io::Error>(Frame::data(b)), rx))
    });
    with_type(
        StatusCode::OK,
        "application/x-ndjson",
        StreamBody::new(stream).boxed(),
    )
}

/// `POST /api/content/prefetch`: downloads the files of approved updates that are not cached.
pub async fn prefetch(state: &Arc<AdminState>) -> ApiResult<PrefetchJson> {
    let Some(content) = state.content.clone() else {
        return Err(ApiError::conflict(
            "no content cache is attached to this server",
        ));
    };
    let Ok(_guard) = state.maintenance.try_lock() else {
        return Err(ApiError::conflict(
            "another content verify, prefetch or cleanup is running",
        ));
    };
    let s = state.clone();
    let files = tokio::task::spawn_blocking(move || approved_files(&s))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let mut out = PrefetchJson {
        files: files.len() as u64,
        ..Default::default()
    };
    for f in &files {
        if state.store.get_object(&f.sha1)?.is_some() {
            out.cached += 1;
            continue;
        }
        match content.ensure(f).await {
            Ok(()) => out.downloaded += 1,
            Err(e) => out.failed.push(format!("{}: {e}", f.name)),
        }
    }
    tracing::info!(
        downloaded = out.downloaded,
        failed = out.failed.len(),
        "prefetch finished"
    );
    Ok(out)
}

/// Why an update is no longer needed, or `None` when it is kept. Approved updates are
/// always kept; declined, expired or superseded (by an update stored here) ones go.
fn cleanup_reason(
    id: &Uuid,
    expired: bool,
    v: &View,
    superseded: &HashSet<Uuid>,
) -> Option<&'static str> {
    if v.is_approved(id) {
        return None;
    }
    if v.declined.contains(id) {
        Some("declined")
    } else if expired {
        Some("expired")
    } else if superseded.contains(id) {
        Some("superseded")
    } else {
        None
    }
}

fn cleanup_blocking(state: &AdminState, dry_run: bool) -> ApiResult<CleanupJson> {
    let v = View::load(&state.store)?;
    let superseded: HashSet<Uuid> = v
        .updates
        .iter()
        .flat_map(|r| r.record.supersedes.iter().copied())
        .collect();
    let mut out = CleanupJson {
        dry_run,
        ..Default::default()
    };
    let mut doomed_ids = HashSet::new();
    let mut doomed_keys: Vec<RevisionKey> = Vec::new();
    let grace = state.config.cleanup.keep_needed_for;
    let since = time::OffsetDateTime::now_utc().unix_timestamp() - grace.as_secs() as i64;
    let recent = super::compliance::recently_needed(&state.store, since)?;
    for r in &v.updates {
        let id = r.record.key.update_id;
        if let Some(why) = cleanup_reason(&id, r.record.expired, &v, &superseded) {
            if let Some(n) = recent.get(&id) {
                out.kept.push(format!(
                    "{id}  {}  ({why}, kept: needed by {} and failed on {} computer(s) within {})",
                    r.record.title,
                    n.needed,
                    n.failed,
                    super::compliance::short_duration(grace)
                ));
                continue;
            }
            out.updates
                .push(format!("{id}  {}  ({why})", r.record.title));
            doomed_ids.insert(id);
            for rev in state.store.revisions_of(&id)? {
                doomed_keys.push(rev.record.key);
            }
        }
    }
    // Files still needed by a kept update (any stored revision) stay.
    let mut needed: HashSet<[u8; 20]> = HashSet::new();
    for r in state.store.latest_revisions()? {
        if !doomed_ids.contains(&r.record.key.update_id) {
            needed.extend(r.record.files.iter().map(|f| f.sha1));
        }
    }
    let mut files: BTreeMap<[u8; 20], ObjectMeta> = BTreeMap::new();
    for r in v
        .updates
        .iter()
        .filter(|r| doomed_ids.contains(&r.record.key.update_id))
    {
        for f in &r.record.files {
            if needed.contains(&f.sha1) {
                continue;
            }
            if let Some(m) = state.store.get_object(&f.sha1)? {
                files.insert(f.sha1, m);
            }
        }
    }
    out.revisions = doomed_keys.len() as u64;
    out.files = files.len() as u64;
    out.bytes = files.values().map(|m| m.size).sum();
    if dry_run {
        return Ok(out);
    }
    let dir = state.config.content_dir();
    let qdir = state.config.server.data_dir.join("quarantine");
    let m = Maintenance::new(&dir, &qdir, &state.store);
    for (sha1, meta) in &files {
        m.remove(sha1, &meta.ext).map_err(|e| {
            ApiError::internal(format!(
                "removing {}: {e}",
                maintain::object_name(sha1, &meta.ext)
            ))
        })?;
        if let Some(c) = &state.content {
            c.forget(sha1, meta.size);
        }
    }
    state.store.remove_revisions(&doomed_keys)?;
    state.store.flush()?;
    tracing::info!(
        updates = doomed_ids.len(),
        files = out.files,
        bytes = out.bytes,
        "cleanup finished"
    );
    Ok(out)
}

/// `POST /api/cleanup[?dry_run=1]`.
pub async fn cleanup(state: &Arc<AdminState>, dry_run: bool) -> ApiResult<CleanupJson> {
    let Ok(_guard) = state.maintenance.try_lock() else {
        return Err(ApiError::conflict(
            "another content verify, prefetch or cleanup is running",
        ));
    };
    let s = state.clone();
    tokio::task::spawn_blocking(move || cleanup_blocking(&s, dry_run))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
}
