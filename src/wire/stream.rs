//! What the streaming request decoders (`wusp::sync_updates_stream`, `sss::rollup_stream`)
//! share: the reader over the input, the limit counting ([`StreamCount`]), and the walk
//! through `Envelope` and `Body` to the one operation element ([`EnvelopeWalk`]). Each decoder
//! keeps its own frames for what is inside the operation.

use quick_xml::events::BytesStart;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::soap::{SOAP11_NS, SOAP12_NS};
use super::xml::{checked_attributes, Limits};

/// A namespace-resolving reader over `input` as the decoders read it (text untrimmed, end
/// names checked, a byte-order mark skipped), or `None` when the input is over `max_input` or
/// not UTF-8.
pub fn reader<'a>(input: &'a [u8], limits: &Limits) -> Option<NsReader<&'a [u8]>> {
    if input.len() > limits.max_input {
        return None;
    }
    let text = std::str::from_utf8(input).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = NsReader::from_str(text);
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = true;
    Some(reader)
}

/// What a streaming decoder (`sync_updates_stream`, `rollup_stream`) counts while it reads,
/// against the same [`Limits`] as the tree: elements, namespace declarations and text are
/// counted over the whole document, which is never looser than the tree's rules (it counts
/// declarations in scope and text per run), so a request a streaming decoder accepts is never
/// one the general path refuses.
#[derive(Debug, Default)]
pub struct StreamCount {
    /// Elements read.
    pub elements: usize,
    /// Namespace declarations read.
    pub ns_declared: usize,
    /// Text bytes read.
    pub text: usize,
}

impl StreamCount {
    /// Counts and checks one start tag read with `depth` elements open: its attributes
    /// ([`checked_attributes`], each value within `max_text`) and namespace declarations.
    /// Returns its namespace (`None`: unbound), or `None` on anything over a limit, an
    /// unknown prefix or a bad attribute: the decoder then declines.
    pub fn start<'r>(
        &mut self,
        res: &ResolveResult<'r>,
        e: &BytesStart<'_>,
        depth: usize,
        limits: &Limits,
    ) -> Option<Option<&'r [u8]>> {
        self.elements += 1;
        if self.elements > limits.max_elements || depth >= limits.max_depth {
            return None;
        }
        let ns = match res {
            ResolveResult::Bound(ns) => Some(ns.into_inner()),
            ResolveResult::Unbound => None,
            ResolveResult::Unknown(_) => return None,
        };
        let (attrs, decls) = checked_attributes(e, limits).ok()?;
        self.ns_declared += decls;
        if self.ns_declared > limits.max_ns_in_scope {
            return None;
        }
        for a in attrs {
            if a.unescape_value().ok()?.len() > limits.max_text {
                return None;
            }
        }
        Some(ns)
    }

    /// Counts `len` bytes of text; `None` past `max_text`.
    pub fn text(&mut self, len: usize, limits: &Limits) -> Option<()> {
        self.text += len;
        (self.text <= limits.max_text).then_some(())
    }
}

/// Where an element sits in the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outer {
    /// `Envelope` (SOAP 1.1 or 1.2).
    Envelope,
    /// Its `Body`.
    Body,
    /// The operation: the first element of the body.
    Op,
}

/// The walk from the root to the operation element: one `Envelope` in either SOAP namespace,
/// its first `Body` in the same namespace, and the body's first element, which must be the
/// expected operation.
#[derive(Debug, Default)]
pub struct EnvelopeWalk {
    env_ns: Option<&'static str>,
    body_seen: bool,
    op_seen: bool,
}

impl EnvelopeWalk {
    /// The place of an element named `name` in namespace `ns`, opened inside `parent` (`None`:
    /// it is the root). `Some(Some(_))`: an envelope frame; `Some(None)`: an element the
    /// decoders ignore (a `Header`, a second body element); `None`: not the expected request
    /// (another root or operation): the decoder declines.
    pub fn enter(
        &mut self,
        parent: Option<Outer>,
        name: &[u8],
        ns: Option<&[u8]>,
        op: (&[u8], &str),
    ) -> Option<Option<Outer>> {
        let is_ns = |want: &str| ns == Some(want.as_bytes());
        Some(match parent {
            None if name == b"Envelope" && is_ns(SOAP11_NS) => {
                self.env_ns = Some(SOAP11_NS);
                Some(Outer::Envelope)
            }
            None if name == b"Envelope" && is_ns(SOAP12_NS) => {
                self.env_ns = Some(SOAP12_NS);
                Some(Outer::Envelope)
            }
            None => return None,
            Some(Outer::Envelope)
                if name == b"Body" && self.env_ns.is_some_and(is_ns) && !self.body_seen =>
            {
                self.body_seen = true;
                Some(Outer::Body)
            }
            Some(Outer::Body) if !self.op_seen => {
                self.op_seen = true;
                if name != op.0 || !is_ns(op.1) {
                    return None;
                }
                Some(Outer::Op)
            }
            Some(Outer::Envelope | Outer::Body) => None,
            // The operation's children are the decoder's own frames.
            Some(Outer::Op) => return None,
        })
    }

    /// Whether the body and its operation were both read.
    pub fn complete(&self) -> bool {
        self.body_seen && self.op_seen
    }
}
