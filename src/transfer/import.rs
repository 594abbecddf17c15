//! `import`: verify every file into a staging directory, then commit content and metadata.
//!
//! Staging lives in `<data_dir>/import-staging/<id>/` (`id` = first 16 hex digits of the
//! manifest's SHA-256): `manifest.json`, `journal.json` and `files/<package path>`. A file is
//! copied to `files/<path>.tmp` while hashed, checked against the manifest, fsynced and only
//! then renamed to `files/<path>`: a file under its final staging name is verified, so a
//! re-run does not copy it again. Payloads the cache already holds with the same SHA-256 are
//! not copied. Every file is still read from the package and checked on every run (issue 15:
//! a tampered package was accepted when the server already held all it carried).
//!
//! Refused up front: an import with no trusted key ([`ImportOptions::trust`] empty), and a
//! package older than the last one imported from its server unless
//! [`ImportOptions::allow_older`].
//!
//! The commit (journal phase `committing`) publishes each staged payload through the
//! content store (hard link into its temp name, fsync, rename, fsync of the folder), then
//! applies the metadata in ONE store transaction (full package: replace; incremental:
//! merge, removing nothing from the cache), records the anchor and flushes. Until the
//! metadata transaction commits, no metadata names the new payloads. A failure during the
//! commit removes the payloads this run published; a crash during it is rolled forward by
//! the next `import` (of any package), from the staging directory.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::from_io;
use super::hashing::{self, copy_hashed, Digests, ManifestDigests};
use super::keys;
use super::manifest::{Anchor, FileEntry, Manifest};
use super::metadata;
use super::package::Package;
use super::progress::Progress;
use super::publish::ContentTarget;
use super::verify::check_header;
use super::TransferError;
use crate::content::verify::Verified;
use crate::store::{ApplyMode, MetadataSnapshot, ObjectMeta, Store};

/// Setting (store key/value) holding the anchors imported, per source server.
pub const IMPORTED_KEY: &str = "transfer.imported_anchors";
/// Test hook: `stage:N` or `commit:N` stalls the import after N files (for kill tests).
pub const STALL_ENV: &str = "WSUS_EDGE_IMPORT_TEST_STALL";

/// Import options.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The signer must be one of these keys; empty = the import is refused.
    pub trust: Vec<VerifyingKey>,
    /// Accept a package whose anchor is older than the one recorded for its server.
    pub allow_older: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    /// The package's anchor, now recorded here.
    pub anchor: String,
    /// The incremental's base, if any.
    pub base_anchor: Option<String>,
    /// The signer's fingerprint.
    pub signer: String,
    /// Revisions applied.
    pub revisions: usize,
    /// Payload files in the package.
    pub payloads: usize,
    /// Files copied and verified in this run.
    pub copied: usize,
    /// Files already verified by an earlier, interrupted run (not copied again).
    pub resumed: usize,
    /// Payloads the cache already held (not copied).
    pub already_present: usize,
    /// Bytes copied in this run.
    pub bytes_copied: u64,
    /// Payloads newly published to the cache.
    pub published: usize,
    /// Interrupted commits of earlier imports that were completed first.
    pub rolled_forward: usize,
}

/// One imported anchor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportedAnchor {
    /// The anchor text.
    pub anchor: String,
    /// Its high-water mark.
    pub high_water: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Phase {
    Staging,
    Committing,
}

/// The anchors imported into `store`, per source server.
pub fn imported_anchors(store: &Store) -> Result<BTreeMap<Uuid, ImportedAnchor>, TransferError> {
    match store.setting(IMPORTED_KEY)? {
        Some(v) => serde_json::from_slice(&v).map_err(|e| TransferError::Metadata {
            path: IMPORTED_KEY.into(),
            detail: e.to_string(),
        }),
        None => Ok(BTreeMap::new()),
    }
}

/// Refuses a package older than the last one imported from the same server (its metadata
/// would replace newer state: a decline undone, the anchor moved back) unless `allow_older`.
fn check_not_older(store: &Store, m: &Manifest, allow_older: bool) -> Result<(), TransferError> {
    let a: Anchor = m.anchor.parse()?;
    match imported_anchors(store)?.get(&a.server_id) {
        Some(r) if r.high_water > a.high_water && !allow_older => Err(TransferError::OlderAnchor {
            anchor: m.anchor.clone(),
            recorded: r.anchor.clone(),
        }),
        _ => Ok(()),
    }
}

