//! Test support for the client protocol: a store seeded from the simulated catalog, a loopback
//! HTTP server around `ClientService` (plus a `/Content/` stand-in serving the catalog's
//! payloads with byte ranges until the content cache is wired into the router), and a scripted
//! Windows Update Agent that plays the real call sequence over HTTP.
#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand::seq::SliceRandom;
use sha2::Digest;
use uuid::Uuid;

use wsus_edge::client_service::{self, ClientService, Endpoint};
use wsus_edge::model::{groups, RevisionKey};
use wsus_edge::simulate::Catalog;
use wsus_edge::store::{NewRevision, Store};
use wsus_edge::wire::soap::{self, Operation, SoapBody};
use wsus_edge::wire::wusp::{self, AuthorizationCookie, Cookie, DeploymentAction};
use wsus_edge::wire::xml::{parse_document, Limits};
use wsus_edge::wire::WireError;

/// Seeds `store` from `cat`: revisions (oldest first), groups, approvals, declines.
pub fn seed(store: &Store, cat: &Catalog) {
    let mut revs: Vec<NewRevision> = cat
        .revisions()
        .map(|r| NewRevision {
            record: r.record.clone(),
            xml: cat.xml(&r.record.key).expect("xml"),
        })
        .collect();
    revs.sort_by_key(|r| r.record.key.revision);
    for chunk in revs.chunks(200) {
        store.commit_batch(chunk, &[], None).expect("commit");
    }
    for g in cat.groups() {
        if store.group(&g.id).unwrap().is_none() {
            store.add_group(g).expect("group");
        }
    }
    for d in cat.deployments() {
        store.set_deployment(d).expect("deployment");
    }
    for id in cat.declined() {
        store.decline(&id).expect("decline");
    }
}

/// A running loopback server.
pub struct TestServer {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The service.
    pub svc: Arc<ClientService>,
}

async fn route(
    req: Request<Incoming>,
    svc: Arc<ClientService>,
    cat: Arc<Catalog>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    if path.to_ascii_lowercase().starts_with("/content/") {
        return content(&req, &path, &cat);
    }
    let Some(endpoint) = Endpoint::from_path(&path) else {
        return Response::builder()
            .status(404)
            .body(Full::new(Bytes::new()))
            .unwrap();
    };
    let action = req
        .headers()
        .get("soapaction")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().trim_matches('"').to_string());
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let reply = tokio::task::spawn_blocking(move || {
        svc.handle(&client_service::Request {
            endpoint,
            soap_action: action.as_deref(),
            host: host.as_deref(),
            tls: false,
            body: &body,
            peer: None,
        })
    })
    .await
    .unwrap();
    Response::builder()
        .status(reply.status)
        .header("content-type", "text/xml; charset=utf-8")
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap()
}

