//! The `CloudFrontAccount` API (`keyfront.dev/v1alpha1`, cluster-scoped, short name `cfa`): the
//! cluster admin's statement of which credentials keyfront uses for an AWS account, which
//! namespaces may use it, and which distributions (and cache behaviors) each may attach to.
//!
//! Deny by default: an account admits no namespace unless `allowedNamespaces` says so, and no
//! distribution unless it is listed. What the grant means is decided in [`crate::tenancy`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The account a `SigningKeyGroup` uses when `spec.accountRef` is absent.
pub const DEFAULT_ACCOUNT: &str = "default";

/// CloudFront's default quotas, used when the account does not state its own.
pub const DEFAULT_PUBLIC_KEY_QUOTA: u32 = 10;
pub const DEFAULT_KEY_GROUP_QUOTA: u32 = 10;

/// An AWS account keyfront may act in, and what each namespace may do there.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "keyfront.dev",
    version = "v1alpha1",
    kind = "CloudFrontAccount",
    plural = "cloudfrontaccounts",
    shortname = "cfa",
    status = "CloudFrontAccountStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".status.accountId"}"#,
    printcolumn = r#"{"name":"Keys","type":"integer","description":"Public keys in the AWS account (every owner's)","jsonPath":".status.usage.publicKeys"}"#,
    printcolumn = r#"{"name":"Key Quota","type":"integer","jsonPath":".status.usage.publicKeyQuota"}"#,
    printcolumn = r#"{"name":"Groups","type":"integer","description":"Key groups in the AWS account (every owner's)","jsonPath":".status.usage.keyGroups"}"#,
    printcolumn = r#"{"name":"Group Quota","type":"integer","jsonPath":".status.usage.keyGroupQuota"}"#,
    printcolumn = r#"{"name":"Role","type":"string","priority":1,"jsonPath":".spec.assumeRole.roleArn"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct CloudFrontAccountSpec {
    /// Assume this IAM role for every call in this account. Absent: keyfront's own credentials
    /// from the default chain (IRSA, EKS Pod Identity, environment, profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<AssumeRole>,
    /// Which namespaces may use this account at all. Absent: none.
    #[serde(default)]
    pub allowed_namespaces: NamespaceGrant,
    /// The only distributions SigningKeyGroups of this account may attach to. Entries that
    /// name an ID decide for it (a `*` entry covers only IDs no entry names); several entries
    /// may name one ID to split its cache behaviors among namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub distributions: Vec<DistributionGrant>,
    /// Which key group names keyfront may create for a namespace. `NamespacePrefixed`: only
    /// names starting with `<namespace>_` (the default name always does), so no tenant can
    /// take a name another needs. Names already in use and adopted groups are not affected.
    #[serde(default, skip_serializing_if = "is_default")]
    pub key_group_names: KeyGroupNamePolicy,
    /// What objects of a namespace this account admits but grants no distribution may do.
    /// `Refuse` (the default): they create nothing in CloudFront (`NoDistributionGranted`), so
    /// a namespace with no use for signed URLs cannot spend the account's public keys, which
    /// every tenant shares. `Allow`: they create key groups for someone else to attach.
    #[serde(default, skip_serializing_if = "is_default")]
    pub namespaces_without_distributions: UngrantedNamespacePolicy,
    /// How much of the account one namespace may hold.
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: NamespaceLimits,
    /// CloudFront quotas of this account, for the usage shown in status.
    #[serde(default)]
    pub quotas: AccountQuotas,
}

impl CloudFrontAccountSpec {
    /// The public keys one namespace's objects may hold in this account, and whether that is
    /// the default share rather than `spec.limits`.
    pub fn public_keys_per_namespace(&self) -> Option<(u32, bool)> {
        match self.limits.public_keys_per_namespace {
            Some(set) => Some((set, false)),
            None => self.default_share(self.quotas.public_keys, 2),
        }
    }

    /// The key groups one namespace's objects may hold in this account, and whether that is
    /// the default share.
    pub fn key_groups_per_namespace(&self) -> Option<(u32, bool)> {
        match self.limits.key_groups_per_namespace {
            Some(set) => Some((set, false)),
            None => self.default_share(self.quotas.key_groups, 1),
        }
    }

    /// The objects with keys one namespace may have in this account (no default).
    pub fn objects_per_namespace(&self) -> Option<u32> {
        self.limits.objects_per_namespace
    }

    /// `quota` over the namespaces `allowedNamespaces` names, rounded up, at least `least`:
    /// only where it names more than one.
    fn default_share(&self, quota: u32, least: u32) -> Option<(u32, bool)> {
        let named = u32::try_from(self.allowed_namespaces.names.len()).ok()?;
        (self.allowed_namespaces.from == NamespaceFrom::Names && named > 1)
            .then(|| (quota.div_ceil(named).max(least), true))
    }
}

