//! The `SigningKeyGroup` API (`keyfront.dev/v1alpha1`): spec and status types, the CEL rules the
//! API server enforces at admission, printer columns, and the names derived from an object.
//!
//! Owns: the wire shape of the custom resource and everything in its generated CRD.
//! Must not: do I/O or hold decisions; the reconciler reads these types, never the reverse.
//!
//! Spec fields stay plain strings where the API server already validates them (durations,
//! names): a malformed value must never stop the controller from deserializing an object it
//! still has to clean up.

mod account;
mod duration;
mod names;

pub use account::{
    AccountQuotas, AccountUsage, AssumeRole, CloudFrontAccount, CloudFrontAccountSpec,
    CloudFrontAccountStatus, DEFAULT_ACCOUNT, DistributionGrant, KeyGroupNamePolicy, NamespaceFrom,
    NamespaceGrant, NamespaceLimits, UnclaimedKeyring, UngrantedNamespacePolicy,
};
pub use duration::{DURATION_PATTERN, DurationError, parse_cli_duration, parse_duration};
use duration::{no_days, not_negative, rotation_durations_valid};
pub use names::{default_key_group_name, default_secret_name, legacy_default_key_group_name};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every keyfront resource.
pub const GROUP: &str = "keyfront.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// CloudFront allows at most this many public keys in one key group.
pub const MAX_KEYS_PER_GROUP: usize = 5;

/// Desired state of one CloudFront key group and the signing keys it trusts.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keyfront.dev",
    version = "v1alpha1",
    kind = "SigningKeyGroup",
    plural = "signingkeygroups",
    shortname = "skg",
    namespaced,
    status = "SigningKeyGroupStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Key Group","type":"string","jsonPath":".status.keyGroupId"}"#,
    printcolumn = r#"{"name":"Active Key","type":"string","jsonPath":".status.activeKeyId"}"#,
    // A string, not a `date`: kubectl shows a date as an age, `<invalid>` for any future time.
    printcolumn = r#"{"name":"Next Rotation","type":"string","jsonPath":".status.nextRotationTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new(
        "has(self.spec.keyGroup.name) || (size(self.metadata.name) <= 64 && self.metadata.name.matches('^[A-Za-z0-9_-]+$'))"
    ).message(
        "spec.keyGroup.name: required when metadata.name is longer than 64 characters or contains '.', because the default key group name '<namespace>_<name>' must match ^[A-Za-z0-9_-]{1,128}$"
    ).field_path(".spec.keyGroup.name"),
    // Names are immutable, compared as the names in effect: the spec's, else the one status
    // records. Pinning a name to the value that was defaulted is therefore no change (GitOps
    // users pin names later). `oldSelf.status` on both sides: a spec update cannot move it.
    validation = Rule::new(
        "(has(self.spec.keyGroup.name) ? self.spec.keyGroup.name : (has(oldSelf.status) && has(oldSelf.status.keyGroupName) ? oldSelf.status.keyGroupName : '')) == (has(oldSelf.spec.keyGroup.name) ? oldSelf.spec.keyGroup.name : (has(oldSelf.status) && has(oldSelf.status.keyGroupName) ? oldSelf.status.keyGroupName : ''))"
    ).message(
        "spec.keyGroup.name is immutable: it names the CloudFront key group distributions trust (setting it to the name in status.keyGroupName is allowed)"
    ).field_path(".spec.keyGroup.name"),
    validation = Rule::new(
        "(has(self.spec.secret.name) ? self.spec.secret.name : (has(oldSelf.status) && has(oldSelf.status.secretName) ? oldSelf.status.secretName : '')) == (has(oldSelf.spec.secret.name) ? oldSelf.spec.secret.name : (has(oldSelf.status) && has(oldSelf.status.secretName) ? oldSelf.status.secretName : ''))"
    ).message(
        "spec.secret.name is immutable: pods mount the Secret by name (setting it to the name in status.secretName is allowed)"
    ).field_path(".spec.secret.name"),
    validation = Rule::new(
        "has(self.spec.secret.name) || size(self.metadata.name) <= 236"
    ).message(
        "spec.secret.name: required when metadata.name is longer than 236 characters, because the default '<name>-cloudfront-key' must fit in 253"
    ).field_path(".spec.secret.name"),
)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyGroupSpec {
    /// The cluster-scoped `CloudFrontAccount` whose credentials and grants apply. Immutable.
    #[serde(default)]
    pub account_ref: AccountRef,
    /// The CloudFront key group this object owns.
    #[serde(default)]
    pub key_group: KeyGroupSpec,
    /// The kind of key pair to generate.
    #[serde(default)]
    pub key: KeySpec,
    /// When keys rotate and how long retired keys stay trusted.
    #[serde(default)]
    pub rotation: RotationSpec,
    /// The app-facing Secret that holds the key to sign with now.
    #[serde(default)]
    pub secret: SecretSpec,
    /// Distributions whose cache behaviors trust this key group.
    #[serde(default)]
    #[schemars(length(max = 100))]
    // A map keyed by `id`, not an atomic list: with server-side apply each entry is a field of
    // its own, so a second applier of the same manifest (or an apply after a client-side
    // apply) does not conflict over defaulted fields, and the API server rejects repeated IDs.
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["id"]))]
    pub distributions: Vec<DistributionSpec>,
    /// What happens to CloudFront objects and the key when this object is deleted. Default:
    /// `Delete`, or `Retain` for an adopted key group (`keyGroup.adopt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

