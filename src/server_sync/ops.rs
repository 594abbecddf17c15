//! The simple operations: authorization, cookies, configuration, update data, DownloadFiles.

use time::OffsetDateTime;
use uuid::Uuid;

use super::cookie::{CookieProblem, Kind};
use super::{OpError, ServerSyncService, MAX_RESPONSE_BYTES, MAX_UPDATES_PER_REQUEST};
use crate::wire::blob::UpdateBlob;
use crate::wire::sss::{
    AuthorizationCookie, Cookie, DownloadFiles, DownloadFilesResponse, GetAuthorizationCookie,
    GetAuthorizationCookieResponse, GetConfigData, GetConfigDataResponse, GetCookie,
    GetCookieResponse, GetUpdateData, GetUpdateDataResponse, LanguageData, ServerSyncUpdateData,
    ServerSyncUrlData, MAX_DOWNLOAD_FILES, PLUGIN_ID, PROTOCOL_VERSION,
};
use crate::wire::values::{format_base64, parse_guid};
use crate::wire::ErrorCode;

/// Languages advertised in GetConfigData (LCID, short, long) while no upstream's table is
/// known. `all` is long-named `all`, as WS2025 sends it (tests/fixtures/wsusss).
pub(super) const LANGUAGES: [(i32, &str, &str); 6] = [
    (0, "all", "all"),
    (1033, "en", "English"),
    (1031, "de", "German"),
    (1036, "fr", "French"),
    (1034, "es", "Spanish"),
    (1041, "ja", "Japanese"),
];

impl ServerSyncService {
    /// Checks a session cookie; returns the downstream's GUID.
    pub(super) fn check_cookie(&self, c: &Cookie) -> Result<Uuid, OpError> {
        let blob = c
            .encrypted_data
            .as_deref()
            .ok_or_else(|| OpError::new(ErrorCode::InvalidCookie, "cookie"))?;
        self.inner
            .jar
            .open(Kind::Session, blob, OffsetDateTime::now_utc())
            .map_err(|p| match p {
                CookieProblem::Expired => OpError::new(ErrorCode::InvalidCookie, "cookie expired"),
                CookieProblem::Invalid => OpError::new(ErrorCode::InvalidCookie, "cookie"),
            })
    }

    pub(super) fn get_authorization_cookie(
        &self,
        r: &GetAuthorizationCookie,
    ) -> Result<GetAuthorizationCookieResponse, OpError> {
        if r.account_name.trim().is_empty() {
            return Err(OpError::params("accountName"));
        }
        let dss = parse_guid("accountGuid", &r.account_guid)
            .map_err(|_| OpError::params("accountGuid"))?;
        tracing::info!(account = %r.account_name, %dss, "downstream server authorized");
        let exp = OffsetDateTime::now_utc() + super::cookie::AUTH_TTL;
        Ok(GetAuthorizationCookieResponse {
            cookie: AuthorizationCookie {
                plugin_id: PLUGIN_ID.to_string(),
                cookie_data: self.inner.jar.seal(Kind::Authorization, dss, exp),
            },
        })
    }

    pub(super) fn get_cookie(&self, r: &GetCookie) -> Result<GetCookieResponse, OpError> {
        let major = r.protocol_version.split('.').next().unwrap_or("");
        if major.trim() != "1" {
            return Err(OpError::new(
                ErrorCode::IncompatibleProtocolVersion,
                r.protocol_version.clone(),
            ));
        }
        let [auth] = r.auth_cookies.as_slice() else {
            return Err(OpError::params("authCookies"));
        };
        let now = OffsetDateTime::now_utc();
        let dss = self
            .inner
            .jar
            .open(Kind::Authorization, &auth.cookie_data, now)
            .map_err(|_| OpError::new(ErrorCode::InvalidAuthorizationCookie, "authCookies"))?;
        let exp = now + self.inner.cookie_ttl;
        Ok(GetCookieResponse {
            cookie: Cookie {
                expiration: exp,
                encrypted_data: Some(self.inner.jar.seal(Kind::Session, dss, exp)),
            },
        })
    }

