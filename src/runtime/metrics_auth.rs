//! Who may read `/metrics` (client required): the metrics name every tenant's objects, so by
//! default a caller must present a Kubernetes bearer token that may `get` the non-resource
//! path `/metrics` — authenticated with a TokenReview, authorized with a SubjectAccessReview,
//! exactly as kube-rbac-proxy and controller-runtime's metrics filter do. The chart binds the
//! ClusterRole `<release>-metrics-reader` and points the ServiceMonitor at its token.
//!
//! Written here rather than taken from a crate: no maintained Rust crate does delegated
//! authentication for an axum route, and it is two API calls and a cache.
//!
//! Decisions are cached per token for a minute, keyed by the token's SHA-256 (the token itself
//! is never kept or logged), so a scrape every 15 s costs the API server two calls a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;
use sha2::{Digest as _, Sha256};

/// `--metrics-auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MetricsAuth {
    /// A bearer token that may `get` `/metrics` (TokenReview and SubjectAccessReview).
    #[default]
    Kubernetes,
    /// Anyone who reaches the port (a network you trust, `keyfront dev`).
    None,
}

const CACHE_TTL: Duration = Duration::from_secs(60);
const CACHE_MAX: usize = 1024;
const PATH: &str = "/metrics";

/// A refusal: the status and a message that says what to do.
pub type Refusal = (StatusCode, String);

/// A decision and when it was made, by the SHA-256 of the token it was made for.
type Decisions = HashMap<[u8; 32], (Instant, Result<(), Refusal>)>;

/// Decides, per request, whether its caller may read `/metrics`.
pub struct MetricsAuthorizer {
    client: Option<kube::Client>,
    decisions: Mutex<Decisions>,
}

impl MetricsAuthorizer {
    pub fn new(mode: MetricsAuth, client: kube::Client) -> Self {
        Self {
            client: (mode == MetricsAuth::Kubernetes).then_some(client),
            decisions: Mutex::default(),
        }
    }

    /// `Ok` if the request may read the metrics.
    pub async fn authorize(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(client) = &self.client else {
            return Ok(());
        };
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                (
                    StatusCode::UNAUTHORIZED,
                    "send a Kubernetes token that may get /metrics as 'Authorization: Bearer <token>' (or run keyfront with --metrics-auth none on a network you trust)\n".to_owned(),
                )
            })?;
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cached = self
            .decisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, decision)| decision.clone());
        if let Some(decision) = cached {
            return decision;
        }
        let decision = decide(client, token).await;
        let mut decisions = self
            .decisions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if decisions.len() >= CACHE_MAX {
            decisions.clear();
        }
        // An API server that could not be asked is not a verdict: ask again next time.
        if !matches!(&decision, Err((StatusCode::SERVICE_UNAVAILABLE, _))) {
            decisions.insert(key, (Instant::now(), decision.clone()));
        }
        decision
    }
}

async fn decide(client: &kube::Client, token: &str) -> Result<(), Refusal> {
    let unavailable = |what: &str, error: kube::Error| {
        tracing::warn!(%error, "could not {what} for /metrics");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("keyfront could not {what} with the Kubernetes API; try again\n"),
        )
    };
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_owned(),
            ..TokenReviewSpec::default()
        },
        ..TokenReview::default()
    };
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| unavailable("review the token", e))?;
    let status = reviewed.status.unwrap_or_default();
    let user = status
        .user
        .filter(|_| status.authenticated == Some(true))
        .ok_or((
            StatusCode::UNAUTHORIZED,
            "the bearer token is not valid for this cluster\n".to_owned(),
        ))?;
    let username = user.username.clone().unwrap_or_default();
    let access = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username,
            uid: user.uid,
            groups: user.groups,
            extra: user.extra,
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some(PATH.to_owned()),
                verb: Some("get".to_owned()),
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answered = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &access)
        .await
        .map_err(|e| unavailable("check access", e))?;
    if answered.status.is_some_and(|s| s.allowed) {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            format!(
                "{username} may not get /metrics: bind it to the ClusterRole that grants nonResourceURLs [\"/metrics\"] (the chart's <release>-metrics-reader)\n"
            ),
        ))
    }
}
