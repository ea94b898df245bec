//! Report (client required): the object's status, written only when it changed, and one
//! Warning Event for each condition that newly fails for a reason someone must act on.

use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;

use super::observed::{self, Subject};
use super::{Context, Error, plan, reasons, status};
use crate::api::{SigningKeyGroup, SigningKeyGroupStatus};

/// Writes the status if it changed, and announces each newly failing condition once.
pub(super) async fn finish<A>(
    ctx: &Context<A>,
    object: &SigningKeyGroup,
    subject: &Subject,
    plan: &plan::Plan,
    observed: Option<&observed::Observed>,
    error: Option<&Error>,
    announced: &mut Vec<String>,
) {
    if subject.deleting && !subject.has_finalizer {
        return;
    }
    let mut plan = plan.clone();
    if observed.is_none() {
        // The observation failed: keep what the object last said about its keys.
        if let Some(previous) = &object.status {
            plan.keyring.key_group_id = previous.key_group_id.clone();
        }
    }
    let inputs = status::StatusInputs {
        subject,
        spec: &object.spec,
        plan: &plan,
        observed,
        error: error.map(|e| (e.category(), e.detail())),
        previous: object.status.as_ref(),
        now: ctx.clock.now(),
    };
    let mut new_status = status::status(&inputs);
    if observed.is_none()
        && let Some(previous) = &object.status
    {
        // Without an observation the key facts are unknown; only the conditions change.
        let conditions = new_status.conditions;
        new_status = SigningKeyGroupStatus {
            conditions,
            ..previous.clone()
        };
    }
    // A condition newly failing for a reason someone must act on is announced once.
    for condition in &new_status.conditions {
        let previous = object
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == condition.type_));
        // Reconciling and Stalled restate Ready for GitOps tools; Ready's own Event says it.
        if condition.status == "False"
            && condition.type_ != reasons::RECONCILING
            && condition.type_ != reasons::STALLED
            && !reasons::is_waiting(&condition.reason)
            && previous.is_none_or(|p| p.reason != condition.reason)
            && !announced.contains(&condition.reason)
        {
            announced.push(condition.reason.clone());
            ctx.events
                .publish(
                    object,
                    EventType::Warning,
                    &condition.reason,
                    &format!("Report{}", condition.type_),
                    condition.message.clone(),
                )
                .await;
        }
    }
    if !status::changes_stored(object.status.as_ref(), &new_status) {
        return;
    }
    let objects: Api<SigningKeyGroup> = Api::namespaced(ctx.client.clone(), &subject.namespace);
    let patch = json!({
        "apiVersion": "keyfront.dev/v1alpha1",
        "kind": "SigningKeyGroup",
        "status": new_status,
    });
    if let Err(error) = objects
        .patch_status(
            &subject.name,
            &PatchParams::apply("keyfront").force(),
            &Patch::Apply(patch),
        )
        .await
    {
        tracing::warn!(error = %error, "could not write status");
    }
}

/// A step's name, as logs and Events call it.
pub(crate) fn step_name(step: &super::plan::Step) -> &'static str {
    match step {
        super::plan::Step::AddFinalizer => "AddFinalizer",
        super::plan::Step::SaveKeyring { stage: Some(_) } => "StageKey",
        super::plan::Step::SaveKeyring { stage: None } => "SaveKeyring",
        super::plan::Step::CreatePublicKey { .. } => "CreatePublicKey",
        super::plan::Step::CreateKeyGroup { .. } => "CreateKeyGroup",
        super::plan::Step::UpdateKeyGroup { .. } => "UpdateKeyGroup",
        super::plan::Step::SetTrust { .. } => "SetTrust",
        super::plan::Step::WriteAppSecret { .. } => "WriteAppSecret",
        super::plan::Step::WriteIdConfigMap { .. } => "WriteIdConfigMap",
        super::plan::Step::DeletePublicKey { .. } => "DeletePublicKey",
        super::plan::Step::DeleteKeyGroup { .. } => "DeleteKeyGroup",
        super::plan::Step::ReleaseSecrets { .. } => "ReleaseSecrets",
        super::plan::Step::RemoveFinalizer => "RemoveFinalizer",
    }
}
