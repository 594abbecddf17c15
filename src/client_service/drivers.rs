//! The driver pass: which approved drivers a client's `SystemSpec` devices get.
//!
//! A driver update names one hardware id (`WindowsDriverMetaData/@HardwareID`) with its
//! `DriverVerDate` and `DriverVerVersion`. For each device the candidates are the approved
//! drivers whose hardware id equals (ASCII case-insensitive, as PnP compares ids) one of the
//! device's `HardwareIDs` or `CompatibleIDs`; they are ranked as Windows ranks drivers for a
//! device (MS-WUSP §3.1.5.7 "best match"; Windows driver-rank rules): a match on a hardware id
//! beats one on a compatible id, an earlier (more specific) id beats a later one, then the
//! newer `DriverVerDate`, then the higher `DriverVerVersion`. The best candidate is offered
//! when it ranks better than the installed driver's `MatchingID`, or matches at the same rank
//! and is newer (date, then version), or the device has no driver.

use std::collections::BTreeSet;

use time::{Date, OffsetDateTime};

use crate::wire::wusp::SpecDevice;
use crate::wire::xml::{parse_document, Limits};

/// What the driver pass needs from a driver update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverMeta {
    /// The hardware id, lower-cased.
    pub hardware_id: String,
    /// `DriverVerDate`.
    pub date: Option<Date>,
    /// `DriverVerVersion` packed as four 16-bit parts.
    pub version: u64,
}

const DRIVER_NS: &str = "http://schemas.microsoft.com/msus/2002/12/UpdateHandlers/WindowsDriver";

/// Packs `a.b.c.d` into the `DriverVerVersion` integer a SystemSpec carries.
pub fn pack_version(v: &str) -> u64 {
    let mut out = 0u64;
    let mut parts = v.trim().split('.');
    for _ in 0..4 {
        let p = parts
            .next()
            .and_then(|x| x.trim().parse::<u64>().ok())
            .unwrap_or(0)
            .min(0xffff);
        out = (out << 16) | p;
    }
    out
}

fn parse_date(s: &str) -> Option<Date> {
    let d = s.trim().get(..10)?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(d, &fmt).ok()
}

impl DriverMeta {
    /// From a driver update's XML (`None` when it names no hardware id).
    pub fn from_xml(xml: &str) -> Option<DriverMeta> {
        let root = parse_document(xml, &Limits::default()).ok()?;
        let mut stack = vec![&root];
        while let Some(el) = stack.pop() {
            if el.is(DRIVER_NS, "WindowsDriverMetaData") {
                let hw = el.attr("HardwareID")?.trim().to_ascii_lowercase();
                if hw.is_empty() {
                    return None;
                }
                return Some(DriverMeta {
                    hardware_id: hw,
                    date: el.attr("DriverVerDate").and_then(parse_date),
                    version: el.attr("DriverVerVersion").map(pack_version).unwrap_or(0),
                });
            }
            stack.extend(el.elements());
        }
        None
    }
}

/// Position of `id` among a device's ids: hardware ids 0.., compatible ids 0x1000...
fn id_rank(dev: &SpecDevice, id: &str) -> Option<u32> {
    if let Some(p) = dev
        .hardware_ids
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case(id))
    {
        return Some(p as u32);
    }
    dev.compatible_ids
        .iter()
        .position(|h| h.trim().eq_ignore_ascii_case(id))
        .map(|p| 0x1000 + p as u32)
}

type RankKey = (u32, std::cmp::Reverse<Option<Date>>, std::cmp::Reverse<u64>);

