//! `StartCategoryScan` (MS-WUSP §3.1.5, ProtocolVersion 3.2) and the driver pass's `SystemSpec`
//! devices (§2.2.2.2.4 `SyncUpdateParameters/SystemSpec`).
//!
//! StartCategoryScan is what a native agent sends, without a cookie, before a category-limited
//! scan (`requestedCategories/CategoryRelationship{IndexOfAndGroup, CategoryId}`); WS2025
//! answered with `preferredCategoryIds/guid` (capture `wsus-m0-native/scan/000005`, kept in
//! `tests/fixtures/wusp/start_category_scan.*`). A `SystemSpec` lists the client's devices, each
//! with `HardwareIDs` and `CompatibleIDs` (most specific first) and the installed driver's
//! `MatchingID`, `DriverVerDate` and `DriverVerVersion` (capture `scan/000009`).

use time::OffsetDateTime;
use uuid::Uuid;

use super::{action, read_strings, write_strings, CLIENT_NS};
use crate::wire::soap::{Operation, SoapBody};
use crate::wire::sss::read_array;
use crate::wire::values::{format_guid, parse_datetime, parse_guid, parse_i32};
use crate::wire::xml::{Element, XmlWriter};
use crate::wire::WireError;

/// One `CategoryRelationship` of a StartCategoryScan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryRelationship {
    /// `IndexOfAndGroup`.
    pub index_of_and_group: i32,
    /// `CategoryId`.
    pub category_id: Uuid,
}

/// `StartCategoryScan` request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartCategoryScan {
    /// `requestedCategories`.
    pub requested: Vec<CategoryRelationship>,
}

impl SoapBody for StartCategoryScan {
    const NAME: &'static str = "StartCategoryScan";
    const NS: &'static str = CLIENT_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("requestedCategories");
        for c in &self.requested {
            w.start("CategoryRelationship");
            w.leaf_int("IndexOfAndGroup", c.index_of_and_group.into());
            w.leaf("CategoryId", &format_guid(&c.category_id));
            w.end();
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            requested: read_array(el, "requestedCategories", "CategoryRelationship", |c| {
                Ok(CategoryRelationship {
                    index_of_and_group: c
                        .child_text("IndexOfAndGroup")
                        .map(|t| parse_i32("IndexOfAndGroup", &t))
                        .transpose()?
                        .unwrap_or(0),
                    category_id: parse_guid("CategoryId", &c.req_text("CategoryId")?)?,
                })
            })?,
        })
    }
}

impl Operation for StartCategoryScan {
    const ACTION: &'static str = action::START_CATEGORY_SCAN;
    type Response = StartCategoryScanResponse;
}

/// `StartCategoryScanResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartCategoryScanResponse {
    /// `preferredCategoryIds`.
    pub preferred: Vec<Uuid>,
}

impl SoapBody for StartCategoryScanResponse {
    const NAME: &'static str = "StartCategoryScanResponse";
    const NS: &'static str = CLIENT_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("preferredCategoryIds");
        for g in &self.preferred {
            w.leaf("guid", &format_guid(g));
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            preferred: read_array(el, "preferredCategoryIds", "guid", |g| {
                parse_guid("guid", &g.text_ref())
            })?,
        })
    }
}

/// One `SystemSpec/Device`: the ids the server matches drivers against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpecDevice {
    /// `HardwareIDs/string`, most specific first.
    pub hardware_ids: Vec<String>,
    /// `CompatibleIDs/string`, most specific first.
    pub compatible_ids: Vec<String>,
    /// The installed driver, when the device has one.
    pub installed: Option<InstalledDriver>,
}

/// `Device/installedDriver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledDriver {
    /// `MatchingID` (absent for a device without a driver).
    pub matching_id: Option<String>,
    /// `DriverVerDate`.
    pub ver_date: Option<OffsetDateTime>,
    /// `DriverVerVersion`: the four 16-bit parts packed high to low.
    pub ver_version: u64,
}

impl SpecDevice {
    pub(crate) fn write(&self, w: &mut XmlWriter) {
        w.start("Device");
        write_strings(w, "HardwareIDs", &self.hardware_ids);
        if !self.compatible_ids.is_empty() {
            write_strings(w, "CompatibleIDs", &self.compatible_ids);
        }
        if let Some(d) = &self.installed {
            w.start("installedDriver");
            w.opt_leaf("MatchingID", d.matching_id.as_deref());
            if let Some(t) = d.ver_date {
                w.leaf("DriverVerDate", &crate::wire::values::format_datetime(t));
            }
            w.leaf("DriverVerVersion", &d.ver_version.to_string());
            w.end();
        }
        w.end();
    }

    pub(crate) fn read(el: &Element) -> Result<Self, WireError> {
        let installed = el.child("installedDriver").map(|d| InstalledDriver {
            matching_id: d.child_text("MatchingID").filter(|s| !s.trim().is_empty()),
            ver_date: d
                .child_text("DriverVerDate")
                .and_then(|t| parse_datetime("DriverVerDate", &t).ok()),
            ver_version: d
                .child_text("DriverVerVersion")
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0),
        });
        Ok(Self {
            hardware_ids: read_strings(el, "HardwareIDs")?,
            compatible_ids: read_strings(el, "CompatibleIDs")?,
            installed,
        })
    }
}