/// `/Content/XX/SHA1.ext` with `Range: bytes=a-b` from the catalog's payloads.
fn content(req: &Request<Incoming>, path: &str, cat: &Catalog) -> Response<Full<Bytes>> {
    let name = path.rsplit('/').next().unwrap_or("");
    let hex = name.split('.').next().unwrap_or("");
    let not_found = || {
        Response::builder()
            .status(404)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let Ok(sha) = hex::decode(hex) else {
        return not_found();
    };
    let Ok(sha1) = <[u8; 20]>::try_from(sha.as_slice()) else {
        return not_found();
    };
    let Some(id) = cat.payloads().by_sha1(&sha1) else {
        return not_found();
    };
    let size = cat.payloads().get(id).unwrap().size;
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    let (a, b) = range.unwrap_or((0, size - 1));
    let b = b.min(size - 1);
    let data = cat.payloads().read_range(id, a, b - a + 1).unwrap();
    Response::builder()
        .status(if range.is_some() { 206 } else { 200 })
        .header("content-range", format!("bytes {a}-{b}/{size}"))
        .body(Full::new(Bytes::from(data)))
        .unwrap()
}

/// Starts the loopback server.
pub async fn start(svc: Arc<ClientService>, cat: Arc<Catalog>) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let s2 = svc.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = s2.clone();
            let cat = cat.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let svc = svc.clone();
                    let cat = cat.clone();
                    async move { Ok::<_, Infallible>(route(req, svc, cat).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    TestServer {
        base: format!("http://{addr}"),
        svc,
    }
}

/// What a scan found.
#[derive(Debug, Default, Clone)]
pub struct ScanResult {
    /// Every UpdateInfo received: local id → (revision, action, is_leaf).
    pub received: HashMap<i32, (RevisionKey, DeploymentAction, bool)>,
    /// Non-leaf updates the agent reports installed (update ids).
    pub installed: HashSet<Uuid>,
    /// SyncUpdates calls made.
    pub calls: usize,
    /// Out-of-scope ids received.
    pub out_of_scope: Vec<i32>,
    /// Latency of each SyncUpdates call.
    pub latencies: Vec<std::time::Duration>,
    /// Ids received in `ChangedUpdates`, with the deployment they carried.
    pub changed: Vec<(i32, wusp::Deployment)>,
    /// Every deployment received, by local id (the newest one).
    pub deployments: HashMap<i32, wusp::Deployment>,
}

impl ScanResult {
    /// Every received revision with its action.
    pub fn actions(&self) -> std::collections::BTreeMap<RevisionKey, DeploymentAction> {
        self.received.values().map(|(k, a, _)| (*k, *a)).collect()
    }

    /// The deployment last received for revision `k`.
    pub fn deployment_of(&self, k: &RevisionKey) -> Option<&wusp::Deployment> {
        let id = self.received.iter().find(|(_, (kk, _, _))| kk == k)?.0;
        self.deployments.get(id)
    }

    /// The revisions offered for install/uninstall/bundle.
    pub fn offered(&self) -> BTreeSet<RevisionKey> {
        self.received
            .values()
            .filter(|(_, a, _)| {
                matches!(
                    a,
                    DeploymentAction::Install
                        | DeploymentAction::Uninstall
                        | DeploymentAction::Bundle
                )
            })
            .map(|(k, _, _)| *k)
            .collect()
    }
}

/// A scripted agent.
pub struct Agent {
    /// Server base URL.
    pub base: String,
    /// The HTTP client (keep-alive pool).
    pub http: reqwest::Client,
    /// The client id.
    pub client_id: String,
    /// Session cookie.
    pub cookie: Option<Cookie>,
    /// Config last change.
    pub last_change: Option<time::OffsetDateTime>,
}

/// Whether the agent's machine "has" a non-leaf update installed (categories always; 3 of 4
/// detectoids, by id).
pub fn installs(kind_is_category: bool, id: &Uuid) -> bool {
    kind_is_category || !id.as_bytes()[0].is_multiple_of(4)
}

/// The revision named by a core fragment's `UpdateIdentity`, and whether it says Category.
pub fn identity_of(core: &str) -> (RevisionKey, bool) {
    let root = parse_document(&format!("<r>{core}</r>"), &Limits::default())
        .expect("core fragment is XML");
    let id = root.child("UpdateIdentity").expect("UpdateIdentity");
    let key = RevisionKey::new(
        Uuid::parse_str(id.attr("UpdateID").unwrap()).unwrap(),
        id.attr("RevisionNumber").unwrap().parse().unwrap(),
    );
    let cat = root
        .child("Properties")
        .and_then(|p| p.attr("UpdateType"))
        .is_some_and(|t| t == "Category");
    (key, cat)
}

impl Agent {
    /// A new agent with a random client id.
    pub fn new(base: &str) -> Self {
        Self::with_client(base, reqwest::Client::builder().build().unwrap())
    }

    /// A new agent using `http` (e.g. trusting a test certificate).
    pub fn with_client(base: &str, http: reqwest::Client) -> Self {
        Self {
            base: base.to_string(),
            http,
            client_id: Uuid::new_v4().to_string(),
            cookie: None,
            last_change: None,
        }
    }

    /// Posts an operation; a fault comes back as `WireError::Fault`.
    pub async fn call<T: Operation>(&self, path: &str, body: &T) -> Result<T::Response, WireError> {
        let (status, text) = self.post_raw(path, T::ACTION, soap::encode(body)).await;
        assert!(status == 200 || status == 500, "HTTP {status}: {text}");
        soap::decode::<T::Response>(text.as_bytes())
    }

    /// Posts raw bytes with a SOAPAction; returns status and body.
    pub async fn post_raw(&self, path: &str, action: &str, body: String) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", soap::soap_action_header(action))
            .body(body)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.text().await.unwrap())
    }

    /// GetConfig → GetAuthorizationCookie → GetCookie → RegisterComputer.
    pub async fn handshake(&mut self, target_group: Option<&str>) -> wusp::Config {
        let cfg = self
            .call(
                wusp::CLIENT_PATH,
                &wusp::GetConfig {
                    protocol_version: "2.90".into(),
                },
            )
            .await
            .unwrap()
            .result;
        let url = &cfg.auth_info[0].service_url;
        let auth = self
            .call(
                &format!("/{url}"),
                &wusp::GetAuthorizationCookie {
                    client_id: self.client_id.clone(),
                    target_group_name: target_group.map(str::to_string),
                    dns_name: format!("{}.branch.test", &self.client_id[..8]),
                },
            )
            .await
            .unwrap()
            .result;
        self.last_change = Some(cfg.last_change);
        self.get_cookie(auth).await.unwrap();
        self.call(
            wusp::CLIENT_PATH,
            &wusp::RegisterComputer {
                cookie: self.cookie.clone().unwrap(),
                computer_info: wusp::ComputerInfo {
                    dns_name: "pc.branch.test".into(),
                    os_major: Some(10),
                    os_minor: Some(0),
                    os_build: Some(26100),
                    client_version: Some([10, 0, 26100, 1]),
                    ..Default::default()
                },
            },
        )
        .await
        .unwrap();
        cfg
    }

    /// GetCookie with an authorization cookie.
    pub async fn get_cookie(&mut self, auth: AuthorizationCookie) -> Result<(), WireError> {
        let c = self
            .call(
                wusp::CLIENT_PATH,
                &wusp::GetCookie {
                    auth_cookies: vec![auth],
                    old_cookie: None,
                    last_change: self.last_change,
                    current_time: Some(time::OffsetDateTime::now_utc()),
                    protocol_version: "2.90".into(),
                },
            )
            .await?
            .result;
        self.cookie = Some(c);
        Ok(())
    }

    /// One SyncUpdates call.
    pub async fn sync(
        &self,
        installed: Option<Vec<i32>>,
        other: Option<Vec<i32>>,
    ) -> Result<wusp::SyncInfo, WireError> {
        self.sync_filtered(installed, other, &[]).await
    }

    /// One SyncUpdates call limited to categories.
    pub async fn sync_filtered(
        &self,
        installed: Option<Vec<i32>>,
        other: Option<Vec<i32>>,
        filter: &[Uuid],
    ) -> Result<wusp::SyncInfo, WireError> {
        Ok(self
            .call(
                wusp::CLIENT_PATH,
                &wusp::SyncUpdates {
                    cookie: self.cookie.clone().unwrap(),
                    parameters: wusp::SyncUpdateParameters {
                        installed_non_leaf: installed,
                        other_cached: other,
                        filter_category_ids: filter.to_vec(),
                        ..Default::default()
                    },
                },
            )
            .await?
            .result)
    }

    /// Renews the session as the native agent does when its cookie expired: a new
    /// authorization cookie, then GetCookie with the old session cookie as `oldCookie`.
    pub async fn renew_cookie(&mut self) -> Result<(), WireError> {
        let auth = self
            .call(
                wusp::SIMPLE_AUTH_PATH,
                &wusp::GetAuthorizationCookie {
                    client_id: self.client_id.clone(),
                    target_group_name: None,
                    dns_name: format!("{}.branch.test", &self.client_id[..8]),
                },
            )
            .await?
            .result;
        let c = self
            .call(
                wusp::CLIENT_PATH,
                &wusp::GetCookie {
                    auth_cookies: vec![auth],
                    old_cookie: self.cookie.clone(),
                    last_change: self.last_change,
                    current_time: Some(time::OffsetDateTime::now_utc()),
                    protocol_version: "2.90".into(),
                },
            )
            .await?
            .result;
        self.cookie = Some(c);
        Ok(())
    }

    /// StartCategoryScan, without a cookie, as the native agent sends it before a
    /// category-limited scan.
    pub async fn start_category_scan(&self, filter: &[Uuid]) -> Vec<Uuid> {
        self.call(
            wusp::CLIENT_PATH,
            &wusp::StartCategoryScan {
                requested: filter
                    .iter()
                    .map(|c| wusp::CategoryRelationship {
                        index_of_and_group: 0,
                        category_id: *c,
                    })
                    .collect(),
            },
        )
        .await
        .unwrap()
        .preferred
    }

    /// The driver pass: one SyncUpdates with `SkipSoftwareSync` and the devices, the driver
    /// cache kept apart from the software cache.
    pub async fn driver_scan(
        &mut self,
        installed: &[i32],
        devices: Vec<wusp::SpecDevice>,
        cached_drivers: Option<Vec<i32>>,
    ) -> wusp::SyncInfo {
        let info = self
            .call(
                wusp::CLIENT_PATH,
                &wusp::SyncUpdates {
                    cookie: self.cookie.clone().unwrap(),
                    parameters: wusp::SyncUpdateParameters {
                        installed_non_leaf: Some(installed.to_vec()),
                        system_spec: true,
                        devices,
                        cached_driver_ids: cached_drivers,
                        skip_software_sync: true,
                        ..Default::default()
                    },
                },
            )
            .await
            .unwrap()
            .result;
        self.cookie = Some(info.new_cookie.clone());
        info
    }

    /// The installed non-leaf ids of a finished scan, as the next SyncUpdates sends them.
    pub fn installed_ids(r: &ScanResult) -> Vec<i32> {
        r.received
            .iter()
            .filter(|(_, (k, _, leaf))| !leaf && r.installed.contains(&k.update_id))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The SyncUpdates loop, starting from `prev` (cached ids) or from nothing.
    pub async fn scan(&mut self, prev: Option<&ScanResult>) -> ScanResult {
        self.scan_filtered(prev, &[]).await
    }

    /// The SyncUpdates loop limited to `filter` (StartCategoryScan first, as the native
    /// agent does at ProtocolVersion 3.2), applying ChangedUpdates to its cache.
    pub async fn scan_filtered(
        &mut self,
        prev: Option<&ScanResult>,
        filter: &[Uuid],
    ) -> ScanResult {
        if !filter.is_empty() {
            let preferred = self.start_category_scan(filter).await;
            assert_eq!(preferred, filter, "StartCategoryScan echoes the categories");
        }
        let mut r = ScanResult::default();
        let mut installed_ids: Vec<i32> = Vec::new();
        let mut other_ids: Vec<i32> = Vec::new();
        if let Some(p) = prev {
            for (id, (k, _, leaf)) in &p.received {
                if !leaf && p.installed.contains(&k.update_id) {
                    installed_ids.push(*id);
                } else {
                    other_ids.push(*id);
                }
            }
            r.installed = p.installed.clone();
            r.received = p.received.clone();
            r.deployments = p.deployments.clone();
        }
        loop {
            r.calls += 1;
            assert!(r.calls < 5000, "scan does not converge");
            let first = installed_ids.is_empty() && other_ids.is_empty();
            let started = std::time::Instant::now();
            let info = self
                .sync_filtered(
                    (!first).then(|| installed_ids.clone()),
                    (!first).then(|| other_ids.clone()),
                    filter,
                )
                .await
                .unwrap();
            r.latencies.push(started.elapsed());
            self.cookie = Some(info.new_cookie.clone());
            for gone in &info.out_of_scope {
                r.received.remove(gone);
                r.deployments.remove(gone);
                installed_ids.retain(|i| i != gone);
                other_ids.retain(|i| i != gone);
                r.out_of_scope.push(*gone);
            }
            for u in &info.changed_updates {
                let e = r
                    .received
                    .get_mut(&u.id)
                    .expect("a change to a cached update");
                e.1 = u.deployment.action;
                e.2 = u.is_leaf;
                r.deployments.insert(u.id, u.deployment.clone());
                r.changed.push((u.id, u.deployment.clone()));
            }
            let mut non_leaf = false;
            for u in &info.new_updates {
                assert!(
                    !r.received.contains_key(&u.id),
                    "revision {} was listed as cached and came again",
                    u.id
                );
                r.deployments.insert(u.id, u.deployment.clone());
                let (key, is_cat) = identity_of(&u.xml);
                assert_eq!(u.deployment.auto_select, 0);
                r.received
                    .insert(u.id, (key, u.deployment.action, u.is_leaf));
                if !u.is_leaf {
                    non_leaf = true;
                }
                if !u.is_leaf
                    && u.deployment.action == DeploymentAction::Evaluate
                    && installs(is_cat, &key.update_id)
                    && installed_ids.len() < wusp::MAX_INSTALLED_NON_LEAF
                {
                    r.installed.insert(key.update_id);
                    installed_ids.push(u.id);
                } else {
                    other_ids.push(u.id);
                }
            }
            if !info.truncated && !non_leaf {
                break;
            }
        }
        r
    }

    /// GetExtendedUpdateInfo for `ids` (batches of 50).
    pub async fn extended(&self, ids: &[i32]) -> wusp::ExtendedUpdateInfo {
        let mut all = wusp::ExtendedUpdateInfo::default();
        for chunk in ids.chunks(wusp::MAX_EXTENDED_UPDATES_PER_REQUEST) {
            let r = self
                .call(
                    wusp::CLIENT_PATH,
                    &wusp::GetExtendedUpdateInfo {
                        cookie: self.cookie.clone().unwrap(),
                        revision_ids: chunk.to_vec(),
                        info_types: vec!["Extended".into(), "LocalizedProperties".into()],
                        locales: vec!["en-US".into(), "en".into()],
                    },
                )
                .await
                .unwrap()
                .result;
            all.updates.extend(r.updates);
            all.file_locations.extend(r.file_locations);
            all.out_of_scope.extend(r.out_of_scope);
        }
        all
    }

    /// Delivery-Optimization-style download: 1 MiB closed ranges in shuffled order; returns
    /// the assembled bytes.
    pub async fn download(&self, url: &str, size: u64) -> Vec<u8> {
        const PIECE: u64 = 1 << 20;
        let mut pieces: Vec<u64> = (0..size.div_ceil(PIECE)).collect();
        pieces.shuffle(&mut rand::thread_rng());
        let mut buf = vec![0u8; size as usize];
        for p in pieces {
            let a = p * PIECE;
            let b = (a + PIECE).min(size) - 1;
            let r = self
                .http
                .get(url)
                .header("range", format!("bytes={a}-{b}"))
                .header("user-agent", "Microsoft-Delivery-Optimization/10.1")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 206, "{url} {a}-{b}");
            let bytes = r.bytes().await.unwrap();
            assert_eq!(bytes.len() as u64, b - a + 1);
            buf[a as usize..=b as usize].copy_from_slice(&bytes);
        }
        buf
    }
}

