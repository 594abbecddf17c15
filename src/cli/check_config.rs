//! `check-config`: the effective configuration (file, environment and defaults merged) as
//! TOML that `--config` reads back, and a check that every file it names exists.
//! Exit 0 when every file is there, 1 with one line per problem on stderr otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{Config, ContentMode, LogFormat};

/// The effective configuration as TOML. Unset optional keys are written as comments, so
/// the output can be read back with `--config` and gives the same configuration.
pub fn render(c: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let p = |p: &Path| q(&p.to_string_lossy());
    let key = |out: &mut String, k: &str, v: Option<String>| {
        let _ = match v {
            Some(v) => writeln!(out, "{k} = {v}"),
            None => writeln!(out, "# {k} = (unset)"),
        };
    };
    let list = |v: &[String]| {
        toml::Value::Array(v.iter().map(|s| toml::Value::String(s.clone())).collect()).to_string()
    };

    out.push_str("[server]\n");
    key(&mut out, "listen", Some(q(&c.server.listen.to_string())));
    key(&mut out, "data_dir", Some(p(&c.server.data_dir)));
    key(
        &mut out,
        "advertised_url",
        c.server.advertised_url.as_deref().map(q),
    );
    key(
        &mut out,
        "tls_listen",
        c.server.tls_listen.map(|a| q(&a.to_string())),
    );
    key(&mut out, "tls_cert", c.server.tls_cert.as_deref().map(p));
    key(&mut out, "tls_key", c.server.tls_key.as_deref().map(p));
    key(
        &mut out,
        "max_request_body",
        Some(q(&c.server.max_request_body.to_string())),
    );
    let secs = |d: std::time::Duration| q(&format!("{}s", d.as_secs_f64()));
    key(
        &mut out,
        "max_connections",
        Some(c.server.max_connections.to_string()),
    );
    key(
        &mut out,
        "max_connections_per_address",
        Some(c.server.max_connections_per_address.to_string()),
    );
    key(&mut out, "idle_timeout", Some(secs(c.server.idle_timeout)));
    key(
        &mut out,
        "header_read_timeout",
        Some(secs(c.server.header_read_timeout)),
    );

    out.push_str("\n[upstream]\n");
    key(&mut out, "url", c.upstream.url.as_deref().map(q));
    key(
        &mut out,
        "content_url",
        c.upstream.content_url.as_deref().map(q),
    );
    key(
        &mut out,
        "max_bandwidth",
        c.upstream.max_bandwidth.map(|b| q(&format!("{b}B/s"))),
    );
    key(&mut out, "ca_file", c.upstream.ca_file.as_deref().map(p));
    key(
        &mut out,
        "stall_timeout",
        Some(q(&format!("{}s", c.upstream.stall_timeout.as_secs_f64()))),
    );
    key(
        &mut out,
        "max_answer_size",
        Some(q(&c.upstream.max_answer_size.to_string())),
    );
    key(
        &mut out,
        "redirect_hosts",
        Some(list(&c.upstream.redirect_hosts)),
    );

    out.push_str("\n[content]\n");
    let mode = match c.content.mode {
        ContentMode::Prefetch => "prefetch",
        ContentMode::OnDemand => "on-demand",
    };
    key(&mut out, "mode", Some(q(mode)));
    key(
        &mut out,
        "download_window",
        c.content.download_window.map(|w| {
            q(&format!(
                "{:02}:{:02}-{:02}:{:02}",
                w.start / 60,
                w.start % 60,
                w.end / 60,
                w.end % 60
            ))
        }),
    );
    key(
        &mut out,
        "max_size",
        c.content.max_size.map(|b| q(&b.to_string())),
    );
    key(
        &mut out,
        "min_free",
        Some(q(&c.content.min_free.to_string())),
    );

    out.push_str("\n[sync]\n");
    key(
        &mut out,
        "interval",
        Some(q(&format!("{}s", c.sync.interval.as_secs()))),
    );
    key(&mut out, "products", Some(list(&c.sync.products)));
    key(
        &mut out,
        "classifications",
        Some(list(&c.sync.classifications)),
    );
    key(&mut out, "languages", Some(list(&c.sync.languages)));

    out.push_str("\n[cleanup]\n");
    key(
        &mut out,
        "keep_needed_for",
        Some(secs(c.cleanup.keep_needed_for)),
    );

    out.push_str("\n[rollup]\n");
    key(&mut out, "enabled", Some(c.rollup.enabled.to_string()));
    key(&mut out, "interval", Some(secs(c.rollup.interval)));
    key(
        &mut out,
        "accept_detailed",
        Some(c.rollup.accept_detailed.to_string()),
    );
    key(
        &mut out,
        "max_request_body",
        Some(q(&c.rollup.max_request_body.to_string())),
    );

    out.push_str("\n[clients]\n");
    let k = &c.clients;
    key(&mut out, "max_computers", Some(k.max_computers.to_string()));
    key(
        &mut out,
        "registrations_per_minute",
        Some(k.registrations_per_minute.to_string()),
    );
    key(
        &mut out,
        "max_events_per_computer",
        Some(k.max_events_per_computer.to_string()),
    );
    key(
        &mut out,
        "max_event_bytes_per_computer",
        Some(q(&k.max_event_bytes_per_computer.to_string())),
    );
    key(&mut out, "event_retention", Some(secs(k.event_retention)));
    key(
        &mut out,
        "report_bytes_per_second",
        Some(q(&k.report_bytes_per_second.to_string())),
    );
    key(
        &mut out,
        "report_burst",
        Some(q(&k.report_burst.to_string())),
    );

    out.push_str("\n[import]\n");
    let keys: Vec<String> = c
        .import
        .trusted_keys
        .iter()
        .map(|k| k.to_string_lossy().into_owned())
        .collect();
    key(&mut out, "trusted_keys", Some(list(&keys)));

    out.push_str("\n[admin]\n");
    key(&mut out, "listen", Some(q(&c.admin.listen.to_string())));
    key(&mut out, "token_file", Some(p(&token_file(c))));
    key(
        &mut out,
        "metrics_token_file",
        c.admin.metrics_token_file.as_deref().map(p),
    );
    key(
        &mut out,
        "metrics_loopback_without_token",
        Some(c.admin.metrics_loopback_without_token.to_string()),
    );

    out.push_str("\n[log]\n");
    let format = match c.log.format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    key(&mut out, "format", Some(q(format)));
    key(&mut out, "access", Some(c.log.access.to_string()));
    out
}

