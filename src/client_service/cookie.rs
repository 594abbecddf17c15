//! Authorization and session cookies for the client protocol: a small typed record, HMAC-SHA256
//! signed with a server key, carried base64 in `CookieData` / `EncryptedData`.
//!
//! Layout (all integers big-endian): `version(1)=1 ‖ kind(1) ‖ server_id(16) ‖ epoch(4) ‖
//! issued(8) ‖ expires(8) ‖ watermark(8) ‖ len(2) client_id ‖ len(2) target_groups ‖
//! tag(32)`, the tag over everything before it. The tag is checked (constant time) BEFORE any
//! field is read; fields are then read with explicit bounds. Nothing else is ever deserialized
//! from client input (CVE-2025-59287 was unsafe deserialization of a WSUS cookie).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
const TAG_LEN: usize = 32;
const FIXED: usize = 1 + 1 + 16 + 4 + 8 + 8 + 8;
/// Longest client id accepted.
pub const MAX_CLIENT_ID: usize = 128;
/// Longest target-group string accepted.
pub const MAX_TARGET_GROUPS: usize = 1024;

/// Which cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieKind {
    /// SimpleAuth authorization cookie.
    Authorization = 1,
    /// Client-service session cookie (`Cookie/EncryptedData`).
    Session = 2,
}

/// What a cookie says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Authorization or session.
    pub kind: CookieKind,
    /// The issuing server.
    pub server_id: Uuid,
    /// The revision-id epoch at issue time.
    pub epoch: u32,
    /// Issue time (unix seconds).
    pub issued: i64,
    /// Expiry (unix seconds).
    pub expires: i64,
    /// Latest deployment change the client was sent (unix seconds; 0 = none).
    pub watermark: i64,
    /// The client id.
    pub client_id: String,
    /// Client-side target group names (`;`-separated, as the agent sent them; may be empty).
    pub target_groups: String,
}

/// Why a cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// Malformed, forged, of the wrong kind or from another server.
    #[error("invalid cookie")]
    Invalid,
    /// Signed by us but past its expiry.
    #[error("cookie expired")]
    Expired,
    /// Signed by us for an older revision-id epoch.
    #[error("revision-id epoch changed")]
    EpochChanged,
}

/// The signing key.
#[derive(Clone)]
pub struct CookieKey([u8; 32]);

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

