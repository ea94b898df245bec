//! Plan (no client required): one pure function of the object, what was observed and `now`,
//! returning the next side effects in order, what blocks progress, and when to look again.
//!
//! The rotation protocol lives here and nowhere else: Staged → Published → Active → Retiring
//! → Deleted, with the invariants of DESIGN.md (I1–I6). Every rule reads observed state, so a
//! crash after any side effect is recovered by planning again from what is there.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::keyring::{Attachment, KeyRecord, Keyring};
use super::names;
use super::observe::{AppSecret, DistributionState, KeyGroupState, Observed};
use super::reasons;
use crate::api::{
    DeletionPolicy, DistributionSpec, DurationError, KeyAlgorithm, KeyState, MAX_KEYS_PER_GROUP,
    SigningKeyGroupSpec, default_key_group_name, default_secret_name, parse_duration,
};
use crate::cloudfront::{BehaviorSelector, BehaviorTrust, DeploymentStatus, Etag, KeyGroupConfig};

/// CloudFront allows at most this many key groups on one cache behavior.
const MAX_KEY_GROUPS_PER_BEHAVIOR: usize = 4;

/// The facts about the object itself that decisions depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub generation: Option<i64>,
    pub deleting: bool,
    pub has_finalizer: bool,
    /// Value of `keyfront.dev/rotate`.
    pub rotate_request: Option<String>,
    /// Value of `keyfront.dev/revoke-key`.
    pub revoke_request: Option<String>,
}

/// The spec with durations parsed and defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub key_group_name: String,
    pub key_group_comment: Option<String>,
    pub secret_name: String,
    pub secret_labels: BTreeMap<String, String>,
    pub secret_annotations: BTreeMap<String, String>,
    pub algorithm: KeyAlgorithm,
    pub interval: Duration,
    pub max_signed_url_lifetime: Duration,
    pub secret_refresh_allowance: Duration,
    pub min_propagation_wait: Duration,
    pub distributions: Vec<DistributionSpec>,
    pub deletion_policy: DeletionPolicy,
}

impl Settings {
    /// How long a key stays in the group after apps stopped signing with it.
    pub fn grace(&self) -> Duration {
        self.secret_refresh_allowance + self.max_signed_url_lifetime
    }
}

/// A spec the API server should have refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.rotation.{field}: {source}")]
pub struct SpecError {
    pub field: &'static str,
    #[source]
    pub source: DurationError,
}

/// The CloudFront key group name, computable even from an invalid spec (cleanup needs it).
pub fn key_group_name(spec: &SigningKeyGroupSpec, subject: &Subject) -> String {
    spec.key_group
        .name
        .clone()
        .unwrap_or_else(|| default_key_group_name(&subject.namespace, &subject.name))
}

/// The app-facing Secret name, computable even from an invalid spec.
pub fn secret_name(spec: &SigningKeyGroupSpec, subject: &Subject) -> String {
    spec.secret
        .name
        .clone()
        .unwrap_or_else(|| default_secret_name(&subject.name))
}

/// Parses and completes the spec.
pub fn settings(spec: &SigningKeyGroupSpec, subject: &Subject) -> Result<Settings, SpecError> {
    let duration = |field: &'static str, value: &str| {
        parse_duration(value).map_err(|source| SpecError { field, source })
    };
    let rotation = &spec.rotation;
    let interval = duration("interval", &rotation.interval)?;
    if interval.is_zero() {
        return Err(SpecError {
            field: "interval",
            source: DurationError::Malformed {
                value: rotation.interval.clone(),
            },
        });
    }
    Ok(Settings {
        key_group_name: key_group_name(spec, subject),
        key_group_comment: spec.key_group.comment.clone(),
        secret_name: secret_name(spec, subject),
        secret_labels: spec.secret.labels.clone(),
        secret_annotations: spec.secret.annotations.clone(),
        algorithm: spec.key.algorithm,
        interval,
        max_signed_url_lifetime: duration(
            "maxSignedUrlLifetime",
            &rotation.max_signed_url_lifetime,
        )?,
        secret_refresh_allowance: duration(
            "secretRefreshAllowance",
            &rotation.secret_refresh_allowance,
        )?,
        min_propagation_wait: duration("minPropagationWait", &rotation.min_propagation_wait)?,
        distributions: spec.distributions.clone(),
        deletion_policy: spec.deletion_policy,
    })
}

