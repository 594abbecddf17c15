//! A second decoder for the hottest request, `SyncUpdates`, that reads the envelope as a
//! stream of XML events instead of building a tree. An agent's scan sends ~35 of them, each
//! carrying every revision id it has cached (hundreds of `<int>` elements): as a tree, that is
//! two allocations per id; streamed, the ids go straight into the result. Inside the two id
//! lists, a run of plain `<int>n</int>` items is read directly from the input (quick-xml's
//! per-event cost was most of what remained), and the reader resumes at the first byte the
//! run does not take.
//!
//! It is a shortcut, never a second opinion: [`decode_sync_updates`] answers only for the plain
//! shape of the request and returns `None` for anything else (a limit reached, a leaf holding an
//! element, a missing field, a value that does not parse, malformed XML, a different
//! operation). The caller then takes the general path (`parse_envelope` + [`SoapBody::read`]),
//! which produces the error or fault. Whenever it answers, the answer equals the general
//! path's; tests and the fuzz target check that on the same inputs.
//!
//! [`SoapBody::read`]: crate::wire::soap::SoapBody::read

use quick_xml::events::Event;
use uuid::Uuid;

use super::{SyncUpdateParameters, SyncUpdates, CLIENT_NS};
use crate::wire::sss::Cookie;
use crate::wire::stream::{self, EnvelopeWalk, Outer, StreamCount};
use crate::wire::values::{parse_base64, parse_bool, parse_datetime, parse_guid, parse_i32};
use crate::wire::xml::Limits;

/// The operation this decoder reads: (local name, namespace).
const OP: (&[u8], &str) = (b"SyncUpdates", CLIENT_NS);

/// Where the reader is: one frame per open element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// `Envelope`, `Body`, the operation.
    Soap(Outer),
    Cookie,
    Params,
    /// A text-only field; its text collects in the shared buffer.
    Leaf(Field),
    /// `InstalledNonLeafUpdateIDs` (true) or `OtherCachedUpdateIDs` (false).
    Ints(bool),
    /// One `<int>` of the list above.
    Int(bool),
    Filter,
    Category,
    /// Anything the general decoder ignores: read (so the XML is still checked), not used.
    Ignored,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Expiration,
    EncryptedData,
    ExpressQuery,
    SkipSoftwareSync,
    CategoryId,
}

#[derive(Default)]
struct Found {
    expiration: Option<String>,
    encrypted: Option<String>,
    express: Option<String>,
    skip: Option<String>,
    installed: Option<Vec<i32>>,
    other: Option<Vec<i32>>,
    filter_seen: bool,
    filter: Vec<Uuid>,
    category_id: Option<String>,
}

