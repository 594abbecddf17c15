//! Authorization: GetAuthConfig, GetAuthorizationCookie (on the DSS auth service, in its own
//! namespace) and GetCookie (SS §3.1.4.1–3).

use time::OffsetDateTime;

use super::{action, AuthorizationCookie, Cookie, DSS_AUTH_NS, NS, PLUGIN_ID};
use crate::wire::soap::{Operation, SoapBody};
use crate::wire::values::{format_datetime, parse_datetime};
use crate::wire::xml::{Element, XmlWriter};
use crate::wire::WireError;

/// `GetAuthConfig` request (no fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetAuthConfig;

impl SoapBody for GetAuthConfig {
    const NAME: &'static str = "GetAuthConfig";
    const NS: &'static str = NS;
    fn write_children(&self, _w: &mut XmlWriter) {}
    fn read(_el: &Element) -> Result<Self, WireError> {
        Ok(Self)
    }
}

impl Operation for GetAuthConfig {
    const ACTION: &'static str = action::GET_AUTH_CONFIG;
    type Response = GetAuthConfigResponse;
}

/// `AuthPlugInInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPlugInInfo {
    /// `PlugInID` ("DssTargeting").
    pub plugin_id: String,
    /// `ServiceUrl`, relative to the upstream's base URL.
    pub service_url: String,
    /// `Parameter`; WS2025 writes it empty (`<Parameter />`), which decodes as `None`.
    pub parameter: Option<String>,
}

/// `GetAuthConfigResponse` / `ServerAuthConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAuthConfigResponse {
    /// `LastChange` (unused by the DSS).
    pub last_change: OffsetDateTime,
    /// `AuthInfo`: exactly one plug-in on a conforming upstream.
    pub auth_info: Vec<AuthPlugInInfo>,
}

impl GetAuthConfigResponse {
    /// The answer every WSUS upstream gives (SS §3.1.4.1).
    pub fn wsus(last_change: OffsetDateTime) -> Self {
        Self {
            last_change,
            auth_info: vec![AuthPlugInInfo {
                plugin_id: PLUGIN_ID.to_string(),
                service_url: "DssAuthWebService/DssAuthWebService.asmx".to_string(),
                parameter: None,
            }],
        }
    }
}

impl SoapBody for GetAuthConfigResponse {
    const NAME: &'static str = "GetAuthConfigResponse";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("GetAuthConfigResult");
        w.leaf("LastChange", &format_datetime(self.last_change));
        w.start("AuthInfo");
        for p in &self.auth_info {
            w.start("AuthPlugInInfo");
            w.leaf("PlugInID", &p.plugin_id);
            w.leaf("ServiceUrl", &p.service_url);
            // WS2025 writes an empty <Parameter />; keep its shape.
            w.start("Parameter");
            if let Some(v) = &p.parameter {
                w.text(v);
            }
            w.end();
            w.end();
        }
        w.end();
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        let r = el.req("GetAuthConfigResult")?;
        let auth_info = super::read_array(r, "AuthInfo", "AuthPlugInInfo", |p| {
            Ok(AuthPlugInInfo {
                plugin_id: p.child_text("PlugInID").unwrap_or_default(),
                service_url: p.child_text("ServiceUrl").unwrap_or_default(),
                parameter: super::non_empty(p.child_text("Parameter")),
            })
        })?;
        Ok(Self {
            last_change: parse_datetime("LastChange", &r.req_text("LastChange")?)?,
            auth_info,
        })
    }
}

/// `GetAuthorizationCookie` request (DSS auth namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAuthorizationCookie {
    /// `accountName`: the DSS's FQDN.
    pub account_name: String,
    /// `accountGuid`: the DSS's GUID, as text (the upstream validates it).
    pub account_guid: String,
}

impl SoapBody for GetAuthorizationCookie {
    const NAME: &'static str = "GetAuthorizationCookie";
    const NS: &'static str = DSS_AUTH_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.leaf("accountName", &self.account_name);
        w.leaf("accountGuid", &self.account_guid);
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            account_name: el.child_text("accountName").unwrap_or_default(),
            account_guid: el.child_text("accountGuid").unwrap_or_default(),
        })
    }
}

impl Operation for GetAuthorizationCookie {
    const ACTION: &'static str = action::GET_AUTHORIZATION_COOKIE;
    type Response = GetAuthorizationCookieResponse;
}

/// `GetAuthorizationCookieResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAuthorizationCookieResponse {
    /// `GetAuthorizationCookieResult`.
    pub cookie: AuthorizationCookie,
}

impl SoapBody for GetAuthorizationCookieResponse {
    const NAME: &'static str = "GetAuthorizationCookieResponse";
    const NS: &'static str = DSS_AUTH_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("GetAuthorizationCookieResult");
        self.cookie.write_fields(w);
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: AuthorizationCookie::read(el.req("GetAuthorizationCookieResult")?)?,
        })
    }
}

