//! Tree names and key/value encoding. Every sled tree the store uses is named here, with the
//! layout of its keys and values; no other file invents a tree name.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `objects` | SHA-1 (20) | [`ObjectMeta`](super::ObjectMeta) JSON (content cache; outside transactions) |
//! | `content` | SHA-1 (20) | [`FileRecord`](crate::model::FileRecord) JSON |
//! | `revisions` | UpdateID (16) ‖ revision (u32 BE) | local id (u32 BE) ‖ [`UpdateRecord`](crate::model::UpdateRecord) JSON |
//! | `xml` | same as `revisions` | the full update XML, deflate-compressed |
//! | `latest` | UpdateID (16) | newest stored revision number (u32 BE) |
//! | `local_ids` | local revision id (u32 BE) | revision key (20) |
//! | `removed` | local revision id (u32 BE) | revision key (20): tombstones for incremental export |
//! | `meta` | ASCII name | server id, epoch, next local id |
//! | `sync` | ASCII name | `state` → [`SyncState`](super::SyncState) JSON; `cookie/<name>` → blob |
//! | `groups` | group id (16) | [`TargetGroup`](crate::model::TargetGroup) JSON |
//! | `deployments`, `deployments_b` | deployment id (16) | [`Deployment`](crate::model::Deployment) JSON: two generations, `meta/dep_live` names the live one, the other is staging (see `staged.rs`) |
//! | `declined` | UpdateID (16) | empty |
//! | `eulas` | EULA id (16) | empty |
//! | `computers` | computer id (UTF-8) | [`Computer`](super::Computer) JSON |
//! | `events` | computer id ‖ 0x00 ‖ time (i64, sign-flipped BE) ‖ instance id (16) | [`ReportedEvent`](super::ReportedEvent) JSON |
//! | `dep_log` | change number (u64 BE) | deployment id (16) ‖ 1 = put / 0 = removed; only numbers ≤ `meta/dep_seq` are committed |
//! | `wire_blobs` | same as `revisions` | the revision's `XmlUpdateBlobCompressed` text (base64 CAB), a cache for the upstream side |
//! | `states` | computer id (UTF-8) | the computer's derived update states (`states.rs`): binary, 30-byte records sorted by UpdateID: UpdateID (16) ‖ state value (14, as in `states_by_update`) |
//! | `states_by_update` | UpdateID (16) ‖ computer id (UTF-8) | state (u8: 0 installed, 1 needed, 2 failed, 3 not applicable, 4 unknown) ‖ last change (i64 BE) ‖ has error (u8) ‖ HRESULT (i32 BE) |
//! | `state_counts` | computer id (UTF-8) | needed, failed, installed, not applicable (4 × u32 BE) |
//! | `kv` | UTF-8 key | bytes (small settings) |
//! | `ds_servers` | server id (16) | [`DownstreamServer`](super::DownstreamServer) JSON (rollup received; side tree) |
//! | `ds_computers` | computer id (UTF-8) | [`DownstreamComputer`](super::DownstreamComputer) JSON (side tree) |
//! | `ds_states` | computer id (UTF-8) | the computer's rolled-up states (`ds_states.rs`): binary, 25-byte records sorted by UpdateID: UpdateID (16) ‖ state (u8, as in `states_by_update`) ‖ last change (i64 BE) (side tree; `ds_status`, one JSON value per state, until schema 3) |
//! | `rollup_sent` | computer id (UTF-8) | [`RollupSent`](super::RollupSent) JSON (own rollup upstream; side tree) |
//! | `client_changes` | `stamps` | the client service's change stamps (`change_stamps.rs`): version (u8 = 1) ‖ build stamp (i64 BE) ‖ records of UpdateID (16) ‖ digest (u64 BE) ‖ stamp (i64 BE) (side tree; this server's own, never exported) |
//!
//! Values are JSON (serde_json): self-describing, debuggable, fast enough; the three state
//! trees are the exception (fixed-width binary: 20 million states for 10,000 computers). They are side trees, outside
//! the every-tree transaction: `states.rs` writes them with `computers` and `events` in a
//! transaction of its own. Keys are fixed-width
//! big-endian so that sled's byte order is the natural order.

