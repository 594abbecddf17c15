//! Accepting rollup as an upstream (SS §3.1.4.13–§3.1.4.17 data processing): the five
//! operations arrive at the Reporting endpoint beside the clients' ReportEventBatch;
//! [`handle`] answers them from and into the store's downstream tables.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::{
    ComputerStatuses, DownstreamComputer, DownstreamServer, DownstreamStatus, Store, StoreError,
    UpdateState,
};
use crate::wire::soap::{self, Envelope, ErrorCode, Fault, SoapBody};
use crate::wire::sss::rollup::*;
use crate::wire::sss::NS;

/// Why a detailed operation is refused while `[rollup] accept_detailed` is off.
const NOT_DETAILED: &str = "DoDetailedRollup is false on this server";

/// The store setting holding this server's `RollupResetGuid`.
pub const RESET_GUID_SETTING: &str = "rollup.reset_guid";

/// (HTTP status, SOAP body).
pub type Answer = (u16, String);

fn ok<T: SoapBody>(b: &T) -> Answer {
    (200, soap::encode(b))
}

fn fault(code: ErrorCode, msg: impl Into<String>, action: &str) -> Answer {
    (500, Fault::new(code, msg, action).to_envelope())
}

/// This server's `RollupResetGuid` (made once, kept in the store).
pub fn reset_guid(store: &Store) -> Result<Uuid, StoreError> {
    if let Some(v) = store.setting(RESET_GUID_SETTING)? {
        if let Ok(u) = Uuid::from_slice(&v) {
            return Ok(u);
        }
    }
    let u = Uuid::new_v4();
    store.set_setting(RESET_GUID_SETTING, Some(u.as_bytes()))?;
    Ok(u)
}

fn unix(t: Option<OffsetDateTime>) -> Option<i64> {
    t.map(|t| t.unix_timestamp())
}

/// Answers a rollup operation in `env`, or `None` when the body is not one (the caller goes on
/// with the client operations). `detailed` is `[rollup] accept_detailed` (DoDetailedRollup).
pub fn handle(store: &Store, env: &Envelope, detailed: bool) -> Option<Answer> {
    let (ns, name) = env.operation();
    if ns != NS {
        return None;
    }
    let act = match name {
        "GetRollupConfiguration" => action::GET_ROLLUP_CONFIGURATION,
        "RollupDownstreamServers" => action::ROLLUP_DOWNSTREAM_SERVERS,
        "RollupComputers" => action::ROLLUP_COMPUTERS,
        "GetOutOfSyncComputers" => action::GET_OUT_OF_SYNC_COMPUTERS,
        "RollupComputerStatus" => action::ROLLUP_COMPUTER_STATUS,
        _ => return None,
    };
    let r = match name {
        "GetRollupConfiguration" => get_configuration(store, detailed),
        "RollupDownstreamServers" => env
            .decode()
            .map_err(Error::Wire)
            .and_then(|r| downstream_servers(store, r)),
        "RollupComputers" if detailed => env
            .decode()
            .map_err(Error::Wire)
            .and_then(|r| computers(store, r)),
        "GetOutOfSyncComputers" if detailed => env
            .decode()
            .map_err(Error::Wire)
            .and_then(|r| out_of_sync(store, r)),
        "RollupComputerStatus" if detailed => env
            .decode()
            .map_err(Error::Wire)
            .and_then(|r| computer_status(store, r)),
        _ => Err(Error::Refused(NOT_DETAILED.into())),
    };
    Some(answer(name, act, r))
}

/// The answer to operation `name` (SOAPAction `act`): its body, or the fault for its error.
fn answer(name: &str, act: &str, r: Result<Answer, Error>) -> Answer {
    match r {
        Ok(a) => a,
        Err(Error::Wire(e)) => {
            tracing::warn!(op = name, error = %e, "bad rollup request");
            fault(ErrorCode::InvalidParameters, e.to_string(), act)
        }
        Err(Error::Refused(m)) => {
            tracing::warn!(op = name, msg = %m, "rollup refused");
            fault(ErrorCode::InvalidParameters, m, act)
        }
        Err(Error::Unknown(m)) => fault(ErrorCode::InternalServerError, m, act),
        Err(Error::Store(e)) => {
            tracing::error!(op = name, error = %e, "store error in rollup");
            fault(ErrorCode::InternalServerError, "", act)
        }
    }
}