/// The admin token file in effect (the default lives in the data dir).
fn token_file(c: &Config) -> PathBuf {
    c.admin
        .token_file
        .clone()
        .unwrap_or_else(|| c.server.data_dir.join("admin.token"))
}

/// What is wrong with the files the configuration names, one line each.
pub fn problems(c: &Config) -> Vec<String> {
    let mut v = Vec::new();
    let mut file = |key: &str, path: Option<&Path>| {
        if let Some(path) = path {
            if let Err(e) = std::fs::File::open(path) {
                v.push(format!("{key}: {}: {e}", path.display()));
            } else if !path.is_file() {
                v.push(format!("{key}: {}: not a file", path.display()));
            }
        }
    };
    file("server.tls_cert", c.server.tls_cert.as_deref());
    file("server.tls_key", c.server.tls_key.as_deref());
    file("upstream.ca_file", c.upstream.ca_file.as_deref());
    file(
        "admin.metrics_token_file",
        c.admin.metrics_token_file.as_deref(),
    );
    // An explicit token file must exist unless the server may create it (its directory exists).
    if let Some(t) = &c.admin.token_file {
        let dir_ok = t.parent().map(|d| d.as_os_str().is_empty() || d.is_dir());
        if !t.exists() && dir_ok != Some(true) {
            v.push(format!(
                "admin.token_file: {}: neither the file nor its directory exists",
                t.display()
            ));
        }
    }
    let d = &c.server.data_dir;
    if d.exists() && !d.is_dir() {
        v.push(format!("server.data_dir: {}: not a directory", d.display()));
    } else if !d.exists()
        && !d
            .parent()
            .is_some_and(|p| p.as_os_str().is_empty() || p.is_dir())
    {
        v.push(format!(
            "server.data_dir: {}: neither it nor its parent directory exists",
            d.display()
        ));
    }
    v
}

