//! The configuration's keys, defaults, overrides and errors, through [`Config::from_toml`].

use std::path::Path;
use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("t.toml"), |_| None)
}

#[test]
fn the_admin_listener_may_not_take_a_client_port_but_port_zero_is_always_free() {
    let clash =
        parse("[server]\nlisten = \"127.0.0.1:8530\"\n[admin]\nlisten = \"127.0.0.1:8530\"\n");
    assert!(clash.is_err());
    // Both on port 0 (tests, benches, several servers on one box): two different ports.
    let c =
        parse("[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    assert_eq!(c.admin.listen.port(), 0);
}

#[test]
fn clients_and_import_tables() {
    let c = parse(
        "[clients]\nmax_computers = 7\nmax_event_bytes_per_computer = \"1MiB\"\nevent_retention = \"2d\"\n[import]\ntrusted_keys = [\"/k.pub\"]\n",
    )
    .unwrap();
    assert_eq!(c.clients.max_computers, 7);
    assert_eq!(c.clients.max_event_bytes_per_computer, 1 << 20);
    assert_eq!(c.clients.event_retention, Duration::from_secs(2 * 86400));
    assert_eq!(c.clients.report_bytes_per_second, 64 << 10, "default");
    assert_eq!(c.clients.report_burst, 4 << 20, "default");
    let r =
        parse("[clients]\nreport_bytes_per_second = \"1KiB\"\nreport_burst = \"32KiB\"\n").unwrap();
    assert_eq!(r.clients.report_bytes_per_second, 1024);
    assert_eq!(r.clients.report_burst, 32 << 10);
    assert!(parse("[clients]\nreport_burst = \"0\"\n").is_err());
    assert_eq!(c.import.trusted_keys, vec![PathBuf::from("/k.pub")]);
    let env = Config::from_toml("", Path::new("t.toml"), |k| {
        (k == "WSUS_EDGE_CLIENTS_REGISTRATIONS_PER_MINUTE").then(|| "3".to_string())
    })
    .unwrap();
    assert_eq!(env.clients.registrations_per_minute, 3);
    assert!(parse("[clients]\nmax_computers = 0\n").is_err());
}

#[test]
fn defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8530");
    assert_eq!(c.server.data_dir, PathBuf::from("./data"));
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:8590");
    assert_eq!(c.content.mode, ContentMode::OnDemand);
}

#[test]
fn full_file() {
    let c = parse(
        r#"
[server]
listen = "0.0.0.0:8530"
data_dir = "/var/lib/wsus-edge"
[upstream]
url = "http://wsus.example:8530/"
max_bandwidth = "20Mbit"
[content]
mode = "prefetch"
download_window = "22:00-06:00"
max_size = "500GiB"
[sync]
interval = "6h"
products = ["Windows 11"]
[admin]
listen = "127.0.0.1:9000"
"#,
    )
    .unwrap();
    assert_eq!(c.upstream.url.as_deref(), Some("http://wsus.example:8530"));
    assert_eq!(
        c.upstream.content_base().as_deref(),
        Some("http://wsus.example:8530")
    );
    assert_eq!(c.upstream.max_bandwidth, Some(2_500_000));
    assert_eq!(c.content.max_size, Some(500 << 30));
    assert_eq!(c.sync.products, vec!["Windows 11".to_string()]);
}

#[test]
fn unknown_key_names_line() {
    let e = parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("t.toml:3:"), "{msg}");
    assert!(msg.contains("lisen"), "{msg}");
}

#[test]
fn bad_value_names_line_and_expectation() {
    let e = parse("[content]\n\nmax_size = \"huge\"\n").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("t.toml:3") && msg.contains("content.max_size") && msg.contains("expected"),
        "{msg}"
    );
}

#[test]
fn env_overrides_file() {
    let c = Config::from_toml("[upstream]\nurl = \"http://a\"\n", Path::new("t"), |k| {
        (k == "WSUS_EDGE_UPSTREAM_URL").then(|| "http://b:8530".to_string())
    })
    .unwrap();
    assert_eq!(c.upstream.url.as_deref(), Some("http://b:8530"));
}

#[test]
fn an_empty_string_means_unset() {
    let c = parse(
        "[upstream]\nurl = \"\"\ncontent_url = \"\"\nca_file = \"\"\n[server]\ntls_cert = \"\"\ntls_key = \"\"\n[content]\nmax_size = \"\"\n",
    )
    .unwrap();
    assert_eq!(c.upstream.url, None);
    assert_eq!(c.upstream.content_url, None);
    assert_eq!(c.upstream.ca_file, None);
    assert_eq!(c.server.tls_cert, None);
    assert_eq!(c.server.tls_listen, None);
    let c = Config::from_toml(
        "[upstream]\nurl = \"http://a:8530\"\n",
        Path::new("t"),
        |k| (k == "WSUS_EDGE_UPSTREAM_URL").then(String::new),
    )
    .unwrap();
    assert_eq!(c.upstream.url, None, "an empty env variable unsets the key");
}

#[test]
fn log_and_metrics_keys() {
    let c = parse("[log]\nformat = \"json\"\n[admin]\nmetrics_token_file = \"/etc/m\"\nmetrics_loopback_without_token = true\n").unwrap();
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.admin.metrics_token_file, Some(PathBuf::from("/etc/m")));
    assert!(c.admin.metrics_loopback_without_token);
    assert!(parse("[log]\nformat = \"xml\"\n").is_err());
    assert!(c.log.access, "the access log is on by default");
    assert!(!parse("[log]\naccess = false\n").unwrap().log.access);
}

#[test]
fn cleanup_and_rollup_keys() {
    let c = parse("").unwrap();
    assert_eq!(c.cleanup.keep_needed_for, Duration::from_secs(30 * 86400));
    assert!(c.rollup.enabled && c.rollup.accept_detailed);
    let c = parse(
        "[cleanup]\nkeep_needed_for = \"7d\"\n[rollup]\nenabled = false\ninterval = \"2h\"\naccept_detailed = false\n",
    )
    .unwrap();
    assert_eq!(c.cleanup.keep_needed_for, Duration::from_secs(7 * 86400));
    assert!(!c.rollup.enabled && !c.rollup.accept_detailed);
    assert_eq!(c.rollup.interval, Duration::from_secs(7200));
    assert!(parse("[cleanup]\nkeep_needed_for = \"soon\"\n").is_err());
    assert!(parse("[rollup]\ninterval = \"5s\"\n").is_err());
}

#[test]
fn upstream_limits_and_redirect_hosts() {
    let c = parse("").unwrap();
    assert_eq!(c.upstream.stall_timeout, Duration::from_secs(60));
    assert_eq!(c.upstream.max_answer_size, 256 << 20);
    assert!(c.upstream.redirect_hosts.is_empty());
    let c = parse(
        "[upstream]\nstall_timeout = \"90s\"\nmax_answer_size = \"64MiB\"\nredirect_hosts = [\"cdn.example\", \"dl.example:8080\"]\n",
    )
    .unwrap();
    assert_eq!(c.upstream.stall_timeout, Duration::from_secs(90));
    assert_eq!(c.upstream.max_answer_size, 64 << 20);
    assert_eq!(
        c.upstream.redirect_hosts,
        ["cdn.example", "dl.example:8080"]
    );
    assert!(parse("[upstream]\nstall_timeout = \"0s\"\n").is_err());
    assert!(parse("[upstream]\nmax_answer_size = \"0\"\n").is_err());
}

#[test]
fn admin_must_not_share_client_port() {
    assert!(parse("[admin]\nlisten = \"127.0.0.1:8530\"\n").is_err());
}
