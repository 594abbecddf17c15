//! Crash safety of the metadata store: a child process (this test binary, re-executed) commits
//! sync batches in a loop and is killed with SIGKILL at arbitrary points; after each kill the
//! store is reopened and checked: every visible anchor has all of its batch's records, no
//! batch is partly visible, the derived indexes agree, and nothing flushed was lost.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use uuid::Uuid;
use wsus_edge::model::{FileRecord, RevisionKey, UpdateKind, UpdateRecord};
use wsus_edge::store::{NewRevision, Store, SyncState};

const CHILD_ENV: &str = "WSUS_EDGE_STORE_CRASH_DIR";
const PER_BATCH_ENV: &str = "WSUS_EDGE_STORE_CRASH_PER_BATCH";

fn key(batch: u32, i: u32) -> RevisionKey {
    RevisionKey::new(
        Uuid::from_u128(((batch as u128) << 32) | i as u128 | 1 << 100),
        1,
    )
}

fn sha1(batch: u32, i: u32) -> [u8; 20] {
    let mut s = [0xabu8; 20];
    s[..4].copy_from_slice(&batch.to_be_bytes());
    s[4..8].copy_from_slice(&i.to_be_bytes());
    s
}

fn revision(batch: u32, i: u32) -> NewRevision {
    let key = key(batch, i);
    NewRevision {
        record: UpdateRecord {
            key,
            kind: UpdateKind::Software,
            category_type: None,
            title: format!("batch {batch} update {i}"),
            kb: None,
            classification: None,
            products: vec![],
            prerequisites: vec![],
            bundled: vec![],
            supersedes: vec![],
            eula_id: None,
            files: vec![FileRecord {
                name: format!("f{batch}-{i}.cab"),
                size: 4096,
                sha1: sha1(batch, i),
                sha256: Some([7; 32]),
                upstream_url: None,
                patching_type: None,
            }],
            expired: false,
            creation_date: None,
        },
        // Big enough that a batch spans many sled log segments' worth of writes.
        xml: format!(
            "<Update id=\"{key}\">{}</Update>",
            "<x a=\"1\"/>".repeat(300 + (i % 200) as usize)
        ),
    }
}

fn anchor(s: &Store) -> Option<u32> {
    s.sync_state()
        .unwrap()
        .sync_anchor
        .map(|a| a.parse().expect("anchor is a batch number"))
}

/// The child: resumes after the stored anchor and commits batches until killed; prints
/// `FLUSHED b` after each flush. A no-op in a normal test run.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let per_batch: u32 = std::env::var(PER_BATCH_ENV).unwrap().parse().unwrap();
    let flush_every = if per_batch >= 1000 { 1 } else { 3 };
    let s = Store::open(Path::new(&dir)).unwrap();
    let start = anchor(&s).map_or(0, |a| a + 1);
    for b in start.. {
        let batch: Vec<_> = (0..per_batch).map(|i| revision(b, i)).collect();
        let state = SyncState {
            sync_anchor: Some(b.to_string()),
            ..Default::default()
        };
        s.commit_batch(&batch, &[], Some(&state)).unwrap();
        if b % flush_every == 0 {
            s.flush().unwrap();
            println!("FLUSHED {b}");
        }
    }
}

/// Checks the reopened store; returns the visible anchor.
fn check(s: &Store, per_batch: u32, flushed: Option<u32>) -> Option<u32> {
    let a = anchor(s);
    assert!(
        a >= flushed,
        "flushed batch {flushed:?} lost: anchor now {a:?}"
    );
    let batches = a.map_or(0, |a| a + 1);
    // Every batch up to the anchor is complete, with XML and content index.
    for b in 0..batches {
        for i in 0..per_batch {
            let k = key(b, i);
            let r = s
                .revision(&k)
                .unwrap()
                .unwrap_or_else(|| panic!("anchor {a:?} visible but {k} of batch {b} missing"));
            assert_eq!(s.revision_key_by_local_id(r.local_id).unwrap(), Some(k));
            assert!(s
                .revision_xml(&k)
                .unwrap()
                .unwrap()
                .contains(&k.to_string()));
            assert!(s.expected_file(&sha1(b, i)).unwrap().is_some());
            assert_eq!(
                s.latest_revision(&k.update_id).unwrap().unwrap().record.key,
                k
            );
        }
    }
    // Nothing beyond the anchor: no partial batch, no orphan index entries.
    assert_eq!(
        s.revision_count(),
        (batches * per_batch) as usize,
        "records beyond anchor {a:?}"
    );
    assert!(s.expected_file(&sha1(batches, 0)).unwrap().is_none());
    let next = s.next_local_id().unwrap();
    assert_eq!(next, batches * per_batch + 1, "id counter out of step");
    assert_eq!(s.revision_key_by_local_id(next).unwrap(), None);
    assert_eq!(
        s.latest_revisions().unwrap().len(),
        (batches * per_batch) as usize
    );
    a
}

/// Sync-sized transactions: 100 revisions per batch (a GetUpdateData batch).
#[test]
fn kill_9_never_shows_a_partial_batch() {
    let rounds: usize = std::env::var("WSUS_EDGE_STORE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    kill_rounds(100, rounds);
}

/// Import-sized transactions: 3,000 revisions (~10 MB of XML, ~12,000 writes) each.
#[test]
fn kill_9_never_shows_part_of_a_big_transaction() {
    let rounds: usize = std::env::var("WSUS_EDGE_STORE_CRASH_BIG_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    kill_rounds(3000, rounds);
}

fn kill_rounds(per_batch: u32, rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut flushed: Option<u32> = None;
    let mut last_anchor: Option<u32> = None;
    // Kill at different points: after a few flushes, plus a varying delay. More rounds for a
    // stress run: WSUS_EDGE_STORE_CRASH_ROUNDS=40.
    // Big batches take longer: stretch the delays so kills land inside their transactions.
    let scale = (per_batch as u64 / 400).max(1);
    let delays = (0..rounds as u64)
        .map(|r| ([0u64, 37, 113, 5, 251, 71][r as usize % 6] + r * 7 % 23) * scale);
    for (round, delay_ms) in delays.enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_writer",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, dir.path())
            .env(PER_BATCH_ENV, per_batch.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        let mut seen = 0;
        while seen < 2 {
            let line = lines.next().expect("child ended early").unwrap();
            if let Some(b) = line.strip_prefix("FLUSHED ") {
                flushed = Some(b.trim().parse().unwrap());
                seen += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Read any flush lines the child printed before dying.
        for line in lines.map_while(Result::ok) {
            if let Some(b) = line.strip_prefix("FLUSHED ") {
                flushed = Some(b.trim().parse().unwrap());
            }
        }
        let s = Store::open(dir.path()).expect("reopen after kill -9");
        let a = check(&s, per_batch, flushed);
        assert!(a >= last_anchor, "round {round}: anchor went back");
        eprintln!(
            "{per_batch}/batch, round {round}: killed after +{delay_ms} ms, flushed {flushed:?}, visible anchor {a:?}"
        );
        last_anchor = a;
    }
}
