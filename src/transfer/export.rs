//! `export`: a full or incremental package from a store and its content folder.
//!
//! Digests of payloads come from the content cache's object index (every object there was
//! verified when it was stored) and are checked against what metadata declares; a payload
//! the index does not know is hashed while planning. The manifest is therefore complete
//! before any byte is written, which lets it open the first volume.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::hashing::{copy_hashed, Digests, ManifestDigests};
use super::keys::{self, KeyPair};
use super::manifest::{self, Anchor, FileEntry, Manifest, FORMAT_NAME, FORMAT_VERSION};
use super::metadata;
use super::progress::Progress;
use super::volume::VolumeWriter;
use super::TransferError;
use crate::model::FileRecord;
use crate::store::Store;

/// What to export.
pub struct ExportOptions {
    /// The package directory, or the volume base name (`OUT` → `OUT.001`, …).
    pub out: PathBuf,
    /// Incremental: only what changed since this earlier export's anchor.
    pub since: Option<Anchor>,
    /// Only approved updates and what they need.
    pub approved_only: bool,
    /// Split into tar volumes of this many bytes.
    pub volume_size: Option<u64>,
    /// Sign with this key; `None` signs with a one-time key (integrity only).
    pub signing_key: Option<KeyPair>,
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// The new anchor (give it to the next `export --since`).
    pub anchor: Anchor,
    /// Revisions in the package.
    pub revisions: usize,
    /// Payload files in the package.
    pub payloads: usize,
    /// Their bytes.
    pub payload_bytes: u64,
    /// Declared payloads left out because the cache does not hold them.
    pub not_cached: usize,
    /// The directory or the volumes written.
    pub outputs: Vec<PathBuf>,
    /// The signer's fingerprint.
    pub signer: String,
    /// Whether a one-time key signed it (no `--sign`).
    pub one_time_key: bool,
}

/// One payload to copy.
struct Payload {
    entry: FileEntry,
    src: PathBuf,
}

/// `XX/<SHA1HEX>.<ext>`: the path under the content folder (and under `content/`).
pub fn content_rel(f: &FileRecord) -> String {
    let p = f.content_path();
    p.strip_prefix("Content/").unwrap_or(&p).to_string()
}

fn payload_for(
    store: &Store,
    content_dir: &Path,
    f: &FileRecord,
) -> Result<Option<Payload>, TransferError> {
    let rel = content_rel(f);
    let path = content_dir.join(&rel);
    let len = match fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TransferError::Io { path, source: e }),
    };
    let bad = |d: String| TransferError::CacheObject {
        path: path.clone(),
        detail: d,
    };
    if len != f.size {
        return Err(bad(format!("{len} bytes, metadata declares {}", f.size)));
    }
    let sha256 = match store.get_object(&f.sha1)? {
        Some(o) if o.size == len => o.sha256,
        _ => {
            let mut file = File::open(&path).map_err(TransferError::io(&path))?;
            let d = copy_hashed(&mut file, None, &mut |_| {}).map_err(TransferError::io(&path))?;
            if d.sha1 != f.sha1 {
                return Err(bad("SHA-1 differs from its name".into()));
            }
            d.sha256
        }
    };
    if f.sha256.is_some_and(|s| s != sha256) {
        return Err(bad("SHA-256 differs from the declared one".into()));
    }
    Ok(Some(Payload {
        entry: FileEntry {
            path: format!("content/{rel}"),
            size: len,
            sha1: hex::encode(f.sha1),
            sha256: hex::encode(sha256),
        },
        src: path,
    }))
}

