//! Claim: whether the keyring found under this object's identity is this object's to use.
//!
//! The identity (cluster, namespace name, object name) survives a namespace being deleted and
//! created again — possibly for another team. So the keyring records the namespace UID it was
//! made for, and only that namespace resumes it by itself (a re-created object in it does:
//! that is a restore). Anywhere else the keyring is the previous tenant's: its private keys
//! are never written here, and its CloudFront objects are neither used nor wound down, until a
//! cluster admin annotates the keyring Secret with [`names::RESUME_ANNOTATION`].
//!
//! Keyrings written before the UID was recorded are claimed only by proof: the namespace's
//! app Secret already holds the keyring's active private key, which nobody but that tenant can
//! have put there.

use super::Observed;
use crate::reconcile::keyring::Keyring;
use crate::reconcile::names;
use crate::reconcile::observed::{AppSecret, Subject};
use crate::reconcile::reasons;

/// Whose keyring this pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyringClaim {
    /// No keyring: the object starts afresh.
    NoKeyring,
    /// This namespace's: resume it.
    Own,
    /// Made for a namespace of the same name that no longer exists (or never proven ours).
    OfAnotherNamespace,
}

/// Decides whose keyring `observed` holds.
pub fn keyring_claim(observed: &Observed) -> KeyringClaim {
    let Some(stored) = &observed.keyring else {
        return KeyringClaim::NoKeyring;
    };
    let namespace_uid = observed.namespace.uid.as_str();
    if namespace_uid.is_empty() {
        // The namespace is gone or unreadable: nothing proves anything.
        return KeyringClaim::OfAnotherNamespace;
    }
    if stored.resume_in_namespace.as_deref() == Some(namespace_uid) {
        return KeyringClaim::Own;
    }
    let keyring = &stored.keyring;
    let own = match &keyring.made_for {
        Some(made_for) => made_for.namespace_uid == namespace_uid,
        None => holds_active_key(&observed.app_secret, keyring) || is_empty(keyring),
    };
    if own {
        KeyringClaim::Own
    } else {
        KeyringClaim::OfAnotherNamespace
    }
}

/// Whether the namespace's app Secret holds the keyring's active private key.
fn holds_active_key(app_secret: &AppSecret, keyring: &Keyring) -> bool {
    let (AppSecret::Owned(secret), Some(active)) = (app_secret, keyring.active()) else {
        return false;
    };
    match (&secret.private_key, &active.private_key) {
        (Some(held), Some(recorded)) => held.expose() == recorded.expose(),
        _ => false,
    }
}

/// A keyring that records nothing a tenant could take over.
fn is_empty(keyring: &Keyring) -> bool {
    keyring.keys.is_empty() && keyring.key_group_id.is_none() && keyring.attachments.is_empty()
}

/// Why this object must touch nothing under its identity, if it must: the keyring is another
/// namespace's, or another cluster made keys under it. The reason and what a person does.
pub(super) fn not_ours(subject: &Subject, observed: &Observed) -> Option<(&'static str, String)> {
    if keyring_claim(observed) == KeyringClaim::OfAnotherNamespace {
        return Some((
            reasons::KEYRING_OF_ANOTHER_NAMESPACE,
            foreign_keyring_message(&subject.namespace, &subject.owner, &observed.namespace.uid),
        ));
    }
    (!observed.claimed_elsewhere.is_empty()).then(|| {
        (
            reasons::IDENTITY_CLAIMED_ELSEWHERE,
            format!(
                "public keys {} carry this object's identity but were made by another cluster: two clusters use the same --cluster-id in this AWS account. keyfront touches none of it; give each cluster its own --cluster-id (see the ConfigMap keyfront-cluster-identity in keyfront's namespace)",
                observed.claimed_elsewhere.join(", ")
            ),
        )
    })
}

/// The finding for a keyring of another namespace: what it means and what an admin does.
fn foreign_keyring_message(namespace: &str, owner: &str, namespace_uid: &str) -> String {
    format!(
        "keyfront holds keys made for an earlier namespace named {namespace:?}, since deleted; they belong to that tenant, so this object neither uses nor removes them and writes nothing here. A cluster admin who knows this namespace is the same tenant annotates the keyring Secret {} with {}={namespace_uid}; otherwise the admin removes the old keys (docs/tenancy.md, \"Unclaimed keyrings\")",
        names::keyring_secret_name(owner),
        names::RESUME_ANNOTATION,
    )
}
