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

/// The app-facing Secret's annotations: the spec's, the owner marker, the spec keys written
/// ([`names::SPEC_METADATA_ANNOTATION`]), and the key pair ID it holds (a rollout hint: tools
/// such as Reloader restart pods when it changes). The activation time
/// (`keyfront.dev/activated-at`) is added when the key is written and not compared after.
pub fn app_secret_annotations(
    settings: &Settings,
    owner: &str,
    key_pair_id: Option<&str>,
) -> BTreeMap<String, String> {
    let mut annotations = settings.secret_annotations.clone();
    annotations.insert(names::OWNER_ANNOTATION.into(), owner.into());
    annotations.insert(
        names::SPEC_METADATA_ANNOTATION.into(),
        spec_metadata_keys(settings),
    );
    if let Some(id) = key_pair_id {
        annotations.insert(names::KEY_PAIR_ID_ANNOTATION.into(), id.into());
    }
    annotations
}

fn spec_metadata_keys(settings: &Settings) -> String {
    let join = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>().join(",");
    format!(
        "labels={};annotations={}",
        join(&settings.secret_labels),
        join(&settings.secret_annotations)
    )
}

/// The label and annotation keys the last write took from the spec, read back from
/// [`names::SPEC_METADATA_ANNOTATION`] (none on a Secret written before it existed).
pub fn previous_spec_keys(annotations: &BTreeMap<String, String>) -> (Vec<String>, Vec<String>) {
    let mut labels = Vec::new();
    let mut spec_annotations = Vec::new();
    let value = annotations
        .get(names::SPEC_METADATA_ANNOTATION)
        .map_or("", String::as_str);
    for part in value.split(';') {
        let (list, keys) = match part.split_once('=') {
            Some(("labels", keys)) => (&mut labels, keys),
            Some(("annotations", keys)) => (&mut spec_annotations, keys),
            _ => continue,
        };
        list.extend(keys.split(',').filter(|k| !k.is_empty()).map(str::to_owned));
    }
    (labels, spec_annotations)
}

/// `wanted` with what the Secret has besides: keys others added stay, keys the previous spec
/// asked for and this one does not are dropped.
pub fn merged_metadata(
    existing: &BTreeMap<String, String>,
    previous_spec_keys: &[String],
    wanted: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut merged: BTreeMap<String, String> = existing
        .iter()
        .filter(|(k, _)| !previous_spec_keys.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    merged.extend(wanted);
    merged
}

/// Every entry of `wanted` is in `actual` with the same value (others' entries are ignored).
fn holds(actual: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(k, v)| actual.get(k) == Some(v))
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
        // Only what keyfront owns is compared: a label a mutating webhook adds on every
        // write must not make every pass write again. The spec-keys annotation is among the
        // wanted ones, so a key removed from the spec makes one write that drops it.
        && holds(&s.labels, &app_secret_labels(settings))
        && holds(
            &s.annotations,
            &app_secret_annotations(settings, owner, record.public_key_id.as_deref()),
        )
        && s.owner_referenced
}
