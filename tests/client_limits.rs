//! Client connections are capped and time out (issue 15, item 3): one address holding a
//! thousand idle sockets does not lock other clients out of a real `wsus-edge serve` process
//! with few file descriptors, and idle or half-sent requests are closed once
//! `server.idle_timeout` / `server.header_read_timeout` pass, on the zero-copy path and on
//! connections hyper serves alike.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::TestEdge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// File descriptors the server process may hold: fewer than the flood's sockets.
const SERVER_FDS: u64 = 400;
/// Idle sockets opened from one address.
const FLOOD: usize = 1000;

/// Raises this process's soft descriptor limit to its hard limit (the flood's sockets).
fn raise_own_fd_limit() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        l.rlim_cur = l.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
    }
    l.rlim_cur
}

struct Served {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `wsus-edge serve` limited to [`SERVER_FDS`] descriptors; returns once it listens.
fn serve(extra_server_config: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("wsus-edge.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n{extra_server_config}\n\
             [admin]\nlisten = \"127.0.0.3:0\"\n",
            dir.path().join("data")
        ),
    )
    .unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_wsus-edge"));
    c.arg("--config")
        .arg(&cfg)
        .arg("serve")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches only the struct passed in.
    unsafe {
        c.pre_exec(|| {
            let l = libc::rlimit {
                rlim_cur: SERVER_FDS,
                rlim_max: SERVER_FDS,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the server logs its address").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().parse().unwrap();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Served {
        child,
        addr,
        _dir: dir,
    }
}

/// Sends one request from `from` and returns the status code of the answer.
async fn status_from(from: &str, to: SocketAddr, path: &str) -> u16 {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut s = s.connect(to).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_is_served_while_one_address_holds_a_thousand_idle_sockets() {
    let own = raise_own_fd_limit();
    assert!(
        own >= FLOOD as u64 + 100,
        "the test needs {} descriptors, the hard limit is {own}",
        FLOOD + 100
    );
    let server = serve("max_connections = 300\nmax_connections_per_address = 5000\n");
    let missing = format!("/Content/00/{}.cab", "00".repeat(20));

    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        flood.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // Another client (another loopback address) is answered: a 404, no upstream is set.
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        status_from("127.0.0.2", server.addr, &missing),
    )
    .await
    .expect("the new client is answered while the flood is open");
    assert_eq!(status, 404);
    // The flood's own newest socket is answered too: its oldest ones were shed for it.
    let mut newest = flood.pop().unwrap();
    newest
        .write_all(
            format!("GET {missing} HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), newest.read_to_end(&mut buf))
        .await
        .expect("answered")
        .unwrap();
    assert!(
        buf.starts_with(b"HTTP/1.1 404"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    drop(flood);
}

/// Waits until the server closes `s` (EOF or reset); panics if it is still open after 30 s.
async fn closed_eventually(s: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 4096];
    let r = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(r.is_ok(), "{what}: still open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_requests_are_closed() {
    let edge = TestEdge::start(None, |c| {
        c.server.idle_timeout = Duration::from_secs(1);
        c.server.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    // Idle from the start.
    let mut idle = TcpStream::connect(edge.addr).await.unwrap();
    // Half a request head, never finished.
    let mut half = TcpStream::connect(edge.addr).await.unwrap();
    half.write_all(b"GET /Content/AB/").await.unwrap();
    // A request hyper serves (not a payload), then idle on the kept-alive connection.
    let mut kept = TcpStream::connect(edge.addr).await.unwrap();
    kept.write_all(b"GET /nothing-here HTTP/1.1\r\nHost: e\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    kept.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 404");
    // Half a head on the hyper-served connection.
    let mut half_hyper = TcpStream::connect(edge.addr).await.unwrap();
    half_hyper
        .write_all(b"GET /nothing-here HTTP/1.1\r\nHost: e\r\n\r\nGET /noth")
        .await
        .unwrap();

    closed_eventually(&mut idle, "idle connection").await;
    closed_eventually(&mut half, "half-sent head").await;
    closed_eventually(&mut kept, "idle keep-alive connection (hyper)").await;
    closed_eventually(&mut half_hyper, "half-sent head (hyper)").await;
    edge.shutdown().await;
}
