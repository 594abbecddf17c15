//! Tree names and key/value encoding. Every sled tree the store uses is named here, with the
//! layout of its keys and values; no other file invents a tree name.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `content` | SHA-1 (20 bytes) | [`FileRecord`](crate::model::FileRecord) JSON |
//! | `objects` | SHA-1 (20 bytes) | [`ObjectMeta`](super::ObjectMeta) JSON |
//!
//! Values are JSON (serde_json): self-describing, debuggable, and fast enough for the sizes
//! involved. Keys are fixed-width big-endian so that sled's byte order is the natural order.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

/// Content index: what payloads metadata declares.
pub const CONTENT: &str = "content";
/// Object index: what the content cache holds.
pub const OBJECTS: &str = "objects";

/// Encodes a value as JSON.
pub fn enc<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Encode(e.to_string()))
}

/// Decodes a JSON value read from `tree`.
pub fn dec<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        detail: e.to_string(),
    })
}

/// A 20-byte SHA-1 key read back from a tree.
pub fn sha1_key(tree: &'static str, key: &[u8]) -> Result<[u8; 20], StoreError> {
    key.try_into().map_err(|_| StoreError::Corrupt {
        tree,
        detail: format!("key of {} bytes, expected 20", key.len()),
    })
}
