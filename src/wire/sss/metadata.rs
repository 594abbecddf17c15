//! Metadata discovery: GetConfigData and GetRevisionIdList with its `ServerSyncFilter`
//! (SS §3.1.4.4–5).

use uuid::Uuid;

use super::{
    action, non_empty, read_array, read_identity, read_opt_array, write_array, write_identity,
    Cookie, NS,
};
use crate::model::RevisionKey;
use crate::wire::soap::{Operation, SoapBody};
use crate::wire::values::{format_bool, format_guid, parse_bool, parse_guid, parse_i32};
use crate::wire::xml::{Element, XmlWriter};
use crate::wire::WireError;

/// `GetConfigData` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetConfigData {
    /// `cookie`.
    pub cookie: Cookie,
    /// `configAnchor`: the last `NewConfigAnchor`, absent the first time.
    pub config_anchor: Option<String>,
}

impl SoapBody for GetConfigData {
    const NAME: &'static str = "GetConfigData";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        self.cookie.write(w, "cookie");
        w.opt_leaf("configAnchor", self.config_anchor.as_deref());
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: Cookie::read(el.req("cookie")?)?,
            config_anchor: non_empty(el.child_text("configAnchor")),
        })
    }
}

impl Operation for GetConfigData {
    const ACTION: &'static str = action::GET_CONFIG_DATA;
    type Response = GetConfigDataResponse;
}

/// `ServerSyncLanguageData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageData {
    /// `LanguageID` (LCID; 0 = all languages).
    pub id: i32,
    /// `ShortLanguage` (`en`, `pt-br`, `all`).
    pub short: String,
    /// `LongLanguage`.
    pub long: String,
    /// `Enabled` on the upstream.
    pub enabled: bool,
}

/// `GetConfigDataResponse` / `ServerSyncConfigData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetConfigDataResponse {
    /// `CatalogOnlySync`.
    pub catalog_only_sync: bool,
    /// `LazySync`.
    pub lazy_sync: bool,
    /// `ServerHostsPsfFiles`.
    pub server_hosts_psf_files: bool,
    /// `MaxNumberOfUpdatesPerRequest` (100 on WSUS).
    pub max_updates_per_request: i32,
    /// `MaxNumberOfDriverSetsPerRequest`.
    pub max_driver_sets_per_request: i32,
    /// `MaxNumberOfComputerIdsInRequest`.
    pub max_computer_ids_in_request: i32,
    /// `MaxNumberOfPnpHardwareIdsInRequest`.
    pub max_pnp_hardware_ids_in_request: i32,
    /// `NewConfigAnchor`.
    pub new_config_anchor: Option<String>,
    /// `ProtocolVersion`.
    pub protocol_version: Option<String>,
    /// `LanguageUpdateList` (only changed languages when a config anchor was sent).
    pub languages: Vec<LanguageData>,
    /// `MaxUpdatesPerRequestInGetUpdateDecryptionData`.
    pub max_updates_per_decryption_request: i32,
}

