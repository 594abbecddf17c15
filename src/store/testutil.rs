//! Test fixtures shared by the store's unit tests.

use uuid::Uuid;

use super::{NewRevision, Store};
use crate::model::{
    ApprovalAction, Deployment, FileRecord, RevisionKey, TargetGroup, UpdateKind, UpdateRecord,
};

/// A fresh store in a temp dir (keep the dir alive as long as the store).
pub fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    (dir, s)
}

/// The update GUID of fixture number `n`.
pub fn uid(n: u128) -> Uuid {
    Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0000 | n)
}

/// A small software update revision with one file whose SHA-1 derives from (n, rev).
pub fn revision(n: u128, rev: u32) -> NewRevision {
    let key = RevisionKey::new(uid(n), rev);
    let mut sha1 = [0u8; 20];
    sha1[..16].copy_from_slice(&n.to_be_bytes());
    sha1[16..].copy_from_slice(&rev.to_be_bytes());
    NewRevision {
        record: UpdateRecord {
            key,
            kind: UpdateKind::Software,
            category_type: None,
            title: format!("Update {n} rev {rev}"),
            kb: Some(format!("{}", 5000000 + n)),
            classification: Some(Uuid::from_u128(1)),
            products: vec![Uuid::from_u128(2)],
            prerequisites: vec![vec![Uuid::from_u128(3)]],
            bundled: vec![],
            supersedes: vec![],
            eula_id: None,
            files: vec![FileRecord {
                name: format!("kb{n}.msu"),
                size: 1000 + n as u64,
                sha1,
                sha256: Some([rev as u8; 32]),
                upstream_url: Some(format!("http://up/{n}/{rev}")),
                patching_type: None,
            }],
            expired: false,
            creation_date: None,
        },
        xml: format!(
            "<Update><UpdateIdentity UpdateID=\"{}\" RevisionNumber=\"{rev}\"/>{}</Update>",
            uid(n),
            "<Properties UpdateType=\"Software\"/>".repeat(5)
        ),
    }
}

/// A target group `G<n>` with a deterministic id.
pub fn group(n: u128, parent: Option<Uuid>) -> TargetGroup {
    TargetGroup {
        id: Uuid::from_u128(0x6000 + n),
        name: format!("G{n}"),
        parent,
    }
}

/// A deployment of revision 1 of update `uid(update)` to `group`.
pub fn dep(n: u128, update: u128, group: Uuid, action: ApprovalAction) -> Deployment {
    Deployment {
        id: Uuid::from_u128(0xd000 + n),
        update: RevisionKey::new(uid(update), 1),
        group,
        action,
        deadline: None,
        last_change: time::OffsetDateTime::UNIX_EPOCH,
        admin_name: "WUS Server".into(),
        is_assigned: true,
        download_priority: 1,
    }
}
