//! The upstream side's entry point: decode whichever MS-WSUSSS request an envelope carries
//! (dispatching on the body's first element, as SS §3.1.4 says) into [`SssRequest`].

use super::*;
use crate::wire::soap::{parse_envelope, Envelope};

/// Any MS-WSUSSS request wsus-edge serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SssRequest {
    /// GetAuthConfig.
    GetAuthConfig(GetAuthConfig),
    /// GetAuthorizationCookie (DSS auth service).
    GetAuthorizationCookie(GetAuthorizationCookie),
    /// GetCookie.
    GetCookie(GetCookie),
    /// GetConfigData.
    GetConfigData(GetConfigData),
    /// GetRevisionIdList.
    GetRevisionIdList(GetRevisionIdList),
    /// GetUpdateData.
    GetUpdateData(GetUpdateData),
    /// GetDeployments.
    GetDeployments(GetDeployments),
    /// DownloadFiles.
    DownloadFiles(DownloadFiles),
}

impl SssRequest {
    /// Decodes the request in `env`; `Ok(None)` for an operation wsus-edge does not serve
    /// (Ping, GetRelatedRevisionsForUpdates, drivers, reporting): the caller answers a fault.
    pub fn from_envelope(env: &Envelope) -> Result<Option<Self>, WireError> {
        let (ns, name) = env.operation();
        Ok(Some(match (ns, name) {
            (NS, "GetAuthConfig") => Self::GetAuthConfig(env.decode()?),
            (DSS_AUTH_NS, "GetAuthorizationCookie") => Self::GetAuthorizationCookie(env.decode()?),
            (NS, "GetCookie") => Self::GetCookie(env.decode()?),
            (NS, "GetConfigData") => Self::GetConfigData(env.decode()?),
            (NS, "GetRevisionIdList") => Self::GetRevisionIdList(env.decode()?),
            (NS, "GetUpdateData") => Self::GetUpdateData(env.decode()?),
            (NS, "GetDeployments") => Self::GetDeployments(env.decode()?),
            (NS, "DownloadFiles") => Self::DownloadFiles(env.decode()?),
            _ => return Ok(None),
        }))
    }

    /// Parses envelope bytes and decodes the request.
    pub fn decode(input: &[u8]) -> Result<Option<Self>, WireError> {
        Self::from_envelope(&parse_envelope(input)?)
    }

    /// The SOAPAction of this operation (for fault `Method`).
    pub fn action(&self) -> &'static str {
        match self {
            Self::GetAuthConfig(_) => action::GET_AUTH_CONFIG,
            Self::GetAuthorizationCookie(_) => action::GET_AUTHORIZATION_COOKIE,
            Self::GetCookie(_) => action::GET_COOKIE,
            Self::GetConfigData(_) => action::GET_CONFIG_DATA,
            Self::GetRevisionIdList(_) => action::GET_REVISION_ID_LIST,
            Self::GetUpdateData(_) => action::GET_UPDATE_DATA,
            Self::GetDeployments(_) => action::GET_DEPLOYMENTS,
            Self::DownloadFiles(_) => action::DOWNLOAD_FILES,
        }
    }

    /// The cookie the request carries (every operation after GetCookie has one).
    pub fn cookie(&self) -> Option<&Cookie> {
        match self {
            Self::GetConfigData(r) => Some(&r.cookie),
            Self::GetRevisionIdList(r) => Some(&r.cookie),
            Self::GetUpdateData(r) => Some(&r.cookie),
            Self::GetDeployments(r) => Some(&r.cookie),
            Self::DownloadFiles(r) => Some(&r.cookie),
            Self::GetAuthConfig(_) | Self::GetAuthorizationCookie(_) | Self::GetCookie(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::soap::encode;
    use time::macros::datetime;

    #[test]
    fn dispatches_on_the_body_element() {
        let cookie = Cookie {
            expiration: datetime!(2026-10-04 20:33:26 UTC),
            encrypted_data: None,
        };
        let req = GetDeployments {
            cookie: cookie.clone(),
            deployment_anchor: None,
            sync_anchor: "1,2026-10-04 16:33:26.668".into(),
        };
        let got = SssRequest::decode(encode(&req).as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(got.action(), action::GET_DEPLOYMENTS);
        assert_eq!(got.cookie(), Some(&cookie));
        assert_eq!(got, SssRequest::GetDeployments(req));
        let auth = GetAuthorizationCookie {
            account_name: "a.example".into(),
            account_guid: "x".into(),
        };
        assert!(matches!(
            SssRequest::decode(encode(&auth).as_bytes()).unwrap(),
            Some(SssRequest::GetAuthorizationCookie(_))
        ));
        // GetAuthorizationCookie in the wrong namespace is not ours.
        let wrong = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetAuthorizationCookie xmlns="http://www.microsoft.com/SoftwareDistribution"/></s:Body></s:Envelope>"#;
        assert_eq!(SssRequest::decode(wrong.as_bytes()).unwrap(), None);
        let ping = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><Ping xmlns="http://www.microsoft.com/SoftwareDistribution/Server/IMonitorable"><pingLevel>1</pingLevel></Ping></s:Body></s:Envelope>"#;
        assert_eq!(SssRequest::decode(ping.as_bytes()).unwrap(), None);
    }
}
