//! Status (no client required): the object's status as a pure function of the last plan,
//! what was observed and the error, if any. Condition transition times move only when a
//! condition's status changes, so an unchanged world writes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::observed::{DistributionState, Observed, Subject};
use super::plan::{Finding, Plan, next_rotation};
use super::reasons;
use crate::api::{
    DistributionStatus, KeyState, KeyStatus, SigningKeyGroupSpec, SigningKeyGroupStatus,
};
use crate::cloudfront::DeploymentStatus;
use jiff::Timestamp;

/// What the status is computed from.
pub struct StatusInputs<'a> {
    pub subject: &'a Subject,
    pub spec: &'a SigningKeyGroupSpec,
    pub plan: &'a Plan,
    pub observed: Option<&'a Observed>,
    /// The error that ended the reconcile: its category and a message safe to show.
    pub error: Option<(&'a str, String)>,
    pub previous: Option<&'a SigningKeyGroupStatus>,
    pub now: Timestamp,
}

/// Whether writing `new` changes what the API server holds as `current`. Compared as the
/// JSON the server stores, not as values: a `Time` keeps whole seconds only, so a status made
/// with a sub-second clock never equals the one read back, and comparing values would rewrite
/// it on every pass (and on a server that records no-op writes, wake the object again).
pub fn changes_stored<T: serde::Serialize>(current: Option<&T>, new: &T) -> bool {
    let Some(current) = current else {
        return true;
    };
    match (serde_json::to_value(current), serde_json::to_value(new)) {
        (Ok(current), Ok(new)) => current != new,
        // Cannot tell: write, as before.
        _ => true,
    }
}

fn condition(
    inputs: &StatusInputs<'_>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last_transition_time = inputs
        .previous
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(inputs.now));
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: inputs.subject.generation,
        last_transition_time,
    }
}

fn first<'a>(plan: &'a Plan, type_: &str) -> Option<&'a Finding> {
    plan.findings
        .iter()
        .filter(|f| f.condition == type_)
        .min_by_key(|f| !f.blocking)
}