use std::io::Read;

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use crate::model::RevisionKey;

/// Object index: what the content cache holds (not part of metadata transactions).
pub const OBJECTS: &str = "objects";

/// A metadata tree: the transactional set every [`Tx`](super::Tx) views, addressed by name
/// instead of a bare index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tree {
    /// `content`: the content index (SHA-1 → declared file).
    Content,
    /// `revisions`: revision records.
    Revisions,
    /// `xml`: compressed update XML.
    Xml,
    /// `latest`: update id → newest revision.
    Latest,
    /// `local_ids`: local revision id → revision key.
    LocalIds,
    /// `removed`: tombstones of removed revisions.
    Removed,
    /// `meta`: server id, epoch, counters, deployment bookkeeping.
    Meta,
    /// `sync`: sync state, anchors and cookies.
    Sync,
    /// `groups`: target groups.
    Groups,
    /// `deployments`: approvals (first generation).
    Deployments,
    /// `declined`: declined (hidden) update ids.
    Declined,
    /// `eulas`: accepted EULA ids.
    Eulas,
    /// `computers`: client computers.
    Computers,
    /// `events`: client reporting events.
    Events,
    /// `dep_log`: the deployment change log.
    DepLog,
    /// `deployments_b`: approvals (second generation, for staged applies).
    DeploymentsB,
    /// `wire_blobs`: cached compressed wire forms of revisions.
    WireBlobs,
}

impl Tree {
    /// Every metadata tree, in the order of the transaction's view.
    pub const ALL: [Tree; 17] = [
        Tree::Content,
        Tree::Revisions,
        Tree::Xml,
        Tree::Latest,
        Tree::LocalIds,
        Tree::Removed,
        Tree::Meta,
        Tree::Sync,
        Tree::Groups,
        Tree::Deployments,
        Tree::Declined,
        Tree::Eulas,
        Tree::Computers,
        Tree::Events,
        Tree::DepLog,
        Tree::DeploymentsB,
        Tree::WireBlobs,
    ];

    /// The sled tree name.
    pub const fn name(self) -> &'static str {
        match self {
            Tree::Content => "content",
            Tree::Revisions => "revisions",
            Tree::Xml => "xml",
            Tree::Latest => "latest",
            Tree::LocalIds => "local_ids",
            Tree::Removed => "removed",
            Tree::Meta => "meta",
            Tree::Sync => "sync",
            Tree::Groups => "groups",
            Tree::Deployments => "deployments",
            Tree::Declined => "declined",
            Tree::Eulas => "eulas",
            Tree::Computers => "computers",
            Tree::Events => "events",
            Tree::DepLog => "dep_log",
            Tree::DeploymentsB => "deployments_b",
            Tree::WireBlobs => "wire_blobs",
        }
    }

    /// Position in [`Tree::ALL`] (and in the transaction's view).
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Small settings (outside the transactional set; single-key writes).
pub const KV: &str = "kv";
/// Downstream servers that rolled up here (side tree, `compliance.rs`).
pub const DS_SERVERS: &str = "ds_servers";
/// Computers rolled up from downstream servers (side tree).
pub const DS_COMPUTERS: &str = "ds_computers";
/// Their per-update states (side tree; written together with `ds_computers`).
pub const DS_STATES: &str = "ds_states";
/// Each own computer's derived update states (side tree, `states.rs`; written in one
/// transaction with `computers` and `events`).
pub const STATES: &str = "states";
/// The same states keyed by update first (side tree).
pub const STATES_BY_UPDATE: &str = "states_by_update";
/// Per-computer counts of those states (side tree).
pub const STATE_COUNTS: &str = "state_counts";
/// What this server last rolled up to its upstream, per computer (side tree).
pub const ROLLUP_SENT: &str = "rollup_sent";
/// The client service's change stamps (side tree, `change_stamps.rs`).
pub const CLIENT_CHANGES: &str = "client_changes";

