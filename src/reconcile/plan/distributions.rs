//! Distributions: attach the key group to the selected cache behaviors, detach it from the
//! rest, never leaving a behavior public unless that was allowed.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

use super::{Plan, Settings, Step, after, grants, trust_removal};
use crate::api::{DistributionSpec, DistributionTrust, SigningKeyGroupSpec};
use crate::cloudfront::trust::MAX_KEY_GROUPS_PER_BEHAVIOR;
use crate::cloudfront::{BehaviorSelector, BehaviorTrust, DeploymentStatus, Distribution};
use crate::reconcile::keyring::Attachment;
use crate::reconcile::observed::{AppSecret, DistributionState, Observed, Subject};
use crate::reconcile::reasons;
use crate::tenancy::{Admission, Grants};

/// Whether a distribution trusts the key group in its configuration or, until a detach has
/// deployed, still at the edge: either way URLs for it must verify with the signing key.
pub(super) fn trusts(distribution: &Distribution, kg_id: &str) -> bool {
    distribution.configured_to_trust(kg_id)
        || distribution
            .active_trusted_key_groups
            .iter()
            .any(|g| g.key_group_id == kg_id)
}

/// The cache behaviors a distribution entry selects.
pub(crate) fn selectors(spec: &DistributionSpec) -> Vec<BehaviorSelector> {
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

/// Whether detaching may leave a behavior with no trusted key group (public), and if not,
/// whose rule says no. Both the tenant's opt-in and the account's grant must say yes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PublicDetach {
    Allowed,
    /// The spec (or keyfront's record of it) did not opt in.
    NotOptedIn,
    /// The tenant opted in, but the account does not honour that for this distribution.
    NotHonoured,
}

impl PublicDetach {
    /// Combines the tenant's opt-in with the account's word for that behavior.
    pub(super) fn decide(opted_in: bool, admin_allows: bool) -> Self {
        match (opted_in, admin_allows) {
            (false, _) => Self::NotOptedIn,
            (true, false) => Self::NotHonoured,
            (true, true) => Self::Allowed,
        }
    }
}

/// Removes `kg_id` from a behavior's trust, unless that would make it public without both
/// the opt-in and the account's leave. Returns the new trust, or `Err` with the finding message.
pub(super) fn detach(
    trust: &BehaviorTrust,
    kg_id: &str,
    public: PublicDetach,
    distribution_id: &str,
) -> Result<BehaviorTrust, String> {
    let remaining: Vec<String> = trust
        .trusted_key_groups
        .iter()
        .filter(|g| *g != kg_id)
        .cloned()
        .collect();
    if remaining.is_empty() {
        let fix = match public {
            PublicDetach::Allowed => None,
            PublicDetach::NotOptedIn => Some(
                "set allowPublicOnDetach: true on that distribution first, or trust another key group there",
            ),
            PublicDetach::NotHonoured => Some(
                "its CloudFrontAccount does not honour allowPublicOnDetach for that distribution; trust another key group there, or ask a cluster admin",
            ),
        };
        if let Some(fix) = fix {
            return Err(format!(
                "removing key group {kg_id} from the {} of distribution {distribution_id} would make it public; keeping it ({fix})",
                trust.behavior
            ));
        }
    }
    Ok(BehaviorTrust {
        behavior: trust.behavior.clone(),
        trusted_key_groups: remaining,
    })
}

/// Detaches the key group from every behavior of `dist` that trusts it and is not in `keep`;
/// `opted_in` is the tenant's `allowPublicOnDetach`, the account decides per behavior.
pub(super) fn detach_all_but(
    plan: &mut Plan,
    dist: &Distribution,
    kg_id: &str,
    keep: &[BehaviorSelector],
    opted_in: bool,
    grants: &Grants,
) -> Vec<BehaviorTrust> {
    let mut changes = Vec::new();
    for trust in &dist.behaviors {
        if keep.contains(&trust.behavior) || !trust.trusted_key_groups.iter().any(|g| g == kg_id) {
            continue;
        }
        let public =
            PublicDetach::decide(opted_in, grants.public_on_detach(&dist.id, &trust.behavior));
        match detach(trust, kg_id, public, &dist.id) {
            Ok(change) => changes.push(change),
            Err(message) => plan.find(
                reasons::DISTRIBUTIONS_READY,
                reasons::DETACH_WOULD_MAKE_PUBLIC,
                message,
            ),
        }
    }
    changes
}

