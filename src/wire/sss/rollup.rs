//! The MS-WSUSSS reporting rollup (SS §3.1.4.13–§3.1.4.17, DSS sequence §3.2.4.5):
//! GetRollupConfiguration, RollupDownstreamServers, RollupComputers, GetOutOfSyncComputers and
//! RollupComputerStatus, served at the Reporting web service path
//! (`/ReportingWebService/ReportingWebService.asmx`) in the SoftwareDistribution namespace.
//!
//! Every request carries the fixed cookie (`Expiration` 9999-12-31T23:59:59.9999999, empty
//! `EncryptedData`). Times the spec calls "never" are 1753-01-01T00:00:00 on the wire and
//! `None` here. `ComputerRollupInfo` and `ChangedComputer` carry their fields as attributes,
//! as the WSDL says; the rest are elements in WSDL order.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{read_array, Cookie, NS};
use crate::wire::soap::{Operation, SoapBody};
use crate::wire::values::{
    format_datetime, format_guid, parse_bool, parse_datetime, parse_guid, parse_i32,
};
use crate::wire::xml::{Element, XmlWriter};
use crate::wire::WireError;

/// Path of the Reporting web service (shared with the clients' ReportEventBatch).
pub const REPORTING_PATH: &str = "/ReportingWebService/ReportingWebService.asmx";

/// The batch limits wsus-edge announces as an upstream: Windows' (SS fn 46–49), except
/// [`MAX_ROLLUP_COMPUTER_STATUS`].
pub const MAX_DOWNSTREAM_SERVER_SUMMARIES: i32 = 5000;
/// RollupComputersMaxBatchSize.
pub const MAX_ROLLUP_COMPUTERS: i32 = 1500;
/// GetOutOfSyncComputersMaxBatchSize.
pub const MAX_OUT_OF_SYNC_COMPUTERS: i32 = 20000;
/// RollupComputerStatusMaxBatchSize: Windows announces 500 (SS fn 49); wsus-edge as an
/// upstream announces 50. The spec bounds the computers in a request, not their statuses,
/// and a downstream sends each computer with all its statuses in a full rollup (about 190
/// bytes each): 500 computers of 2,000 updates would be a 190 MB request, 50 of 5,000 are
/// about 48 MB, under `[rollup] max_request_body` (64 MiB).
pub const MAX_ROLLUP_COMPUTER_STATUS: i32 = 50;

/// SOAPActions.
pub mod action {
    /// GetRollupConfiguration.
    pub const GET_ROLLUP_CONFIGURATION: &str =
        "http://www.microsoft.com/SoftwareDistribution/GetRollupConfiguration";
    /// RollupDownstreamServers.
    pub const ROLLUP_DOWNSTREAM_SERVERS: &str =
        "http://www.microsoft.com/SoftwareDistribution/RollupDownstreamServers";
    /// RollupComputers.
    pub const ROLLUP_COMPUTERS: &str =
        "http://www.microsoft.com/SoftwareDistribution/RollupComputers";
    /// GetOutOfSyncComputers.
    pub const GET_OUT_OF_SYNC_COMPUTERS: &str =
        "http://www.microsoft.com/SoftwareDistribution/GetOutOfSyncComputers";
    /// RollupComputerStatus.
    pub const ROLLUP_COMPUTER_STATUS: &str =
        "http://www.microsoft.com/SoftwareDistribution/RollupComputerStatus";

    /// Whether `soap_action` names one of the five rollup operations.
    pub fn is_rollup(soap_action: &str) -> bool {
        [
            GET_ROLLUP_CONFIGURATION,
            ROLLUP_DOWNSTREAM_SERVERS,
            ROLLUP_COMPUTERS,
            GET_OUT_OF_SYNC_COMPUTERS,
            ROLLUP_COMPUTER_STATUS,
        ]
        .contains(&soap_action)
    }
}

/// The cookie every rollup request carries (SS §3.2.4.5 step 1).
pub fn fixed_cookie() -> Cookie {
    Cookie {
        expiration: time::macros::datetime!(9999-12-31 23:59:59.9999999 UTC),
        encrypted_data: Some(Vec::new()),
    }
}

const NEVER: OffsetDateTime = time::macros::datetime!(1753-01-01 00:00:00 UTC);

fn fmt_time(t: Option<OffsetDateTime>) -> String {
    format_datetime(t.unwrap_or(NEVER))
}

