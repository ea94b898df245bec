//! The CloudFront call budget, end to end: `keyfront run` against the API double and
//! `keyfront emulator`, counted by the emulator's request log (not by keyfront itself).
//!
//! On the API double: these measure CloudFront calls, and the cluster only has to hold the
//! objects; the in-process double creates 100 of them at once, where kubectl would take minutes.
//!
//! - Coalescing: 20 SigningKeyGroups applied at once attach to the five behaviors of one
//!   distribution with at most 2 UpdateDistribution calls (one per coalescing window they
//!   fall in), instead of 20 read-modify-writes racing on the ETag.
//! - Throttle storm: 100 SigningKeyGroups on 5 distributions while the emulator throttles
//!   half of all calls. They all become Ready; no second of the run has more attempts than
//!   the budget allows; the operator's budget gauge shows it slowed down; calls per object are
//!   printed and bounded; once Ready, the operator goes quiet (no hot loop).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use keyfront::api::SigningKeyGroup;
use keyfront::cloudfront::CloudFront as _;
use keyfront::emulator::accounts::RequestRecord;
use kube::Api;
use serde_json::json;

use crate::support::stack::Emulator;
use crate::support::{ShowLogOnFailure, free_port, wait_for};

const KEYRING_NAMESPACE: &str = "keyfront-system";
/// Four path patterns besides the default behavior: 5 behaviors × 4 key groups = 20 objects.
const PATHS: [&str; 4] = ["/p1/*", "/p2/*", "/p3/*", "/p4/*"];

/// The emulator with `distributions` (each with the default behavior and [`PATHS`]), quotas
/// high enough for every object, and `extra` flags.
async fn emulator(dir: &Path, distributions: &[String], extra: &[&str]) -> Emulator {
    let mut args = vec![
        "--propagation-delay",
        "1",
        "--max-public-keys",
        "1000",
        "--max-key-groups",
        "1000",
    ];
    let specs: Vec<String> = distributions
        .iter()
        .map(|id| format!("{id}={}", PATHS.join(",")))
        .collect();
    for spec in &specs {
        args.extend(["--distribution", spec]);
    }
    args.extend(extra);
    Emulator::start(dir, &args).await
}

/// The API double with keyfront installed, its `default` account stating the emulator's raised
/// quotas.
async fn cluster_for_many_objects(dir: &Path) -> crate::support::Cluster {
    let cluster = crate::support::Cluster::double(dir)
        .await
        .with_keyfront(KEYRING_NAMESPACE)
        .await;
    cluster.raise_default_account_quotas(1000, 1000).await;
    cluster
}

/// Object `n` of those on `distribution`: four per behavior.
fn object(name: &str, distribution: &str, n: usize) -> serde_json::Value {
    let slot = (n / 4) % 5;
    let entry = if slot == 0 {
        json!({"id": distribution, "defaultCacheBehavior": true})
    } else {
        json!({"id": distribution, "defaultCacheBehavior": false, "pathPatterns": [PATHS[slot - 1]]})
    };
    json!({
        "apiVersion": "keyfront.dev/v1alpha1",
        "kind": "SigningKeyGroup",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "key": {"algorithm": "ECDSAP256"},
            "rotation": {"interval": "720h", "maxSignedUrlLifetime": "1h"},
            "distributions": [entry],
        },
    })
}

