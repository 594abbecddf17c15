//! Runs the real `wsus-edge` binary as an admin would: one verb against a running server's
//! admin API (`--admin URL`, the token in `WSUS_EDGE_TOKEN`, an empty config file so nothing
//! on the machine leaks in), and [`AdminEdge`], the in-process server with its admin API that those
//! verbs talk to, and the readers of a verb's output ([`ok`], [`json`]). Shared by the
//! integration tests that drive the CLI.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command, Output};

/// A verb's stdout, after asserting it exited 0 (stdout and stderr in the message if not).
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// A `--json` verb's answer, after asserting it exited 0.
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).unwrap()
}

/// `wsus-edge --admin http://ADMIN --config <empty> ARGS…`, off the async runtime.
pub async fn cli(admin: SocketAddr, token: &str, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wsus-edge"));
    let empty = tempfile::NamedTempFile::new().unwrap();
    c.arg("--admin")
        .arg(format!("http://{admin}"))
        .arg("--config")
        .arg(empty.path())
        .args(args)
        .env("WSUS_EDGE_TOKEN", token);
    tokio::task::spawn_blocking(move || {
        let o = c.output().unwrap();
        drop(empty);
        o
    })
    .await
    .unwrap()
}

/// A wsus-edge with its admin API, both on 127.0.0.1:0, in a fresh data dir: bound, its store
/// filled by `seed`, then running until [`AdminEdge::stop`].
pub struct AdminEdge {
    /// `http://` + the client listener.
    pub base: String,
    /// The admin listener.
    pub admin: SocketAddr,
    /// The admin token the server wrote.
    pub token: String,
    /// The server's store.
    pub store: wsus_edge::store::Store,
    _dir: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<Result<(), wsus_edge::app::ServerError>>,
}

impl AdminEdge {
    /// Binds, seeds the store with `seed`, reads the token and starts serving.
    pub async fn start(seed: impl FnOnce(&wsus_edge::store::Store)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut c = wsus_edge::config::Config::default();
        c.server.listen = "127.0.0.1:0".parse().unwrap();
        c.server.data_dir = dir.path().to_path_buf();
        c.admin.listen = "127.0.0.1:0".parse().unwrap();
        let server = wsus_edge::app::Server::bind(c)
            .await
            .unwrap()
            .with_admin()
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        let admin = server.admin_addr().unwrap();
        let store = server.state().store.clone();
        seed(&store);
        let token = std::fs::read_to_string(dir.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_string();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(server.run_until(async {
            let _ = stop_rx.await;
        }));
        Self {
            base,
            admin,
            token,
            store,
            _dir: dir,
            stop,
            running,
        }
    }

    /// Stops the server; it must end cleanly.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.running.await.unwrap().unwrap();
    }
}
