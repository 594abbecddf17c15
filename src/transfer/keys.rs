//! Signing keys: `keygen`, PEM key files that OpenSSL also reads (PKCS#8 private key,
//! SubjectPublicKeyInfo public key), and the ed25519 signature over `manifest.json`.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::TransferError;

/// DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410), followed by the 32 key bytes.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of an ed25519 PKCS#8 v1 private key (RFC 8410), followed by the 32-byte seed.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A signing key and its public half.
pub struct KeyPair {
    /// The private key.
    pub signing: SigningKey,
}

impl KeyPair {
    /// A fresh random key.
    pub fn generate() -> KeyPair {
        KeyPair {
            signing: SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// The public key.
    pub fn public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// Signs bytes (the exact bytes of `manifest.json`).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n")
}

fn unpem(path: &Path, text: &str, label: &str) -> Result<Vec<u8>, TransferError> {
    let bad = |d: &str| TransferError::Key {
        path: path.to_path_buf(),
        detail: d.to_string(),
    };
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = text
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(b, _)| b)
        .ok_or_else(|| bad(&format!("not a PEM {label}")))?;
    let b64: String = body.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad("bad base64"))
}

/// The public key as PEM (`signer.pub`, `K.pub`).
pub fn public_pem(key: &VerifyingKey) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(key.as_bytes());
    pem("PUBLIC KEY", &der)
}

/// Parses a PEM ed25519 public key; `path` names it in errors.
pub fn parse_public(path: &Path, text: &[u8]) -> Result<VerifyingKey, TransferError> {
    let bad = |d: &str| TransferError::Key {
        path: path.to_path_buf(),
        detail: d.to_string(),
    };
    let text = std::str::from_utf8(text).map_err(|_| bad("not text"))?;
    let der = unpem(path, text, "PUBLIC KEY")?;
    let raw = der
        .strip_prefix(&SPKI_PREFIX[..])
        .filter(|r| r.len() == 32)
        .ok_or_else(|| bad("not an ed25519 public key"))?;
    let arr: [u8; 32] = raw.try_into().map_err(|_| bad("bad length"))?;
    VerifyingKey::from_bytes(&arr).map_err(|_| bad("invalid ed25519 point"))
}

/// Reads a public key file (`--trust K.pub`).
pub fn read_public(path: &Path) -> Result<VerifyingKey, TransferError> {
    let text = std::fs::read(path).map_err(TransferError::io(path))?;
    parse_public(path, &text)
}

/// Reads a private key file (`--sign K.key`).
pub fn read_private(path: &Path) -> Result<KeyPair, TransferError> {
    let bad = |d: &str| TransferError::Key {
        path: path.to_path_buf(),
        detail: d.to_string(),
    };
    let text = std::fs::read_to_string(path).map_err(TransferError::io(path))?;
    let der = unpem(path, &text, "PRIVATE KEY")?;
    let raw = der
        .strip_prefix(&PKCS8_PREFIX[..])
        .filter(|r| r.len() == 32)
        .ok_or_else(|| bad("not an ed25519 private key"))?;
    let seed: [u8; 32] = raw.try_into().map_err(|_| bad("bad length"))?;
    Ok(KeyPair {
        signing: SigningKey::from_bytes(&seed),
    })
}

/// A short, stable name for a public key: `ed25519:` + the first 16 hex digits of its SHA-256.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let d = Sha256::digest(key.as_bytes());
    format!("ed25519:{}", hex::encode(&d[..8]))
}

/// Checks `sig` over `msg` with `key`.
pub fn verify(key: &VerifyingKey, msg: &[u8], sig: &[u8]) -> Result<(), TransferError> {
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| TransferError::BadSignature(format!("{} bytes, expected 64", sig.len())))?;
    key.verify(msg, &Signature::from_bytes(&sig))
        .map_err(|_| TransferError::BadSignature(format!("signer {}", fingerprint(key))))
}

/// Writes `<out>.key` (mode 0600, never overwriting) and `<out>.pub`; returns both paths.
pub fn keygen(out: &Path) -> Result<(PathBuf, PathBuf, KeyPair), TransferError> {
    use std::os::unix::fs::OpenOptionsExt;
    let key_path = with_suffix(out, "key");
    let pub_path = with_suffix(out, "pub");
    let kp = KeyPair::generate();
    let mut der = PKCS8_PREFIX.to_vec();
    der.extend_from_slice(kp.signing.as_bytes());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(TransferError::io(&key_path))?;
    f.write_all(pem("PRIVATE KEY", &der).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(TransferError::io(&key_path))?;
    std::fs::write(&pub_path, public_pem(&kp.public())).map_err(TransferError::io(&pub_path))?;
    Ok((key_path, pub_path, kp))
}

fn with_suffix(p: &Path, ext: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keygen_writes_readable_keys_and_signatures_check() {
        let d = tempfile::tempdir().unwrap();
        let (k, p, kp) = keygen(&d.path().join("site")).unwrap();
        assert_eq!(
            std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = read_private(&k).unwrap();
        let public = read_public(&p).unwrap();
        assert_eq!(public, kp.public());
        let sig = back.sign(b"hello");
        verify(&public, b"hello", &sig).unwrap();
        assert!(verify(&public, b"hellO", &sig).is_err());
        assert!(keygen(&d.path().join("site")).is_err(), "never overwrites");
        assert!(
            read_public(&k).is_err(),
            "a private key is not a public key"
        );
    }
}
