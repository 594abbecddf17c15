//! Answers to payload requests: status, headers and body source for a hit, a miss (the
//! writer's or a reader's view of the download) and the zero-copy hit of the sendfile path.
//! The decisions (range plan, validators) are [`super::range`]'s; the head is built by
//! [`super::serve::respond`].

use std::fs::File;
use std::sync::Arc;

use http::{HeaderMap, Method, Response, StatusCode};

use super::inflight::{Inflight, State};
use super::key::ContentKey;
use super::range::{self, Conditions};
use super::{serve, ContentCache, Lookup};
use crate::http::body::Body;
use crate::metrics;

impl ContentCache {
    /// Answers a payload request (`path` is the raw request path, `/Content/...`) for hyper.
    pub async fn handle(&self, method: &Method, path: &str, headers: &HeaderMap) -> Response<Body> {
        self.answer(method, path, headers)
            .await
            .map(serve::Source::into_body)
    }

    /// Answers a payload request: status, headers and where the body comes from. A miss starts
    /// (or joins) the download and answers from the bytes as they arrive.
    pub async fn answer(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Response<serve::Source> {
        if method != Method::GET && method != Method::HEAD {
            let mut r = serve::text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
            r.headers_mut().insert(
                http::header::ALLOW,
                http::HeaderValue::from_static("GET, HEAD"),
            );
            return r;
        }
        let key = match ContentKey::parse_path(path) {
            Ok(k) => k,
            Err(e) => {
                tracing::debug!(path, error = %e, "refused content path");
                return serve::text(e.status(), &e.to_string());
            }
        };
        let head = method == Method::HEAD;
        let conds = Conditions::from_headers(headers);
        match self.lookup(&key, conds.range.is_some()) {
            Err(e) => {
                metrics::content_request("error");
                tracing::warn!(key = %key, error = %e, "content miss failed");
                serve::text(e.status(), &e.to_string())
            }
            Ok(Lookup::Hit(file)) => {
                metrics::content_request("hit");
                match self.hit_response(&key, file, &conds, head) {
                    Ok(resp) => resp,
                    Err(e) => serve::text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                }
            }
            Ok(Lookup::Started(inf)) => self.miss_response(&key, inf, true, &conds, head).await,
            Ok(Lookup::Joined(inf)) => {
                self.touch(&key.sha1);
                self.miss_response(&key, inf, false, &conds, head).await
            }
        }
    }

    /// The response for a miss: `started` when this request started the download, else it
    /// joined one. Waits until the object's size is known.
    async fn miss_response(
        &self,
        key: &ContentKey,
        inf: Arc<Inflight>,
        started: bool,
        conds: &Conditions<'_>,
        head: bool,
    ) -> Response<serve::Source> {
        let p = inf.wait_size().await;
        let size = match (&p.state, p.size) {
            (State::Failed(e), _) => {
                metrics::content_request("error");
                return serve::text(e.status(), &e.to_string());
            }
            (_, Some(s)) => s,
            (_, None) => p.written,
        };
        metrics::content_request(if started { "miss" } else { "coalesced" });
        let etag = serve::etag(key);
        let plan = range::plan(conds, size, &etag, None);
        let m = serve::Meta {
            key,
            size,
            last_modified: None,
        };
        serve::respond(plan, head, &m, move |start, len| serve::Source::Inflight {
            inf,
            start,
            len,
        })
    }

    /// The response for a hit.
    fn hit_response(
        &self,
        key: &ContentKey,
        file: File,
        conds: &Conditions<'_>,
        head: bool,
    ) -> std::io::Result<Response<serve::Source>> {
        let md = file.metadata()?;
        self.touch(&key.sha1);
        let etag = serve::etag(key);
        let plan = range::plan(conds, md.len(), &etag, md.modified().ok());
        let m = serve::Meta {
            key,
            size: md.len(),
            last_modified: md.modified().ok(),
        };
        let pin = self.inner.pins.pin(key.sha1);
        let file = Arc::new(file);
        Ok(serve::respond(plan, head, &m, |start, len| {
            serve::Source::File {
                file,
                start,
                len,
                pin,
            }
        }))
    }

    /// For the zero-copy path: when `path` names an object complete in the store, the
    /// response head to write and the file range to send with `sendfile`. `None` for
    /// anything else (misses, errors, other methods), which then go through [`Self::answer`].
    /// Recently hit objects stay open with their headers precomputed ([`hot`]).
    pub fn zero_copy_hit(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<serve::ZeroCopyHit> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let key = ContentKey::parse_path(path).ok()?;
        let object = self
            .inner
            .hot
            .get_or_open(&key, || self.inner.dir.open_final(&key))
            .ok()??;
        let pin = self.inner.pins.pin(key.sha1);
        self.touch(&key.sha1);
        metrics::content_request("hit");
        let conds = Conditions::from_headers(headers);
        let plain = conds.range.is_none()
            && conds.if_range.is_none()
            && conds.if_match.is_none()
            && conds.if_none_match.is_none()
            && conds.if_modified_since.is_none();
        if plain {
            return Some(serve::ZeroCopyHit {
                status: StatusCode::OK,
                span: (method == Method::GET && object.size > 0).then_some((0, object.size)),
                object,
                headers: None,
                pin,
            });
        }
        let plan = range::plan(&conds, object.size, &object.etag, object.modified);
        let m = serve::Meta {
            key: &key,
            size: object.size,
            last_modified: object.modified,
        };
        let mut span = None;
        let resp = serve::respond(plan, method == Method::HEAD, &m, |start, len| {
            span = Some((start, len));
            serve::Source::Empty
        });
        let mut lines = Vec::with_capacity(256);
        for (n, v) in resp.headers() {
            lines.extend_from_slice(n.as_str().as_bytes());
            lines.extend_from_slice(b": ");
            lines.extend_from_slice(v.as_bytes());
            lines.extend_from_slice(b"\r\n");
        }
        Some(serve::ZeroCopyHit {
            status: resp.status(),
            object,
            headers: Some(lines),
            span,
            pin,
        })
    }
}
