//! A world for reconciler tests: the Kubernetes API double and the CloudFront emulator on one
//! manual clock, a crash switch on every side effect, and checks of DESIGN.md's I1–I6.
//!
//! Reconciles run in-process through `keyfront::reconcile::reconcile` with a fresh `Context`
//! each time, so "restart" is free: the reconciler keeps nothing in memory between calls.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::FutureExt as _;
use k8s_openapi::api::core::v1::Secret;
use keyfront::api::{SigningKeyGroup, SigningKeyGroupStatus};
use keyfront::clock::{Clock, ManualClock};
use keyfront::cloudfront::budget::{BudgetSettings, BudgetedAccounts, Rate};
use keyfront::cloudfront::hooked::{Call, CallHook, Class, Hooked};
use keyfront::cloudfront::{BehaviorTrust, CloudFrontError, ErrorKind, Result as CfResult};
use keyfront::emulator::Emulator;
use keyfront::emulator::faults::FaultSettings;
use keyfront::emulator::model::{ModelSettings, Quotas};
use keyfront::reconcile::events::Events;
use keyfront::reconcile::{self, Context, Outcome, ReconcilerConfig, names, reasons};
use keyfront::signer::SigningKey;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::events::Reporter;
use kube::{Api, ResourceExt as _};
use kube_api_double::ApiDouble;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

pub const NAMESPACE: &str = "default";
/// The operator's namespace, where keyrings live.
pub const KEYRING_NAMESPACE: &str = "keyfront-system";
pub const CLUSTER_ID: &str = "test-cluster";
/// How long the emulator takes to deploy a distribution change.
pub const PROPAGATION: Duration = Duration::from_secs(60);

/// Stops the "process" after a chosen number of side effects: effect N is applied, then it
/// and every later call fail as if the operator died before hearing the answer.
#[derive(Debug, Default)]
pub struct CrashSwitch {
    limit: Mutex<Option<usize>>,
    effects: AtomicUsize,
    crashed: AtomicBool,
    /// Whether the armed crash happened (stays set across the restart).
    tripped: AtomicBool,
}

impl CrashSwitch {
    pub fn arm(&self, after_effects: usize) {
        *self.limit.lock().unwrap() = Some(after_effects);
        self.effects.store(0, Ordering::SeqCst);
        self.crashed.store(false, Ordering::SeqCst);
    }

    /// Starts counting from zero with no limit (to measure a scenario).
    pub fn count_only(&self) {
        *self.limit.lock().unwrap() = None;
        self.effects.store(0, Ordering::SeqCst);
        self.crashed.store(false, Ordering::SeqCst);
    }

    /// The operator restarts: calls go through again, nothing is armed.
    pub fn restart(&self) {
        *self.limit.lock().unwrap() = None;
        self.crashed.store(false, Ordering::SeqCst);
    }

    pub fn effects(&self) -> usize {
        self.effects.load(Ordering::SeqCst)
    }

    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Called after a side effect took place; true if the process dies now.
    fn applied(&self) -> bool {
        let n = self.effects.fetch_add(1, Ordering::SeqCst) + 1;
        if *self.limit.lock().unwrap() == Some(n) {
            self.crashed.store(true, Ordering::SeqCst);
            self.tripped.store(true, Ordering::SeqCst);
            return true;
        }
        false
    }
}

fn dead(operation: &'static str) -> CloudFrontError {
    CloudFrontError::new(
        operation,
        ErrorKind::Transient,
        "Crashed",
        "the operator stopped",
    )
}

/// The emulator seen through the crash switch, counting calls.
pub type Tap = Hooked<Emulator, TapHook>;

/// CloudFront calls made, by kind.
#[derive(Debug, Default)]
pub struct CallCounts {
    pub reads: AtomicUsize,
    pub writes: AtomicUsize,
}

impl CallCounts {
    pub fn take(&self) -> (usize, usize) {
        (
            self.reads.swap(0, Ordering::SeqCst),
            self.writes.swap(0, Ordering::SeqCst),
        )
    }
}

