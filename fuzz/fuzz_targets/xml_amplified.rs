//! Fuzzes the XML reader for time, not only for crashes (issue 15): libFuzzer's inputs are
//! small, and the reader's quadratic cases (one tag with 100,000 attributes, elements resolved
//! against thousands of namespaces) need big ones. So the input is a recipe: two bytes give a
//! repeat count, the rest is `prefix 0xFF fragment 0xFF suffix`, and the document parsed is
//! `prefix + fragment × count + suffix`, cut at 4 MiB (the client body limit). Both readers of
//! a client request (the general SOAP parser and the streaming `SyncUpdates` decoder) must
//! finish within `XML_FUZZ_MAX_MS` (default 1000 ms) whatever they answer; a slower parse
//! panics, so libFuzzer keeps the input as a crash.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use wsus_edge::wire::soap;
use wsus_edge::wire::wusp;
use wsus_edge::wire::xml::Limits;

const MAX_BODY: usize = 4 << 20;

fn budget() -> Duration {
    let ms = std::env::var("XML_FUZZ_MAX_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    Duration::from_millis(ms)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let count = u16::from_le_bytes([data[0], data[1]]) as usize * 4;
    let mut parts = data[2..].splitn(3, |b| *b == 0xFF);
    let prefix = parts.next().unwrap_or_default();
    let fragment = parts.next().unwrap_or_default();
    let suffix = parts.next().unwrap_or_default();
    let mut doc = Vec::with_capacity(MAX_BODY);
    doc.extend_from_slice(prefix);
    for _ in 0..count {
        if doc.len() + fragment.len() > MAX_BODY || fragment.is_empty() {
            break;
        }
        doc.extend_from_slice(fragment);
    }
    let room = MAX_BODY.saturating_sub(doc.len()).min(suffix.len());
    doc.extend_from_slice(&suffix[..room]);

    // The client service's limits (src/client_service/mod.rs).
    let limits = Limits {
        max_depth: 32,
        max_elements: 200_000,
        max_text: 1 << 20,
        max_input: 16 << 20,
        ..Limits::default()
    };
    let start = Instant::now();
    let _ = soap::parse_envelope_with(&doc, &limits);
    let _ = wusp::sync_updates_stream::decode_sync_updates(&doc, &limits);
    let took = start.elapsed();
    assert!(
        took <= budget(),
        "{} bytes took {took:?} to parse (budget {:?})",
        doc.len(),
        budget()
    );
});