impl SigningKeyGroupSpec {
    /// `deletionPolicy` as given, else its default: a key group keyfront adopted is retained,
    /// one it created is deleted.
    pub fn effective_deletion_policy(&self) -> DeletionPolicy {
        self.deletion_policy.unwrap_or(if self.key_group.adopt {
            DeletionPolicy::Retain
        } else {
            DeletionPolicy::Delete
        })
    }
}

/// Which `CloudFrontAccount` a `SigningKeyGroup` uses.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.name == oldSelf.name").message("spec.accountRef.name is immutable: the key group lives in that account"))]
pub struct AccountRef {
    /// Name of the `CloudFrontAccount`; defaults to `default`.
    #[serde(default = "default_account_name")]
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

fn default_account_name() -> String {
    DEFAULT_ACCOUNT.to_owned()
}

impl Default for AccountRef {
    fn default() -> Self {
        Self {
            name: default_account_name(),
        }
    }
}

/// The CloudFront key group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.adopt) || !self.adopt || has(self.name)").message(
        "spec.keyGroup.name: required with adopt: true, to name the existing key group to adopt"
    ).field_path(".name"),
    validation = no_days("retireAdoptedKeysAfter"),
    validation = not_negative("retireAdoptedKeysAfter"),
)]
pub struct KeyGroupSpec {
    /// Key group name in CloudFront; defaults to `<namespace>_<name>` (objects first reconciled
    /// before keyfront 0.2 keep `<namespace>-<name>`). Immutable once set or defaulted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_-]{1,128}$"))]
    pub name: Option<String>,
    /// Free text stored in the key group's comment, after keyfront's ownership marker
    /// (`keyfront:<uid> `, 46 characters of CloudFront's 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 80))]
    pub comment: Option<String>,
    /// Take over an existing key group that keyfront did not create (for example one made
    /// with Terraform), named by `name`. keyfront marks it as its own, keeps the keys it found
    /// trusted until `retireAdoptedKeysAfter`, and never deletes them unless
    /// `deleteAdoptedKeys`. Without it, a foreign group with the same name is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt: bool,
    /// How long the keys found in an adopted group stay trusted after keyfront's own key became
    /// active (URLs signed with them before must keep working). Default:
    /// `maxSignedUrlLifetime` + `secretRefreshAllowance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub retire_adopted_keys_after: Option<String>,
    /// Delete the public keys found in an adopted group once they have left it. Default: they
    /// are only removed from the group, and stay in CloudFront for their creator to delete.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_adopted_keys: bool,
    /// Also publish the key group's ID and name in this ConfigMap, in the object's namespace
    /// (keys `keyGroupId` and `keyGroupName`), for tools that attach the group and read
    /// ConfigMaps more easily than a custom resource's status. The ID never changes across
    /// rotations. keyfront owns the ConfigMap (it goes with the object) and never overwrites
    /// one it did not create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub id_config_map: Option<String>,
}

/// Which key pairs to generate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeySpec {
    /// `RSA2048` (every signer supports it) or `ECDSAP256`. Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.key.algorithm is immutable: create a new SigningKeyGroup to change algorithms"))]
    pub algorithm: KeyAlgorithm,
}

