//! CloudFront signed URLs and signed cookies.
//!
//! Owns: turning a key, a key pair ID and a [`Policy`] into exactly the URL parameters and
//! cookies CloudFront verifies (and that the AWS SDK signers produce), and loading the key from
//! the Secret keyfront maintains. Must not: know about the reconciler; it reads files.
//!
//! ```no_run
//! use keyfront::signer::{MountedSigner, Policy};
//! # fn main() -> Result<(), keyfront::signer::SignerError> {
//! // The Secret keyfront writes, mounted at /etc/cloudfront-key; reloaded when it rotates.
//! let signer = MountedSigner::open("/etc/cloudfront-key")?;
//! let url = "https://d111111abcdef8.cloudfront.net/video.mp4";
//! let signed = signer.current()?.sign_url(url, &Policy::canned(url, 1_900_000_000))?;
//! # Ok(()) }
//! ```

pub mod command;
pub mod inspect;
mod key;
mod mounted;
mod policy;
pub mod verify;

pub use key::SigningKey;
pub use mounted::{MountedSigner, SECRET_FILES};
pub use policy::{Policy, cloudfront_base64, decode_cloudfront_base64};

use std::sync::Arc;

/// The hash CloudFront verifies the signature with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// CloudFront's default, for RSA and ECDSA.
    Sha1,
    /// Requested with `Hash-Algorithm=SHA256` (for RSA and ECDSA alike).
    Sha256,
}

impl HashAlgorithm {
    /// Reads `SHA1` / `SHA256` (any case, with or without the dash).
    pub fn parse(value: &str) -> Result<Self, SignerError> {
        match value.trim().to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Ok(Self::Sha1),
            "SHA256" => Ok(Self::Sha256),
            _ => Err(SignerError::UnknownHash(value.trim().to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }
}

/// Why signing could not happen. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("the private key is not a readable PEM RSA or EC private key")]
    MalformedKey,
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    #[error("unknown hash algorithm {0:?} (expected SHA1 or SHA256)")]
    UnknownHash(String),
    #[error("the key pair ID must be a non-empty CloudFront public key ID, got {0:?}")]
    InvalidKeyPairId(String),
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path}: the private key does not match public_key.pem in the same directory")]
    MismatchedKeyFiles { path: String },
    #[error("signing failed in the crypto library")]
    SigningFailed,
}

/// One key, its CloudFront key pair ID and hash: everything a signature needs.
#[derive(Debug, Clone)]
pub struct Signer {
    key: Arc<SigningKey>,
    key_pair_id: String,
    hash: HashAlgorithm,
}

/// The cookies that authorize a viewer for a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCookies(pub Vec<(&'static str, String)>);

