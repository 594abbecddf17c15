//! Client web service operations other than the scan itself: GetConfig, GetCookie,
//! RegisterComputer, RefreshCache and GetFileLocations (MS-WUSP §3.1.5.1–§3.1.5.10).

use time::OffsetDateTime;

use super::sync_updates::Deployment;
use super::{action, opt_i32, read_opt_ints, write_ints, AuthorizationCookie, Cookie, CLIENT_NS};
use crate::model::RevisionKey;
use crate::wire::soap::{Operation, SoapBody};
use crate::wire::sss::{non_empty, parse_sha1, read_array, read_identity, write_identity};
use crate::wire::values::{
    format_base64, format_bool, format_datetime, parse_bool, parse_datetime, parse_i32,
};
use crate::wire::xml::{Element, XmlWriter};
use crate::wire::WireError;

/// `GetConfig` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetConfig {
    /// `protocolVersion` the agent speaks (native WUA: `2.90`; any is accepted).
    pub protocol_version: String,
}

impl SoapBody for GetConfig {
    const NAME: &'static str = "GetConfig";
    const NS: &'static str = CLIENT_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.leaf("protocolVersion", &self.protocol_version);
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            protocol_version: el.child_text("protocolVersion").unwrap_or_default(),
        })
    }
}

impl Operation for GetConfig {
    const ACTION: &'static str = action::GET_CONFIG;
    type Response = GetConfigResponse;
}

/// One `AuthPlugInInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPlugInInfo {
    /// `PlugInID` (`SimpleTargeting`).
    pub plugin_id: String,
    /// `ServiceUrl`, relative to the server root.
    pub service_url: String,
    /// `Parameter` (empty).
    pub parameter: String,
}

/// `GetConfigResult` (`Config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `LastChange`: when the configuration last changed.
    pub last_change: OffsetDateTime,
    /// `IsRegistrationRequired`.
    pub is_registration_required: bool,
    /// `AuthInfo`.
    pub auth_info: Vec<AuthPlugInInfo>,
    /// `AllowedEventIds`; `None` = element absent (WS2025 omits it: the agent reports all).
    pub allowed_event_ids: Option<Vec<i32>>,
    /// `Properties` as (Name, Value), in order.
    pub properties: Vec<(String, String)>,
}

impl Config {
    /// A property's value by name.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GetConfigResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetConfigResponse {
    /// `GetConfigResult`.
    pub result: Config,
}

impl SoapBody for GetConfigResponse {
    const NAME: &'static str = "GetConfigResponse";
    const NS: &'static str = CLIENT_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        let c = &self.result;
        w.start("GetConfigResult");
        w.leaf("LastChange", &format_datetime(c.last_change));
        w.leaf(
            "IsRegistrationRequired",
            format_bool(c.is_registration_required),
        );
        w.start("AuthInfo");
        for a in &c.auth_info {
            w.start("AuthPlugInInfo");
            w.leaf("PlugInID", &a.plugin_id);
            w.leaf("ServiceUrl", &a.service_url);
            w.leaf("Parameter", &a.parameter);
            w.end();
        }
        w.end();
        if let Some(ids) = &c.allowed_event_ids {
            write_ints(w, "AllowedEventIds", ids);
        }
        w.start("Properties");
        for (n, v) in &c.properties {
            w.start("ConfigurationProperty");
            w.leaf("Name", n);
            w.leaf("Value", v);
            w.end();
        }
        w.end();
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        let r = el.req("GetConfigResult")?;
        Ok(Self {
            result: Config {
                last_change: parse_datetime("LastChange", &r.req_text("LastChange")?)?,
                is_registration_required: parse_bool(
                    "IsRegistrationRequired",
                    &r.req_text("IsRegistrationRequired")?,
                )?,
                auth_info: read_array(r, "AuthInfo", "AuthPlugInInfo", |a| {
                    Ok(AuthPlugInInfo {
                        plugin_id: a.child_text("PlugInID").unwrap_or_default(),
                        service_url: a.child_text("ServiceUrl").unwrap_or_default(),
                        parameter: a.child_text("Parameter").unwrap_or_default(),
                    })
                })?,
                allowed_event_ids: read_opt_ints(r, "AllowedEventIds")?,
                properties: read_array(r, "Properties", "ConfigurationProperty", |p| {
                    Ok((
                        p.child_text("Name").unwrap_or_default(),
                        p.child_text("Value").unwrap_or_default(),
                    ))
                })?,
            },
        })
    }
}

