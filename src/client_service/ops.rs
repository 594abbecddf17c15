//! GetConfig, SimpleAuth GetAuthorizationCookie, GetCookie, RegisterComputer and
//! ReportEventBatch.

use time::OffsetDateTime;

use super::limits::{self, Refusal};
use super::{Claims, ClientService, CookieKind, OpError, Reply, Request};
use crate::store::{Computer, ReportedEvent};
use crate::wire::soap::{Envelope, ErrorCode};
use crate::wire::wusp::{self, AuthPlugInInfo, AuthorizationCookie, Config};

impl ClientService {
    pub(super) fn get_config(&self, env: &Envelope) -> Result<Reply, OpError> {
        let _req: wusp::GetConfig = env.decode()?;
        let props = [
            (
                "MaxExtendedUpdatesPerRequest",
                wusp::MAX_EXTENDED_UPDATES_PER_REQUEST.to_string(),
            ),
            ("PackageServerShare", String::new()),
            ("ProtocolVersion", wusp::PROTOCOL_VERSION.to_string()),
            ("IsInventoryRequired", "0".to_string()),
            ("ClientReportingLevel", "2".to_string()),
        ];
        Ok(Reply::ok(&wusp::GetConfigResponse {
            result: Config {
                last_change: self.config_change,
                is_registration_required: true,
                auth_info: vec![AuthPlugInInfo {
                    plugin_id: wusp::PLUGIN_ID.into(),
                    service_url: wusp::SIMPLE_AUTH_SERVICE_URL.into(),
                    parameter: String::new(),
                }],
                allowed_event_ids: None,
                properties: props.into_iter().map(|(n, v)| (n.to_string(), v)).collect(),
            },
        }))
    }

    pub(super) fn get_authorization_cookie(
        &self,
        env: &Envelope,
        http: &Request<'_>,
    ) -> Result<Reply, OpError> {
        let req: wusp::GetAuthorizationCookie = env.decode()?;
        let id = req.client_id.trim();
        if id.is_empty() || id.len() > super::cookie::MAX_CLIENT_ID {
            return Err(OpError::Fault(
                ErrorCode::InvalidParameters,
                "clientId".into(),
            ));
        }
        if let Some(g) = &req.target_group_name {
            limits::check_target_groups(g)
                .map_err(|m| OpError::Fault(ErrorCode::InvalidParameters, m))?;
        }
        let now = Self::now_unix();
        let claims = Claims {
            kind: CookieKind::Authorization,
            server_id: self.server_id,
            epoch: self.store.revision_epoch()?,
            issued: now,
            expires: now + self.opts.auth_cookie_ttl.as_secs() as i64,
            watermark: 0,
            client_id: id.to_string(),
            target_groups: req.target_group_name.clone().unwrap_or_default(),
        };
        // The spec says the server SHOULD keep the client and its requested group.
        let requested = split_groups(&claims.target_groups);
        let mut c = match self.store.computer(id)? {
            Some(c) => c,
            None => {
                self.admit_new(http)?;
                Computer {
                    id: id.to_string(),
                    registered_unix: now,
                    ..Computer::default()
                }
            }
        };
        if !req.dns_name.is_empty() {
            c.name = limits::cut(&req.dns_name, limits::MAX_DNS_NAME);
        }
        c.requested_groups = requested;
        self.store.upsert_computer(&c)?;
        Ok(Reply::ok(&wusp::GetAuthorizationCookieResponse {
            result: AuthorizationCookie {
                plugin_id: wusp::PLUGIN_ID.into(),
                cookie_data: self.key.seal(&claims),
            },
        }))
    }

    pub(super) fn get_cookie(&self, env: &Envelope) -> Result<Reply, OpError> {
        let req: wusp::GetCookie = env.decode()?;
        let auth = req
            .auth_cookies
            .iter()
            .find(|a| a.plugin_id.eq_ignore_ascii_case(wusp::PLUGIN_ID))
            .ok_or(OpError::Fault(
                ErrorCode::InvalidAuthorizationCookie,
                "no SimpleTargeting cookie".into(),
            ))?;
        // The authorization cookie is not tied to the revision epoch: a client that got
        // ServerChanged re-authenticates with whatever it holds.
        let claims = self.key.open(
            &auth.cookie_data,
            CookieKind::Authorization,
            self.server_id,
            None,
            Self::now_unix(),
        );
        let claims = match claims {
            Ok(c) => c,
            Err(super::CookieError::Expired) => {
                return Err(OpError::Fault(
                    ErrorCode::CookieExpired,
                    "authCookies".into(),
                ))
            }
            Err(_) => {
                return Err(OpError::Fault(
                    ErrorCode::InvalidAuthorizationCookie,
                    "authCookies".into(),
                ))
            }
        };
        // Renewal: what the client holds stays known through an old session cookie of ours
        // for the same client (expired ones included: that is what renewal is for). Anything
        // else (none, the native agent's first `oldCookie` with only `Expiration`, forged,
        // another client, another revision-id epoch) means watermark 0: assume nothing, so
        // the next SyncUpdates sends every cached update as changed.
        let watermark = req
            .old_cookie
            .as_ref()
            .and_then(|c| c.encrypted_data.as_deref())
            .and_then(|data| {
                let epoch = self.store.revision_epoch().ok()?;
                let old = self
                    .key
                    .open(
                        data,
                        CookieKind::Session,
                        self.server_id,
                        Some(epoch),
                        i64::MIN,
                    )
                    .ok()?;
                (old.client_id == claims.client_id).then_some(old.watermark)
            })
            .unwrap_or(0);
        let cookie = self.issue_session(Claims {
            watermark,
            ..claims
        })?;
        Ok(Reply::ok(&wusp::GetCookieResponse { result: cookie }))
    }