/// A date of this wire where one before 1754 means "never" (`None`).
pub(super) fn parse_time(
    field: &'static str,
    s: &str,
) -> Result<Option<OffsetDateTime>, WireError> {
    let t = parse_datetime(field, s)?;
    Ok((t.year() > 1753).then_some(t))
}

fn req_time(el: &Element, name: &'static str) -> Result<Option<OffsetDateTime>, WireError> {
    parse_time(name, &el.req_text(name)?)
}

fn attr_time(el: &Element, name: &'static str) -> Result<Option<OffsetDateTime>, WireError> {
    match el.attr(name) {
        Some(v) => parse_time(name, v),
        None => Err(missing(name)),
    }
}

fn attr_i32(el: &Element, name: &'static str) -> Result<i32, WireError> {
    parse_i32(name, el.attr(name).ok_or_else(|| missing(name))?)
}

fn missing(name: &str) -> WireError {
    WireError::Missing {
        parent: "attribute".into(),
        name: name.into(),
    }
}

fn read_cookie(el: &Element) -> Result<Option<Cookie>, WireError> {
    el.child("cookie").map(Cookie::read).transpose()
}

/// `GetRollupConfiguration` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetRollupConfiguration {
    /// The fixed cookie.
    pub cookie: Option<Cookie>,
}

impl SoapBody for GetRollupConfiguration {
    const NAME: &'static str = "GetRollupConfiguration";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        if let Some(c) = &self.cookie {
            c.write(w, "cookie");
        }
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: read_cookie(el)?,
        })
    }
}

impl Operation for GetRollupConfiguration {
    const ACTION: &'static str = action::GET_ROLLUP_CONFIGURATION;
    type Response = GetRollupConfigurationResponse;
}

/// `RollupConfiguration` (SS §3.1.4.13.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupConfiguration {
    /// `DoDetailedRollup`: computers and their status wanted.
    pub do_detailed_rollup: bool,
    /// `RollupResetGuid`: when it changes the DSS rolls everything up again.
    pub rollup_reset_guid: Uuid,
    /// `ServerId` of the USS.
    pub server_id: Uuid,
    /// `RollupDownstreamServersMaxBatchSize`.
    pub downstream_servers_max: i32,
    /// `RollupComputersMaxBatchSize`.
    pub computers_max: i32,
    /// `GetOutOfSyncComputersMaxBatchSize`.
    pub out_of_sync_max: i32,
    /// `RollupComputerStatusMaxBatchSize`.
    pub computer_status_max: i32,
}

/// `GetRollupConfigurationResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetRollupConfigurationResponse {
    /// `GetRollupConfigurationResult`.
    pub config: RollupConfiguration,
}

impl SoapBody for GetRollupConfigurationResponse {
    const NAME: &'static str = "GetRollupConfigurationResponse";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        let c = &self.config;
        w.start("GetRollupConfigurationResult");
        w.leaf(
            "DoDetailedRollup",
            if c.do_detailed_rollup {
                "true"
            } else {
                "false"
            },
        );
        w.leaf("RollupResetGuid", &format_guid(&c.rollup_reset_guid));
        w.leaf("ServerId", &format_guid(&c.server_id));
        w.leaf_int(
            "RollupDownstreamServersMaxBatchSize",
            c.downstream_servers_max.into(),
        );
        w.leaf_int("RollupComputersMaxBatchSize", c.computers_max.into());
        w.leaf_int(
            "GetOutOfSyncComputersMaxBatchSize",
            c.out_of_sync_max.into(),
        );
        w.leaf_int(
            "RollupComputerStatusMaxBatchSize",
            c.computer_status_max.into(),
        );
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        let r = el.req("GetRollupConfigurationResult")?;
        let int = |n: &'static str| -> Result<i32, WireError> { parse_i32(n, &r.req_text(n)?) };
        Ok(Self {
            config: RollupConfiguration {
                do_detailed_rollup: parse_bool(
                    "DoDetailedRollup",
                    &r.req_text("DoDetailedRollup")?,
                )?,
                rollup_reset_guid: parse_guid("RollupResetGuid", &r.req_text("RollupResetGuid")?)?,
                server_id: parse_guid("ServerId", &r.req_text("ServerId")?)?,
                downstream_servers_max: int("RollupDownstreamServersMaxBatchSize")?,
                computers_max: int("RollupComputersMaxBatchSize")?,
                out_of_sync_max: int("GetOutOfSyncComputersMaxBatchSize")?,
                computer_status_max: int("RollupComputerStatusMaxBatchSize")?,
            },
        })
    }
}

