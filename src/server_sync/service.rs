//! The upstream service as an HTTP [`SoapService`], answering at the [`PATHS`]
//! `/ServerSyncWebService/ServerSyncWebService.asmx`, `/DssAuthWebService/DssAuthWebService.asmx`
//! and `//DssAuthWebService/DssAuthWebService.asmx` (WSUS downstreams add a slash; the router
//! matches paths case-insensitively).

use http::{HeaderValue, Response, StatusCode};

use super::{ServerSyncService, SoapReply};
use crate::http::{body, SoapFuture, SoapRequest, SoapService};
use crate::wire::sss;

/// The paths the service answers.
pub const PATHS: [&str; 3] = [
    sss::SERVER_SYNC_PATH,
    sss::DSS_AUTH_PATH,
    "//DssAuthWebService/DssAuthWebService.asmx",
];

impl SoapService for ServerSyncService {
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
