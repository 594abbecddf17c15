//! The package manifest (`manifest.json`), export anchors and the `SHA256SUMS` list.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::TransferError;

/// Value of [`Manifest::format`].
pub const FORMAT_NAME: &str = "wsus-edge-package";
/// Version of the package layout this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name at the package root.
pub const MANIFEST: &str = "manifest.json";
/// The detached signature of `manifest.json`.
pub const SIGNATURE: &str = "manifest.sig";
/// The signer's public key (PEM).
pub const SIGNER: &str = "signer.pub";
/// The `sha256sum -c` file list.
pub const SUMS: &str = "SHA256SUMS";
/// The header files, in the order they open every package (first volume first).
pub const HEADER_FILES: [&str; 4] = [MANIFEST, SIGNATURE, SIGNER, SUMS];

/// One file of the package (metadata or payload).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the package root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-1, lower-case hex.
    pub sha1: String,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// What `manifest.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The exporting server's id.
    pub server_id: Uuid,
    /// When the export was made (RFC 3339, UTC).
    pub created: String,
    /// The anchor this package brings its importer to (pass it to `export --since`).
    pub anchor: String,
    /// For an incremental package: the anchor it starts from.
    pub base_anchor: Option<String>,
    /// Whether only approved updates (and what they need) were exported.
    #[serde(default)]
    pub approved_only: bool,
    /// Every file of the package except the header files, metadata first.
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// Parses and checks `manifest.json` bytes: format name, version, paths, digests.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, TransferError> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| TransferError::Manifest(e.to_string()))?;
        if m.format != FORMAT_NAME {
            return Err(TransferError::Manifest(format!(
                "format {:?} is not {FORMAT_NAME:?}",
                m.format
            )));
        }
        if m.format_version != FORMAT_VERSION {
            return Err(TransferError::Manifest(format!(
                "format_version {} (this build reads {FORMAT_VERSION})",
                m.format_version
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &m.files {
            check_path(&f.path)?;
            if HEADER_FILES.contains(&f.path.as_str()) || !seen.insert(f.path.as_str()) {
                return Err(TransferError::Manifest(format!(
                    "{} listed twice or as a header file",
                    f.path
                )));
            }
            if !is_hex(&f.sha1, 40) || !is_hex(&f.sha256, 64) {
                return Err(TransferError::Manifest(format!("{}: bad digest", f.path)));
            }
        }
        Anchor::from_str(&m.anchor)?;
        if let Some(b) = &m.base_anchor {
            Anchor::from_str(b)?;
        }
        Ok(m)
    }

    /// The manifest as written to disk (pretty JSON, trailing newline).
    pub fn to_bytes(&self) -> Result<Vec<u8>, TransferError> {
        let mut v =
            serde_json::to_vec_pretty(self).map_err(|e| TransferError::Manifest(e.to_string()))?;
        v.push(b'\n');
        Ok(v)
    }

    /// Total bytes of all listed files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Refuses paths that could escape the package or staging root.
pub fn check_path(p: &str) -> Result<(), TransferError> {
    let ok = !p.is_empty()
        && p.len() < 200
        && !p.starts_with('/')
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_'));
    if ok && (p.starts_with("metadata/") || p.starts_with("content/")) {
        Ok(())
    } else {
        Err(TransferError::Manifest(format!("unsafe file path {p:?}")))
    }
}

/// An export anchor: which server, up to which local revision id, when.
/// Written `wse1.<server-uuid>.<high-water>.<unix-seconds>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// The exporting server.
    pub server_id: Uuid,
    /// The store's high-water mark (next local revision id) when exported.
    pub high_water: u32,
    /// Export time (unix seconds): payloads stored after it go in the next incremental.
    pub created_unix: i64,
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "wse1.{}.{}.{}",
            self.server_id, self.high_water, self.created_unix
        )
    }
}