/// SHA-256 of bytes.
pub fn sha256(b: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(b).into()
}

/// The group path the oracle takes for a computer that asked for `target` (client-side).
pub fn group_path(cat: &Catalog, target: Option<&str>) -> Vec<Uuid> {
    match target.and_then(|t| cat.group_named(t)) {
        Some(g) => vec![g.id],
        None => vec![groups::UNASSIGNED_COMPUTERS],
    }
}

/// Body type helper for raw posts.
pub fn envelope<T: SoapBody>(b: &T) -> String {
    soap::encode(b)
}

/// The oracle's delivery of a software pass, as client actions.
pub fn want_actions(
    cat: &Catalog,
    path: &[Uuid],
    installed: &HashSet<Uuid>,
    filter: &[Uuid],
) -> std::collections::BTreeMap<RevisionKey, DeploymentAction> {
    use wsus_edge::simulate::DeliveryAction as D;
    cat.delivery(path, installed, filter)
        .into_iter()
        .map(|(k, d)| {
            let a = match d.action {
                D::Install => DeploymentAction::Install,
                D::Uninstall => DeploymentAction::Uninstall,
                D::Bundle => DeploymentAction::Bundle,
                D::Evaluate => DeploymentAction::Evaluate,
                D::PreDeploymentCheck => DeploymentAction::PreDeploymentCheck,
            };
            (k, a)
        })
        .collect()
}

/// The revisions the oracle delivers for install, uninstall or in a bundle.
pub fn want_offered(
    cat: &Catalog,
    path: &[Uuid],
    installed: &HashSet<Uuid>,
) -> BTreeSet<RevisionKey> {
    want_actions(cat, path, installed, &[])
        .into_iter()
        .filter(|(_, a)| {
            matches!(
                a,
                DeploymentAction::Install | DeploymentAction::Uninstall | DeploymentAction::Bundle
            )
        })
        .map(|(k, _)| k)
        .collect()
}
