//! Human-friendly quantities used in the config and on the command line: byte sizes
//! (`500GiB`, `4GB`), bandwidths (`20Mbit`, `5MB/s`), durations (`6h`, `90s`) and daily
//! time windows (`22:00-06:00`). Parsing only; no I/O.

use std::time::Duration;

/// A unit string that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: expected {expected}")]
pub struct UnitError {
    what: &'static str,
    input: String,
    expected: &'static str,
}

fn split_number(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let n: f64 = s[..end].parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    Some((n, s[end..].trim()))
}

/// Parses a byte size: a number with an optional unit `B`, `K`/`KB`/`KiB`, `M`.., `G`.., `T`..
/// (`KB` = 1000, `KiB` = 1024; a bare `K`/`M`/`G`/`T` is binary, as admins mean it).
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let err = || UnitError {
        what: "size",
        input: s.to_string(),
        expected: "a number with an optional unit such as 4GiB, 500GB or 1048576",
    };
    let (n, unit) = split_number(s).ok_or_else(err)?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "kb" => 1e3,
        "m" | "mib" => 1024.0 * 1024.0,
        "mb" => 1e6,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "gb" => 1e9,
        "t" | "tib" => 1024f64.powi(4),
        "tb" => 1e12,
        _ => return Err(err()),
    };
    Ok((n * mult).round() as u64)
}

/// Parses a bandwidth into bytes per second: `20Mbit`, `20Mbps`, `512kbit`, `1Gbit` (decimal
/// bits, as links are sold) or `5MB/s`, `5MiB/s` (bytes).
pub fn parse_bandwidth(s: &str) -> Result<u64, UnitError> {
    let err = || UnitError {
        what: "bandwidth",
        input: s.to_string(),
        expected: "a rate such as 20Mbit, 512kbit, 1Gbps or 5MB/s",
    };
    let (n, unit) = split_number(s).ok_or_else(err)?;
    let u = unit.to_ascii_lowercase();
    let bits = |m: f64| Ok(((n * m) / 8.0).round() as u64);
    match u.as_str() {
        "bit" | "bps" | "bit/s" => bits(1.0),
        "kbit" | "kbps" | "kbit/s" => bits(1e3),
        "mbit" | "mbps" | "mbit/s" => bits(1e6),
        "gbit" | "gbps" | "gbit/s" => bits(1e9),
        _ => {
            let bytes = u.strip_suffix("/s").ok_or_else(err)?;
            parse_size(&format!("{n}{bytes}")).map_err(|_| err())
        }
    }
}

/// Parses a duration: `90s`, `15m`, `6h`, `1d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let err = || UnitError {
        what: "duration",
        input: s.to_string(),
        expected: "a duration such as 90s, 15m, 6h or 1d",
    };
    let (n, unit) = split_number(s).ok_or_else(err)?;
    let secs = match unit.to_ascii_lowercase().as_str() {
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(err()),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// A daily window `HH:MM-HH:MM` in local wall-clock minutes; it may wrap past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyWindow {
    /// Start, minutes after midnight.
    pub start: u16,
    /// End, minutes after midnight (exclusive).
    pub end: u16,
}

impl DailyWindow {
    /// Parses `22:00-06:00`.
    pub fn parse(s: &str) -> Result<Self, UnitError> {
        let err = || UnitError {
            what: "time window",
            input: s.to_string(),
            expected: "HH:MM-HH:MM, e.g. 22:00-06:00",
        };
        let hm = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (a, b) = s.split_once('-').ok_or_else(err)?;
        Ok(Self {
            start: hm(a).ok_or_else(err)?,
            end: hm(b).ok_or_else(err)?,
        })
    }

    /// Whether `minute` (minutes after midnight) falls inside the window.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start <= self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500GiB").unwrap(), 500 * (1 << 30));
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("64 KiB").unwrap(), 65536);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1G").is_err());
    }

    #[test]
    fn bandwidths() {
        assert_eq!(parse_bandwidth("20Mbit").unwrap(), 2_500_000);
        assert_eq!(parse_bandwidth("8kbps").unwrap(), 1000);
        assert_eq!(parse_bandwidth("5MiB/s").unwrap(), 5 << 20);
        assert!(parse_bandwidth("20").is_err());
    }

    #[test]
    fn durations_and_windows() {
        assert_eq!(parse_duration("6h").unwrap(), Duration::from_secs(21600));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        let w = DailyWindow::parse("22:00-06:00").unwrap();
        assert!(w.contains(23 * 60) && w.contains(5 * 60) && !w.contains(12 * 60));
        let d = DailyWindow::parse("01:30-02:00").unwrap();
        assert!(d.contains(90) && !d.contains(120));
        assert!(DailyWindow::parse("25:00-01:00").is_err());
    }
}
