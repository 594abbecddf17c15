//! Plugs the client service into the HTTP router: one [`SoapEndpoint`] per MS-WUSP path,
//! answering on the blocking pool (the scan reads the store and builds XML), except a
//! SyncUpdates page over a current index, answered on the connection's own task.

use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode};

use super::{ClientService, Endpoint, Request};
use crate::http::{body, Body, SoapFuture, SoapRequest, SoapService};
use crate::wire::wusp;

/// One MS-WUSP endpoint of a shared [`ClientService`].
pub struct SoapEndpoint {
    svc: Arc<ClientService>,
    endpoint: Endpoint,
}

impl SoapEndpoint {
    /// The endpoint `endpoint` of `svc`.
    pub fn new(svc: Arc<ClientService>, endpoint: Endpoint) -> Self {
        Self { svc, endpoint }
    }

    /// `(path, service)` for the three endpoints, ready for `Router::soap`.
    pub fn all(svc: &Arc<ClientService>) -> [(&'static str, Arc<dyn SoapService>); 3] {
        let mk = |e| Arc::new(SoapEndpoint::new(svc.clone(), e)) as Arc<dyn SoapService>;
        [
            (wusp::SIMPLE_AUTH_PATH, mk(Endpoint::SimpleAuth)),
            (wusp::CLIENT_PATH, mk(Endpoint::Client)),
            (wusp::REPORTING_PATH, mk(Endpoint::Reporting)),
        ]
    }
}

/// The transport-free request for `req`.
fn request<'a>(
    endpoint: Endpoint,
    tls: bool,
    req: &'a SoapRequest,
    host: Option<&'a str>,
) -> Request<'a> {
    Request {
        endpoint,
        soap_action: req.soap_action.as_deref(),
        host,
        tls,
        body: &req.body,
        peer: Some(req.peer.ip()),
    }
}

impl SoapService for SoapEndpoint {
    fn name(&self) -> &'static str {
        match self.endpoint {
            Endpoint::SimpleAuth => "simpleauth",
            Endpoint::Client => "client",
            Endpoint::Reporting => "reporting",
        }
    }

    /// The Reporting byte budget is the LAN clients' (ReportEventBatch): a downstream
    /// server's rollup (its SOAPAction names a rollup operation) is not charged to it, as
    /// SyncUpdates bodies on the client endpoint are not. A full rollup of 10,000 computers is
    /// gigabytes; at a client's budget it would take days. What bounds a rollup is what bounds
    /// every SOAP body: `max_request_body` and the fair admission gate. A body whose operation
    /// differs from its SOAPAction is refused with a fault before anything is stored.
    fn refuse_before_body(
        &self,
        peer: std::net::SocketAddr,
        body_len: u64,
        soap_action: Option<&str>,
    ) -> Option<Response<Body>> {
        match self.endpoint {
            Endpoint::Reporting
                if !soap_action.is_some_and(crate::wire::sss::rollup::action::is_rollup) =>
            {
                self.svc.shed.refuse(peer.ip(), body_len)
            }
            _ => None,
        }
    }

    /// A downstream server's `RollupComputerStatus` may be larger than any client request:
    /// up to `RollupComputerStatusMaxBatchSize` computers with every status of each
    /// (`[rollup] max_request_body`).
    fn body_limit(&self, soap_action: Option<&str>) -> Option<u64> {
        (self.endpoint == Endpoint::Reporting
            && soap_action == Some(crate::wire::sss::rollup::action::ROLLUP_COMPUTER_STATUS))
        .then_some(self.svc.opts.rollup_max_body)
    }

    fn call(&self, req: SoapRequest) -> SoapFuture {
        let svc = self.svc.clone();
        let endpoint = self.endpoint;
        Box::pin(async move {
            let host = req
                .headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let tls = req.headers.get(crate::http::tls::TLS_MARK_HEADER).is_some();
            // A SyncUpdates page over a current index is answered here (see
            // `ClientService::handle_now`); everything else on the blocking pool.
            let joined = match svc.handle_now(&request(endpoint, tls, &req, host.as_deref())) {
                Some(reply) => Ok(reply),
                None => {
                    // Waits its turn (fair) for one of the few answering slots; never closed.
                    let permit = svc.gate().clone().acquire_owned().await.ok();
                    tokio::task::spawn_blocking(move || {
                        let _permit = permit;
                        svc.handle(&request(endpoint, tls, &req, host.as_deref()))
                    })
                    .await
                }
            };
            match joined {
                Ok(reply) => {
                    let mut r: Response<Body> = Response::new(body::full(reply.body));
                    *r.status_mut() = StatusCode::from_u16(reply.status)
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    let ct = if reply.status == 400 {
                        "text/plain; charset=utf-8"
                    } else {
                        "text/xml; charset=utf-8"
                    };
                    r.headers_mut()
                        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
                    r
                }
                Err(e) => {
                    tracing::error!(error = %e, "client service task failed");
                    body::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
                }
            }
        })
    }
}