/// The `DownstreamServerRollupServerSummary` fields, in WSDL order (SS §3.1.4.14.3.3).
pub const SERVER_SUMMARY_FIELDS: [&str; 18] = [
    "UpdateCount",
    "DeclinedUpdateCount",
    "ApprovedUpdateCount",
    "NotApprovedUpdateCount",
    "UpdatesWithStaleUpdateApprovalsCount",
    "ExpiredUpdateCount",
    "CriticalOrSecurityUpdatesNotApprovedForInstallCount",
    "WsusInfrastructureUpdatesNotApprovedForInstallCount",
    "UpdatesWithClientErrorsCount",
    "UpdatesWithServerErrorsCount",
    "UpdatesNeedingFilesCount",
    "UpdatesNeededByComputersCount",
    "UpdatesUpToDateCount",
    "CustomComputerTargetGroupCount",
    "ComputerTargetCount",
    "ComputerTargetsNeedingUpdatesCount",
    "ComputerTargetsWithUpdateErrorsCount",
    "ComputersUpToDateCount",
];

/// `DownstreamServerRollupInfo` (SS §3.1.4.14.3.2). Client summaries are counted, not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownstreamServerRollupInfo {
    /// `ServerId`.
    pub server_id: Uuid,
    /// `FullDomainName`.
    pub full_domain_name: String,
    /// `LastSyncTime`.
    pub last_sync_time: Option<OffsetDateTime>,
    /// `ParentServerId` (all-zero = the receiving USS).
    pub parent_server_id: Uuid,
    /// `Version`.
    pub version: String,
    /// `IsReplica`.
    pub is_replica: bool,
    /// `LastRollupTime`.
    pub last_rollup_time: Option<OffsetDateTime>,
    /// `ServerSummary`, in [`SERVER_SUMMARY_FIELDS`] order.
    pub summary: [i32; 18],
    /// How many `DownstreamServerRollupClientSummary` it carries (wsus-edge sends none).
    pub client_summaries: usize,
}

/// `RollupDownstreamServers` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupDownstreamServers {
    /// The fixed cookie.
    pub cookie: Option<Cookie>,
    /// `clientTime`.
    pub client_time: OffsetDateTime,
    /// `downstreamServers`, parents before children.
    pub servers: Vec<DownstreamServerRollupInfo>,
}

impl SoapBody for RollupDownstreamServers {
    const NAME: &'static str = "RollupDownstreamServers";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        write_cookie_and_time(w, self.cookie.as_ref(), self.client_time);
        w.start("downstreamServers");
        for s in &self.servers {
            w.start("DownstreamServerRollupInfo");
            w.leaf("ServerId", &format_guid(&s.server_id));
            w.leaf("FullDomainName", &s.full_domain_name);
            w.leaf("LastSyncTime", &fmt_time(s.last_sync_time));
            w.leaf("ParentServerId", &format_guid(&s.parent_server_id));
            w.leaf("Version", &s.version);
            w.leaf("IsReplica", if s.is_replica { "true" } else { "false" });
            w.leaf("LastRollupTime", &fmt_time(s.last_rollup_time));
            w.start("ServerSummary");
            for (n, v) in SERVER_SUMMARY_FIELDS.iter().zip(s.summary) {
                w.leaf_int(n, v.into());
            }
            w.end();
            w.empty("ClientSummaries");
            w.end();
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: read_cookie(el)?,
            client_time: parse_datetime("clientTime", &el.req_text("clientTime")?)?,
            servers: read_array(el, "downstreamServers", "DownstreamServerRollupInfo", |s| {
                let mut summary = [0i32; 18];
                if let Some(sum) = s.child("ServerSummary") {
                    for (i, n) in SERVER_SUMMARY_FIELDS.iter().enumerate() {
                        if let Some(t) = sum.child_text(n) {
                            summary[i] = parse_i32("ServerSummary", &t)?;
                        }
                    }
                }
                Ok(DownstreamServerRollupInfo {
                    server_id: parse_guid("ServerId", &s.req_text("ServerId")?)?,
                    full_domain_name: s.child_text("FullDomainName").unwrap_or_default(),
                    last_sync_time: req_time(s, "LastSyncTime")?,
                    parent_server_id: parse_guid("ParentServerId", &s.req_text("ParentServerId")?)?,
                    version: s.child_text("Version").unwrap_or_default(),
                    is_replica: parse_bool("IsReplica", &s.req_text("IsReplica")?)?,
                    last_rollup_time: req_time(s, "LastRollupTime")?,
                    summary,
                    client_summaries: s
                        .child("ClientSummaries")
                        .map(|c| {
                            c.children_named("DownstreamServerRollupClientSummary")
                                .count()
                        })
                        .unwrap_or(0),
                })
            })?,
        })
    }
}

