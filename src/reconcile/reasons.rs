//! Reason constants. Each doubles as a condition reason and an Event reason, so what
//! `kubectl describe` shows and what the status says use the same words.

/// Condition types.
pub const READY: &str = "Ready";
pub const KEY_GROUP_READY: &str = "KeyGroupReady";
pub const DISTRIBUTIONS_READY: &str = "DistributionsReady";
pub const ROTATING: &str = "Rotating";
/// kstatus's conditions: still working toward the spec / cannot proceed without a person.
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

// Healthy states.
pub const SIGNING_KEY_ACTIVE: &str = "SigningKeyActive";
pub const KEY_GROUP_IN_SYNC: &str = "KeyGroupInSync";
pub const DISTRIBUTIONS_ATTACHED: &str = "DistributionsAttached";
pub const NO_DISTRIBUTIONS: &str = "NoDistributions";
pub const IDLE: &str = "Idle";
pub const PROGRESSING: &str = "Progressing";
pub const RECONCILED: &str = "Reconciled";
pub const NOT_STALLED: &str = "NotStalled";

// Waiting, not failing.
pub const ROTATION_IN_PROGRESS: &str = "RotationInProgress";
pub const WAITING_FOR_PROPAGATION: &str = "WaitingForPropagation";
/// The next key is deployed everywhere and waits for its scheduled time: nothing to do.
pub const NEXT_KEY_READY: &str = "NextKeyReady";
pub const DEPLOYING: &str = "Deploying";
pub const DELETING: &str = "Deleting";
/// A distribution entry with `trust: External` does not trust the key group yet: its owner
/// (Terraform, CDK, ACK) attaches it; keyfront never writes that distribution.
pub const AWAITING_EXTERNAL_ATTACHMENT: &str = "AwaitingExternalAttachment";

// Refusals and failures.
pub const INVALID_SPEC: &str = "InvalidSpec";
pub const ACCOUNT_NOT_FOUND: &str = "AccountNotFound";
pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
pub const DISTRIBUTION_NOT_ALLOWED: &str = "DistributionNotAllowed";
pub const BEHAVIOR_NOT_ALLOWED: &str = "CacheBehaviorNotAllowed";
pub const SECRET_CONFLICT: &str = "SecretConflict";
/// `spec.keyGroup.idConfigMap` names a ConfigMap keyfront did not create for this object.
pub const CONFIG_MAP_CONFLICT: &str = "ConfigMapConflict";
pub const KEY_GROUP_NAME_TAKEN: &str = "KeyGroupNameTaken";
/// The account lets this namespace create key groups only under its own prefix.
pub const KEY_GROUP_NAME_NOT_ALLOWED: &str = "KeyGroupNameNotAllowed";
/// `spec.keyGroup.adopt` names a key group that does not exist.
pub const KEY_GROUP_NOT_FOUND: &str = "KeyGroupNotFound";
/// Adopting the key group would reach distributions or behaviors the account does not grant.
pub const ADOPTION_NOT_ALLOWED: &str = "AdoptionNotAllowed";
/// A behavior trusts the key group to adopt, and the spec does not list it.
pub const ADOPTED_TRUST_NOT_DECLARED: &str = "AdoptedTrustNotDeclared";
pub const KEY_GROUP_FULL: &str = "KeyGroupFull";
pub const DISTRIBUTION_NOT_FOUND: &str = "DistributionNotFound";
pub const BEHAVIOR_NOT_FOUND: &str = "CacheBehaviorNotFound";
pub const TOO_MANY_KEY_GROUPS: &str = "TooManyKeyGroupsOnBehavior";
pub const DETACH_WOULD_MAKE_PUBLIC: &str = "DetachWouldMakePublic";
/// Another writer removed the key group from a behavior keyfront attached it to; keyfront
/// attaches it again after a pause (`onTrustRemoved: Reattach`).
pub const TRUST_REMOVED: &str = "TrustRemovedByAnotherWriter";
/// Another writer removed the key group, and the entry says to leave it
/// (`onTrustRemoved: Leave`): a person attaches it again.
pub const TRUST_REMOVED_LEFT: &str = "TrustRemovedNotReattached";
pub const REVOKE_KEY_NOT_FOUND: &str = "RevokeKeyNotFound";
/// A behavior the object is no longer granted still trusts its key group (the detach would
/// make it public, or has not deployed yet): no new key is published or activated there.
pub const ROTATION_FROZEN: &str = "RotationFrozen";
/// A distribution the namespace is not granted trusts the key group (attached outside
/// keyfront): keyfront does not read it, so a rotation may reach apps before it deploys there.
pub const TRUSTED_OUTSIDE_GRANT: &str = "TrustedOutsideGrant";
/// A revoked key is still in the key group: signing works, but the revocation is not done.
pub const REVOCATION_IN_PROGRESS: &str = "RevocationInProgress";
/// The keyring found under this object's identity was made for a namespace of the same name
/// that has since been deleted: it is the previous tenant's, and is neither used nor wound
/// down until a cluster admin says otherwise.
pub const KEYRING_OF_ANOTHER_NAMESPACE: &str = "KeyringOfAnotherNamespace";
/// Another physical cluster made public keys under this object's identity: two clusters run
/// with one `--cluster-id` in one AWS account.
pub const IDENTITY_CLAIMED_ELSEWHERE: &str = "IdentityClaimedByAnotherCluster";
// Error categories that need a person (the others are in `Error::category`).
pub const CLOUDFRONT_QUOTA_EXCEEDED: &str = "CloudFrontQuotaExceeded";
pub const CLOUDFRONT_ACCESS_DENIED: &str = "CloudFrontAccessDenied";
pub const CLOUDFRONT_REJECTED: &str = "CloudFrontRejected";
pub const KEYRING_INVALID: &str = "KeyringInvalid";

