//! The JSON shapes of the admin API, shared by the server (serialize) and the CLI
//! (deserialize). Field names are a contract (issue 7, "Interface to keep"): add fields, never
//! rename or remove them.

use serde::{Deserialize, Serialize};

/// One approval of an update, as `updates list --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalJson {
    /// Target group name.
    pub group: String,
    /// Target group GUID.
    pub group_id: String,
    /// `install` | `uninstall` (`scan` | `block` in `other_deployments`).
    pub action: String,
    /// RFC 3339 deadline, or null.
    pub deadline: Option<String>,
}

/// One update (latest revision), as `updates list --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateJson {
    /// UpdateID GUID.
    pub id: String,
    /// Latest revision number.
    pub revision: u32,
    /// English title.
    pub title: String,
    /// KB number (digits, no `KB` prefix), or null.
    pub kb: Option<String>,
    /// Classification title (its GUID when the category is unknown), or null.
    pub classification: Option<String>,
    /// Classification GUID, or null.
    pub classification_id: Option<String>,
    /// Product titles (GUIDs when unknown).
    pub products: Vec<String>,
    /// Product GUIDs.
    pub product_ids: Vec<String>,
    /// Declined (hidden); also true when expired upstream.
    pub declined: bool,
    /// Expired upstream (withdrawn: kept as declined, never offered to clients).
    pub expired: bool,
    /// Approvals: `install` and `uninstall` deployments only.
    pub approvals: Vec<ApprovalJson>,
    /// Other deployments from upstream (`scan` = detection only, `block` = not approved for
    /// that group), same shape.
    #[serde(default)]
    pub other_deployments: Vec<ApprovalJson>,
    /// Total payload size declared, bytes.
    pub size: u64,
}

/// A payload file of an update (`updates show --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileJson {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-1, lower-case hex.
    pub sha1: String,
    /// SHA-256, lower-case hex, or null when not declared.
    pub sha256: Option<String>,
    /// Where clients of this server download it (`.../Content/XX/<SHA1>.<ext>`).
    pub url: String,
    /// Where upstream says it lives, or null.
    pub upstream_url: Option<String>,
    /// Whether the file is in the local cache.
    pub cached: bool,
}

/// `updates show --json`: the list object plus files and related ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateDetailJson {
    /// The same fields as in the list.
    #[serde(flatten)]
    pub update: UpdateJson,
    /// Payload files.
    pub files: Vec<FileJson>,
    /// Updates this one supersedes.
    pub supersedes: Vec<String>,
    /// Updates stored here that supersede this one.
    pub superseded_by: Vec<String>,
    /// `CreationDate` as published, or null.
    pub creation_date: Option<String>,
}

/// A target group (`groups list --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupJson {
    /// Group GUID.
    pub id: String,
    /// Name.
    pub name: String,
    /// Parent GUID, null for All Computers.
    pub parent: Option<String>,
}

/// A client computer (`computers list --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputerJson {
    /// Client id (GUID string).
    pub id: String,
    /// DNS name.
    pub name: String,
    /// Group names (Unassigned Computers when none is assigned).
    pub groups: Vec<String>,
    /// RFC 3339 time of the last SyncUpdates, or null.
    pub last_sync: Option<String>,
    /// RFC 3339 time of the last event report, or null.
    pub last_report: Option<String>,
    /// Updates needed.
    pub needed: usize,
    /// Updates installed.
    pub installed: usize,
    /// Updates whose last attempt failed.
    pub failed: usize,
    /// The downstream server the computer was rolled up from (its name); null for this
    /// server's own clients.
    #[serde(default)]
    pub downstream_server: Option<String>,
}

/// One update's status on a computer (`computers show`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputerUpdateJson {
    /// UpdateID.
    pub id: String,
    /// Title when known.
    pub title: Option<String>,
    /// `installed` | `needed` | `failed` | `not_applicable` (same as `state`; kept for scripts).
    pub status: String,
    /// `installed` | `needed` | `failed` | `not_applicable`.
    #[serde(default)]
    pub state: String,
    /// RFC 3339 time the update took this state on the computer.
    #[serde(default)]
    pub last_change: Option<String>,
    /// The failure's HRESULT as `0x8024XXXX`, for `failed`.
    #[serde(default)]
    pub error_code: Option<String>,
}

