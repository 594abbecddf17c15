//! The MS-WUSP services Windows Update Agent talks to: SimpleAuth
//! (`/SimpleAuthWebService/SimpleAuth.asmx`), the client web service
//! (`/ClientWebService/client.asmx`) and reporting
//! (`/ReportingWebService/ReportingWebService.asmx`), answered from the store.
//!
//! [`ClientService::handle`] is transport-free: it takes the endpoint, the SOAPAction, the Host
//! and the body, and returns a status and a SOAP body; the HTTP layer (or a test) wraps it.
//! Bad input never panics: malformed XML or a non-SOAP body → HTTP 400; an unknown operation,
//! a SOAPAction that does not match the body, bad parameters → a `soap:Client` fault
//! (`InvalidParameters`); a forged cookie → `InvalidCookie`, an expired one → `CookieExpired`,
//! one from before a revision-id epoch change → `ServerChanged`; a store failure →
//! `InternalServerError`. Each bad request is logged once (warn).
//!
//! | file | owns |
//! |---|---|
//! | [`cookie`] | HMAC-signed authorization and session cookies |
//! | [`scan_index`] | the in-memory scan index and approval resolution |
//! | [`needed`] | scope, needed set and each update's client action |
//! | `changes.rs` | change stamps behind `ChangedUpdates` |
//! | [`drivers`] | driver-pass matching of approved drivers to `SystemSpec` devices |
//! | `ops.rs` | GetConfig, GetAuthorizationCookie, GetCookie, RegisterComputer, ReportEventBatch |
//! | `scan.rs` | StartCategoryScan, SyncUpdates, RefreshCache, GetExtendedUpdateInfo, GetFileLocations |
//! | [`shed`] | per-address budgets of Reporting bytes, checked before a body is read |
//! | [`http`] | the router adapter ([`crate::http::SoapService`]) for the three endpoints |

mod changes;
pub mod cookie;
pub mod drivers;
pub mod http;
pub mod limits;
pub mod needed;
mod ops;
mod scan;
pub mod scan_index;
pub mod shed;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

pub use cookie::{Claims, CookieError, CookieKey, CookieKind};
pub use scan_index::ScanIndex;

use crate::store::{Store, StoreError};
use crate::wire::soap::{self, ErrorCode, Fault, SoapBody};
use crate::wire::wusp::{self, Cookie};
use crate::wire::xml::Limits;
use crate::wire::WireError;

/// Which client-facing endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/SimpleAuthWebService/SimpleAuth.asmx`.
    SimpleAuth,
    /// `/ClientWebService/client.asmx`.
    Client,
    /// `/ReportingWebService/ReportingWebService.asmx`.
    Reporting,
}

impl Endpoint {
    /// The endpoint for a request path (case-insensitive), if it is one of ours.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let p = path.to_ascii_lowercase();
        if p == wusp::SIMPLE_AUTH_PATH.to_ascii_lowercase() {
            Some(Self::SimpleAuth)
        } else if p == wusp::CLIENT_PATH.to_ascii_lowercase() {
            Some(Self::Client)
        } else if p == wusp::REPORTING_PATH.to_ascii_lowercase()
            || p == "/reportingwebservice/webservice.asmx"
        {
            Some(Self::Reporting)
        } else {
            None
        }
    }

    fn namespace(self) -> &'static str {
        match self {
            Self::SimpleAuth => wusp::SIMPLE_AUTH_NS,
            Self::Client => wusp::CLIENT_NS,
            Self::Reporting => wusp::REPORTING_NS,
        }
    }
}

/// One request, transport-free.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The SOAPAction header without quotes, if sent.
    pub soap_action: Option<&'a str>,
    /// The Host header, if sent (for content URLs when no advertised URL is configured).
    pub host: Option<&'a str>,
    /// Whether the request came over TLS.
    pub tls: bool,
    /// The body.
    pub body: &'a [u8],
    /// The client's address (registration rates are counted per address).
    pub peer: Option<std::net::IpAddr>,
}

/// The answer: an HTTP status and a body (`text/xml; charset=utf-8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: String,
}

