//! The installed appliance, through the real binary (`CARGO_BIN_EXE_wsus-edge`) and real
//! files: JSON logs, journald priorities and no colour off a terminal; SIGHUP reloading the
//! TLS certificate and naming keys that need a restart without stopping the server; the
//! read-only metrics token (`[admin] metrics_token_file` or `WSUS_EDGE_METRICS_TOKEN`); every metric the shipped Grafana dashboard and Prometheus alert
//! rules name is exported; upstream errors keep their cause; the admin client ignores
//! `http_proxy` for loopback; export/import without `--data-dir` go to the running server;
//! `check-config` on the shipped config; `--json` on keygen; SIGPIPE.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wsus-edge"));
    for v in [
        "RUST_LOG",
        "WSUS_EDGE_TOKEN",
        "WSUS_EDGE_METRICS_TOKEN",
        "JOURNAL_STREAM",
    ] {
        c.env_remove(v);
    }
    c
}

/// A `serve` child writing its log to a file.
struct Served {
    child: Child,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Served {
    /// Starts `serve --config <dir>/wsus-edge.toml` (client listener 127.0.0.1:0, admin on
    /// 127.0.0.2:0, data in the dir) with `extra` appended to the config.
    fn start(extra: &str, env: &[(&str, String)], args: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("wsus-edge.toml");
        std::fs::write(
            &cfg,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n[admin]\nlisten = \"127.0.0.2:0\"\n{extra}",
                dir.path().join("data").display().to_string()
            ),
        )
        .unwrap();
        Self::start_in(dir, env, args)
    }

    fn start_in(dir: tempfile::TempDir, env: &[(&str, String)], args: &[&str]) -> Served {
        let log = dir.path().join("stderr.log");
        let f = std::fs::File::create(&log).unwrap();
        let mut c = bin();
        c.arg("--config")
            .arg(dir.path().join("wsus-edge.toml"))
            .arg("serve")
            .args(args)
            .stdout(Stdio::null())
            .stderr(f);
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().unwrap();
        let s = Served { child, log, dir };
        s.wait_log("admin API on http://");
        s
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (up to 30 s) until the log contains `needle`; returns the log.
    fn wait_log(&self, needle: &str) -> String {
        let t = Instant::now();
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "no {needle:?} in the log:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The URL after `prefix` in the log (e.g. "admin API on ").
    fn url_after(&self, prefix: &str) -> String {
        let text = self.wait_log(prefix);
        let i = text.find(prefix).unwrap() + prefix.len();
        text[i..]
            .split(|c: char| c.is_whitespace() || c == '"')
            .next()
            .unwrap()
            .to_string()
    }

    fn admin(&self) -> String {
        self.url_after("admin API on ")
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("data/admin.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// SIGTERM and the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        self.signal(libc::SIGTERM);
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut r = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

/// The DER certificate an HTTPS listener presents.
fn served_cert(url: &str) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::builder()
            .no_proxy()
            .danger_accept_invalid_certs(true)
            .tls_info(true)
            .build()
            .unwrap()
            .get(format!("{url}/Content/00/nothing.cab"))
            .send()
            .await
            .unwrap();
        resp.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|i| i.peer_certificate())
            .expect("a peer certificate")
            .to_vec()
    })
}

fn write_cert(dir: &Path) -> Vec<u8> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.key_pair.serialize_pem()).unwrap();
    ck.cert.der().to_vec()
}

