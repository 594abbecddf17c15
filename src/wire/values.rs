//! Text forms of the XML Schema simple types MS-WSUSSS uses: `xs:dateTime` (0–7 fractional
//! digits, `Z`, an offset or no zone), GUIDs (written lower-case), booleans, integers and
//! base64. Parsing is lenient where .NET peers vary; formatting matches what WSUS writes.

use base64::Engine;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
use uuid::Uuid;

use super::WireError;

/// The text WSUS sends for "no deadline" (MS-WSUSSS §3.1.4.10.3.5).
pub const NO_DEADLINE: &str = "9999-12-31T23:59:59.9999999";

/// Parses `xs:dateTime`; a value without zone is taken as UTC.
pub fn parse_datetime(field: &'static str, s: &str) -> Result<OffsetDateTime, WireError> {
    parse_dt(s.trim()).ok_or_else(|| WireError::bad(field, s))
}

fn parse_dt(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let year = num(0..4)? as i32;
    let month = Month::try_from(num(5..7)? as u8).ok()?;
    let day = num(8..10)? as u8;
    let (h, m, sec) = (num(11..13)? as u8, num(14..16)? as u8, num(17..19)? as u8);
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let mut n: u32 = frac[..digits].parse().ok()?;
        for _ in digits..9 {
            n *= 10;
        }
        nanos = n;
        rest = &frac[digits..];
    }
    let offset = match rest {
        "" | "Z" => UtcOffset::UTC,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1i8,
                b'-' => -1i8,
                _ => return None,
            };
            let hm = &rest[1..];
            if hm.len() != 5 || hm.as_bytes()[2] != b':' {
                return None;
            }
            let oh: i8 = hm[0..2].parse().ok()?;
            let om: i8 = hm[3..5].parse().ok()?;
            UtcOffset::from_hms(sign * oh, sign * om, 0).ok()?
        }
    };
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_nano(h, m, sec, nanos).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

/// Formats as WSUS does: UTC, `Z`, fractional seconds trimmed of trailing zeros (max 7).
pub fn format_datetime(t: OffsetDateTime) -> String {
    let mut s = String::with_capacity(28);
    push_datetime(&mut s, t);
    s
}

/// Appends [`format_datetime`]'s text to `out` (without allocating, for years 0–9999: a
/// SyncUpdates answer writes a deadline for many of its updates).
pub fn push_datetime(out: &mut String, t: OffsetDateTime) {
    let t = t.to_offset(UtcOffset::UTC);
    let Ok(year) = u16::try_from(t.year()) else {
        return out.push_str(&format_datetime_slow(t));
    };
    if year > 9999 {
        return out.push_str(&format_datetime_slow(t));
    }
    let two = |v: u8| [b'0' + v / 10, b'0' + v % 10];
    let mut b = [0u8; 28];
    b[..4].copy_from_slice(&[
        b'0' + (year / 1000) as u8,
        b'0' + (year / 100 % 10) as u8,
        b'0' + (year / 10 % 10) as u8,
        b'0' + (year % 10) as u8,
    ]);
    b[4] = b'-';
    b[5..7].copy_from_slice(&two(u8::from(t.month())));
    b[7] = b'-';
    b[8..10].copy_from_slice(&two(t.day()));
    b[10] = b'T';
    b[11..13].copy_from_slice(&two(t.hour()));
    b[13] = b':';
    b[14..16].copy_from_slice(&two(t.minute()));
    b[16] = b':';
    b[17..19].copy_from_slice(&two(t.second()));
    let mut n = 19;
    let mut ticks = t.nanosecond() / 100;
    if ticks != 0 {
        // Seven digits of 100 ns, trailing zeros trimmed.
        let mut digits = [0u8; 7];
        for d in digits.iter_mut().rev() {
            *d = b'0' + (ticks % 10) as u8;
            ticks /= 10;
        }
        let keep = 7 - digits.iter().rev().take_while(|d| **d == b'0').count();
        b[n] = b'.';
        b[n + 1..n + 1 + keep].copy_from_slice(&digits[..keep]);
        n += 1 + keep;
    }
    b[n] = b'Z';
    // Only ASCII was written, so the conversion cannot fail.
    out.push_str(std::str::from_utf8(&b[..n + 1]).unwrap_or_default());
}