impl Reply {
    fn ok<T: SoapBody>(b: &T) -> Self {
        Self {
            status: 200,
            body: soap::encode(b),
        }
    }
    fn fault(f: &Fault) -> Self {
        Self {
            status: 500,
            body: f.to_envelope(),
        }
    }
}

/// Options of the client service.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base URL for `/Content/` (e.g. `http://edge:8530`); `None` = from the request's Host.
    pub advertised_url: Option<String>,
    /// The plain-HTTP client port content URLs name for TLS clients (`None`: the scheme's
    /// default).
    pub content_port: Option<u16>,
    /// Session cookie lifetime (WS2025: one hour).
    pub cookie_ttl: Duration,
    /// Authorization cookie lifetime.
    pub auth_cookie_ttl: Duration,
    /// SyncUpdates page size.
    pub page_size: usize,
    /// How often the store is checked for changes (the index is rebuilt when it changed).
    pub refresh_every: Duration,
    /// What one client may make the server keep (`[clients]`).
    pub clients: crate::config::ClientsConfig,
    /// As an upstream, ask downstream servers for computers and per-update status
    /// (`DoDetailedRollup`, `[rollup] accept_detailed`).
    pub accept_detailed_rollup: bool,
    /// As an upstream, the largest `RollupComputerStatus` body read (`[rollup]
    /// max_request_body`; the HTTP layer asks [`http::SoapEndpoint`]).
    pub rollup_max_body: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            advertised_url: None,
            content_port: None,
            cookie_ttl: Duration::from_secs(3600),
            auth_cookie_ttl: Duration::from_secs(3600),
            page_size: wusp::PAGE_SIZE,
            refresh_every: Duration::from_secs(2),
            clients: crate::config::ClientsConfig::default(),
            accept_detailed_rollup: true,
            rollup_max_body: 64 << 20,
        }
    }
}

/// Requests answered at once: two per core (a store read may wait on the disk), at least 4.
fn handlers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 2)
        .unwrap_or(4)
        .max(4)
}

/// An error inside an operation, turned into a fault by [`ClientService::handle`].
#[derive(Debug)]
pub(crate) enum OpError {
    Fault(ErrorCode, String),
    Store(StoreError),
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<WireError> for OpError {
    fn from(e: WireError) -> Self {
        Self::Fault(ErrorCode::InvalidParameters, e.to_string())
    }
}

impl From<CookieError> for OpError {
    fn from(e: CookieError) -> Self {
        let code = match e {
            CookieError::Invalid => ErrorCode::InvalidCookie,
            CookieError::Expired => ErrorCode::CookieExpired,
            CookieError::EpochChanged => ErrorCode::ServerChanged,
        };
        Self::Fault(code, e.to_string())
    }
}

struct Cached {
    index: Arc<ScanIndex>,
    checked: Instant,
}

/// Largest SyncUpdates body [`ClientService::handle_now`] answers on the connection's task.
/// A real agent's page lists its cached ids: about 40 KB late in a 20,000-update scan. A
/// larger body (a hostile one can be 4 MiB and take tens of milliseconds to decode) goes
/// through the fair gate to the blocking pool, so it never holds a runtime thread that other
/// connections (content hits among them) are waiting for.
const ON_TASK_MAX_BODY: usize = 256 << 10;

/// The three client-facing SOAP services over one store.
pub struct ClientService {
    store: Store,
    key: CookieKey,
    /// Per-address budgets of Reporting body bytes, checked before a body is read.
    shed: shed::Shedder,
    opts: Options,
    server_id: uuid::Uuid,
    config_change: OffsetDateTime,
    /// Unix milliseconds at start: the change stamp of everything in the first index.
    started_ms: i64,
    index: Mutex<Option<Cached>>,
    /// The newest index built (kept across [`ClientService::invalidate`], so change stamps
    /// carry over).
    last: Mutex<Option<Arc<ScanIndex>>>,
    /// Held by the one thread checking or rebuilding the index.
    build: Mutex<()>,
    limits: Limits,
    /// The limits a `RollupComputerStatus` is decoded with (as large as `rollup_max_body`
    /// allows; only the streaming decoder, which builds no tree, reads one that large).
    rollup_limits: Limits,
    registrations: limits::Registrations,
    /// Computers known (counted, plus those admitted since) and when they were counted: see
    /// `admit_new`.
    known_computers: Mutex<Option<(usize, Instant)>>,
    /// Requests answered at once on the blocking pool (see [`ClientService::gate`]).
    gate: Arc<tokio::sync::Semaphore>,
}

impl ClientService {
    /// A service over `store`, signing cookies with `key`.
    pub fn new(store: Store, key: CookieKey, opts: Options) -> Result<Self, StoreError> {
        let rollup_limits = {
            let max = usize::try_from(opts.rollup_max_body)
                .unwrap_or(usize::MAX)
                .max(16 << 20);
            // A status is at least ~100 bytes of seven elements.
            Limits {
                max_depth: 32,
                max_elements: max / 8,
                max_text: max,
                max_input: max,
                ..Limits::default()
            }
        };
        let server_id = store.server_id()?;
        let now = OffsetDateTime::now_utc();
        Ok(Self {
            store,
            key,
            shed: shed::Shedder::new(&opts.clients),
            registrations: limits::Registrations::new(opts.clients.clone()),
            known_computers: Mutex::new(None),
            opts,
            server_id,
            config_change: now.replace_nanosecond(0).unwrap_or(now),
            started_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64,
            index: Mutex::new(None),
            last: Mutex::new(None),
            build: Mutex::new(()),
            gate: Arc::new(tokio::sync::Semaphore::new(handlers())),
            limits: Limits {
                max_depth: 32,
                max_elements: 200_000,
                max_text: 1 << 20,
                max_input: 16 << 20,
                ..Limits::default()
            },
            rollup_limits,
        })
    }

