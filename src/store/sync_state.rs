//! Sync state: the MS-WSUSSS "Parent USS State" a downstream keeps (anchors, upstream limits,
//! the last sync's outcome), cookie blobs, and small key/value settings.
//!
//! The [`SyncState`] is written whole: by [`Store::commit_batch`] together with the batch its
//! anchors cover, by [`Store::apply_upstream_deployments`] together with the approvals, or
//! alone by [`Store::set_sync_state`] (outcome, ServerChanged reset).

use serde::{Deserialize, Serialize};

use super::schema::{self, dec, enc, Tree};
use super::{Store, StoreError};

/// What a downstream remembers between syncs (MS-WSUSSS §3.1.1 "Parent USS State").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// `NewConfigAnchor` from GetConfigData.
    pub config_anchor: Option<String>,
    /// Anchor of the config pass of GetRevisionIdList (categories, detectoids).
    pub categories_anchor: Option<String>,
    /// Anchor of the software pass of GetRevisionIdList (the "Last SyncAnchor").
    pub sync_anchor: Option<String>,
    /// Anchor from GetDeployments (the "Last Deployment Anchor").
    pub deployment_anchor: Option<String>,
    /// Upstream's `MaxNumberOfUpdatesPerRequest`.
    pub max_updates_per_request: Option<u32>,
    /// Upstream's languages, as sent in GetConfigData.
    pub languages: Vec<String>,
    /// The most recent finished sync.
    pub last_sync: Option<SyncOutcome>,
    /// The most recent successful sync.
    pub last_success: Option<SyncOutcome>,
    /// Revisions the last sync isolated and skipped (an unparsable document, or one the
    /// upstream faults on). Written with the anchor that passes them, so a later sync knows to
    /// ask for them again; emptied as they arrive.
    #[serde(default)]
    pub skipped: Vec<SkippedRevision>,
    /// Upstream's language table (LCID, short name) from the last GetConfigData that carried
    /// one (an anchored GetConfigData may not): a `[sync] languages` filter resolves against it
    /// on every sync.
    #[serde(default)]
    pub language_table: Vec<(i32, String)>,
    /// What `sync_anchor` covers: the products, classifications (GUIDs) and languages (LCIDs)
    /// of the software pass that wrote it. Categories added since are asked with `Delta=false`.
    #[serde(default)]
    pub anchor_covers: AnchorCover,
    /// The upstream's GetConfigData flags, relayed to this server's own downstreams.
    #[serde(default)]
    pub upstream_flags: Option<UpstreamFlags>,
}

/// GetConfigData flags learned from upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamFlags {
    /// `CatalogOnlySync`: the upstream holds no files (clients fetch from Microsoft Update).
    pub catalog_only_sync: bool,
    /// `LazySync`.
    pub lazy_sync: bool,
    /// `ServerHostsPsfFiles`.
    pub server_hosts_psf_files: bool,
}

/// The filter a software-pass anchor was obtained with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorCover {
    /// Product (and other non-classification) category ids.
    pub products: Vec<uuid::Uuid>,
    /// Classification ids.
    pub classifications: Vec<uuid::Uuid>,
    /// LCIDs (empty = no language filter: all).
    pub languages: Vec<i32>,
}

/// A revision a sync could not take (issue 14: `"skipped": [{"id", "revision", "reason"}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRevision {
    /// UpdateID.
    pub id: uuid::Uuid,
    /// RevisionNumber.
    pub revision: u32,
    /// Why (the parse error or the upstream's fault).
    pub reason: String,
}

impl SyncState {
    /// Forgets every anchor (the MS-WSUSSS `ServerChanged` reaction); keeps the history.
    pub fn reset_anchors(&mut self) {
        self.config_anchor = None;
        self.categories_anchor = None;
        self.sync_anchor = None;
        self.deployment_anchor = None;
        self.anchor_covers = AnchorCover::default();
    }
}

/// How one sync ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOutcome {
    /// Start (unix seconds).
    pub started_unix: i64,
    /// End (unix seconds).
    pub finished_unix: i64,
    /// Whether it completed.
    pub success: bool,
    /// Error or summary text.
    pub message: String,
    /// Revisions added or changed.
    pub revisions_added: u64,
    /// Revisions removed (expired).
    pub revisions_removed: u64,
    /// Deployments after the sync.
    pub deployments: u64,
}

