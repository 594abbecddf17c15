//! Reading a package, a directory or a volume set, member by member: the header files first
//! (`manifest.json`, `manifest.sig`, `signer.pub`, `SHA256SUMS`), then every listed file in
//! package order.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::error::{from_io, into_io};
use super::manifest::{FileEntry, Manifest, HEADER_FILES};
use super::volume::{base_of_first, Member, MemberData, VolumeReader};
use super::TransferError;

/// Largest header file accepted (the manifest of a very large package is a few MB).
const HEADER_LIMIT: u64 = 1 << 30;

enum Src {
    Dir(PathBuf),
    Volumes(VolumeReader),
}

/// An opened package with its header files read.
pub struct Package {
    /// The path given (directory or first volume).
    pub location: PathBuf,
    src: Src,
    /// `manifest.json` bytes (what the signature covers).
    pub manifest_bytes: Vec<u8>,
    /// `manifest.sig` bytes.
    pub signature: Vec<u8>,
    /// `signer.pub` bytes.
    pub signer: Vec<u8>,
    /// `SHA256SUMS` bytes.
    pub sums: Vec<u8>,
}

/// A file's bytes, read lazily (a directory package opens the file on first read).
pub struct Data<'a> {
    inner: DataInner<'a>,
}

enum DataInner<'a> {
    Dir {
        path: PathBuf,
        name: &'a str,
        file: Option<File>,
    },
    Vol(MemberData<'a>),
}

impl Read for Data<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            DataInner::Vol(m) => m.read(buf),
            DataInner::Dir { path, name, file } => {
                if file.is_none() {
                    *file = Some(File::open(&*path).map_err(|e| {
                        if e.kind() == io::ErrorKind::NotFound {
                            into_io(TransferError::MissingFile {
                                path: name.to_string(),
                            })
                        } else {
                            into_io(TransferError::Io {
                                path: path.clone(),
                                source: e,
                            })
                        }
                    })?);
                }
                match file.as_mut() {
                    Some(f) => f.read(buf),
                    None => Ok(0),
                }
            }
        }
    }
}

fn read_limited(r: &mut dyn Read, what: &str, at: &Path) -> Result<Vec<u8>, TransferError> {
    let mut v = Vec::new();
    r.take(HEADER_LIMIT + 1)
        .read_to_end(&mut v)
        .map_err(|e| from_io(e, at))?;
    if v.len() as u64 > HEADER_LIMIT {
        return Err(TransferError::Manifest(format!("{what} is too large")));
    }
    Ok(v)
}

impl Package {
    /// Opens a package directory or the first volume (`OUT.001`) of a volume set, and reads
    /// its header files.
    pub fn open(path: &Path) -> Result<Package, TransferError> {
        let meta = std::fs::metadata(path).map_err(TransferError::io(path))?;
        let mut headers: Vec<Vec<u8>> = Vec::new();
        let src = if meta.is_dir() {
            for name in HEADER_FILES {
                let p = path.join(name);
                let mut f = File::open(&p).map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        TransferError::MissingFile {
                            path: name.to_string(),
                        }
                    } else {
                        TransferError::Io {
                            path: p.clone(),
                            source: e,
                        }
                    }
                })?;
                headers.push(read_limited(&mut f, name, &p)?);
            }
            Src::Dir(path.to_path_buf())
        } else {
            let base = base_of_first(path).ok_or_else(|| TransferError::BadVolume {
                volume: path.to_path_buf(),
                detail: "not a package directory nor a first volume (NAME.001)".into(),
            })?;
            let mut vr = VolumeReader::new(&base);
            for name in HEADER_FILES {
                let mut m = match vr.next_member()? {
                    Some(m) if m.path == name => m,
                    _ => {
                        return Err(TransferError::BadVolume {
                            volume: vr.current(),
                            detail: format!("expected {name} among the first members"),
                        })
                    }
                };
                let at = vr.current();
                let mut d = vr.data(&mut m);
                headers.push(read_limited(&mut d, name, &at)?);
                vr.skip(&mut m)?;
            }
            Src::Volumes(vr)
        };
        let [manifest_bytes, signature, signer, sums]: [Vec<u8>; 4] = headers
            .try_into()
            .map_err(|_| TransferError::Manifest("header files".into()))?;
        Ok(Package {
            location: path.to_path_buf(),
            src,
            manifest_bytes,
            signature,
            signer,
            sums,
        })
    }

    /// Whether this is a volume set.
    pub fn is_volumes(&self) -> bool {
        matches!(self.src, Src::Volumes(_))
    }

    /// Visits every file of `manifest` in package order. `visit` may read the data or not;
    /// what it leaves unread is skipped. A volume set must hold exactly the listed files.
    pub fn walk(
        &mut self,
        manifest: &Manifest,
        visit: &mut dyn FnMut(&FileEntry, &mut Data<'_>) -> Result<(), TransferError>,
    ) -> Result<(), TransferError> {
        match &mut self.src {
            Src::Dir(root) => {
                for e in &manifest.files {
                    let mut d = Data {
                        inner: DataInner::Dir {
                            path: root.join(&e.path),
                            name: &e.path,
                            file: None,
                        },
                    };
                    visit(e, &mut d)?;
                }
                Ok(())
            }
            Src::Volumes(vr) => {
                let mut pending: HashMap<&str, &FileEntry> = manifest
                    .files
                    .iter()
                    .map(|e| (e.path.as_str(), e))
                    .collect();
                while let Some(mut m) = vr.next_member()? {
                    let Some(e) = pending.remove(m.path.as_str()) else {
                        return Err(TransferError::UnexpectedFile { path: m.path });
                    };
                    let r = {
                        let mut d = Data {
                            inner: DataInner::Vol(vr.data(&mut m)),
                        };
                        visit(e, &mut d)
                    };
                    if let Err(err) = r {
                        return Err(missing_volume(vr, err, pending.len() + 1));
                    }
                    skip(vr, &mut m)?;
                }
                if pending.is_empty() {
                    return Ok(());
                }
                match vr.missing() {
                    Some(v) => Err(TransferError::MissingVolume {
                        volume: v.to_path_buf(),
                        remaining: pending.len(),
                    }),
                    None => {
                        let mut left: Vec<&str> = pending.keys().copied().collect();
                        left.sort_unstable();
                        Err(TransferError::MissingFile {
                            path: left[0].to_string(),
                        })
                    }
                }
            }
        }
    }
}

fn skip(vr: &mut VolumeReader, m: &mut Member) -> Result<(), TransferError> {
    vr.skip(m)
}

/// A file cut short because the next volume is absent is reported as the missing volume.
fn missing_volume(vr: &VolumeReader, err: TransferError, remaining: usize) -> TransferError {
    match (&err, vr.missing()) {
        (
            TransferError::SizeMismatch {
                expected, actual, ..
            },
            Some(v),
        ) if actual < expected => TransferError::MissingVolume {
            volume: v.to_path_buf(),
            remaining,
        },
        _ => err,
    }
}
