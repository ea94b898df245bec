//! The reconciler: one `SigningKeyGroup` → its keys, Secrets, CloudFront key group and
//! distribution trust.
//!
//! Each pass runs one direction, and the loop repeats passes until nothing is left to do now:
//!
//! 1. [`observe`] (client required): the keyring and app-facing Secrets, the key group, the
//!    distributions; public keys only when something is unaccounted for.
//! 2. [`plan`] (no client required): the rotation protocol as a pure function of the object,
//!    the observation and `now` → ordered [`plan::Step`]s, findings, and when to look again.
//! 3. [`execute`] (client required): one side effect per step, stopping at the first failure.
//! 4. [`status`] (no client required): conditions, keys and times, patched only when changed.
//!
//! Nothing is kept in memory between passes: after a crash the next pass plans from what is
//! there. [`keyring`] is the durable record; [`names`] the deterministic names that make
//! CloudFront creations findable again.

pub mod execute;
pub mod keyring;
pub mod names;
pub mod observe;
pub mod plan;
pub mod reasons;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{EventType, Recorder};
use kube::{Api, ResourceExt as _};
use serde_json::json;

use crate::api::{SigningKeyGroup, SigningKeyGroupStatus};
use crate::clock::Clock;
use crate::cloudfront::{CloudFront, CloudFrontError, ErrorKind};
use keyring::KeyringError;
use plan::Subject;

/// How the reconciler paces itself.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// How often to look while CloudFront deploys a change keyfront waits for.
    pub propagation_poll: Duration,
    /// Look again at least this often even when nothing is due.
    pub resync: Duration,
    /// Passes (observe → plan → execute) per reconcile before yielding to other objects.
    pub max_passes: usize,
}

impl Default for ReconcilerConfig {
    fn default() -> Self {
        Self {
            propagation_poll: Duration::from_secs(15),
            resync: Duration::from_secs(3600),
            max_passes: 16,
        }
    }
}

/// What every reconcile shares.
pub struct Context<C> {
    pub client: kube::Client,
    pub cloudfront: C,
    pub clock: Arc<dyn Clock>,
    pub recorder: Recorder,
    pub config: ReconcilerConfig,
}

/// Which Kubernetes request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeOperation {
    ReadObject,
    PatchObject,
    WriteStatus,
    ReadSecret,
    WriteSecret,
    DeleteSecret,
}

impl std::fmt::Display for KubeOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ReadObject => "reading the SigningKeyGroup",
            Self::PatchObject => "updating the SigningKeyGroup's finalizers",
            Self::WriteStatus => "writing the SigningKeyGroup's status",
            Self::ReadSecret => "reading a Secret",
            Self::WriteSecret => "writing a Secret",
            Self::DeleteSecret => "deleting a Secret",
        })
    }
}

