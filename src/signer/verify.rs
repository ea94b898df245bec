//! Verification of signed URLs and cookies as CloudFront does it, in one place: the emulator's
//! verifying edge ([`crate::emulator::edge`]) and `keyfront inspect` both decide with
//! [`verify_presented`], so "why was this refused" is answered by the same code that refuses.
//!
//! Reading: the signing parameters come from the query string, else from `CloudFront-*`
//! cookies; the URL a policy is checked against is `<scheme>://<host><path>[?query]` without
//! them. Checks, in CloudFront's order (the first failure is the reason): a signature and key
//! pair ID are present; the key is one the cache behavior trusts; the policy can be read
//! (`Policy`, else a canned policy from `Expires`); the signature verifies (RSA or ECDSA, with
//! SHA-1 unless `Hash-Algorithm=SHA256`); the policy's resource matches the URL;
//! it has not expired, is valid already, and admits the viewer's address.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::http::{HeaderMap, header};
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;

pub const SIGNING_PARAMS: [&str; 5] = [
    "Expires",
    "Policy",
    "Signature",
    "Key-Pair-Id",
    "Hash-Algorithm",
];

/// Why the edge refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    #[error("no distribution serves host {0:?}")]
    UnknownHost(String),
    #[error("missing signature: the behavior is private")]
    MissingSignature,
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("key {0} is not in a key group this behavior trusts (as deployed)")]
    UntrustedKey(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("policy resource does not match the URL")]
    ResourceMismatch,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("viewer address not allowed by the policy")]
    AddressNotAllowed,
}

/// CloudFront's path pattern globs: `*` any run of characters, `?` exactly one.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

pub fn query_params(query: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

pub fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            pair.trim()
                .split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

pub fn ip_in_range(ip: IpAddr, range: &str) -> bool {
    let (address, prefix) = range
        .split_once('/')
        .unwrap_or((range, if range.contains(':') { "128" } else { "32" }));
    let (Ok(network), Ok(prefix)) = (address.parse::<IpAddr>(), prefix.parse::<u32>()) else {
        return false;
    };
    match (ip, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) if prefix <= 32 => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            (u32::from(a) & mask) == (u32::from(n) & mask)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if prefix <= 128 => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            (u128::from(a) & mask) == (u128::from(n) & mask)
        }
        _ => false,
    }
}

pub fn decode(value: &str, what: &'static str) -> Result<Vec<u8>, Denial> {
    crate::signer::decode_cloudfront_base64(value).ok_or(Denial::Malformed(what))
}

/// The signing material a request presents, read as CloudFront reads it.
#[derive(Debug, Clone)]
pub struct Presented {
    params: HashMap<String, String>,
    /// The URL without the signing parameters.
    pub url: String,
}

impl Presented {
    /// Reads the query string of `path_and_query`, then the `CloudFront-*` cookies of `headers`.
    pub fn read(headers: &HeaderMap, scheme: &str, host: &str, path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let from_query = query_params(query);
        let mut params = HashMap::new();
        for (name, value) in cookies(headers) {
            if let Some(name) = name.strip_prefix("CloudFront-") {
                params.insert(name.to_owned(), value);
            }
        }
        params.extend(from_query);
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| {
                !p.is_empty() && !SIGNING_PARAMS.contains(&p.split('=').next().unwrap_or_default())
            })
            .collect();
        let url = if kept.is_empty() {
            format!("{scheme}://{host}{path}")
        } else {
            format!("{scheme}://{host}{path}?{}", kept.join("&"))
        };
        Self { params, url }
    }

    /// A signing parameter (`Signature`, `Key-Pair-Id`, `Policy`, `Expires`, `Hash-Algorithm`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The key pair ID, if a signature is presented at all.
    pub fn key_pair_id(&self) -> Result<&str, Denial> {
        self.param("Signature").ok_or(Denial::MissingSignature)?;
        self.param("Key-Pair-Id").ok_or(Denial::MissingSignature)
    }

    /// The policy document the signature covers: `Policy`, else the canned one of `Expires`.
    pub fn policy_bytes(&self) -> Result<Vec<u8>, Denial> {
        match (self.param("Policy"), self.param("Expires")) {
            (Some(policy), _) => decode(policy, "Policy"),
            (None, Some(expires)) => {
                let expires: i64 = expires.parse().map_err(|_| Denial::Malformed("Expires"))?;
                Ok(crate::signer::Policy::canned(self.url.clone(), expires)
                    .to_json()
                    .into_bytes())
            }
            (None, None) => Err(Denial::MissingSignature),
        }
    }

    /// The hash CloudFront checks the signature with, RSA and ECDSA alike: SHA-256 when the
    /// request says `Hash-Algorithm=SHA256`, else SHA-1.
    pub fn hash(&self) -> &'static str {
        if self.param("Hash-Algorithm") == Some("SHA256") {
            "SHA256"
        } else {
            "SHA1"
        }
    }
}

