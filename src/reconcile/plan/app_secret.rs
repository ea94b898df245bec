//! The app-facing Secret: what it must hold for the active key, and whether it does.

use std::collections::BTreeMap;

use super::Settings;
use crate::api::KeyAlgorithm;
use crate::reconcile::keyring::KeyRecord;
use crate::reconcile::names;
use crate::reconcile::observed::AppSecret;

/// The app-facing Secret's labels: the spec's plus keyfront's own.
pub fn app_secret_labels(settings: &Settings) -> BTreeMap<String, String> {
    let mut labels = settings.secret_labels.clone();
    labels.insert(names::MANAGED_BY_LABEL.into(), names::MANAGED_BY.into());
    labels.insert(names::ROLE_LABEL.into(), "signing-key".into());
    labels
}

/// The app-facing Secret's annotations: the spec's, the owner marker, and the key pair ID it
/// holds (a rollout hint: tools such as Reloader restart pods when it changes). The activation
/// time (`keyfront.dev/activated-at`) is added when the key is written and not compared after.
pub fn app_secret_annotations(
    settings: &Settings,
    owner: &str,
    key_pair_id: Option<&str>,
) -> BTreeMap<String, String> {
    let mut annotations = settings.secret_annotations.clone();
    annotations.insert(names::OWNER_ANNOTATION.into(), owner.into());
    if let Some(id) = key_pair_id {
        annotations.insert(names::KEY_PAIR_ID_ANNOTATION.into(), id.into());
    }
    annotations
}

/// The `hash_algorithm` written for a key: SHA1 for RSA (CloudFront's default), SHA256 for
/// ECDSA.
pub fn hash_algorithm(algorithm: KeyAlgorithm) -> &'static str {
    match algorithm {
        KeyAlgorithm::Rsa2048 => "SHA1",
        KeyAlgorithm::EcdsaP256 => "SHA256",
    }
}

pub(super) fn app_secret_matches(
    secret: &AppSecret,
    record: &KeyRecord,
    settings: &Settings,
    owner: &str,
) -> bool {
    let AppSecret::Owned(s) = secret else {
        return false;
    };
    s.key_pair_id == record.public_key_id
        && s.public_key_pem.as_ref() == Some(&record.public_key_pem)
        && s.hash_algorithm.as_deref() == Some(hash_algorithm(record.algorithm))
        && s.private_key == record.private_key
        && s.labels == app_secret_labels(settings)
        && {
            let mut written = s.annotations.clone();
            written.remove(names::ACTIVATED_AT_ANNOTATION);
            written == app_secret_annotations(settings, owner, record.public_key_id.as_deref())
        }
        && s.owner_referenced
}
