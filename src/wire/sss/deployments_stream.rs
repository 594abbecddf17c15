//! Streaming decode of the two answers that grow with the catalog: `GetDeploymentsResponse`
//! (a replica's first sync gets every approval upstream has: tens of thousands of
//! `ServerSyncDeployment`s, ~500 bytes each on the wire) and `GetRevisionIdListResponse`
//! (every revision id). A full element tree of those costs several KB per item. This reader
//! walks the envelope with quick-xml and materializes ONE item at a time (a group, a
//! deployment, a GUID, an identity) as a small [`Element`], decoded by the same functions as
//! the tree path (`SoapBody::read`), so both accept exactly the same items.
//!
//! Anything but a well-formed `{soap}Envelope/Body/{ns}GetDeploymentsResponse` (a fault, an
//! unexpected operation, a missing `GetDeploymentsResult`) is handed to the tree decoder
//! ([`crate::wire::soap::decode`]), which produces the usual typed error; those documents are
//! small.

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

use super::deployments::{read_deployment, read_group};
use super::{read_identity, GetDeploymentsResponse, GetRevisionIdListResponse, NS};
use crate::wire::soap::{decode, SOAP11_NS, SOAP12_NS};
use crate::wire::values::parse_guid;
use crate::wire::xml::{read_subtree, reader_for, start_subtree, Element, Limits};
use crate::wire::WireError;

/// Largest answer accepted by the streaming decoder (memory is the body plus one item).
pub const MAX_STREAMED_INPUT: usize = 512 << 20;

/// The arrays of `GetDeploymentsResult` (array element, item element), in the order of
/// the `on_item` index.
const DEPLOYMENT_ARRAYS: [(&str, &str); 5] = [
    ("Groups", "ServerSyncTargetGroup"),
    ("Deployments", "ServerSyncDeployment"),
    ("DeadDeployments", "guid"),
    ("HiddenUpdates", "guid"),
    ("AcceptedEulas", "guid"),
];

/// Decodes a `GetDeploymentsResponse` envelope item by item (see the module doc); the same
/// result and errors as `soap::decode::<GetDeploymentsResponse>`, in bounded extra memory.
pub fn decode_deployments_response(input: &[u8]) -> Result<GetDeploymentsResponse, WireError> {
    let mut out = GetDeploymentsResponse {
        anchor: String::new(),
        groups: Vec::new(),
        deployments: Vec::new(),
        dead_deployments: Vec::new(),
        hidden_updates: Vec::new(),
        accepted_eulas: Vec::new(),
    };
    let shape = Shape {
        response: "GetDeploymentsResponse",
        result: "GetDeploymentsResult",
        fields: &["Anchor"],
        arrays: &DEPLOYMENT_ARRAYS,
    };
    let found = stream_result(
        input,
        &shape,
        |_, el| {
            out.anchor = el.text();
            Ok(())
        },
        |array, el| {
            match array {
                0 => out.groups.push(read_group(&el)?),
                1 => out.deployments.push(read_deployment(&el)?),
                2 => out.dead_deployments.push(guid(&el)?),
                3 => out.hidden_updates.push(guid(&el)?),
                _ => out.accepted_eulas.push(guid(&el)?),
            }
            Ok(())
        },
    )?;
    if found {
        Ok(out)
    } else {
        decode(input)
    }
}

/// Decodes a `GetRevisionIdListResponse` envelope identity by identity (a first sync's list
/// names every revision upstream has: ~300,000 elements for 100,000 updates); the same
/// result and errors as `soap::decode::<GetRevisionIdListResponse>`.
pub fn decode_revision_id_list_response(
    input: &[u8],
) -> Result<GetRevisionIdListResponse, WireError> {
    let mut out = GetRevisionIdListResponse {
        anchor: String::new(),
        new_revisions: Vec::new(),
    };
    let shape = Shape {
        response: "GetRevisionIdListResponse",
        result: "GetRevisionIdListResult",
        fields: &["Anchor"],
        arrays: &[("NewRevisions", "UpdateIdentity")],
    };
    let found = stream_result(
        input,
        &shape,
        |_, el| {
            out.anchor = el.text();
            Ok(())
        },
        |_, el| {
            out.new_revisions.push(read_identity(&el)?);
            Ok(())
        },
    )?;
    if found {
        Ok(out)
    } else {
        decode(input)
    }
}

