//! Domain types shared by every layer: update identities, the indexed fields of an update
//! revision, files and their digests, target groups and approvals (deployments).
//!
//! These are plain data. The wire layer (`wire`) parses them out of SOAP and update XML, the
//! store (`store`) persists them, the services read them. Nothing here does I/O.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// One revision of one update: the key WSUS uses everywhere (`UpdateIdentity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RevisionKey {
    /// The update's GUID (`UpdateID`).
    pub update_id: Uuid,
    /// The revision number (`RevisionNumber`).
    pub revision: u32,
}

impl RevisionKey {
    /// Builds a key.
    pub fn new(update_id: Uuid, revision: u32) -> Self {
        Self {
            update_id,
            revision,
        }
    }
}

impl std::fmt::Display for RevisionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.update_id, self.revision)
    }
}

/// `/Update/Properties/@UpdateType`, narrowed to what the server distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateKind {
    /// A software update (leaf or bundle).
    Software,
    /// A driver update.
    Driver,
    /// A category: company, product family, product or classification.
    Category,
    /// An applicability detectoid.
    Detectoid,
}

/// `CategoryInformation/@CategoryType` for updates of kind [`UpdateKind::Category`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CategoryType {
    /// `Company`.
    Company,
    /// `ProductFamily`.
    ProductFamily,
    /// `Product`.
    Product,
    /// `UpdateClassification`.
    UpdateClassification,
}

/// A payload file declared by an update (`upd:Files/upd:File`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// `FileName` attribute (its extension names the content path's extension).
    pub name: String,
    /// `Size` in bytes: the exact served length.
    pub size: u64,
    /// SHA-1 (`Digest`, base64 on the wire): the file's identity.
    pub sha1: [u8; 20],
    /// SHA-256 (`AdditionalDigest Algorithm="SHA256"`), when declared.
    pub sha256: Option<[u8; 32]>,
    /// Where upstream says the file lives (`MUUrl`), if anywhere.
    pub upstream_url: Option<String>,
    /// `PatchingType` (SelfContained, Express, ...), if declared.
    pub patching_type: Option<String>,
}

impl FileRecord {
    /// Upper-case hex SHA-1, as real WSUS servers print it in content paths.
    pub fn sha1_hex(&self) -> String {
        hex::encode_upper(self.sha1)
    }

    /// The extension of [`FileRecord::name`] (without the dot), lower-cased; empty when none.
    pub fn extension(&self) -> String {
        match self.name.rsplit_once('.') {
            Some((_, ext)) if !ext.is_empty() && !ext.contains(['/', '\\']) => {
                ext.to_ascii_lowercase()
            }
            _ => String::new(),
        }
    }

    /// The content path `Content/XX/<SHA1HEX>.<ext>` (no leading slash).
    pub fn content_path(&self) -> String {
        let hex = self.sha1_hex();
        let ext = self.extension();
        if ext.is_empty() {
            format!("Content/{}/{}", &hex[38..], hex)
        } else {
            format!("Content/{}/{}.{}", &hex[38..], hex, ext)
        }
    }
}

/// The fields of an update revision that the server indexes. The full update XML is kept beside
/// it by the store; this is what queries, the client service and the cache need without parsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRecord {
    /// Identity of this revision.
    pub key: RevisionKey,
    /// Software, driver, category or detectoid.
    pub kind: UpdateKind,
    /// For categories: which kind of category.
    pub category_type: Option<CategoryType>,
    /// English title (from the `en` localized properties, else the first).
    pub title: String,
    /// KB article number without the `KB` prefix, when declared.
    pub kb: Option<String>,
    /// The classification category this update belongs to.
    pub classification: Option<Uuid>,
    /// Product categories this update belongs to.
    pub products: Vec<Uuid>,
    /// Prerequisites: an AND of OR-clauses of update ids (a bare prerequisite is a clause of one).
    pub prerequisites: Vec<Vec<Uuid>>,
    /// Updates this one bundles (`BundledUpdates`).
    pub bundled: Vec<Uuid>,
    /// Updates this one supersedes (`SupersededUpdates`).
    pub supersedes: Vec<Uuid>,
    /// EULA id when the update carries a licence.
    pub eula_id: Option<Uuid>,
    /// Payload files.
    pub files: Vec<FileRecord>,
    /// `PublicationState="Expired"`.
    pub expired: bool,
    /// `CreationDate`, as written in the XML (kept as text).
    pub creation_date: Option<String>,
}

