//! STS over the AWS Query protocol (`POST /`, form-encoded `Action=…&Version=2011-06-15`):
//! `AssumeRole` and `GetCallerIdentity`, enough for the AWS SDKs' credential chain and for
//! keyfront's account check. Shapes follow the STS API reference; errors use STS's
//! `ErrorResponse`. Checked against moto's STS by `tests/python/test_sts_contract.py`.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Caller, error_document, error_status, format_time, request_id};
use crate::emulator::model::ApiError;
use crate::emulator::xml::Element;

const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// STS's default and bounds for `DurationSeconds`.
const DEFAULT_DURATION: u64 = 3600;
const DURATION_RANGE: std::ops::RangeInclusive<u64> = 900..=43_200;

fn document(status: StatusCode, body: &Element) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    (status, headers, body.to_document_in(NAMESPACE)).into_response()
}

fn error(error: ApiError) -> Response {
    document(error_status(&error), &error_document(&error))
}

fn response(action: &str, result: Element) -> Response {
    let body = Element::new(format!("{action}Response"))
        .with(result)
        .with(Element::new("ResponseMetadata").with_text("RequestId", request_id()));
    document(StatusCode::OK, &body)
}

fn required<'a>(form: &'a HashMap<String, String>, name: &str) -> Result<&'a str, ApiError> {
    form.get(name).map(String::as_str).ok_or_else(|| {
        ApiError::new(
            400,
            "MissingParameter",
            format!("The request must contain the parameter {name}"),
        )
    })
}

fn assume_role(caller: &Caller, form: &HashMap<String, String>) -> Result<Response, ApiError> {
    let duration = match form.get("DurationSeconds") {
        None => DEFAULT_DURATION,
        Some(v) => v
            .parse()
            .ok()
            .filter(|d| DURATION_RANGE.contains(d))
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    "ValidationError",
                    format!("DurationSeconds {v:?} must be between 900 and 43200"),
                )
            })?,
    };
    let role_arn = required(form, "RoleArn")?;
    let external_id = form.get("ExternalId").map(String::as_str);
    caller.aws.authorize_assume_role(
        caller.access_key_id.as_deref(),
        &caller.identity,
        role_arn,
        external_id,
    )?;
    let issued = caller.aws.assume_role(
        role_arn,
        required(form, "RoleSessionName")?,
        external_id,
        Duration::from_secs(duration),
    )?;
    let result = Element::new("AssumeRoleResult")
        .with(
            Element::new("Credentials")
                .with_text("AccessKeyId", issued.access_key_id.as_str())
                .with_text("SecretAccessKey", issued.secret_access_key.as_str())
                .with_text("SessionToken", issued.session_token.as_str())
                .with_text("Expiration", format_time(issued.expiration)),
        )
        .with(
            Element::new("AssumedRoleUser")
                .with_text("AssumedRoleId", issued.identity.user_id.as_str())
                .with_text("Arn", issued.identity.arn.as_str()),
        )
        .with_text("PackedPolicySize", "6");
    Ok(response("AssumeRole", result))
}

fn get_caller_identity(caller: &Caller) -> Response {
    let result = Element::new("GetCallerIdentityResult")
        .with_text("Arn", caller.identity.arn.as_str())
        .with_text("UserId", caller.identity.user_id.as_str())
        .with_text("Account", caller.identity.account.as_str());
    response("GetCallerIdentity", result)
}

/// `POST /`: one STS action.
pub(super) async fn handle(caller: Caller, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let action = form.get("Action").map(String::as_str).unwrap_or_default();
    match action {
        "AssumeRole" => {
            let outcome = assume_role(&caller, &form);
            let denied = matches!(&outcome, Err(e) if e.code == "AccessDenied");
            caller.record(action, denied);
            outcome.unwrap_or_else(error)
        }
        // Never denied: AWS answers it whatever the policies say.
        "GetCallerIdentity" => {
            caller.record(action, false);
            get_caller_identity(&caller)
        }
        other => {
            caller.record(other, false);
            error(ApiError::new(
                400,
                "InvalidAction",
                format!("Could not find operation {other:?} for version 2011-06-15"),
            ))
        }
    }
}
