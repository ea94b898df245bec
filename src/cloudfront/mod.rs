//! The CloudFront port: the narrow set of CloudFront operations keyfront needs, as one trait
//! with transport-neutral types and typed errors.
//!
//! Owns: the shape of what keyfront asks of CloudFront. Implementations: [`sdk::SdkCloudFront`]
//! (production, `aws-sdk-cloudfront`) and [`crate::emulator::Emulator`] (in-process model).
//! [`CloudFrontAccounts`] hands out a client per `CloudFrontAccount` and tenant namespace:
//! [`sdk::SdkAccounts`] assumes the account's role (the session named after the namespace);
//! any single client is also an "every account is this one" provider, for in-process tests.
//! Must not: decide anything. Which key to add, when to detach and whether a behavior may go
//! public are decisions of the reconciler; this layer only carries them out.

pub mod accounts;
pub mod arrivals;
pub mod budget;
mod coalesce;
mod error;
pub mod holds;
pub mod hooked;
pub mod sdk;
pub mod trust;

pub use error::{CloudFrontError, ErrorKind};
pub use trust::TrustChange;

use std::future::Future;

use jiff::Timestamp;

use crate::api::AssumeRole;

/// How to act in one account on behalf of one tenant namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountAccess {
    /// The `CloudFrontAccount` name.
    pub account: String,
    /// The role to assume; `None`: keyfront's own credentials.
    pub assume_role: Option<AssumeRole>,
    /// The tenant namespace, carried in the STS session name so CloudTrail shows who acted.
    pub namespace: String,
    /// The AWS account ID the credentials act in, once known (the account's
    /// `status.accountId`): the call budget and coalescing belong to the AWS account, so two
    /// `CloudFrontAccount`s for one AWS account share them.
    pub aws_account_id: Option<String>,
}

/// Hands out a CloudFront client for an account.
pub trait CloudFrontAccounts: Send + Sync {
    type Client: CloudFront + Send + Sync;
    fn connect(&self, access: &AccountAccess) -> impl Future<Output = Result<Self::Client>> + Send;

    /// The AWS account ID these credentials act in, when the provider can tell (STS).
    fn caller_account(
        &self,
        _access: &AccountAccess,
    ) -> impl Future<Output = Result<Option<String>>> + Send {
        async { Ok(None) }
    }
}

/// One client for every account (the in-process emulator, test taps).
impl<C: CloudFront + Clone + Send + Sync> CloudFrontAccounts for C {
    type Client = C;
    async fn connect(&self, _access: &AccountAccess) -> Result<C> {
        Ok(self.clone())
    }
}

/// Result of a CloudFront call.
pub type Result<T, E = CloudFrontError> = std::result::Result<T, E>;

/// The version tag CloudFront returns with every read and requires (as `IfMatch`) on every
/// write to the same object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Etag(pub String);

impl Etag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Etag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value together with the ETag it was read or written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged<T> {
    pub value: T,
    pub etag: Etag,
}

/// A public key to create. `name` is unique per account; keyfront derives it deterministically
/// so that a crash between "create" and "record the ID" is recovered by finding it by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPublicKey {
    pub name: String,
    /// PEM `PUBLIC KEY` (SubjectPublicKeyInfo). Public material only.
    pub encoded_key: String,
    pub comment: Option<String>,
    pub caller_reference: String,
}

/// A CloudFront public key as listed or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub id: String,
    pub name: String,
    pub encoded_key: String,
    pub comment: Option<String>,
    pub created_time: Timestamp,
}

/// What a key group holds. Updates replace it whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyGroupConfig {
    pub name: String,
    pub comment: Option<String>,
    /// Public key IDs, at most 5 by default.
    pub items: Vec<String>,
}

/// A CloudFront key group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGroup {
    pub id: String,
    pub config: KeyGroupConfig,
    pub last_modified_time: Timestamp,
}

/// Whether the distribution's last change has reached every edge location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    InProgress,
    Deployed,
}

/// Which cache behavior of a distribution: the default one, or one by its path pattern.
/// Serialized (`"default"`, `{"pathPattern": "/a/*"}`) in keyfront's keyring.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum BehaviorSelector {
    Default,
    PathPattern(String),
}

impl std::fmt::Display for BehaviorSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default cache behavior"),
            Self::PathPattern(p) => write!(f, "cache behavior {p:?}"),
        }
    }
}

/// The trusted key groups of one cache behavior. An empty list means the behavior is public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BehaviorTrust {
    pub behavior: BehaviorSelector,
    pub trusted_key_groups: Vec<String>,
}

/// Key IDs that edge locations can verify, per trusted key group, as deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveKeyGroup {
    pub key_group_id: String,
    pub key_pair_ids: Vec<String>,
}