/// Key algorithms CloudFront accepts for signed URLs and cookies.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// RSA 2048-bit; signatures use SHA-1 unless SHA-256 is requested.
    #[default]
    #[serde(rename = "RSA2048")]
    Rsa2048,
    /// ECDSA on NIST P-256; signatures always use SHA-256.
    #[serde(rename = "ECDSAP256")]
    EcdsaP256,
}

impl std::fmt::Display for KeyAlgorithm {
    /// The spec's spelling (`RSA2048`, `ECDSAP256`), for messages and Events.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rsa2048 => "RSA2048",
            Self::EcdsaP256 => "ECDSAP256",
        })
    }
}

/// Rotation schedule. All values are Kubernetes duration strings (`720h`, `90m`, `30s`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = no_days("interval"),
    validation = no_days("maxSignedUrlLifetime"),
    validation = no_days("minPropagationWait"),
    validation = no_days("secretRefreshAllowance"),
    validation = not_negative("interval"),
    validation = not_negative("maxSignedUrlLifetime"),
    validation = not_negative("minPropagationWait"),
    validation = not_negative("secretRefreshAllowance"),
    validation = Rule::new(format!("!({}) || duration(self.interval) >= duration('1s')", rotation_durations_valid())).message("spec.rotation.interval must be at least 1s (keyfront's --min-rotation-interval, 1m by default, may raise it further)").field_path(".interval"),
    validation = Rule::new(format!("!({}) || duration(self.maxSignedUrlLifetime) > duration('0s')", rotation_durations_valid())).message("spec.rotation.maxSignedUrlLifetime must be greater than 0s").field_path(".maxSignedUrlLifetime"),
    validation = Rule::new(format!(
        "!({}) || duration(self.maxSignedUrlLifetime) + duration(self.secretRefreshAllowance) + duration(self.minPropagationWait) <= duration(self.interval) + duration(self.interval) + duration(self.interval)",
        rotation_durations_valid()
    )).message(
        "spec.rotation: maxSignedUrlLifetime + secretRefreshAllowance + minPropagationWait must be at most 3 × interval; otherwise the key group would need more than 5 keys at once (1 next + 1 active + up to 3 retiring)"
    ).field_path(".interval"),
)]
pub struct RotationSpec {
    /// How often a new key becomes active.
    #[serde(default = "default_interval")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub interval: String,
    /// How long a URL signed with a retired key must keep working.
    #[serde(default = "default_max_signed_url_lifetime")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub max_signed_url_lifetime: String,
    /// Minimum wait between a key going live at the edge and apps signing with it.
    #[serde(default = "default_min_propagation_wait")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub min_propagation_wait: String,
    /// How long pods may keep signing with the previous key until the kubelet refreshes their
    /// mounted Secret.
    #[serde(default = "default_secret_refresh_allowance")]
    #[schemars(length(max = 32), regex(pattern = DURATION_PATTERN))]
    pub secret_refresh_allowance: String,
}

fn default_interval() -> String {
    "720h".into()
}
fn default_max_signed_url_lifetime() -> String {
    "24h".into()
}
fn default_min_propagation_wait() -> String {
    "0s".into()
}
fn default_secret_refresh_allowance() -> String {
    "2m".into()
}

impl Default for RotationSpec {
    fn default() -> Self {
        Self {
            interval: default_interval(),
            max_signed_url_lifetime: default_max_signed_url_lifetime(),
            min_propagation_wait: default_min_propagation_wait(),
            secret_refresh_allowance: default_secret_refresh_allowance(),
        }
    }
}

