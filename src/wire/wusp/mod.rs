//! MS-WUSP (Windows Update Agent ↔ server) operations: one struct per request and per
//! response, each a [`SoapBody`](super::soap::SoapBody), so the client service (decode requests,
//! encode responses) and the scripted test agent (encode requests, decode responses) share
//! them. Requests implement [`Operation`](super::soap::Operation) (SOAPAction + response type).
//!
//! Element names, order and casing follow the MS-WUSP WSDL and what a Windows Server 2025 WSUS
//! sent a native Windows 11 25H2 agent (captures in `tests/fixtures/wusp/`). Decoding reads only
//! the typed fields listed here and ignores every other child (no generic deserialization of
//! client data: CVE-2025-59287 was exactly that).
//!
//! | file | operations |
//! |---|---|
//! | [`client`] | GetConfig, GetCookie, RegisterComputer, RefreshCache, GetFileLocations |
//! | [`sync_updates`] | SyncUpdates, GetExtendedUpdateInfo, `UpdateInfo`, `Deployment` |
//! | [`sync_updates_stream`] | SyncUpdates requests decoded without a tree (the hot path) |
//! | [`category_scan`] | StartCategoryScan, the driver pass's `SystemSpec` devices |
//! | [`auth`] | SimpleAuth GetAuthorizationCookie |
//! | [`reporting`] | ReportEventBatch |

pub mod auth;
pub mod category_scan;
pub mod client;
pub mod reporting;
pub mod sync_updates;
pub mod sync_updates_stream;

pub use auth::*;
pub use category_scan::*;
pub use client::*;
pub use reporting::*;
pub use sync_updates::*;

pub use super::sss::{AuthorizationCookie, Cookie};

use super::values::parse_i32;
use super::xml::{Element, XmlWriter};
use super::WireError;

/// Namespace of the client web service (`ClientWebService/client.asmx`).
pub const CLIENT_NS: &str = "http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService";
/// Namespace of the SimpleAuth web service.
pub const SIMPLE_AUTH_NS: &str =
    "http://www.microsoft.com/SoftwareDistribution/Server/SimpleAuthWebService";
/// Namespace of the reporting web service.
pub const REPORTING_NS: &str = "http://www.microsoft.com/SoftwareDistribution";
/// Path of the client web service (the native agent posts to lower-case `client.asmx`).
pub const CLIENT_PATH: &str = "/ClientWebService/client.asmx";
/// Path of the SimpleAuth web service.
pub const SIMPLE_AUTH_PATH: &str = "/SimpleAuthWebService/SimpleAuth.asmx";
/// Path of the reporting web service (the one the native agent uses).
pub const REPORTING_PATH: &str = "/ReportingWebService/ReportingWebService.asmx";
/// The relative SimpleAuth URL GetConfig advertises.
pub const SIMPLE_AUTH_SERVICE_URL: &str = "SimpleAuthWebService/SimpleAuth.asmx";
/// The authorization plug-in id.
pub const PLUGIN_ID: &str = "SimpleTargeting";
/// The client-protocol version the server advertises (as WS2025 does).
pub const PROTOCOL_VERSION: &str = "3.2";
/// Most `InstalledNonLeafUpdateIDs` a SyncUpdates may carry (WS2025: 401 → InvalidParameters).
pub const MAX_INSTALLED_NON_LEAF: usize = 400;
/// Updates per SyncUpdates page (what WS2025 sends).
pub const PAGE_SIZE: usize = 30;
/// Most revision ids per GetExtendedUpdateInfo (`MaxExtendedUpdatesPerRequest`).
pub const MAX_EXTENDED_UPDATES_PER_REQUEST: usize = 50;