/// Counts each call and passes it through the crash switch: after the crash nothing is
/// sent; a write at the armed crash point is applied, and then the operator is dead.
#[derive(Debug, Clone)]
pub struct TapHook {
    switch: Arc<CrashSwitch>,
    calls: Arc<CallCounts>,
}

impl CallHook for TapHook {
    async fn around<T: Send>(
        &self,
        call: Call,
        run: impl Future<Output = CfResult<T>> + Send,
    ) -> CfResult<T> {
        if self.switch.crashed() {
            return Err(dead(call.operation));
        }
        match call.class {
            Class::Read => {
                self.calls.reads.fetch_add(1, Ordering::SeqCst);
                run.await
            }
            Class::Write => {
                self.calls.writes.fetch_add(1, Ordering::SeqCst);
                let result = run.await?;
                if self.switch.applied() {
                    return Err(dead(call.operation));
                }
                Ok(result)
            }
        }
    }
}

/// A `kube::Client` on the API double whose mutating requests (Events aside) go through the
/// crash switch.
fn tapped_client(api: &ApiDouble, switch: Arc<CrashSwitch>) -> kube::Client {
    let router = api.router();
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let mut router = router.clone();
        let switch = switch.clone();
        async move {
            let mutating =
                request.method() != http::Method::GET && !request.uri().path().contains("/events");
            if switch.crashed() {
                return Err::<_, tower::BoxError>("the operator stopped".into());
            }
            let response = tower::Service::call(&mut router, request)
                .await
                .map_err(|e| -> tower::BoxError { Box::new(e) })?;
            if mutating && response.status().is_success() && switch.applied() {
                return Err("the operator stopped".into());
            }
            Ok(response)
        }
        .boxed()
    });
    kube::Client::new(service, NAMESPACE)
}

/// Everything the logs of this test process said (one subscriber per process).
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("keyfront=debug")
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .try_init();
        buffer
    })
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Raised so that I6 (at most 5 keys) is keyfront's doing, not the emulator's.
fn roomy_quotas() -> Quotas {
    Quotas {
        keys_per_key_group: 20,
        public_keys: 200,
        key_groups: 50,
        ..Quotas::default()
    }
}

/// One cluster, one CloudFront account, one clock.
pub struct World {
    pub api: ApiDouble,
    pub clock: ManualClock,
    pub emulator: Emulator,
    pub switch: Arc<CrashSwitch>,
    pub calls: Arc<CallCounts>,
    pub config: ReconcilerConfig,
    /// One Event recorder for the operator's life, as `keyfront run` has (it folds repeats).
    events: Events,
    /// Reconcile errors seen, as their `detail()` text (scanned for key material).
    pub error_texts: Vec<String>,
    history: History,
    /// With [`World::through_the_budget`]: CloudFront as `keyfront run` reaches it.
    budgeted: Option<BudgetedAccounts<Tap>>,
    /// The accounts' public-key gate, one for the operator's life as in `keyfront run`.
    pub capacity: keyfront::reconcile::capacity::Gate,
}

/// What the checks remember between steps (for I4).
#[derive(Debug, Default)]
struct History {
    /// Key IDs the app Secret named, and when it stopped naming them.
    stopped_signing_at: BTreeMap<String, Option<jiff::Timestamp>>,
    /// Keys in the group at the last check.
    in_group: BTreeSet<String>,
    revoked: BTreeSet<String>,
    /// Every private key seen, for the I5 scan.
    private_keys: BTreeSet<String>,
    /// Keys of an adopted group that keyfront did not create: exempt from I1 (their private
    /// keys were never keyfront's to store).
    foreign_keys: BTreeSet<String>,
}

impl World {
    pub fn new() -> Self {
        Self::with_seed(7)
    }

    pub fn with_seed(seed: u64) -> Self {
        Self::build(seed, roomy_quotas(), PROPAGATION)
    }

    pub fn with_quotas(seed: u64, quotas: Quotas) -> Self {
        Self::build(seed, quotas, PROPAGATION)
    }

    /// CloudFront deploying in `propagation` (the emulator's own default is 2 s).
    pub fn with_propagation(propagation: Duration) -> Self {
        Self::build(7, roomy_quotas(), propagation)
    }

