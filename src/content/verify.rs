//! The one payload hasher: SHA-1 and SHA-256 computed in one pass over the bytes (SHA-256, the
//! slower of the two, on a helper thread; SHA-1 on the caller's, which also reads or writes the
//! bytes, so the two threads carry about the same load and one core's speed is not the limit),
//! and the check of a finished object against what metadata (or a package manifest) declares
//! or, failing that, the SHA-1 in its name. Both `sha1` and `sha2` 0.10 pick SHA-NI at run time
//! (`cpufeatures`), without their `asm` features.
//!
//! [`Digests`] can only be made here, by hashing bytes, and a [`Verified`] only by
//! [`Expected::check`] on such digests: [`super::store::ContentDir::publish`] takes a
//! `Verified`, so nothing reaches a final name in the content folder without having been
//! hashed by this module and found to match. The cache's downloads, start-up reconcile,
//! `content verify` ([`super::maintain`]) and `transfer` (export, verify, import) all hash
//! through here.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// The digests and length of a byte stream. Only this module makes them (by hashing).
// Not `#[non_exhaustive]`: that would still let the rest of the crate build one.
#[allow(clippy::manual_non_exhaustive)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digests {
    /// SHA-1.
    pub sha1: [u8; 20],
    /// SHA-256.
    pub sha256: [u8; 32],
    /// Bytes hashed.
    pub size: u64,
    /// Keeps construction inside this module.
    _hashed: (),
}

impl Digests {
    /// The digests of an in-memory buffer (both on the caller's thread: meant for small
    /// buffers such as manifests and metadata files).
    pub fn of(bytes: &[u8]) -> Digests {
        Digests {
            sha1: Sha1::digest(bytes).into(),
            sha256: Sha256::digest(bytes).into(),
            size: bytes.len() as u64,
            _hashed: (),
        }
    }
}

/// Proof that some bytes were hashed here and matched an [`Expected`]: the only way to
/// publish an object ([`super::store::ContentDir::publish`]). Made only by
/// [`Expected::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    digests: Digests,
}

impl Verified {
    /// The SHA-1 of the verified bytes.
    pub fn sha1(&self) -> [u8; 20] {
        self.digests.sha1
    }

    /// The SHA-256 of the verified bytes.
    pub fn sha256(&self) -> [u8; 32] {
        self.digests.sha256
    }

    /// Their length.
    pub fn size(&self) -> u64 {
        self.digests.size
    }
}

/// What an object must hash to: from the content index when metadata declares the file, else
/// just the SHA-1 of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The SHA-1 (always known: it is the name).
    pub sha1: [u8; 20],
    /// The declared SHA-256, when metadata has one.
    pub sha256: Option<[u8; 32]>,
    /// The declared size, when metadata has one.
    pub size: Option<u64>,
}

/// A finished object that does not match what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} mismatch: expected {expected}, got {actual}")]
pub struct Mismatch {
    /// `sha1`, `sha256` or `size`.
    pub what: &'static str,
    /// Expected value (hex or decimal).
    pub expected: String,
    /// Actual value.
    pub actual: String,
}

impl Expected {
    /// Checks `d` against every known expectation (size, SHA-1, SHA-256); a match is the
    /// [`Verified`] proof that publishing needs.
    pub fn check(&self, d: &Digests) -> Result<Verified, Mismatch> {
        if let Some(size) = self.size {
            if size != d.size {
                return Err(Mismatch {
                    what: "size",
                    expected: size.to_string(),
                    actual: d.size.to_string(),
                });
            }
        }
        if self.sha1 != d.sha1 {
            return Err(Mismatch {
                what: "sha1",
                expected: hex::encode(self.sha1),
                actual: hex::encode(d.sha1),
            });
        }
        if let Some(s) = self.sha256 {
            if s != d.sha256 {
                return Err(Mismatch {
                    what: "sha256",
                    expected: hex::encode(s),
                    actual: hex::encode(d.sha256),
                });
            }
        }
        Ok(Verified { digests: *d })
    }
}

/// SHA-1 + SHA-256 in one pass: each chunk is handed (by reference count, not copied) to a
/// SHA-256 thread while SHA-1 runs on the caller's thread.
pub struct DualHasher {
    sha1: Sha1,
    size: u64,
    tx: Option<mpsc::SyncSender<Bytes>>,
    sha256: Option<thread::JoinHandle<[u8; 32]>>,
}