/// What a streamed answer looks like: `{soap}Envelope/{soap}Body/{NS}response/result/…`
/// whose children are fields (materialized whole, first occurrence) or arrays (first
/// occurrence; their items materialized one at a time).
pub(crate) struct Shape<'a> {
    /// The body element (namespace [`NS`]).
    pub response: &'a str,
    /// Its result element (first occurrence, any namespace, as `Element::req` finds it).
    pub result: &'a str,
    /// Field children, by index for `on_field`.
    pub fields: &'a [&'a str],
    /// (array, item) children, by index for `on_item`.
    pub arrays: &'a [(&'a str, &'a str)],
}

/// Where the walker is: the open elements it cares about (deeper ones are materialized).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Open {
    Envelope,
    Body,
    Response,
    Result,
    Array(usize),
    /// An element the decoder does not read (its content is skipped).
    Other,
}

/// Walks an answer of `shape`, calling `on_field(index, element)` and `on_item(array index,
/// element)`. `Ok(false)` = not that shape (a fault, another operation, no result element):
/// the caller decodes it with the tree decoder for the usual typed error.
pub(crate) fn stream_result(
    input: &[u8],
    shape: &Shape<'_>,
    mut on_field: impl FnMut(usize, Element) -> Result<(), WireError>,
    mut on_item: impl FnMut(usize, Element) -> Result<(), WireError>,
) -> Result<bool, WireError> {
    if input.len() > MAX_STREAMED_INPUT {
        return Err(WireError::Limit("input too large"));
    }
    let text = std::str::from_utf8(input).map_err(|_| WireError::Xml("not UTF-8".into()))?;
    let limits = Limits::default();
    let mut reader = reader_for(text);
    let mut open: Vec<Open> = Vec::new();
    let mut env_ns: Option<&'static str> = None;
    let (mut seen_body, mut seen_body_child, mut seen_result) = (false, false, false);
    let mut seen_fields = vec![false; shape.fields.len()];
    let mut seen_arrays = vec![false; shape.arrays.len()];
    loop {
        let (res, ev) = reader
            .read_resolved_event()
            .map_err(|e| WireError::Xml(e.to_string()))?;
        let (e, empty) = match &ev {
            Event::Start(e) => (e.clone(), false),
            Event::Empty(e) => (e.clone(), true),
            Event::End(_) => {
                open.pop();
                continue;
            }
            Event::Eof => break,
            Event::DocType(_) => return Err(WireError::Xml("DTDs are not accepted".into())),
            _ => continue,
        };
        let ns: Option<&[u8]> = match &res {
            ResolveResult::Bound(n) => Some(n.as_ref()),
            _ => None,
        };
        let local = e.local_name();
        let name = local.as_ref();
        let next = match open.last().copied() {
            None => {
                if env_ns.is_some() || name != b"Envelope" {
                    return Ok(false);
                }
                env_ns = match ns {
                    Some(n) if n == SOAP11_NS.as_bytes() => Some(SOAP11_NS),
                    Some(n) if n == SOAP12_NS.as_bytes() => Some(SOAP12_NS),
                    _ => return Ok(false),
                };
                Open::Envelope
            }
            Some(Open::Envelope) => {
                let is_body = name == b"Body" && ns == env_ns.map(str::as_bytes);
                if is_body && !seen_body {
                    seen_body = true;
                    Open::Body
                } else {
                    Open::Other
                }
            }
            Some(Open::Body) => {
                if seen_body_child {
                    Open::Other
                } else if name == shape.response.as_bytes() && ns == Some(NS.as_bytes()) {
                    seen_body_child = true;
                    Open::Response
                } else {
                    // A fault or another operation: the tree decoder says which.
                    return Ok(false);
                }
            }
            Some(Open::Response) if name == shape.result.as_bytes() && !seen_result => {
                seen_result = true;
                Open::Result
            }
            Some(Open::Result) => {
                if let Some(i) = shape.fields.iter().position(|f| f.as_bytes() == name) {
                    if !seen_fields[i] {
                        seen_fields[i] = true;
                        let tree = start_subtree(res, ev, &limits)?;
                        on_field(i, read_subtree(&mut reader, tree)?)?;
                        continue;
                    }
                }
                match shape.arrays.iter().position(|(a, _)| a.as_bytes() == name) {
                    Some(i) if !seen_arrays[i] => {
                        seen_arrays[i] = true;
                        Open::Array(i)
                    }
                    _ => Open::Other,
                }
            }
            Some(Open::Array(i)) if name == shape.arrays[i].1.as_bytes() => {
                let tree = start_subtree(res, ev, &limits)?;
                on_item(i, read_subtree(&mut reader, tree)?)?;
                continue;
            }
            Some(_) => Open::Other,
        };
        if open.len() >= limits.max_depth {
            return Err(WireError::Limit("nesting too deep"));
        }
        if !empty {
            open.push(next);
        }
    }
    if !open.is_empty() {
        return Err(WireError::Xml("document ends inside an element".into()));
    }
    Ok(seen_result)
}

