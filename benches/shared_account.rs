//! The shared AWS account (issue 20), measured with keyfront's reconciler in process against
//! the API double and the emulator. Prints its figures, side by side in one run:
//!
//! - **coalescing**: 50 objects applied at once, one on each of 50 cache behaviors of one
//!   distribution: `UpdateDistribution` calls and time to all Ready, with coalescing on and
//!   off, at the default write budget (where each object's two writes before it attaches pace
//!   the attachments) and a raised one, and on at CloudFront's real pace (the emulator
//!   answering `Throttling` past 3 `UpdateDistribution` calls a minute);
//! - **a lone object** on a quiet account: apply → Ready, median and p90, against the
//!   emulator's deployment time, at the default read budget and a raised one;
//! - **fairness**: one namespace flaps a label on 20 objects while another rotates its one
//!   object: the victim's rotation with and without the flapping, against the bound the fair
//!   call budget states (`src/cloudfront/budget/fair.rs`: each of the victim's calls waits for
//!   at most one call of the flapping namespace).
//!
//! Run: `cargo bench --bench shared_account` (about 15 minutes), or name the parts to run:
//! `cargo bench --bench shared_account -- coalescing lone fairness`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // a bench fails loudly

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keyfront::api::SigningKeyGroup;
use keyfront::cloudfront::budget::{BudgetSettings, Rate};
use keyfront::emulator::faults::{FaultSettings, Pace};
use keyfront::reconcile::names::ROTATE_ANNOTATION;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube_api_double::ApiDouble;
use serde_json::json;
use support::{
    Counted, counted, double, emulator, emulator_with, is_ready, object, settings, start,
};

mod support;

