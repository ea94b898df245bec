//! When a new key is staged: the first key, a revoked key's successor, a requested rotation
//! (no sooner than the operator's floor after the last), or the scheduled one ahead of its
//! time; and what the account must spare for its public key.

use std::time::Duration;

use jiff::Timestamp;

use super::keys::{friendly, leave_time, next_rotation, observed_deployment};
use super::{Notice, Plan, Settings, Stage, before};
use crate::api::{KeyState, MAX_KEYS_PER_GROUP};
use crate::reconcile::capacity::{Slot, steady_need};
use crate::reconcile::keyring::Keyring;
use crate::reconcile::observed::Subject;
use crate::reconcile::reasons;

/// How long before a scheduled rotation the next key is staged, so that CloudFront has
/// deployed it everywhere by the time it is due: the deployment time last observed (a poll
/// when none was), `minPropagationWait`, and one poll for noticing. At most one interval.
pub fn publish_lead(keyring: &Keyring, settings: &Settings, poll: Duration) -> Duration {
    observed_deployment(keyring)
        .unwrap_or(poll)
        .saturating_add(settings.min_propagation_wait)
        .saturating_add(poll)
        .min(settings.interval)
}

/// Why a new key is staged.
enum Cause {
    /// Apps need another key as soon as it is live.
    Now(&'static str),
    /// The scheduled rotation at this time, staged ahead of it.
    Scheduled(Timestamp),
}

/// Decides whether to stage a new key now; records a due-but-blocked rotation as a finding.
/// Scheduled rotations stage their key [`publish_lead`] ahead of `nextRotationTime`.
pub(super) fn plan_rotation(
    plan: &mut Plan,
    subject: &Subject,
    settings: &Settings,
    keys_in_group: usize,
    now: Timestamp,
    poll: Duration,
) -> Option<Stage> {
    let grace = settings.grace();
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
    let stage_at = due_at.map(|t| before(t, publish_lead(&plan.keyring, settings, poll)));
    // A requested rotation is taken no sooner than the floor after the last one took over.
    let request_from = next_rotation(&plan.keyring, settings.rotation_floor);
    let deferred = requested.is_some() && !pending && request_from.is_some_and(|t| t > now);
    let cause = match plan.keyring.active() {
        None => Some(Cause::Now("no key is active yet")),
        Some(a) if a.revoked => Some(Cause::Now("the active key was revoked")),
        Some(_) if requested.is_some() && !deferred => {
            Some(Cause::Now("a rotation was requested by annotation"))
        }
        Some(_) if due_at.is_some_and(|t| t <= now) => {
            Some(Cause::Now("the rotation interval has passed"))
        }
        Some(_) => match (stage_at, due_at) {
            (Some(stage_at), Some(due_at)) if stage_at <= now => Some(Cause::Scheduled(due_at)),
            _ => None,
        },
    };
    if let Some(t) = stage_at.filter(|t| *t > now) {
        plan.wake(t);
    }
    if let (true, None, Some(from)) = (deferred, &cause, request_from) {
        plan.wait(
            reasons::ROTATING,
            reasons::ROTATION_REQUEST_DEFERRED,
            format!(
                "a rotation was requested by annotation; it starts at {from}, once the active key has been active for {} (keyfront's --min-rotation-interval), which bounds what one object spends of the account's calls",
                friendly(settings.rotation_floor)
            ),
        );
        plan.wake(from);
    }
    let cause = cause?;
    let why = match &cause {
        Cause::Now(why) => (*why).to_owned(),
        Cause::Scheduled(at) => format!("the next rotation is due at {at}"),
    };
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
    if keys_in_group >= MAX_KEYS_PER_GROUP
        && plan.keyring.active().is_none()
        && !plan.keyring.adopted_keys().is_empty()
    {
        // Nothing of keyfront's can leave to make room: someone must remove a key.
        plan.find(
            reasons::READY,
            reasons::KEY_GROUP_FULL,
            format!(
                "the adopted key group already holds {MAX_KEYS_PER_GROUP} keys, the most CloudFront allows, so keyfront cannot publish its own; remove one of them from the group (keyfront keeps the others trusted)"
            ),
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
    if let Some(v) = requested.filter(|_| !deferred) {
        plan.keyring.handled_rotate = Some(v);
    }
    if let (Some(asked), Cause::Scheduled(_) | Cause::Now("the rotation interval has passed")) =
        (settings.interval_below_floor, &cause)
    {
        plan.notices.push(Notice {
            warning: true,
            reason: reasons::ROTATION_INTERVAL_RAISED,
            message: format!(
                "rotating every {}, keyfront's --min-rotation-interval, not every {} as spec.rotation.interval says",
                friendly(settings.interval),
                friendly(asked)
            ),
        });
    }
    Some(Stage {
        algorithm: settings.algorithm,
        takes_over_at: match cause {
            Cause::Now(_) => None,
            Cause::Scheduled(at) => Some(at),
        },
    })
}

/// What a Staged key's public key is for, which decides how much of the account it may take
/// ([`crate::reconcile::capacity`]): the object's first key, a revoked key's successor, or a
/// rotation's next key.
pub(super) fn publish_slot(keyring: &Keyring, settings: &Settings) -> Slot {
    if keyring.keys.iter().all(|r| r.public_key_id.is_none()) {
        let grace = settings
            .grace()
            .saturating_add(settings.min_propagation_wait);
        Slot::FirstKey {
            need: steady_need(settings.interval, grace),
            group: !settings.adopt,
        }
    } else if keyring.active().is_some_and(|a| a.revoked) {
        Slot::Revocation
    } else {
        Slot::Rotation
    }
}