/// How often an entry with `trust: External` is looked at while its owner has not attached.
const EXTERNAL_ATTACHMENT_POLL: Duration = Duration::from_secs(60);

/// An entry whose owner attaches the key group (`trust: External`): keyfront never writes the
/// distribution and hands over any attachment it made there earlier; it says which selected
/// behaviors do not trust the group yet, and waits while the distribution deploys (activation
/// waits for it like for any distribution that trusts the group). Returns whether it waits for
/// the owner.
fn plan_external(
    plan: &mut Plan,
    spec: &DistributionSpec,
    dist: &Distribution,
    selected: &[BehaviorSelector],
    kg_id: &str,
    deploying: &mut BTreeSet<String>,
) -> bool {
    plan.keyring.attachments.remove(&spec.id);
    let missing: Vec<String> = selected
        .iter()
        .filter(|selector| {
            dist.behavior(selector)
                .is_some_and(|t| !t.trusted_key_groups.iter().any(|g| g == kg_id))
        })
        .map(ToString::to_string)
        .collect();
    for selector in selected {
        if dist.behavior(selector).is_none() {
            plan.find(
                reasons::DISTRIBUTIONS_READY,
                reasons::BEHAVIOR_NOT_FOUND,
                format!("distribution {} has no {selector}", spec.id),
            );
        }
    }
    let awaiting = !missing.is_empty();
    if awaiting {
        plan.wait(
            reasons::DISTRIBUTIONS_READY,
            reasons::AWAITING_EXTERNAL_ATTACHMENT,
            format!(
                "the {} of distribution {} do not trust key group {kg_id} yet: its owner attaches it (trust: External; keyfront never writes this distribution). The ID stays the same across rotations",
                missing.join(" and the "),
                spec.id
            ),
        );
    } else if dist.status == DeploymentStatus::InProgress {
        deploying.insert(spec.id.clone());
    }
    awaiting
}

