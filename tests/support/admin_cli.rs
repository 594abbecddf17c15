//! Runs the real `wsus-edge` binary as an admin would: one verb against a running server's
//! admin API (`--admin URL`, the token in `WSUS_EDGE_TOKEN`, an empty config file so nothing
//! on the machine leaks in). Shared by the integration tests that drive the CLI.

use std::net::SocketAddr;
use std::process::{Command, Output};

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
