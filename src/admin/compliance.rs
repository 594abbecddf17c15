//! The compliance views WSUS admins read every day: computers (own and rolled up from
//! downstream servers) with their needed / failed / installed counts and filters (`--stale`,
//! `--group`, `--status`, `--include-downstream`), one update's state on every computer
//! (`updates status`), the summary and `/metrics` gauges, and the rows the views share (one
//! computer's states, move and removal live in `computer.rs`, re-exported here). States come
//! from the stored form of [`crate::store::derive_states`] (own clients: kept current on
//! every report, so a view reads one update's or one computer's states and the per-computer
//! counts, never every computer's events) and from the rollup records (downstream).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::api::group_names;
use super::catalog::{find_one_update, resolve_group, unix_rfc3339};
pub use super::computer::{
    move_computer, remove_computer, show_computer, MoveRequest, RemoveRequest,
};
use super::query::Query;
use super::types::ComputerJson;
use super::{AdminState, ApiError, ApiResult};
use crate::model::groups;
use crate::store::{Store, UpdateState};

/// One update's state on one computer, wherever it came from.
#[derive(Debug, Clone, Copy)]
pub struct State {
    /// The state.
    pub state: UpdateState,
    /// When it took it (unix seconds).
    pub last_change_unix: i64,
    /// HRESULT of a failure (own clients only: rollup carries no error codes).
    pub error_code: Option<i32>,
}

/// A computer in the views.
#[derive(Debug, Clone)]
pub struct Row {
    /// Client id.
    pub id: String,
    /// DNS name.
    pub name: String,
    /// Assigned groups (empty = Unassigned Computers).
    pub groups: Vec<Uuid>,
    /// Last SyncUpdates (unix).
    pub last_sync_unix: Option<i64>,
    /// Last status report (unix).
    pub last_report_unix: Option<i64>,
    /// The downstream server it was rolled up from: (id, name).
    pub downstream: Option<(Uuid, String)>,
    /// Per-update states: all of them, or only the update asked for (see [`Want`]).
    pub states: BTreeMap<Uuid, State>,
    /// (needed, failed, installed) over all its updates.
    pub counts: (usize, usize, usize),
    /// OS as reported.
    pub os_version: Option<String>,
    /// Agent version.
    pub client_version: Option<String>,
    /// First registration (own clients).
    pub registered_unix: Option<i64>,
    /// Requested (client-side) target group names.
    pub requested_groups: Vec<String>,
}

impl Row {
    /// (needed, failed, installed).
    pub fn counts(&self) -> (usize, usize, usize) {
        self.counts
    }
}

/// Which per-update states [`load_rows`] reads (the counts always come along).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// None: lists and summaries need the counts only.
    Counts,
    /// One update's (`updates status`).
    One(Uuid),
}

fn counted<'a>(states: impl Iterator<Item = &'a UpdateState>) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for s in states {
        match s {
            UpdateState::Needed => c.0 += 1,
            UpdateState::Failed => c.1 += 1,
            UpdateState::Installed => c.2 += 1,
            _ => {}
        }
    }
    c
}

/// A rolled-up state as the views show it (downstream servers send no error codes).
pub(super) fn ds_state(s: crate::store::DownstreamStatus) -> State {
    State {
        state: s.state,
        last_change_unix: s.last_change_unix,
        error_code: None,
    }
}

pub(super) fn own_state(r: crate::store::StatusRecord) -> State {
    State {
        state: r.state,
        last_change_unix: r.last_change_unix,
        error_code: r.error_code,
    }
}

/// An own client's row, without per-update states.
pub(super) fn own_row(c: crate::store::Computer, n: crate::store::StatusCounts) -> Row {
    Row {
        counts: (n.needed, n.failed, n.installed),
        id: c.id,
        name: c.name,
        groups: c.groups,
        last_sync_unix: c.last_sync_unix,
        last_report_unix: c.last_report_unix,
        downstream: None,
        states: BTreeMap::new(),
        os_version: c.os_version,
        client_version: c.client_version,
        registered_unix: Some(c.registered_unix),
        requested_groups: c.requested_groups,
    }
}

