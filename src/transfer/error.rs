//! The transfer error type: every variant names what failed (file, digest, volume, anchor),
//! and its `Display` is the one line the CLI prints.

use std::path::PathBuf;

use crate::store::StoreError;

/// Everything export, import and verification can refuse or fail on.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A file-system error on a named path.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The metadata store failed.
    #[error("metadata store: {0}")]
    Store(#[from] StoreError),
    /// The data dir is held by another process (a running server).
    #[error("data dir {} is held by a running server{}: leave out --data-dir to go through its admin API, or stop it", .dir.display(), .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    DataDirBusy {
        /// The store directory.
        dir: PathBuf,
        /// The holder's pid.
        pid: Option<u32>,
    },
    /// A file's size differs from the manifest.
    #[error("{path}: size {actual} does not match the manifest ({expected})")]
    SizeMismatch {
        /// Package path of the file.
        path: String,
        /// Manifest size.
        expected: u64,
        /// Size found.
        actual: u64,
    },
    /// A file's digest differs from the manifest.
    #[error("{path}: {algo} {actual} does not match the manifest ({expected})")]
    DigestMismatch {
        /// Package path of the file.
        path: String,
        /// `SHA-256` or `SHA-1`.
        algo: &'static str,
        /// Manifest digest (hex).
        expected: String,
        /// Digest found (hex).
        actual: String,
    },
    /// A file the manifest lists is not in the package.
    #[error("{path}: listed in the manifest but missing from the package")]
    MissingFile {
        /// Package path.
        path: String,
    },
    /// The package holds a file the manifest does not list (or lists twice).
    #[error("{path}: not listed in the manifest (or present twice)")]
    UnexpectedFile {
        /// Package path.
        path: String,
    },
    /// A volume the package needs is absent.
    #[error("volume {} is missing ({remaining} files not yet read)", .volume.display())]
    MissingVolume {
        /// The volume path expected.
        volume: PathBuf,
        /// Files still unread.
        remaining: usize,
    },
    /// A volume ends early or is not a tar volume.
    #[error("volume {} is truncated or damaged: {detail}", .volume.display())]
    BadVolume {
        /// The volume.
        volume: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The manifest is malformed or of an unknown version.
    #[error("manifest.json: {0}")]
    Manifest(String),
    /// The manifest signature does not verify against `signer.pub`.
    #[error("manifest.sig: signature does not verify against signer.pub ({0})")]
    BadSignature(String),
    /// The signer is not one of the `--trust` keys.
    #[error("signer.pub: signer {fingerprint} is not a trusted key")]
    Untrusted {
        /// The signer's fingerprint.
        fingerprint: String,
    },
    /// A key file is malformed.
    #[error("{}: {detail}", .path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// An incremental package's base anchor was never imported here.
    #[error("base anchor {anchor} is not present here ({detail}): import the package that printed it first")]
    BaseAnchorMissing {
        /// The package's `base_anchor`.
        anchor: String,
        /// What this server has instead.
        detail: String,
    },
    /// An import with no trusted key: any key would do, so nothing is accepted.
    #[error("no trusted keys: give --trust K.pub or set [import] trusted_keys (a package is imported only when a key you trust signed it)")]
    NoTrustedKeys,
    /// The package is older than what was already imported from its server.
    #[error("anchor {anchor} is older than the last import from that server ({recorded}): importing it would move this server backwards (e.g. undo declines); give --allow-older if that is what you want")]
    OlderAnchor {
        /// The package's anchor.
        anchor: String,
        /// The anchor recorded here.
        recorded: String,
    },
    /// `--since` names an anchor this server cannot export from.
    #[error("anchor {anchor}: {detail}")]
    BadAnchor {
        /// The anchor text.
        anchor: String,
        /// Why.
        detail: String,
    },
    /// The metadata in the package is inconsistent.
    #[error("{path}: {detail}")]
    Metadata {
        /// Package path of the metadata file.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// The export could not be written as asked.
    #[error("export: {0}")]
    Export(String),
    /// A payload in the local cache differs from what the store recorded for it.
    #[error("cache object {path}: {detail}")]
    CacheObject {
        /// Path in the content folder.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

impl TransferError {
    /// An [`TransferError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TransferError {
        let path = path.into();
        move |source| TransferError::Io { path, source }
    }
}

/// Carries a [`TransferError`] through an `io::Read` implementation.
pub(crate) fn into_io(e: TransferError) -> std::io::Error {
    std::io::Error::other(e)
}

/// Recovers a [`TransferError`] carried by [`into_io`], else wraps the I/O error for `path`.
pub(crate) fn from_io(e: std::io::Error, path: &std::path::Path) -> TransferError {
    if e.get_ref().is_some_and(|r| r.is::<TransferError>()) {
        if let Some(inner) = e.into_inner() {
            if let Ok(t) = inner.downcast::<TransferError>() {
                return *t;
            }
        }
        return TransferError::Export("lost error".into());
    }
    TransferError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}
