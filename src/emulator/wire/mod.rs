//! CloudFront's REST-XML wire protocol (API version 2020-05-31) in front of the model.
//!
//! Paths, status codes, headers (`ETag`, `If-Match`, `Location`) and XML shapes follow the
//! CloudFront API reference so AWS SDKs work unchanged. Errors use CloudFront's
//! `ErrorResponse` shape, which SDKs map to their typed errors by `<Code>`.
//!
//! Every call acts in the caller's account ([`Caller`], from the SigV4 access key) and is
//! recorded in the request log. STS (`AssumeRole`, `GetCallerIdentity`, AWS Query protocol)
//! is served on the same address, at `POST /`.
//!
//! Test-only controls live under `/_emulator/` (fault scripting, ETag churn, the request log).

mod distributions;
mod keys;
mod sts;

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;

use super::Emulator;
use super::accounts::{Aws, Identity};
use super::faults::ScriptedFault;
use super::model::{ApiError, Model};
use super::xml::Element;
use distributions::{
    create_distribution, delete_distribution, get_distribution, get_distribution_config,
    list_distributions, update_distribution,
};
use keys::{
    create_key_group, create_public_key, delete_key_group, delete_public_key, get_key_group,
    get_key_group_config, get_public_key, get_public_key_config, list_distributions_by_key_group,
    list_key_groups, list_public_keys, update_key_group, update_public_key,
};

const API: &str = "/2020-05-31";
const DEFAULT_MAX_ITEMS: usize = 100;

/// The largest request body the emulator reads (a DistributionConfig with every setting is
/// tens of kilobytes); larger bodies get `413 Payload Too Large` before any parsing.
pub const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// The HTTP front of an emulated AWS: CloudFront, STS and the test controls.
pub fn router(aws: Aws) -> Router {
    Router::new()
        .route("/", post(sts::handle))
        .route(
            "/2020-05-31/public-key",
            post(create_public_key).get(list_public_keys),
        )
        .route(
            "/2020-05-31/public-key/{id}",
            get(get_public_key).delete(delete_public_key),
        )
        .route(
            "/2020-05-31/public-key/{id}/config",
            get(get_public_key_config).put(update_public_key),
        )
        .route(
            "/2020-05-31/key-group",
            post(create_key_group).get(list_key_groups),
        )
        .route(
            "/2020-05-31/key-group/{id}",
            get(get_key_group)
                .put(update_key_group)
                .delete(delete_key_group),
        )
        .route(
            "/2020-05-31/key-group/{id}/config",
            get(get_key_group_config),
        )
        .route(
            "/2020-05-31/distributionsByKeyGroupId/{id}",
            get(list_distributions_by_key_group),
        )
        .route(
            "/2020-05-31/distribution",
            post(create_distribution).get(list_distributions),
        )
        .route(
            "/2020-05-31/distribution/{id}",
            get(get_distribution).delete(delete_distribution),
        )
        .route(
            "/2020-05-31/distribution/{id}/config",
            get(get_distribution_config).put(update_distribution),
        )
        .route("/_emulator/health", get(|| async { "ok" }))
        .route(
            "/_emulator/faults",
            get(faults_injected).post(script_fault).delete(clear_faults),
        )
        .route("/_emulator/requests", get(requests))
        .route("/_emulator/iam-policy", post(set_iam_policy))
        .route(
            "/_emulator/distributions/{id}/touch",
            post(touch_distribution),
        )
        .fallback(|| async {
            error_response(ApiError::new(
                404,
                "UnknownOperation",
                "No CloudFront operation matches this request.",
            ))
        })
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BODY))
        .with_state(aws)
}

/// The caller of a request: its identity and the account it acts in. Read from the access
/// key in the SigV4 `Authorization` header; the signature itself is not checked.
pub struct Caller {
    pub aws: Aws,
    pub identity: Identity,
    pub emulator: Emulator,
    /// `x-amz-user-agent` (where the AWS SDKs put `app/<name>`), else `User-Agent`.
    pub user_agent: Option<String>,
    /// The access key the request was signed with.
    pub access_key_id: Option<String>,
    /// The request's path (a distribution operation's resource is named in it).
    pub path: String,
}

impl Caller {
    /// Records the call in the request log, and whether IAM denied it.
    pub fn record(&self, operation: &str, denied: bool) {
        self.aws.record(
            &self.identity,
            self.user_agent.as_deref(),
            operation,
            denied,
        );
    }

    /// Whether the caller's IAM policy (if the emulator enforces one) allows the CloudFront
    /// `operation`, on the distribution named in the path for distribution operations and on
    /// `*` for the others (CloudFront gives keys and key groups no resource ARN).
    fn authorize(&self, operation: &str) -> Result<(), ApiError> {
        let resource = match self.path.split_once("/distribution/") {
            Some((_, rest))
                if operation.ends_with("Distribution")
                    || operation.ends_with("DistributionConfig") =>
            {
                let id = rest.split('/').next().unwrap_or_default();
                format!(
                    "arn:aws:cloudfront::{}:distribution/{id}",
                    self.identity.account
                )
            }
            _ => "*".to_owned(),
        };
        self.aws.authorize(
            self.access_key_id.as_deref(),
            &self.identity,
            &format!("cloudfront:{operation}"),
            &resource,
        )
    }
}