/// `GetCookie` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetCookie {
    /// `authCookies` (one, from SimpleAuth).
    pub auth_cookies: Vec<AuthorizationCookie>,
    /// `oldCookie` (renewal; the native agent sends one with only `Expiration` at first).
    pub old_cookie: Option<Cookie>,
    /// `lastChange`: the config change time the agent holds.
    pub last_change: Option<OffsetDateTime>,
    /// `currentTime` at the client.
    pub current_time: Option<OffsetDateTime>,
    /// `protocolVersion`.
    pub protocol_version: String,
}

impl SoapBody for GetCookie {
    const NAME: &'static str = "GetCookie";
    const NS: &'static str = CLIENT_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("authCookies");
        for a in &self.auth_cookies {
            w.start("AuthorizationCookie");
            a.write_fields(w);
            w.end();
        }
        w.end();
        if let Some(c) = &self.old_cookie {
            c.write(w, "oldCookie");
        }
        if let Some(t) = self.last_change {
            w.leaf("lastChange", &format_datetime(t));
        }
        if let Some(t) = self.current_time {
            w.leaf("currentTime", &format_datetime(t));
        }
        w.leaf("protocolVersion", &self.protocol_version);
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        let dt = |n: &'static str| el.child_text(n).map(|t| parse_datetime(n, &t)).transpose();
        Ok(Self {
            auth_cookies: read_array(el, "authCookies", "AuthorizationCookie", |a| {
                AuthorizationCookie::read(a)
            })?,
            old_cookie: el.child("oldCookie").map(Cookie::read).transpose()?,
            last_change: dt("lastChange")?,
            current_time: dt("currentTime")?,
            protocol_version: el.child_text("protocolVersion").unwrap_or_default(),
        })
    }
}

impl Operation for GetCookie {
    const ACTION: &'static str = action::GET_COOKIE;
    type Response = GetCookieResponse;
}

/// `GetCookieResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetCookieResponse {
    /// `GetCookieResult`.
    pub result: Cookie,
}

impl SoapBody for GetCookieResponse {
    const NAME: &'static str = "GetCookieResponse";
    const NS: &'static str = CLIENT_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        self.result.write(w, "GetCookieResult");
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            result: Cookie::read(el.req("GetCookieResult")?)?,
        })
    }
}

/// `ComputerInfo`: the typed fields the server keeps (everything else is ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComputerInfo {
    /// `DnsName`.
    pub dns_name: String,
    /// `OSMajorVersion`.
    pub os_major: Option<i32>,
    /// `OSMinorVersion`.
    pub os_minor: Option<i32>,
    /// `OSBuildNumber`.
    pub os_build: Option<i32>,
    /// `OSServicePackMajorNumber`.
    pub os_sp_major: Option<i32>,
    /// `OSServicePackMinorNumber`.
    pub os_sp_minor: Option<i32>,
    /// `OSLocale`.
    pub os_locale: Option<String>,
    /// `ComputerManufacturer`.
    pub manufacturer: Option<String>,
    /// `ComputerModel`.
    pub model: Option<String>,
    /// `ProcessorArchitecture` (a number or a name, as the agent sends it).
    pub processor_architecture: Option<String>,
    /// `ClientVersionMajorNumber`, `...Minor...`, `...Build...`, `...Qfe...`.
    pub client_version: Option<[i32; 4]>,
}

impl ComputerInfo {
    /// `major.minor.build` when the agent reported the OS version.
    pub fn os_version(&self) -> Option<String> {
        Some(format!(
            "{}.{}.{}",
            self.os_major?, self.os_minor?, self.os_build?
        ))
    }