    fn build(seed: u64, quotas: Quotas, propagation: Duration) -> Self {
        let _ = log_buffer();
        let api = ApiDouble::new();
        for crd in [
            "signingkeygroups.keyfront.dev.yaml",
            "cloudfrontaccounts.keyfront.dev.yaml",
        ] {
            api.create_from_yaml(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("crds")
                    .join(crd),
            )
            .unwrap();
        }
        api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KEYRING_NAMESPACE}}))
            .unwrap();
        // These tests are about the rotation protocol: one account admitting every namespace,
        // distribution and behavior, honouring the public opt-in. Grants have their own tests.
        api.create(json!({
            "apiVersion": "keyfront.dev/v1alpha1",
            "kind": "CloudFrontAccount",
            "metadata": {"name": "default"},
            "spec": {
                "allowedNamespaces": {"from": "All"},
                "distributions": [{"id": "*", "defaultCacheBehavior": true, "pathPatterns": ["*"], "allowPublicOnDetach": true}],
            },
        }))
        .unwrap();
        let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let emulator = Emulator::new(
            ModelSettings {
                propagation_delay: propagation,
                quotas,
                seed: Some(seed),
            },
            FaultSettings {
                seed: Some(seed),
                ..FaultSettings::default()
            },
            Arc::new(clock.clone()),
        );
        let switch: Arc<CrashSwitch> = Arc::default();
        let events = Events::new(
            tapped_client(&api, switch.clone()),
            Reporter {
                controller: "keyfront".into(),
                instance: None,
            },
        );
        Self {
            events,
            switch,
            api,
            clock,
            emulator,
            calls: Arc::default(),
            config: ReconcilerConfig {
                cluster_id: CLUSTER_ID.into(),
                install_claim: names::install_claim("harness-kube-system"),
                keyring_namespace: KEYRING_NAMESPACE.into(),
                propagation_poll: Duration::from_secs(15),
                resync: Duration::from_secs(3600),
                max_passes: 16,
                // Tests request rotations at once after another on a hand-moved clock; the
                // floor has its own tests (reconcile::plan).
                min_rotation_interval: Duration::ZERO,
                plan_account_capacity: true,
            },
            error_texts: Vec::new(),
            history: History::default(),
            budgeted: None,
            capacity: Default::default(),
        }
    }

    pub fn clock_now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    pub fn client(&self) -> kube::Client {
        tapped_client(&self.api, self.switch.clone())
    }

    /// A plain client for the test's own reads and writes (never crashed).
    pub fn admin(&self) -> kube::Client {
        self.api.client()
    }

    fn tap(&self) -> Tap {
        Hooked {
            inner: self.emulator.clone(),
            hook: TapHook {
                switch: self.switch.clone(),
                calls: self.calls.clone(),
            },
        }
    }

    fn context_with<A>(&self, accounts: A) -> Arc<Context<A>> {
        Arc::new(Context {
            events: self.events.clone(),
            client: self.client(),
            accounts,
            clock: Arc::new(self.clock.clone()),
            config: self.config.clone(),
            leadership: keyfront::leader::Leadership::sole(),
            capacity: self.capacity.clone(),
        })
    }

    pub fn context(&self) -> Arc<Context<Tap>> {
        self.context_with(self.tap())
    }

    /// From now on, reconciles reach CloudFront through the call budget as `keyfront run`'s
    /// do (remembered distribution reads; rates high and no coalescing window, so the
    /// manual clock stays in charge).
    pub fn through_the_budget(&mut self) {
        self.budgeted = Some(BudgetedAccounts::new(
            self.tap(),
            BudgetSettings {
                reads: Rate {
                    per_second: 1e6,
                    burst: 1_000_000,
                },
                writes: Rate {
                    per_second: 1e6,
                    burst: 1_000_000,
                },
                coalesce_window: Duration::ZERO,
                ..BudgetSettings::default()
            },
        ));
    }

    pub fn distribution(&self, id: &str, path_patterns: &[&str]) {
        self.emulator
            .create_test_distribution_with_id(id, path_patterns)
            .unwrap();
    }

    pub async fn apply(&self, object: Value) {
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        let mut object = object;
        object["apiVersion"] = json!("keyfront.dev/v1alpha1");
        object["kind"] = json!("SigningKeyGroup");
        self.objects()
            .patch(
                &name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(object),
            )
            .await
            .unwrap();
    }

    pub async fn annotate(&self, name: &str, key: &str, value: &str) {
        self.objects()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})),
            )
            .await
            .unwrap();
    }

    pub async fn delete(&self, name: &str) {
        self.objects()
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }

    pub fn objects(&self) -> Api<SigningKeyGroup> {
        Api::namespaced(self.admin(), NAMESPACE)
    }

    pub fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.admin(), NAMESPACE)
    }

    /// The owner token keyfront marks `name`'s keyring and CloudFront objects with.
    pub fn owner(&self, name: &str) -> String {
        names::owner_token(CLUSTER_ID, NAMESPACE, name)
    }

    pub fn keyrings(&self) -> Api<Secret> {
        Api::namespaced(self.admin(), KEYRING_NAMESPACE)
    }

    pub async fn object(&self, name: &str) -> Option<SigningKeyGroup> {
        self.objects().get_opt(name).await.unwrap()
    }

    pub async fn status(&self, name: &str) -> SigningKeyGroupStatus {
        self.object(name)
            .await
            .and_then(|o| o.status)
            .unwrap_or_default()
    }

    /// The reason of a condition, if set.
    pub async fn condition(&self, name: &str, type_: &str) -> Option<(String, String)> {
        self.status(name)
            .await
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status, c.reason))
    }

    pub async fn is_ready(&self, name: &str) -> bool {
        self.condition(name, reasons::READY).await
            == Some(("True".into(), reasons::SIGNING_KEY_ACTIVE.into()))
    }

    /// One reconcile of `name`, as the controller would run it.
    pub async fn reconcile(&mut self, name: &str) -> Option<Result<Outcome, reconcile::Error>> {
        let object = self.object(name).await?;
        let object = Arc::new(object);
        let result = match &self.budgeted {
            Some(budgeted) => {
                reconcile::reconcile(object, self.context_with(budgeted.clone())).await
            }
            None => reconcile::reconcile(object, self.context()).await,
        };
        if let Err(e) = &result {
            self.error_texts.push(e.detail());
        }
        Some(result)
    }

    /// Reconciles, sleeping (on the manual clock) as the controller would between passes,
    /// until `done` holds or `limit` reconciles ran. Checks I1, I2, I4–I6 after each.
    pub async fn run_until(
        &mut self,
        name: &str,
        limit: usize,
        mut done: impl AsyncFnMut(&World) -> bool,
    ) -> bool {
        for _ in 0..limit {
            let outcome = self.reconcile(name).await;
            self.check_invariants(name).await;
            if self.switch.crashed() {
                // The operator died mid-reconcile; the next reconcile is a fresh process.
                self.switch.restart();
            }
            if done(self).await {
                return true;
            }
            match outcome {
                None | Some(Ok(Outcome::AwaitChange | Outcome::Unsettled)) => {
                    self.clock.advance(Duration::from_secs(1));
                }
                Some(Ok(Outcome::Requeue(after) | Outcome::Blocked(after))) => {
                    self.clock.advance(after)
                }
                Some(Err(_)) => self.clock.advance(Duration::from_secs(2)),
            }
        }
        false
    }

    /// Reconciles as the controller would for five minutes of clock time (well short of any
    /// rotation in these tests), never sleeping past that.
    pub async fn settle(&mut self, name: &str) {
        let end = self.clock.now() + jiff::SignedDuration::from_mins(5);
        for _ in 0..30 {
            let outcome = self.reconcile(name).await;
            self.check_invariants(name).await;
            let left = end.duration_since(self.clock.now()).unsigned_abs();
            if self.clock.now() >= end {
                return;
            }
            let sleep = match outcome {
                Some(Ok(Outcome::Requeue(after))) => after,
                _ => Duration::from_secs(2),
            };
            self.clock.advance(sleep.min(left));
        }
    }

    pub async fn until_ready(&mut self, name: &str) {
        let ok = self
            .run_until(name, 100, async |w: &World| w.is_ready(name).await)
            .await;
        assert!(
            ok,
            "{name} never became Ready: {:#?}",
            self.status(name).await
        );
    }

    pub async fn until_gone(&mut self, name: &str) {
        let ok = self
            .run_until(name, 100, async |w: &World| w.object(name).await.is_none())
            .await;
        assert!(
            ok,
            "{name} was never deleted: {:#?}",
            self.object(name).await
        );
    }

    pub async fn app_secret(&self, secret_name: &str) -> Option<BTreeMap<String, String>> {
        let secret = self.secrets().get_opt(secret_name).await.unwrap()?;
        Some(
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
                .collect(),
        )
    }

    /// The `key_pair_id` the app Secret `secret_name` tells apps to sign with, if it exists.
    pub async fn key_pair_id(&self, secret_name: &str) -> Option<String> {
        self.app_secret(secret_name)
            .await
            .map(|s| s["key_pair_id"].clone())
    }

    /// The app Secret's data, if keyfront's marker for `owner` is on it.
    async fn owned_app_secret(&self, name: &str, owner: &str) -> Option<BTreeMap<String, String>> {
        let secret = self.secrets().get_opt(name).await.unwrap()?;
        let owned = secret
            .annotations()
            .get(names::OWNER_ANNOTATION)
            .is_some_and(|v| v == owner);
        if !owned {
            return None;
        }
        self.app_secret(name).await
    }

    pub async fn keyring_secret(&self, owner: &str) -> Option<Secret> {
        self.keyrings()
            .get_opt(&names::keyring_secret_name(owner))
            .await
            .unwrap()
    }

    /// The owned key group of `owner`, found by its marker.
    pub fn key_group_of(&self, owner: &str) -> Option<(String, Vec<String>)> {
        let model = self.emulator.model();
        model
            .list_key_groups()
            .into_iter()
            .find(|g| names::is_owned_comment(g.config.comment.as_deref(), owner))
            .map(|g| (g.id.clone(), g.config.items.clone()))
    }

    /// CloudFront public keys named for `owner`.
    pub fn public_keys_of(&self, owner: &str) -> BTreeMap<String, String> {
        let model = self.emulator.model();
        model
            .list_public_keys()
            .into_iter()
            .filter(|k| names::serial_of_public_key(owner, &k.config.name).is_some())
            .map(|k| (k.id.clone(), k.config.encoded_key.clone()))
            .collect()
    }

    /// Every private key stored for `owner` (keyring and app Secret), by public fingerprint.
    async fn stored_private_keys(
        &self,
        owner: &str,
        secret_name: &str,
    ) -> BTreeMap<String, String> {
        let mut pems = Vec::new();
        if let Some(keyring) = self.keyring_secret(owner).await {
            for (k, v) in keyring.data.unwrap_or_default() {
                if k.ends_with(".pem") {
                    pems.push(String::from_utf8(v.0).unwrap());
                }
            }
        }
        if let Some(app) = self.owned_app_secret(secret_name, owner).await
            && let Some(pem) = app.get("private_key.pem")
        {
            pems.push(pem.clone());
        }
        pems.into_iter()
            .map(|pem| (private_fingerprint(&pem), pem))
            .collect()
    }

    /// Declares keys that an adopted group held before keyfront (exempt from I1).
    pub fn allow_foreign_keys(&mut self, ids: &[String]) {
        self.history.foreign_keys.extend(ids.iter().cloned());
    }

    pub fn mark_revoked(&mut self, key_id: &str) {
        self.history.revoked.insert(key_id.to_owned());
    }

    /// I1, I2, I4, I5 and I6 for the object called `name` (I3 is checked after convergence
    /// by [`World::assert_no_orphans`]).
    pub async fn check_invariants(&mut self, name: &str) {
        let Some(object) = self.object(name).await else {
            return;
        };
        let owner = self.owner(&object.name_any());
        let secret_name = keyfront::reconcile::plan::secret_name(
            &object.spec,
            &reconcile::subject_of(&object, CLUSTER_ID),
        );
        let now = self.clock.now();
        let stored = self.stored_private_keys(&owner, &secret_name).await;
        self.history.private_keys.extend(stored.values().cloned());
        let public_keys = self.public_keys_of(&owner);
        let group = self.key_group_of(&owner);
        let items: BTreeSet<String> = group
            .as_ref()
            .map(|(_, items)| items.iter().cloned().collect())
            .unwrap_or_default();

        // I6
        assert!(items.len() <= 5, "I6: key group holds {} keys", items.len());
        // I1
        for id in items
            .iter()
            .filter(|id| !self.history.foreign_keys.contains(*id))
        {
            let encoded = public_keys
                .get(id)
                .unwrap_or_else(|| panic!("group item {id} is not one of this object's keys"));
            let fingerprint = keyfront::keys::fingerprint(encoded).unwrap();
            assert!(
                stored.contains_key(&fingerprint),
                "I1: public key {id} is in the group but its private key is not stored"
            );
        }
        // I2
        let app = self.owned_app_secret(&secret_name, &owner).await;
        let signing_id = app
            .as_ref()
            .filter(|s| {
                s.contains_key("private_key.pem") && object.metadata.deletion_timestamp.is_none()
            })
            .and_then(|s| s.get("key_pair_id").cloned());
        if let (Some(id), Some(app)) = (&signing_id, &app) {
            assert!(
                items.contains(id),
                "I2: Secret signs with {id}, not in the group {items:?}"
            );
            let pem = &app["private_key.pem"];
            let fingerprint = keyfront::keys::fingerprint(&public_keys[id]).unwrap();
            assert_eq!(
                private_fingerprint(pem),
                fingerprint,
                "I2: the Secret's private key does not match key {id}"
            );
            let (kg_id, _) = group.as_ref().unwrap();
            let model = self.emulator.model();
            for dist in model.list_distributions() {
                let trusted = dist
                    .deployed
                    .behaviors
                    .iter()
                    .any(|b| b.trusted_key_groups.contains(kg_id));
                if trusted {
                    let live = dist
                        .deployed
                        .key_groups
                        .get(kg_id)
                        .cloned()
                        .unwrap_or_default();
                    assert!(
                        live.contains(id),
                        "I2: distribution {} trusts {kg_id} at the edge but does not verify {id} (edge has {live:?})",
                        dist.id
                    );
                }
            }
        }
        // I4
        let history = &mut self.history;
        for (id, stopped) in history.stopped_signing_at.iter_mut() {
            if signing_id.as_ref() != Some(id) && stopped.is_none() {
                *stopped = Some(now);
            }
        }
        if let Some(id) = &signing_id {
            history.stopped_signing_at.insert(id.clone(), None);
        }
        let grace = grace_of(&object);
        for left in history.in_group.difference(&items) {
            if history.revoked.contains(left) || object.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if let Some(Some(stopped)) = history.stopped_signing_at.get(left) {
                let since = now.duration_since(*stopped).unsigned_abs();
                assert!(
                    since >= grace,
                    "I4: key {left} left the group {since:?} after apps stopped signing with it (grace {grace:?})"
                );
            }
            assert!(
                history.stopped_signing_at.get(left) != Some(&None),
                "I4: key {left} left the group while apps still sign with it"
            );
        }
        history.in_group = items;
        // I5
        let status = serde_json::to_string(&object.status).unwrap();
        self.assert_no_key_material("status", &status);
        let events = self.events_text().await;
        self.assert_no_key_material("events", &events);
    }

    /// I5: no private key (any 24-character run of its PEM body) appears in `text`.
    pub fn assert_no_key_material(&self, what: &str, text: &str) {
        for pem in &self.history.private_keys {
            for line in pem
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() >= 24)
            {
                assert!(
                    !text.contains(&line[..24]),
                    "I5: private key material found in {what}"
                );
            }
        }
    }

    /// Logs and reconcile error texts seen so far, checked for key material.
    pub fn check_logs_and_errors(&self) {
        self.assert_no_key_material("logs", &captured_logs());
        self.assert_no_key_material("error messages", &self.error_texts.join("\n"));
    }

    /// The notes and reasons of every Event in the namespace.
    pub async fn events_text(&self) -> String {
        self.events()
            .await
            .into_iter()
            .map(|(reason, note)| format!("{reason}: {note}\n"))
            .collect()
    }

    /// (reason, note) of every Event in the namespace, oldest first.
    pub async fn events(&self) -> Vec<(String, String)> {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.admin(), NAMESPACE);
        api.list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }

    /// I3: nothing of `owner` is left in CloudFront, and no distribution trusts a group of it.
    pub fn assert_no_orphans(&self, owner: &str) {
        assert_eq!(self.key_group_of(owner), None, "I3: key group left behind");
        assert!(
            self.public_keys_of(owner).is_empty(),
            "I3: public keys left behind: {:?}",
            self.public_keys_of(owner)
        );
    }

    /// After convergence: the public keys of `owner` are exactly the group's items.
    pub fn assert_only_group_keys(&self, owner: &str) {
        let (_, items) = self.key_group_of(owner).expect("a key group");
        let keys: BTreeSet<String> = self.public_keys_of(owner).into_keys().collect();
        let items: BTreeSet<String> = items.into_iter().collect();
        assert_eq!(keys, items, "I3: public keys outside the group");
    }

    /// Key groups trusted by each behavior of a distribution, as configured.
    /// The domain name of distribution `id`.
    pub fn host(&self, id: &str) -> String {
        self.emulator
            .model()
            .get_distribution(id)
            .unwrap()
            .domain_name
            .clone()
    }

    /// A canned URL for `path` on distribution `id`, signed with `pem` as key `key_id`, valid
    /// for `lifetime` seconds from now (the world's clock); returned as path and query.
    pub fn sign(&self, id: &str, pem: &str, key_id: &str, path: &str, lifetime: i64) -> String {
        let signer = keyfront::signer::Signer::from_pem(pem.as_bytes(), key_id, None).unwrap();
        let url = format!("https://{}{path}", self.host(id));
        let expires = self.clock_now().as_second() + lifetime;
        let signed = signer
            .sign_url(&url, &keyfront::signer::Policy::canned(&url, expires))
            .unwrap();
        signed[signed.find(path).unwrap()..].to_owned()
    }

    /// What the verifying edge of distribution `id` says about `path_and_query` now.
    pub fn edge(&self, id: &str, path_and_query: &str) -> Result<(), String> {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::HOST,
            axum::http::HeaderValue::from_str(&self.host(id)).unwrap(),
        );
        keyfront::emulator::edge::verify(&mut self.emulator.model(), &headers, path_and_query, None)
            .map_err(|denial| denial.to_string())
    }

    pub fn trust_of(&self, distribution_id: &str) -> Vec<BehaviorTrust> {
        self.emulator
            .model()
            .get_distribution(distribution_id)
            .unwrap()
            .behaviors()
    }
}

/// SHA-256 of the public half (SPKI DER) of a private key, as `keys::fingerprint` computes it.
pub fn private_fingerprint(pem: &str) -> String {
    let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
    Sha256::digest(key.public_key_der().unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn grace_of(object: &SigningKeyGroup) -> Duration {
    let r = &object.spec.rotation;
    keyfront::api::parse_duration(&r.secret_refresh_allowance).unwrap()
        + keyfront::api::parse_duration(&r.max_signed_url_lifetime).unwrap()
}

/// A SigningKeyGroup manifest with ECDSA keys (fast to generate) and the given rotation.
pub fn manifest(name: &str, rotation: Value, distributions: Value) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "key": {"algorithm": "ECDSAP256"},
            "rotation": rotation,
            "distributions": distributions,
        }
    })
}

/// Rotation every hour; URLs live 10 minutes; pods refresh within 2 minutes; no extra wait.
pub fn hourly() -> Value {
    json!({
        "interval": "1h",
        "maxSignedUrlLifetime": "10m",
        "secretRefreshAllowance": "2m",
        "minPropagationWait": "0s",
    })
}
