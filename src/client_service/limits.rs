//! What one LAN client may make the server keep (issue 15: a client flooding
//! `ReportEventBatch` or registering a new computer with a ~1 MB group name per request grew
//! the store by ~100 MB/s). Field lengths and batch sizes are constants here; counts, rates
//! and retention come from `[clients]` ([`ClientsConfig`]). The store side is
//! [`Store::trim_events`](crate::store::Store::trim_events) and
//! [`Store::prune_events`](crate::store::Store::prune_events) (run hourly by the server).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::ClientsConfig;

/// Longest client-side target group string (`A;B;C`) accepted, in bytes. WSUS group names
/// are at most 256 characters; a client rarely asks for more than a few.
pub const MAX_TARGET_GROUPS_BYTES: usize = 1024;
/// Most group names in that string.
pub const MAX_TARGET_GROUPS: usize = 16;
/// Longest DNS name kept (characters; longer ones are cut).
pub const MAX_DNS_NAME: usize = 255;
/// Longest OS / agent version string kept (characters; longer ones are cut).
pub const MAX_VERSION: usize = 64;
/// Most events accepted in one `ReportEventBatch` (the agent sends a few dozen at most).
pub const MAX_EVENTS_PER_BATCH: usize = 1000;
/// Most `MiscData` bytes kept per event (event 156 carries GUID lists; longer is cut).
pub const MAX_MISC_BYTES: usize = 64 << 10;
/// Client addresses whose registration counts are remembered (more: the table restarts).
const MAX_TRACKED_ADDRESSES: usize = 4096;

/// Why a registration is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `[clients] max_computers` reached.
    Full,
    /// This address registered `registrations_per_minute` new computers in the last minute.
    TooFast,
}

/// Counts new-computer registrations per client address (fixed one-minute windows).
pub struct Registrations {
    cfg: ClientsConfig,
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Registrations {
    /// A counter enforcing `cfg`.
    pub fn new(cfg: ClientsConfig) -> Self {
        Self {
            cfg,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// The limits.
    pub fn config(&self) -> &ClientsConfig {
        &self.cfg
    }

    /// May `peer` register one more new computer now, the server knowing `known` computers?
    /// Counts the registration when it may. Without an address (an in-process caller) only
    /// `max_computers` applies.
    pub fn admit(&self, peer: Option<IpAddr>, known: usize, now: Instant) -> Result<(), Refusal> {
        if known >= self.cfg.max_computers {
            return Err(Refusal::Full);
        }
        let Some(peer) = peer else {
            return Ok(());
        };
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() >= MAX_TRACKED_ADDRESSES && !w.contains_key(&peer) {
            w.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
            if w.len() >= MAX_TRACKED_ADDRESSES {
                w.clear();
            }
        }
        let slot = w.entry(peer).or_insert((now, 0));
        if now.duration_since(slot.0) >= Duration::from_secs(60) {
            *slot = (now, 0);
        }
        if slot.1 >= self.cfg.registrations_per_minute {
            return Err(Refusal::TooFast);
        }
        slot.1 += 1;
        Ok(())
    }
}

/// Checks a client-side target group string; the reason when it is refused.
pub fn check_target_groups(s: &str) -> Result<(), String> {
    if s.len() > MAX_TARGET_GROUPS_BYTES {
        return Err(format!(
            "targetGroupName longer than {MAX_TARGET_GROUPS_BYTES} bytes"
        ));
    }
    if s.split(';').filter(|g| !g.trim().is_empty()).count() > MAX_TARGET_GROUPS {
        return Err(format!("more than {MAX_TARGET_GROUPS} target groups"));
    }
    Ok(())
}

/// `s` cut to `max` characters.
pub fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// `misc` cut to [`MAX_MISC_BYTES`] in total (whole strings kept while they fit; the first
/// that does not is cut at a character boundary, the rest dropped).
pub fn cut_misc(misc: &[String]) -> Vec<String> {
    let mut left = MAX_MISC_BYTES;
    let mut out = Vec::new();
    for m in misc {
        if left == 0 {
            break;
        }
        if m.len() <= left {
            left -= m.len();
            out.push(m.clone());
        } else {
            let mut end = left;
            while !m.is_char_boundary(end) {
                end -= 1;
            }
            out.push(m[..end].to_string());
            left = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_computers: usize, per_minute: u32) -> ClientsConfig {
        ClientsConfig {
            max_computers,
            registrations_per_minute: per_minute,
            ..ClientsConfig::default()
        }
    }

    #[test]
    fn registrations_are_counted_per_address_and_per_minute() {
        let r = Registrations::new(cfg(100, 3));
        let t0 = Instant::now();
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        for _ in 0..3 {
            assert_eq!(r.admit(a, 0, t0), Ok(()));
        }
        assert_eq!(r.admit(a, 0, t0), Err(Refusal::TooFast));
        assert_eq!(
            r.admit(b, 0, t0),
            Ok(()),
            "another address is not held back"
        );
        assert_eq!(r.admit(a, 0, t0 + Duration::from_secs(61)), Ok(()));
        assert_eq!(r.admit(b, 100, t0), Err(Refusal::Full));
        assert_eq!(
            r.admit(None, 99, t0),
            Ok(()),
            "no address: only the total counts"
        );
    }

    #[test]
    fn group_strings_and_misc_data_are_bounded() {
        assert!(check_target_groups("Pilot;Workstations").is_ok());
        assert!(check_target_groups(&"x".repeat(1 << 20)).is_err());
        assert!(check_target_groups(&"a;".repeat(17)).is_err());
        let big = vec!["é".repeat(40_000), "U=1".into()];
        let cut = cut_misc(&big);
        assert_eq!(cut.len(), 1);
        assert!(cut[0].len() <= MAX_MISC_BYTES && cut[0].len() > MAX_MISC_BYTES - 2);
        let small = vec!["U=1".to_string(), "V=2".to_string()];
        assert_eq!(cut_misc(&small), small);
    }
}