/// `computers show --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputerDetailJson {
    /// The list fields.
    #[serde(flatten)]
    pub computer: ComputerJson,
    /// OS version as reported.
    pub os_version: Option<String>,
    /// Agent version as reported.
    pub client_version: Option<String>,
    /// RFC 3339 first registration.
    pub registered: Option<String>,
    /// Target groups the client asked for (client-side targeting).
    pub requested_groups: Vec<String>,
    /// Per-update status.
    pub updates: Vec<ComputerUpdateJson>,
}

/// A category (`classifications list`, `products list`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryJson {
    /// Category GUID.
    pub id: String,
    /// Title.
    pub title: String,
    /// Whether sync downloads updates of this category.
    pub subscribed: bool,
    /// Software updates stored here in this category.
    pub updates: usize,
}

/// What sync downloads (`subscription set`). Empty lists mean "all".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionJson {
    /// Product GUIDs or titles.
    pub products: Vec<String>,
    /// Classification GUIDs or titles.
    pub classifications: Vec<String>,
}

/// `POST /api/updates/approve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproveRequest {
    /// Update GUIDs (or KB numbers).
    pub ids: Vec<String>,
    /// Group name or GUID.
    pub group: String,
    /// `install` (default) or `uninstall`.
    #[serde(default)]
    pub action: Option<String>,
    /// RFC 3339 deadline or `YYYY-MM-DD`.
    #[serde(default)]
    pub deadline: Option<String>,
}

/// `POST /api/updates/decline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdsRequest {
    /// Update GUIDs (or KB numbers).
    pub ids: Vec<String>,
}

/// `POST /api/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGroupRequest {
    /// Name.
    pub name: String,
    /// Parent name or GUID (default All Computers).
    #[serde(default)]
    pub parent: Option<String>,
}

/// The answer of a write: what changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedJson {
    /// Human summary.
    pub message: String,
    /// Ids affected.
    pub ids: Vec<String>,
}

/// `content status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentStatusJson {
    /// Bytes stored in the cache.
    pub bytes_stored: u64,
    /// Objects stored.
    pub objects: u64,
    /// `content.max_size`, or null when unbounded.
    pub max_size: Option<u64>,
    /// Payload requests answered from the cache (since start).
    pub hits: u64,
    /// Payload requests that started a download.
    pub misses: u64,
    /// Payload requests that joined a running download.
    pub coalesced: u64,
    /// Payload requests that failed.
    pub errors: u64,
    /// hits / (hits + misses + coalesced), or null before any request.
    pub hit_ratio: Option<f64>,
    /// Bytes served from the cache: traffic the uplink did not carry.
    pub bytes_saved: u64,
    /// Bytes received from upstream.
    pub bytes_upstream: u64,
    /// Files declared by approved updates that are not cached yet.
    pub approved_missing: u64,
    /// `prefetch` or `on-demand`.
    pub mode: String,
}

/// One line of the `content verify` progress stream (NDJSON), and its final summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyProgressJson {
    /// Objects checked so far.
    pub done: u64,
    /// Objects to check.
    pub total: u64,
    /// Bytes hashed so far.
    pub bytes: u64,
    /// Bad objects moved to quarantine so far (`XX/<SHA1>.<ext>` names).
    pub quarantined: Vec<String>,
    /// Objects indexed but missing on disk (dropped from the index).
    pub missing: Vec<String>,
    /// True on the last line.
    pub finished: bool,
    /// Set on the last line when the check could not complete.
    pub error: Option<String>,
}

/// `content prefetch`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefetchJson {
    /// Files of approved updates considered.
    pub files: u64,
    /// Already cached.
    pub cached: u64,
    /// Downloaded now.
    pub downloaded: u64,
    /// Failures (`name: reason`).
    pub failed: Vec<String>,
}

