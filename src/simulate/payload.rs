//! Payload files of the simulated catalog: bytes produced on demand, deterministic from
//! (seed, file index), any size, with random access, so multi-GiB files never sit in memory.
//! Their SHA-1 and SHA-256 are the real digests of those bytes, computed once when the file is
//! declared.
//!
//! File `i`'s bytes are 64 KiB blocks, block `b` being ChaCha output seeded from
//! (seed, i, b), so [`Payloads::read_range`] costs at most one block more than it returns.
//! (`StdRng` is ChaCha12 in the locked rand 0.8; a rand upgrade could change the bytes, and with
//! them every digest: the catalog is regenerated, never persisted, so that only moves golden
//! values, of which there are none.)

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

use super::generate::{modified, year_month};
use super::rng::{mix, GOLDEN};
use crate::model::FileRecord;

/// Index of a payload file in [`Payloads`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// One payload file as the catalog declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFile {
    /// `FileName`.
    pub name: String,
    /// Exact length in bytes.
    pub size: u64,
    /// SHA-1 of the bytes (`Digest`).
    pub sha1: [u8; 20],
    /// SHA-256 of the bytes (`AdditionalDigest Algorithm="SHA256"`).
    pub sha256: [u8; 32],
    /// Declared `PatchingType="SelfContained"`.
    pub self_contained: bool,
    /// MU URL folder (`secu`, `updt`, `defu`, ...).
    folder: &'static str,
    /// Change number of its publication (dates derive from it).
    published: u64,
}

impl PayloadFile {
    /// The file as the update XML declares it (no `upstream_url`: that is not in the XML).
    pub fn record(&self) -> FileRecord {
        FileRecord {
            name: self.name.clone(),
            size: self.size,
            sha1: self.sha1,
            sha256: Some(self.sha256),
            upstream_url: None,
            patching_type: self.patching_type().map(str::to_string),
        }
    }

    /// `PatchingType`, when declared.
    pub fn patching_type(&self) -> Option<&'static str> {
        self.self_contained.then_some("SelfContained")
    }

    /// `Modified` attribute, as written in the XML.
    pub fn modified(&self) -> String {
        modified(self.published)
    }

    /// Where Microsoft Update would host it (`MUUrl` in GetUpdateData's `fileUrls`):
    /// `http://download.windowsupdate.com/c/msdownload/update/software/<folder>/<yyyy>/<mm>/
    /// <name lower>_<sha1 lower>.<ext>` (EXPRESS; wsus-protocol.md §4.2).
    pub fn mu_url(&self) -> String {
        let (stem, ext) = match self.name.rsplit_once('.') {
            Some((s, e)) => (
                s.to_ascii_lowercase(),
                format!(".{}", e.to_ascii_lowercase()),
            ),
            None => (self.name.to_ascii_lowercase(), String::new()),
        };
        format!(
            "http://download.windowsupdate.com/c/msdownload/update/software/{}/{}/{stem}_{}{ext}",
            self.folder,
            year_month(self.published),
            hex::encode(self.sha1)
        )
    }
}

/// Errors of payload access.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// No file with that id.
    #[error("no payload file #{0}")]
    UnknownFile(u32),
    /// The range does not lie within the file.
    #[error("range {offset}+{len} outside file of {size} bytes")]
    OutOfRange {
        /// Requested offset.
        offset: u64,
        /// Requested length.
        len: u64,
        /// File size.
        size: u64,
    },
}

/// All payload files of a catalog.
#[derive(Debug, Clone)]
pub struct Payloads {
    seed: u64,
    files: Vec<PayloadFile>,
    by_sha1: HashMap<[u8; 20], FileId>,
}

fn file_key(seed: u64, index: u32) -> u64 {
    mix(seed ^ mix(u64::from(index).wrapping_add(1).wrapping_mul(GOLDEN)))
}

/// Bytes per independently seeded block of a payload stream.
const BLOCK: u64 = 64 * 1024;

/// The generator of block `block` of stream `key`.
fn block_rng(key: u64, block: u64) -> StdRng {
    let mut seed = [0u8; 32];
    let base = mix(key ^ mix(block.wrapping_add(1).wrapping_mul(GOLDEN)));
    for (i, chunk) in seed.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&mix(base.wrapping_add(i as u64)).to_le_bytes());
    }
    StdRng::from_seed(seed)
}

/// Fills `buf` with the bytes of the stream `key` starting at `offset`. The stream is a sequence
/// of 64 KiB blocks, each the output of ChaCha (rand's `StdRng`, optimised even in debug builds)
/// seeded from (key, block index): a range read costs at most one block more than its length.
fn fill_stream(key: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut out = 0usize;
    let mut scratch: Vec<u8> = Vec::new();
    while out < buf.len() {
        let block = pos / BLOCK;
        let start = (pos % BLOCK) as usize;
        let n = (BLOCK as usize - start).min(buf.len() - out);
        let mut rng = block_rng(key, block);
        if start == 0 {
            rng.fill_bytes(&mut buf[out..out + n]);
        } else {
            scratch.resize(start + n, 0);
            rng.fill_bytes(&mut scratch[..start + n]);
            buf[out..out + n].copy_from_slice(&scratch[start..start + n]);
        }
        out += n;
        pos += n as u64;
    }
}

