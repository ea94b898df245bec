//! The reconciler: one `SigningKeyGroup` → its keys, Secrets, CloudFront key group and
//! distribution trust.
//!
//! Each pass runs one direction, and the loop repeats passes until nothing is left to do now:
//!
//! 1. [`observe`] (client required): the `CloudFrontAccount` and Namespace (the grant), the
//!    keyring (in the operator's namespace) and app-facing Secret, and — only when the grant
//!    lets the object reach CloudFront — the key group and the granted distributions; public
//!    keys only when something is unaccounted for. Types in [`observed`].
//! 2. [`plan`] (no client required): the grant ([`crate::tenancy`]) and the rotation
//!    protocol as a pure function of the object, the observation and `now` → ordered
//!    [`plan::Step`]s, findings, and when to look again.
//! 3. [`execute`] (client required): one side effect per step, stopping at the first failure.
//! 4. [`status`] (no client required): conditions, keys and times; [`report`] (client
//!    required) patches them only when changed and announces newly failing conditions.
//!
//! Nothing of an object is kept in memory between passes: after a crash the next pass plans
//! from what is there (the accounts' queues and rotation timelines in [`capacity`] are
//! rebuilt as objects ask). [`keyring`] is the durable record; [`names`] the deterministic
//! names that make CloudFront creations findable again.

pub mod account;
pub mod capacity;
mod error;
pub mod events;
pub mod execute;
pub mod keyring;
pub mod names;
pub mod observe;
pub mod observed;
pub mod plan;
pub mod reasons;
mod report;
mod secrets;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt as _};

use crate::api::{CloudFrontAccount, SigningKeyGroup};
use crate::clock::Clock;
use crate::cloudfront::{AccountAccess, CloudFrontAccounts};
use crate::tenancy::{Admission, NamespaceFacts};
pub use error::{Error, KubeOperation};
use observed::Subject;

/// How the reconciler paces itself, and where it keeps what it owns.
#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    /// This cluster's identity in shared AWS accounts (`--cluster-id`): part of every owner
    /// token ([`names::owner_token`]).
    pub cluster_id: String,
    /// This physical cluster's claim on the public keys it makes ([`names::install_claim`]);
    /// empty when unknown (then nothing is claimed or detected).
    pub install_claim: String,
    /// The operator's own namespace, where every keyring Secret lives (`--keyring-namespace`).
    pub keyring_namespace: String,
    /// How often to look while CloudFront deploys a change keyfront waits for.
    pub propagation_poll: Duration,
    /// Look again at least this often even when nothing is due.
    pub resync: Duration,
    /// Passes (observe → plan → execute) per reconcile before yielding to other objects.
    pub max_passes: usize,
    /// The shortest rotation interval of any object, and the least time between requested
    /// rotations (`--min-rotation-interval`).
    pub min_rotation_interval: Duration,
    /// Plan each account's public keys ([`capacity`]). Off only in the capacity run's
    /// comparison (`tests/it/operator/capacity_run.rs`), to measure what planning saves; no
    /// flag turns it off.
    pub plan_account_capacity: bool,
}

impl ReconcilerConfig {
    pub fn pacing(&self) -> plan::Pacing {
        plan::Pacing {
            propagation_poll: self.propagation_poll,
            min_rotation_interval: self.min_rotation_interval,
        }
    }
}

/// When an object held for room in its account looks again by itself.
const HELD_RETRY: Duration = Duration::from_secs(30);

/// `--min-rotation-interval`'s default: at most one rotation a minute per object, a few dozen
/// calls, whatever its spec says.
pub const DEFAULT_MIN_ROTATION_INTERVAL: Duration = Duration::from_secs(60);

impl Default for ReconcilerConfig {
    fn default() -> Self {
        Self {
            cluster_id: "default".into(),
            install_claim: String::new(),
            keyring_namespace: "keyfront-system".into(),
            propagation_poll: Duration::from_secs(15),
            resync: Duration::from_secs(3600),
            max_passes: 16,
            min_rotation_interval: DEFAULT_MIN_ROTATION_INTERVAL,
            plan_account_capacity: true,
        }
    }
}

/// What every reconcile shares.
pub struct Context<A> {
    pub client: kube::Client,
    /// CloudFront clients per account.
    pub accounts: A,
    pub clock: Arc<dyn Clock>,
    pub events: events::Events,
    pub config: ReconcilerConfig,
    /// Whether this replica may write; confirmed before each batch of writes.
    pub leadership: crate::leader::Leadership,
    /// The accounts' public keys, shared by every object: who may create one now.
    pub capacity: capacity::Gate,
}