/// Writes a package of `store` (payloads from `content_dir`) as `opts` says.
pub fn export(
    store: &Store,
    content_dir: &Path,
    opts: ExportOptions,
) -> Result<ExportReport, TransferError> {
    let server_id = store.server_id()?;
    if let Some(a) = &opts.since {
        if a.server_id != server_id {
            return Err(TransferError::BadAnchor {
                anchor: a.to_string(),
                detail: format!("made by server {}, this is {server_id}", a.server_id),
            });
        }
        let hw = store.next_local_id()?;
        if a.high_water > hw {
            return Err(TransferError::BadAnchor {
                anchor: a.to_string(),
                detail: format!("is ahead of this store (high-water {hw})"),
            });
        }
    }
    let created = OffsetDateTime::now_utc();
    let mut snap = match &opts.since {
        Some(a) => store.snapshot_since(a.high_water)?,
        None => store.snapshot()?,
    };
    let mut allowed = None;
    if opts.approved_only {
        let full = match &opts.since {
            Some(_) => store.snapshot()?,
            None => snap.clone(),
        };
        let (s, a) = metadata::approved_only(&full, snap, opts.since.map(|a| a.created_unix));
        snap = s;
        allowed = Some(a);
    }
    let anchor = Anchor {
        server_id,
        high_water: snap.high_water,
        created_unix: created.unix_timestamp(),
    };

    // Payloads: the snapshot's files, plus (incremental) files stored since the base export.
    let mut records: BTreeMap<[u8; 20], FileRecord> =
        snap.files.iter().map(|f| (f.sha1, f.clone())).collect();
    if let Some(a) = &allowed {
        records.retain(|sha1, _| a.contains(sha1));
    }
    if let Some(a) = &opts.since {
        for (sha1, o) in store.objects()? {
            if o.stored_unix < a.created_unix || records.contains_key(&sha1) {
                continue;
            }
            if allowed.as_ref().is_some_and(|s| !s.contains(&sha1)) {
                continue;
            }
            if let Some(f) = store.expected_file(&sha1)? {
                records.insert(sha1, f);
            }
        }
    }
    let mut payloads = Vec::new();
    let mut not_cached = 0;
    for f in records.values() {
        match payload_for(store, content_dir, f)? {
            Some(p) => payloads.push(p),
            None => not_cached += 1,
        }
    }
    payloads.sort_by(|a, b| a.entry.path.cmp(&b.entry.path));
    if not_cached > 0 {
        tracing::warn!(
            count = not_cached,
            "declared payloads not in the cache were left out of the package"
        );
    }

    let meta_files = metadata::to_files(&snap)?;
    let mut files: Vec<FileEntry> = meta_files
        .iter()
        .map(|(p, b)| Digests::of(b).entry(p.clone()))
        .collect();
    files.extend(payloads.iter().map(|p| p.entry.clone()));
    let created_text = created
        .replace_nanosecond(0)
        .unwrap_or(created)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| TransferError::Export(e.to_string()))?;
    let m = Manifest {
        format: FORMAT_NAME.into(),
        format_version: FORMAT_VERSION,
        server_id,
        created: created_text,
        anchor: anchor.to_string(),
        base_anchor: opts.since.map(|a| a.to_string()),
        approved_only: opts.approved_only,
        files,
    };
    let manifest_bytes = m.to_bytes()?;
    let one_time_key = opts.signing_key.is_none();
    let kp = opts.signing_key.unwrap_or_else(KeyPair::generate);
    let sig = kp.sign(&manifest_bytes);
    let signer_pem = keys::public_pem(&kp.public());
    let sums = manifest::render_sums(&hex::encode(Digests::of(&manifest_bytes).sha256), &m);
    let headers: [(&str, &[u8]); 4] = [
        (manifest::MANIFEST, &manifest_bytes),
        (manifest::SIGNATURE, &sig),
        (manifest::SIGNER, signer_pem.as_bytes()),
        (manifest::SUMS, sums.as_bytes()),
    ];

    let payload_bytes: u64 = payloads.iter().map(|p| p.entry.size).sum();
    let mut progress = Progress::new("export", m.files.len() as u64, m.total_bytes());
    let outputs = match opts.volume_size {
        Some(size) => write_volumes(
            &opts.out,
            size,
            &anchor,
            &headers,
            &meta_files,
            &payloads,
            &mut progress,
        )?,
        None => vec![write_dir(
            &opts.out,
            &headers,
            &meta_files,
            &payloads,
            &mut progress,
        )?],
    };
    progress.finish();
    tracing::info!(
        revisions = snap.revisions.len(),
        payloads = payloads.len(),
        payload_bytes,
        %anchor,
        "export written"
    );
    Ok(ExportReport {
        anchor,
        revisions: snap.revisions.len(),
        payloads: payloads.len(),
        payload_bytes,
        not_cached,
        outputs,
        signer: keys::fingerprint(&kp.public()),
        one_time_key,
    })
}

