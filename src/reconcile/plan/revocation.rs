//! Revocation (`keyfront.dev/revoke-key`): the one deliberate exception to I2 and I4. A key a
//! person declared compromised leaves the group as soon as a successor is active, without its
//! grace; until it is gone from the group and from every edge, the object is not `Ready`.

use std::collections::BTreeSet;

use jiff::Timestamp;

use super::{Notice, Plan};
use crate::api::KeyState;
use crate::reconcile::observed::{DistributionState, Observed, Subject};
use crate::reconcile::reasons;

/// Marks the key the annotation names as revoked, once per annotation value.
pub(super) fn handle_revoke_request(plan: &mut Plan, subject: &Subject, now: Timestamp) {
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

/// Revoked keys that the key group or a distribution's edge still trusts, and the
/// distributions whose edge does.
fn revoked_still_trusted(
    plan: &Plan,
    observed: &Observed,
    in_group: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let revoked: Vec<String> = plan
        .keyring
        .keys
        .iter()
        .filter(|r| r.revoked)
        .filter_map(|r| r.public_key_id.clone())
        .collect();
    let at_edge: Vec<(&str, &str)> = observed
        .distributions
        .values()
        .filter_map(|d| match d {
            DistributionState::Found(d) => Some(&d.value),
            DistributionState::NotFound => None,
        })
        .flat_map(|d| {
            d.active_trusted_key_groups
                .iter()
                .flat_map(|g| &g.key_pair_ids)
                .filter(|k| revoked.contains(k))
                .map(|k| (d.id.as_str(), k.as_str()))
        })
        .collect();
    let keys = revoked
        .iter()
        .filter(|id| in_group.contains(*id) || at_edge.iter().any(|(_, k)| k == id))
        .cloned()
        .collect();
    let mut distributions: Vec<String> = at_edge.iter().map(|(d, _)| (*d).to_owned()).collect();
    distributions.dedup();
    (keys, distributions)
}

/// Keeps `Ready` from saying `True` while a revoked key is still trusted anywhere, and holds
/// keyfront's other writes to the distributions still deploying its removal.
pub(super) fn report_revoked_still_trusted(
    plan: &mut Plan,
    observed: &Observed,
    in_group: &BTreeSet<String>,
) {
    let (trusted, deploying) = revoked_still_trusted(plan, observed, in_group);
    plan.awaits_deployment.extend(deploying);
    if !trusted.is_empty() {
        plan.wait(
            reasons::READY,
            reasons::REVOCATION_IN_PROGRESS,
            format!(
                "revoked public keys {} are still trusted: removing them from the key group and waiting for the distributions to deploy that",
                trusted.join(", ")
            ),
        );
    }
}
