//! Replica approvals: GetDeployments (SS §3.1.4.10): all target groups, deployments added or
//! removed between two anchors, and the full lists of hidden (declined) updates and accepted
//! EULAs. Conversions to and from [`crate::model`] live beside the wire types.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{action, non_empty, read_array, read_guids, write_array, write_guids, Cookie, NS};
use crate::model::{ApprovalAction, Deployment, RevisionKey, TargetGroup};
use crate::wire::soap::{Operation, SoapBody};
use crate::wire::values::{
    format_bool, format_datetime, format_deadline, format_guid, parse_bool, parse_datetime,
    parse_deadline, parse_guid, parse_i32, parse_u32,
};
use crate::wire::xml::{Element, XmlWriter};
use crate::wire::WireError;

/// `GetDeployments` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetDeployments {
    /// `cookie`.
    pub cookie: Cookie,
    /// `deploymentAnchor`: the last response's `Anchor`, absent the first time.
    pub deployment_anchor: Option<String>,
    /// `syncAnchor`: the last `GetRevisionIdList` anchor (required).
    pub sync_anchor: String,
}

impl SoapBody for GetDeployments {
    const NAME: &'static str = "GetDeployments";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        self.cookie.write(w, "cookie");
        w.opt_leaf("deploymentAnchor", self.deployment_anchor.as_deref());
        w.leaf("syncAnchor", &self.sync_anchor);
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        Ok(Self {
            cookie: Cookie::read(el.req("cookie")?)?,
            deployment_anchor: non_empty(el.child_text("deploymentAnchor")),
            sync_anchor: el.child_text("syncAnchor").unwrap_or_default(),
        })
    }
}

impl Operation for GetDeployments {
    const ACTION: &'static str = action::GET_DEPLOYMENTS;
    type Response = GetDeploymentsResponse;
}

/// `ServerSyncTargetGroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSyncTargetGroup {
    /// `TargetGroupID`.
    pub id: Uuid,
    /// `ParentGroupId`; all-zero (written) or absent (read) for the root.
    pub parent: Option<Uuid>,
    /// `Name`.
    pub name: String,
    /// `IsBuiltin`.
    pub is_builtin: bool,
}

impl ServerSyncTargetGroup {
    /// The model's view.
    pub fn to_model(&self) -> TargetGroup {
        TargetGroup {
            id: self.id,
            name: self.name.clone(),
            parent: self.parent,
        }
    }

    /// From the model; built-in groups are the spec's well-known ones.
    pub fn from_model(g: &TargetGroup) -> Self {
        use crate::model::groups;
        Self {
            id: g.id,
            parent: g.parent,
            name: g.name.clone(),
            is_builtin: [
                groups::ALL_COMPUTERS,
                groups::UNASSIGNED_COMPUTERS,
                groups::DOWNSTREAM_SERVERS,
            ]
            .contains(&g.id),
        }
    }
}

/// `ServerSyncDeployment` (element order as in the WSDL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSyncDeployment {
    /// `UpdateId` + `RevisionNumber`.
    pub update: RevisionKey,
    /// `Action`: 0 install, 1 uninstall, 2 scan, 3 block.
    pub action: i32,
    /// `AdminName`.
    pub admin_name: Option<String>,
    /// `Deadline`; `None` = `9999-12-31T23:59:59.9999999`.
    pub deadline: Option<OffsetDateTime>,
    /// `IsAssigned`.
    pub is_assigned: bool,
    /// `GoLiveTime`.
    pub go_live_time: OffsetDateTime,
    /// `DeploymentGuid`.
    pub deployment_guid: Uuid,
    /// `TargetGroupId`.
    pub target_group_id: Uuid,
    /// `DownloadPriority` (1..=3).
    pub download_priority: u8,
}

impl ServerSyncDeployment {
    /// The model's view (`last_change` = `GoLiveTime`); error on an unknown action.
    pub fn to_model(&self) -> Result<Deployment, WireError> {
        Ok(Deployment {
            id: self.deployment_guid,
            update: self.update,
            group: self.target_group_id,
            action: ApprovalAction::from_code(self.action)
                .ok_or_else(|| WireError::bad("Action", &self.action.to_string()))?,
            deadline: self.deadline,
            last_change: self.go_live_time,
            admin_name: self.admin_name.clone().unwrap_or_default(),
            is_assigned: self.is_assigned,
            download_priority: i32::from(self.download_priority),
        })
    }

