//! The client service's change stamps, kept across restarts (side tree `client_changes`, one
//! value; `schema.rs` has the layout).
//!
//! `ChangedUpdates` (MS-WUSP §3.1.5.7) lists the cached updates whose Deployment or IsLeaf
//! changed since the client's last sync. The client service notes, per update, a digest of
//! what its client-visible deployment depends on and when that digest last changed
//! (`client_service/changes.rs`). Kept only in memory, a restart had to assume every update
//! changed, so the first scan of every client after a restart re-sent its whole cache as
//! changed. What is stored here lets the next process tell what really changed while it was
//! down (a different digest) from what did not (the same digest keeps its stamp).
//!
//! The stamps are this server's observations, so they are not part of exports or snapshots.

use std::collections::HashMap;

use uuid::Uuid;

use super::schema;
use super::{Store, StoreError};

/// The key of the one value in `client_changes`.
const KEY: &[u8] = b"stamps";

/// The layout version in the value's first byte.
const VERSION: u8 = 1;

/// Bytes of one record: UpdateID (16) ‖ digest (u64 BE) ‖ stamp (i64 BE).
const REC: usize = 16 + 8 + 8;

/// What the last scan index build observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeStamps {
    /// The stamp of that build (unix milliseconds): a session cookie issued from it carries
    /// at most this watermark, so the next process's stamps must be later.
    pub built: i64,
    /// Per update: the digest of its client-visible state and the stamp at which it last
    /// changed.
    pub by_update: HashMap<Uuid, (u64, i64)>,
}

impl Store {
    /// The stamps the last build stored; `None` when none were stored (a new store, or one
    /// from before they were kept) or the value is not in a layout this version reads (then
    /// the caller assumes everything changed, which is always safe).
    pub fn change_stamps(&self) -> Result<Option<ChangeStamps>, StoreError> {
        let Some(v) = self.named_tree(schema::CLIENT_CHANGES)?.get(KEY)? else {
            return Ok(None);
        };
        Ok(decode(&v))
    }

    /// Replaces the stored stamps (one write: a crash leaves the old value or the new one),
    /// durably: a build follows a change, and a crash soon after must not lose its stamps
    /// (the next start would then count every update as changed).
    pub fn put_change_stamps(
        &self,
        built: i64,
        entries: impl ExactSizeIterator<Item = (Uuid, u64, i64)>,
    ) -> Result<(), StoreError> {
        let mut v = Vec::with_capacity(1 + 8 + entries.len() * REC);
        v.push(VERSION);
        v.extend_from_slice(&built.to_be_bytes());
        for (id, digest, stamp) in entries {
            v.extend_from_slice(id.as_bytes());
            v.extend_from_slice(&digest.to_be_bytes());
            v.extend_from_slice(&stamp.to_be_bytes());
        }
        let r = self
            .named_tree(schema::CLIENT_CHANGES)
            .and_then(|t| Ok(t.insert(KEY, v)?));
        self.noted(r.map(|_| ()))?;
        self.flush()
    }
}

impl Store {
    /// Removes the stored stamps (the next start then counts every update as changed).
    pub fn forget_change_stamps(&self) -> Result<(), StoreError> {
        let r = self
            .named_tree(schema::CLIENT_CHANGES)
            .and_then(|t| Ok(t.remove(KEY)?));
        self.noted(r.map(|_| ()))?;
        self.flush()
    }
}

fn decode(v: &[u8]) -> Option<ChangeStamps> {
    let (&version, rest) = v.split_first()?;
    let (built, recs) = rest.split_first_chunk::<8>()?;
    if version != VERSION || !recs.len().is_multiple_of(REC) {
        return None;
    }
    let by_update = recs
        .chunks_exact(REC)
        .filter_map(|c| {
            let (id, c) = c.split_first_chunk::<16>()?;
            let (digest, stamp) = c.split_first_chunk::<8>()?;
            let stamp = <[u8; 8]>::try_from(stamp).ok()?;
            let at = (u64::from_be_bytes(*digest), i64::from_be_bytes(stamp));
            Some((Uuid::from_bytes(*id), at))
        })
        .collect();
    Some(ChangeStamps {
        built: i64::from_be_bytes(*built),
        by_update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = Uuid::from_u128(0xA);
        let b = Uuid::from_u128(0xB);
        {
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.change_stamps().unwrap(), None);
            s.put_change_stamps(
                1_700_000_000_123,
                [(a, 7, -5), (b, u64::MAX, 42)].into_iter(),
            )
            .unwrap();
            s.flush().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let got = s.change_stamps().unwrap().unwrap();
        assert_eq!(got.built, 1_700_000_000_123);
        assert_eq!(got.by_update.len(), 2);
        assert_eq!(got.by_update[&a], (7, -5));
        assert_eq!(got.by_update[&b], (u64::MAX, 42));
        s.forget_change_stamps().unwrap();
        assert_eq!(s.change_stamps().unwrap(), None);
    }

    #[test]
    fn a_value_in_another_layout_reads_as_nothing_stored() {
        // Version byte 1, built, then 33 bytes: not a whole number of 32-byte records.
        let mut v = vec![1u8];
        v.extend_from_slice(&0i64.to_be_bytes());
        v.extend_from_slice(&[0u8; 33]);
        assert_eq!(decode(&v), None);
        assert_eq!(decode(&[2u8; 41]), None, "an unknown version");
        assert_eq!(decode(&[]), None);
        // The layout written byte for byte: one record.
        let mut v = vec![1u8];
        v.extend_from_slice(&9i64.to_be_bytes());
        v.extend_from_slice(&[0x11; 16]);
        v.extend_from_slice(&3u64.to_be_bytes());
        v.extend_from_slice(&(-1i64).to_be_bytes());
        let got = decode(&v).unwrap();
        assert_eq!(got.built, 9);
        assert_eq!(got.by_update[&Uuid::from_bytes([0x11; 16])], (3, -1));
    }
}