enum Error {
    Wire(crate::wire::WireError),
    Refused(String),
    Unknown(String),
    Store(StoreError),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn get_configuration(store: &Store, detailed: bool) -> Result<Answer, Error> {
    Ok(ok(&GetRollupConfigurationResponse {
        config: RollupConfiguration {
            do_detailed_rollup: detailed,
            rollup_reset_guid: reset_guid(store)?,
            server_id: store.server_id()?,
            downstream_servers_max: MAX_DOWNSTREAM_SERVER_SUMMARIES,
            computers_max: MAX_ROLLUP_COMPUTERS,
            out_of_sync_max: MAX_OUT_OF_SYNC_COMPUTERS,
            computer_status_max: MAX_ROLLUP_COMPUTER_STATUS,
        },
    }))
}

/// SS §3.1.4.14: each server's parent must be this server or a known downstream server
/// (parents come first); an entry replaces the stored one unless that is newer.
fn downstream_servers(store: &Store, r: RollupDownstreamServers) -> Result<Answer, Error> {
    let summaries: usize = r.servers.iter().map(|s| s.client_summaries).sum();
    if summaries > MAX_DOWNSTREAM_SERVER_SUMMARIES as usize {
        return Err(Error::Refused(format!(
            "{summaries} client summaries exceed RollupDownstreamServersMaxBatchSize"
        )));
    }
    let me = store.server_id()?;
    for s in &r.servers {
        let parent = if s.parent_server_id.is_nil() {
            me
        } else {
            s.parent_server_id
        };
        if parent != me && store.downstream_server(&parent)?.is_none() {
            return Err(Error::Refused(format!("unknown parent server {parent}")));
        }
        let new = DownstreamServer {
            id: s.server_id,
            name: s.full_domain_name.clone(),
            parent,
            last_sync_unix: unix(s.last_sync_time),
            last_rollup_unix: unix(s.last_rollup_time),
            version: s.version.clone(),
            is_replica: s.is_replica,
        };
        match store.downstream_server(&s.server_id)? {
            Some(old) if old.last_rollup_unix > new.last_rollup_unix => {}
            _ => store.put_downstream_server(&new)?,
        }
    }
    Ok(ok(&RollupDownstreamServersResponse))
}

/// SS §3.1.4.15: new computers (or a new parent) without `Details` are answered `NewParent`.
fn computers(store: &Store, r: RollupComputers) -> Result<Answer, Error> {
    if r.computers.len() > MAX_ROLLUP_COMPUTERS as usize {
        return Err(Error::Refused(
            "more computers than RollupComputersMaxBatchSize".into(),
        ));
    }
    for c in &r.computers {
        if store.downstream_server(&c.parent_server_id)?.is_none() {
            return Err(Error::Unknown(format!(
                "unknown parent server {}",
                c.parent_server_id
            )));
        }
    }
    let mut changed = Vec::new();
    for c in r.computers {
        let old = store.downstream_computer(&c.computer_id)?;
        let (mut rec, new_parent) = match old {
            Some(o) if unix(c.last_sync_time) < o.last_sync_unix => continue,
            Some(o) => {
                let moved = o.parent_server != c.parent_server_id;
                (o, moved)
            }
            None => (
                DownstreamComputer {
                    id: c.computer_id.clone(),
                    name: c.computer_id.clone(),
                    ..Default::default()
                },
                true,
            ),
        };
        rec.parent_server = c.parent_server_id;
        rec.last_sync_unix = unix(c.last_sync_time);
        rec.last_report_unix = unix(c.last_reported_status_time);
        match c.details {
            Some(d) => {
                rec.has_details = true;
                if !d.full_domain_name.is_empty() {
                    rec.name = d.full_domain_name;
                }
                rec.groups = d.target_group_ids;
                rec.requested_groups = d.requested_target_group_names;
                rec.os_description = (!d.os_description.is_empty()).then_some(d.os_description);
                rec.client_version = (!d.client_version.is_empty()).then_some(d.client_version);
            }
            None if new_parent => changed.push((c.computer_id.clone(), ComputerChange::NewParent)),
            None => {}
        }
        store.put_downstream_computer(&rec)?;
    }
    store.flush()?;
    Ok(ok(&RollupComputersResponse { changed }))
}

/// The servers at or below `root` (SS §3.1.4.16 step 3b).
fn subtree(store: &Store, root: Uuid) -> Result<Vec<Uuid>, StoreError> {
    let all = store.downstream_servers()?;
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(
            all.iter()
                .filter(|s| s.parent == p && s.id != p)
                .map(|s| s.id),
        );
        i += 1;
        if out.len() > all.len() + 1 {
            break;
        }
    }
    Ok(out)
}

