//! Controller wiring for `keyfront run`: watches, concurrency, per-object backoff, requeue,
//! health endpoints ([`readiness`]) and graceful shutdown.
//!
//! Owns: how reconciles are scheduled. Must not: decide anything about keys; that is
//! [`crate::reconcile`]. Watches are narrow: `SigningKeyGroup`s (all namespaces or the ones
//! given) and only the *metadata* of Secrets labelled `app.kubernetes.io/managed-by=keyfront`,
//! so no Secret data, and no unrelated Secret, is ever cached. `CloudFrontAccount`s and
//! Namespaces are watched too, so a changed grant (an account edited, a Namespace relabelled)
//! re-triggers exactly the SigningKeyGroups it concerns — those naming the account, those in
//! the Namespace — without polling. A second controller keeps each account's status
//! ([`account_status`]).

mod account_status;
mod backoff;
mod endpoints;
pub mod identity;
pub mod metrics;
pub mod metrics_auth;
pub mod readiness;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::reconcile::events::Events;
use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::runtime::controller::{self, Action};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt as _};

use crate::api::{CloudFrontAccount, SigningKeyGroup};
use crate::clock::SystemClock;
use crate::cloudfront::CloudFrontAccounts;
use crate::cloudfront::budget::{BudgetSettings, BudgetedAccounts, WriteGate};
use crate::leader::{self, Leadership, LeaseSettings};
use crate::reconcile::{self, Context, ReconcilerConfig, names};
use backoff::Backoff;
use metrics::{MeteredAccounts, Metrics};
pub use metrics_auth::MetricsAuth;
use metrics_auth::MetricsAuthorizer;
use readiness::Readiness;

/// Logs what a controller stream yields besides reconcile results: a failed watch at warn (the
/// watcher retries with backoff, but someone should know), the rest at debug (reconcile
/// failures are logged where they are handled).
fn log_controller_error<E: std::error::Error, Q: std::error::Error>(
    controller: &str,
    error: &controller::Error<E, Q>,
) {
    match error {
        controller::Error::QueueError(error) => {
            tracing::warn!(controller, %error, "watch failed; retrying");
        }
        other => tracing::debug!(controller, error = %other, "controller event"),
    }
}

/// A watch of `api` reflected into a fresh store, for [`Controller::for_stream`], that marks
/// `check` ready once the watch has listed everything. (Not `Store::wait_until_ready`: with
/// the controller also waiting on it, only one of the two waiters is woken.)
fn synced_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    readiness: &Readiness,
    check: String,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    readiness.expect(check.clone(), "waiting for the first list");
    let readiness = readiness.clone();
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .reflect(writer)
        .inspect(move |event| {
            if let Ok(watcher::Event::InitDone) = event {
                readiness.pass(&check);
            }
        })
        .applied_objects();
    (reader, stream)
}

/// Settings of `keyfront run`.
#[derive(Debug, Clone)]
pub struct OperatorSettings {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Reconciles running at once (per watched namespace).
    pub concurrency: u16,
    pub reconciler: ReconcilerConfig,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub health_listen: Option<SocketAddr>,
    /// Who may read `/metrics` ([`metrics_auth`]).
    pub metrics_auth: MetricsAuth,
    /// Elect a leader among replicas ([`leader`]); `None`: this process is the only one.
    pub leader_election: Option<LeaseSettings>,
    /// How CloudFront calls are paced and batched ([`crate::cloudfront::budget`]).
    pub budget: BudgetSettings,
}

/// The rotations the capacity gate wakes (`namespace/name`), as references for the controller
/// of `watched` (one namespace, or all).
fn waiting_rotations(
    gate: &reconcile::capacity::Gate,
    watched: Option<String>,
) -> impl futures::Stream<Item = ObjectRef<SigningKeyGroup>> + Send + 'static {
    gate.wakes().filter_map(move |waiter| {
        let found = waiter
            .split_once('/')
            .filter(|(namespace, _)| watched.as_deref().is_none_or(|w| w == *namespace))
            .map(|(namespace, name)| ObjectRef::new(name).within(namespace));
        std::future::ready(found)
    })
}

/// The longest one reconcile may take before it is stopped and retried.
const RECONCILE_TIMEOUT: Duration = Duration::from_secs(120);

struct Operator<A> {
    ctx: Arc<Context<BudgetedAccounts<MeteredAccounts<A>>>>,
    backoff: Backoff,
    metrics: Metrics,
}

/// What of an account concerns its SigningKeyGroups: which account it is (a re-created one is
/// another) and its spec (the grants), not its status.
fn grant_changed(account: &CloudFrontAccount) -> Option<u64> {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    account.metadata.uid.hash(&mut hasher);
    account.metadata.generation.hash(&mut hasher);
    Some(hasher.finish())
}

