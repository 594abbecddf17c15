//! The one MIME table for payloads, as a correctly set up WSUS (IIS) serves them: IIS's
//! defaults plus the two maps Microsoft documents for UUP (`.wim`, `.msu`). An extension not in
//! the table is served as `application/octet-stream`, never refused (IIS's 404.3 broke `.psf`).

/// Extension (lower-case, no dot) → Content-Type. The only such table in the crate.
pub const TABLE: &[(&str, &str)] = &[
    ("cab", "application/vnd.ms-cab-compressed"),
    ("esd", "application/vnd.ms-cab-compressed"),
    ("wim", "application/x-ms-wim"),
    ("msu", "application/octet-stream"),
    ("exe", "application/octet-stream"),
    ("msi", "application/octet-stream"),
    ("msp", "application/octet-stream"),
    ("psf", "application/octet-stream"),
    ("dat", "application/octet-stream"),
    ("appx", "application/appx"),
    ("appxbundle", "application/appxbundle"),
    ("msix", "application/msix"),
    ("msixbundle", "application/msixbundle"),
    ("json", "application/json"),
    ("xml", "text/xml"),
    ("txt", "text/plain"),
];

/// The type served for anything not in [`TABLE`].
pub const DEFAULT: &str = "application/octet-stream";

/// The Content-Type for an extension (any case, without the dot).
pub fn content_type(ext: &str) -> &'static str {
    TABLE
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map(|(_, t)| *t)
        .unwrap_or(DEFAULT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_of_issue_3() {
        let want = [
            ("wim", "application/x-ms-wim"),
            ("msu", "application/octet-stream"),
            ("cab", "application/vnd.ms-cab-compressed"),
            ("esd", "application/vnd.ms-cab-compressed"),
            ("exe", "application/octet-stream"),
            ("msi", "application/octet-stream"),
            ("msp", "application/octet-stream"),
            ("psf", "application/octet-stream"),
            ("dat", "application/octet-stream"),
            ("appx", "application/appx"),
            ("appxbundle", "application/appxbundle"),
            ("msix", "application/msix"),
            ("msixbundle", "application/msixbundle"),
            ("json", "application/json"),
            ("xml", "text/xml"),
            ("txt", "text/plain"),
        ];
        for (ext, ty) in want {
            assert_eq!(content_type(ext), ty, "{ext}");
            assert_eq!(content_type(&ext.to_uppercase()), ty, "{ext} upper");
        }
        assert_eq!(
            TABLE.len(),
            want.len(),
            "table has entries not covered here"
        );
    }

    #[test]
    fn unknown_is_octet_stream() {
        for ext in ["", "zzz", "bin", "7z", "psf2"] {
            assert_eq!(content_type(ext), "application/octet-stream", "{ext}");
        }
    }
}