/// See [`CloudFrontAccountSpec::limits`].
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceLimits {
    /// Public keys one namespace's SigningKeyGroups may hold in this account, a rotation's
    /// next key included. Default: the public-key quota divided by the number of namespaces
    /// `allowedNamespaces` names, rounded up (at least 2); none with `from: All` or
    /// `from: Selector`, where the number of namespaces is open: set it there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2))]
    pub public_keys_per_namespace: Option<u32>,
    /// Key groups one namespace's SigningKeyGroups may hold in this account (each makes one,
    /// unless it adopts a group). Default: the key-group quota divided by the number of
    /// namespaces `allowedNamespaces` names, rounded up; none with `from: All` or `Selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub key_groups_per_namespace: Option<u32>,
    /// SigningKeyGroups with keys one namespace may have in this account. No default: the
    /// shares of public keys and key groups bound them already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub objects_per_namespace: Option<u32>,
}

/// See [`CloudFrontAccountSpec::namespaces_without_distributions`].
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UngrantedNamespacePolicy {
    /// Their objects create nothing in CloudFront.
    #[default]
    Refuse,
    /// Their objects create key groups (with no distribution to attach to).
    Allow,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// See [`CloudFrontAccountSpec::key_group_names`].
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyGroupNamePolicy {
    /// Any name CloudFront accepts.
    #[default]
    Any,
    /// Only `<namespace>_…`.
    NamespacePrefixed,
}

/// An IAM role to assume with STS.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct AssumeRole {
    /// For example `arn:aws:iam::210987654321:role/keyfront-media`.
    #[schemars(regex(
        pattern = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$"
    ))]
    pub role_arn: String,
    /// The external ID the role's trust policy requires, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 2, max = 1224),
        regex(pattern = r"^[A-Za-z0-9_+=,.@:/-]+$")
    )]
    pub external_id: Option<String>,
}

/// Which namespaces a grant covers, in the shape of Gateway API's `allowedRoutes`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.from != 'Selector' || has(self.selector)").message("allowedNamespaces.selector is required when from is Selector").field_path(".selector"),
    validation = Rule::new("self.from == 'Selector' || !has(self.selector)").message("allowedNamespaces.selector is only read when from is Selector").field_path(".selector"),
    validation = Rule::new("self.from == 'Names' || !has(self.names) || size(self.names) == 0").message("allowedNamespaces.names is only read when from is Names").field_path(".names"),
)]
pub struct NamespaceGrant {
    /// `All` namespaces, those matching `selector`, or those listed in `names` (the default,
    /// which with no names admits none).
    #[serde(default)]
    pub from: NamespaceFrom,
    /// A label selector on Namespaces (with `from: Selector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Namespace names (with `from: Names`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(length(min = 1, max = 63)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub names: Vec<String>,
}

/// The forms of [`NamespaceGrant`].
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NamespaceFrom {
    All,
    Selector,
    #[default]
    Names,
}

/// One distribution tenants may attach to, and how.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DistributionGrant {
    /// CloudFront distribution ID, or `*` for every distribution in the account (for an
    /// account used by one team only).
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^([A-Z0-9]+|\*)$"))]
    pub id: String,
    /// Narrows the account's `allowedNamespaces` for this distribution. Absent: the account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_namespaces: Option<NamespaceGrant>,
    /// Whether tenants may protect the default cache behavior.
    #[serde(default)]
    pub default_cache_behavior: bool,
    /// The cache behaviors tenants may protect, by path pattern; `*` grants every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), inner(length(min = 1, max = 255)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub path_patterns: Vec<String>,
    /// Whether a tenant's own `allowPublicOnDetach` is honoured here at all.
    #[serde(default)]
    pub allow_public_on_detach: bool,
}

/// Quotas of the account, for status.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccountQuotas {
    #[serde(default = "default_public_keys")]
    #[schemars(range(min = 1))]
    pub public_keys: u32,
    #[serde(default = "default_key_groups")]
    #[schemars(range(min = 1))]
    pub key_groups: u32,
}

fn default_public_keys() -> u32 {
    DEFAULT_PUBLIC_KEY_QUOTA
}
fn default_key_groups() -> u32 {
    DEFAULT_KEY_GROUP_QUOTA
}

impl Default for AccountQuotas {
    fn default() -> Self {
        Self {
            public_keys: DEFAULT_PUBLIC_KEY_QUOTA,
            key_groups: DEFAULT_KEY_GROUP_QUOTA,
        }
    }
}

/// Observed state of an account, written only by the operator.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CloudFrontAccountStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: the credentials were checked with one read call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The AWS account ID, as STS tells it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// What the account holds against its quotas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<AccountUsage>,
    /// Keyrings of this account that no SigningKeyGroup uses: left by `deletionPolicy: Retain`,
    /// a finalizer removed by force, or a namespace deleted (and perhaps created again). Their
    /// CloudFront keys still count against the quotas; see docs/tenancy.md to clean them up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unclaimed_keyrings: Vec<UnclaimedKeyring>,
}

/// A keyring no object claims.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UnclaimedKeyring {
    /// The keyring Secret, in keyfront's namespace.
    pub secret: String,
    /// The `namespace/name` it was made for.
    pub object: String,
    /// Why no object claims it.
    pub reason: String,
}

/// Public keys and key groups in the account, and how many of them are keyfront's.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccountUsage {
    pub public_keys: u32,
    pub public_keys_by_keyfront: u32,
    pub public_key_quota: u32,
    pub key_groups: u32,
    pub key_groups_by_keyfront: u32,
    pub key_group_quota: u32,
}
