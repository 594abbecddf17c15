//! Answers to payload requests: status, headers and body source for a hit, a miss (the
//! writer's or a reader's view of the download) and the zero-copy hit of the sendfile path.
//! The decisions (range plan, validators) are [`super::range`]'s; the head is built by
//! [`super::serve::respond`].

use std::fs::File;
use std::sync::Arc;

use http::{HeaderMap, Method, Response, StatusCode};

use super::hot::HotObject;
use super::inflight::{FetchError, Inflight, State};
use super::key::ContentKey;
use super::range::{self, Conditions};
use super::{serve, slices, ContentCache, Lookup};
use crate::metrics;

/// How the cache answered a payload request, for the access log: carried as an extension of
/// the answer's response (errors and refusals carry none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// A complete, verified object.
    Hit,
    /// This request started the download.
    Miss,
    /// This request joined a download already running.
    Coalesced,
}

impl CacheStatus {
    /// `hit`, `miss` or `coalesced` (the metric's and the access log's words).
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Coalesced => "coalesced",
        }
    }
}

/// An answer for the zero-copy path.
pub enum Answer {
    /// A hit, to send with `sendfile`.
    ZeroCopy(serve::ZeroCopyHit),
    /// Anything else: a miss (body from the download), an error, another method.
    Response(Response<serve::Source>),
}

/// `405` with `Allow: GET, HEAD`.
fn not_allowed() -> Response<serve::Source> {
    let mut r = serve::text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD");
    r.headers_mut().insert(
        http::header::ALLOW,
        http::HeaderValue::from_static("GET, HEAD"),
    );
    r
}

impl ContentCache {
    /// Answers a payload request (`path` is the raw request path, `/Content/...`): status,
    /// headers and where the body comes from. A miss starts (or joins) the download and
    /// answers from the bytes as they arrive.
    pub async fn answer(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Response<serve::Source> {
        if method != Method::GET && method != Method::HEAD {
            return not_allowed();
        }
        let key = match ContentKey::parse_path(path) {
            Ok(k) => k,
            Err(e) => {
                tracing::debug!(path, error = %e, "refused content path");
                return serve::text(e.status(), &e.to_string());
            }
        };
        let conds = Conditions::from_headers(headers);
        let head = method == Method::HEAD;
        match self.lookup(&key, conds.range.is_some()) {
            Ok(Lookup::Hit(file)) => {
                metrics::content_request("hit");
                match self.hit_response(&key, file, &conds, head) {
                    Ok(resp) => resp,
                    Err(e) => serve::text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                }
            }
            found => self.miss_answer(&key, found, &conds, head).await,
        }
    }

    /// Answers a request for `key` on the zero-copy path, asking the cache once: a hit (hot,
    /// or opened now and made hot) is a [`serve::ZeroCopyHit`] to send with `sendfile`;
    /// anything else (a miss, an error, another method) a response like [`Self::answer`]'s.
    pub async fn answer_zero_copy(
        &self,
        method: &Method,
        key: &ContentKey,
        headers: &HeaderMap,
    ) -> Answer {
        if method != Method::GET && method != Method::HEAD {
            return Answer::Response(not_allowed());
        }
        let head = method == Method::HEAD;
        if let Some(object) = self.inner.hot.get(key) {
            return Answer::ZeroCopy(self.zero_copy_hit(key, object, head, headers));
        }
        let conds = Conditions::from_headers(headers);
        match self.lookup(key, conds.range.is_some()) {
            Ok(Lookup::Hit(file)) => match self.inner.hot.insert(key, file) {
                Ok(object) => Answer::ZeroCopy(self.zero_copy_hit(key, object, head, headers)),
                Err(e) => {
                    metrics::content_request("error");
                    Answer::Response(serve::text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &e.to_string(),
                    ))
                }
            },
            found => Answer::Response(self.miss_answer(key, found, &conds, head).await),
        }
    }

