//! Plan (no client required): one pure function of the object, what was observed and `now`,
//! returning the next side effects in order, what blocks progress, and when to look again.
//!
//! The rotation protocol lives here and nowhere else: Staged → Published → Active → Retiring
//! → Deleted, with the invariants of DESIGN.md (I1–I6). Every rule reads observed state, so a
//! crash after any side effect is recovered by planning again from what is there.
//!
//! One module per concern, each a chain of small named rules over the same [`Plan`]:
//! [`keys`] (keyring bookkeeping, rotation, activation), [`key_group`] (what the group holds),
//! [`adopted_keys`] (the keys an adopted group came with), [`settings`] (the spec made usable),
//! [`app_secret`] (what apps mount), [`id_config_map`] (the group's ID for other tools), [`distributions`] (attach and detach), [`foreign_trust`]
//! (trust keyfront did not give), [`trust_removal`] (trust another writer took away), [`revocation`] (compromised keys), [`claim`] (whose keyring
//! this is), [`cleanup`] (deletion), and [`grants`] (what the `CloudFrontAccount` lets the object do at all).

mod adopted_keys;
mod app_secret;
mod claim;
mod cleanup;
mod distributions;
mod foreign_trust;
mod grants;
mod id_config_map;
mod key_group;
mod keys;
mod revocation;
mod rotation;
mod settings;
mod trust_removal;

pub use app_secret::{
    app_secret_annotations, app_secret_labels, hash_algorithm, merged_metadata, previous_spec_keys,
};
pub use claim::{KeyringClaim, keyring_claim};
pub(crate) use distributions::{heading_to, selectors};
use grants::{Access, refusal};
pub use grants::{admission, reaches_cloudfront};
pub use id_config_map::id_config_map_data;
use keys::{after, before};
pub use keys::{leave_time, next_rotation};
pub use settings::{Pacing, Settings, SpecError, key_group_name, secret_name, settings};
pub use trust_removal::FIRST_PAUSE as REATTACH_FIRST_PAUSE;

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

use super::capacity::Slot;
use super::keyring::{KeyRecord, Keyring, MadeFor};
use super::observed::{AppSecret, KeyGroupState, Observed, Subject};
use super::reasons;
use crate::api::{DeletionPolicy, KeyAlgorithm, KeyState, SigningKeyGroupSpec};
use crate::cloudfront::{BehaviorTrust, Etag, KeyGroupConfig};
use crate::tenancy::{Admission, Grants};

