//! The capacity run (issue 20): one AWS account at CloudFront's default quotas (10 public keys,
//! 10 key groups) serving 8 SigningKeyGroups that rotate with an interval 22× their grace,
//! with `keyfront run`'s reconciler in process against the API double and the emulator.
//!
//! Asserted: no CloudFront call answered `QuotaExceeded`; no signed request rejected at the
//! edge (each object's app signs with its Secret's key all along); the account's public keys
//! never above the quota less the revocation reserve; a 9th object refused at once with
//! `AccountCapacityExceeded`, nothing created; and with the account then filled to its reserve
//! by keys made elsewhere, a revocation still completes. Printed: how late each rotation was
//! against the schedule its status announced (`nextRotationTime`), the peak of keys, and how
//! long the revocation took. With one key to spare beyond the 8 objects' own and the reserve,
//! rotations take turns, each holding the spare key for its grace, two deployments and a few
//! polls (about 9 s here, so 8 of them fit in the 90 s interval); the planner staggers them
//! ahead of time ([`keyfront::reconcile::capacity::stagger`]). The first round fits less well:
//! the 8 first keys, made together through one write budget, took longer to go live than a
//! rotation's key does, so their first rotations publish earlier and hold the spare key
//! longer. Lateness is a figure against the goal of interval ÷ objects; only a gross miss (half
//! an interval) fails the run, since the machine's load moves it.
//!
//! CI runs 5 rotations per object (about 8 minutes). By hand, more, and the same run with the
//! planner off for comparison:
//! `KEYFRONT_CAPACITY_ROTATIONS=10 KEYFRONT_CAPACITY_COMPARE=1 cargo test --release --test it
//! operator::capacity_run -- --nocapture`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::HeaderMap;
use k8s_openapi::api::core::v1::Secret;
use keyfront::api::SigningKeyGroup;
use keyfront::clock::SystemClock;
use keyfront::cloudfront::hooked::{Call, CallHook, Hooked};
use keyfront::cloudfront::{CloudFront as _, ErrorKind, NewPublicKey, Result};
use keyfront::emulator::Emulator;
use keyfront::emulator::faults::FaultSettings;
use keyfront::emulator::model::ModelSettings;
use keyfront::reconcile::{ReconcilerConfig, capacity, names, reasons};
use keyfront::runtime::OperatorSettings;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube_api_double::ApiDouble;
use serde_json::json;

use super::tenancy_e2e::sign;
use crate::support::{ready, wait_for};

const OBJECTS: usize = 8;
/// The rotation interval, 22× the grace below (3 s of URL lifetime, 1 s of Secret refresh).
const INTERVAL: Duration = Duration::from_secs(90);
const PROPAGATION: Duration = Duration::from_secs(1);
const QUOTA: usize = 10;

