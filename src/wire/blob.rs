//! `XmlUpdateBlobCompressed` (MS-WSUSSS §3.1.4.6.3.3): base64 of a Cabinet holding one member
//! (named `blob` on Windows) whose bytes are the `upd:Update` document in UTF-16LE without BOM.
//! Windows compresses that folder with LZX (2 MB window); the `cab` crate reads LZX, MSZIP and
//! stored folders.
//!
//! When wsus-edge is the upstream it writes the blob with **MSZIP**, because the `cab` crate
//! (0.6) cannot write LZX. A wsus-edge downstream reads both; whether a Windows downstream
//! accepts an MSZIP folder here is not verified (Cabinet readers on Windows handle MSZIP, and
//! the spec names the container format, but says LZX).
//!
//! Windows sends the compressed form when the document is larger than 5,120 bytes (fn 36),
//! measured on the UTF-16 text; [`UpdateBlob::from_xml`] applies the same threshold.

use std::io::{Cursor, Read, Write};

use super::values::{format_base64, parse_base64};
use super::WireError;

/// Compress when the UTF-16 text is larger than this many bytes.
pub const COMPRESS_THRESHOLD: usize = 5120;
/// Largest decompressed document accepted (hostile-input bound).
pub const MAX_DECOMPRESSED: usize = 64 << 20;
/// Name of the single Cabinet member Windows writes.
pub const CAB_MEMBER: &str = "blob";

/// An update's metadata as carried in `ServerSyncUpdateData`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateBlob {
    /// `XmlUpdateBlob`: the document as text.
    Plain(String),
    /// `XmlUpdateBlobCompressed`: base64 text of the Cabinet.
    Compressed(String),
}

impl UpdateBlob {
    /// Chooses the form Windows would: compressed above [`COMPRESS_THRESHOLD`].
    pub fn from_xml(xml: &str) -> Result<Self, WireError> {
        if utf16_len(xml) > COMPRESS_THRESHOLD {
            Ok(Self::Compressed(compress(xml)?))
        } else {
            Ok(Self::Plain(xml.to_string()))
        }
    }

    /// The update document as text.
    pub fn xml(&self) -> Result<String, WireError> {
        match self {
            Self::Plain(s) => Ok(s.clone()),
            Self::Compressed(b64) => decompress(b64),
        }
    }
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count() * 2
}

/// base64 → CAB → UTF-16LE → `String`.
pub fn decompress(b64: &str) -> Result<String, WireError> {
    let cab_bytes = parse_base64("XmlUpdateBlobCompressed", b64)?;
    let utf16 = read_cab(&cab_bytes)?;
    decode_utf16le(&utf16)
}

fn read_cab(bytes: &[u8]) -> Result<Vec<u8>, WireError> {
    let err = |e: std::io::Error| WireError::Blob(format!("cabinet: {e}"));
    let mut cabinet = cab::Cabinet::new(Cursor::new(bytes)).map_err(err)?;
    let (name, size) = {
        let mut files = cabinet.folder_entries().flat_map(|f| f.file_entries());
        let first = files
            .next()
            .ok_or_else(|| WireError::Blob("empty cabinet".into()))?;
        (first.name().to_string(), first.uncompressed_size() as usize)
    };
    if size > MAX_DECOMPRESSED {
        return Err(WireError::Blob(format!(
            "member of {size} bytes is too large"
        )));
    }
    let reader = cabinet.read_file(&name).map_err(err)?;
    let mut out = Vec::with_capacity(size);
    reader
        .take(MAX_DECOMPRESSED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(err)?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(WireError::Blob("decompressed blob is too large".into()));
    }
    Ok(out)
}

fn decode_utf16le(b: &[u8]) -> Result<String, WireError> {
    if !b.len().is_multiple_of(2) {
        return Err(WireError::Blob("odd UTF-16 length".into()));
    }
    let units = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]));
    let s: String = char::decode_utf16(units)
        .collect::<Result<_, _>>()
        .map_err(|_| WireError::Blob("invalid UTF-16".into()))?;
    Ok(s.strip_prefix('\u{feff}').map(str::to_string).unwrap_or(s))
}

/// `String` → UTF-16LE (no BOM) → CAB (one MSZIP folder, member `blob`) → base64.
pub fn compress(xml: &str) -> Result<String, WireError> {
    let mut utf16 = Vec::with_capacity(xml.len() * 2);
    for u in xml.encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    let err = |e: std::io::Error| WireError::Blob(format!("cabinet: {e}"));
    let mut builder = cab::CabinetBuilder::new();
    builder
        .add_folder(cab::CompressionType::MsZip)
        .add_file(CAB_MEMBER);
    let mut writer = builder.build(Cursor::new(Vec::new())).map_err(err)?;
    while let Some(mut file) = writer.next_file().map_err(err)? {
        file.write_all(&utf16).map_err(err)?;
    }
    let cursor = writer.finish().map_err(err)?;
    Ok(format_base64(&cursor.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_non_ascii_text() {
        let xml = format!(
            "<upd:Update xmlns:upd=\"http://schemas.microsoft.com/msus/2002/12/Update\">{}</upd:Update>",
            "Ελληνικά – 日本語 & émoji 😀 ".repeat(400)
        );
        let b64 = compress(&xml).unwrap();
        let cab = parse_base64("x", &b64).unwrap();
        assert_eq!(&cab[..4], b"MSCF");
        assert_eq!(decompress(&b64).unwrap(), xml);
    }

    #[test]
    fn threshold_is_measured_on_utf16() {
        // 2,560 ASCII chars = 5,120 UTF-16 bytes: not above the threshold.
        let at = "a".repeat(2560);
        assert!(matches!(
            UpdateBlob::from_xml(&at).unwrap(),
            UpdateBlob::Plain(_)
        ));
        let above = "a".repeat(2561);
        let blob = UpdateBlob::from_xml(&above).unwrap();
        assert!(matches!(blob, UpdateBlob::Compressed(_)));
        assert_eq!(blob.xml().unwrap(), above);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decompress("not base64!").is_err());
        assert!(decompress(&format_base64(b"MSCF\0\0\0\0garbage")).is_err());
        let good = parse_base64("x", &compress(&"x".repeat(3000)).unwrap()).unwrap();
        for cut in [10, 40, good.len() / 2, good.len() - 1] {
            assert!(decompress(&format_base64(&good[..cut])).is_err());
        }
        let mut flipped = good.clone();
        let n = flipped.len();
        flipped[n - 20] ^= 0xff;
        let _ = decompress(&format_base64(&flipped));
    }
}
