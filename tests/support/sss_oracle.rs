//! An independent MS-WSUSSS client for tests: it checks any upstream (the simulator, a
//! wsus-edge replica) from outside, the way a downstream WSUS would see it. It shares no code
//! with the crate's wire layer: the request envelopes are written here from MS-WSUSSS §3.1.4
//! (GetAuthConfig, DssAuth GetAuthorizationCookie, GetCookie, GetRevisionIdList,
//! GetUpdateData, GetDeployments), answers are read with a small namespace-blind tree over
//! quick-xml, compressed blobs are opened with the `cab` crate (LZX or MSZIP).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use base64::Engine;
use quick_xml::events::Event;
use uuid::Uuid;

const NS: &str = "http://www.microsoft.com/SoftwareDistribution";
const SYNC: &str = "/ServerSyncWebService/ServerSyncWebService.asmx";

/// One element: local name, text, children.
#[derive(Debug, Default, Clone)]
pub struct El {
    pub name: String,
    pub text: String,
    pub kids: Vec<El>,
}

impl El {
    pub fn child(&self, n: &str) -> Option<&El> {
        self.kids.iter().find(|k| k.name == n)
    }
    pub fn all<'a>(&'a self, n: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.kids.iter().filter(move |k| k.name == n)
    }
    pub fn text_of(&self, n: &str) -> Option<String> {
        self.child(n).map(|c| c.text.trim().to_string())
    }
    /// First descendant named `n` (depth first).
    pub fn find(&self, n: &str) -> Option<&El> {
        if self.name == n {
            return Some(self);
        }
        self.kids.iter().find_map(|k| k.find(n))
    }
}

fn local(q: &[u8]) -> String {
    let s = String::from_utf8_lossy(q);
    s.rsplit(':').next().unwrap_or_default().to_string()
}

