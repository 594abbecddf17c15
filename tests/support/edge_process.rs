//! A real `wsus-edge serve` child for the chain tests (`replica_chain.rs`,
//! `compliance_rollup.rs`): its config file and log file in the test's folder, the admin token
//! in `WSUS_EDGE_TOKEN`, the admin CLI run against it, and waiting for a sync to end.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A free loopback address (bound, then released).
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A `wsus-edge serve` process.
pub struct EdgeProcess {
    pub child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub conf: PathBuf,
    pub data: PathBuf,
    empty: PathBuf,
    pub log: PathBuf,
    token: &'static str,
}

impl EdgeProcess {
    /// Writes `<dir>/<name>.toml` (client and admin listeners on `keep` or free addresses,
    /// data in `<dir>/<name>`, `[upstream] url`, `server_extra` lines under `[server]`, then
    /// the `tables` text) and starts `serve` with it, its log in `<dir>/<name>.log`.
    pub fn spawn(
        dir: &Path,
        name: &str,
        upstream: &str,
        token: &'static str,
        server_extra: &str,
        tables: &str,
        keep: Option<(SocketAddr, SocketAddr)>,
    ) -> EdgeProcess {
        let (listen, admin) = keep.unwrap_or_else(|| (free_addr(), free_addr()));
        let data = dir.join(name);
        let conf = dir.join(format!("{name}.toml"));
        std::fs::write(
            &conf,
            format!(
                "[server]\nlisten = \"{listen}\"\ndata_dir = \"{}\"\n{server_extra}\n[upstream]\nurl = \"{upstream}\"\n[admin]\nlisten = \"{admin}\"\n{tables}\n",
                data.display()
            ),
        )
        .unwrap();
        let empty = dir.join(format!("{name}.empty.toml"));
        std::fs::write(&empty, "").unwrap();
        let log = dir.join(format!("{name}.log"));
        EdgeProcess {
            child: Self::start(&conf, &log, token),
            listen,
            admin,
            conf,
            data,
            empty,
            log,
            token,
        }
    }

    fn start(conf: &Path, log: &Path, token: &str) -> Child {
        Command::new(env!("CARGO_BIN_EXE_wsus-edge"))
            .args(["--config", conf.to_str().unwrap(), "--log", "info", "serve"])
            .env("WSUS_EDGE_TOKEN", token)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap()
    }

    /// Kills the process and starts it again with the same config (same addresses).
    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::start(&self.conf, &self.log, self.token);
    }

    /// The client listener's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.listen)
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET /api/sync`, or `None` while the admin API does not answer.
    pub async fn status(&self) -> Option<serde_json::Value> {
        let r = reqwest::Client::new()
            .get(format!("http://{}/api/sync", self.admin))
            .bearer_auth(self.token)
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// Waits (up to 300 s) until no sync runs and one has ended, and asserts it ended ok.
    pub async fn wait_sync(&self) {
        let done = async {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some(v) = self.status().await {
                    if v["running"] == false && !v["last_result"].is_null() {
                        assert_eq!(v["last_result"], "ok", "{v} {}", self.log_text());
                        return;
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(300), done)
            .await
            .expect("sync finished");
    }

    /// The CLI command `args` against this edge's admin API (an empty config, the token in
    /// the env), to run.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_wsus-edge"));
        c.arg("--admin")
            .arg(format!("http://{}", self.admin))
            .arg("--config")
            .arg(&self.empty)
            .args(args)
            .env("WSUS_EDGE_TOKEN", self.token);
        c
    }

    /// Runs the CLI against this edge's admin API.
    pub async fn cli(&self, args: &[&str]) -> Output {
        let mut c = self.cli_command(args);
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    }

    /// A verb's JSON output; the verb must succeed.
    pub async fn json(&self, args: &[&str]) -> serde_json::Value {
        let o = self.cli(args).await;
        assert!(
            o.status.success(),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log_text()
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// `sync --now`, which must exit 0.
    pub async fn sync_now(&self) {
        let o = self.cli(&["sync", "--now"]).await;
        assert!(
            o.status.success(),
            "sync --now: {} {}",
            String::from_utf8_lossy(&o.stderr),
            self.log_text()
        );
    }

    /// The value of the `/metrics` line starting with `name` (labels included).
    pub async fn metric(&self, name: &str) -> f64 {
        let t = reqwest::Client::new()
            .get(format!("http://{}/metrics", self.admin))
            .bearer_auth(self.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        t.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in {t}"))
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EdgeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