/// `GetCookie` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetCookie {
    /// `authCookies`: exactly one on a conforming DSS.
    pub auth_cookies: Vec<AuthorizationCookie>,
    /// `oldCookie`: the last cookie, absent the first time.
    pub old_cookie: Option<Cookie>,
    /// `protocolVersion` ("1.20").
    pub protocol_version: String,
}

impl GetCookie {
    /// The request a wsus-edge downstream sends: one authorization cookie, the previous
    /// cookie if any, protocol version [`super::PROTOCOL_VERSION`].
    pub fn new(auth_cookie: AuthorizationCookie, old_cookie: Option<Cookie>) -> Self {
        Self {
            auth_cookies: vec![auth_cookie],
            old_cookie,
            protocol_version: super::PROTOCOL_VERSION.to_string(),
        }
    }
}

impl SoapBody for GetCookie {
    const NAME: &'static str = "GetCookie";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        super::write_array(w, "authCookies", &self.auth_cookies, |w, c| {
            w.start("AuthorizationCookie");
            c.write_fields(w);
            w.end();
        });
        if let Some(c) = &self.old_cookie {
            c.write(w, "oldCookie");
        }
        w.leaf("protocolVersion", &self.protocol_version);
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            auth_cookies: super::read_array(
                el,
                "authCookies",
                "AuthorizationCookie",
                AuthorizationCookie::read,
            )?,
            old_cookie: el.child("oldCookie").map(Cookie::read).transpose()?,
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
    pub cookie: Cookie,
}

impl SoapBody for GetCookieResponse {
    const NAME: &'static str = "GetCookieResponse";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        self.cookie.write(w, "GetCookieResult");
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: Cookie::read(el.req("GetCookieResult")?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::round_trip;
    use super::*;
    use crate::wire::soap::encode;
    use time::macros::datetime;

    #[test]
    fn auth_operations_round_trip() {
        round_trip(&GetAuthConfig);
        round_trip(&GetAuthConfigResponse::wsus(
            datetime!(2026-10-04 13:16:35.433 UTC),
        ));
        round_trip(&GetAuthorizationCookie {
            account_name: "branch1.example.org".into(),
            account_guid: "6f1c2f6e-1111-4222-8333-444455556666".into(),
        });
        let ac = AuthorizationCookie {
            plugin_id: PLUGIN_ID.into(),
            cookie_data: vec![1, 2, 3, 250],
        };
        round_trip(&GetAuthorizationCookieResponse { cookie: ac.clone() });
        let cookie = Cookie {
            expiration: datetime!(2026-10-04 20:33:26.65455 UTC),
            encrypted_data: Some(vec![9; 40]),
        };
        round_trip(&GetCookie {
            auth_cookies: vec![ac.clone()],
            old_cookie: None,
            protocol_version: "1.20".into(),
        });
        round_trip(&GetCookie {
            auth_cookies: vec![ac],
            old_cookie: Some(cookie.clone()),
            protocol_version: "1.20".into(),
        });
        round_trip(&GetCookieResponse { cookie });
    }

    #[test]
    fn shapes_match_the_captures() {
        let s = encode(&GetAuthorizationCookie {
            account_name: "branch1.example.org".into(),
            account_guid: "6f1c2f6e-1111-4222-8333-444455556666".into(),
        });
        assert!(s.contains("<soap:Body><GetAuthorizationCookie xmlns=\"http://www.microsoft.com/SoftwareDistribution/Server/DssAuthWebService\"><accountName>branch1.example.org</accountName><accountGuid>6f1c2f6e-1111-4222-8333-444455556666</accountGuid></GetAuthorizationCookie>"));
        let s = encode(&GetAuthConfigResponse::wsus(
            datetime!(2026-10-04 13:16:35.433 UTC),
        ));
        assert!(s.contains("<GetAuthConfigResponse xmlns=\"http://www.microsoft.com/SoftwareDistribution\"><GetAuthConfigResult><LastChange>2026-10-04T13:16:35.433Z</LastChange><AuthInfo><AuthPlugInInfo><PlugInID>DssTargeting</PlugInID><ServiceUrl>DssAuthWebService/DssAuthWebService.asmx</ServiceUrl><Parameter /></AuthPlugInInfo></AuthInfo></GetAuthConfigResult></GetAuthConfigResponse>"));
        let s = encode(&GetCookie {
            auth_cookies: vec![AuthorizationCookie {
                plugin_id: PLUGIN_ID.into(),
                cookie_data: vec![0; 3],
            }],
            old_cookie: None,
            protocol_version: "1.20".into(),
        });
        assert!(s.contains("<GetCookie xmlns=\"http://www.microsoft.com/SoftwareDistribution\"><authCookies><AuthorizationCookie><PlugInId>DssTargeting</PlugInId><CookieData>AAAA</CookieData></AuthorizationCookie></authCookies><protocolVersion>1.20</protocolVersion></GetCookie>"));
    }
}
