//! The `CloudFrontAccount` status: whether its credentials work, which AWS account they act
//! in, and what the account holds against its quotas.
//!
//! Observe (client required): STS `GetCallerIdentity` where the provider can tell, then one
//! listing each of key groups and public keys (the listing of key groups is the credential
//! check). Status (no client required): [`account_status`]. Looked at again every resync.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

use super::{Context, Error, KubeOperation, Outcome, reasons};
use crate::api::{AccountUsage, CloudFrontAccount, CloudFrontAccountStatus};
use crate::cloudfront::{AccountAccess, CloudFront as _, CloudFrontAccounts, KeyGroup, PublicKey};

/// What one look at an account found.
#[derive(Debug, Clone)]
pub struct AccountObservation {
    pub account_id: Option<String>,
    pub key_groups: Vec<KeyGroup>,
    pub public_keys: Vec<PublicKey>,
}

fn by_keyfront(comment: Option<&str>) -> bool {
    comment.is_some_and(|c| c.starts_with("keyfront:"))
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The status from what was found (or the error that stopped the look).
pub fn account_status(
    account: &CloudFrontAccount,
    found: Result<&AccountObservation, (&str, String)>,
    now: jiff::Timestamp,
) -> CloudFrontAccountStatus {
    let previous = account.status.clone().unwrap_or_default();
    let (status, reason, message) = match &found {
        Ok(o) => (
            "True",
            "CredentialsVerified",
            format!(
                "listed {} key groups and {} public keys with these credentials",
                o.key_groups.len(),
                o.public_keys.len()
            ),
        ),
        Err((category, message)) => ("False", *category, message.clone()),
    };
    let last_transition_time = previous
        .conditions
        .iter()
        .find(|c| c.type_ == reasons::READY && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let quotas = &account.spec.quotas;
    CloudFrontAccountStatus {
        observed_generation: account.metadata.generation,
        conditions: vec![Condition {
            type_: reasons::READY.into(),
            status: status.into(),
            reason: reason.into(),
            message,
            observed_generation: account.metadata.generation,
            last_transition_time,
        }],
        account_id: match &found {
            Ok(o) => o.account_id.clone().or(previous.account_id),
            Err(_) => previous.account_id,
        },
        usage: match &found {
            Ok(o) => Some(AccountUsage {
                public_keys: count(o.public_keys.len()),
                public_keys_by_keyfront: count(
                    o.public_keys
                        .iter()
                        .filter(|k| by_keyfront(k.comment.as_deref()))
                        .count(),
                ),
                public_key_quota: quotas.public_keys,
                key_groups: count(o.key_groups.len()),
                key_groups_by_keyfront: count(
                    o.key_groups
                        .iter()
                        .filter(|g| by_keyfront(g.config.comment.as_deref()))
                        .count(),
                ),
                key_group_quota: quotas.key_groups,
            }),
            Err(_) => previous.usage,
        },
    }
}

async fn observe_account<A: CloudFrontAccounts>(
    ctx: &Context<A>,
    account: &CloudFrontAccount,
) -> Result<AccountObservation, Error> {
    let access = AccountAccess {
        account: account.name_any(),
        assume_role: account.spec.assume_role.clone(),
        namespace: ctx.config.keyring_namespace.clone(),
    };
    let account_id = ctx
        .accounts
        .caller_account(&access)
        .await
        .map_err(Error::cloudfront("GetCallerIdentity"))?;
    let client = ctx
        .accounts
        .connect(&access)
        .await
        .map_err(Error::cloudfront("AssumeRole"))?;
    let key_groups = client
        .list_key_groups()
        .await
        .map_err(Error::cloudfront("ListKeyGroups"))?;
    let public_keys = client
        .list_public_keys()
        .await
        .map_err(Error::cloudfront("ListPublicKeys"))?;
    Ok(AccountObservation {
        account_id,
        key_groups,
        public_keys,
    })
}

/// Checks one account and writes its status if it changed.
#[tracing::instrument(skip_all, fields(account = %account.name_any()))]
pub async fn reconcile_account<A: CloudFrontAccounts>(
    account: Arc<CloudFrontAccount>,
    ctx: Arc<Context<A>>,
) -> Result<Outcome, Error> {
    let found = observe_account(&ctx, &account).await;
    if let Err(error) = &found {
        tracing::warn!(category = error.category(), error = %error.detail(), "account check failed");
    }
    let status = account_status(
        &account,
        found.as_ref().map_err(|e| (e.category(), e.detail())),
        ctx.clock.now(),
    );
    if super::status::changes_stored(account.status.as_ref(), &status) {
        Api::<CloudFrontAccount>::all(ctx.client.clone())
            .patch_status(
                &account.name_any(),
                &PatchParams::apply("keyfront").force(),
                &Patch::Apply(json!({
                    "apiVersion": "keyfront.dev/v1alpha1",
                    "kind": "CloudFrontAccount",
                    "status": status,
                })),
            )
            .await
            .map_err(|source| Error::Kube {
                operation: KubeOperation::WriteStatus,
                source,
            })?;
    }
    found?;
    Ok(Outcome::Requeue(ctx.config.resync))
}
