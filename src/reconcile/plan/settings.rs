//! The spec made usable: durations parsed, defaults applied, names computed. Parsing can fail
//! only on a spec the API server should have refused ([`SpecError`]).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::{
    DeletionPolicy, DistributionSpec, DurationError, KeyAlgorithm, SigningKeyGroupSpec,
    default_key_group_name, default_secret_name, legacy_default_key_group_name, parse_duration,
};
use crate::reconcile::keyring::Keyring;
use crate::reconcile::observed::Subject;

/// The spec with durations parsed and defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub key_group_name: String,
    pub key_group_comment: Option<String>,
    pub secret_name: String,
    pub secret_labels: BTreeMap<String, String>,
    pub secret_annotations: BTreeMap<String, String>,
    pub algorithm: KeyAlgorithm,
    /// How often a new key becomes active: the spec's, or the operator's floor if higher.
    pub interval: Duration,
    /// The spec's interval, when the floor ([`Settings::raise_to_floor`]) replaced it.
    pub interval_below_floor: Option<Duration>,
    /// The operator's `--min-rotation-interval`: also the least time between requested
    /// rotations.
    pub rotation_floor: Duration,
    pub max_signed_url_lifetime: Duration,
    pub secret_refresh_allowance: Duration,
    pub min_propagation_wait: Duration,
    pub distributions: Vec<DistributionSpec>,
    pub deletion_policy: DeletionPolicy,
    /// `spec.keyGroup.adopt`, and how the adopted keys leave.
    pub adopt: bool,
    pub retire_adopted_keys_after: Duration,
    pub delete_adopted_keys: bool,
    /// `spec.keyGroup.idConfigMap`.
    pub id_config_map: Option<String>,
}

impl Settings {
    /// Applies the operator's floor on the rotation interval.
    pub fn raise_to_floor(&mut self, floor: Duration) {
        self.rotation_floor = floor;
        if self.interval < floor {
            self.interval_below_floor = Some(self.interval);
            self.interval = floor;
        }
    }

    /// How long a key stays in the group after apps stopped signing with it.
    pub fn grace(&self) -> Duration {
        // Each comes from the spec (up to u64::MAX seconds): saturate rather than panic.
        self.secret_refresh_allowance
            .saturating_add(self.max_signed_url_lifetime)
    }
}

/// The operator's pace, from `keyfront run`'s flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// How often to look while CloudFront deploys.
    pub propagation_poll: Duration,
    /// The shortest rotation interval, and the least time between requested rotations, of
    /// any object (`--min-rotation-interval`): what one object spends of its account's calls.
    pub min_rotation_interval: Duration,
}

/// A spec the API server should have refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.{field}: {source}")]
pub struct SpecError {
    pub field: &'static str,
    #[source]
    pub source: DurationError,
}

/// The CloudFront key group name, computable even from an invalid spec (cleanup needs it):
/// the spec's, else the one recorded when the keyring was made, else for a keyring older than
/// that record the default of its time, else today's default. Decided once, never recomputed.
pub fn key_group_name(
    spec: &SigningKeyGroupSpec,
    subject: &Subject,
    keyring: Option<&Keyring>,
) -> String {
    if let Some(name) = &spec.key_group.name {
        return name.clone();
    }
    match keyring {
        Some(k) => k
            .key_group_name
            .clone()
            .unwrap_or_else(|| legacy_default_key_group_name(&subject.namespace, &subject.name)),
        None => default_key_group_name(&subject.namespace, &subject.name),
    }
}

/// The app-facing Secret name, computable even from an invalid spec.
pub fn secret_name(spec: &SigningKeyGroupSpec, subject: &Subject) -> String {
    spec.secret
        .name
        .clone()
        .unwrap_or_else(|| default_secret_name(&subject.name))
}

/// Parses and completes the spec.
pub fn settings(
    spec: &SigningKeyGroupSpec,
    subject: &Subject,
    keyring: Option<&Keyring>,
) -> Result<Settings, SpecError> {
    let duration = |field: &'static str, value: &str| {
        parse_duration(value).map_err(|source| SpecError { field, source })
    };
    let rotation = &spec.rotation;
    let interval = duration("rotation.interval", &rotation.interval)?;
    if interval.is_zero() {
        return Err(SpecError {
            field: "rotation.interval",
            source: DurationError::Malformed {
                value: rotation.interval.clone(),
            },
        });
    }
    let max_signed_url_lifetime = duration(
        "rotation.maxSignedUrlLifetime",
        &rotation.max_signed_url_lifetime,
    )?;
    let secret_refresh_allowance = duration(
        "rotation.secretRefreshAllowance",
        &rotation.secret_refresh_allowance,
    )?;
    let retire_adopted_keys_after = match &spec.key_group.retire_adopted_keys_after {
        Some(value) => duration("keyGroup.retireAdoptedKeysAfter", value)?,
        None => max_signed_url_lifetime.saturating_add(secret_refresh_allowance),
    };
    Ok(Settings {
        key_group_name: key_group_name(spec, subject, keyring),
        key_group_comment: spec.key_group.comment.clone(),
        secret_name: secret_name(spec, subject),
        secret_labels: spec.secret.labels.clone(),
        secret_annotations: spec.secret.annotations.clone(),
        algorithm: spec.key.algorithm,
        interval,
        max_signed_url_lifetime,
        secret_refresh_allowance,
        min_propagation_wait: duration(
            "rotation.minPropagationWait",
            &rotation.min_propagation_wait,
        )?,
        distributions: spec.distributions.clone(),
        deletion_policy: spec.effective_deletion_policy(),
        interval_below_floor: None,
        rotation_floor: Duration::ZERO,
        adopt: spec.key_group.adopt,
        retire_adopted_keys_after,
        delete_adopted_keys: spec.key_group.delete_adopted_keys,
        id_config_map: spec.key_group.id_config_map.clone(),
    })
}