impl Store {
    /// The stored sync state (default when never synced).
    pub fn sync_state(&self) -> Result<SyncState, StoreError> {
        match self.tree(Tree::Sync)?.get(schema::SYNC_STATE)? {
            Some(v) => dec("sync", &v),
            None => Ok(SyncState::default()),
        }
    }

    /// Replaces the sync state on its own (outcome, ServerChanged reset). Anchors that cover
    /// records belong in [`Store::commit_batch`] instead.
    pub fn set_sync_state(&self, state: &SyncState) -> Result<(), StoreError> {
        let v = enc(state)?;
        let _w = self.writer();
        self.tree(Tree::Sync)?.insert(schema::SYNC_STATE, v)?;
        Ok(())
    }

    /// A stored cookie blob (e.g. `"auth"`, `"server"`: upstream's opaque cookies).
    pub fn cookie(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = format!("{}{name}", schema::SYNC_COOKIE_PREFIX);
        Ok(self.tree(Tree::Sync)?.get(key)?.map(|v| v.to_vec()))
    }

    /// Stores (`Some`) or forgets (`None`) a cookie blob.
    pub fn set_cookie(&self, name: &str, blob: Option<&[u8]>) -> Result<(), StoreError> {
        let key = format!("{}{name}", schema::SYNC_COOKIE_PREFIX);
        match blob {
            Some(b) => self.tree(Tree::Sync)?.insert(key, b)?,
            None => self.tree(Tree::Sync)?.remove(key)?,
        };
        Ok(())
    }

    /// A small setting (e.g. the subscription chosen with `subscription set`).
    pub fn setting(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.live()?.kv.get(key)?.map(|v| v.to_vec()))
    }

    /// Stores (`Some`) or removes (`None`) a small setting.
    pub fn set_setting(&self, key: &str, value: Option<&[u8]>) -> Result<(), StoreError> {
        let db = self.live()?;
        let r = match value {
            Some(v) => db.kv.insert(key, v),
            None => db.kv.remove(key),
        };
        self.noted(r.map(|_| ()).map_err(StoreError::from))
    }

    /// Every setting, in key order.
    pub fn settings(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.live()?
            .kv
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let k = String::from_utf8(k.to_vec()).map_err(|e| schema::corrupt("kv", e))?;
                Ok((k, v.to_vec()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::store;

    #[test]
    fn state_cookies_and_settings_persist() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.sync_state().unwrap(), SyncState::default());
            let mut st = SyncState {
                config_anchor: Some("c".into()),
                sync_anchor: Some("1234,2026-11-25 12:00:00.000".into()),
                deployment_anchor: Some("d".into()),
                max_updates_per_request: Some(100),
                last_sync: Some(SyncOutcome {
                    success: true,
                    revisions_added: 5,
                    ..Default::default()
                }),
                ..Default::default()
            };
            s.set_sync_state(&st).unwrap();
            st.reset_anchors();
            assert_eq!(st.sync_anchor, None);
            assert!(st.last_sync.is_some());
            s.set_cookie("server", Some(b"opaque")).unwrap();
            s.set_setting("subscription", Some(b"{}")).unwrap();
            s.flush().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let st = s.sync_state().unwrap();
        assert_eq!(st.max_updates_per_request, Some(100));
        assert_eq!(st.last_sync.unwrap().revisions_added, 5);
        assert_eq!(s.cookie("server").unwrap().as_deref(), Some(&b"opaque"[..]));
        assert_eq!(s.cookie("auth").unwrap(), None);
        s.set_cookie("server", None).unwrap();
        assert_eq!(s.cookie("server").unwrap(), None);
        assert_eq!(
            s.settings().unwrap(),
            vec![("subscription".to_string(), b"{}".to_vec())]
        );
        s.set_setting("subscription", None).unwrap();
        assert_eq!(s.setting("subscription").unwrap(), None);
    }

    #[test]
    fn cookies_do_not_clobber_the_state() {
        let (_d, s) = store();
        s.set_cookie("state", Some(b"x")).unwrap();
        assert_eq!(s.sync_state().unwrap(), SyncState::default());
    }
}