/// SOAPAction URIs (unquoted).
pub mod action {
    /// GetConfig.
    pub const GET_CONFIG: &str =
        "http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/GetConfig";
    /// GetCookie.
    pub const GET_COOKIE: &str =
        "http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/GetCookie";
    /// RegisterComputer.
    pub const REGISTER_COMPUTER: &str =
        "http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/RegisterComputer";
    /// StartCategoryScan (ProtocolVersion 3.2, before a category-limited scan).
    pub const START_CATEGORY_SCAN: &str =
        "http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/StartCategoryScan";
    /// SyncUpdates.
    pub const SYNC_UPDATES: &str =
        "http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/SyncUpdates";
    /// RefreshCache.
    pub const REFRESH_CACHE: &str =
        "http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/RefreshCache";
    /// GetExtendedUpdateInfo.
    pub const GET_EXTENDED_UPDATE_INFO: &str =
        "http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/GetExtendedUpdateInfo";
    /// GetFileLocations.
    pub const GET_FILE_LOCATIONS: &str =
        "http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/GetFileLocations";
    /// SimpleAuth GetAuthorizationCookie.
    pub const GET_AUTHORIZATION_COOKIE: &str =
        "http://www.microsoft.com/SoftwareDistribution/Server/SimpleAuthWebService/GetAuthorizationCookie";
    /// ReportEventBatch.
    pub const REPORT_EVENT_BATCH: &str =
        "http://www.microsoft.com/SoftwareDistribution/ReportEventBatch";
}

/// Writes `<name><int>..</int>...</name>`.
pub(crate) fn write_ints(w: &mut XmlWriter, name: &str, v: &[i32]) {
    w.start(name);
    for i in v {
        w.leaf_int("int", (*i).into());
    }
    w.end();
}

/// Reads an `ArrayOfInt` that may be absent.
pub(crate) fn read_opt_ints(parent: &Element, name: &str) -> Result<Option<Vec<i32>>, WireError> {
    super::sss::read_opt_array(parent, name, "int", |e| parse_i32("int", &e.text_ref()))
}

/// Writes `<name><string>..</string>...</name>`.
pub(crate) fn write_strings(w: &mut XmlWriter, name: &str, v: &[String]) {
    w.start(name);
    for s in v {
        w.leaf("string", s);
    }
    w.end();
}

/// Reads an `ArrayOfString` (absent = empty).
pub(crate) fn read_strings(parent: &Element, name: &str) -> Result<Vec<String>, WireError> {
    super::sss::read_array(parent, name, "string", |e| Ok(e.text()))
}

/// Optional boolean child.
pub(crate) fn opt_bool(el: &Element, name: &'static str) -> Result<Option<bool>, WireError> {
    el.child_text(name)
        .map(|t| super::values::parse_bool(name, &t))
        .transpose()
}

/// Optional int child.
pub(crate) fn opt_i32(el: &Element, name: &'static str) -> Result<Option<i32>, WireError> {
    el.child_text(name).map(|t| parse_i32(name, &t)).transpose()
}

/// The operation a client-facing SOAP body names, once the body element is known: used by the
/// services to dispatch and to check the SOAPAction against the body.
pub fn action_for(ns: &str, name: &str) -> Option<&'static str> {
    Some(match (ns, name) {
        (CLIENT_NS, "GetConfig") => action::GET_CONFIG,
        (CLIENT_NS, "GetCookie") => action::GET_COOKIE,
        (CLIENT_NS, "RegisterComputer") => action::REGISTER_COMPUTER,
        (CLIENT_NS, "StartCategoryScan") => action::START_CATEGORY_SCAN,
        (CLIENT_NS, "SyncUpdates") => action::SYNC_UPDATES,
        (CLIENT_NS, "RefreshCache") => action::REFRESH_CACHE,
        (CLIENT_NS, "GetExtendedUpdateInfo") => action::GET_EXTENDED_UPDATE_INFO,
        (CLIENT_NS, "GetFileLocations") => action::GET_FILE_LOCATIONS,
        (SIMPLE_AUTH_NS, "GetAuthorizationCookie") => action::GET_AUTHORIZATION_COOKIE,
        (REPORTING_NS, "ReportEventBatch") => action::REPORT_EVENT_BATCH,
        _ => return None,
    })
}