/// Decodes a `SyncUpdates` request envelope without building a tree; `None` when the input is
/// not the plain shape this decoder covers (see the module doc: the caller then uses the
/// general decoder, which gives the same answer or the right error).
pub fn decode_sync_updates(input: &[u8], limits: &Limits) -> Option<SyncUpdates> {
    let mut reader = stream::reader(input, limits)?;

    let mut stack: Vec<Frame> = Vec::with_capacity(16);
    let mut walk = EnvelopeWalk::default();
    let mut root_done = false;
    let (mut cookie_seen, mut params_seen) = (false, false);
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
                // Names and namespaces are compared as bytes: the input is already valid UTF-8.
                let ns = count.start(&res, e, stack.len(), limits)?;
                let local = e.local_name();
                let name: &[u8] = local.into_inner();
                let frame = match stack.last().copied() {
                    None => Frame::Soap(walk.enter(None, name, ns, OP)??),
                    Some(Frame::Soap(o @ (Outer::Envelope | Outer::Body))) => walk
                        .enter(Some(o), name, ns, OP)?
                        .map_or(Frame::Ignored, Frame::Soap),
                    Some(Frame::Soap(Outer::Op)) => match name {
                        b"cookie" if !cookie_seen => {
                            cookie_seen = true;
                            Frame::Cookie
                        }
                        b"parameters" if !params_seen => {
                            params_seen = true;
                            Frame::Params
                        }
                        _ => Frame::Ignored,
                    },
                    Some(Frame::Cookie) => match name {
                        b"Expiration" if f.expiration.is_none() => Frame::Leaf(Field::Expiration),
                        b"EncryptedData" if f.encrypted.is_none() => {
                            Frame::Leaf(Field::EncryptedData)
                        }
                        _ => Frame::Ignored,
                    },
                    Some(Frame::Params) => match name {
                        b"ExpressQuery" if f.express.is_none() => Frame::Leaf(Field::ExpressQuery),
                        b"SkipSoftwareSync" if f.skip.is_none() => {
                            Frame::Leaf(Field::SkipSoftwareSync)
                        }
                        b"InstalledNonLeafUpdateIDs" if f.installed.is_none() => {
                            f.installed = Some(Vec::new());
                            Frame::Ints(true)
                        }
                        b"OtherCachedUpdateIDs" if f.other.is_none() => {
                            f.other = Some(Vec::new());
                            Frame::Ints(false)
                        }
                        b"FilterCategoryIds" if !f.filter_seen => {
                            f.filter_seen = true;
                            Frame::Filter
                        }
                        // The driver pass: its devices are read by the general decoder.
                        b"SystemSpec" | b"CachedDriverIDs" => return None,
                        _ => Frame::Ignored,
                    },
                    Some(Frame::Ints(which)) if name == b"int" => Frame::Int(which),
                    Some(Frame::Filter) if name == b"CategoryIdentifier" => {
                        f.category_id = None;
                        Frame::Category
                    }
                    Some(Frame::Category) if name == b"Id" && f.category_id.is_none() => {
                        Frame::Leaf(Field::CategoryId)
                    }
                    // An element inside a text field: the general decoder's rules apply.
                    Some(Frame::Leaf(_) | Frame::Int(_)) => return None,
                    Some(_) => Frame::Ignored,
                };
                if matches!(frame, Frame::Leaf(_) | Frame::Int(_)) {
                    buf.clear();
                }
                stack.push(frame);
                if empty {
                    close(&mut stack, &mut f, &buf)?;
                    root_done = stack.is_empty();
                } else if let Frame::Ints(which) = frame {
                    // The list's plain `<int>n</int>` run is read straight from the input; the
                    // reader resumes at the first byte the scan does not take (the list's end
                    // tag, or anything unusual, which then goes through the events as usual).
                    if stack.len() < limits.max_depth {
                        let list = if which {
                            &mut f.installed
                        } else {
                            &mut f.other
                        };
                        let rest: &[u8] = reader.get_ref();
                        let taken = scan_ints(
                            rest,
                            list.as_mut()?,
                            &mut count.elements,
                            &mut count.text,
                            limits,
                        )?;
                        *reader.get_mut() = &rest[taken..];
                    }
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
    if !root_done || !walk.complete() || !cookie_seen || !params_seen {
        return None;
    }
    let cookie = Cookie {
        expiration: parse_datetime("Expiration", f.expiration.as_deref()?).ok()?,
        encrypted_data: match &f.encrypted {
            Some(t) => Some(parse_base64("EncryptedData", t).ok()?),
            None => None,
        },
    };
    let opt_bool = |v: &Option<String>| match v {
        Some(t) => parse_bool("bool", t).ok().map(Some),
        None => Some(None),
    };
    Some(SyncUpdates {
        cookie,
        parameters: SyncUpdateParameters {
            express_query: opt_bool(&f.express)?.unwrap_or(false),
            installed_non_leaf: f.installed,
            other_cached: f.other,
            system_spec: false,
            devices: Vec::new(),
            cached_driver_ids: None,
            skip_software_sync: opt_bool(&f.skip)?.unwrap_or(false),
            filter_category_ids: f.filter,
        },
    })
}

/// Reads `<int>n</int>` items (whitespace between them allowed) from the start of `input`
/// into `out`, counting elements and text against `limits`; stops before the first thing
/// that is not such an item (the list's end tag, a comment, an attribute, an entity, …) and
/// returns the bytes taken. `None` when a limit is exceeded.
fn scan_ints(
    input: &[u8],
    out: &mut Vec<i32>,
    elements: &mut usize,
    total_text: &mut usize,
    limits: &Limits,
) -> Option<usize> {
    const OPEN: &[u8] = b"<int>";
    const CLOSE: &[u8] = b"</int>";
    let is_ws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    // Room for the ids at once: a plain item is at least `<int>0</int>` (12 bytes).
    out.reserve((input.len() / 12).min(limits.max_elements.saturating_sub(*elements)));
    let n = input.len();
    let mut at = 0;
    loop {
        // Plain index loops: this runs over every byte of the two lists, thousands of ids per
        // call, and the iterator-adaptor version was a visible share of a SyncUpdates answer.
        let mut item = at;
        while item < n && is_ws(input[item]) {
            item += 1;
        }
        if !input[item..].starts_with(OPEN) {
            return Some(at);
        }
        let text = item + OPEN.len();
        // The common item, `-?[0-9]{1,9}` right before `</int>`, parsed in the same pass.
        if let Some((v, len)) = plain_item(&input[text..]) {
            if input[text + len..].starts_with(CLOSE) {
                *elements += 1;
                *total_text += (item - at) + len;
                if *elements > limits.max_elements || *total_text > limits.max_text {
                    return None;
                }
                out.push(v);
                at = text + len + CLOSE.len();
                continue;
            }
        }
        let mut end = text;
        while end < n
            && (input[end].is_ascii_digit()
                || input[end] == b'-'
                || input[end] == b'+'
                || is_ws(input[end]))
        {
            end += 1;
        }
        if !input[end..].starts_with(CLOSE) {
            return Some(at);
        }
        // The item is taken: the whitespace before it and its text count as text.
        *elements += 1;
        *total_text += (item - at) + (end - text);
        if *elements > limits.max_elements || *total_text > limits.max_text {
            return None;
        }
        let digits = &input[text..end];
        let v = match plain_i32(digits) {
            Some(v) => v,
            None => parse_i32("int", std::str::from_utf8(digits).ok()?).ok()?,
        };
        out.push(v);
        at = end + CLOSE.len();
    }
}

/// The value and length of the `-?[0-9]{1,9}` at the start of `b` followed by a non-digit,
/// if that is how `b` starts.
fn plain_item(b: &[u8]) -> Option<(i32, usize)> {
    let neg = b.first() == Some(&b'-');
    let start = usize::from(neg);
    // Eight bytes at once: how many digits lead, and their value, without a branch per
    // digit (ids have 1 to 5 digits, so a loop mispredicts its exit on most of them).
    if let Some(chunk) = b.get(start..start + 8) {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(chunk);
        let x = u64::from_le_bytes(eight);
        // Per byte, `byte - '0'`: a digit gives 0..=9. Borrows only run from a byte into the
        // ones after it, so every byte up to the first non-digit is exact.
        let sub = x.wrapping_sub(0x3030_3030_3030_3030);
        // High bit set: the byte is not a digit (>= 10, or wrapped below '0').
        let flags = (sub | sub.wrapping_add(0x7676_7676_7676_7676)) & 0x8080_8080_8080_8080;
        let n = (flags.trailing_zeros() / 8) as usize;
        if n == 0 {
            return None;
        }
        if n < 8 {
            // The n digits moved to the top bytes (the first, most significant, lowest):
            // zeros lead, then pairs, quads and the eight are combined.
            let mut v = sub << (8 * (8 - n));
            v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
            v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
            v = (v.wrapping_mul(10_000) + (v >> 32)) & 0xFFFF_FFFF;
            let v = v as i32;
            return Some((if neg { -v } else { v }, start + n));
        }
    }
    let mut v: i32 = 0;
    let mut k = start;
    while let Some(&d) = b.get(k) {
        let x = d.wrapping_sub(b'0');
        if x > 9 {
            break;
        }
        if k - start == 9 {
            return None;
        }
        v = v * 10 + i32::from(x);
        k += 1;
    }
    (k > start).then_some((if neg { -v } else { v }, k))
}

/// The common shape of an id, `-?[0-9]{1,9}`, read without the general parser (a late
/// SyncUpdates page carries thousands); anything else (signs, spaces, ten digits) is `None`
/// and goes the general way.
fn plain_i32(b: &[u8]) -> Option<i32> {
    let (neg, digits) = match b.split_first() {
        Some((b'-', d)) => (true, d),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let mut v: i32 = 0;
    for &d in digits {
        let x = d.wrapping_sub(b'0');
        if x > 9 {
            return None;
        }
        v = v * 10 + i32::from(x);
    }
    Some(if neg { -v } else { v })
}

/// Text inside the current element: kept for text fields, checked against the limits and
/// otherwise dropped (the general decoder ignores text between elements too). All the text of
/// the document together stays under `max_text`, which is stricter than the general reader's
/// per-run rule (so a request this decoder accepts is never one the general path refuses).
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
        Some(Frame::Leaf(_) | Frame::Int(_)) => {
            buf.push_str(s);
            Some(())
        }
        _ => Some(()),
    }
}