/// One side effect. The executor runs a plan's steps in order and stops at the first failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Add keyfront's finalizer before anything exists that would need cleaning up.
    AddFinalizer,
    /// Write [`Plan::keyring`] to the keyring Secret; with `stage`, first generate a key pair
    /// and add it as Staged (the private key is stored before CloudFront hears of it).
    SaveKeyring {
        stage: Option<KeyAlgorithm>,
    },
    /// Create the public key of a Staged key under its deterministic name.
    CreatePublicKey {
        serial: u32,
    },
    CreateKeyGroup {
        config: KeyGroupConfig,
    },
    UpdateKeyGroup {
        id: String,
        config: KeyGroupConfig,
        etag: Etag,
    },
    /// Replace the trusted key groups of some behaviors of one distribution.
    SetTrust {
        distribution_id: String,
        behaviors: Vec<BehaviorTrust>,
        etag: Etag,
    },
    /// Point the app-facing Secret at this key (activation, or repair of a drifted Secret).
    WriteAppSecret {
        serial: u32,
    },
    DeletePublicKey {
        id: String,
    },
    DeleteKeyGroup {
        id: String,
        etag: Etag,
    },
    /// Delete keyfront's Secrets (`delete`) or orphan them for `deletionPolicy: Retain`.
    ReleaseSecrets {
        delete: bool,
    },
    RemoveFinalizer,
}

/// Something that holds progress up, for one condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub condition: &'static str,
    pub reason: &'static str,
    pub message: String,
    /// A failure the user must act on (as opposed to waiting for CloudFront).
    pub blocking: bool,
}

/// A one-off Event the plan asks for (not tied to a condition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The keyring as it should be recorded (bookkeeping from what was observed).
    pub keyring: Keyring,
    pub steps: Vec<Step>,
    pub findings: Vec<Finding>,
    pub notices: Vec<Notice>,
    /// The key group contents the plan aims for.
    pub desired_items: Vec<String>,
    /// When something next falls due, absent new events.
    pub wake_at: Option<Timestamp>,
    pub settings: Option<Settings>,
}

impl Plan {
    fn new(keyring: Keyring) -> Self {
        Self {
            keyring,
            steps: Vec::new(),
            findings: Vec::new(),
            notices: Vec::new(),
            desired_items: Vec::new(),
            wake_at: None,
            settings: None,
        }
    }

    fn find(&mut self, condition: &'static str, reason: &'static str, message: String) {
        self.findings.push(Finding {
            condition,
            reason,
            message,
            blocking: true,
        });
    }

    fn wait(&mut self, condition: &'static str, reason: &'static str, message: String) {
        self.findings.push(Finding {
            condition,
            reason,
            message,
            blocking: false,
        });
    }

    fn wake(&mut self, at: Timestamp) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    /// Whether the plan has side effects to carry out now.
    pub fn has_steps(&self) -> bool {
        !self.steps.is_empty()
    }
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    let span = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    t.saturating_add(span).unwrap_or(Timestamp::MAX)
}

/// When a Retiring key may leave the group (revoked keys: at once).
pub fn leave_time(record: &KeyRecord, grace: Duration) -> Option<Timestamp> {
    if record.state != KeyState::Retiring {
        return None;
    }
    if record.revoked {
        return Some(Timestamp::MIN);
    }
    Some(after(record.retired_at.unwrap_or(record.created_at), grace))
}

/// When the active key is due to be replaced.
pub fn next_rotation(keyring: &Keyring, interval: Duration) -> Option<Timestamp> {
    let active = keyring.active()?;
    Some(after(
        active.activated_at.unwrap_or(active.created_at),
        interval,
    ))
}

/// Decides the next steps. `propagation_poll` is how often to look while CloudFront deploys.
pub fn plan(
    subject: &Subject,
    spec: &SigningKeyGroupSpec,
    observed: &Observed,
    now: Timestamp,
    propagation_poll: Duration,
) -> Plan {
    let mut plan = Plan::new(observed.keyring());
    if subject.deleting {
        if subject.has_finalizer {
            plan_cleanup(&mut plan, subject, spec, observed, now, propagation_poll);
        }
        return plan;
    }
    let settings = match settings(spec, subject) {
        Ok(s) => s,
        Err(e) => {
            plan.find(reasons::READY, reasons::INVALID_SPEC, e.to_string());
            return plan;
        }
    };
    if !subject.has_finalizer {
        plan.steps.push(Step::AddFinalizer);
    }
    if observed.app_secret == AppSecret::Foreign {
        plan.steps.clear();
        plan.find(
            reasons::READY,
            reasons::SECRET_CONFLICT,
            format!(
                "Secret {}/{} exists and is not managed by this SigningKeyGroup; keyfront does not overwrite it (delete it, or choose another spec.secret.name)",
                subject.namespace, settings.secret_name
            ),
        );
        plan.settings = Some(settings);
        return plan;
    }
    if let KeyGroupState::Taken { id } = &observed.key_group {
        plan.steps.clear();
        plan.find(
            reasons::KEY_GROUP_READY,
            reasons::KEY_GROUP_NAME_TAKEN,
            format!(
                "CloudFront key group {:?} ({id}) exists and is not owned by this SigningKeyGroup; choose another spec.keyGroup.name",
                settings.key_group_name
            ),
        );
        plan.settings = Some(settings);
        return plan;
    }
    plan_lifecycle(
        &mut plan,
        subject,
        &settings,
        observed,
        now,
        propagation_poll,
    );
    plan.settings = Some(settings);
    plan
}

