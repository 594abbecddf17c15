//! The small XML layer under the SOAP codec and the update-XML parser: a bounded,
//! namespace-aware reader that builds a tree of [`Element`]s (quick-xml underneath), and an
//! [`XmlWriter`] that escapes every text and attribute value it is given.
//!
//! The reader resolves every element to `(namespace, local name)`, so callers never depend on
//! the prefixes a peer happened to choose. It enforces [`Limits`] (depth, element count, text
//! size) so hostile input costs bounded memory, and it returns errors, never panics, on
//! malformed XML. The writer has no way to emit unescaped text: there are no string templates
//! with holes anywhere in `wire`.

use std::sync::Arc;

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use super::WireError;

/// Bounds applied while reading a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest element nesting accepted.
    pub max_depth: usize,
    /// Most elements accepted in one document.
    pub max_elements: usize,
    /// Longest text accepted in one element (bytes, after unescaping).
    pub max_text: usize,
    /// Longest input accepted (bytes).
    pub max_input: usize,
    /// Most attributes (namespace declarations included) on one element.
    pub max_attrs: usize,
    /// Most namespace declarations in scope at once (every element's name is resolved
    /// against them, so this bounds the work per element).
    pub max_ns_in_scope: usize,
}

impl Default for Limits {
    /// Generous for real WSUS traffic (a 3 MB `GetRevisionIdList` holds ~75,000 elements; a
    /// 100,000-revision list ~300,000; an update's XML has at most ~20 attributes on an
    /// element and a SOAP envelope ~10 namespaces), small enough that a hostile peer cannot
    /// exhaust memory (about 100 bytes per element, namespaces shared) or time: every check
    /// is linear in the input (no attribute is compared with all the others, no element name
    /// is resolved against an unbounded list of namespaces).
    fn default() -> Self {
        Self {
            max_depth: 128,
            max_elements: 1_000_000,
            max_text: 32 << 20,
            max_input: 64 << 20,
            max_attrs: 128,
            max_ns_in_scope: 64,
        }
    }
}

/// An attribute as written (qualified name kept, value unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// The qualified name as it appeared (`xsi:type`, `UpdateID`, `xmlns:upd`).
    pub qname: String,
    /// The unescaped value.
    pub value: String,
}

/// A child of an element: another element or a run of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data (text or CDATA), unescaped.
    Text(String),
}

/// An element's local name, shared between the elements of one document that have it (a
/// request with a thousand `<int>` children holds one copy of "int").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Name(Arc<str>);

impl Name {
    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name(Arc::from(s))
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

/// One element, with its namespace resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Namespace URI, `None` when unqualified (shared between elements of one document).
    pub ns: Option<Arc<str>>,
    /// Local name (no prefix).
    pub name: Name,
    /// Attributes in document order, namespace declarations included.
    pub attrs: Vec<Attr>,
    /// Children in document order.
    pub children: Vec<Node>,
}

impl Element {
    /// Child elements in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    /// Every child element with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements().filter(move |e| e.name == name)
    }

    /// The first child element with this local name, or [`WireError::Missing`].
    pub fn req(&self, name: &str) -> Result<&Element, WireError> {
        self.child(name).ok_or_else(|| WireError::Missing {
            parent: self.name.to_string(),
            name: name.to_string(),
        })
    }

    /// The element's text (all text children concatenated).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out
    }

    /// The element's text, borrowed when it is a single run (the usual leaf), else joined.
    pub fn text_ref(&self) -> std::borrow::Cow<'_, str> {
        match self.children.as_slice() {
            [] => std::borrow::Cow::Borrowed(""),
            [Node::Text(t)] => std::borrow::Cow::Borrowed(t),
            _ => std::borrow::Cow::Owned(self.text()),
        }
    }

    /// Text of the named child, `None` when the child is absent.
    pub fn child_text(&self, name: &str) -> Option<String> {
        self.child(name).map(Element::text)
    }

    /// Text of the named child, error when absent.
    pub fn req_text(&self, name: &str) -> Result<String, WireError> {
        self.req(name).map(Element::text)
    }

    /// Value of the attribute whose qualified name or local part equals `name` (namespace
    /// declarations are never matched).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .filter(|a| !is_ns_decl(&a.qname))
            .find(|a| a.qname == name || local_part(&a.qname) == name)
            .map(|a| a.value.as_str())
    }

    /// True when this element is `{ns}name`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.name == name && self.ns.as_deref() == Some(ns)
    }
}

