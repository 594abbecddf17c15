//! The exclusive lock on the data directory: a `store.lock` file held with `flock(LOCK_EX)`
//! for the life of the [`Store`](super::Store), with the holder's pid written inside.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;

use super::StoreError;

/// Name of the lock file inside the store directory.
pub const LOCK_FILE: &str = "store.lock";

/// Holds the lock until dropped (closing the descriptor releases the flock).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Takes the lock on `dir/store.lock` without blocking. flock locks belong to the open file
    /// description, so a second open in the same process is refused as well.
    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        // SAFETY: flock on a valid, owned descriptor; no memory is shared with the kernel.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut s = String::new();
                let pid = file
                    .read_to_string(&mut s)
                    .ok()
                    .and_then(|_| s.trim().parse::<u32>().ok());
                return Err(StoreError::Locked { pid });
            }
            return Err(StoreError::Io(err));
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())?;
        file.sync_all()?;
        Ok(DirLock { _file: file })
    }
}
