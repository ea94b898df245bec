//! Two `keyfront run --leader-election` processes against the API double and the emulator:
//! only the Lease holder reconciles (its log has the writes, the standby's has none); after
//! `kill -9` of the holder the standby takes over within the lease duration; after SIGTERM the
//! holder drains, releases the Lease and the standby takes over at its next look.
//!
//! Zero downtime across both hand-overs: an app signs URLs with the Secret as the kubelet
//! would mount it (re-projected every 1–4 s) and fetches them through the emulator's verifying
//! edge the whole time; each hand-over is made while a rotation is under way (a new key staged
//! or published), and the new leader finishes it. Not one request may be rejected.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail loudly by design

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use keyfront::api::{KeyState, SigningKeyGroup};
use keyfront::signer::{MountedSigner, Policy};
use kube::Api;

mod e2e;
use e2e::{Process, free_port, keyfront, repo, wait_for};

const KEYRING_NAMESPACE: &str = "keyfront-system";
/// Short, so the kill -9 case takes seconds; the standby looks every duration/15 (400 ms).
const LEASE_DURATION: Duration = Duration::from_secs(6);

fn operator(kubeconfig: &Path, cf: std::net::SocketAddr, log: &Path) -> Process {
    e2e::operator(
        kubeconfig,
        cf,
        &[
            "--cluster-id",
            "leader",
            "--keyring-namespace",
            KEYRING_NAMESPACE,
            "--leader-election",
            "--lease-duration",
            "6s",
        ],
        log,
    )
}

/// The identity a `keyfront run` without POD_NAME uses.
fn identity(process: &Process) -> String {
    format!("keyfront-{}", process.0.id())
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("keyfront")
        .await
        .unwrap()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

/// Waits until `who` holds the Lease; returns how long that took.
async fn until_held_by(leases: &Api<Lease>, who: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if holder(leases).await.as_deref() == Some(who) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{who} did not get the Lease within {timeout:?} (held by {:?})",
        holder(leases).await
    );
}

/// What the app saw: requests sent, and every rejection with the key it signed with.
#[derive(Default)]
struct AppStats {
    sent: u64,
    rejected: Vec<String>,
}