/// The normal path: keys, key group, Secret, distributions.
fn plan_lifecycle(
    plan: &mut Plan,
    subject: &Subject,
    settings: &Settings,
    observed: &Observed,
    now: Timestamp,
    poll: Duration,
) {
    let group = observed.key_group.owned();
    let observed_items: BTreeSet<String> = group
        .map(|g| g.value.config.items.iter().cloned().collect())
        .unwrap_or_default();
    if let Some(g) = group {
        plan.keyring.key_group_id = Some(g.value.id.clone());
    }
    adopt_active_key_from_app_secret(plan, subject, observed, now);
    record_found_public_keys(plan, subject, observed);
    forget_deleted_keys(plan, observed);
    record_activation(plan, observed, now);
    handle_revoke_request(plan, subject, now);

    let grace = settings.grace();
    let leaving = |r: &KeyRecord| leave_time(r, grace).is_some_and(|t| t <= now);
    let desired: Vec<String> = plan
        .keyring
        .keys
        .iter()
        .filter(|r| match r.state {
            KeyState::Staged => false,
            KeyState::Published => !r.revoked,
            KeyState::Active => true,
            KeyState::Retiring => !leaving(r),
        })
        .filter_map(|r| r.public_key_id.clone())
        .collect();
    for r in &plan.keyring.keys {
        if let Some(t) = leave_time(r, grace).filter(|t| *t > now) {
            plan.wake_at = Some(plan.wake_at.map_or(t, |w| w.min(t)));
        }
    }

    // Rotation: a new key when there is none, when the active one is due, revoked or a
    // rotation was requested, and only if the group has room (I6).
    let stage = plan_rotation(plan, subject, settings, desired.len(), now, grace);

    // Create public keys of Staged keys that a listing confirmed are not in CloudFront yet.
    if observed.listed_public_keys.is_some() {
        for r in &plan.keyring.keys {
            if r.state == KeyState::Staged && r.public_key_id.is_none() {
                plan.steps.push(Step::CreatePublicKey { serial: r.serial });
            }
        }
    }

    // The key group holds exactly the keys that may be signed with or still verify URLs.
    let comment = names::owned_comment(&subject.uid, settings.key_group_comment.as_deref());
    let config = KeyGroupConfig {
        name: settings.key_group_name.clone(),
        comment: Some(comment),
        items: desired.clone(),
    };
    let mut group_in_sync = false;
    match (&observed.key_group, desired.is_empty()) {
        (KeyGroupState::Missing, false) => plan.steps.push(Step::CreateKeyGroup { config }),
        (KeyGroupState::Owned(g), false) => {
            let current: BTreeSet<&String> = g.value.config.items.iter().collect();
            let wanted: BTreeSet<&String> = desired.iter().collect();
            if current != wanted
                || g.value.config.comment != config.comment
                || g.value.config.name != config.name
            {
                plan.steps.push(Step::UpdateKeyGroup {
                    id: g.value.id.clone(),
                    config,
                    etag: g.etag.clone(),
                });
            } else {
                group_in_sync = true;
            }
        }
        _ => {}
    }
    if !group_in_sync {
        plan.wait(
            reasons::KEY_GROUP_READY,
            reasons::PROGRESSING,
            format!(
                "key group {:?} is being brought up to date",
                settings.key_group_name
            ),
        );
    }

    // Public keys no longer in the group (retired, revoked, orphaned): delete them.
    for id in public_keys_to_delete(plan, subject, observed, &observed_items, &desired) {
        plan.steps.push(Step::DeletePublicKey { id });
    }

    let kg_id = group.map(|g| g.value.id.clone());
    let activation = plan_activation(
        plan,
        settings,
        observed,
        &observed_items,
        kg_id.as_deref(),
        now,
        poll,
    );
    let active_serial = activation.or_else(|| plan.keyring.active().map(|a| a.serial));
    if let Some(serial) = active_serial {
        let in_sync = activation.is_none()
            && plan.keyring.record(serial).is_some_and(|r| {
                app_secret_matches(&observed.app_secret, r, settings, &subject.uid)
            });
        if !in_sync {
            plan.steps.push(Step::WriteAppSecret { serial });
        }
    }
    let signing_key_in_place =
        active_serial.is_some() && matches!(observed.app_secret, AppSecret::Owned(_));
    if let Some(kg_id) = kg_id {
        plan_distributions(
            plan,
            settings,
            observed,
            &kg_id,
            signing_key_in_place,
            now,
            poll,
        );
    }

    // Persist bookkeeping (and any new key) before the CloudFront steps that rely on it.
    let keyring_changed = observed
        .keyring
        .as_ref()
        .is_none_or(|k| k.keyring != plan.keyring || !k.owner_referenced);
    if stage.is_some() || keyring_changed {
        let at = usize::from(plan.steps.first() == Some(&Step::AddFinalizer));
        plan.steps.insert(at, Step::SaveKeyring { stage });
    }
    if stage.is_some() {
        plan.wait(
            reasons::ROTATING,
            reasons::ROTATION_IN_PROGRESS,
            "generating the next key".into(),
        );
    }
    plan.desired_items = desired;
}

