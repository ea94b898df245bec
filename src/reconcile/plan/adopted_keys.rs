//! Keys of an adopted key group (`spec.keyGroup.adopt`) that keyfront did not create: which
//! stay trusted, when they leave the group, and what happens to them after.

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::{Notice, Plan, Settings, Step, after};
use crate::reconcile::keyring::Keyring;
use crate::reconcile::observed::Observed;
use crate::reconcile::reasons;

/// A lost keyring and a group keyfront had adopted: the keys in it that are not keyfront's
/// (by name and marker) are the adopted ones, still trusted and never deleted unasked.
pub(super) fn record_adopted_keys_when_rebuilding(
    plan: &mut Plan,
    observed: &Observed,
    in_group: &BTreeSet<String>,
) {
    let (None, Some(listed)) = (&observed.keyring, &observed.listed_public_keys) else {
        return;
    };
    let ours: BTreeSet<&str> = listed.iter().map(|k| k.id.as_str()).collect();
    let foreign: Vec<String> = in_group
        .iter()
        .filter(|id| !ours.contains(id.as_str()))
        .cloned()
        .collect();
    if !foreign.is_empty() {
        plan.keyring.adoption.get_or_insert_default().keys = foreign;
    }
}

/// When the keys of an adopted group may leave it: `retireAdoptedKeysAfter` after keyfront's
/// first own key became active (URLs signed with them before then must keep verifying).
fn adopted_leave_time(keyring: &Keyring, settings: &Settings) -> Option<Timestamp> {
    let first_active = keyring.keys.iter().filter_map(|r| r.activated_at).min()?;
    Some(after(first_active, settings.retire_adopted_keys_after))
}

/// Adopted keys still in the group that stay there for now. One removed from the group by
/// someone else is not put back.
pub(super) fn adopted_keys_to_keep(
    plan: &mut Plan,
    settings: &Settings,
    in_group: &BTreeSet<String>,
    now: Timestamp,
) -> Vec<String> {
    let leave_at = adopted_leave_time(&plan.keyring, settings);
    if plan.keyring.adopted_keys().is_empty() {
        return Vec::new();
    }
    match leave_at {
        Some(t) if t <= now => return Vec::new(),
        Some(t) => plan.wake(t),
        None => {}
    }
    plan.keyring
        .adopted_keys()
        .iter()
        .filter(|id| in_group.contains(*id))
        .cloned()
        .collect()
}

/// Adopted keys out of the group: deleted with `deleteAdoptedKeys` (while CloudFront still
/// has them), otherwise, or once gone, forgotten.
pub(super) fn release_adopted_keys(
    plan: &mut Plan,
    settings: &Settings,
    observed: &Observed,
    in_group: &BTreeSet<String>,
) {
    let Some(adoption) = plan.keyring.adoption.as_mut() else {
        return;
    };
    let mut released = Vec::new();
    let mut deletes = Vec::new();
    adoption.keys.retain(|id| {
        if in_group.contains(id) {
            return true;
        }
        match observed.public_keys_present.get(id) {
            // Not looked up yet (it left the group in this very pass's observation).
            None => true,
            Some(true) if settings.delete_adopted_keys => {
                deletes.push(id.clone());
                true
            }
            Some(_) => {
                released.push(id.clone());
                false
            }
        }
    });
    for id in deletes {
        plan.steps.push(Step::DeletePublicKey { id });
    }
    for id in released {
        plan.notices.push(Notice {
            warning: false,
            reason: reasons::ADOPTED_KEY_RELEASED,
            message: format!(
                "adopted public key {id} has left the key group{}",
                if settings.delete_adopted_keys {
                    " and was deleted"
                } else {
                    "; it stays in CloudFront (spec.keyGroup.deleteAdoptedKeys is off)"
                }
            ),
        });
    }
}
