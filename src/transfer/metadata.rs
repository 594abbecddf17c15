//! The store snapshot ([`MetadataSnapshot`]) as the package's `metadata/` files, and the
//! `--approved-only` selection.
//!
//! Files: `info.json` (snapshot header), `updates.jsonl` (software and driver revisions, one
//! `{record, xml}` per line), `categories.jsonl` (categories and detectoids, same shape),
//! `files.json` (content index), `removed.json`, `groups.json`, `approvals.json`
//! (deployments), `declines.json`, `eulas.json`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TransferError;
use crate::model::{ApprovalAction, RevisionKey, UpdateKind};
use crate::store::{MetadataSnapshot, SnapshotRevision, SyncState};

/// Snapshot header (`metadata/info.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Info {
    format: u32,
    server_id: Uuid,
    high_water: u32,
    since: Option<u32>,
    sync_state: SyncState,
}

/// Package paths of the metadata files, in package order.
pub const FILES: [&str; 9] = [
    "metadata/info.json",
    "metadata/updates.jsonl",
    "metadata/categories.jsonl",
    "metadata/files.json",
    "metadata/removed.json",
    "metadata/groups.json",
    "metadata/approvals.json",
    "metadata/declines.json",
    "metadata/eulas.json",
];

fn json<T: Serialize>(path: &str, v: &T) -> Result<Vec<u8>, TransferError> {
    let mut b = serde_json::to_vec_pretty(v).map_err(|e| TransferError::Metadata {
        path: path.into(),
        detail: e.to_string(),
    })?;
    b.push(b'\n');
    Ok(b)
}

fn jsonl<'a>(
    path: &str,
    revs: impl Iterator<Item = &'a SnapshotRevision>,
) -> Result<Vec<u8>, TransferError> {
    let mut b = Vec::new();
    for r in revs {
        serde_json::to_writer(&mut b, r).map_err(|e| TransferError::Metadata {
            path: path.into(),
            detail: e.to_string(),
        })?;
        b.push(b'\n');
    }
    Ok(b)
}

fn is_category(r: &SnapshotRevision) -> bool {
    matches!(r.record.kind, UpdateKind::Category | UpdateKind::Detectoid)
}

/// Serialises a snapshot into `(package path, bytes)` pairs, in [`FILES`] order.
pub fn to_files(s: &MetadataSnapshot) -> Result<Vec<(String, Vec<u8>)>, TransferError> {
    let info = Info {
        format: s.format,
        server_id: s.server_id,
        high_water: s.high_water,
        since: s.since,
        sync_state: s.sync_state.clone(),
    };
    let bodies = [
        json(FILES[0], &info)?,
        jsonl(FILES[1], s.revisions.iter().filter(|r| !is_category(r)))?,
        jsonl(FILES[2], s.revisions.iter().filter(|r| is_category(r)))?,
        json(FILES[3], &s.files)?,
        json(FILES[4], &s.removed)?,
        json(FILES[5], &s.groups)?,
        json(FILES[6], &s.deployments)?,
        json(FILES[7], &s.declined)?,
        json(FILES[8], &s.accepted_eulas)?,
    ];
    Ok(FILES.iter().map(|p| p.to_string()).zip(bodies).collect())
}

fn parse<T: DeserializeOwned>(path: &str, b: &[u8]) -> Result<T, TransferError> {
    serde_json::from_slice(b).map_err(|e| TransferError::Metadata {
        path: path.into(),
        detail: e.to_string(),
    })
}

fn parse_lines(path: &str, b: &[u8], out: &mut Vec<SnapshotRevision>) -> Result<(), TransferError> {
    for (i, line) in b.split(|c| *c == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        out.push(
            serde_json::from_slice(line).map_err(|e| TransferError::Metadata {
                path: path.into(),
                detail: format!("line {}: {e}", i + 1),
            })?,
        );
    }
    Ok(())
}

