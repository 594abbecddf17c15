//! The `/selfupdate/...` tree (WUA's self-update files) through a plain streamed proxy to
//! `<upstream>/selfupdate/...`: these names carry no digest, so nothing is verified or
//! cached; status, length, type, ranges and validators pass through unchanged.

use futures_util::TryStreamExt;
use http::{HeaderMap, Method, Response, StatusCode};

use super::body::{self, Body};

/// Longest self-update path accepted.
const MAX_PATH: usize = 512;

/// Proxies `/selfupdate/...` to the upstream.
#[derive(Debug, Clone)]
pub struct SelfUpdateProxy {
    client: reqwest::Client,
    base: String,
}

impl SelfUpdateProxy {
    /// A proxy to `base` (no trailing slash) through `client`
    /// ([`crate::config::UpstreamConfig::http_client`]).
    pub fn new(base: String, client: reqwest::Client) -> Self {
        Self { client, base }
    }

    /// Answers one request for a `/selfupdate/...` path.
    pub async fn handle(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            return body::text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
        }
        if path.len() > MAX_PATH {
            return body::text(StatusCode::URI_TOO_LONG, "path too long");
        }
        let hostile = path
            .bytes()
            .any(|b| b == b'%' || b == b'\\' || b.is_ascii_control() || b >= 0x80)
            || path.split('/').any(|s| s == ".." || s == ".");
        if hostile {
            return body::text(StatusCode::NOT_FOUND, "not found");
        }
        let mut req = self
            .client
            .request(method.clone(), format!("{}{}", self.base, path));
        for h in ["range", "if-range", "if-none-match", "if-modified-since"] {
            if let Some(v) = headers.get(h) {
                req = req.header(h, v.clone());
            }
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(path, error = %crate::logging::chain(&e), "self-update upstream failed");
                let st = if e.is_timeout() {
                    StatusCode::GATEWAY_TIMEOUT
                } else {
                    StatusCode::BAD_GATEWAY
                };
                return body::text(st, "upstream unavailable");
            }
        };
        let mut out = Response::builder().status(resp.status().as_u16());
        for h in [
            "content-type",
            "content-length",
            "content-range",
            "accept-ranges",
            "etag",
            "last-modified",
        ] {
            if let Some(v) = resp.headers().get(h) {
                out = out.header(h, v.clone());
            }
        }
        let b = if method == Method::HEAD {
            body::empty()
        } else {
            body::stream(resp.bytes_stream().map_err(std::io::Error::other))
        };
        out.body(b)
            .unwrap_or_else(|_| body::text(StatusCode::BAD_GATEWAY, "bad upstream response"))
    }
}
