//! `ReportingEvent`s as a Windows Update Agent sends them in a `ReportEventBatch` (MS-WUSP
//! wire form, before the store): one builder with the fields tests rarely vary filled in
//! ([`reporting_event`]; a test overrides the rest with `..`), and the numbered flood events
//! of the client-limit tests ([`numbered`]); and a downstream server's full status rollup
//! ([`status_rollup`]).

#![allow(dead_code)]

use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;
use wsus_edge::model::RevisionKey;
use wsus_edge::wire::wusp;

/// Event `event_id` about `update` at `at`: a fresh `EventInstanceID`, namespace 1, source
/// 101 (the agent), no target SID, sequence 0, HRESULT 0, no replacement strings, MiscData,
/// brand, model or locale.
pub fn reporting_event(
    event_id: i32,
    update: RevisionKey,
    at: OffsetDateTime,
) -> wusp::ReportingEvent {
    wusp::ReportingEvent {
        target_sid: String::new(),
        sequence_number: 0,
        time_at_target: at,
        instance_id: Uuid::new_v4(),
        namespace_id: 1,
        event_id,
        source_id: 101,
        update,
        hresult: 0,
        replacement_strings: vec![],
        misc_data: vec![],
        computer_brand: None,
        computer_model: None,
        os_locale_id: None,
    }
}

/// The update of [`numbered`] event `i`: revision 1 of the GUID `i + 1` (how a test finds the
/// event in the store afterwards).
pub fn numbered_update(i: u32) -> RevisionKey {
    RevisionKey::new(Uuid::from_u128(u128::from(i) + 1), 1)
}

/// Event 147 number `i` (its sequence number) with MiscData `misc` about
/// [`numbered_update`]`(i)`; event i happened i seconds after a start 10,000 s ago (the store
/// orders by time).
pub fn numbered(i: u32, misc: &str) -> wusp::ReportingEvent {
    wusp::ReportingEvent {
        sequence_number: i as i32,
        misc_data: vec![misc.to_string()],
        ..reporting_event(
            147,
            numbered_update(i),
            OffsetDateTime::now_utc() - Duration::from_secs(10_000)
                + Duration::from_secs(u64::from(i)),
        )
    }
}

/// A downstream server's full `RollupComputerStatus` (MS-WSUSSS §3.1.4.17) for the computers
/// `names`, each with `statuses` updates (UpdateIDs 1..=statuses) in state 2.
pub fn status_rollup(
    names: impl IntoIterator<Item = String>,
    statuses: u128,
) -> wsus_edge::wire::sss::rollup::RollupComputerStatus {
    use wsus_edge::wire::sss::rollup as ru;
    ru::RollupComputerStatus {
        cookie: Some(ru::fixed_cookie()),
        client_time: OffsetDateTime::now_utc(),
        parent_server_id: Uuid::from_u128(7),
        computers: names
            .into_iter()
            .zip(1000u128..)
            .map(|(computer_id, n)| ru::ComputerStatusRollupInfo {
                instance_id: Uuid::from_u128(n),
                computer_id,
                effective_last_detection_time: None,
                rollup_number: 1,
                is_full_rollup: true,
                update_status: (1..=statuses)
                    .map(|i| (Uuid::from_u128(i), 2, OffsetDateTime::UNIX_EPOCH))
                    .collect(),
            })
            .collect(),
    }
}