    pub(super) fn get_config_data(
        &self,
        r: &GetConfigData,
    ) -> Result<GetConfigDataResponse, OpError> {
        self.check_cookie(&r.cookie)?;
        // A replica relays what its upstream said (languages, which of them are enabled, the
        // flags); a server that never synced (autonomous mode) advertises its own table with
        // the local `[sync] languages` enabled (none configured: all, and English).
        let st = self.inner.store.sync_state()?;
        let local = &self.inner.languages;
        let languages: Vec<LanguageData> = if st.language_table.is_empty() {
            LANGUAGES
                .iter()
                .map(|(id, s, l)| LanguageData {
                    id: *id,
                    short: s.to_string(),
                    long: l.to_string(),
                    enabled: if local.is_empty() {
                        *id == 0 || *id == 1033
                    } else {
                        local.iter().any(|c| c == s)
                    },
                })
                .collect()
        } else {
            st.language_table
                .iter()
                .map(|(id, short)| LanguageData {
                    id: *id,
                    short: short.clone(),
                    long: LANGUAGES
                        .iter()
                        .find(|l| l.0 == *id)
                        .map(|l| l.2.to_string())
                        .unwrap_or_else(|| short.clone()),
                    enabled: st.languages.iter().any(|e| e.eq_ignore_ascii_case(short)),
                })
                .collect()
        };
        let flags = st.upstream_flags.unwrap_or(crate::store::UpstreamFlags {
            catalog_only_sync: false,
            lazy_sync: true,
            server_hosts_psf_files: false,
        });
        // The anchor names this configuration: unchanged → the language list is omitted (as
        // WS2025 does); a relayed change gives a new anchor and the list again.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for l in &languages {
            for b in format!("{}{}{}", l.id, l.short, l.enabled).bytes() {
                h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        for b in [
            flags.catalog_only_sync,
            flags.lazy_sync,
            flags.server_hosts_psf_files,
        ] {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        let anchor = crate::wire::Anchor::new((h % 1_000_000_000) as u32 + 1, self.inner.started)
            .to_string();
        let languages = if r.config_anchor.as_deref() == Some(anchor.as_str()) {
            Vec::new()
        } else {
            languages
        };
        Ok(GetConfigDataResponse {
            catalog_only_sync: flags.catalog_only_sync,
            lazy_sync: flags.lazy_sync,
            server_hosts_psf_files: flags.server_hosts_psf_files,
            max_updates_per_request: MAX_UPDATES_PER_REQUEST as i32,
            max_driver_sets_per_request: 0,
            max_computer_ids_in_request: 0,
            max_pnp_hardware_ids_in_request: 0,
            new_config_anchor: Some(anchor),
            protocol_version: Some(PROTOCOL_VERSION.to_string()),
            languages,
            max_updates_per_decryption_request: 100,
        })
    }

    pub(super) fn get_update_data(
        &self,
        r: &GetUpdateData,
        host: Option<&str>,
    ) -> Result<GetUpdateDataResponse, OpError> {
        self.check_cookie(&r.cookie)?;
        if r.update_ids.len() > MAX_UPDATES_PER_REQUEST {
            return Err(OpError::params("updateIds"));
        }
        let store = &self.inner.store;
        let base = self.base_url(host);
        let mut updates = Vec::with_capacity(r.update_ids.len());
        let mut file_urls: Vec<ServerSyncUrlData> = Vec::new();
        let mut seen_files = std::collections::HashSet::new();
        let mut bytes = 0usize;
        for key in &r.update_ids {
            let unknown = || {
                tracing::info!(%key, "GetUpdateData: unknown revision");
                OpError::new(ErrorCode::InternalServerError, "")
            };
            let row = store.revision(key)?.ok_or_else(unknown)?;
            let blob = match store.compressed_blob(key)? {
                Some(b64) => UpdateBlob::Compressed(b64),
                None => {
                    let xml = store.revision_xml(key)?.ok_or_else(unknown)?;
                    let blob = UpdateBlob::from_xml(&xml)?;
                    if let UpdateBlob::Compressed(b64) = &blob {
                        // Building it is the costly part of an answer: keep it.
                        if let Err(e) = store.put_compressed_blob(key, &xml, b64) {
                            tracing::debug!(%key, error = %e, "GetUpdateData: blob not cached");
                        }
                    }
                    blob
                }
            };
            let size = match &blob {
                UpdateBlob::Plain(s) | UpdateBlob::Compressed(s) => s.len(),
            } + 64 * row.record.files.len()
                + 200;
            if !updates.is_empty() && bytes + size > MAX_RESPONSE_BYTES {
                // Windows caps the answer; the downstream re-asks for the rest.
                break;
            }
            bytes += size;
            let files = &row.record.files;
            for f in files {
                if seen_files.insert(f.sha1) {
                    // MUUrl is where Microsoft Update serves the file: relayed as received;
                    // only a file that came with none (a simulated or imported catalog) gets
                    // this server's own content URL.
                    let mu_url = match &f.upstream_url {
                        Some(u) => u.clone(),
                        None => format!("{base}/{}", f.content_path()),
                    };
                    file_urls.push(ServerSyncUrlData {
                        file_digest: f.sha1,
                        mu_url: Some(mu_url),
                        uss_url: None,
                    });
                }
            }
            updates.push(ServerSyncUpdateData {
                id: *key,
                blob,
                file_digests: (!files.is_empty()).then(|| files.iter().map(|f| f.sha1).collect()),
            });
        }
        Ok(GetUpdateDataResponse { updates, file_urls })
    }

    pub(super) fn download_files(
        &self,
        r: &DownloadFiles,
    ) -> Result<DownloadFilesResponse, OpError> {
        self.check_cookie(&r.cookie)?;
        if r.file_digests.len() > MAX_DOWNLOAD_FILES {
            return Err(OpError::params("fileDigestList"));
        }
        let mut known = Vec::new();
        let mut missing = Vec::new();
        for d in &r.file_digests {
            match self.inner.store.expected_file(d)? {
                Some(f) => known.push(f),
                None => missing.push(format_base64(d)),
            }
        }
        if !missing.is_empty() {
            return Err(OpError::new(
                ErrorCode::FileDigestsMissing,
                missing.join("|"),
            ));
        }
        if let Some(hook) = &self.inner.on_download {
            hook(known);
        }
        Ok(DownloadFilesResponse)
    }
}
