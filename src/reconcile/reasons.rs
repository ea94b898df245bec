//! Reasons: one table, read by the status, the Events, kstatus's conditions and the docs.
//!
//! Each reason doubles as a condition reason and an Event reason, so what `kubectl describe`
//! shows and what the status says use the same words. Each entry carries what it means (its doc
//! comment), the conditions it appears on and its [`Kind`]. Whether it raises a Warning Event
//! and whether it sets `Stalled` follow from the kind alone, and `docs/reference/reasons.md`
//! is rendered from [`ALL`] by a test, so the reference cannot drift from the code.

/// Condition types.
pub const READY: &str = "Ready";
pub const KEY_GROUP_READY: &str = "KeyGroupReady";
pub const DISTRIBUTIONS_READY: &str = "DistributionsReady";
pub const ROTATING: &str = "Rotating";
/// kstatus's conditions: still working toward the spec / cannot proceed without a person.
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// What a reason says about the object, which decides what follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A condition's settled state.
    Healthy,
    /// keyfront is at work, or waits for a time it knows: no Warning Event.
    Waiting,
    /// Something failed or is off; keyfront retries by itself. A Warning Event.
    Retried,
    /// Nothing progresses until a person acts: a Warning Event and `Stalled=True`.
    NeedsPerson,
    /// Like `NeedsPerson` once it happened on two passes in a row (a credential being rolled
    /// out can fix itself).
    NeedsPersonIfRepeated,
    /// A transition, told as a Normal Event only.
    Transition,
    /// Told as a Warning Event only: nothing to wait for.
    WarningEvent,
}

/// One reason, as the reference documents it.
#[derive(Debug, Clone, Copy)]
pub struct Reason {
    pub name: &'static str,
    pub kind: Kind,
    /// The condition types it appears on; empty for Event-only reasons.
    pub conditions: &'static [&'static str],
    /// What it means and what to do, from its doc comment.
    pub meaning: &'static str,
}

