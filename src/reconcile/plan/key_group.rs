//! The key group: it holds exactly the keys that may be signed with or still verify URLs.

use std::collections::BTreeSet;

use super::{Plan, Settings, Step};
use crate::cloudfront::KeyGroupConfig;
use crate::reconcile::names;
use crate::reconcile::observed::{KeyGroupState, Observed, Subject};
use crate::reconcile::reasons;

/// Creates or updates the key group so it holds `desired`, with keyfront's marker.
pub(super) fn plan_key_group(
    plan: &mut Plan,
    subject: &Subject,
    settings: &Settings,
    observed: &Observed,
    desired: &[String],
) {
    // The key group holds exactly the keys that may be signed with or still verify URLs.
    let comment = names::owned_comment(&subject.owner, settings.key_group_comment.as_deref());
    let config = KeyGroupConfig {
        name: settings.key_group_name.clone(),
        comment: Some(comment),
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