/// The SigningKeyGroups in the cache that `select` picks, as reconcile requests.
fn affected(
    store: &Store<SigningKeyGroup>,
    select: impl Fn(&SigningKeyGroup) -> bool,
) -> Vec<ObjectRef<SigningKeyGroup>> {
    store
        .state()
        .iter()
        .filter(|o| select(o))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

fn object_key(object: &SigningKeyGroup) -> String {
    format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// This replica's name: `$POD_NAME` (the chart sets it), else `keyfront-<pid>`. It holds the
/// leader Lease and is sent in the user agent of every Kubernetes and AWS call, so the API
/// server's audit log and CloudTrail say which replica acted.
pub fn replica_identity() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("keyfront-{}", std::process::id()))
}

/// The `User-Agent` of this replica's Kubernetes calls.
pub fn user_agent(identity: &str) -> String {
    format!("keyfront/{} ({identity})", env!("CARGO_PKG_VERSION"))
}

/// Runs the operator until `shutdown` resolves; reconciles in flight then finish.
pub async fn run<A: CloudFrontAccounts + 'static>(
    client: kube::Client,
    accounts: A,
    settings: OperatorSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let reporter = Reporter {
        controller: "keyfront".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    // The election's own stop signal: sent after the controllers have drained, so the lease
    // is released only when nothing is being written any more.
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let (leadership, lease_task) = match settings.leader_election.clone() {
        Some(lease) => {
            let (leadership, task) = leader::start(client.clone(), lease, async {
                let _ = released.await;
            });
            (leadership, Some(task))
        }
        None => (Leadership::sole(), None),
    };
    let metrics = Metrics::default();
    let operator = Arc::new(Operator {
        ctx: Arc::new(Context {
            client: client.clone(),
            accounts: BudgetedAccounts::new(
                MeteredAccounts {
                    inner: accounts,
                    metrics: metrics.clone(),
                },
                settings.budget.clone(),
            )
            .with_write_gate({
                let leadership = leadership.clone();
                WriteGate::new(move || leadership.may_write())
            }),
            clock: Arc::new(SystemClock),
            capacity: reconcile::capacity::Gate::new(settings.reconciler.plan_account_capacity),
            events: Events::new(client.clone(), reporter),
            config: settings.reconciler.clone(),
            leadership: leadership.clone(),
        }),
        backoff: Backoff::new(settings.backoff_base, settings.backoff_max),
        metrics: metrics.clone(),
    });
    // Filled as the controllers are built: the caches /metrics reads per-object gauges from.
    let caches: Arc<Mutex<Vec<Store<SigningKeyGroup>>>> = Arc::default();
    let shutdown = shutdown.shared();
    let readiness = Readiness::default();
    readiness.expect(readiness::CREDENTIALS_CHECK, "not checked yet");
    {
        let (operator, readiness, stop) = (operator.clone(), readiness.clone(), shutdown.clone());
        tokio::spawn(async move {
            let check = readiness::check_credentials(
                &operator.ctx.accounts,
                &operator.ctx.config.keyring_namespace,
                &readiness,
                Duration::from_secs(10),
            );
            tokio::select! {
                () = check => {}
                () = stop => {}
            }
        });
    }
    if let Some(addr) = settings.health_listen {
        let scrape = {
            let (metrics, caches, leadership, operator) = (
                metrics.clone(),
                caches.clone(),
                leadership.clone(),
                operator.clone(),
            );
            move || {
                let objects: Vec<_> = caches
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .flat_map(Store::state)
                    .collect();
                metrics.render(
                    &objects,
                    leadership.is_leader(),
                    &operator.ctx.accounts.rates(),
                    jiff::Timestamp::now(),
                )
            }
        };
        endpoints::serve(
            addr,
            readiness.clone(),
            MetricsAuthorizer::new(settings.metrics_auth, client.clone()),
            scrape,
            shutdown.clone(),
        )
        .await?;
    }
    let scopes: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    };
    let controllers: Vec<_> = scopes
        .into_iter()
        .map(|namespace| {
            let (objects, secrets): (Api<SigningKeyGroup>, Api<Secret>) = match &namespace {
                Some(ns) => (
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                ),
                None => (Api::all(client.clone()), Api::all(client.clone())),
            };
            // `owns` watches children metadata-only (PartialObjectMetadata): Secret data is never
            // cached, and the label selector keeps unrelated Secrets out entirely.
            let owned_secrets = watcher::Config::default().labels(&format!(
                "{}={}",
                names::MANAGED_BY_LABEL,
                names::MANAGED_BY
            ));
            tracing::info!(
                namespace = namespace.as_deref().unwrap_or("<all>"),
                "watching SigningKeyGroups"
            );
            let (store, stream) = synced_watch(
                objects,
                watcher::Config::default(),
                &readiness,
                format!(
                    "SigningKeyGroup watch ({})",
                    namespace.as_deref().unwrap_or("all namespaces")
                ),
            );
            caches
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(store.clone());
            let controller = Controller::for_stream(stream, store);
            let (by_account, by_namespace) = (controller.store(), controller.store());
            controller
                .owns(secrets, owned_secrets)
                // Only a changed grant (spec) or a re-created account concerns the objects: the
                // account's status changes with every key created or deleted in the account, and
                // waking every object on each of those kept the workers saturated, so some
                // objects waited minutes for their turn (kube-runtime picks held requests in no
                // fair order).
                .watches_stream(
                    watcher(
                        Api::<CloudFrontAccount>::all(client.clone()),
                        watcher::Config::default(),
                    )
                    .default_backoff()
                    .touched_objects()
                    .predicate_filter(grant_changed, Default::default()),
                    move |account| {
                        let name = account.name_any();
                        affected(&by_account, |o| o.spec.account_ref.name == name)
                    },
                )
                .watches(
                    Api::<Namespace>::all(client.clone()),
                    watcher::Config::default(),
                    move |namespace| {
                        let name = namespace.name_any();
                        affected(&by_namespace, |o| o.namespace().as_deref() == Some(&name))
                    },
                )
                .with_config(controller::Config::default().concurrency(settings.concurrency))
                .reconcile_all_on(leadership.gained())
                // A rotation held for a slot in its account is looked at again when one frees.
                .reconcile_on(waiting_rotations(&operator.ctx.capacity, namespace.clone()))
                .graceful_shutdown_on(shutdown.clone())
                .run(
                    |object, operator: Arc<Operator<A>>| async move {
                        // A standby keeps its cache warm and writes nothing; on winning the lease
                        // it reconciles everything (reconcile_all_on).
                        if !operator.ctx.leadership.is_leader() {
                            return Ok(Action::await_change());
                        }
                        let key = object_key(&object);
                        let start = std::time::Instant::now();
                        // A reconcile that does not finish in time is stopped (as a crash would
                        // stop it: every step is safe to plan again) and retried with backoff,
                        // so nothing one object waits on can hold its worker forever.
                        let result = tokio::time::timeout(
                            RECONCILE_TIMEOUT,
                            reconcile::reconcile(object, operator.ctx.clone()),
                        )
                        .await
                        .unwrap_or(Err(reconcile::Error::Internal(
                            "the reconcile did not finish within 2 minutes; it was stopped and is retried",
                        )));
                        tracing::debug!(
                            object = %key,
                            took_ms = start.elapsed().as_millis() as u64,
                            outcome = ?result.as_ref().ok(),
                            "reconciled"
                        );
                        operator.metrics.observe_reconcile(
                            result
                                .as_ref()
                                .map(|_| ())
                                .map_err(reconcile::Error::category),
                            start.elapsed(),
                        );
                        match &result {
                            Ok(reconcile::Outcome::Unsettled) => {
                                let delay = operator.backoff.next(&key);
                                tracing::warn!(
                                    object = %key,
                                    passes = operator.ctx.config.max_passes,
                                    retry_in_ms = delay.as_millis() as u64,
                                    "did not settle within the pass limit; backing off"
                                );
                                return Ok(Action::requeue(delay));
                            }
                            Ok(reconcile::Outcome::Blocked(wait)) => {
                                // Grows from the plan's own poll up to --backoff-max.
                                let delay = operator.backoff.next(&key).max(*wait);
                                return Ok(Action::requeue(delay));
                            }
                            Ok(_) => operator.backoff.reset(&key),
                            Err(_) => {}
                        }
                        result.map(Action::from)
                    },
                    |object, error, operator| {
                        let delay = operator.backoff.next(&object_key(&object));
                        tracing::warn!(
                            object = %object_key(&object),
                            category = error.category(),
                            error = %error.detail(),
                            retry_in_ms = delay.as_millis() as u64,
                            "reconcile failed"
                        );
                        Action::requeue(delay)
                    },
                    operator.clone(),
                )
                .for_each(|result| async move {
                    if let Err(error) = result {
                        log_controller_error("SigningKeyGroup", &error);
                    }
                })
        })
        .collect();
    let account_status = account_status::controller(
        &client,
        operator.clone(),
        &readiness,
        &leadership,
        shutdown.clone(),
    );
    let work = futures::future::join(futures::future::join_all(controllers), account_status);
    if let Some(mut lease_task) = lease_task {
        tokio::select! {
            _ = work => {
                let _ = release.send(());
                match lease_task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "leader election ended badly"),
                    Err(error) => tracing::warn!(%error, "leader election task failed"),
                }
            }
            // Running on without knowing whether this replica leads could mean two writers.
            ended = &mut lease_task => {
                let why = match ended {
                    Ok(Ok(())) => "it stopped".to_owned(),
                    Ok(Err(error)) => error.to_string(),
                    Err(error) => error.to_string(),
                };
                anyhow::bail!("leader election ended ({why}); exiting rather than running without knowing whether this replica leads");
            }
        }
    } else {
        work.await;
    }
    tracing::info!("stopped");
    Ok(())
}
