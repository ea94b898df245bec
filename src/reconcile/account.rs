//! The `CloudFrontAccount` status: whether its credentials work, which AWS account they act
//! in, and what the account holds against its quotas.
//!
//! Observe (client required): STS `GetCallerIdentity` where the provider can tell, then one
//! listing each of key groups and public keys (the listing of key groups is the credential
//! check); and, from Secret metadata alone, the keyrings no object claims. Status (no client
//! required): [`account_status`], [`unclaimed_keyrings`]. Looked at again as soon as keyfront
//! creates or deletes a public key or key group in the account
//! ([`super::capacity::Gate::changed`]), and every 5 minutes (or every resync if that is
//! shorter) for what others change there.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::ListParams;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

use super::{Context, Error, KubeOperation, Outcome, names, reasons};
use crate::api::{
    AccountUsage, CloudFrontAccount, CloudFrontAccountStatus, SigningKeyGroup, UnclaimedKeyring,
};
use crate::cloudfront::{AccountAccess, CloudFront as _, CloudFrontAccounts, KeyGroup, PublicKey};

/// What one look at an account found.
#[derive(Debug, Clone)]
pub struct AccountObservation {
    pub account_id: Option<String>,
    pub key_groups: Vec<KeyGroup>,
    pub public_keys: Vec<PublicKey>,
}

/// One keyring Secret as the unclaimed list sees it (from its metadata, and whether its
/// object and namespace still exist).
#[derive(Debug, Clone, Default)]
pub struct KeyringFacts {
    pub secret: String,
    /// `namespace/name` of the object it was made for.
    pub object: String,
    /// The account it records; absent on keyrings written before 0.2.
    pub account: Option<String>,
    /// The namespace UID it records; absent on keyrings written before 0.2.
    pub namespace_uid: Option<String>,
    pub object_exists: bool,
    /// The UID of the namespace of that name now, if it exists.
    pub current_namespace_uid: Option<String>,
}

/// The keyrings of `account` that no object claims, and why. A keyring that records no account
/// (written before 0.2) is listed on every account, since it cannot be told apart.
pub fn unclaimed_keyrings(account: &str, keyrings: &[KeyringFacts]) -> Vec<UnclaimedKeyring> {
    let mut unclaimed: Vec<UnclaimedKeyring> = keyrings
        .iter()
        .filter(|k| k.account.as_deref().is_none_or(|a| a == account))
        .filter_map(|k| {
            let namespace = k.object.split('/').next().unwrap_or_default();
            let reason = match (&k.namespace_uid, &k.current_namespace_uid) {
                (_, None) => format!("namespace {namespace} no longer exists"),
                (Some(made_for), Some(now)) if made_for != now => {
                    format!("namespace {namespace} was deleted and created again")
                }
                _ if !k.object_exists => format!("no SigningKeyGroup {} exists", k.object),
                _ => return None,
            };
            Some(UnclaimedKeyring {
                secret: k.secret.clone(),
                object: k.object.clone(),
                reason,
            })
        })
        .collect();
    unclaimed.sort_by(|a, b| a.secret.cmp(&b.secret));
    unclaimed
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The status from what was found (or the error that stopped the look).
pub fn account_status(
    account: &CloudFrontAccount,
    found: Result<&AccountObservation, (&str, String)>,
    unclaimed: Vec<UnclaimedKeyring>,
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
                        .filter(|k| names::made_by_keyfront(k.comment.as_deref()))
                        .count(),
                ),
                public_key_quota: quotas.public_keys,
                key_groups: count(o.key_groups.len()),
                key_groups_by_keyfront: count(
                    o.key_groups
                        .iter()
                        .filter(|g| names::made_by_keyfront(g.config.comment.as_deref()))
                        .count(),
                ),
                key_group_quota: quotas.key_groups,
            }),
            Err(_) => previous.usage,
        },
        unclaimed_keyrings: unclaimed,
    }
}