fn check_base(store: &Store, m: &Manifest) -> Result<(), TransferError> {
    let Some(base) = &m.base_anchor else {
        return Ok(());
    };
    let b: Anchor = base.parse()?;
    let have = imported_anchors(store)?;
    match have.get(&b.server_id) {
        Some(r) if r.high_water >= b.high_water => Ok(()),
        Some(r) => Err(TransferError::BaseAnchorMissing {
            anchor: base.clone(),
            detail: format!("the last import from that server is {}", r.anchor),
        }),
        None => Err(TransferError::BaseAnchorMissing {
            anchor: base.clone(),
            detail: format!("nothing was imported from server {}", b.server_id),
        }),
    }
}

struct Staging {
    dir: PathBuf,
}

impl Staging {
    fn files(&self) -> PathBuf {
        self.dir.join("files")
    }
    fn file(&self, path: &str) -> PathBuf {
        self.files().join(path)
    }
    fn journal(&self) -> Result<Option<Phase>, TransferError> {
        let p = self.dir.join("journal.json");
        match fs::read(&p) {
            Ok(b) => Ok(serde_json::from_slice::<Journal>(&b).ok().map(|j| j.phase)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(TransferError::Io { path: p, source: e }),
        }
    }
    fn set_phase(&self, phase: Phase) -> Result<(), TransferError> {
        let p = self.dir.join("journal.json");
        let tmp = self.dir.join("journal.json.tmp");
        let body = serde_json::to_vec(&Journal { phase }).map_err(|e| TransferError::Metadata {
            path: "journal.json".into(),
            detail: e.to_string(),
        })?;
        let mut f = File::create(&tmp).map_err(TransferError::io(&tmp))?;
        f.write_all(&body)
            .and_then(|_| f.sync_all())
            .map_err(TransferError::io(&tmp))?;
        fs::rename(&tmp, &p).map_err(TransferError::io(&p))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(TransferError::io(&self.dir))
    }
}

fn stalls(phase: &str, n: usize) -> bool {
    std::env::var(STALL_ENV).is_ok_and(|v| {
        v.split_once(':')
            .is_some_and(|(p, k)| p == phase && k.parse() == Ok(n))
    })
}

fn stall_forever(phase: &str, n: usize) {
    tracing::warn!("{STALL_ENV}: stalling after {n} files in {phase}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Makes verified staging files durable in batches: one `syncfs` for many files, then each
/// `.tmp` is renamed to its final staging name (which means "verified" to a re-run).
struct Checkpoint {
    dir: PathBuf,
    pending: Vec<(PathBuf, PathBuf)>,
    bytes: u64,
    since: std::time::Instant,
}

impl Checkpoint {
    const MAX_BYTES: u64 = 512 << 20;
    const MAX_FILES: usize = 2000;
    const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(10);

    fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            pending: Vec::new(),
            bytes: 0,
            since: std::time::Instant::now(),
        }
    }

    fn add(&mut self, tmp: PathBuf, dst: PathBuf, size: u64) -> Result<(), TransferError> {
        self.pending.push((tmp, dst));
        self.bytes += size;
        if self.bytes >= Self::MAX_BYTES
            || self.pending.len() >= Self::MAX_FILES
            || self.since.elapsed() >= Self::MAX_AGE
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Syncs the staged data, renames the batch, syncs the renames.
    fn flush(&mut self) -> Result<(), TransferError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        sync_fs(&self.dir, self.pending.iter().map(|(t, _)| t.as_path()))?;
        for (tmp, dst) in self.pending.drain(..) {
            fs::rename(&tmp, &dst).map_err(TransferError::io(&dst))?;
        }
        sync_fs(&self.dir, std::iter::empty())?;
        self.bytes = 0;
        self.since = std::time::Instant::now();
        Ok(())
    }
}

/// Makes everything written on `dir`'s file system durable: `syncfs(2)`, or when that fails,
/// an fsync of each of `files`.
fn sync_fs<'a>(dir: &Path, files: impl Iterator<Item = &'a Path>) -> Result<(), TransferError> {
    use std::os::unix::io::AsRawFd;
    let d = File::open(dir).map_err(TransferError::io(dir))?;
    // SAFETY: syncfs on a descriptor we own for the duration of the call.
    let rc = unsafe { libc::syncfs(d.as_raw_fd()) };
    if rc == 0 {
        return Ok(());
    }
    for f in files {
        File::open(f)
            .and_then(|f| f.sync_all())
            .map_err(TransferError::io(f))?;
    }
    d.sync_all().map_err(TransferError::io(dir))
}