impl SoapBody for GetConfigDataResponse {
    const NAME: &'static str = "GetConfigDataResponse";
    const NS: &'static str = NS;
    /// Writes the fields in the order a WS2025 upstream sends them (the four limits sorted by
    /// name), which differs from the WSDL's sequence.
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("GetConfigDataResult");
        w.leaf("CatalogOnlySync", format_bool(self.catalog_only_sync));
        w.leaf("LazySync", format_bool(self.lazy_sync));
        w.leaf(
            "ServerHostsPsfFiles",
            format_bool(self.server_hosts_psf_files),
        );
        w.leaf(
            "MaxNumberOfComputerIdsInRequest",
            &self.max_computer_ids_in_request.to_string(),
        );
        w.leaf(
            "MaxNumberOfDriverSetsPerRequest",
            &self.max_driver_sets_per_request.to_string(),
        );
        w.leaf(
            "MaxNumberOfPnpHardwareIdsInRequest",
            &self.max_pnp_hardware_ids_in_request.to_string(),
        );
        w.leaf(
            "MaxNumberOfUpdatesPerRequest",
            &self.max_updates_per_request.to_string(),
        );
        w.opt_leaf("NewConfigAnchor", self.new_config_anchor.as_deref());
        w.opt_leaf("ProtocolVersion", self.protocol_version.as_deref());
        write_array(w, "LanguageUpdateList", &self.languages, |w, l| {
            w.start("ServerSyncLanguageData");
            w.leaf("LanguageID", &l.id.to_string());
            w.leaf("ShortLanguage", &l.short);
            w.leaf("LongLanguage", &l.long);
            w.leaf("Enabled", format_bool(l.enabled));
            w.end();
        });
        w.leaf(
            "MaxUpdatesPerRequestInGetUpdateDecryptionData",
            &self.max_updates_per_decryption_request.to_string(),
        );
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        let r = el.req("GetConfigDataResult")?;
        let b = |n: &'static str| -> Result<bool, WireError> { parse_bool(n, &r.req_text(n)?) };
        let i = |n: &'static str| -> Result<i32, WireError> {
            r.child_text(n).map_or(Ok(0), |t| parse_i32(n, &t))
        };
        Ok(Self {
            catalog_only_sync: b("CatalogOnlySync")?,
            lazy_sync: b("LazySync")?,
            server_hosts_psf_files: b("ServerHostsPsfFiles")?,
            max_updates_per_request: parse_i32(
                "MaxNumberOfUpdatesPerRequest",
                &r.req_text("MaxNumberOfUpdatesPerRequest")?,
            )?,
            max_driver_sets_per_request: i("MaxNumberOfDriverSetsPerRequest")?,
            max_computer_ids_in_request: i("MaxNumberOfComputerIdsInRequest")?,
            max_pnp_hardware_ids_in_request: i("MaxNumberOfPnpHardwareIdsInRequest")?,
            new_config_anchor: non_empty(r.child_text("NewConfigAnchor")),
            protocol_version: non_empty(r.child_text("ProtocolVersion")),
            languages: read_array(r, "LanguageUpdateList", "ServerSyncLanguageData", |l| {
                Ok(LanguageData {
                    id: parse_i32("LanguageID", &l.req_text("LanguageID")?)?,
                    short: l.child_text("ShortLanguage").unwrap_or_default(),
                    long: l.child_text("LongLanguage").unwrap_or_default(),
                    enabled: parse_bool("Enabled", &l.req_text("Enabled")?)?,
                })
            })?,
            max_updates_per_decryption_request: i("MaxUpdatesPerRequestInGetUpdateDecryptionData")?,
        })
    }
}

/// `IdAndDelta`: a category or classification in the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdAndDelta {
    /// `Id`.
    pub id: Uuid,
    /// `Delta`: only changes since the anchor (send `true` whenever an anchor is sent).
    pub delta: bool,
}

/// `LanguageAndDelta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LanguageAndDelta {
    /// `Id` (LCID).
    pub id: i32,
    /// `Delta`.
    pub delta: bool,
}

/// `ServerSyncFilter` (SS §3.1.4.5.3.1). `DssProtocolVersion` is never sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerSyncFilter {
    /// `Anchor`: the last `GetRevisionIdList` anchor, absent the first time.
    pub anchor: Option<String>,
    /// `GetConfig`: true for categories/classifications/detectoids, false for updates.
    pub get_config: bool,
    /// `Get63LanguageOnly`.
    pub get_63_language_only: bool,
    /// `Categories` (products); `None` = element absent.
    pub categories: Option<Vec<IdAndDelta>>,
    /// `Classifications`; `None` = element absent.
    pub classifications: Option<Vec<IdAndDelta>>,
    /// `Languages`; `None` = element absent.
    pub languages: Option<Vec<LanguageAndDelta>>,
}

fn write_ids(w: &mut XmlWriter, name: &str, v: &Option<Vec<IdAndDelta>>) {
    if let Some(v) = v {
        write_array(w, name, v, |w, x| {
            w.start("IdAndDelta");
            w.leaf("Id", &format_guid(&x.id));
            w.leaf("Delta", format_bool(x.delta));
            w.end();
        });
    }
}

fn read_ids(el: &Element, name: &str) -> Result<Option<Vec<IdAndDelta>>, WireError> {
    read_opt_array(el, name, "IdAndDelta", |x| {
        Ok(IdAndDelta {
            id: parse_guid("Id", &x.req_text("Id")?)?,
            delta: parse_bool("Delta", &x.req_text("Delta")?)?,
        })
    })
}

impl ServerSyncFilter {
    /// The first pass: categories, classifications and detectoids changed since `anchor`.
    pub fn config(anchor: Option<String>) -> Self {
        Self {
            anchor,
            get_config: true,
            ..Self::default()
        }
    }

