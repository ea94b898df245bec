//! Grants: what the object's `CloudFrontAccount` lets it do in this pass — reach CloudFront
//! at all, generate keys, attach where — decided by [`crate::tenancy`] from the account and
//! the Namespace, never from anything the tenant can edit.

use super::Observed;
use crate::api::SigningKeyGroupSpec;
use crate::reconcile::reasons;
use crate::tenancy::{self, Admission, Grants};

/// Whether this pass may use CloudFront at all: only with an account to act in, and only
/// for an admitted namespace or to wind down what keyfront already created (a keyring exists).
/// The reconciler asks this before connecting; the plan asks it before reading CloudFront facts.
pub fn reaches_cloudfront(admission: &Admission, has_keyring: bool) -> bool {
    match admission {
        Admission::AccountNotFound { .. } => false,
        Admission::NamespaceNotAllowed { .. } => has_keyring,
        Admission::Admitted(_) => true,
    }
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

/// What the account lets this object do in this pass.
pub(super) struct Access<'a> {
    pub(super) grants: &'a Grants,
    /// Whether new keys may be generated and published (the namespace is admitted); without
    /// it keyfront only winds down: it detaches and keeps what exists.
    pub(super) may_generate: bool,
}
