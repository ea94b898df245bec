//! Observe (client required): read what the plan needs from Kubernetes and CloudFront, and
//! nothing else.
//!
//! Two halves: [`observe_secrets`] (the keyring, in the operator's namespace, and the app
//! Secret, in the tenant's) and [`observe_cloudfront`], which the reconciler calls only when
//! the account grant lets this object reach CloudFront at all.
//!
//! Steady state costs one CloudFront read for the key group; a distribution is read only when
//! the client remembers no recent read of it or something is awaited there (see
//! [`CloudFront::known_distribution`]). Public keys are listed only when something is
//! unaccounted for: a key created but not yet recorded, a lost keyring, or cleanup.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

use super::keyring::Keyring;
use super::names::{self, OWNER_ANNOTATION};
use super::observed::{
    AppSecret, DistributionState, IdConfigMap, KeyGroupState, Observed, OwnedAppSecret,
    StoredKeyring, Subject,
};
use super::{Error, KubeOperation};
use crate::api::KeyState;
use crate::cloudfront::budget::reuse;
use crate::cloudfront::{CloudFront, DeploymentStatus, Distribution, ErrorKind, KeyGroup, Tagged};
use crate::keys::PrivateKeyPem;
use crate::tenancy::Grants;

/// A distribution read this recent stands in for a fresh one wherever nothing is awaited
/// there: as late as the account's other reads may be ([`reuse::REUSE`]).
const RECENT: std::time::Duration = reuse::REUSE;

fn owner_referenced(meta: &kube::api::ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|r| r.uid == uid)
}

fn owned_by(meta: &kube::api::ObjectMeta, owner: &str) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(OWNER_ANNOTATION))
        .is_some_and(|v| v == owner)
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
}

async fn get_secret(api: &Api<Secret>, name: &str) -> Result<Option<Secret>, Error> {
    api.get_opt(name).await.map_err(|source| Error::Kube {
        operation: KubeOperation::ReadSecret,
        source,
    })
}

/// The ConfigMap `spec.keyGroup.idConfigMap` names, if it names one.
pub async fn observe_id_config_map(
    client: &kube::Client,
    subject: &Subject,
    name: Option<&str>,
) -> Result<IdConfigMap, Error> {
    let Some(name) = name else {
        return Ok(IdConfigMap::Missing);
    };
    let found = Api::<ConfigMap>::namespaced(client.clone(), &subject.namespace)
        .get_opt(name)
        .await
        .map_err(|source| Error::Kube {
            operation: KubeOperation::ReadConfigMap,
            source,
        })?;
    Ok(match found {
        None => IdConfigMap::Missing,
        Some(c) if owned_by(&c.metadata, &subject.owner) => {
            IdConfigMap::Owned(c.data.unwrap_or_default())
        }
        Some(_) => IdConfigMap::Foreign,
    })
}

/// Where the object's Secrets live: the app Secret in the tenant's namespace, the keyring in
/// the operator's.
pub struct SecretScopes<'a> {
    pub app: &'a Api<Secret>,
    pub keyring: &'a Api<Secret>,
}

/// The Kubernetes half of an observation: the keyring and the app-facing Secret.
pub async fn observe_secrets(
    scopes: &SecretScopes<'_>,
    subject: &Subject,
    secret_name: &str,
) -> Result<(Option<StoredKeyring>, AppSecret), Error> {
    let owner = subject.owner.as_str();
    let keyring = match get_secret(scopes.keyring, &names::keyring_secret_name(owner)).await? {
        Some(secret) if owned_by(&secret.metadata, owner) => {
            let keyring = Keyring::from_secret_data(&secret.data.clone().unwrap_or_default())
                .map_err(Error::Keyring)?;
            Some(StoredKeyring {
                keyring,
                resource_version: secret.metadata.resource_version.clone(),
                resume_in_namespace: secret
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(names::RESUME_ANNOTATION))
                    .cloned(),
            })
        }
        Some(_) => return Err(Error::KeyringNotOwned),
        None => None,
    };
    let app_secret = match get_secret(scopes.app, secret_name).await? {
        None => AppSecret::Missing,
        Some(secret) if owned_by(&secret.metadata, owner) => AppSecret::Owned(OwnedAppSecret {
            resource_version: secret.metadata.resource_version.clone(),
            key_pair_id: text(&secret, "key_pair_id"),
            public_key_pem: text(&secret, "public_key.pem"),
            hash_algorithm: text(&secret, "hash_algorithm"),
            private_key: text(&secret, "private_key.pem").map(PrivateKeyPem::new),
            labels: secret.metadata.labels.clone().unwrap_or_default(),
            annotations: secret.metadata.annotations.clone().unwrap_or_default(),
            owner_referenced: owner_referenced(&secret.metadata, &subject.uid),
        }),
        Some(_) => AppSecret::Foreign,
    };
    Ok((keyring, app_secret))
}

