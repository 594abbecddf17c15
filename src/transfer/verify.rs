//! `verify-package`: the signature against the embedded `signer.pub` (and the `--trust`
//! keys), `SHA256SUMS` against the manifest, then every file's size, SHA-1 and SHA-256.

use std::path::Path;

use ed25519_dalek::VerifyingKey;

use super::error::from_io;
use super::hashing::{copy_hashed, Digests, ManifestDigests};
use super::keys;
use super::manifest::{check_sums, Manifest, SIGNER};
use super::package::Package;
use super::progress::Progress;
use super::TransferError;

/// What a successful verification saw.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The manifest.
    pub manifest: Manifest,
    /// The signer's fingerprint.
    pub signer: String,
    /// Files checked.
    pub files: usize,
    /// Bytes checked.
    pub bytes: u64,
}

/// Checks the header files of an opened package: signature, trust, manifest, `SHA256SUMS`.
pub fn check_header(
    pkg: &Package,
    trust: &[VerifyingKey],
) -> Result<(Manifest, VerifyingKey), TransferError> {
    let signer = keys::parse_public(Path::new(SIGNER), &pkg.signer)?;
    keys::verify(&signer, &pkg.manifest_bytes, &pkg.signature)?;
    if !trust.is_empty() && !trust.contains(&signer) {
        return Err(TransferError::Untrusted {
            fingerprint: keys::fingerprint(&signer),
        });
    }
    let m = Manifest::parse(&pkg.manifest_bytes)?;
    let digest = hex::encode(Digests::of(&pkg.manifest_bytes).sha256);
    check_sums(&pkg.sums, &digest, &m)?;
    Ok((m, signer))
}

/// Verifies a package (directory or first volume) without importing it.
pub fn verify_package(path: &Path, trust: &[VerifyingKey]) -> Result<VerifyReport, TransferError> {
    let mut pkg = Package::open(path)?;
    let (m, signer) = check_header(&pkg, trust)?;
    let mut progress = Progress::new("verify", m.files.len() as u64, m.total_bytes());
    let loc = pkg.location.clone();
    pkg.walk(&m, &mut |e, data| {
        let d =
            copy_hashed(data, None, &mut |n| progress.bytes(n)).map_err(|x| from_io(x, &loc))?;
        d.check(e)?;
        progress.file_done();
        Ok(())
    })?;
    progress.finish();
    Ok(VerifyReport {
        files: m.files.len(),
        bytes: m.total_bytes(),
        manifest: m,
        signer: keys::fingerprint(&signer),
    })
}