/// A rolled-up computer's row, counted over `all` its states, without per-update states;
/// `server_name` is its downstream server's (the id when that server is unknown).
pub(super) fn ds_row(
    c: crate::store::DownstreamComputer,
    server_name: Option<String>,
    all: &BTreeMap<Uuid, crate::store::DownstreamStatus>,
) -> Row {
    let server_name = server_name.unwrap_or_else(|| c.parent_server.to_string());
    Row {
        id: c.id,
        name: c.name,
        groups: c.groups,
        last_sync_unix: c.last_sync_unix,
        last_report_unix: c.last_report_unix,
        downstream: Some((c.parent_server, server_name)),
        states: BTreeMap::new(),
        counts: counted(all.values().map(|s| &s.state)),
        os_version: c.os_description,
        client_version: c.client_version,
        registered_unix: None,
        requested_groups: c.requested_groups,
    }
}

/// Every computer with its counts and the states `want` names: own clients (from the stored
/// states, `store/states.rs`), then (when asked) rolled-up ones.
pub fn load_rows(store: &Store, include_downstream: bool, want: Want) -> ApiResult<Vec<Row>> {
    let mut rows = Vec::new();
    let counts = store.all_status_counts()?;
    let mut one: HashMap<String, State> = match want {
        Want::One(u) => store
            .update_states(&u)?
            .into_iter()
            .map(|(c, r)| (c, own_state(r)))
            .collect(),
        _ => HashMap::new(),
    };
    for c in store.computers()? {
        let n = counts.get(&c.id).copied().unwrap_or_default();
        let mut row = own_row(c, n);
        if let Want::One(u) = want {
            row.states = one.remove(&row.id).map(|s| (u, s)).into_iter().collect();
        }
        rows.push(row);
    }
    if include_downstream {
        let servers: HashMap<Uuid, String> = store
            .downstream_servers()?
            .into_iter()
            .map(|s| (s.id, s.name))
            .collect();
        for c in store.downstream_computers()? {
            let all = store.downstream_states(&c.id)?;
            let server_name = servers.get(&c.parent_server).cloned();
            let mut row = ds_row(c, server_name, &all);
            if let Want::One(u) = want {
                row.states = all.get(&u).map(|s| (u, ds_state(*s))).into_iter().collect();
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

pub(super) fn row_json(names: &BTreeMap<Uuid, String>, r: &Row) -> ComputerJson {
    let groups = if r.groups.is_empty() {
        vec![names
            .get(&groups::UNASSIGNED_COMPUTERS)
            .cloned()
            .unwrap_or_else(|| "Unassigned Computers".into())]
    } else {
        r.groups
            .iter()
            .map(|g| names.get(g).cloned().unwrap_or_else(|| g.to_string()))
            .collect()
    };
    let (needed, failed, installed) = r.counts();
    ComputerJson {
        id: r.id.clone(),
        name: r.name.clone(),
        groups,
        last_sync: r.last_sync_unix.and_then(unix_rfc3339),
        last_report: r.last_report_unix.and_then(unix_rfc3339),
        needed,
        installed,
        failed,
        downstream_server: r.downstream.as_ref().map(|(_, n)| n.clone()),
    }
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `computers list [--group G] [--stale 7d] [--status failed|needed|uptodate]
/// [--include-downstream]`. `uptodate`: reported at least once, nothing needed or failed.
/// `--stale D`: last report older than D (or never).
pub fn list_computers(state: &AdminState, q: &Query) -> ApiResult<Vec<ComputerJson>> {
    let names = group_names(&state.store)?;
    let group = q
        .get("group")
        .map(|g| resolve_group(&names, g))
        .transpose()?;
    let stale_before = q
        .get("stale")
        .map(|s| {
            crate::units::parse_duration(s)
                .map(|d| now_unix() - d.as_secs() as i64)
                .map_err(|e| ApiError::bad(format!("stale: {e}")))
        })
        .transpose()?;
    let status = q.get("status");
    if let Some(s) = status {
        if !["failed", "needed", "uptodate"].contains(&s) {
            return Err(ApiError::bad(format!(
                "status must be failed, needed or uptodate, got {s:?}"
            )));
        }
    }
    let rows = load_rows(&state.store, q.flag("include_downstream"), Want::Counts)?;
    let mut out = Vec::new();
    for r in &rows {
        let in_group = match group {
            None => true,
            Some(g) if g == groups::ALL_COMPUTERS => true,
            Some(g) if g == groups::UNASSIGNED_COMPUTERS => {
                r.groups.is_empty() || r.groups.contains(&g)
            }
            Some(g) => r.groups.contains(&g),
        };
        let stale_ok = match stale_before {
            None => true,
            Some(t) => r.last_report_unix.is_none_or(|l| l < t),
        };
        let (needed, failed, _) = r.counts();
        let status_ok = match status {
            Some("failed") => failed > 0,
            Some("needed") => needed > 0,
            Some("uptodate") => r.last_report_unix.is_some() && needed == 0 && failed == 0,
            _ => true,
        };
        if in_group && stale_ok && status_ok {
            out.push(row_json(&names, r));
        }
    }
    out.sort_by(|a, b| (a.name.to_lowercase(), &a.id).cmp(&(b.name.to_lowercase(), &b.id)));
    Ok(out)
}

/// An HRESULT as WSUS shows it (`0x80240022`).
pub fn hresult_text(hr: i32) -> String {
    format!("0x{:08X}", hr as u32)
}

/// Counts of one update's states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCounts {
    /// Installed.
    pub installed: usize,
    /// Needed.
    pub needed: usize,
    /// Failed.
    pub failed: usize,
    /// Not applicable.
    pub not_applicable: usize,
    /// Nothing known.
    pub unknown: usize,
}

impl StateCounts {
    fn add(&mut self, s: UpdateState) {
        match s {
            UpdateState::Installed => self.installed += 1,
            UpdateState::Needed => self.needed += 1,
            UpdateState::Failed => self.failed += 1,
            UpdateState::NotApplicable => self.not_applicable += 1,
            UpdateState::Unknown => self.unknown += 1,
        }
    }
}

/// One computer in `updates status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateComputerJson {
    /// Client id.
    pub id: String,
    /// DNS name.
    pub name: String,
    /// `installed` | `needed` | `failed` | `not_applicable` | `unknown`.
    pub state: String,
    /// `0x8024XXXX` for a failure, else null.
    pub error_code: Option<String>,
    /// RFC 3339 time of the last change, null when unknown.
    pub last_change: Option<String>,
    /// Name of the downstream server it was rolled up from; null for own clients.
    pub downstream_server: Option<String>,
}

/// `updates status ID|KB --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateStatusJson {
    /// UpdateID.
    pub id: String,
    /// Title.
    pub title: String,
    /// Computers per state.
    pub counts: StateCounts,
    /// Every computer (own and rolled up) with its state.
    pub computers: Vec<UpdateComputerJson>,
}

/// `updates status ID|KB`: the update's state on every computer, own and rolled up.
pub fn update_status(state: &AdminState, q: &Query) -> ApiResult<UpdateStatusJson> {
    let arg = q.get("id").ok_or_else(|| ApiError::bad("missing id"))?;
    let rec = find_one_update(&state.store, arg)?.record;
    let id = rec.key.update_id;
    let rows = load_rows(&state.store, true, Want::One(id))?;
    let mut counts = StateCounts::default();
    let mut computers = Vec::with_capacity(rows.len());
    for r in &rows {
        let s = r.states.get(&id);
        let st = s.map(|s| s.state).unwrap_or(UpdateState::Unknown);
        counts.add(st);
        computers.push(UpdateComputerJson {
            id: r.id.clone(),
            name: r.name.clone(),
            state: st.as_str().into(),
            error_code: s.and_then(|s| s.error_code).map(hresult_text),
            last_change: s.and_then(|s| unix_rfc3339(s.last_change_unix)),
            downstream_server: r.downstream.as_ref().map(|(_, n)| n.clone()),
        });
    }
    computers.sort_by(|a, b| (a.name.to_lowercase(), &a.id).cmp(&(b.name.to_lowercase(), &b.id)));
    Ok(UpdateStatusJson {
        id: id.to_string(),
        title: rec.title.clone(),
        counts,
        computers,
    })
}

/// Summary numbers for `/metrics` and the status page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Own computers.
    pub computers: usize,
    /// Computers rolled up from downstream servers.
    pub downstream_computers: usize,
    /// Downstream servers that rolled up here.
    pub downstream_servers: usize,
    /// Computers (own + rolled up) needing at least one update.
    pub needing: usize,
    /// Computers with at least one failed update.
    pub failing: usize,
    /// Computers that reported and need nothing.
    pub up_to_date: usize,
    /// Own computers that have not reported for 7 days (or never).
    pub stale_7d: usize,
}

/// The summary over every computer (blocking).
pub fn summary(store: &Store) -> ApiResult<Summary> {
    let rows = load_rows(store, true, Want::Counts)?;
    let week_ago = now_unix() - 7 * 86400;
    let mut s = Summary {
        downstream_servers: store.downstream_servers()?.len(),
        ..Default::default()
    };
    for r in &rows {
        if r.downstream.is_some() {
            s.downstream_computers += 1;
        } else {
            s.computers += 1;
            if r.last_report_unix.is_none_or(|t| t < week_ago) {
                s.stale_7d += 1;
            }
        }
        let (needed, failed, _) = r.counts();
        if needed > 0 {
            s.needing += 1;
        }
        if failed > 0 {
            s.failing += 1;
        }
        if r.last_report_unix.is_some() && needed == 0 && failed == 0 {
            s.up_to_date += 1;
        }
    }
    Ok(s)
}

/// The compliance gauges of `/metrics` (from [`summary`]); empty when the store fails.
pub fn metrics_text(store: &Store) -> String {
    use std::fmt::Write;
    let Ok(m) = summary(store) else {
        return String::new();
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HELP wsus_edge_compliance_computers Computers known, by origin (own clients or rolled up from downstream servers).\n# TYPE wsus_edge_compliance_computers gauge\nwsus_edge_compliance_computers{{origin=\"own\"}} {}\nwsus_edge_compliance_computers{{origin=\"downstream\"}} {}",
        m.computers, m.downstream_computers
    );
    for (name, help, v) in [
        (
            "wsus_edge_compliance_computers_needing",
            "Computers needing at least one update.",
            m.needing,
        ),
        (
            "wsus_edge_compliance_computers_failing",
            "Computers with at least one failed update.",
            m.failing,
        ),
        (
            "wsus_edge_compliance_computers_up_to_date",
            "Computers that reported and need nothing.",
            m.up_to_date,
        ),
        (
            "wsus_edge_compliance_computers_stale",
            "Own computers without a status report for 7 days.",
            m.stale_7d,
        ),
        (
            "wsus_edge_compliance_downstream_servers",
            "Downstream servers that rolled up here.",
            m.downstream_servers,
        ),
    ] {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    }
    s
}

/// What computers reported about an update within the cleanup grace period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecentNeed {
    /// Computers that reported it needed.
    pub needed: usize,
    /// Computers that reported failing it.
    pub failed: usize,
}