impl UpdateRecord {
    /// Every category id this revision is filed under (classification first, then products).
    pub fn category_ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.classification
            .iter()
            .copied()
            .chain(self.products.iter().copied())
    }

    /// Every update id named as a prerequisite, in any clause.
    pub fn prerequisite_ids(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.prerequisites.iter().flatten().copied()
    }
}

/// A computer target group. `All Computers` is the root; `Unassigned Computers` is its child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroup {
    /// Group GUID.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Parent group; `None` only for All Computers.
    pub parent: Option<Uuid>,
}

/// Well-known group GUIDs (MS-WSUSSS §4 sample 2).
pub mod groups {
    use uuid::{uuid, Uuid};
    /// `All Computers`.
    pub const ALL_COMPUTERS: Uuid = uuid!("a0a08746-4dbe-4a37-9adf-9e7652c0b421");
    /// `Unassigned Computers`.
    pub const UNASSIGNED_COMPUTERS: Uuid = uuid!("b73ca6ed-5727-47f3-84de-015e03f6a88a");
    /// `Downstream Servers` (not in the specs; WSUS creates it).
    pub const DOWNSTREAM_SERVERS: Uuid = uuid!("d374f42a-9be2-4163-a0fa-3c86a401b7a7");
}

/// Deployment action, numbered as MS-WSUSSS `GetDeployments` sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalAction {
    /// 0: install.
    Install,
    /// 1: uninstall.
    Uninstall,
    /// 2: scan only (PreDeploymentCheck on the client protocol).
    Scan,
    /// 3: block.
    Block,
}

impl ApprovalAction {
    /// The MS-WSUSSS integer.
    pub fn code(self) -> i32 {
        match self {
            Self::Install => 0,
            Self::Uninstall => 1,
            Self::Scan => 2,
            Self::Block => 3,
        }
    }

    /// From the MS-WSUSSS integer.
    pub fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            0 => Self::Install,
            1 => Self::Uninstall,
            2 => Self::Scan,
            3 => Self::Block,
            _ => return None,
        })
    }
}

/// An approval of one update revision for one target group (a WSUS deployment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// `DeploymentGuid`.
    pub id: Uuid,
    /// The approved revision.
    pub update: RevisionKey,
    /// The target group.
    pub group: Uuid,
    /// What to do.
    pub action: ApprovalAction,
    /// Deadline, `None` when none (`9999-12-31T23:59:59.9999999` on the wire).
    #[serde(with = "time::serde::rfc3339::option")]
    pub deadline: Option<OffsetDateTime>,
    /// When the approval last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub last_change: OffsetDateTime,
    /// `AdminName`.
    pub admin_name: String,
    /// `IsAssigned`.
    pub is_assigned: bool,
    /// `DownloadPriority` (1 normal).
    pub download_priority: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_path_uses_last_two_hex_digits_upper_case() {
        let f = FileRecord {
            name: "Windows11.0-KB5043080-x64.MSU".into(),
            size: 1,
            sha1: [
                0xa3, 0x79, 0xd5, 0x52, 0x6f, 0xb3, 0xa7, 0xa0, 0x42, 0x3d, 0xa1, 0xcd, 0x7f, 0xc3,
                0x18, 0x2a, 0x8d, 0x44, 0x84, 0x49,
            ],
            sha256: None,
            upstream_url: None,
            patching_type: None,
        };
        assert_eq!(
            f.content_path(),
            "Content/49/A379D5526FB3A7A0423DA1CD7FC3182A8D448449.msu"
        );
    }

    #[test]
    fn action_codes_round_trip() {
        for a in [
            ApprovalAction::Install,
            ApprovalAction::Uninstall,
            ApprovalAction::Scan,
            ApprovalAction::Block,
        ] {
            assert_eq!(ApprovalAction::from_code(a.code()), Some(a));
        }
        assert_eq!(ApprovalAction::from_code(9), None);
    }
}
