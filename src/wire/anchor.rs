//! The Windows anchor format `nnnn,yyyy-MM-dd HH:mm:ss.fff` (MS-WSUSSS fn 31, 34, 45): a
//! counter, a comma and a UTC timestamp with milliseconds. A Windows upstream requires this
//! format in `GetRevisionIdList` and `GetDeployments` anchors, so wsus-edge emits it when it is
//! the upstream. Anchors are opaque to a downstream server; when comparing, the timestamp
//! decides what is newer (observed on WS2025: the counter stays constant in a session), the
//! counter only breaks ties.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::WireError;

/// A parsed anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Anchor {
    /// The leading counter (1..2^31-1 on Windows).
    pub counter: u32,
    /// The timestamp, millisecond precision, UTC.
    pub time: PrimitiveDateTime,
}

impl Anchor {
    /// An anchor for `time` (truncated to milliseconds).
    pub fn new(counter: u32, time: OffsetDateTime) -> Self {
        let t = time.to_offset(UtcOffset::UTC);
        let ms = t.millisecond();
        let time = PrimitiveDateTime::new(t.date(), t.time())
            .replace_nanosecond(u32::from(ms) * 1_000_000)
            .unwrap_or(PrimitiveDateTime::new(t.date(), t.time()));
        Self { counter, time }
    }

    /// The timestamp as UTC.
    pub fn timestamp(&self) -> OffsetDateTime {
        self.time.assume_utc()
    }

    /// Parses `nnnn,yyyy-MM-dd HH:mm:ss.fff` (1–3 fractional digits, or none).
    pub fn parse(s: &str) -> Result<Self, WireError> {
        let bad = || WireError::bad("anchor", s);
        let (n, ts) = s.trim().split_once(',').ok_or_else(bad)?;
        if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let counter: u32 = n.parse().map_err(|_| bad())?;
        let (date, clock) = ts.split_once(' ').ok_or_else(bad)?;
        let dp: Vec<&str> = date.split('-').collect();
        let (hms, frac) = match clock.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (clock, None),
        };
        let tp: Vec<&str> = hms.split(':').collect();
        if dp.len() != 3 || tp.len() != 3 {
            return Err(bad());
        }
        let num = |t: &str, len: usize| -> Result<u32, WireError> {
            if t.len() != len || !t.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse().map_err(|_| bad())
        };
        let year = num(dp[0], 4)? as i32;
        let month = Month::try_from(num(dp[1], 2)? as u8).map_err(|_| bad())?;
        let day = num(dp[2], 2)? as u8;
        let ms = match frac {
            None => 0,
            Some(f) if (1..=3).contains(&f.len()) => {
                let v = num(f, f.len())?;
                v * 10u32.pow(3 - f.len() as u32)
            }
            Some(_) => return Err(bad()),
        };
        let date = Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
        let time = Time::from_hms_milli(
            num(tp[0], 2)? as u8,
            num(tp[1], 2)? as u8,
            num(tp[2], 2)? as u8,
            ms as u16,
        )
        .map_err(|_| bad())?;
        Ok(Self {
            counter,
            time: PrimitiveDateTime::new(date, time),
        })
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.time;
        write!(
            f,
            "{},{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
            self.counter,
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
}

impl FromStr for Anchor {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Ord for Anchor {
    fn cmp(&self, other: &Self) -> Ordering {
        self.time
            .cmp(&other.time)
            .then(self.counter.cmp(&other.counter))
    }
}

impl PartialOrd for Anchor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn parses_and_formats_real_anchors() {
        for s in [
            "9438,2026-10-04 16:33:26.668",
            "4742,2006-05-26 18:59:26.192",
            "14030,2006-06-08 15:38:16.022",
        ] {
            let a = Anchor::parse(s).unwrap();
            assert_eq!(a.to_string(), s);
        }
        let a = Anchor::parse("7,2026-01-02 03:04:05.6").unwrap();
        assert_eq!(a.to_string(), "7,2026-01-02 03:04:05.600");
        assert_eq!(
            Anchor::parse("7,2026-01-02 03:04:05").unwrap().to_string(),
            "7,2026-01-02 03:04:05.000"
        );
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "garbage",
            "",
            ",2026-10-04 16:33:26.668",
            "x,2026-10-04 16:33:26.668",
            "1,2026-10-04T16:33:26.668",
            "1,2026-13-04 16:33:26.668",
            "1,2026-10-04 16:33:26.6689",
            "1,26-10-04 16:33:26.668",
            "-1,2026-10-04 16:33:26.668",
        ] {
            assert!(Anchor::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn timestamp_decides_order_counter_breaks_ties() {
        let a = Anchor::parse("9438,2026-10-04 16:33:26.668").unwrap();
        let b = Anchor::parse("9438,2026-10-04 16:33:26.671").unwrap();
        let c = Anchor::parse("1,2026-10-04 16:33:27.000").unwrap();
        let d = Anchor::parse("9439,2026-10-04 16:33:26.671").unwrap();
        assert!(a < b && b < c);
        assert!(b < d && d < c);
    }

    #[test]
    fn new_truncates_to_milliseconds() {
        let a = Anchor::new(5, datetime!(2026-10-04 16:33:26.668999 UTC));
        assert_eq!(a.to_string(), "5,2026-10-04 16:33:26.668");
        assert_eq!(Anchor::parse(&a.to_string()).unwrap(), a);
    }
}