// Transitions (Events only).
pub const KEY_STAGED: &str = "KeyStaged";
pub const KEY_PUBLISHED: &str = "KeyPublished";
pub const KEY_GROUP_CREATED: &str = "KeyGroupCreated";
pub const KEY_GROUP_UPDATED: &str = "KeyGroupUpdated";
pub const KEY_GROUP_ADOPTED: &str = "KeyGroupAdopted";
pub const ADOPTED_KEY_RELEASED: &str = "AdoptedKeyReleased";
pub const KEY_ACTIVATED: &str = "KeyActivated";
pub const KEY_DELETED: &str = "KeyDeleted";
pub const KEY_REVOKED: &str = "KeyRevoked";
pub const DISTRIBUTION_UPDATED: &str = "DistributionTrustUpdated";
pub const KEY_GROUP_DELETED: &str = "KeyGroupDeleted";
pub const SECRETS_RELEASED: &str = "SecretsReleased";
pub const KEY_GROUP_ID_PUBLISHED: &str = "KeyGroupIdPublished";

/// Reasons that mean "in progress" rather than "someone must act": no Warning Event.
pub fn is_waiting(reason: &str) -> bool {
    matches!(
        reason,
        PROGRESSING
            | DELETING
            | DEPLOYING
            | AWAITING_EXTERNAL_ATTACHMENT
            | WAITING_FOR_PROPAGATION
            | ROTATION_IN_PROGRESS
            | NEXT_KEY_READY
            | REVOCATION_IN_PROGRESS
            | IDLE
    )
}

/// Whether a `Ready=False` reason needs a person to act before anything can progress (kstatus's
/// `Stalled`). Passing failures (throttling, an unreachable API, a lost write race) do not;
/// `AccessDenied` does once it happened on two passes in a row (`previous` is the last Ready
/// reason), since a credential being rolled out can fix itself.
pub fn needs_a_human(reason: &str, previous: Option<&str>) -> bool {
    match reason {
        INVALID_SPEC
        | SECRET_CONFLICT
        | CONFIG_MAP_CONFLICT
        | KEY_GROUP_NAME_TAKEN
        | KEY_GROUP_NAME_NOT_ALLOWED
        | KEY_GROUP_NOT_FOUND
        | ADOPTION_NOT_ALLOWED
        | ADOPTED_TRUST_NOT_DECLARED
        | KEY_GROUP_FULL
        | ACCOUNT_NOT_FOUND
        | NAMESPACE_NOT_ALLOWED
        | DISTRIBUTION_NOT_ALLOWED
        | BEHAVIOR_NOT_ALLOWED
        | DISTRIBUTION_NOT_FOUND
        | BEHAVIOR_NOT_FOUND
        | TOO_MANY_KEY_GROUPS
        | DETACH_WOULD_MAKE_PUBLIC
        | TRUST_REMOVED_LEFT
        | ROTATION_FROZEN
        | KEYRING_OF_ANOTHER_NAMESPACE
        | IDENTITY_CLAIMED_ELSEWHERE
        | "CloudFrontQuotaExceeded"
        | "CloudFrontRejected"
        | "KeyringInvalid" => true,
        "CloudFrontAccessDenied" => previous == Some(reason),
        _ => false,
    }
}