/// Runs `check-config`.
pub fn run(config: &Config, path: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let problems = problems(config);
    if json {
        super::admin_client::print_json(&serde_json::json!({
            "file": path.map(|p| p.display().to_string()),
            "toml": render(config),
            "problems": problems,
        }))?;
    } else {
        match path {
            Some(p) => println!(
                "# effective configuration: {} + environment + defaults",
                p.display()
            ),
            None => println!("# effective configuration: no config file; environment + defaults"),
        }
        print!("{}", render(config));
        for p in &problems {
            eprintln!("wsus-edge: {p}");
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::from_toml(text, Path::new("t.toml"), |_| None).unwrap()
    }

    #[test]
    fn renders_toml_that_reads_back_the_same() {
        let text = r#"
[server]
listen = "0.0.0.0:8530"
data_dir = "/var/lib/wsus-edge"
tls_cert = "/etc/wsus-edge/tls/cert.pem"
tls_key = "/etc/wsus-edge/tls/key.pem"
[upstream]
url = "http://wsus.hq.example:8530"
max_bandwidth = "20Mbit"
stall_timeout = "90s"
max_answer_size = "64MiB"
redirect_hosts = ["cdn.hq.example", "dl.hq.example:8080"]
[content]
mode = "prefetch"
download_window = "22:00-06:00"
max_size = "500GiB"
[sync]
interval = "6h"
products = ["Windows 11"]
[admin]
metrics_token_file = "/etc/wsus-edge/metrics.token"
[log]
format = "json"
"#;
        let c = parse(text);
        let out = render(&c);
        assert!(out.contains("listen = \"0.0.0.0:8530\"\n"), "{out}");
        assert!(out.contains("data_dir = \"/var/lib/wsus-edge\"\n"), "{out}");
        assert!(out.contains("tls_listen = \"0.0.0.0:8531\"\n"), "{out}");
        assert!(out.contains("# advertised_url = (unset)\n"), "{out}");
        assert!(
            out.contains("token_file = \"/var/lib/wsus-edge/admin.token\"\n"),
            "{out}"
        );
        // The output is TOML and gives the same configuration back.
        toml::from_str::<toml::Table>(&out).unwrap();
        let back = parse(&out);
        assert_eq!(
            format!("{back:?}").replace("Some(\"/var/lib/wsus-edge/admin.token\")", "None"),
            format!("{c:?}")
        );
    }

    #[test]
    fn names_missing_files() {
        let d = tempfile::tempdir().unwrap();
        let c = parse(&format!(
            "[server]\ndata_dir = {:?}\ntls_cert = \"/nonexistent/c.pem\"\ntls_key = \"/nonexistent/k.pem\"\n",
            d.path().display().to_string()
        ));
        let p = problems(&c);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("server.tls_cert: /nonexistent/c.pem: "),
            "{p:?}"
        );
        let c = parse(&format!(
            "[server]\ndata_dir = {:?}\n",
            d.path().display().to_string()
        ));
        assert!(problems(&c).is_empty());
    }

    #[test]
    fn renders_the_limit_cleanup_rollup_clients_and_import_keys() {
        let text = r#"
[server]
max_connections = 100
max_connections_per_address = 9
idle_timeout = "1.5s"
header_read_timeout = "7s"
[content]
min_free = "1GiB"
[cleanup]
keep_needed_for = "7d"
[rollup]
enabled = false
interval = "2h"
accept_detailed = false
max_request_body = "32MiB"
[clients]
max_computers = 12
registrations_per_minute = 3
max_events_per_computer = 40
max_event_bytes_per_computer = "1MiB"
event_retention = "2d"
report_bytes_per_second = "8KiB"
report_burst = "1MiB"
[import]
trusted_keys = ["/etc/wsus-edge/hq.pub", "/etc/wsus-edge/dr.pub"]
"#;
        let c = parse(text);
        let out = render(&c);
        for line in [
            "max_connections = 100\n",
            "idle_timeout = \"1.5s\"\n",
            "min_free = \"1073741824\"\n",
            "[cleanup]\nkeep_needed_for = \"604800s\"\n",
            "[rollup]\nenabled = false\ninterval = \"7200s\"\naccept_detailed = false\nmax_request_body = \"33554432\"\n",
            "max_computers = 12\n",
            "event_retention = \"172800s\"\n",
            "report_bytes_per_second = \"8192\"\n",
            "report_burst = \"1048576\"\n",
            "trusted_keys = [\"/etc/wsus-edge/hq.pub\", \"/etc/wsus-edge/dr.pub\"]\n",
        ] {
            assert!(out.contains(line), "{line:?} in {out}");
        }
        let back = parse(&out);
        assert_eq!(
            format!("{back:?}").replace("Some(\"./data/admin.token\")", "None"),
            format!("{c:?}")
        );
    }
}
