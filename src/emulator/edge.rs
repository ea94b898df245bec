//! The verifying edge: serves requests the way a CloudFront distribution serves its cache
//! behaviors, so tests can prove that signed URLs and cookies are accepted exactly when
//! CloudFront would accept them.
//!
//! - The distribution is chosen by the `Host` header: its `DomainName`
//!   (`<id>.cloudfront.net`, lower case), as viewers reach CloudFront.
//! - The URL a policy is checked against is `https://<host><path>[?query]` (or the scheme in
//!   `X-Forwarded-Proto`), with the signing parameters removed from the query.
//! - The viewer address for `IpAddress` conditions is the first `X-Forwarded-For` entry, else
//!   the peer address.
//! - The cache behavior is the first whose `PathPattern` matches (CloudFront's `*`/`?` globs),
//!   else the default one. A behavior that trusts no key group serves anything (`200`); one
//!   that does answers `403` unless the request carries a valid signature by a key in one of
//!   its trusted key groups **as deployed** (propagation delay honoured) and a policy that
//!   allows this URL, time and address.
//!
//! Responses are `200 ok` or `403` with the reason in the body and in `x-keyfront-edge-reason`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey};

use super::accounts::Aws;
use super::model::Model;
use crate::cloudfront::BehaviorSelector;

const SIGNING_PARAMS: [&str; 5] = [
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

/// The edge's HTTP front, serving the distributions of every account.
pub fn router(aws: Aws) -> Router {
    Router::new().fallback(serve).with_state(aws)
}

async fn serve(State(aws): State<Aws>, request: Request<Body>) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let headers = request.headers().clone();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    // Domain names are unique across accounts: the first account that knows the host decides.
    let mut verdict = Err(Denial::UnknownHost(String::new()));
    for emulator in aws.accounts() {
        verdict = verify(&mut emulator.model(), &headers, &path_and_query, peer);
        if !matches!(verdict, Err(Denial::UnknownHost(_))) {
            break;
        }
    }
    match verdict {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(denial) => {
            let reason = denial.to_string();
            (
                StatusCode::FORBIDDEN,
                [("x-keyfront-edge-reason", reason.clone())],
                format!("{reason}\n"),
            )
                .into_response()
        }
    }
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

fn query_params(query: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
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

fn viewer_address(headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .or(peer)
}

fn ip_in_range(ip: IpAddr, range: &str) -> bool {
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

fn decode(value: &str, what: &'static str) -> Result<Vec<u8>, Denial> {
    crate::signer::decode_cloudfront_base64(value).ok_or(Denial::Malformed(what))
}

/// Decides one request against the deployed state of the model.
pub fn verify(
    model: &mut Model,
    headers: &HeaderMap,
    path_and_query: &str,
    peer: Option<IpAddr>,
) -> Result<(), Denial> {
    model.settle();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let distribution = model
        .list_distributions()
        .into_iter()
        .find(|d| d.domain_name == host)
        .ok_or_else(|| Denial::UnknownHost(host.clone()))?;
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let behavior = distribution
        .deployed
        .behaviors
        .iter()
        .find(|b| matches!(&b.behavior, BehaviorSelector::PathPattern(p) if glob_matches(&format!("/{}", p.trim_start_matches('/')), path)))
        .or_else(|| distribution.deployed.behaviors.iter().find(|b| b.behavior == BehaviorSelector::Default));
    let Some(behavior) = behavior.filter(|b| !b.trusted_key_groups.is_empty()) else {
        return Ok(());
    };

    let from_query = query_params(query);
    let from_cookies = cookies(headers);
    let param = |name: &str| {
        from_query
            .get(name)
            .cloned()
            .or_else(|| from_cookies.get(&format!("CloudFront-{name}")).cloned())
    };
    let signature = param("Signature").ok_or(Denial::MissingSignature)?;
    let key_pair_id = param("Key-Pair-Id").ok_or(Denial::MissingSignature)?;
    let trusted = behavior.trusted_key_groups.iter().any(|g| {
        distribution
            .deployed
            .key_groups
            .get(g)
            .is_some_and(|keys| keys.contains(&key_pair_id))
    });
    if !trusted {
        return Err(Denial::UntrustedKey(key_pair_id));
    }

    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("https");
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
    let policy_bytes = match (param("Policy"), param("Expires")) {
        (Some(policy), _) => decode(&policy, "Policy")?,
        (None, Some(expires)) => {
            let expires: i64 = expires.parse().map_err(|_| Denial::Malformed("Expires"))?;
            crate::signer::Policy::canned(url.clone(), expires)
                .to_json()
                .into_bytes()
        }
        (None, None) => return Err(Denial::MissingSignature),
    };

    let encoded_key = &model
        .get_public_key(&key_pair_id)
        .map_err(|_| Denial::UntrustedKey(key_pair_id.clone()))?
        .config
        .encoded_key;
    let public = PKey::public_key_from_pem(encoded_key.as_bytes())
        .map_err(|_| Denial::UntrustedKey(key_pair_id.clone()))?;
    let sha256 = param("Hash-Algorithm").is_some_and(|h| h == "SHA256") || public.id() == Id::EC;
    let digest = if sha256 {
        MessageDigest::sha256()
    } else {
        MessageDigest::sha1()
    };
    let raw_signature = decode(&signature, "Signature")?;
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
    if !glob_matches(resource, &url) {
        return Err(Denial::ResourceMismatch);
    }
    let now = model.now().as_second();
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
        && !viewer_address(headers, peer).is_some_and(|ip| ip_in_range(ip, range))
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