/// Decides a presented signature. `trusted` says whether the cache behavior trusts a key ID
/// (as deployed); `public_key` finds a key's PEM; `now` is epoch seconds; `viewer` the
/// viewer's address. The first failing check is the reason.
pub fn verify_presented(
    presented: &Presented,
    trusted: impl Fn(&str) -> bool,
    public_key: impl Fn(&str) -> Option<String>,
    now: i64,
    viewer: Option<IpAddr>,
) -> Result<(), Denial> {
    let key_pair_id = presented.key_pair_id()?;
    if !trusted(key_pair_id) {
        return Err(Denial::UntrustedKey(key_pair_id.to_owned()));
    }
    let policy_bytes = presented.policy_bytes()?;
    let public = public_key(key_pair_id)
        .and_then(|pem| PKey::public_key_from_pem(pem.as_bytes()).ok())
        .ok_or_else(|| Denial::UntrustedKey(key_pair_id.to_owned()))?;
    let digest = if presented.hash() == "SHA256" {
        MessageDigest::sha256()
    } else {
        MessageDigest::sha1()
    };
    let raw_signature = decode(
        presented.param("Signature").unwrap_or_default(),
        "Signature",
    )?;
    let verified = openssl::sign::Verifier::new(digest, &public)
        .and_then(|mut v| {
            v.update(&policy_bytes)
                .and_then(|()| v.verify(&raw_signature))
        })
        .unwrap_or(false);
    if !verified {
        return Err(Denial::BadSignature);
    }

    let policy: serde_json::Value =
        serde_json::from_slice(&policy_bytes).map_err(|_| Denial::Malformed("Policy"))?;
    let statement = policy
        .pointer("/Statement/0")
        .ok_or(Denial::Malformed("Policy"))?;
    let resource = statement
        .get("Resource")
        .and_then(|r| r.as_str())
        .unwrap_or("*");
    if !glob_matches(resource, &presented.url) {
        return Err(Denial::ResourceMismatch);
    }
    let condition = statement.get("Condition");
    let epoch = |name: &str| {
        condition
            .and_then(|c| c.pointer(&format!("/{name}/AWS:EpochTime")))
            .and_then(serde_json::Value::as_i64)
    };
    match epoch("DateLessThan") {
        Some(until) if now < until => {}
        Some(_) => return Err(Denial::Expired),
        None => return Err(Denial::Malformed("Policy")),
    }
    if epoch("DateGreaterThan").is_some_and(|from| now <= from) {
        return Err(Denial::NotYetValid);
    }
    if let Some(range) = condition
        .and_then(|c| c.pointer("/IpAddress/AWS:SourceIp"))
        .and_then(serde_json::Value::as_str)
        && !viewer.is_some_and(|ip| ip_in_range(ip, range))
    {
        return Err(Denial::AddressNotAllowed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_cloudfront_path_patterns() {
        assert!(glob_matches("/private/*", "/private/a/b.mp4"));
        assert!(glob_matches("*.jpg", "/img/a.jpg"));
        assert!(glob_matches("/a?c", "/abc"));
        assert!(!glob_matches("/private/*", "/public/a"));
        assert!(!glob_matches("/a?c", "/ac"));
        assert!(glob_matches(
            "https://d.example/*",
            "https://d.example/x?y=1"
        ));
    }

    #[test]
    fn address_ranges_cover_v4_and_v6() {
        let v4: IpAddr = "192.0.2.77".parse().expect("ip");
        assert!(ip_in_range(v4, "192.0.2.0/24"));
        assert!(ip_in_range(v4, "192.0.2.77/32"));
        assert!(!ip_in_range(v4, "198.51.100.0/24"));
        assert!(ip_in_range(
            "2001:db8::1".parse().expect("ip"),
            "2001:db8::/32"
        ));
        assert!(!ip_in_range(v4, "2001:db8::/32"));
    }
}
