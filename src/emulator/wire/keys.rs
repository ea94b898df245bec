//! Public keys and key groups over CloudFront's REST-XML protocol.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{API, Caller, body_root, format_time, if_match, max_items, run, xml_response};
use crate::cloudfront::KeyGroupConfig;
use crate::emulator::model::{ApiError, PublicKeyConfig, StoredKeyGroup, StoredPublicKey, page};
use crate::emulator::xml::Element;

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

pub(super) async fn create_public_key(e: Caller, body: Bytes) -> Response {
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

pub(super) async fn get_public_key(e: Caller, Path(id): Path<String>) -> Response {
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

pub(super) async fn get_public_key_config(e: Caller, Path(id): Path<String>) -> Response {
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

pub(super) async fn update_public_key(
    e: Caller,
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

pub(super) async fn list_public_keys(
    e: Caller,
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

pub(super) async fn delete_public_key(
    e: Caller,
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

pub(super) async fn create_key_group(e: Caller, body: Bytes) -> Response {
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

pub(super) async fn get_key_group(e: Caller, Path(id): Path<String>) -> Response {
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

pub(super) async fn get_key_group_config(e: Caller, Path(id): Path<String>) -> Response {
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

pub(super) async fn update_key_group(
    e: Caller,
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

pub(super) async fn delete_key_group(
    e: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    run(&e, "DeleteKeyGroup", |m| {
        m.delete_key_group(&id, if_match(&headers).as_deref())?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

pub(super) async fn list_distributions_by_key_group(
    e: Caller,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    run(&e, "ListDistributionsByKeyGroup", |m| {
        let max = max_items(&query)?;
        let ids = m.distributions_by_key_group(&id)?;
        let (ids, next) = page(
            ids.iter().collect(),
            |d| d.as_str(),
            query.get("Marker").map(String::as_str),
            max,
        );
        let mut list = Element::new("DistributionIdList")
            .with_text("Marker", query.get("Marker").cloned().unwrap_or_default())
            .with_optional_text("NextMarker", next.as_deref())
            .with_text("MaxItems", max.to_string())
            .with_text("IsTruncated", next.is_some().to_string())
            .with_text("Quantity", ids.len().to_string());
        if !ids.is_empty() {
            list = list.with(ids.iter().fold(Element::new("Items"), |items, d| {
                items.with(Element::text("DistributionId", d.as_str()))
            }));
        }
        Ok(xml_response(StatusCode::OK, None, None, &list))
    })
    .await
}

pub(super) async fn list_key_groups(
    e: Caller,
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
