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

/// Languages advertised in GetConfigData (LCID, short, long).
const LANGUAGES: [(i32, &str, &str); 6] = [
    (0, "all", "All Languages"),
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
        // The configuration never changes: with an anchor, the language list is omitted.
        let languages = if r.config_anchor.is_some() {
            Vec::new()
        } else {
            LANGUAGES
                .iter()
                .map(|(id, s, l)| LanguageData {
                    id: *id,
                    short: s.to_string(),
                    long: l.to_string(),
                    enabled: *id == 0 || *id == 1033,
                })
                .collect()
        };
        Ok(GetConfigDataResponse {
            catalog_only_sync: false,
            lazy_sync: true,
            server_hosts_psf_files: false,
            max_updates_per_request: MAX_UPDATES_PER_REQUEST as i32,
            max_driver_sets_per_request: 0,
            max_computer_ids_in_request: 0,
            max_pnp_hardware_ids_in_request: 0,
            new_config_anchor: Some(self.inner.config_anchor.clone()),
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
                    file_urls.push(ServerSyncUrlData {
                        file_digest: f.sha1,
                        mu_url: Some(format!("{base}/{}", f.content_path())),
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
