//! The client-facing router: SOAP services plug in by path (any case) with a size-limited
//! body and the SOAPAction; unknown paths are 404; `/selfupdate/` is proxied upstream,
//! through the upstream's one HTTP client (so over HTTPS it trusts `upstream.ca_file`).

mod support;

use std::sync::Arc;

use support::{client, TestEdge, TestUpstream};
use wsus_edge::http::{body, SoapFuture, SoapRequest, SoapService};

struct Echo;

impl SoapService for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn call(&self, req: SoapRequest) -> SoapFuture {
        Box::pin(async move {
            let text = format!(
                "{}|{}|{}",
                req.path,
                req.soap_action.unwrap_or_default(),
                String::from_utf8_lossy(&req.body)
            );
            let mut r = http::Response::new(body::full(text));
            r.headers_mut()
                .insert("content-type", "text/xml; charset=utf-8".parse().unwrap());
            r
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_services_plug_in_by_path_with_limited_bodies() {
    let up = TestUpstream::start().await;
    up.put_at("/selfupdate/wuident.cab", b"self-update bytes");
    let dir = tempfile::tempdir().unwrap();
    let mut c = wsus_edge::config::Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.data_dir = dir.path().to_path_buf();
    c.server.max_request_body = 1000;
    c.upstream.url = Some(up.url());
    let server = wsus_edge::app::Server::bind(c)
        .await
        .unwrap()
        .soap("/ClientWebService/client.asmx", Arc::new(Echo));
    let base = format!("http://{}", server.local_addr());
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));

    let http = client();
    let r = http
        .post(format!("{base}/clientwebservice/CLIENT.asmx"))
        .header(
            "SOAPAction",
            "\"http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/SyncUpdates\"",
        )
        .body("<envelope/>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.text().await.unwrap(),
        "/clientwebservice/CLIENT.asmx|http://www.microsoft.com/SoftwareDistribution/Server/ClientWebService/SyncUpdates|<envelope/>"
    );
    let r = http
        .post(format!("{base}/ClientWebService/client.asmx"))
        .body(vec![b'x'; 1001])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = http
        .get(format!("{base}/ClientWebService/client.asmx"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = http
        // A SOAP path nothing serves (WSUS's admin remoting endpoint) is a 404.
        .post(format!("{base}/ApiRemoting30/WebService.asmx"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // Self-update: plain streamed proxy (no digest in these names), hostile paths refused.
    let r = http
        .get(format!("{base}/SelfUpdate/wuident.cab"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "upstream paths are case-sensitive; this one does not exist"
    );
    let r = http
        .get(format!("{base}/selfupdate/wuident.cab"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), &b"self-update bytes"[..]);
    let addr: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    let (status, _) = support::raw(
        addr,
        "GET /selfupdate/../Content HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 404);

    // Metrics count requests per service and status.
    let m = wsus_edge::metrics::render();
    assert!(
        m.contains("wsus_edge_http_requests_total{service=\"echo\",status=\"200\"}"),
        "{m}"
    );
    assert!(
        m.contains("wsus_edge_http_requests_total{service=\"echo\",status=\"413\"}"),
        "{m}"
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// The self-update proxy used to build its own HTTP client, which ignored `upstream.ca_file`:
/// behind an HTTPS upstream with a private CA every `/selfupdate/` request was a 502. It now
/// goes through `UpstreamConfig::http_client`, like content and sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selfupdate_over_https_trusts_the_ca_file_and_nothing_else() {
    let up = TestUpstream::start().await;
    up.put_at("/selfupdate/wuident.cab", b"self-update bytes over TLS");
    // Site A serves HTTPS with a self-signed certificate and proxies to `up`.
    let certs = tempfile::tempdir().unwrap();
    let (a, a_https, cert) = TestEdge::start_self_signed(up.url(), certs.path()).await;

    // Without the CA file, B refuses A's certificate.
    let untrusting = TestEdge::start(Some(a_https.clone()), |_| {}).await;
    let r = client()
        .get(format!("{}/selfupdate/wuident.cab", untrusting.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);

    // With `upstream.ca_file` naming A's certificate, the bytes come through.
    let b = TestEdge::start(Some(a_https), |c| c.upstream.ca_file = Some(cert.clone())).await;
    let r = client()
        .get(format!("{}/selfupdate/wuident.cab", b.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), &b"self-update bytes over TLS"[..]);
    b.shutdown().await;
    untrusting.shutdown().await;
    a.shutdown().await;
}
