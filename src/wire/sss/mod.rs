//! MS-WSUSSS (server-to-server sync) operations: one struct per request and per response,
//! each a `SoapBody` so both sides share it: the downstream encodes requests and decodes
//! responses, the upstream decodes requests and encodes responses
//! (`soap::encode` / `soap::decode`). Requests also implement [`Operation`], which names the
//! SOAPAction and the response type.
//!
//! Element names, order and casing follow the spec's WSDL and, where a Windows Server 2025
//! upstream orders differently (`ServerSyncConfigData`), the real captures. GUIDs are written
//! lower-case; empty arrays as `<Name />`; decoding is order-tolerant and prefix-independent.
//! Anchors stay opaque strings here (see [`super::anchor`] to interpret Windows ones).
//!
//! | file | operations |
//! |---|---|
//! | [`auth`] | GetAuthConfig, GetAuthorizationCookie (DssAuth namespace), GetCookie |
//! | [`metadata`] | GetConfigData, GetRevisionIdList |
//! | [`update_data`] | GetUpdateData, DownloadFiles |
//! | [`dispatch`] | [`SssRequest`]: decode whichever request arrived (upstream side) |
//! | [`deployments`] | GetDeployments (replica approvals) |
//! | [`deployments_stream`] | the GetDeployments and GetRevisionIdList answers decoded item by item (big first syncs) |
//! | [`rollup`] | the reporting rollup: GetRollupConfiguration, RollupDownstreamServers, RollupComputers, GetOutOfSyncComputers, RollupComputerStatus |
//! | [`rollup_stream`] | RollupComputerStatus requests decoded without a tree (full rollups are gigabytes) |

pub mod auth;
pub mod deployments;
pub mod deployments_stream;
pub mod dispatch;
pub mod metadata;
pub mod rollup;
pub mod rollup_stream;
pub mod update_data;

pub use auth::*;
pub use deployments::*;
pub use deployments_stream::{decode_deployments_response, decode_revision_id_list_response};
pub use dispatch::SssRequest;
pub use metadata::*;
pub use update_data::*;

use time::OffsetDateTime;
use uuid::Uuid;

use super::soap::Operation;
use super::values::{
    format_base64, format_datetime, format_guid, parse_base64, parse_datetime, parse_guid,
    parse_u32,
};
use super::xml::{Element, XmlWriter};
use super::WireError;
use crate::model::RevisionKey;

/// Namespace of the Server Sync web service (and its types).
pub const NS: &str = "http://www.microsoft.com/SoftwareDistribution";
/// Namespace of the DSS authorization web service.
pub const DSS_AUTH_NS: &str =
    "http://www.microsoft.com/SoftwareDistribution/Server/DssAuthWebService";
/// Path of the Server Sync web service.
pub const SERVER_SYNC_PATH: &str = "/ServerSyncWebService/ServerSyncWebService.asmx";
/// Path of the DSS authorization web service (relative form in `ServiceUrl`).
pub const DSS_AUTH_PATH: &str = "/DssAuthWebService/DssAuthWebService.asmx";
/// The protocol version wsus-edge speaks (WSUS 10.0).
pub const PROTOCOL_VERSION: &str = "1.20";
/// The only authorization plug-in (`PlugInID` / `PlugInId`).
pub const PLUGIN_ID: &str = "DssTargeting";
/// Most file digests one `DownloadFiles` may carry (SS §3.1.4.11).
pub const MAX_DOWNLOAD_FILES: usize = 100;

/// SOAPAction URIs (unquoted; see [`super::soap::soap_action_header`]).
pub mod action {
    /// GetAuthConfig.
    pub const GET_AUTH_CONFIG: &str = "http://www.microsoft.com/SoftwareDistribution/GetAuthConfig";
    /// GetAuthorizationCookie (DSS auth service).
    pub const GET_AUTHORIZATION_COOKIE: &str =
        "http://www.microsoft.com/SoftwareDistribution/Server/DssAuthWebService/GetAuthorizationCookie";
    /// GetCookie.
    pub const GET_COOKIE: &str = "http://www.microsoft.com/SoftwareDistribution/GetCookie";
    /// GetConfigData.
    pub const GET_CONFIG_DATA: &str = "http://www.microsoft.com/SoftwareDistribution/GetConfigData";
    /// GetRevisionIdList.
    pub const GET_REVISION_ID_LIST: &str =
        "http://www.microsoft.com/SoftwareDistribution/GetRevisionIdList";
    /// GetUpdateData.
    pub const GET_UPDATE_DATA: &str = "http://www.microsoft.com/SoftwareDistribution/GetUpdateData";
    /// GetDeployments.
    pub const GET_DEPLOYMENTS: &str =
        "http://www.microsoft.com/SoftwareDistribution/GetDeployments";
    /// DownloadFiles.
    pub const DOWNLOAD_FILES: &str = "http://www.microsoft.com/SoftwareDistribution/DownloadFiles";
}

/// The session cookie (`Cookie`, SS §2.2.4.8). Opaque to the downstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// UTC expiry.
    pub expiration: OffsetDateTime,
    /// The upstream's opaque bytes; `None` when absent.
    pub encrypted_data: Option<Vec<u8>>,
}

