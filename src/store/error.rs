//! The store's error type.

/// Everything that can go wrong in the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or another `Store` in this process) holds the data dir.
    #[error("store directory is locked by another process{}", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The pid written in the lock file by the holder, when readable.
        pid: Option<u32>,
    },
    /// File-system error outside sled (creating the dir, the lock file).
    #[error("store I/O: {0}")]
    Io(#[from] std::io::Error),
    /// sled reported an error.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value could not be decoded (corruption or an incompatible version).
    #[error("corrupt store value in {tree}: {detail}")]
    Corrupt {
        /// Which tree held the bad value.
        tree: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A value could not be encoded.
    #[error("encoding a store value: {0}")]
    Encode(String),
    /// The caller asked for something that violates an invariant (e.g. removing a built-in group).
    #[error("invalid store operation: {0}")]
    Invalid(String),
    /// The store was written by a newer wsus-edge (its schema version is higher than ours).
    #[error("the store has schema version {found}, this wsus-edge reads up to {supported}: it was written by a newer version (downgrades are not supported; restore a backup or upgrade)")]
    NewerSchema {
        /// The version recorded in the store.
        found: u32,
        /// [`SCHEMA_VERSION`](super::SCHEMA_VERSION).
        supported: u32,
    },
    /// The store is closed while it is reopened after a failure (the reason).
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// A named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
}

impl StoreError {
    /// Whether this is a write that failed for lack of space (ENOSPC, or a quota), after
    /// which sled fails every write until the store is reopened.
    pub fn is_disk_full(&self) -> bool {
        let io = match self {
            StoreError::Sled(sled::Error::Io(e)) | StoreError::Io(e) => e,
            _ => return false,
        };
        // sled hands out copies of the error that made it stop: the kind survives the copy,
        // the OS code does not.
        matches!(
            io.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ) || io.raw_os_error() == Some(libc::ENOSPC)
            || io.to_string().contains("No space left on device")
    }
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(e: sled::transaction::TransactionError<StoreError>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_full_is_told_apart_also_in_sleds_copies() {
        let enospc = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(StoreError::Sled(sled::Error::Io(enospc)).is_disk_full());
        // sled's sticky error, as later calls return it: same kind, no OS code.
        let copy = std::io::Error::new(std::io::ErrorKind::StorageFull, "Os { code: 28 }");
        assert!(StoreError::Sled(sled::Error::Io(copy)).is_disk_full());
        let eio = std::io::Error::from_raw_os_error(libc::EIO);
        assert!(!StoreError::Sled(sled::Error::Io(eio)).is_disk_full());
        assert!(!StoreError::Invalid("x".into()).is_disk_full());
    }
}