/// Every keyring Secret's facts, read from metadata (no key material is fetched).
async fn observe_keyrings<A>(ctx: &Context<A>) -> Result<Vec<KeyringFacts>, Error> {
    let read = |source| Error::Kube {
        operation: KubeOperation::ReadSecret,
        source,
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.keyring_namespace);
    let listed = secrets
        .list_metadata(&ListParams::default().labels(&format!("{}=keyring", names::ROLE_LABEL)))
        .await
        .map_err(read)?;
    let mut facts = Vec::new();
    for secret in listed.items {
        let annotation = |key: &str| secret.annotations().get(key).cloned();
        let Some(object) = annotation(names::OWNER_OBJECT_ANNOTATION) else {
            continue;
        };
        let Some((namespace, name)) = object.split_once('/') else {
            continue;
        };
        let current_namespace_uid = Api::<Namespace>::all(ctx.client.clone())
            .get_metadata_opt(namespace)
            .await
            .map_err(|source| Error::Kube {
                operation: KubeOperation::ReadNamespace,
                source,
            })?
            .and_then(|n| n.metadata.uid);
        let object_exists = current_namespace_uid.is_some()
            && Api::<SigningKeyGroup>::namespaced(ctx.client.clone(), namespace)
                .get_metadata_opt(name)
                .await
                .map_err(|source| Error::Kube {
                    operation: KubeOperation::ReadObject,
                    source,
                })?
                .is_some();
        facts.push(KeyringFacts {
            secret: secret.name_any(),
            object: object.clone(),
            account: annotation(names::ACCOUNT_ANNOTATION),
            namespace_uid: annotation(names::NAMESPACE_UID_ANNOTATION),
            object_exists,
            current_namespace_uid,
        });
    }
    Ok(facts)
}

async fn observe_account<A: CloudFrontAccounts>(
    ctx: &Context<A>,
    account: &CloudFrontAccount,
) -> Result<AccountObservation, Error> {
    let mut access = AccountAccess {
        account: account.name_any(),
        assume_role: account.spec.assume_role.clone(),
        namespace: ctx.config.keyring_namespace.clone(),
        aws_account_id: None,
    };
    let account_id = ctx
        .accounts
        .caller_account(&access)
        .await
        .map_err(Error::cloudfront("GetCallerIdentity"))?;
    access.aws_account_id = account_id
        .clone()
        .or_else(|| account.status.as_ref().and_then(|s| s.account_id.clone()));
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
/// `report_unclaimed` hears how many keyrings of the account no object claims (for a metric).
pub async fn reconcile_account<A: CloudFrontAccounts>(
    account: Arc<CloudFrontAccount>,
    ctx: Arc<Context<A>>,
    report_unclaimed: impl Fn(usize),
) -> Result<Outcome, Error> {
    let found = observe_account(&ctx, &account).await;
    if let Err(error) = &found {
        tracing::warn!(category = error.category(), error = %error.detail(), "account check failed");
    }
    let unclaimed = match observe_keyrings(&ctx).await {
        Ok(facts) => unclaimed_keyrings(&account.name_any(), &facts),
        Err(error) => {
            tracing::warn!(error = %error.detail(), "could not list keyrings");
            account
                .status
                .as_ref()
                .map(|s| s.unclaimed_keyrings.clone())
                .unwrap_or_default()
        }
    };
    report_unclaimed(unclaimed.len());
    let status = account_status(
        &account,
        found.as_ref().map_err(|e| (e.category(), e.detail())),
        unclaimed,
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
    Ok(Outcome::Requeue(ctx.config.resync.min(USAGE_REFRESH)))
}

/// How stale `kubectl get cfa`'s usage may get: two List calls per account this often.
const USAGE_REFRESH: std::time::Duration = std::time::Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(object: &str, account: Option<&str>, made_for: Option<&str>) -> KeyringFacts {
        KeyringFacts {
            secret: format!("keyfront-keyring-{}", object.replace('/', "-")),
            object: object.into(),
            account: account.map(Into::into),
            namespace_uid: made_for.map(Into::into),
            object_exists: true,
            current_namespace_uid: Some("uid-1".into()),
        }
    }

    #[test]
    fn unclaimed_keyrings_name_why_no_object_claims_them() {
        let claimed = facts("team-a/live", Some("default"), Some("uid-1"));
        let mut retained = facts("team-a/retained", Some("default"), Some("uid-1"));
        retained.object_exists = false;
        let recreated = facts("team-b/media", Some("default"), Some("uid-0"));
        let mut gone = facts("team-c/media", None, None);
        gone.current_namespace_uid = None;
        gone.object_exists = false;
        let elsewhere = facts("team-d/x", Some("other"), Some("uid-0"));
        let list = unclaimed_keyrings("default", &[claimed, retained, recreated, gone, elsewhere]);
        let reasons: Vec<(&str, &str)> = list
            .iter()
            .map(|u| (u.object.as_str(), u.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    "team-a/retained",
                    "no SigningKeyGroup team-a/retained exists"
                ),
                (
                    "team-b/media",
                    "namespace team-b was deleted and created again"
                ),
                ("team-c/media", "namespace team-c no longer exists"),
            ]
        );
    }
}