/// `meta` key: the server GUID (16 bytes).
pub const META_SERVER_ID: &[u8] = b"server_id";
/// `meta` key: the revision-id-space epoch (u32 BE).
pub const META_EPOCH: &[u8] = b"epoch";
/// Unix milliseconds when the store was created (absent in stores older than the key).
pub const META_CREATED: &[u8] = b"created_unix_ms";
/// `meta` key: the next local revision id to hand out (u32 BE).
pub const META_NEXT_LOCAL_ID: &[u8] = b"next_local_id";
/// `meta` key: the last deployment change number used (u64 BE).
pub const META_DEP_SEQ: &[u8] = b"dep_seq";
/// `meta` key: which deployment tree is live (1 byte: 0 = `deployments`, 1 = `deployments_b`;
/// absent = `deployments`).
pub const META_DEP_LIVE: &[u8] = b"dep_live";
/// `sync` key: the [`SyncState`](super::SyncState).
pub const SYNC_STATE: &[u8] = b"state";
/// `sync` key prefix for cookie blobs.
pub const SYNC_COOKIE_PREFIX: &str = "cookie/";

/// The deployment tree a `meta/dep_live` value names.
pub fn dep_tree(live: Option<&[u8]>) -> Tree {
    match live {
        Some([1]) => Tree::DeploymentsB,
        _ => Tree::Deployments,
    }
}

/// The other deployment tree (staging) of a live one.
pub fn other_dep_tree(live: Tree) -> Tree {
    if live == Tree::DeploymentsB {
        Tree::Deployments
    } else {
        Tree::DeploymentsB
    }
}

/// The `meta/dep_live` value naming deployment tree `t`.
pub fn dep_live_value(t: Tree) -> [u8; 1] {
    [u8::from(t == Tree::DeploymentsB)]
}

/// Encodes a value as JSON.
pub fn enc<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Encode(e.to_string()))
}

/// Decodes a JSON value read from `tree`.
pub fn dec<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(tree, e))
}

/// A corruption error for `tree`.
pub fn corrupt(tree: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree,
        detail: detail.to_string(),
    }
}

/// A 20-byte SHA-1 key read back from a tree.
pub fn sha1_key(tree: &'static str, key: &[u8]) -> Result<[u8; 20], StoreError> {
    key.try_into()
        .map_err(|_| corrupt(tree, format!("key of {} bytes, expected 20", key.len())))
}

/// `UpdateID ‖ revision BE`.
pub fn rev_key(k: &RevisionKey) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..16].copy_from_slice(k.update_id.as_bytes());
    out[16..].copy_from_slice(&k.revision.to_be_bytes());
    out
}

/// Inverse of [`rev_key`].
pub fn parse_rev_key(tree: &'static str, b: &[u8]) -> Result<RevisionKey, StoreError> {
    if b.len() != 20 {
        return Err(corrupt(tree, format!("revision key of {} bytes", b.len())));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[..16]);
    let mut rev = [0u8; 4];
    rev.copy_from_slice(&b[16..]);
    Ok(RevisionKey::new(
        Uuid::from_bytes(id),
        u32::from_be_bytes(rev),
    ))
}

/// A big-endian u32 value or key.
pub fn parse_u32(tree: &'static str, b: &[u8]) -> Result<u32, StoreError> {
    let a: [u8; 4] = b
        .try_into()
        .map_err(|_| corrupt(tree, format!("u32 of {} bytes", b.len())))?;
    Ok(u32::from_be_bytes(a))
}

