//! Metadata transfer: GetUpdateData (update documents, file digests, Microsoft Update URLs)
//! and DownloadFiles (SS §3.1.4.6, §3.1.4.11).

use super::{
    action, non_empty, parse_sha1, read_array, read_identity, read_opt_array, write_array,
    write_identity, Cookie, NS,
};
use crate::model::RevisionKey;
use crate::wire::blob::UpdateBlob;
use crate::wire::soap::{Operation, SoapBody};
use crate::wire::values::format_base64;
use crate::wire::xml::{Element, XmlWriter};
use crate::wire::WireError;

/// `GetUpdateData` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetUpdateData {
    /// `cookie`.
    pub cookie: Cookie,
    /// `updateIds` (≤ `MaxNumberOfUpdatesPerRequest`).
    pub update_ids: Vec<RevisionKey>,
}

impl SoapBody for GetUpdateData {
    const NAME: &'static str = "GetUpdateData";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        self.cookie.write(w, "cookie");
        write_array(w, "updateIds", &self.update_ids, |w, k| {
            write_identity(w, "UpdateIdentity", k)
        });
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: Cookie::read(el.req("cookie")?)?,
            update_ids: read_array(el, "updateIds", "UpdateIdentity", read_identity)?,
        })
    }
}

impl Operation for GetUpdateData {
    const ACTION: &'static str = action::GET_UPDATE_DATA;
    type Response = GetUpdateDataResponse;
}

/// `ServerSyncUpdateData`: one revision's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSyncUpdateData {
    /// `Id`.
    pub id: RevisionKey,
    /// `XmlUpdateBlob` or `XmlUpdateBlobCompressed`.
    pub blob: UpdateBlob,
    /// `FileDigestList`: SHA-1 of each file; `None` when the revision has no files.
    pub file_digests: Option<Vec<[u8; 20]>>,
}

/// `ServerSyncUrlData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSyncUrlData {
    /// `FileDigest` (SHA-1).
    pub file_digest: [u8; 20],
    /// `MUUrl`: where Microsoft Update serves the file, when it does.
    pub mu_url: Option<String>,
    /// `UssUrl` (unused; WS2025 writes it empty, which decodes as `None`).
    pub uss_url: Option<String>,
}

/// `GetUpdateDataResponse` / `ServerUpdateData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetUpdateDataResponse {
    /// `updates` (may hold fewer than asked: re-request the rest).
    pub updates: Vec<ServerSyncUpdateData>,
    /// `fileUrls`.
    pub file_urls: Vec<ServerSyncUrlData>,
}

impl GetUpdateDataResponse {
    /// The requested revisions this answer left out (a WSUS answer is capped near 2 MB and
    /// may hold fewer than asked): request them again.
    pub fn missing_from(&self, requested: &[RevisionKey]) -> Vec<RevisionKey> {
        let got: std::collections::HashSet<RevisionKey> =
            self.updates.iter().map(|u| u.id).collect();
        requested
            .iter()
            .filter(|k| !got.contains(k))
            .copied()
            .collect()
    }

    /// The `MUUrl` given for a file digest, if any.
    pub fn mu_url(&self, sha1: &[u8; 20]) -> Option<&str> {
        self.file_urls
            .iter()
            .find(|f| &f.file_digest == sha1)
            .and_then(|f| f.mu_url.as_deref())
    }
}

impl SoapBody for GetUpdateDataResponse {
    const NAME: &'static str = "GetUpdateDataResponse";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("GetUpdateDataResult");
        write_array(w, "updates", &self.updates, |w, u| {
            w.start("ServerSyncUpdateData");
            write_identity(w, "Id", &u.id);
            if let UpdateBlob::Plain(x) = &u.blob {
                w.leaf("XmlUpdateBlob", x);
            }
            if let Some(d) = &u.file_digests {
                write_array(w, "FileDigestList", d, |w, h| {
                    w.leaf("base64Binary", &format_base64(h));
                });
            }
            if let UpdateBlob::Compressed(b) = &u.blob {
                w.leaf("XmlUpdateBlobCompressed", b);
            }
            w.end();
        });
        write_array(w, "fileUrls", &self.file_urls, |w, f| {
            w.start("ServerSyncUrlData");
            w.leaf("FileDigest", &format_base64(&f.file_digest));
            w.opt_leaf("MUUrl", f.mu_url.as_deref());
            w.start("UssUrl");
            if let Some(u) = &f.uss_url {
                w.text(u);
            }
            w.end();
            w.end();
        });
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        let r = el.req("GetUpdateDataResult")?;
        let updates = read_array(r, "updates", "ServerSyncUpdateData", |u| {
            let blob = match (u.child("XmlUpdateBlob"), u.child("XmlUpdateBlobCompressed")) {
                (Some(p), None) => UpdateBlob::Plain(p.text()),
                (None, Some(c)) => UpdateBlob::Compressed(c.text()),
                _ => {
                    return Err(WireError::bad(
                        "ServerSyncUpdateData",
                        "needs exactly one of XmlUpdateBlob / XmlUpdateBlobCompressed",
                    ))
                }
            };
            Ok(ServerSyncUpdateData {
                id: read_identity(u.req("Id")?)?,
                blob,
                file_digests: read_opt_array(u, "FileDigestList", "base64Binary", |d| {
                    parse_sha1("FileDigestList", &d.text())
                })?,
            })
        })?;
        let file_urls = read_array(r, "fileUrls", "ServerSyncUrlData", |f| {
            Ok(ServerSyncUrlData {
                file_digest: parse_sha1("FileDigest", &f.req_text("FileDigest")?)?,
                mu_url: non_empty(f.child_text("MUUrl")),
                uss_url: non_empty(f.child_text("UssUrl")),
            })
        })?;
        Ok(Self { updates, file_urls })
    }
}