/// True for `xmlns` and `xmlns:*` attributes.
pub fn is_ns_decl(qname: &str) -> bool {
    qname == "xmlns" || qname.starts_with("xmlns:")
}

/// The part of a qualified name after the colon.
pub fn local_part(qname: &str) -> &str {
    qname.rsplit_once(':').map_or(qname, |(_, l)| l)
}

/// Reads a whole document and returns its root element, enforcing `limits`.
pub fn parse_document(input: &str, limits: &Limits) -> Result<Element, WireError> {
    if input.len() > limits.max_input {
        return Err(WireError::Limit("input too large"));
    }
    let mut reader = reader_for(input);
    let mut tree = TreeBuilder::new(*limits);
    loop {
        let (res, ev) = reader
            .read_resolved_event()
            .map_err(|e| WireError::Xml(e.to_string()))?;
        if matches!(ev, Event::Eof) {
            break;
        }
        if tree.root.is_some() && matches!(ev, Event::Start(_) | Event::Empty(_)) {
            return Err(WireError::Xml("content after the root element".into()));
        }
        tree.event(res, ev)?;
    }
    tree.finish()
}

/// A namespace-aware reader over `input` (BOM skipped), configured as every reader here is.
pub fn reader_for(input: &str) -> NsReader<&[u8]> {
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut reader = NsReader::from_str(input);
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = true;
    reader
}

/// Builds one element tree from reader events, enforcing [`Limits`]: the whole document
/// ([`parse_document`]) or one subtree at a time (streaming decoders that materialize a
/// big list item by item, see [`read_subtree`]).
pub struct TreeBuilder {
    limits: Limits,
    stack: Vec<Element>,
    root: Option<Element>,
    count: usize,
    namespaces: Vec<Arc<str>>,
    /// Element names seen so far (a document uses few: searched linearly, shared).
    names: Vec<Name>,
    /// Namespace declarations made by each open element (parallel to `stack`).
    ns_decls: Vec<usize>,
    /// Their sum: the declarations in scope.
    ns_in_scope: usize,
}

impl TreeBuilder {
    /// An empty builder.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            stack: Vec::new(),
            root: None,
            count: 0,
            namespaces: Vec::new(),
            names: Vec::new(),
            ns_decls: Vec::new(),
            ns_in_scope: 0,
        }
    }

    /// True once the root element is complete.
    pub fn is_complete(&self) -> bool {
        self.root.is_some()
    }

    /// Feeds one event.
    pub fn event(&mut self, res: ResolveResult<'_>, ev: Event<'_>) -> Result<(), WireError> {
        let limits = self.limits;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                self.count += 1;
                if self.count > limits.max_elements {
                    return Err(WireError::Limit("too many elements"));
                }
                if self.stack.len() >= limits.max_depth {
                    return Err(WireError::Limit("nesting too deep"));
                }
                let (el, decls) =
                    element_of(e, res, &mut self.namespaces, &mut self.names, &limits)?;
                if self.ns_in_scope + decls > limits.max_ns_in_scope {
                    return Err(WireError::Limit("too many namespace declarations"));
                }
                if empty {
                    attach(&mut self.stack, &mut self.root, el);
                } else {
                    self.stack.push(el);
                    self.ns_decls.push(decls);
                    self.ns_in_scope += decls;
                }
            }
            Event::End(_) => {
                let el = self
                    .stack
                    .pop()
                    .ok_or_else(|| WireError::Xml("unbalanced end tag".into()))?;
                self.ns_in_scope -= self.ns_decls.pop().unwrap_or(0);
                attach(&mut self.stack, &mut self.root, el);
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| WireError::Xml(e.to_string()))?;
                push_text(&mut self.stack, &s, &limits)?;
            }
            Event::CData(c) => {
                let raw = c.into_inner();
                let s = std::str::from_utf8(&raw)
                    .map_err(|_| WireError::Xml("CDATA is not UTF-8".into()))?;
                push_text(&mut self.stack, s, &limits)?;
            }
            Event::Eof => {}
            Event::DocType(_) => return Err(WireError::Xml("DTDs are not accepted".into())),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
        Ok(())
    }

    /// The root element, or an error when the input ended inside one or had none.
    pub fn finish(self) -> Result<Element, WireError> {
        if !self.stack.is_empty() {
            return Err(WireError::Xml("document ends inside an element".into()));
        }
        self.root
            .ok_or_else(|| WireError::Xml("no root element".into()))
    }
}

