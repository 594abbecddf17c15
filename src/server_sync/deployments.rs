//! GetDeployments (replica approvals, SS §3.1.4.10) with snapshot anchors.
//!
//! Each answer's anchor counter numbers a snapshot of the deployment set, a list of
//! `(deployment id, fingerprint of its fields)` kept in the store's settings under
//! `upstream/deploy_snap/<n>`. A later call with that anchor gets the deployments that are new
//! or changed since (`Deployments`) and those gone (`DeadDeployments`). Groups, hidden
//! (declined) updates and accepted EULAs are full lists every time, as the spec says. The last
//! [`KEEP`] snapshots are kept; an older anchor is answered like a first call (every live
//! deployment, no dead ones).

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{OpError, ServerSyncService};
use crate::model::Deployment;
use crate::store::Store;
use crate::wire::sss::{
    GetDeployments, GetDeploymentsResponse, ServerSyncDeployment, ServerSyncTargetGroup,
};
use crate::wire::Anchor;

/// Snapshots kept.
pub const KEEP: u32 = 16;
const LAST: &str = "upstream/deploy_snap_last";

fn snap_key(n: u32) -> String {
    format!("upstream/deploy_snap/{n}")
}

fn fingerprint(d: &Deployment) -> [u8; 8] {
    let json = serde_json::to_vec(d).unwrap_or_default();
    let h = Sha256::digest(&json);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h[..8]);
    out
}

fn encode(snap: &HashMap<Uuid, [u8; 8]>) -> Vec<u8> {
    let mut ids: Vec<(&Uuid, &[u8; 8])> = snap.iter().collect();
    ids.sort();
    let mut v = Vec::with_capacity(ids.len() * 24);
    for (id, fp) in ids {
        v.extend_from_slice(id.as_bytes());
        v.extend_from_slice(fp);
    }
    v
}

fn decode(b: &[u8]) -> Option<HashMap<Uuid, [u8; 8]>> {
    if !b.len().is_multiple_of(24) {
        return None;
    }
    Some(
        b.chunks_exact(24)
            .map(|c| {
                let mut id = [0u8; 16];
                id.copy_from_slice(&c[..16]);
                let mut fp = [0u8; 8];
                fp.copy_from_slice(&c[16..]);
                (Uuid::from_bytes(id), fp)
            })
            .collect(),
    )
}

fn load(store: &Store, n: u32) -> Result<Option<HashMap<Uuid, [u8; 8]>>, OpError> {
    Ok(store.setting(&snap_key(n))?.and_then(|b| decode(&b)))
}

fn last(store: &Store) -> Result<u32, OpError> {
    Ok(store
        .setting(LAST)?
        .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
        .map(u32::from_be_bytes)
        .unwrap_or(0))
}

impl ServerSyncService {
    pub(super) fn get_deployments(
        &self,
        r: &GetDeployments,
    ) -> Result<GetDeploymentsResponse, OpError> {
        self.check_cookie(&r.cookie)?;
        if r.sync_anchor.trim().is_empty() {
            return Err(OpError::params("syncAnchor"));
        }
        let prev = match &r.deployment_anchor {
            Some(a) => Some(
                Anchor::parse(a)
                    .map_err(|_| OpError::params("deploymentAnchor"))?
                    .counter,
            ),
            None => None,
        };
        let store = &self.inner.store;
        let _g = self
            .inner
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let all = store.deployments()?;
        let current: HashMap<Uuid, [u8; 8]> = all.iter().map(|d| (d.id, fingerprint(d))).collect();
        let before = match prev {
            Some(n) if n > 0 => load(store, n)?,
            _ => None,
        };
        let (deployments, dead): (Vec<&Deployment>, Vec<Uuid>) = match &before {
            Some(b) => (
                all.iter()
                    .filter(|d| b.get(&d.id) != current.get(&d.id))
                    .collect(),
                b.keys()
                    .filter(|id| !current.contains_key(id))
                    .copied()
                    .collect(),
            ),
            None => (all.iter().collect(), Vec::new()),
        };
        // Number this state: reuse the last snapshot when nothing changed.
        let n_last = last(store)?;
        let n = if n_last > 0 && load(store, n_last)?.as_ref() == Some(&current) {
            n_last
        } else {
            let n = n_last + 1;
            store.set_setting(&snap_key(n), Some(&encode(&current)))?;
            store.set_setting(LAST, Some(&n.to_be_bytes()))?;
            if n > KEEP {
                store.set_setting(&snap_key(n - KEEP), None)?;
            }
            n
        };
        let mut dead = dead;
        dead.sort();
        Ok(GetDeploymentsResponse {
            anchor: Anchor::new(n, OffsetDateTime::now_utc()).to_string(),
            groups: store
                .groups()?
                .iter()
                .map(ServerSyncTargetGroup::from_model)
                .collect(),
            deployments: deployments
                .into_iter()
                .map(ServerSyncDeployment::from_model)
                .collect(),
            dead_deployments: dead,
            hidden_updates: store.declined_updates()?,
            accepted_eulas: store.accepted_eulas()?,
        })
    }
}