/// `cleanup [--dry-run]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupJson {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Updates (whose revisions are) removed: `id  title  (reason)`.
    pub updates: Vec<String>,
    /// Updates that would otherwise go but are kept because computers reported them needed or
    /// failed within `[cleanup] keep_needed_for`: `id  title  (why)`.
    #[serde(default)]
    pub kept: Vec<String>,
    /// Revisions removed.
    pub revisions: u64,
    /// Content files removed (no remaining update needs them).
    pub files: u64,
    /// Bytes of content freed.
    pub bytes: u64,
}

/// `status`: one screen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusJson {
    /// `ok` or `degraded`.
    pub health: String,
    /// Problems found (empty when healthy).
    pub problems: Vec<String>,
    /// Version of the server.
    pub version: String,
    /// `replica` (of `upstream`) or `autonomous`.
    pub mode: String,
    /// Upstream URL in replica mode.
    pub upstream: Option<String>,
    /// Server GUID.
    pub server_id: String,
    /// Client listener.
    pub listen: String,
    /// Updates (software and drivers, latest revisions).
    pub updates: usize,
    /// Approved updates (not declined).
    pub approved: usize,
    /// Declined updates, expired ones included (as `updates list --declined`).
    pub declined: usize,
    /// Computers known.
    pub computers: usize,
    /// Computers whose last attempt at some update failed.
    pub computers_with_failures: usize,
    /// The sync runner's view.
    pub sync: SyncJson,
    /// RFC 3339 end of the last successful sync recorded in the store.
    pub last_sync_success: Option<String>,
    /// The cache.
    pub content: ContentStatusJson,
}

/// An error answer: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorJson {
    /// One line.
    pub error: String,
}

/// `sync status --json`: the sync runner's status (mirrors [`crate::sync::SyncStatus`]) plus
/// whether this server syncs at all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncJson {
    /// False in autonomous mode (no upstream) or when no runner is attached.
    pub available: bool,
    /// A sync is running now.
    pub running: bool,
    /// Current phase.
    pub phase: Option<String>,
    /// Items done in the current phase.
    pub done: u64,
    /// Items expected in the current phase (0 when unknown).
    pub total: u64,
    /// `ok` or `error: <reason>` for the last finished sync.
    pub last_result: Option<String>,
    /// RFC 3339 start of the last (or current) sync.
    pub last_started: Option<String>,
    /// RFC 3339 end of the last finished sync.
    pub last_finished: Option<String>,
    /// Wall time of the last finished sync, seconds.
    pub last_duration_secs: Option<f64>,
    /// The sync anchor after the last successful sync.
    pub anchor: Option<String>,
    /// Updates in the store after the last sync.
    pub updates: u64,
    /// Revisions fetched by the last sync.
    pub fetched: u64,
    /// Approvals after the last sync.
    pub approvals: u64,
    /// Finished syncs in this server process.
    pub runs: u64,
    /// Revisions the last sync isolated and skipped (asked for again at the next sync).
    #[serde(default)]
    pub skipped: Vec<SkippedJson>,
}

/// One skipped revision in `sync status --json` (issue 14: `{"id", "revision", "reason"}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedJson {
    /// UpdateID GUID.
    pub id: String,
    /// RevisionNumber.
    pub revision: u32,
    /// Why it was skipped.
    pub reason: String,
}

impl SyncJson {
    /// From the runner's status.
    pub fn from_status(s: crate::sync::SyncStatus, available: bool) -> Self {
        Self {
            available,
            running: s.running,
            phase: s.phase,
            done: s.done,
            total: s.total,
            last_result: s.last_result,
            last_started: s.last_started,
            last_finished: s.last_finished,
            last_duration_secs: s.last_duration_secs,
            anchor: s.anchor,
            updates: s.updates,
            fetched: s.fetched,
            approvals: s.approvals,
            runs: s.runs,
            skipped: s
                .skipped
                .into_iter()
                .map(|k| SkippedJson {
                    id: k.id.to_string(),
                    revision: k.revision,
                    reason: k.reason,
                })
                .collect(),
        }
    }
}
