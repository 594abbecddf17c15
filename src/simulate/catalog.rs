//! The simulated catalog: its types, read accessors and change log. Generation lives in
//! `generate.rs`, mutations in `mutate.rs`, XML rendering in `xml.rs`, the client oracle in
//! `oracle.rs`.
//!
//! Every revision, deployment, decline and dead deployment carries a *change number* from one
//! monotonically increasing counter, so a server can answer "what changed since anchor X" with
//! [`Catalog::revisions_changed_since`] and [`Catalog::deployments_changed_since`].

use std::collections::{BTreeMap, BTreeSet};

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::payload::{FileId, PayloadFile, Payloads};
use super::rng::Rng;
use crate::model::{CategoryType, Deployment, RevisionKey, TargetGroup, UpdateKind, UpdateRecord};

/// Generation knobs. [`GenOptions::new`] gives the defaults used by `simulate-upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenOptions {
    /// Number of distinct updates (UpdateIDs), categories and detectoids included. The fixed
    /// skeleton (categories, base detectoids) is always generated, even when larger.
    pub updates: usize,
    /// The seed: same seed and options, same catalog, byte for byte.
    pub seed: u64,
    /// Smallest ordinary payload file.
    pub min_file_size: u64,
    /// Largest ordinary payload file.
    pub max_file_size: u64,
    /// How many UUP files get [`GenOptions::large_file_size`] instead (hashing them costs time).
    pub large_uup_files: usize,
    /// Size of the large UUP files.
    pub large_file_size: u64,
}

impl GenOptions {
    /// Defaults: files of 1–64 KiB, no large files.
    pub fn new(updates: usize, seed: u64) -> Self {
        Self {
            updates,
            seed,
            min_file_size: 1024,
            max_file_size: 64 * 1024,
            large_uup_files: 0,
            large_file_size: 0,
        }
    }
}

/// How an update installs: selects `Properties/@Handler` and `HandlerSpecificData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// A category (`UpdateHandlers/Category`).
    Category(CategoryType),
    /// A detectoid (no handler).
    Detectoid,
    /// A bundle parent (no handler, no files).
    Bundle,
    /// Component-based servicing package (`UpdateHandlers/Cbs`).
    Cbs,
    /// Command line installer (`UpdateHandlers/CommandLineInstallation`).
    CommandLine,
    /// Windows Installer patch (`UpdateHandlers/WindowsPatch`).
    WindowsPatch,
    /// Driver (`UpdateHandlers/WindowsDriver`).
    Driver,
    /// UUP feature update (`2016/01/UpdateHandlers/OSInstaller`).
    OsInstaller,
}

/// What the XML needs beyond the indexed [`UpdateRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Detail {
    pub handler: Handler,
    /// How `Description` is written (stored as a recipe: the text is built when rendering).
    pub description: Description,
    /// Languages of the localized properties after `en`.
    /// How many of `generate::LANGUAGES` follow.
    pub languages: u8,
    /// Parallel to `record.prerequisites`: true for `AtLeastOne IsCategory="true"` clauses.
    pub category_clause: Vec<bool>,
    /// Parallel to `record.bundled`: the bundled revision numbers.
    pub bundled_revisions: Vec<u32>,
    /// Extra applicability rules (makes big blobs).
    pub extra_rules: u32,
    pub msrc_severity: Option<&'static str>,
    pub explicitly_deployable: bool,
    pub display_order: u32,
    pub os_build: u32,
    pub arch: &'static str,
    pub hardware_id: Option<String>,
    /// Detectoids: which rule they evaluate.
    pub detect_rule: u32,
}

/// The `Description` of a revision's localized properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Description {
    /// No `Description` element.
    None,
    /// The title again (categories).
    Title,
    /// This many stock sentences.
    Sentences(u8),
}

