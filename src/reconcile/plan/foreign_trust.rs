//! Trust keyfront did not give, or may no longer give: what it means for rotation.
//!
//! - A behavior that trusts the key group without being granted to the namespace (a grant
//!   withdrawn while the detach would make the behavior public, or an attachment made outside
//!   the grant) freezes the group: no new key is published or activated, since it would be
//!   deployed there. An emergency revocation still proceeds.
//! - A distribution that trusts the group from outside the grant is not read (tenancy), so
//!   keyfront cannot wait for it to deploy a new key: that is reported for a person to decide.

use super::Plan;
use crate::reconcile::observed::{DistributionState, Observed, Subject};
use crate::reconcile::reasons;
use crate::tenancy::Grants;

/// The behaviors, among the distributions observed, that trust the key group in their
/// configuration without being granted to the namespace (a grant taken away, a behavior the
/// account never granted): while any is left, the group is frozen.
fn ungranted_trust(observed: &Observed, grants: &Grants, kg_id: &str) -> Vec<String> {
    let mut found = Vec::new();
    for state in observed.distributions.values() {
        let DistributionState::Found(dist) = state else {
            continue;
        };
        let access = grants.distribution(&dist.value.id);
        for trust in &dist.value.behaviors {
            if trust.trusted_key_groups.iter().any(|g| g == kg_id)
                && access
                    .as_ref()
                    .is_none_or(|a| !a.behavior_allowed(&trust.behavior))
            {
                found.push(format!(
                    "the {} of distribution {}",
                    trust.behavior, dist.value.id
                ));
            }
        }
    }
    found
}

/// Whether the group is frozen this pass; says so in `Rotating` when it is.
pub(super) fn frozen(
    plan: &mut Plan,
    subject: &Subject,
    observed: &Observed,
    grants: &Grants,
    kg_id: &str,
) -> bool {
    let ungranted = ungranted_trust(observed, grants, kg_id);
    let revoking = plan.keyring.active().is_some_and(|a| a.revoked);
    if ungranted.is_empty() || revoking {
        return false;
    }
    plan.find(
        reasons::ROTATING,
        reasons::ROTATION_FROZEN,
        format!(
            "no new key is published or activated while {} trusts this key group without being granted to namespace {:?}; keyfront detaches it once that is allowed (or grant it again)",
            ungranted.join(", "),
            subject.namespace
        ),
    );
    true
}

/// Reports the distributions that trust the group and are not granted (so not read).
pub(super) fn report_unread_trusting(plan: &mut Plan, subject: &Subject, observed: &Observed) {
    let unread: Vec<&str> = observed
        .trusting_distributions
        .iter()
        .flatten()
        .filter(|id| !observed.distributions.contains_key(*id))
        .map(String::as_str)
        .collect();
    if !unread.is_empty() {
        plan.wait(
            reasons::DISTRIBUTIONS_READY,
            reasons::TRUSTED_OUTSIDE_GRANT,
            format!(
                "distributions {} trust this key group but are not granted to namespace {:?}, so keyfront does not read them and cannot wait for them to deploy a new key: their viewers may see 403s after a rotation. Ask a cluster admin to grant them, or detach the key group there",
                unread.join(", "),
                subject.namespace
            ),
        );
    }
}
