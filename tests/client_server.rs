//! The client protocol through the real server (`app::Server`): the three MS-WUSP
//! endpoints registered on the router, over plain HTTP and over HTTPS (rustls, a self-signed
//! certificate made here), content URLs pointing at this server, the router's body limit.

#[path = "support/wusp_agent.rs"]
mod agent;

use std::sync::Arc;

use agent::{group_path, seed, Agent};
use wsus_edge::app::Server;
use wsus_edge::config::Config;
use wsus_edge::simulate::Catalog;
use wsus_edge::wire::wusp;

struct Edge {
    http: String,
    https: Option<String>,
    cat: Arc<Catalog>,
    cert_der: Option<Vec<u8>>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

async fn edge(tls: bool, advertised: Option<&str>) -> Edge {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().unwrap();
    c.server.data_dir = dir.path().to_path_buf();
    c.server.max_request_body = 256 * 1024;
    c.server.advertised_url = advertised.map(str::to_string);
    let mut cert_der = None;
    if tls {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cp = dir.path().join("cert.pem");
        let kp = dir.path().join("key.pem");
        std::fs::write(&cp, ck.cert.pem()).unwrap();
        std::fs::write(&kp, ck.key_pair.serialize_pem()).unwrap();
        cert_der = Some(ck.cert.der().to_vec());
        c.server.tls_listen = Some("127.0.0.1:0".parse().unwrap());
        c.server.tls_cert = Some(cp);
        c.server.tls_key = Some(kp);
    }
    let server = Server::bind(c).await.unwrap();
    let cat = Arc::new(Catalog::generate(150, 7));
    seed(&server.state().store, &cat);
    let http = format!("http://{}", server.local_addr());
    let https = server
        .tls_local_addr()
        .map(|a| format!("https://localhost:{}", a.port()));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        server
            .run_until(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Edge {
        http,
        https,
        cat,
        cert_der,
        _dir: dir,
        stop: Some(tx),
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_the_agent_over_http_with_content_urls_at_itself() {
    let e = edge(false, None).await;
    let mut a = Agent::new(&e.http);
    a.handshake(Some("Workstations")).await;
    let s = a.scan(None).await;
    let want = agent::want_offered(
        &e.cat,
        &group_path(&e.cat, Some("Workstations")),
        &s.installed,
    );
    assert_eq!(s.offered(), want);
    let ids: Vec<i32> = s
        .received
        .iter()
        .filter(|(_, (k, _, _))| want.contains(k))
        .map(|(id, _)| *id)
        .collect();
    let ext = a.extended(&ids).await;
    let loc = ext.file_locations.first().expect("file locations");
    assert!(
        loc.url.starts_with(&format!("{}/Content/", e.http)),
        "{}",
        loc.url
    );
    // GetFileLocations answers the same URL.
    let fl = a
        .call(
            wusp::CLIENT_PATH,
            &wusp::GetFileLocations {
                cookie: a.cookie.clone().unwrap(),
                file_digests: vec![loc.digest.to_vec(), vec![1, 2, 3]],
            },
        )
        .await
        .unwrap();
    assert_eq!(fl.file_locations.len(), 1);
    assert_eq!(fl.file_locations[0].url, loc.url);
    // Path matching is case-insensitive, the native agent posts to lower-case client.asmx.
    let cfg = a
        .call(
            "/CLIENTWEBSERVICE/Client.asmx",
            &wusp::GetConfig {
                protocol_version: "1.8".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(cfg.result.property("ProtocolVersion"), Some("3.2"));
    // A body over the configured limit is refused by the router (413) before parsing.
    let big = format!(
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>{}</s:Body></s:Envelope>",
        "<x/>".repeat(100_000)
    );
    let (st, _) = a
        .post_raw(wusp::CLIENT_PATH, wusp::action::SYNC_UPDATES, big)
        .await;
    assert_eq!(st, 413);
    // Garbage → 400, the server keeps serving.
    let (st, _) = a
        .post_raw(
            wusp::CLIENT_PATH,
            wusp::action::SYNC_UPDATES,
            "\u{0}\u{1}<<".into(),
        )
        .await;
    assert_eq!(st, 400);
    assert!(a.sync(None, None).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_scans_over_https_and_advertised_url_wins() {
    let e = edge(true, Some("http://edge.branch.test:8530/")).await;
    let https = e.https.clone().expect("TLS listener");
    let cert = reqwest::Certificate::from_der(e.cert_der.as_ref().unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(cert)
        .https_only(true)
        .build()
        .unwrap();
    let mut a = Agent::with_client(&https, client);
    a.handshake(None).await;
    let s = a.scan(None).await;
    let want = agent::want_offered(
        &e.cat,
        &[wsus_edge::model::groups::UNASSIGNED_COMPUTERS],
        &s.installed,
    );
    assert_eq!(s.offered(), want);
    let ids: Vec<i32> = s.received.keys().copied().take(40).collect();
    let ext = a.extended(&ids).await;
    for l in &ext.file_locations {
        assert!(
            l.url.starts_with("http://edge.branch.test:8530/Content/"),
            "{}",
            l.url
        );
    }
    // Plain HTTP still works beside it.
    let mut b = Agent::new(&e.http);
    b.handshake(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_get_plain_http_content_urls_on_the_client_port_and_any_legal_host_works() {
    let e = edge(true, None).await;
    let https = e.https.clone().expect("TLS listener");
    let cert = reqwest::Certificate::from_der(e.cert_der.as_ref().unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(cert)
        .build()
        .unwrap();
    let mut a = Agent::with_client(&https, client);
    a.handshake(None).await;
    let s = a.scan(None).await;
    let ids: Vec<i32> = s.received.keys().copied().take(50).collect();
    let ext = a.extended(&ids).await;
    assert!(!ext.file_locations.is_empty());
    // WS2025: http on the content (client) port, even for a TLS client (INV §9.8; the issue's
    // field report); the HTTP listener is e.http.
    let port = e.http.rsplit(':').next().unwrap();
    for l in &ext.file_locations {
        assert!(
            l.url
                .starts_with(&format!("http://localhost:{port}/Content/")),
            "{}",
            l.url
        );
    }
    // A Host with `_` (legal in a URI reg-name) is used as sent.
    let mut b = Agent::new(&e.http);
    b.handshake(None).await;
    let body = agent::envelope(&wusp::GetFileLocations {
        cookie: b.cookie.clone().unwrap(),
        file_digests: vec![ext.file_locations[0].digest.to_vec()],
    });
    let r = b
        .http
        .post(format!("{}{}", e.http, wusp::CLIENT_PATH))
        .header("content-type", "text/xml; charset=utf-8")
        .header(
            "soapaction",
            format!("\"{}\"", wusp::action::GET_FILE_LOCATIONS),
        )
        .header("host", format!("branch_edge.corp:{port}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    let got = wsus_edge::wire::soap::decode::<wusp::GetFileLocationsResponse>(text.as_bytes())
        .expect(&text);
    assert!(
        got.file_locations[0]
            .url
            .starts_with(&format!("http://branch_edge.corp:{port}/Content/")),
        "{}",
        got.file_locations[0].url
    );
}