/// Why a reconcile stopped early. Messages never carry key material: Secrets are written with
/// their data but errors are built from status codes and names only.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CloudFront {operation} failed")]
    CloudFront {
        operation: &'static str,
        #[source]
        source: CloudFrontError,
    },
    #[error("Kubernetes request failed while {operation}")]
    Kube {
        operation: KubeOperation,
        #[source]
        source: kube::Error,
    },
    #[error("the keyring Secret exists but is not marked as this SigningKeyGroup's")]
    KeyringNotOwned,
    #[error("the keyring Secret cannot be read")]
    Keyring(#[source] KeyringError),
    #[error("key generation failed")]
    Key(#[source] crate::keys::KeyError),
    #[error("key {serial} is not in the keyring")]
    UnknownKey { serial: u32 },
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl Error {
    pub(crate) fn cloudfront(operation: &'static str) -> impl FnOnce(CloudFrontError) -> Self {
        move |source| Self::CloudFront { operation, source }
    }

    /// A write lost a race (stale ETag or resourceVersion): plan again at once.
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::CloudFront { source, .. } => source.kind == ErrorKind::PreconditionFailed,
            Self::Kube {
                source: kube::Error::Api(s),
                ..
            } => s.code == 409,
            _ => false,
        }
    }

    /// Whether waiting may help (as opposed to a fault someone must fix).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::CloudFront { source, .. } => source.is_retryable(),
            Self::Kube { .. } | Self::Key(_) | Self::Internal(_) => true,
            Self::KeyringNotOwned | Self::Keyring(_) | Self::UnknownKey { .. } => false,
        }
    }

    /// Short label used as the `Ready` reason and in logs.
    pub fn category(&self) -> &'static str {
        match self {
            Self::CloudFront { source, .. } => match source.kind {
                ErrorKind::NotFound => "CloudFrontNotFound",
                ErrorKind::PreconditionFailed => "CloudFrontConflict",
                ErrorKind::AlreadyExists => "CloudFrontAlreadyExists",
                ErrorKind::InUse => "CloudFrontResourceInUse",
                ErrorKind::QuotaExceeded => "CloudFrontQuotaExceeded",
                ErrorKind::Throttled => "CloudFrontThrottled",
                ErrorKind::AccessDenied => "CloudFrontAccessDenied",
                ErrorKind::Invalid => "CloudFrontRejected",
                ErrorKind::Transient => "CloudFrontUnavailable",
            },
            Self::Kube { .. } => "KubernetesError",
            Self::KeyringNotOwned | Self::Keyring(_) | Self::UnknownKey { .. } => "KeyringInvalid",
            Self::Key(_) => "KeyGenerationFailed",
            Self::Internal(_) => "InternalError",
        }
    }

    /// The message with its causes, for conditions and Events.
    pub fn detail(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

/// Facts about the object the plan needs.
pub fn subject_of(object: &SigningKeyGroup) -> Subject {
    let annotation = |key: &str| {
        object
            .annotations()
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
    };
    Subject {
        uid: object.uid().unwrap_or_default(),
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
        generation: object.metadata.generation,
        deleting: object.metadata.deletion_timestamp.is_some(),
        has_finalizer: object.finalizers().iter().any(|f| f == names::FINALIZER),
        rotate_request: annotation(names::ROTATE_ANNOTATION),
        revoke_request: annotation(names::REVOKE_ANNOTATION),
    }
}

/// What a reconcile asks of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Look again after this long (the plan's next due moment, capped by the resync period).
    Requeue(Duration),
    /// Nothing is due: the object is gone or let go; only a change brings it back.
    AwaitChange,
}

impl From<Outcome> for kube::runtime::controller::Action {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Requeue(after) => Self::requeue(after),
            Outcome::AwaitChange => Self::await_change(),
        }
    }
}