/// A lost keyring with keyfront's Secret still in place: the Secret's key is the active key.
fn adopt_active_key_from_app_secret(
    plan: &mut Plan,
    subject: &Subject,
    observed: &Observed,
    now: Timestamp,
) {
    if observed.keyring.is_some() {
        return;
    }
    let AppSecret::Owned(secret) = &observed.app_secret else {
        return;
    };
    let (Some(id), Some(public), Some(private)) = (
        &secret.key_pair_id,
        &secret.public_key_pem,
        &secret.private_key,
    ) else {
        return;
    };
    let Ok(fingerprint) = crate::keys::fingerprint(public) else {
        return;
    };
    let listed = observed.listed_public_keys.as_deref().unwrap_or_default();
    let Some(found) = listed.iter().find(|k| &k.id == id) else {
        return;
    };
    let serial = names::serial_of_public_key(&subject.uid, &found.name).unwrap_or(0);
    let algorithm = if private.expose().contains("RSA PRIVATE KEY") {
        KeyAlgorithm::Rsa2048
    } else {
        KeyAlgorithm::EcdsaP256
    };
    plan.keyring.keys.push(KeyRecord {
        serial,
        algorithm,
        state: KeyState::Active,
        public_key_id: Some(id.clone()),
        public_key_pem: public.clone(),
        fingerprint,
        created_at: now,
        live_at: Some(now),
        activated_at: Some(now),
        retired_at: None,
        revoked: false,
        private_key: Some(private.clone()),
    });
    plan.keyring.next_serial = plan.keyring.next_serial.max(serial + 1);
}

/// A Staged key whose public key a listing found (the create's answer was lost): record it.
fn record_found_public_keys(plan: &mut Plan, subject: &Subject, observed: &Observed) {
    let Some(listed) = &observed.listed_public_keys else {
        return;
    };
    for record in &mut plan.keyring.keys {
        if record.public_key_id.is_some() {
            continue;
        }
        let found = listed.iter().find(|k| {
            names::serial_of_public_key(&subject.uid, &k.name) == Some(record.serial)
                && crate::keys::fingerprint(&k.encoded_key).ok().as_ref()
                    == Some(&record.fingerprint)
        });
        if let Some(found) = found {
            record.public_key_id = Some(found.id.clone());
            if record.state == KeyState::Staged {
                record.state = KeyState::Published;
            }
        }
    }
    // Serials of found keys are taken, even if unrecorded.
    for k in listed {
        if let Some(serial) = names::serial_of_public_key(&subject.uid, &k.name) {
            plan.keyring.next_serial = plan.keyring.next_serial.max(serial + 1);
        }
    }
}

/// A recorded public key that CloudFront no longer has: forget the key (after deletion, or
/// after someone deleted it by hand; either way it can no longer verify anything).
fn forget_deleted_keys(plan: &mut Plan, observed: &Observed) {
    plan.keyring.keys.retain(|r| {
        r.public_key_id
            .as_ref()
            .is_none_or(|id| observed.public_keys_present.get(id) != Some(&false))
    });
}

