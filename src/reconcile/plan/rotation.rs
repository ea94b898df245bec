//! When a new key is staged: the first key, a revoked key's successor, a requested rotation
//! (no sooner than the operator's floor after the last), or the scheduled one ahead of its
//! time; and what the account must spare for its public key.

use std::time::Duration;

use jiff::Timestamp;

use super::keys::{
    active_for, after, friendly, leave_time, next_rotation, observed_deployment, signed, took_over,
};
use super::{Notice, Plan, Settings, Stage, before};
use crate::api::{KeyState, MAX_KEYS_PER_GROUP};
use crate::reconcile::capacity::stagger::{self, Shape, Window};
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

/// The active key's scheduled rotation and its window, for the account's timeline
/// ([`stagger`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedRotation {
    pub window: Window,
    /// Placed in this plan (the account must confirm nobody took an overlapping window
    /// meanwhile), rather than kept from before.
    pub placed: bool,
}

/// How long a rotation of this object holds a key beyond its steady need: from
/// [`publish_lead`] before it is due until the old key has left the group and been deleted,
/// its grace after. Each step around a deployment (creating the key and adding it to the
/// group; removing the old one and deleting it) also takes about a poll, counted in.
fn window_shape(keyring: &Keyring, settings: &Settings, poll: Duration) -> Shape {
    let deployment = observed_deployment(keyring).unwrap_or(poll);
    let tail = settings
        .grace()
        .saturating_add(deployment.saturating_mul(2))
        .saturating_add(poll.saturating_mul(2));
    Shape {
        lead: signed(publish_lead(keyring, settings, poll).saturating_add(poll)),
        tail: signed(tail),
    }
}

/// Places the active key's scheduled rotation once, beside the account's other rotations
/// (`others`): at its interval after activation, or earlier where that would overlap one of
/// them, and never sooner than the rotation floor after activation, nor than a whole window
/// after it (its own last rotation's old key is deleted first) ([`stagger::place`]).
pub(super) fn place_rotation(
    plan: &mut Plan,
    settings: &Settings,
    others: &[Window],
    now: Timestamp,
    poll: Duration,
) {
    let shape = window_shape(&plan.keyring, settings, poll);
    let Some(declared) = active_for(&plan.keyring, settings.interval) else {
        return;
    };
    let Some(active) = plan.keyring.active_mut().filter(|a| !a.revoked) else {
        return;
    };
    let placed = active.rotates_early_by.is_none();
    if placed {
        let activated = took_over(active);
        // Not before its own last rotation has let go of its old key, nor before the floor.
        let own = shape
            .lead
            .unsigned_abs()
            .saturating_add(shape.tail.unsigned_abs());
        let earliest = after(activated, settings.rotation_floor.max(own))
            .max(after(now, shape.lead.unsigned_abs()));
        let at = stagger::place(declared, earliest, shape, others);
        active.rotates_early_by = Some(declared.duration_since(at));
    }
    let Some(at) = next_rotation(&plan.keyring, settings.interval) else {
        return;
    };
    plan.rotation = Some(PlannedRotation {
        window: shape.around(at),
        placed,
    });
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
    let request_from = active_for(&plan.keyring, settings.rotation_floor);
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