impl FromStr for Anchor {
    type Err = TransferError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |d: &str| TransferError::BadAnchor {
            anchor: s.to_string(),
            detail: d.to_string(),
        };
        let parts: Vec<&str> = s.trim().split('.').collect();
        let [tag, id, hw, t] = parts.as_slice() else {
            return Err(bad("expected wse1.<server-id>.<high-water>.<time>"));
        };
        if *tag != "wse1" {
            return Err(bad("not a wsus-edge export anchor"));
        }
        Ok(Anchor {
            server_id: Uuid::parse_str(id).map_err(|_| bad("bad server id"))?,
            high_water: hw.parse().map_err(|_| bad("bad high-water mark"))?,
            created_unix: t.parse().map_err(|_| bad("bad time"))?,
        })
    }
}

/// `SHA256SUMS` text for `manifest.json` (given its digest) and every manifest file:
/// `<sha256>  <path>` lines, as `sha256sum` prints them.
pub fn render_sums(manifest_sha256: &str, m: &Manifest) -> String {
    let mut s = format!("{manifest_sha256}  {MANIFEST}\n");
    for f in &m.files {
        s.push_str(&format!("{}  {}\n", f.sha256, f.path));
    }
    s
}

/// Checks that `SHA256SUMS` lists exactly `manifest.json` and the manifest's files with the
/// manifest's digests (it is not signed itself; this catches an edited copy).
pub fn check_sums(text: &[u8], manifest_sha256: &str, m: &Manifest) -> Result<(), TransferError> {
    let want = render_sums(manifest_sha256, m);
    if text == want.as_bytes() {
        return Ok(());
    }
    let got = String::from_utf8_lossy(text);
    let first_bad = want
        .lines()
        .zip(got.lines())
        .find(|(a, b)| a != b)
        .map(|(a, _)| a.split_once("  ").map_or(a, |x| x.1).to_string())
        .unwrap_or_else(|| "line count".into());
    Err(TransferError::Manifest(format!(
        "SHA256SUMS does not agree with the manifest at {first_bad}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            server_id: Uuid::from_u128(7),
            created: "2026-11-25T00:00:00Z".into(),
            anchor: Anchor {
                server_id: Uuid::from_u128(7),
                high_water: 12,
                created_unix: 99,
            }
            .to_string(),
            base_anchor: None,
            approved_only: false,
            files: vec![FileEntry {
                path: "content/AB/X.cab".into(),
                size: 3,
                sha1: "a".repeat(40),
                sha256: "b".repeat(64),
            }],
        }
    }

    #[test]
    fn anchor_round_trips_and_rejects_junk() {
        let a = Anchor {
            server_id: Uuid::from_u128(5),
            high_water: 77,
            created_unix: 1_700_000_000,
        };
        assert_eq!(a.to_string().parse::<Anchor>().unwrap(), a);
        assert!("wse2.x.1.2".parse::<Anchor>().is_err());
        assert!("12".parse::<Anchor>().is_err());
    }

    #[test]
    fn manifest_round_trips_and_refuses_escapes() {
        let m = manifest();
        assert_eq!(Manifest::parse(&m.to_bytes().unwrap()).unwrap(), m);
        let mut bad = m.clone();
        bad.files[0].path = "content/../../etc/passwd".into();
        assert!(Manifest::parse(&bad.to_bytes().unwrap()).is_err());
        let mut bad = m.clone();
        bad.format_version = 9;
        assert!(Manifest::parse(&bad.to_bytes().unwrap()).is_err());
        let mut bad = m;
        bad.files[0].sha256 = "B".repeat(64);
        assert!(Manifest::parse(&bad.to_bytes().unwrap()).is_err());
    }

    #[test]
    fn sums_match_only_the_rendered_text() {
        let m = manifest();
        let s = render_sums(&"c".repeat(64), &m);
        assert!(s.ends_with("  content/AB/X.cab\n"));
        check_sums(s.as_bytes(), &"c".repeat(64), &m).unwrap();
        let edited = s.replace("bbbb", "bbbc");
        let e = check_sums(edited.as_bytes(), &"c".repeat(64), &m).unwrap_err();
        assert!(e.to_string().contains("content/AB/X.cab"), "{e}");
    }
}