/// Closes the innermost element, storing what it held.
fn close(stack: &mut Vec<Frame>, f: &mut Found, buf: &str) -> Option<()> {
    match stack.pop()? {
        Frame::Leaf(Field::Expiration) => f.expiration = Some(buf.to_string()),
        Frame::Leaf(Field::EncryptedData) => f.encrypted = Some(buf.to_string()),
        Frame::Leaf(Field::ExpressQuery) => f.express = Some(buf.to_string()),
        Frame::Leaf(Field::SkipSoftwareSync) => f.skip = Some(buf.to_string()),
        Frame::Leaf(Field::CategoryId) => f.category_id = Some(buf.to_string()),
        Frame::Int(which) => {
            let n = parse_i32("int", buf).ok()?;
            let list = if which {
                &mut f.installed
            } else {
                &mut f.other
            };
            list.as_mut()?.push(n);
        }
        Frame::Category => {
            let id = parse_guid("Id", f.category_id.as_deref()?).ok()?;
            f.filter.push(id);
        }
        _ => {}
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::soap::{self, parse_envelope_with};
    use crate::wire::WireError;

    fn general(input: &str) -> Option<SyncUpdates> {
        parse_envelope_with(input.as_bytes(), &Limits::default())
            .ok()?
            .decode::<SyncUpdates>()
            .ok()
    }

    fn fast(input: &str) -> Option<SyncUpdates> {
        decode_sync_updates(input.as_bytes(), &Limits::default())
    }

    #[test]
    fn plain_ids_read_as_the_standard_parser_reads_them() {
        for t in [
            "0",
            "7",
            "-7",
            "123456789",
            "-123456789",
            "000000001",
            "-0",
            "1234567890",
            "+5",
            "",
            "-",
            "1 ",
            "x1",
            "2147483647",
            "-2147483648",
            "99999999999",
        ] {
            match plain_i32(t.as_bytes()) {
                Some(v) => assert_eq!(Ok(v), t.parse::<i32>(), "{t:?}"),
                // Left to the general parser: only what has no plain shape.
                None => assert!(
                    t.is_empty() || t.len() > 9 || !t.bytes().all(|b| b.is_ascii_digit()),
                    "{t:?}"
                ),
            }
        }
    }

    #[test]
    fn plain_items_read_as_the_standard_parser_reads_them() {
        for t in ["0<", "7<", "-7<", "123456789<", "-123456789<", "000000001 "] {
            let digits = &t[..t.len() - 1];
            assert_eq!(
                plain_item(t.as_bytes()),
                Some((digits.parse::<i32>().unwrap(), digits.len())),
                "{t:?}"
            );
        }
        // Ten digits, no digits, a sign alone: left to the general path.
        for t in ["1234567890<", "<", "-<", "+5<", " 5<", ""] {
            assert_eq!(plain_item(t.as_bytes()), None, "{t:?}");
        }
        // Every length of digits, with and without a sign, before each kind of byte that
        // ends them (the eight-byte path and the byte loop must both agree with `parse`).
        for len in 1..=12 {
            for first in 0..10u8 {
                let digits: String = (0..len)
                    .map(|k| char::from(b'0' + (first + k as u8 * 7) % 10))
                    .collect();
                for sign in ["", "-"] {
                    for end in ["</int>", "<", " ", "/", ":", "\u{0}", "\u{7f}", "é"] {
                        let t = format!("{sign}{digits}{end}");
                        let want = (len <= 9).then(|| {
                            let n = format!("{sign}{digits}");
                            (n.parse::<i32>().unwrap(), n.len())
                        });
                        assert_eq!(plain_item(t.as_bytes()), want, "{t:?}");
                    }
                }
            }
        }
    }

    fn request(installed: Option<Vec<i32>>, other: Option<Vec<i32>>) -> SyncUpdates {
        SyncUpdates {
            cookie: Cookie {
                expiration: time::macros::datetime!(2026-11-25 10:00 UTC),
                encrypted_data: Some(vec![1, 2, 3, 250]),
            },
            parameters: SyncUpdateParameters {
                express_query: false,
                installed_non_leaf: installed,
                other_cached: other,
                system_spec: false,
                skip_software_sync: false,
                filter_category_ids: vec![Uuid::from_u128(7)],
                ..Default::default()
            },
        }
    }

    #[test]
    fn plain_requests_decode_exactly_as_the_general_path() {
        for r in [
            request(None, None),
            request(Some(vec![]), Some(vec![])),
            request(Some(vec![1, 2, 3]), Some((10..900).collect())),
        ] {
            let x = soap::encode(&r);
            assert_eq!(fast(&x).as_ref(), Some(&r), "{x}");
            assert_eq!(general(&x), Some(r));
        }
    }

    #[test]
    fn a_captured_native_request_takes_the_fast_path() {
        let x = include_str!("../../../tests/fixtures/wusp/sync_updates.native_first.request.xml");
        let g = general(x).expect("the capture decodes");
        assert_eq!(fast(x), Some(g));
    }

    #[test]
    fn unusual_shapes_fall_back_and_never_disagree() {
        let base = soap::encode(&request(Some(vec![5, 6]), Some(vec![7])));
        let cases = [
            // Whitespace, comments, CDATA, entities and a prefixed body: still plain.
            base.replace("<int>5</int>", "<int> 5 </int><!-- c -->"),
            base.replace("<int>6</int>", "<int><![CDATA[6]]></int>"),
            base.replace("<ExpressQuery>false", "<ExpressQuery>&#102;alse"),
            // Shapes the general path handles its own way: fall back.
            base.replace("<int>5</int>", "<int>5<b/></int>"),
            base.replace("<int>5</int>", "<int>five</int>"),
            base.replace("<Expiration>", "<Expiration><x/>"),
            base.replace("SyncUpdates xmlns", "GetCookie xmlns"),
            base.replace("<cookie>", "<cookie><Expiration>bad</Expiration>"),
            base.replace("<parameters>", "<parameters a=\"1\" a=\"2\">"),
            base.replace("</soap:Envelope>", "</soap:Envelope><x/>"),
            base.replace("</soap:Envelope>", ""),
            base.replace("<int>5</int>", "<q:int>5</q:int>"),
            format!("<!DOCTYPE x>{base}"),
            // Duplicates: the first occurrence counts in both decoders.
            base.replace(
                "<InstalledNonLeafUpdateIDs>",
                "<InstalledNonLeafUpdateIDs><int>9</int></InstalledNonLeafUpdateIDs><InstalledNonLeafUpdateIDs>",
            ),
            base.replace("<cookie>", "<cookie><Expiration>2030-01-01T00:00:00Z</Expiration>"),
            base.replace("<parameters>", "<parameters><SystemSpec><int>1</int></SystemSpec>"),
            base.replace("<int>7</int>", "<int>7</int><long>8</long>"),
        ];
        let mut fast_hits = 0;
        for c in &cases {
            let (f, g) = (fast(c), general(c));
            if let Some(f) = f {
                fast_hits += 1;
                assert_eq!(Some(f), g, "fast path disagrees on {c}");
            }
        }
        assert!(
            fast_hits >= 6,
            "plain variants should stay on the fast path"
        );
        assert!(fast(&cases[3]).is_none() && fast(&cases[4]).is_none());
        assert_eq!(
            fast(&cases[13]).unwrap().parameters.installed_non_leaf,
            Some(vec![9])
        );
    }

    #[test]
    fn int_lists_mixing_plain_and_unusual_items_decode_as_the_general_path() {
        let base = soap::encode(&request(Some(vec![5, 6]), Some(vec![7, 8, 9])));
        for c in [
            base.replace("<int>8</int>", "<!-- x --><int>8</int>"),
            base.replace("<int>8</int>", "<int a=\"1\">8</int>"),
            base.replace("<int>8</int>", "<int>&#56;</int>"),
            base.replace("<int>8</int>", "\n  <int> +8 </int>\n"),
            base.replace("<int>8</int>", "<int>8</int ><int>80</int>"),
            base.replace("<int>8</int>", "<x>1</x><int>8</int>"),
            base.replace("<int>6</int>", "<int>6</int>junk"),
            base.replace("<int>6</int>", "<int>99999999999</int>"),
            base.replace("<int>6</int>", "<int>-</int>"),
            base.replace("</OtherCachedUpdateIDs>", "</Other>"),
        ] {
            if let Some(f) = fast(&c) {
                assert_eq!(Some(f), general(&c), "fast path disagrees on {c}");
            }
        }
        // Items after something unusual still decode (through the events).
        let c = base.replace("<int>8</int>", "<!-- x --><int>8</int>");
        assert_eq!(
            fast(&c).unwrap().parameters.other_cached,
            Some(vec![7, 8, 9])
        );
        let c = base.replace("<int>8</int>", "\n  <int> +8 </int>\n");
        assert_eq!(
            fast(&c).unwrap().parameters.other_cached,
            Some(vec![7, 8, 9])
        );
        let c = base.replace("<int>8</int>", "<int>&#56;</int>");
        assert_eq!(fast(&c), general(&c));
        assert!(fast(&c).is_some());
    }

    #[test]
    fn id_runs_of_every_shape_decode_as_the_general_path() {
        // Every digit count (the eight-byte run takes 1 to 7, the item loop the rest), signs,
        // leading zeros and whitespace between items, each list ending at every distance from
        // the input's end (the run reads 24 bytes ahead).
        let mut ids: Vec<String> = Vec::new();
        for len in 1..=10u32 {
            let n = 10i64.pow(len - 1) + i64::from(len) * 7;
            ids.push(n.min(2_147_483_647).to_string());
            ids.push(format!("-{}", n.min(2_147_483_648)));
        }
        ids.extend(["0", "-0", "0000007", "00000007", "+5", " 6", "7 "].map(String::from));
        let items: String = ids.iter().map(|i| format!("<int>{i}</int>")).collect();
        let base = soap::encode(&request(Some(vec![]), Some(vec![1])));
        let spaced = items.replace("</int><int>", "</int>\n <int>");
        for list in [&items, &spaced] {
            let x = base.replace("<int>1</int>", list);
            let want = general(&x).expect("the general path decodes it");
            assert_eq!(fast(&x).as_ref(), Some(&want), "{x}");
            let got = want.parameters.other_cached.unwrap();
            let exact: Vec<i32> = ids.iter().map(|i| i.trim().parse().unwrap()).collect();
            assert_eq!(got, exact);
            // The list cut short of the envelope's end: every tail length the run meets.
            let at = x.find("</OtherCachedUpdateIDs>").unwrap();
            for cut in 0..30 {
                let t = format!("{}</OtherCachedUpdateIDs>", &x[..at - cut.min(at)]);
                assert_eq!(fast(&t), general(&t), "{t}");
            }
        }
        // Counting: the items the run reads count against `max_elements` like every other
        // element, so the fast path answers exactly when the document's elements (counted
        // here by their start tags) fit, and never when the tree refuses.
        let x = soap::encode(&request(Some(vec![]), Some((0..200).collect())));
        let elements = x.matches('<').count() - x.matches("</").count() - x.matches("<?").count();
        assert!(elements > 200);
        for max_elements in elements - 3..=elements + 3 {
            let l = Limits {
                max_elements,
                ..Limits::default()
            };
            let got = decode_sync_updates(x.as_bytes(), &l);
            assert_eq!(got.is_some(), max_elements >= elements, "{max_elements}");
            if got.is_some() {
                assert!(parse_envelope_with(x.as_bytes(), &l).is_ok());
            }
        }
    }

    #[test]
    fn invalid_utf8_anywhere_sends_requests_to_the_general_path() {
        let base = soap::encode(&request(Some(vec![5, 6]), Some((10..60).collect())));
        assert!(fast(&base).is_some());
        for (what, with) in [
            ("<int>5</int>", "<!-- \u{1} --><int>5</int>"),
            ("<int>59</int>", "<int>59</int><!-- \u{1} -->"),
            ("<ExpressQuery>", "<!-- \u{1} --><ExpressQuery>"),
            ("</soap:Envelope>", "</soap:Envelope><!-- \u{1} -->"),
        ] {
            // A byte that is never UTF-8 (0xFF) where the marker stands.
            let mut bad = base.replacen(what, with, 1).into_bytes();
            let at = bad.iter().position(|&b| b == 1).unwrap();
            bad[at] = 0xFF;
            assert!(
                decode_sync_updates(&bad, &Limits::default()).is_none(),
                "{what}"
            );
            assert!(parse_envelope_with(&bad, &Limits::default()).is_err());
            bad[at] = b' ';
            assert!(decode_sync_updates(&bad, &Limits::default()).is_some());
        }
        // A byte-order mark is skipped as before.
        let bom = format!("\u{feff}{base}");
        assert_eq!(fast(&bom), general(&base));
    }

    #[test]
    fn limits_send_requests_to_the_general_path() {
        let x = soap::encode(&request(Some((0..50).collect()), None));
        let tight = Limits {
            max_elements: 20,
            ..Limits::default()
        };
        assert!(decode_sync_updates(x.as_bytes(), &tight).is_none());
        assert!(decode_sync_updates(&x.as_bytes()[..x.len() / 2], &Limits::default()).is_none());
        assert!(decode_sync_updates(b"\xff\xfe", &Limits::default()).is_none());
    }

    #[test]
    fn many_attributes_or_namespaces_send_requests_to_the_general_path() {
        let x = soap::encode(&request(Some(vec![1, 2]), None));
        let attrs: String = (0..100_000).map(|i| format!(" a{i}=''")).collect();
        let c = x.replacen("<SyncUpdates ", &format!("<SyncUpdates{attrs} "), 1);
        assert_ne!(c, x);
        assert!(fast(&c).is_none());
        assert!(matches!(
            parse_envelope_with(c.as_bytes(), &Limits::default()),
            Err(WireError::Limit("too many attributes"))
        ));
        let decls: String = (0..65)
            .map(|i| format!("<u xmlns:n{i}='urn:n'/>"))
            .collect();
        let c = x.replacen("</SyncUpdates>", &format!("{decls}</SyncUpdates>"), 1);
        assert_ne!(c, x);
        assert!(fast(&c).is_none());
        assert!(general(&c).is_some());
    }
}