/// Every id a device offers for matching, lower-cased.
pub fn device_ids(devices: &[SpecDevice]) -> BTreeSet<String> {
    devices
        .iter()
        .flat_map(|d| d.hardware_ids.iter().chain(&d.compatible_ids))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

/// The candidates (index into `drivers`) offered for `devices`, ascending, deduplicated.
pub fn best_matches(devices: &[SpecDevice], drivers: &[&DriverMeta]) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for dev in devices {
        // Lower key = better: rank, then newer date, then higher version.
        let mut best: Option<(RankKey, usize)> = None;
        for (k, d) in drivers.iter().enumerate() {
            let Some(r) = id_rank(dev, &d.hardware_id) else {
                continue;
            };
            let key = (r, std::cmp::Reverse(d.date), std::cmp::Reverse(d.version));
            if best.as_ref().is_none_or(|(b, _)| key < *b) {
                best = Some((key, k));
            }
        }
        let Some(((rank, std::cmp::Reverse(date), std::cmp::Reverse(version)), k)) = best else {
            continue;
        };
        let better = match dev.installed.as_ref().and_then(|i| {
            let m = i.matching_id.as_deref()?;
            Some((id_rank(dev, m).unwrap_or(u32::MAX), i))
        }) {
            None => true,
            Some((irank, i)) => {
                let idate = i.ver_date.map(OffsetDateTime::date);
                rank < irank
                    || rank == irank && (date > idate || date == idate && version > i.ver_version)
            }
        };
        if better {
            out.insert(k);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::wusp::InstalledDriver;

    fn meta(hw: &str, date: &str, v: &str) -> DriverMeta {
        DriverMeta {
            hardware_id: hw.to_ascii_lowercase(),
            date: parse_date(date),
            version: pack_version(v),
        }
    }

    #[test]
    fn versions_pack_like_the_captured_system_spec() {
        // 10.0.26100.1 as the native agent packs it (scan/000009 DriverVerVersion values have
        // 10 in the top 16 bits: 2814751477604196 >> 48 == 10).
        assert_eq!(2814751477604196u64 >> 48, 10);
        assert_eq!(pack_version("10.0.0.0"), 10 << 48);
        assert_eq!(
            pack_version("1.2.3.4"),
            (1 << 48) | (2 << 32) | (3 << 16) | 4
        );
    }

    #[test]
    fn hardware_ids_beat_compatible_ids_and_the_installed_driver_must_be_beaten() {
        let dev = SpecDevice {
            hardware_ids: vec!["PCI\\VEN_8086&DEV_2935&SUBSYS_11001AF4".into()],
            compatible_ids: vec!["PCI\\VEN_8086&DEV_2935".into(), "PCI\\VEN_8086".into()],
            installed: Some(InstalledDriver {
                matching_id: Some("PCI\\VEN_8086&DEV_2935".into()),
                ver_date: Some(time::macros::datetime!(2006-06-21 00:00 UTC)),
                ver_version: pack_version("10.0.1.0"),
            }),
        };
        let generic = meta("pci\\ven_8086", "2030-01-01", "99.0.0.0");
        let same_old = meta("PCI\\VEN_8086&DEV_2935", "2006-06-21", "10.0.1.0");
        let same_new = meta("PCI\\VEN_8086&DEV_2935", "2024-01-01", "10.0.2.0");
        let exact = meta(
            "PCI\\VEN_8086&DEV_2935&SUBSYS_11001AF4",
            "2001-01-01",
            "1.0.0.0",
        );
        // The less specific one is never better than what is installed.
        assert!(best_matches(std::slice::from_ref(&dev), &[&generic]).is_empty());
        assert!(best_matches(std::slice::from_ref(&dev), &[&same_old]).is_empty());
        assert_eq!(
            best_matches(std::slice::from_ref(&dev), &[&generic, &same_new]),
            BTreeSet::from([1])
        );
        // A hardware-id match wins over newer compatible-id matches.
        assert_eq!(
            best_matches(std::slice::from_ref(&dev), &[&same_new, &exact, &generic]),
            BTreeSet::from([1])
        );
        let other = SpecDevice {
            hardware_ids: vec!["USB\\VID_1234".into()],
            ..Default::default()
        };
        assert!(best_matches(&[other], &[&generic, &same_new, &exact]).is_empty());
    }
}
