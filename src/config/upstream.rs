//! `[upstream]` and the one HTTP client everything sent upstream goes through (content
//! fetches, sync, the self-update proxy): its timeouts (connect, stall), user agent, trusted
//! CA, and what it accepts from an upstream it does not control: which redirects it follows
//! ([`redirect_allowed`]) and which addresses a name may resolve to.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

/// `User-Agent` of every request to the upstream.
pub const USER_AGENT: &str = concat!("wsus-edge/", env!("CARGO_PKG_VERSION"));
/// Connect timeout of [`UpstreamConfig::http_client`].
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default longest wait for the next bytes of an upstream answer (`upstream.stall_timeout`).
pub const UPSTREAM_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default bound on one SOAP answer from the upstream (`upstream.max_answer_size`).
pub const DEFAULT_MAX_ANSWER_SIZE: u64 = 256 << 20;
/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;

/// `[upstream]`: the server this one replicates and fills its cache from.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Base URL of the upstream WSUS or wsus-edge; `None` for a disconnected or autonomous server.
    pub url: Option<String>,
    /// Base URL for `/Content/...` when it differs from `url`.
    pub content_url: Option<String>,
    /// Total upstream download rate cap, bytes per second.
    pub max_bandwidth: Option<u64>,
    /// PEM file of a private CA that signs the upstream's certificate.
    pub ca_file: Option<PathBuf>,
    /// Longest wait for the next bytes from upstream (answer head or body) before the
    /// exchange is abandoned.
    pub stall_timeout: Duration,
    /// Largest SOAP answer read from upstream; a bigger one is refused while it streams.
    pub max_answer_size: u64,
    /// Hosts (`name` or `name:port`) a redirect may lead to besides the origin it came from.
    pub redirect_hosts: Vec<String>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            url: None,
            content_url: None,
            max_bandwidth: None,
            ca_file: None,
            stall_timeout: UPSTREAM_READ_TIMEOUT,
            max_answer_size: DEFAULT_MAX_ANSWER_SIZE,
            redirect_hosts: Vec::new(),
        }
    }
}

/// Why [`UpstreamConfig::http_client`] could not build the client.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// `upstream.ca_file` could not be read.
    #[error("upstream.ca_file {}: {source}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `upstream.ca_file` holds no usable PEM certificate.
    #[error("upstream.ca_file {}: {source}", path.display())]
    CaPem {
        /// The file.
        path: PathBuf,
        /// The error.
        source: reqwest::Error,
    },
    /// reqwest refused the settings (e.g. no TLS backend).
    #[error("HTTP client: {0}")]
    Build(reqwest::Error),
}

/// Why a redirect was not followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRefused {
    /// Not http or https.
    #[error("redirect to a {0}: URL refused")]
    Scheme(String),
    /// Another origin, not in `upstream.redirect_hosts`.
    #[error("redirect from {from} to another origin {to} refused (upstream.redirect_hosts)")]
    Origin {
        /// Where the request went first.
        from: String,
        /// Where the redirect pointed.
        to: String,
    },
    /// A loopback or link-local address while the upstream is not one.
    #[error("redirect to the local address {0} refused")]
    Local(String),
    /// From https to http.
    #[error("redirect from https to http refused")]
    Downgrade,
}

impl UpstreamConfig {
    /// The base URL content is fetched from, without a trailing slash.
    pub fn content_base(&self) -> Option<String> {
        self.content_url
            .as_ref()
            .or(self.url.as_ref())
            .map(|u| u.trim_end_matches('/').to_string())
    }

