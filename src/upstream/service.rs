//! The upstream service as an HTTP [`SoapService`]: registered by [`register`] at
//! `/ServerSyncWebService/ServerSyncWebService.asmx`, `/DssAuthWebService/DssAuthWebService.asmx`
//! and `//DssAuthWebService/DssAuthWebService.asmx` (WSUS downstreams add a slash; the router
//! matches paths case-insensitively).

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode};

use super::{SoapReply, UpstreamOptions, UpstreamService};
use crate::http::{body, Router, SoapFuture, SoapRequest, SoapService};
use crate::server::AppState;
use crate::wire::sss;

/// The paths the service answers.
pub const PATHS: [&str; 3] = [
    sss::SERVER_SYNC_PATH,
    sss::DSS_AUTH_PATH,
    "//DssAuthWebService/DssAuthWebService.asmx",
];

impl SoapService for UpstreamService {
    fn name(&self) -> &'static str {
        "serversync"
    }

    fn call(&self, req: SoapRequest) -> SoapFuture {
        let me = self.clone();
        Box::pin(async move {
            let host = req
                .headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string);
            to_response(me.handle(req.body, host).await)
        })
    }
}

fn to_response(r: SoapReply) -> Response<body::Body> {
    let mut resp = Response::new(body::full(r.body));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    resp
}

/// Registers the upstream side on `router` (DownloadFiles queues the files in the content
/// cache). On a store error the service is left out and the error logged.
pub fn register(mut router: Router, state: &AppState) -> Router {
    let content = state.content.clone();
    let hook: super::DownloadHook = Arc::new(move |files| {
        let content = content.clone();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            for f in files {
                match crate::content::key::ContentKey::new(f.sha1, &f.extension()) {
                    Ok(k) => {
                        if let Err(e) = content.ensure(&k).await {
                            tracing::info!(file = %f.name, error = %e, "DownloadFiles: fetch failed (ignored, as WSUS does)");
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "DownloadFiles: bad key"),
                }
            }
        });
    });
    let svc = UpstreamService::new(
        state.store.clone(),
        UpstreamOptions {
            advertised_url: state.config.server.advertised_url.clone(),
            cookie_ttl: cookie_ttl_override(),
            on_download: Some(hook),
        },
    );
    match svc {
        Ok(svc) => {
            let svc: Arc<dyn SoapService> = Arc::new(svc);
            for p in PATHS {
                router.add_soap(p, svc.clone());
            }
        }
        Err(e) => tracing::error!(error = %e, "upstream service disabled"),
    }
    router
}

/// `WSUS_EDGE_USS_COOKIE_TTL_SECS`: a shorter session cookie lifetime (tests of expiry).
fn cookie_ttl_override() -> Option<time::Duration> {
    std::env::var("WSUS_EDGE_USS_COOKIE_TTL_SECS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .map(time::Duration::seconds)
}
