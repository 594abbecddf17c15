//! The glue behind `simulate-upstream`: loads a generated [`Catalog`] into a [`Store`] (every
//! revision with its XML, target groups, approvals, declines, accepted EULAs) and serves the
//! catalog's payload bytes, which are generated on demand, over a tiny loopback HTTP
//! "payload source".
//!
//! The simulated upstream is the normal server: its content cache's upstream
//! (`upstream.content_url`) points at the payload source, so a `/Content/` request is a cache
//! miss that streams from the generator, verified against the metadata's SHA-1/SHA-256/size
//! like any upstream download, and is kept afterwards. Nothing is materialized up front (a
//! 100,000-update catalog declares gigabytes of payloads), and there is no second content
//! path to keep in step with the real one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::model::RevisionKey;
use crate::simulate::Catalog;
use crate::store::{NewRevision, Store, StoreError, UpstreamDeployments};
use crate::wire::blob::UpdateBlob;

/// A catalog shared between the payload source and whoever mutates it (tests).
pub type SharedCatalog = Arc<std::sync::RwLock<Catalog>>;

/// Revisions per load transaction.
const LOAD_BATCH: usize = 1000;

/// What [`load_catalog`] stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Revisions.
    pub revisions: usize,
    /// Deployments.
    pub deployments: usize,
    /// Declined updates.
    pub declined: usize,
}

/// Loads every revision of `cat` (with its XML) and its approvals into `store`. Revisions go
/// in catalog key order in batches of `LOAD_BATCH`; revisions already stored are skipped
/// (a restart over the same data dir is cheap). Approvals replace the store's. The new
/// revisions' compressed wire forms are cached ([`cache_compressed_blobs`]).
pub fn load_catalog(store: &Store, cat: &Catalog) -> Result<LoadStats, StoreError> {
    let keys: Vec<_> = cat.revisions().map(|r| r.record.key).collect();
    let missing = store.missing_revisions(&keys)?;
    for chunk in missing.chunks(LOAD_BATCH) {
        let batch: Vec<NewRevision> = chunk
            .iter()
            .filter_map(|k| {
                let r = cat.revision(k)?;
                Some(NewRevision {
                    record: r.record.clone(),
                    xml: cat.xml(k)?,
                })
            })
            .collect();
        store.commit_batch(&batch, &[], None)?;
    }
    sync_approvals(store, cat)?;
    let cached = cache_compressed_blobs(store, cat, &missing)?;
    let stats = LoadStats {
        revisions: keys.len(),
        deployments: cat.deployments().count(),
        declined: cat.declined().count(),
    };
    tracing::info!(
        revisions = stats.revisions,
        new = missing.len(),
        deployments = stats.deployments,
        declined = stats.declined,
        blobs_cached = cached,
        "catalog loaded"
    );
    Ok(stats)
}

/// Builds the compressed wire form (UTF-16, MSZIP cabinet, base64) of every revision that
/// travels compressed and is not cached yet, on all cores, and caches it in the store: the
/// upstream side then serves GetUpdateData without compressing (the form it would build on
/// the fly; only the cabinet's file time says when). Returns how many were cached.
pub fn cache_compressed_blobs(
    store: &Store,
    cat: &Catalog,
    keys: &[RevisionKey],
) -> Result<usize, StoreError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let per = keys.len().div_ceil(threads).max(1);
    let results: Vec<Result<usize, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = keys
            .chunks(per)
            .map(|part| {
                s.spawn(move || -> Result<usize, StoreError> {
                    let mut n = 0;
                    for k in part {
                        if store.compressed_blob(k)?.is_some() {
                            continue;
                        }
                        let Some(xml) = cat.xml(k) else { continue };
                        match UpdateBlob::from_xml(&xml) {
                            Ok(UpdateBlob::Compressed(b64)) => {
                                n += usize::from(store.put_compressed_blob(k, &xml, &b64)?);
                            }
                            Ok(UpdateBlob::Plain(_)) => {}
                            Err(e) => tracing::warn!(key = %k, error = %e, "blob not cached"),
                        }
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(StoreError::Invalid("blob cache thread".into())))
            })
            .collect()
    });
    results.into_iter().sum()
}

/// Makes the store's groups, approvals, declines and accepted EULAs exactly the catalog's
/// (one transaction). Used after loading and after mutating the catalog in tests.
pub fn sync_approvals(store: &Store, cat: &Catalog) -> Result<(), StoreError> {
    let up = UpstreamDeployments {
        groups: cat.groups().to_vec(),
        deployments: cat.deployments().cloned().collect(),
        dead_deployments: Vec::new(),
        replace_all_deployments: true,
        hidden_updates: cat.declined().collect(),
        accepted_eulas: cat.accepted_eulas().collect(),
    };
    store.apply_upstream_deployments(&up, None)
}