#[test]
fn json_logs_and_sighup_reloads_the_certificate_without_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_cert(dir.path());
    let root = dir.path().to_path_buf();
    let cfg = move |interval: &str| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\ntls_listen = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n[admin]\nlisten = \"127.0.0.2:0\"\n[sync]\ninterval = \"{interval}\"\n[log]\nformat = \"json\"\n",
            root.join("data").display().to_string(),
            root.join("cert.pem").display().to_string(),
            root.join("key.pem").display().to_string(),
        )
    };
    std::fs::write(dir.path().join("wsus-edge.toml"), cfg("6h")).unwrap();
    let s = Served::start_in(dir, &[], &[]);
    let https = s.url_after("listening on https://");
    let https = format!("https://{https}");
    assert_eq!(served_cert(&https), first);

    // A new certificate and a changed key that needs a restart; SIGHUP.
    let second = write_cert(s.dir.path());
    assert_ne!(first, second);
    std::fs::write(s.dir.path().join("wsus-edge.toml"), cfg("12h")).unwrap();
    s.signal(libc::SIGHUP);
    let text = s.wait_log("after a restart");
    assert!(text.contains("TLS certificate reloaded"), "{text}");
    assert_eq!(
        served_cert(&https),
        second,
        "new handshakes get the new certificate"
    );
    // SIGHUP again with a configuration that does not load: logged, still serving.
    std::fs::write(s.dir.path().join("wsus-edge.toml"), "[server\n").unwrap();
    s.signal(libc::SIGHUP);
    s.wait_log("does not load");
    assert_eq!(served_cert(&https), second);

    let status = s.log_text();
    let status_ok = s.stop();
    assert!(status_ok.success(), "SIGTERM after SIGHUPs: {status_ok:?}");

    // Every line is one JSON object with the fields the issue names.
    let mut n = 0;
    for line in status.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for k in ["timestamp", "level", "target", "message"] {
            assert!(v.get(k).is_some_and(|x| x.is_string()), "{k} in {line}");
        }
        n += 1;
    }
    assert!(n >= 4, "{status}");
    let restart = status
        .lines()
        .find(|l| l.contains("after a restart"))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(restart).unwrap();
    assert_eq!(v["level"], "WARN");
    assert_eq!(v["keys"], "sync.interval", "{restart}");
}

#[test]
fn under_journald_lines_carry_priorities_and_no_colour() {
    // Stand in for journald: stderr is a file whose device and inode JOURNAL_STREAM names.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wsus-edge.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n[admin]\nlisten = \"127.0.0.2:0\"\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    std::fs::File::create(&log).unwrap();
    let m = std::fs::metadata(&log).unwrap();
    let s = Served::start_in(
        dir,
        &[("JOURNAL_STREAM", format!("{}:{}", m.dev(), m.ino()))],
        &["--upstream", "http://127.0.0.1:9"],
    );
    // The replica's first sync fails at once: connection refused.
    let text = s.wait_log("<3>");
    assert!(!text.contains('\x1b'), "no ANSI codes: {text:?}");
    for line in text.lines() {
        assert!(
            line.starts_with("<3>")
                || line.starts_with("<4>")
                || line.starts_with("<6>")
                || line.starts_with("<7>"),
            "{line}"
        );
    }
    assert!(text
        .lines()
        .any(|l| l.starts_with("<6>") && l.contains("listening on http://")));
    let err = text.lines().find(|l| l.starts_with("<3>")).unwrap();
    assert!(
        err.to_ascii_lowercase().contains("connection refused"),
        "the cause of an upstream error is kept: {err}"
    );
    drop(s);

    // Not a terminal and no journal: plain text, no colour either.
    let s = Served::start("", &[], &[]);
    let text = s.log_text();
    assert!(
        !text.contains('\x1b') && text.contains("listening on http://"),
        "{text:?}"
    );
}

