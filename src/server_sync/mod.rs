//! The MS-WSUSSS server side this server offers to downstream servers (ServerSyncWebService
//! and DssAuthWebService): answers a downstream WSUS or wsus-edge from this server's own
//! store, so sites can chain (and so `simulate-upstream` is just `serve` over a generated
//! store). The server this server pulls from is [`crate::sync`]'s business; the simulated
//! one is [`crate::simulate`]'s. It owns the operations (GetAuthConfig, GetAuthorizationCookie, GetCookie,
//! GetConfigData, GetRevisionIdList, GetUpdateData, GetDeployments, DownloadFiles), the
//! cookies ([`cookie`]) and the anchors it hands out; not the HTTP plumbing (the router calls
//! [`ServerSyncService::handle`]) nor the content (`/Content/` is the cache's).
//!
//! # Anchors (Windows format, `nnnn,yyyy-MM-dd HH:mm:ss.fff`)
//! - GetRevisionIdList: the counter is the store's local-revision-id high-water mark at the
//!   time of the call. Revisions are immutable and every new revision gets a new, larger
//!   local id, so "changed since the anchor" is exactly "local id ≥ counter".
//! - GetDeployments: the counter numbers a snapshot of the deployment set (id → fingerprint)
//!   kept in the store's settings (`deployments`); the delta against the downstream's
//!   snapshot gives `Deployments` (new or changed) and `DeadDeployments` (gone). An unknown
//!   snapshot (too old) is answered as a first call.
//!
//! # Faults (as a WS2025 upstream writes them, HTTP 500)
//! Bad or expired cookie → `InvalidCookie`; bad authorization cookie →
//! `InvalidAuthorizationCookie`; protocol major ≠ 1 → `IncompatibleProtocolVersion`; more than
//! [`MAX_UPDATES_PER_REQUEST`] ids → `InvalidParameters` `updateIds`; a malformed anchor →
//! `InvalidParameters` `filter`; an unknown revision → `InternalServerError`; unknown digests
//! in DownloadFiles → `FileDigestsMissing` with the digests joined by `|`.

pub mod cookie;
mod deployments;
mod ops;
mod revisions;

pub mod service;

use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use crate::model::FileRecord;
use crate::store::{Store, StoreError};
use crate::wire::soap::{parse_envelope, Fault};
use crate::wire::sss::{self, action};
use crate::wire::{ErrorCode, WireError};
pub use cookie::{CookieJar, CookieProblem};

/// `MaxNumberOfUpdatesPerRequest` this upstream advertises and enforces (WSUS: 100).
pub const MAX_UPDATES_PER_REQUEST: usize = 100;
/// Largest GetUpdateData answer, bytes of blob text (Windows: 2,000,000, SS fn 37); at least
/// one update is always returned.
pub const MAX_RESPONSE_BYTES: usize = 2_000_000;

/// Called with the files a downstream asked for in DownloadFiles (e.g. to queue them in the
/// content cache). Must not block.
pub type DownloadHook = Arc<dyn Fn(Vec<FileRecord>) + Send + Sync>;

/// One SOAP answer: HTTP status and the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapReply {
    /// 200, or 500 for a fault.
    pub status: u16,
    /// The SOAP 1.1 envelope (`text/xml; charset=utf-8`).
    pub body: String,
}

impl SoapReply {
    fn ok(body: String) -> Self {
        Self { status: 200, body }
    }

    fn fault(f: &Fault) -> Self {
        Self {
            status: 500,
            body: f.to_envelope(),
        }
    }
}

/// The MS-WSUSSS server over a [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct ServerSyncService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    jar: CookieJar,
    cookie_ttl: time::Duration,
    advertised_url: Option<String>,
    started: OffsetDateTime,
    on_download: Option<DownloadHook>,
    /// `[sync] languages` (short names, lower case; empty = all): what GetConfigData enables
    /// while no upstream's table is known (autonomous mode, or before the first sync).
    languages: Vec<String>,
    /// Serializes deployment snapshots (numbering).
    snapshots: Mutex<()>,
}

/// A failed operation, before it becomes a fault.
pub(crate) struct OpError {
    code: ErrorCode,
    message: String,
}

impl OpError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    pub(crate) fn params(message: &str) -> Self {
        Self::new(ErrorCode::InvalidParameters, message)
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "server-sync service: store error");
        Self::new(ErrorCode::InternalServerError, "")
    }
}

impl From<WireError> for OpError {
    fn from(e: WireError) -> Self {
        tracing::error!(error = %e, "server-sync service: encoding error");
        Self::new(ErrorCode::InternalServerError, "")
    }
}

/// Knobs of the upstream service.
#[derive(Clone, Default)]
pub struct ServerSyncOptions {
    /// `server.advertised_url`: file URLs point there; else at the request's Host.
    pub advertised_url: Option<String>,
    /// Session cookie lifetime; `None` = 240 minutes, as Windows.
    pub cookie_ttl: Option<time::Duration>,
    /// Called with the files a DownloadFiles request names.
    pub on_download: Option<DownloadHook>,
    /// `[sync] languages`: enabled in GetConfigData while no upstream's table is known
    /// (autonomous mode); empty = all.
    pub languages: Vec<String>,
}

