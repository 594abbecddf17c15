//! A second decoder for the largest rollup request, `RollupComputerStatus`, that reads the
//! envelope as a stream of XML events instead of building a tree. A full rollup of 10,000
//! computers × 2,000 updates is 20 million `ComputerStatusRollupUpdateStatus` items (about
//! 3.8 GB of XML); as a tree each item is a dozen allocations (elements, names, text nodes,
//! then a `String` per field read), which made the upstream's side of a rollup most of its
//! cost. Streamed, each item's three fields are parsed from one reused buffer straight into
//! the result.
//!
//! Like `wusp::sync_updates_stream`, it is a shortcut, never a second opinion:
//! [`decode_rollup_computer_status`] answers only for the plain shape of the request (each
//! field once, text-only fields, within the limits) and returns `None` for anything else; the
//! caller then takes the general path (`parse_envelope` + [`SoapBody::read`]), which produces
//! the answer or the error. Whenever it answers, the answer equals the general path's; the
//! tests below check that on the same inputs.
//!
//! [`SoapBody::read`]: crate::wire::soap::SoapBody::read

use quick_xml::events::Event;
use time::OffsetDateTime;
use uuid::Uuid;

use super::rollup::{parse_time, ComputerStatusRollupInfo, RollupComputerStatus};
use super::{Cookie, NS};
use crate::wire::stream::{self, EnvelopeWalk, Outer, StreamCount};
use crate::wire::values::{parse_base64, parse_bool, parse_datetime, parse_guid, parse_i32};
use crate::wire::xml::Limits;

/// The operation this decoder reads: (local name, namespace).
const OP: (&[u8], &str) = (b"RollupComputerStatus", NS);

/// Where the reader is: one frame per open element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// `Envelope`, `Body`, the operation.
    Soap(Outer),
    Cookie,
    Computers,
    Computer,
    UpdateStatus,
    Status,
    /// A text-only field; its text collects in the shared buffer.
    Leaf(Field),
    /// Anything the general decoder ignores: read (so the XML is still checked), not used.
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Expiration,
    EncryptedData,
    ClientTime,
    ParentServerId,
    InstanceId,
    ComputerId,
    EffectiveLastDetectionTime,
    RollupNumber,
    IsFullRollup,
    UpdateId,
    SummarizationState,
    LastChangeTime,
}

/// One `ComputerStatusRollupInfo` being read.
#[derive(Default)]
struct Computer {
    instance_id: Option<Uuid>,
    computer_id: Option<String>,
    /// `Some(None)`: present, the "never" date.
    eldt: Option<Option<OffsetDateTime>>,
    rollup_number: Option<i32>,
    is_full: Option<bool>,
    update_status_seen: bool,
    statuses: Vec<(Uuid, i32, OffsetDateTime)>,
}

/// One `ComputerStatusRollupUpdateStatus` being read.
#[derive(Default)]
struct Status {
    update: Option<Uuid>,
    state: Option<i32>,
    changed: Option<OffsetDateTime>,
}

#[derive(Default)]
struct Found {
    cookie_seen: bool,
    expiration: Option<OffsetDateTime>,
    encrypted: Option<Vec<u8>>,
    client_time: Option<OffsetDateTime>,
    parent: Option<Uuid>,
    computers_seen: bool,
    computers: Vec<ComputerStatusRollupInfo>,
    computer: Computer,
    status: Status,
}

