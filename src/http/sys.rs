//! Every raw socket system call of the server, in one place: `sendfile(2)` from a file to a
//! socket and `send(2)` with `MSG_MORE`. Each `unsafe` block states why it is sound; callers
//! get safe functions over tokio's `TcpStream` (readiness through `try_io`, so tokio's
//! readiness tracking stays right).

use std::fs::File;
use std::io;

/// Sends `len` bytes of `file` from `offset` to `socket` with `sendfile(2)` (no copy through
/// user space). Returns the bytes sent; on error, how many were sent before it. The caller
/// counts them in the metrics.
pub async fn sendfile(
    socket: &tokio::net::TcpStream,
    file: &File,
    mut offset: u64,
    len: u64,
) -> Result<u64, (u64, io::Error)> {
    use std::os::fd::AsRawFd;
    let (out_fd, in_fd) = (socket.as_raw_fd(), file.as_raw_fd());
    let mut sent = 0u64;
    while sent < len {
        if let Err(e) = socket.writable().await {
            return Err((sent, e));
        }
        let want = (len - sent).min(1 << 30) as usize;
        let r = socket.try_io(tokio::io::Interest::WRITABLE, || {
            let mut off = offset as libc::off_t;
            // SAFETY: both descriptors are open for the whole call (borrowed from `socket` and
            // `file`, which outlive it), `off` is a valid local the kernel updates, and
            // sendfile does not touch user memory otherwise.
            let n = unsafe { libc::sendfile(out_fd, in_fd, &mut off, want) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as u64)
            }
        });
        match r {
            Ok(0) => {
                return Err((
                    sent,
                    io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"),
                ))
            }
            Ok(n) => {
                sent += n;
                offset += n;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err((sent, e)),
        }
    }
    Ok(sent)
}

/// Writes a response head with `MSG_MORE`, so the kernel sends it in the same segments as the
/// `sendfile` body that follows (no lone small packet per response).
pub async fn send_more(socket: &tokio::net::TcpStream, mut buf: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    while !buf.is_empty() {
        socket.writable().await?;
        let r = socket.try_io(tokio::io::Interest::WRITABLE, || {
            // SAFETY: `buf` is a valid, initialised slice for the whole call and `fd` is the
            // socket borrowed from `socket`, open for the call's duration.
            let n = unsafe {
                libc::send(
                    fd,
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_MORE | libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
