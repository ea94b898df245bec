//! The soak: keyfront under faults for many rotations, with apps signing all along.
//!
//! The real `keyfront run` runs against the Kubernetes API double (over HTTP) and
//! `keyfront emulator --edge-listen` (the double, because only it injects 409s and drops
//! watches on demand). Twenty SigningKeyGroups, each protecting its own cache
//! behavior on one of three distributions, rotate every 15 s. Each has an app: a directory the
//! Secret is projected into the way the kubelet does it (re-read every 1–4 s, under the 5 s
//! `secretRefreshAllowance`), and a signer reading that directory, whose signed URLs go through
//! the verifying edge. Meanwhile:
//! - the operator is killed with SIGKILL at random moments (and restarted), for the first half
//!   of the run, so the last incarnation lives long enough to show its memory;
//! - the emulator throttles 10 % and fails 10 % of CloudFront calls with 503, delays bursts of
//!   calls at random, and has distribution ETags changed under the operator ("touch");
//! - the API double answers 10 % of the operator's updates and patches with 409 Conflict and
//!   drops every watch connection now and then.
//!
//! A checker samples CloudFront and the cluster every half second and asserts I1, I2, I4, I5
//! and I6 for every object at every sample, reading in an order that makes each check sound
//! under concurrency (see [`Checker::sample`]). At the end every object is deleted and I3 is
//! checked: no public key or key group of keyfront's is left. It prints requests, rotations,
//! kills, faults and rejections, and the operator's memory.
//!
//! `KEYFRONT_SOAK_ROTATIONS` (default 10, what CI runs: about four minutes) sets the rotations
//! every object must go through; the longer run by hand is `KEYFRONT_SOAK_ROTATIONS=40 cargo
//! test --test it operator::soak -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use keyfront::api::SigningKeyGroup;
use keyfront::cloudfront::sdk::SdkCloudFront;
use keyfront::cloudfront::{CloudFront as _, Distribution, KeyGroup, PublicKey};
use keyfront::reconcile::names;
use keyfront::signer::{MountedSigner, Policy, SigningKey};
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt as _};
use kube_api_double::ApiDouble;
use rand::Rng as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::support::{Process, cloudfront, edge_get, http_get, http_post};

const CLUSTER_ID: &str = "soak";
const NAMESPACE: &str = "default";
const KEYRING_NAMESPACE: &str = "keyfront-system";
const OBJECTS: usize = 20;
const DISTRIBUTIONS: [&str; 3] = ["ESOAKALPHA1", "ESOAKBRAVO2", "ESOAKCHARLIE3"];
/// maxSignedUrlLifetime + secretRefreshAllowance of every object.
const GRACE: Duration = Duration::from_secs(15);
/// How long the app's signed URLs are valid (maxSignedUrlLifetime).
const URL_LIFETIME_SECONDS: i64 = 10;

