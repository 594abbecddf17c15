//! Fuzzes what the client service does with an untrusted request body before touching the
//! store: the SOAP envelope parser (with the service's limits), dispatch on the body element,
//! the typed decoding of every MS-WUSP request, and cookie verification of whatever cookie
//! bytes the request carries; and that the streaming SyncUpdates decoder never disagrees with
//! the general one. Must never panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsus_edge::client_service::{CookieKey, CookieKind};
use wsus_edge::wire::soap;
use wsus_edge::wire::wusp::{self, Cookie};
use wsus_edge::wire::xml::Limits;

fn check(c: &Cookie) {
    let key = CookieKey::new([7u8; 32]);
    if let Some(d) = &c.encrypted_data {
        let _ = key.open(d, CookieKind::Session, uuid::Uuid::nil(), Some(1), 0);
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_depth: 32,
        max_elements: 200_000,
        max_text: 1 << 20,
        max_input: 16 << 20,
        ..Limits::default()
    };
    // The streaming SyncUpdates decoder may decline anything, but whatever it accepts the
    // general decoder must decode to the same request.
    let fast = wusp::sync_updates_stream::decode_sync_updates(data, &limits);
    let general = soap::parse_envelope_with(data, &limits);
    if let Some(f) = &fast {
        let g = general.as_ref().ok().and_then(|e| e.decode::<wusp::SyncUpdates>().ok());
        assert_eq!(Some(f), g.as_ref(), "streaming SyncUpdates decoder disagrees");
    }
    let Ok(env) = general else {
        return;
    };
    let (ns, name) = env.operation();
    let _ = wusp::action_for(ns, name);
    let _ = env.fault();
    if let Ok(r) = env.decode::<wusp::GetConfig>() {
        let _ = r.protocol_version.len();
    }
    if let Ok(r) = env.decode::<wusp::GetAuthorizationCookie>() {
        let _ = r.client_id.len();
    }
    if let Ok(r) = env.decode::<wusp::GetCookie>() {
        for a in &r.auth_cookies {
            let key = CookieKey::new([7u8; 32]);
            let _ = key.open(&a.cookie_data, CookieKind::Authorization, uuid::Uuid::nil(), None, 0);
        }
    }
    if let Ok(r) = env.decode::<wusp::RegisterComputer>() {
        check(&r.cookie);
        let _ = r.computer_info.os_version();
    }
    if let Ok(r) = env.decode::<wusp::SyncUpdates>() {
        check(&r.cookie);
    }
    if let Ok(r) = env.decode::<wusp::RefreshCache>() {
        check(&r.cookie);
    }
    if let Ok(r) = env.decode::<wusp::GetExtendedUpdateInfo>() {
        check(&r.cookie);
    }
    if let Ok(r) = env.decode::<wusp::GetFileLocations>() {
        check(&r.cookie);
    }
    if let Ok(r) = env.decode::<wusp::ReportEventBatch>() {
        check(&r.cookie);
    }
});