/// What [`observe_cloudfront`] looks for.
pub struct Wanted<'a> {
    pub key_group_name: &'a str,
    /// Where no name is recorded and the spec names none: the pre-0.2 default name, under
    /// which a group marked as this object's is found too (a lost keyring of an old object).
    pub legacy_key_group_name: Option<&'a str>,
    /// Granted distributions of the spec.
    pub distribution_ids: &'a [String],
    /// With `spec.keyGroup.adopt`, the namespace's grants: a key group not yet marked is
    /// checked for the distributions that trust it, and the granted ones among them are read.
    pub adopting_under: Option<&'a Grants>,
    /// The namespace's grants, when admitted: of the distributions found trusting the group
    /// while a key waits to become active, only granted ones are read.
    pub grants: Option<&'a Grants>,
}

/// The CloudFront half of an observation, filled into `observed`: the key group (found by
/// the recorded ID, else by name), public keys when something is unaccounted for, the
/// wanted distributions plus every distribution the keyring remembers attaching to, and, for
/// an adoption, the distributions that trust the group.
pub async fn observe_cloudfront<C: CloudFront>(
    cloudfront: &C,
    subject: &Subject,
    install_claim: &str,
    wanted_by_spec: &Wanted<'_>,
    observed: &mut Observed,
) -> Result<(), Error> {
    let owner = subject.owner.as_str();
    let recorded = observed.keyring.as_ref().map(|k| &k.keyring);
    let key_group = find_key_group(
        cloudfront,
        owner,
        wanted_by_spec,
        recorded.and_then(|k| k.key_group_id.as_deref()),
    )
    .await?;
    let adoption_trust = match (&key_group, wanted_by_spec.adopting_under) {
        (KeyGroupState::Taken(group), Some(_)) => Some(
            cloudfront
                .list_distributions_by_key_group(&group.value.id)
                .await
                .map_err(Error::cloudfront("ListDistributionsByKeyGroup"))?,
        ),
        _ => None,
    };

    // A key waiting to become active must be live on every distribution that trusts the
    // group, including ones attached outside keyfront (by hand, Terraform, ACK).
    let awaiting_activation = recorded.is_some_and(|k| {
        k.keys
            .iter()
            .any(|r| r.state == KeyState::Published && !r.revoked && r.public_key_id.is_some())
    });
    let trusting_distributions = match (&key_group, awaiting_activation && !subject.deleting) {
        (KeyGroupState::Owned(group), true) => Some(
            cloudfront
                .list_distributions_by_key_group(&group.value.id)
                .await
                .map_err(Error::cloudfront("ListDistributionsByKeyGroup"))?,
        ),
        _ => None,
    };

    let needs_listing = subject.deleting
        || recorded.is_none()
        || recorded.is_some_and(|k| k.keys.iter().any(|r| r.public_key_id.is_none()));
    let mut claimed_elsewhere = Vec::new();
    let listed_public_keys = if needs_listing {
        let prefix = names::public_key_prefix(owner);
        let all = cloudfront
            .list_public_keys()
            .await
            .map_err(Error::cloudfront("ListPublicKeys"))?;
        let (ours, elsewhere): (Vec<_>, Vec<_>) = all
            .into_iter()
            .filter(|k| {
                k.name.starts_with(&prefix) && names::is_owned_comment(k.comment.as_deref(), owner)
            })
            .partition(|k| {
                install_claim.is_empty()
                    || names::claim_of(k.comment.as_deref()).is_none_or(|c| c == install_claim)
            });
        claimed_elsewhere = elsewhere.into_iter().map(|k| k.name).collect();
        Some(ours)
    } else {
        None
    };

    let in_group: BTreeSet<&str> = key_group
        .owned()
        .map(|g| g.value.config.items.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut public_keys_present = BTreeMap::new();
    let adopted = recorded.map(Keyring::adopted_keys).unwrap_or_default();
    let recorded_ids = recorded.map(Keyring::public_key_ids).unwrap_or_default();
    for id in recorded_ids
        .into_iter()
        .chain(adopted.iter().map(String::as_str))
    {
        if in_group.contains(id) {
            continue;
        }
        let present = match cloudfront.get_public_key(id).await {
            Ok(_) => true,
            Err(e) if e.kind == ErrorKind::NotFound => false,
            Err(e) => return Err(Error::cloudfront("GetPublicKey")(e)),
        };
        public_keys_present.insert(id.to_owned(), present);
    }

    let mut wanted: BTreeSet<&str> = wanted_by_spec
        .distribution_ids
        .iter()
        .map(String::as_str)
        .collect();
    if let Some(k) = recorded {
        wanted.extend(k.attachments.keys().map(String::as_str));
    }
    // Distributions that trust a group being adopted: only granted ones are read.
    if let (Some(ids), Some(grants)) = (&adoption_trust, wanted_by_spec.adopting_under) {
        wanted.extend(
            ids.iter()
                .filter(|id| grants.distribution(id).is_some())
                .map(String::as_str),
        );
    }
    if let (Some(ids), Some(grants)) = (&trusting_distributions, wanted_by_spec.grants) {
        wanted.extend(
            ids.iter()
                .filter(|id| grants.distribution(id).is_some())
                .map(String::as_str),
        );
    }
    // A remembered read stands in for a fresh one only where nothing is awaited: deployed,
    // and the edge verifying exactly the key group's keys (a fresh read of the group was just
    // made), or anything where there is no key group yet. Deleting and adopting always read
    // afresh; a write starts from the read it is given and re-reads if that is stale. Where
    // there is no group, or the read does not trust it where the spec wants the group
    // (someone else may have attached it since: an owner with `trust: External`) or where
    // CloudFront just listed the distribution as trusting it, only a read younger than
    // [`RECENT`] will do.
    let group = key_group.owned().map(|g| &g.value);
    let may_remember = !subject.deleting && adoption_trust.is_none();
    let mut distributions = BTreeMap::new();
    for id in wanted {
        let known = may_remember
            .then(|| cloudfront.known_distribution(id))
            .flatten()
            .filter(|(_, d)| nothing_awaited(&d.value, group))
            .filter(|(age, d)| {
                let listed = trusting_distributions
                    .as_ref()
                    .is_some_and(|ids| ids.iter().any(|t| t == id));
                let in_spec = wanted_by_spec.distribution_ids.iter().any(|s| s == id);
                *age < RECENT
                    || group
                        .is_some_and(|g| d.value.configured_to_trust(&g.id) || !(listed || in_spec))
            })
            .map(|(_, d)| d);
        if let Some(known) = known {
            distributions.insert(id.to_owned(), DistributionState::Found(known));
            continue;
        }
        let state = match cloudfront.get_distribution(id).await {
            Ok(d) => DistributionState::Found(d),
            Err(e) if e.kind == ErrorKind::NotFound => DistributionState::NotFound,
            Err(e) => return Err(Error::cloudfront("GetDistribution")(e)),
        };
        distributions.insert(id.to_owned(), state);
    }

    observed.key_group = key_group;
    observed.listed_public_keys = listed_public_keys;
    observed.public_keys_present = public_keys_present;
    observed.distributions = distributions;
    observed.adoption_trust = adoption_trust;
    observed.trusting_distributions = trusting_distributions;
    observed.claimed_elsewhere = claimed_elsewhere;
    Ok(())
}

/// Whether `distribution` has nothing an object with key group `group` could be waiting for:
/// deployed, and the edge trusting the group exactly when the configuration does, with the
/// group's current keys (with no group yet, nothing can be awaited there).
fn nothing_awaited(distribution: &Distribution, group: Option<&KeyGroup>) -> bool {
    let Some(group) = group else {
        return true;
    };
    let configured = distribution.configured_to_trust(&group.id);
    let active = distribution
        .active_trusted_key_groups
        .iter()
        .find(|a| a.key_group_id == group.id);
    distribution.status == DeploymentStatus::Deployed
        && match active {
            None => !configured,
            Some(active) => {
                configured
                    && BTreeSet::from_iter(&active.key_pair_ids)
                        == BTreeSet::from_iter(&group.config.items)
            }
        }
}

/// The key group by its recorded ID, else by the wanted name, else (one listing serves both)
/// by the legacy name — there only a group marked as this object's counts: a foreign group is
/// not "taken" under a name this object no longer asks for.
async fn find_key_group<C: CloudFront>(
    cloudfront: &C,
    owner: &str,
    wanted: &Wanted<'_>,
    recorded_id: Option<&str>,
) -> Result<KeyGroupState, Error> {
    let classify = |group: Tagged<KeyGroup>| {
        if names::is_owned_comment(group.value.config.comment.as_deref(), owner) {
            KeyGroupState::Owned(group)
        } else {
            KeyGroupState::Taken(group)
        }
    };
    if let Some(id) = recorded_id {
        match cloudfront.get_key_group(id).await {
            Ok(group) => return Ok(classify(group)),
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::cloudfront("GetKeyGroup")(e)),
        }
    }
    let groups = cloudfront
        .list_key_groups()
        .await
        .map_err(Error::cloudfront("ListKeyGroups"))?;
    let by_name = |name: &str| groups.iter().find(|g| g.config.name == name).cloned();
    let (found, legacy) = match by_name(wanted.key_group_name) {
        Some(found) => (found, false),
        None => match wanted.legacy_key_group_name.and_then(by_name) {
            Some(found) => (found, true),
            None => return Ok(KeyGroupState::Missing),
        },
    };
    match cloudfront.get_key_group(&found.id).await {
        Ok(group) => match classify(group) {
            KeyGroupState::Taken(_) if legacy => Ok(KeyGroupState::Missing),
            state => Ok(state),
        },
        Err(e) if e.kind == ErrorKind::NotFound => Ok(KeyGroupState::Missing),
        Err(e) => Err(Error::cloudfront("GetKeyGroup")(e)),
    }
}
