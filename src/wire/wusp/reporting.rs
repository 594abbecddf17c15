//! Reporting web service `ReportEventBatch` (MS-WUSP §3.1.5.11, namespace
//! `http://www.microsoft.com/SoftwareDistribution`). Only the typed fields below are read; any
//! other child (`PrivateData`, unknown extended data) is ignored.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{action, opt_i32, read_strings, write_strings, Cookie, REPORTING_NS};
use crate::model::RevisionKey;
use crate::wire::soap::{Operation, SoapBody};
use crate::wire::sss::{non_empty, read_array, read_identity, write_identity};
use crate::wire::values::{
    format_bool, format_datetime, format_guid, parse_bool, parse_datetime, parse_guid, parse_i32,
};
use crate::wire::xml::{Element, XmlWriter};
use crate::wire::WireError;

/// One `ReportingEvent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportingEvent {
    /// `BasicData/TargetID/Sid`: the client id.
    pub target_sid: String,
    /// `SequenceNumber`.
    pub sequence_number: i32,
    /// `TimeAtTarget`.
    pub time_at_target: OffsetDateTime,
    /// `EventInstanceID`.
    pub instance_id: Uuid,
    /// `NamespaceID`.
    pub namespace_id: i32,
    /// `EventID`.
    pub event_id: i32,
    /// `SourceID`.
    pub source_id: i32,
    /// `UpdateID` (the zero GUID when none).
    pub update: RevisionKey,
    /// `Win32HResult`.
    pub hresult: i32,
    /// `ExtendedData/ReplacementStrings`.
    pub replacement_strings: Vec<String>,
    /// `ExtendedData/MiscData`.
    pub misc_data: Vec<String>,
    /// `ExtendedData/ComputerBrand`.
    pub computer_brand: Option<String>,
    /// `ExtendedData/ComputerModel`.
    pub computer_model: Option<String>,
    /// `ExtendedData/OSLocaleID`.
    pub os_locale_id: Option<i32>,
}

impl ReportingEvent {
    fn write(&self, w: &mut XmlWriter) {
        w.start("ReportingEvent");
        w.start("BasicData");
        w.start("TargetID");
        w.leaf("Sid", &self.target_sid);
        w.end();
        w.leaf("SequenceNumber", &self.sequence_number.to_string());
        w.leaf("TimeAtTarget", &format_datetime(self.time_at_target));
        w.leaf("EventInstanceID", &format_guid(&self.instance_id));
        w.leaf("NamespaceID", &self.namespace_id.to_string());
        w.leaf("EventID", &self.event_id.to_string());
        w.leaf("SourceID", &self.source_id.to_string());
        write_identity(w, "UpdateID", &self.update);
        w.leaf("Win32HResult", &self.hresult.to_string());
        w.end();
        w.start("ExtendedData");
        if !self.replacement_strings.is_empty() {
            write_strings(w, "ReplacementStrings", &self.replacement_strings);
        }
        write_strings(w, "MiscData", &self.misc_data);
        w.opt_leaf("ComputerBrand", self.computer_brand.as_deref());
        w.opt_leaf("ComputerModel", self.computer_model.as_deref());
        if let Some(l) = self.os_locale_id {
            w.leaf("OSLocaleID", &l.to_string());
        }
        w.end();
        w.empty("PrivateData");
        w.end();
    }

    fn read(el: &Element) -> Result<Self, WireError> {
        let b = el.req("BasicData")?;
        let int = |n: &'static str| -> Result<i32, WireError> { Ok(opt_i32(b, n)?.unwrap_or(0)) };
        let x = el.child("ExtendedData");
        Ok(Self {
            target_sid: b
                .child("TargetID")
                .and_then(|t| t.child_text("Sid"))
                .unwrap_or_default(),
            sequence_number: int("SequenceNumber")?,
            time_at_target: parse_datetime("TimeAtTarget", &b.req_text("TimeAtTarget")?)?,
            instance_id: parse_guid("EventInstanceID", &b.req_text("EventInstanceID")?)?,
            namespace_id: int("NamespaceID")?,
            event_id: parse_i32("EventID", &b.req_text("EventID")?)?,
            source_id: int("SourceID")?,
            update: match b.child("UpdateID") {
                Some(u) => read_identity(u)?,
                None => RevisionKey::new(Uuid::nil(), 0),
            },
            hresult: int("Win32HResult")?,
            replacement_strings: match x {
                Some(x) => read_strings(x, "ReplacementStrings")?,
                None => Vec::new(),
            },
            misc_data: match x {
                Some(x) => read_strings(x, "MiscData")?,
                None => Vec::new(),
            },
            computer_brand: non_empty(x.and_then(|x| x.child_text("ComputerBrand"))),
            computer_model: non_empty(x.and_then(|x| x.child_text("ComputerModel"))),
            os_locale_id: x.map(|x| opt_i32(x, "OSLocaleID")).transpose()?.flatten(),
        })
    }
}

/// `ReportEventBatch` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEventBatch {
    /// `cookie`.
    pub cookie: Cookie,
    /// `clientTime`.
    pub client_time: OffsetDateTime,
    /// `eventBatch`.
    pub events: Vec<ReportingEvent>,
}

impl SoapBody for ReportEventBatch {
    const NAME: &'static str = "ReportEventBatch";
    const NS: &'static str = REPORTING_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        self.cookie.write(w, "cookie");
        w.leaf("clientTime", &format_datetime(self.client_time));
        w.start("eventBatch");
        for e in &self.events {
            e.write(w);
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: Cookie::read(el.req("cookie")?)?,
            client_time: parse_datetime("clientTime", &el.req_text("clientTime")?)?,
            events: read_array(el, "eventBatch", "ReportingEvent", ReportingEvent::read)?,
        })
    }
}

impl Operation for ReportEventBatch {
    const ACTION: &'static str = action::REPORT_EVENT_BATCH;
    type Response = ReportEventBatchResponse;
}

/// `ReportEventBatchResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportEventBatchResponse {
    /// `ReportEventBatchResult`.
    pub result: bool,
}

impl SoapBody for ReportEventBatchResponse {
    const NAME: &'static str = "ReportEventBatchResponse";
    const NS: &'static str = REPORTING_NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.leaf("ReportEventBatchResult", format_bool(self.result));
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            result: parse_bool(
                "ReportEventBatchResult",
                &el.req_text("ReportEventBatchResult")?,
            )?,
        })
    }
}
