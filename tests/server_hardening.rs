//! Issue 15's smaller items through the real binary and a real admin listener: what a
//! serving process creates is private from the start, a port clash on the admin listener
//! and a one-character token stop the server, admin on every interface is warned about,
//! and token guessing is rate-limited per address.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn serve(data: &Path, admin: &str, token: Option<&str>) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wsus-edge"));
    c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .current_dir(data.parent().unwrap())
        .env_remove("RUST_LOG")
        .env_remove("WSUS_EDGE_TOKEN")
        .env("WSUS_EDGE_ADMIN_LISTEN", admin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        c.env("WSUS_EDGE_TOKEN", t);
    }
    c.spawn().unwrap()
}

/// Reads the child's stderr until a line contains `needle` (true) or the stream ends.
fn stderr_until(child: &mut Child, needle: &str) -> (bool, String) {
    let mut seen = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let Ok(line) = line else { break };
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(needle) {
            return (true, seen);
        }
    }
    (false, seen)
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_serving_process_creates_its_data_private() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let mut child = serve(&data, "127.0.0.1:0", None);
    // The admin API starts after the store, the cache and the cookie key exist.
    let (up, log) = stderr_until(&mut child, "admin API on");
    assert!(up, "{log}");
    let mut checked = 0;
    let mut stack = vec![data.clone()];
    while let Some(p) = stack.pop() {
        use std::os::unix::fs::PermissionsExt;
        let md = std::fs::symlink_metadata(&p).unwrap();
        let mode = md.permissions().mode() & 0o777;
        if md.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", p.display());
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else {
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", p.display());
        }
        checked += 1;
    }
    for f in ["cookie.key", "admin.token", "meta"] {
        assert!(data.join(f).exists(), "{f}");
    }
    assert!(checked > 5, "{checked} paths");
    stop(child);
}

#[test]
fn a_port_clash_on_the_admin_listener_stops_the_server() {
    let t = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut child = serve(&t.path().join("data"), &addr, None);
    let (_, log) = stderr_until(&mut child, "\u{0}never");
    let status = child.wait().unwrap();
    assert!(!status.success(), "{log}");
    let last = log.lines().last().unwrap_or("");
    assert!(
        last.starts_with("wsus-edge: ") && last.contains(&addr),
        "{log}"
    );
}

#[test]
fn a_one_character_token_stops_the_server() {
    let t = tempfile::tempdir().unwrap();
    let mut child = serve(&t.path().join("data"), "127.0.0.1:0", Some("x"));
    let (_, log) = stderr_until(&mut child, "\u{0}never");
    assert!(!child.wait().unwrap().success(), "{log}");
    assert!(log.contains("shorter than 16 characters"), "{log}");
}

#[test]
fn admin_on_every_interface_is_warned_about() {
    let t = tempfile::tempdir().unwrap();
    let mut child = serve(&t.path().join("data"), "0.0.0.0:0", None);
    let (warned, log) = stderr_until(&mut child, "listens on every interface");
    stop(child);
    assert!(warned, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_guessing_is_rate_limited_per_address() {
    use wsus_edge::admin::{AdminServer, AdminState, Token};
    const TOKEN: &str = "hardening-test-token-0123";
    let t = tempfile::tempdir().unwrap();
    let store = wsus_edge::store::Store::open(&t.path().join("meta")).unwrap();
    let mut config = wsus_edge::config::Config::default();
    config.server.data_dir = t.path().to_path_buf();
    let state = AdminState::new(config, store, Token::new(TOKEN, "test").unwrap());
    let s = AdminServer::bind("127.0.0.1:0".parse().unwrap(), std::sync::Arc::new(state))
        .await
        .unwrap();
    let url = format!("http://{}/api/status", s.local_addr());
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(s.run(rx));
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    };
    let guesser = from([127, 0, 0, 5]);
    for i in 0..10 {
        let r = guesser
            .get(&url)
            .bearer_auth(format!("guess-{i:020}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = guesser
        .get(&url)
        .bearer_auth("guess-11")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    // The login form counts the same way.
    let r = guesser
        .post(url.replace("/api/status", "/login"))
        .body("token=guess")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Another address is not held back.
    let admin = from([127, 0, 0, 6]);
    let r = admin.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
