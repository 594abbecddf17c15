//! Plain tar volumes `OUT.001`, `OUT.002`, …: each one a complete ustar archive (readable by
//! any `tar`), filled up to the volume size in package order.
//!
//! A file that does not fit in the space left in a volume starts the next one. A file larger
//! than an empty volume is split: its bytes are stored as consecutive members
//! `<path>.part-001`, `<path>.part-002`, …, each filling the rest of a volume, so the pieces
//! are in consecutive volumes and `cat <path>.part-* > <path>` rebuilds it.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::error::{from_io, into_io};
use super::TransferError;

/// tar block size.
pub const BLOCK: u64 = 512;
/// End-of-archive marker (two zero blocks).
const END: u64 = 2 * BLOCK;
/// The smallest volume size accepted.
pub const MIN_VOLUME: u64 = 64 * 1024;

fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

/// The path of volume `n` (1-based) of the package `base`: `base.001`.
pub fn volume_path(base: &Path, n: u32) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(format!(".{n:03}"));
    PathBuf::from(s)
}

/// The package base of a first-volume path (`OUT.001` → `OUT`), `None` for anything else.
pub fn base_of_first(path: &Path) -> Option<PathBuf> {
    let s = path.to_str()?;
    s.strip_suffix(".001").map(PathBuf::from)
}

fn part_name(path: &str, n: u32) -> String {
    format!("{path}.part-{n:03}")
}

/// Splits `<path>.part-NNN` into `(path, NNN)`.
fn parse_part(name: &str) -> Option<(&str, u32)> {
    let (base, n) = name.rsplit_once(".part-")?;
    if n.len() >= 3 && n.bytes().all(|b| b.is_ascii_digit()) {
        Some((base, n.parse().ok()?))
    } else {
        None
    }
}

/// Writes a package as volumes. Volumes are written as `OUT.NNN.partial` and renamed by
/// [`VolumeWriter::finish`]; [`VolumeWriter::abort`] deletes them.
pub struct VolumeWriter {
    base: PathBuf,
    size: u64,
    mtime: u64,
    index: u32,
    file: Option<File>,
    used: u64,
    written: Vec<u32>,
}

impl VolumeWriter {
    /// Starts writing volumes of `size` bytes for the package `base`.
    pub fn new(base: &Path, size: u64, mtime: u64) -> Result<Self, TransferError> {
        if size < MIN_VOLUME {
            return Err(TransferError::Export(format!(
                "--volume-size {size} is below the minimum of {MIN_VOLUME} bytes"
            )));
        }
        for n in 1..=3 {
            let p = volume_path(base, n);
            if p.exists() {
                return Err(TransferError::Export(format!(
                    "{} already exists",
                    p.display()
                )));
            }
        }
        Ok(Self {
            base: base.to_path_buf(),
            size,
            mtime,
            index: 0,
            file: None,
            used: 0,
            written: Vec::new(),
        })
    }

    fn temp(&self, n: u32) -> PathBuf {
        let mut s = volume_path(&self.base, n).into_os_string();
        s.push(".partial");
        PathBuf::from(s)
    }

    fn close_current(&mut self) -> Result<(), TransferError> {
        if let Some(mut f) = self.file.take() {
            let p = self.temp(self.index);
            f.write_all(&[0u8; END as usize])
                .and_then(|_| f.sync_all())
                .map_err(TransferError::io(&p))?;
        }
        Ok(())
    }

    fn next_volume(&mut self) -> Result<(), TransferError> {
        self.close_current()?;
        self.index += 1;
        let p = self.temp(self.index);
        let f = File::create(&p).map_err(TransferError::io(&p))?;
        self.written.push(self.index);
        self.file = Some(f);
        self.used = 0;
        Ok(())
    }