    /// The second pass: updates in at least one of `products` and one of `classifications`
    /// (the upstream needs both lists non-empty), in `languages` (LCIDs; none = element
    /// omitted). `Delta` is true exactly when an anchor is sent, so a re-sync gets only changes.
    pub fn updates(
        anchor: Option<String>,
        products: &[Uuid],
        classifications: &[Uuid],
        languages: &[i32],
    ) -> Self {
        let delta = anchor.is_some();
        let ids = |v: &[Uuid]| v.iter().map(|&id| IdAndDelta { id, delta }).collect();
        Self {
            anchor,
            get_config: false,
            get_63_language_only: false,
            categories: Some(ids(products)),
            classifications: Some(ids(classifications)),
            languages: (!languages.is_empty()).then(|| {
                languages
                    .iter()
                    .map(|&id| LanguageAndDelta { id, delta })
                    .collect()
            }),
        }
    }

    fn write(&self, w: &mut XmlWriter) {
        w.start("filter");
        w.opt_leaf("Anchor", self.anchor.as_deref());
        w.leaf("GetConfig", format_bool(self.get_config));
        w.leaf("Get63LanguageOnly", format_bool(self.get_63_language_only));
        write_ids(w, "Categories", &self.categories);
        write_ids(w, "Classifications", &self.classifications);
        if let Some(v) = &self.languages {
            write_array(w, "Languages", v, |w, x| {
                w.start("LanguageAndDelta");
                w.leaf("Id", &x.id.to_string());
                w.leaf("Delta", format_bool(x.delta));
                w.end();
            });
        }
        w.end();
    }

    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            anchor: non_empty(el.child_text("Anchor")),
            get_config: parse_bool("GetConfig", &el.req_text("GetConfig")?)?,
            get_63_language_only: el
                .child_text("Get63LanguageOnly")
                .map_or(Ok(false), |t| parse_bool("Get63LanguageOnly", &t))?,
            categories: read_ids(el, "Categories")?,
            classifications: read_ids(el, "Classifications")?,
            languages: read_opt_array(el, "Languages", "LanguageAndDelta", |x| {
                Ok(LanguageAndDelta {
                    id: parse_i32("Id", &x.req_text("Id")?)?,
                    delta: parse_bool("Delta", &x.req_text("Delta")?)?,
                })
            })?,
        })
    }
}

/// `GetRevisionIdList` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRevisionIdList {
    /// `cookie`.
    pub cookie: Cookie,
    /// `filter`.
    pub filter: ServerSyncFilter,
}

impl SoapBody for GetRevisionIdList {
    const NAME: &'static str = "GetRevisionIdList";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        self.cookie.write(w, "cookie");
        self.filter.write(w);
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: Cookie::read(el.req("cookie")?)?,
            filter: ServerSyncFilter::read(el.req("filter")?)?,
        })
    }
}

impl Operation for GetRevisionIdList {
    const ACTION: &'static str = action::GET_REVISION_ID_LIST;
    type Response = GetRevisionIdListResponse;
}

/// `GetRevisionIdListResponse` / `RevisionIdList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRevisionIdListResponse {
    /// `Anchor`: store as the new sync anchor.
    pub anchor: String,
    /// `NewRevisions`.
    pub new_revisions: Vec<RevisionKey>,
}

