//! `POST /api/export` and `POST /api/import`: the transfer verbs (issue 6) through the
//! running server, which reads and writes the package path on its own disk. One at a time
//! with content verify, prefetch and cleanup (the maintenance lock).

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{AdminState, ApiError, ApiResult};
use crate::transfer::{self, keys, Anchor, ExportOptions, ImportOptions, TransferError};

/// Body of `POST /api/export` (the `export` flags).
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportRequest {
    /// Package directory or volume base name, on the server's disk.
    pub out: PathBuf,
    /// Incremental from this anchor.
    pub since: Option<String>,
    /// Only approved updates.
    #[serde(default)]
    pub approved_only: bool,
    /// Volume size, e.g. `4GiB`.
    pub volume_size: Option<String>,
    /// Private key file to sign with, on the server's disk.
    pub sign: Option<PathBuf>,
}

/// Answer of `POST /api/export`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportJson {
    /// The new anchor.
    pub anchor: String,
    /// Revisions in the package.
    pub revisions: usize,
    /// Payload files in the package.
    pub payloads: usize,
    /// Their bytes.
    pub payload_bytes: u64,
    /// Declared payloads left out (not cached).
    pub not_cached: usize,
    /// What was written.
    pub outputs: Vec<String>,
    /// Signer fingerprint.
    pub signer: String,
    /// Signed with a one-time key.
    pub one_time_key: bool,
}

/// Body of `POST /api/import`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ImportRequest {
    /// Package directory or first volume, on the server's disk.
    pub path: PathBuf,
    /// Trusted public key files (default: the server's `[import] trusted_keys`).
    #[serde(default)]
    pub trust: Vec<PathBuf>,
    /// Accept a package older than the last one imported from its server.
    #[serde(default)]
    pub allow_older: bool,
}

/// Answer of `POST /api/import`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ImportJson {
    /// The package's anchor.
    pub anchor: String,
    /// Its base, for an incremental.
    pub base_anchor: Option<String>,
    /// Signer fingerprint.
    pub signer: String,
    /// Revisions applied.
    pub revisions: usize,
    /// Files copied in this run.
    pub copied: usize,
    /// Files verified by an earlier run.
    pub resumed: usize,
    /// Payloads already cached.
    pub already_present: usize,
    /// Payloads newly published.
    pub published: usize,
}

fn api_err(e: TransferError) -> ApiError {
    match e {
        TransferError::Io { .. } | TransferError::Store(_) => ApiError::internal(e.to_string()),
        other => ApiError::bad(other.to_string()),
    }
}

/// `POST /api/export`.
pub async fn export(state: &Arc<AdminState>, req: ExportRequest) -> ApiResult<ExportJson> {
    let Ok(_guard) = state.maintenance.try_lock() else {
        return Err(ApiError::conflict(
            "another export, import, content verify, prefetch or cleanup is running",
        ));
    };
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let since = req
            .since
            .as_deref()
            .map(str::parse::<Anchor>)
            .transpose()
            .map_err(api_err)?;
        let volume_size = req
            .volume_size
            .as_deref()
            .map(crate::units::parse_size)
            .transpose()
            .map_err(|e| ApiError::bad(format!("volume_size: {e}")))?;
        let signing_key = req
            .sign
            .as_deref()
            .map(keys::read_private)
            .transpose()
            .map_err(api_err)?;
        let r = transfer::export(
            &s.store,
            &s.config.content_dir(),
            ExportOptions {
                out: req.out,
                since,
                approved_only: req.approved_only,
                volume_size,
                signing_key,
            },
        )
        .map_err(api_err)?;
        Ok(ExportJson {
            anchor: r.anchor.to_string(),
            revisions: r.revisions,
            payloads: r.payloads,
            payload_bytes: r.payload_bytes,
            not_cached: r.not_cached,
            outputs: r.outputs.iter().map(|p| p.display().to_string()).collect(),
            signer: r.signer,
            one_time_key: r.one_time_key,
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}

/// `POST /api/import`. Refused on a replica (its metadata and approvals come from upstream).
pub async fn import(state: &Arc<AdminState>, req: ImportRequest) -> ApiResult<ImportJson> {
    if state.is_replica() {
        return Err(ApiError::conflict(
            "this server syncs from an upstream; import into a server without upstream.url",
        ));
    }
    let Ok(_guard) = state.maintenance.try_lock() else {
        return Err(ApiError::conflict(
            "another export, import, content verify, prefetch or cleanup is running",
        ));
    };
    let s = state.clone();
    tokio::task::spawn_blocking(move || {
        let paths = if req.trust.is_empty() {
            &s.config.import.trusted_keys
        } else {
            &req.trust
        };
        let trust = paths
            .iter()
            .map(|p| keys::read_public(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(api_err)?;
        let r = transfer::import(
            &s.store,
            &s.config.content_dir(),
            &s.config.server.data_dir.join("import-staging"),
            &req.path,
            &ImportOptions {
                trust,
                allow_older: req.allow_older,
            },
        )
        .map_err(api_err)?;
        Ok(ImportJson {
            anchor: r.anchor,
            base_anchor: r.base_anchor,
            signer: r.signer,
            revisions: r.revisions,
            copied: r.copied,
            resumed: r.resumed,
            already_present: r.already_present,
            published: r.published,
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}
