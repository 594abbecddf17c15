//! URL query strings and `application/x-www-form-urlencoded` bodies: `a=1&b=x%20y`.

/// Decoded name/value pairs, in order.
#[derive(Debug, Clone, Default)]
pub struct Query(Vec<(String, String)>);

/// Percent-decodes (and turns `+` into a space); invalid escapes are kept as written.
pub fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    /// Parses `a=1&b=2`.
    pub fn parse(q: &str) -> Self {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }

    /// The first value of `name`, if non-empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is present and not `0`/`false`.
    pub fn flag(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|(k, v)| k == name && v != "0" && !v.eq_ignore_ascii_case("false"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        let q = Query::parse("name=All%20Computers&x=a+b&dry_run&bad=%zz%4");
        assert_eq!(q.get("name"), Some("All Computers"));
        assert_eq!(q.get("x"), Some("a b"));
        assert!(q.flag("dry_run"));
        assert!(!q.flag("nope"));
        assert_eq!(q.get("bad"), Some("%zz%4"));
        assert_eq!(decode("%C3%A9"), "é");
    }
}
