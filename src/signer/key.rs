//! The private key apps sign with, parsed once and never printable.
//!
//! Backends are chosen per algorithm, on measured facts:
//! - RSA-2048 (SHA-1 and SHA-256): OpenSSL (the `openssl` crate). CloudFront's default hash is
//!   SHA-1, which `aws-lc-rs` can only verify, not sign, and the pure-Rust `rsa` crate signs at
//!   about a quarter of OpenSSL's rate (its arithmetic is constant-time by construction).
//!   OpenSSL signs with RSA blinding, so signing leaks no key-dependent timing (the Marvin
//!   attack, RUSTSEC-2023-0071, concerns the `rsa` crate's decryption, not this path).
//! - ECDSA P-256 with SHA-256: `aws-lc-rs`, whose P-256 signing is constant-time and faster
//!   than OpenSSL's generic EVP path; with SHA-1 (CloudFront's default when a request does not
//!   say `Hash-Algorithm=SHA256`, and what AWS SDK signers that added ECDSA produce): OpenSSL,
//!   since `aws-lc-rs` offers no SHA-1 ECDSA signing.
//!
//! Key bytes are zeroized by both libraries when the key is dropped; the PEM text read from
//! disk is zeroized by the caller ([`SigningKey::from_pem`] takes it by reference only).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};

use super::{HashAlgorithm, SignerError};

/// A parsed CloudFront signing key: RSA-2048 or ECDSA P-256.
pub struct SigningKey {
    inner: KeyKind,
}

enum KeyKind {
    Rsa(PKey<Private>),
    EcdsaP256 {
        pair: EcdsaKeyPair,
        rng: SystemRandom,
        /// The same key for OpenSSL, which signs the SHA-1 variant.
        openssl: PKey<Private>,
    },
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({} <redacted>)", self.algorithm_name())
    }
}

impl SigningKey {
    /// Parses a PEM private key: PKCS#1 `RSA PRIVATE KEY`, PKCS#8 `PRIVATE KEY`, or SEC1
    /// `EC PRIVATE KEY`. Only RSA-2048 and ECDSA P-256 are accepted, as CloudFront requires.
    pub fn from_pem(pem: &[u8]) -> Result<Self, SignerError> {
        let key = PKey::private_key_from_pem(pem).map_err(|_| SignerError::MalformedKey)?;
        match key.id() {
            Id::RSA => {
                let bits = key.bits();
                if bits != 2048 {
                    return Err(SignerError::UnsupportedKey(format!(
                        "RSA-{bits} (CloudFront accepts RSA-2048)"
                    )));
                }
                Ok(Self {
                    inner: KeyKind::Rsa(key),
                })
            }
            Id::EC => {
                let curve = key.ec_key().ok().and_then(|ec| ec.group().curve_name());
                if curve != Some(Nid::X9_62_PRIME256V1) {
                    let name = curve
                        .and_then(|c| c.short_name().ok())
                        .unwrap_or("unknown curve");
                    return Err(SignerError::UnsupportedKey(format!(
                        "ECDSA on {name} (CloudFront accepts P-256)"
                    )));
                }
                let pkcs8 = zeroize::Zeroizing::new(
                    key.private_key_to_pkcs8()
                        .map_err(|_| SignerError::MalformedKey)?,
                );
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8)
                    .map_err(|_| SignerError::MalformedKey)?;
                Ok(Self {
                    inner: KeyKind::EcdsaP256 {
                        pair,
                        rng: SystemRandom::new(),
                        openssl: key,
                    },
                })
            }
            other => Err(SignerError::UnsupportedKey(format!(
                "{other:?} keys (CloudFront accepts RSA-2048 and ECDSA P-256)"
            ))),
        }
    }

    pub fn is_ecdsa(&self) -> bool {
        matches!(self.inner, KeyKind::EcdsaP256 { .. })
    }

    fn algorithm_name(&self) -> &'static str {
        if self.is_ecdsa() {
            "ECDSA-P256"
        } else {
            "RSA-2048"
        }
    }

    /// The hash to sign with when none is asked for: SHA-1 for RSA (CloudFront's default);
    /// SHA-256 for ECDSA, as keyfront's Secret says, sent with `Hash-Algorithm=SHA256` (CloudFront
    /// would assume SHA-1 for ECDSA too without it).
    pub fn default_hash(&self) -> HashAlgorithm {
        if self.is_ecdsa() {
            HashAlgorithm::Sha256
        } else {
            HashAlgorithm::Sha1
        }
    }

    /// DER SubjectPublicKeyInfo of the public half, to check a key against its `public_key.pem`.
    pub fn public_key_der(&self) -> Result<Vec<u8>, SignerError> {
        match &self.inner {
            KeyKind::Rsa(key) => key
                .public_key_to_der()
                .map_err(|_| SignerError::MalformedKey),
            KeyKind::EcdsaP256 { pair, .. } => {
                use aws_lc_rs::encoding::AsDer as _;
                use aws_lc_rs::signature::KeyPair as _;
                pair.public_key()
                    .as_der()
                    .map(|d| d.as_ref().to_vec())
                    .map_err(|_| SignerError::MalformedKey)
            }
        }
    }

    /// Signs `message` (PKCS#1 v1.5 for RSA, DER-encoded ECDSA for P-256).
    pub fn sign(&self, hash: HashAlgorithm, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        match &self.inner {
            KeyKind::Rsa(key) => openssl_sign(key, hash, message),
            KeyKind::EcdsaP256 { pair, rng, .. } if hash == HashAlgorithm::Sha256 => pair
                .sign(rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| SignerError::SigningFailed),
            KeyKind::EcdsaP256 { openssl, .. } => openssl_sign(openssl, hash, message),
        }
    }
}

/// PKCS#1 v1.5 (RSA) or DER ECDSA over `message` with OpenSSL.
fn openssl_sign(
    key: &PKey<Private>,
    hash: HashAlgorithm,
    message: &[u8],
) -> Result<Vec<u8>, SignerError> {
    let digest = match hash {
        HashAlgorithm::Sha1 => MessageDigest::sha1(),
        HashAlgorithm::Sha256 => MessageDigest::sha256(),
    };
    let mut signer =
        openssl::sign::Signer::new(digest, key).map_err(|_| SignerError::SigningFailed)?;
    signer
        .update(message)
        .map_err(|_| SignerError::SigningFailed)?;
    signer.sign_to_vec().map_err(|_| SignerError::SigningFailed)
}
