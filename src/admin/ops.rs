//! Handlers of the operational verbs: health, metrics, `status`, `content status/verify/
//! prefetch` and `cleanup`. Verification and cleanup work on the store's object index and the
//! content folder (`<data_dir>/content/XX/<SHA1>.<ext>`); downloads go through [`ContentOps`].

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use sha1::Digest;
use uuid::Uuid;

use super::catalog::{unix_rfc3339, View};
use super::types::*;
use super::{full, json, with_type, AdminBody, AdminState, ApiError, ApiResult};
use crate::config::ContentMode;
use crate::metrics;
use crate::model::{ApprovalAction, FileRecord, RevisionKey};
use crate::store::ObjectMeta;

/// `GET /healthz`: `ok` when the store answers, 503 otherwise. No token needed.
pub fn healthz(state: &AdminState) -> Response<AdminBody> {
    match state.store.server_id() {
        Ok(_) => with_type(StatusCode::OK, "text/plain; charset=utf-8", full("ok\n")),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            with_type(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                full("unhealthy: metadata store\n"),
            )
        }
    }
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
    with_type(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        full(text),
    )
}

/// Where an object lives in the content folder.
pub fn object_path(content_dir: &Path, sha1: &[u8; 20], ext: &str) -> PathBuf {
    let hexname = hex::encode_upper(sha1);
    let name = if ext.is_empty() {
        hexname
    } else {
        format!("{hexname}.{ext}")
    };
    content_dir.join(format!("{:02X}", sha1[19])).join(name)
}

fn rel_name(sha1: &[u8; 20], ext: &str) -> String {
    let p = object_path(Path::new(""), sha1, ext);
    p.to_string_lossy().into_owned()
}

/// Files of updates approved for install (latest revisions), deduplicated by SHA-1.
fn approved_files(state: &AdminState) -> ApiResult<Vec<FileRecord>> {
    let mut keys: BTreeSet<RevisionKey> = BTreeSet::new();
    for d in state.store.deployments()? {
        if d.action == ApprovalAction::Install {
            keys.insert(d.update);
        }
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for k in keys {
        let rev = match state.store.latest_revision(&k.update_id)? {
            Some(r) => r,
            None => continue,
        };
        for f in rev.record.files {
            if seen.insert(f.sha1) {
                out.push(f);
            }
        }
    }
    Ok(out)
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
            updates = v.updates.len();
            approved = v
                .updates
                .iter()
                .filter(|r| v.is_approved(&r.record.key.update_id))
                .count();
            declined = v.declined.len();
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

/// SHA-1, SHA-256 and length of a file, in one pass.
pub fn hash_file(path: &Path) -> std::io::Result<([u8; 20], [u8; 32], u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut s1 = sha1::Sha1::new();
    let mut s256 = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf)?;
        if r == 0 {
            break;
        }
        s1.update(&buf[..r]);
        s256.update(&buf[..r]);
        n += r as u64;
    }
    Ok((s1.finalize().into(), s256.finalize().into(), n))
}

/// Why a stored object is bad, or `None` when it verifies.
fn check_object(
    state: &AdminState,
    path: &Path,
    sha1: &[u8; 20],
    meta: &ObjectMeta,
) -> std::io::Result<Option<String>> {
    let (d1, d256, len) = hash_file(path)?;
    if len != meta.size {
        return Ok(Some(format!("size {len}, indexed {}", meta.size)));
    }
    if d1 != *sha1 {
        return Ok(Some("SHA-1 differs from its name".into()));
    }
    if d256 != meta.sha256 {
        return Ok(Some("SHA-256 differs from the index".into()));
    }
    if let Ok(Some(f)) = state.store.expected_file(sha1) {
        if f.sha256.is_some_and(|s| s != d256) || f.size != len {
            return Ok(Some("differs from the update's declared digests".into()));
        }
    }
    Ok(None)
}

/// Moves a bad object into `<data_dir>/quarantine/` and drops it from the index.
fn quarantine(
    state: &AdminState,
    path: &Path,
    sha1: &[u8; 20],
    meta: &ObjectMeta,
) -> std::io::Result<()> {
    let qdir = state.config.server.data_dir.join("quarantine");
    std::fs::create_dir_all(&qdir)?;
    let name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    std::fs::rename(path, qdir.join(name))?;
    if let Err(e) = state.store.remove_object(sha1) {
        tracing::warn!(error = %e, "could not drop a quarantined object from the index");
    }
    if let Some(c) = &state.content {
        c.forget(sha1, meta.size);
    }
    Ok(())
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
    let mut last = std::time::Instant::now();
    for (sha1, meta) in &objects {
        let path = object_path(&dir, sha1, &meta.ext);
        let name = rel_name(sha1, &meta.ext);
        match check_object(state, &path, sha1, meta) {
            Ok(None) => p.bytes += meta.size,
            Ok(Some(why)) => {
                tracing::warn!(object = %name, %why, "content verify: bad object, quarantined");
                metrics::hash_mismatch();
                match quarantine(state, &path, sha1, meta) {
                    Ok(()) => p.quarantined.push(name),
                    Err(e) => {
                        p.error = Some(format!("{name}: cannot quarantine: {e}"));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(object = %name, "content verify: indexed object missing on disk");
                let _ = state.store.remove_object(sha1);
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
    for (sha1, meta) in &files {
        let path = object_path(&dir, sha1, &meta.ext);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "removing {}: {e}",
                    path.display()
                )))
            }
        }
        state.store.remove_object(sha1)?;
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
