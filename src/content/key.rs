//! Content keys: parsing `/Content/XX/<SHA1HEX>.<ext>` request paths (any letter case) into a
//! [`ContentKey`], refusing anything hostile or malformed before a file or upstream is touched.
//! Owns the mapping key → relative disk path and key → upstream path; nothing else.

use std::fmt;
use std::path::PathBuf;

/// Longest request path accepted for `/Content/`; longer ones are refused with 414.
pub const MAX_PATH_LEN: usize = 512;
/// Longest file extension accepted.
pub const MAX_EXT_LEN: usize = 16;

/// Why a request path is not a valid content key. Every variant means "never touch a file or
/// upstream"; [`KeyError::status`] gives the HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The path is longer than [`MAX_PATH_LEN`].
    #[error("request path too long")]
    TooLong,
    /// Percent-escapes, backslashes, dot segments, empty segments or control characters.
    #[error("hostile or non-canonical path")]
    Hostile,
    /// Not `/Content/XX/NAME` (wrong number of segments or prefix).
    #[error("not a content path")]
    NotContent,
    /// The name is not 40 hex digits with an optional short alphanumeric extension.
    #[error("file name is not <SHA1HEX>.<ext>")]
    BadName,
    /// The folder is not the last two hex digits of the SHA-1.
    #[error("folder does not match the SHA-1")]
    WrongFolder,
}

impl KeyError {
    /// The HTTP status for this refusal (414 for too long, else 404, like IIS for a missing file).
    pub fn status(&self) -> http::StatusCode {
        match self {
            KeyError::TooLong => http::StatusCode::URI_TOO_LONG,
            _ => http::StatusCode::NOT_FOUND,
        }
    }
}

/// A validated payload identity: its SHA-1 and the (lower-case) extension it was asked for.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ContentKey {
    /// The SHA-1 named by the file name.
    pub sha1: [u8; 20],
    /// Lower-case extension without the dot; empty when the name has none.
    pub ext: String,
}

impl fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.url_path())
    }
}

impl fmt::Display for ContentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.url_path())
    }
}