fn out_of_sync(store: &Store, r: GetOutOfSyncComputers) -> Result<Answer, Error> {
    if r.last_rollup_numbers.len() > MAX_OUT_OF_SYNC_COMPUTERS as usize {
        return Err(Error::Refused(
            "more computers than GetOutOfSyncComputersMaxBatchSize".into(),
        ));
    }
    let mut ids = Vec::new();
    if store.downstream_server(&r.parent_server_id)?.is_some() {
        let below = subtree(store, r.parent_server_id)?;
        for (id, n) in r.last_rollup_numbers {
            if let Some(c) = store.downstream_computer(&id)? {
                if below.contains(&c.parent_server) && c.last_received_rollup_number != n {
                    ids.push(id);
                }
            }
        }
    }
    Ok(ok(&GetOutOfSyncComputersResponse { computer_ids: ids }))
}

/// SS §3.1.4.17: the request's computers in one store transaction; unknown computers are
/// ignored.
fn computer_status(store: &Store, r: RollupComputerStatus) -> Result<Answer, Error> {
    if r.computers.len() > MAX_ROLLUP_COMPUTER_STATUS as usize {
        return Err(Error::Refused(
            "more computers than RollupComputerStatusMaxBatchSize".into(),
        ));
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let statuses: Vec<Vec<(Uuid, DownstreamStatus)>> = r
        .computers
        .iter()
        .map(|c| {
            c.update_status
                .iter()
                .map(|(u, s, t)| {
                    (
                        *u,
                        DownstreamStatus {
                            state: UpdateState::from_summarization_state(*s),
                            last_change_unix: t.unix_timestamp(),
                        },
                    )
                })
                .collect()
        })
        .collect();
    let batch: Vec<ComputerStatuses<'_>> = r
        .computers
        .iter()
        .zip(&statuses)
        .map(|(c, s)| ComputerStatuses {
            computer_id: &c.computer_id,
            rollup_number: c.rollup_number,
            full: c.is_full_rollup,
            statuses: s,
        })
        .collect();
    store.apply_downstream_statuses(&batch, now)?;
    store.flush()?;
    Ok(ok(&RollupComputerStatusResponse { result: true }))
}

/// Answers a `RollupComputerStatus` body read by the streaming decoder
/// ([`crate::wire::sss::rollup_stream`]; the caller falls back to [`handle`] when it declines),
/// with `handle`'s rules: refused unless `detailed`.
pub fn handle_computer_status(store: &Store, r: RollupComputerStatus, detailed: bool) -> Answer {
    let act = action::ROLLUP_COMPUTER_STATUS;
    let r = if detailed {
        computer_status(store, r)
    } else {
        Err(Error::Refused(NOT_DETAILED.into()))
    };
    answer("RollupComputerStatus", act, r)
}