fn format_datetime_slow(t: OffsetDateTime) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let ticks = t.nanosecond() / 100;
    if ticks != 0 {
        let frac = format!("{ticks:07}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Parses a deadline: [`NO_DEADLINE`] (or any year-9999 value) is `None`.
pub fn parse_deadline(s: &str) -> Result<Option<OffsetDateTime>, WireError> {
    let t = parse_datetime("Deadline", s)?;
    Ok(if t.year() >= 9999 { None } else { Some(t) })
}

/// Formats a deadline; `None` is [`NO_DEADLINE`].
pub fn format_deadline(t: Option<OffsetDateTime>) -> String {
    t.map_or_else(|| NO_DEADLINE.to_string(), format_datetime)
}

/// Parses a GUID in any case, with or without braces.
pub fn parse_guid(field: &'static str, s: &str) -> Result<Uuid, WireError> {
    let t = s.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(t);
    if t.len() != 36 {
        return Err(WireError::bad(field, s));
    }
    Uuid::parse_str(t).map_err(|_| WireError::bad(field, s))
}

/// A GUID as WSUS writes it: lower-case, hyphenated.
pub fn format_guid(u: &Uuid) -> String {
    u.hyphenated().to_string()
}

/// `xs:boolean`: `true`/`false`/`1`/`0`.
pub fn parse_bool(field: &'static str, s: &str) -> Result<bool, WireError> {
    match s.trim() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(WireError::bad(field, s)),
    }
}

/// `true` / `false`.
pub fn format_bool(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// `xs:int`.
pub fn parse_i32(field: &'static str, s: &str) -> Result<i32, WireError> {
    s.trim().parse().map_err(|_| WireError::bad(field, s))
}

/// A non-negative `xs:int` (revision numbers).
pub fn parse_u32(field: &'static str, s: &str) -> Result<u32, WireError> {
    let v = parse_i32(field, s)?;
    u32::try_from(v).map_err(|_| WireError::bad(field, s))
}

/// `xs:base64Binary` (whitespace tolerated).
pub fn parse_base64(field: &'static str, s: &str) -> Result<Vec<u8>, WireError> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| WireError::bad(field, s))
}

/// Standard padded base64.
pub fn format_base64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_in_every_shape_wsus_sends() {
        let t = parse_datetime("t", "2026-10-04T20:33:26.65455Z").unwrap();
        assert_eq!(format_datetime(t), "2026-10-04T20:33:26.65455Z");
        let t = parse_datetime("t", "2006-05-24T15:37:08.887").unwrap();
        assert_eq!(format_datetime(t), "2006-05-24T15:37:08.887Z");
        let t = parse_datetime("t", "2026-10-04T13:16:35+02:00").unwrap();
        assert_eq!(format_datetime(t), "2026-10-04T11:16:35Z");
        let t = parse_datetime("t", "2006-06-08T19:32:23.7190987Z").unwrap();
        assert_eq!(format_datetime(t), "2006-06-08T19:32:23.7190987Z");
        // The buffer writer against the formatting-machinery version it replaced.
        let base = OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap();
        for k in 0..2000i64 {
            let t = base
                + time::Duration::seconds(k * 86_399 + k % 61)
                + time::Duration::nanoseconds((k * 7_919_300) % 1_000_000_000);
            let mut s = String::from("x");
            push_datetime(&mut s, t);
            assert_eq!(s, format!("x{}", format_datetime_slow(t)), "{t}");
        }
        assert!(parse_datetime("t", "2026-13-04T20:33:26Z").is_err());
        assert!(parse_datetime("t", "garbage").is_err());
        assert!(parse_datetime("t", "2026-10-04T20:33:26.Z").is_err());
    }

    #[test]
    fn no_deadline_round_trips() {
        assert_eq!(parse_deadline(NO_DEADLINE).unwrap(), None);
        assert_eq!(format_deadline(None), NO_DEADLINE);
        let d = parse_deadline("2026-12-01T10:00:00Z").unwrap();
        assert_eq!(format_deadline(d), "2026-12-01T10:00:00Z");
    }

    #[test]
    fn guids_parse_any_case_and_print_lower() {
        let u = parse_guid("g", "ADB2FE48-0B2E-451e-8FC8-44B29845B0C6").unwrap();
        assert_eq!(format_guid(&u), "adb2fe48-0b2e-451e-8fc8-44b29845b0c6");
        assert!(parse_guid("g", "adb2fe480b2e451e8fc844b29845b0c6").is_err());
        assert!(parse_guid("g", "{adb2fe48-0b2e-451e-8fc8-44b29845b0c6}").is_ok());
    }
}
