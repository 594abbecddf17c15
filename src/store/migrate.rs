//! The store's schema version and its numbered migrations. `meta/schema_version` (u32 BE)
//! says which layout a data dir holds; a store written before versioning existed has no key
//! and is version 0. [`Store::open`](super::Store::open) runs every migration from the stored
//! version up to [`SCHEMA_VERSION`], each in its own transaction together with the version
//! bump, so a crash leaves the store at a whole version. A store newer than this binary is
//! refused (no downgrades).
//!
//! Adding a layout change: append a step to [`MIGRATIONS`] (its index + 1 is the version it
//! produces), bump [`SCHEMA_VERSION`], and add a fixture written by the previous version to
//! `tests/fixtures/store/` with a test in `tests/store_upgrade.rs`. Record fields added
//! without a migration must be `#[serde(default)]` so older records still decode.

use super::schema::{self, Tree};
use super::{Store, StoreError, TxResult};

/// The layout this binary writes.
pub const SCHEMA_VERSION: u32 = 3;

/// `meta` key of the schema version.
pub const META_SCHEMA_VERSION: &[u8] = b"schema_version";

/// One migration step: runs inside the transaction that also records its version.
type Step = fn(&super::Tx<'_>) -> TxResult<()>;

/// `MIGRATIONS[i]` turns version `i` into version `i + 1`.
const MIGRATIONS: [(&str, Step); SCHEMA_VERSION as usize] = [
    (
        // v0 → v1: v0 (every store before versioning) already has the v1 trees and records;
        // the step only records the version so later steps know where to start.
        "record the schema version",
        |_tx| Ok(()),
    ),
    (
        // v1 → v2: the stored compliance states (`states.rs`). Deriving them reads every
        // computer's events, which a transaction cannot scan: the step marks them pending and
        // `Store::open` derives them right after, one computer per transaction.
        "derive the stored compliance states",
        |tx| tx.put_raw(Tree::Meta, super::states::META_STATES_PENDING, &[1]),
    ),
    (
        // v2 → v3: rolled-up states as one binary value per computer (`ds_states.rs`) instead
        // of one JSON value per state. The conversion scans a side tree, which a
        // transaction cannot: marked here, done by `Store::open` right after.
        "rolled-up states: one value per computer",
        |tx| tx.put_raw(Tree::Meta, super::ds_states::META_DS_STATES_PENDING, &[1]),
    ),
];

impl Store {
    /// The schema version recorded in the store (0 when it predates versioning).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        match self.tree(Tree::Meta)?.get(META_SCHEMA_VERSION)? {
            Some(v) => schema::parse_u32("meta", &v),
            None => Ok(0),
        }
    }

    /// Brings the store to [`SCHEMA_VERSION`]; refuses a newer store. Returns the version found.
    pub(super) fn migrate(&self, fresh: bool) -> Result<u32, StoreError> {
        let found = self.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if fresh {
            self.txn(|tx| {
                tx.put_raw(
                    Tree::Meta,
                    META_SCHEMA_VERSION,
                    &SCHEMA_VERSION.to_be_bytes(),
                )
            })?;
            return Ok(found);
        }
        for v in found..SCHEMA_VERSION {
            let (what, step) = MIGRATIONS[v as usize];
            self.txn(|tx| {
                step(tx)?;
                tx.put_raw(Tree::Meta, META_SCHEMA_VERSION, &(v + 1).to_be_bytes())
            })?;
            tracing::info!(from = v, to = v + 1, what, "store: schema migrated");
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_store_is_at_the_current_version() {
        let (_d, s) = super::super::testutil::store();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_store_is_refused_and_left_alone() {
        let d = tempfile::tempdir().unwrap();
        {
            let s = Store::open(d.path()).unwrap();
            s.tree(Tree::Meta)
                .unwrap()
                .insert(META_SCHEMA_VERSION, &(SCHEMA_VERSION + 1).to_be_bytes())
                .unwrap();
            s.flush().unwrap();
        }
        match Store::open(d.path()) {
            Err(StoreError::NewerSchema { found, supported }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
    }

    #[test]
    fn a_store_without_a_version_is_migrated_once() {
        let d = tempfile::tempdir().unwrap();
        {
            let s = Store::open(d.path()).unwrap();
            s.tree(Tree::Meta)
                .unwrap()
                .remove(META_SCHEMA_VERSION)
                .unwrap();
            s.flush().unwrap();
            assert_eq!(s.schema_version().unwrap(), 0);
        }
        let s = Store::open(d.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    }
}
