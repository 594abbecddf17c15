//! SimpleAuth `GetAuthorizationCookie` (MS-WUSP §3.1.5.3): the client id, the DNS name and the
//! optional client-side target group name go in; an opaque authorization cookie comes out.

use super::{action, AuthorizationCookie, SIMPLE_AUTH_NS};
use crate::wire::soap::{Operation, SoapBody};
use crate::wire::sss::non_empty;
use crate::wire::xml::{Element, XmlWriter};
use crate::wire::WireError;

/// `GetAuthorizationCookie` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAuthorizationCookie {
    /// `clientId`: the agent's client id (a GUID string).
    pub client_id: String,
    /// `targetGroupName`: client-side targeting (may name several groups separated by `;`).
    pub target_group_name: Option<String>,
    /// `dnsName`.
    pub dns_name: String,
}

impl SoapBody for GetAuthorizationCookie {
    const NAME: &'static str = "GetAuthorizationCookie";
    const NS: &'static str = SIMPLE_AUTH_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.leaf("clientId", &self.client_id);
        w.opt_leaf("targetGroupName", self.target_group_name.as_deref());
        w.leaf("dnsName", &self.dns_name);
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            client_id: el.req_text("clientId")?.trim().to_string(),
            target_group_name: non_empty(el.child_text("targetGroupName")),
            dns_name: el.child_text("dnsName").unwrap_or_default(),
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
    pub result: AuthorizationCookie,
}

impl SoapBody for GetAuthorizationCookieResponse {
    const NAME: &'static str = "GetAuthorizationCookieResponse";
    const NS: &'static str = SIMPLE_AUTH_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("GetAuthorizationCookieResult");
        self.result.write_fields(w);
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            result: AuthorizationCookie::read(el.req("GetAuthorizationCookieResult")?)?,
        })
    }
}
