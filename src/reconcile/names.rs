//! Names and ownership markers keyfront derives from a `SigningKeyGroup`.
//!
//! Identity: every CloudFront object and the keyring are marked with an *owner token* derived
//! from the operator's `--cluster-id` and the object's namespace and name — not its UID — so
//! an object restored from backup, or deleted with `Retain` and created again, resumes its own
//! keys, and two clusters sharing an AWS account (with different cluster IDs) never touch each
//! other's objects. The token is a hash so that every name and comment fits CloudFront's 128
//! characters whatever the namespace and name.
//!
//! CloudFront public keys and key groups take no tags, so ownership is written into `Name`
//! (public keys: the owner token and a serial) and `Comment` (both: a marker naming the token).
//! A crash between "create" and "record the ID" is recovered by finding the object again
//! under these names.

use sha2::{Digest as _, Sha256};

/// Label on every Secret keyfront writes.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "keyfront";
/// Annotation on keyfront's Secrets holding the owner token of the `SigningKeyGroup` they
/// belong to; it stays when a Secret is orphaned by `deletionPolicy: Retain`.
pub const OWNER_ANNOTATION: &str = "keyfront.dev/owner";
/// Annotations on the app Secret for rollout tools: the key pair ID it holds, and when keyfront
/// switched it to that key (RFC 3339).
pub const KEY_PAIR_ID_ANNOTATION: &str = "keyfront.dev/key-pair-id";
pub const ACTIVATED_AT_ANNOTATION: &str = "keyfront.dev/activated-at";
/// Annotation on the app Secret listing the label and annotation keys `spec.secret` asked for
/// at the last write (`labels=a,b;annotations=c`): a key since removed from the spec is removed
/// from the Secret, while keys someone else adds (a mutating webhook, a policy engine) stay.
pub const SPEC_METADATA_ANNOTATION: &str = "keyfront.dev/spec-metadata-keys";
/// Annotation on the keyring naming the `SigningKeyGroup` (`namespace/name`) for people.
pub const OWNER_OBJECT_ANNOTATION: &str = "keyfront.dev/owner-object";
/// Annotations on the keyring for the account's list of unclaimed keyrings (read from
/// metadata alone): the `CloudFrontAccount` the keys live in, and the UID of the namespace
/// they were made for.
pub const ACCOUNT_ANNOTATION: &str = "keyfront.dev/account";
pub const NAMESPACE_UID_ANNOTATION: &str = "keyfront.dev/namespace-uid";
/// Label distinguishing the keyring Secret (never mounted by apps) from the app-facing one.
pub const ROLE_LABEL: &str = "keyfront.dev/role";
/// On a keyring Secret, set by a cluster admin: the UID of a namespace that may resume this
/// keyring although it was made for another (a namespace restored from backup, or deleted and
/// created again for the same tenant). keyfront never sets it.
pub const RESUME_ANNOTATION: &str = "keyfront.dev/resume-in-namespace";
/// Finalizer guarding CloudFront cleanup.
pub const FINALIZER: &str = "keyfront.dev/cleanup";
/// `kubectl annotate skg/x keyfront.dev/rotate=<any new value>`: rotate now.
pub const ROTATE_ANNOTATION: &str = "keyfront.dev/rotate";
/// `kubectl annotate skg/x keyfront.dev/revoke-key=<public key id>`: remove that key now.
pub const REVOKE_ANNOTATION: &str = "keyfront.dev/revoke-key";

