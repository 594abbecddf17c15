//! Rolling this server's computers up to its upstream (SS §3.2.4.5): GetRollupConfiguration,
//! RollupDownstreamServers (this server, then the servers below it, parents first),
//! and, when the upstream sets DoDetailedRollup, RollupComputers (with `Details` the first time
//! and after `NewParent`), GetOutOfSyncComputers and RollupComputerStatus, each in batches no
//! larger than the upstream's limits.
//!
//! What was accepted is recorded per computer ([`RollupSent`]) only after the upstream said so.
//! A computer's status is sent whole (`IsFullRollup`) whenever it changed since its last
//! accepted rollup or the upstream reports it out of sync, so a rollup interrupted by a
//! restart or a lost connection is simply repeated: the upstream replaces, never adds.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::Config;
use crate::store::{RollupSent, Store, StoreError};
use crate::sync::{SyncError, UpstreamClient};
use crate::wire::sss::rollup::*;

/// Why a rollup stopped.
#[derive(Debug, thiserror::Error)]
pub enum RollupError {
    /// The upstream could not be reached or answered a fault (the protocol stops).
    #[error(transparent)]
    Upstream(#[from] SyncError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The upstream was too busy (RollupComputerStatusResult false): retry after a minute.
    #[error("the upstream is busy; the rest is sent at the next rollup")]
    Busy,
}

/// What one rollup sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RollupReport {
    /// The upstream's DoDetailedRollup.
    pub detailed: bool,
    /// Servers reported (this one and those below).
    pub servers: usize,
    /// Computers reported (RollupComputers).
    pub computers: usize,
    /// Computers whose status was sent (RollupComputerStatus).
    pub statuses: usize,
    /// SOAP requests made.
    pub requests: usize,
}

/// Most update statuses in one RollupComputerStatus request. Each is about 190 bytes of XML,
/// so this keeps a request near 2 MB: under wsus-edge's own `[server] max_request_body`
/// default (4 MiB) and ASP.NET's default request limit (4 MB) a Windows upstream runs with.
/// The upstream's `RollupComputerStatusMaxBatchSize` counts computers (500 for Windows),
/// and 500 computers of 2,000 statuses each would be a 190 MB request, refused with 413.
const MAX_STATUSES_PER_REQUEST: usize = 10_000;

/// Groups consecutive computers' statuses into requests of at most `max_computers` computers
/// and, unless a single computer has more, [`MAX_STATUSES_PER_REQUEST`] statuses (a computer
/// is never split: its status is a full rollup). Statuses are pushed as they are read from the
/// store, so only one request's worth is held at a time, whatever the number of computers.
struct Batcher<T> {
    max_computers: usize,
    items: Vec<(T, Vec<UpdateStatusItem>)>,
    statuses: usize,
}

impl<T> Batcher<T> {
    fn new(max_computers: usize) -> Self {
        Self {
            max_computers: max_computers.max(1),
            items: Vec::new(),
            statuses: 0,
        }
    }

    /// Adds one computer; returns the batch it closed, if any (the computer starts the next).
    fn push(
        &mut self,
        item: T,
        statuses: Vec<UpdateStatusItem>,
    ) -> Option<Vec<(T, Vec<UpdateStatusItem>)>> {
        let n = statuses.len();
        let full = !self.items.is_empty()
            && (self.items.len() >= self.max_computers
                || self.statuses + n > MAX_STATUSES_PER_REQUEST);
        let out = full.then(|| {
            self.statuses = 0;
            std::mem::take(&mut self.items)
        });
        self.items.push((item, statuses));
        self.statuses += n;
        out
    }

    /// What is left, as the last batch.
    fn take(&mut self) -> Option<Vec<(T, Vec<UpdateStatusItem>)>> {
        self.statuses = 0;
        (!self.items.is_empty()).then(|| std::mem::take(&mut self.items))
    }
}

/// The store setting remembering the upstream's `RollupResetGuid`.
const UPSTREAM_RESET_SETTING: &str = "rollup.upstream_reset_guid";

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn ts(unix: Option<i64>) -> Option<OffsetDateTime> {
    unix.and_then(|u| OffsetDateTime::from_unix_timestamp(u).ok())
}

/// This server's name for the upstream.
fn host_name(config: &Config) -> String {
    if let Some(u) = &config.server.advertised_url {
        if let Some(h) = u
            .split("://")
            .nth(1)
            .and_then(|r| r.split([':', '/']).next())
        {
            return h.to_string();
        }
    }
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "wsus-edge".into())
}

