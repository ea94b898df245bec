//! The operator against the doubles, measured: apply → Ready latency, CloudFront calls per
//! steady-state reconcile, CloudFront calls per hour at steady state for 200 objects, and the
//! RSS of `keyfront run` with 200 SigningKeyGroups beside 0 and 20,000 unrelated Secrets (side
//! by side in one run). Prints its figures. Coalescing, the call budget's fairness and lone
//! objects' latency on a shared account are in `benches/shared_account.rs`.
//!
//! Run: `cargo bench --bench operator`. The emulator's quotas are raised as AWS raises them
//! on request (200 key groups need more than the default 10).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // a bench fails loudly

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use keyfront::api::SigningKeyGroup;
use keyfront::cloudfront::budget::BudgetSettings;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube_api_double::write_kubeconfig;
use serde_json::json;
use support::{apply_all, counted, double, emulator, is_ready, object, settings, start};

mod support;

const LATENCY_OBJECTS: usize = 20;
const MEMORY_OBJECTS: usize = 200;
const UNRELATED_SECRETS: usize = 20_000;

/// Apply → Ready for objects created one after another against the in-process operator, then
/// the CloudFront calls of one steady-state reconcile of each.
async fn latency_and_steady_state() {
    let api = double();
    let emulator = emulator();
    // One distribution each: a cache behavior trusts at most 4 key groups.
    let distributions: Vec<String> = (0..LATENCY_OBJECTS)
        .map(|_| emulator.create_test_distribution(&[]).unwrap())
        .collect();
    let cloudfront = counted(emulator);
    let (stop, operator) = start(
        &api,
        &cloudfront,
        settings(4, Duration::from_secs(3600), BudgetSettings::default()),
    );
    let objects: Api<SigningKeyGroup> = Api::namespaced(api.client(), "default");
    let mut latencies = Vec::new();
    for (n, distribution) in distributions.iter().enumerate() {
        let name = format!("latency-{n}");
        let mut manifest = object(&name, "RSA2048");
        manifest["spec"]["distributions"] =
            json!([{"id": distribution, "defaultCacheBehavior": true}]);
        let start = Instant::now();
        objects
            .create(
                &PostParams::default(),
                &serde_json::from_value(manifest).unwrap(),
            )
            .await
            .unwrap();
        loop {
            if objects.get(&name).await.ok().as_ref().is_some_and(is_ready) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{name} never Ready"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(start.elapsed());
    }
    // The first object finds the write budget full: a lone object on a quiet account. The
    // others are applied one after another and wait for write tokens (1 write/s).
    let lone = latencies[0];
    latencies.sort();
    println!(
        "apply → Ready of a lone object on a quiet account (the first): {:.0} ms",
        lone.as_secs_f64() * 1e3
    );
    println!(
        "apply → Ready (RSA2048, one distribution, {LATENCY_OBJECTS} objects one after another, at the default write budget): median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        latencies[LATENCY_OBJECTS / 2].as_secs_f64() * 1e3,
        latencies[LATENCY_OBJECTS * 9 / 10].as_secs_f64() * 1e3,
        latencies[LATENCY_OBJECTS - 1].as_secs_f64() * 1e3,
    );

    // Let attachments deploy and the last status writes land; nothing is due, so an idle
    // operator makes no calls at all.
    tokio::time::sleep(Duration::from_secs(4)).await;
    cloudfront.hook.reads.store(0, Ordering::SeqCst);
    cloudfront.hook.writes.store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    cloudfront.hook.key_group_reads.store(0, Ordering::SeqCst);
    println!(
        "idle for 3 s with {LATENCY_OBJECTS} Ready objects: {} CloudFront reads, {} writes",
        cloudfront.hook.reads.swap(0, Ordering::SeqCst),
        cloudfront.hook.writes.swap(0, Ordering::SeqCst),
    );
    // Then poke each object once: one reconcile each, in steady state.
    for n in 0..LATENCY_OBJECTS {
        objects
            .patch(
                &format!("latency-{n}"),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"bench/poke": "1"}}})),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (reads, writes, passes) = (
        cloudfront.hook.reads.load(Ordering::SeqCst),
        cloudfront.hook.writes.load(Ordering::SeqCst),
        cloudfront.hook.key_group_reads.load(Ordering::SeqCst),
    );
    println!(
        "steady state (key group + one distribution): {LATENCY_OBJECTS} pokes ran {passes} reconciles; per reconcile {:.2} CloudFront reads and {:.2} writes (goal ≤ 2 and 0)",
        reads as f64 / passes as f64,
        writes as f64 / passes as f64,
    );
    let _ = stop.send(());
    operator.await.unwrap().unwrap();
}