/// Imports the package at `package` into `store` and the content folder `content_dir`,
/// staging under `staging_root`.
pub fn import(
    store: &Store,
    content_dir: &Path,
    staging_root: &Path,
    package: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, TransferError> {
    let mut report = ImportReport::default();
    if opts.trust.is_empty() {
        return Err(TransferError::NoTrustedKeys);
    }
    let mut pkg = Package::open(package)?;
    let (m, signer) = check_header(&pkg, &opts.trust)?;
    report.signer = keys::fingerprint(&signer);
    let id = hex::encode(&Digests::of(&pkg.manifest_bytes).sha256[..8]);
    let target = ContentTarget::open(content_dir)?;

    // Earlier interrupted imports: finish commits, drop abandoned staging of other packages.
    fs::create_dir_all(staging_root).map_err(TransferError::io(staging_root))?;
    for e in fs::read_dir(staging_root).map_err(TransferError::io(staging_root))? {
        let e = e.map_err(TransferError::io(staging_root))?;
        if e.file_name().to_string_lossy() == id {
            continue;
        }
        let st = Staging { dir: e.path() };
        if st.journal()? == Some(Phase::Committing) {
            tracing::warn!(dir = %st.dir.display(), "finishing an interrupted import first");
            let bytes = fs::read(st.dir.join("manifest.json"))
                .map_err(TransferError::io(st.dir.join("manifest.json")))?;
            let old = Manifest::parse(&bytes)?;
            let mut none = Proofs::new();
            commit(
                store,
                &target,
                &st,
                &old,
                &mut none,
                &mut ImportReport::default(),
            )?;
            report.rolled_forward += 1;
        } else {
            tracing::info!(dir = %st.dir.display(), "removing abandoned import staging");
            fs::remove_dir_all(&st.dir).map_err(TransferError::io(&st.dir))?;
        }
    }

    let st = Staging {
        dir: staging_root.join(&id),
    };
    report.anchor = m.anchor.clone();
    report.base_anchor = m.base_anchor.clone();
    report.payloads = m
        .files
        .iter()
        .filter(|f| f.path.starts_with("content/"))
        .count();
    if st.journal()? == Some(Phase::Committing) {
        tracing::warn!("resuming an interrupted commit of this package");
        commit(store, &target, &st, &m, &mut Proofs::new(), &mut report)?;
        return Ok(report);
    }
    check_not_older(store, &m, opts.allow_older)?;
    check_base(store, &m)?;
    if let Some(missing) = metadata::FILES
        .iter()
        .find(|p| !m.files.iter().any(|f| f.path == **p))
    {
        return Err(TransferError::Manifest(format!("does not list {missing}")));
    }
    fs::create_dir_all(st.files()).map_err(TransferError::io(st.files()))?;
    let mpath = st.dir.join("manifest.json");
    fs::write(&mpath, &pkg.manifest_bytes).map_err(TransferError::io(&mpath))?;
    st.set_phase(Phase::Staging)?;

    let mut progress = Progress::new("import", m.files.len() as u64, m.total_bytes());
    let loc = pkg.location.clone();
    let mut batch = Checkpoint::new(&st.dir);
    let mut proofs = Proofs::new();
    let walked = pkg.walk(&m, &mut |e, data| {
        let dst = st.file(&e.path);
        let held = e.path.starts_with("content/") && target.holds(store, e)?;
        if held || fs::metadata(&dst).is_ok_and(|md| md.len() == e.size) {
            // Not copied (the cache or an earlier run has it), but still read and checked:
            // every file of a package is verified on every import, so a tampered package
            // is refused even when the server already holds everything it carries.
            let d = copy_hashed(data, None, &mut |n| progress.bytes(n))
                .map_err(|x| from_io(x, &loc))?;
            d.check(e)?;
            if held {
                report.already_present += 1;
            } else {
                report.resumed += 1;
            }
        } else {
            let (tmp, d) = stage(e, data, &dst, &loc, &mut progress)?;
            if e.path.starts_with("content/") {
                proofs.insert(e.path.clone(), hashing::prove(&d, e)?);
            }
            batch.add(tmp, dst, e.size)?;
            report.copied += 1;
            report.bytes_copied += e.size;
            if stalls("stage", report.copied) {
                batch.flush()?;
                stall_forever("stage", report.copied);
            }
        }
        progress.file_done();
        Ok(())
    });
    // Whatever was verified stays verified for the next run, even when this one failed.
    let flushed = batch.flush();
    walked?;
    flushed?;
    progress.finish();
    st.set_phase(Phase::Committing)?;
    commit(store, &target, &st, &m, &mut proofs, &mut report)?;
    Ok(report)
}

/// Publishing proofs of the payloads staged by this run, by package path. Payloads staged by
/// an earlier, interrupted run are hashed again when published ([`publish_all`]).
type Proofs = BTreeMap<String, Verified>;

/// Copies one file into `<dst>.tmp` while hashing; keeps it only if it matches the manifest.
/// Returns the temp path (made durable and renamed by a [`Checkpoint`]) and the digests.
fn stage(
    e: &FileEntry,
    data: &mut dyn std::io::Read,
    dst: &Path,
    loc: &Path,
    progress: &mut Progress,
) -> Result<(PathBuf, Digests), TransferError> {
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).map_err(TransferError::io(parent))?;
    }
    let mut tmp = dst.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let r = (|| {
        let mut f = File::create(&tmp).map_err(TransferError::io(&tmp))?;
        let d = {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut f);
            let mut tagged = Tagged {
                inner: &mut w,
                path: &tmp,
            };
            // Write errors (disk full) name the staging file, read errors the package.
            let d = copy_hashed(data, Some(&mut tagged), &mut |n| progress.bytes(n))
                .map_err(|x| from_io(x, loc))?;
            w.flush().map_err(TransferError::io(&tmp))?;
            d
        };
        d.check(e)?;
        Ok(d)
    })();
    match r {
        Ok(d) => Ok((tmp, d)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// A writer whose errors carry the path written to.
struct Tagged<'a, W: Write> {
    inner: &'a mut W,
    path: &'a Path,
}

impl<W: Write> Write for Tagged<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.tag(e))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().map_err(|e| self.tag(e))
    }
}