impl Operation for RollupDownstreamServers {
    const ACTION: &'static str = action::ROLLUP_DOWNSTREAM_SERVERS;
    type Response = RollupDownstreamServersResponse;
}

/// `RollupDownstreamServersResponse` (no fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupDownstreamServersResponse;

impl SoapBody for RollupDownstreamServersResponse {
    const NAME: &'static str = "RollupDownstreamServersResponse";
    const NS: &'static str = NS;
    fn write_children(&self, _w: &mut XmlWriter) {}
    fn read(_el: &Element) -> Result<Self, WireError> {
        Ok(Self)
    }
}

/// `ComputerRollupDetails` (SS §3.1.4.15.3.3): what wsus-edge knows of a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComputerRollupDetails {
    /// `TargetGroupIdList`.
    pub target_group_ids: Vec<Uuid>,
    /// `RequestedTargetGroupNames`.
    pub requested_target_group_names: Vec<String>,
    /// `FullDomainName`.
    pub full_domain_name: String,
    /// `OSMajorVersion`, `OSMinorVersion`, `OSBuildNumber`.
    pub os_version: [i32; 3],
    /// `OSDescription`.
    pub os_description: String,
    /// `ClientVersion`.
    pub client_version: String,
}

/// `ComputerRollupInfo` (SS §3.1.4.15.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputerRollupInfo {
    /// `ComputerId`.
    pub computer_id: String,
    /// `LastSyncTime`.
    pub last_sync_time: Option<OffsetDateTime>,
    /// `LastSyncResult` (0 unknown, 1 succeeded, 2 failed).
    pub last_sync_result: i32,
    /// `LastReportedStatusTime`.
    pub last_reported_status_time: Option<OffsetDateTime>,
    /// `ParentServerId`: the server the computer gets updates from.
    pub parent_server_id: Uuid,
    /// `Details` (first report about the computer, or after `NewParent`).
    pub details: Option<ComputerRollupDetails>,
}

/// `RollupComputers` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupComputers {
    /// The fixed cookie.
    pub cookie: Option<Cookie>,
    /// `clientTime`.
    pub client_time: OffsetDateTime,
    /// `computers`.
    pub computers: Vec<ComputerRollupInfo>,
}