impl Description {
    /// The text, if any.
    pub(crate) fn text(self, title: &str) -> Option<String> {
        const SENTENCES: [&str; 3] = [
            "Install this update to resolve issues in the product. For a complete listing of the issues that are included in this update, see the associated Microsoft Knowledge Base article.",
            "After you install this item, you may have to restart your computer.",
            "This update addresses security vulnerabilities and improves reliability of servicing components.",
        ];
        match self {
            Self::None => None,
            Self::Title => Some(title.to_string()),
            Self::Sentences(n) => Some(
                (0..n as usize)
                    .map(|i| SENTENCES[i % 3])
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        }
    }
}

/// One revision of one update in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimRevision {
    /// The indexed fields: exactly what a correct parser of [`Catalog::xml`] must return.
    /// The contract, field by field: `title` = the `en` LocalizedProperties title; `kb` =
    /// `Properties/KBArticleID`; `prerequisites` = every clause of `Relationships/Prerequisites`
    /// in document order, `AtLeastOne IsCategory="true"` clauses included (a bare
    /// `UpdateIdentity` is a clause of one); `classification`/`products` are filled for software
    /// and driver updates only, from the IsCategory clauses (a GUID of
    /// [`super::categories::CLASSIFICATIONS`] is the classification, the others are products),
    /// and are empty for categories and detectoids; `bundled` = every `UpdateIdentity` under
    /// `BundledUpdates` (ids only); `supersedes` = `SupersededUpdates`; `eula_id` =
    /// `Properties/@EulaID`; `expired` = `PublicationState="Expired"`; `creation_date` = the
    /// `CreationDate` text; `files` in `Files` order with `upstream_url: None` (the MU URL is
    /// not in the update XML; see [`PayloadFile::mu_url`]); `category_type` from
    /// `CategoryInformation/@CategoryType`.
    pub record: UpdateRecord,
    /// Change number at which this revision was published.
    pub change: u64,
    /// Payload files, in `Files` order.
    pub files: Vec<FileId>,
    pub(crate) detail: Detail,
}

impl SimRevision {
    /// The install handler.
    pub fn handler(&self) -> Handler {
        self.detail.handler
    }
}

/// A deployment (approval) with its change number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDeployment {
    /// The approval as WSUS sends it.
    pub deployment: Deployment,
    /// Change number of its creation.
    pub change: u64,
}

/// A EULA text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eula {
    /// `EulaID`.
    pub id: Uuid,
    /// Plain text.
    pub text: String,
}

/// Everything that changed in approvals after some change number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentDelta {
    /// Deployments created after the anchor and still alive.
    pub deployments: Vec<Deployment>,
    /// Deployments removed after the anchor (`DeadDeployments`).
    pub dead: Vec<Uuid>,
}

/// The deterministic WSUS catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) options: GenOptions,
    pub(crate) rng: Rng,
    pub(crate) change: u64,
    pub(crate) revisions: BTreeMap<RevisionKey, SimRevision>,
    pub(crate) latest: BTreeMap<Uuid, u32>,
    pub(crate) payloads: Payloads,
    pub(crate) groups: Vec<TargetGroup>,
    pub(crate) deployments: BTreeMap<Uuid, SimDeployment>,
    /// Index: update id → ids of its live deployments.
    pub(crate) by_update: BTreeMap<Uuid, BTreeSet<Uuid>>,
    pub(crate) dead: Vec<(Uuid, u64)>,
    pub(crate) declined: BTreeMap<Uuid, u64>,
    pub(crate) eulas: BTreeMap<Uuid, Eula>,
    pub(crate) accepted_eulas: BTreeSet<Uuid>,
    /// Generator state that mutations continue from.
    pub(crate) state: super::generate::GenState,
}

/// Start of the simulated clock: change number `n` happened `n` minutes after it.
pub const EPOCH: OffsetDateTime = time::macros::datetime!(2026-01-01 00:00:00 UTC);

impl Catalog {
    /// Generates the catalog for `updates` distinct updates and `seed` with default options.
    pub fn generate(updates: usize, seed: u64) -> Catalog {
        Self::generate_with(&GenOptions::new(updates, seed))
    }

    /// The options it was generated with.
    pub fn options(&self) -> &GenOptions {
        &self.options
    }

    /// The current change number (the newest anchor).
    pub fn change_counter(&self) -> u64 {
        self.change
    }

    /// The simulated time of change number `change`.
    pub fn time_of(change: u64) -> OffsetDateTime {
        EPOCH + Duration::minutes(change.min(i64::MAX as u64 / 120) as i64)
    }