/// Facts about the object the plan needs; `cluster_id` makes its owner token.
pub fn subject_of(object: &SigningKeyGroup, cluster_id: &str) -> Subject {
    let annotation = |key: &str| {
        object
            .annotations()
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    Subject {
        uid: object.uid().unwrap_or_default(),
        owner: names::owner_token(cluster_id, &namespace, &name),
        namespace,
        name,
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
    /// Deleting, and blocked on something a person must fix (a detach that would make a
    /// behavior public, say): the scheduler backs off from this delay on instead of looking
    /// every poll forever. A change to the object still wakes it at once.
    Blocked(Duration),
    /// The pass limit was reached with steps still to do. The scheduler looks again with the
    /// object's growing backoff, not at once: a plan that never settles must not spin.
    Unsettled,
}

impl From<Outcome> for kube::runtime::controller::Action {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Requeue(after) => Self::requeue(after),
            Outcome::AwaitChange => Self::await_change(),
            Outcome::Unsettled => Self::requeue(Duration::from_secs(1)),
            Outcome::Blocked(after) => Self::requeue(after),
        }
    }
}

/// Reads the object's world: the account and Namespace (for the grant), its Secrets, and —
/// only when the grant lets it reach CloudFront — CloudFront, through a client connected to
/// its account. Returns the observation and that client.
async fn observe_all<A: CloudFrontAccounts>(
    ctx: &Context<A>,
    object: &SigningKeyGroup,
    subject: &Subject,
) -> Result<(observed::Observed, Option<A::Client>), Error> {
    let account_name = &object.spec.account_ref.name;
    let account = Api::<CloudFrontAccount>::all(ctx.client.clone())
        .get_opt(account_name)
        .await
        .map_err(|source| Error::Kube {
            operation: KubeOperation::ReadAccount,
            source,
        })?;
    let namespace = Api::<Namespace>::all(ctx.client.clone())
        .get_opt(&subject.namespace)
        .await
        .map_err(|source| Error::Kube {
            operation: KubeOperation::ReadNamespace,
            source,
        })?;
    let app: Api<Secret> = Api::namespaced(ctx.client.clone(), &subject.namespace);
    let keyring: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.keyring_namespace);
    let secret_name = plan::secret_name(&object.spec, subject);
    let (keyring, app_secret) = observe::observe_secrets(
        &observe::SecretScopes {
            app: &app,
            keyring: &keyring,
        },
        subject,
        &secret_name,
    )
    .await?;
    let mut observed = observed::Observed {
        account: account.as_ref().map(|a| a.spec.clone()),
        namespace: NamespaceFacts {
            name: subject.namespace.clone(),
            uid: namespace
                .as_ref()
                .and_then(|n| n.metadata.uid.clone())
                .unwrap_or_default(),
            terminating: namespace
                .as_ref()
                .is_some_and(|n| n.metadata.deletion_timestamp.is_some()),
            labels: namespace
                .and_then(|n| n.metadata.labels)
                .unwrap_or_default(),
        },
        ..observed::Observed::empty()
    };
    observed.keyring = keyring;
    observed.app_secret = app_secret;
    observed.rotations = ctx
        .capacity
        .rotations(account_name, &subject.path(), ctx.clock.now());
    observed.id_config_map = observe::observe_id_config_map(
        &ctx.client,
        subject,
        object.spec.key_group.id_config_map.as_deref(),
    )
    .await?;
    let admission = plan::admission(&object.spec, &observed);
    let Some(account) = account.filter(|_| plan::reaches_cloudfront(&admission, &observed)) else {
        return Ok((observed, None));
    };
    let cloudfront = ctx
        .accounts
        .connect(&AccountAccess {
            account: account_name.clone(),
            assume_role: account.spec.assume_role.clone(),
            namespace: subject.namespace.clone(),
            aws_account_id: account.status.as_ref().and_then(|s| s.account_id.clone()),
        })
        .await
        .map_err(Error::cloudfront("AssumeRole"))?;
    // Only granted distributions are read; ungranted ones are never touched, not even read.
    let grants = match &admission {
        Admission::Admitted(grants) => Some(grants),
        _ => None,
    };
    let granted: Vec<String> = grants
        .map(|grants| {
            object
                .spec
                .distributions
                .iter()
                .filter(|d| grants.distribution(&d.id).is_some())
                .map(|d| d.id.clone())
                .collect()
        })
        .unwrap_or_default();
    observe::observe_cloudfront(
        &cloudfront,
        subject,
        &ctx.config.install_claim,
        &observe::Wanted {
            key_group_name: &plan::key_group_name(
                &object.spec,
                subject,
                observed.keyring.as_ref().map(|k| &k.keyring),
            ),
            legacy_key_group_name: (object.spec.key_group.name.is_none()
                && observed
                    .keyring
                    .as_ref()
                    .is_none_or(|k| k.keyring.key_group_name.is_none()))
            .then(|| crate::api::legacy_default_key_group_name(&subject.namespace, &subject.name))
            .as_deref(),
            distribution_ids: &granted,
            adopting_under: grants.filter(|_| object.spec.key_group.adopt),
            grants,
        },
        &mut observed,
    )
    .await?;
    Ok((observed, Some(cloudfront)))
}