fn write_volumes(
    out: &Path,
    size: u64,
    anchor: &Anchor,
    headers: &[(&str, &[u8]); 4],
    meta: &[(String, Vec<u8>)],
    payloads: &[Payload],
    progress: &mut Progress,
) -> Result<Vec<PathBuf>, TransferError> {
    let mut w = VolumeWriter::new(out, size, anchor.created_unix.max(0) as u64)?;
    let r = (|| {
        for (name, bytes) in headers {
            w.add(name, bytes.len() as u64, &mut &bytes[..])?;
        }
        for (name, bytes) in meta {
            w.add(name, bytes.len() as u64, &mut &bytes[..])?;
            progress.bytes(bytes.len() as u64);
            progress.file_done();
        }
        for p in payloads {
            let mut f = File::open(&p.src).map_err(TransferError::io(&p.src))?;
            w.add(&p.entry.path, p.entry.size, &mut f)?;
            progress.bytes(p.entry.size);
            progress.file_done();
        }
        Ok(())
    })();
    match r {
        Ok(()) => w.finish(),
        Err(e) => {
            w.abort();
            Err(e)
        }
    }
}

fn write_dir(
    out: &Path,
    headers: &[(&str, &[u8]); 4],
    meta: &[(String, Vec<u8>)],
    payloads: &[Payload],
    progress: &mut Progress,
) -> Result<PathBuf, TransferError> {
    if out.exists() {
        let empty = out.is_dir()
            && fs::read_dir(out)
                .map_err(TransferError::io(out))?
                .next()
                .is_none();
        if !empty {
            return Err(TransferError::Export(format!(
                "{} already exists",
                out.display()
            )));
        }
        fs::remove_dir(out).map_err(TransferError::io(out))?;
    }
    let mut tmp = out.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(TransferError::io(&tmp))?;
    }
    let r = (|| {
        fs::create_dir_all(tmp.join("metadata")).map_err(TransferError::io(&tmp))?;
        let mut written = Vec::new();
        for (name, bytes) in headers
            .iter()
            .map(|(n, b)| (*n, *b))
            .chain(meta.iter().map(|(n, b)| (n.as_str(), b.as_slice())))
        {
            let p = tmp.join(name);
            fs::write(&p, bytes).map_err(TransferError::io(&p))?;
            written.push(p);
        }
        progress.bytes(meta.iter().map(|(_, b)| b.len() as u64).sum());
        for p in payloads {
            let dst = tmp.join(&p.entry.path);
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent).map_err(TransferError::io(parent))?;
            }
            let n = fs::copy(&p.src, &dst).map_err(TransferError::io(&dst))?;
            if n != p.entry.size {
                return Err(TransferError::CacheObject {
                    path: p.src.clone(),
                    detail: format!("changed while exporting ({n} bytes)"),
                });
            }
            written.push(dst);
            progress.bytes(n);
            progress.file_done();
        }
        for p in &written {
            File::open(p)
                .and_then(|f| f.sync_all())
                .map_err(TransferError::io(p))?;
        }
        fs::rename(&tmp, out).map_err(TransferError::io(out))?;
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = File::open(parent).and_then(|f| f.sync_all());
        }
        Ok(out.to_path_buf())
    })();
    if r.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    r
}