    /// `a.b.c.d` agent version, when reported.
    pub fn client_version_string(&self) -> Option<String> {
        self.client_version
            .map(|v| format!("{}.{}.{}.{}", v[0], v[1], v[2], v[3]))
    }
}

/// `RegisterComputer` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterComputer {
    /// `cookie`.
    pub cookie: Cookie,
    /// `computerInfo`.
    pub computer_info: ComputerInfo,
}

impl SoapBody for RegisterComputer {
    const NAME: &'static str = "RegisterComputer";
    const NS: &'static str = CLIENT_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        self.cookie.write(w, "cookie");
        let c = &self.computer_info;
        w.start("computerInfo");
        w.leaf("DnsName", &c.dns_name);
        let int = |w: &mut XmlWriter, n: &str, v: Option<i32>| {
            if let Some(v) = v {
                w.leaf(n, &v.to_string());
            }
        };
        int(w, "OSMajorVersion", c.os_major);
        int(w, "OSMinorVersion", c.os_minor);
        int(w, "OSBuildNumber", c.os_build);
        int(w, "OSServicePackMajorNumber", c.os_sp_major);
        int(w, "OSServicePackMinorNumber", c.os_sp_minor);
        w.opt_leaf("OSLocale", c.os_locale.as_deref());
        w.opt_leaf("ComputerManufacturer", c.manufacturer.as_deref());
        w.opt_leaf("ComputerModel", c.model.as_deref());
        w.opt_leaf("ProcessorArchitecture", c.processor_architecture.as_deref());
        if let Some(v) = c.client_version {
            for (n, x) in ["Major", "Minor", "Build", "Qfe"].iter().zip(v) {
                w.leaf(&format!("ClientVersion{n}Number"), &x.to_string());
            }
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        let c = el.req("computerInfo")?;
        let cv = |n: &'static str| opt_i32(c, n);
        let client_version = match (
            cv("ClientVersionMajorNumber")?,
            cv("ClientVersionMinorNumber")?,
            cv("ClientVersionBuildNumber")?,
            cv("ClientVersionQfeNumber")?,
        ) {
            (Some(a), Some(b), Some(x), q) => Some([a, b, x, q.unwrap_or(0)]),
            _ => None,
        };
        Ok(Self {
            cookie: Cookie::read(el.req("cookie")?)?,
            computer_info: ComputerInfo {
                dns_name: c.child_text("DnsName").unwrap_or_default(),
                os_major: opt_i32(c, "OSMajorVersion")?,
                os_minor: opt_i32(c, "OSMinorVersion")?,
                os_build: opt_i32(c, "OSBuildNumber")?,
                os_sp_major: opt_i32(c, "OSServicePackMajorNumber")?,
                os_sp_minor: opt_i32(c, "OSServicePackMinorNumber")?,
                os_locale: non_empty(c.child_text("OSLocale")),
                manufacturer: non_empty(c.child_text("ComputerManufacturer")),
                model: non_empty(c.child_text("ComputerModel")),
                processor_architecture: non_empty(c.child_text("ProcessorArchitecture")),
                client_version,
            },
        })
    }
}

impl Operation for RegisterComputer {
    const ACTION: &'static str = action::REGISTER_COMPUTER;
    type Response = RegisterComputerResponse;
}

/// `RegisterComputerResponse` (empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterComputerResponse;

impl SoapBody for RegisterComputerResponse {
    const NAME: &'static str = "RegisterComputerResponse";
    const NS: &'static str = CLIENT_NS;
    fn write_children(&self, _w: &mut XmlWriter) {}
    fn read(_el: &Element) -> Result<Self, WireError> {
        Ok(Self)
    }
}

/// `RefreshCache` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshCache {
    /// `cookie`.
    pub cookie: Cookie,
    /// `globalIDs`.
    pub global_ids: Vec<RevisionKey>,
}

impl SoapBody for RefreshCache {
    const NAME: &'static str = "RefreshCache";
    const NS: &'static str = CLIENT_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        self.cookie.write(w, "cookie");
        w.start("globalIDs");
        for k in &self.global_ids {
            write_identity(w, "UpdateIdentity", k);
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: Cookie::read(el.req("cookie")?)?,
            global_ids: read_array(el, "globalIDs", "UpdateIdentity", read_identity)?,
        })
    }
}