    fn member<R: Read>(&mut self, name: &str, size: u64, src: &mut R) -> Result<(), TransferError> {
        let p = self.temp(self.index);
        let mut h = tar::Header::new_ustar();
        h.set_path(name).map_err(|e| {
            TransferError::Export(format!("{name}: cannot be stored in a tar header: {e}"))
        })?;
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(self.mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let Some(f) = self.file.as_mut() else {
            return Err(TransferError::Export("no open volume".into()));
        };
        f.write_all(h.as_bytes()).map_err(TransferError::io(&p))?;
        let n = io::copy(&mut src.take(size), f).map_err(|e| from_io(e, &p))?;
        if n != size {
            return Err(TransferError::Export(format!(
                "{name}: source ended after {n} of {size} bytes"
            )));
        }
        let pad = padded(size) - size;
        f.write_all(&vec![0u8; pad as usize])
            .map_err(TransferError::io(&p))?;
        self.used += BLOCK + padded(size);
        Ok(())
    }

    /// Adds one file of `size` bytes read from `src`, splitting it only when it is larger than
    /// an empty volume.
    pub fn add<R: Read>(
        &mut self,
        path: &str,
        size: u64,
        src: &mut R,
    ) -> Result<(), TransferError> {
        let cap = self.size - END;
        let need = BLOCK + padded(size);
        if self.file.is_none() {
            self.next_volume()?;
        }
        if self.used + need <= cap {
            return self.member(path, size, src);
        }
        if need <= cap {
            self.next_volume()?;
            return self.member(path, size, src);
        }
        let mut left = size;
        let mut part = 1;
        while left > 0 {
            let avail = cap - self.used;
            if avail < 2 * BLOCK {
                self.next_volume()?;
                continue;
            }
            let chunk = left.min((avail - BLOCK) / BLOCK * BLOCK);
            self.member(&part_name(path, part), chunk, src)?;
            left -= chunk;
            part += 1;
        }
        Ok(())
    }

    /// Closes the last volume and renames every volume to its final name; returns the paths.
    pub fn finish(mut self) -> Result<Vec<PathBuf>, TransferError> {
        self.close_current()?;
        let mut out = Vec::new();
        for n in std::mem::take(&mut self.written) {
            let (from, to) = (self.temp(n), volume_path(&self.base, n));
            std::fs::rename(&from, &to).map_err(TransferError::io(&to))?;
            out.push(to);
        }
        Ok(out)
    }

    /// Deletes every volume written so far.
    pub fn abort(mut self) {
        self.file = None;
        for n in std::mem::take(&mut self.written) {
            let _ = std::fs::remove_file(self.temp(n));
        }
    }
}

/// One tar member header as read.
#[derive(Debug, Clone)]
struct Raw {
    name: String,
}

/// Reads the members of a volume set in order, across volumes.
pub struct VolumeReader {
    base: PathBuf,
    index: u32,
    cur: Option<BufReader<File>>,
    /// Data bytes left in the current raw member, then its padding.
    left: u64,
    pad: u64,
    peeked: Option<Raw>,
    missing: Option<PathBuf>,
}

impl VolumeReader {
    /// A reader starting at `base.001`.
    pub fn new(base: &Path) -> Self {
        Self {
            base: base.to_path_buf(),
            index: 1,
            cur: None,
            left: 0,
            pad: 0,
            peeked: None,
            missing: None,
        }
    }

    /// The volume currently read.
    pub fn current(&self) -> PathBuf {
        volume_path(&self.base, self.index)
    }

    /// The first volume that was looked for and not found, if any.
    pub fn missing(&self) -> Option<&Path> {
        self.missing.as_deref()
    }

    fn bad(&self, detail: impl Into<String>) -> TransferError {
        TransferError::BadVolume {
            volume: self.current(),
            detail: detail.into(),
        }
    }

    /// Skips what is left of the current raw member (data and padding).
    fn skip_data(&mut self) -> Result<(), TransferError> {
        if self.peeked.is_some() {
            return Ok(());
        }
        let n = self.left + self.pad;
        if n == 0 {
            return Ok(());
        }
        let vol = self.current();
        let Some(f) = self.cur.as_mut() else {
            return Ok(());
        };
        let pos = f.stream_position().map_err(TransferError::io(&vol))?;
        let len = f
            .get_ref()
            .metadata()
            .map_err(TransferError::io(&vol))?
            .len();
        if pos + n > len {
            return Err(self.bad(format!("ends {} bytes early", pos + n - len)));
        }
        f.seek_relative(n as i64).map_err(TransferError::io(&vol))?;
        self.left = 0;
        self.pad = 0;
        Ok(())
    }