/// The owner token of the object `namespace/name` in the cluster `cluster_id`: 32 hex
/// characters (128 bits) of SHA-256, so names stay short and collisions are out of reach.
pub fn owner_token(cluster_id: &str, namespace: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{cluster_id}/{namespace}/{name}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The prefix of every CloudFront `Comment` keyfront writes for the object with this owner.
pub fn comment_marker(owner: &str) -> String {
    format!("keyfront:{owner}")
}

/// A comment carrying the ownership marker, then the user's text if any. CloudFront allows
/// 128 characters; the schema keeps the user's part short enough.
pub fn owned_comment(owner: &str, user_comment: Option<&str>) -> String {
    match user_comment.filter(|c| !c.is_empty()) {
        Some(text) => format!("{} {text}", comment_marker(owner)),
        None => comment_marker(owner),
    }
}

/// Whether a CloudFront comment carries any keyfront object's marker (this cluster's or
/// another's).
pub fn made_by_keyfront(comment: Option<&str>) -> bool {
    comment.is_some_and(|c| c.starts_with(&comment_marker("")))
}

/// Whether a CloudFront comment marks the object as owned by `owner`.
pub fn is_owned_comment(comment: Option<&str>, owner: &str) -> bool {
    comment.is_some_and(|c| {
        let marker = comment_marker(owner);
        c == marker || c.starts_with(&format!("{marker} "))
    })
}

/// The install claim: which physical cluster made a public key, whatever `--cluster-id` it ran
/// with: 12 hex characters of SHA-256 of its `kube-system` namespace's UID. Two clusters that
/// claim one cluster ID in one AWS account make keys with the same names and markers; the claim
/// tells "another cluster's key" from "our own key whose record was lost".
pub fn install_claim(kube_system_uid: &str) -> String {
    let digest = Sha256::digest(format!("keyfront-install/{kube_system_uid}").as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

const CLAIM_PREFIX: &str = "install:";

/// The comment of a public key keyfront creates: the ownership marker, then the install claim
/// (if known). 41 + 1 + 20 characters, well within CloudFront's 128.
pub fn public_key_comment(owner: &str, claim: &str) -> String {
    if claim.is_empty() {
        comment_marker(owner)
    } else {
        format!("{} {CLAIM_PREFIX}{claim}", comment_marker(owner))
    }
}

/// The install claim in a public key's comment, if it carries one (keys made before 0.2 do not).
pub fn claim_of(comment: Option<&str>) -> Option<&str> {
    comment?
        .split_whitespace()
        .find_map(|word| word.strip_prefix(CLAIM_PREFIX))
}

/// The name prefix of every public key of the object with this owner token.
pub fn public_key_prefix(owner: &str) -> String {
    format!("keyfront-{owner}-")
}

/// The deterministic CloudFront public key name of key `serial` (at most 52 characters).
pub fn public_key_name(owner: &str, serial: u32) -> String {
    format!("{}{serial}", public_key_prefix(owner))
}

/// The serial encoded in a public key name of this object, if the name is one.
pub fn serial_of_public_key(owner: &str, name: &str) -> Option<u32> {
    name.strip_prefix(&public_key_prefix(owner))?.parse().ok()
}

/// The name of the Secret, in the operator's keyring namespace, holding keyfront's record of
/// every key of one object (never mounted by apps, never in a tenant's namespace).
pub fn keyring_secret_name(owner: &str) -> String {
    format!("keyfront-keyring-{owner}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_token_is_the_identity_not_the_uid() {
        let a = owner_token("prod-eu", "team-a", "media");
        assert_eq!(a, owner_token("prod-eu", "team-a", "media"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, owner_token("prod-us", "team-a", "media"));
        assert_ne!(a, owner_token("prod-eu", "team-b", "media"));
    }

    #[test]
    fn names_and_comments_fit_cloudfront_for_the_longest_objects() {
        let owner = owner_token(&"c".repeat(200), &"n".repeat(63), &"m".repeat(253));
        let name = public_key_name(&owner, u32::MAX);
        assert!(name.len() <= 128, "{name}");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_eq!(serial_of_public_key(&owner, &name), Some(u32::MAX));
        assert_eq!(serial_of_public_key("other", &name), None);
        // The schema caps the user's comment at 80 characters.
        assert!(owned_comment(&owner, Some(&"x".repeat(80))).len() <= 128);
        assert!(keyring_secret_name(&owner).len() <= 63);
    }

    #[test]
    fn a_public_key_comment_carries_the_install_claim() {
        let owner = owner_token("default", "team-a", "site");
        let claim = install_claim("0f6c4e1a-uid");
        assert_eq!(claim.len(), 12);
        assert_ne!(claim, install_claim("another-cluster"));
        let comment = public_key_comment(&owner, &claim);
        assert!(comment.len() <= 128);
        assert!(is_owned_comment(Some(&comment), &owner));
        assert_eq!(claim_of(Some(&comment)), Some(claim.as_str()));
        assert_eq!(claim_of(Some(&comment_marker(&owner))), None);
        assert_eq!(public_key_comment(&owner, ""), comment_marker(&owner));
    }

    #[test]
    fn ownership_needs_the_exact_marker() {
        let owner = owner_token("c", "default", "media");
        let comment = owned_comment(&owner, Some("signed URLs for video"));
        assert!(is_owned_comment(Some(&comment), &owner));
        assert!(is_owned_comment(Some(&comment_marker(&owner)), &owner));
        assert!(!is_owned_comment(
            Some(&format!("{}0", comment_marker(&owner))),
            &owner
        ));
        assert!(!is_owned_comment(Some("made by hand"), &owner));
        assert!(!is_owned_comment(None, &owner));
    }
}
