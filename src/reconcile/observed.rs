//! What one pass gathers for the plan: the facts about the object ([`Subject`]) and what
//! [`super::observe`] found in Kubernetes and CloudFront ([`Observed`]).
//!
//! Owns: the shape of those inputs. Must not: do I/O or decide anything. Both the observe step
//! (which fills these types) and the pure plan (which reads them) import this module, and
//! neither imports the other.

use std::collections::BTreeMap;

use super::keyring::Keyring;
use crate::api::CloudFrontAccountSpec;
use crate::cloudfront::{Distribution, KeyGroup, PublicKey, Tagged};
use crate::keys::PrivateKeyPem;
use crate::tenancy::NamespaceFacts;

/// The facts about the object itself that decisions depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub uid: String,
    /// The owner token ([`super::names::owner_token`]): the identity every CloudFront object,
    /// Secret marker and the keyring are named by.
    pub owner: String,
    pub namespace: String,
    pub name: String,
    pub generation: Option<i64>,
    pub deleting: bool,
    pub has_finalizer: bool,
    /// Value of `keyfront.dev/rotate`.
    pub rotate_request: Option<String>,
    /// Value of `keyfront.dev/revoke-key`.
    pub revoke_request: Option<String>,
}

impl Subject {
    /// `namespace/name`, as queues and logs name the object.
    pub fn path(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

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

/// The ConfigMap `spec.keyGroup.idConfigMap` names, as found (`Missing` when none is named).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IdConfigMap {
    #[default]
    Missing,
    /// keyfront's, for this object: its data.
    Owned(BTreeMap<String, String>),
    /// Exists and is not keyfront's for this object: never overwritten.
    Foreign,
}

/// The keyring Secret as found (in the operator's keyring namespace).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKeyring {
    pub keyring: Keyring,
    pub resource_version: Option<String>,
    /// The cluster admin's [`super::names::RESUME_ANNOTATION`], if set.
    pub resume_in_namespace: Option<String>,
}

/// The CloudFront key group as found.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyGroupState {
    Missing,
    /// A key group with the wanted name exists and is not marked as this object's: refused,
    /// or adopted with `spec.keyGroup.adopt`.
    Taken(Tagged<KeyGroup>),
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
    /// The `CloudFrontAccount` named by `spec.accountRef`, if it exists.
    pub account: Option<CloudFrontAccountSpec>,
    /// The object's namespace, for the account's namespace grants.
    pub namespace: NamespaceFacts,
    /// `None` when there is no keyring Secret yet (or any more).
    pub keyring: Option<StoredKeyring>,
    pub app_secret: AppSecret,
    pub id_config_map: IdConfigMap,
    pub key_group: KeyGroupState,
    /// CloudFront facts below are observed only when the plan may use CloudFront at all
    /// ([`super::plan::reaches_cloudfront`]); otherwise they stay empty and are not read.
    /// This object's public keys found by listing, when a listing was needed.
    pub listed_public_keys: Option<Vec<PublicKey>>,
    /// Recorded public keys (keyfront's and adopted ones) outside the key group: whether each
    /// still exists.
    pub public_keys_present: BTreeMap<String, bool>,
    pub distributions: BTreeMap<String, DistributionState>,
    /// With `spec.keyGroup.adopt` and a key group not yet marked: the distributions that trust
    /// it (the granted ones among them are in `distributions` too).
    pub adoption_trust: Option<Vec<String>>,
    /// While a key waits to become active: every distribution that trusts the key group
    /// (`ListDistributionsByKeyGroup`), whether or not the spec lists it. The granted ones
    /// among them are in `distributions` too; the others are not read.
    pub trusting_distributions: Option<Vec<String>>,
    /// Public keys under this object's names and marker that another physical cluster claims
    /// (two clusters run with one `--cluster-id` in one AWS account): kept out of
    /// `listed_public_keys`, never touched.
    pub claimed_elsewhere: Vec<String>,
    /// The rotation windows of the account's other objects, which this object's next
    /// rotation is placed beside ([`super::capacity::stagger`]).
    pub rotations: Vec<super::capacity::stagger::Window>,
}

impl Observed {
    /// Nothing observed yet.
    pub fn empty() -> Self {
        Self {
            account: None,
            namespace: NamespaceFacts::default(),
            keyring: None,
            app_secret: AppSecret::Missing,
            id_config_map: IdConfigMap::Missing,
            key_group: KeyGroupState::Missing,
            listed_public_keys: None,
            public_keys_present: Default::default(),
            distributions: Default::default(),
            adoption_trust: None,
            trusting_distributions: None,
            claimed_elsewhere: Vec::new(),
            rotations: Vec::new(),
        }
    }

    pub fn keyring(&self) -> Keyring {
        self.keyring
            .as_ref()
            .map(|k| k.keyring.clone())
            .unwrap_or_default()
    }
}