    /// The next raw member header, opening the following volume after an end marker.
    fn next_raw(&mut self) -> Result<Option<Raw>, TransferError> {
        if let Some(r) = self.peeked.take() {
            return Ok(Some(r));
        }
        self.skip_data()?;
        loop {
            if self.cur.is_none() {
                if self.missing.is_some() {
                    return Ok(None);
                }
                let p = self.current();
                match File::open(&p) {
                    Ok(f) => self.cur = Some(BufReader::with_capacity(1 << 20, f)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.missing = Some(p);
                        return Ok(None);
                    }
                    Err(e) => return Err(TransferError::Io { path: p, source: e }),
                }
            }
            let mut block = [0u8; BLOCK as usize];
            let vol = self.current();
            let Some(f) = self.cur.as_mut() else { continue };
            let got = read_full(f, &mut block).map_err(TransferError::io(&vol))?;
            if got == 0 {
                return Err(self.bad("no end-of-archive marker (cut short)"));
            }
            if got < block.len() {
                return Err(self.bad("ends inside a tar header"));
            }
            if block.iter().all(|b| *b == 0) {
                self.cur = None;
                self.index += 1;
                continue;
            }
            let h = tar::Header::from_byte_slice(&block);
            let stored = h
                .cksum()
                .map_err(|_| self.bad("bad header checksum field"))?;
            let sum: u32 = block
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32
                    } else {
                        *b as u32
                    }
                })
                .sum();
            if stored != sum {
                return Err(self.bad("header checksum mismatch"));
            }
            if !matches!(h.entry_type(), tar::EntryType::Regular) {
                return Err(self.bad("holds a member that is not a regular file"));
            }
            let name = h
                .path()
                .map_err(|_| self.bad("bad member name"))?
                .to_string_lossy()
                .into_owned();
            let size = h.size().map_err(|_| self.bad("bad member size"))?;
            self.left = size;
            self.pad = padded(size) - size;
            return Ok(Some(Raw { name }));
        }
    }

    /// The next logical member (pieces joined): its package path. Read it with
    /// [`VolumeReader::data`] or skip it with [`VolumeReader::skip`].
    pub fn next_member(&mut self) -> Result<Option<Member>, TransferError> {
        let Some(raw) = self.next_raw()? else {
            return Ok(None);
        };
        match parse_part(&raw.name) {
            Some((base, 1)) => Ok(Some(Member {
                path: base.to_string(),
                part: Some(1),
            })),
            Some(_) => Err(self.bad(format!("{} without its earlier pieces", raw.name))),
            None => Ok(Some(Member {
                path: raw.name,
                part: None,
            })),
        }
    }

    /// A reader over the whole logical member `m` (following its pieces across volumes).
    pub fn data<'a>(&'a mut self, m: &'a mut Member) -> MemberData<'a> {
        MemberData { vr: self, m }
    }

    /// Skips the rest of `m`, all of its pieces.
    pub fn skip(&mut self, m: &mut Member) -> Result<(), TransferError> {
        loop {
            self.skip_data()?;
            if !self.advance_piece(m)? {
                return Ok(());
            }
        }
    }

    /// After a piece is used up: moves to the member's next piece if it follows.
    fn advance_piece(&mut self, m: &mut Member) -> Result<bool, TransferError> {
        let Some(n) = m.part else { return Ok(false) };
        if self.peeked.is_some() {
            return Ok(false);
        }
        let Some(raw) = self.next_raw()? else {
            return Ok(false);
        };
        if parse_part(&raw.name) == Some((m.path.as_str(), n + 1)) {
            m.part = Some(n + 1);
            Ok(true)
        } else {
            self.peeked = Some(raw);
            Ok(false)
        }
    }

    fn read_piece(&mut self, buf: &mut [u8]) -> Result<usize, TransferError> {
        if self.left == 0 || self.peeked.is_some() {
            return Ok(0);
        }
        let vol = self.current();
        let Some(f) = self.cur.as_mut() else {
            return Ok(0);
        };
        let want = buf.len().min(self.left as usize);
        let n = f.read(&mut buf[..want]).map_err(TransferError::io(&vol))?;
        if n == 0 {
            return Err(self.bad("ends inside a file"));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A logical member of a volume set.
#[derive(Debug)]
pub struct Member {
    /// Package path (without any `.part-NNN`).
    pub path: String,
    part: Option<u32>,
}

/// `Read` over one logical member.
pub struct MemberData<'a> {
    vr: &'a mut VolumeReader,
    m: &'a mut Member,
}

impl Read for MemberData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.vr.read_piece(buf).map_err(into_io)?;
            if n > 0 {
                return Ok(n);
            }
            self.vr.skip_data().map_err(into_io)?;
            if !self.vr.advance_piece(self.m).map_err(into_io)? {
                return Ok(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_set(dir: &Path, size: u64, files: &[(&str, Vec<u8>)]) -> PathBuf {
        let base = dir.join("pkg");
        let mut w = VolumeWriter::new(&base, size, 0).unwrap();
        for (p, d) in files {
            w.add(p, d.len() as u64, &mut &d[..]).unwrap();
        }
        w.finish().unwrap();
        base
    }

    fn read_all(base: &Path) -> Result<Vec<(String, Vec<u8>)>, TransferError> {
        let mut r = VolumeReader::new(base);
        let mut out = Vec::new();
        while let Some(mut m) = r.next_member()? {
            let mut v = Vec::new();
            r.data(&mut m)
                .read_to_end(&mut v)
                .map_err(|e| from_io(e, base))?;
            out.push((m.path.clone(), v));
        }
        Ok(out)
    }

    #[test]
    fn big_files_split_across_volumes_and_join_back() {
        let d = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let files = vec![
            ("manifest.json", b"{}".to_vec()),
            ("content/01/A.cab", big.clone()),
            ("content/02/B.cab", vec![9u8; 40_000]),
            ("content/03/C.cab", vec![]),
        ];
        let base = write_set(d.path(), MIN_VOLUME, &files);
        assert!(volume_path(&base, 6).exists());
        for n in 1..=5 {
            let len = std::fs::metadata(volume_path(&base, n)).unwrap().len();
            assert!(len <= MIN_VOLUME, "volume {n} is {len} bytes");
        }
        let got = read_all(&base).unwrap();
        let want: Vec<(String, Vec<u8>)> = files
            .iter()
            .map(|(p, d)| (p.to_string(), d.clone()))
            .collect();
        assert_eq!(got, want);
        // The system tar reads a volume and sees the pieces.
        let out = std::process::Command::new("tar")
            .arg("tf")
            .arg(volume_path(&base, 2))
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("content/01/A.cab.part-002"));
    }

    #[test]
    fn truncation_and_missing_volumes_are_named() {
        let d = tempfile::tempdir().unwrap();
        let files = vec![("a", vec![1u8; 50_000]), ("b", vec![2u8; 50_000])];
        let base = write_set(d.path(), MIN_VOLUME, &files);
        let v2 = volume_path(&base, 2);
        let f = std::fs::OpenOptions::new().write(true).open(&v2).unwrap();
        f.set_len(20_000).unwrap();
        let e = read_all(&base).unwrap_err().to_string();
        assert!(e.contains("pkg.002") && e.contains("truncated"), "{e}");
        std::fs::remove_file(&v2).unwrap();
        let mut r = VolumeReader::new(&base);
        let mut m = r.next_member().unwrap().unwrap();
        r.skip(&mut m).unwrap();
        assert!(r.next_member().unwrap().is_none());
        assert_eq!(r.missing(), Some(v2.as_path()));
    }
}