    /// The answer when the lookup found no complete object (or failed).
    async fn miss_answer(
        &self,
        key: &ContentKey,
        found: Result<Lookup, FetchError>,
        conds: &Conditions<'_>,
        head: bool,
    ) -> Response<serve::Source> {
        match found {
            Err(e) => {
                metrics::content_request("error");
                tracing::warn!(key = %key, error = %e, "content miss failed");
                serve::text(e.status(), &e.to_string())
            }
            Ok(Lookup::Hit(file)) => match self.hit_response(key, file, conds, head) {
                Ok(resp) => resp,
                Err(e) => serve::text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            },
            Ok(Lookup::Started(inf)) => self.miss_response(key, inf, true, conds, head).await,
            Ok(Lookup::Joined(inf)) => {
                self.touch(&key.sha1);
                self.miss_response(key, inf, false, conds, head).await
            }
        }
    }

    /// The response for a miss: `started` when this request started the download, else it
    /// joined one. No head goes out before upstream has answered the download (a dead,
    /// refusing or silent upstream gives 502/504 instead of a head and a cut body), and the
    /// size is known. A ranged request of an object filled by slices asks its first window
    /// before waiting, so the answer awaited is its own range's.
    async fn miss_response(
        &self,
        key: &ContentKey,
        inf: Arc<Inflight>,
        started: bool,
        conds: &Conditions<'_>,
        head: bool,
    ) -> Response<serve::Source> {
        let fail = |e: &FetchError| {
            metrics::content_request("error");
            serve::text(e.status(), &e.to_string())
        };
        let etag = serve::etag(key);
        let size = match inf.slices.get() {
            Some(sf) => {
                let size = sf.size();
                if let (range::Plan::Partial { start, end }, false) =
                    (range::plan(conds, size, &etag, None), head)
                {
                    let window = slices::SLICE * slices::MAX_RUN as u64;
                    sf.ask(start, end.min(start.saturating_add(window - 1)));
                }
                if let Err(e) = sf.wait_answer().await {
                    return fail(&e);
                }
                size
            }
            None => {
                let p = inf.wait_answer().await;
                match (&p.state, p.size) {
                    (State::Failed(e), _) => return fail(e),
                    (_, Some(s)) => s,
                    (_, None) => p.written,
                }
            }
        };
        let status = if started {
            CacheStatus::Miss
        } else {
            CacheStatus::Coalesced
        };
        metrics::content_request(status.as_str());
        let plan = range::plan(conds, size, &etag, None);
        let m = serve::Meta {
            key,
            size,
            last_modified: None,
        };
        let mut r = serve::respond(plan, head, &m, move |start, len| serve::Source::Inflight {
            inf,
            start,
            len,
        });
        r.extensions_mut().insert(status);
        r
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
        let modified = md.modified().ok();
        let plan = range::plan(conds, md.len(), &etag, modified);
        let m = serve::Meta {
            key,
            size: md.len(),
            last_modified: modified,
        };
        let pin = self.inner.pins.pin(key.sha1);
        let file = Arc::new(file);
        let mut r = serve::respond(plan, head, &m, |start, len| serve::Source::File {
            file,
            start,
            len,
            pin,
        });
        r.extensions_mut().insert(CacheStatus::Hit);
        Ok(r)
    }

    /// The zero-copy answer for a hit on `object`.
    fn zero_copy_hit(
        &self,
        key: &ContentKey,
        object: Arc<HotObject>,
        head: bool,
        headers: &HeaderMap,
    ) -> serve::ZeroCopyHit {
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
            return serve::ZeroCopyHit {
                status: StatusCode::OK,
                span: (!head && object.size > 0).then_some((0, object.size)),
                object,
                headers: None,
                pin,
            };
        }
        let plan = range::plan(&conds, object.size, &object.etag, object.modified);
        let m = serve::Meta {
            key,
            size: object.size,
            last_modified: object.modified,
        };
        let mut span = None;
        let resp = serve::respond(plan, head, &m, |start, len| {
            span = Some((start, len));
            serve::Source::Empty
        });
        let (parts, _) = resp.into_parts();
        serve::ZeroCopyHit {
            status: parts.status,
            object,
            headers: Some(parts.headers),
            span,
            pin,
        }
    }
}
