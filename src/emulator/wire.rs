//! CloudFront's REST-XML wire protocol (API version 2020-05-31) in front of the model.
//!
//! Paths, status codes, headers (`ETag`, `If-Match`, `Location`) and XML shapes follow the
//! CloudFront API reference so AWS SDKs work unchanged. Errors use CloudFront's
//! `ErrorResponse` shape, which SDKs map to their typed errors by `<Code>`.
//!
//! Test-only controls live under `/_emulator/` (fault scripting, ETag churn).

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;

use super::Emulator;
use super::faults::ScriptedFault;
use super::model::{
    ApiError, Model, PublicKeyConfig, StoredDistribution, StoredKeyGroup, StoredPublicKey, page,
};
use super::xml::Element;
use crate::cloudfront::KeyGroupConfig;

const API: &str = "/2020-05-31";
const DEFAULT_MAX_ITEMS: usize = 100;

/// The HTTP front of an emulator.
pub fn router(emulator: Emulator) -> Router {
    Router::new()
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
        .route("/_emulator/faults", post(script_fault).delete(clear_faults))
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
        .with_state(emulator)
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

fn error_response(error: ApiError) -> Response {
    let kind = if error.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    let body = Element::new("ErrorResponse")
        .with(
            Element::new("Error")
                .with_text("Type", kind)
                .with_text("Code", error.code.as_str())
                .with_text("Message", error.message.as_str()),
        )
        .with_text("RequestId", request_id());
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    xml_response(status, None, None, &body)
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

async fn run(
    emulator: &Emulator,
    operation: &str,
    f: impl FnOnce(&mut Model) -> Result<Response, ApiError>,
) -> Response {
    emulator
        .call(operation, f)
        .await
        .unwrap_or_else(error_response)
}

// ---- public keys ----

fn public_key_config_element(config: &PublicKeyConfig) -> Element {
    Element::new("PublicKeyConfig")
        .with_text("CallerReference", config.caller_reference.as_str())
        .with_text("Name", config.name.as_str())
        .with_text("EncodedKey", config.encoded_key.as_str())
        .with_optional_text("Comment", config.comment.as_deref())
}

fn public_key_element(key: &StoredPublicKey) -> Element {
    Element::new("PublicKey")
        .with_text("Id", key.id.as_str())
        .with_text("CreatedTime", format_time(key.created_time))
        .with(public_key_config_element(&key.config))
}

fn parse_public_key_config(body: &Bytes) -> Result<PublicKeyConfig, ApiError> {
    let root = body_root(body, "PublicKeyConfig")?;
    let field = |name: &str| root.child_text(name).map(str::to_owned);
    Ok(PublicKeyConfig {
        caller_reference: field("CallerReference").unwrap_or_default(),
        name: field("Name").unwrap_or_default(),
        encoded_key: field("EncodedKey").unwrap_or_default(),
        comment: field("Comment"),
    })
}

async fn create_public_key(State(e): State<Emulator>, body: Bytes) -> Response {
    run(&e, "CreatePublicKey", |m| {
        let key = m.create_public_key(parse_public_key_config(&body)?)?;
        Ok(xml_response(
            StatusCode::CREATED,
            Some(&key.etag),
            Some(format!("{API}/public-key/{}", key.id)),
            &public_key_element(&key),
        ))
    })
    .await
}

async fn get_public_key(State(e): State<Emulator>, Path(id): Path<String>) -> Response {
    run(&e, "GetPublicKey", |m| {
        let key = m.get_public_key(&id)?;
        Ok(xml_response(
            StatusCode::OK,
            Some(&key.etag),
            None,
            &public_key_element(key),
        ))
    })
    .await
}

async fn get_public_key_config(State(e): State<Emulator>, Path(id): Path<String>) -> Response {
    run(&e, "GetPublicKeyConfig", |m| {
        let key = m.get_public_key(&id)?;
        Ok(xml_response(
            StatusCode::OK,
            Some(&key.etag),
            None,
            &public_key_config_element(&key.config),
        ))
    })
    .await
}

async fn update_public_key(
    State(e): State<Emulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(&e, "UpdatePublicKey", |m| {
        let key = m.update_public_key(
            &id,
            parse_public_key_config(&body)?,
            if_match(&headers).as_deref(),
        )?;
        Ok(xml_response(
            StatusCode::OK,
            Some(&key.etag),
            None,
            &public_key_element(&key),
        ))
    })
    .await
}

async fn list_public_keys(
    State(e): State<Emulator>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    run(&e, "ListPublicKeys", |m| {
        let max = max_items(&query)?;
        let (keys, next) = page(
            m.list_public_keys(),
            |k| k.id.as_str(),
            query.get("Marker").map(String::as_str),
            max,
        );
        let mut list = Element::new("PublicKeyList")
            .with_optional_text("NextMarker", next.as_deref())
            .with_text("MaxItems", max.to_string())
            .with_text("Quantity", keys.len().to_string());
        if !keys.is_empty() {
            list = list.with(keys.iter().fold(Element::new("Items"), |items, k| {
                items.with(
                    Element::new("PublicKeySummary")
                        .with_text("Id", k.id.as_str())
                        .with_text("Name", k.config.name.as_str())
                        .with_text("CreatedTime", format_time(k.created_time))
                        .with_text("EncodedKey", k.config.encoded_key.as_str())
                        .with_optional_text("Comment", k.config.comment.as_deref()),
                )
            }));
        }
        Ok(xml_response(StatusCode::OK, None, None, &list))
    })
    .await
}

async fn delete_public_key(
    State(e): State<Emulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    run(&e, "DeletePublicKey", |m| {
        m.delete_public_key(&id, if_match(&headers).as_deref())?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

// ---- key groups ----

fn key_group_config_element(config: &KeyGroupConfig) -> Element {
    Element::new("KeyGroupConfig")
        .with_text("Name", config.name.as_str())
        .with(config.items.iter().fold(Element::new("Items"), |items, k| {
            items.with_text("PublicKey", k.as_str())
        }))
        .with_optional_text("Comment", config.comment.as_deref())
}

fn key_group_element(group: &StoredKeyGroup) -> Element {
    Element::new("KeyGroup")
        .with_text("Id", group.id.as_str())
        .with_text("LastModifiedTime", format_time(group.last_modified_time))
        .with(key_group_config_element(&group.config))
}

fn parse_key_group_config(body: &Bytes) -> Result<KeyGroupConfig, ApiError> {
    let root = body_root(body, "KeyGroupConfig")?;
    Ok(KeyGroupConfig {
        name: root.child_text("Name").unwrap_or_default().to_owned(),
        comment: root.child_text("Comment").map(str::to_owned),
        items: root
            .child("Items")
            .map(|i| {
                i.children_named("PublicKey")
                    .map(|k| k.text.clone())
                    .collect()
            })
            .unwrap_or_default(),
    })
}

async fn create_key_group(State(e): State<Emulator>, body: Bytes) -> Response {
    run(&e, "CreateKeyGroup", |m| {
        let group = m.create_key_group(parse_key_group_config(&body)?)?;
        Ok(xml_response(
            StatusCode::CREATED,
            Some(&group.etag),
            Some(format!("{API}/key-group/{}", group.id)),
            &key_group_element(&group),
        ))
    })
    .await
}

async fn get_key_group(State(e): State<Emulator>, Path(id): Path<String>) -> Response {
    run(&e, "GetKeyGroup", |m| {
        let group = m.get_key_group(&id)?;
        Ok(xml_response(
            StatusCode::OK,
            Some(&group.etag),
            None,
            &key_group_element(group),
        ))
    })
    .await
}

async fn get_key_group_config(State(e): State<Emulator>, Path(id): Path<String>) -> Response {
    run(&e, "GetKeyGroupConfig", |m| {
        let group = m.get_key_group(&id)?;
        Ok(xml_response(
            StatusCode::OK,
            Some(&group.etag),
            None,
            &key_group_config_element(&group.config),
        ))
    })
    .await
}

async fn update_key_group(
    State(e): State<Emulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(&e, "UpdateKeyGroup", |m| {
        let group = m.update_key_group(
            &id,
            parse_key_group_config(&body)?,
            if_match(&headers).as_deref(),
        )?;
        Ok(xml_response(
            StatusCode::OK,
            Some(&group.etag),
            None,
            &key_group_element(&group),
        ))
    })
    .await
}

async fn delete_key_group(
    State(e): State<Emulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    run(&e, "DeleteKeyGroup", |m| {
        m.delete_key_group(&id, if_match(&headers).as_deref())?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn list_key_groups(
    State(e): State<Emulator>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    run(&e, "ListKeyGroups", |m| {
        let max = max_items(&query)?;
        let (groups, next) = page(
            m.list_key_groups(),
            |g| g.id.as_str(),
            query.get("Marker").map(String::as_str),
            max,
        );
        let mut list = Element::new("KeyGroupList")
            .with_optional_text("NextMarker", next.as_deref())
            .with_text("MaxItems", max.to_string())
            .with_text("Quantity", groups.len().to_string());
        if !groups.is_empty() {
            list = list.with(groups.iter().fold(Element::new("Items"), |items, g| {
                items.with(Element::new("KeyGroupSummary").with(key_group_element(g)))
            }));
        }
        Ok(xml_response(StatusCode::OK, None, None, &list))
    })
    .await
}

// ---- distributions ----

fn active_trusted_key_groups_element(d: &StoredDistribution) -> Element {
    let groups = d.deployed.active_trusted_key_groups();
    let mut element = Element::new("ActiveTrustedKeyGroups")
        .with_text("Enabled", (!groups.is_empty()).to_string())
        .with_text("Quantity", groups.len().to_string());
    if !groups.is_empty() {
        element = element.with(groups.iter().fold(Element::new("Items"), |items, g| {
            let ids = g.key_pair_ids.iter().fold(Element::new("Items"), |i, k| {
                i.with_text("KeyPairId", k.as_str())
            });
            items.with(
                Element::new("KeyGroup")
                    .with_text("KeyGroupId", g.key_group_id.as_str())
                    .with(
                        Element::new("KeyPairIds")
                            .with_text("Quantity", g.key_pair_ids.len().to_string())
                            .with(ids),
                    ),
            )
        }));
    }
    element
}

fn distribution_element(d: &StoredDistribution) -> Element {
    Element::new("Distribution")
        .with_text("Id", d.id.as_str())
        .with_text("ARN", d.arn.as_str())
        .with_text("Status", d.status())
        .with_text("LastModifiedTime", format_time(d.last_modified_time))
        .with_text("InProgressInvalidationBatches", "0")
        .with_text("DomainName", d.domain_name.as_str())
        .with(
            Element::new("ActiveTrustedSigners")
                .with_text("Enabled", "false")
                .with_text("Quantity", "0"),
        )
        .with(active_trusted_key_groups_element(d))
        .with(d.config.clone())
}

fn distribution_summary_element(d: &StoredDistribution) -> Element {
    let copy = |name: &str, default: Element| d.config.child(name).cloned().unwrap_or(default);
    let text = |name: &str, default: &str| {
        Element::text(name, d.config.child_text(name).unwrap_or(default))
    };
    Element::new("DistributionSummary")
        .with_text("Id", d.id.as_str())
        .with_text("ARN", d.arn.as_str())
        .with_text("ETag", d.etag.as_str())
        .with_text("Status", d.status())
        .with_text("LastModifiedTime", format_time(d.last_modified_time))
        .with_text("DomainName", d.domain_name.as_str())
        .with(copy(
            "Aliases",
            Element::new("Aliases").with_text("Quantity", "0"),
        ))
        .with(copy(
            "Origins",
            Element::new("Origins").with_text("Quantity", "0"),
        ))
        .with(copy(
            "DefaultCacheBehavior",
            Element::new("DefaultCacheBehavior"),
        ))
        .with(copy(
            "CacheBehaviors",
            Element::new("CacheBehaviors").with_text("Quantity", "0"),
        ))
        .with(copy(
            "CustomErrorResponses",
            Element::new("CustomErrorResponses").with_text("Quantity", "0"),
        ))
        .with(text("Comment", ""))
        .with(text("PriceClass", "PriceClass_All"))
        .with(text("Enabled", "false"))
        .with(copy(
            "ViewerCertificate",
            Element::new("ViewerCertificate").with_text("CloudFrontDefaultCertificate", "true"),
        ))
        .with(copy(
            "Restrictions",
            Element::new("Restrictions").with(
                Element::new("GeoRestriction")
                    .with_text("RestrictionType", "none")
                    .with_text("Quantity", "0"),
            ),
        ))
        .with(text("WebACLId", ""))
        .with(text("HttpVersion", "http2"))
        .with(text("IsIPV6Enabled", "true"))
        .with(text("Staging", "false"))
}

async fn create_distribution(State(e): State<Emulator>, body: Bytes) -> Response {
    run(&e, "CreateDistribution", |m| {
        let d = m.create_distribution(body_root(&body, "DistributionConfig")?)?;
        Ok(xml_response(
            StatusCode::CREATED,
            Some(&d.etag),
            Some(format!("{API}/distribution/{}", d.id)),
            &distribution_element(&d),
        ))
    })
    .await
}

async fn get_distribution(State(e): State<Emulator>, Path(id): Path<String>) -> Response {
    run(&e, "GetDistribution", |m| {
        let d = m.get_distribution(&id)?;
        Ok(xml_response(
            StatusCode::OK,
            Some(&d.etag),
            None,
            &distribution_element(d),
        ))
    })
    .await
}

async fn get_distribution_config(State(e): State<Emulator>, Path(id): Path<String>) -> Response {
    run(&e, "GetDistributionConfig", |m| {
        let d = m.get_distribution(&id)?;
        Ok(xml_response(StatusCode::OK, Some(&d.etag), None, &d.config))
    })
    .await
}

async fn update_distribution(
    State(e): State<Emulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run(&e, "UpdateDistribution", |m| {
        let d = m.update_distribution(
            &id,
            body_root(&body, "DistributionConfig")?,
            if_match(&headers).as_deref(),
        )?;
        Ok(xml_response(
            StatusCode::OK,
            Some(&d.etag),
            None,
            &distribution_element(&d),
        ))
    })
    .await
}

async fn delete_distribution(
    State(e): State<Emulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    run(&e, "DeleteDistribution", |m| {
        m.delete_distribution(&id, if_match(&headers).as_deref())?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn list_distributions(
    State(e): State<Emulator>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    run(&e, "ListDistributions", |m| {
        let max = max_items(&query)?;
        let marker = query.get("Marker").cloned().unwrap_or_default();
        let (items, next) = page(
            m.list_distributions(),
            |d| d.id.as_str(),
            Some(marker.as_str()),
            max,
        );
        let mut list = Element::new("DistributionList")
            .with_text("Marker", marker.as_str())
            .with_optional_text("NextMarker", next.as_deref())
            .with_text("MaxItems", max.to_string())
            .with_text("IsTruncated", next.is_some().to_string())
            .with_text("Quantity", items.len().to_string());
        if !items.is_empty() {
            list = list.with(items.iter().fold(Element::new("Items"), |i, d| {
                i.with(distribution_summary_element(d))
            }));
        }
        Ok(xml_response(StatusCode::OK, None, None, &list))
    })
    .await
}

// ---- test controls ----

async fn script_fault(
    State(e): State<Emulator>,
    axum::Json(fault): axum::Json<ScriptedFault>,
) -> StatusCode {
    e.script_fault(fault);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(e): State<Emulator>) -> StatusCode {
    e.clear_faults();
    StatusCode::NO_CONTENT
}

async fn touch_distribution(State(e): State<Emulator>, Path(id): Path<String>) -> Response {
    match e.model().touch_distribution(&id) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => error_response(err),
    }
}