impl ServerSyncService {
    /// The service over `store`.
    pub fn new(store: Store, opts: ServerSyncOptions) -> Result<Self, StoreError> {
        let jar = CookieJar::for_store(&store)?;
        let started = OffsetDateTime::now_utc();
        for l in &opts.languages {
            if !ops::LANGUAGES
                .iter()
                .any(|(_, s, _)| s.eq_ignore_ascii_case(l.trim()))
            {
                tracing::warn!(language = %l, "sync.languages: not in the language table offered to downstream servers in autonomous mode; not advertised");
            }
        }
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                jar,
                cookie_ttl: opts.cookie_ttl.unwrap_or(cookie::DEFAULT_TTL),
                advertised_url: opts
                    .advertised_url
                    .map(|u| u.trim_end_matches('/').to_string()),
                started,
                on_download: opts.on_download,
                languages: opts
                    .languages
                    .iter()
                    .map(|l| l.trim().to_ascii_lowercase())
                    .collect(),
                snapshots: Mutex::new(()),
            }),
        })
    }

    /// The store it serves.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Answers one POST (`host` = the request's Host header, for file URLs). Store work runs
    /// on the blocking pool.
    pub async fn handle(&self, body: bytes::Bytes, host: Option<String>) -> SoapReply {
        let me = self.clone();
        match tokio::task::spawn_blocking(move || me.handle_blocking(&body, host.as_deref())).await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "server-sync service task failed");
                SoapReply::fault(&Fault::new(ErrorCode::InternalServerError, "", ""))
            }
        }
    }

    /// Answers one POST synchronously.
    pub fn handle_blocking(&self, body: &[u8], host: Option<&str>) -> SoapReply {
        let env = match parse_envelope(body) {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "server-sync service: not a SOAP request");
                return SoapReply::fault(&Fault::new(ErrorCode::InvalidParameters, "request", ""));
            }
        };
        let (ns, name) = env.operation();
        let (ns, name) = (ns.to_string(), name.to_string());
        let act = action_of(&ns, &name);
        let result = self.dispatch(&env, &ns, &name, host);
        match result {
            Ok(body) => SoapReply::ok(body),
            Err(e) => {
                tracing::info!(op = %name, code = %e.code, message = %e.message, "server-sync fault (to a downstream)");
                SoapReply::fault(&Fault::new(e.code, e.message, act))
            }
        }
    }

    fn dispatch(
        &self,
        env: &crate::wire::soap::Envelope,
        ns: &str,
        name: &str,
        host: Option<&str>,
    ) -> Result<String, OpError> {
        use crate::wire::soap::encode;
        let bad = |e: WireError| {
            tracing::debug!(error = %e, "server-sync service: bad request body");
            OpError::params(name)
        };
        Ok(match (ns, name) {
            (sss::NS, "GetAuthConfig") => {
                encode(&sss::GetAuthConfigResponse::wsus(self.inner.started))
            }
            (sss::DSS_AUTH_NS, "GetAuthorizationCookie") => {
                encode(&self.get_authorization_cookie(&env.decode().map_err(bad)?)?)
            }
            (sss::NS, "GetCookie") => encode(&self.get_cookie(&env.decode().map_err(bad)?)?),
            (sss::NS, "GetConfigData") => {
                encode(&self.get_config_data(&env.decode().map_err(bad)?)?)
            }
            (sss::NS, "GetRevisionIdList") => {
                encode(&self.get_revision_id_list(&env.decode().map_err(bad)?)?)
            }
            (sss::NS, "GetUpdateData") => {
                encode(&self.get_update_data(&env.decode().map_err(bad)?, host)?)
            }
            (sss::NS, "GetDeployments") => {
                encode(&self.get_deployments(&env.decode().map_err(bad)?)?)
            }
            (sss::NS, "DownloadFiles") => {
                encode(&self.download_files(&env.decode().map_err(bad)?)?)
            }
            _ => return Err(OpError::params("operation")),
        })
    }

    /// Base URL for file URLs: `server.advertised_url`, else `http://<Host>`.
    fn base_url(&self, host: Option<&str>) -> String {
        match (&self.inner.advertised_url, host) {
            (Some(u), _) => u.clone(),
            (None, Some(h)) => format!("http://{h}"),
            (None, None) => "http://localhost:8530".to_string(),
        }
    }
}

/// The SOAPAction of an operation (for the fault's `Method`).
fn action_of(ns: &str, name: &str) -> &'static str {
    match (ns, name) {
        (sss::DSS_AUTH_NS, _) => action::GET_AUTHORIZATION_COOKIE,
        (_, "GetAuthConfig") => action::GET_AUTH_CONFIG,
        (_, "GetCookie") => action::GET_COOKIE,
        (_, "GetConfigData") => action::GET_CONFIG_DATA,
        (_, "GetRevisionIdList") => action::GET_REVISION_ID_LIST,
        (_, "GetUpdateData") => action::GET_UPDATE_DATA,
        (_, "GetDeployments") => action::GET_DEPLOYMENTS,
        (_, "DownloadFiles") => action::DOWNLOAD_FILES,
        _ => "",
    }
}

#[cfg(test)]
mod tests;
