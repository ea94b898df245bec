//! Leader hand-over, measured: two `keyfront run --leader-election` processes (6 s lease)
//! against the API double and the emulator; the holder is stopped with `kill -9`, then with
//! SIGTERM, several times each, and the time until the standby holds the Lease is printed.
//!
//! Run: `cargo bench --bench handover`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // a bench fails loudly

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_api_double::{ApiDouble, write_kubeconfig};
use serde_json::json;

const ROUNDS: usize = 3;
const NAMESPACE: &str = "keyfront-system";

fn operator(kubeconfig: &Path, cloudfront: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(["run", "--cloudfront-endpoint", cloudfront])
        .args(["--keyring-namespace", NAMESPACE, "--leader-election"])
        .args(["--lease-duration", "6s"])
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "warn")
        .env("AWS_ACCESS_KEY_ID", "AKIDEMULATOR")
        .env("AWS_SECRET_ACCESS_KEY", "emulator")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn until_held_by(leases: &Api<Lease>, child: &Child) -> Duration {
    let who = format!("keyfront-{}", child.id());
    let start = Instant::now();
    loop {
        let holder = leases
            .get_opt("keyfront")
            .await
            .unwrap()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity);
        if holder.as_deref() == Some(&who) {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{who} never led");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let api = ApiDouble::new();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        for file in [
            "crds/signingkeygroups.keyfront.dev.yaml",
            "crds/cloudfrontaccounts.keyfront.dev.yaml",
        ] {
            api.create_from_yaml(&repo.join(file)).unwrap();
        }
        api.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
            .unwrap();
        let addr = api.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cloudfront = format!("http://{}", listener.local_addr().unwrap());
        let emulator = keyfront::emulator::Emulator::new(
            Default::default(),
            Default::default(),
            std::sync::Arc::new(keyfront::clock::SystemClock),
        );
        let router = keyfront::emulator::wire::router(emulator.into());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(&kubeconfig, addr).unwrap();
        let leases: Api<Lease> = Api::namespaced(api.client(), NAMESPACE);

        let mut leader = operator(&kubeconfig, &cloudfront);
        until_held_by(&leases, &leader).await;
        let (mut killed, mut terminated) = (Vec::new(), Vec::new());
        for round in 0..2 * ROUNDS {
            let standby = operator(&kubeconfig, &cloudfront);
            // Let the standby start and look at the Lease at least once.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let sigterm = round % 2 == 1;
            if sigterm {
                let status = Command::new("kill")
                    .args(["-TERM", &leader.id().to_string()])
                    .status()
                    .unwrap();
                assert!(status.success());
            } else {
                leader.kill().unwrap();
            }
            let took = until_held_by(&leases, &standby).await;
            let _ = leader.wait();
            if sigterm {
                terminated.push(took);
            } else {
                killed.push(took);
            }
            leader = standby;
        }
        let _ = leader.kill();
        let _ = leader.wait();
        println!(
            "leader hand-over (lease 6 s, {ROUNDS} rounds each): after kill -9 median {:.2} s (max {:.2} s); after SIGTERM median {:.0} ms (max {:.0} ms)",
            median(killed.clone()).as_secs_f64(),
            killed.iter().max().unwrap().as_secs_f64(),
            median(terminated.clone()).as_secs_f64() * 1e3,
            terminated.iter().max().unwrap().as_secs_f64() * 1e3,
        );
    });
}