/// Attach the key group to the selected behaviors the account grants, detach it from the
/// rest: behaviors no longer selected or granted, and distributions no longer listed or
/// granted. A distribution that is not granted is never written to unless keyfront's own
/// record says it attached there (then only to detach).
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_distributions(
    plan: &mut Plan,
    subject: &Subject,
    settings: &Settings,
    observed: &Observed,
    grants: &Grants,
    kg_id: &str,
    signing_key_in_place: bool,
    now: Timestamp,
    poll: Duration,
) {
    let mut pending = BTreeSet::new();
    let mut deploying = BTreeSet::new();
    let mut granted: BTreeSet<&String> = BTreeSet::new();
    for spec in &settings.distributions {
        let Some(access) = grants.distribution(&spec.id) else {
            let what = if plan.keyring.attachments.contains_key(&spec.id) {
                "keyfront detaches the key group from it, except where that would make a behavior public"
            } else {
                "keyfront does not touch it"
            };
            plan.find(
                reasons::DISTRIBUTIONS_READY,
                reasons::DISTRIBUTION_NOT_ALLOWED,
                format!(
                    "distribution {} is not granted to namespace {:?} by CloudFrontAccount {:?}; {what}",
                    spec.id, subject.namespace, grants.account
                ),
            );
            continue;
        };
        granted.insert(&spec.id);
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
        let mut selected = Vec::new();
        for selector in selectors(spec) {
            if access.behavior_allowed(&selector) {
                selected.push(selector);
            } else {
                plan.find(
                    reasons::DISTRIBUTIONS_READY,
                    reasons::BEHAVIOR_NOT_ALLOWED,
                    format!(
                        "the {selector} of distribution {} is not granted to namespace {:?} by CloudFrontAccount {:?}; keyfront does not attach there",
                        spec.id, subject.namespace, grants.account
                    ),
                );
            }
        }
        if spec.trust == DistributionTrust::External {
            if plan_external(plan, spec, &dist.value, &selected, kg_id, &mut deploying) {
                // Its owner may attach at any time; look again now and then (not at the
                // propagation pace: it may be days).
                plan.wake(after(now, poll.max(EXTERNAL_ATTACHMENT_POLL)));
            }
            continue;
        }
        let may_attach = trust_removal::may_attach(plan, spec, &dist.value, &selected, kg_id, now);
        let mut changes = Vec::new();
        for selector in selected.iter().filter(|_| may_attach) {
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
                pending.insert(spec.id.clone());
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
        changes.extend(detach_all_but(
            plan,
            &dist.value,
            kg_id,
            &selected,
            spec.allow_public_on_detach,
            grants,
        ));
        if !changes.is_empty() || dist.value.configured_to_trust(kg_id) {
            plan.keyring
                .attachments
                .entry(spec.id.clone())
                .or_default()
                .allow_public_on_detach = spec.allow_public_on_detach;
        }
        if !changes.is_empty() {
            pending.insert(spec.id.clone());
            plan.steps.push(Step::SetTrust {
                distribution_id: spec.id.clone(),
                behaviors: changes,
            });
        } else if dist.value.status == DeploymentStatus::InProgress {
            deploying.insert(spec.id.clone());
        }
    }
    // Distributions keyfront attached to that the spec no longer lists or the account no
    // longer grants: detach, still under the public rule, now with the grant as it is.
    let forgotten: Vec<(String, Attachment)> = plan
        .keyring
        .attachments
        .iter()
        .filter(|(id, _)| !granted.contains(id))
        .map(|(id, a)| (id.clone(), a.clone()))
        .collect();
    for (id, attachment) in forgotten {
        let Some(DistributionState::Found(dist)) = observed.distributions.get(&id) else {
            plan.keyring.attachments.remove(&id);
            continue;
        };
        let changes = detach_all_but(
            plan,
            &dist.value,
            kg_id,
            &[],
            attachment.allow_public_on_detach,
            grants,
        );
        // Remembered until the edge, too, has stopped trusting the group.
        if !trusts(&dist.value, kg_id) {
            plan.keyring.attachments.remove(&id);
        } else if !changes.is_empty() {
            plan.steps.push(Step::SetTrust {
                distribution_id: id.clone(),
                behaviors: changes,
            });
        }
    }
    if !pending.is_empty() {
        plan.wait(
            reasons::DISTRIBUTIONS_READY,
            reasons::PROGRESSING,
            format!(
                "attaching the key group to distributions {}",
                Vec::from_iter(pending).join(", ")
            ),
        );
    } else if !deploying.is_empty() {
        plan.wake(after(now, poll));
        plan.wait(
            reasons::DISTRIBUTIONS_READY,
            reasons::DEPLOYING,
            format!(
                "distributions {} are deploying",
                Vec::from_iter(deploying).join(", ")
            ),
        );
    }
}

/// The distributions the object is on its way to ([`crate::cloudfront::arrivals`]): granted to
/// it, attached by keyfront, not trusting its key group yet, and waiting only for the object's
/// own key group or signing Secret, or attached in this very pass (the executor says it has
/// arrived as it sends the change). None while the plan is blocked or the object is being
/// deleted.
pub(crate) fn heading_to(
    plan: &Plan,
    subject: &Subject,
    spec: &SigningKeyGroupSpec,
    observed: &Observed,
) -> Vec<String> {
    let Admission::Admitted(grants) = grants::admission(spec, observed) else {
        return Vec::new();
    };
    let kg_id = plan.keyring.key_group_id.as_deref();
    let signing =
        plan.keyring.active().is_some() && matches!(observed.app_secret, AppSecret::Owned(_));
    let done = kg_id.is_some() && signing;
    if subject.deleting || done || plan.findings.iter().any(|f| f.blocking) {
        return Vec::new();
    }
    spec.distributions
        .iter()
        .filter(|d| d.trust != DistributionTrust::External && grants.distribution(&d.id).is_some())
        .filter(|d| match observed.distributions.get(&d.id) {
            Some(DistributionState::Found(found)) => {
                !kg_id.is_some_and(|g| found.value.configured_to_trust(g))
            }
            _ => false,
        })
        .map(|d| d.id.clone())
        .collect()
}
