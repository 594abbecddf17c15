//! Start-up reconcile: leftover temp files of a crash are deleted (not resumed), and the object
//! index and the folder are made to agree: a published file the index does not know (a crash
//! between rename and index write) is hashed again and indexed if its bytes match its name,
//! deleted otherwise; an index entry without a file is dropped.

use std::collections::HashMap;

use super::index::{ObjectEntry, ObjectIndex};
use super::store::ContentDir;
use super::{now_unix, verify, ContentError};

/// Start-up: drops temp files and makes the index and the folder agree. Returns the total size.
pub(super) fn reconcile(dir: &ContentDir, index: &dyn ObjectIndex) -> Result<u64, ContentError> {
    let io = |source| ContentError::Io {
        path: dir.root().to_path_buf(),
        source,
    };
    let n = dir.remove_leftovers().map_err(io)?;
    if n > 0 {
        tracing::warn!(count = n, "removed partial downloads left by a crash");
    }
    let mut on_disk = dir.scan().map_err(io)?;
    let indexed: HashMap<[u8; 20], ObjectEntry> = index.objects()?.into_iter().collect();
    // One copy per SHA-1 (a store written before objects were identified by SHA-1 alone may
    // hold the same bytes under two extensions): keep the indexed name, or the first one.
    on_disk.sort_by_key(|(k, _)| (k.sha1, indexed.get(&k.sha1).is_none_or(|e| e.ext != k.ext)));
    let mut kept = std::collections::HashSet::new();
    on_disk.retain(|(k, _)| {
        if kept.insert(k.sha1) {
            return true;
        }
        tracing::warn!(key = %k, "removing a second copy of an object stored under another name");
        let _ = dir.remove(k);
        false
    });
    let mut total = 0u64;
    let mut seen = std::collections::HashSet::new();
    for (key, size) in on_disk {
        seen.insert(key.sha1);
        match indexed.get(&key.sha1) {
            Some(e) if e.size == size && e.ext == key.ext => total += size,
            _ => {
                // Published but not indexed (crash between rename and index write): re-verify.
                let path = dir.final_path(&key);
                let good = verify::hash_file(&path).ok().filter(|d| d.sha1 == key.sha1);
                match good {
                    Some(d) => {
                        let now = now_unix();
                        index.put_object(
                            &key.sha1,
                            &ObjectEntry {
                                ext: key.ext.clone(),
                                size: d.size,
                                sha256: d.sha256,
                                stored_unix: now,
                                last_access_unix: now,
                            },
                        )?;
                        total += d.size;
                    }
                    None => {
                        tracing::warn!(key = %key, "removing unverifiable file from the store");
                        let _ = dir.remove(&key);
                    }
                }
            }
        }
    }
    for sha1 in indexed.keys() {
        if !seen.contains(sha1) {
            index.remove_object(sha1)?;
        }
    }
    Ok(total)
}