/// One computer as this server rolls it up.
struct Entry {
    info: ComputerRollupInfo,
    details: ComputerRollupDetails,
    /// When its status last changed here (own: last report; rolled up: last receipt).
    changed_unix: Option<i64>,
    /// Whether it reports to this server (else it was rolled up from below).
    own: bool,
}

/// A computer's statuses as (update, SummarizationState, LastChangeTime), read when its turn
/// to be sent comes.
fn statuses(store: &Store, e: &Entry) -> Result<Vec<UpdateStatusItem>, StoreError> {
    let id = &e.info.computer_id;
    let states: Vec<(Uuid, crate::store::UpdateState, i64)> = if e.own {
        store
            .computer_states(id)?
            .into_iter()
            .map(|(u, r)| (u, r.state, r.last_change_unix))
            .collect()
    } else {
        store
            .downstream_states(id)?
            .into_iter()
            .map(|(u, s)| (u, s.state, s.last_change_unix))
            .collect()
    };
    Ok(states
        .into_iter()
        .filter_map(|(u, state, t)| Some((u, state.summarization_state()?, ts(Some(t))?)))
        .collect())
}

fn entries(store: &Store, me: Uuid) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    for c in store.computers()? {
        let os: Vec<i32> = c
            .os_version
            .as_deref()
            .unwrap_or("")
            .split('.')
            .filter_map(|p| p.parse().ok())
            .collect();
        out.push(Entry {
            info: ComputerRollupInfo {
                computer_id: c.id.clone(),
                last_sync_time: ts(c.last_sync_unix),
                last_sync_result: if c.last_sync_unix.is_some() { 1 } else { 0 },
                last_reported_status_time: ts(c.last_report_unix),
                parent_server_id: me,
                details: None,
            },
            details: ComputerRollupDetails {
                target_group_ids: c.groups.clone(),
                requested_target_group_names: c.requested_groups.clone(),
                full_domain_name: c.name.clone(),
                os_version: [
                    os.first().copied().unwrap_or(0),
                    os.get(1).copied().unwrap_or(0),
                    os.get(2).copied().unwrap_or(0),
                ],
                os_description: c.os_version.clone().unwrap_or_default(),
                client_version: c.client_version.clone().unwrap_or_default(),
            },
            changed_unix: c.last_report_unix,
            own: true,
        });
    }
    for c in store.downstream_computers()? {
        out.push(Entry {
            info: ComputerRollupInfo {
                computer_id: c.id.clone(),
                last_sync_time: ts(c.last_sync_unix),
                last_sync_result: if c.last_sync_unix.is_some() { 1 } else { 0 },
                last_reported_status_time: ts(c.last_report_unix),
                parent_server_id: c.parent_server,
                details: None,
            },
            details: ComputerRollupDetails {
                target_group_ids: c.groups.clone(),
                requested_target_group_names: c.requested_groups.clone(),
                full_domain_name: c.name.clone(),
                os_version: [0, 0, 0],
                os_description: c.os_description.clone().unwrap_or_default(),
                client_version: c.client_version.clone().unwrap_or_default(),
            },
            changed_unix: c.status_received_unix,
            own: false,
        });
    }
    Ok(out)
}

/// The server summary this server reports of itself (SS §3.1.4.14.3.3), from its store.
fn server_summary(store: &Store) -> [i32; 18] {
    let mut s = [0i32; 18];
    let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    if let Ok(n) = store.update_count() {
        s[0] = clamp(n);
    }
    if let Ok(d) = store.declined_updates() {
        s[1] = clamp(d.len());
    }
    if let Ok((computers, needing, failing, up_to_date)) = store.own_compliance_counts() {
        s[14] = clamp(computers);
        s[15] = clamp(needing);
        s[16] = clamp(failing);
        s[17] = clamp(up_to_date);
    }
    s
}

