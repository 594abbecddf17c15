//! The one accept loop of every listener (client HTTP, client HTTPS, admin), with the limits
//! every connection lives under:
//!
//! - **Caps.** At most `server.max_connections` connections in all and
//!   `server.max_connections_per_address` from one client address. A new connection past a
//!   cap is taken, and room is made by shedding fairly: past the per-address cap, the least
//!   recently active connection of that same address goes; past the total cap, the least
//!   recently active connection of the address that holds the most. One address flooding
//!   idle sockets therefore only ever closes its own, and a new client elsewhere is served.
//! - **Timeouts.** A connection waiting for a request with nothing received is closed after
//!   `server.idle_timeout`; a request head must be complete `server.header_read_timeout`
//!   after its first byte. On connections served by hyper (TLS, admin, and plain connections
//!   after a request the zero-copy path does not take) hyper runs one timer from the moment
//!   it waits for the next request, set to the sum of both, so neither an idle nor a
//!   half-sent request outlives it.
//!
//! Shutdown: once the flag turns true the loop stops accepting and gives connections 10 s.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use crate::config::ServerConfig;

/// What every connection of a listener lives under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most connections at once.
    pub max_connections: usize,
    /// Most connections from one client address.
    pub max_per_address: usize,
    /// Longest wait for a request with nothing received.
    pub idle_timeout: Duration,
    /// Longest time from a request's first byte to the end of its head.
    pub header_read_timeout: Duration,
}

impl Limits {
    /// The limits of `[server]`.
    pub fn from_config(c: &ServerConfig) -> Self {
        Self {
            max_connections: c.max_connections,
            max_per_address: c.max_connections_per_address,
            idle_timeout: c.idle_timeout,
            header_read_timeout: c.header_read_timeout,
        }
    }

    /// The HTTP/1.1 connection builder for hyper, with its head timer (see the module doc).
    pub fn http1(&self) -> hyper::server::conn::http1::Builder {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.idle_timeout + self.header_read_timeout)
            .keep_alive(true);
        b
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::from_config(&crate::config::Config::default().server)
    }
}

/// One open connection as the shedder sees it.
#[derive(Debug)]
pub struct Conn {
    id: u64,
    ip: IpAddr,
    /// Milliseconds since the registry started, at the last activity.
    last: AtomicU64,
    shed: AtomicBool,
    close: Notify,
    epoch: Instant,
}

