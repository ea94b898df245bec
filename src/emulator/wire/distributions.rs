//! Distributions over CloudFront's REST-XML protocol.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{API, Caller, body_root, format_time, if_match, max_items, run, xml_response};
use crate::emulator::model::{StoredDistribution, page};
use crate::emulator::xml::Element;

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

pub(super) async fn create_distribution(e: Caller, body: Bytes) -> Response {
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

pub(super) async fn get_distribution(e: Caller, Path(id): Path<String>) -> Response {
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

pub(super) async fn get_distribution_config(e: Caller, Path(id): Path<String>) -> Response {
    run(&e, "GetDistributionConfig", |m| {
        let d = m.get_distribution(&id)?;
        Ok(xml_response(StatusCode::OK, Some(&d.etag), None, &d.config))
    })
    .await
}

pub(super) async fn update_distribution(
    e: Caller,
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

pub(super) async fn delete_distribution(
    e: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    run(&e, "DeleteDistribution", |m| {
        m.delete_distribution(&id, if_match(&headers).as_deref())?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

pub(super) async fn list_distributions(
    e: Caller,
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