/// One full rollup to `[upstream] url`.
pub async fn run_once(config: &Config, store: &Store) -> Result<RollupReport, RollupError> {
    let client = UpstreamClient::new(&config.upstream)?;
    let url = client.url(REPORTING_PATH);
    let mut report = RollupReport::default();
    let cfg = client
        .call(
            &url,
            &GetRollupConfiguration {
                cookie: Some(fixed_cookie()),
            },
        )
        .await?
        .config;
    report.requests += 1;
    report.detailed = cfg.do_detailed_rollup;
    let key = format!("{}/{}", cfg.server_id, cfg.rollup_reset_guid);
    if store.setting(UPSTREAM_RESET_SETTING)?.as_deref() != Some(key.as_bytes()) {
        // A new upstream, or it asked for everything again.
        store.clear_rollup_sent()?;
        store.set_setting(UPSTREAM_RESET_SETTING, Some(key.as_bytes()))?;
    }
    let me = store.server_id()?;

    // This server, then the servers below it, parents first.
    let last_sync = store.sync_state()?.last_success.map(|o| o.finished_unix);
    let mut servers = vec![DownstreamServerRollupInfo {
        server_id: me,
        full_domain_name: host_name(config),
        last_sync_time: ts(last_sync),
        parent_server_id: Uuid::nil(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        is_replica: config.upstream.url.is_some(),
        last_rollup_time: Some(now()),
        summary: server_summary(store),
        client_summaries: 0,
    }];
    let below = store.downstream_servers()?;
    let mut placed = vec![me];
    while placed.len() <= below.len() {
        let next: Vec<_> = below
            .iter()
            .filter(|s| !placed.contains(&s.id) && placed.contains(&s.parent))
            .collect();
        if next.is_empty() {
            break;
        }
        for s in next {
            placed.push(s.id);
            servers.push(DownstreamServerRollupInfo {
                server_id: s.id,
                full_domain_name: s.name.clone(),
                last_sync_time: ts(s.last_sync_unix),
                parent_server_id: s.parent,
                version: s.version.clone(),
                is_replica: s.is_replica,
                last_rollup_time: ts(s.last_rollup_unix),
                summary: [0; 18],
                client_summaries: 0,
            });
        }
    }
    for chunk in servers.chunks(1000) {
        client
            .call(
                &url,
                &RollupDownstreamServers {
                    cookie: Some(fixed_cookie()),
                    client_time: now(),
                    servers: chunk.to_vec(),
                },
            )
            .await?;
        report.requests += 1;
    }
    report.servers = servers.len();
    if !cfg.do_detailed_rollup {
        return Ok(report);
    }

    // Computers.
    let started = now().unix_timestamp();
    let all = entries(store, me)?;
    let mut sent: BTreeMap<String, RollupSent> = store.rollup_sent()?;
    let live: Vec<&Entry> = all
        .iter()
        .filter(|e| {
            !sent
                .get(&e.info.computer_id)
                .is_some_and(|s| s.upstream_deleted)
        })
        .collect();
    let with_details = |e: &Entry, sent: &BTreeMap<String, RollupSent>| {
        let mut i = e.info.clone();
        if !sent.get(&i.computer_id).is_some_and(|s| s.details_sent) {
            i.details = Some(e.details.clone());
        }
        i
    };
    let mut again: Vec<&Entry> = Vec::new();
    for round in 0..2 {
        let list: Vec<&Entry> = if round == 0 {
            live.clone()
        } else {
            std::mem::take(&mut again)
        };
        for chunk in list.chunks(cfg.computers_max.max(1) as usize) {
            let infos: Vec<ComputerRollupInfo> =
                chunk.iter().map(|e| with_details(e, &sent)).collect();
            let r = client
                .call(
                    &url,
                    &RollupComputers {
                        cookie: Some(fixed_cookie()),
                        client_time: now(),
                        computers: infos.clone(),
                    },
                )
                .await?;
            report.requests += 1;
            for i in &infos {
                let s = sent.entry(i.computer_id.clone()).or_default();
                if i.details.is_some() {
                    s.details_sent = true;
                }
            }
            for (id, change) in r.changed {
                let s = sent.entry(id.clone()).or_default();
                match change {
                    ComputerChange::NewParent => {
                        s.details_sent = false;
                        if round == 0 {
                            if let Some(e) = chunk.iter().find(|e| e.info.computer_id == id) {
                                again.push(e);
                            }
                        }
                    }
                    ComputerChange::Deleted => s.upstream_deleted = true,
                }
            }
            for i in &infos {
                if let Some(s) = sent.get(&i.computer_id) {
                    store.set_rollup_sent(&i.computer_id, s)?;
                }
            }
        }
        if again.is_empty() {
            break;
        }
    }
    report.computers = live.len();

    // Which computers the upstream has out of date.
    let numbers: Vec<(String, i32)> = live
        .iter()
        .map(|e| {
            let n = sent
                .get(&e.info.computer_id)
                .map(|s| s.last_sent_rollup_number)
                .unwrap_or(0);
            (e.info.computer_id.clone(), n)
        })
        .collect();
    for chunk in numbers.chunks(cfg.out_of_sync_max.max(1) as usize) {
        let r = client
            .call(
                &url,
                &GetOutOfSyncComputers {
                    cookie: Some(fixed_cookie()),
                    parent_server_id: me,
                    last_rollup_numbers: chunk.to_vec(),
                },
            )
            .await?;
        report.requests += 1;
        for id in r.computer_ids {
            let s = sent.entry(id.clone()).or_default();
            s.last_status_rollup_unix = None;
            store.set_rollup_sent(&id, s)?;
        }
    }

    // Status of every computer that changed (or the upstream lacks), whole.
    let due: Vec<&Entry> = live
        .iter()
        .copied()
        .filter(|e| {
            match sent
                .get(&e.info.computer_id)
                .and_then(|s| s.last_status_rollup_unix)
            {
                None => true,
                Some(t) => e.changed_unix.is_some_and(|c| c >= t),
            }
        })
        .collect();
    let mut batcher = Batcher::new(cfg.computer_status_max.max(1) as usize);
    let at = (&client, url.as_str(), store, me, started);
    for e in due {
        if let Some(batch) = batcher.push(e, statuses(store, e)?) {
            send_statuses(at, &mut sent, batch, &mut report).await?;
        }
    }
    if let Some(batch) = batcher.take() {
        send_statuses(at, &mut sent, batch, &mut report).await?;
    }
    store.flush()?;
    Ok(report)
}

/// Where a status request goes and what it records: the client, the Reporting URL, the
/// store, this server's id and the rollup's start time.
type StatusTarget<'a> = (&'a UpstreamClient, &'a str, &'a Store, Uuid, i64);

