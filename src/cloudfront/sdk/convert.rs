//! Between the SDK's types and the port's (`crate::cloudfront`): reading responses (timestamps, ETags, public keys, key groups, a distribution's trust), and building the
//! SDK's configs back from them, keeping every setting keyfront does not own.

use aws_sdk_cloudfront::primitives::DateTime;
use aws_sdk_cloudfront::types;
use jiff::Timestamp;

use crate::cloudfront::{
    ActiveKeyGroup, BehaviorSelector, BehaviorTrust, CloudFrontError, DeploymentStatus,
    Distribution, ErrorKind, Etag, KeyGroup, KeyGroupConfig, PublicKey, Result,
};

pub(super) fn missing(operation: &'static str, what: &str) -> CloudFrontError {
    CloudFrontError::new(
        operation,
        ErrorKind::Transient,
        "IncompleteResponse",
        format!("response has no {what}"),
    )
}

pub(super) fn timestamp(t: &DateTime) -> Timestamp {
    Timestamp::new(t.secs(), t.subsec_nanos() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(super) fn etag(operation: &'static str, etag: Option<String>) -> Result<Etag> {
    etag.map(Etag).ok_or_else(|| missing(operation, "ETag"))
}

pub(super) fn public_key(key: types::PublicKey) -> PublicKey {
    let created_time = timestamp(&key.created_time);
    let config = key.public_key_config;
    PublicKey {
        id: key.id,
        created_time,
        name: config.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
        encoded_key: config
            .as_ref()
            .map(|c| c.encoded_key.clone())
            .unwrap_or_default(),
        comment: config.and_then(|c| c.comment),
    }
}

pub(super) fn key_group(group: types::KeyGroup) -> KeyGroup {
    let config = group.key_group_config.map(|c| KeyGroupConfig {
        name: c.name,
        comment: c.comment,
        items: c.items,
    });
    KeyGroup {
        id: group.id,
        config: config.unwrap_or_default(),
        last_modified_time: timestamp(&group.last_modified_time),
    }
}

fn trusted_ids(groups: Option<&types::TrustedKeyGroups>) -> Vec<String> {
    groups.map(|g| g.items().to_vec()).unwrap_or_default()
}

fn behaviors(config: &types::DistributionConfig) -> Vec<BehaviorTrust> {
    let default = config
        .default_cache_behavior
        .as_ref()
        .map(|b| BehaviorTrust {
            behavior: BehaviorSelector::Default,
            trusted_key_groups: trusted_ids(b.trusted_key_groups.as_ref()),
        });
    let others = config
        .cache_behaviors
        .iter()
        .flat_map(|c| c.items())
        .map(|b| BehaviorTrust {
            behavior: BehaviorSelector::PathPattern(b.path_pattern.clone()),
            trusted_key_groups: trusted_ids(b.trusted_key_groups.as_ref()),
        });
    default.into_iter().chain(others).collect()
}

pub(super) fn distribution(
    operation: &'static str,
    d: types::Distribution,
) -> Result<Distribution> {
    let config = d
        .distribution_config
        .ok_or_else(|| missing(operation, "DistributionConfig"))?;
    let active = d
        .active_trusted_key_groups
        .iter()
        .flat_map(|a| a.items())
        .map(|g| ActiveKeyGroup {
            key_group_id: g.key_group_id.clone().unwrap_or_default(),
            key_pair_ids: g
                .key_pair_ids
                .as_ref()
                .map(|k| k.items().to_vec())
                .unwrap_or_default(),
        })
        .collect();
    Ok(Distribution {
        id: d.id,
        status: if d.status == "Deployed" {
            DeploymentStatus::Deployed
        } else {
            DeploymentStatus::InProgress
        },
        enabled: config.enabled,
        behaviors: behaviors(&config),
        active_trusted_key_groups: active,
    })
}

pub(super) fn sdk_key_group_config(
    operation: &'static str,
    config: &KeyGroupConfig,
) -> Result<types::KeyGroupConfig> {
    types::KeyGroupConfig::builder()
        .name(&config.name)
        .set_comment(config.comment.clone())
        .set_items(Some(config.items.clone()))
        .build()
        .map_err(|_| {
            CloudFrontError::new(
                operation,
                ErrorKind::Invalid,
                "ConstructionFailure",
                "incomplete key group config",
            )
        })
}