    /// An anchor in the Windows format `nnnn,yyyy-MM-dd HH:mm:ss.fff` for change number `change`
    /// (MS-WSUSSS fn 31; the counter part is constant, the time carries the change).
    pub fn windows_anchor(change: u64) -> String {
        let t = Self::time_of(change);
        format!(
            "1,{:04}-{:02}-{:02} {:02}:{:02}:{:02}.000",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }

    /// Every revision (old ones included), in key order.
    pub fn revisions(&self) -> impl Iterator<Item = &SimRevision> {
        self.revisions.values()
    }

    /// Number of revisions.
    pub fn revision_count(&self) -> usize {
        self.revisions.len()
    }

    /// Number of distinct updates.
    pub fn update_count(&self) -> usize {
        self.latest.len()
    }

    /// One revision.
    pub fn revision(&self, key: &RevisionKey) -> Option<&SimRevision> {
        self.revisions.get(key)
    }

    /// The newest revision of an update.
    pub fn latest(&self, update_id: &Uuid) -> Option<&SimRevision> {
        let rev = self.latest.get(update_id)?;
        self.revisions.get(&RevisionKey::new(*update_id, *rev))
    }

    /// The newest revision of every update, in update-id order.
    pub fn latest_revisions(&self) -> impl Iterator<Item = &SimRevision> {
        self.latest
            .iter()
            .filter_map(|(id, rev)| self.revisions.get(&RevisionKey::new(*id, *rev)))
    }

    /// Newest revisions of a kind.
    pub fn of_kind(&self, kind: UpdateKind) -> impl Iterator<Item = &SimRevision> {
        self.latest_revisions()
            .filter(move |r| r.record.kind == kind)
    }

    /// The full update XML (`upd:Update`) of a revision, as GetUpdateData carries it.
    pub fn xml(&self, key: &RevisionKey) -> Option<String> {
        self.revisions
            .get(key)
            .map(|r| super::xml::render(r, &self.payloads))
    }

    /// The payload files.
    pub fn payloads(&self) -> &Payloads {
        &self.payloads
    }

    /// The declarations of a revision's files.
    pub fn files_of(&self, key: &RevisionKey) -> Vec<&PayloadFile> {
        self.revisions
            .get(key)
            .map(|r| {
                r.files
                    .iter()
                    .filter_map(|f| self.payloads.get(*f))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// For each update changed after `anchor` (change number), its newest revision — what
    /// GetRevisionIdList with `Delta=true` returns. `anchor = 0` lists everything.
    pub fn revisions_changed_since(&self, anchor: u64) -> Vec<RevisionKey> {
        self.latest_revisions()
            .filter(|r| r.change > anchor)
            .map(|r| r.record.key)
            .collect()
    }

    /// Target groups (All Computers first).
    pub fn groups(&self) -> &[TargetGroup] {
        &self.groups
    }

    /// A group by name.
    pub fn group_named(&self, name: &str) -> Option<&TargetGroup> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Live deployments, in deployment-id order.
    pub fn deployments(&self) -> impl Iterator<Item = &Deployment> {
        self.deployments.values().map(|d| &d.deployment)
    }

    /// Live deployments of one update (any revision, any group).
    pub fn deployments_of(&self, update_id: &Uuid) -> impl Iterator<Item = &Deployment> {
        self.by_update
            .get(update_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.deployments.get(id))
            .map(|d| &d.deployment)
    }

    /// Deployments created and removed after `anchor`.
    pub fn deployments_changed_since(&self, anchor: u64) -> DeploymentDelta {
        DeploymentDelta {
            deployments: self
                .deployments
                .values()
                .filter(|d| d.change > anchor)
                .map(|d| d.deployment.clone())
                .collect(),
            dead: self
                .dead
                .iter()
                .filter(|(_, c)| *c > anchor)
                .map(|(id, _)| *id)
                .collect(),
        }
    }

    /// Declined (hidden) update ids: the full `HiddenUpdates` list.
    pub fn declined(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.declined.keys().copied()
    }

    /// True when the update is declined.
    pub fn is_declined(&self, update_id: &Uuid) -> bool {
        self.declined.contains_key(update_id)
    }

    /// Accepted EULA ids: the full `AcceptedEulas` list.
    pub fn accepted_eulas(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.accepted_eulas.iter().copied()
    }

    /// A EULA's text.
    pub fn eula(&self, id: &Uuid) -> Option<&Eula> {
        self.eulas.get(id)
    }

    /// Ids of every update some revision names as a prerequisite: the non-leaf updates
    /// (`IsLeaf=false`, INV §9.6).
    pub fn non_leaf_ids(&self) -> BTreeSet<Uuid> {
        self.revisions
            .values()
            .flat_map(|r| r.record.prerequisite_ids())
            .collect()
    }

    /// Category and detectoid ids (what a client that evaluated everything reports installed).
    pub fn category_and_detectoid_ids(&self) -> BTreeSet<Uuid> {
        self.latest_revisions()
            .filter(|r| matches!(r.record.kind, UpdateKind::Category | UpdateKind::Detectoid))
            .map(|r| r.record.key.update_id)
            .collect()
    }

    pub(crate) fn next_change(&mut self) -> u64 {
        self.change += 1;
        self.change
    }

    /// Inserts a revision stamped with a new change number.
    pub(crate) fn publish(&mut self, mut rev: SimRevision) -> RevisionKey {
        rev.change = self.next_change();
        let key = rev.record.key;
        let entry = self.latest.entry(key.update_id).or_insert(key.revision);
        *entry = (*entry).max(key.revision);
        self.revisions.insert(key, rev);
        key
    }
}
