//! Misses: starting (or joining) the one download of an object through the [`super::lock`],
//! running it as the writer (fetch from upstream, check against what metadata declares,
//! publish with the hasher's proof, index) and giving it its verdict.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::fetch::Upstream;
use super::index::ObjectEntry;
use super::inflight::{FetchError, State};
use super::key::ContentKey;
use super::lock::{Role, WritePermit};
use super::slices;
use super::source::Source;
use super::verify::{self, Expected};
use super::{now_unix, ContentCache, Lookup};
use crate::metrics;

impl ContentCache {
    /// Finds `key`: a hit, or the download that fetches it (started now, or joined). A
    /// `ranged` request that starts a download of a file whose size metadata declares (above
    /// one slice) starts a slice fetch ([`super::slices`]); anything else the sequential one.
    pub(super) fn lookup(&self, key: &ContentKey, ranged: bool) -> Result<Lookup, FetchError> {
        // For the writer: the file's MUUrl, whether the upstream is catalog-only, and whether
        // this is an express file the upstream does not host.
        let origin: RefCell<(Option<String>, bool, bool)> = RefCell::new((None, false, false));
        // The writer's source, chosen (and its slice fetch started) before readers can join.
        let chosen: RefCell<Option<Source>> = RefCell::new(None);
        let start = || {
            if self.inner.upstream.is_none() {
                return Err(FetchError::NoUpstream);
            }
            let declared = self.inner.index.expected_file(&key.sha1)?;
            // PatchingType only: the extension says nothing (UUP `.psf` files are declared
            // SelfContained, and the upstream holds them).
            let express = declared
                .as_ref()
                .is_some_and(|f| f.patching_type.as_deref() == Some("Express"));
            let upstream = self.inner.index.upstream_files()?;
            *origin.borrow_mut() = (
                declared.as_ref().and_then(|f| f.upstream_url.clone()),
                upstream.catalog_only,
                express && !upstream.hosts_express,
            );
            let floor = self.inner.min_free.load(Ordering::Relaxed);
            if floor > 0 {
                let free = super::store::free_bytes(self.inner.dir.root())?;
                let need = declared.as_ref().map_or(0, |f| f.size);
                if free < floor.saturating_add(need) {
                    return Err(FetchError::LowSpace(format!(
                        "{free} bytes free, content.min_free is {floor}"
                    )));
                }
            }
            Ok(Expected {
                sha1: key.sha1,
                sha256: declared.as_ref().and_then(|f| f.sha256),
                size: declared.as_ref().map(|f| f.size),
            })
        };
        let prepare = |inf: &Arc<super::inflight::Inflight>, expected: &Expected| {
            let Some(upstream) = self.inner.upstream.as_ref() else {
                return;
            };
            let origin = origin.borrow();
            let source = Source::choose(
                upstream.base(),
                key,
                origin.1,
                origin.2,
                origin.0.as_deref(),
                self.inner.requester.get(),
            );
            if let Some(size) = expected.size.filter(|s| ranged && *s > slices::SLICE) {
                let sf = slices::SliceFetch::start(
                    upstream.slice_source(&source),
                    inf.file.clone(),
                    size,
                    *expected,
                );
                let _ = inf.slices.set(sf);
            }
            *chosen.borrow_mut() = Some(source);
        };
        match self.inner.locks.acquire(key, start, prepare)? {
            Role::Hit(f) => Ok(Lookup::Hit(f)),
            Role::Reader(inf) => Ok(Lookup::Joined(inf)),
            Role::Writer(permit) => {
                let (Some(upstream), Some(source)) =
                    (self.inner.upstream.clone(), chosen.borrow_mut().take())
                else {
                    permit.finish(Err(FetchError::NoUpstream));
                    return Err(FetchError::NoUpstream);
                };
                let inf = permit.inflight().clone();
                tracing::info!(key = %key, url = %source.url, slices = inf.slices.get().is_some(), "content miss: fetching");
                let me = self.clone();
                tokio::spawn(async move { me.run_fetch(upstream, source, permit).await });
                Ok(Lookup::Started(inf))
            }
        }
    }

    async fn run_fetch(self, upstream: Upstream, source: Source, permit: WritePermit) {
        let inf = permit.inflight().clone();
        let expected = permit.expected();
        let key = inf.key.clone();
        let res = match inf.slices.get() {
            // Filled by slices: the slice fetch hashes its held prefix and checks it.
            Some(sf) => {
                let r = sf.verdict().await;
                if let Ok(v) = &r {
                    let n = v.size();
                    inf.progress.send_modify(|p| p.written = n);
                }
                r
            }
            None => match upstream
                .download(inf.clone(), &source, expected.size, &self.limits())
                .await
            {
                Ok(d) => expected.check(&d).map_err(FetchError::Mismatch),
                Err(e) => Err(e),
            },
        };
        let outcome = match res {
            Ok(proof) => {
                // Readers may finish now: the bytes are known good; durability follows.
                // Recency is recorded first, so a hit that follows the last byte is newer.
                let verified_at = now_unix();
                self.touch(&key.sha1);
                inf.finish(State::Verified);
                self.publish(&inf, proof, verified_at)
                    .await
                    .map(|_| proof.size())
            }
            Err(FetchError::Mismatch(m)) => {
                metrics::hash_mismatch();
                tracing::error!(key = %key, mismatch = %m, "downloaded object does not match its digests; discarded");
                Err(FetchError::Mismatch(m))
            }
            Err(e) => Err(e),
        };
        let stored = outcome.as_ref().ok().copied();
        permit.finish(outcome.map(|_| ()));
        if let Some(size) = stored {
            self.inner.total.fetch_add(size, Ordering::Relaxed);
            tracing::info!(key = %key, size, "content stored");
            self.evict_if_needed().await;
        }
    }

    /// The bounds of a sequential download: `content.max_size` for an undeclared size, the
    /// `content.min_free` floor as bytes arrive.
    fn limits(&self) -> super::fetch::Limits {
        let floor = self.inner.min_free.load(Ordering::Relaxed);
        super::fetch::Limits {
            max_undeclared: self.inner.max_size,
            floor: (floor > 0).then(|| (self.inner.dir.root().to_path_buf(), floor)),
        }
    }

    async fn publish(
        &self,
        inf: &Arc<super::inflight::Inflight>,
        proof: verify::Verified,
        now: i64,
    ) -> Result<(), FetchError> {
        let (dir, inf2) = (self.inner.dir.clone(), inf.clone());
        tokio::task::spawn_blocking(move || dir.publish(&inf2.key, &inf2.file, &proof))
            .await
            .map_err(|_| FetchError::Abandoned)??;

        let entry = ObjectEntry {
            ext: inf.key.ext.clone(),
            size: proof.size(),
            sha256: proof.sha256(),
            stored_unix: now,
            last_access_unix: now,
        };
        Ok(self.inner.index.put_object(&inf.key.sha1, &entry)?)
    }
}