    /// Admission to answering: the HTTP adapter holds a permit while a request runs on the
    /// blocking pool. Answers are CPU work of well under a millisecond, so a few at once keep
    /// the cores busy; the rest wait in arrival order (the semaphore is fair) instead of each
    /// taking a blocking-pool thread, where a thousand clients starting together became
    /// hundreds of threads sharing two cores, and every answer waited for all of them.
    pub fn gate(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.gate
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Forgets the scan index so the next request rebuilds it (call after changing approvals,
    /// declines or revisions when an immediate effect is wanted).
    pub fn invalidate(&self) {
        *self.index.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The current scan index: rebuilt when absent or when the store changed (checked at most
    /// every `refresh_every`, by one thread while the others keep answering from the current
    /// index). Blocking (store reads).
    pub fn index(&self) -> Result<Arc<ScanIndex>, StoreError> {
        let current = {
            let g = self.index.lock().unwrap_or_else(|p| p.into_inner());
            g.as_ref().map(|c| {
                (
                    c.index.clone(),
                    c.checked.elapsed() < self.opts.refresh_every,
                )
            })
        };
        let _build = match (&current, self.build.try_lock()) {
            (Some((idx, true)), _) => return Ok(idx.clone()),
            (Some((idx, false)), Err(_)) => return Ok(idx.clone()),
            (_, Ok(b)) => b,
            (None, Err(_)) => self.build.lock().unwrap_or_else(|p| p.into_inner()),
        };
        // Another thread may have finished a build while this one waited.
        if let Some(c) = self
            .index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            if c.checked.elapsed() < self.opts.refresh_every {
                return Ok(c.index.clone());
            }
        }
        let fp = scan_index::fingerprint(&self.store)?;
        let idx = match current {
            Some((idx, _)) if idx.fingerprint == fp => idx,
            prev => {
                let started = Instant::now();
                let prev = prev
                    .map(|(p, _)| p)
                    .or_else(|| self.last.lock().unwrap_or_else(|p| p.into_inner()).clone());
                let idx = Arc::new(ScanIndex::build(
                    &self.store,
                    prev.as_deref(),
                    self.started_ms,
                )?);
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(idx.clone());
                tracing::info!(
                    updates = idx.entries.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "client scan index built"
                );
                idx
            }
        };
        *self.index.lock().unwrap_or_else(|p| p.into_inner()) = Some(Cached {
            index: idx.clone(),
            checked: Instant::now(),
        });
        Ok(idx)
    }

    /// The current index when it is due no check against the store yet (see
    /// [`ClientService::index`]); `None` when the next `index()` would read the store.
    fn current_index(&self) -> Option<Arc<ScanIndex>> {
        self.index
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|c| c.checked.elapsed() < self.opts.refresh_every)
            .map(|c| c.index.clone())
    }

    /// Answers `req` here and now when it is a plain-shaped SyncUpdates and the scan index is
    /// current: then the answer is CPU work over memory (the index, its memos, cookie
    /// sealing, sled reads from its cache; the one write is the sync time at a walk's end),
    /// well under a millisecond, and the HTTP adapter runs it on its own thread instead of
    /// handing it to the blocking pool, whose hand-off cost as much as a tenth of the answer.
    /// `None`: anything else, or an index due a check or rebuild; use
    /// [`ClientService::handle`] on the blocking pool.
    pub fn handle_now(&self, req: &Request<'_>) -> Option<Reply> {
        if req.endpoint != Endpoint::Client
            || req.soap_action != Some(wusp::action::SYNC_UPDATES)
            || req.body.len() > ON_TASK_MAX_BODY
        {
            return None;
        }
        let idx = self.current_index()?;
        let r = wusp::sync_updates_stream::decode_sync_updates(req.body, &self.limits)?;
        let answer = self.sync_updates(r, &idx);
        Some(Self::reply(
            "SyncUpdates",
            wusp::action::SYNC_UPDATES,
            answer,
        ))
    }

    /// Answers one request (blocking: call from `spawn_blocking` in async code).
    pub fn handle(&self, req: &Request<'_>) -> Reply {
        // The hot request skips the tree when it has the plain shape (see `sync_updates_stream`);
        // anything else, including every error, goes the general way below.
        if req.endpoint == Endpoint::Client && req.soap_action == Some(wusp::action::SYNC_UPDATES) {
            if let Some(r) = wusp::sync_updates_stream::decode_sync_updates(req.body, &self.limits)
            {
                let answer = self
                    .index()
                    .map_err(OpError::from)
                    .and_then(|idx| self.sync_updates(r, &idx));
                return Self::reply("SyncUpdates", wusp::action::SYNC_UPDATES, answer);
            }
        }
        // A downstream server's status rollup (gigabytes in all) skips the tree the same way.
        if req.endpoint == Endpoint::Reporting
            && req.soap_action == Some(crate::wire::sss::rollup::action::ROLLUP_COMPUTER_STATUS)
        {
            if let Some(r) = crate::wire::sss::rollup_stream::decode_rollup_computer_status(
                req.body,
                &self.rollup_limits,
            ) {
                let (status, body) = crate::rollup::uss::handle_computer_status(
                    &self.store,
                    r,
                    self.opts.accept_detailed_rollup,
                );
                return Reply { status, body };
            }
            // Larger than the general decoder reads: only the plain shape is read this large,
            // and this is not it (or not a well-formed request at all).
            if req.body.len() > self.limits.max_input {
                tracing::warn!(
                    bytes = req.body.len(),
                    "RollupComputerStatus over the general decoder's limit is not in the plain shape"
                );
                return Reply::fault(&Fault::new(
                    ErrorCode::InvalidParameters,
                    format!(
                        "a RollupComputerStatus over {} bytes is read only in the plain shape (each field once, text-only fields); this one is not, or is not well-formed",
                        self.limits.max_input
                    ),
                    crate::wire::sss::rollup::action::ROLLUP_COMPUTER_STATUS,
                ));
            }
        }
        let env = match soap::parse_envelope_with(req.body, &self.limits) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(endpoint = ?req.endpoint, error = %e, "malformed SOAP request");
                return Reply {
                    status: 400,
                    body: format!("malformed SOAP request: {e}"),
                };
            }
        };
        // Reporting rollup from downstream servers shares the Reporting endpoint.
        if req.endpoint == Endpoint::Reporting {
            if let Some((status, body)) =
                crate::rollup::uss::handle(&self.store, &env, self.opts.accept_detailed_rollup)
            {
                return Reply { status, body };
            }
        }
        let (ns, name) = env.operation();
        let action = match wusp::action_for(ns, name) {
            Some(a) if ns == req.endpoint.namespace() => a,
            _ => {
                tracing::warn!(endpoint = ?req.endpoint, op = name, "unknown SOAP operation");
                let act = req.soap_action.unwrap_or("");
                return Reply::fault(&Fault::new(
                    ErrorCode::InvalidParameters,
                    format!("unknown operation {name}"),
                    act,
                ));
            }
        };
        if let Some(sa) = req.soap_action {
            if !sa.is_empty() && sa != action {
                tracing::warn!(
                    soap_action = sa,
                    op = name,
                    "SOAPAction does not match the body"
                );
                return Reply::fault(&Fault::new(ErrorCode::InvalidParameters, "SOAPAction", sa));
            }
        }
        let r = match name {
            "GetConfig" => self.get_config(&env),
            "GetAuthorizationCookie" => self.get_authorization_cookie(&env, req),
            "GetCookie" => self.get_cookie(&env),
            "RegisterComputer" => self.register_computer(&env, req),
            "StartCategoryScan" => self.start_category_scan(&env),
            "SyncUpdates" => env.decode().map_err(OpError::from).and_then(|r| {
                let idx = self.index()?;
                self.sync_updates(r, &idx)
            }),
            "RefreshCache" => self.refresh_cache(&env),
            "GetExtendedUpdateInfo" => self.get_extended_update_info(&env, req),
            "GetFileLocations" => self.get_file_locations(&env, req),
            "ReportEventBatch" => self.report_event_batch(&env, req),
            _ => Err(OpError::Fault(ErrorCode::InvalidParameters, name.into())),
        };
        Self::reply(name, action, r)
    }