/// Computes the whole status.
pub fn status(inputs: &StatusInputs<'_>) -> SigningKeyGroupStatus {
    let plan = inputs.plan;
    let keyring = &plan.keyring;
    let active = keyring.active();
    let interval = plan.settings.as_ref().map(|s| s.interval);
    let grace = plan.settings.as_ref().map(|s| s.grace());
    let kg_id = keyring.key_group_id.clone();

    let keys = keyring
        .keys
        .iter()
        .map(|r| KeyStatus {
            id: r.public_key_id.clone(),
            name: super::names::public_key_name(&inputs.subject.owner, r.serial),
            fingerprint: r.fingerprint.clone(),
            state: r.state,
            created_at: Time(r.created_at),
            activated_at: r.activated_at.map(Time),
            retire_after: grace
                .and_then(|g| super::plan::leave_time(r, g))
                .filter(|_| r.state == KeyState::Retiring)
                .map(|t| Time(t.max(r.retired_at.unwrap_or(r.created_at)))),
        })
        .collect();

    let distributions: Vec<DistributionStatus> = inputs
        .spec
        .distributions
        .iter()
        .map(|d| {
            let found = inputs
                .observed
                .and_then(|o| match o.distributions.get(&d.id) {
                    Some(DistributionState::Found(f)) => Some(&f.value),
                    _ => None,
                });
            let attached = match (found, &kg_id) {
                (Some(dist), Some(kg)) => super::plan::selectors(d).iter().all(|s| {
                    dist.behavior(s)
                        .is_some_and(|b| b.trusted_key_groups.iter().any(|g| g == kg))
                }),
                _ => false,
            };
            DistributionStatus {
                id: d.id.clone(),
                attached,
                deployed: attached && found.is_some_and(|f| f.status == DeploymentStatus::Deployed),
            }
        })
        .collect();

    let mut conditions = Vec::new();
    let kg = match first(plan, reasons::KEY_GROUP_READY) {
        Some(f) => condition(
            inputs,
            reasons::KEY_GROUP_READY,
            false,
            f.reason,
            f.message.clone(),
        ),
        None if kg_id.is_some() => condition(
            inputs,
            reasons::KEY_GROUP_READY,
            true,
            reasons::KEY_GROUP_IN_SYNC,
            format!("key group holds {} keys", plan.desired_items.len()),
        ),
        None => condition(
            inputs,
            reasons::KEY_GROUP_READY,
            false,
            reasons::PROGRESSING,
            "no key group yet".into(),
        ),
    };
    conditions.push(kg);
    conditions.push(match first(plan, reasons::DISTRIBUTIONS_READY) {
        Some(f) => condition(
            inputs,
            reasons::DISTRIBUTIONS_READY,
            false,
            f.reason,
            f.message.clone(),
        ),
        None if inputs.spec.distributions.is_empty() => condition(
            inputs,
            reasons::DISTRIBUTIONS_READY,
            true,
            reasons::NO_DISTRIBUTIONS,
            "no distributions are listed".into(),
        ),
        // True only for what was seen attached and deployed, never while something upstream
        // (a key group name taken, say) kept keyfront from looking.
        None if distributions.iter().all(|d| d.attached && d.deployed) => condition(
            inputs,
            reasons::DISTRIBUTIONS_READY,
            true,
            reasons::DISTRIBUTIONS_ATTACHED,
            "every listed cache behavior trusts the key group and is deployed".into(),
        ),
        None => condition(
            inputs,
            reasons::DISTRIBUTIONS_READY,
            false,
            reasons::PROGRESSING,
            "not attached yet: the key group and signing key come first".into(),
        ),
    });
    conditions.push(match first(plan, reasons::ROTATING) {
        Some(f) => condition(
            inputs,
            reasons::ROTATING,
            // True while a rotation advances; False when it cannot (KeyGroupFull) and while
            // the next key, deployed everywhere, waits for its time (nothing under way).
            reasons::is_waiting(f.reason)
                && !matches!(f.reason, reasons::IDLE | reasons::NEXT_KEY_READY),
            f.reason,
            f.message.clone(),
        ),
        None => condition(
            inputs,
            reasons::ROTATING,
            false,
            reasons::IDLE,
            "no rotation under way".into(),
        ),
    });
    let blocking = plan.findings.iter().find(|f| f.blocking);
    let ready = if let Some((category, message)) = &inputs.error {
        condition(inputs, reasons::READY, false, category, message.clone())
    } else if inputs.subject.deleting {
        let message = blocking.map_or_else(
            || "cleaning up before deletion".to_owned(),
            |f| f.message.clone(),
        );
        condition(inputs, reasons::READY, false, reasons::DELETING, message)
    } else if let Some(f) = blocking {
        condition(inputs, reasons::READY, false, f.reason, f.message.clone())
    } else if let Some(f) = plan
        .findings
        .iter()
        .find(|f| f.reason == reasons::REVOCATION_IN_PROGRESS)
    {
        // Signing works, but a key someone declared compromised is still trusted.
        condition(inputs, reasons::READY, false, f.reason, f.message.clone())
    } else if let (Some(a), false) = (active, plan.has_steps()) {
        condition(
            inputs,
            reasons::READY,
            true,
            reasons::SIGNING_KEY_ACTIVE,
            format!(
                "Secret {} holds public key {}",
                plan.settings
                    .as_ref()
                    .map(|s| s.secret_name.as_str())
                    .unwrap_or_default(),
                a.public_key_id.as_deref().unwrap_or_default()
            ),
        )
    } else {
        let message = plan.findings.first().map_or_else(
            || "setting up the signing key".to_owned(),
            |f| f.message.clone(),
        );
        condition(inputs, reasons::READY, false, reasons::PROGRESSING, message)
    };
    conditions.extend(gitops_conditions(inputs, &ready));
    conditions.insert(0, ready);

    SigningKeyGroupStatus {
        observed_generation: inputs.subject.generation,
        conditions,
        key_group_id: kg_id,
        key_group_name: plan
            .settings
            .as_ref()
            .map(|s| s.key_group_name.clone())
            .or_else(|| inputs.previous.and_then(|p| p.key_group_name.clone())),
        secret_name: plan
            .settings
            .as_ref()
            .map(|s| s.secret_name.clone())
            .or_else(|| inputs.previous.and_then(|p| p.secret_name.clone())),
        active_key_id: active.and_then(|a| a.public_key_id.clone()),
        keys,
        last_rotation_time: active.and_then(|a| a.activated_at).map(Time),
        next_rotation_time: interval.and_then(|i| next_rotation(keyring, i)).map(Time),
        distributions,
    }
}

