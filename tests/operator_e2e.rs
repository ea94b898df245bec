//! The real binaries end to end: `keyfront run` (a separate process, talking HTTP) against the
//! Kubernetes API double served on a loopback port and `keyfront emulator`, driven by
//! `kubectl apply` of the manifests in `examples/`.
//!
//! Checks: Ready with the Secret in place; at least 3 rotations with never more than 5 keys in
//! the group and the Secret's `key_pair_id` always in the key group and live at the edge of the
//! distribution it protects; `Delete` leaves nothing of keyfront's in the emulator and no
//! Secret; `Retain` keeps both; SIGTERM stops the operator cleanly; no key material in its log.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_cloudfront::config::{BehaviorVersion, Credentials, Region};
use k8s_openapi::api::core::v1::Secret;
use keyfront::api::SigningKeyGroup;
use keyfront::cloudfront::CloudFront as _;
use keyfront::cloudfront::sdk::SdkCloudFront;
use keyfront::reconcile::names;
use kube::{Api, ResourceExt as _};
use kube_api_double::{ApiDouble, write_kubeconfig};

/// Kills the child when the test ends, however it ends.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn keyfront(args: &[&str], log: &Path) -> Process {
    let log = std::fs::File::create(log).unwrap();
    Process(
        Command::new(env!("CARGO_BIN_EXE_keyfront"))
            .args(args)
            .env("RUST_LOG", "keyfront=debug,info")
            .env("AWS_ACCESS_KEY_ID", "AKIDEMULATOR")
            .env("AWS_SECRET_ACCESS_KEY", "emulator")
            .env("AWS_REGION", "us-east-1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start keyfront"),
    )
}

