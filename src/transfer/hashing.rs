//! One-pass SHA-1 + SHA-256 while copying, and the comparison against a manifest entry.

use std::io::{self, Read, Write};

use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::manifest::FileEntry;
use super::TransferError;

/// Copy buffer size.
pub const BUF: usize = 1 << 20;

/// Size and digests of some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digests {
    /// Bytes seen.
    pub size: u64,
    /// SHA-1.
    pub sha1: [u8; 20],
    /// SHA-256.
    pub sha256: [u8; 32],
}

impl Digests {
    /// Compares with a manifest entry: size first, then SHA-256, then SHA-1.
    pub fn check(&self, e: &FileEntry) -> Result<(), TransferError> {
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

    /// The digests of an in-memory buffer.
    pub fn of(bytes: &[u8]) -> Digests {
        Digests {
            size: bytes.len() as u64,
            sha1: Sha1::digest(bytes).into(),
            sha256: Sha256::digest(bytes).into(),
        }
    }

    /// A manifest entry for these digests.
    pub fn entry(&self, path: String) -> FileEntry {
        FileEntry {
            path,
            size: self.size,
            sha1: hex::encode(self.sha1),
            sha256: hex::encode(self.sha256),
        }
    }
}

/// Copies `src` to `dst` (when given) while hashing; `on_bytes` sees each chunk's length.
pub fn copy_hashed(
    src: &mut dyn Read,
    mut dst: Option<&mut dyn Write>,
    on_bytes: &mut dyn FnMut(u64),
) -> io::Result<Digests> {
    let mut buf = vec![0u8; BUF];
    let mut s1 = Sha1::new();
    let mut s256 = Sha256::new();
    let mut size = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        if let Some(d) = dst.as_mut() {
            d.write_all(chunk)?;
        }
        s1.update(chunk);
        s256.update(chunk);
        size += n as u64;
        on_bytes(n as u64);
    }
    Ok(Digests {
        size,
        sha1: s1.finalize().into(),
        sha256: s256.finalize().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut wrong = e.clone();
        wrong.sha256 = "0".repeat(64);
        let err = d.check(&wrong).unwrap_err().to_string();
        assert!(
            err.contains("SHA-256") && err.contains("content/AA/x.cab"),
            "{err}"
        );
        let mut short = e;
        short.size += 1;
        assert!(matches!(
            d.check(&short),
            Err(TransferError::SizeMismatch { .. })
        ));
    }
}