impl CookieKey {
    /// A key from 32 bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut b = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut b);
        Self(b)
    }

    /// Loads the key from `path`, creating it (mode 0600) with random bytes when absent, so
    /// cookies survive a restart.
    pub fn load_or_create(path: &std::path::Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(b) if b.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&b);
                Ok(Self(k))
            }
            Ok(_) | Err(_) => {
                let k = Self::random();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let tmp = path.with_extension("tmp");
                // Created 0600 (not chmod-ed after writing: the key was briefly
                // world-readable), and never through a file someone else left there.
                let _ = std::fs::remove_file(&tmp);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                {
                    use std::io::Write;
                    let mut f = opts.open(&tmp)?;
                    f.write_all(&k.0)?;
                    f.sync_all()?;
                }
                std::fs::rename(&tmp, path)?;
                Ok(k)
            }
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; 32 bytes cannot fail.
        match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes any key length"),
        }
    }

    /// Signs `c` into cookie bytes. Over-long strings are truncated to the limits.
    pub fn seal(&self, c: &Claims) -> Vec<u8> {
        let id = truncate(&c.client_id, MAX_CLIENT_ID);
        let groups = truncate(&c.target_groups, MAX_TARGET_GROUPS);
        let mut out = Vec::with_capacity(FIXED + 4 + id.len() + groups.len() + TAG_LEN);
        out.push(VERSION);
        out.push(c.kind as u8);
        out.extend_from_slice(c.server_id.as_bytes());
        out.extend_from_slice(&c.epoch.to_be_bytes());
        out.extend_from_slice(&c.issued.to_be_bytes());
        out.extend_from_slice(&c.expires.to_be_bytes());
        out.extend_from_slice(&c.watermark.to_be_bytes());
        for s in [id, groups] {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        let mut m = self.mac();
        m.update(&out);
        out.extend_from_slice(&m.finalize().into_bytes());
        out
    }

    /// Verifies and reads cookie bytes. Checks, in order: signature, layout, kind, server id,
    /// expiry (`now` unix seconds), epoch (when given).
    pub fn open(
        &self,
        bytes: &[u8],
        kind: CookieKind,
        server_id: Uuid,
        epoch: Option<u32>,
        now: i64,
    ) -> Result<Claims, CookieError> {
        if bytes.len() < FIXED + 4 + TAG_LEN
            || bytes.len() > FIXED + 4 + MAX_CLIENT_ID + MAX_TARGET_GROUPS + TAG_LEN
        {
            return Err(CookieError::Invalid);
        }
        let (body, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        let mut m = self.mac();
        m.update(body);
        m.verify_slice(tag).map_err(|_| CookieError::Invalid)?;
        let c = parse(body).ok_or(CookieError::Invalid)?;
        if c.kind != kind || c.server_id != server_id {
            return Err(CookieError::Invalid);
        }
        if now >= c.expires {
            return Err(CookieError::Expired);
        }
        if epoch.is_some_and(|e| e != c.epoch) {
            return Err(CookieError::EpochChanged);
        }
        Ok(c)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Reads a signed body (already authenticated).
fn parse(b: &[u8]) -> Option<Claims> {
    let mut r = Reader(b);
    if r.take(1)?[0] != VERSION {
        return None;
    }
    let kind = match r.take(1)?[0] {
        1 => CookieKind::Authorization,
        2 => CookieKind::Session,
        _ => return None,
    };
    let server_id = Uuid::from_slice(r.take(16)?).ok()?;
    let epoch = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
    let issued = i64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let expires = i64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let watermark = i64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let client_id = r.string(MAX_CLIENT_ID)?;
    let target_groups = r.string(MAX_TARGET_GROUPS)?;
    if !r.0.is_empty() {
        return None;
    }
    Some(Claims {
        kind,
        server_id,
        epoch,
        issued,
        expires,
        watermark,
        client_id,
        target_groups,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn string(&mut self, max: usize) -> Option<String> {
        let n = u16::from_be_bytes(self.take(2)?.try_into().ok()?) as usize;
        if n > max {
            return None;
        }
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            kind: CookieKind::Session,
            server_id: Uuid::from_u128(7),
            epoch: 3,
            issued: 100,
            expires: 200,
            watermark: 50,
            client_id: "992ff43e-9bbb-4e77-a850-9d01d0e632b4".into(),
            target_groups: "Pilot;Servers".into(),
        }
    }

    #[test]
    fn round_trips_and_rejects_tampering_expiry_epoch_kind_and_key() {
        let k = CookieKey::random();
        let c = claims();
        let b = k.seal(&c);
        let sid = c.server_id;
        assert_eq!(k.open(&b, CookieKind::Session, sid, Some(3), 150), Ok(c));
        for i in 0..b.len() {
            let mut t = b.clone();
            t[i] ^= 1;
            assert_eq!(
                k.open(&t, CookieKind::Session, sid, Some(3), 150),
                Err(CookieError::Invalid),
                "flipped byte {i}"
            );
        }
        assert_eq!(
            k.open(&b, CookieKind::Session, sid, Some(3), 200),
            Err(CookieError::Expired)
        );
        assert_eq!(
            k.open(&b, CookieKind::Session, sid, Some(4), 150),
            Err(CookieError::EpochChanged)
        );
        assert_eq!(
            k.open(&b, CookieKind::Authorization, sid, Some(3), 150),
            Err(CookieError::Invalid)
        );
        assert_eq!(
            k.open(&b, CookieKind::Session, Uuid::from_u128(8), Some(3), 150),
            Err(CookieError::Invalid)
        );
        let other = CookieKey::random();
        assert_eq!(
            other.open(&b, CookieKind::Session, sid, Some(3), 150),
            Err(CookieError::Invalid)
        );
        assert_eq!(
            k.open(&[0u8; 300], CookieKind::Session, sid, Some(3), 150),
            Err(CookieError::Invalid)
        );
        assert_eq!(
            k.open(&[], CookieKind::Session, sid, Some(3), 150),
            Err(CookieError::Invalid)
        );
    }

    #[test]
    fn long_strings_are_truncated_on_char_boundaries() {
        let k = CookieKey::random();
        let mut c = claims();
        c.target_groups = "é".repeat(2000);
        let b = k.seal(&c);
        let back = k
            .open(&b, CookieKind::Session, c.server_id, Some(3), 150)
            .unwrap();
        assert!(back.target_groups.len() <= MAX_TARGET_GROUPS);
        assert!(back.target_groups.chars().all(|ch| ch == 'é'));
    }
}