/// One side effect. The executor runs a plan's steps in order and stops at the first failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Add keyfront's finalizer before anything exists that would need cleaning up.
    AddFinalizer,
    /// Write [`Plan::keyring`] to the keyring Secret; with `stage`, first generate a key pair
    /// and add it as Staged (the private key is stored before CloudFront hears of it).
    SaveKeyring {
        stage: Option<Stage>,
    },
    /// Create the public key of a Staged key under its deterministic name, if the account has
    /// room for what it is for ([`crate::reconcile::capacity`]).
    CreatePublicKey {
        serial: u32,
        slot: Slot,
    },
    CreateKeyGroup {
        config: KeyGroupConfig,
    },
    UpdateKeyGroup {
        id: String,
        config: KeyGroupConfig,
        etag: Etag,
    },
    /// Set the trusted key groups of some behaviors of one distribution: carried out as the
    /// change from the observed trust ([`crate::cloudfront::TrustChange`]), so it combines
    /// with other objects' changes to the same distribution.
    SetTrust {
        distribution_id: String,
        behaviors: Vec<BehaviorTrust>,
    },
    /// Point the app-facing Secret at this key (activation, or repair of a drifted Secret).
    WriteAppSecret {
        serial: u32,
    },
    /// Write the key group's ID and name to the ConfigMap `spec.keyGroup.idConfigMap` names.
    WriteIdConfigMap {
        name: String,
        data: std::collections::BTreeMap<String, String>,
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

/// A key pair to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    pub algorithm: KeyAlgorithm,
    /// For a key published ahead of a scheduled rotation: when it takes over, not before.
    pub takes_over_at: Option<Timestamp>,
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
    /// Distributions whose deployment of this object's key change it waits for: keyfront
    /// holds its other writes there meanwhile ([`crate::cloudfront::holds`]).
    pub awaits_deployment: Vec<String>,
    /// The active key's scheduled rotation, for the account's timeline.
    pub rotation: Option<rotation::PlannedRotation>,
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
            awaits_deployment: Vec::new(),
            rotation: None,
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

/// Decides the next steps.
pub fn plan(
    subject: &Subject,
    spec: &SigningKeyGroupSpec,
    observed: &Observed,
    now: Timestamp,
    pacing: &Pacing,
) -> Plan {
    let propagation_poll = pacing.propagation_poll;
    let mut plan = Plan::new(observed.keyring());
    let admission = admission(spec, observed);
    let grants = match (&admission, &observed.account) {
        (Admission::Admitted(grants), _) => grants.clone(),
        (_, Some(account)) => Grants::withdrawn(&spec.account_ref.name, account),
        (_, None) => Grants::none(&spec.account_ref.name),
    };
    let reachable = reaches_cloudfront(&admission, observed);
    if let Some((reason, message)) = claim::not_ours(subject, observed) {
        // Keys under this identity that are another tenant's or another cluster's: nothing of
        // them is used, wound down or written here. Deleting lets the object go and keeps the
        // keyring, which the account then lists as unclaimed.
        plan.keyring = Keyring::default();
        if subject.deleting {
            if subject.has_finalizer {
                plan.steps.push(Step::RemoveFinalizer);
            }
            return plan;
        }
        plan.find(reasons::READY, reason, message);
        plan.settings = settings(spec, subject, None).ok();
        return plan;
    }
    if subject.deleting {
        if !subject.has_finalizer {
            return plan;
        }
        if reachable {
            cleanup::plan_cleanup(
                &mut plan,
                subject,
                spec,
                observed,
                &grants,
                now,
                propagation_poll,
            );
        } else if observed.keyring.is_none() {
            // Nothing was ever created in CloudFront for this object: let it go.
            plan.steps.push(Step::ReleaseSecrets {
                delete: spec.effective_deletion_policy() == DeletionPolicy::Delete,
            });
            plan.steps.push(Step::RemoveFinalizer);
        } else if let Some((reason, message)) = refusal(&admission) {
            plan.find(reasons::READY, reason, message);
        }
        return plan;
    }
    let recorded = observed.keyring.as_ref().map(|k| &k.keyring);
    let mut settings = match settings(spec, subject, recorded) {
        Ok(s) => s,
        Err(e) => {
            plan.find(reasons::READY, reasons::INVALID_SPEC, e.to_string());
            return plan;
        }
    };
    settings.raise_to_floor(pacing.min_rotation_interval);
    if let Some((reason, message)) = refusal(&admission) {
        plan.find(reasons::READY, reason, message);
        if !reachable {
            plan.settings = Some(settings);
            return plan;
        }
    }
    // No name recorded (a lost keyring): the group found under this object's marker keeps
    // the name it has (observe also looks under the pre-0.2 default).
    if spec.key_group.name.is_none()
        && recorded.is_none_or(|k| k.key_group_name.is_none())
        && let Some(group) = observed.key_group.owned()
    {
        settings.key_group_name = group.value.config.name.clone();
    }
    if let Some((reason, message)) =
        grants::creation_refusal(&admission, observed, &settings, &subject.namespace)
    {
        plan.find(reasons::READY, reason, message);
        plan.settings = Some(settings);
        return plan;
    }
    if !subject.has_finalizer {
        plan.steps.push(Step::AddFinalizer);
    }
    plan.keyring.key_group_name = Some(settings.key_group_name.clone());
    if !observed.namespace.uid.is_empty() {
        plan.keyring.made_for = Some(MadeFor {
            namespace_uid: observed.namespace.uid.clone(),
            object_uid: subject.uid.clone(),
        });
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
    if let KeyGroupState::Taken(group) = &observed.key_group {
        key_group::plan_adoption(&mut plan, subject, &settings, observed, &grants, group);
        plan.settings = Some(settings);
        return plan;
    }
    if settings.adopt
        && observed.key_group == KeyGroupState::Missing
        && plan.keyring.adoption.is_none()
        && reachable
    {
        key_group::await_group_to_adopt(&mut plan, &settings, &grants, now);
        plan.settings = Some(settings);
        return plan;
    }
    let admitted = matches!(admission, Admission::Admitted(_));
    plan_lifecycle(
        &mut plan,
        subject,
        &settings,
        observed,
        &Access {
            grants: &grants,
            admitted,
        },
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
    access: &Access<'_>,
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
    keys::take_annotations_as_handled_when_rebuilding(plan, subject, observed);
    keys::adopt_active_key_from_app_secret(plan, subject, observed, now);
    keys::record_found_public_keys(plan, subject, observed);
    keys::record_unaccounted_keys_as_retiring(plan, subject, observed, &observed_items, now);
    adopted_keys::record_adopted_keys_when_rebuilding(plan, observed, &observed_items);
    keys::forget_deleted_keys(plan, observed);
    keys::record_activation(plan, observed, now);
    revocation::handle_revoke_request(plan, subject, now);

    let grace = settings.grace();
    let leaving = |r: &KeyRecord| leave_time(r, grace).is_some_and(|t| t <= now);
    let mut desired: Vec<String> = plan
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
    desired.extend(adopted_keys::adopted_keys_to_keep(
        plan,
        settings,
        &observed_items,
        now,
    ));
    adopted_keys::release_adopted_keys(plan, settings, observed, &observed_items);

    let frozen = group.is_some_and(|g| {
        foreign_trust::frozen(plan, subject, observed, access.grants, &g.value.id)
    });
    let may_publish = access.admitted && !frozen;

    rotation::place_rotation(plan, settings, &observed.rotations, now, poll);
    // Rotation: a new key when there is none, when the active one is due, revoked or a
    // rotation was requested, and only if the group has room (I6).
    let stage = if may_publish {
        rotation::plan_rotation(plan, subject, settings, desired.len(), now, poll)
    } else {
        None
    };

    // Create public keys of Staged keys that a listing confirmed are not in CloudFront yet.
    if observed.listed_public_keys.is_some() && may_publish {
        let slot = rotation::publish_slot(&plan.keyring, settings);
        for r in &plan.keyring.keys {
            if r.state == KeyState::Staged && r.public_key_id.is_none() {
                plan.steps.push(Step::CreatePublicKey {
                    serial: r.serial,
                    slot,
                });
            }
        }
    }

    key_group::plan_key_group(plan, subject, settings, observed, &desired);

    // Public keys no longer in the group (retired, revoked, orphaned): delete them.
    for id in keys::public_keys_to_delete(plan, subject, observed, &observed_items, &desired) {
        plan.steps.push(Step::DeletePublicKey { id });
    }

    let kg_id = group.map(|g| g.value.id.clone());
    let activation = if may_publish {
        keys::plan_activation(
            plan,
            settings,
            observed,
            &observed_items,
            kg_id.as_deref(),
            now,
            poll,
        )
    } else {
        None
    };
    let active_serial = activation.or_else(|| plan.keyring.active().map(|a| a.serial));
    // Private key material goes only into a namespace the account admits, whatever the
    // keyring says: winding down never writes the app Secret.
    if let Some(serial) = active_serial.filter(|_| access.admitted) {
        let in_sync = activation.is_none()
            && plan.keyring.record(serial).is_some_and(|r| {
                app_secret::app_secret_matches(&observed.app_secret, r, settings, &subject.owner)
            });
        if !in_sync {
            plan.steps.push(Step::WriteAppSecret { serial });
        }
    }
    foreign_trust::report_unread_trusting(plan, subject, observed);
    revocation::report_revoked_still_trusted(plan, observed, &observed_items);
    let signing_key_in_place =
        active_serial.is_some() && matches!(observed.app_secret, AppSecret::Owned(_));
    if let Some(kg_id) = kg_id.as_deref().filter(|_| access.admitted) {
        id_config_map::plan_id_config_map(plan, subject, settings, observed, kg_id);
    }
    if let Some(kg_id) = kg_id {
        distributions::plan_distributions(
            plan,
            subject,
            settings,
            observed,
            access.grants,
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
        .is_none_or(|k| k.keyring != plan.keyring);
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
