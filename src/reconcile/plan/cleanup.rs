//! Cleanup: what deletion does, from an invalid spec too, treating "already gone" as done.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

use super::distributions::detach_all_but;
use super::{Plan, Step, after};
use crate::api::{DeletionPolicy, DistributionTrust, SigningKeyGroupSpec};
use crate::reconcile::names;
use crate::reconcile::observed::{DistributionState, Observed, Subject};
use crate::reconcile::reasons;
use crate::tenancy::Grants;

/// Deletion: `Delete` detaches, deletes the key group, then the public keys, then releases
/// the Secrets; `Retain` orphans the Secrets and leaves CloudFront alone. Works from an
/// invalid spec, and treats "already gone" as done.
pub(super) fn plan_cleanup(
    plan: &mut Plan,
    subject: &Subject,
    spec: &SigningKeyGroupSpec,
    observed: &Observed,
    grants: &Grants,
    now: Timestamp,
    poll: Duration,
) {
    if spec.effective_deletion_policy() == DeletionPolicy::Retain {
        plan.steps.push(Step::ReleaseSecrets { delete: false });
        plan.steps.push(Step::RemoveFinalizer);
        return;
    }
    let group = observed.key_group.owned();
    if let Some(g) = group {
        let kg_id = g.value.id.as_str();
        let mut still_trusted = false;
        let mut held_by_owners = Vec::new();
        for (id, state) in &observed.distributions {
            let DistributionState::Found(dist) = state else {
                continue;
            };
            let external = spec
                .distributions
                .iter()
                .any(|d| &d.id == id && d.trust == DistributionTrust::External);
            if external {
                // Never written: its owner detaches, and the group cannot go before that.
                if dist.value.configured_to_trust(kg_id) {
                    held_by_owners.push(id.clone());
                }
                continue;
            }
            let opted_in = spec
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
            still_trusted |= dist.value.configured_to_trust(kg_id);
            let changes = detach_all_but(plan, &dist.value, kg_id, &[], opted_in, grants);
            if !changes.is_empty() {
                plan.steps.push(Step::SetTrust {
                    distribution_id: id.clone(),
                    behaviors: changes,
                });
            }
        }
        if !held_by_owners.is_empty() {
            plan.wake(after(now, poll));
            plan.wait(
                reasons::READY,
                reasons::DELETING,
                format!(
                    "distributions {} still trust key group {kg_id}, and their owner attaches it (trust: External): remove it there (for example from Terraform's trusted_key_groups) and keyfront deletes the group",
                    held_by_owners.join(", ")
                ),
            );
            return;
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
                .filter(|k| names::serial_of_public_key(&subject.owner, &k.name).is_some())
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