/// The parts of a distribution keyfront reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    pub id: String,
    pub status: DeploymentStatus,
    pub enabled: bool,
    /// Trusted key groups per cache behavior in the current configuration.
    pub behaviors: Vec<BehaviorTrust>,
    /// `ActiveTrustedKeyGroups`: what the edge verifies now (deployed state only).
    pub active_trusted_key_groups: Vec<ActiveKeyGroup>,
}

impl Distribution {
    /// The trust of one behavior, if the distribution has it.
    pub fn behavior(&self, selector: &BehaviorSelector) -> Option<&BehaviorTrust> {
        self.behaviors.iter().find(|b| &b.behavior == selector)
    }

    /// Whether a cache behavior of the configuration trusts `key_group_id` (deployed or not).
    pub fn configured_to_trust(&self, key_group_id: &str) -> bool {
        self.behaviors
            .iter()
            .any(|b| b.trusted_key_groups.iter().any(|g| g == key_group_id))
    }

    /// Whether the edge verifies signatures made with `key_id` through `key_group_id`.
    pub fn is_key_live(&self, key_group_id: &str, key_id: &str) -> bool {
        self.status == DeploymentStatus::Deployed
            && self.active_trusted_key_groups.iter().any(|g| {
                g.key_group_id == key_group_id && g.key_pair_ids.iter().any(|k| k == key_id)
            })
    }
}

/// The CloudFront operations keyfront performs. Every write takes the ETag of the read it is
/// based on; a stale one fails with [`ErrorKind::PreconditionFailed`].
pub trait CloudFront: Send + Sync {
    fn create_public_key(
        &self,
        key: &NewPublicKey,
    ) -> impl Future<Output = Result<Tagged<PublicKey>>> + Send;
    fn get_public_key(&self, id: &str) -> impl Future<Output = Result<Tagged<PublicKey>>> + Send;
    /// All public keys in the account (every page).
    fn list_public_keys(&self) -> impl Future<Output = Result<Vec<PublicKey>>> + Send;
    fn delete_public_key(&self, id: &str, etag: &Etag) -> impl Future<Output = Result<()>> + Send;

    fn create_key_group(
        &self,
        config: &KeyGroupConfig,
    ) -> impl Future<Output = Result<Tagged<KeyGroup>>> + Send;
    fn get_key_group(&self, id: &str) -> impl Future<Output = Result<Tagged<KeyGroup>>> + Send;
    /// All key groups in the account (every page).
    fn list_key_groups(&self) -> impl Future<Output = Result<Vec<KeyGroup>>> + Send;
    fn update_key_group(
        &self,
        id: &str,
        config: &KeyGroupConfig,
        etag: &Etag,
    ) -> impl Future<Output = Result<Tagged<KeyGroup>>> + Send;
    fn delete_key_group(&self, id: &str, etag: &Etag) -> impl Future<Output = Result<()>> + Send;

    fn get_distribution(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Tagged<Distribution>>> + Send;
    /// IDs of every distribution with a cache behavior that trusts the key group (every page).
    fn list_distributions_by_key_group(
        &self,
        key_group_id: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Replaces the trusted key groups of the listed behaviors (others untouched), keeping every
    /// other setting of the distribution. `etag` is the ETag of the read the change is based on.
    fn set_trusted_key_groups(
        &self,
        id: &str,
        behaviors: &[BehaviorTrust],
        etag: &Etag,
    ) -> impl Future<Output = Result<Tagged<Distribution>>> + Send;

    /// Applies `changes` to the distribution's trust as it is when written: one
    /// read-modify-write, starting from `base` (a read the caller has; saves a read while its
    /// ETag is current). The budgeted client ([`budget::Budgeted`]) merges the changes of
    /// several objects to one distribution into one write.
    fn change_trust(
        &self,
        id: &str,
        changes: &[TrustChange],
        base: Option<Tagged<Distribution>>,
    ) -> impl Future<Output = Result<Tagged<Distribution>>> + Send {
        trust::read_modify_write(self, id, changes, base)
    }

    /// A recent read (or write) of the distribution this client remembers, if it keeps any,
    /// and how old it is: the reconciler uses it instead of a fresh read when nothing it
    /// waits for is there.
    fn known_distribution(&self, _id: &str) -> Option<(std::time::Duration, Tagged<Distribution>)> {
        None
    }

    /// `holder` (an object) waits for exactly these distributions to deploy its key: a client
    /// that writes for several objects (the budgeted one) holds its other writes there
    /// meanwhile ([`holds::Holds`]). Others ignore it.
    fn await_deployment(&self, _holder: &str, _distributions: &[String]) {}

    /// `object` is on its way to exactly these distributions (it will attach once its key,
    /// group and Secret exist): a client that coalesces writes (the budgeted one) lets the
    /// distribution's next onboarding write wait for it a little ([`arrivals::Arrivals`]).
    /// Others ignore it.
    fn heading_to(&self, _object: &str, _distributions: &[String]) {}
}
