//! Client reports as the store receives them, for the compliance tests: a WS2025-style
//! event-156 status list (`U=` needed, `V=` installed) and an event-182 failure; the software
//! updates of a simulated catalog those reports name; and readers of the views' `--json`
//! answers (one computer's state in `updates status`).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;
use wsus_edge::model::{RevisionKey, UpdateKind};
use wsus_edge::simulate::Catalog;
use wsus_edge::store::ReportedEvent;

/// An event 156 at `t` listing `needed` (`U=`) and `installed` (`V=`) update ids.
pub fn status_lists(t: i64, inst: u128, needed: &[Uuid], installed: &[Uuid]) -> ReportedEvent {
    let list = |v: &[Uuid]| {
        v.iter()
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    ReportedEvent {
        instance_id: Uuid::from_u128(inst),
        update: None,
        event_id: 156,
        hresult: 0,
        time_unix: t,
        misc: vec![
            format!("U={}", list(needed)),
            format!("V={}", list(installed)),
        ],
    }
}

/// An event 182 at `t`: installing revision 1 of `update` failed with `hr`.
pub fn failure(t: i64, inst: u128, update: Uuid, hr: u32) -> ReportedEvent {
    ReportedEvent {
        instance_id: Uuid::from_u128(inst),
        update: Some(RevisionKey::new(update, 1)),
        event_id: 182,
        hresult: hr as i32,
        time_unix: t,
        misc: vec![],
    }
}

/// The catalog's software update ids (any revision, expired or not), sorted and unique.
pub fn software_updates(cat: &Catalog) -> Vec<Uuid> {
    cat.revisions()
        .filter(|r| r.record.kind == UpdateKind::Software)
        .map(|r| r.record.key.update_id)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// `computer`'s state in an `updates status --json` answer (panics if it is not listed).
pub fn state_of(status: &serde_json::Value, computer: &str) -> String {
    states_of(status)
        .remove(computer)
        .unwrap_or_else(|| panic!("{computer} not in {status}"))
}

/// Every listed computer's state in an `updates status --json` answer, by computer id.
pub fn states_of(status: &serde_json::Value) -> BTreeMap<String, String> {
    status["computers"]
        .as_array()
        .unwrap_or_else(|| panic!("no computers list in {status}"))
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