/// Names of metrics in a PromQL text: `wsus_edge_*` and `process_*` identifiers.
fn metric_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start_ok = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if start_ok && (text[i..].starts_with("wsus_edge_") || text[i..].starts_with("process_")) {
            let j = text[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(b.len(), |k| i + k);
            out.push(text[i..j].to_string());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn yaml_exprs(y: &yaml_rust2::Yaml, out: &mut Vec<String>) {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Hash(h) => {
            for (k, v) in h {
                if k.as_str() == Some("expr") {
                    out.push(v.as_str().expect("expr is a string").to_string());
                }
                yaml_exprs(v, out);
            }
        }
        Yaml::Array(a) => a.iter().for_each(|v| yaml_exprs(v, out)),
        _ => {}
    }
}

fn json_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if k == "expr" || k == "query" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_string());
                    }
                }
                json_exprs(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| json_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn metrics_token_dashboard_and_alert_rules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("deploy/grafana-dashboard.json")).unwrap(),
    )
    .expect("grafana-dashboard.json is JSON");
    let rules = yaml_rust2::YamlLoader::load_from_str(
        &std::fs::read_to_string(root.join("deploy/prometheus-alerts.yml")).unwrap(),
    )
    .expect("prometheus-alerts.yml is YAML");
    let mut exprs = Vec::new();
    json_exprs(&dash, &mut exprs);
    let dash_exprs = exprs.len();
    for r in &rules {
        yaml_exprs(r, &mut exprs);
    }
    assert!(
        dash_exprs >= 10 && exprs.len() > dash_exprs + 5,
        "{exprs:?}"
    );
    let rule_groups = &rules[0]["groups"][0]["rules"];
    for r in rule_groups.as_vec().unwrap() {
        assert!(
            r["alert"].as_str().is_some() && r["expr"].as_str().is_some(),
            "{r:?}"
        );
    }

    // A replica whose upstream refuses connections: its sync fails, so sync metrics exist.
    let dir = tempfile::tempdir().unwrap();
    let mt = dir.path().join("metrics.token");
    std::fs::write(&mt, "read-only-metrics-token\n").unwrap();
    let s = Served::start(
        &format!("metrics_token_file = {:?}\n", mt.display().to_string()),
        &[],
        &["--upstream", "http://127.0.0.1:9"],
    );
    let admin = s.admin();
    let token = s.token();
    s.wait_log("sync failed");
    // The metrics token reads /metrics and nothing else; no token reads nothing.
    assert_eq!(get(&format!("{admin}/metrics"), None).0, 401);
    let (st, _) = get(&format!("{admin}/metrics"), Some("read-only-metrics-token"));
    assert_eq!(st, 200);
    assert_eq!(
        get(
            &format!("{admin}/api/status"),
            Some("read-only-metrics-token")
        )
        .0,
        401
    );
    assert_eq!(
        get(
            &format!("{admin}/api/sync"),
            Some("read-only-metrics-token")
        )
        .0,
        401
    );
    let (st, text) = get(&format!("{admin}/metrics"), Some(&token));
    assert_eq!(st, 200);

    let exported: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for name in exprs.iter().flat_map(|e| metric_names(e)) {
        assert!(
            exported.contains(&name.as_str()),
            "{name} is named by the dashboard or the alert rules but not exported:\n{text}"
        );
    }
    for name in [
        "wsus_edge_build_info",
        "wsus_edge_disk_free_bytes",
        "wsus_edge_store_size_bytes",
        "process_resident_memory_bytes",
        "wsus_edge_sync_run_duration_seconds_count",
        "wsus_edge_http_request_duration_seconds_bucket",
    ] {
        assert!(exported.contains(&name), "{name}:\n{text}");
    }
    for h in [
        "wsus_edge_http_request_duration_seconds",
        "wsus_edge_sync_run_duration_seconds",
    ] {
        assert!(
            text.lines().any(|l| l == format!("# TYPE {h} histogram")),
            "{h} is a histogram:\n{text}"
        );
    }
    let count = text
        .lines()
        .find(|l| l.starts_with("wsus_edge_sync_run_duration_seconds_count"))
        .unwrap();
    assert!(
        !count.ends_with(" 0"),
        "the failed sync was observed: {count}"
    );
    let build = text
        .lines()
        .find(|l| l.starts_with("wsus_edge_build_info{"))
        .unwrap();
    assert!(
        build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
            && build.ends_with(" 1")
    );

    // The admin client on loopback ignores proxies from the environment.
    let proxy = "http://127.0.0.1:9";
    let o = bin()
        .args([
            "--config",
            "/dev/null",
            "--admin",
            &admin,
            "sync",
            "status",
            "--json",
        ])
        .env("WSUS_EDGE_TOKEN", &token)
        .env("http_proxy", proxy)
        .env("HTTP_PROXY", proxy)
        .env("all_proxy", proxy)
        .env("ALL_PROXY", proxy)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let result = v["last_result"].as_str().unwrap().to_ascii_lowercase();
    assert!(
        result.contains("connection refused"),
        "cause kept: {result}"
    );
    drop(s);

    // Loopback without a token, when configured.
    let s = Served::start("metrics_loopback_without_token = true\n", &[], &[]);
    let admin = s.admin();
    assert_eq!(get(&format!("{admin}/metrics"), None).0, 200);
    assert_eq!(get(&format!("{admin}/api/status"), None).0, 401);
    drop(s);

    // WSUS_EDGE_METRICS_TOKEN instead of the file (and over it): the same read-only token.
    let s = Served::start(
        &format!("metrics_token_file = {:?}\n", mt.display().to_string()),
        &[(
            "WSUS_EDGE_METRICS_TOKEN",
            "metrics-token-from-the-environment".to_string(),
        )],
        &[],
    );
    let admin = s.admin();
    let env_token = Some("metrics-token-from-the-environment");
    assert_eq!(get(&format!("{admin}/metrics"), env_token).0, 200);
    assert_eq!(get(&format!("{admin}/api/status"), env_token).0, 401);
    assert_eq!(
        get(&format!("{admin}/metrics"), Some("read-only-metrics-token")).0,
        401,
        "the environment overrides the file"
    );
    assert_eq!(get(&format!("{admin}/metrics"), None).0, 401);
}