async fn wait_until_all_ready(api: &ApiDouble, namespace: &str, objects: usize, limit: Duration) {
    let all: Api<SigningKeyGroup> = Api::namespaced(api.client(), namespace);
    let start = Instant::now();
    let mut report = start + Duration::from_secs(60);
    loop {
        let list = all.list(&Default::default()).await.unwrap();
        let ready = list.items.iter().filter(|o| is_ready(o)).count();
        if ready == objects {
            return;
        }
        assert!(start.elapsed() < limit, "not all Ready in {limit:?}");
        if Instant::now() >= report {
            eprintln!(
                "    ({:.0} s: {ready} of {objects} Ready)",
                start.elapsed().as_secs_f64()
            );
            report += Duration::from_secs(60);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What one coalescing run saw.
struct Coalesced {
    updates: usize,
    throttled: usize,
    ready: Duration,
}

/// 50 objects at once, one per cache behavior of one distribution (its default behavior and
/// 49 path patterns).
async fn fifty_behaviors(window: Duration, writes: Rate, pace: Option<Pace>) -> Coalesced {
    const OBJECTS: usize = 50;
    let api = double();
    let emulator = emulator_with(FaultSettings {
        paces: pace.into_iter().collect(),
        ..FaultSettings::default()
    });
    let paths: Vec<String> = (1..OBJECTS).map(|n| format!("/p{n}/*")).collect();
    let path_refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    let distribution = emulator.create_test_distribution(&path_refs).unwrap();
    let cloudfront = counted(emulator);
    let (stop, running) = start(
        &api,
        &cloudfront,
        settings(
            16,
            Duration::from_secs(3600),
            // Reads raised so that the objects' polling does not pace the run.
            BudgetSettings {
                coalesce_window: window,
                reads: Rate {
                    per_second: 100.0,
                    burst: 100,
                },
                writes,
                ..BudgetSettings::default()
            },
        ),
    );
    let started = Instant::now();
    for n in 0..OBJECTS {
        let mut manifest = object(&format!("behavior-{n}"), "ECDSAP256");
        manifest["spec"]["distributions"] = if n == 0 {
            json!([{"id": distribution, "defaultCacheBehavior": true}])
        } else {
            json!([{"id": distribution, "defaultCacheBehavior": false, "pathPatterns": [paths[n - 1]]}])
        };
        api.create(manifest).unwrap();
    }
    wait_until_all_ready(&api, "default", OBJECTS, Duration::from_secs(30 * 60)).await;
    let ready = started.elapsed();
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    Coalesced {
        updates: cloudfront.hook.distribution_updates.load(Ordering::SeqCst),
        throttled: cloudfront.hook.throttled.load(Ordering::SeqCst),
        ready,
    }
}

/// Apply → Ready of objects applied one at a time on a quiet account, each on its own
/// distribution, with time for the budget to refill in between.
/// Apply → Ready of `samples` objects one at a time, and the CloudFront calls they made
/// between them, by operation.
async fn lone_objects(
    samples: usize,
    reads: Rate,
) -> (Vec<Duration>, BTreeMap<&'static str, usize>) {
    let api = double();
    let emulator = emulator();
    let distributions: Vec<String> = (0..samples)
        .map(|_| emulator.create_test_distribution(&[]).unwrap())
        .collect();
    let cloudfront = counted(emulator);
    let (stop, running) = start(
        &api,
        &cloudfront,
        settings(
            16,
            Duration::from_secs(3600),
            BudgetSettings {
                reads,
                ..BudgetSettings::default()
            },
        ),
    );
    let objects: Api<SigningKeyGroup> = Api::namespaced(api.client(), "default");
    let mut latencies = Vec::new();
    let mut calls = BTreeMap::new();
    for (n, distribution) in distributions.iter().enumerate() {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = cloudfront.hook.by_operation();
        let name = format!("lone-{n}");
        let mut manifest = object(&name, "ECDSAP256");
        manifest["spec"]["distributions"] =
            json!([{"id": distribution, "defaultCacheBehavior": true}]);
        let started = Instant::now();
        api.create(manifest).unwrap();
        while !objects.get(&name).await.ok().as_ref().is_some_and(is_ready) {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{name} never Ready"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(started.elapsed());
        for (operation, count) in cloudfront.hook.by_operation() {
            *calls.entry(operation).or_default() += count - before.get(operation).unwrap_or(&0);
        }
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    (latencies, calls)
}

/// One rotation of the victim, requested by annotation: how long until its new key is the
/// active one, and the CloudFront reads and writes made meanwhile.
async fn rotate(api: &ApiDouble, cloudfront: &Counted, request: &str) -> (Duration, usize, usize) {
    let victim: Api<SigningKeyGroup> = Api::namespaced(api.client(), "victim");
    let before = victim
        .get("victim")
        .await
        .unwrap()
        .status
        .unwrap()
        .active_key_id;
    let (reads, writes) = (
        cloudfront.hook.reads.load(Ordering::SeqCst),
        cloudfront.hook.writes.load(Ordering::SeqCst),
    );
    let started = Instant::now();
    victim
        .patch(
            "victim",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ROTATE_ANNOTATION: request}}})),
        )
        .await
        .unwrap();
    loop {
        let status = victim.get("victim").await.unwrap().status.unwrap();
        if status.active_key_id != before {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "rotation {request} not done"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (
        started.elapsed(),
        cloudfront.hook.reads.load(Ordering::SeqCst) - reads,
        cloudfront.hook.writes.load(Ordering::SeqCst) - writes,
    )
}

/// The victim's rotation alone, then while another namespace flaps a label on its 20
/// objects as fast as the API takes it, at the default call budget.
async fn fairness() {
    const FLAPPED: usize = 20;
    let api = double();
    for namespace in ["flapper", "victim"] {
        api.create(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
        )
        .unwrap();
    }
    let emulator = emulator();
    let budget = BudgetSettings::default();
    let mut manifests = Vec::new();
    for n in 0..FLAPPED {
        if n % 4 == 0 {
            manifests.push(emulator.create_test_distribution(&[]).unwrap());
        }
    }
    let victim_distribution = emulator.create_test_distribution(&[]).unwrap();
    for n in 0..FLAPPED {
        let mut manifest = object(&format!("flapped-{n}"), "ECDSAP256");
        manifest["metadata"]["namespace"] = json!("flapper");
        manifest["spec"]["distributions"] =
            json!([{"id": manifests[n / 4], "defaultCacheBehavior": true}]);
        api.create(manifest).unwrap();
    }
    let mut manifest = object("victim", "ECDSAP256");
    manifest["metadata"]["namespace"] = json!("victim");
    manifest["spec"]["distributions"] =
        json!([{"id": victim_distribution, "defaultCacheBehavior": true}]);
    api.create(manifest).unwrap();
    let cloudfront = counted(emulator);
    let mut operator = settings(16, Duration::from_secs(3600), budget.clone());
    operator.reconciler.min_rotation_interval = Duration::ZERO;
    let (stop, running) = start(&api, &cloudfront, operator);
    wait_until_all_ready(&api, "flapper", FLAPPED, Duration::from_secs(300)).await;
    wait_until_all_ready(&api, "victim", 1, Duration::from_secs(300)).await;
    tokio::time::sleep(Duration::from_secs(5)).await; // attachments deploy, budgets refill

    let (alone, reads, writes) = rotate(&api, &cloudfront, "1").await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    let flapping = Arc::new(AtomicBool::new(true));
    let flaps = Arc::new(AtomicUsize::new(0));
    let flapper = tokio::spawn({
        let (client, flapping, flaps) = (api.client(), flapping.clone(), flaps.clone());
        async move {
            let objects: Api<SigningKeyGroup> = Api::namespaced(client, "flapper");
            while flapping.load(Ordering::SeqCst) {
                let n = flaps.fetch_add(1, Ordering::SeqCst);
                let label = json!({"metadata": {"labels": {"bench/flap": n.to_string()}}});
                objects
                    .patch(
                        &format!("flapped-{}", n % FLAPPED),
                        &PatchParams::default(),
                        &Patch::Merge(label),
                    )
                    .await
                    .unwrap();
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(3)).await; // the flapper's calls are queued
    let reads_before = cloudfront.hook.reads.load(Ordering::SeqCst);
    let flapped_from = Instant::now();
    let (loaded, _, _) = rotate(&api, &cloudfront, "2").await;
    let load_reads = cloudfront.hook.reads.load(Ordering::SeqCst) - reads_before;
    let load_seconds = flapped_from.elapsed().as_secs_f64();
    flapping.store(false, Ordering::SeqCst);
    flapper.await.unwrap();
    let _ = stop.send(());
    running.await.unwrap().unwrap();

    // Each of the victim's calls waits for at most one of the flapper's: a read token at the
    // read rate, a write token at the write rate.
    let bound = Duration::from_secs_f64(
        reads as f64 / budget.reads.per_second + writes as f64 / budget.writes.per_second,
    );
    println!(
        "fairness, default budget (reads {}/s, writes {}/s): the victim's rotation alone {:.2} s ({reads} reads, {writes} writes); while another namespace flapped a label on {FLAPPED} objects ({} flaps, {:.1} CloudFront reads/s) {:.2} s: {:+.2} s against a stated bound of +{:.2} s ({})",
        budget.reads.per_second,
        budget.writes.per_second,
        alone.as_secs_f64(),
        flaps.load(Ordering::SeqCst),
        load_reads as f64 / load_seconds,
        loaded.as_secs_f64(),
        loaded.as_secs_f64() - alone.as_secs_f64(),
        bound.as_secs_f64(),
        if loaded <= alone + bound {
            "within"
        } else {
            "OVER"
        },
    );
}

fn percentile(sorted: &[Duration], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// Whether the part named `part` runs: all do, unless the command line names some
/// (`cargo bench --bench shared_account -- lone fairness`).
fn runs(part: &str) -> bool {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    named.is_empty() || named.iter().any(|n| n == part)
}

/// 50 objects at once on 50 behaviors of one distribution, at each budget and window.
async fn coalescing() {
    let window = BudgetSettings::default().coalesce_window;
    let default_writes = BudgetSettings::default().writes;
    let raised_writes = Rate {
        per_second: 20.0,
        burst: 20,
    };
    let paced: Pace = "UpdateDistribution=3".parse().unwrap();
    println!("50 objects at once on 50 cache behaviors of one distribution:");
    for (what, window, writes, pace) in [
        (
            "default write budget (1/s, burst 5), coalescing on (2 s window)",
            window,
            default_writes,
            None,
        ),
        (
            "default write budget, coalescing off",
            Duration::ZERO,
            default_writes,
            None,
        ),
        (
            "write budget 20/s, coalescing on",
            window,
            raised_writes,
            None,
        ),
        (
            "write budget 20/s, coalescing off",
            Duration::ZERO,
            raised_writes,
            None,
        ),
        (
            "write budget 20/s, coalescing on, CloudFront's pace (UpdateDistribution 3/min)",
            window,
            raised_writes,
            Some(paced.clone()),
        ),
    ] {
        let run = fifty_behaviors(window, writes, pace).await;
        println!(
            "  {what}: {} UpdateDistribution calls, {} throttled, all Ready in {:.1} s ({:.1} min)",
            run.updates,
            run.throttled,
            run.ready.as_secs_f64(),
            run.ready.as_secs_f64() / 60.0,
        );
    }
}

/// Lone objects, one after another, at the default read budget and a raised one.
async fn lone() {
    const SAMPLES: usize = 15;
    let raised_reads = Rate {
        per_second: 100.0,
        burst: 100,
    };
    for (what, reads) in [
        (
            "default read budget (5/s, burst 10)",
            BudgetSettings::default().reads,
        ),
        ("reads 100/s", raised_reads),
    ] {
        let (mut latencies, calls) = lone_objects(SAMPLES, reads).await;
        latencies.sort();
        let per_apply: Vec<String> = calls
            .iter()
            .map(|(operation, count)| format!("{operation} {:.1}", *count as f64 / SAMPLES as f64))
            .collect();
        println!(
            "apply → Ready of a lone object on a quiet account, {what} ({SAMPLES} samples; the emulator deploys in 1 s, the coalescing window is 2 s): median {:.0} ms, p90 {:.0} ms, max {:.0} ms; calls per apply until Ready: {}",
            percentile(&latencies, 50),
            percentile(&latencies, 90),
            percentile(&latencies, 100),
            per_apply.join(", "),
        );
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if runs("coalescing") {
            coalescing().await;
        }
        if runs("lone") {
            lone().await;
        }
        if runs("fairness") {
            fairness().await;
        }
    });
}