impl<W: Write> Tagged<'_, W> {
    fn tag(&self, e: std::io::Error) -> std::io::Error {
        super::error::into_io(TransferError::Io {
            path: self.path.to_path_buf(),
            source: e,
        })
    }
}

fn load_snapshot(st: &Staging, m: &Manifest) -> Result<MetadataSnapshot, TransferError> {
    let snap =
        metadata::from_files(|p| fs::read(st.file(p)).map_err(TransferError::io(st.file(p))))?;
    let anchor: Anchor = m.anchor.parse()?;
    let base = m
        .base_anchor
        .as_deref()
        .map(str::parse::<Anchor>)
        .transpose()?;
    let bad = |d: String| TransferError::Metadata {
        path: "metadata/info.json".into(),
        detail: d,
    };
    if snap.server_id != m.server_id || snap.high_water != anchor.high_water {
        return Err(bad(
            "does not match the manifest's server id and anchor".into()
        ));
    }
    if snap.since != base.map(|b| b.high_water) {
        return Err(bad("incremental base does not match the manifest".into()));
    }
    Ok(snap)
}

/// Publishes the staged payloads and applies the metadata; removes the staging dir.
fn commit(
    store: &Store,
    target: &ContentTarget,
    st: &Staging,
    m: &Manifest,
    proofs: &mut Proofs,
    report: &mut ImportReport,
) -> Result<(), TransferError> {
    let snap = load_snapshot(st, m)?;
    let todo: Vec<&FileEntry> = m
        .files
        .iter()
        .filter(|f| f.path.starts_with("content/"))
        .filter(|f| st.file(&f.path).exists())
        .collect();
    let mut fresh = Vec::with_capacity(todo.len());
    for e in todo {
        if !target.holds(store, e)? {
            fresh.push(e);
        }
    }
    let (published, r) = publish_all(store, target, st, proofs, &fresh);
    let r = r.and_then(|()| {
        let mode = if m.base_anchor.is_some() {
            ApplyMode::Merge
        } else {
            ApplyMode::Replace
        };
        Ok(store.apply_snapshot(&snap, mode, None)?)
    });
    if let Err(e) = r {
        for p in &published {
            if let Err(x) = target.unpublish(store, p) {
                tracing::warn!(file = %p.path, error = %x, "could not roll back a published payload");
            }
        }
        let _ = st.set_phase(Phase::Staging);
        return Err(e);
    }
    let anchor: Anchor = m.anchor.parse()?;
    let mut have = imported_anchors(store)?;
    let newer = have
        .get(&anchor.server_id)
        .is_none_or(|r| r.high_water <= anchor.high_water || m.base_anchor.is_none());
    if newer {
        have.insert(
            anchor.server_id,
            ImportedAnchor {
                anchor: m.anchor.clone(),
                high_water: anchor.high_water,
            },
        );
        let v = serde_json::to_vec(&have).map_err(|e| TransferError::Metadata {
            path: IMPORTED_KEY.into(),
            detail: e.to_string(),
        })?;
        store.set_setting(IMPORTED_KEY, Some(&v))?;
    }
    store.flush()?;
    report.revisions = snap.revisions.len();
    report.published += published.len();
    fs::remove_dir_all(&st.dir).map_err(TransferError::io(&st.dir))?;
    tracing::info!(anchor = %m.anchor, revisions = snap.revisions.len(), published = published.len(), "import committed");
    Ok(())
}