impl Signer {
    /// A signer for `key` under CloudFront public key ID `key_pair_id`. `hash` defaults to the
    /// key's default (SHA-1 for RSA, SHA-256 for ECDSA).
    pub fn new(
        key: SigningKey,
        key_pair_id: &str,
        hash: Option<HashAlgorithm>,
    ) -> Result<Self, SignerError> {
        let key_pair_id = key_pair_id.trim();
        if key_pair_id.is_empty() || !key_pair_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SignerError::InvalidKeyPairId(key_pair_id.to_owned()));
        }
        let hash = hash.unwrap_or_else(|| key.default_hash());
        Ok(Self {
            key: Arc::new(key),
            key_pair_id: key_pair_id.to_owned(),
            hash,
        })
    }

    /// A signer from a PEM private key.
    pub fn from_pem(
        pem: &[u8],
        key_pair_id: &str,
        hash: Option<HashAlgorithm>,
    ) -> Result<Self, SignerError> {
        Self::new(SigningKey::from_pem(pem)?, key_pair_id, hash)
    }

    pub fn key_pair_id(&self) -> &str {
        &self.key_pair_id
    }

    pub fn hash(&self) -> HashAlgorithm {
        self.hash
    }

    /// The same key with another hash.
    pub fn with_hash(&self, hash: HashAlgorithm) -> Result<Self, SignerError> {
        Ok(Self {
            hash,
            ..self.clone()
        })
    }

    /// Whether the policy, applied to `url` (cookies: any URL), can be sent in CloudFront's
    /// canned form: the edge rebuilds a canned policy from the request URL, so for a URL the
    /// canned form only fits a policy whose resource is exactly that URL. Cookies take it for
    /// any expiry-only policy, as the AWS SDK signers do (a query string is part of the URL,
    /// not a wildcard); only a `*` the user wrote keeps the custom form, and its restriction.
    fn canned_form(policy: &Policy, url: Option<&str>) -> bool {
        policy.is_canned()
            && match url {
                Some(url) => policy.resource == url,
                None => !policy.resource.contains('*'),
            }
    }

    /// (canned?, `Expires` or `Policy` value, signature), shared by URLs and cookies.
    fn sign_policy(
        &self,
        policy: &Policy,
        url: Option<&str>,
    ) -> Result<(bool, String, String), SignerError> {
        let json = policy.to_json();
        let signature = cloudfront_base64(&self.key.sign(self.hash, json.as_bytes())?);
        if Self::canned_form(policy, url) {
            Ok((true, policy.expires.to_string(), signature))
        } else {
            Ok((false, cloudfront_base64(json.as_bytes()), signature))
        }
    }

    /// Signs a custom policy given as JSON text (as written by hand or by another signer).
    fn sign_policy_text(&self, policy_json: &str) -> Result<(String, String), SignerError> {
        let signature = cloudfront_base64(&self.key.sign(self.hash, policy_json.as_bytes())?);
        Ok((cloudfront_base64(policy_json.as_bytes()), signature))
    }

    fn append(&self, url: &str, first: (&str, &str), signature: &str) -> String {
        let separator = if url.contains('?') { '&' } else { '?' };
        let mut signed = format!(
            "{url}{separator}{}={}&Signature={signature}&Key-Pair-Id={}",
            first.0, first.1, self.key_pair_id
        );
        if self.hash == HashAlgorithm::Sha256 {
            signed.push_str("&Hash-Algorithm=SHA256");
        }
        signed
    }

    /// Signs `url` (its own query string is kept) for `policy`: parameters in the order
    /// `Expires|Policy, Signature, Key-Pair-Id[, Hash-Algorithm]`. The canned form (`Expires`)
    /// is used when the policy has only an expiry and its resource is `url` itself.
    pub fn sign_url(&self, url: &str, policy: &Policy) -> Result<String, SignerError> {
        let (canned, value, signature) = self.sign_policy(policy, Some(url))?;
        Ok(self.append(
            url,
            (if canned { "Expires" } else { "Policy" }, &value),
            &signature,
        ))
    }

    /// Signs `url` under a custom policy given as JSON text.
    pub fn sign_url_with_policy_text(
        &self,
        url: &str,
        policy_json: &str,
    ) -> Result<String, SignerError> {
        let (policy, signature) = self.sign_policy_text(policy_json)?;
        Ok(self.append(url, ("Policy", &policy), &signature))
    }

    fn cookies(&self, first: (&'static str, String), signature: String) -> SignedCookies {
        let mut cookies = vec![
            first,
            ("CloudFront-Signature", signature),
            ("CloudFront-Key-Pair-Id", self.key_pair_id.clone()),
        ];
        if self.hash == HashAlgorithm::Sha256 {
            cookies.push(("CloudFront-Hash-Algorithm", "SHA256".to_owned()));
        }
        SignedCookies(cookies)
    }

    /// Signed cookies for `policy` (canned form only for an expiry-only policy on one exact URL).
    pub fn sign_cookies(&self, policy: &Policy) -> Result<SignedCookies, SignerError> {
        let (canned, value, signature) = self.sign_policy(policy, None)?;
        Ok(self.cookies(
            (
                if canned {
                    "CloudFront-Expires"
                } else {
                    "CloudFront-Policy"
                },
                value,
            ),
            signature,
        ))
    }

    /// Signed cookies for a custom policy given as JSON text.
    pub fn sign_cookies_with_policy_text(
        &self,
        policy_json: &str,
    ) -> Result<SignedCookies, SignerError> {
        let (policy, signature) = self.sign_policy_text(policy_json)?;
        Ok(self.cookies(("CloudFront-Policy", policy), signature))
    }
}
