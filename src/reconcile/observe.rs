//! Observe (client required): read what the plan needs from Kubernetes and CloudFront, and
//! nothing else.
//!
//! Steady state costs one CloudFront read for the key group and one per distribution. Public
//! keys are listed only when something is unaccounted for: a key created but not yet recorded,
//! a lost keyring, or cleanup.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::keyring::Keyring;
use super::names::{self, OWNER_UID_ANNOTATION};
use super::plan::Subject;
use super::{Error, KubeOperation};
use crate::cloudfront::{CloudFront, Distribution, ErrorKind, KeyGroup, PublicKey, Tagged};
use crate::keys::PrivateKeyPem;

/// The app-facing Secret as found.
#[derive(Debug, Clone, PartialEq)]
pub enum AppSecret {
    Missing,
    /// Exists but is not keyfront's for this object: never overwritten.
    Foreign,
    Owned(OwnedAppSecret),
}

/// The parts of keyfront's app-facing Secret the plan compares with what it should be.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedAppSecret {
    pub resource_version: Option<String>,
    pub key_pair_id: Option<String>,
    pub public_key_pem: Option<String>,
    pub hash_algorithm: Option<String>,
    pub private_key: Option<PrivateKeyPem>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Has an ownerReference to the `SigningKeyGroup`.
    pub owner_referenced: bool,
}

/// The keyring Secret as found.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKeyring {
    pub keyring: Keyring,
    pub resource_version: Option<String>,
    pub owner_referenced: bool,
}

/// The CloudFront key group as found.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyGroupState {
    Missing,
    /// A key group with the wanted name exists and is not marked as this object's.
    Taken {
        id: String,
    },
    Owned(Tagged<KeyGroup>),
}

impl KeyGroupState {
    pub fn owned(&self) -> Option<&Tagged<KeyGroup>> {
        match self {
            Self::Owned(group) => Some(group),
            _ => None,
        }
    }
}

/// A distribution as found.
#[derive(Debug, Clone, PartialEq)]
pub enum DistributionState {
    Found(Tagged<Distribution>),
    NotFound,
}

/// Everything the plan looks at, gathered in one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// `None` when there is no keyring Secret yet (or any more).
    pub keyring: Option<StoredKeyring>,
    pub app_secret: AppSecret,
    pub key_group: KeyGroupState,
    /// This object's public keys found by listing, when a listing was needed.
    pub listed_public_keys: Option<Vec<PublicKey>>,
    /// Recorded public keys outside the key group: whether each still exists.
    pub public_keys_present: BTreeMap<String, bool>,
    pub distributions: BTreeMap<String, DistributionState>,
}

impl Observed {
    pub fn keyring(&self) -> Keyring {
        self.keyring
            .as_ref()
            .map(|k| k.keyring.clone())
            .unwrap_or_default()
    }
}

fn owner_referenced(meta: &kube::api::ObjectMeta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|r| r.uid == uid)
}

fn owned_by(meta: &kube::api::ObjectMeta, uid: &str) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(OWNER_UID_ANNOTATION))
        .is_some_and(|v| v == uid)
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

/// Reads the object's world. `key_group_name` is the CloudFront name to look for when no ID
/// is recorded; `secret_name` the app-facing Secret; `distribution_ids` those in the spec.
pub async fn observe<C: CloudFront>(
    cloudfront: &C,
    secrets: &Api<Secret>,
    subject: &Subject,
    key_group_name: &str,
    secret_name: &str,
    distribution_ids: &[String],
) -> Result<Observed, Error> {
    let uid = subject.uid.as_str();
    let keyring = match get_secret(secrets, &names::keyring_secret_name(uid)).await? {
        Some(secret) if owned_by(&secret.metadata, uid) => {
            let keyring = Keyring::from_secret_data(&secret.data.clone().unwrap_or_default())
                .map_err(Error::Keyring)?;
            Some(StoredKeyring {
                keyring,
                resource_version: secret.metadata.resource_version.clone(),
                owner_referenced: owner_referenced(&secret.metadata, uid),
            })
        }
        Some(_) => return Err(Error::KeyringNotOwned),
        None => None,
    };
    let app_secret = match get_secret(secrets, secret_name).await? {
        None => AppSecret::Missing,
        Some(secret) if owned_by(&secret.metadata, uid) => AppSecret::Owned(OwnedAppSecret {
            resource_version: secret.metadata.resource_version.clone(),
            key_pair_id: text(&secret, "key_pair_id"),
            public_key_pem: text(&secret, "public_key.pem"),
            hash_algorithm: text(&secret, "hash_algorithm"),
            private_key: text(&secret, "private_key.pem").map(PrivateKeyPem::new),
            labels: secret.metadata.labels.clone().unwrap_or_default(),
            annotations: secret.metadata.annotations.clone().unwrap_or_default(),
            owner_referenced: owner_referenced(&secret.metadata, uid),
        }),
        Some(_) => AppSecret::Foreign,
    };

    let recorded = keyring.as_ref().map(|k| &k.keyring);
    let key_group = find_key_group(
        cloudfront,
        uid,
        key_group_name,
        recorded.and_then(|k| k.key_group_id.as_deref()),
    )
    .await?;

    let needs_listing = subject.deleting
        || keyring.is_none()
        || recorded.is_some_and(|k| k.keys.iter().any(|r| r.public_key_id.is_none()));
    let listed_public_keys = if needs_listing {
        let prefix = names::public_key_prefix(uid);
        let all = cloudfront
            .list_public_keys()
            .await
            .map_err(Error::cloudfront("ListPublicKeys"))?;
        Some(
            all.into_iter()
                .filter(|k| {
                    k.name.starts_with(&prefix)
                        && names::is_owned_comment(k.comment.as_deref(), uid)
                })
                .collect(),
        )
    } else {
        None
    };

    let in_group: BTreeSet<&str> = key_group
        .owned()
        .map(|g| g.value.config.items.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut public_keys_present = BTreeMap::new();
    for id in recorded.map(Keyring::public_key_ids).unwrap_or_default() {
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

    let mut wanted: BTreeSet<&str> = distribution_ids.iter().map(String::as_str).collect();
    if let Some(k) = recorded {
        wanted.extend(k.attachments.keys().map(String::as_str));
    }
    let mut distributions = BTreeMap::new();
    for id in wanted {
        let state = match cloudfront.get_distribution(id).await {
            Ok(d) => DistributionState::Found(d),
            Err(e) if e.kind == ErrorKind::NotFound => DistributionState::NotFound,
            Err(e) => return Err(Error::cloudfront("GetDistribution")(e)),
        };
        distributions.insert(id.to_owned(), state);
    }

    Ok(Observed {
        keyring,
        app_secret,
        key_group,
        listed_public_keys,
        public_keys_present,
        distributions,
    })
}

async fn find_key_group<C: CloudFront>(
    cloudfront: &C,
    uid: &str,
    name: &str,
    recorded_id: Option<&str>,
) -> Result<KeyGroupState, Error> {
    let classify = |group: Tagged<KeyGroup>| {
        if names::is_owned_comment(group.value.config.comment.as_deref(), uid) {
            KeyGroupState::Owned(group)
        } else {
            KeyGroupState::Taken {
                id: group.value.id.clone(),
            }
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
    let Some(found) = groups.into_iter().find(|g| g.config.name == name) else {
        return Ok(KeyGroupState::Missing);
    };
    match cloudfront.get_key_group(&found.id).await {
        Ok(group) => Ok(classify(group)),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(KeyGroupState::Missing),
        Err(e) => Err(Error::cloudfront("GetKeyGroup")(e)),
    }
}
