//! The production [`CloudFront`] implementation on `aws-sdk-cloudfront`.
//!
//! Clients are built per account by [`super::accounts::SdkAccounts`] (credentials, endpoint,
//! timeouts, retry). This module maps each operation and its errors.

mod convert;
pub mod raw_trust;

use aws_sdk_cloudfront::Client;
use aws_sdk_cloudfront::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudfront::types;

use super::{
    BehaviorTrust, CloudFront, CloudFrontError, Distribution, ErrorKind, Etag, KeyGroup,
    KeyGroupConfig, NewPublicKey, PublicKey, Result, Tagged,
};
use convert::{
    distribution, etag, key_group, missing, public_key, sdk_key_group_config, timestamp,
};

/// [`CloudFront`] over the AWS SDK.
#[derive(Debug, Clone)]
pub struct SdkCloudFront {
    client: Client,
}

impl SdkCloudFront {
    /// Wraps a client built elsewhere ([`super::accounts::SdkAccounts`], tests).
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Calls `GetDistributionConfig` and keeps only its ETag: the read every attach and detach
    /// starts with, as a permission check that changes nothing (`keyfront check-account`).
    pub async fn read_distribution_config(&self, id: &str) -> Result<Etag> {
        const OP: &str = "GetDistributionConfig";
        let output = self
            .client
            .get_distribution_config()
            .id(id)
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        output.e_tag.map(Etag).ok_or_else(|| missing(OP, "ETag"))
    }
}

pub(super) fn map_err<E, R>(operation: &'static str, err: SdkError<E, R>) -> CloudFrontError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("Unknown").to_owned();
            let message = service.err().message().unwrap_or_default().to_owned();
            CloudFrontError::from_code(operation, &code, message, None)
        }
        SdkError::TimeoutError(_) => CloudFrontError::new(
            operation,
            ErrorKind::Transient,
            "Timeout",
            "the call timed out",
        ),
        SdkError::DispatchFailure(failure) => {
            let message = if failure.is_timeout() {
                "connection timed out"
            } else if failure.is_io() {
                "connection failed"
            } else {
                "request could not be sent"
            };
            CloudFrontError::new(operation, ErrorKind::Transient, "DispatchFailure", message)
        }
        SdkError::ResponseError(_) => CloudFrontError::new(
            operation,
            ErrorKind::Transient,
            "ResponseError",
            "unreadable response",
        ),
        SdkError::ConstructionFailure(_) => CloudFrontError::new(
            operation,
            ErrorKind::Invalid,
            "ConstructionFailure",
            "request could not be built",
        ),
        _ => CloudFrontError::new(
            operation,
            ErrorKind::Transient,
            "Unknown",
            "unclassified SDK failure",
        ),
    }
}

impl CloudFront for SdkCloudFront {
    async fn create_public_key(&self, key: &NewPublicKey) -> Result<Tagged<PublicKey>> {
        const OP: &str = "CreatePublicKey";
        let config = types::PublicKeyConfig::builder()
            .caller_reference(&key.caller_reference)
            .name(&key.name)
            .encoded_key(&key.encoded_key)
            .set_comment(key.comment.clone())
            .build()
            .map_err(|_| {
                CloudFrontError::new(
                    OP,
                    ErrorKind::Invalid,
                    "ConstructionFailure",
                    "incomplete public key config",
                )
            })?;
        let out = self
            .client
            .create_public_key()
            .public_key_config(config)
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        let etag = etag(OP, out.e_tag)?;
        let value = public_key(out.public_key.ok_or_else(|| missing(OP, "PublicKey"))?);
        Ok(Tagged { value, etag })
    }

    async fn get_public_key(&self, id: &str) -> Result<Tagged<PublicKey>> {
        const OP: &str = "GetPublicKey";
        let out = self
            .client
            .get_public_key()
            .id(id)
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        let etag = etag(OP, out.e_tag)?;
        let value = public_key(out.public_key.ok_or_else(|| missing(OP, "PublicKey"))?);
        Ok(Tagged { value, etag })
    }