/// Starts materializing the subtree whose start event (`Start` or `Empty`) the caller just
/// got from a reader; finish it with [`read_subtree`] (limits apply to the subtree).
pub fn start_subtree(
    res: ResolveResult<'_>,
    start: Event<'_>,
    limits: &Limits,
) -> Result<TreeBuilder, WireError> {
    let mut tree = TreeBuilder::new(*limits);
    tree.event(res, start)?;
    Ok(tree)
}

/// Reads the rest of a subtree begun by [`start_subtree`], up to and including its end,
/// and returns it as one [`Element`].
pub fn read_subtree(
    reader: &mut NsReader<&[u8]>,
    mut tree: TreeBuilder,
) -> Result<Element, WireError> {
    while !tree.is_complete() {
        let (res, ev) = reader
            .read_resolved_event()
            .map_err(|e| WireError::Xml(e.to_string()))?;
        if matches!(ev, Event::Eof) {
            return Err(WireError::Xml("document ends inside an element".into()));
        }
        tree.event(res, ev)?;
    }
    tree.finish()
}

/// The [`Element`] (no children yet) of a start tag, and how many namespaces it declares.
fn element_of(
    e: &BytesStart<'_>,
    res: ResolveResult<'_>,
    namespaces: &mut Vec<Arc<str>>,
    names: &mut Vec<Name>,
    limits: &Limits,
) -> Result<(Element, usize), WireError> {
    let ns = match res {
        ResolveResult::Bound(ns) => {
            let uri = std::str::from_utf8(ns.as_ref())
                .map_err(|_| WireError::Xml("namespace is not UTF-8".into()))?;
            Some(intern(namespaces, uri))
        }
        ResolveResult::Unbound => None,
        ResolveResult::Unknown(p) => {
            return Err(WireError::Xml(format!(
                "undeclared prefix {}",
                String::from_utf8_lossy(&p)
            )))
        }
    };
    let local = e.local_name();
    let name = match names.iter().find(|n| n.as_bytes() == local.as_ref()) {
        Some(n) => n.clone(),
        None => {
            let n = Name::from(
                std::str::from_utf8(local.as_ref())
                    .map_err(|_| WireError::Xml("element name is not UTF-8".into()))?,
            );
            if names.len() < 64 {
                names.push(n.clone());
            }
            n
        }
    };
    let (raw, decls) = checked_attributes(e, limits)?;
    let mut attrs = Vec::with_capacity(raw.len());
    for a in raw {
        let qname = std::str::from_utf8(a.key.as_ref())
            .map_err(|_| WireError::Xml("attribute name is not UTF-8".into()))?
            .to_string();
        let value = a
            .unescape_value()
            .map_err(|e| WireError::Xml(e.to_string()))?
            .into_owned();
        if value.len() > limits.max_text {
            return Err(WireError::Limit("attribute too long"));
        }
        attrs.push(Attr { qname, value });
    }
    Ok((
        Element {
            ns,
            name,
            attrs,
            children: Vec::new(),
        },
        decls,
    ))
}

