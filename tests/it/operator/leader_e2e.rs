//! Two `keyfront run --leader-election` processes against a real API server and the emulator:
//! only the Lease holder writes (the API server's audit log and the emulator's request log name each
//! write's replica by its user agent; the standby has none); after
//! `kill -9` of the holder the standby takes over within the lease duration; after SIGTERM the
//! holder drains, releases the Lease and the standby takes over at its next look.
//!
//! Zero downtime across both hand-overs: an app signs URLs with the Secret as the kubelet
//! would mount it (re-projected every 1–4 s) and fetches them through the emulator's verifying
//! edge the whole time; each hand-over is made while a rotation is under way (a new key staged
//! or published), and the new leader finishes it. Not one request may be rejected.

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

use crate::support::stack::Emulator;
use crate::support::{Cluster, Process, repo, wait_for};

const KEYRING_NAMESPACE: &str = "keyfront-system";
/// Short, so the kill -9 case takes seconds; the standby looks every duration/15 (400 ms).
const LEASE_DURATION: Duration = Duration::from_secs(6);

fn operator(kubeconfig: &Path, cf: std::net::SocketAddr, log: &Path) -> Process {
    crate::support::operator(
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
        let status =
            crate::support::edge_get(edge, &host, &signed[signed.find(&path).unwrap()..]).await;
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
        crate::support::data(
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

/// What one replica wrote, as the peers recorded it (not keyfront's own log): Kubernetes writes
/// in the API server's audit log, told apart by their `User-Agent` (`keyfront/<version> (<who>)`),
/// and CloudFront writes in the emulator's request log, by `app/<who>` in the SDK's user agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Writes {
    kubernetes: usize,
    cloudfront: usize,
}

const NONE: Writes = Writes {
    kubernetes: 0,
    cloudfront: 0,
};

async fn writes_by(cluster: &Cluster, cf: SocketAddr, who: &str) -> Writes {
    let kube_agent = format!("({who})");
    let kubernetes = cluster
        .audit()
        .iter()
        .filter(|r| matches!(r.verb.as_str(), "create" | "update" | "patch" | "delete"))
        .filter(|r| {
            r.user_agent
                .as_deref()
                .is_some_and(|ua| ua.ends_with(&kube_agent))
        })
        .count();
    let aws_agent = format!("app/{who}");
    let cloudfront = crate::support::emulator_requests(cf)
        .await
        .iter()
        .filter(|r| crate::support::is_cloudfront_write(&r.operation))
        .filter(|r| {
            r.user_agent
                .as_deref()
                .is_some_and(|ua| ua.split_whitespace().any(|token| token == aws_agent))
        })
        .count();
    Writes {
        kubernetes,
        cloudfront,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_a_standby_takes_over_on_kill_and_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::real().await.with_keyfront(KEYRING_NAMESPACE).await;
    let kubeconfig = cluster.kubeconfig().to_owned();
    let emulator = Emulator::start(
        dir.path(),
        &["--propagation-delay", "1", "--distribution", "EFASTDEMO1"],
    )
    .await;
    let (cf, edge) = (emulator.api, emulator.edge);
    let leases: Api<Lease> = Api::namespaced(cluster.client(), KEYRING_NAMESPACE);

    let (log_a, log_b, log_c) = (
        dir.path().join("a.log"),
        dir.path().join("b.log"),
        dir.path().join("c.log"),
    );
    let mut a = operator(&kubeconfig, cf, &log_a);
    until_held_by(&leases, &identity(&a), Duration::from_secs(20)).await;
    let b = operator(&kubeconfig, cf, &log_b);
    cluster
        .kubectl(&[
            "apply",
            "-f",
            &repo("examples/fast-rotation.yaml").to_string_lossy(),
        ])
        .await;
    let objects: Api<SigningKeyGroup> = Api::namespaced(cluster.client(), "default");
    wait_for("fast to be Ready", Duration::from_secs(60), async || {
        crate::support::ready(&objects, "fast").await
    })
    .await;
    let (id_a, id_b) = (identity(&a), identity(&b));
    let by_a = writes_by(&cluster, cf, &id_a).await;
    assert!(
        by_a.kubernetes > 0 && by_a.cloudfront > 0,
        "the leader's writes are not in the peers' records: {by_a:?}"
    );
    assert_eq!(
        writes_by(&cluster, cf, &id_b).await,
        NONE,
        "the standby wrote"
    );
    assert_eq!(holder(&leases).await, Some(id_a.clone()));

    // The app, from now to the end.
    let secrets: Api<Secret> = Api::namespaced(cluster.client(), "default");
    let host = crate::support::domain_name(cf, "EFASTDEMO1").await;
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
    assert_eq!(
        writes_by(&cluster, cf, &id_b).await,
        NONE,
        "the standby wrote while the leader was rotating"
    );
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    let by_a_at_death = writes_by(&cluster, cf, &id_a).await;
    let after_kill = until_held_by(&leases, &id_b, LEASE_DURATION * 3).await;
    assert!(
        after_kill <= LEASE_DURATION + Duration::from_secs(3),
        "took {after_kill:?} after kill -9"
    );
    // The new leader carries on: it finishes the rotation (fast rotates every 20 s).
    until_key_changes(&secrets, "a rotation by the new leader").await;
    // (a may have published the key already: then b's part is the Secret switch.)
    assert!(
        writes_by(&cluster, cf, &id_b).await.kubernetes > 0,
        "the new leader's writes are not in the API server's audit"
    );

    // SIGTERM: the leader drains, releases the Lease, and the standby takes it at its next look.
    let c = operator(&kubeconfig, cf, &log_c);
    let id_c = identity(&c);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        holder(&leases).await,
        Some(id_b.clone()),
        "c took the Lease"
    );
    until_rotating(&objects).await;
    assert_eq!(
        writes_by(&cluster, cf, &id_c).await,
        NONE,
        "the standby wrote while the leader was rotating"
    );
    let term = std::process::Command::new("kill")
        .args(["-TERM", &b.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let after_term = until_held_by(&leases, &id_c, Duration::from_secs(10)).await;
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
    let (by_b, by_c) = (
        writes_by(&cluster, cf, &id_b).await,
        writes_by(&cluster, cf, &id_c).await,
    );
    assert!(
        by_c.kubernetes > 0,
        "the last leader's writes are not in the API server's audit"
    );
    // The second rotation (staged by b, finished by c) published a key: b or c created it.
    assert!(
        by_b.cloudfront + by_c.cloudfront > 0,
        "no CloudFront write after the first hand-over: b {by_b:?}, c {by_c:?}"
    );
    assert_eq!(
        writes_by(&cluster, cf, &id_a).await,
        by_a_at_death,
        "writes in the killed leader's name after its death"
    );
    let cloudfront_writes = crate::support::emulator_requests(cf)
        .await
        .iter()
        .filter(|r| crate::support::is_cloudfront_write(&r.operation))
        .count();
    assert_eq!(
        cloudfront_writes,
        by_a_at_death.cloudfront + by_b.cloudfront + by_c.cloudfront,
        "a CloudFront write that names no replica"
    );
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

/// A leader whose API server stops answering Lease calls (accepts the connection, never
/// replies) steps down within the renew deadline (2/3 of the 6 s lease) of its last renewal,
/// and writes nothing after that, though its rotation falls due: the audit log and the
/// emulator's request log show no write from it.
///
/// On the API double: only it can make Lease calls hang on demand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_calls_hang_steps_down_in_time_and_writes_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::double(dir.path())
        .await
        .with_keyfront(KEYRING_NAMESPACE)
        .await;
    let (double, kubeconfig) = (cluster.api_double(), cluster.kubeconfig().to_owned());
    let emulator = Emulator::start(
        dir.path(),
        &["--propagation-delay", "1", "--distribution", "EFASTDEMO1"],
    )
    .await;
    let cf = emulator.api;
    let leases: Api<Lease> = Api::namespaced(double.client(), KEYRING_NAMESPACE);
    let log = dir.path().join("a.log");
    let _show = crate::support::ShowLogOnFailure(log.clone());
    let a = operator(&kubeconfig, cf, &log);
    let id = identity(&a);
    until_held_by(&leases, &id, Duration::from_secs(20)).await;
    double
        .create_from_yaml(&repo("examples/fast-rotation.yaml"))
        .unwrap();
    let objects: Api<SigningKeyGroup> = Api::namespaced(double.client(), "default");
    wait_for("fast to be Ready", Duration::from_secs(60), async || {
        crate::support::ready(&objects, "fast").await
    })
    .await;

    double.hang("leases", true);
    let hung_at = Instant::now();
    let stepped_down = "stepping down";
    wait_for(
        "the leader to step down",
        Duration::from_secs(20),
        async || {
            std::fs::read_to_string(&log)
                .unwrap()
                .contains(stepped_down)
        },
    )
    .await;
    let took = hung_at.elapsed();
    let renew_deadline = LEASE_DURATION.mul_f64(2.0 / 3.0);
    println!(
        "stepped down {took:?} after the Lease calls began to hang (renew deadline {renew_deadline:?})"
    );
    // The last renewal was at most one look (400 ms) before the hang began.
    assert!(
        took <= renew_deadline + Duration::from_millis(500),
        "stepped down {took:?} after the hang, past the renew deadline"
    );
    let at_step_down = writes_by(&cluster, cf, &id).await;
    // fast rotates every 20 s: a leader would have written within this time.
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(
        writes_by(&cluster, cf, &id).await,
        at_step_down,
        "a replica that stepped down wrote"
    );
    double.hang("leases", false);
}
