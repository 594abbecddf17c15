//! The deployment change log: every deployment write inside a transaction goes through
//! [`DepLog`], which numbers it in `dep_log` (deployment id ‖ put/removed) and moves
//! `meta/dep_seq` to the last committed number; [`Store::deployment_changes_since`] reads it
//! back for the server-sync side's GetDeployments. Log entries above the committed number
//! (a staged apply not made live yet, or the leftovers of an interrupted one) are never
//! reported.

use std::cell::Cell;
use std::collections::BTreeMap;

use uuid::Uuid;

use super::schema::{self, dec, Tree};
use super::{abort, Store, StoreError, Tx, TxResult};
use crate::model::Deployment;

/// Deployment changes after a change number (for the upstream side's GetDeployments).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentChanges {
    /// Deployments added or changed since, as they are now.
    pub changed: Vec<Deployment>,
    /// Deployments removed since (and not re-added).
    pub dead: Vec<Uuid>,
    /// The current change number: pass it next time.
    pub seq: u64,
}

/// Every deployment write inside a transaction goes through this, so that it is logged in
/// `dep_log` under a fresh change number (built anew on each transaction attempt), and lands
/// in the live deployment tree.
pub(super) struct DepLog {
    next: Cell<u64>,
    /// The live deployment tree (index into the transaction's view).
    tree: Tree,
}

/// The last committed deployment change number, read inside a transaction.
pub(super) fn dep_seq_in_tx(tx: &Tx<'_>) -> TxResult<u64> {
    match tx.get_raw(Tree::Meta, schema::META_DEP_SEQ)? {
        Some(v) => parse_seq(&v).map_err(abort),
        None => Ok(0),
    }
}

/// A `meta/dep_seq` value.
pub(super) fn parse_seq(v: &[u8]) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(
        v.try_into()
            .map_err(|_| schema::corrupt("meta", "dep_seq"))?,
    ))
}

/// A `dep_log` entry: deployment id ‖ 1 = put / 0 = removed.
pub(super) fn log_entry(id: &Uuid, put: bool) -> [u8; 17] {
    let mut v = [0u8; 17];
    v[..16].copy_from_slice(id.as_bytes());
    v[16] = put as u8;
    v
}

impl DepLog {
    pub(super) fn start(tx: &Tx<'_>) -> TxResult<DepLog> {
        let last = dep_seq_in_tx(tx)?;
        let live = tx.get_raw(Tree::Meta, schema::META_DEP_LIVE)?;
        Ok(DepLog {
            next: Cell::new(last + 1),
            tree: schema::dep_tree(live.as_deref()),
        })
    }

    fn log(&self, tx: &Tx<'_>, id: &Uuid, put: bool) -> TxResult<()> {
        let n = self.next.get();
        tx.put_raw(Tree::DepLog, &n.to_be_bytes(), &log_entry(id, put))?;
        self.next.set(n + 1);
        Ok(())
    }

    pub(super) fn put(&self, tx: &Tx<'_>, d: &Deployment) -> TxResult<()> {
        tx.put(self.tree, d.id.as_bytes(), d)?;
        self.log(tx, &d.id, true)
    }

    pub(super) fn del(&self, tx: &Tx<'_>, id: &Uuid) -> TxResult<bool> {
        let existed = tx.remove(self.tree, id.as_bytes())?;
        if existed {
            self.log(tx, id, false)?;
        }
        Ok(existed)
    }

    pub(super) fn finish(&self, tx: &Tx<'_>) -> TxResult<()> {
        let last = self.next.get() - 1;
        tx.put_raw(Tree::Meta, schema::META_DEP_SEQ, &last.to_be_bytes())
    }
}

impl Store {
    /// The current deployment change number (0 before any deployment change).
    pub fn deployment_seq(&self) -> Result<u64, StoreError> {
        match self.tree(Tree::Meta)?.get(schema::META_DEP_SEQ)? {
            Some(v) => parse_seq(&v),
            None => Ok(0),
        }
    }

    /// What changed in deployments after change number `since` (0 = everything): changed
    /// ones as they are now, removed ones by id, and the current number. The upstream side
    /// answers GetDeployments from this (its deployment anchor carries the number).
    /// Log entries above the committed number (a staged apply not made live yet, or the
    /// leftovers of an interrupted one) are never reported.
    pub fn deployment_changes_since(&self, since: u64) -> Result<DeploymentChanges, StoreError> {
        let _w = self.writer();
        let seq = self.deployment_seq()?;
        let mut last: BTreeMap<Uuid, bool> = BTreeMap::new();
        if since >= seq {
            return Ok(DeploymentChanges {
                seq,
                ..Default::default()
            });
        }
        for kv in self
            .tree(Tree::DepLog)?
            .range((since + 1).to_be_bytes()..=seq.to_be_bytes())
        {
            let (_, v) = kv?;
            if v.len() != 17 {
                return Err(schema::corrupt("dep_log", "entry length"));
            }
            last.insert(schema::parse_uuid("dep_log", &v[..16])?, v[16] == 1);
        }
        let mut out = DeploymentChanges {
            seq,
            ..Default::default()
        };
        let live = self.live_deployments()?;
        for id in last.keys() {
            match live.get(id.as_bytes())? {
                Some(v) => out.changed.push(dec("deployments", &v)?),
                None => out.dead.push(*id),
            }
        }
        Ok(out)
    }
}
