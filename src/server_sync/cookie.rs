//! The upstream's cookies: the `AuthorizationCookie` handed out by DssAuth and the session
//! `Cookie` handed out by GetCookie. Both are a small fixed layout sealed with HMAC-SHA256
//! under a per-server key (kept in the store's settings, so cookies survive a restart):
//!
//! `kind (1) ‖ expiry unix ms (i64 BE) ‖ DSS GUID (16) ‖ tag (32)`
//!
//! Every cookie is hostile input: it is checked for length, kind, tag (constant time) and
//! expiry before any field is used; nothing is deserialized beyond those fixed offsets
//! (CVE-2025-59287 was unsafe deserialization of WSUS cookies).

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::store::{Store, StoreError};

/// Setting under which the HMAC key is kept.
pub const KEY_SETTING: &str = "upstream/cookie_key";
/// Windows' session cookie lifetime (SS fn 29: 240 minutes).
pub const DEFAULT_TTL: time::Duration = time::Duration::minutes(240);
/// Authorization cookie lifetime.
pub const AUTH_TTL: time::Duration = time::Duration::hours(8);

const LEN: usize = 1 + 8 + 16 + 32;

/// Which cookie a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `AuthorizationCookie.CookieData`.
    Authorization = 1,
    /// `Cookie.EncryptedData`.
    Session = 2,
}

/// Why a cookie was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieProblem {
    /// Wrong length, kind or tag: not ours or tampered with.
    Invalid,
    /// Genuine but past its expiry.
    Expired,
}

/// Seals and opens cookies.
#[derive(Clone)]
pub struct CookieJar {
    key: [u8; 32],
}

impl std::fmt::Debug for CookieJar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieJar(..)")
    }
}

impl CookieJar {
    /// A jar with an explicit key (tests).
    pub fn with_key(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The jar of this server: its key is read from the store, or made and stored.
    pub fn for_store(store: &Store) -> Result<Self, StoreError> {
        if let Some(k) = store.setting(KEY_SETTING)? {
            if let Ok(key) = <[u8; 32]>::try_from(k.as_slice()) {
                return Ok(Self { key });
            }
        }
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        store.set_setting(KEY_SETTING, Some(&key))?;
        Ok(Self { key })
    }

    fn tag(&self, body: &[u8]) -> [u8; 32] {
        // HMAC accepts keys of any length: new_from_slice cannot fail here.
        let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return [0; 32],
        };
        m.update(body);
        m.finalize().into_bytes().into()
    }

    /// Seals a cookie of `kind` for downstream `dss`, valid until `expiry`.
    pub fn seal(&self, kind: Kind, dss: Uuid, expiry: OffsetDateTime) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        out.push(kind as u8);
        let ms = (expiry.unix_timestamp_nanos() / 1_000_000) as i64;
        out.extend_from_slice(&ms.to_be_bytes());
        out.extend_from_slice(dss.as_bytes());
        let tag = self.tag(&out);
        out.extend_from_slice(&tag);
        out
    }

    /// Opens a cookie: checks length, kind, tag and expiry; returns the downstream's GUID.
    pub fn open(
        &self,
        kind: Kind,
        blob: &[u8],
        now: OffsetDateTime,
    ) -> Result<Uuid, CookieProblem> {
        if blob.len() != LEN || blob[0] != kind as u8 {
            return Err(CookieProblem::Invalid);
        }
        let (body, tag) = blob.split_at(LEN - 32);
        let want = self.tag(body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&want[..], tag)) {
            return Err(CookieProblem::Invalid);
        }
        let mut ms = [0u8; 8];
        ms.copy_from_slice(&body[1..9]);
        let expiry_ms = i64::from_be_bytes(ms);
        let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        let mut id = [0u8; 16];
        id.copy_from_slice(&body[9..25]);
        if now_ms >= expiry_ms {
            return Err(CookieProblem::Expired);
        }
        Ok(Uuid::from_bytes(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_tamper_expire() {
        let jar = CookieJar::with_key([7; 32]);
        let now = OffsetDateTime::now_utc();
        let dss = Uuid::new_v4();
        let c = jar.seal(Kind::Session, dss, now + time::Duration::minutes(5));
        assert_eq!(jar.open(Kind::Session, &c, now), Ok(dss));
        assert_eq!(
            jar.open(Kind::Authorization, &c, now),
            Err(CookieProblem::Invalid),
            "kinds are not interchangeable"
        );
        assert_eq!(
            jar.open(Kind::Session, &c, now + time::Duration::minutes(6)),
            Err(CookieProblem::Expired)
        );
        let mut bad = c.clone();
        bad[12] ^= 1;
        assert_eq!(
            jar.open(Kind::Session, &bad, now),
            Err(CookieProblem::Invalid)
        );
        assert_eq!(
            CookieJar::with_key([8; 32]).open(Kind::Session, &c, now),
            Err(CookieProblem::Invalid)
        );
        assert_eq!(
            jar.open(Kind::Session, &c[..10], now),
            Err(CookieProblem::Invalid)
        );
    }
}
