//! One computer of the compliance views, found by client id, DNS name or short host name
//! (own clients before rolled-up ones) from the computer records alone: its per-update
//! states (`computers show`), and the server-side group move and removal (`computers move`,
//! `computers remove`). Re-exported by [`super::compliance`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::api::group_names;
use super::catalog::{resolve_group, unix_rfc3339};
use super::compliance::{ds_row, ds_state, hresult_text, own_row, own_state, row_json, Row, State};
use super::query::Query;
use super::types::{ChangedJson, ComputerDetailJson, ComputerUpdateJson};
use super::{AdminState, ApiError, ApiResult};
use crate::model::groups;
use crate::store::Store;

/// A computer found by [`find_computer`]: its stored record, not yet its states.
enum Found {
    /// One of this server's own clients.
    Own(crate::store::Computer),
    /// One rolled up from a downstream server.
    Downstream(crate::store::DownstreamComputer),
}

impl Found {
    fn id(&self) -> &str {
        match self {
            Found::Own(c) => &c.id,
            Found::Downstream(c) => &c.id,
        }
    }

    fn name(&self) -> &str {
        match self {
            Found::Own(c) => &c.name,
            Found::Downstream(c) => &c.name,
        }
    }
}

/// Finds a computer by client id, DNS name (case-insensitive) or a unique short host name,
/// own clients before rolled-up ones; reads the computer records only, no states.
fn find_computer(store: &Store, arg: &str) -> ApiResult<Found> {
    let mut all: Vec<Found> = store.computers()?.into_iter().map(Found::Own).collect();
    all.extend(
        store
            .downstream_computers()?
            .into_iter()
            .map(Found::Downstream),
    );
    let i = find_index(&all, arg)?;
    Ok(all.swap_remove(i))
}