impl Default for DualHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl DualHasher {
    /// Starts the helper thread.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::sync_channel::<Bytes>(8);
        let sha256 = thread::Builder::new()
            .name("sha256".into())
            .spawn(move || {
                let mut h = Sha256::new();
                for b in rx {
                    h.update(&b);
                }
                h.finalize().into()
            })
            .ok();
        Self {
            sha1: Sha1::new(),
            size: 0,
            tx: sha256.as_ref().map(|_| tx),
            sha256,
        }
    }

    /// Hashes the next chunk.
    pub fn update(&mut self, b: Bytes) {
        self.size += b.len() as u64;
        if let Some(tx) = &self.tx {
            if tx.send(b.clone()).is_err() {
                self.tx = None;
            }
        }
        self.sha1.update(&b);
    }

    /// Finishes both digests. `None` only if the helper thread could not run (then the object
    /// must be treated as unverified).
    pub fn finish(mut self) -> Option<Digests> {
        let sha1: [u8; 20] = self.sha1.finalize_reset().into();
        let alive = self.tx.take().is_some();
        let sha256 = self.sha256.take()?.join().ok()?;
        alive.then_some(Digests {
            sha1,
            sha256,
            size: self.size,
            _hashed: (),
        })
    }
}

/// Size of the chunks [`hash_reader`] reads and hands to the helper thread.
const READ_CHUNK: usize = 1 << 20;

/// Hashes a whole reader (1 MiB reads) with [`DualHasher`]. Buffers are not zeroed first
/// (readers such as `File` fill uninitialised capacity directly).
pub fn hash_reader(mut r: impl Read) -> std::io::Result<Digests> {
    let mut h = DualHasher::new();
    loop {
        let mut buf = Vec::with_capacity(READ_CHUNK);
        (&mut r).take(READ_CHUNK as u64).read_to_end(&mut buf)?;
        if buf.is_empty() {
            break;
        }
        h.update(Bytes::from(buf));
    }
    h.finish()
        .ok_or_else(|| std::io::Error::other("hash helper thread failed"))
}

/// Hashes a file.
pub fn hash_file(path: &Path) -> std::io::Result<Digests> {
    hash_reader(std::fs::File::open(path)?)
}

/// Copies `src` to `dst` (when given) in 1 MiB chunks while hashing them; `on_bytes` sees
/// each chunk's length. Write errors are returned as they come (callers tag them).
pub fn copy_hashed(
    src: &mut dyn Read,
    mut dst: Option<&mut dyn Write>,
    on_bytes: &mut dyn FnMut(u64),
) -> std::io::Result<Digests> {
    let mut h = DualHasher::new();
    loop {
        let mut buf = Vec::with_capacity(READ_CHUNK);
        (&mut *src).take(READ_CHUNK as u64).read_to_end(&mut buf)?;
        if buf.is_empty() {
            break;
        }
        if let Some(d) = dst.as_mut() {
            d.write_all(&buf)?;
        }
        let n = buf.len() as u64;
        h.update(Bytes::from(buf));
        on_bytes(n);
    }
    h.finish()
        .ok_or_else(|| std::io::Error::other("hash helper thread failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let d = hash_reader(&b"abc"[..]).unwrap();
        assert_eq!(
            hex::encode(d.sha1),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex::encode(d.sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.size, 3);
        let e = hash_reader(&b""[..]).unwrap();
        assert_eq!(
            hex::encode(e.sha1),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
    }

    #[test]
    fn chunking_does_not_matter() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = hash_reader(&data[..]).unwrap();
        let mut h = DualHasher::new();
        for c in data.chunks(12_345) {
            h.update(Bytes::copy_from_slice(c));
        }
        assert_eq!(h.finish().unwrap(), whole);
        assert_eq!(whole.sha1, <[u8; 20]>::from(Sha1::digest(&data)));
        assert_eq!(whole.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(Digests::of(&data), whole);
        let mut out = Vec::new();
        let mut seen = 0;
        let copied = copy_hashed(&mut &data[..], Some(&mut out), &mut |n| seen += n).unwrap();
        assert_eq!(
            (copied, seen, out == data),
            (whole, data.len() as u64, true)
        );
    }

    #[test]
    fn check_reports_each_mismatch() {
        let d = hash_reader(&b"abc"[..]).unwrap();
        let ok = Expected {
            sha1: d.sha1,
            sha256: Some(d.sha256),
            size: Some(3),
        };
        assert_eq!(ok.check(&d).map(|v| v.size()), Ok(3));
        assert_eq!(
            Expected {
                sha256: None,
                size: None,
                ..ok
            }
            .check(&d)
            .map(|v| v.sha1()),
            Ok(d.sha1)
        );
        assert_eq!(
            Expected {
                size: Some(4),
                ..ok
            }
            .check(&d)
            .unwrap_err()
            .what,
            "size"
        );
        assert_eq!(
            Expected {
                sha1: [0; 20],
                ..ok
            }
            .check(&d)
            .unwrap_err()
            .what,
            "sha1"
        );
        assert_eq!(
            Expected {
                sha256: Some([0; 32]),
                ..ok
            }
            .check(&d)
            .unwrap_err()
            .what,
            "sha256"
        );
    }
}
