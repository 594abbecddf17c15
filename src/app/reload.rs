//! SIGHUP: read the configuration again and apply what can change while serving (the HTTPS
//! certificate and key), and log by name every other key that changed, since those need a
//! restart. A configuration that no longer loads is logged and the running one kept. The
//! server never stops on SIGHUP (its default action, termination, is replaced at start-up).

use std::sync::Arc;

use crate::config::Config;
use crate::http::tls::CertSlot;

/// Reads the configuration again (the file, the environment, the command line's flags).
pub type ReloadFn = Box<dyn Fn() -> Result<Config, crate::config::ConfigError> + Send + Sync>;

/// The keys whose values differ between `a` and `b`, as `table.key`.
pub fn changed_keys(a: &Config, b: &Config) -> Vec<&'static str> {
    let d = |x: &dyn std::fmt::Debug, y: &dyn std::fmt::Debug| format!("{x:?}") != format!("{y:?}");
    let (s, t) = (&a.server, &b.server);
    let (u, v) = (&a.upstream, &b.upstream);
    let (c, e) = (&a.content, &b.content);
    let (y, z) = (&a.sync, &b.sync);
    let (m, n) = (&a.admin, &b.admin);
    [
        ("server.listen", d(&s.listen, &t.listen)),
        ("server.data_dir", d(&s.data_dir, &t.data_dir)),
        (
            "server.advertised_url",
            d(&s.advertised_url, &t.advertised_url),
        ),
        ("server.tls_listen", d(&s.tls_listen, &t.tls_listen)),
        ("server.tls_cert", d(&s.tls_cert, &t.tls_cert)),
        ("server.tls_key", d(&s.tls_key, &t.tls_key)),
        (
            "server.max_request_body",
            d(&s.max_request_body, &t.max_request_body),
        ),
        (
            "rollup.max_request_body",
            d(&a.rollup.max_request_body, &b.rollup.max_request_body),
        ),
        ("upstream.url", d(&u.url, &v.url)),
        ("upstream.content_url", d(&u.content_url, &v.content_url)),
        (
            "upstream.max_bandwidth",
            d(&u.max_bandwidth, &v.max_bandwidth),
        ),
        ("upstream.ca_file", d(&u.ca_file, &v.ca_file)),
        ("content.mode", d(&c.mode, &e.mode)),
        (
            "content.download_window",
            d(&c.download_window, &e.download_window),
        ),
        ("content.max_size", d(&c.max_size, &e.max_size)),
        ("sync.interval", d(&y.interval, &z.interval)),
        ("sync.products", d(&y.products, &z.products)),
        (
            "sync.classifications",
            d(&y.classifications, &z.classifications),
        ),
        ("sync.languages", d(&y.languages, &z.languages)),
        ("admin.listen", d(&m.listen, &n.listen)),
        ("admin.token_file", d(&m.token_file, &n.token_file)),
        (
            "admin.metrics_token_file",
            d(&m.metrics_token_file, &n.metrics_token_file),
        ),
        (
            "admin.metrics_loopback_without_token",
            d(
                &m.metrics_loopback_without_token,
                &n.metrics_loopback_without_token,
            ),
        ),
        ("log.format", d(&a.log.format, &b.log.format)),
        ("log.access", d(&a.log.access, &b.log.access)),
    ]
    .into_iter()
    .filter_map(|(k, changed)| changed.then_some(k))
    .collect()
}

/// Keys applied at run time on reload (everything else needs a restart).
const LIVE: [&str; 2] = ["server.tls_cert", "server.tls_key"];

/// One reload: re-read, reload the certificate, log what needs a restart.
pub fn reload_once(running: &Config, reload: &ReloadFn, cert: Option<&Arc<CertSlot>>) {
    let new = match reload() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the configuration does not load; the running configuration stays");
            return;
        }
    };
    match (cert, &new.server.tls_cert, &new.server.tls_key) {
        (Some(slot), Some(c), Some(k)) => match slot.reload(c, k) {
            Ok(()) => tracing::info!(cert = %c.display(), "SIGHUP: TLS certificate reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: TLS certificate not reloaded; the one in use stays")
            }
        },
        (None, Some(_), _) => {
            tracing::warn!("SIGHUP: HTTPS was not configured at start-up; restart to serve it")
        }
        _ => {}
    }
    let restart: Vec<&str> = changed_keys(running, &new)
        .into_iter()
        .filter(|k| !LIVE.contains(k))
        .collect();
    if restart.is_empty() {
        tracing::info!("SIGHUP: configuration reloaded");
    } else {
        tracing::warn!(
            keys = %restart.join(", "),
            "SIGHUP: these keys changed and take effect only after a restart (systemctl restart wsus-edge)"
        );
    }
}

/// SIGHUP's listener. Creating it replaces SIGHUP's default action (terminate), so it is
/// made first thing; signals that arrive before [`spawn`] wait in it.
#[cfg(unix)]
pub type Hangup = Option<tokio::signal::unix::Signal>;
/// No SIGHUP outside Unix.
#[cfg(not(unix))]
pub type Hangup = Option<()>;

/// Starts listening for SIGHUP (must run inside the runtime).
pub fn listen() -> Hangup {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        signal(SignalKind::hangup())
            .map_err(|e| tracing::warn!(error = %e, "SIGHUP handler not installed"))
            .ok()
    }
    #[cfg(not(unix))]
    None
}

/// Handles SIGHUP until the process ends.
pub fn spawn(hup: Hangup, running: Config, reload: ReloadFn, cert: Option<Arc<CertSlot>>) {
    #[cfg(unix)]
    if let Some(mut hup) = hup {
        tokio::spawn(async move {
            let reload = Arc::new(reload);
            while hup.recv().await.is_some() {
                let (r, c, cfg) = (reload.clone(), cert.clone(), running.clone());
                let _ =
                    tokio::task::spawn_blocking(move || reload_once(&cfg, &r, c.as_ref())).await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (hup, running, reload, cert);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn names_the_changed_keys() {
        let p = |t: &str| Config::from_toml(t, Path::new("t"), |_| None).unwrap();
        let a = p("[upstream]\nurl = \"http://a:8530\"\n");
        let b = p("[upstream]\nurl = \"http://b:8530\"\n[sync]\ninterval = \"1h\"\n");
        assert_eq!(changed_keys(&a, &b), vec!["upstream.url", "sync.interval"]);
        assert!(changed_keys(&a, &a).is_empty());
    }
}
