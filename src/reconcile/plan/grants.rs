//! Grants: what the object's `CloudFrontAccount` lets it do in this pass — reach CloudFront
//! at all, generate keys, attach where — decided by [`crate::tenancy`] from the account and
//! the Namespace, never from anything the tenant can edit.

use super::Observed;
use super::claim::{KeyringClaim, keyring_claim};
use crate::api::{KeyGroupNamePolicy, SigningKeyGroupSpec};
use crate::reconcile::reasons;
use crate::tenancy::{self, Admission, Grants};

/// Whether this pass may use CloudFront at all: only with an account to act in, never with
/// another namespace's keyring, and only for an admitted namespace or to wind down what
/// keyfront already created for this one (its own keyring exists). The reconciler asks this
/// before connecting; the plan asks it before reading CloudFront facts.
pub fn reaches_cloudfront(admission: &Admission, observed: &Observed) -> bool {
    let claim = keyring_claim(observed);
    match admission {
        Admission::AccountNotFound { .. } => false,
        _ if claim == KeyringClaim::OfAnotherNamespace => false,
        Admission::NamespaceNotAllowed { .. } => claim == KeyringClaim::Own,
        Admission::Admitted(grants) => grants.may_create() || claim == KeyringClaim::Own,
    }
}

/// Why an object of a namespace its account admits but grants no distribution creates
/// nothing, if it is one and has created nothing yet (what it made before a grant was
/// withdrawn is wound down as any withdrawn grant is).
fn ungranted_refusal(admission: &Admission, observed: &Observed) -> Option<String> {
    let Admission::Admitted(grants) = admission else {
        return None;
    };
    (!grants.may_create() && keyring_claim(observed) == KeyringClaim::NoKeyring).then(|| {
        format!(
            "CloudFrontAccount {:?} grants namespace {:?} no distribution, so keyfront creates no key for it: the account's public keys are shared by every tenant. Ask a cluster admin for a distribution grant, or to set spec.namespacesWithoutDistributions: Allow on the account",
            grants.account, observed.namespace.name
        )
    })
}

/// The account decision for this object, from what was observed.
pub fn admission(spec: &SigningKeyGroupSpec, observed: &Observed) -> Admission {
    tenancy::admit(
        &spec.account_ref.name,
        observed.account.as_ref(),
        &observed.namespace,
    )
}

/// The finding that names why the account refuses this namespace, if it does.
pub(super) fn refusal(admission: &Admission) -> Option<(&'static str, String)> {
    match admission {
        Admission::AccountNotFound { account } => Some((
            reasons::ACCOUNT_NOT_FOUND,
            format!(
                "CloudFrontAccount {account:?} does not exist; keyfront makes no CloudFront call for this object until a cluster admin creates it (or set spec.accountRef.name)"
            ),
        )),
        Admission::NamespaceNotAllowed {
            account,
            namespace,
            why,
        } => Some((
            reasons::NAMESPACE_NOT_ALLOWED,
            format!(
                "CloudFrontAccount {account:?} does not admit namespace {namespace:?}: {why}; ask a cluster admin to add it to spec.allowedNamespaces"
            ),
        )),
        Admission::Admitted(_) => None,
    }
}

/// Why the account does not let this namespace create the key group name, if it does not:
/// only for a name keyfront would create (no keyring yet, not an adoption).
fn name_refusal(
    observed: &Observed,
    settings: &super::Settings,
    namespace: &str,
) -> Option<String> {
    let policy = observed.account.as_ref()?.key_group_names;
    let prefix = format!("{namespace}_");
    (policy == KeyGroupNamePolicy::NamespacePrefixed
        && observed.keyring.is_none()
        && !settings.adopt
        && !settings.key_group_name.starts_with(&prefix))
    .then(|| {
        format!(
            "spec.keyGroup.name {:?}: this namespace's CloudFrontAccount lets it create key groups only under names starting with {prefix:?}; rename it, or leave it out for the default",
            settings.key_group_name
        )
    })
}

/// What the account lets this object do in this pass.
pub(super) struct Access<'a> {
    pub(super) grants: &'a Grants,
    /// Whether the namespace is admitted: new keys may be generated and published, and the
    /// signing key written into it. Without it keyfront only winds down: it detaches and keeps
    /// what exists, and writes no key material into the namespace.
    pub(super) admitted: bool,
}

/// Why the account lets this object create nothing yet, if it does not: a namespace granted
/// no distribution, or a key group name outside the namespace's prefix.
pub(super) fn creation_refusal(
    admission: &Admission,
    observed: &Observed,
    settings: &super::Settings,
    namespace: &str,
) -> Option<(&'static str, String)> {
    ungranted_refusal(admission, observed)
        .map(|m| (reasons::NO_DISTRIBUTION_GRANTED, m))
        .or_else(|| {
            name_refusal(observed, settings, namespace)
                .map(|m| (reasons::KEY_GROUP_NAME_NOT_ALLOWED, m))
        })
}