impl SoapBody for RollupComputers {
    const NAME: &'static str = "RollupComputers";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        write_cookie_and_time(w, self.cookie.as_ref(), self.client_time);
        w.start("computers");
        for c in &self.computers {
            w.start("ComputerRollupInfo")
                .attr("ComputerId", &c.computer_id)
                .attr("LastSyncTime", &fmt_time(c.last_sync_time))
                .attr("LastSyncResult", &c.last_sync_result.to_string())
                .attr("LastReportedRebootTime", &fmt_time(None))
                .attr(
                    "LastReportedStatusTime",
                    &fmt_time(c.last_reported_status_time),
                )
                .attr("LastInventoryTime", &fmt_time(None))
                .attr("ParentServerId", &format_guid(&c.parent_server_id));
            if let Some(d) = &c.details {
                w.start("Details")
                    .attr("IPAddress", "")
                    .attr("FullDomainName", &d.full_domain_name)
                    .attr("OSMajorVersion", &d.os_version[0].to_string())
                    .attr("OSMinorVersion", &d.os_version[1].to_string())
                    .attr("OSBuildNumber", &d.os_version[2].to_string())
                    .attr("OSServicePackMajorNumber", "0")
                    .attr("OSServicePackMinorNumber", "0")
                    .attr("OSLocale", "")
                    .attr("OSFamily", "Windows")
                    .attr("OSDescription", &d.os_description)
                    .attr("ComputerMake", "")
                    .attr("ComputerModel", "")
                    .attr("BiosVersion", "")
                    .attr("BiosName", "")
                    .attr("BiosReleaseDate", &fmt_time(None))
                    .attr("ProcessorArchitecture", "")
                    .attr("SuiteMask", "0")
                    .attr("OldProductType", "0")
                    .attr("NewProductType", "0")
                    .attr("SystemMetrics", "0")
                    .attr("ClientVersion", &d.client_version);
                w.start("TargetGroupIdList");
                for g in &d.target_group_ids {
                    w.leaf("guid", &format_guid(g));
                }
                w.end();
                w.start("RequestedTargetGroupNames");
                for n in &d.requested_target_group_names {
                    w.leaf("string", n);
                }
                w.end();
                w.end();
            }
            w.end();
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: read_cookie(el)?,
            client_time: parse_datetime("clientTime", &el.req_text("clientTime")?)?,
            computers: read_array(el, "computers", "ComputerRollupInfo", |c| {
                let details = match c.child("Details") {
                    None => None,
                    Some(d) => {
                        let num =
                            |n: &'static str| d.attr(n).and_then(|v| v.parse().ok()).unwrap_or(0);
                        Some(ComputerRollupDetails {
                            target_group_ids: read_array(d, "TargetGroupIdList", "guid", |g| {
                                parse_guid("guid", &g.text_ref())
                            })?,
                            requested_target_group_names: read_array(
                                d,
                                "RequestedTargetGroupNames",
                                "string",
                                |s| Ok(s.text()),
                            )?,
                            full_domain_name: d
                                .attr("FullDomainName")
                                .unwrap_or_default()
                                .to_string(),
                            os_version: [
                                num("OSMajorVersion"),
                                num("OSMinorVersion"),
                                num("OSBuildNumber"),
                            ],
                            os_description: d.attr("OSDescription").unwrap_or_default().to_string(),
                            client_version: d.attr("ClientVersion").unwrap_or_default().to_string(),
                        })
                    }
                };
                Ok(ComputerRollupInfo {
                    computer_id: c
                        .attr("ComputerId")
                        .ok_or_else(|| missing("ComputerId"))?
                        .to_string(),
                    last_sync_time: attr_time(c, "LastSyncTime")?,
                    last_sync_result: attr_i32(c, "LastSyncResult")?,
                    last_reported_status_time: attr_time(c, "LastReportedStatusTime")?,
                    parent_server_id: parse_guid(
                        "ParentServerId",
                        c.attr("ParentServerId")
                            .ok_or_else(|| missing("ParentServerId"))?,
                    )?,
                    details,
                })
            })?,
        })
    }
}

impl Operation for RollupComputers {
    const ACTION: &'static str = action::ROLLUP_COMPUTERS;
    type Response = RollupComputersResponse;
}

/// `ComputerChangeType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputerChange {
    /// `Deleted`: the USS wants nothing more about the computer.
    Deleted,
    /// `NewParent`: send its `Details` next time.
    NewParent,
}

/// `RollupComputersResponse`: `ChangedComputer` items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupComputersResponse {
    /// (`ComputerId`, `Change`).
    pub changed: Vec<(String, ComputerChange)>,
}

impl SoapBody for RollupComputersResponse {
    const NAME: &'static str = "RollupComputersResponse";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("RollupComputersResult");
        for (id, c) in &self.changed {
            w.start("ChangedComputer").attr("ComputerId", id).attr(
                "Change",
                match c {
                    ComputerChange::Deleted => "Deleted",
                    ComputerChange::NewParent => "NewParent",
                },
            );
            w.end();
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            changed: read_array(el, "RollupComputersResult", "ChangedComputer", |c| {
                let id = c.attr("ComputerId").unwrap_or_default().to_string();
                let change = match c.attr("Change") {
                    Some("Deleted") => ComputerChange::Deleted,
                    Some("NewParent") => ComputerChange::NewParent,
                    other => return Err(WireError::bad("Change", other.unwrap_or(""))),
                };
                Ok((id, change))
            })?,
        })
    }
}

/// `GetOutOfSyncComputers` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOutOfSyncComputers {
    /// The fixed cookie.
    pub cookie: Option<Cookie>,
    /// `parentServerId`: the calling DSS.
    pub parent_server_id: Uuid,
    /// `lastRollupNumbers`: (`ComputerId`, `RollupNumber`).
    pub last_rollup_numbers: Vec<(String, i32)>,
}