/// The app-facing Secret names a Published key: it was activated (the Secret is written
/// first, so a crash in between is recovered here with a later, safer timestamp).
fn record_activation(plan: &mut Plan, observed: &Observed, now: Timestamp) {
    let AppSecret::Owned(secret) = &observed.app_secret else {
        return;
    };
    let Some(id) = &secret.key_pair_id else {
        return;
    };
    let is_published = plan
        .keyring
        .keys
        .iter()
        .any(|r| r.public_key_id.as_ref() == Some(id) && r.state == KeyState::Published);
    if !is_published {
        return;
    }
    for record in &mut plan.keyring.keys {
        if record.public_key_id.as_ref() == Some(id) {
            record.state = KeyState::Active;
            record.activated_at = Some(now);
        } else if record.state == KeyState::Active {
            record.state = KeyState::Retiring;
            record.retired_at = Some(now);
        }
    }
}

fn handle_revoke_request(plan: &mut Plan, subject: &Subject, now: Timestamp) {
    let Some(target) = &subject.revoke_request else {
        return;
    };
    if plan.keyring.handled_revoke.as_ref() == Some(target) {
        return;
    }
    plan.keyring.handled_revoke = Some(target.clone());
    match plan
        .keyring
        .keys
        .iter_mut()
        .find(|r| r.public_key_id.as_ref() == Some(target))
    {
        Some(record) => {
            record.revoked = true;
            if record.state == KeyState::Published {
                record.state = KeyState::Retiring;
                record.retired_at = Some(now);
            }
            plan.notices.push(Notice {
                warning: false,
                reason: reasons::KEY_REVOKED,
                message: format!(
                    "public key {target} revoked: it leaves the key group as soon as another key is active"
                ),
            });
        }
        None => plan.notices.push(Notice {
            warning: true,
            reason: reasons::REVOKE_KEY_NOT_FOUND,
            message: format!(
                "keyfront.dev/revoke-key names {target}, which is not a key of this SigningKeyGroup"
            ),
        }),
    }
}

/// Decides whether to stage a new key now; records a due-but-blocked rotation as a finding.
fn plan_rotation(
    plan: &mut Plan,
    subject: &Subject,
    settings: &Settings,
    keys_in_group: usize,
    now: Timestamp,
    grace: Duration,
) -> Option<KeyAlgorithm> {
    let pending = plan
        .keyring
        .keys
        .iter()
        .any(|r| matches!(r.state, KeyState::Staged | KeyState::Published) && !r.revoked);
    let requested = subject
        .rotate_request
        .as_ref()
        .filter(|v| plan.keyring.handled_rotate.as_ref() != Some(*v))
        .cloned();
    let due_at = next_rotation(&plan.keyring, settings.interval);
    let why = match plan.keyring.active() {
        None => Some("no key is active yet"),
        Some(a) if a.revoked => Some("the active key was revoked"),
        Some(_) if requested.is_some() => Some("a rotation was requested by annotation"),
        Some(_) if due_at.is_some_and(|t| t <= now) => Some("the rotation interval has passed"),
        Some(_) => None,
    };
    if let Some(t) = due_at.filter(|t| *t > now) {
        plan.wake(t);
    }
    let why = why?;
    if pending {
        if let Some(v) = requested {
            // The rotation already under way satisfies the request.
            plan.keyring.handled_rotate = Some(v);
        }
        plan.wait(
            reasons::ROTATING,
            reasons::ROTATION_IN_PROGRESS,
            format!("rotating because {why}"),
        );
        return None;
    }
    if keys_in_group >= MAX_KEYS_PER_GROUP {
        let earliest = plan
            .keyring
            .keys
            .iter()
            .filter_map(|r| leave_time(r, grace))
            .filter(|t| *t > now)
            .min();
        // Signing still works, so Ready stays as it is; Rotating says why nothing happens.
        plan.wait(
            reasons::ROTATING,
            reasons::KEY_GROUP_FULL,
            format!(
                "rotation is due because {why}, but the key group already holds {MAX_KEYS_PER_GROUP} keys; waiting until a retiring key may leave{}",
                earliest.map(|t| format!(" at {t}")).unwrap_or_default()
            ),
        );
        if let Some(t) = earliest {
            plan.wake(t);
        }
        return None;
    }
    if let Some(v) = requested {
        plan.keyring.handled_rotate = Some(v);
    }
    Some(settings.algorithm)
}

/// Public keys of this object that are outside the key group and not wanted in it.
fn public_keys_to_delete(
    plan: &Plan,
    subject: &Subject,
    observed: &Observed,
    in_group: &BTreeSet<String>,
    desired: &[String],
) -> Vec<String> {
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for r in &plan.keyring.keys {
        if let Some(id) = &r.public_key_id
            && r.state == KeyState::Retiring
            && !desired.contains(id)
            && !in_group.contains(id)
            && observed.public_keys_present.get(id) == Some(&true)
        {
            ids.insert(id.clone());
        }
    }
    // Keys carrying this object's name and marker that no record accounts for.
    if let Some(listed) = &observed.listed_public_keys {
        let recorded = plan.keyring.public_key_ids();
        for k in listed {
            if !recorded.contains(k.id.as_str())
                && !in_group.contains(&k.id)
                && names::serial_of_public_key(&subject.uid, &k.name).is_some()
            {
                ids.insert(k.id.clone());
            }
        }
    }
    ids.into_iter().collect()
}