fn rotations_wanted() -> usize {
    std::env::var("KEYFRONT_CAPACITY_ROTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
}

/// Counts CloudFront's `QuotaExceeded` answers.
#[derive(Clone, Default)]
struct QuotaAnswers(Arc<AtomicUsize>);

impl CallHook for QuotaAnswers {
    async fn around<T: Send>(
        &self,
        _call: Call,
        run: impl Future<Output = Result<T>> + Send,
    ) -> Result<T> {
        let result = run.await;
        if result
            .as_ref()
            .is_err_and(|e| e.kind == ErrorKind::QuotaExceeded)
        {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

fn double() -> ApiDouble {
    let api = ApiDouble::new();
    let repo = crate::support::repo("");
    for file in [
        "crds/signingkeygroups.keyfront.dev.yaml",
        "crds/cloudfrontaccounts.keyfront.dev.yaml",
    ] {
        api.create_from_yaml(&repo.join(file)).unwrap();
    }
    let account: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo.join("examples/accounts/single-team.yaml")).unwrap(),
    )
    .unwrap();
    api.create(account).unwrap();
    let keyrings = ReconcilerConfig::default().keyring_namespace;
    api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": keyrings}}))
        .unwrap();
    api
}

fn object(n: usize, distribution: &str) -> serde_json::Value {
    json!({
        "apiVersion": "keyfront.dev/v1alpha1",
        "kind": "SigningKeyGroup",
        "metadata": {"name": format!("tenant-{n}"), "namespace": "default"},
        "spec": {
            "key": {"algorithm": "ECDSAP256"},
            "rotation": {
                "interval": format!("{}s", INTERVAL.as_secs()),
                "maxSignedUrlLifetime": "3s",
                "secretRefreshAllowance": "1s",
                "minPropagationWait": "0s",
            },
            "distributions": [{"id": distribution, "defaultCacheBehavior": true}],
        },
    })
}

/// Whether the edge accepts a URL on `host` signed with the key in `secret`.
fn edge_accepts(emulator: &Emulator, host: &str, secret: &Secret, n: u64) -> bool {
    let signed = sign(secret, host, &format!("/v/{n}.ts"));
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, host.parse().unwrap());
    keyfront::emulator::edge::verify(&mut emulator.model(), &headers, &signed, None).is_ok()
}

/// What one run saw.
#[derive(Debug, Default)]
struct Figures {
    quota_answers: usize,
    signed: u64,
    rejected: u64,
    peak_keys: usize,
    /// How late each rotation took over against its schedule, by round (first rotation of
    /// every object, second, ...).
    lateness: BTreeMap<usize, Vec<Duration>>,
    ninth_refused: Option<String>,
    revocation: Option<Duration>,
    /// Why the rotations stopped before the run's end (the planner off only).
    stalled: Option<String>,
}

/// Each object's last seen (active key, when it became active, when the next is due).
type Seen = (String, jiff::Timestamp, jiff::Timestamp);

async fn run(planning: bool) -> Figures {
    let api = double();
    let emulator = Emulator::new(
        ModelSettings {
            propagation_delay: PROPAGATION,
            ..ModelSettings::default()
        },
        FaultSettings::default(),
        Arc::new(SystemClock),
    );
    let distributions: Vec<String> = (0..=OBJECTS)
        .map(|_| emulator.create_test_distribution(&[]).unwrap())
        .collect();
    let hosts: BTreeMap<String, String> = emulator
        .model()
        .list_distributions()
        .iter()
        .map(|d| (d.id.clone(), d.domain_name.clone()))
        .collect();
    let quota_answers = QuotaAnswers::default();
    let cloudfront = Hooked {
        inner: emulator.clone(),
        hook: quota_answers.clone(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(keyfront::runtime::run(
        api.client(),
        cloudfront,
        OperatorSettings {
            namespaces: Vec::new(),
            concurrency: 8,
            reconciler: ReconcilerConfig {
                propagation_poll: Duration::from_millis(500),
                min_rotation_interval: Duration::from_secs(1),
                plan_account_capacity: planning,
                ..ReconcilerConfig::default()
            },
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            health_listen: None,
            metrics_auth: keyfront::runtime::MetricsAuth::None,
            leader_election: None,
            budget: keyfront::cloudfront::budget::BudgetSettings::default(),
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let objects: Api<SigningKeyGroup> = Api::namespaced(api.client(), "default");
    let secrets: Api<Secret> = Api::namespaced(api.client(), "default");
    for (n, distribution) in distributions.iter().take(OBJECTS).enumerate() {
        api.create(object(n, distribution)).unwrap();
    }
    let names: Vec<String> = (0..OBJECTS).map(|n| format!("tenant-{n}")).collect();
    wait_for("all 8 Ready", Duration::from_secs(60), async || {
        let mut all = true;
        for name in &names {
            all &= ready(&objects, name).await;
        }
        all
    })
    .await;

    let mut figures = Figures::default();
    // The 9th object: refused at once, nothing created.
    api.create(object(OBJECTS, &distributions[OBJECTS]))
        .unwrap();
    let ninth = format!("tenant-{OBJECTS}");
    wait_for(
        "the 9th refused or admitted",
        Duration::from_secs(20),
        async || {
            objects
                .get(&ninth)
                .await
                .ok()
                .and_then(|o| o.status)
                .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == reasons::READY))
        },
    )
    .await;
    let ninth_ready = objects.get(&ninth).await.unwrap().status.unwrap();
    let ninth_ready = ninth_ready
        .conditions
        .iter()
        .find(|c| c.type_ == reasons::READY)
        .unwrap();
    figures.ninth_refused = (ninth_ready.reason == reasons::ACCOUNT_CAPACITY_EXCEEDED)
        .then(|| ninth_ready.message.clone());

    // Rotations, with every object's app signing all along.
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    let mut rotations: BTreeMap<String, usize> = BTreeMap::new();
    let wanted = rotations_wanted();
    let started = Instant::now();
    let limit = INTERVAL * u32::try_from(wanted + 1).unwrap() + Duration::from_secs(60);
    while rotations.values().filter(|r| **r >= wanted).count() < OBJECTS {
        if started.elapsed() > limit {
            let mut not_ready = Vec::new();
            for name in &names {
                let status = objects.get(name).await.unwrap().status.unwrap();
                if let Some(c) = status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == reasons::READY && c.status != "True")
                {
                    not_ready.push(format!("{name} {}: {}", c.reason, c.message));
                }
            }
            let stalled = format!(
                "rotations after {:.0} s: {rotations:?}; not Ready: {not_ready:?}",
                started.elapsed().as_secs_f64()
            );
            assert!(!planning, "{stalled}");
            figures.stalled = Some(stalled);
            break;
        }
        for (n, name) in names.iter().enumerate() {
            let status = objects.get(name).await.unwrap().status.unwrap();
            let (Some(active), Some(last), Some(next)) = (
                status.active_key_id.clone(),
                status.last_rotation_time.as_ref().map(|t| t.0),
                status.next_rotation_time.as_ref().map(|t| t.0),
            ) else {
                continue;
            };
            if let Some((before, _, due)) = seen.get(name)
                && *before != active
            {
                let round = rotations.entry(name.clone()).or_default();
                *round += 1;
                let late = last.duration_since(*due).as_secs_f64().max(0.0);
                figures
                    .lateness
                    .entry(*round)
                    .or_default()
                    .push(Duration::from_secs_f64(late));
            }
            seen.insert(name.clone(), (active, last, next));
            let secret = secrets
                .get(&format!("{name}-cloudfront-key"))
                .await
                .unwrap();
            let host = &hosts[&distributions[n]];
            figures.signed += 1;
            if !edge_accepts(&emulator, host, &secret, figures.signed) {
                figures.rejected += 1;
            }
        }
        figures.peak_keys = figures
            .peak_keys
            .max(emulator.model().list_public_keys().len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    if figures.stalled.is_some() {
        figures.quota_answers = quota_answers.0.load(Ordering::Relaxed);
        let _ = stop.send(());
        operator.await.unwrap().unwrap();
        return figures;
    }
    // Revocation under pressure: keys made elsewhere fill the account to its reserve.
    let used = emulator.model().list_public_keys().len();
    let pem =
        std::fs::read_to_string(crate::support::repo("tests/fixtures/keys/ec-1.pub.pem")).unwrap();
    for n in used..QUOTA - capacity::RESERVE as usize {
        let name = format!("elsewhere-{n}");
        emulator
            .create_public_key(&NewPublicKey {
                name: name.clone(),
                encoded_key: pem.clone(),
                comment: None,
                caller_reference: name,
            })
            .await
            .unwrap();
    }
    let revoked = seen[&names[0]].0.clone();
    let patch = json!({"metadata": {"annotations": {names::REVOKE_ANNOTATION: revoked}}});
    objects
        .patch(&names[0], &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let asked = Instant::now();
    let gone = async || {
        let model = emulator.model();
        !model.list_public_keys().iter().any(|k| k.id == revoked)
    };
    wait_for("the revoked key gone", Duration::from_secs(30), gone).await;
    figures.revocation = Some(asked.elapsed());
    figures.quota_answers = quota_answers.0.load(Ordering::Relaxed);
    let _ = stop.send(());
    operator.await.unwrap().unwrap();
    figures
}

/// Rotations late by more than `bound`, and all of them.
fn late_beyond(figures: &Figures, bound: Duration) -> (usize, usize) {
    let all: Vec<&Duration> = figures.lateness.values().flatten().collect();
    (all.iter().filter(|late| ***late > bound).count(), all.len())
}

fn summary(label: &str, figures: &Figures) {
    let goal = INTERVAL / OBJECTS as u32;
    let (late, rotations) = late_beyond(figures, goal);
    let rounds: Vec<String> = figures
        .lateness
        .iter()
        .map(|(round, late)| {
            let max = late.iter().max().copied().unwrap_or_default();
            format!("round {round}: max {:.1} s late", max.as_secs_f64())
        })
        .collect();
    println!(
        "capacity run ({label}): {OBJECTS} objects, interval {} s, quota {QUOTA}: {} QuotaExceeded answers, {} of {} signed requests rejected, peak {} public keys (quota less reserve: {}), rotations {} ({late} of {rotations} later than interval ÷ objects = {:.1} s); 9th object refused: {}; revocation with the account at its reserve: {:.1} s",
        INTERVAL.as_secs(),
        figures.quota_answers,
        figures.rejected,
        figures.signed,
        figures.peak_keys,
        QUOTA - capacity::RESERVE as usize,
        rounds.join(", "),
        INTERVAL.as_secs_f64() / OBJECTS as f64,
        figures.ninth_refused.is_some(),
        figures.revocation.unwrap_or_default().as_secs_f64(),
    );
    if let Some(stalled) = &figures.stalled {
        println!("  stalled: {stalled}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_objects_rotate_in_a_ten_key_account_without_a_quota_answer() {
    let figures = run(true).await;
    summary("planner on", &figures);
    assert_eq!(figures.quota_answers, 0, "{figures:?}");
    assert_eq!(figures.rejected, 0, "{figures:?}");
    assert!(
        figures.peak_keys <= QUOTA - capacity::RESERVE as usize,
        "{figures:?}"
    );
    let refused = figures.ninth_refused.as_deref().unwrap_or_default();
    assert!(refused.contains("public keys"), "{figures:?}");
    assert!(figures.revocation.is_some());
    let (grossly_late, _) = late_beyond(&figures, INTERVAL / 2);
    assert_eq!(
        grossly_late, 0,
        "rotations late by half an interval: {figures:?}"
    );
    if std::env::var_os("KEYFRONT_CAPACITY_COMPARE").is_some() {
        summary("planner off", &run(false).await);
    }
}