impl SoapBody for GetOutOfSyncComputers {
    const NAME: &'static str = "GetOutOfSyncComputers";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        if let Some(c) = &self.cookie {
            c.write(w, "cookie");
        }
        w.leaf("parentServerId", &format_guid(&self.parent_server_id));
        w.start("lastRollupNumbers");
        for (id, n) in &self.last_rollup_numbers {
            w.start("ComputerLastRollupNumber");
            w.leaf("ComputerId", id);
            w.leaf_int("RollupNumber", (*n).into());
            w.end();
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: read_cookie(el)?,
            parent_server_id: parse_guid("parentServerId", &el.req_text("parentServerId")?)?,
            last_rollup_numbers: read_array(
                el,
                "lastRollupNumbers",
                "ComputerLastRollupNumber",
                |c| {
                    Ok((
                        c.child_text("ComputerId").unwrap_or_default(),
                        parse_i32("RollupNumber", &c.req_text("RollupNumber")?)?,
                    ))
                },
            )?,
        })
    }
}

impl Operation for GetOutOfSyncComputers {
    const ACTION: &'static str = action::GET_OUT_OF_SYNC_COMPUTERS;
    type Response = GetOutOfSyncComputersResponse;
}

/// `GetOutOfSyncComputersResponse`: computers to roll up in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOutOfSyncComputersResponse {
    /// `GetOutOfSyncComputersResult` strings.
    pub computer_ids: Vec<String>,
}

impl SoapBody for GetOutOfSyncComputersResponse {
    const NAME: &'static str = "GetOutOfSyncComputersResponse";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("GetOutOfSyncComputersResult");
        for id in &self.computer_ids {
            w.leaf("string", id);
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            computer_ids: read_array(
                el,
                "GetOutOfSyncComputersResult",
                "string",
                |s| Ok(s.text()),
            )?,
        })
    }
}

/// `ComputerStatusRollupUpdateStatus`: (`UpdateId`, `SummarizationState`, `LastChangeTime`).
pub type UpdateStatusItem = (Uuid, i32, OffsetDateTime);

/// `ComputerStatusRollupInfo` (SS §3.1.4.17.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComputerStatusRollupInfo {
    /// `InstanceId` (a new GUID each time).
    pub instance_id: Uuid,
    /// `ComputerId`.
    pub computer_id: String,
    /// `EffectiveLastDetectionTime`.
    pub effective_last_detection_time: Option<OffsetDateTime>,
    /// `RollupNumber` (previous + 1; 1 the first time).
    pub rollup_number: i32,
    /// `IsFullRollup`: the statuses replace all the USS has.
    pub is_full_rollup: bool,
    /// `UpdateStatus`.
    pub update_status: Vec<UpdateStatusItem>,
}

/// `RollupComputerStatus` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupComputerStatus {
    /// The fixed cookie.
    pub cookie: Option<Cookie>,
    /// `clientTime`.
    pub client_time: OffsetDateTime,
    /// `parentServerId`: the calling DSS.
    pub parent_server_id: Uuid,
    /// `computers`.
    pub computers: Vec<ComputerStatusRollupInfo>,
}

