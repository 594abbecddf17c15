//! The client-facing router: which protocol service answers which path, each built from the
//! parts it uses (store, content cache, options), never from [`AppState`] itself.

use std::sync::Arc;

use super::AppState;
use crate::http::{Router, SelfUpdateProxy};

/// Builds the request router. SOAP services are registered here, one line each, e.g.
/// `.soap("/ClientWebService/client.asmx", Arc::new(client_service))`.
pub fn build_router(state: &AppState) -> Router {
    let selfupdate = state.config.upstream.url.as_ref().and_then(|u| {
        match state.config.upstream.http_client() {
            Ok(client) => Some(SelfUpdateProxy::new(
                u.trim_end_matches('/').to_string(),
                client,
            )),
            Err(e) => {
                tracing::error!(error = %e, "self-update proxy disabled");
                None
            }
        }
    });
    let mut router = Router::new(state.content.clone(), state.config.server.max_request_body)
        .limits(crate::http::Limits::from_config(&state.config.server))
        .access_log(state.config.log.access)
        .selfupdate(selfupdate);
    if let Some(client) = client_service(state) {
        for (path, svc) in crate::client_service::http::SoapEndpoint::all(&client) {
            router = router.soap(path, svc);
        }
    }
    server_sync(router, state)
}

/// The MS-WUSP client service over the state's store (cookie key kept in the data dir).
fn client_service(state: &AppState) -> Option<Arc<crate::client_service::ClientService>> {
    use crate::client_service::{ClientService, CookieKey, Options};
    let key_path = state.config.server.data_dir.join("cookie.key");
    let key = CookieKey::load_or_create(&key_path).unwrap_or_else(|e| {
        tracing::warn!(path = %key_path.display(), error = %e, "cookie key not persisted; using a random one");
        CookieKey::random()
    });
    let opts = Options {
        advertised_url: state.config.server.advertised_url.clone(),
        content_port: Some(state.config.server.listen.port()),
        clients: state.config.clients.clone(),
        accept_detailed_rollup: state.config.rollup.accept_detailed,
        rollup_max_body: state.config.rollup.max_request_body,
        ..Options::default()
    };
    match ClientService::new(state.store.clone(), key, opts) {
        Ok(s) => Some(Arc::new(s)),
        Err(e) => {
            tracing::error!(error = %e, "client service disabled: store error");
            None
        }
    }
}

/// Registers the MS-WSUSSS server side for downstream servers on `router` (DownloadFiles
/// queues the files in the content cache). On a store error the service is left out and the
/// error logged.
fn server_sync(mut router: Router, state: &AppState) -> Router {
    use crate::http::SoapService;
    use crate::server_sync::service::PATHS;
    use crate::server_sync::{DownloadHook, ServerSyncOptions, ServerSyncService};
    let content = state.content.clone();
    let hook: DownloadHook = Arc::new(move |files| {
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
    let svc = ServerSyncService::new(
        state.store.clone(),
        ServerSyncOptions {
            advertised_url: state.config.server.advertised_url.clone(),
            cookie_ttl: cookie_ttl_override(),
            on_download: Some(hook),
            languages: state.config.sync.languages.clone(),
        },
    );
    match svc {
        Ok(svc) => {
            let svc: Arc<dyn SoapService> = Arc::new(svc);
            for p in PATHS {
                router.add_soap(p, svc.clone());
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "server-sync service (for downstream servers) disabled")
        }
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