    /// The reply to operation `name`, or its fault.
    fn reply(name: &str, action: &str, r: Result<Reply, OpError>) -> Reply {
        match r {
            Ok(reply) => reply,
            Err(OpError::Fault(code, msg)) => {
                tracing::warn!(op = name, code = %code, msg, "client request refused");
                Reply::fault(&Fault::new(code, msg, action))
            }
            Err(OpError::Store(e)) => {
                tracing::error!(op = name, error = %e, "store error answering client");
                Reply::fault(&Fault::new(ErrorCode::InternalServerError, "", action))
            }
        }
    }

    fn now_unix() -> i64 {
        OffsetDateTime::now_utc().unix_timestamp()
    }

    /// Opens a session cookie.
    pub(crate) fn session(&self, c: &Cookie) -> Result<Claims, OpError> {
        let data = c.encrypted_data.as_deref().ok_or(OpError::Fault(
            ErrorCode::InvalidCookie,
            "no cookie data".into(),
        ))?;
        let epoch = self.store.revision_epoch()?;
        Ok(self.key.open(
            data,
            CookieKind::Session,
            self.server_id,
            Some(epoch),
            Self::now_unix(),
        )?)
    }

    /// Seals a session cookie for `claims` (kind, server, epoch, times filled in here).
    pub(crate) fn issue_session(&self, mut claims: Claims) -> Result<Cookie, OpError> {
        let now = Self::now_unix();
        claims.kind = CookieKind::Session;
        claims.server_id = self.server_id;
        claims.epoch = self.store.revision_epoch()?;
        claims.issued = now;
        claims.expires = now + self.opts.cookie_ttl.as_secs() as i64;
        let exp = OffsetDateTime::from_unix_timestamp(claims.expires)
            .map_err(|_| OpError::Fault(ErrorCode::InternalServerError, "time".into()))?;
        Ok(Cookie {
            expiration: exp,
            encrypted_data: Some(self.key.seal(&claims)),
        })
    }
}
