//! The response head of the zero-copy path, written from the same `http::Response` parts that
//! hyper writes for the hyper path: status line, `date`, the answer's headers in order, and
//! `connection: close` when the connection ends after it. A content answer's headers are
//! decided once, by [`crate::content::serve::respond`]; this is the only code that turns them
//! into bytes for `sendfile` (tests/http_heads.rs checks both paths give the same heads).

use http::{HeaderMap, StatusCode};

/// Writes the head of an answer into `out` (cleared first), ending with the empty line.
pub fn write(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    date: &mut DateCache,
    close: bool,
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    date.append_now(out);
    out.extend_from_slice(b"\r\n");
    for (n, v) in headers {
        out.extend_from_slice(n.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The `Date` header value, formatted once per second.
#[derive(Default)]
pub struct DateCache {
    secs: u64,
    text: String,
}

impl DateCache {
    fn append_now(&mut self, out: &mut Vec<u8>) {
        let now = std::time::SystemTime::now();
        let secs = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if secs != self.secs || self.text.is_empty() {
            self.secs = secs;
            self.text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(self.text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_layout() {
        let mut h = HeaderMap::new();
        h.insert("content-length", http::HeaderValue::from(5u64));
        h.insert("etag", http::HeaderValue::from_static("\"ab\""));
        let mut out = Vec::new();
        write(
            &mut out,
            StatusCode::PARTIAL_CONTENT,
            &h,
            &mut DateCache::default(),
            true,
        );
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("HTTP/1.1 206 Partial Content\r\ndate: "),
            "{s}"
        );
        assert!(
            s.ends_with("\r\ncontent-length: 5\r\netag: \"ab\"\r\nconnection: close\r\n\r\n"),
            "{s}"
        );
    }
}