impl Cookie {
    /// True when the cookie has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.expiration
    }

    pub(crate) fn write(&self, w: &mut XmlWriter, name: &str) {
        w.start(name);
        w.leaf("Expiration", &format_datetime(self.expiration));
        if let Some(d) = &self.encrypted_data {
            if d.is_empty() {
                w.empty("EncryptedData");
            } else {
                w.leaf("EncryptedData", &format_base64(d));
            }
        }
        w.end();
    }

    pub(crate) fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            expiration: parse_datetime("Expiration", &el.req_text("Expiration")?)?,
            encrypted_data: el
                .child_text("EncryptedData")
                .map(|t| parse_base64("EncryptedData", &t))
                .transpose()?,
        })
    }
}

/// `AuthorizationCookie` (SS §2.2.4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCookie {
    /// `PlugInId` ([`PLUGIN_ID`]).
    pub plugin_id: String,
    /// Opaque bytes.
    pub cookie_data: Vec<u8>,
}

impl AuthorizationCookie {
    pub(crate) fn write_fields(&self, w: &mut XmlWriter) {
        w.leaf("PlugInId", &self.plugin_id);
        w.leaf("CookieData", &format_base64(&self.cookie_data));
    }

    pub(crate) fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            plugin_id: el.child_text("PlugInId").unwrap_or_default(),
            cookie_data: parse_base64(
                "CookieData",
                &el.child_text("CookieData").unwrap_or_default(),
            )?,
        })
    }
}

/// Writes an `UpdateIdentity`-typed element.
pub(crate) fn write_identity(w: &mut XmlWriter, name: &str, k: &RevisionKey) {
    w.start(name);
    w.leaf("UpdateID", &format_guid(&k.update_id));
    w.leaf("RevisionNumber", &k.revision.to_string());
    w.end();
}

/// Reads an `UpdateIdentity`-typed element.
pub(crate) fn read_identity(el: &Element) -> Result<RevisionKey, WireError> {
    Ok(RevisionKey::new(
        parse_guid("UpdateID", &el.req_text("UpdateID")?)?,
        parse_u32("RevisionNumber", &el.req_text("RevisionNumber")?)?,
    ))
}

/// Writes `<name>` holding one `<item>` per element (`<name />` when empty).
pub(crate) fn write_array<T>(
    w: &mut XmlWriter,
    name: &str,
    items: &[T],
    mut f: impl FnMut(&mut XmlWriter, &T),
) {
    w.start(name);
    for i in items {
        f(w, i);
    }
    w.end();
}

/// Reads every `<item>` child of `<name>`; an absent array is empty.
pub(crate) fn read_array<T>(
    parent: &Element,
    name: &str,
    item: &str,
    f: impl Fn(&Element) -> Result<T, WireError>,
) -> Result<Vec<T>, WireError> {
    match parent.child(name) {
        Some(a) => a.children_named(item).map(f).collect(),
        None => Ok(Vec::new()),
    }
}

/// Reads an array that may be absent (`None`) as opposed to empty.
pub(crate) fn read_opt_array<T>(
    parent: &Element,
    name: &str,
    item: &str,
    f: impl Fn(&Element) -> Result<T, WireError>,
) -> Result<Option<Vec<T>>, WireError> {
    parent
        .child(name)
        .map(|a| a.children_named(item).map(f).collect())
        .transpose()
}

/// Writes `<guid>` items.
pub(crate) fn write_guids(w: &mut XmlWriter, name: &str, ids: &[Uuid]) {
    write_array(w, name, ids, |w, id| {
        w.leaf("guid", &format_guid(id));
    });
}

/// Reads `<guid>` items.
pub(crate) fn read_guids(parent: &Element, name: &str) -> Result<Vec<Uuid>, WireError> {
    read_array(parent, name, "guid", |e| parse_guid("guid", &e.text_ref()))
}

/// A SHA-1 digest from base64.
pub(crate) fn parse_sha1(field: &'static str, s: &str) -> Result<[u8; 20], WireError> {
    let v = parse_base64(field, s)?;
    v.try_into().map_err(|_| WireError::bad(field, s))
}

/// Non-empty text or `None`.
pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|t| !t.is_empty())
}

/// A cookie with fixed values, shared by the operation tests.
#[cfg(test)]
pub(crate) fn test_cookie() -> Cookie {
    Cookie {
        expiration: time::macros::datetime!(2026-10-04 20:33:26.65455 UTC),
        encrypted_data: Some(vec![0xAB; 16]),
    }
}

/// Implements [`SoapBody`] and [`Operation`] boilerplate checks shared by the tests.
#[cfg(test)]
pub(crate) fn round_trip<T>(v: &T) -> T
where
    T: super::soap::SoapBody + PartialEq + std::fmt::Debug,
{
    let s = super::soap::encode(v);
    let back: T = super::soap::decode(s.as_bytes()).expect("decode own encoding");
    assert_eq!(&back, v, "round trip of {}", T::NAME);
    back
}

/// Compile-time link: every request names its response.
#[allow(dead_code)]
fn _assert_operations() {
    fn is_op<T: Operation>() {}
    is_op::<GetAuthConfig>();
    is_op::<GetAuthorizationCookie>();
    is_op::<GetCookie>();
    is_op::<GetConfigData>();
    is_op::<GetRevisionIdList>();
    is_op::<GetUpdateData>();
    is_op::<GetDeployments>();
    is_op::<DownloadFiles>();
}