/// Plans, and records the active key's rotation in its account's timeline
/// ([`capacity::stagger`]). A rotation placed beside windows that another object changed
/// meanwhile is placed again; after two tries it takes its turn where it is.
fn plan_beside_rotations<A>(
    ctx: &Context<A>,
    object: &SigningKeyGroup,
    subject: &Subject,
    observed: &mut observed::Observed,
    now: Timestamp,
) -> plan::Plan {
    let account = &object.spec.account_ref.name;
    let key = subject.path();
    for tries in 1.. {
        let plan = plan::plan(subject, &object.spec, observed, now, &ctx.config.pacing());
        let Some(rotation) = plan.rotation else {
            return plan;
        };
        if ctx.capacity.record_rotation(
            account,
            &key,
            rotation.window,
            rotation.placed && tries < 3,
        ) {
            return plan;
        }
        observed.rotations = ctx.capacity.rotations(account, &key, now);
    }
    unreachable!("the third try records the rotation as it is")
}

/// Reconciles one object: passes until nothing is left to do now, then the status.
#[tracing::instrument(skip_all, fields(namespace = %object.namespace().unwrap_or_default(), name = %object.name_any()))]
pub async fn reconcile<A: CloudFrontAccounts>(
    object: Arc<SigningKeyGroup>,
    ctx: Arc<Context<A>>,
) -> Result<Outcome, Error> {
    let namespace = object.namespace().unwrap_or_default();
    let objects: Api<SigningKeyGroup> = Api::namespaced(ctx.client.clone(), &namespace);
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
        let mut subject = subject_of(&current, &ctx.config.cluster_id);
        let now = ctx.clock.now();
        let (mut observed, cloudfront) = match observe_all(&ctx, &current, &subject).await {
            Ok(o) if o.0.namespace.terminating => {
                // The namespace controller deletes this object too, in its own time (Secrets
                // may already be gone): clean up now, and never create anything there.
                subject.deleting = true;
                o
            }
            Ok(o) => o,
            Err(error) => {
                let empty = plan::plan(
                    &subject,
                    &current.spec,
                    &observed::Observed::empty(),
                    now,
                    &ctx.config.pacing(),
                );
                report::finish(
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
        let plan = plan_beside_rotations(&ctx, &current, &subject, &mut observed, now);
        if let Some(cloudfront) = &cloudfront {
            use crate::cloudfront::CloudFront as _;
            cloudfront.await_deployment(&subject.uid, &plan.awaits_deployment);
            let heading = plan::heading_to(&plan, &subject, &current.spec, &observed);
            cloudfront.heading_to(&subject.uid, &heading);
        }
        if !plan.has_steps() {
            report::finish(
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
            if subject.deleting && plan.findings.iter().any(|f| f.blocking) {
                return Ok(Outcome::Blocked(wait));
            }
            return Ok(Outcome::Requeue(wait));
        }
        if !ctx.leadership.confirm().await {
            tracing::info!("not the leader any more; writing nothing");
            return Ok(Outcome::Requeue(ctx.config.resync));
        }
        tracing::debug!(steps = ?plan.steps.iter().map(report::step_name).collect::<Vec<_>>(), "executing");
        match execute::execute(
            &ctx,
            cloudfront.as_ref(),
            &current,
            &subject,
            &plan,
            &observed,
        )
        .await
        {
            Ok(done) => {
                if let Some(held) = done.held {
                    // Signing goes on with the keys there are; the status says what waits and
                    // why, and the object asks again soon (a slot frees when a key leaves).
                    let mut waiting = plan.clone();
                    waiting.steps.clear(); // nothing more can be done until a slot frees
                    waiting.findings.insert(0, held.finding());
                    report::finish(
                        &ctx,
                        &current,
                        &subject,
                        &waiting,
                        Some(&observed),
                        None,
                        &mut announced_error,
                    )
                    .await;
                    // The gate wakes the first waiting rotation when a key leaves the
                    // account; this look is the safety net (and a new object's next try).
                    return Ok(Outcome::Requeue(HELD_RETRY.min(ctx.config.resync)));
                }
                for notice in &plan.notices {
                    let type_ = if notice.warning {
                        EventType::Warning
                    } else {
                        EventType::Normal
                    };
                    ctx.events
                        .publish(
                            &current,
                            type_,
                            notice.reason,
                            "Observe",
                            notice.message.clone(),
                        )
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
                report::finish(
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
    Ok(Outcome::Unsettled)
}
