//! The disconnected side: after an import, `serve` with no upstream answers payload requests
//! for imported files as cache hits, byte-exact, and holds the imported approvals.

mod support;
mod transfer_support;

use sha2::{Digest, Sha256};
use support::TestEdge;
use transfer_support::*;
use wsus_edge::metrics;
use wsus_edge::store::Store;
use wsus_edge::transfer::{self, ExportOptions, ImportOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_payloads_are_cache_hits_without_upstream() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    seed_catalog(&src, 60, 1);
    let dst = tempfile::tempdir().unwrap();
    let (want_revs, want_deps, files) = {
        let store = Store::open(&store_dir(&src)).unwrap();
        transfer::export(
            &store,
            &content_dir(&src),
            ExportOptions {
                out: t.path().join("pkg"),
                since: None,
                approved_only: false,
                volume_size: None,
                signing_key: None,
            },
        )
        .unwrap();
        let objects = store.objects().unwrap();
        let files: Vec<_> = objects
            .iter()
            .take(5)
            .map(|(sha1, _)| store.expected_file(sha1).unwrap().unwrap())
            .collect();
        (store.revision_count(), store.deployments().unwrap(), files)
    };
    {
        let store = Store::open(&store_dir(dst.path())).unwrap();
        transfer::import(
            &store,
            &content_dir(dst.path()),
            &staging_dir(dst.path()),
            &t.path().join("pkg"),
            &ImportOptions::default(),
        )
        .unwrap();
    }

    let edge = TestEdge::start_in(dst, None, |_| {}).await;
    assert_eq!(edge.state.store.revision_count(), want_revs);
    assert_eq!(edge.state.store.deployments().unwrap(), want_deps);
    let (hits, misses) = (
        metrics::content_requests("hit"),
        metrics::content_requests("miss"),
    );
    let client = support::client();
    for f in &files {
        let url = format!("{}/{}", edge.url(), f.content_path());
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        let body = resp.bytes().await.unwrap();
        assert_eq!(body.len() as u64, f.size);
        let got: [u8; 32] = Sha256::digest(&body).into();
        assert_eq!(Some(got), f.sha256, "{url}");
    }
    assert_eq!(
        metrics::content_requests("hit") - hits,
        files.len() as u64,
        "every imported payload is a hit"
    );
    assert_eq!(metrics::content_requests("miss"), misses, "no miss");
    edge.shutdown().await;
}
