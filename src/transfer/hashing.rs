//! Payload and manifest digests for packages, from the content cache's one hasher
//! ([`crate::content::verify`]), and their comparison against a manifest entry.

pub use crate::content::verify::{copy_hashed, Digests};
use crate::content::verify::{Expected, Verified};

use super::manifest::FileEntry;
use super::TransferError;

/// Comparing digests with what a package's manifest lists.
pub trait ManifestDigests {
    /// Compares with a manifest entry: size first, then SHA-256, then SHA-1.
    fn check(&self, e: &FileEntry) -> Result<(), TransferError>;
    /// A manifest entry for these digests.
    fn entry(&self, path: String) -> FileEntry;
}

impl ManifestDigests for Digests {
    fn check(&self, e: &FileEntry) -> Result<(), TransferError> {
        if self.size != e.size {
            return Err(TransferError::SizeMismatch {
                path: e.path.clone(),
                expected: e.size,
                actual: self.size,
            });
        }
        let s256 = hex::encode(self.sha256);
        if s256 != e.sha256 {
            return Err(TransferError::DigestMismatch {
                path: e.path.clone(),
                algo: "SHA-256",
                expected: e.sha256.clone(),
                actual: s256,
            });
        }
        let s1 = hex::encode(self.sha1);
        if s1 != e.sha1 {
            return Err(TransferError::DigestMismatch {
                path: e.path.clone(),
                algo: "SHA-1",
                expected: e.sha1.clone(),
                actual: s1,
            });
        }
        Ok(())
    }

    fn entry(&self, path: String) -> FileEntry {
        FileEntry {
            path,
            size: self.size,
            sha1: hex::encode(self.sha1),
            sha256: hex::encode(self.sha256),
        }
    }
}

/// The publishing proof for a payload whose digests `d` match its manifest entry `e`: what
/// the content store needs to publish it, obtained like the cache's own downloads (the
/// hasher's digests checked against the expected size and digests).
pub fn prove(d: &Digests, e: &FileEntry) -> Result<Verified, TransferError> {
    d.check(e)?;
    let mut sha1 = [0u8; 20];
    let mut sha256 = [0u8; 32];
    let bad = |what: &str| TransferError::Manifest(format!("{}: bad {what}", e.path));
    hex::decode_to_slice(&e.sha1, &mut sha1).map_err(|_| bad("SHA-1"))?;
    hex::decode_to_slice(&e.sha256, &mut sha256).map_err(|_| bad("SHA-256"))?;
    Expected {
        sha1,
        sha256: Some(sha256),
        size: Some(e.size),
    }
    .check(d)
    .map_err(|m| TransferError::DigestMismatch {
        path: e.path.clone(),
        algo: m.what,
        expected: m.expected,
        actual: m.actual,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUF: usize = 1 << 20;

    #[test]
    fn copy_hashes_match_one_shot_and_check_names_the_digest() {
        let data = vec![7u8; 3 * BUF + 5];
        let mut out = Vec::new();
        let mut seen = 0;
        let d = copy_hashed(&mut &data[..], Some(&mut out), &mut |n| seen += n).unwrap();
        assert_eq!(out, data);
        assert_eq!(seen, data.len() as u64);
        assert_eq!(d, Digests::of(&data));
        let e = d.entry("content/AA/x.cab".into());
        d.check(&e).unwrap();
        assert_eq!(prove(&d, &e).unwrap().size(), data.len() as u64);
        let mut wrong = e.clone();
        wrong.sha256 = "0".repeat(64);
        let err = d.check(&wrong).unwrap_err().to_string();
        assert!(
            err.contains("SHA-256") && err.contains("content/AA/x.cab"),
            "{err}"
        );
        assert!(prove(&d, &wrong).is_err());
        let mut short = e;
        short.size += 1;
        assert!(matches!(
            d.check(&short),
            Err(TransferError::SizeMismatch { .. })
        ));
    }
}