impl Payloads {
    /// An empty set for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            files: Vec::new(),
            by_sha1: HashMap::new(),
        }
    }

    /// Declares a new file of `size` bytes published at change number `published`, hashing
    /// its bytes now. `folder` is the MU URL's classification folder.
    pub(crate) fn add(
        &mut self,
        name: String,
        size: u64,
        self_contained: bool,
        folder: &'static str,
        published: u64,
    ) -> FileId {
        let index = self.files.len() as u32;
        let key = file_key(self.seed, index);
        let mut sha1 = Sha1::new();
        let mut sha256 = Sha256::new();
        let mut buf = vec![0u8; (BLOCK as usize).min(size.max(1) as usize)];
        let mut offset = 0u64;
        while offset < size {
            let n = (size - offset).min(buf.len() as u64) as usize;
            fill_stream(key, offset, &mut buf[..n]);
            sha1.update(&buf[..n]);
            sha256.update(&buf[..n]);
            offset += n as u64;
        }
        let sha1: [u8; 20] = sha1.finalize().into();
        let sha256: [u8; 32] = sha256.finalize().into();
        let id = FileId(index);
        self.files.push(PayloadFile {
            name,
            size,
            sha1,
            sha256,
            self_contained,
            folder,
            published,
        });
        // Distinct indices give distinct streams; a SHA-1 collision between them would be news.
        self.by_sha1.entry(sha1).or_insert(id);
        id
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// A file's declaration.
    pub fn get(&self, id: FileId) -> Option<&PayloadFile> {
        self.files.get(id.0 as usize)
    }

    /// Every file, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (FileId, &PayloadFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    /// The file whose SHA-1 is `sha1` (what `/Content/XX/<SHA1>.ext` names).
    pub fn by_sha1(&self, sha1: &[u8; 20]) -> Option<FileId> {
        self.by_sha1.get(sha1).copied()
    }

    /// `len` bytes of `file` from `offset`.
    pub fn read_range(&self, file: FileId, offset: u64, len: u64) -> Result<Vec<u8>, PayloadError> {
        let size = self
            .get(file)
            .ok_or(PayloadError::UnknownFile(file.0))?
            .size;
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(PayloadError::OutOfRange { offset, len, size });
        }
        let mut buf = vec![0u8; len as usize];
        fill_stream(file_key(self.seed, file.0), offset, &mut buf);
        Ok(buf)
    }

    /// A `Read + Seek` over the whole file.
    pub fn reader(&self, file: FileId) -> Result<PayloadReader, PayloadError> {
        let size = self
            .get(file)
            .ok_or(PayloadError::UnknownFile(file.0))?
            .size;
        Ok(PayloadReader {
            key: file_key(self.seed, file.0),
            size,
            pos: 0,
        })
    }
}

/// Streaming reader over one payload file (no allocation beyond the caller's buffer).
#[derive(Debug, Clone)]
pub struct PayloadReader {
    key: u64,
    size: u64,
    pos: u64,
}

impl PayloadReader {
    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Read for PayloadReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.size.saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        fill_stream(self.key, self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PayloadReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before start of payload",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Payloads {
        let mut p = Payloads::new(42);
        p.add("a.cab".into(), 100_003, false, "secu", 1);
        p.add("b.msu".into(), 0, false, "secu", 1);
        p
    }

    #[test]
    fn digests_are_those_of_the_streamed_bytes() {
        let p = sample();
        let f = p.get(FileId(0)).unwrap();
        let mut all = Vec::new();
        p.reader(FileId(0)).unwrap().read_to_end(&mut all).unwrap();
        assert_eq!(all.len() as u64, f.size);
        assert_eq!(<[u8; 20]>::from(Sha1::digest(&all)), f.sha1);
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&all)), f.sha256);
        assert_eq!(p.by_sha1(&f.sha1), Some(FileId(0)));
        // Empty file: digests of nothing.
        let e = p.get(FileId(1)).unwrap();
        assert_eq!(<[u8; 20]>::from(Sha1::digest(b"")), e.sha1);
    }

    #[test]
    fn ranges_agree_with_the_whole_stream_at_odd_offsets() {
        let p = sample();
        let all = p.read_range(FileId(0), 0, 100_003).unwrap();
        for (off, len) in [(0u64, 1u64), (7, 9), (13, 8), (65_531, 4_096), (100_000, 3)] {
            let part = p.read_range(FileId(0), off, len).unwrap();
            assert_eq!(part, &all[off as usize..(off + len) as usize]);
        }
        let mut r = p.reader(FileId(0)).unwrap();
        r.seek(SeekFrom::Start(99_990)).unwrap();
        let mut tail = Vec::new();
        r.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, &all[99_990..]);
        assert!(p.read_range(FileId(0), 100_000, 4).is_err());
        assert!(p.read_range(FileId(9), 0, 1).is_err());
    }

    #[test]
    fn different_files_and_seeds_give_different_bytes() {
        let p = sample();
        let mut q = Payloads::new(43);
        q.add("a.cab".into(), 100_003, false, "secu", 1);
        assert_ne!(
            p.get(FileId(0)).unwrap().sha1,
            q.get(FileId(0)).unwrap().sha1
        );
    }
}