    /// The one HTTP client every request to the upstream goes through (content fetch, sync,
    /// the self-update proxy): connect timeout 10 s, a stall (read) timeout of
    /// `stall_timeout` (no byte for that long, head or body, ends the exchange), the
    /// `wsus-edge/<version>` user agent, the system roots plus `ca_file` when set, and the
    /// redirect policy of `redirect_allowed` (at most `MAX_REDIRECTS`). Names are resolved
    /// by `GuardedResolver`. Callers that need a bound on a whole exchange (sync: 300 s)
    /// set it per request.
    pub fn http_client(&self) -> Result<reqwest::Client, HttpClientError> {
        let allow = Arc::new(self.redirect_hosts.clone());
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error("too many redirects");
            }
            let verdict = match attempt.previous().first() {
                Some(first) => redirect_allowed(first, attempt.url(), &allow),
                None => Ok(()),
            };
            match verdict {
                Ok(()) => attempt.follow(),
                Err(e) => {
                    tracing::warn!(error = %e, "upstream redirect refused");
                    attempt.error(e)
                }
            }
        });
        let mut b = reqwest::Client::builder()
            .connect_timeout(UPSTREAM_CONNECT_TIMEOUT)
            .read_timeout(self.stall_timeout)
            .user_agent(USER_AGENT)
            .redirect(policy)
            .dns_resolver(Arc::new(GuardedResolver::new(self)));
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|source| HttpClientError::CaFile {
                path: ca.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                HttpClientError::CaPem {
                    path: ca.clone(),
                    source,
                }
            })?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        b.build().map_err(HttpClientError::Build)
    }

    /// The host names of `url` and `content_url` (lower case).
    fn own_hosts(&self) -> HashSet<String> {
        [&self.url, &self.content_url]
            .into_iter()
            .flatten()
            .filter_map(|u| Url::parse(u).ok())
            .filter_map(|u| u.host_str().map(str::to_ascii_lowercase))
            .collect()
    }
}

/// True for addresses that reach this machine or its link only: loopback, link-local,
/// unspecified (IPv4, IPv6, and IPv4 mapped into IPv6).
pub fn is_local_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_local_ip(IpAddr::V4(v4));
            }
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// True when `url` names a local address: an IP literal [`is_local_ip`] accepts, or
/// `localhost` (and names under it).
pub fn is_local_url(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return is_local_ip(ip);
    }
    let d = host.trim_end_matches('.').to_ascii_lowercase();
    d == "localhost" || d.ends_with(".localhost")
}

/// Whether a request first sent to `from` may follow a redirect to `to`:
/// - only `http` and `https`, and never from https down to http;
/// - the same origin (scheme, host, port) as `from`, or a host listed in `allow` (`name`, any
///   port, or `name:port`);
/// - never a loopback or link-local address (or `localhost`) unless `from` is one itself.
pub fn redirect_allowed(from: &Url, to: &Url, allow: &[String]) -> Result<(), RedirectRefused> {
    // Before the target's own checks: it only fires for an `http` target, which they accept.
    if from.scheme() == "https" && to.scheme() == "http" {
        return Err(RedirectRefused::Downgrade);
    }
    check_target(to, is_local_url(from))?;
    let same_origin = from.scheme() == to.scheme()
        && from.host_str().map(str::to_ascii_lowercase)
            == to.host_str().map(str::to_ascii_lowercase)
        && from.port_or_known_default() == to.port_or_known_default();
    if same_origin || host_listed(to, allow) {
        return Ok(());
    }
    Err(RedirectRefused::Origin {
        from: from.origin().ascii_serialization(),
        to: to.origin().ascii_serialization(),
    })
}

/// Whether content may be fetched from `url` (a file's `MUUrl`), for an upstream at `base`:
/// http or https only, and no loopback or link-local address unless the upstream is one.
pub fn upstream_may_fetch(base: &str, url: &str) -> Result<(), RedirectRefused> {
    let to = Url::parse(url).map_err(|_| RedirectRefused::Scheme("unparsable".into()))?;
    check_target(&to, Url::parse(base).is_ok_and(|b| is_local_url(&b)))
}

/// What every URL the upstream sends this server to (a redirect's target, a file's `MUUrl`)
/// must be: `http` or `https`, and not a loopback or link-local address (or `localhost`)
/// unless where it came from is local too (`local_origin`).
fn check_target(to: &Url, local_origin: bool) -> Result<(), RedirectRefused> {
    if !matches!(to.scheme(), "http" | "https") {
        return Err(RedirectRefused::Scheme(to.scheme().to_string()));
    }
    if is_local_url(to) && !local_origin {
        return Err(RedirectRefused::Local(
            to.host_str().unwrap_or_default().to_string(),
        ));
    }
    Ok(())
}

fn host_listed(to: &Url, allow: &[String]) -> bool {
    let Some(host) = to.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    let port = to.port_or_known_default();
    allow.iter().any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        // `name:port`, `[v6]:port`, or a bare name / address.
        match entry.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && !h.ends_with(':') && p.parse::<u16>().is_ok() => {
                h == host && p.parse::<u16>().ok() == port
            }
            _ => entry == host,
        }
    })
}