fn guid(e: &Element) -> Result<uuid::Uuid, WireError> {
    parse_guid("guid", &e.text())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RevisionKey;
    use crate::wire::soap::encode;
    use crate::wire::sss::{ServerSyncDeployment, ServerSyncTargetGroup};
    use time::macros::datetime;
    use uuid::Uuid;

    /// A SOAP fault with `code`, as upstream answers `action` with it.
    fn fault_envelope(code: crate::wire::ErrorCode, action: &str) -> String {
        crate::wire::soap::Fault::new(code, "refused", action).to_envelope()
    }

    fn big(n: u128) -> GetDeploymentsResponse {
        GetDeploymentsResponse {
            anchor: "17,2026-11-25 18:00:00.000".into(),
            groups: vec![ServerSyncTargetGroup {
                id: Uuid::from_u128(1),
                parent: Some(Uuid::from_u128(2)),
                name: "A & <B>".into(),
                is_builtin: false,
            }],
            deployments: (0..n)
                .map(|i| ServerSyncDeployment {
                    update: RevisionKey::new(Uuid::from_u128(0x1000 + i), 100 + i as u32),
                    action: (i % 4) as i32,
                    admin_name: (i % 2 == 0).then(|| "WUS Server".to_string()),
                    deadline: (i % 3 == 0).then_some(datetime!(2026-12-01 10:00 UTC)),
                    is_assigned: i % 5 != 0,
                    go_live_time: datetime!(2026-11-24 15:59:33.063 UTC),
                    deployment_guid: Uuid::from_u128(0x9000 + i),
                    target_group_id: Uuid::from_u128(1),
                    download_priority: 1 + (i % 3) as u8,
                })
                .collect(),
            dead_deployments: vec![Uuid::from_u128(7)],
            hidden_updates: (0..n / 10).map(|i| Uuid::from_u128(0x5000 + i)).collect(),
            accepted_eulas: vec![],
        }
    }

    #[test]
    fn streaming_decode_equals_the_tree_decode() {
        for r in [big(0), big(1), big(500)] {
            let env = encode(&r);
            assert_eq!(decode_deployments_response(env.as_bytes()).unwrap(), r);
            assert_eq!(decode::<GetDeploymentsResponse>(env.as_bytes()).unwrap(), r);
        }
        for n in [0u128, 1, 700] {
            let r = GetRevisionIdListResponse {
                anchor: "5,2026-11-25 18:00:00.000".into(),
                new_revisions: (0..n)
                    .map(|i| RevisionKey::new(Uuid::from_u128(0x77 + i), i as u32))
                    .collect(),
            };
            let env = encode(&r);
            assert_eq!(decode_revision_id_list_response(env.as_bytes()).unwrap(), r);
            assert_eq!(
                decode::<GetRevisionIdListResponse>(env.as_bytes()).unwrap(),
                r
            );
        }
        let fault = fault_envelope(
            crate::wire::ErrorCode::InvalidParameters,
            crate::wire::sss::action::GET_REVISION_ID_LIST,
        );
        assert!(matches!(
            decode_revision_id_list_response(fault.as_bytes()),
            Err(WireError::Fault(_))
        ));
        let bad = encode(&GetRevisionIdListResponse {
            anchor: "a".into(),
            new_revisions: vec![RevisionKey::new(Uuid::from_u128(1), 2)],
        })
        .replace("<RevisionNumber>2<", "<RevisionNumber>-2<");
        assert!(decode_revision_id_list_response(bad.as_bytes()).is_err());
    }

    #[test]
    fn other_prefixes_soap12_and_extra_elements_decode_the_same() {
        let xml = r#"<?xml version="1.0"?><e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Header><x>1</x></e:Header><e:Body><s:GetDeploymentsResponse xmlns:s="http://www.microsoft.com/SoftwareDistribution"><s:GetDeploymentsResult><s:Extra><s:Anchor>no</s:Anchor></s:Extra><s:Anchor>9,2026-01-01 00:00:00.000</s:Anchor><s:Anchor>second</s:Anchor><s:Groups /><s:Deployments><s:ServerSyncDeployment><s:UpdateId>4b62aa32-52f6-4c15-b739-1c8e696eb33e</s:UpdateId><s:RevisionNumber>100</s:RevisionNumber><s:Action>0</s:Action><s:Deadline>9999-12-31T23:59:59.9999999</s:Deadline><s:IsAssigned>true</s:IsAssigned><s:GoLiveTime>2006-05-24T15:37:08.887</s:GoLiveTime><s:DeploymentGuid>c2f2ca62-5413-419a-bdee-275a23087758</s:DeploymentGuid><s:TargetGroupId>b73ca6ed-5727-47f3-84de-015e03f6a88a</s:TargetGroupId><s:DownloadPriority>1</s:DownloadPriority></s:ServerSyncDeployment><s:Other/></s:Deployments><s:Deployments><s:ServerSyncDeployment/></s:Deployments><s:HiddenUpdates><s:guid>9a9bafe2-fbfc-4b0b-8479-49a2bb08cd5a</s:guid></s:HiddenUpdates></s:GetDeploymentsResult></s:GetDeploymentsResponse></e:Body></e:Envelope>"#;
        let tree = decode::<GetDeploymentsResponse>(xml.as_bytes()).unwrap();
        let streamed = decode_deployments_response(xml.as_bytes()).unwrap();
        assert_eq!(streamed, tree);
        assert_eq!(streamed.anchor, "9,2026-01-01 00:00:00.000");
        assert_eq!(streamed.deployments.len(), 1);
        assert_eq!(streamed.hidden_updates.len(), 1);
    }

    #[test]
    fn faults_and_bad_documents_give_the_tree_decoders_errors() {
        let fault = fault_envelope(
            crate::wire::ErrorCode::InvalidCookie,
            crate::wire::sss::action::GET_DEPLOYMENTS,
        );
        assert!(matches!(
            decode_deployments_response(fault.as_bytes()),
            Err(WireError::Fault(f)) if f.error_code == crate::wire::ErrorCode::InvalidCookie
        ));
        let other = encode(&crate::wire::sss::DownloadFilesResponse);
        assert!(matches!(
            decode_deployments_response(other.as_bytes()),
            Err(WireError::UnexpectedOperation { .. })
        ));
        let no_result = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetDeploymentsResponse xmlns="http://www.microsoft.com/SoftwareDistribution"/></soap:Body></soap:Envelope>"#;
        assert!(matches!(
            decode_deployments_response(no_result.as_bytes()),
            Err(WireError::Missing { .. })
        ));
        let env = encode(&big(3));
        // A bad item value, a truncated document, a DTD, not XML at all.
        let bad = env.replacen("<Action>1</Action>", "<Action>x</Action>", 1);
        assert!(decode_deployments_response(bad.as_bytes()).is_err());
        assert!(decode_deployments_response(&env.as_bytes()[..env.len() / 2]).is_err());
        let dtd = format!("<!DOCTYPE x []>{env}");
        assert!(decode_deployments_response(dtd.as_bytes()).is_err());
        assert!(decode_deployments_response(b"\xff\xfe").is_err());
        assert!(decode_deployments_response(b"<a>").is_err());
    }
}