    pub(super) fn register_computer(
        &self,
        env: &Envelope,
        http: &Request<'_>,
    ) -> Result<Reply, OpError> {
        let req: wusp::RegisterComputer = env.decode()?;
        let claims = self.session(&req.cookie)?;
        let now = Self::now_unix();
        let info = &req.computer_info;
        let mut c = match self.store.computer(&claims.client_id)? {
            Some(c) => c,
            None => {
                self.admit_new(http)?;
                Computer {
                    id: claims.client_id.clone(),
                    registered_unix: now,
                    ..Computer::default()
                }
            }
        };
        if !info.dns_name.is_empty() {
            c.name = limits::cut(&info.dns_name, limits::MAX_DNS_NAME);
        }
        c.os_version = info
            .os_version()
            .map(|v| limits::cut(&v, limits::MAX_VERSION));
        c.client_version = info
            .client_version_string()
            .map(|v| limits::cut(&v, limits::MAX_VERSION));
        c.requested_groups = split_groups(&claims.target_groups);
        self.store.upsert_computer(&c)?;
        tracing::debug!(client = %c.id, name = %c.name, "computer registered");
        Ok(Reply::ok(&wusp::RegisterComputerResponse))
    }

    pub(super) fn report_event_batch(
        &self,
        env: &Envelope,
        http: &Request<'_>,
    ) -> Result<Reply, OpError> {
        let req: wusp::ReportEventBatch = env.decode()?;
        let claims = self.session(&req.cookie)?;
        if req.events.len() > limits::MAX_EVENTS_PER_BATCH {
            return Err(OpError::Fault(
                ErrorCode::InvalidParameters,
                format!("more than {} events", limits::MAX_EVENTS_PER_BATCH),
            ));
        }
        let lim = self.registrations.config();
        let oldest = OffsetDateTime::now_utc().unix_timestamp()
            - i64::try_from(lim.event_retention.as_secs()).unwrap_or(i64::MAX);
        let events: Vec<ReportedEvent> = req
            .events
            .iter()
            // Events already past the retention are not kept (pruning would drop them).
            .filter(|e| e.time_at_target.unix_timestamp() >= oldest)
            .map(|e| ReportedEvent {
                instance_id: e.instance_id,
                update: (!e.update.update_id.is_nil()).then_some(e.update),
                event_id: u32::try_from(e.event_id).unwrap_or(0),
                hresult: e.hresult,
                time_unix: e.time_at_target.unix_timestamp(),
                misc: limits::cut_misc(&e.misc_data),
            })
            .collect();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if self.store.computer(&claims.client_id)?.is_none() {
            self.admit_new(http)?;
            self.store.upsert_computer(&Computer {
                id: claims.client_id.clone(),
                registered_unix: now,
                ..Computer::default()
            })?;
        }
        let new = self.store.add_events(&claims.client_id, &events, now)?;
        let dropped = self.store.trim_events(
            &claims.client_id,
            lim.max_events_per_computer,
            lim.max_event_bytes_per_computer,
        )?;
        tracing::debug!(client = %claims.client_id, events = events.len(), new, dropped, "events stored");
        Ok(Reply::ok(&wusp::ReportEventBatchResponse { result: true }))
    }
}

impl ClientService {
    /// Admits one new computer from `http`'s address, or refuses it (`ServerBusy`: the
    /// agent backs off and retries).
    fn admit_new(&self, http: &Request<'_>) -> Result<(), OpError> {
        let now = std::time::Instant::now();
        // Counting the computers walks the whole tree (sled keeps no count): a thousand agents
        // registering at once made registration quadratic. The count is kept here, counted
        // again every `refresh_every` and whenever it says the server is full, so a refusal
        // always rests on a fresh count (computers removed meanwhile only make it high).
        let mut known = self
            .known_computers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let fresh = known.filter(|(n, at)| {
            now.duration_since(*at) < self.opts.refresh_every
                && *n < self.registrations.config().max_computers
        });
        let (count, at) = match fresh {
            Some(k) => k,
            None => (self.store.computer_count()?, now),
        };
        *known = Some((count, at));
        match self.registrations.admit(http.peer, count, now) {
            Ok(()) => {
                *known = Some((count + 1, at));
                Ok(())
            }
            Err(Refusal::Full) => Err(OpError::Fault(
                ErrorCode::ServerBusy,
                "clients.max_computers reached".into(),
            )),
            Err(Refusal::TooFast) => Err(OpError::Fault(
                ErrorCode::ServerBusy,
                "clients.registrations_per_minute reached for this address".into(),
            )),
        }
    }
}

/// Splits a client-side target group string (`A;B`) into names.
pub(crate) fn split_groups(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}
