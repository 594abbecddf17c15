//! Admin authentication: the bearer token (from `WSUS_EDGE_TOKEN` or `[admin] token_file`,
//! created with a random token and mode 0600 when missing), constant-time comparison, and the
//! status page's session cookie (an expiry plus an HMAC of it keyed by the token, so no server
//! side session table is needed and a token change logs every browser out).

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::Config;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "wsus_edge_session";
/// How long a browser session lasts, seconds.
pub const SESSION_SECS: i64 = 12 * 3600;
/// The environment variable that overrides the token file.
pub const TOKEN_ENV: &str = "WSUS_EDGE_TOKEN";

/// Environment variable holding the read-only metrics token (overrides the file).
pub const METRICS_TOKEN_ENV: &str = "WSUS_EDGE_METRICS_TOKEN";

/// The read-only token that reads `GET /metrics` and nothing else: `WSUS_EDGE_METRICS_TOKEN`,
/// else `[admin] metrics_token_file` (read on each scrape, so a new file applies at once;
/// never created). `None` when neither is set or the file cannot be read (logged).
pub fn metrics_token(config: &Config) -> Option<Token> {
    if let Ok(v) = std::env::var(METRICS_TOKEN_ENV) {
        return Token::new(&v, METRICS_TOKEN_ENV).ok();
    }
    let path = config.admin.metrics_token_file.as_ref()?;
    match std::fs::read_to_string(path) {
        Ok(t) => Token::new(&t, &path.display().to_string()).ok(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "metrics token file unreadable");
            None
        }
    }
}

/// Why the token could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read or written.
    #[error("admin token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The token is empty or not printable ASCII.
    #[error(
        "admin token from {origin} is empty or contains characters other than printable ASCII"
    )]
    Invalid {
        /// Where it came from.
        origin: String,
    },
    /// The token is too short to resist guessing.
    #[error("admin token from {origin} is shorter than {MIN_TOKEN_LEN} characters")]
    TooShort {
        /// Where it came from.
        origin: String,
    },
}

/// Shortest admin token accepted (the generated ones have 64 characters).
pub const MIN_TOKEN_LEN: usize = 16;
/// Failed admin authentications one address may make per minute; beyond, 429.
pub const MAX_FAILURES_PER_MINUTE: u32 = 10;

/// Failed authentications per client address (fixed one-minute windows), so a token cannot
/// be guessed at network speed.
#[derive(Debug, Default)]
pub struct Failures {
    by_addr:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (std::time::Instant, u32)>>,
}

impl Failures {
    /// True when `addr` used up its failures for the current minute.
    pub fn blocked(&self, addr: std::net::IpAddr, now: std::time::Instant) -> bool {
        let m = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&addr).is_some_and(|(start, n)| {
            now.duration_since(*start) < std::time::Duration::from_secs(60)
                && *n >= MAX_FAILURES_PER_MINUTE
        })
    }

    /// Counts one failed attempt from `addr`.
    pub fn record(&self, addr: std::net::IpAddr, now: std::time::Instant) {
        let mut m = self.by_addr.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= 4096 && !m.contains_key(&addr) {
            m.retain(|_, (start, _)| {
                now.duration_since(*start) < std::time::Duration::from_secs(60)
            });
        }
        let slot = m.entry(addr).or_insert((now, 0));
        if now.duration_since(slot.0) >= std::time::Duration::from_secs(60) {
            *slot = (now, 0);
        }
        slot.1 = slot.1.saturating_add(1);
    }
}

/// The admin bearer token.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The token file a config names: `[admin] token_file`, else `<data_dir>/admin.token`.
pub fn token_path(config: &Config) -> PathBuf {
    config
        .admin
        .token_file
        .clone()
        .unwrap_or_else(|| config.server.data_dir.join("admin.token"))
}

fn valid(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic())
}

impl Token {
    /// A token from text (trimmed, at least [`MIN_TOKEN_LEN`] characters); `origin` names
    /// the source in errors.
    pub fn new(text: &str, origin: &str) -> Result<Token, TokenError> {
        let t = text.trim();
        if !valid(t) {
            Err(TokenError::Invalid {
                origin: origin.to_string(),
            })
        } else if t.len() < MIN_TOKEN_LEN {
            Err(TokenError::TooShort {
                origin: origin.to_string(),
            })
        } else {
            Ok(Token(t.to_string()))
        }
    }

    /// The server's token: `WSUS_EDGE_TOKEN` when set, else the token file, which is created
    /// (mode 0600, 32 random bytes in hex) when missing.
    pub fn load_or_create(config: &Config) -> Result<Token, TokenError> {
        if let Ok(v) = std::env::var(TOKEN_ENV) {
            return Token::new(&v, TOKEN_ENV);
        }
        let path = token_path(config);
        match std::fs::read_to_string(&path) {
            Ok(t) => Token::new(&t, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path),
            Err(source) => Err(TokenError::Io { path, source }),
        }
    }

    /// The client's token: `WSUS_EDGE_TOKEN` when set, else the token file (never created).
    pub fn load(config: &Config) -> Result<Token, TokenError> {
        if let Ok(v) = std::env::var(TOKEN_ENV) {
            return Token::new(&v, TOKEN_ENV);
        }
        let path = token_path(config);
        match std::fs::read_to_string(&path) {
            Ok(t) => Token::new(&t, &path.display().to_string()),
            Err(source) => Err(TokenError::Io { path, source }),
        }
    }

