//! The admin API client every admin verb uses, the exit codes they share, and aligned-table
//! output. The CLI never opens the store: it talks to the running server.
//!
//! Exit codes (also in `--help`): 0 success; 1 the server refused the request or the
//! operation failed; 2 bad usage; 3 the admin API cannot be reached (server not running or
//! wrong `--admin` address); 4 the admin API refused the token.

use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::admin::auth::{Token, TOKEN_ENV};
use crate::admin::types::ErrorJson;
use crate::config::Config;

/// The exit-code table printed in `--help` of every admin verb.
pub const EXIT_CODES: &str = "Exit codes:\n  0  success\n  1  the server refused the request or the operation failed\n  2  bad usage\n  3  the admin API cannot be reached (is `wsus-edge serve` running? check --admin / [admin] listen)\n  4  the admin API refused the token (WSUS_EDGE_TOKEN or [admin] token_file)";

/// An expected failure: one line on stderr and this exit code.
#[derive(Debug)]
pub struct Exit {
    /// Process exit code.
    pub code: u8,
    /// The line to print.
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

/// Builds an [`Exit`] error.
pub fn exit(code: u8, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Exit {
        code,
        message: message.into(),
    })
}

/// Runs an admin verb: an [`Exit`] error prints its one line and becomes its exit code;
/// other errors go up (one line, exit 1, printed by `main`).
pub fn run_verb(
    f: impl FnOnce() -> anyhow::Result<std::process::ExitCode>,
) -> anyhow::Result<std::process::ExitCode> {
    match f() {
        Ok(c) => Ok(c),
        Err(e) => match e.downcast::<Exit>() {
            Ok(x) => {
                eprintln!("wsus-edge: {}", x.message);
                Ok(std::process::ExitCode::from(x.code))
            }
            Err(e) => Err(e),
        },
    }
}

/// A connection to the admin API of the running server.
pub struct AdminClient {
    base: String,
    token: Option<String>,
    token_hint: String,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl AdminClient {
    /// From the config, `--admin URL` and `WSUS_EDGE_TOKEN`.
    pub fn new(config: &Config, admin: Option<&str>) -> anyhow::Result<Self> {
        let base = match admin {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                u.trim_end_matches('/').to_string()
            }
            Some(u) => format!("http://{}", u.trim_end_matches('/')),
            None => format!("http://{}", config.admin.listen),
        };
        let (token, token_hint) = match Token::load(config) {
            Ok(t) => (Some(t.as_str().to_string()), String::new()),
            Err(e) => (None, format!(" (no token: {e})")),
        };
        let mut http = reqwest::Client::builder().connect_timeout(Duration::from_secs(5));
        // The admin API is usually on loopback: `http_proxy` in the admin's environment must
        // not send those calls through a proxy (which cannot reach our loopback).
        if is_loopback_url(&base) {
            http = http.no_proxy();
        }
        let http = http.build().context("building the HTTP client")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        Ok(Self {
            base,
            token,
            token_hint,
            http,
            rt,
        })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// Sends and checks the status; maps transport and HTTP errors to [`Exit`] codes.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let resp = req.send().await.map_err(|e| {
            let why = if e.is_connect() {
                "connection refused or unreachable".to_string()
            } else if e.is_timeout() {
                "timed out".to_string()
            } else {
                e.to_string()
            };
            exit(
                3,
                format!(
                    "cannot reach the admin API at {} ({why}); is `wsus-edge serve` running?",
                    self.base
                ),
            )
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(exit(
                4,
                format!(
                    "the admin API at {} refused the token{}; set {TOKEN_ENV} or check [admin] token_file",
                    self.base, self.token_hint
                ),
            ));
        }
        let text = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<ErrorJson>(&text)
            .map(|e| e.error)
            .unwrap_or_else(|_| text.lines().next().unwrap_or("").to_string());
        Err(exit(1, format!("{msg} ({status})")))
    }

    /// `method path` with an optional JSON body and query; decodes a JSON answer.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> anyhow::Result<T> {
        let mut req = self.request(method, path).query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.rt.block_on(async {
            let resp = self.send(req).await?;
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| exit(3, format!("reading the answer from {}: {e}", self.base)))?;
            serde_json::from_slice(&bytes)
                .with_context(|| format!("unexpected answer from {}{path}", self.base))
        })
    }

    /// `GET path?query` decoded.
    pub fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        self.call(Method::GET, path, query, None::<&()>)
    }

    /// Streams a newline-delimited JSON answer, calling `line` for each decoded line.
    pub fn stream_lines<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        mut line: impl FnMut(T),
    ) -> anyhow::Result<()> {
        use futures_util::StreamExt;
        self.rt.block_on(async {
            let resp = self.send(self.request(method, path)).await?;
            let mut stream = resp.bytes_stream();
            let mut buf: Vec<u8> = Vec::new();
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| exit(1, format!("the server stopped answering: {e}")))?;
                buf.extend_from_slice(&chunk);
                while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                    let l: Vec<u8> = buf.drain(..=i).collect();
                    if l.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    line(serde_json::from_slice(&l).context("unexpected progress line")?);
                }
            }
            Ok(())
        })
    }
}

/// Whether `url`'s host is a loopback address or `localhost`.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = u.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Prints rows as a table with aligned columns (two spaces apart), headers first.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", table(headers, rows));
}

/// The text of [`print_table`].
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let n = headers.len();
    let mut w: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(c);
                l.push_str(&" ".repeat(w[i] - c.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

/// Shortens text to `max` characters with an ellipsis.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Prints a value as pretty JSON.
pub fn print_json<T: Serialize + ?Sized>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns() {
        let t = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "a".into()],
                vec!["1234".into(), "b c".into()],
            ],
        );
        assert_eq!(t, "ID    NAME\n1     a\n1234  b c\n");
        assert_eq!(clip("abcdef", 4), "abc…");
    }

    #[test]
    fn loopback_urls() {
        assert!(is_loopback_url("http://127.0.0.1:8590"));
        assert!(is_loopback_url("http://127.1.2.3:8590"));
        assert!(is_loopback_url("http://[::1]:8590"));
        assert!(is_loopback_url("http://localhost:8590"));
        assert!(!is_loopback_url("http://10.0.0.5:8590"));
        assert!(!is_loopback_url("http://wsus.example:8590"));
    }
}
