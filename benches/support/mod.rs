//! What the operator benches share: the emulator and the API double set up for keyfront, an
//! object's manifest, CloudFront calls counted, the operator's settings, and applying many
//! objects at once.

#![allow(dead_code)] // each bench uses its own part of it

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyfront::api::SigningKeyGroup;
use keyfront::clock::SystemClock;
use keyfront::cloudfront::budget::BudgetSettings;
use keyfront::cloudfront::hooked::{Call, CallHook, Class, Hooked};
use keyfront::cloudfront::{ErrorKind, Result};
use keyfront::emulator::Emulator;
use keyfront::emulator::faults::FaultSettings;
use keyfront::emulator::model::{ModelSettings, Quotas};
use keyfront::runtime::OperatorSettings;
use kube::Api;
use kube_api_double::ApiDouble;
use serde_json::json;

/// The emulator with AWS's quotas raised as AWS raises them on request (200 key groups need
/// more than the default 10), deploying in 1 s.
pub fn emulator() -> Emulator {
    emulator_with(FaultSettings::default())
}

/// [`emulator`], answering as `faults` says (CloudFront's pace, for one).
pub fn emulator_with(faults: FaultSettings) -> Emulator {
    Emulator::new(
        ModelSettings {
            propagation_delay: Duration::from_secs(1),
            quotas: Quotas {
                public_keys: 2_000,
                key_groups: 1_000,
                ..Quotas::default()
            },
            seed: None,
        },
        faults,
        Arc::new(SystemClock),
    )
}

/// The API double with keyfront's CRDs, the keyring namespace and an account admitting all,
/// with the emulator's raised quotas (keyfront plans the account's public keys by them).
pub fn double() -> ApiDouble {
    let api = ApiDouble::new();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in [
        "crds/signingkeygroups.keyfront.dev.yaml",
        "crds/cloudfrontaccounts.keyfront.dev.yaml",
    ] {
        api.create_from_yaml(&repo.join(file)).unwrap();
    }
    let mut account: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo.join("examples/accounts/single-team.yaml")).unwrap(),
    )
    .unwrap();
    account["spec"]["quotas"] = json!({"publicKeys": 2_000, "keyGroups": 1_000});
    api.create(account).unwrap();
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": keyfront::reconcile::ReconcilerConfig::default().keyring_namespace}}))
        .unwrap();
    api
}

pub fn object(name: &str, algorithm: &str) -> serde_json::Value {
    json!({
        "apiVersion": "keyfront.dev/v1alpha1",
        "kind": "SigningKeyGroup",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"key": {"algorithm": algorithm}, "rotation": {"interval": "720h", "maxSignedUrlLifetime": "1h"}},
    })
}

pub fn is_ready(object: &SigningKeyGroup) -> bool {
    object.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// The emulator with its calls counted.
pub type Counted = Hooked<Emulator, Counts>;

#[derive(Clone, Default)]
pub struct Counts {
    pub reads: Arc<AtomicUsize>,
    pub writes: Arc<AtomicUsize>,
    /// Every reconcile pass reads the key group exactly once: this counts passes.
    pub key_group_reads: Arc<AtomicUsize>,
    pub distribution_updates: Arc<AtomicUsize>,
    /// Calls CloudFront throttled (the emulator's `--pace`).
    pub throttled: Arc<AtomicUsize>,
    /// Calls by operation.
    pub operations: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

impl Counts {
    /// Calls by operation so far.
    pub fn by_operation(&self) -> BTreeMap<&'static str, usize> {
        self.operations.lock().unwrap().clone()
    }
}

impl CallHook for Counts {
    async fn around<T: Send>(
        &self,
        call: Call,
        run: impl Future<Output = Result<T>> + Send,
    ) -> Result<T> {
        let counter = match call.class {
            Class::Read => &self.reads,
            Class::Write => &self.writes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        *self
            .operations
            .lock()
            .unwrap()
            .entry(call.operation)
            .or_default() += 1;
        match call.operation {
            "GetKeyGroup" => self.key_group_reads.fetch_add(1, Ordering::Relaxed),
            "UpdateDistribution" => self.distribution_updates.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let result = run.await;
        if result
            .as_ref()
            .is_err_and(|e| e.kind == ErrorKind::Throttled)
        {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

pub fn counted(inner: Emulator) -> Counted {
    Hooked {
        inner,
        hook: Counts::default(),
    }
}

pub fn settings(concurrency: u16, resync: Duration, budget: BudgetSettings) -> OperatorSettings {
    OperatorSettings {
        namespaces: vec![],
        concurrency,
        reconciler: keyfront::reconcile::ReconcilerConfig {
            propagation_poll: Duration::from_millis(500),
            resync,
            ..Default::default()
        },
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(5),
        health_listen: None,
        metrics_auth: keyfront::runtime::MetricsAuth::None,
        leader_election: None,
        budget,
    }
}

/// Creates `objects` SigningKeyGroups at once, four per cache behavior of `distributions`
/// (each with a default behavior and `paths`), and waits until all are Ready.
pub async fn apply_all(
    api: &ApiDouble,
    distributions: &[String],
    paths: &[String],
    objects: usize,
) -> Duration {
    let start = Instant::now();
    for n in 0..objects {
        let mut manifest = object(&format!("budget-{n}"), "ECDSAP256");
        let distribution = &distributions[n / (4 * (paths.len() + 1))];
        let slot = (n / 4) % (paths.len() + 1);
        manifest["spec"]["distributions"] = if slot == 0 {
            json!([{"id": distribution, "defaultCacheBehavior": true}])
        } else {
            json!([{"id": distribution, "defaultCacheBehavior": false, "pathPatterns": [paths[slot - 1]]}])
        };
        api.create(manifest).unwrap();
    }
    let all: Api<SigningKeyGroup> = Api::namespaced(api.client(), "default");
    loop {
        let list = all.list(&Default::default()).await.unwrap();
        if list.items.iter().filter(|o| is_ready(o)).count() == objects {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "never all Ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs keyfront's operator until the returned sender fires.
pub fn start(
    api: &ApiDouble,
    cloudfront: &Counted,
    operator: keyfront::runtime::OperatorSettings,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(keyfront::runtime::run(
        api.client(),
        cloudfront.clone(),
        operator,
        async move {
            let _ = stopped.await;
        },
    ));
    (stop, running)
}
