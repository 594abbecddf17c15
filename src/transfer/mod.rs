//! Export and import of verifiable update packages for disconnected networks (issue 6).
//!
//! A package is a directory, or numbered plain tar volumes `OUT.001`, `OUT.002`, …, holding
//! `manifest.json` (every file with size, SHA-1, SHA-256), `manifest.sig` (ed25519 over the
//! exact bytes of `manifest.json`), `signer.pub`, `SHA256SUMS`, `metadata/` and
//! `content/<XX>/<SHA1>.<ext>`. The format is documented in `docs/package-format.md`.
//!
//! | module | owns |
//! |---|---|
//! | [`manifest`] | the manifest, anchors, `SHA256SUMS` |
//! | [`keys`] | keygen, PEM key files, signing and checking the manifest |
//! | [`metadata`] | the store snapshot as package files, `--approved-only` |
//! | [`volume`] | writing and reading tar volumes (pieces of files split across volumes) |
//! | [`package`] | reading a package (directory or volumes) member by member |
//! | [`export`](mod@export) | `export` |
//! | [`verify`] | `verify-package` |
//! | [`import`](mod@import) | `import`: staging, verification, the commit and its journal |
//! | [`progress`] | progress bars on a TTY, plain log lines otherwise |
//!
//! # Import invariants
//! - Nothing from a package becomes visible before every file's size, SHA-1 and SHA-256
//!   matched the signed manifest.
//! - The metadata commit is one store transaction; content is published through the content
//!   store's own path (temp → fsync → rename) just before it. An interrupted commit is rolled
//!   forward by the next `import` (journal in the staging directory).
//! - Importing never deletes content files.

pub mod error;
pub mod export;
pub mod hashing;
pub mod import;
pub mod keys;
pub mod manifest;
pub mod metadata;
pub mod package;
pub mod progress;
mod publish;
pub mod verify;
pub mod volume;

pub use error::TransferError;
pub use export::{export, ExportOptions, ExportReport};
pub use import::{import, ImportOptions, ImportReport};
pub use keys::{keygen, KeyPair};
pub use manifest::{Anchor, FileEntry, Manifest};
pub use verify::{verify_package, VerifyReport};

/// Opens the metadata store of an offline data dir, turning "held by a running server" into
/// [`TransferError::DataDirBusy`].
pub fn open_store_offline(
    store_dir: &std::path::Path,
) -> Result<crate::store::Store, TransferError> {
    match crate::store::Store::open(store_dir) {
        Ok(s) => Ok(s),
        Err(crate::store::StoreError::Locked { pid }) => Err(TransferError::DataDirBusy {
            dir: store_dir.to_path_buf(),
            pid,
        }),
        Err(e) => Err(TransferError::Store(e)),
    }
}