async fn ready_count(objects: &Api<SigningKeyGroup>) -> usize {
    objects
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|o| {
            o.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .count()
}

/// CloudFront calls only (not STS), by keyfront.
fn cloudfront_calls(requests: &[RequestRecord]) -> Vec<&RequestRecord> {
    requests
        .iter()
        .filter(|r| r.operation != "AssumeRole" && r.operation != "GetCallerIdentity")
        .collect()
}

/// The most attempts of reads and of writes that arrived in any one-second window.
fn busiest_second(requests: &[&RequestRecord]) -> (usize, usize) {
    let mut busiest = (0, 0);
    for (i, first) in requests.iter().enumerate() {
        let window_end = first.at + Duration::from_secs(1);
        let in_window = requests[i..].iter().take_while(|r| r.at < window_end);
        let (writes, reads): (Vec<&&RequestRecord>, Vec<_>) =
            in_window.partition(|r| crate::support::is_cloudfront_write(&r.operation));
        busiest = (busiest.0.max(reads.len()), busiest.1.max(writes.len()));
    }
    busiest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_objects_attaching_to_one_distribution_make_at_most_two_updates() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster_for_many_objects(dir.path()).await;
    let (double, kubeconfig) = (cluster.api_double(), cluster.kubeconfig().to_owned());
    let emulator = emulator(dir.path(), &["ECOALESCE1".to_owned()], &[]).await;
    let cf = emulator.api;
    let log = dir.path().join("operator.log");
    let _show = ShowLogOnFailure(log.clone());
    // Enough concurrency that all 20 can wait in one window at once, and a write budget that
    // lets their key creations through quickly, so their attachments arrive together.
    let _operator = crate::support::operator(
        &kubeconfig,
        cf,
        &[
            "--keyring-namespace",
            KEYRING_NAMESPACE,
            "--concurrency",
            "20",
            "--cloudfront-write-rate",
            "50",
            "--cloudfront-write-burst",
            "50",
            "--cloudfront-read-rate",
            "100",
            "--cloudfront-read-burst",
            "100",
            "--coalesce-window",
            "3s",
        ],
        &log,
    );
    for n in 0..20 {
        double
            .create(object(&format!("attach-{n}"), "ECOALESCE1", n))
            .unwrap();
    }
    let objects: Api<SigningKeyGroup> = Api::namespaced(double.client(), "default");
    wait_for("20 objects Ready", Duration::from_secs(90), async || {
        ready_count(&objects).await == 20
    })
    .await;
    let requests = crate::support::emulator_requests(cf).await;
    let updates = requests
        .iter()
        .filter(|r| r.operation == "UpdateDistribution")
        .count();
    println!("20 objects attached to ECOALESCE1 with {updates} UpdateDistribution call(s)");
    assert!(
        (1..=2).contains(&updates),
        "{updates} UpdateDistribution calls for 20 attachments"
    );
    // And the distribution trusts all 20 key groups, four per behavior.
    let distribution = crate::support::cloudfront(cf)
        .get_distribution("ECOALESCE1")
        .await;
    let trusted: usize = distribution
        .unwrap()
        .value
        .behaviors
        .iter()
        .map(|b| b.trusted_key_groups.len())
        .sum();
    assert_eq!(trusted, 20);

    // Started without --cluster-id on a new install: the identity is the kube-system
    // namespace's UID, recorded, and it marks the CloudFront objects.
    let uid = Api::<k8s_openapi::api::core::v1::Namespace>::all(double.client())
        .get("kube-system")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    let recorded = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(
        double.client(),
        KEYRING_NAMESPACE,
    )
    .get(keyfront::runtime::identity::IDENTITY_CONFIG_MAP)
    .await
    .unwrap();
    assert_eq!(recorded.data.unwrap()["clusterId"], uid);
    let owner = keyfront::reconcile::names::owner_token(&uid, "default", "attach-0");
    let groups = crate::support::cloudfront(cf)
        .list_key_groups()
        .await
        .unwrap();
    assert!(
        groups
            .iter()
            .any(|g| keyfront::reconcile::names::is_owned_comment(
                g.config.comment.as_deref(),
                &owner
            )),
        "no key group marked with the kube-system UID's owner token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_objects_converge_through_a_throttle_storm_within_the_budget() {
    const OBJECTS: usize = 100;
    const READ_RATE: usize = 400;
    const WRITE_RATE: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster_for_many_objects(dir.path()).await;
    let (double, kubeconfig) = (cluster.api_double(), cluster.kubeconfig().to_owned());
    let distributions: Vec<String> = (1..=5).map(|n| format!("ESTORM{n}")).collect();
    let emulator = emulator(
        dir.path(),
        &distributions,
        &["--throttle-rate", "0.5", "--seed", "7"],
    )
    .await;
    let cf = emulator.api;
    let log = dir.path().join("operator.log");
    let _show = ShowLogOnFailure(log.clone());
    let health = free_port();
    let (read_rate, write_rate) = (READ_RATE.to_string(), WRITE_RATE.to_string());
    let _operator = crate::support::operator(
        &kubeconfig,
        cf,
        &[
            "--keyring-namespace",
            KEYRING_NAMESPACE,
            "--health-listen",
            &health.to_string(),
            // This test reads the budget gauges; who may read /metrics is operator_e2e's.
            "--metrics-auth",
            "none",
            "--concurrency",
            "20",
            "--cloudfront-read-rate",
            &read_rate,
            "--cloudfront-read-burst",
            &read_rate,
            "--cloudfront-write-rate",
            &write_rate,
            "--cloudfront-write-burst",
            &write_rate,
            "--coalesce-window",
            "1s",
        ],
        &log,
    );
    wait_for(
        "the operator's health port",
        Duration::from_secs(20),
        async || {
            crate::support::http_get_with_status(health, "/healthz")
                .await
                .is_some()
        },
    )
    .await;
    for n in 0..OBJECTS {
        let distribution = &distributions[n / 20];
        double
            .create(object(&format!("storm-{n}"), distribution, n % 20))
            .unwrap();
    }
    let objects: Api<SigningKeyGroup> = Api::namespaced(double.client(), "default");
    let start = Instant::now();
    let mut slowest_rate = f64::MAX;
    wait_for("100 objects Ready", Duration::from_secs(400), async || {
        // The operator's own account of its budget, while the storm lasts.
        let metrics = crate::support::http_get(health, "/metrics").await;
        for line in metrics.lines().filter(|l| {
            l.starts_with("keyfront_cloudfront_budget_rate{") && l.contains("class=\"read\"")
        }) {
            let rate: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            slowest_rate = slowest_rate.min(rate);
        }
        ready_count(&objects).await == OBJECTS
    })
    .await;
    let converged = start.elapsed();

    // No hot loop: once Ready (and the last deployments done), nothing is due, so the
    // operator stays quiet.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = cloudfront_calls(&crate::support::emulator_requests(cf).await).len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let requests = crate::support::emulator_requests(cf).await;
    let calls = cloudfront_calls(&requests);
    let after_ready = calls.len() - settled;

    let faults: BTreeMap<String, u64> =
        serde_json::from_str(&crate::support::http_get(cf, "/_emulator/faults").await).unwrap();
    let throttled: u64 = faults
        .iter()
        .filter(|(k, _)| k.contains("Throttl"))
        .map(|(_, v)| v)
        .sum();
    let (busiest_reads, busiest_writes) = busiest_second(&calls);
    let mut by_operation: BTreeMap<&str, usize> = BTreeMap::new();
    for call in &calls {
        *by_operation.entry(call.operation.as_str()).or_default() += 1;
    }
    println!(
        "throttle storm: {OBJECTS} objects Ready in {:.1} s; {} CloudFront attempts ({throttled} throttled), {:.1} per object; busiest second {busiest_reads} reads / {busiest_writes} writes (budget {READ_RATE}/{WRITE_RATE} per s, bursts equal); read budget went down to {slowest_rate:.1}/s; {after_ready} calls in 5 s once all were Ready and settled",
        converged.as_secs_f64(),
        calls.len(),
        calls.len() as f64 / OBJECTS as f64,
    );
    println!("attempts by operation: {by_operation:?}");

    assert!(throttled > 0, "the emulator throttled nothing: {faults:?}");
    // A token bucket lets through at most burst + rate × 1 s in any one second.
    assert!(
        busiest_reads <= 2 * READ_RATE && busiest_writes <= 2 * WRITE_RATE,
        "budget exceeded: {busiest_reads} reads / {busiest_writes} writes in one second"
    );
    assert!(
        slowest_rate < READ_RATE as f64 / 2.0,
        "the read budget never slowed down under throttling (lowest {slowest_rate}/s)"
    );
    // Half the attempts are throttled and a failed reconcile starts over, so an object costs
    // about twice a calm run's calls; a retry loop grows with time instead.
    let per_object = calls.len() as f64 / OBJECTS as f64;
    assert!(
        per_object < 100.0,
        "{per_object:.1} CloudFront attempts per object: a retry loop"
    );
    assert!(
        after_ready <= 5,
        "{after_ready} CloudFront calls in 5 s, 5 s after every object was Ready: a hot loop"
    );
}