/// Resolves host names for the upstream client, dropping loopback and link-local addresses
/// ([`is_local_ip`]) for every name but the upstream's own (`url`, `content_url`): an
/// allow-listed redirect target or a `MUUrl` host cannot be pointed at this machine through
/// DNS. Addresses written in a URL are checked by [`redirect_allowed`] (they are never
/// resolved).
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    own: Arc<HashSet<String>>,
}

impl GuardedResolver {
    fn new(cfg: &UpstreamConfig) -> Self {
        Self {
            own: Arc::new(cfg.own_hosts()),
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_ascii_lowercase();
        let trusted = self.own.contains(&host);
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| trusted || !is_local_ip(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(format!("{host} resolves only to local addresses").into());
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[tokio::test]
    async fn names_resolving_to_local_addresses_are_dropped_unless_they_are_the_upstream() {
        use reqwest::dns::Resolve;
        let name = |n: &str| n.parse::<reqwest::dns::Name>().unwrap();
        let other = GuardedResolver::new(&UpstreamConfig {
            url: Some("http://wsus.example:8530".into()),
            ..Default::default()
        });
        assert!(other.resolve(name("localhost")).await.is_err());
        let own = GuardedResolver::new(&UpstreamConfig {
            url: Some("http://wsus.example:8530".into()),
            content_url: Some("http://LOCALHOST:8531".into()),
            ..Default::default()
        });
        let addrs: Vec<SocketAddr> = own.resolve(name("localhost")).await.unwrap().collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| is_local_ip(a.ip())));
    }

    #[test]
    fn redirects_stay_on_the_origin_or_the_list() {
        let up = u("http://wsus.example:8530/Content/AB/X.cab");
        let ok = |to: &str, allow: &[&str]| {
            let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
            redirect_allowed(&up, &u(to), &allow)
        };
        assert_eq!(ok("http://wsus.example:8530/other", &[]), Ok(()));
        assert_eq!(ok("http://WSUS.example:8530/other", &[]), Ok(()));
        assert!(matches!(
            ok("http://wsus.example:8531/x", &[]),
            Err(RedirectRefused::Origin { .. })
        ));
        assert!(matches!(
            ok("https://wsus.example:8530/x", &[]),
            Err(RedirectRefused::Origin { .. })
        ));
        assert!(matches!(
            ok("http://evil.example:8530/x", &[]),
            Err(RedirectRefused::Origin { .. })
        ));
        assert_eq!(ok("http://cdn.example/x", &["cdn.example"]), Ok(()));
        assert_eq!(ok("https://cdn.example/x", &["cdn.example:443"]), Ok(()));
        assert!(ok("http://cdn.example:81/x", &["cdn.example:80"]).is_err());
        assert!(matches!(
            ok("file:///etc/passwd", &[]),
            Err(RedirectRefused::Scheme(_))
        ));
        // Local targets, even listed ones, from a non-local upstream.
        for to in [
            "http://127.0.0.1:8590/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost/",
            "http://0.0.0.0/",
        ] {
            let allow = [Url::parse(to).unwrap().host_str().unwrap().to_string()];
            let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
            assert!(
                matches!(ok(to, &allow), Err(RedirectRefused::Local(_))),
                "{to}"
            );
        }
        // A loopback upstream may redirect on loopback (same origin, or listed).
        let lo = u("http://127.0.0.1:9000/x");
        assert_eq!(
            redirect_allowed(&lo, &u("http://127.0.0.1:9000/y"), &[]),
            Ok(())
        );
        assert!(redirect_allowed(&lo, &u("http://127.0.0.1:9001/y"), &[]).is_err());
        assert_eq!(
            redirect_allowed(
                &lo,
                &u("http://127.0.0.1:9001/y"),
                &["127.0.0.1:9001".into()]
            ),
            Ok(())
        );
        // A MUUrl is fetched as is, but never from a local address for a remote upstream.
        let base = "http://wsus.example:8530";
        assert_eq!(
            upstream_may_fetch(base, "http://download.windowsupdate.com/c/x.exe"),
            Ok(())
        );
        assert!(upstream_may_fetch(base, "http://127.0.0.1:8590/x").is_err());
        assert!(upstream_may_fetch(base, "file:///etc/passwd").is_err());
        assert_eq!(
            upstream_may_fetch("http://127.0.0.1:1", "http://127.0.0.1:2/x"),
            Ok(())
        );
        // Never down from https.
        let tls = u("https://wsus.example/x");
        assert_eq!(
            redirect_allowed(&tls, &u("http://wsus.example/x"), &["wsus.example".into()]),
            Err(RedirectRefused::Downgrade)
        );
    }
}
