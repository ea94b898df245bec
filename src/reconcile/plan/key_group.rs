//! The key group: it holds exactly the keys that may be signed with or still verify URLs —
//! and, for a group keyfront adopted, the keys it found there until they may leave.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

use super::{Notice, Plan, Settings, Step, after};
use crate::cloudfront::{KeyGroup, KeyGroupConfig, Tagged};
use crate::reconcile::keyring::Adoption;
use crate::reconcile::names;
use crate::reconcile::observed::{DistributionState, KeyGroupState, Observed, Subject};
use crate::reconcile::reasons;
use crate::tenancy::Grants;

/// CloudFront's limit on a key group comment.
const MAX_COMMENT: usize = 128;

/// The comment keyfront gives its group: its marker, then the spec's text, else the text an
/// adopted group had, cut to fit.
fn comment(subject: &Subject, settings: &Settings, plan: &Plan) -> String {
    let text = settings.key_group_comment.clone().or_else(|| {
        plan.keyring
            .adoption
            .as_ref()
            .and_then(|a| a.comment.clone())
    });
    let room = MAX_COMMENT
        .saturating_sub(names::comment_marker(&subject.owner).len())
        .saturating_sub(1);
    let text = text.map(|t| t.chars().take(room).collect::<String>());
    names::owned_comment(&subject.owner, text.as_deref())
}

/// How often an object asked to adopt a group that does not exist yet looks for it again:
/// Terraform (or whoever makes it) may be applied at the same time as the object.
const ADOPTION_POLL: Duration = Duration::from_secs(30);

/// Adoption was asked for and there is no group of that name: say so, and look again soon.
pub(super) fn await_group_to_adopt(
    plan: &mut Plan,
    settings: &Settings,
    grants: &Grants,
    now: Timestamp,
) {
    plan.steps.clear();
    plan.find(
        reasons::READY,
        reasons::KEY_GROUP_NOT_FOUND,
        format!(
            "spec.keyGroup.adopt: no key group named {:?} exists in account {:?} to adopt; keyfront looks again every {}s",
            settings.key_group_name,
            grants.account,
            ADOPTION_POLL.as_secs()
        ),
    );
    plan.wake(after(now, ADOPTION_POLL));
}

/// A key group with the wanted name that keyfront did not create: refused, unless the spec
/// asks to adopt it and adopting gives this namespace no reach it does not already have.
/// Adopting records the keys found (the keyring is saved first, so a crash never leaves a
/// marked group whose keys nobody accounts for), then marks the group with keyfront's owner
/// token, keeping its keys and its ID, so no distribution changes.
pub(super) fn plan_adoption(
    plan: &mut Plan,
    subject: &Subject,
    settings: &Settings,
    observed: &Observed,
    grants: &Grants,
    group: &Tagged<KeyGroup>,
) {
    plan.steps.clear();
    let id = &group.value.id;
    let name = &settings.key_group_name;
    let by_keyfront = group
        .value
        .config
        .comment
        .as_deref()
        .is_some_and(|c| c.starts_with("keyfront:"));
    if !settings.adopt || by_keyfront {
        let why = if by_keyfront {
            "another SigningKeyGroup owns it (keyfront never adopts those)"
        } else {
            "keyfront did not create it; set spec.keyGroup.adopt: true to take it over, or choose another spec.keyGroup.name"
        };
        plan.find(
            reasons::KEY_GROUP_READY,
            reasons::KEY_GROUP_NAME_TAKEN,
            format!("CloudFront key group {name:?} ({id}) exists and is not owned by this SigningKeyGroup: {why}"),
        );
        return;
    }
    let Some(trusting) = &observed.adoption_trust else {
        plan.wait(
            reasons::KEY_GROUP_READY,
            reasons::PROGRESSING,
            format!(
                "looking up the distributions that trust key group {name:?} before adopting it"
            ),
        );
        return;
    };
    match adoption_refusal(settings, observed, grants, id, trusting) {
        Some(Refusal::NotGranted(what)) => {
            plan.find(
                reasons::READY,
                reasons::ADOPTION_NOT_ALLOWED,
                format!(
                    "adopting key group {name:?} ({id}) would let this namespace sign for {what}, which CloudFrontAccount {:?} does not grant it; keyfront leaves the group alone",
                    grants.account
                ),
            );
            return;
        }
        Some(Refusal::NotDeclared(what)) => {
            plan.find(
                reasons::READY,
                reasons::ADOPTED_TRUST_NOT_DECLARED,
                format!(
                    "key group {name:?} ({id}) is trusted by {what}; list it in spec.distributions before adopting, so keyfront waits for it when rotating and keeps it attached"
                ),
            );
            return;
        }
        None => {}
    }
    if !subject.has_finalizer {
        plan.steps.push(Step::AddFinalizer);
    }
    plan.keyring.key_group_id = Some(id.clone());
    plan.keyring.adoption = Some(Adoption {
        comment: group.value.config.comment.clone().filter(|c| !c.is_empty()),
        keys: group.value.config.items.clone(),
    });
    plan.steps.push(Step::SaveKeyring { stage: None });
    plan.steps.push(Step::UpdateKeyGroup {
        id: id.clone(),
        config: KeyGroupConfig {
            name: name.clone(),
            comment: Some(comment(subject, settings, plan)),
            items: group.value.config.items.clone(),
        },
        etag: group.etag.clone(),
    });
    plan.notices.push(Notice {
        warning: false,
        reason: reasons::KEY_GROUP_ADOPTED,
        message: format!(
            "adopting key group {name:?} ({id}) with {} key(s) keyfront did not create; they stay trusted until keyfront's own key has been active for spec.keyGroup.retireAdoptedKeysAfter",
            group.value.config.items.len()
        ),
    });
    plan.wait(
        reasons::KEY_GROUP_READY,
        reasons::PROGRESSING,
        format!("adopting key group {name:?} ({id})"),
    );
}