/// Rebuilds the snapshot from the metadata files; `get` returns a file's bytes by path.
pub fn from_files(
    mut get: impl FnMut(&str) -> Result<Vec<u8>, TransferError>,
) -> Result<MetadataSnapshot, TransferError> {
    let info: Info = parse(FILES[0], &get(FILES[0])?)?;
    let mut revisions = Vec::new();
    parse_lines(FILES[1], &get(FILES[1])?, &mut revisions)?;
    parse_lines(FILES[2], &get(FILES[2])?, &mut revisions)?;
    Ok(MetadataSnapshot {
        format: info.format,
        server_id: info.server_id,
        high_water: info.high_water,
        since: info.since,
        revisions,
        files: parse(FILES[3], &get(FILES[3])?)?,
        removed: parse(FILES[4], &get(FILES[4])?)?,
        groups: parse(FILES[5], &get(FILES[5])?)?,
        deployments: parse(FILES[6], &get(FILES[6])?)?,
        declined: parse(FILES[7], &get(FILES[7])?)?,
        accepted_eulas: parse(FILES[8], &get(FILES[8])?)?,
        sync_state: info.sync_state,
    })
}

/// Every revision key reachable from `seeds` through bundled updates and prerequisites
/// (latest revision of each named update in `all`).
fn closure(
    all: &[SnapshotRevision],
    seeds: impl Iterator<Item = RevisionKey>,
) -> BTreeSet<RevisionKey> {
    let by_key: HashMap<RevisionKey, &SnapshotRevision> =
        all.iter().map(|r| (r.record.key, r)).collect();
    let mut latest: HashMap<Uuid, u32> = HashMap::new();
    for r in all {
        let e = latest.entry(r.record.key.update_id).or_insert(0);
        *e = (*e).max(r.record.key.revision);
    }
    let mut out = BTreeSet::new();
    let mut todo: Vec<RevisionKey> = seeds.filter(|k| by_key.contains_key(k)).collect();
    while let Some(k) = todo.pop() {
        if !out.insert(k) {
            continue;
        }
        let Some(r) = by_key.get(&k) else { continue };
        for id in r
            .record
            .bundled
            .iter()
            .copied()
            .chain(r.record.prerequisite_ids())
        {
            if let Some(rev) = latest.get(&id) {
                todo.push(RevisionKey::new(id, *rev));
            }
        }
    }
    out
}

/// The `--approved-only` selection. `full` is the complete snapshot, `delta` the revisions to
/// consider (all of `full` for a full export, the incremental's for `--since`), and
/// `approved_since_unix` (incremental only) the base export's time: revisions approved after
/// it are added even if older than the base. Keeps categories and detectoids of `delta`,
/// approved (install or scan, not declined) software and drivers with their bundled updates
/// and prerequisites; the content index is cut to the kept revisions' files. Also returns the
/// SHA-1s of the payloads the export may carry: the files of approved updates
/// ([`MetadataSnapshot::approved_files`], the one definition shared with prefetch and admin).
pub fn approved_only(
    full: &MetadataSnapshot,
    mut delta: MetadataSnapshot,
    approved_since_unix: Option<i64>,
) -> (MetadataSnapshot, BTreeSet<[u8; 20]>) {
    let declined: BTreeSet<Uuid> = full.declined.iter().copied().collect();
    let approved = full.deployments.iter().filter(|d| {
        matches!(d.action, ApprovalAction::Install | ApprovalAction::Scan)
            && !declined.contains(&d.update.update_id)
    });
    let wanted = closure(&full.revisions, approved.clone().map(|d| d.update));
    let newly: BTreeSet<RevisionKey> = match approved_since_unix {
        Some(t) => closure(
            &full.revisions,
            approved
                .filter(|d| d.last_change.unix_timestamp() >= t)
                .map(|d| d.update),
        ),
        None => BTreeSet::new(),
    };
    let in_delta: BTreeSet<RevisionKey> = delta.revisions.iter().map(|r| r.record.key).collect();
    let mut kept: BTreeMap<RevisionKey, SnapshotRevision> = BTreeMap::new();
    for r in &full.revisions {
        let k = r.record.key;
        let keep = if is_category(r) {
            in_delta.contains(&k)
        } else {
            wanted.contains(&k) && (in_delta.contains(&k) || newly.contains(&k))
        };
        if keep {
            kept.insert(k, r.clone());
        }
    }
    let sha1s: BTreeSet<[u8; 20]> = kept
        .values()
        .flat_map(|r| r.record.files.iter().map(|f| f.sha1))
        .collect();
    delta.files = full
        .files
        .iter()
        .filter(|f| sha1s.contains(&f.sha1))
        .cloned()
        .collect();
    delta.revisions = kept.into_values().collect();
    let allowed = full.approved_files().iter().map(|f| f.sha1).collect();
    (delta, allowed)
}