/// A start tag's attributes, checked in time linear in the tag: at most
/// [`Limits::max_attrs`] (counted while reading, so a tag with a million attributes stops at
/// the first one over), each name once (duplicates found through a hash set, not by
/// comparing every pair as quick-xml's own check does), and the number of namespace
/// declarations among them.
pub fn checked_attributes<'a>(
    e: &'a BytesStart<'a>,
    limits: &Limits,
) -> Result<(Vec<Attribute<'a>>, usize), WireError> {
    let mut out: Vec<Attribute<'a>> = Vec::new();
    let mut decls = 0;
    for a in e.attributes().with_checks(false) {
        if out.len() >= limits.max_attrs {
            return Err(WireError::Limit("too many attributes"));
        }
        let a = a.map_err(|e| WireError::Xml(e.to_string()))?;
        if a.key.as_namespace_binding().is_some() {
            decls += 1;
        }
        out.push(a);
    }
    let duplicate = if out.len() <= 8 {
        out.iter()
            .enumerate()
            .any(|(i, a)| out[..i].iter().any(|b| b.key == a.key))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(out.len());
        !out.iter().all(|a| seen.insert(a.key.as_ref()))
    };
    if duplicate {
        return Err(WireError::Xml("duplicate attribute".into()));
    }
    Ok((out, decls))
}

fn intern(cache: &mut Vec<Arc<str>>, uri: &str) -> Arc<str> {
    if let Some(a) = cache.iter().find(|a| &***a == uri) {
        return a.clone();
    }
    let a: Arc<str> = Arc::from(uri);
    if cache.len() < 64 {
        cache.push(a.clone());
    }
    a
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(el)),
        None => *root = Some(el),
    }
}

fn push_text(stack: &mut [Element], s: &str, limits: &Limits) -> Result<(), WireError> {
    let Some(parent) = stack.last_mut() else {
        if s.trim().is_empty() {
            return Ok(());
        }
        return Err(WireError::Xml("text outside the root element".into()));
    };
    if let Some(Node::Text(prev)) = parent.children.last_mut() {
        if prev.len() + s.len() > limits.max_text {
            return Err(WireError::Limit("text too long"));
        }
        prev.push_str(s);
    } else {
        if s.len() > limits.max_text {
            return Err(WireError::Limit("text too long"));
        }
        if parent.children.capacity() == 0 {
            // Most text is a leaf's only child: no room for more until it is needed.
            parent.children.reserve_exact(1);
        }
        parent.children.push(Node::Text(s.to_string()));
    }
    Ok(())
}

/// Text escaped once by [`Escaped::new`], to be written many times with
/// [`XmlWriter::leaf_escaped`] (e.g. a cached update fragment): the only way to put
/// pre-escaped text into a writer, so nothing unescaped can slip through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Escaped(Arc<str>);

impl Escaped {
    /// Escapes `text` as element content.
    pub fn new(text: &str) -> Self {
        Self(escape_text(text).into())
    }

    /// The escaped text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Length of the escaped text in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Appends `n` in decimal (what `write!("{n}")` gives, without the formatting machinery: a
/// SyncUpdates answer writes hundreds of integers).
pub fn push_int(buf: &mut String, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        buf.push('-');
    }
    // Only ASCII digits were written, so the conversion cannot fail.
    buf.push_str(std::str::from_utf8(&digits[at..]).unwrap_or("0"));
}

/// Builds XML text. Every value goes through escaping; names are the caller's constants.
#[derive(Debug, Default)]
pub struct XmlWriter {
    buf: String,
    /// Open elements: where each one's name sits in `buf` (copied from there by `end`).
    open: Vec<std::ops::Range<usize>>,
    in_tag: bool,
}