/// Stores the revisions of `cat` that the store lacks (after `Catalog::add_revisions` or
/// `expire` in tests); returns how many.
pub fn load_new_revisions(store: &Store, cat: &Catalog) -> Result<usize, StoreError> {
    let before = store.revision_count();
    load_catalog(store, cat)?;
    Ok(store.revision_count() - before)
}

/// The payload source: serves `GET|HEAD /Content/XX/<SHA1>.<ext>` (with `Range: bytes=a-b`
/// or `a-`) from the catalog's generator on a loopback listener until the runtime stops.
pub async fn spawn_payload_source(cat: SharedCatalog) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let cat = cat.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let cat = cat.clone();
                    async move { Ok::<_, Infallible>(payload(&cat, req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

/// Parses `bytes=a-b` / `bytes=a-` against `size`.
fn parse_range(h: &str, size: u64) -> Option<(u64, u64)> {
    let spec = h.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end: u64 = if b.trim().is_empty() {
        size.checked_sub(1)?
    } else {
        b.trim().parse::<u64>().ok()?.min(size.checked_sub(1)?)
    };
    (start <= end).then_some((start, end))
}

fn payload(cat: &SharedCatalog, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let cat = cat.read().unwrap_or_else(|p| p.into_inner());
    let path = req.uri().path();
    let Some(name) = path.rsplit('/').next() else {
        return status(StatusCode::NOT_FOUND);
    };
    let hex_part = name.split('.').next().unwrap_or("");
    let mut sha1 = [0u8; 20];
    if hex::decode_to_slice(hex_part, &mut sha1).is_err() {
        return status(StatusCode::NOT_FOUND);
    }
    let payloads = cat.payloads();
    let Some(id) = payloads.by_sha1(&sha1) else {
        return status(StatusCode::NOT_FOUND);
    };
    let Some(file) = payloads.get(id) else {
        return status(StatusCode::NOT_FOUND);
    };
    let size = file.size;
    let range = req
        .headers()
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|h| parse_range(h, size));
    let (start, end, code) = match range {
        None => (0, size.saturating_sub(1), StatusCode::OK),
        Some(Some((a, b))) => (a, b, StatusCode::PARTIAL_CONTENT),
        Some(None) => return status(StatusCode::RANGE_NOT_SATISFIABLE),
    };
    let len = if size == 0 { 0 } else { end - start + 1 };
    let body = if req.method() == http::Method::HEAD || len == 0 {
        Vec::new()
    } else {
        match payloads.read_range(id, start, len) {
            Ok(b) => b,
            Err(_) => return status(StatusCode::INTERNAL_SERVER_ERROR),
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    let h = r.headers_mut();
    h.insert(http::header::CONTENT_LENGTH, len.into());
    h.insert(
        http::header::ACCEPT_RANGES,
        http::HeaderValue::from_static("bytes"),
    );
    if code == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = http::HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            h.insert(http::header::CONTENT_RANGE, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=90-200", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("items=1-2", 100), None);
    }

    #[test]
    fn load_is_complete_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cat = Catalog::generate(300, 7);
        let s = load_catalog(&store, &cat).unwrap();
        assert_eq!(store.revision_count(), cat.revision_count());
        assert_eq!(s.revisions, cat.revision_count());
        for r in cat.revisions().take(50) {
            let k = r.record.key;
            assert_eq!(store.revision_xml(&k).unwrap(), cat.xml(&k));
            assert_eq!(store.revision(&k).unwrap().unwrap().record, r.record);
        }
        assert_eq!(
            store.deployments().unwrap().len(),
            cat.deployments().count()
        );
        let mut d = store.declined_updates().unwrap();
        let mut want: Vec<_> = cat.declined().collect();
        d.sort();
        want.sort();
        assert_eq!(d, want);
        assert_eq!(load_new_revisions(&store, &cat).unwrap(), 0);
    }

    #[test]
    fn cached_blobs_are_the_forms_built_on_the_fly() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let cat = Catalog::generate(300, 7);
        load_catalog(&store, &cat).unwrap();
        let (mut compressed, mut plain) = (0, 0);
        for r in cat.revisions() {
            let k = r.record.key;
            let fresh = UpdateBlob::from_xml(&cat.xml(&k).unwrap()).unwrap();
            match (fresh, store.compressed_blob(&k).unwrap()) {
                // The same form (the cabinet's file time aside: it is when it was built).
                (UpdateBlob::Compressed(b), Some(c)) => {
                    assert_eq!(b.len(), c.len());
                    assert_eq!(
                        UpdateBlob::Compressed(c).xml().unwrap(),
                        cat.xml(&k).unwrap()
                    );
                    compressed += 1;
                }
                (UpdateBlob::Plain(_), None) => plain += 1,
                (f, c) => panic!("{k}: built {f:?}, cached {c:?}"),
            }
        }
        assert!(compressed > 10 && plain > 10, "{compressed} / {plain}");
    }
}