/// Parses a document into a tree (local names only).
pub fn parse(xml: &str) -> El {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<El> = vec![El::default()];
    loop {
        match r.read_event().expect("well-formed XML") {
            Event::Start(e) => stack.push(El {
                name: local(e.name().as_ref()),
                ..El::default()
            }),
            Event::Empty(e) => {
                let el = El {
                    name: local(e.name().as_ref()),
                    ..El::default()
                };
                stack.last_mut().unwrap().kids.push(el);
            }
            Event::End(_) => {
                let el = stack.pop().unwrap();
                stack.last_mut().unwrap().kids.push(el);
            }
            Event::Text(t) => {
                let t = t.unescape().expect("text");
                stack.last_mut().unwrap().text.push_str(&t);
            }
            Event::CData(t) => {
                stack
                    .last_mut()
                    .unwrap()
                    .text
                    .push_str(&String::from_utf8_lossy(&t));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    stack.pop().unwrap()
}

/// The value of attribute `attr` on the first element named `el` in `xml`.
pub fn attr_of(xml: &str, el: &str, attr: &str) -> Option<String> {
    let mut r = quick_xml::Reader::from_str(xml);
    loop {
        match r.read_event().ok()? {
            Event::Start(e) | Event::Empty(e) if local(e.name().as_ref()) == el => {
                for a in e.attributes().flatten() {
                    if local(a.key.as_ref()) == attr {
                        return Some(a.unescape_value().ok()?.to_string());
                    }
                }
                return None;
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body>{body}</soap:Body></soap:Envelope>"
    )
}

/// What an upstream shows a downstream WSUS, read from outside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// Every revision listed (config pass + software pass, no anchor).
    pub revisions: BTreeSet<(Uuid, u32)>,
    /// Of those, updates whose listed revision is `PublicationState="Expired"`.
    pub expired: BTreeSet<Uuid>,
    /// Deployments: (update, revision, group, action).
    pub approvals: BTreeSet<(Uuid, u32, Uuid, i32)>,
    /// `HiddenUpdates` (declined).
    pub declined: BTreeSet<Uuid>,
    /// Target group ids.
    pub groups: BTreeSet<Uuid>,
    /// File digests (SHA-1, base64) → `MUUrl` as `fileUrls` gave them.
    pub mu_urls: BTreeMap<String, Option<String>>,
    /// Update id → bundled update ids (`BundledUpdates/UpdateIdentity`).
    pub bundled: BTreeMap<Uuid, Vec<Uuid>>,
    /// Update id → SHA-1 digests (base64) of its `Files/File`.
    pub files: BTreeMap<Uuid, Vec<String>>,
    /// Software-pass update ids (no categories or detectoids).
    pub software: BTreeSet<Uuid>,
    /// Product category ids (config pass).
    pub products: Vec<Uuid>,
    /// Classification category ids (config pass).
    pub classifications: Vec<Uuid>,
}

/// A session with one upstream.
pub struct Oracle {
    base: String,
    http: reqwest::Client,
    cookie: String,
}

impl Oracle {
    async fn post(&self, path: &str, action: &str, body: &str) -> El {
        let r = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", format!("\"{NS}/{action}\""))
            .body(envelope(body))
            .send()
            .await
            .expect("upstream reachable");
        let status = r.status();
        let text = r.text().await.expect("body");
        assert_eq!(status, 200, "{action}: {text}");
        parse(&text)
    }

    /// Authorizes: GetAuthConfig → GetAuthorizationCookie (DssAuth) → GetCookie (1.20).
    pub async fn connect(base: &str) -> Oracle {
        let http = reqwest::Client::new();
        let mut o = Oracle {
            base: base.trim_end_matches('/').to_string(),
            http,
            cookie: String::new(),
        };
        let cfg = o
            .post(
                SYNC,
                "GetAuthConfig",
                &format!("<GetAuthConfig xmlns=\"{NS}\"/>"),
            )
            .await;
        let plug = cfg.find("AuthPlugInInfo").expect("a plug-in");
        let url = plug.text_of("ServiceUrl").expect("ServiceUrl");
        let path = if url.starts_with("http") {
            url.split_once("//")
                .and_then(|(_, r)| r.split_once('/'))
                .map(|(_, p)| format!("/{p}"))
                .unwrap()
        } else {
            format!("/{}", url.trim_start_matches('/'))
        };
        let dss = "http://www.microsoft.com/SoftwareDistribution/Server/DssAuthWebService";
        let r = o
            .http
            .post(format!("{}{}", o.base, path))
            .header("Content-Type", "text/xml; charset=utf-8")
            .header("SOAPAction", format!("\"{dss}/GetAuthorizationCookie\""))
            .body(envelope(&format!(
                "<GetAuthorizationCookie xmlns=\"{dss}\"><accountName>oracle.test</accountName><accountGuid>{}</accountGuid></GetAuthorizationCookie>",
                Uuid::new_v4()
            )))
            .send()
            .await
            .unwrap();
        let t = r.text().await.unwrap();
        let auth = parse(&t);
        let res = auth.find("GetAuthorizationCookieResult").expect(&t);
        let plug_id = res.text_of("PlugInId").unwrap_or_default();
        let data = res.text_of("CookieData").unwrap_or_default();
        let c = o
            .post(
                SYNC,
                "GetCookie",
                &format!(
                    "<GetCookie xmlns=\"{NS}\"><authCookies><AuthorizationCookie><PlugInId>{plug_id}</PlugInId><CookieData>{data}</CookieData></AuthorizationCookie></authCookies><protocolVersion>1.20</protocolVersion></GetCookie>"
                ),
            )
            .await;
        let res = c.find("GetCookieResult").expect("cookie");
        o.cookie = format!(
            "<cookie><Expiration>{}</Expiration><EncryptedData>{}</EncryptedData></cookie>",
            res.text_of("Expiration").unwrap_or_default(),
            res.text_of("EncryptedData").unwrap_or_default()
        );
        o
    }

    /// GetConfigData (no anchor): the result element.
    pub async fn config_data(&self) -> El {
        let r = self
            .post(
                SYNC,
                "GetConfigData",
                &format!(
                    "<GetConfigData xmlns=\"{NS}\">{}</GetConfigData>",
                    self.cookie
                ),
            )
            .await;
        r.find("GetConfigDataResult").cloned().expect("result")
    }

    /// GetRevisionIdList without an anchor: the config pass (`products` and `classes` None)
    /// or the software pass for those products and classifications (`Delta=false`).
    pub async fn revision_ids(
        &self,
        products: Option<&[Uuid]>,
        classes: Option<&[Uuid]>,
    ) -> Vec<(Uuid, u32)> {
        let config = products.is_none();
        let list = |name: &str, v: Option<&[Uuid]>| -> String {
            match v {
                None => String::new(),
                Some(v) => format!(
                    "<{name}>{}</{name}>",
                    v.iter()
                        .map(|id| format!(
                            "<IdAndDelta><Id>{id}</Id><Delta>false</Delta></IdAndDelta>"
                        ))
                        .collect::<String>()
                ),
            }
        };
        let r = self
            .post(
                SYNC,
                "GetRevisionIdList",
                &format!(
                    "<GetRevisionIdList xmlns=\"{NS}\">{}<filter><GetConfig>{config}</GetConfig><Get63LanguageOnly>false</Get63LanguageOnly>{}{}</filter></GetRevisionIdList>",
                    self.cookie,
                    list("Categories", products),
                    list("Classifications", classes),
                ),
            )
            .await;
        let res = r.find("GetRevisionIdListResult").expect("result");
        res.child("NewRevisions")
            .map(|n| {
                n.all("UpdateIdentity")
                    .map(|u| {
                        (
                            u.text_of("UpdateID").unwrap().parse().unwrap(),
                            u.text_of("RevisionNumber").unwrap().parse().unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// GetUpdateData for `ids` (≤ 100): (id, update XML, its fileUrls).
    pub async fn update_data(&self, ids: &[(Uuid, u32)]) -> (Vec<((Uuid, u32), String)>, El) {
        let list: String = ids
            .iter()
            .map(|(u, r)| {
                format!("<UpdateIdentity><UpdateID>{u}</UpdateID><RevisionNumber>{r}</RevisionNumber></UpdateIdentity>")
            })
            .collect();
        let r = self
            .post(
                SYNC,
                "GetUpdateData",
                &format!(
                    "<GetUpdateData xmlns=\"{NS}\">{}<updateIds>{list}</updateIds></GetUpdateData>",
                    self.cookie
                ),
            )
            .await;
        let res = r.find("GetUpdateDataResult").cloned().expect("result");
        let mut out = Vec::new();
        if let Some(us) = res.child("updates") {
            for u in us.all("ServerSyncUpdateData") {
                let id = u.child("Id").unwrap();
                let key = (
                    id.text_of("UpdateID").unwrap().parse().unwrap(),
                    id.text_of("RevisionNumber").unwrap().parse().unwrap(),
                );
                let xml = if let Some(x) = u.text_of("XmlUpdateBlob") {
                    x
                } else {
                    let b = u.text_of("XmlUpdateBlobCompressed").expect("a blob");
                    uncab(&base64::engine::general_purpose::STANDARD.decode(b).unwrap())
                };
                out.push((key, xml));
            }
        }
        (out, res)
    }

    /// GetDeployments without a deployment anchor: the result element.
    pub async fn deployments(&self) -> El {
        let r = self
            .post(
                SYNC,
                "GetDeployments",
                &format!(
                    "<GetDeployments xmlns=\"{NS}\">{}<syncAnchor>0,1900-01-01 00:00:00.000</syncAnchor></GetDeployments>",
                    self.cookie
                ),
            )
            .await;
        r.find("GetDeploymentsResult").cloned().expect("result")
    }

    /// Everything a fresh downstream would get.
    pub async fn view(&self) -> View {
        let mut v = View::default();
        let config = self.revision_ids(None, None).await;
        v.revisions.extend(config.iter().copied());
        self.read_updates(&config, &mut v).await;
        let software = self
            .revision_ids(Some(&v.products.clone()), Some(&v.classifications.clone()))
            .await;
        v.software = software.iter().map(|k| k.0).collect();
        v.revisions.extend(software.iter().copied());
        self.read_updates(&software, &mut v).await;
        self.read_deployments(&mut v).await;
        v
    }

    /// GetUpdateData for `all`, recording what the documents say into `v`.
    async fn read_updates(&self, all: &[(Uuid, u32)], v: &mut View) {
        for chunk in all.chunks(50) {
            let mut pending: Vec<(Uuid, u32)> = chunk.to_vec();
            while !pending.is_empty() {
                let (got, res) = self.update_data(&pending).await;
                assert!(!got.is_empty(), "GetUpdateData returned nothing");
                for (k, xml) in &got {
                    if attr_of(xml, "Properties", "PublicationState").as_deref() == Some("Expired")
                    {
                        v.expired.insert(k.0);
                    }
                    let doc = parse(xml);
                    if let Some(b) = doc.find("BundledUpdates") {
                        let ids = bundled_ids(xml);
                        let _ = b;
                        v.bundled.insert(k.0, ids);
                    }
                    match attr_of(xml, "CategoryInformation", "CategoryType").as_deref() {
                        Some("Product") => v.products.push(k.0),
                        Some("UpdateClassification") => v.classifications.push(k.0),
                        _ => {}
                    }
                    let files = file_digests(xml);
                    if !files.is_empty() {
                        v.files.insert(k.0, files);
                    }
                }
                if let Some(urls) = res.child("fileUrls") {
                    for u in urls.all("ServerSyncUrlData") {
                        v.mu_urls.insert(
                            u.text_of("FileDigest").unwrap_or_default(),
                            u.text_of("MUUrl").filter(|s| !s.is_empty()),
                        );
                    }
                }
                let done: BTreeSet<(Uuid, u32)> = got.iter().map(|g| g.0).collect();
                pending.retain(|k| !done.contains(k));
            }
        }
    }

    async fn read_deployments(&self, v: &mut View) {
        let d = self.deployments().await;
        if let Some(ds) = d.child("Deployments") {
            for x in ds.all("ServerSyncDeployment") {
                v.approvals.insert((
                    x.text_of("UpdateId").unwrap().parse().unwrap(),
                    x.text_of("RevisionNumber").unwrap().parse().unwrap(),
                    x.text_of("TargetGroupId").unwrap().parse().unwrap(),
                    x.text_of("Action").unwrap().parse().unwrap(),
                ));
            }
        }
        if let Some(h) = d.child("HiddenUpdates") {
            v.declined = h
                .all("guid")
                .map(|g| g.text.trim().parse().unwrap())
                .collect();
        }
        if let Some(g) = d.child("Groups") {
            v.groups = g
                .all("ServerSyncTargetGroup")
                .map(|g| g.text_of("TargetGroupID").unwrap().parse().unwrap())
                .collect();
        }
    }
}

/// `UpdateID` attributes of `BundledUpdates//UpdateIdentity` in an update document.
pub fn bundled_ids(xml: &str) -> Vec<Uuid> {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut inside = 0usize;
    let mut out = Vec::new();
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) if local(e.name().as_ref()) == "BundledUpdates" => {
                inside += 1;
            }
            Ok(Event::Empty(e)) if inside > 0 && local(e.name().as_ref()) == "UpdateIdentity" => {
                for a in e.attributes().flatten() {
                    if local(a.key.as_ref()) == "UpdateID" {
                        out.push(a.unescape_value().unwrap().parse().unwrap());
                    }
                }
            }
            Ok(Event::End(e)) if local(e.name().as_ref()) == "BundledUpdates" => {
                inside -= 1;
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

/// `Digest` attributes (SHA-1, base64) of `Files/File` in an update document.
pub fn file_digests(xml: &str) -> Vec<String> {
    let mut r = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) if local(e.name().as_ref()) == "File" => {
                for a in e.attributes().flatten() {
                    if local(a.key.as_ref()) == "Digest" {
                        out.push(a.unescape_value().unwrap().to_string());
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

/// The one file of a cabinet, as text (update blobs are UTF-16LE, with or without a BOM, or
/// UTF-8).
pub fn uncab(bytes: &[u8]) -> String {
    let mut cab = cab::Cabinet::new(std::io::Cursor::new(bytes)).expect("a cabinet");
    let name = cab
        .folder_entries()
        .flat_map(|f| f.file_entries())
        .map(|f| f.name().to_string())
        .next()
        .expect("one file");
    let mut data = Vec::new();
    cab.read_file(&name)
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    let utf16 = data.starts_with(&[0xff, 0xfe]) || (data.len() > 1 && data[1] == 0);
    if utf16 {
        let body = data.strip_prefix(&[0xff, 0xfe]).unwrap_or(&data);
        let u: Vec<u16> = body
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&u)
    } else {
        String::from_utf8_lossy(data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&data)).into_owned()
    }
}

/// Which compression the cabinet of a compressed blob uses (`CFFOLDER.typeCompress` & 0xf:
/// 0 none, 1 MSZIP, 2 Quantum, 3 LZX), from the raw header (MS-CAB §2.2).
pub fn cab_compression(bytes: &[u8]) -> u16 {
    // CFHEADER is 36 bytes without reserve fields (flags bit 2 clear); CFFOLDER follows:
    // coffCabStart u32, cCFData u16, typeCompress u16.
    let flags = u16::from_le_bytes([bytes[30], bytes[31]]);
    let mut off = 36usize;
    if flags & 0x0004 != 0 {
        let cb_header = u16::from_le_bytes([bytes[36], bytes[37]]) as usize;
        off += 4 + cb_header;
    }
    u16::from_le_bytes([bytes[off + 6], bytes[off + 7]]) & 0x000f
}