/// Sends one RollupComputerStatus request and records what the upstream accepted.
async fn send_statuses(
    (client, url, store, me, started): StatusTarget<'_>,
    sent: &mut BTreeMap<String, RollupSent>,
    batch: Vec<(&Entry, Vec<UpdateStatusItem>)>,
    report: &mut RollupReport,
) -> Result<(), RollupError> {
    let req = RollupComputerStatus {
        cookie: Some(fixed_cookie()),
        client_time: now(),
        parent_server_id: me,
        computers: batch
            .into_iter()
            .map(|(e, update_status)| ComputerStatusRollupInfo {
                instance_id: Uuid::new_v4(),
                computer_id: e.info.computer_id.clone(),
                effective_last_detection_time: None,
                rollup_number: sent
                    .get(&e.info.computer_id)
                    .map(|s| s.last_sent_rollup_number)
                    .unwrap_or(0)
                    + 1,
                is_full_rollup: true,
                update_status,
            })
            .collect(),
    };
    let r = client.call(url, &req).await?;
    report.requests += 1;
    if !r.result {
        return Err(RollupError::Busy);
    }
    for c in &req.computers {
        let s = sent.entry(c.computer_id.clone()).or_default();
        s.last_sent_rollup_number = c.rollup_number;
        s.last_status_rollup_unix = Some(started);
        store.set_rollup_sent(&c.computer_id, s)?;
    }
    report.statuses += req.computers.len();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_bound_computers_and_statuses_and_never_split_a_computer() {
        let sizes = [
            2_000, 2_000, 2_000, 2_000, 2_000, 2_000, 30_000, 10, 10, 10, 9_990, 1,
        ];
        let t = OffsetDateTime::UNIX_EPOCH;
        let mut b = Batcher::new(3);
        let mut batches: Vec<Vec<(usize, Vec<UpdateStatusItem>)>> = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let st = (0..*n)
                .map(|u| (Uuid::from_u128(u as u128), 2, t))
                .collect();
            batches.extend(b.push(i, st));
        }
        batches.extend(b.take());
        let lens: Vec<Vec<usize>> = batches
            .iter()
            .map(|b| b.iter().map(|(_, s)| s.len()).collect())
            .collect();
        // In order, each computer once, whole.
        let order: Vec<usize> = batches.iter().flatten().map(|(i, _)| *i).collect();
        assert_eq!(order, (0..sizes.len()).collect::<Vec<_>>());
        assert_eq!(lens.concat(), sizes);
        assert_eq!(
            lens,
            vec![
                vec![2_000, 2_000, 2_000],
                vec![2_000, 2_000, 2_000],
                vec![30_000],
                vec![10, 10, 10],
                vec![9_990, 1],
            ]
        );
        assert!(Batcher::<usize>::new(5).take().is_none());
    }
}