/// Decodes a `RollupComputerStatus` request envelope without building a tree; `None` when the
/// input is not the plain shape this decoder covers (see the module doc: the caller then uses
/// the general decoder, which gives the same answer or the right error).
pub fn decode_rollup_computer_status(
    input: &[u8],
    limits: &Limits,
) -> Option<RollupComputerStatus> {
    let mut reader = stream::reader(input, limits)?;

    let mut stack: Vec<Frame> = Vec::with_capacity(16);
    let mut walk = EnvelopeWalk::default();
    let mut root_done = false;
    let mut count = StreamCount::default();
    let mut buf = String::new();
    let mut f = Found::default();

    loop {
        let (res, ev) = reader.read_resolved_event().ok()?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                if root_done {
                    return None;
                }
                let ns = count.start(&res, e, stack.len(), limits)?;
                let local = e.local_name();
                let name: &[u8] = local.into_inner();
                let frame = match stack.last().copied() {
                    None => Frame::Soap(walk.enter(None, name, ns, OP)??),
                    Some(Frame::Soap(o @ (Outer::Envelope | Outer::Body))) => walk
                        .enter(Some(o), name, ns, OP)?
                        .map_or(Frame::Ignored, Frame::Soap),
                    // A second element anywhere the general decoder takes the first of that
                    // name: left to it.
                    Some(Frame::Soap(Outer::Op)) => match name {
                        b"cookie" if !f.cookie_seen => {
                            f.cookie_seen = true;
                            Frame::Cookie
                        }
                        b"clientTime" if f.client_time.is_none() => Frame::Leaf(Field::ClientTime),
                        b"parentServerId" if f.parent.is_none() => {
                            Frame::Leaf(Field::ParentServerId)
                        }
                        b"computers" if !f.computers_seen => {
                            f.computers_seen = true;
                            Frame::Computers
                        }
                        b"cookie" | b"clientTime" | b"parentServerId" | b"computers" => {
                            return None
                        }
                        _ => Frame::Ignored,
                    },
                    Some(Frame::Cookie) => match name {
                        b"Expiration" if f.expiration.is_none() => Frame::Leaf(Field::Expiration),
                        b"EncryptedData" if f.encrypted.is_none() => {
                            Frame::Leaf(Field::EncryptedData)
                        }
                        b"Expiration" | b"EncryptedData" => return None,
                        _ => Frame::Ignored,
                    },
                    Some(Frame::Computers) if name == b"ComputerStatusRollupInfo" => {
                        f.computer = Computer::default();
                        Frame::Computer
                    }
                    Some(Frame::Computer) => {
                        let c = &f.computer;
                        match name {
                            b"InstanceId" if c.instance_id.is_none() => {
                                Frame::Leaf(Field::InstanceId)
                            }
                            b"ComputerId" if c.computer_id.is_none() => {
                                Frame::Leaf(Field::ComputerId)
                            }
                            b"EffectiveLastDetectionTime" if c.eldt.is_none() => {
                                Frame::Leaf(Field::EffectiveLastDetectionTime)
                            }
                            b"RollupNumber" if c.rollup_number.is_none() => {
                                Frame::Leaf(Field::RollupNumber)
                            }
                            b"IsFullRollup" if c.is_full.is_none() => {
                                Frame::Leaf(Field::IsFullRollup)
                            }
                            b"UpdateStatus" if !c.update_status_seen => {
                                f.computer.update_status_seen = true;
                                Frame::UpdateStatus
                            }
                            b"InstanceId"
                            | b"ComputerId"
                            | b"EffectiveLastDetectionTime"
                            | b"RollupNumber"
                            | b"IsFullRollup"
                            | b"UpdateStatus" => return None,
                            _ => Frame::Ignored,
                        }
                    }
                    Some(Frame::UpdateStatus) if name == b"ComputerStatusRollupUpdateStatus" => {
                        f.status = Status::default();
                        Frame::Status
                    }
                    Some(Frame::Status) => match name {
                        b"UpdateId" if f.status.update.is_none() => Frame::Leaf(Field::UpdateId),
                        b"SummarizationState" if f.status.state.is_none() => {
                            Frame::Leaf(Field::SummarizationState)
                        }
                        b"LastChangeTime" if f.status.changed.is_none() => {
                            Frame::Leaf(Field::LastChangeTime)
                        }
                        b"UpdateId" | b"SummarizationState" | b"LastChangeTime" => return None,
                        _ => Frame::Ignored,
                    },
                    // An element inside a text field: the general decoder's rules apply.
                    Some(Frame::Leaf(_)) => return None,
                    Some(_) => Frame::Ignored,
                };
                if matches!(frame, Frame::Leaf(_)) {
                    buf.clear();
                }
                stack.push(frame);
                if empty {
                    close(&mut stack, &mut f, &buf)?;
                    root_done = stack.is_empty();
                }
            }
            Event::End(_) => {
                if stack.is_empty() {
                    return None;
                }
                close(&mut stack, &mut f, &buf)?;
                root_done = stack.is_empty();
            }
            Event::Text(t) => {
                let s = t.unescape().ok()?;
                on_text(&stack, &mut buf, &s, &mut count, limits)?;
            }
            Event::CData(c) => {
                let raw = c.into_inner();
                let s = std::str::from_utf8(&raw).ok()?;
                on_text(&stack, &mut buf, s, &mut count, limits)?;
            }
            Event::Eof => break,
            Event::DocType(_) => return None,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
    }
    if !root_done || !walk.complete() {
        return None;
    }
    let cookie = if f.cookie_seen {
        Some(Cookie {
            expiration: f.expiration?,
            encrypted_data: f.encrypted,
        })
    } else {
        None
    };
    Some(RollupComputerStatus {
        cookie,
        client_time: f.client_time?,
        parent_server_id: f.parent?,
        computers: f.computers,
    })
}