/// Whether a distribution trusts the key group in its configuration or, until a detach has
/// deployed, still at the edge: either way URLs for it must verify with the signing key.
fn trusts(distribution: &crate::cloudfront::Distribution, kg_id: &str) -> bool {
    distribution
        .behaviors
        .iter()
        .any(|b| b.trusted_key_groups.iter().any(|g| g == kg_id))
        || distribution
            .active_trusted_key_groups
            .iter()
            .any(|g| g.key_group_id == kg_id)
}

/// Picks a Published key that every distribution trusting the group verifies, once any
/// declared wait has passed. Returns its serial if the Secret should switch to it now.
#[allow(clippy::too_many_arguments)]
fn plan_activation(
    plan: &mut Plan,
    settings: &Settings,
    observed: &Observed,
    in_group: &BTreeSet<String>,
    kg_id: Option<&str>,
    now: Timestamp,
    poll: Duration,
) -> Option<u32> {
    let kg_id = kg_id?;
    let trusting: Vec<_> = observed
        .distributions
        .values()
        .filter_map(|d| match d {
            DistributionState::Found(d) => Some(&d.value),
            DistributionState::NotFound => None,
        })
        .filter(|d| trusts(d, kg_id))
        .collect();
    let candidate = plan.keyring.keys.iter_mut().find(|r| {
        r.state == KeyState::Published
            && !r.revoked
            && r.public_key_id
                .as_ref()
                .is_some_and(|id| in_group.contains(id))
    })?;
    let id = candidate.public_key_id.clone()?;
    let not_live: Vec<&str> = trusting
        .iter()
        .filter(|d| !d.is_key_live(kg_id, &id))
        .map(|d| d.id.as_str())
        .collect();
    if !not_live.is_empty() {
        plan.wake(after(now, poll));
        plan.wait(
            reasons::ROTATING,
            reasons::WAITING_FOR_PROPAGATION,
            format!(
                "public key {id} is in the key group; waiting until distributions {} have deployed it",
                not_live.join(", ")
            ),
        );
        return None;
    }
    if !settings.min_propagation_wait.is_zero() {
        let live_at = *candidate.live_at.get_or_insert(now);
        let ready_at = after(live_at, settings.min_propagation_wait);
        if ready_at > now {
            plan.wake(ready_at);
            plan.wait(
                reasons::ROTATING,
                reasons::WAITING_FOR_PROPAGATION,
                format!("public key {id} is live; waiting for minPropagationWait until {ready_at}"),
            );
            return None;
        }
    }
    Some(candidate.serial)
}

/// The app-facing Secret's labels: the spec's plus keyfront's own.
pub fn app_secret_labels(settings: &Settings) -> BTreeMap<String, String> {
    let mut labels = settings.secret_labels.clone();
    labels.insert(names::MANAGED_BY_LABEL.into(), names::MANAGED_BY.into());
    labels.insert(names::ROLE_LABEL.into(), "signing-key".into());
    labels
}