fn rotations_wanted() -> usize {
    std::env::var("KEYFRONT_SOAK_ROTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

fn object_name(i: usize) -> String {
    format!("soak-{i:02}")
}

fn owner(i: usize) -> String {
    names::owner_token(CLUSTER_ID, NAMESPACE, &object_name(i))
}

fn distribution_of(i: usize) -> &'static str {
    DISTRIBUTIONS[i % DISTRIBUTIONS.len()]
}

fn path_pattern(i: usize) -> String {
    format!("/t{i:02}/*")
}

/// Every fourth object uses RSA keys, the others ECDSA.
fn manifest(i: usize) -> serde_json::Value {
    let algorithm = if i.is_multiple_of(4) {
        "RSA2048"
    } else {
        "ECDSAP256"
    };
    json!({
        "apiVersion": "keyfront.dev/v1alpha1",
        "kind": "SigningKeyGroup",
        "metadata": {"name": object_name(i), "namespace": NAMESPACE},
        "spec": {
            "key": {"algorithm": algorithm},
            "rotation": {
                "interval": "15s",
                "maxSignedUrlLifetime": "10s",
                "secretRefreshAllowance": "5s",
                "minPropagationWait": "0s",
            },
            "distributions": [{
                "id": distribution_of(i),
                "pathPatterns": [path_pattern(i)],
                "allowPublicOnDetach": true,
            }],
        },
    })
}

/// The operator process, restarted after each kill; every incarnation logs to its own file.
struct Operator {
    kubeconfig: PathBuf,
    cf_addr: SocketAddr,
    dir: PathBuf,
    process: Process,
    incarnation: usize,
    started: Instant,
}

impl Operator {
    fn start(kubeconfig: &Path, cf_addr: SocketAddr, dir: &Path) -> Self {
        let process = Self::spawn(kubeconfig, cf_addr, dir, 0);
        Self {
            kubeconfig: kubeconfig.to_owned(),
            cf_addr,
            dir: dir.to_owned(),
            process,
            incarnation: 0,
            started: Instant::now(),
        }
    }

    fn spawn(kubeconfig: &Path, cf_addr: SocketAddr, dir: &Path, n: usize) -> Process {
        crate::support::operator(
            kubeconfig,
            cf_addr,
            &[
                "--cluster-id",
                CLUSTER_ID,
                "--keyring-namespace",
                KEYRING_NAMESPACE,
                // One worker per object: with fewer, kube-runtime picks held requests in no
                // fair order, and under this load an object can wait minutes for its turn
                // (a known limit, noted in README; fair scheduling is the call-budget issue's).
                "--concurrency",
                "20",
                // The soak compresses a 30-day rotation into 15 s (20 objects, ~4 CloudFront
                // writes a rotation), so the call budget is scaled with it; the budget's own
                // pacing under throttling is tests/it/cloudfront/budget_e2e.rs's subject.
                "--cloudfront-read-rate",
                "200",
                "--cloudfront-read-burst",
                "200",
                "--cloudfront-write-rate",
                "50",
                "--cloudfront-write-burst",
                "50",
            ],
            &dir.join(format!("operator-{n}.log")),
        )
    }

    /// SIGKILL, then a fresh process.
    fn kill_and_restart(&mut self) {
        self.process.0.kill().unwrap();
        self.process.0.wait().unwrap();
        self.incarnation += 1;
        self.process = Self::spawn(&self.kubeconfig, self.cf_addr, &self.dir, self.incarnation);
        self.started = Instant::now();
    }

    /// Resident memory of the running process, in KiB.
    fn rss_kib(&self) -> Option<u64> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.process.0.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    fn logs(&self) -> String {
        (0..=self.incarnation)
            .map(|n| {
                std::fs::read_to_string(self.dir.join(format!("operator-{n}.log")))
                    .unwrap_or_default()
            })
            .collect()
    }
}

/// Retries a CloudFront read through injected faults (the checker is a client like any other).
async fn retry<T, F: AsyncFnMut() -> keyfront::cloudfront::Result<T>>(mut read: F) -> T {
    let mut last = None;
    for _ in 0..100 {
        match read().await {
            Ok(value) => return value,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("CloudFront read kept failing: {last:?}");
}

fn private_fingerprint(pem: &str) -> String {
    let key = SigningKey::from_pem(pem.as_bytes()).unwrap();
    hex(&Sha256::digest(key.public_key_der().unwrap()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let value = secret.data.as_ref()?.get(key)?;
    String::from_utf8(value.0.clone()).ok()
}

/// What the checker remembers of one object between samples.
#[derive(Default)]
struct History {
    /// Every key the app Secret has named.
    signing_keys: BTreeSet<String>,
    /// The last time a sample saw the app Secret name each key.
    last_seen_signing: BTreeMap<String, Instant>,
    /// The group's items at the previous sample.
    in_group: BTreeSet<String>,
}

struct Checker {
    cf: SdkCloudFront,
    secrets: Api<Secret>,
    keyrings: Api<Secret>,
    objects: Api<SigningKeyGroup>,
    history: Vec<History>,
    /// Every private key PEM seen in a Secret (for I5).
    private_keys: BTreeSet<String>,
    samples: u64,
    /// Samples whose reads took longer than a third of the grace: their ordering argument
    /// would not hold, so I2 and I4 are not judged on them.
    slow_samples: u64,
}

impl Checker {
    /// One sample. Reads are ordered so that every assertion is sound while the operator
    /// runs: key groups (G1), app Secrets, distributions, keyrings, public keys, key groups
    /// again (G2). A key in G1 and G2 was in the group at every read between (keys never
    /// return), so its private key must be in the keyring read; a key the app Secret named
    /// was live before the Secret named it, and stays in the group and live for the grace
    /// after the Secret stops naming it, which is longer than a sample takes.
    async fn sample(&mut self) -> Result<(), String> {
        let start = Instant::now();
        let g1 = retry(async || self.cf.list_key_groups().await).await;
        let apps = self
            .secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        let mut distributions = BTreeMap::new();
        for id in DISTRIBUTIONS {
            let d: Distribution = retry(async || self.cf.get_distribution(id).await)
                .await
                .value;
            distributions.insert(id, d);
        }
        let keyrings = self
            .keyrings
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        let public_keys: Vec<PublicKey> = retry(async || self.cf.list_public_keys().await).await;
        let g2 = retry(async || self.cf.list_key_groups().await).await;
        let g2_at = Instant::now();
        let objects = self
            .objects
            .list(&ListParams::default())
            .await
            .unwrap()
            .items;
        let ordered = g2_at.duration_since(start) < GRACE / 3;
        self.samples += 1;
        if !ordered {
            self.slow_samples += 1;
        }

        for secret in apps.iter().chain(&keyrings) {
            for (name, value) in secret.data.iter().flatten() {
                if name.ends_with(".pem") && name != "public_key.pem" {
                    self.private_keys
                        .insert(String::from_utf8_lossy(&value.0).into_owned());
                }
            }
        }
        let encoded: BTreeMap<&str, &str> = public_keys
            .iter()
            .map(|k| (k.id.as_str(), k.encoded_key.as_str()))
            .collect();
        for i in 0..OBJECTS {
            let owner = owner(i);
            let name = object_name(i);
            let group_of = |groups: &[KeyGroup]| -> Option<(String, BTreeSet<String>)> {
                groups
                    .iter()
                    .find(|g| names::is_owned_comment(g.config.comment.as_deref(), &owner))
                    .map(|g| (g.id.clone(), g.config.items.iter().cloned().collect()))
            };
            let (group_id, items) = group_of(&g2).unwrap_or_default();
            let (_, items_before) = group_of(&g1).unwrap_or_default();
            // I6
            if items.len() > 5 {
                return Err(format!("I6: {name}'s key group holds {} keys", items.len()));
            }
            // I1
            let keyring = keyrings
                .iter()
                .find(|s| s.name_any() == names::keyring_secret_name(&owner));
            let app = apps.iter().find(|s| {
                s.name_any() == format!("{name}-cloudfront-key")
                    && s.annotations().get(names::OWNER_ANNOTATION) == Some(&owner)
            });
            let stored: BTreeSet<String> = keyring
                .into_iter()
                .chain(app)
                .flat_map(|s| s.data.iter().flatten())
                .filter(|(k, _)| k.ends_with(".pem") && k.as_str() != "public_key.pem")
                .map(|(_, v)| private_fingerprint(&String::from_utf8_lossy(&v.0)))
                .collect();
            for id in items.intersection(&items_before) {
                let Some(public) = encoded.get(id.as_str()) else {
                    return Err(format!(
                        "I1: {name}'s group holds {id}, which is not a public key"
                    ));
                };
                if !stored.contains(&keyfront::keys::fingerprint(public).unwrap()) {
                    return Err(format!(
                        "I1: {name}'s group holds {id} but its private key is not stored"
                    ));
                }
            }
            // I2
            let object = objects.iter().find(|o| o.name_any() == name);
            let deleting = object.is_none_or(|o| o.metadata.deletion_timestamp.is_some());
            let signing = app.and_then(|s| text(s, "key_pair_id"));
            let history = &mut self.history[i];
            if let (Some(id), false) = (&signing, deleting) {
                history.signing_keys.insert(id.clone());
                history.last_seen_signing.insert(id.clone(), start);
                if ordered {
                    if !items.contains(id) {
                        return Err(format!(
                            "I2: {name}'s Secret signs with {id}, not in its group {items:?}"
                        ));
                    }
                    let pem = text(app.unwrap(), "private_key.pem").unwrap_or_default();
                    if private_fingerprint(&pem)
                        != keyfront::keys::fingerprint(encoded[id.as_str()]).unwrap()
                    {
                        return Err(format!(
                            "I2: {name}'s Secret holds a private key that is not {id}'s"
                        ));
                    }
                    for (dist_id, d) in &distributions {
                        let trusts = d
                            .behaviors
                            .iter()
                            .any(|b| b.trusted_key_groups.contains(&group_id));
                        let live = d
                            .active_trusted_key_groups
                            .iter()
                            .any(|g| g.key_group_id == group_id && g.key_pair_ids.contains(id));
                        if trusts && !live {
                            return Err(format!(
                                "I2: {dist_id} trusts {name}'s group, but {id} is not live at its edge"
                            ));
                        }
                    }
                }
            }
            // I4: a key that left the group was last named by the Secret at least the grace
            // before this sample's G2 read (an upper bound of the real gap, so never a false
            // alarm).
            if !deleting {
                for left in history.in_group.difference(&items) {
                    if signing.as_ref() == Some(left) {
                        return Err(format!(
                            "I4: {left} left {name}'s group while the Secret still names it"
                        ));
                    }
                    if let Some(seen) = history.last_seen_signing.get(left) {
                        let gap = g2_at.duration_since(*seen);
                        if ordered && gap < GRACE {
                            return Err(format!(
                                "I4: {left} left {name}'s group {gap:?} after the Secret last named it (grace {GRACE:?})"
                            ));
                        }
                    }
                }
            }
            history.in_group = items;
            // I5
            if let Some(object) = object {
                self.assert_no_key_material(
                    "status",
                    &serde_json::to_string(&object.status).unwrap(),
                )?;
            }
        }
        Ok(())
    }

    /// I5: no private key (any 24-character run of its PEM body) appears in `text`.
    fn assert_no_key_material(&self, what: &str, text: &str) -> Result<(), String> {
        for pem in &self.private_keys {
            for line in pem
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() >= 24)
            {
                if text.contains(&line[..24]) {
                    return Err(format!("I5: private key material found in {what}"));
                }
            }
        }
        Ok(())
    }

    fn rotations(&self) -> Vec<usize> {
        self.history
            .iter()
            .map(|h| h.signing_keys.len().saturating_sub(1))
            .collect()
    }
}

/// The kubelet for every app: re-reads each Secret every 1–4 s and projects a changed one.
async fn kubelet(secrets: Api<Secret>, mounts: Vec<PathBuf>, stop: Arc<AtomicBool>) {
    let mut current: Vec<Option<BTreeMap<String, k8s_openapi::ByteString>>> = vec![None; OBJECTS];
    let mut due: Vec<Instant> = vec![Instant::now(); OBJECTS];
    let mut version = 1u64;
    while !stop.load(Ordering::Relaxed) {
        for i in 0..OBJECTS {
            if Instant::now() < due[i] {
                continue;
            }
            due[i] = Instant::now() + Duration::from_millis(rand::rng().random_range(1000..4000));
            let Ok(Some(secret)) = secrets
                .get_opt(&format!("{}-cloudfront-key", object_name(i)))
                .await
            else {
                continue;
            };
            if let Some(data) = &secret.data
                && secret.data != current[i]
            {
                version += 1;
                keyfront::dev::kubelet::project(&mounts[i], version, data).unwrap();
                current[i] = secret.data;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the apps saw.
#[derive(Default)]
struct AppStats {
    sent: u64,
    rejected: Vec<String>,
}

/// The apps: round-robin over the objects, each signing a canned URL with its mounted key and
/// fetching it through the edge.
async fn apps(
    edge: SocketAddr,
    hosts: Vec<String>,
    signers: Vec<MountedSigner>,
    stats: Arc<Mutex<AppStats>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let i = (n % OBJECTS as u64) as usize;
        let host = &hosts[i];
        let path = format!("/t{i:02}/segment-{n}.ts");
        let url = format!("https://{host}{path}");
        let signer = signers[i].current().unwrap();
        let expires = jiff::Timestamp::now().as_second() + URL_LIFETIME_SECONDS;
        let signed = signer
            .sign_url(&url, &Policy::canned(&url, expires))
            .unwrap();
        let status = edge_get(edge, host, &signed[signed.find(&path).unwrap()..]).await;
        {
            let mut s = stats.lock().unwrap();
            s.sent += 1;
            if status != 200 {
                s.rejected.push(format!(
                    "{} {status} with {}",
                    object_name(i),
                    signer.key_pair_id()
                ));
            }
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Default)]
struct ChaosStats {
    kills: u64,
    touches: u64,
    latency_bursts: u64,
    watch_drops: u64,
}

/// Faults on a schedule: kills while `kills_on`, ETag touches, latency bursts, dropped watches.
async fn chaos(
    operator: Arc<Mutex<Operator>>,
    double: ApiDouble,
    cf_addr: SocketAddr,
    kills_on: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> ChaosStats {
    let mut stats = ChaosStats::default();
    let now = Instant::now();
    let mut next_kill = now + Duration::from_secs(10);
    let mut next_touch = now;
    let mut next_latency = now;
    let mut next_drop = now + Duration::from_secs(5);
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let pick = |range: std::ops::Range<u64>| rand::rng().random_range(range);
        if now >= next_kill && kills_on.load(Ordering::Relaxed) {
            operator.lock().unwrap().kill_and_restart();
            stats.kills += 1;
            next_kill = now + Duration::from_millis(pick(15_000..40_000));
        }
        if now >= next_touch {
            let id = DISTRIBUTIONS[pick(0..DISTRIBUTIONS.len() as u64) as usize];
            assert_eq!(
                http_post(cf_addr, &format!("/_emulator/distributions/{id}/touch"), "").await,
                204
            );
            stats.touches += 1;
            next_touch = now + Duration::from_millis(pick(2_000..8_000));
        }
        if now >= next_latency {
            let burst =
                json!({"fault": "latency", "count": pick(1..5), "latencyMs": pick(100..1500)});
            assert_eq!(
                http_post(cf_addr, "/_emulator/faults", &burst.to_string()).await,
                204
            );
            stats.latency_bursts += 1;
            next_latency = now + Duration::from_millis(pick(1_000..5_000));
        }
        if now >= next_drop {
            double.drop_watches();
            stats.watch_drops += 1;
            next_drop = now + Duration::from_millis(pick(10_000..25_000));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_objects_rotate_under_faults_without_a_rejected_request() {
    let wanted = rotations_wanted();
    let run_started = Instant::now();
    let run_dir = KeepOnFailure(Some(tempfile::tempdir().unwrap()));
    let dir = run_dir.0.as_ref().unwrap();
    let cluster = crate::support::Cluster::double(dir.path())
        .await
        .with_keyfront(KEYRING_NAMESPACE)
        .await;
    cluster.raise_default_account_quotas(200, 40).await;
    let (double, kubeconfig) = (cluster.api_double(), cluster.kubeconfig().to_owned());

    let mut emulator_args: Vec<String> = [
        "--propagation-delay",
        "1",
        "--throttle-rate",
        "0.1",
        "--error-rate",
        "0.1",
        "--max-public-keys",
        "200",
        "--max-key-groups",
        "40",
    ]
    .map(str::to_owned)
    .to_vec();
    for (d, id) in DISTRIBUTIONS.iter().enumerate() {
        let patterns: Vec<String> = (0..OBJECTS)
            .filter(|i| i % DISTRIBUTIONS.len() == d)
            .map(path_pattern)
            .collect();
        emulator_args.push("--distribution".into());
        emulator_args.push(format!("{id}={}", patterns.join(",")));
    }
    let emulator_args: Vec<&str> = emulator_args.iter().map(String::as_str).collect();
    let emulator = crate::support::stack::Emulator::start(dir.path(), &emulator_args).await;
    let (cf_addr, edge, cf) = (emulator.api, emulator.edge, emulator.cf.clone());

    let operator = Arc::new(Mutex::new(Operator::start(
        &kubeconfig,
        cf_addr,
        dir.path(),
    )));
    double.set_write_conflict_rate(0.1);
    for i in 0..OBJECTS {
        double.create(manifest(i)).unwrap();
    }
    let objects: Api<SigningKeyGroup> = Api::namespaced(double.client(), NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(double.client(), NAMESPACE);
    let show_log = ShowLogs(operator.clone());
    crate::support::wait_for("every object Ready", Duration::from_secs(240), async || {
        for i in 0..OBJECTS {
            if !crate::support::ready(&objects, &object_name(i)).await {
                return false;
            }
        }
        true
    })
    .await;
    let raw = crate::support::raw_cloudfront(cf_addr);
    let mut domain_names = BTreeMap::new();
    for id in DISTRIBUTIONS {
        for _ in 0..100 {
            if let Ok(out) = raw.get_distribution().id(id).send().await {
                domain_names.insert(id, out.distribution.unwrap().domain_name);
                break;
            }
        }
    }
    let hosts: Vec<String> = (0..OBJECTS)
        .map(|i| domain_names[distribution_of(i)].clone())
        .collect();
    for (i, host) in hosts.iter().enumerate() {
        let probe = format!("/t{i:02}/unsigned.ts");
        crate::support::wait_for(
            "the edge to protect every path",
            Duration::from_secs(60),
            async || edge_get(edge, host, &probe).await == 403,
        )
        .await;
    }
    let converged_after = run_started.elapsed();

    // The apps start from the Secret as it is now, like a pod that mounts it.
    let mount_root = tempfile::tempdir().unwrap();
    let mounts: Vec<PathBuf> = (0..OBJECTS)
        .map(|i| mount_root.path().join(object_name(i)))
        .collect();
    for (i, mount) in mounts.iter().enumerate() {
        let secret = secrets
            .get(&format!("{}-cloudfront-key", object_name(i)))
            .await
            .unwrap();
        keyfront::dev::kubelet::project(mount, 1, secret.data.as_ref().unwrap()).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let kills_on = Arc::new(AtomicBool::new(true));
    let app_stats = Arc::new(Mutex::new(AppStats::default()));
    let signers = mounts
        .iter()
        .map(|m| MountedSigner::open(m).unwrap())
        .collect();
    let kubelet_task = tokio::spawn(kubelet(secrets.clone(), mounts, stop.clone()));
    let apps_task = tokio::spawn(apps(
        edge,
        hosts.clone(),
        signers,
        app_stats.clone(),
        stop.clone(),
    ));
    let chaos_task = tokio::spawn(chaos(
        operator.clone(),
        double.clone(),
        cf_addr,
        kills_on.clone(),
        stop.clone(),
    ));

    let mut checker = Checker {
        cf: cloudfront(cf_addr),
        secrets: secrets.clone(),
        keyrings: Api::namespaced(double.client(), KEYRING_NAMESPACE),
        objects: objects.clone(),
        history: (0..OBJECTS).map(|_| History::default()).collect(),
        private_keys: BTreeSet::new(),
        samples: 0,
        slow_samples: 0,
    };
    // (incarnation, seconds since it started, RSS KiB)
    let mut rss: Vec<(usize, f64, u64)> = Vec::new();
    let soak_started = Instant::now();
    let deadline = Duration::from_secs(60 + 60 * wanted as u64);
    let mut last_progress = Instant::now();
    loop {
        if let Err(violation) = checker.sample().await {
            stop.store(true, Ordering::Relaxed);
            panic!("{violation}");
        }
        {
            let op = operator.lock().unwrap();
            if let Some(kib) = op.rss_kib() {
                rss.push((op.incarnation, op.started.elapsed().as_secs_f64(), kib));
            }
        }
        let fewest = checker.rotations().into_iter().min().unwrap();
        if fewest * 2 >= wanted {
            kills_on.store(false, Ordering::Relaxed);
        }
        if fewest >= wanted {
            break;
        }
        if last_progress.elapsed() >= Duration::from_secs(30) {
            last_progress = Instant::now();
            let rotations = checker.rotations();
            println!(
                "soak: {:.0?} in, rotations per object {}..{}, operator incarnation {}, {} signed requests",
                soak_started.elapsed(),
                fewest,
                rotations.iter().max().unwrap(),
                operator.lock().unwrap().incarnation,
                app_stats.lock().unwrap().sent
            );
        }
        assert!(
            soak_started.elapsed() < deadline,
            "after {deadline:?} rotations per object are {:?}, {wanted} wanted",
            checker.rotations()
        );
        let rejected = app_stats.lock().unwrap().rejected.len();
        assert_eq!(
            rejected,
            0,
            "rejected: {:?}",
            app_stats.lock().unwrap().rejected
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let soak_time = soak_started.elapsed();
    stop.store(true, Ordering::Relaxed);
    apps_task.await.unwrap();
    kubelet_task.await.unwrap();
    let chaos_stats = chaos_task.await.unwrap();
    let app = std::mem::take(&mut *app_stats.lock().unwrap());

    // Everything is deleted, with the faults still on: nothing of keyfront's stays behind.
    for i in 0..OBJECTS {
        objects
            .delete(&object_name(i), &DeleteParams::default())
            .await
            .unwrap();
    }
    crate::support::wait_for(
        "every object to be deleted",
        Duration::from_secs(240),
        async || {
            objects
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .is_empty()
        },
    )
    .await;
    let leftover_keys: Vec<String> = retry(async || cf.list_public_keys().await)
        .await
        .into_iter()
        .filter(|k| (0..OBJECTS).any(|i| names::serial_of_public_key(&owner(i), &k.name).is_some()))
        .map(|k| k.id)
        .collect();
    let leftover_groups: Vec<String> = retry(async || cf.list_key_groups().await)
        .await
        .into_iter()
        .filter(|g| {
            (0..OBJECTS).any(|i| names::is_owned_comment(g.config.comment.as_deref(), &owner(i)))
        })
        .map(|g| g.id)
        .collect();
    assert!(
        leftover_keys.is_empty(),
        "I3: public keys left behind: {leftover_keys:?}"
    );
    assert!(
        leftover_groups.is_empty(),
        "I3: key groups left behind: {leftover_groups:?}"
    );

    // I5 over what the operator said: its logs and the Events.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(double.client(), NAMESPACE);
    let notes: String = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| {
            format!(
                "{} {}\n",
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default()
            )
        })
        .collect();
    checker.assert_no_key_material("events", &notes).unwrap();
    let logs = operator.lock().unwrap().logs();
    checker
        .assert_no_key_material("the operator's logs", &logs)
        .unwrap();

    // Memory: the last incarnation (no kills in the second half) against its own early figure.
    let last = operator.lock().unwrap().incarnation;
    let last_rss: Vec<(f64, u64)> = rss
        .iter()
        .filter(|r| r.0 == last)
        .map(|r| (r.1, r.2))
        .collect();
    let settle = last_rss.iter().find(|(age, _)| *age >= 20.0).map(|r| r.1);
    let end = last_rss.iter().rev().take(20).map(|r| r.1).max();
    let peak_per_incarnation: BTreeMap<usize, u64> =
        rss.iter().fold(BTreeMap::new(), |mut m, r| {
            let e = m.entry(r.0).or_insert(0);
            *e = (*e).max(r.2);
            m
        });
    let emulator_faults = http_get(cf_addr, "/_emulator/faults").await;
    let (conflicts, dropped) = double.faults_injected();
    let rotations = checker.rotations();
    println!(
        "soak: {OBJECTS} objects on {} distributions, converged in {converged_after:.1?}, then {soak_time:.1?} under faults",
        DISTRIBUTIONS.len()
    );
    println!(
        "soak: rotations per object min {} max {} total {}; {} signed requests, {} rejected",
        rotations.iter().min().unwrap(),
        rotations.iter().max().unwrap(),
        rotations.iter().sum::<usize>(),
        app.sent,
        app.rejected.len()
    );
    println!(
        "soak: {} SIGKILLs of the operator; emulator faults {emulator_faults}; {} ETag touches, {} latency bursts; API double: {conflicts} 409 conflicts, {dropped} watch streams dropped ({} drops)",
        chaos_stats.kills, chaos_stats.touches, chaos_stats.latency_bursts, chaos_stats.watch_drops
    );
    println!(
        "soak: invariants checked at {} samples ({} too slow for I2/I4); operator RSS KiB: peak per incarnation {peak_per_incarnation:?}; last incarnation {:.0} s: {settle:?} at 20 s, {end:?} at the end",
        checker.samples,
        checker.slow_samples,
        last_rss.last().map_or(0.0, |r| r.0)
    );
    assert!(app.rejected.is_empty(), "rejected: {:?}", app.rejected);
    assert!(
        chaos_stats.kills >= 2,
        "the operator was killed only {} times",
        chaos_stats.kills
    );
    assert!(
        checker.samples > 2 * checker.slow_samples,
        "most samples were too slow to judge"
    );
    if let (Some(settle), Some(end)) = (settle, end) {
        assert!(
            end <= settle + settle / 4 + 8 * 1024,
            "the operator's RSS grew from {settle} KiB to {end} KiB"
        );
    }
    drop(show_log);
}

/// Keeps the run's directory (every operator log, the emulator's) if the test fails.
struct KeepOnFailure(Option<tempfile::TempDir>);

impl Drop for KeepOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!("soak: logs kept in {}", dir.keep().display());
        }
    }
}

/// Prints the last operator log if the test fails.
struct ShowLogs(Arc<Mutex<Operator>>);

impl Drop for ShowLogs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let op = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let log =
                std::fs::read_to_string(op.dir.join(format!("operator-{}.log", op.incarnation)))
                    .unwrap_or_default();
            eprintln!(
                "--- operator log (incarnation {}, last 60 lines) ---",
                op.incarnation
            );
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