impl SoapBody for RollupComputerStatus {
    const NAME: &'static str = "RollupComputerStatus";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        write_cookie_and_time(w, self.cookie.as_ref(), self.client_time);
        w.leaf("parentServerId", &format_guid(&self.parent_server_id));
        w.start("computers");
        for c in &self.computers {
            w.start("ComputerStatusRollupInfo");
            w.leaf("InstanceId", &format_guid(&c.instance_id));
            w.leaf("ComputerId", &c.computer_id);
            w.leaf(
                "EffectiveLastDetectionTime",
                &fmt_time(c.effective_last_detection_time),
            );
            w.leaf_int("RollupNumber", c.rollup_number.into());
            w.leaf(
                "IsFullRollup",
                if c.is_full_rollup { "true" } else { "false" },
            );
            w.start("UpdateStatus");
            for (u, s, t) in &c.update_status {
                w.start("ComputerStatusRollupUpdateStatus");
                w.leaf("UpdateId", &format_guid(u));
                w.leaf_int("SummarizationState", (*s).into());
                w.leaf("LastChangeTime", &format_datetime(*t));
                w.end();
            }
            w.end();
            w.end();
        }
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: read_cookie(el)?,
            client_time: parse_datetime("clientTime", &el.req_text("clientTime")?)?,
            parent_server_id: parse_guid("parentServerId", &el.req_text("parentServerId")?)?,
            computers: read_array(el, "computers", "ComputerStatusRollupInfo", |c| {
                Ok(ComputerStatusRollupInfo {
                    instance_id: parse_guid("InstanceId", &c.req_text("InstanceId")?)?,
                    computer_id: c.child_text("ComputerId").unwrap_or_default(),
                    effective_last_detection_time: req_time(c, "EffectiveLastDetectionTime")?,
                    rollup_number: parse_i32("RollupNumber", &c.req_text("RollupNumber")?)?,
                    is_full_rollup: parse_bool("IsFullRollup", &c.req_text("IsFullRollup")?)?,
                    update_status: read_array(
                        c,
                        "UpdateStatus",
                        "ComputerStatusRollupUpdateStatus",
                        |s| {
                            Ok((
                                parse_guid("UpdateId", &s.req_text("UpdateId")?)?,
                                parse_i32(
                                    "SummarizationState",
                                    &s.req_text("SummarizationState")?,
                                )?,
                                parse_datetime("LastChangeTime", &s.req_text("LastChangeTime")?)?,
                            ))
                        },
                    )?,
                })
            })?,
        })
    }
}

impl Operation for RollupComputerStatus {
    const ACTION: &'static str = action::ROLLUP_COMPUTER_STATUS;
    type Response = RollupComputerStatusResponse;
}

/// `RollupComputerStatusResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupComputerStatusResponse {
    /// `RollupComputerStatusResult`: false = the USS is busy, resend after a minute.
    pub result: bool,
}

impl SoapBody for RollupComputerStatusResponse {
    const NAME: &'static str = "RollupComputerStatusResponse";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.leaf(
            "RollupComputerStatusResult",
            if self.result { "true" } else { "false" },
        );
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            result: parse_bool(
                "RollupComputerStatusResult",
                &el.req_text("RollupComputerStatusResult")?,
            )?,
        })
    }
}