impl Operation for RefreshCache {
    const ACTION: &'static str = action::REFRESH_CACHE;
    type Response = RefreshCacheResponse;
}

/// One `RefreshCacheResult`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshCacheResult {
    /// `RevisionID` (server-local).
    pub revision_id: i32,
    /// `GlobalID`.
    pub global_id: RevisionKey,
    /// `IsLeaf`.
    pub is_leaf: bool,
    /// `Deployment`.
    pub deployment: Deployment,
}

/// `RefreshCacheResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshCacheResponse {
    /// The results.
    pub results: Vec<RefreshCacheResult>,
}

impl SoapBody for RefreshCacheResponse {
    const NAME: &'static str = "RefreshCacheResponse";
    const NS: &'static str = CLIENT_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("RefreshCacheResult");
        for r in &self.results {
            w.start("RefreshCacheResult");
            w.leaf("RevisionID", &r.revision_id.to_string());
            write_identity(w, "GlobalID", &r.global_id);
            w.leaf("IsLeaf", format_bool(r.is_leaf));
            r.deployment.write(w);
            w.end();
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            results: read_array(el, "RefreshCacheResult", "RefreshCacheResult", |r| {
                Ok(RefreshCacheResult {
                    revision_id: parse_i32("RevisionID", &r.req_text("RevisionID")?)?,
                    global_id: read_identity(r.req("GlobalID")?)?,
                    is_leaf: parse_bool("IsLeaf", &r.req_text("IsLeaf")?)?,
                    deployment: Deployment::read(r.req("Deployment")?)?,
                })
            })?,
        })
    }
}

/// One `FileLocation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLocation {
    /// `FileDigest`: the file's SHA-1.
    pub digest: [u8; 20],
    /// `Url`.
    pub url: String,
}

impl FileLocation {
    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.start("FileLocation");
        w.leaf("FileDigest", &format_base64(&self.digest));
        w.leaf("Url", &self.url);
        w.end();
    }

    pub(crate) fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            digest: parse_sha1("FileDigest", &el.req_text("FileDigest")?)?,
            url: el.req_text("Url")?,
        })
    }
}

/// `GetFileLocations` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetFileLocations {
    /// `cookie`.
    pub cookie: Cookie,
    /// `fileDigests`: SHA-1 digests (a digest of another length is kept and answered with none).
    pub file_digests: Vec<Vec<u8>>,
}

impl SoapBody for GetFileLocations {
    const NAME: &'static str = "GetFileLocations";
    const NS: &'static str = CLIENT_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        self.cookie.write(w, "cookie");
        w.start("fileDigests");
        for d in &self.file_digests {
            w.leaf("base64Binary", &format_base64(d));
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: Cookie::read(el.req("cookie")?)?,
            file_digests: read_array(el, "fileDigests", "base64Binary", |e| {
                crate::wire::values::parse_base64("base64Binary", &e.text_ref())
            })?,
        })
    }
}

impl Operation for GetFileLocations {
    const ACTION: &'static str = action::GET_FILE_LOCATIONS;
    type Response = GetFileLocationsResponse;
}

/// `GetFileLocationsResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetFileLocationsResponse {
    /// `FileLocations`.
    pub file_locations: Vec<FileLocation>,
    /// `NewCookie`, when the server renews it.
    pub new_cookie: Option<Cookie>,
}

impl SoapBody for GetFileLocationsResponse {
    const NAME: &'static str = "GetFileLocationsResponse";
    const NS: &'static str = CLIENT_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("GetFileLocationsResult");
        w.start("FileLocations");
        for f in &self.file_locations {
            f.write(w);
        }
        w.end();
        if let Some(c) = &self.new_cookie {
            c.write(w, "NewCookie");
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        let r = el.req("GetFileLocationsResult")?;
        Ok(Self {
            file_locations: read_array(r, "FileLocations", "FileLocation", FileLocation::read)?,
            new_cookie: r.child("NewCookie").map(Cookie::read).transpose()?,
        })
    }
}