#[test]
fn import_and_export_without_data_dir_go_to_the_server() {
    let w = tempfile::tempdir().unwrap();
    let cfg = w.path().join("c.toml");
    std::fs::write(&cfg, "[admin]\nlisten = \"127.0.0.1:9\"\n").unwrap();
    for args in [&["import", "pkg"][..], &["export", "--out", "pkg"][..]] {
        let o = bin()
            .current_dir(w.path())
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .env("WSUS_EDGE_TOKEN", "x")
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach the admin API"));
        assert!(
            !w.path().join("data").exists(),
            "nothing written into ./data"
        );
    }
}

#[test]
fn check_config_on_the_shipped_file_and_json_verbs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = bin()
        .arg("--config")
        .arg(root.join("deploy/wsus-edge.toml"))
        .arg("check-config")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("listen = \"0.0.0.0:8530\"\n"), "{out}");
    assert!(out.contains("data_dir = \"/var/lib/wsus-edge\"\n"), "{out}");
    assert!(
        out.contains("# url = (unset)\n"),
        "url = \"\" is unset: {out}"
    );
    assert!(!out.contains("Config {"), "not a debug dump");

    // A missing certificate is named, exit 1.
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[server]\ntls_cert = \"/nonexistent/c.pem\"\ntls_key = \"/nonexistent/k.pem\"\n",
    )
    .unwrap();
    let o = bin()
        .arg("--config")
        .arg(&cfg)
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("server.tls_cert: /nonexistent/c.pem"));

    let o = bin()
        .current_dir(d.path())
        .args(["--config", "/dev/null", "keygen", "--out", "k", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["fingerprint"].as_str().is_some_and(|f| !f.is_empty()),
        "{v}"
    );
    assert!(d.path().join("k.pub").exists());
}

#[test]
fn a_closed_stdout_ends_a_verb_without_a_panic() {
    // `wsus-edge check-config --json | head -0`: the reader is gone before the first write.
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) fills two fds; we close the read end and hand the write end over.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe { libc::close(fds[0]) };
    // SAFETY: fds[1] is an open fd we own.
    let w = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) };
    let mut child = bin()
        .args(["--config", "/dev/null", "check-config", "--json"])
        .stdout(Stdio::from(w))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let st = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_ne!(st.code(), Some(101), "panicked: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        st.signal(),
        Some(libc::SIGPIPE),
        "ends like other tools in a pipe: {st:?} {err}"
    );
}