/// Reconciles one object: passes until nothing is left to do now, then the status.
#[tracing::instrument(skip_all, fields(namespace = %object.namespace().unwrap_or_default(), name = %object.name_any()))]
pub async fn reconcile<C: CloudFront>(
    object: Arc<SigningKeyGroup>,
    ctx: Arc<Context<C>>,
) -> Result<Outcome, Error> {
    let namespace = object.namespace().unwrap_or_default();
    let objects: Api<SigningKeyGroup> = Api::namespaced(ctx.client.clone(), &namespace);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut announced_error: Vec<String> = Vec::new();
    for _ in 0..ctx.config.max_passes {
        let Some(current) = objects
            .get_opt(&object.name_any())
            .await
            .map_err(|source| Error::Kube {
                operation: KubeOperation::ReadObject,
                source,
            })?
        else {
            return Ok(Outcome::AwaitChange);
        };
        if current.uid() != object.uid() {
            return Ok(Outcome::AwaitChange);
        }
        let subject = subject_of(&current);
        let kg_name = plan::key_group_name(&current.spec, &subject);
        let secret_name = plan::secret_name(&current.spec, &subject);
        let ids: Vec<String> = current
            .spec
            .distributions
            .iter()
            .map(|d| d.id.clone())
            .collect();
        let observed = observe::observe(
            &ctx.cloudfront,
            &secrets,
            &subject,
            &kg_name,
            &secret_name,
            &ids,
        )
        .await;
        let now = ctx.clock.now();
        let observed = match observed {
            Ok(o) => o,
            Err(error) => {
                let empty = plan::plan(
                    &subject,
                    &current.spec,
                    &empty_observation(),
                    now,
                    ctx.config.propagation_poll,
                );
                finish(
                    &ctx,
                    &current,
                    &subject,
                    &empty,
                    None,
                    Some(&error),
                    &mut announced_error,
                )
                .await;
                return Err(error);
            }
        };
        let plan = plan::plan(
            &subject,
            &current.spec,
            &observed,
            now,
            ctx.config.propagation_poll,
        );
        if !plan.has_steps() {
            finish(
                &ctx,
                &current,
                &subject,
                &plan,
                Some(&observed),
                None,
                &mut announced_error,
            )
            .await;
            let wait = plan
                .wake_at
                .map(|t| t.duration_since(now).unsigned_abs())
                .unwrap_or(ctx.config.resync)
                .min(ctx.config.resync)
                .max(Duration::from_millis(200));
            return Ok(Outcome::Requeue(wait));
        }
        tracing::debug!(steps = ?plan.steps.iter().map(step_name).collect::<Vec<_>>(), "executing");
        match execute::execute(&ctx, &current, &subject, &plan, &observed).await {
            Ok(done) => {
                for notice in &plan.notices {
                    let type_ = if notice.warning {
                        EventType::Warning
                    } else {
                        EventType::Normal
                    };
                    ctx.publish(&current, type_, notice.reason, notice.message.clone())
                        .await;
                }
                if done.finalizer_removed {
                    return Ok(Outcome::AwaitChange);
                }
            }
            Err(error) if error.is_conflict() => {
                tracing::debug!(error = %error.detail(), "lost a write race; planning again");
            }
            Err(error) => {
                finish(
                    &ctx,
                    &current,
                    &subject,
                    &plan,
                    Some(&observed),
                    Some(&error),
                    &mut announced_error,
                )
                .await;
                return Err(error);
            }
        }
    }
    Ok(Outcome::Requeue(Duration::from_millis(200)))
}

fn step_name(step: &plan::Step) -> &'static str {
    match step {
        plan::Step::AddFinalizer => "AddFinalizer",
        plan::Step::SaveKeyring { stage: Some(_) } => "StageKey",
        plan::Step::SaveKeyring { stage: None } => "SaveKeyring",
        plan::Step::CreatePublicKey { .. } => "CreatePublicKey",
        plan::Step::CreateKeyGroup { .. } => "CreateKeyGroup",
        plan::Step::UpdateKeyGroup { .. } => "UpdateKeyGroup",
        plan::Step::SetTrust { .. } => "SetTrust",
        plan::Step::WriteAppSecret { .. } => "WriteAppSecret",
        plan::Step::DeletePublicKey { .. } => "DeletePublicKey",
        plan::Step::DeleteKeyGroup { .. } => "DeleteKeyGroup",
        plan::Step::ReleaseSecrets { .. } => "ReleaseSecrets",
        plan::Step::RemoveFinalizer => "RemoveFinalizer",
    }
}

fn empty_observation() -> observe::Observed {
    observe::Observed {
        keyring: None,
        app_secret: observe::AppSecret::Missing,
        key_group: observe::KeyGroupState::Missing,
        listed_public_keys: None,
        public_keys_present: Default::default(),
        distributions: Default::default(),
    }
}

/// Writes the status if it changed, and announces each newly failing condition once.
async fn finish<C>(
    ctx: &Context<C>,
    object: &SigningKeyGroup,
    subject: &Subject,
    plan: &plan::Plan,
    observed: Option<&observe::Observed>,
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
        if condition.status == "False"
            && !reasons::is_waiting(&condition.reason)
            && previous.is_none_or(|p| p.reason != condition.reason)
            && !announced.contains(&condition.reason)
        {
            announced.push(condition.reason.clone());
            ctx.publish(
                object,
                EventType::Warning,
                &condition.reason,
                condition.message.clone(),
            )
            .await;
        }
    }
    if object.status.as_ref() == Some(&new_status) {
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