/// `DownloadFiles` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadFiles {
    /// `cookie`.
    pub cookie: Cookie,
    /// `fileDigestList`: 1..=100 SHA-1 digests.
    pub file_digests: Vec<[u8; 20]>,
}

impl SoapBody for DownloadFiles {
    const NAME: &'static str = "DownloadFiles";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        self.cookie.write(w, "cookie");
        write_array(w, "fileDigestList", &self.file_digests, |w, h| {
            w.leaf("base64Binary", &format_base64(h));
        });
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: Cookie::read(el.req("cookie")?)?,
            file_digests: read_array(el, "fileDigestList", "base64Binary", |d| {
                parse_sha1("fileDigestList", &d.text())
            })?,
        })
    }
}

impl Operation for DownloadFiles {
    const ACTION: &'static str = action::DOWNLOAD_FILES;
    type Response = DownloadFilesResponse;
}

/// `DownloadFilesResponse` (empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadFilesResponse;

impl SoapBody for DownloadFilesResponse {
    const NAME: &'static str = "DownloadFilesResponse";
    const NS: &'static str = NS;
    fn write_children(&self, _w: &mut XmlWriter) {}
    fn read(_el: &Element) -> Result<Self, WireError> {
        Ok(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{round_trip, test_cookie as cookie};
    use super::*;
    use crate::wire::soap::encode;
    use uuid::uuid;

    #[test]
    fn update_data_round_trips_both_blob_forms() {
        let k = RevisionKey::new(uuid!("266f6222-c89d-43f2-9f8a-69340271e677"), 200);
        round_trip(&GetUpdateData {
            cookie: cookie(),
            update_ids: vec![k],
        });
        let big = format!("<upd:Update>{}</upd:Update>", "x".repeat(6000));
        let resp = GetUpdateDataResponse {
            updates: vec![
                ServerSyncUpdateData {
                    id: k,
                    blob: UpdateBlob::from_xml(&big).unwrap(),
                    file_digests: Some(vec![[7u8; 20]]),
                },
                ServerSyncUpdateData {
                    id: RevisionKey::new(uuid!("ccb78947-6453-4ecc-9de8-bc0305c98f2d"), 200),
                    blob: UpdateBlob::from_xml("<upd:Update a=\"&amp;\"/>").unwrap(),
                    file_digests: None,
                },
            ],
            file_urls: vec![ServerSyncUrlData {
                file_digest: [7u8; 20],
                mu_url: Some("http://download.windowsupdate.com/c/x.exe".into()),
                uss_url: None,
            }],
        };
        let back = round_trip(&resp);
        let other = RevisionKey::new(uuid!("266f6222-c89d-43f2-9f8a-69340271e677"), 201);
        assert_eq!(back.missing_from(&[k, other]), vec![other]);
        assert_eq!(
            back.mu_url(&[7u8; 20]),
            Some("http://download.windowsupdate.com/c/x.exe")
        );
        assert_eq!(back.mu_url(&[8u8; 20]), None);
        assert_eq!(back.updates[0].blob.xml().unwrap(), big);
        let s = encode(&resp);
        assert!(s.contains("</Id><FileDigestList><base64Binary>BwcHBwcHBwcHBwcHBwcHBwcHBwc=</base64Binary></FileDigestList><XmlUpdateBlobCompressed>TVNDRg"));
        assert!(s.contains("<XmlUpdateBlob>&lt;upd:Update a=\"&amp;amp;\"/&gt;</XmlUpdateBlob>"));
        assert!(s.contains("<fileUrls><ServerSyncUrlData><FileDigest>BwcHBwcHBwcHBwcHBwcHBwcHBwc=</FileDigest><MUUrl>http://download.windowsupdate.com/c/x.exe</MUUrl><UssUrl /></ServerSyncUrlData></fileUrls>"));
        let none = GetUpdateDataResponse {
            updates: vec![],
            file_urls: vec![],
        };
        assert!(encode(&none)
            .contains("<GetUpdateDataResult><updates /><fileUrls /></GetUpdateDataResult>"));
        round_trip(&none);
    }

    #[test]
    fn download_files_round_trips() {
        round_trip(&DownloadFiles {
            cookie: cookie(),
            file_digests: vec![[1u8; 20], [2u8; 20]],
        });
        round_trip(&DownloadFilesResponse);
        let s = encode(&DownloadFilesResponse);
        assert!(s.contains(
            "<DownloadFilesResponse xmlns=\"http://www.microsoft.com/SoftwareDistribution\" />"
        ));
    }
}