impl XmlWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty writer with room for `bytes` of output.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: String::with_capacity(bytes),
            ..Self::default()
        }
    }

    /// A writer with room for `bytes` of output that starts with the XML declaration
    /// (`<?xml version="1.0" encoding="utf-8"?>`).
    pub fn with_declaration(bytes: usize) -> Self {
        let mut w = Self::with_capacity(bytes);
        w.buf.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>");
        w
    }

    /// `<name>n</name>` for an integer (formatted straight into the buffer).
    pub fn leaf_int(&mut self, name: &str, n: i64) -> &mut Self {
        self.open_leaf(name);
        push_int(&mut self.buf, n);
        self.close_leaf(name)
    }

    /// `<name>text</name>` where `f` appends the text, which needs no escaping (digits,
    /// dates).
    pub fn leaf_plain_with(&mut self, name: &str, f: impl FnOnce(&mut String)) -> &mut Self {
        self.open_leaf(name);
        f(&mut self.buf);
        self.close_leaf(name)
    }

    /// Appends complete, well-formed markup the caller wrote as a constant (closes a pending
    /// start tag first).
    pub fn raw_text(&mut self, xml: &'static str) -> &mut Self {
        self.close_tag();
        self.buf.push_str(xml);
        self
    }

    /// `<name>text</name>` for text the caller guarantees needs no escaping (digits, dates,
    /// fixed words).
    pub fn leaf_plain(&mut self, name: &str, text: &str) -> &mut Self {
        debug_assert!(!text.contains(['<', '>', '&', '"', '\'']), "{text}");
        self.open_leaf(name);
        self.buf.push_str(text);
        self.close_leaf(name)
    }

    /// Starts `<name` (attributes may follow with [`XmlWriter::attr`]).
    pub fn start(&mut self, name: &str) -> &mut Self {
        self.close_tag();
        debug_assert!(is_xml_name(name), "bad element name {name}");
        self.buf.push('<');
        let at = self.buf.len();
        self.buf.push_str(name);
        self.open.push(at..self.buf.len());
        self.in_tag = true;
        self
    }

    /// Adds an attribute to the element just started.
    pub fn attr(&mut self, name: &str, value: &str) -> &mut Self {
        debug_assert!(self.in_tag, "attribute outside a start tag");
        debug_assert!(is_xml_name(name), "bad attribute name {name}");
        self.buf.push(' ');
        self.buf.push_str(name);
        self.buf.push_str("=\"");
        escape_into(&mut self.buf, value, true);
        self.buf.push('"');
        self
    }

    /// Writes escaped text into the current element.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.close_tag();
        escape_into(&mut self.buf, text, false);
        self
    }

    /// Ends the innermost open element (`<a/>` when it has no content).
    pub fn end(&mut self) -> &mut Self {
        if let Some(name) = self.open.pop() {
            if self.in_tag {
                self.buf.push_str(" />");
                self.in_tag = false;
            } else {
                self.buf.push_str("</");
                // Copied through a stack buffer (names are short; MSRV has no
                // `String::extend_from_within`).
                let mut tmp = [0u8; 64];
                let n = name.len();
                if n <= tmp.len() {
                    tmp[..n].copy_from_slice(&self.buf.as_bytes()[name]);
                    self.buf
                        .push_str(std::str::from_utf8(&tmp[..n]).unwrap_or_default());
                } else {
                    let owned = self.buf[name].to_string();
                    self.buf.push_str(&owned);
                }
                self.buf.push('>');
            }
        }
        self
    }

    /// `<name>text</name>`.
    pub fn leaf(&mut self, name: &str, text: &str) -> &mut Self {
        self.open_leaf(name);
        escape_into(&mut self.buf, text, false);
        self.close_leaf(name)
    }

    /// `<name>text</name>` with text escaped beforehand by [`Escaped::new`].
    pub fn leaf_escaped(&mut self, name: &str, text: &Escaped) -> &mut Self {
        self.open_leaf(name);
        self.buf.push_str(text.as_str());
        self.close_leaf(name)
    }

    /// `<name>` for a leaf (not pushed on the open stack: its end tag follows at once).
    fn open_leaf(&mut self, name: &str) {
        self.close_tag();
        debug_assert!(is_xml_name(name), "bad element name {name}");
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push('>');
    }

    fn close_leaf(&mut self, name: &str) -> &mut Self {
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push('>');
        self
    }

    /// `<name>text</name>` when `Some`, nothing when `None`.
    pub fn opt_leaf(&mut self, name: &str, text: Option<&str>) -> &mut Self {
        if let Some(t) = text {
            self.leaf(name, t);
        }
        self
    }

    /// `<name />`.
    pub fn empty(&mut self, name: &str) -> &mut Self {
        self.start(name).end()
    }

    /// Appends a complete, already well-formed subtree written by another [`XmlWriter`].
    pub fn raw_subtree(&mut self, other: XmlWriter) -> &mut Self {
        self.close_tag();
        self.buf.push_str(&other.finish());
        self
    }

    /// Closes everything still open and returns the text.
    pub fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.end();
        }
        self.buf
    }

    fn close_tag(&mut self) {
        if self.in_tag {
            self.buf.push('>');
            self.in_tag = false;
        }
    }
}