fn kubectl(kubeconfig: &Path, args: &[&str]) {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl is installed (bash .ci/run installs it)");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cloudfront(addr: SocketAddr) -> SdkCloudFront {
    let config = aws_sdk_cloudfront::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(format!("http://{addr}"))
        .build();
    SdkCloudFront::new(aws_sdk_cloudfront::Client::from_conf(config))
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Prints the operator's log if the test fails, so CI shows why.
struct ShowLogOnFailure(PathBuf);

impl Drop for ShowLogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- operator log (last 60 lines) ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

async fn ready(objects: &Api<SigningKeyGroup>, name: &str) -> bool {
    let Ok(Some(object)) = objects.get_opt(name).await else {
        return false;
    };
    object.status.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

fn data(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_binary_rotates_and_cleans_up_against_the_doubles() {
    let dir = tempfile::tempdir().unwrap();
    let double = ApiDouble::new();
    let api_addr = double.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, api_addr).unwrap();

    let cf_addr = free_port();
    let _emulator = keyfront(
        &[
            "emulator",
            "--listen",
            &cf_addr.to_string(),
            "--propagation-delay",
            "1",
            "--distribution",
            "EFASTDEMO1",
            "--distribution",
            "E3DOWNLOADS456=/downloads/*,/exports/*",
        ],
        &dir.path().join("emulator.log"),
    );
    let cf = cloudfront(cf_addr);
    wait_for("the emulator", Duration::from_secs(20), async || {
        cf.list_key_groups().await.is_ok()
    })
    .await;

    let kc = kubeconfig.clone();
    tokio::task::spawn_blocking(move || {
        kubectl(
            &kc,
            &[
                "apply",
                "--server-side",
                "-f",
                &repo("crds").to_string_lossy(),
            ],
        );
    })
    .await
    .unwrap();

    let operator_log = dir.path().join("operator.log");
    let mut operator = Command::new(env!("CARGO_BIN_EXE_keyfront"));
    operator
        .args([
            "--log-format",
            "json",
            "run",
            "--cloudfront-endpoint",
            &format!("http://{cf_addr}"),
            "--propagation-poll",
            "1s",
            "--backoff-base",
            "200ms",
            "--backoff-max",
            "5s",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "keyfront=debug,info")
        .env("AWS_ACCESS_KEY_ID", "AKIDEMULATOR")
        .env("AWS_SECRET_ACCESS_KEY", "emulator")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&operator_log).unwrap());
    let mut operator = Process(operator.spawn().unwrap());
    let _show_log = ShowLogOnFailure(operator_log.clone());

    let kc = kubeconfig.clone();
    tokio::task::spawn_blocking(move || {
        for example in ["examples/fast-rotation.yaml", "examples/ecdsa-retain.yaml"] {
            kubectl(&kc, &["apply", "-f", &repo(example).to_string_lossy()]);
        }
    })
    .await
    .unwrap();

    let client = double.client();
    let objects: Api<SigningKeyGroup> = Api::namespaced(client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    wait_for("fast to be Ready", Duration::from_secs(60), async || {
        ready(&objects, "fast").await
    })
    .await;
    wait_for(
        "downloads to be Ready",
        Duration::from_secs(60),
        async || ready(&objects, "downloads").await,
    )
    .await;
    let fast_uid = objects.get("fast").await.unwrap().uid().unwrap();
    let downloads_uid = objects.get("downloads").await.unwrap().uid().unwrap();

    // Watch rotations: every sample, the Secret's key is in the group and live at the edge.
    let mut seen = BTreeSet::new();
    let mut private_keys = BTreeSet::new();
    let mut max_keys = 0;
    let start = Instant::now();
    while seen.len() < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "only {} keys in {:?}",
            seen.len(),
            start.elapsed()
        );
        let secret = secrets.get("fast-cloudfront-key").await.unwrap();
        let key_id = data(&secret, "key_pair_id");
        private_keys.insert(data(&secret, "private_key.pem"));
        let groups = cf.list_key_groups().await.unwrap();
        let group = groups
            .iter()
            .find(|g| names::is_owned_comment(g.config.comment.as_deref(), &fast_uid))
            .expect("fast's key group");
        max_keys = max_keys.max(group.config.items.len());
        assert!(group.config.items.len() <= 5, "{:?}", group.config.items);
        assert!(
            group.config.items.contains(&key_id),
            "Secret signs with {key_id}, not in {:?}",
            group.config.items
        );
        let distribution = cf.get_distribution("EFASTDEMO1").await.unwrap().value;
        if let Some(active) = distribution
            .active_trusted_key_groups
            .iter()
            .find(|g| g.key_group_id == group.id)
        {
            assert!(
                active.key_pair_ids.contains(&key_id),
                "the edge trusts {} without the signing key {key_id}: {:?}",
                group.id,
                active.key_pair_ids
            );
        }
        seen.insert(key_id);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "operator e2e: {} rotations in {:?}, at most {max_keys} keys in the group",
        seen.len() - 1,
        start.elapsed()
    );

    // Delete: nothing of fast's left in CloudFront, its Secret gone. Retain: both kept.
    let kc = kubeconfig.clone();
    tokio::task::spawn_blocking(move || {
        for example in ["examples/fast-rotation.yaml", "examples/ecdsa-retain.yaml"] {
            kubectl(
                &kc,
                &[
                    "delete",
                    "--timeout=90s",
                    "-f",
                    &repo(example).to_string_lossy(),
                ],
            );
        }
    })
    .await
    .unwrap();
    let groups = cf.list_key_groups().await.unwrap();
    let keys = cf.list_public_keys().await.unwrap();
    assert!(
        !groups
            .iter()
            .any(|g| names::is_owned_comment(g.config.comment.as_deref(), &fast_uid)),
        "fast's key group left behind"
    );
    let fast_keys: Vec<_> = keys
        .iter()
        .filter(|k| names::serial_of_public_key(&fast_uid, &k.name).is_some())
        .collect();
    assert!(
        fast_keys.is_empty(),
        "public keys left behind: {fast_keys:?}"
    );
    let edge = cf.get_distribution("EFASTDEMO1").await.unwrap().value;
    assert!(
        edge.behaviors
            .iter()
            .all(|b| b.trusted_key_groups.is_empty())
    );
    assert!(
        secrets
            .get_opt("fast-cloudfront-key")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        groups
            .iter()
            .any(|g| names::is_owned_comment(g.config.comment.as_deref(), &downloads_uid)),
        "Retain deleted the key group"
    );
    let kept = secrets.get("downloads-cloudfront-key").await.unwrap();
    assert!(
        kept.owner_references().is_empty(),
        "{:?}",
        kept.owner_references()
    );

    // SIGTERM: the operator finishes what it is doing and exits 0.
    let pid = operator.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stop = Instant::now();
    let status = loop {
        if let Some(status) = operator.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stop.elapsed() < Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status}");

    let log = std::fs::read_to_string(&operator_log).unwrap();
    assert!(
        log.contains("\"level\":\"INFO\""),
        "JSON logs: {}",
        &log[..log.len().min(500)]
    );
    for pem in &private_keys {
        for line in pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 24)
        {
            assert!(
                !log.contains(&line[..24]),
                "private key material in the operator log"
            );
        }
    }
}