impl ContentKey {
    /// A key from a SHA-1 and an extension (lower-cased; must be short alphanumeric).
    pub fn new(sha1: [u8; 20], ext: &str) -> Result<Self, KeyError> {
        if ext.len() > MAX_EXT_LEN || !ext.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeyError::BadName);
        }
        Ok(Self {
            sha1,
            ext: ext.to_ascii_lowercase(),
        })
    }

    /// Parses a raw request path (as received, before any decoding) such as
    /// `/Content/49/A379D5526FB3A7A0423DA1CD7FC3182A8D448449.exe`. Letter case is free.
    pub fn parse_path(path: &str) -> Result<Self, KeyError> {
        if path.len() > MAX_PATH_LEN {
            return Err(KeyError::TooLong);
        }
        if path
            .bytes()
            .any(|b| b == b'%' || b == b'\\' || b.is_ascii_control() || b == b' ' || b >= 0x80)
        {
            return Err(KeyError::Hostile);
        }
        let mut segs = path.split('/');
        if segs.next() != Some("") {
            return Err(KeyError::NotContent);
        }
        let segs: Vec<&str> = segs.collect();
        if segs.iter().any(|s| s.is_empty() || *s == "." || *s == "..") {
            return Err(KeyError::Hostile);
        }
        let [prefix, folder, name] = segs.as_slice() else {
            return Err(KeyError::NotContent);
        };
        if !prefix.eq_ignore_ascii_case("content") {
            return Err(KeyError::NotContent);
        }
        let (hexpart, ext) = match name.split_once('.') {
            Some((h, e)) => (h, e),
            None => (*name, ""),
        };
        if hexpart.len() != 40 || name.ends_with('.') {
            return Err(KeyError::BadName);
        }
        let mut sha1 = [0u8; 20];
        hex::decode_to_slice(hexpart, &mut sha1).map_err(|_| KeyError::BadName)?;
        let key = Self::new(sha1, ext)?;
        if folder.len() != 2 || !folder.eq_ignore_ascii_case(&hexpart[38..]) {
            return Err(KeyError::WrongFolder);
        }
        Ok(key)
    }

    /// Upper-case hex of the SHA-1 (as real WSUS servers write it).
    pub fn hex(&self) -> String {
        hex::encode_upper(self.sha1)
    }

    /// The two-digit folder (`XX`).
    pub fn folder(&self) -> String {
        format!("{:02X}", self.sha1[19])
    }

    /// The file name `<SHA1HEX>.<ext>` (no dot when there is no extension).
    pub fn file_name(&self) -> String {
        if self.ext.is_empty() {
            self.hex()
        } else {
            format!("{}.{}", self.hex(), self.ext)
        }
    }

    /// `Content/XX/<SHA1HEX>.<ext>`, no leading slash: the upstream path and the export path.
    pub fn url_path(&self) -> String {
        format!("Content/{}/{}", self.folder(), self.file_name())
    }

    /// The path relative to the content directory: `XX/<SHA1HEX>.<ext>`.
    pub fn rel_path(&self) -> PathBuf {
        PathBuf::from(self.folder()).join(self.file_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "A379D5526FB3A7A0423DA1CD7FC3182A8D448449";

    #[test]
    fn parses_real_path_any_case() {
        let k = ContentKey::parse_path(&format!("/Content/49/{HEX}.exe")).unwrap();
        assert_eq!(k.hex(), HEX);
        assert_eq!(k.ext, "exe");
        let l = ContentKey::parse_path(&format!("/content/49/{}.EXE", HEX.to_lowercase())).unwrap();
        assert_eq!(k, l);
        assert_eq!(k.url_path(), format!("Content/49/{HEX}.exe"));
        assert_eq!(k.rel_path(), PathBuf::from(format!("49/{HEX}.exe")));
        let n = ContentKey::parse_path(&format!("/CONTENT/49/{HEX}")).unwrap();
        assert_eq!(n.ext, "");
        assert_eq!(n.file_name(), HEX);
    }

    #[test]
    fn folder_keeps_leading_zero() {
        let mut sha1 = [0u8; 20];
        sha1[19] = 0x0a;
        let k = ContentKey::new(sha1, "cab").unwrap();
        assert_eq!(k.folder(), "0A");
        assert_eq!(
            ContentKey::parse_path(&format!("/Content/0a/{}.cab", k.hex())),
            Ok(k)
        );
    }

    #[test]
    fn refuses_hostile_and_malformed() {
        let cases: &[(&str, KeyError)] = &[
            ("/Content/49/../../etc/passwd", KeyError::Hostile),
            ("/Content/%2e%2e/49/x", KeyError::Hostile),
            ("/Content/49/%2E%2E%2Fetc", KeyError::Hostile),
            ("/Content\\49\\x", KeyError::Hostile),
            ("/Content/49/..%5c..%5cwin.ini", KeyError::Hostile),
            ("//etc/passwd", KeyError::Hostile),
            ("/Content//49/x", KeyError::Hostile),
            ("/Content/./49/x", KeyError::Hostile),
            ("/etc/passwd", KeyError::NotContent),
            ("Content/49/x", KeyError::NotContent),
            ("/Content/49", KeyError::NotContent),
            (
                "/Other/49/A379D5526FB3A7A0423DA1CD7FC3182A8D448449.exe",
                KeyError::NotContent,
            ),
            (
                "/Content/49/ZZ79D5526FB3A7A0423DA1CD7FC3182A8D448449.exe",
                KeyError::BadName,
            ),
            (
                "/Content/49/A379D5526FB3A7A0423DA1CD7FC3182A8D44844.exe",
                KeyError::BadName,
            ),
            (
                "/Content/49/A379D5526FB3A7A0423DA1CD7FC3182A8D448449.",
                KeyError::BadName,
            ),
            (
                "/Content/49/A379D5526FB3A7A0423DA1CD7FC3182A8D448449.e-x",
                KeyError::BadName,
            ),
            (
                "/Content/49/A379D5526FB3A7A0423DA1CD7FC3182A8D448449.a.b",
                KeyError::BadName,
            ),
            (
                "/Content/48/A379D5526FB3A7A0423DA1CD7FC3182A8D448449.exe",
                KeyError::WrongFolder,
            ),
            (
                "/Content/049/A379D5526FB3A7A0423DA1CD7FC3182A8D448449.exe",
                KeyError::WrongFolder,
            ),
        ];
        for (p, want) in cases {
            assert_eq!(ContentKey::parse_path(p).as_ref(), Err(want), "{p}");
        }
        let long = format!("/Content/49/{}", "A".repeat(600));
        assert_eq!(ContentKey::parse_path(&long), Err(KeyError::TooLong));
        assert_eq!(KeyError::TooLong.status(), http::StatusCode::URI_TOO_LONG);
        assert_eq!(KeyError::WrongFolder.status(), http::StatusCode::NOT_FOUND);
    }
}