/// Text inside the current element: kept for text fields, checked against the limits and
/// otherwise dropped. All the text of the document together stays under `max_text`, which is
/// stricter than the general reader's per-run rule.
fn on_text(
    stack: &[Frame],
    buf: &mut String,
    s: &str,
    count: &mut StreamCount,
    limits: &Limits,
) -> Option<()> {
    count.text(s.len(), limits)?;
    match stack.last() {
        None if !s.trim().is_empty() => None,
        Some(Frame::Leaf(_)) => {
            buf.push_str(s);
            Some(())
        }
        _ => Some(()),
    }
}

/// Closes the innermost element, storing what it held.
fn close(stack: &mut Vec<Frame>, f: &mut Found, buf: &str) -> Option<()> {
    match stack.pop()? {
        Frame::Leaf(field) => match field {
            Field::Expiration => f.expiration = Some(parse_datetime("Expiration", buf).ok()?),
            Field::EncryptedData => {
                f.encrypted = Some(parse_base64("EncryptedData", buf).ok()?);
            }
            Field::ClientTime => f.client_time = Some(parse_datetime("clientTime", buf).ok()?),
            Field::ParentServerId => f.parent = Some(parse_guid("parentServerId", buf).ok()?),
            Field::InstanceId => {
                f.computer.instance_id = Some(parse_guid("InstanceId", buf).ok()?);
            }
            Field::ComputerId => f.computer.computer_id = Some(buf.to_string()),
            Field::EffectiveLastDetectionTime => {
                f.computer.eldt = Some(parse_time("EffectiveLastDetectionTime", buf).ok()?);
            }
            Field::RollupNumber => {
                f.computer.rollup_number = Some(parse_i32("RollupNumber", buf).ok()?);
            }
            Field::IsFullRollup => f.computer.is_full = Some(parse_bool("IsFullRollup", buf).ok()?),
            Field::UpdateId => f.status.update = Some(parse_guid("UpdateId", buf).ok()?),
            Field::SummarizationState => {
                f.status.state = Some(parse_i32("SummarizationState", buf).ok()?);
            }
            Field::LastChangeTime => {
                f.status.changed = Some(parse_datetime("LastChangeTime", buf).ok()?);
            }
        },
        Frame::Status => {
            let s = std::mem::take(&mut f.status);
            f.computer.statuses.push((s.update?, s.state?, s.changed?));
        }
        Frame::Computer => {
            let c = std::mem::take(&mut f.computer);
            f.computers.push(ComputerStatusRollupInfo {
                instance_id: c.instance_id?,
                computer_id: c.computer_id.unwrap_or_default(),
                effective_last_detection_time: c.eldt?,
                rollup_number: c.rollup_number?,
                is_full_rollup: c.is_full?,
                update_status: c.statuses,
            });
        }
        _ => {}
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::soap::{self, parse_envelope_with};
    use crate::wire::sss::rollup::fixed_cookie;
    use time::macros::datetime;

    fn general(input: &str) -> Option<RollupComputerStatus> {
        parse_envelope_with(input.as_bytes(), &Limits::default())
            .ok()?
            .decode::<RollupComputerStatus>()
            .ok()
    }

    fn fast(input: &str) -> Option<RollupComputerStatus> {
        decode_rollup_computer_status(input.as_bytes(), &Limits::default())
    }

    /// The fast path either agrees with the general one or stays out of it.
    fn agrees(input: &str) -> Option<RollupComputerStatus> {
        let f = fast(input);
        if let Some(f) = &f {
            assert_eq!(Some(f), general(input).as_ref(), "{input}");
        }
        f
    }

    fn request(computers: usize, statuses: usize) -> RollupComputerStatus {
        RollupComputerStatus {
            cookie: Some(fixed_cookie()),
            client_time: datetime!(2026-12-05 01:02:03.25 UTC),
            parent_server_id: Uuid::from_u128(0xabc),
            computers: (0..computers)
                .map(|c| ComputerStatusRollupInfo {
                    instance_id: Uuid::from_u128(c as u128 + 1),
                    computer_id: format!("pc-{c}.branch.example"),
                    effective_last_detection_time: (c % 2 == 0)
                        .then_some(datetime!(2026-12-01 08:00 UTC)),
                    rollup_number: c as i32 + 1,
                    is_full_rollup: c % 3 != 1,
                    update_status: (0..statuses)
                        .map(|u| {
                            (
                                Uuid::from_u128(((c * 7919 + u) as u128) << 64 | u as u128),
                                (u % 6) as i32,
                                datetime!(2026-11-30 23:59:59 UTC)
                                    + time::Duration::seconds(u as i64),
                            )
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn what_the_sender_writes_reads_back_as_the_general_decoder_reads_it() {
        for (c, s) in [(0, 0), (1, 0), (1, 1), (3, 50), (20, 500)] {
            let r = request(c, s);
            let xml = soap::encode(&r);
            assert_eq!(agrees(&xml).as_ref(), Some(&r), "{c} computers × {s}");
        }
    }

    #[test]
    fn other_spellings_of_the_same_request_agree() {
        let xml = soap::encode(&request(2, 3));
        // Pretty-printed, a prefix for the operation's namespace, an element the decoders do
        // not know, CDATA, a comment inside a value, no cookie.
        let pretty = xml.replace("><", ">\n  <");
        assert!(agrees(&pretty).is_some());
        let prefixed = xml
            .replace(
                "<RollupComputerStatus xmlns=\"http://www.microsoft.com/SoftwareDistribution\">",
                "<w:RollupComputerStatus xmlns:w=\"http://www.microsoft.com/SoftwareDistribution\" xmlns=\"http://www.microsoft.com/SoftwareDistribution\">",
            )
            .replace("</RollupComputerStatus>", "</w:RollupComputerStatus>");
        assert_ne!(prefixed, xml);
        assert!(agrees(&prefixed).is_some());
        let extra = xml.replacen("<RollupNumber>", "<Unknown>x</Unknown><RollupNumber>", 1);
        assert!(agrees(&extra).is_some());
        let cdata = xml.replacen("<ComputerId>pc-0", "<ComputerId><![CDATA[pc-0]]>", 1);
        assert_eq!(
            agrees(&cdata).unwrap().computers[0].computer_id,
            "pc-0.branch.example"
        );
        let comment = xml.replacen("<ComputerId>pc-0", "<ComputerId>pc<!-- c -->-0", 1);
        assert_eq!(
            agrees(&comment).unwrap().computers[0].computer_id,
            "pc-0.branch.example"
        );
        let start = xml.find("<cookie>").unwrap();
        let end = xml.find("</cookie>").unwrap() + "</cookie>".len();
        let no_cookie = format!("{}{}", &xml[..start], &xml[end..]);
        assert_eq!(agrees(&no_cookie).unwrap().cookie, None);
    }

    #[test]
    fn anything_unusual_is_left_to_the_general_decoder() {
        let xml = soap::encode(&request(2, 3));
        for bad in [
            // A field missing, unparsable, repeated, or holding an element.
            xml.replacen("<SummarizationState>0</SummarizationState>", "", 1),
            xml.replacen("<SummarizationState>0<", "<SummarizationState>zero<", 1),
            xml.replacen(
                "<RollupNumber>1<",
                "<RollupNumber>1</RollupNumber><RollupNumber>2<",
                1,
            ),
            xml.replacen("<ComputerId>pc-0", "<ComputerId><b>x</b>pc-0", 1),
            xml.replacen("<UpdateId>", "<UpdateId>{", 1),
            // Another operation, malformed XML, a DOCTYPE.
            xml.replace("RollupComputerStatus", "RollupComputers"),
            xml.replacen("</UpdateId>", "</UpdateIdX>", 1),
            format!("<!DOCTYPE x>{xml}"),
            xml[..xml.len() - 10].to_string(),
        ] {
            assert_eq!(fast(&bad), None, "{bad}");
        }
    }

    #[test]
    fn the_limits_hold() {
        let xml = soap::encode(&request(2, 30));
        let tight = Limits {
            max_elements: 50,
            ..Limits::default()
        };
        assert_eq!(decode_rollup_computer_status(xml.as_bytes(), &tight), None);
        let small = Limits {
            max_input: 100,
            ..Limits::default()
        };
        assert_eq!(decode_rollup_computer_status(xml.as_bytes(), &small), None);
    }
}
