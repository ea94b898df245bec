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

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::accounts::Aws;
use super::model::Model;
use crate::cloudfront::BehaviorSelector;
pub use crate::signer::verify::{Denial, glob_matches};
use crate::signer::verify::{Presented, verify_presented};

/// The edge's HTTP front, serving the distributions of every account.
pub fn router(aws: Aws) -> Router {
    // The edge reads no request body; the limit keeps it that way if it ever does.
    Router::new()
        .fallback(serve)
        .layer(axum::extract::DefaultBodyLimit::max(0))
        .with_state(aws)
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

fn viewer_address(headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .or(peer)
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
    let path = path_and_query.split('?').next().unwrap_or_default();
    let behavior = distribution
        .deployed
        .behaviors
        .iter()
        .find(|b| matches!(&b.behavior, BehaviorSelector::PathPattern(p) if glob_matches(&format!("/{}", p.trim_start_matches('/')), path)))
        .or_else(|| distribution.deployed.behaviors.iter().find(|b| b.behavior == BehaviorSelector::Default));
    let Some(behavior) = behavior.filter(|b| !b.trusted_key_groups.is_empty()) else {
        return Ok(());
    };
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("https");
    let presented = Presented::read(headers, scheme, &host, path_and_query);
    let trusted = |key_pair_id: &str| {
        behavior.trusted_key_groups.iter().any(|g| {
            distribution
                .deployed
                .key_groups
                .get(g)
                .is_some_and(|keys| keys.iter().any(|k| k == key_pair_id))
        })
    };
    let public_key = |key_pair_id: &str| {
        model
            .get_public_key(key_pair_id)
            .ok()
            .map(|k| k.config.encoded_key.clone())
    };
    verify_presented(
        &presented,
        trusted,
        public_key,
        model.now().as_second(),
        viewer_address(headers, peer),
    )
}
