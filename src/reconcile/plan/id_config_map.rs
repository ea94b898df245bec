//! The key group's ID published in a ConfigMap (`spec.keyGroup.idConfigMap`), for the tool
//! that attaches the group (Terraform's `kubernetes_config_map` data source, a GitOps
//! substitution): written when missing or stale, never over a ConfigMap keyfront did not
//! create for this object.

use std::collections::BTreeMap;

use super::{Plan, Settings, Step};
use crate::reconcile::observed::{IdConfigMap, Observed, Subject};
use crate::reconcile::reasons;

/// What the ConfigMap holds: public identifiers only.
pub fn id_config_map_data(key_group_id: &str, key_group_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("keyGroupId".to_owned(), key_group_id.to_owned()),
        ("keyGroupName".to_owned(), key_group_name.to_owned()),
    ])
}

pub(super) fn plan_id_config_map(
    plan: &mut Plan,
    subject: &Subject,
    settings: &Settings,
    observed: &Observed,
    key_group_id: &str,
) {
    let Some(name) = &settings.id_config_map else {
        return;
    };
    let data = id_config_map_data(key_group_id, &settings.key_group_name);
    match &observed.id_config_map {
        IdConfigMap::Foreign => plan.find(
            reasons::KEY_GROUP_READY,
            reasons::CONFIG_MAP_CONFLICT,
            format!(
                "ConfigMap {}/{name} exists and is not managed by this SigningKeyGroup; keyfront does not overwrite it, so the key group ID {key_group_id} is only in status (delete that ConfigMap, or choose another spec.keyGroup.idConfigMap)",
                subject.namespace
            ),
        ),
        IdConfigMap::Owned(found) if *found == data => {}
        IdConfigMap::Owned(_) | IdConfigMap::Missing => plan.steps.push(Step::WriteIdConfigMap {
            name: name.clone(),
            data,
        }),
    }
}
