//! The pure HTTP decision for a payload request: 200, 206, 304, 412 or 416 from the request's
//! `Range`, `If-Range`, `If-Match`, `If-None-Match` and `If-Modified-Since` against the object's
//! size and validators (RFC 9110 §13.2.2 order). No I/O; both the zero-copy and the streamed
//! path use it, so they cannot drift apart. Multi-range requests are answered with the whole
//! object (allowed by RFC 9110 §14.2); clients of WSUS only send single ranges.

use std::time::SystemTime;

/// The request headers that shape the answer (raw header values).
#[derive(Debug, Default, Clone, Copy)]
pub struct Conditions<'a> {
    /// `Range`.
    pub range: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
}

impl<'a> Conditions<'a> {
    /// Reads the relevant headers from a request's header map.
    pub fn from_headers(h: &'a http::HeaderMap) -> Self {
        let get = |n: http::header::HeaderName| h.get(n).and_then(|v| v.to_str().ok());
        Self {
            range: get(http::header::RANGE),
            if_range: get(http::header::IF_RANGE),
            if_match: get(http::header::IF_MATCH),
            if_none_match: get(http::header::IF_NONE_MATCH),
            if_modified_since: get(http::header::IF_MODIFIED_SINCE),
        }
    }
}

/// What to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// 200 with the whole object.
    Full,
    /// 206 with bytes `start..=end` (inclusive, as in `Content-Range`).
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
    /// 416 Range Not Satisfiable (`Content-Range: bytes */size`).
    Unsatisfiable,
}

