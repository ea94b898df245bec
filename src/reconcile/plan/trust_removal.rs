//! Trust another writer removed: a selected behavior keyfront saw trusting the key group is
//! found without it, because Terraform, ACK or a person in the console wrote the
//! distribution's config from a copy that lacks the group. keyfront says so (a condition, and
//! its Warning Event) and, as the entry's `onTrustRemoved` says, attaches it again after a
//! pause that doubles with each removal in a row, or leaves it to a person. It never fights
//! the other writer in a tight loop.

use std::time::Duration;

use jiff::Timestamp;

use super::{Plan, after};
use crate::api::{DistributionSpec, TrustRemovedPolicy};
use crate::cloudfront::{BehaviorSelector, Distribution};
use crate::reconcile::keyring::TrustRemoval;
use crate::reconcile::reasons;

/// The pause before the first re-attach.
pub const FIRST_PAUSE: Duration = Duration::from_secs(30);
/// The longest pause; trust that holds this long after a removal ends the series.
const LONGEST_PAUSE: Duration = Duration::from_secs(3600);

/// The pause before re-attaching after the `count`th removal in a row.
fn pause(count: u32) -> Duration {
    let doublings = count.saturating_sub(1).min(16);
    FIRST_PAUSE
        .saturating_mul(1 << doublings)
        .min(LONGEST_PAUSE)
}

/// Records which selected behaviors trust the group, notices the ones another writer took it
/// from, and says whether keyfront may attach it to the selected behaviors now. Only for an
/// entry keyfront already attached (its keyring has the attachment).
pub(super) fn may_attach(
    plan: &mut Plan,
    spec: &DistributionSpec,
    dist: &Distribution,
    selected: &[BehaviorSelector],
    kg_id: &str,
    now: Timestamp,
) -> bool {
    let Some(attachment) = plan.keyring.attachments.get_mut(&spec.id) else {
        return true;
    };
    let trusting = |selector: &BehaviorSelector| {
        dist.behavior(selector)
            .map(|b| b.trusted_key_groups.iter().any(|g| g == kg_id))
    };
    attachment
        .trusted_behaviors
        .retain(|b| selected.contains(b));
    let mut removed = Vec::new();
    let mut missing = Vec::new();
    for selector in selected {
        match trusting(selector) {
            Some(true) => {
                attachment.trusted_behaviors.insert(selector.clone());
            }
            Some(false) => {
                if attachment.trusted_behaviors.remove(selector) {
                    removed.push(selector.to_string());
                }
                missing.push(selector.to_string());
            }
            None => {}
        }
    }
    if !removed.is_empty() {
        let count = attachment
            .trust_removed
            .filter(|r| now < after(r.at, pause(r.count) + LONGEST_PAUSE))
            .map_or(1, |r| r.count.saturating_add(1));
        attachment.trust_removed = Some(TrustRemoval { at: now, count });
    }
    let Some(removal) = attachment.trust_removed else {
        return true;
    };
    if missing.is_empty() {
        // Trust holds again; a quiet hour ends the series.
        if now >= after(removal.at, LONGEST_PAUSE) {
            attachment.trust_removed = None;
        }
        return true;
    }
    let what = format!(
        "another writer (Terraform, ACK, the console?) removed key group {kg_id} from the {} of distribution {}, where keyfront had attached it",
        missing.join(" and the "),
        spec.id
    );
    let owned_elsewhere = "if that tool owns the distribution, attach the group there and set trust: External on this entry";
    match spec.on_trust_removed {
        TrustRemovedPolicy::Leave => {
            plan.find(
                reasons::DISTRIBUTIONS_READY,
                reasons::TRUST_REMOVED_LEFT,
                format!(
                    "{what}; keyfront leaves it so (onTrustRemoved: Leave): attach it again, or set onTrustRemoved: Reattach; {owned_elsewhere}"
                ),
            );
            false
        }
        TrustRemovedPolicy::Reattach => {
            let resume = after(removal.at, pause(removal.count));
            if now >= resume {
                return true;
            }
            plan.wake(resume);
            plan.wait(
                reasons::DISTRIBUTIONS_READY,
                reasons::TRUST_REMOVED,
                format!(
                    "{what}; keyfront attaches it again at {resume} ({} removal(s) in a row: the pause doubles with each, up to 1h); {owned_elsewhere}, or set onTrustRemoved: Leave",
                    removal.count
                ),
            );
            false
        }
    }
}