/// [`find_computer`]'s choice among `all`: an id match first, then the DNS names.
fn find_index(all: &[Found], arg: &str) -> ApiResult<usize> {
    if let Some(i) = all.iter().position(|c| c.id().eq_ignore_ascii_case(arg)) {
        return Ok(i);
    }
    let by_name: Vec<usize> = (0..all.len())
        .filter(|&i| all[i].name().eq_ignore_ascii_case(arg))
        .collect();
    let m: Vec<usize> = if by_name.is_empty() {
        (0..all.len())
            .filter(|&i| {
                all[i]
                    .name()
                    .split('.')
                    .next()
                    .is_some_and(|h| h.eq_ignore_ascii_case(arg))
            })
            .collect()
    } else {
        by_name
    };
    match m.len() {
        0 => Err(ApiError::not_found(format!("no computer {arg:?}"))),
        1 => Ok(m[0]),
        n => Err(ApiError::bad(format!(
            "{arg:?} names {n} computers; give the id: {}",
            m.iter()
                .map(|&i| all[i].id())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// A rolled-up computer's downstream server name (the id when that server is unknown).
fn server_name(store: &Store, c: &crate::store::DownstreamComputer) -> ApiResult<String> {
    Ok(store
        .downstream_server(&c.parent_server)?
        .map(|s| s.name)
        .unwrap_or_else(|| c.parent_server.to_string()))
}

/// `computers show NAME` (own or rolled-up computer): each update's state, last change and
/// error code.
pub fn show_computer(state: &AdminState, q: &Query) -> ApiResult<ComputerDetailJson> {
    let arg = q.get("name").ok_or_else(|| ApiError::bad("missing name"))?;
    let (c, states): (Row, BTreeMap<Uuid, State>) = match find_computer(&state.store, arg)? {
        Found::Own(c) => {
            let states = state
                .store
                .computer_states(&c.id)?
                .into_iter()
                .map(|(id, r)| (id, own_state(r)))
                .collect();
            let n = state.store.status_counts(&c.id)?;
            (own_row(c, n), states)
        }
        Found::Downstream(c) => {
            let all = state.store.downstream_states(&c.id)?;
            let server = server_name(&state.store, &c)?;
            let row = ds_row(c, Some(server), &all);
            (
                row,
                all.into_iter().map(|(id, s)| (id, ds_state(s))).collect(),
            )
        }
    };
    let names = group_names(&state.store)?;
    let titles = titles(&state.store)?;
    let updates = states
        .iter()
        .map(|(id, s)| ComputerUpdateJson {
            id: id.to_string(),
            title: titles.get(id).cloned(),
            status: s.state.as_str().into(),
            state: s.state.as_str().into(),
            last_change: unix_rfc3339(s.last_change_unix),
            error_code: s.error_code.map(hresult_text),
        })
        .collect();
    Ok(ComputerDetailJson {
        computer: row_json(&names, &c),
        os_version: c.os_version.clone(),
        client_version: c.client_version.clone(),
        registered: c.registered_unix.and_then(unix_rfc3339),
        requested_groups: c.requested_groups.clone(),
        updates,
    })
}

fn titles(store: &Store) -> ApiResult<HashMap<Uuid, String>> {
    Ok(store
        .latest_revisions()?
        .into_iter()
        .map(|r| (r.record.key.update_id, r.record.title))
        .collect())
}

/// `POST /api/computers/move` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoveRequest {
    /// Computer name or id.
    pub name: String,
    /// Group name or GUID.
    pub group: String,
}

/// `POST /api/computers/remove` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoveRequest {
    /// Computer name or id.
    pub name: String,
}

/// `computers move NAME|ID --group G`: server-side targeting; the computer is offered what
/// G's approvals (and its parents') give at its next scan. Own clients only.
pub fn move_computer(state: &AdminState, req: &MoveRequest) -> ApiResult<ChangedJson> {
    let c = match find_computer(&state.store, &req.name)? {
        Found::Own(c) => c,
        Found::Downstream(c) => {
            let server = server_name(&state.store, &c)?;
            return Err(ApiError::conflict(format!(
                "{} gets updates from the downstream server {server}: move it there",
                c.name
            )));
        }
    };
    let names = group_names(&state.store)?;
    let g = resolve_group(&names, &req.group)?;
    if g == groups::ALL_COMPUTERS {
        return Err(ApiError::bad(
            "every computer is in All Computers; give a group below it",
        ));
    }
    let assigned = if g == groups::UNASSIGNED_COMPUTERS {
        Vec::new()
    } else {
        vec![g]
    };
    state.store.set_computer_groups(&c.id, &assigned)?;
    state.store.flush()?;
    let group_name = names.get(&g).cloned().unwrap_or_else(|| g.to_string());
    if !c.requested_groups.is_empty() {
        tracing::warn!(computer = %c.name, "computer uses client-side targeting; its requested groups win over the server-side move");
    }
    Ok(ChangedJson {
        message: format!("moved {} to {group_name}", c.name),
        ids: vec![c.id.clone()],
    })
}

/// `computers remove NAME|ID`: forgets an own client (and its events) or a rolled-up one.
pub fn remove_computer(state: &AdminState, req: &RemoveRequest) -> ApiResult<ChangedJson> {
    let c = find_computer(&state.store, &req.name)?;
    match &c {
        Found::Own(c) => state.store.remove_computer(&c.id)?,
        Found::Downstream(c) => state.store.remove_downstream_computer(&c.id)?,
    };
    state.store.flush()?;
    Ok(ChangedJson {
        message: format!("removed {}", c.name()),
        ids: vec![c.id().to_string()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Computer, DownstreamComputer};

    /// Own pc1, pc2 (two DNS names with the short host `pc2`) and a rolled-up computer
    /// sharing pc1's DNS name, plus one rolled-up `srv`.
    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for (id, name) in [
            ("aaaa-1", "pc1.branch.example"),
            ("aaaa-2", "pc2.branch.example"),
            ("aaaa-3", "pc2.other.example"),
        ] {
            s.upsert_computer(&Computer {
                id: id.into(),
                name: name.into(),
                ..Default::default()
            })
            .unwrap();
        }
        for (id, name) in [
            ("dddd-1", "pc1.branch.example"),
            ("dddd-2", "srv.remote.example"),
        ] {
            s.put_downstream_computer(&DownstreamComputer {
                id: id.into(),
                name: name.into(),
                ..Default::default()
            })
            .unwrap();
        }
        (dir, s)
    }

    fn found(s: &Store, arg: &str) -> (String, bool) {
        match find_computer(s, arg).unwrap() {
            Found::Own(c) => (c.id, false),
            Found::Downstream(c) => (c.id, true),
        }
    }

    #[test]
    fn finds_by_id_then_dns_name_then_unique_short_host() {
        let (_d, s) = store();
        assert_eq!(found(&s, "AAAA-1"), ("aaaa-1".into(), false));
        assert_eq!(found(&s, "dddd-2"), ("dddd-2".into(), true));
        assert_eq!(found(&s, "PC2.Other.Example"), ("aaaa-3".into(), false));
        assert_eq!(found(&s, "srv"), ("dddd-2".into(), true));

        let e = find_computer(&s, "pc1.branch.example").err().unwrap();
        assert_eq!(e.status, 400);
        assert_eq!(
            e.message,
            "\"pc1.branch.example\" names 2 computers; give the id: aaaa-1, dddd-1"
        );
        let e = find_computer(&s, "pc2").err().unwrap();
        assert_eq!(e.status, 400);
        assert!(
            e.message.ends_with("give the id: aaaa-2, aaaa-3"),
            "{}",
            e.message
        );
        let e = find_computer(&s, "nobody").err().unwrap();
        assert_eq!(e.status, 404);
    }
}
