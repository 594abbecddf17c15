//! A cache of each revision's compressed wire form (`XmlUpdateBlobCompressed`: base64 of a
//! Cabinet), for the upstream side: building it (UTF-16, MSZIP, base64) costs far more than
//! serving it, and a revision's XML never changes while its key exists. Entries go with
//! their revision: `commit_batch` re-inserting a revision and `remove_revisions` drop them
//! in their transactions; [`Store::put_compressed_blob`] only stores a form made from the
//! XML the store holds at that moment.

use super::schema::{self, rev_key, Tree};
use super::{Store, StoreError};
use crate::model::RevisionKey;

impl Store {
    /// The cached compressed wire form of a revision, if any.
    pub fn compressed_blob(&self, key: &RevisionKey) -> Result<Option<String>, StoreError> {
        match self.tree(Tree::WireBlobs)?.get(rev_key(key))? {
            Some(v) => Ok(Some(
                String::from_utf8(v.to_vec()).map_err(|e| schema::corrupt("wire_blobs", e))?,
            )),
            None => Ok(None),
        }
    }

    /// Caches `blob`, the compressed wire form made from `xml`, when the revision is stored
    /// and its XML is still `xml` (checked under the writer lock, so a concurrent re-insert
    /// cannot leave a stale form). Returns whether it was stored.
    pub fn put_compressed_blob(
        &self,
        key: &RevisionKey,
        xml: &str,
        blob: &str,
    ) -> Result<bool, StoreError> {
        let k = rev_key(key);
        let _w = self.writer();
        let current = match self.tree(Tree::Xml)?.get(k)? {
            Some(v) => schema::decompress(&v)?,
            None => return Ok(false),
        };
        if current != xml {
            return Ok(false);
        }
        self.tree(Tree::WireBlobs)?.insert(k, blob.as_bytes())?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testutil::{revision, store};

    #[test]
    fn cached_forms_follow_their_revision() {
        let (_d, s) = store();
        let r = revision(1, 1);
        let k = r.record.key;
        assert!(
            !s.put_compressed_blob(&k, &r.xml, "B64").unwrap(),
            "not stored yet"
        );
        s.commit_batch(std::slice::from_ref(&r), &[], None).unwrap();
        assert!(
            !s.put_compressed_blob(&k, "<other/>", "B64").unwrap(),
            "other XML"
        );
        assert_eq!(s.compressed_blob(&k).unwrap(), None);
        assert!(s.put_compressed_blob(&k, &r.xml, "B64").unwrap());
        assert_eq!(s.compressed_blob(&k).unwrap().as_deref(), Some("B64"));
        // A re-insert (new XML under the same key) drops the cached form.
        let mut again = r.clone();
        again.xml.push_str("<!-- changed -->");
        s.commit_batch(&[again], &[], None).unwrap();
        assert_eq!(s.compressed_blob(&k).unwrap(), None);
        assert!(s.put_compressed_blob(&k, &r.xml, "B64").is_ok_and(|b| !b));
        // So does a removal.
        let mut third = r.clone();
        third.xml.push_str("<!-- changed -->");
        assert!(s.put_compressed_blob(&k, &third.xml, "C").unwrap());
        s.remove_revisions(&[k]).unwrap();
        assert_eq!(s.compressed_blob(&k).unwrap(), None);
    }
}