    /// The token text (for the client's `Authorization` header).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented token.
    pub fn matches(&self, presented: &str) -> bool {
        // Hash both sides first so the comparison does not leak the length either.
        let a = Sha256::new_with_prefix(self.0.as_bytes()).finalize_fixed();
        let b = Sha256::new_with_prefix(presented.as_bytes()).finalize_fixed();
        a.ct_eq(&b).into()
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`.
    pub fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
            })
            .is_some_and(|t| self.matches(t))
    }

    fn mac(&self, expires: i64) -> String {
        // HMAC accepts keys of any length; new_from_slice cannot fail for it.
        let mut m = match <Hmac<Sha256> as Mac>::new_from_slice(self.0.as_bytes()) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        m.update(b"wsus-edge admin session\0");
        m.update(expires.to_string().as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// A session cookie value valid until `now + SESSION_SECS`.
    pub fn session_value(&self, now: i64) -> String {
        let exp = now + SESSION_SECS;
        format!("{exp}.{}", self.mac(exp))
    }

    /// Whether `headers` carry a valid, unexpired session cookie.
    pub fn session_ok(&self, headers: &HeaderMap, now: i64) -> bool {
        for v in headers.get_all(http::header::COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            for part in v.split(';') {
                let Some((name, value)) = part.trim().split_once('=') else {
                    continue;
                };
                if name != SESSION_COOKIE {
                    continue;
                }
                let Some((exp, mac)) = value.split_once('.') else {
                    continue;
                };
                let Ok(exp) = exp.parse::<i64>() else {
                    continue;
                };
                let want = self.mac(exp);
                if exp > now
                    && !want.is_empty()
                    && bool::from(want.as_bytes().ct_eq(mac.as_bytes()))
                {
                    return true;
                }
            }
        }
        false
    }
}

use sha2::digest::FixedOutput;
use sha2::Digest;

fn create(path: &Path) -> Result<Token, TokenError> {
    let io = |source| TokenError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = hex::encode(raw);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(mut f) => {
            f.write_all(format!("{token}\n").as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            tracing::info!(path = %path.display(), "created the admin token file");
            Ok(Token(token))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let t = std::fs::read_to_string(path).map_err(io)?;
            Token::new(&t, &path.display().to_string())
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: http::HeaderName, v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, v.parse().unwrap());
        h
    }

    #[test]
    fn bearer_and_cookie() {
        let t = Token::new("s3cret-s3cret-s3cret\n", "test").unwrap();
        assert!(t.bearer_ok(&headers(
            http::header::AUTHORIZATION,
            "Bearer s3cret-s3cret-s3cret"
        )));
        assert!(t.bearer_ok(&headers(
            http::header::AUTHORIZATION,
            "bearer  s3cret-s3cret-s3cret "
        )));
        assert!(!t.bearer_ok(&headers(
            http::header::AUTHORIZATION,
            "Bearer s3cret-s3cret-s3cre"
        )));
        assert!(!t.bearer_ok(&headers(
            http::header::AUTHORIZATION,
            "Basic s3cret-s3cret-s3cret"
        )));
        assert!(!t.bearer_ok(&HeaderMap::new()));
        let v = t.session_value(1000);
        let h = headers(http::header::COOKIE, &format!("a=b; {SESSION_COOKIE}={v}"));
        assert!(t.session_ok(&h, 1000));
        assert!(!t.session_ok(&h, 1000 + SESSION_SECS), "expired");
        let other = Token::new("other-other-other", "test").unwrap();
        assert!(!other.session_ok(&h, 1000), "keyed by the token");
        let forged = headers(
            http::header::COOKIE,
            &format!(
                "{SESSION_COOKIE}={}.{}",
                1000 + SESSION_SECS * 9,
                &v[v.find('.').unwrap() + 1..]
            ),
        );
        assert!(!t.session_ok(&forged, 1000), "expiry is covered by the mac");
        assert!(Token::new("  ", "x").is_err());
    }

    #[test]
    fn short_tokens_are_refused() {
        assert!(matches!(
            Token::new("x", "env"),
            Err(TokenError::TooShort { .. })
        ));
        assert!(matches!(
            Token::new("0123456789abcde", "env"),
            Err(TokenError::TooShort { .. })
        ));
        assert!(Token::new("0123456789abcdef", "env").is_ok());
    }

    #[test]
    fn failures_are_limited_per_address_and_minute() {
        let f = Failures::default();
        let t0 = std::time::Instant::now();
        let a = std::net::IpAddr::from([10, 0, 0, 1]);
        let b = std::net::IpAddr::from([10, 0, 0, 2]);
        for _ in 0..MAX_FAILURES_PER_MINUTE {
            assert!(!f.blocked(a, t0));
            f.record(a, t0);
        }
        assert!(f.blocked(a, t0));
        assert!(!f.blocked(b, t0), "another address is not held back");
        assert!(!f.blocked(a, t0 + std::time::Duration::from_secs(61)));
    }

    #[test]
    fn token_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        c.server.data_dir = dir.path().to_path_buf();
        let path = token_path(&c);
        let t = create(&path).unwrap();
        assert_eq!(t.as_str().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = create(&path).unwrap();
        assert_eq!(again.as_str(), t.as_str());
    }
}