/// `Reconciling` and `Stalled`, as kstatus (Flux, kpt, Argo CD health) reads them: Stalled
/// when progress needs a human (the Ready reason says which), Reconciling while keyfront is
/// still working toward the spec (first key, rotation steps, attaching, waiting for a
/// deployment, retrying a passing failure). Both are False otherwise.
fn gitops_conditions(inputs: &StatusInputs<'_>, ready: &Condition) -> [Condition; 2] {
    let plan = inputs.plan;
    let previous_ready_reason = inputs
        .previous
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == reasons::READY))
        .map(|c| c.reason.as_str());
    // A deletion that waits for a person (a detach that would make a behavior public) is
    // stalled too: its Ready reason is Deleting, the finding says what the person must do.
    let blocked_deletion = plan
        .findings
        .iter()
        .find(|f| f.blocking && reasons::needs_a_human(f.reason, None))
        .filter(|_| inputs.subject.deleting && inputs.error.is_none());
    let stalled_on = match blocked_deletion {
        Some(f) => Some((f.reason.to_owned(), f.message.clone())),
        None => (ready.status == "False"
            && !inputs.subject.deleting
            && reasons::needs_a_human(&ready.reason, previous_ready_reason))
        .then(|| (ready.reason.clone(), ready.message.clone())),
    };
    let stalled = stalled_on.is_some();
    let stalled_condition = if let Some((reason, message)) = stalled_on {
        condition(inputs, reasons::STALLED, true, &reason, message)
    } else {
        condition(
            inputs,
            reasons::STALLED,
            false,
            reasons::NOT_STALLED,
            "nothing needs a person".into(),
        )
    };
    // What keyfront waits for or will do by itself (a deployment, a re-attach after its pause)
    // is work in progress: a condition that says so never sits beside "nothing left to do"
    // (tests/it/reconcile/plan.rs checks this for every reason). A rotation that is idle, or
    // whose next key only waits for its time, is not. Warnings that leave signing working
    // (KeyGroupFull, TrustedOutsideGrant) are not either: kstatus reads them as Current.
    let in_flight = plan.findings.iter().find(|f| {
        !f.blocking
            && (reasons::is_waiting(f.reason) || f.reason == reasons::TRUST_REMOVED)
            && !(f.condition == reasons::ROTATING
                && matches!(f.reason, reasons::IDLE | reasons::NEXT_KEY_READY))
    });
    let reconciling = if stalled {
        None
    } else if ready.status == "False" {
        Some((ready.reason.clone(), ready.message.clone()))
    } else if let Some(f) = in_flight {
        Some((f.reason.to_owned(), f.message.clone()))
    } else if plan.has_steps() {
        Some((
            reasons::PROGRESSING.to_owned(),
            "applying changes".to_owned(),
        ))
    } else {
        None
    };
    let reconciling_condition = match reconciling {
        Some((reason, message)) => condition(inputs, reasons::RECONCILING, true, &reason, message),
        None => condition(
            inputs,
            reasons::RECONCILING,
            false,
            reasons::RECONCILED,
            "nothing left to do until the next rotation".into(),
        ),
    };
    [reconciling_condition, stalled_condition]
}