/// A 16-byte GUID key.
pub fn parse_uuid(tree: &'static str, b: &[u8]) -> Result<Uuid, StoreError> {
    Uuid::from_slice(b).map_err(|e| corrupt(tree, e))
}

/// Prefix of a computer's events: `id ‖ 0x00`.
pub fn events_prefix(computer: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(computer.len() + 1);
    k.extend_from_slice(computer.as_bytes());
    k.push(0);
    k
}

/// Key of one event: prefix ‖ time (sign-flipped BE, so negative times sort first) ‖ instance.
pub fn event_key(computer: &str, time_unix: i64, instance: &Uuid) -> Vec<u8> {
    let mut k = events_prefix(computer);
    k.extend_from_slice(&((time_unix as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(instance.as_bytes());
    k
}

/// A reusable deflate compressor: miniz allocates and zeroes ~300 KB of state per encoder,
/// which dominated batch commits when made per revision.
pub struct Compressor(flate2::Compress);

impl Compressor {
    /// A compressor at the fastest level (raw deflate, no zlib header): a sync compresses
    /// every revision it stores, and level 1 costs a third of the default for ~10 % more bytes.
    pub fn new() -> Self {
        Compressor(flate2::Compress::new(flate2::Compression::fast(), false))
    }

    /// Deflate-compresses update XML.
    pub fn compress(&mut self, xml: &str) -> Result<Vec<u8>, StoreError> {
        let c = &mut self.0;
        c.reset();
        let input = xml.as_bytes();
        let mut out = Vec::with_capacity(xml.len() / 4 + 64);
        loop {
            let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
            let rest = input.get(consumed..).unwrap_or_default();
            let status = c
                .compress_vec(rest, &mut out, flate2::FlushCompress::Finish)
                .map_err(|e| StoreError::Encode(e.to_string()))?;
            if status == flate2::Status::StreamEnd {
                return Ok(out);
            }
            out.reserve(out.capacity().max(64));
        }
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Self::new()
    }
}

/// Inverse of [`Compressor::compress`].
pub fn decompress(bytes: &[u8]) -> Result<String, StoreError> {
    let mut s = String::new();
    flate2::read::DeflateDecoder::new(bytes)
        .read_to_string(&mut s)
        .map_err(|e| corrupt("xml", e))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rev_keys_round_trip_and_sort_by_revision() {
        let id = Uuid::from_u128(0x1234);
        let a = RevisionKey::new(id, 2);
        let b = RevisionKey::new(id, 300);
        assert!(rev_key(&a) < rev_key(&b));
        assert_eq!(parse_rev_key("t", &rev_key(&b)).unwrap(), b);
        assert!(parse_rev_key("t", &[0; 19]).is_err());
    }

    #[test]
    fn event_keys_sort_by_time_including_negative() {
        let i = Uuid::nil();
        assert!(event_key("c", -5, &i) < event_key("c", 3, &i));
        assert!(event_key("c", 3, &i) < event_key("c", 1 << 40, &i));
        assert!(event_key("c", 3, &i).starts_with(&events_prefix("c")));
        assert!(!event_key("cd", 3, &i).starts_with(&events_prefix("c")));
    }

    #[test]
    fn xml_compression_round_trips() {
        let xml = "<Update>".to_string() + &"<File/>".repeat(500) + "</Update>";
        let c = Compressor::new().compress(&xml).unwrap();
        assert!(c.len() < xml.len() / 10);
        assert_eq!(decompress(&c).unwrap(), xml);
        // Reuse across inputs, including one far bigger than the first output buffer guess.
        let mut z = Compressor::new();
        let big: String = (0..20_000).map(|i| format!("<F n=\"{i}\"/>")).collect();
        for x in [xml.as_str(), "", big.as_str(), "<a/>"] {
            assert_eq!(decompress(&z.compress(x).unwrap()).unwrap(), x);
        }
        assert!(decompress(b"not deflate at all \xff\xfe").is_err());
    }
}
