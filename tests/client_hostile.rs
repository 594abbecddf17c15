//! Issue 15, item 1: what one LAN client can make the server store, through the real server
//! over loopback. Before the limits, a ~1 MB target group name was accepted and kept, every
//! reported event was stored whole and never pruned, and any number of computers could be
//! registered from one address.

#[path = "support/wusp_agent.rs"]
mod agent;
#[path = "support/mod.rs"]
mod support;
#[path = "support/wire_events.rs"]
mod wire_events;

use std::time::Duration;

use agent::Agent;
use support::TestEdge;
use wire_events::numbered;
use wsus_edge::model::RevisionKey;
use wsus_edge::store::{Computer, ReportedEvent, Store};
use wsus_edge::wire::soap::ErrorCode;
use wsus_edge::wire::wusp;
use wsus_edge::wire::WireError;

fn fault_code(r: Result<impl std::fmt::Debug, WireError>) -> ErrorCode {
    match r {
        Err(WireError::Fault(f)) => f.error_code,
        other => panic!("expected a fault, got {other:?}"),
    }
}

async fn small_limits() -> TestEdge {
    TestEdge::start(None, |c| {
        c.clients.max_computers = 20;
        c.clients.registrations_per_minute = 4;
        c.clients.max_events_per_computer = 50;
        c.clients.max_event_bytes_per_computer = 64 << 10;
        // What is stored is tested here; the byte budget that sheds floods before they are
        // read is tested in client_shed.rs.
        c.clients.report_bytes_per_second = 0;
    })
    .await
}

/// An agent whose requests come from `ip` (any 127.x.y.z reaches a loopback listener).
fn agent_from(base: &str, ip: [u8; 4]) -> Agent {
    Agent::with_client(base, support::client_from(ip))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_target_group_name_is_refused_and_not_stored() {
    let e = small_limits().await;
    let a = agent_from(&e.url(), [127, 0, 0, 1]);
    let r = a
        .call(
            wusp::SIMPLE_AUTH_PATH,
            &wusp::GetAuthorizationCookie {
                client_id: a.client_id.clone(),
                target_group_name: Some("G".repeat(1 << 20)),
                dns_name: "pc.branch.test".into(),
            },
        )
        .await;
    assert_eq!(fault_code(r), ErrorCode::InvalidParameters);
    assert!(e.state.store.computer(&a.client_id).unwrap().is_none());
    // A normal name still works.
    let mut b = agent_from(&e.url(), [127, 0, 0, 1]);
    b.handshake(Some("Pilot")).await;
    let c = e.state.store.computer(&b.client_id).unwrap().unwrap();
    assert_eq!(c.requested_groups, vec!["Pilot".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_flood_from_one_client_keeps_only_the_newest_events_within_the_bounds() {
    let e = small_limits().await;
    let mut flooder = agent_from(&e.url(), [127, 0, 0, 1]);
    flooder.handshake(None).await;
    let mut other = agent_from(&e.url(), [127, 0, 0, 2]);
    other.handshake(None).await;
    let misc = "U=".to_string() + &"x".repeat(2000);
    let mut sent = 0;
    for round in 0..20u32 {
        let events: Vec<_> = (0..100).map(|i| numbered(round * 100 + i, &misc)).collect();
        sent += events.len();
        let r = flooder
            .call(
                wusp::REPORTING_PATH,
                &wusp::ReportEventBatch {
                    cookie: flooder.cookie.clone().unwrap(),
                    client_time: time::OffsetDateTime::now_utc(),
                    events,
                },
            )
            .await
            .unwrap();
        assert!(r.result);
        // The other client is still answered during the flood.
        let ok = other
            .call(
                wusp::REPORTING_PATH,
                &wusp::ReportEventBatch {
                    cookie: other.cookie.clone().unwrap(),
                    client_time: time::OffsetDateTime::now_utc(),
                    events: vec![numbered(round, "C=1")],
                },
            )
            .await
            .unwrap();
        assert!(ok.result);
    }
    let kept = e.state.store.events(&flooder.client_id).unwrap();
    assert_eq!(sent, 2000);
    assert!(kept.len() <= 50, "{} events kept", kept.len());
    let bytes: usize = kept
        .iter()
        .map(|ev| serde_json::to_vec(ev).unwrap().len())
        .sum();
    assert!(bytes <= 64 << 10, "{bytes} bytes of events kept");
    assert!(!kept.is_empty());
    // The newest are the ones kept: the last batch's last event is there.
    let newest = RevisionKey::new(uuid::Uuid::from_u128(1999 + 1), 1);
    assert!(kept.iter().any(|ev| ev.update == Some(newest)));
    assert_eq!(e.state.store.events(&other.client_id).unwrap().len(), 20);
    // A batch larger than the per-batch limit is refused whole.
    let huge: Vec<_> = (0..1001).map(|i| numbered(i, "")).collect();
    let r = flooder
        .call(
            wusp::REPORTING_PATH,
            &wusp::ReportEventBatch {
                cookie: flooder.cookie.clone().unwrap(),
                client_time: time::OffsetDateTime::now_utc(),
                events: huge,
            },
        )
        .await;
    assert_eq!(fault_code(r), ErrorCode::InvalidParameters);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_register_computers_without_bound_and_others_still_can() {
    let e = small_limits().await;
    let base = e.url();
    let mut refused = 0;
    for _ in 0..10 {
        let a = agent_from(&base, [127, 0, 0, 3]);
        let r = a
            .call(
                wusp::SIMPLE_AUTH_PATH,
                &wusp::GetAuthorizationCookie {
                    client_id: a.client_id.clone(),
                    target_group_name: None,
                    dns_name: "flood.branch.test".into(),
                },
            )
            .await;
        match r {
            Ok(_) => {}
            Err(WireError::Fault(f)) if f.error_code == ErrorCode::ServerBusy => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(refused, 6, "4 per minute from one address");
    assert_eq!(e.state.store.computer_count().unwrap(), 4);
    // Another address registers normally.
    let mut b = agent_from(&base, [127, 0, 0, 4]);
    b.handshake(None).await;
    assert!(e.state.store.computer(&b.client_id).unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_past_the_retention_are_pruned_by_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    {
        let store = Store::open(&dir.path().join("meta")).unwrap();
        store
            .upsert_computer(&Computer {
                id: "pc".into(),
                registered_unix: now,
                ..Computer::default()
            })
            .unwrap();
        let ev = |i: u128, t: i64| ReportedEvent {
            instance_id: uuid::Uuid::from_u128(i),
            update: None,
            event_id: 147,
            hresult: 0,
            time_unix: t,
            misc: vec![],
        };
        store
            .add_events("pc", &[ev(1, now - 10 * 86400), ev(2, now - 3600)], now)
            .unwrap();
        store.flush().unwrap();
    }
    let e = TestEdge::start_in(dir, None, |c| {
        c.clients.event_retention = Duration::from_secs(86400);
    })
    .await;
    // The server prunes at start-up and then hourly; wait for the start-up pass.
    let mut left = e.state.store.events("pc").unwrap();
    for _ in 0..200 {
        if left.len() < 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = e.state.store.events("pc").unwrap();
    }
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].instance_id, uuid::Uuid::from_u128(2));
}