/// Why a group may not be adopted as the spec stands.
enum Refusal {
    /// A distribution or behavior trusting the group that the account does not grant.
    NotGranted(String),
    /// A behavior trusting the group that the spec does not list.
    NotDeclared(String),
}

/// Adopting a group gives whoever holds its keys every behavior that trusts it. So each such
/// behavior must be granted to this namespace (else adoption would reach content the account
/// keeps from it) and listed in the spec (else keyfront would not wait for it to deploy a new
/// key, nor keep it attached).
fn adoption_refusal(
    settings: &Settings,
    observed: &Observed,
    grants: &Grants,
    group_id: &str,
    trusting: &[String],
) -> Option<Refusal> {
    for distribution_id in trusting {
        let Some(access) = grants.distribution(distribution_id) else {
            return Some(Refusal::NotGranted(format!(
                "distribution {distribution_id}"
            )));
        };
        let Some(DistributionState::Found(found)) = observed.distributions.get(distribution_id)
        else {
            continue;
        };
        let declared = settings
            .distributions
            .iter()
            .find(|d| &d.id == distribution_id)
            .map(super::selectors)
            .unwrap_or_default();
        for behavior in found
            .value
            .behaviors
            .iter()
            .filter(|b| b.trusted_key_groups.iter().any(|g| g == group_id))
        {
            let what = format!(
                "the {} of distribution {distribution_id}",
                behavior.behavior
            );
            if !access.behavior_allowed(&behavior.behavior) {
                return Some(Refusal::NotGranted(what));
            }
            if !declared.contains(&behavior.behavior) {
                return Some(Refusal::NotDeclared(what));
            }
        }
    }
    None
}

/// Creates or updates the key group so it holds `desired`, with keyfront's marker.
pub(super) fn plan_key_group(
    plan: &mut Plan,
    subject: &Subject,
    settings: &Settings,
    observed: &Observed,
    desired: &[String],
) {
    let config = KeyGroupConfig {
        name: settings.key_group_name.clone(),
        comment: Some(comment(subject, settings, plan)),
        items: desired.to_vec(),
    };
    let mut group_in_sync = false;
    match (&observed.key_group, desired.is_empty()) {
        (KeyGroupState::Missing, false) => plan.steps.push(Step::CreateKeyGroup { config }),
        (KeyGroupState::Owned(g), false) => {
            let current: BTreeSet<&String> = g.value.config.items.iter().collect();
            let wanted: BTreeSet<&String> = desired.iter().collect();
            if current != wanted
                || g.value.config.comment != config.comment
                || g.value.config.name != config.name
            {
                plan.steps.push(Step::UpdateKeyGroup {
                    id: g.value.id.clone(),
                    config,
                    etag: g.etag.clone(),
                });
            } else {
                group_in_sync = true;
            }
        }
        _ => {}
    }
    if !group_in_sync {
        plan.wait(
            reasons::KEY_GROUP_READY,
            reasons::PROGRESSING,
            format!(
                "key group {:?} is being brought up to date",
                settings.key_group_name
            ),
        );
    }
}