/// Threads publishing at once: their fsyncs share journal commits.
const PUBLISH_THREADS: usize = 16;

/// Publishes `todo` through the content store from several threads. Returns what was newly
/// published (not on disk before; what a rollback removes) and the first error (the rest is
/// left alone after an error).
fn publish_all<'a>(
    store: &Store,
    target: &ContentTarget,
    st: &Staging,
    proofs: &Proofs,
    todo: &[&'a FileEntry],
) -> (Vec<&'a FileEntry>, Result<(), TransferError>) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let count = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let done: Mutex<Vec<&'a FileEntry>> = Mutex::new(Vec::new());
    let first_err: Mutex<Option<TransferError>> = Mutex::new(None);
    // Ok(true): newly published (rolled back on failure); Ok(false): it was there already.
    let one = |e: &FileEntry| -> Result<bool, TransferError> {
        let existed = target.on_disk(e)?;
        let staged = st.file(&e.path);
        let proof = match proofs.get(&e.path) {
            Some(p) => *p,
            // Staged by an earlier run: its proof did not survive the process; hash again.
            None => {
                let mut f = File::open(&staged).map_err(TransferError::io(&staged))?;
                let d =
                    copy_hashed(&mut f, None, &mut |_| {}).map_err(TransferError::io(&staged))?;
                hashing::prove(&d, e)?
            }
        };
        let (sha1, ext) = target.publish(e, &staged, &proof)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        store.put_object(
            &sha1,
            &ObjectMeta {
                ext,
                size: e.size,
                sha256: parse_hex32(&e.sha256)?,
                stored_unix: now,
                last_access_unix: now,
            },
        )?;
        Ok(!existed)
    };
    std::thread::scope(|s| {
        for _ in 0..PUBLISH_THREADS.min(todo.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= todo.len() || failed.load(Ordering::Relaxed) {
                    break;
                }
                match one(todo[i]) {
                    Ok(fresh) => {
                        if fresh {
                            done.lock().unwrap_or_else(|p| p.into_inner()).push(todo[i]);
                        }
                        let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                        if stalls("commit", n) {
                            stall_forever("commit", n);
                        }
                    }
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        first_err
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                    }
                }
            });
        }
    });
    let done = done.into_inner().unwrap_or_else(|p| p.into_inner());
    match first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => (done, Err(e)),
        None => (done, Ok(())),
    }
}

fn parse_hex32(s: &str) -> Result<[u8; 32], TransferError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| TransferError::Manifest(format!("bad SHA-256 {s}")))?;
    Ok(out)
}