macro_rules! reasons {
    ($( $(#[doc = $doc:literal])+ $name:ident = $value:literal, $kind:ident, [$($on:ident),*]; )*) => {
        $( $(#[doc = $doc])+ pub const $name: &str = $value; )*
        /// Every reason keyfront sets, in the order of this file.
        pub const ALL: &[Reason] = &[$(Reason {
            name: $value,
            kind: Kind::$kind,
            conditions: &[$($on),*],
            meaning: concat!($($doc),+),
        }),*];
    };
}

reasons! {
    // Settled states.
    /// The active key signs, every selected behavior trusts it, and its Secret is up to date.
    SIGNING_KEY_ACTIVE = "SigningKeyActive", Healthy, [READY];
    /// The key group holds exactly the keys the keyring says it should.
    KEY_GROUP_IN_SYNC = "KeyGroupInSync", Healthy, [KEY_GROUP_READY];
    /// Every selected behavior trusts the key group, and CloudFront reports it deployed.
    DISTRIBUTIONS_ATTACHED = "DistributionsAttached", Healthy, [DISTRIBUTIONS_READY];
    /// The spec names no distribution: the key group exists for someone else to attach.
    NO_DISTRIBUTIONS = "NoDistributions", Healthy, [DISTRIBUTIONS_READY];
    /// No rotation is under way (`Rotating=False`).
    IDLE = "Idle", Healthy, [ROTATING];
    /// kstatus: the status describes the current spec and nothing is left to do.
    RECONCILED = "Reconciled", Healthy, [RECONCILING];
    /// kstatus: nothing waits for a person.
    NOT_STALLED = "NotStalled", Healthy, [STALLED];

    // Waiting, not failing.
    /// keyfront is making the changes the spec asks for.
    PROGRESSING = "Progressing", Waiting, [READY, KEY_GROUP_READY, DISTRIBUTIONS_READY, RECONCILING];
    /// A new key is being published, deployed or activated.
    ROTATION_IN_PROGRESS = "RotationInProgress", Waiting, [ROTATING];
    /// The next key is published and keyfront waits for CloudFront to deploy it everywhere
    /// (and for `minPropagationWait`) before apps sign with it.
    WAITING_FOR_PROPAGATION = "WaitingForPropagation", Waiting, [ROTATING];
    /// The next key is deployed everywhere and waits for its scheduled time: nothing to do.
    NEXT_KEY_READY = "NextKeyReady", Waiting, [ROTATING];
    /// The next key has waited more than twice the last observed deployment for a distribution
    /// that stays `InProgress`: keyfront holds its own writes there, so another writer (a
    /// person, Terraform, another cluster) keeps changing it. The message names it and for how
    /// long; the key goes live once it deploys.
    DISTRIBUTION_BUSY = "DistributionBusy", Waiting, [ROTATING];
    /// A distribution change keyfront made is still deploying.
    DEPLOYING = "Deploying", Waiting, [DISTRIBUTIONS_READY];
    /// The object is being deleted: keys are retired only once no valid URL can use them.
    DELETING = "Deleting", Waiting, [READY];
    /// A distribution entry with `trust: External` does not trust the key group yet: its owner
    /// (Terraform, CDK, ACK) attaches it; keyfront never writes that distribution.
    AWAITING_EXTERNAL_ATTACHMENT = "AwaitingExternalAttachment", Waiting, [DISTRIBUTIONS_READY];
    /// A rotation is due and the AWS account has no public key to spare (keyfront keeps one
    /// free for revocations): it takes its turn when a retiring key leaves; signing works.
    WAITING_FOR_ACCOUNT_CAPACITY = "WaitingForAccountCapacity", Waiting, [ROTATING];
    /// A rotation requested by annotation waits until the active key has been active for
    /// keyfront's `--min-rotation-interval`, which bounds what one object spends of the
    /// account's shared call budget; it starts then by itself.
    ROTATION_REQUEST_DEFERRED = "RotationRequestDeferred", Waiting, [ROTATING];
    /// A revoked key is still in the key group: signing works, but the revocation is not done.
    REVOCATION_IN_PROGRESS = "RevocationInProgress", Waiting, [READY];

    // Refusals and failures.
    /// The spec is invalid in a way the CRD's schema cannot check; the message names the field.
    INVALID_SPEC = "InvalidSpec", NeedsPerson, [READY];
    /// The CloudFrontAccount the object names does not exist: no CloudFront call is made until
    /// a cluster admin creates it.
    ACCOUNT_NOT_FOUND = "AccountNotFound", NeedsPerson, [READY];
    /// The CloudFrontAccount does not admit this namespace: ask a cluster admin to add it to
    /// `spec.allowedNamespaces`.
    NAMESPACE_NOT_ALLOWED = "NamespaceNotAllowed", NeedsPerson, [READY];
    /// The account admits this namespace but grants it no distribution at all, and does not
    /// allow such namespaces key groups (`spec.namespacesWithoutDistributions`): nothing is
    /// created in CloudFront, whose public keys every tenant shares.
    NO_DISTRIBUTION_GRANTED = "NoDistributionGranted", NeedsPerson, [READY];
    /// The account does not grant this namespace a distribution the spec names.
    DISTRIBUTION_NOT_ALLOWED = "DistributionNotAllowed", NeedsPerson, [DISTRIBUTIONS_READY];
    /// The account does not grant this namespace a cache behavior the spec selects.
    BEHAVIOR_NOT_ALLOWED = "CacheBehaviorNotAllowed", NeedsPerson, [DISTRIBUTIONS_READY];
    /// `spec.secret.name` names a Secret keyfront did not create for this object: it is never
    /// overwritten. Rename one of them.
    SECRET_CONFLICT = "SecretConflict", NeedsPerson, [READY];
    /// `spec.keyGroup.idConfigMap` names a ConfigMap keyfront did not create for this object.
    CONFIG_MAP_CONFLICT = "ConfigMapConflict", NeedsPerson, [KEY_GROUP_READY];
    /// A key group of that name already exists in the account and is not this object's.
    KEY_GROUP_NAME_TAKEN = "KeyGroupNameTaken", NeedsPerson, [KEY_GROUP_READY];
    /// The account lets this namespace create key groups only under its own prefix.
    KEY_GROUP_NAME_NOT_ALLOWED = "KeyGroupNameNotAllowed", NeedsPerson, [READY];
    /// `spec.keyGroup.adopt` names a key group that does not exist (yet): looked for every 30 s.
    KEY_GROUP_NOT_FOUND = "KeyGroupNotFound", NeedsPerson, [READY];
    /// Adopting the key group would reach distributions or behaviors the account does not grant.
    ADOPTION_NOT_ALLOWED = "AdoptionNotAllowed", NeedsPerson, [READY];
    /// A behavior trusts the key group to adopt, and the spec does not list it.
    ADOPTED_TRUST_NOT_DECLARED = "AdoptedTrustNotDeclared", NeedsPerson, [READY];
    /// The key group already holds 5 keys, CloudFront's most. On `Ready`: an adopted group is
    /// full, so keyfront cannot publish its own key; remove one. On `Rotating`: a rotation is
    /// due and waits until a retiring key may leave; signing works meanwhile.
    KEY_GROUP_FULL = "KeyGroupFull", NeedsPerson, [READY, ROTATING];
    /// A distribution the spec names does not exist in the account.
    DISTRIBUTION_NOT_FOUND = "DistributionNotFound", NeedsPerson, [DISTRIBUTIONS_READY];
    /// A cache behavior the spec selects does not exist on its distribution.
    BEHAVIOR_NOT_FOUND = "CacheBehaviorNotFound", NeedsPerson, [DISTRIBUTIONS_READY];
    /// A behavior already trusts 4 key groups, CloudFront's most.
    TOO_MANY_KEY_GROUPS = "TooManyKeyGroupsOnBehavior", NeedsPerson, [DISTRIBUTIONS_READY];
    /// Detaching the key group would leave a behavior trusting no key group, which makes its
    /// content public; the account must allow it (`allowPublicOnDetach`) for that behavior.
    DETACH_WOULD_MAKE_PUBLIC = "DetachWouldMakePublic", NeedsPerson, [DISTRIBUTIONS_READY];
    /// Another writer removed the key group from a behavior keyfront attached it to; keyfront
    /// attaches it again after a pause (`onTrustRemoved: Reattach`).
    TRUST_REMOVED = "TrustRemovedByAnotherWriter", Retried, [DISTRIBUTIONS_READY];
    /// Another writer removed the key group, and the entry says to leave it
    /// (`onTrustRemoved: Leave`): a person attaches it again.
    TRUST_REMOVED_LEFT = "TrustRemovedNotReattached", NeedsPerson, [DISTRIBUTIONS_READY];
    /// `keyfront.dev/revoke-key` names a key that is not this object's.
    REVOKE_KEY_NOT_FOUND = "RevokeKeyNotFound", WarningEvent, [];
    /// `spec.rotation.interval` is below keyfront's `--min-rotation-interval`: the object
    /// rotates at that floor instead (said at each rotation).
    ROTATION_INTERVAL_RAISED = "RotationIntervalRaised", WarningEvent, [];
    /// A behavior the object is no longer granted still trusts its key group (the detach would
    /// make it public, or has not deployed yet): no new key is published or activated there.
    ROTATION_FROZEN = "RotationFrozen", NeedsPerson, [ROTATING];
    /// A distribution the namespace is not granted trusts the key group (attached outside
    /// keyfront): keyfront does not read it, so a rotation may reach apps before it deploys there.
    TRUSTED_OUTSIDE_GRANT = "TrustedOutsideGrant", Retried, [DISTRIBUTIONS_READY];
    /// The keyring found under this object's identity was made for a namespace of the same name
    /// that has since been deleted: it is the previous tenant's, and is neither used nor wound
    /// down until a cluster admin says otherwise.
    KEYRING_OF_ANOTHER_NAMESPACE = "KeyringOfAnotherNamespace", NeedsPerson, [READY];
    /// Another physical cluster made public keys under this object's identity: two clusters run
    /// with one `--cluster-id` in one AWS account.
    IDENTITY_CLAIMED_ELSEWHERE = "IdentityClaimedByAnotherCluster", NeedsPerson, [READY];

    /// The AWS account has no room for this object's first key (its need, plus the headroom
    /// other objects' rotations and revocations keep), or, for a revoked key's successor, no
    /// room at all; the message gives the numbers. Nothing was created; keyfront asks again.
    ACCOUNT_CAPACITY_EXCEEDED = "AccountCapacityExceeded", Retried, [READY];
    /// A revoked key's successor cannot be created: keys made outside keyfront took even the
    /// public key keyfront keeps free for revocations, so the compromised key stays trusted.
    /// The message names the counts; delete a public key the account no longer needs. Alerted
    /// on at once (`KeyfrontRevocationBlocked`).
    REVOCATION_BLOCKED = "RevocationBlockedByAccountCapacity", NeedsPerson, [READY];

    // Failures of a pass, from `Error::category`.
    /// The account is at a CloudFront quota (public keys, key groups): free one, or ask AWS.
    CLOUDFRONT_QUOTA_EXCEEDED = "CloudFrontQuotaExceeded", NeedsPerson, [READY];
    /// CloudFront refused keyfront's credentials a call: `keyfront iam-policy` prints what the
    /// role needs.
    CLOUDFRONT_ACCESS_DENIED = "CloudFrontAccessDenied", NeedsPersonIfRepeated, [READY];
    /// CloudFront refused a request as invalid; the message quotes its answer.
    CLOUDFRONT_REJECTED = "CloudFrontRejected", NeedsPerson, [READY];
    /// The keyring keyfront keeps in its own namespace cannot be read, or is not this object's.
    KEYRING_INVALID = "KeyringInvalid", NeedsPerson, [READY];
    /// CloudFront throttled a call; keyfront backs off and retries.
    CLOUDFRONT_THROTTLED = "CloudFrontThrottled", Retried, [READY];
    /// CloudFront or the network failed for a moment; keyfront retries.
    CLOUDFRONT_UNAVAILABLE = "CloudFrontUnavailable", Retried, [READY];
    /// Something keyfront expected in CloudFront was gone (deleted by hand); it looks again.
    CLOUDFRONT_NOT_FOUND = "CloudFrontNotFound", Retried, [READY];
    /// Another writer changed the resource between keyfront's read and write; it reads again.
    CLOUDFRONT_CONFLICT = "CloudFrontConflict", Retried, [READY];
    /// CloudFront says the resource already exists; keyfront looks again and adopts its own.
    CLOUDFRONT_ALREADY_EXISTS = "CloudFrontAlreadyExists", Retried, [READY];
    /// CloudFront says the resource is still in use (a deployment not done); keyfront retries.
    CLOUDFRONT_IN_USE = "CloudFrontResourceInUse", Retried, [READY];
    /// This replica lost leadership during the pass; the new leader carries on.
    LEADERSHIP_LOST = "LeadershipLost", Retried, [READY];
    /// The Kubernetes API failed a call; keyfront retries.
    KUBERNETES_ERROR = "KubernetesError", Retried, [READY];
    /// A key pair could not be generated; keyfront retries.
    KEY_GENERATION_FAILED = "KeyGenerationFailed", Retried, [READY];
    /// A bug: keyfront retries, and the message is worth an issue.
    INTERNAL_ERROR = "InternalError", Retried, [READY];

    // Transitions.
    /// A new key pair was made and its private key saved, before anything reaches CloudFront.
    KEY_STAGED = "KeyStaged", Transition, [];
    /// A public key was created in CloudFront and added to the key group.
    KEY_PUBLISHED = "KeyPublished", Transition, [];
    /// The key group was created.
    KEY_GROUP_CREATED = "KeyGroupCreated", Transition, [];
    /// The key group's keys changed.
    KEY_GROUP_UPDATED = "KeyGroupUpdated", Transition, [];
    /// A key group made outside keyfront was adopted (`spec.keyGroup.adopt`).
    KEY_GROUP_ADOPTED = "KeyGroupAdopted", Transition, [];
    /// A key of an adopted group left it after its grace, as keyfront's own keys do.
    ADOPTED_KEY_RELEASED = "AdoptedKeyReleased", Transition, [];
    /// Apps now sign with a new key: it is in the Secret, and deployed everywhere.
    KEY_ACTIVATED = "KeyActivated", Transition, [];
    /// A retired key left the key group and CloudFront after its grace.
    KEY_DELETED = "KeyDeleted", Transition, [];
    /// A key was revoked (`keyfront.dev/revoke-key`) and removed without its grace.
    KEY_REVOKED = "KeyRevoked", Transition, [];
    /// keyfront changed which key groups a distribution's behaviors trust.
    DISTRIBUTION_UPDATED = "DistributionTrustUpdated", Transition, [];
    /// The key group was deleted (the object was deleted).
    KEY_GROUP_DELETED = "KeyGroupDeleted", Transition, [];
    /// The object is gone and so are its Secrets.
    SECRETS_RELEASED = "SecretsReleased", Transition, [];
    /// The key group's ID was written to `spec.keyGroup.idConfigMap`.
    KEY_GROUP_ID_PUBLISHED = "KeyGroupIdPublished", Transition, [];
}

fn kind_of(reason: &str) -> Option<Kind> {
    ALL.iter().find(|r| r.name == reason).map(|r| r.kind)
}

/// Reasons that mean "in progress" or settled rather than "someone must act": no Warning Event.
pub fn is_waiting(reason: &str) -> bool {
    matches!(kind_of(reason), Some(Kind::Healthy | Kind::Waiting))
}

/// Whether a `Ready=False` reason needs a person to act before anything can progress (kstatus's
/// `Stalled`). Passing failures (throttling, an unreachable API, a lost write race) do not;
/// `AccessDenied` does once it happened on two passes in a row (`previous` is the last Ready
/// reason), since a credential being rolled out can fix itself.
pub fn needs_a_human(reason: &str, previous: Option<&str>) -> bool {
    match kind_of(reason) {
        Some(Kind::NeedsPerson) => true,
        Some(Kind::NeedsPersonIfRepeated) => previous == Some(reason),
        _ => false,
    }
}