impl SoapBody for GetRevisionIdListResponse {
    const NAME: &'static str = "GetRevisionIdListResponse";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("GetRevisionIdListResult");
        w.leaf("Anchor", &self.anchor);
        write_array(w, "NewRevisions", &self.new_revisions, |w, k| {
            write_identity(w, "UpdateIdentity", k)
        });
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        let r = el.req("GetRevisionIdListResult")?;
        Ok(Self {
            anchor: r.child_text("Anchor").unwrap_or_default(),
            new_revisions: read_array(r, "NewRevisions", "UpdateIdentity", read_identity)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{round_trip, test_cookie as cookie};
    use super::*;
    use crate::wire::soap::encode;
    use uuid::uuid;

    #[test]
    fn config_data_round_trips_in_ws2025_order() {
        round_trip(&GetConfigData {
            cookie: cookie(),
            config_anchor: None,
        });
        round_trip(&GetConfigData {
            cookie: cookie(),
            config_anchor: Some("9438,2026-10-04 16:09:27.167".into()),
        });
        let resp = GetConfigDataResponse {
            catalog_only_sync: false,
            lazy_sync: true,
            server_hosts_psf_files: false,
            max_updates_per_request: 100,
            max_driver_sets_per_request: 0,
            max_computer_ids_in_request: 0,
            max_pnp_hardware_ids_in_request: 0,
            new_config_anchor: Some("9438,2026-10-04 16:33:26.668".into()),
            protocol_version: Some("1.20".into()),
            languages: vec![],
            max_updates_per_decryption_request: 100,
        };
        round_trip(&resp);
        let s = encode(&resp);
        assert!(s.contains("<GetConfigDataResult><CatalogOnlySync>false</CatalogOnlySync><LazySync>true</LazySync><ServerHostsPsfFiles>false</ServerHostsPsfFiles><MaxNumberOfComputerIdsInRequest>0</MaxNumberOfComputerIdsInRequest><MaxNumberOfDriverSetsPerRequest>0</MaxNumberOfDriverSetsPerRequest><MaxNumberOfPnpHardwareIdsInRequest>0</MaxNumberOfPnpHardwareIdsInRequest><MaxNumberOfUpdatesPerRequest>100</MaxNumberOfUpdatesPerRequest><NewConfigAnchor>9438,2026-10-04 16:33:26.668</NewConfigAnchor><ProtocolVersion>1.20</ProtocolVersion><LanguageUpdateList /><MaxUpdatesPerRequestInGetUpdateDecryptionData>100</MaxUpdatesPerRequestInGetUpdateDecryptionData></GetConfigDataResult>"));
    }

    #[test]
    fn filter_constructors_set_delta_with_the_anchor() {
        let p = uuid!("8c3fcc84-7410-4a95-8b89-a166a0190486");
        let f = ServerSyncFilter::updates(None, &[p], &[p], &[]);
        assert!(!f.get_config && f.languages.is_none());
        assert!(!f.categories.as_ref().unwrap()[0].delta);
        let f = ServerSyncFilter::updates(
            Some("1,2026-10-04 16:33:26.668".into()),
            &[p],
            &[p],
            &[1033],
        );
        assert!(f.categories.as_ref().unwrap()[0].delta);
        assert!(f.classifications.as_ref().unwrap()[0].delta);
        assert_eq!(
            f.languages.as_ref().unwrap()[0],
            LanguageAndDelta {
                id: 1033,
                delta: true
            }
        );
        let c = ServerSyncFilter::config(None);
        assert!(c.get_config && c.categories.is_none() && c.anchor.is_none());
    }

    #[test]
    fn revision_list_round_trips() {
        let req = GetRevisionIdList {
            cookie: cookie(),
            filter: ServerSyncFilter {
                anchor: Some("9438,2026-10-04 16:33:26.668".into()),
                get_config: false,
                get_63_language_only: false,
                categories: Some(vec![IdAndDelta {
                    id: uuid!("8c3fcc84-7410-4a95-8b89-a166a0190486"),
                    delta: true,
                }]),
                classifications: Some(vec![IdAndDelta {
                    id: uuid!("e0789628-ce08-4437-be74-2495b842f43b"),
                    delta: true,
                }]),
                languages: Some(vec![LanguageAndDelta {
                    id: 1033,
                    delta: true,
                }]),
            },
        };
        round_trip(&req);
        let s = encode(&req);
        assert!(s.contains("<filter><Anchor>9438,2026-10-04 16:33:26.668</Anchor><GetConfig>false</GetConfig><Get63LanguageOnly>false</Get63LanguageOnly><Categories><IdAndDelta><Id>8c3fcc84-7410-4a95-8b89-a166a0190486</Id><Delta>true</Delta></IdAndDelta></Categories><Classifications>"));
        round_trip(&GetRevisionIdList {
            cookie: cookie(),
            filter: ServerSyncFilter {
                get_config: true,
                ..Default::default()
            },
        });
        let empty = GetRevisionIdListResponse {
            anchor: "1,2026-10-04 16:33:26.848".into(),
            new_revisions: vec![],
        };
        round_trip(&empty);
        assert!(encode(&empty).contains("<NewRevisions /></GetRevisionIdListResult>"));
        round_trip(&GetRevisionIdListResponse {
            anchor: "1,2026-10-04 16:33:26.848".into(),
            new_revisions: vec![RevisionKey::new(
                uuid!("E6CF1350-C01B-414D-A61F-263D14D133B4"),
                100,
            )],
        });
    }
}
