//! Client reports as the store receives them, for the compliance tests: a WS2025-style
//! event-156 status list (`U=` needed, `V=` installed) and an event-182 failure.

use uuid::Uuid;
use wsus_edge::model::RevisionKey;
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