    async fn list_public_keys(&self) -> Result<Vec<PublicKey>> {
        const OP: &str = "ListPublicKeys";
        all_pages(|marker| async move {
            let out = self
                .client
                .list_public_keys()
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| map_err(OP, e))?;
            let Some(list) = out.public_key_list else {
                return Ok((Vec::new(), None));
            };
            let keys = list
                .items
                .unwrap_or_default()
                .into_iter()
                .map(|s| PublicKey {
                    created_time: timestamp(&s.created_time),
                    id: s.id,
                    name: s.name,
                    encoded_key: s.encoded_key,
                    comment: s.comment,
                });
            Ok((keys.collect(), list.next_marker))
        })
        .await
    }

    async fn delete_public_key(&self, id: &str, etag: &Etag) -> Result<()> {
        const OP: &str = "DeletePublicKey";
        self.client
            .delete_public_key()
            .id(id)
            .if_match(etag.as_str())
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        Ok(())
    }

    async fn create_key_group(&self, config: &KeyGroupConfig) -> Result<Tagged<KeyGroup>> {
        const OP: &str = "CreateKeyGroup";
        let out = self
            .client
            .create_key_group()
            .key_group_config(sdk_key_group_config(OP, config)?)
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        let etag = etag(OP, out.e_tag)?;
        Ok(Tagged {
            value: key_group(out.key_group.ok_or_else(|| missing(OP, "KeyGroup"))?),
            etag,
        })
    }

    async fn get_key_group(&self, id: &str) -> Result<Tagged<KeyGroup>> {
        const OP: &str = "GetKeyGroup";
        let out = self
            .client
            .get_key_group()
            .id(id)
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        let etag = etag(OP, out.e_tag)?;
        Ok(Tagged {
            value: key_group(out.key_group.ok_or_else(|| missing(OP, "KeyGroup"))?),
            etag,
        })
    }

    async fn list_key_groups(&self) -> Result<Vec<KeyGroup>> {
        const OP: &str = "ListKeyGroups";
        all_pages(|marker| async move {
            let out = self
                .client
                .list_key_groups()
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| map_err(OP, e))?;
            let Some(list) = out.key_group_list else {
                return Ok((Vec::new(), None));
            };
            let groups = list
                .items
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| s.key_group)
                .map(key_group);
            Ok((groups.collect(), list.next_marker))
        })
        .await
    }

    async fn list_distributions_by_key_group(&self, key_group_id: &str) -> Result<Vec<String>> {
        const OP: &str = "ListDistributionsByKeyGroup";
        all_pages(|marker| async move {
            let out = self
                .client
                .list_distributions_by_key_group()
                .key_group_id(key_group_id)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| map_err(OP, e))?;
            let Some(list) = out.distribution_id_list else {
                return Ok((Vec::new(), None));
            };
            Ok((list.items.unwrap_or_default(), list.next_marker))
        })
        .await
    }

    async fn update_key_group(
        &self,
        id: &str,
        config: &KeyGroupConfig,
        etag_in: &Etag,
    ) -> Result<Tagged<KeyGroup>> {
        const OP: &str = "UpdateKeyGroup";
        let out = self
            .client
            .update_key_group()
            .id(id)
            .if_match(etag_in.as_str())
            .key_group_config(sdk_key_group_config(OP, config)?)
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        let etag = etag(OP, out.e_tag)?;
        Ok(Tagged {
            value: key_group(out.key_group.ok_or_else(|| missing(OP, "KeyGroup"))?),
            etag,
        })
    }

    async fn delete_key_group(&self, id: &str, etag: &Etag) -> Result<()> {
        const OP: &str = "DeleteKeyGroup";
        self.client
            .delete_key_group()
            .id(id)
            .if_match(etag.as_str())
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        Ok(())
    }

    async fn get_distribution(&self, id: &str) -> Result<Tagged<Distribution>> {
        const OP: &str = "GetDistribution";
        let out = self
            .client
            .get_distribution()
            .id(id)
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        let etag = etag(OP, out.e_tag)?;
        Ok(Tagged {
            value: distribution(
                OP,
                out.distribution
                    .ok_or_else(|| missing(OP, "Distribution"))?,
            )?,
            etag,
        })
    }

    async fn set_trusted_key_groups(
        &self,
        id: &str,
        changes: &[BehaviorTrust],
        based_on: &Etag,
    ) -> Result<Tagged<Distribution>> {
        const OP: &str = "UpdateDistribution";
        // The raw config: the update sends it back with only the behaviors' TrustedKeyGroups
        // changed (see `raw_trust`), never the SDK's typed rewrite of it.
        let capture = raw_trust::CaptureResponse::default();
        let current = self
            .client
            .get_distribution_config()
            .id(id)
            .customize()
            .interceptor(capture.clone())
            .send()
            .await
            .map_err(|e| map_err("GetDistributionConfig", e))?;
        let original = capture
            .take()
            .ok_or_else(|| missing(OP, "the body of GetDistributionConfig"))?;
        if current.e_tag.as_deref() != Some(based_on.as_str()) {
            // The distribution changed since the caller read it; don't build on a stale view.
            return Err(CloudFrontError::new(
                OP,
                ErrorKind::PreconditionFailed,
                "PreconditionFailed",
                "the distribution changed since it was read",
            ));
        }
        let body = raw_trust::patch(&original, changes).map_err(|e| match e {
            raw_trust::PatchError::NoSuchBehavior(_) => CloudFrontError::new(
                OP,
                ErrorKind::NotFound,
                "NoSuchCacheBehavior",
                e.to_string(),
            ),
            _ => CloudFrontError::new(
                OP,
                ErrorKind::Invalid,
                "UnreadableDistributionConfig",
                e.to_string(),
            ),
        })?;
        // The SDK requires a typed config to build the request; the interceptor replaces its
        // serialization with `body` before signing.
        let config = current
            .distribution_config
            .ok_or_else(|| missing(OP, "DistributionConfig"))?;
        let out = self
            .client
            .update_distribution()
            .id(id)
            .if_match(based_on.as_str())
            .distribution_config(config)
            .customize()
            .interceptor(raw_trust::ReplaceBody { body })
            .send()
            .await
            .map_err(|e| map_err(OP, e))?;
        let etag = etag(OP, out.e_tag)?;
        Ok(Tagged {
            value: distribution(
                OP,
                out.distribution
                    .ok_or_else(|| missing(OP, "Distribution"))?,
            )?,
            etag,
        })
    }
}

/// Follows `NextMarker` until the last page.
async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>)>>,
{
    let mut items = Vec::new();
    let mut marker = None;
    loop {
        let (batch, next) = page(marker.take()).await?;
        items.extend(batch);
        match next.filter(|m| !m.is_empty()) {
            Some(next) => marker = Some(next),
            None => return Ok(items),
        }
    }
}