fn is_xml_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ':' | '_' | '-' | '.'))
}

/// Escapes `s` into `out`; characters XML 1.0 cannot carry become U+FFFD.
///
/// Works on bytes and copies the runs between special characters in one go: every special
/// character is ASCII except U+FFFE / U+FFFF (UTF-8 `EF BF BE` / `EF BF BF`), so a run never
/// splits a character.
fn escape_into(out: &mut String, s: &str, attr: bool) {
    let b = s.as_bytes();
    out.reserve(b.len());
    let mut run = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let rep: Option<&str> = match c {
            b'&' => Some("&amp;"),
            b'<' => Some("&lt;"),
            b'>' => Some("&gt;"),
            b'"' if attr => Some("&quot;"),
            b'\'' if attr => Some("&apos;"),
            b'\t' if attr => Some("&#x9;"),
            b'\n' if attr => Some("&#xA;"),
            b'\r' if attr => Some("&#xD;"),
            b'\r' => Some("&#xD;"),
            b'\t' | b'\n' => None,
            c if c < 0x20 => Some("\u{fffd}"),
            0xEF if i + 2 < b.len()
                && b[i + 1] == 0xBF
                && (b[i + 2] == 0xBE || b[i + 2] == 0xBF) =>
            {
                out.push_str(&s[run..i]);
                out.push('\u{fffd}');
                i += 3;
                run = i;
                continue;
            }
            _ => None,
        };
        if let Some(r) = rep {
            out.push_str(&s[run..i]);
            out.push_str(r);
            run = i + 1;
        }
        i += 1;
    }
    out.push_str(&s[run..]);
}