/// Updates some computer reported needed or failed at or after `since_unix` (the cleanup
/// grace, `[cleanup] keep_needed_for`): an own client's event 156 listing it not installed or
/// an event 182 failing it (even if the update left its lists since), or a rolled-up state
/// needed/failed that changed or arrived in the period.
pub fn recently_needed(store: &Store, since_unix: i64) -> ApiResult<HashMap<Uuid, RecentNeed>> {
    use std::collections::HashSet;
    let mut out: HashMap<Uuid, RecentNeed> = HashMap::new();
    for c in store.computers()? {
        let mut needed: HashSet<Uuid> = HashSet::new();
        let mut failed: HashSet<Uuid> = HashSet::new();
        for e in store.events(&c.id)? {
            if e.time_unix < since_unix {
                continue;
            }
            match e.event_id {
                crate::store::compliance_events::STATUS_LISTS => {
                    for m in &e.misc {
                        if let Some(("U", l)) = m.split_once('=') {
                            needed.extend(
                                l.split([',', ' ', ';'])
                                    .filter_map(|t| t.trim().parse::<Uuid>().ok()),
                            );
                        }
                    }
                }
                crate::store::compliance_events::INSTALL_FAILED => {
                    if let Some(u) = e.update {
                        failed.insert(u.update_id);
                    }
                }
                _ => {}
            }
        }
        for u in needed {
            out.entry(u).or_default().needed += 1;
        }
        for u in failed {
            out.entry(u).or_default().failed += 1;
        }
    }
    for c in store.downstream_computers()? {
        let arrived = c.status_received_unix.is_some_and(|t| t >= since_unix);
        for (u, s) in store.downstream_states(&c.id)? {
            if !(arrived || s.last_change_unix >= since_unix) {
                continue;
            }
            match s.state {
                UpdateState::Needed => out.entry(u).or_default().needed += 1,
                UpdateState::Failed => out.entry(u).or_default().failed += 1,
                _ => {}
            }
        }
    }
    Ok(out)
}

/// A duration as the config writes it (`30d`, `12h`, `90m`, `45s`).
pub fn short_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        _ if s.is_multiple_of(86400) => format!("{}d", s / 86400),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// `POST /api/rollup` (`wsus-edge rollup`): rolls up to the upstream now and says what was sent.
pub async fn rollup_now(state: &AdminState) -> ApiResult<crate::rollup::RollupReport> {
    if state.config.upstream.url.is_none() {
        return Err(ApiError::conflict(
            "this server has no upstream to roll up to ([upstream] url)",
        ));
    }
    let _g = crate::rollup::LOCK.lock().await;
    crate::rollup::run_once(&state.config, &state.store)
        .await
        .map_err(|e| ApiError::internal(format!("rollup: {e}")))
}
