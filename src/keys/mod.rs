//! Signing key pairs: generation, PEM encoding, fingerprints, and a private-key type that
//! cannot be printed.
//!
//! Owns: turning "a new key for this algorithm" into PEM text for the Secret and CloudFront.
//! Must not: store, log or send anything. The private key leaves this module only as
//! [`PrivateKeyPem`], whose `Debug` prints `<redacted>` and whose memory is zeroized on drop.

use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::api::KeyAlgorithm;

/// Why a key pair could not be produced or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the operating system's random number generator failed")]
    Randomness,
    #[error("generating a {algorithm:?} key pair failed")]
    Generation { algorithm: KeyAlgorithm },
    #[error("encoding the {algorithm:?} key pair as PEM failed")]
    Encoding { algorithm: KeyAlgorithm },
    #[error("the public key is not a PEM SubjectPublicKeyInfo")]
    PublicKeyUnreadable,
}

/// A private key in PEM. Never printed, zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(Zeroizing<String>);

impl PrivateKeyPem {
    pub fn new(pem: String) -> Self {
        Self(Zeroizing::new(pem))
    }

    /// The PEM text, for writing into a Secret and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A freshly generated key pair.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub algorithm: KeyAlgorithm,
    /// RSA: PKCS#1 `RSA PRIVATE KEY`. ECDSA: PKCS#8 `PRIVATE KEY`, which the AWS SDK signers
    /// for Python, JavaScript, Go and Java all load.
    pub private_key: PrivateKeyPem,
    /// PEM `PUBLIC KEY` (SubjectPublicKeyInfo), the form CloudFront takes.
    pub public_key_pem: String,
    /// SHA-256 of the DER SubjectPublicKeyInfo, lower-case hex.
    pub fingerprint: String,
}

/// Generates a key pair from the operating system's random number generator.
pub fn generate(algorithm: KeyAlgorithm) -> Result<KeyPair, KeyError> {
    let encoding = || KeyError::Encoding { algorithm };
    match algorithm {
        KeyAlgorithm::Rsa2048 => {
            let private = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048)
                .map_err(|_| KeyError::Generation { algorithm })?;
            let private_pem = private
                .to_pkcs1_pem(LineEnding::LF)
                .map_err(|_| encoding())?;
            let public = rsa::PublicKey::from(&private);
            let public_der = public.to_public_key_der().map_err(|_| encoding())?;
            let public_pem = public
                .to_public_key_pem(LineEnding::LF)
                .map_err(|_| encoding())?;
            Ok(KeyPair {
                algorithm,
                private_key: PrivateKeyPem(private_pem),
                public_key_pem: public_pem,
                fingerprint: hex_sha256(public_der.as_bytes()),
            })
        }
        KeyAlgorithm::EcdsaP256 => {
            use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _};
            // A uniformly random 32-byte string is a valid scalar except with negligible
            // probability; drawing again covers that case without a panicking RNG adapter.
            let secret = loop {
                let mut bytes = Zeroizing::new([0u8; 32]);
                getrandom::fill(bytes.as_mut()).map_err(|_| KeyError::Randomness)?;
                if let Ok(secret) = p256::SecretKey::from_slice(bytes.as_ref()) {
                    break secret;
                }
            };
            let private_pem = secret
                .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
                .map_err(|_| encoding())?;
            let public = secret.public_key();
            let public_der = public.to_public_key_der().map_err(|_| encoding())?;
            let public_pem = public
                .to_public_key_pem(p256::pkcs8::LineEnding::LF)
                .map_err(|_| encoding())?;
            Ok(KeyPair {
                algorithm,
                private_key: PrivateKeyPem(private_pem),
                public_key_pem: public_pem,
                fingerprint: hex_sha256(public_der.as_bytes()),
            })
        }
    }
}

/// The fingerprint of a PEM public key, as [`KeyPair::fingerprint`] computes it.
pub fn fingerprint(public_key_pem: &str) -> Result<String, KeyError> {
    use rsa::pkcs8::der::DecodePem as _;
    let spki = rsa::pkcs8::spki::SubjectPublicKeyInfoOwned::from_pem(public_key_pem.trim())
        .map_err(|_| KeyError::PublicKeyUnreadable)?;
    let der = rsa::pkcs8::der::Encode::to_der(&spki).map_err(|_| KeyError::PublicKeyUnreadable)?;
    Ok(hex_sha256(&der))
}

/// The algorithm of a PEM public key, from its SubjectPublicKeyInfo.
pub fn public_key_algorithm(public_key_pem: &str) -> Result<KeyAlgorithm, KeyError> {
    use rsa::pkcs8::der::DecodePem as _;
    const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
    const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    let spki = rsa::pkcs8::spki::SubjectPublicKeyInfoOwned::from_pem(public_key_pem.trim())
        .map_err(|_| KeyError::PublicKeyUnreadable)?;
    match spki.algorithm.oid.to_string().as_str() {
        RSA_ENCRYPTION => Ok(KeyAlgorithm::Rsa2048),
        EC_PUBLIC_KEY => Ok(KeyAlgorithm::EcdsaP256),
        _ => Err(KeyError::PublicKeyUnreadable),
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::{HashAlgorithm, SigningKey};

    #[test]
    fn generated_keys_load_in_the_signer_and_fingerprint_from_their_public_pem() {
        for algorithm in [KeyAlgorithm::Rsa2048, KeyAlgorithm::EcdsaP256] {
            let pair = generate(algorithm).unwrap();
            assert_eq!(
                public_key_algorithm(&pair.public_key_pem).unwrap(),
                algorithm
            );
            let header = match algorithm {
                KeyAlgorithm::Rsa2048 => "-----BEGIN RSA PRIVATE KEY-----",
                KeyAlgorithm::EcdsaP256 => "-----BEGIN PRIVATE KEY-----",
            };
            assert!(
                pair.private_key.expose().starts_with(header),
                "{algorithm:?}"
            );
            assert!(
                pair.public_key_pem
                    .starts_with("-----BEGIN PUBLIC KEY-----")
            );
            assert_eq!(fingerprint(&pair.public_key_pem).unwrap(), pair.fingerprint);
            let key = SigningKey::from_pem(pair.private_key.expose().as_bytes()).unwrap();
            assert_eq!(key.is_ecdsa(), algorithm == KeyAlgorithm::EcdsaP256);
            let signer_public = key.public_key_der().unwrap();
            assert_eq!(hex_sha256(&signer_public), pair.fingerprint);
            assert!(
                !key.sign(HashAlgorithm::Sha256, b"policy")
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[test]
    fn two_generated_keys_differ() {
        let a = generate(KeyAlgorithm::EcdsaP256).unwrap();
        let b = generate(KeyAlgorithm::EcdsaP256).unwrap();
        assert_ne!(a.fingerprint, b.fingerprint);
    }

    #[test]
    fn private_key_debug_is_redacted() {
        let pair = generate(KeyAlgorithm::EcdsaP256).unwrap();
        let printed = format!("{pair:?}");
        assert!(printed.contains("<redacted>"));
        assert!(!printed.contains("PRIVATE KEY"));
    }
}