/// Decides the answer for an object of `size` bytes with strong `etag` (quoted) and
/// `last_modified`.
pub fn plan(c: &Conditions<'_>, size: u64, etag: &str, last_modified: Option<SystemTime>) -> Plan {
    if let Some(im) = c.if_match {
        if !etag_list_matches(im, etag, true) {
            return Plan::PreconditionFailed;
        }
    }
    if let Some(inm) = c.if_none_match {
        if etag_list_matches(inm, etag, false) {
            return Plan::NotModified;
        }
    } else if let (Some(ims), Some(lm)) = (c.if_modified_since, last_modified) {
        if let Ok(t) = httpdate::parse_http_date(ims) {
            if secs(lm) <= secs(t) {
                return Plan::NotModified;
            }
        }
    }
    let Some(range) = c.range else {
        return Plan::Full;
    };
    if let Some(ir) = c.if_range {
        let ir = ir.trim();
        let fresh = if ir.starts_with('"') {
            ir == etag
        } else if ir.starts_with("W/") {
            false
        } else {
            match (httpdate::parse_http_date(ir), last_modified) {
                (Ok(t), Some(lm)) => secs(t) == secs(lm),
                _ => false,
            }
        };
        if !fresh {
            return Plan::Full;
        }
    }
    match parse_range(range, size) {
        RangeSpec::Ignore => Plan::Full,
        RangeSpec::Unsatisfiable => Plan::Unsatisfiable,
        RangeSpec::Bytes(start, end) => Plan::Partial { start, end },
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Whether a comma-separated entity-tag list (or `*`) matches `etag`; strong or weak compare.
fn etag_list_matches(list: &str, etag: &str, strong: bool) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    let bare = etag.trim_start_matches("W/");
    list.split(',').map(str::trim).any(|t| {
        if let Some(weak) = t.strip_prefix("W/") {
            !strong && weak == bare
        } else {
            t == bare
        }
    })
}

enum RangeSpec {
    Ignore,
    Unsatisfiable,
    Bytes(u64, u64),
}

fn parse_range(h: &str, size: u64) -> RangeSpec {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    if a.is_empty() {
        // Suffix range: the last `b` bytes.
        let Some(n) = num(b) else {
            return RangeSpec::Ignore;
        };
        if n == 0 || size == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Bytes(size.saturating_sub(n), size - 1);
    }
    let Some(start) = num(a) else {
        return RangeSpec::Ignore;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match num(b) {
            Some(e) if e >= start => e,
            _ => return RangeSpec::Ignore,
        }
    };
    if start >= size {
        return RangeSpec::Unsatisfiable;
    }
    RangeSpec::Bytes(start, end.min(size - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ET: &str = "\"a379d5526fb3a7a0423da1cd7fc3182a8d448449\"";

    fn lm() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn c<'a>(f: impl FnOnce(&mut Conditions<'a>)) -> Conditions<'a> {
        let mut c = Conditions::default();
        f(&mut c);
        c
    }

    #[test]
    fn table() {
        let lm_s = httpdate::fmt_http_date(lm());
        let older = httpdate::fmt_http_date(lm() - Duration::from_secs(10));
        let p = |s, e| Plan::Partial { start: s, end: e };
        let cases: Vec<(Conditions, u64, Plan)> = vec![
            (c(|_| {}), 100, Plan::Full),
            (c(|c| c.range = Some("bytes=0-9")), 100, p(0, 9)),
            (
                c(|c| c.range = Some("bytes=0-1048575")),
                3 << 20,
                p(0, 1048575),
            ),
            (c(|c| c.range = Some("bytes=90-200")), 100, p(90, 99)),
            (c(|c| c.range = Some("bytes=90-")), 100, p(90, 99)),
            (c(|c| c.range = Some("bytes=-10")), 100, p(90, 99)),
            (c(|c| c.range = Some("bytes=-1000")), 100, p(0, 99)),
            (c(|c| c.range = Some("bytes=99-99")), 100, p(99, 99)),
            (
                c(|c| c.range = Some("bytes=100-")),
                100,
                Plan::Unsatisfiable,
            ),
            (
                c(|c| c.range = Some("bytes=100-200")),
                100,
                Plan::Unsatisfiable,
            ),
            (c(|c| c.range = Some("bytes=-0")), 100, Plan::Unsatisfiable),
            (c(|c| c.range = Some("bytes=0-0")), 0, Plan::Unsatisfiable),
            (c(|c| c.range = Some("bytes=5-2")), 100, Plan::Full),
            (c(|c| c.range = Some("bytes=0-1,5-6")), 100, Plan::Full),
            (c(|c| c.range = Some("items=0-1")), 100, Plan::Full),
            (c(|c| c.range = Some("bytes=a-b")), 100, Plan::Full),
            (c(|c| c.range = Some("bytes=+1-2")), 100, Plan::Full),
            // If-Range: matching etag/date keeps the range, anything else gives the whole body.
            (
                c(|c| {
                    c.range = Some("bytes=0-9");
                    c.if_range = Some(ET)
                }),
                100,
                p(0, 9),
            ),
            (
                c(|c| {
                    c.range = Some("bytes=0-9");
                    c.if_range = Some("\"other\"")
                }),
                100,
                Plan::Full,
            ),
            (
                c(|c| {
                    c.range = Some("bytes=0-9");
                    c.if_range = Some("W/\"a379d5526fb3a7a0423da1cd7fc3182a8d448449\"")
                }),
                100,
                Plan::Full,
            ),
            (
                c(|c| {
                    c.range = Some("bytes=0-9");
                    c.if_range = Some(&lm_s)
                }),
                100,
                p(0, 9),
            ),
            (
                c(|c| {
                    c.range = Some("bytes=0-9");
                    c.if_range = Some(&older)
                }),
                100,
                Plan::Full,
            ),
            (
                c(|c| {
                    c.range = Some("bytes=500-");
                    c.if_range = Some("\"x\"")
                }),
                100,
                Plan::Full,
            ),
            // If-None-Match: weak compare, '*', lists; wins over Range.
            (c(|c| c.if_none_match = Some(ET)), 100, Plan::NotModified),
            (
                c(|c| c.if_none_match = Some("W/\"a379d5526fb3a7a0423da1cd7fc3182a8d448449\"")),
                100,
                Plan::NotModified,
            ),
            (
                c(|c| {
                    c.if_none_match = Some("\"x\", \"a379d5526fb3a7a0423da1cd7fc3182a8d448449\"")
                }),
                100,
                Plan::NotModified,
            ),
            (c(|c| c.if_none_match = Some("*")), 100, Plan::NotModified),
            (c(|c| c.if_none_match = Some("\"x\"")), 100, Plan::Full),
            (
                c(|c| {
                    c.if_none_match = Some(ET);
                    c.range = Some("bytes=0-1")
                }),
                100,
                Plan::NotModified,
            ),
            // If-Modified-Since only without If-None-Match.
            (
                c(|c| c.if_modified_since = Some(&lm_s)),
                100,
                Plan::NotModified,
            ),
            (c(|c| c.if_modified_since = Some(&older)), 100, Plan::Full),
            (
                c(|c| {
                    c.if_modified_since = Some(&lm_s);
                    c.if_none_match = Some("\"x\"")
                }),
                100,
                Plan::Full,
            ),
            // If-Match: strong compare.
            (c(|c| c.if_match = Some(ET)), 100, Plan::Full),
            (c(|c| c.if_match = Some("*")), 100, Plan::Full),
            (
                c(|c| c.if_match = Some("\"x\"")),
                100,
                Plan::PreconditionFailed,
            ),
            (
                c(|c| c.if_match = Some("W/\"a379d5526fb3a7a0423da1cd7fc3182a8d448449\"")),
                100,
                Plan::PreconditionFailed,
            ),
            (
                c(|c| {
                    c.if_match = Some("\"x\"");
                    c.range = Some("bytes=0-1")
                }),
                100,
                Plan::PreconditionFailed,
            ),
        ];
        for (i, (cond, size, want)) in cases.iter().enumerate() {
            assert_eq!(
                plan(cond, *size, ET, Some(lm())),
                *want,
                "case {i}: {cond:?} size {size}"
            );
        }
    }

    #[test]
    fn from_headers_reads_all() {
        let mut h = http::HeaderMap::new();
        h.insert("range", "bytes=1-2".parse().unwrap());
        h.insert("if-range", ET.parse().unwrap());
        let c = Conditions::from_headers(&h);
        assert_eq!(c.range, Some("bytes=1-2"));
        assert_eq!(plan(&c, 10, ET, None), Plan::Partial { start: 1, end: 2 });
    }
}