    /// From the model (`GoLiveTime` = `last_change`; priority clamped to 1..=3).
    pub fn from_model(d: &Deployment) -> Self {
        Self {
            update: d.update,
            action: d.action.code(),
            admin_name: Some(d.admin_name.clone()).filter(|s| !s.is_empty()),
            deadline: d.deadline,
            is_assigned: d.is_assigned,
            go_live_time: d.last_change,
            deployment_guid: d.id,
            target_group_id: d.group,
            download_priority: d.download_priority.clamp(1, 3) as u8,
        }
    }
}

/// `GetDeploymentsResponse` / `ServerSyncDeploymentResult`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetDeploymentsResponse {
    /// `Anchor`: store as the deployment anchor.
    pub anchor: String,
    /// `Groups`: every target group.
    pub groups: Vec<ServerSyncTargetGroup>,
    /// `Deployments` added in the anchor window.
    pub deployments: Vec<ServerSyncDeployment>,
    /// `DeadDeployments`: deployment GUIDs removed in the window.
    pub dead_deployments: Vec<Uuid>,
    /// `HiddenUpdates`: full list of declined update GUIDs.
    pub hidden_updates: Vec<Uuid>,
    /// `AcceptedEulas`: full list of accepted EULA GUIDs.
    pub accepted_eulas: Vec<Uuid>,
}

impl SoapBody for GetDeploymentsResponse {
    const NAME: &'static str = "GetDeploymentsResponse";
    const NS: &'static str = NS;
    fn write_children(&self, w: &mut XmlWriter) {
        w.start("GetDeploymentsResult");
        w.leaf("Anchor", &self.anchor);
        write_array(w, "Groups", &self.groups, |w, g| {
            w.start("ServerSyncTargetGroup");
            w.leaf("TargetGroupID", &format_guid(&g.id));
            w.leaf(
                "ParentGroupId",
                &format_guid(&g.parent.unwrap_or(Uuid::nil())),
            );
            w.leaf("Name", &g.name);
            w.leaf("IsBuiltin", format_bool(g.is_builtin));
            w.end();
        });
        write_array(w, "Deployments", &self.deployments, |w, d| {
            w.start("ServerSyncDeployment");
            w.leaf("UpdateId", &format_guid(&d.update.update_id));
            w.leaf("RevisionNumber", &d.update.revision.to_string());
            w.leaf("Action", &d.action.to_string());
            w.opt_leaf("AdminName", d.admin_name.as_deref());
            w.leaf("Deadline", &format_deadline(d.deadline));
            w.leaf("IsAssigned", format_bool(d.is_assigned));
            w.leaf("GoLiveTime", &format_datetime(d.go_live_time));
            w.leaf("DeploymentGuid", &format_guid(&d.deployment_guid));
            w.leaf("TargetGroupId", &format_guid(&d.target_group_id));
            w.leaf("DownloadPriority", &d.download_priority.to_string());
            w.end();
        });
        write_guids(w, "DeadDeployments", &self.dead_deployments);
        write_guids(w, "HiddenUpdates", &self.hidden_updates);
        write_guids(w, "AcceptedEulas", &self.accepted_eulas);
        w.end();
    }
    fn read(el: &Element) -> Result<Self, WireError> {
        let r = el.req("GetDeploymentsResult")?;
        Ok(Self {
            anchor: r.child_text("Anchor").unwrap_or_default(),
            groups: read_array(r, "Groups", "ServerSyncTargetGroup", read_group)?,
            deployments: read_array(r, "Deployments", "ServerSyncDeployment", read_deployment)?,
            dead_deployments: read_guids(r, "DeadDeployments")?,
            hidden_updates: read_guids(r, "HiddenUpdates")?,
            accepted_eulas: read_guids(r, "AcceptedEulas")?,
        })
    }
}

/// One `ServerSyncTargetGroup`.
pub(super) fn read_group(g: &Element) -> Result<ServerSyncTargetGroup, WireError> {
    let parent = g
        .child_text("ParentGroupId")
        .map(|t| parse_guid("ParentGroupId", &t))
        .transpose()?
        .filter(|p| !p.is_nil());
    Ok(ServerSyncTargetGroup {
        id: parse_guid("TargetGroupID", &g.req_text("TargetGroupID")?)?,
        parent,
        name: g.child_text("Name").unwrap_or_default(),
        is_builtin: g
            .child_text("IsBuiltin")
            .map_or(Ok(false), |t| parse_bool("IsBuiltin", &t))?,
    })
}