/// Escapes text content (exposed for callers that build element-free strings, e.g. tests).
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s, false);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_written_as_std_formats_them() {
        for n in [
            0i64,
            7,
            -7,
            10,
            99,
            -100,
            2147483647,
            -2147483648,
            i64::MAX,
            i64::MIN,
        ] {
            let mut s = String::from("x");
            push_int(&mut s, n);
            assert_eq!(s, format!("x{n}"));
        }
    }

    #[test]
    fn resolves_namespaces_whatever_the_prefix() {
        let a = parse_document(
            r#"<a:x xmlns:a="urn:n"><a:y>1</a:y></a:x>"#,
            &Limits::default(),
        )
        .unwrap();
        let b = parse_document(r#"<x xmlns="urn:n"><y>1</y></x>"#, &Limits::default()).unwrap();
        assert!(a.is("urn:n", "x"));
        assert!(b.is("urn:n", "x"));
        assert_eq!(a.req("y").unwrap().ns.as_deref(), Some("urn:n"));
        assert_eq!(a.req_text("y").unwrap(), b.req_text("y").unwrap());
    }

    #[test]
    fn writer_escapes_text_and_attributes() {
        let mut w = XmlWriter::new();
        w.start("a").attr("v", "x\"<&>'\n");
        w.leaf("b", "<&>\u{1}");
        w.empty("c");
        let s = w.finish();
        assert_eq!(
            s,
            "<a v=\"x&quot;&lt;&amp;&gt;&apos;&#xA;\"><b>&lt;&amp;&gt;\u{fffd}</b><c /></a>"
        );
        let back = parse_document(&s, &Limits::default()).unwrap();
        assert_eq!(back.attr("v"), Some("x\"<&>'\n"));
        assert_eq!(back.req_text("b").unwrap(), "<&>\u{fffd}");
    }

    #[test]
    fn limits_are_enforced() {
        let deep = "<a>".repeat(200) + &"</a>".repeat(200);
        assert!(matches!(
            parse_document(&deep, &Limits::default()),
            Err(WireError::Limit(_))
        ));
        let many = format!("<r>{}</r>", "<i/>".repeat(50));
        let small = Limits {
            max_elements: 10,
            ..Limits::default()
        };
        assert!(matches!(
            parse_document(&many, &small),
            Err(WireError::Limit(_))
        ));
        let text = Limits {
            max_text: 4,
            ..Limits::default()
        };
        assert!(matches!(
            parse_document("<r>hello</r>", &text),
            Err(WireError::Limit(_))
        ));
    }

    /// One start tag with `n` distinct attributes, in a SOAP body (issue 15: 100,000 took
    /// 13 s and 200,000 took 94 s, because each attribute was compared with all before it).
    fn many_attributes(n: usize) -> String {
        let mut s = String::from(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x"#,
        );
        for i in 0..n {
            s.push_str(&format!(" a{i}=\"\""));
        }
        s.push_str("/></s:Body></s:Envelope>");
        s
    }

    #[test]
    fn an_element_with_a_hundred_thousand_attributes_is_refused_by_count() {
        for n in [100_000, 200_000] {
            let body = many_attributes(n);
            assert!(body.len() < 4 << 20);
            assert!(matches!(
                parse_document(&body, &Limits::default()),
                Err(WireError::Limit("too many attributes"))
            ));
        }
        // At the limit it is still a document.
        let ok = parse_document(&many_attributes(128), &Limits::default()).unwrap();
        assert_eq!(
            ok.elements()
                .next()
                .unwrap()
                .elements()
                .next()
                .unwrap()
                .attrs
                .len(),
            128
        );
    }

    #[test]
    fn duplicate_attributes_are_found_wherever_they_are() {
        for (n, dup) in [(2, 1), (8, 7), (9, 8), (128, 127), (128, 64)] {
            let mut tag = String::from("<x");
            for i in 0..n {
                // Attribute `dup` repeats attribute 0's name.
                let k = if i == dup { 0 } else { i };
                tag.push_str(&format!(" a{k}='v'"));
            }
            tag.push_str("/>");
            let err = parse_document(&tag, &Limits::default()).unwrap_err();
            assert!(
                matches!(&err, WireError::Xml(m) if m.contains("duplicate")),
                "{n}/{dup}: {err:?}"
            );
            // Same prefix, different local names are distinct.
        }
        let fine = parse_document("<x a:b='1' b='2' xmlns:a='urn:a'/>", &Limits::default());
        assert_eq!(fine.unwrap().attrs.len(), 3);
    }

    #[test]
    fn namespaces_in_scope_are_bounded_but_repeated_declarations_are_not() {
        // 60,000 prefixes declared on the root, then elements resolved against all of them.
        let mut s = String::from("<r");
        for i in 0..60_000 {
            s.push_str(&format!(" xmlns:p{i}='urn:{i}'"));
        }
        s.push('>');
        s.push_str(&"<p0:x/>".repeat(10_000));
        s.push_str("</r>");
        let big = Limits {
            max_attrs: 100_000,
            ..Limits::default()
        };
        assert!(matches!(
            parse_document(&s, &big),
            Err(WireError::Limit("too many namespace declarations"))
        ));
        // Declarations nested 100 deep add up...
        let deep = (0..100)
            .map(|i| format!("<e xmlns:q{i}='urn:q'>"))
            .collect::<String>()
            + &"</e>".repeat(100);
        assert!(matches!(
            parse_document(&deep, &Limits::default()),
            Err(WireError::Limit("too many namespace declarations"))
        ));
        // ...but siblings that each declare the same namespace (as .NET writes them) do not.
        let siblings = format!("<r>{}</r>", "<i xmlns='urn:i'>1</i>".repeat(1_000));
        let r = parse_document(&siblings, &Limits::default()).unwrap();
        assert_eq!(r.elements().count(), 1_000);
        assert!(r.elements().all(|e| e.is("urn:i", "i")));
    }

    #[test]
    fn rejects_doctype_and_mismatched_tags() {
        assert!(parse_document("<!DOCTYPE x [<!ENTITY a 'b'>]><x/>", &Limits::default()).is_err());
        assert!(parse_document("<a><b></a></b>", &Limits::default()).is_err());
        assert!(parse_document("<a>", &Limits::default()).is_err());
        assert!(parse_document("", &Limits::default()).is_err());
        assert!(parse_document("<p:a/>", &Limits::default()).is_err());
    }
}