/// The kubelet and the app: the Secret projected into `mount` every 1–4 s, and a URL signed
/// with what is mounted, fetched through the edge, every 20 ms until `stop`.
async fn app(
    secrets: Api<Secret>,
    mount: PathBuf,
    edge: SocketAddr,
    host: String,
    stats: Arc<Mutex<AppStats>>,
    stop: Arc<AtomicBool>,
) {
    let mut version = 0;
    let mut projected = None;
    let mut next_projection = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_projection {
            next_projection =
                Instant::now() + Duration::from_millis(1000 + rand::random_range(0..3000));
            if let Ok(Some(secret)) = secrets.get_opt("fast-cloudfront-key").await
                && secret.data.is_some()
                && secret.data != projected
            {
                version += 1;
                keyfront::dev::kubelet::project(&mount, version, secret.data.as_ref().unwrap())
                    .unwrap();
                projected = secret.data;
            }
        }
        let path = format!("/video/segment-{n}.ts");
        let (signed, key_pair_id) = {
            let signer = MountedSigner::open(&mount).unwrap().current().unwrap();
            let url = format!("https://{host}{path}");
            let expires = jiff::Timestamp::now().as_second() + 10;
            let signed = signer
                .sign_url(&url, &Policy::canned(&url, expires))
                .unwrap();
            (signed, signer.key_pair_id().to_owned())
        };
        let status = e2e::edge_get(edge, &host, &signed[signed.find(&path).unwrap()..]).await;
        {
            let mut s = stats.lock().unwrap();
            s.sent += 1;
            if status != 200 {
                s.rejected.push(format!("{status} with {key_pair_id}"));
            }
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until a rotation is under way: a key staged or published beside the active one.
async fn until_rotating(objects: &Api<SigningKeyGroup>) {
    wait_for(
        "a rotation under way",
        Duration::from_secs(60),
        async || {
            objects.get("fast").await.unwrap().status.is_some_and(|s| {
                s.keys
                    .iter()
                    .any(|k| matches!(k.state, KeyState::Staged | KeyState::Published))
            })
        },
    )
    .await;
}

/// Waits until the app Secret names another key than now: a rotation was finished.
async fn until_key_changes(secrets: &Api<Secret>, what: &str) {
    let key_pair_id = async || {
        e2e::data(
            &secrets.get("fast-cloudfront-key").await.unwrap(),
            "key_pair_id",
        )
    };
    let now = key_pair_id().await;
    wait_for(what, Duration::from_secs(60), async || {
        key_pair_id().await != now
    })
    .await;
}

fn writes_in(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(r#""message":"executing""#))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_a_standby_takes_over_on_kill_and_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (double, kubeconfig) = e2e::cluster(dir.path(), KEYRING_NAMESPACE).await;
    let (cf, edge) = (free_port(), free_port());
    let _emulator = keyfront(
        &[
            "emulator",
            "--listen",
            &cf.to_string(),
            "--propagation-delay",
            "1",
            "--distribution",
            "EFASTDEMO1",
            "--edge-listen",
            &edge.to_string(),
        ],
        &dir.path().join("emulator.log"),
    );
    wait_for("the emulator", Duration::from_secs(20), async || {
        tokio::net::TcpStream::connect(cf).await.is_ok()
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(double.client(), KEYRING_NAMESPACE);

    let (log_a, log_b, log_c) = (
        dir.path().join("a.log"),
        dir.path().join("b.log"),
        dir.path().join("c.log"),
    );
    let mut a = operator(&kubeconfig, cf, &log_a);
    until_held_by(&leases, &identity(&a), Duration::from_secs(20)).await;
    let b = operator(&kubeconfig, cf, &log_b);
    double
        .create_from_yaml(&repo("examples/fast-rotation.yaml"))
        .unwrap();
    let objects: Api<SigningKeyGroup> = Api::namespaced(double.client(), "default");
    wait_for("fast to be Ready", Duration::from_secs(60), async || {
        e2e::ready(&objects, "fast").await
    })
    .await;
    assert!(writes_in(&log_a) > 0, "the leader wrote nothing");
    assert_eq!(writes_in(&log_b), 0, "the standby wrote");
    assert_eq!(holder(&leases).await, Some(identity(&a)));

    // The app, from now to the end.
    let secrets: Api<Secret> = Api::namespaced(double.client(), "default");
    let host = e2e::domain_name(cf, "EFASTDEMO1").await;
    let stats: Arc<Mutex<AppStats>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let app_task = tokio::spawn(app(
        secrets.clone(),
        dir.path().join("mount"),
        edge,
        host,
        stats.clone(),
        stop.clone(),
    ));

    // kill -9 in the middle of a rotation: the standby takes over once the lease expires.
    until_rotating(&objects).await;
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let after_kill = until_held_by(&leases, &identity(&b), LEASE_DURATION * 3).await;
    assert!(
        after_kill <= LEASE_DURATION + Duration::from_secs(3),
        "took {after_kill:?} after kill -9"
    );
    let writes_before = writes_in(&log_b);
    // The new leader carries on: it finishes the rotation (fast rotates every 20 s).
    until_key_changes(&secrets, "a rotation by the new leader").await;
    assert!(writes_in(&log_b) > writes_before);

    // SIGTERM: the leader drains, releases the Lease, and the standby takes it at its next look.
    let c = operator(&kubeconfig, cf, &log_c);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        holder(&leases).await,
        Some(identity(&b)),
        "c took the Lease"
    );
    until_rotating(&objects).await;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &b.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let after_term = until_held_by(&leases, &identity(&c), Duration::from_secs(10)).await;
    println!(
        "leader hand-over: {after_kill:.1?} after kill -9 (lease {LEASE_DURATION:?}), {after_term:.1?} after SIGTERM"
    );
    assert!(
        after_term < Duration::from_secs(2),
        "hand-over after SIGTERM took {after_term:?}"
    );
    let released = std::fs::read_to_string(&log_b).unwrap();
    assert!(released.contains("released the leader lease"), "{released}");

    // c finishes the rotation b had started, and the app never noticed either hand-over.
    until_key_changes(&secrets, "c to finish the rotation").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    app_task.await.unwrap();
    let stats = stats.lock().unwrap();
    println!(
        "zero downtime across two hand-overs mid-rotation: {} signed requests, {} rejected",
        stats.sent,
        stats.rejected.len()
    );
    assert!(stats.sent > 500, "the app sent only {}", stats.sent);
    assert!(stats.rejected.is_empty(), "rejected: {:?}", stats.rejected);
}