/// The app-facing Secret's annotations: the spec's plus the owner marker.
pub fn app_secret_annotations(settings: &Settings, uid: &str) -> BTreeMap<String, String> {
    let mut annotations = settings.secret_annotations.clone();
    annotations.insert(names::OWNER_UID_ANNOTATION.into(), uid.into());
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

fn app_secret_matches(
    secret: &AppSecret,
    record: &KeyRecord,
    settings: &Settings,
    uid: &str,
) -> bool {
    let AppSecret::Owned(s) = secret else {
        return false;
    };
    s.key_pair_id == record.public_key_id
        && s.public_key_pem.as_ref() == Some(&record.public_key_pem)
        && s.hash_algorithm.as_deref() == Some(hash_algorithm(record.algorithm))
        && s.private_key == record.private_key
        && s.labels == app_secret_labels(settings)
        && s.annotations == app_secret_annotations(settings, uid)
        && s.owner_referenced
}

fn selectors(spec: &DistributionSpec) -> Vec<BehaviorSelector> {
    let mut selected = Vec::new();
    if spec.default_cache_behavior {
        selected.push(BehaviorSelector::Default);
    }
    selected.extend(
        spec.path_patterns
            .iter()
            .cloned()
            .map(BehaviorSelector::PathPattern),
    );
    selected
}

/// Removes `kg_id` from a behavior's trust, unless that would make it public without the
/// opt-in. Returns the new trust, or `Err` with the finding message.
fn detach(
    trust: &BehaviorTrust,
    kg_id: &str,
    allow_public: bool,
    distribution_id: &str,
) -> Result<BehaviorTrust, String> {
    let remaining: Vec<String> = trust
        .trusted_key_groups
        .iter()
        .filter(|g| *g != kg_id)
        .cloned()
        .collect();
    if remaining.is_empty() && !allow_public {
        return Err(format!(
            "removing key group {kg_id} from the {} of distribution {distribution_id} would make it public; keeping it (set allowPublicOnDetach: true on that distribution first, or trust another key group there)",
            trust.behavior
        ));
    }
    Ok(BehaviorTrust {
        behavior: trust.behavior.clone(),
        trusted_key_groups: remaining,
    })
}

/// Attach the key group to the selected behaviors, detach it from the rest.
fn plan_distributions(
    plan: &mut Plan,
    settings: &Settings,
    observed: &Observed,
    kg_id: &str,
    signing_key_in_place: bool,
    now: Timestamp,
    poll: Duration,
) {
    let mut pending = Vec::new();
    let mut deploying = Vec::new();
    for spec in &settings.distributions {
        let Some(DistributionState::Found(dist)) = observed.distributions.get(&spec.id) else {
            plan.find(
                reasons::DISTRIBUTIONS_READY,
                reasons::DISTRIBUTION_NOT_FOUND,
                format!(
                    "distribution {} does not exist in this AWS account",
                    spec.id
                ),
            );
            continue;
        };
        let selected = selectors(spec);
        let mut changes = Vec::new();
        for selector in &selected {
            let Some(trust) = dist.value.behavior(selector) else {
                plan.find(
                    reasons::DISTRIBUTIONS_READY,
                    reasons::BEHAVIOR_NOT_FOUND,
                    format!("distribution {} has no {selector}", spec.id),
                );
                continue;
            };
            if trust.trusted_key_groups.iter().any(|g| g == kg_id) {
                continue;
            }
            if !signing_key_in_place {
                pending.push(spec.id.clone());
                continue;
            }
            if trust.trusted_key_groups.len() >= MAX_KEY_GROUPS_PER_BEHAVIOR {
                plan.find(
                    reasons::DISTRIBUTIONS_READY,
                    reasons::TOO_MANY_KEY_GROUPS,
                    format!(
                        "the {selector} of distribution {} already trusts {MAX_KEY_GROUPS_PER_BEHAVIOR} key groups, CloudFront's limit",
                        spec.id
                    ),
                );
                continue;
            }
            let mut trusted = trust.trusted_key_groups.clone();
            trusted.push(kg_id.to_owned());
            changes.push(BehaviorTrust {
                behavior: selector.clone(),
                trusted_key_groups: trusted,
            });
        }
        for trust in &dist.value.behaviors {
            if selected.contains(&trust.behavior)
                || !trust.trusted_key_groups.iter().any(|g| g == kg_id)
            {
                continue;
            }
            match detach(trust, kg_id, spec.allow_public_on_detach, &spec.id) {
                Ok(change) => changes.push(change),
                Err(message) => plan.find(
                    reasons::DISTRIBUTIONS_READY,
                    reasons::DETACH_WOULD_MAKE_PUBLIC,
                    message,
                ),
            }
        }
        let attachment = Attachment {
            allow_public_on_detach: spec.allow_public_on_detach,
        };
        let trusts_us = dist
            .value
            .behaviors
            .iter()
            .any(|b| b.trusted_key_groups.iter().any(|g| g == kg_id));
        if !changes.is_empty() || trusts_us {
            plan.keyring.attachments.insert(spec.id.clone(), attachment);
        }
        if !changes.is_empty() {
            pending.push(spec.id.clone());
            plan.steps.push(Step::SetTrust {
                distribution_id: spec.id.clone(),
                behaviors: changes,
                etag: dist.etag.clone(),
            });
        } else if dist.value.status == DeploymentStatus::InProgress {
            deploying.push(spec.id.clone());
        }
    }
    // Distributions the spec no longer lists.
    let in_spec: BTreeSet<&String> = settings.distributions.iter().map(|d| &d.id).collect();
    let forgotten: Vec<(String, Attachment)> = plan
        .keyring
        .attachments
        .iter()
        .filter(|(id, _)| !in_spec.contains(id))
        .map(|(id, a)| (id.clone(), a.clone()))
        .collect();
    for (id, attachment) in forgotten {
        let Some(DistributionState::Found(dist)) = observed.distributions.get(&id) else {
            plan.keyring.attachments.remove(&id);
            continue;
        };
        let mut changes = Vec::new();
        for trust in &dist.value.behaviors {
            if !trust.trusted_key_groups.iter().any(|g| g == kg_id) {
                continue;
            }
            match detach(trust, kg_id, attachment.allow_public_on_detach, &id) {
                Ok(change) => changes.push(change),
                Err(message) => plan.find(
                    reasons::DISTRIBUTIONS_READY,
                    reasons::DETACH_WOULD_MAKE_PUBLIC,
                    message,
                ),
            }
        }
        // Remembered until the edge, too, has stopped trusting the group.
        if !trusts(&dist.value, kg_id) {
            plan.keyring.attachments.remove(&id);
        } else if !changes.is_empty() {
            plan.steps.push(Step::SetTrust {
                distribution_id: id.clone(),
                behaviors: changes,
                etag: dist.etag.clone(),
            });
        }
    }
    if !pending.is_empty() {
        plan.wait(
            reasons::DISTRIBUTIONS_READY,
            reasons::PROGRESSING,
            format!(
                "attaching the key group to distributions {}",
                pending.join(", ")
            ),
        );
    } else if !deploying.is_empty() {
        plan.wake(after(now, poll));
        plan.wait(
            reasons::DISTRIBUTIONS_READY,
            reasons::DEPLOYING,
            format!("distributions {} are deploying", deploying.join(", ")),
        );
    }
}

/// Deletion: `Delete` detaches, deletes the key group, then the public keys, then releases
/// the Secrets; `Retain` orphans the Secrets and leaves CloudFront alone. Works from an
/// invalid spec, and treats "already gone" as done.
fn plan_cleanup(
    plan: &mut Plan,
    subject: &Subject,
    spec: &SigningKeyGroupSpec,
    observed: &Observed,
    now: Timestamp,
    poll: Duration,
) {
    if spec.deletion_policy == DeletionPolicy::Retain {
        plan.steps.push(Step::ReleaseSecrets { delete: false });
        plan.steps.push(Step::RemoveFinalizer);
        return;
    }
    let group = observed.key_group.owned();
    if let Some(g) = group {
        let kg_id = g.value.id.as_str();
        let mut still_trusted = false;
        for (id, state) in &observed.distributions {
            let DistributionState::Found(dist) = state else {
                continue;
            };
            let allow = spec
                .distributions
                .iter()
                .find(|d| &d.id == id)
                .map(|d| d.allow_public_on_detach)
                .or_else(|| {
                    plan.keyring
                        .attachments
                        .get(id)
                        .map(|a| a.allow_public_on_detach)
                })
                .unwrap_or(false);
            let mut changes = Vec::new();
            for trust in &dist.value.behaviors {
                if !trust.trusted_key_groups.iter().any(|g| g == kg_id) {
                    continue;
                }
                still_trusted = true;
                match detach(trust, kg_id, allow, id) {
                    Ok(change) => changes.push(change),
                    Err(message) => plan.find(
                        reasons::DISTRIBUTIONS_READY,
                        reasons::DETACH_WOULD_MAKE_PUBLIC,
                        message,
                    ),
                }
            }
            if !changes.is_empty() {
                plan.steps.push(Step::SetTrust {
                    distribution_id: id.clone(),
                    behaviors: changes,
                    etag: dist.etag.clone(),
                });
            }
        }
        if still_trusted {
            plan.wake(after(now, poll));
            plan.wait(
                reasons::READY,
                reasons::DELETING,
                "detaching the key group from distributions before deleting it".into(),
            );
            return;
        }
        plan.steps.push(Step::DeleteKeyGroup {
            id: g.value.id.clone(),
            etag: g.etag.clone(),
        });
        return;
    }
    let mut ids: BTreeSet<String> = observed
        .public_keys_present
        .iter()
        .filter(|(_, present)| **present)
        .map(|(id, _)| id.clone())
        .collect();
    if let Some(listed) = &observed.listed_public_keys {
        ids.extend(
            listed
                .iter()
                .filter(|k| names::serial_of_public_key(&subject.uid, &k.name).is_some())
                .map(|k| k.id.clone()),
        );
    }
    if !ids.is_empty() {
        for id in ids {
            plan.steps.push(Step::DeletePublicKey { id });
        }
        return;
    }
    plan.steps.push(Step::ReleaseSecrets { delete: true });
    plan.steps.push(Step::RemoveFinalizer);
}
