//! The persisted subscription: which products and classifications sync downloads, as
//! `wsus-edge subscription set` chose them (kept in a store setting). The admin API writes it;
//! the sync runner reads it; without one, `[sync] products/classifications` apply.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::config::SyncConfig;

/// The store setting that holds the subscription (JSON).
pub const SUBSCRIPTION_SETTING: &str = "admin.subscription";

/// What sync downloads. Empty lists mean "all"; entries are category GUIDs (or titles, when
/// they come from the configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Product GUIDs or titles.
    pub products: Vec<String>,
    /// Classification GUIDs or titles.
    pub classifications: Vec<String>,
}

impl Store {
    /// The subscription stored with `subscription set`, if any.
    pub fn stored_subscription(&self) -> Result<Option<Subscription>, StoreError> {
        match self.setting(SUBSCRIPTION_SETTING)? {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    tree: "settings",
                    detail: format!("{SUBSCRIPTION_SETTING}: {e}"),
                }),
            None => Ok(None),
        }
    }

    /// Stores the subscription (`subscription set`).
    pub fn set_subscription(&self, s: &Subscription) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(s).map_err(|e| StoreError::Encode(e.to_string()))?;
        self.set_setting(SUBSCRIPTION_SETTING, Some(&bytes))
    }

    /// The subscription in force: the stored one, else `[sync] products/classifications` (also
    /// when the stored one cannot be read, which is logged).
    pub fn subscription(&self, sync: &SyncConfig) -> Subscription {
        match self.stored_subscription() {
            Ok(Some(s)) => return s,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "stored subscription unreadable; using [sync]"),
        }
        Subscription {
            products: sync.products.clone(),
            classifications: sync.classifications.clone(),
        }
    }
}
