//! MS-WSUSSS wire layer: the SOAP codec, one typed struct per server-to-server operation,
//! Windows anchors, compressed update blobs and the update-XML parser. Pure code: no I/O, no
//! HTTP, no store. The sync client, the upstream service and the simulator all share it.
//!
//! | module | owns |
//! |---|---|
//! | [`xml`] | bounded namespace-aware XML tree reader, escaping [`xml::XmlWriter`] |
//! | [`soap`] | SOAP 1.1/1.2 envelopes (accept both, emit 1.1), faults, [`soap::SoapBody`] |
//! | [`sss`] | MS-WSUSSS operations: request and response types, both directions |
//! | [`wusp`] | MS-WUSP (client protocol) operations: request and response types, both directions |
//! | [`stream`] | what the streaming request decoders share: reader, limit counting, envelope walk |
//! | [`anchor`] | the Windows anchor `nnnn,yyyy-MM-dd HH:mm:ss.fff` |
//! | [`blob`] | `XmlUpdateBlobCompressed`: base64 → CAB → UTF-16LE, and back |
//! | [`update_xml`] | `upd:Update` documents → [`crate::model::UpdateRecord`], client fragments |
//! | [`values`] | xs:dateTime, GUID, boolean and integer text forms |
//!
//! Not here: HTTP status codes, retries, cookies' cryptography, the store.

pub mod anchor;
pub mod blob;
pub mod soap;
pub mod sss;
pub mod stream;
pub mod update_xml;
pub mod values;
pub mod wusp;
pub mod xml;

pub use anchor::Anchor;
pub use soap::{ErrorCode, Fault, SoapBody, SoapVersion};

/// Everything that can go wrong decoding or encoding wire data.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The input is not well-formed XML (or uses a DTD).
    #[error("malformed XML: {0}")]
    Xml(String),
    /// The input exceeds a [`xml::Limits`] bound.
    #[error("input exceeds a limit: {0}")]
    Limit(&'static str),
    /// Not a SOAP envelope, or a body without an operation element.
    #[error("not a SOAP message: {0}")]
    NotSoap(String),
    /// The body holds a different operation than the one expected.
    #[error("unexpected operation {{{ns}}}{name}, wanted {wanted}")]
    UnexpectedOperation {
        /// Namespace found.
        ns: String,
        /// Local name found.
        name: String,
        /// The expected local name.
        wanted: &'static str,
    },
    /// A required element is absent.
    #[error("<{parent}> lacks <{name}>")]
    Missing {
        /// The parent element's local name.
        parent: String,
        /// The missing child.
        name: String,
    },
    /// A value does not parse as its schema type.
    #[error("bad value for {field}: {value:?}")]
    BadValue {
        /// Which field.
        field: &'static str,
        /// The offending text (truncated).
        value: String,
    },
    /// The peer answered with a SOAP fault.
    #[error("SOAP fault: {0}")]
    Fault(Box<Fault>),
    /// A compressed blob could not be decoded or built.
    #[error("update blob: {0}")]
    Blob(String),
}

impl WireError {
    /// The fault, when the peer answered with one.
    pub fn fault(&self) -> Option<&Fault> {
        match self {
            Self::Fault(f) => Some(f),
            _ => None,
        }
    }

    /// True when the peer answered with a fault carrying this error code.
    pub fn is_fault(&self, code: &ErrorCode) -> bool {
        self.fault().is_some_and(|f| &f.error_code == code)
    }

    pub(crate) fn bad(field: &'static str, value: &str) -> Self {
        let mut v: String = value.chars().take(80).collect();
        if v.len() < value.len() {
            v.push('…');
        }
        Self::BadValue { field, value: v }
    }
}
