//! A deterministic WSUS catalog generator: the data behind `simulate-upstream`.
//!
//! [`Catalog::generate`] builds, from a seed, categories (with the real company, product and
//! classification GUIDs where known), layered detectoids, software updates (CBS, bundles,
//! Defender definitions, Office patches), drivers, UUP feature updates, supersedence chains,
//! extra and expired revisions, EULAs, target groups, approvals and declines. Each revision
//! exposes its indexed [`crate::model::UpdateRecord`] (the oracle for the update-XML parser), its
//! full `upd:Update` XML ([`Catalog::xml`]) and its payload files, whose bytes are produced on
//! demand ([`Payloads::read_range`]) with real SHA-1/SHA-256. Mutations stamp a change counter;
//! [`Catalog::offered`] says what a client must be offered.
//!
//! Files: `catalog.rs` (types, accessors, change log), `generate.rs` (entry point, categories,
//! detectoids), `leaves.rs` (update kinds), `approvals.rs` (groups, approvals), `mutate.rs`,
//! `xml.rs` (`upd:Update` rendering), `field.rs` (nested bundles, unapproved prerequisites,
//! drivers for one device, on demand), `delivery.rs` (the field oracle of a software pass),
//! `payload.rs`, `oracle.rs`, `categories.rs` (well-known GUIDs), `rng.rs`; tests in `tests/`.
//! [`upstream`] makes a catalog an upstream: it loads it into a store and serves its payload
//! bytes (the server around it is [`crate::app::SimUpstream`]).

mod approvals;
mod catalog;
pub mod categories;
mod delivery;
mod field;
mod generate;
mod leaves;
mod mutate;
mod oracle;
mod payload;
mod rng;
pub mod upstream;
mod xml;

#[cfg(test)]
mod tests;

pub use catalog::{
    Catalog, DeploymentDelta, Eula, GenOptions, Handler, SimDeployment, SimRevision, EPOCH,
};
pub use delivery::{Delivered, DeliveryAction};
pub use field::FieldShapes;
pub use mutate::MutateError;
pub use oracle::{Offer, OfferAction};
pub use payload::{FileId, PayloadError, PayloadFile, PayloadReader, Payloads};
pub use xml::{NS_BASE, NS_LOGICAL, NS_PUBLISHING, NS_UPDATE};