/// One `ServerSyncDeployment`.
pub(super) fn read_deployment(d: &Element) -> Result<ServerSyncDeployment, WireError> {
    let prio = parse_i32("DownloadPriority", &d.req_text("DownloadPriority")?)?;
    Ok(ServerSyncDeployment {
        update: RevisionKey::new(
            parse_guid("UpdateId", &d.req_text("UpdateId")?)?,
            parse_u32("RevisionNumber", &d.req_text("RevisionNumber")?)?,
        ),
        action: parse_i32("Action", &d.req_text("Action")?)?,
        admin_name: d.child_text("AdminName"),
        deadline: parse_deadline(&d.req_text("Deadline")?)?,
        is_assigned: parse_bool("IsAssigned", &d.req_text("IsAssigned")?)?,
        go_live_time: parse_datetime("GoLiveTime", &d.req_text("GoLiveTime")?)?,
        deployment_guid: parse_guid("DeploymentGuid", &d.req_text("DeploymentGuid")?)?,
        target_group_id: parse_guid("TargetGroupId", &d.req_text("TargetGroupId")?)?,
        download_priority: u8::try_from(prio)
            .map_err(|_| WireError::bad("DownloadPriority", &prio.to_string()))?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::round_trip;
    use super::*;
    use crate::model::groups;
    use crate::wire::soap::{decode, encode};
    use time::macros::datetime;
    use uuid::uuid;

    fn sample() -> GetDeploymentsResponse {
        GetDeploymentsResponse {
            anchor: "4742,2006-05-26 18:59:26.192".into(),
            groups: vec![
                ServerSyncTargetGroup {
                    id: groups::ALL_COMPUTERS,
                    parent: None,
                    name: "All Computers".into(),
                    is_builtin: true,
                },
                ServerSyncTargetGroup {
                    id: groups::UNASSIGNED_COMPUTERS,
                    parent: Some(groups::ALL_COMPUTERS),
                    name: "Unassigned Computers".into(),
                    is_builtin: true,
                },
            ],
            deployments: vec![
                ServerSyncDeployment {
                    update: RevisionKey::new(uuid!("4b62aa32-52f6-4c15-b739-1c8e696eb33e"), 100),
                    action: 0,
                    admin_name: Some("WUS Server".into()),
                    deadline: None,
                    is_assigned: true,
                    go_live_time: datetime!(2006-05-24 15:37:08.887 UTC),
                    deployment_guid: uuid!("c2f2ca62-5413-419a-bdee-275a23087758"),
                    target_group_id: groups::UNASSIGNED_COMPUTERS,
                    download_priority: 1,
                },
                ServerSyncDeployment {
                    update: RevisionKey::new(uuid!("52bdd083-4169-4094-8eea-6230c7c1520d"), 102),
                    action: 3,
                    admin_name: None,
                    deadline: Some(datetime!(2026-12-01 10:00 UTC)),
                    is_assigned: false,
                    go_live_time: datetime!(2026-11-24 15:59:33.063 UTC),
                    deployment_guid: uuid!("10a2030d-0ac1-434a-9c37-732fc36f9838"),
                    target_group_id: groups::ALL_COMPUTERS,
                    download_priority: 3,
                },
            ],
            dead_deployments: vec![],
            hidden_updates: vec![uuid!("9a9bafe2-fbfc-4b0b-8479-49a2bb08cd5a")],
            accepted_eulas: vec![],
        }
    }

    #[test]
    fn deployments_round_trip_in_spec_order() {
        round_trip(&GetDeployments {
            cookie: Cookie {
                expiration: datetime!(2026-05-26 22:59:25.1296674 UTC),
                encrypted_data: Some(vec![1; 8]),
            },
            deployment_anchor: None,
            sync_anchor: "4742,2006-05-26 18:59:26.192".into(),
        });
        let resp = sample();
        round_trip(&resp);
        let s = encode(&resp);
        assert!(s.contains("<GetDeploymentsResult><Anchor>4742,2006-05-26 18:59:26.192</Anchor><Groups><ServerSyncTargetGroup><TargetGroupID>a0a08746-4dbe-4a37-9adf-9e7652c0b421</TargetGroupID><ParentGroupId>00000000-0000-0000-0000-000000000000</ParentGroupId><Name>All Computers</Name><IsBuiltin>true</IsBuiltin></ServerSyncTargetGroup>"));
        assert!(s.contains("<ServerSyncDeployment><UpdateId>4b62aa32-52f6-4c15-b739-1c8e696eb33e</UpdateId><RevisionNumber>100</RevisionNumber><Action>0</Action><AdminName>WUS Server</AdminName><Deadline>9999-12-31T23:59:59.9999999</Deadline><IsAssigned>true</IsAssigned><GoLiveTime>2006-05-24T15:37:08.887Z</GoLiveTime><DeploymentGuid>c2f2ca62-5413-419a-bdee-275a23087758</DeploymentGuid><TargetGroupId>b73ca6ed-5727-47f3-84de-015e03f6a88a</TargetGroupId><DownloadPriority>1</DownloadPriority></ServerSyncDeployment>"));
        assert!(s.contains("<DeadDeployments /><HiddenUpdates><guid>9a9bafe2-fbfc-4b0b-8479-49a2bb08cd5a</guid></HiddenUpdates><AcceptedEulas /></GetDeploymentsResult>"));
    }

    #[test]
    fn spec_sample_shape_decodes() {
        // SS §4 sample 2: the second group omits ParentGroupId; GoLiveTime has no zone.
        let xml = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetDeploymentsResponse xmlns="http://www.microsoft.com/SoftwareDistribution"><GetDeploymentsResult><Anchor>4742,2006-05-26 18:59:26.192</Anchor><Groups><ServerSyncTargetGroup><TargetGroupID>a0a08746-4dbe-4a37-9adf-9e7652c0b421</TargetGroupID><ParentGroupId>00000000-0000-0000-0000-000000000000</ParentGroupId><Name>All Computers</Name><IsBuiltin>true</IsBuiltin></ServerSyncTargetGroup><ServerSyncTargetGroup><TargetGroupID>b73ca6ed-5727-47f3-84de-015e03f6a88a</TargetGroupID><Name>Unassigned Computers</Name><IsBuiltin>true</IsBuiltin></ServerSyncTargetGroup></Groups><Deployments><ServerSyncDeployment><UpdateId>4b62aa32-52f6-4c15-b739-1c8e696eb33e</UpdateId><RevisionNumber>100</RevisionNumber><Action>0</Action><AdminName>WUS Server</AdminName><Deadline>9999-12-31T23:59:59.9999999</Deadline><IsAssigned>true</IsAssigned><GoLiveTime>2006-05-24T15:37:08.887</GoLiveTime><DeploymentGuid>c2f2ca62-5413-419a-bdee-275a23087758</DeploymentGuid><TargetGroupId>b73ca6ed-5727-47f3-84de-015e03f6a88a</TargetGroupId><DownloadPriority>1</DownloadPriority></ServerSyncDeployment></Deployments><DeadDeployments /><HiddenUpdates><guid>9a9bafe2-fbfc-4b0b-8479-49a2bb08cd5a</guid><guid>6c9d9217-0e1d-434a-a938-d9918703c361</guid></HiddenUpdates><AcceptedEulas /></GetDeploymentsResult></GetDeploymentsResponse></soap:Body></soap:Envelope>"#;
        let r: GetDeploymentsResponse = decode(xml.as_bytes()).unwrap();
        assert_eq!(r.groups.len(), 2);
        assert_eq!(r.groups[0].parent, None);
        assert_eq!(r.groups[1].parent, None);
        assert_eq!(r.deployments[0].deadline, None);
        assert_eq!(r.hidden_updates.len(), 2);
        let m = r.deployments[0].to_model().unwrap();
        assert_eq!(m.action, ApprovalAction::Install);
        assert_eq!(m.group, groups::UNASSIGNED_COMPUTERS);
        assert_eq!(ServerSyncDeployment::from_model(&m), r.deployments[0]);
    }

    #[test]
    fn unknown_action_is_refused_by_the_model_conversion() {
        let mut d = sample().deployments[0].clone();
        d.action = 9;
        assert!(d.to_model().is_err());
    }
}