/// The access key ID of a SigV4 `Authorization` header (`… Credential=AKID/date/…, …`).
pub fn access_key_id(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let credential = value.split("Credential=").nth(1)?;
    credential.split('/').next().filter(|k| !k.is_empty())
}

impl FromRequestParts<Aws> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, aws: &Aws) -> Result<Self, Self::Rejection> {
        let key = access_key_id(&parts.headers).map(str::to_owned);
        let identity = aws.identity(key.as_deref());
        let user_agent = ["x-amz-user-agent", header::USER_AGENT.as_str()]
            .iter()
            .find_map(|name| parts.headers.get(*name)?.to_str().ok())
            .map(str::to_owned);
        Ok(Self {
            emulator: aws.account(&identity.account),
            identity,
            aws: aws.clone(),
            user_agent,
            access_key_id: key,
            path: parts.uri.path().to_owned(),
        })
    }
}

/// ISO 8601 with milliseconds, as CloudFront writes timestamps.
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn request_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn xml_response(
    status: StatusCode,
    etag: Option<&str>,
    location: Option<String>,
    body: &Element,
) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(&request_id()) {
        headers.insert("x-amz-request-id", id);
    }
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        headers.insert(header::ETAG, etag);
    }
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    (status, headers, body.to_document()).into_response()
}

/// The `ErrorResponse` document CloudFront and STS both answer errors with.
fn error_document(error: &ApiError) -> Element {
    let kind = if error.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    Element::new("ErrorResponse")
        .with(
            Element::new("Error")
                .with_text("Type", kind)
                .with_text("Code", error.code.as_str())
                .with_text("Message", error.message.as_str()),
        )
        .with_text("RequestId", request_id())
}

fn error_status(error: &ApiError) -> StatusCode {
    StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST)
}

fn error_response(error: ApiError) -> Response {
    xml_response(error_status(&error), None, None, &error_document(&error))
}

fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn body_root(body: &Bytes, expected: &str) -> Result<Element, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(
            400,
            "MissingBody",
            format!("The request body must contain a {expected}."),
        ));
    }
    let root =
        Element::parse(body).map_err(|e| ApiError::new(400, "MalformedXML", e.to_string()))?;
    if root.name != expected {
        return Err(ApiError::new(
            400,
            "MalformedXML",
            format!("Expected a {expected} document, got {}.", root.name),
        ));
    }
    Ok(root)
}

fn max_items(query: &HashMap<String, String>) -> Result<usize, ApiError> {
    match query.get("MaxItems") {
        None => Ok(DEFAULT_MAX_ITEMS),
        Some(v) => v.parse().map_err(|_| {
            ApiError::new(
                400,
                "InvalidArgument",
                format!("MaxItems {v:?} is not a number."),
            )
        }),
    }
}

/// Runs one CloudFront operation in the caller's account, recording it.
async fn run(
    caller: &Caller,
    operation: &str,
    f: impl FnOnce(&mut Model) -> Result<Response, ApiError>,
) -> Response {
    if let Err(denied) = caller.authorize(operation) {
        caller.record(operation, true);
        return error_response(denied);
    }
    caller.record(operation, false);
    caller
        .emulator
        .call(operation, f)
        .await
        .unwrap_or_else(error_response)
}

// ---- test controls ----

async fn script_fault(e: Caller, axum::Json(fault): axum::Json<ScriptedFault>) -> StatusCode {
    e.emulator.script_fault(fault);
    StatusCode::NO_CONTENT
}

async fn faults_injected(e: Caller) -> axum::Json<std::collections::BTreeMap<String, u64>> {
    axum::Json(e.emulator.faults_injected())
}

async fn clear_faults(e: Caller) -> StatusCode {
    e.emulator.clear_faults();
    StatusCode::NO_CONTENT
}

async fn requests(State(aws): State<Aws>) -> axum::Json<Vec<super::accounts::RequestRecord>> {
    axum::Json(aws.requests())
}

/// A policy to enforce on a principal (access key ID or role ARN), or none to stop.
#[derive(serde::Deserialize)]
struct IamPolicyControl {
    principal: String,
    policy: Option<crate::iam::PolicyDocument>,
}

async fn set_iam_policy(
    State(aws): State<Aws>,
    axum::Json(control): axum::Json<IamPolicyControl>,
) -> StatusCode {
    aws.set_identity_policy(&control.principal, control.policy);
    StatusCode::NO_CONTENT
}

async fn touch_distribution(e: Caller, Path(id): Path<String>) -> Response {
    match e.emulator.model().touch_distribution(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => error_response(err),
    }
}