impl Conn {
    /// Records activity (a request read, bytes moved).
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Completes when the connection was chosen to make room.
    pub async fn shed(&self) {
        let notified = self.close.notified();
        if self.shed.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

#[derive(Debug, Default)]
struct Table {
    by_ip: HashMap<IpAddr, Vec<Arc<Conn>>>,
    live: usize,
    next: u64,
}

/// The open connections of one listener.
#[derive(Debug)]
struct Registry {
    limits: Limits,
    table: Mutex<Table>,
    epoch: Instant,
}

/// Removes its connection from the registry when the connection task ends.
struct Registered {
    reg: Arc<Registry>,
    conn: Arc<Conn>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut t = self.reg.lock();
        if let Some(v) = t.by_ip.get_mut(&self.conn.ip) {
            v.retain(|c| c.id != self.conn.id);
            if v.is_empty() {
                t.by_ip.remove(&self.conn.ip);
            }
        }
        if !self.conn.shed.load(Ordering::Acquire) {
            t.live -= 1;
        }
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Table> {
        match self.table.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Registers a new connection from `ip`, shedding others to stay within the caps.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Registered {
        let mut t = self.lock();
        let own = live_of(&t, &ip);
        if own >= self.limits.max_per_address {
            shed_one(&mut t, &ip, "connections from one address");
        } else if t.live >= self.limits.max_connections {
            let top = t
                .by_ip
                .iter()
                .map(|(ip, v)| {
                    (
                        v.iter().filter(|c| !c.shed.load(Ordering::Relaxed)).count(),
                        *ip,
                    )
                })
                .max();
            if let Some((_, top)) = top {
                shed_one(&mut t, &top, "connections in all");
            }
        }
        t.next += 1;
        let conn = Arc::new(Conn {
            id: t.next,
            ip,
            last: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            shed: AtomicBool::new(false),
            close: Notify::new(),
            epoch: self.epoch,
        });
        t.by_ip.entry(ip).or_default().push(conn.clone());
        t.live += 1;
        Registered {
            reg: self.clone(),
            conn,
        }
    }
}

fn live_of(t: &Table, ip: &IpAddr) -> usize {
    t.by_ip.get(ip).map_or(0, |v| {
        v.iter().filter(|c| !c.shed.load(Ordering::Relaxed)).count()
    })
}

/// Closes the least recently active live connection of `ip`.
fn shed_one(t: &mut Table, ip: &IpAddr, why: &'static str) {
    let Some(victim) = t.by_ip.get(ip).and_then(|v| {
        v.iter()
            .filter(|c| !c.shed.load(Ordering::Relaxed))
            .min_by_key(|c| (c.last.load(Ordering::Relaxed), c.id))
            .cloned()
    }) else {
        return;
    };
    victim.shed.store(true, Ordering::Release);
    victim.close.notify_waiters();
    t.live -= 1;
    crate::metrics::connection_shed();
    tracing::debug!(peer = %ip, why, "connection shed to make room");
}

/// Accepts connections on `listener` until `shutdown` turns true, running `handle` for each
/// in its own task under `limits`; then stops accepting and waits up to 10 s for the
/// connections to finish. `handle` gets the connection's [`Conn`] to record activity on; the
/// task ends (and the connection closes) when the connection is shed.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    what: &'static str,
    limits: Limits,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr, Arc<Conn>, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let reg = Arc::new(Registry {
        limits,
        table: Mutex::new(Table::default()),
        epoch: Instant::now(),
    });
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => {
                let (stream, peer) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(listener = what, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let registered = reg.admit(peer.ip());
                let conn = registered.conn.clone();
                let work = handle(stream, peer, conn.clone(), shutdown.clone());
                conns.spawn(async move {
                    let _registered = registered;
                    tokio::select! {
                        _ = work => {}
                        _ = conn.shed() => {}
                    }
                });
            }
            _ = async { shutdown.wait_for(|s| *s).await.map(|_| ()) } => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

/// An I/O stream that records activity on its [`Conn`] whenever bytes move (hyper-served
/// connections; the zero-copy path records each request itself).
pub struct Tracked<I> {
    inner: I,
    conn: Arc<Conn>,
}

impl<I> Tracked<I> {
    /// Wraps `inner`.
    pub fn new(inner: I, conn: Arc<Conn>) -> Self {
        Self { inner, conn }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.touch();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.conn.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(max: usize, per: usize) -> Arc<Registry> {
        Arc::new(Registry {
            limits: Limits {
                max_connections: max,
                max_per_address: per,
                ..Limits::default()
            },
            table: Mutex::new(Table::default()),
            epoch: Instant::now(),
        })
    }

    #[test]
    fn sheds_the_least_recently_active_of_the_biggest_address() {
        let r = reg(4, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let flood: Vec<Registered> = (0..3).map(|_| r.admit(a)).collect();
        // The oldest one of the flood was active since: the second is now the oldest.
        std::thread::sleep(Duration::from_millis(5));
        flood[0].conn.touch();
        // Per-address cap: a fourth from `a` sheds `a`'s least recently active.
        let fourth = r.admit(a);
        assert!(flood[1].conn.shed.load(Ordering::Relaxed));
        assert!(!flood[0].conn.shed.load(Ordering::Relaxed));
        let b1 = r.admit(b);
        // Total cap (4 live: a0, a2, a3, b1): another from `b` sheds from `a`, the biggest.
        let b2 = r.admit(b);
        assert!(flood[2].conn.shed.load(Ordering::Relaxed));
        assert!(!b1.conn.shed.load(Ordering::Relaxed));
        assert_eq!(r.lock().live, 4);
        drop((flood, fourth, b1, b2));
        assert_eq!(r.lock().live, 0);
        assert!(r.lock().by_ip.is_empty());
    }
}