/// CloudFront calls per hour once 200 objects (4 per distribution) are Ready and nothing is
/// due, at the default resync (1 h) and distribution resync (10 min): run with both scaled
/// down 180× (20 s and 3.3 s) for 60 s, i.e. 3 simulated hours.
async fn steady_state_per_hour() -> (f64, f64, f64) {
    const OBJECTS: usize = 200;
    const SCALE: u32 = 180;
    let api = double();
    let emulator = emulator();
    let distributions: Vec<String> = (0..OBJECTS / 4)
        .map(|_| emulator.create_test_distribution(&[]).unwrap())
        .collect();
    let cloudfront = counted(emulator);
    let defaults = BudgetSettings::default();
    let (stop, operator) = start(
        &api,
        &cloudfront,
        settings(
            16,
            Duration::from_secs(3600) / SCALE,
            BudgetSettings {
                distribution_resync: defaults.distribution_resync / SCALE,
                reads: keyfront::cloudfront::budget::Rate {
                    per_second: 100.0,
                    burst: 100,
                },
                writes: keyfront::cloudfront::budget::Rate {
                    per_second: 50.0,
                    burst: 50,
                },
                ..defaults
            },
        ),
    );
    apply_all(&api, &distributions, &[], OBJECTS).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    cloudfront.hook.reads.store(0, Ordering::SeqCst);
    cloudfront.hook.writes.store(0, Ordering::SeqCst);
    let passes_before = cloudfront.hook.key_group_reads.load(Ordering::SeqCst);
    let window = Duration::from_secs(60);
    tokio::time::sleep(window).await;
    let hours = window.as_secs_f64() * f64::from(SCALE) / 3600.0;
    let reads = cloudfront.hook.reads.load(Ordering::SeqCst) as f64 / hours;
    let writes = cloudfront.hook.writes.load(Ordering::SeqCst) as f64 / hours;
    let passes =
        (cloudfront.hook.key_group_reads.load(Ordering::SeqCst) - passes_before) as f64 / hours;
    let _ = stop.send(());
    operator.await.unwrap().unwrap();
    (reads, writes, passes)
}

/// Peak and current RSS of `keyfront run` once `MEMORY_OBJECTS` objects are Ready beside
/// `unrelated` Secrets it must not cache.
async fn operator_memory(unrelated: usize) -> (u64, u64, Duration) {
    let api = double();
    let secrets: Api<Secret> = Api::namespaced(api.client(), "default");
    let filler = "x".repeat(1024);
    for n in 0..unrelated {
        api.create(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("unrelated-{n}"), "namespace": "default", "labels": {"app": "other"}},
            "data": {"blob": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &filler)},
        }))
        .unwrap();
    }
    for n in 0..MEMORY_OBJECTS {
        api.create(object(&format!("memory-{n}"), "ECDSAP256"))
            .unwrap();
    }
    let api_addr = api.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cf_addr: SocketAddr = listener.local_addr().unwrap();
    let router = keyfront::emulator::wire::router(emulator().into());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, api_addr).unwrap();

    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(["run", "--cloudfront-endpoint", &format!("http://{cf_addr}")])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .env("AWS_ACCESS_KEY_ID", "AKIDEMULATOR")
        .env("AWS_SECRET_ACCESS_KEY", "emulator")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let objects: Api<SigningKeyGroup> = Api::namespaced(api.client(), "default");
    loop {
        let list = objects.list(&Default::default()).await.unwrap();
        if list.items.iter().filter(|o| is_ready(o)).count() == MEMORY_OBJECTS {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "objects never all Ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_ready = start.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let (rss, peak) = (field("VmRSS:"), field("VmHWM:"));
    let _ = child.kill();
    let _ = child.wait();
    drop(secrets);
    (rss, peak, all_ready)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        latency_and_steady_state().await;
        let (reads, writes, passes) = steady_state_per_hour().await;
        println!(
            "steady state, 200 Ready objects on 50 distributions, default resyncs: {reads:.0} CloudFront reads/hour ({passes:.0} reconciles), {writes:.0} writes/hour (goal: reads bounded by resync, 0 writes)"
        );
        let mut rows = Vec::new();
        for unrelated in [0, UNRELATED_SECRETS] {
            let (rss, peak, ready) = operator_memory(unrelated).await;
            rows.push((unrelated, rss, peak));
            println!(
                "keyfront run, {MEMORY_OBJECTS} SigningKeyGroups Ready in {:.1} s, {unrelated} unrelated Secrets: RSS {:.1} MiB (peak {:.1} MiB)",
                ready.as_secs_f64(),
                rss as f64 / 1024.0,
                peak as f64 / 1024.0,
            );
        }
        println!(
            "RSS with {UNRELATED_SECRETS} unrelated Secrets / without: {:.2}x (goal ≤ 50 MiB, flat)",
            rows[1].1 as f64 / rows[0].1 as f64
        );
    });
}