/// The app-facing Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretSpec {
    /// Secret name; defaults to `<name>-cloudfront-key`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: Option<String>,
    /// Extra labels on the Secret.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("!('app.kubernetes.io/managed-by' in self)").message("spec.secret.labels may not set app.kubernetes.io/managed-by: keyfront sets it to mark Secrets it owns"))]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Extra annotations on the Secret.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// One distribution and the cache behaviors in it that must trust this key group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "self.defaultCacheBehavior || (has(self.pathPatterns) && size(self.pathPatterns) > 0)"
).message("spec.distributions[].defaultCacheBehavior or pathPatterns: select at least one cache behavior").field_path(".pathPatterns"))]
pub struct DistributionSpec {
    /// CloudFront distribution ID (for example `E2EXAMPLE123`).
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Z0-9]+$"))]
    pub id: String,
    /// Protect the distribution's default cache behavior.
    #[serde(default)]
    pub default_cache_behavior: bool,
    /// Protect the cache behaviors with exactly these path patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25), inner(length(min = 1, max = 255)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub path_patterns: Vec<String>,
    /// Allow detaching to leave a behavior with no trusted key group, which makes it public.
    #[serde(default)]
    pub allow_public_on_detach: bool,
    /// Who attaches the key group to this distribution. `Managed` (the default): keyfront.
    /// `External`: the distribution's owner (Terraform, CDK, ACK) attaches the group by the ID
    /// in `status.keyGroupId`, which stays the same across rotations; keyfront never writes the
    /// distribution, says whether it trusts the group yet, and activates each new key only
    /// once that distribution has deployed it.
    #[serde(default, skip_serializing_if = "is_managed")]
    pub trust: DistributionTrust,
    /// What keyfront does when another writer (Terraform, ACK, the console) removes the key
    /// group it attached to a selected behavior. `Reattach` (the default): warn, then attach it
    /// again after a pause that doubles with each removal (30s up to 1h), so it never fights
    /// the other writer in a tight loop. `Leave`: warn and leave the behavior as it is until a
    /// person attaches it again (or sets `trust: External` for a distribution that tool owns).
    #[serde(default, skip_serializing_if = "is_reattach")]
    pub on_trust_removed: TrustRemovedPolicy,
}

/// See [`DistributionSpec::on_trust_removed`].
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TrustRemovedPolicy {
    /// Warn, then attach the key group again, backing off with each removal.
    #[default]
    Reattach,
    /// Warn, and leave the behavior without the key group until a person acts.
    Leave,
}

fn is_reattach(policy: &TrustRemovedPolicy) -> bool {
    *policy == TrustRemovedPolicy::Reattach
}

/// See [`DistributionSpec::trust`].
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DistributionTrust {
    /// keyfront attaches the key group, and detaches it when the entry goes.
    #[default]
    Managed,
    /// The distribution's owner attaches the key group; keyfront never writes the distribution.
    External,
}

fn is_managed(trust: &DistributionTrust) -> bool {
    *trust == DistributionTrust::Managed
}

/// What deletion does to CloudFront objects and the key.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Detach, delete the key group and public keys, then let the Secrets go.
    #[default]
    Delete,
    /// Leave CloudFront as it is and keep the app-facing Secret.
    Retain,
}

/// Observed state, written only by the operator.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyGroupStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `KeyGroupReady`, `DistributionsReady`, `Rotating`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// CloudFront key group ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_group_id: Option<String>,
    /// The key group name in effect (the spec's, or the default decided when the object was
    /// first reconciled): pinning `spec.keyGroup.name` to it is not a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_group_name: Option<String>,
    /// The app-facing Secret name in effect: pinning `spec.secret.name` to it is not a change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// CloudFront public key ID apps sign with now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_key_id: Option<String>,
    /// Every key keyfront tracks for this group. Never key material.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyStatus>,
    /// When the active key became active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation_time: Option<Time>,
    /// When the next rotation is due: the interval after the last, or sooner where it would
    /// overlap another rotation in the same AWS account (rotations there are staggered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_time: Option<Time>,
    /// Attachment state per distribution in the spec (and any still being detached).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distributions: Vec<DistributionStatus>,
}

/// One key's public facts.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeyStatus {
    /// CloudFront public key ID, once published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// CloudFront public key name (deterministic).
    pub name: String,
    /// SHA-256 fingerprint of the public key (hex of the DER SubjectPublicKeyInfo).
    pub fingerprint: String,
    /// Where the key is in its lifecycle.
    pub state: KeyState,
    /// When the key pair was generated.
    pub created_at: Time,
    /// When apps started signing with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<Time>,
    /// Earliest moment the key may leave the key group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_after: Option<Time>,
}

/// The lifecycle of a key (Deleted keys are forgotten, so they have no state here).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Generated and stored in the cluster; not yet in CloudFront.
    Staged,
    /// Public key created in CloudFront and in the key group; not yet signed with.
    Published,
    /// The key apps sign with.
    Active,
    /// No longer signed with; kept in the group until URLs signed with it expire.
    Retiring,
}

/// Attachment state of one distribution.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DistributionStatus {
    /// Distribution ID.
    pub id: String,
    /// The key group is in the trusted key groups of every selected behavior.
    pub attached: bool,
    /// The distribution is `Deployed` with the current key group contents live.
    pub deployed: bool,
}