/// The opening every rollup upload shares: the fixed cookie when there is one, then
/// `clientTime`.
fn write_cookie_and_time(w: &mut XmlWriter, cookie: Option<&Cookie>, client_time: OffsetDateTime) {
    if let Some(c) = cookie {
        c.write(w, "cookie");
    }
    w.leaf("clientTime", &format_datetime(client_time));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::sss::round_trip;
    use crate::wire::xml::{parse_document, Limits};

    #[test]
    fn shapes_follow_the_wsdl() {
        let req = RollupComputers {
            cookie: Some(fixed_cookie()),
            client_time: time::macros::datetime!(2026-12-04 10:00:00 UTC),
            computers: vec![ComputerRollupInfo {
                computer_id: "c0ffee".into(),
                last_sync_time: None,
                last_sync_result: 1,
                last_reported_status_time: Some(time::macros::datetime!(2026-12-04 09:00:00 UTC)),
                parent_server_id: Uuid::from_u128(7),
                details: Some(ComputerRollupDetails {
                    target_group_ids: vec![Uuid::from_u128(9)],
                    requested_target_group_names: vec!["Pilot".into()],
                    full_domain_name: "pc1.branch".into(),
                    os_version: [10, 0, 26100],
                    os_description: "10.0.26100".into(),
                    client_version: "10.0.26100.1".into(),
                }),
            }],
        };
        let back = round_trip(&req);
        let xml = crate::wire::soap::encode(&back);
        // SS §3.2.4.5: the fixed cookie; "never" is 1753-01-01; attributes on ComputerRollupInfo.
        assert!(
            xml.contains("<Expiration>9999-12-31T23:59:59.9999999Z</Expiration><EncryptedData"),
            "{xml}"
        );
        assert!(
            xml.contains("LastSyncTime=\"1753-01-01T00:00:00Z\""),
            "{xml}"
        );
        assert!(
            xml.contains("ParentServerId=\"00000000-0000-0000-0000-000000000007\""),
            "{xml}"
        );
        let body = parse_document(&xml, &Limits::default()).unwrap();
        let body = body.elements().next().unwrap().elements().next().unwrap();
        assert_eq!(
            body.name.as_str().rsplit(':').next(),
            Some("RollupComputers")
        );
        let names: Vec<String> = body
            .elements()
            .map(|e| e.name.as_str().to_string())
            .collect();
        assert_eq!(names, ["cookie", "clientTime", "computers"]);

        let status = RollupComputerStatus {
            cookie: Some(fixed_cookie()),
            client_time: time::macros::datetime!(2026-12-04 10:00:00 UTC),
            parent_server_id: Uuid::from_u128(7),
            computers: vec![ComputerStatusRollupInfo {
                instance_id: Uuid::from_u128(1),
                computer_id: "c0ffee".into(),
                effective_last_detection_time: None,
                rollup_number: 1,
                is_full_rollup: true,
                update_status: vec![(
                    Uuid::from_u128(3),
                    5,
                    time::macros::datetime!(2026-12-01 00:00:00 UTC),
                )],
            }],
        };
        round_trip(&status);
        let xml = crate::wire::soap::encode(&status);
        assert!(xml.contains("<ComputerStatusRollupInfo><InstanceId>00000000-0000-0000-0000-000000000001</InstanceId><ComputerId>c0ffee</ComputerId><EffectiveLastDetectionTime>1753-01-01T00:00:00Z</EffectiveLastDetectionTime><RollupNumber>1</RollupNumber><IsFullRollup>true</IsFullRollup><UpdateStatus><ComputerStatusRollupUpdateStatus><UpdateId>00000000-0000-0000-0000-000000000003</UpdateId><SummarizationState>5</SummarizationState>"), "{xml}");
        round_trip(&GetOutOfSyncComputers {
            cookie: Some(fixed_cookie()),
            parent_server_id: Uuid::from_u128(7),
            last_rollup_numbers: vec![("a".into(), 0), ("b".into(), 3)],
        });
        round_trip(&GetOutOfSyncComputersResponse {
            computer_ids: vec!["b".into()],
        });
        round_trip(&RollupComputersResponse {
            changed: vec![
                ("a".into(), ComputerChange::NewParent),
                ("b".into(), ComputerChange::Deleted),
            ],
        });
        round_trip(&RollupComputerStatusResponse { result: false });
        let cfg = GetRollupConfigurationResponse {
            config: RollupConfiguration {
                do_detailed_rollup: true,
                rollup_reset_guid: Uuid::from_u128(5),
                server_id: Uuid::from_u128(6),
                downstream_servers_max: MAX_DOWNSTREAM_SERVER_SUMMARIES,
                computers_max: MAX_ROLLUP_COMPUTERS,
                out_of_sync_max: MAX_OUT_OF_SYNC_COMPUTERS,
                computer_status_max: MAX_ROLLUP_COMPUTER_STATUS,
            },
        };
        round_trip(&cfg);
        let xml = crate::wire::soap::encode(&cfg);
        assert!(xml.contains("<GetRollupConfigurationResult><DoDetailedRollup>true</DoDetailedRollup><RollupResetGuid>00000000-0000-0000-0000-000000000005</RollupResetGuid><ServerId>00000000-0000-0000-0000-000000000006</ServerId><RollupDownstreamServersMaxBatchSize>5000</RollupDownstreamServersMaxBatchSize><RollupComputersMaxBatchSize>1500</RollupComputersMaxBatchSize><GetOutOfSyncComputersMaxBatchSize>20000</GetOutOfSyncComputersMaxBatchSize><RollupComputerStatusMaxBatchSize>50</RollupComputerStatusMaxBatchSize></GetRollupConfigurationResult>"), "{xml}");
        round_trip(&RollupDownstreamServers {
            cookie: Some(fixed_cookie()),
            client_time: time::macros::datetime!(2026-12-04 10:00:00 UTC),
            servers: vec![DownstreamServerRollupInfo {
                server_id: Uuid::from_u128(7),
                full_domain_name: "edge.branch".into(),
                last_sync_time: None,
                parent_server_id: Uuid::nil(),
                version: "0.1.0".into(),
                is_replica: true,
                last_rollup_time: Some(time::macros::datetime!(2026-12-04 10:00:00 UTC)),
                summary: [1; 18],
                client_summaries: 0,
            }],
        });
        round_trip(&GetRollupConfiguration {
            cookie: Some(fixed_cookie()),
        });
    }
}
