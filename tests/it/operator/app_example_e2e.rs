//! `examples/app/`, the files an app team copies, run as they would run in a pod: the
//! SigningKeyGroup applied to a real API server, its Secret projected into a directory the
//! way the kubelet mounts a Secret volume (refreshed every 4 s), and both example apps
//! (Python with botocore, Node with the AWS SDK's signer) started unchanged with the
//! environment `deployment.yaml` gives them. Through three rotations, every URL either app
//! hands out is fetched through the emulator's verifying edge: none is refused.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use keyfront::api::SigningKeyGroup;
use kube::Api;

use crate::support::stack::Stack;
use crate::support::{Cluster, ShowLogOnFailure, edge_get, free_port, ready, repo, wait_for};

const KEYRING_NAMESPACE: &str = "keyfront-system";
const DISTRIBUTION: &str = "EAPPEXAMPLE1";

/// A running example app, stopped when dropped.
struct App {
    name: &'static str,
    addr: SocketAddr,
    child: Child,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts an example app with the environment `deployment.yaml` sets, but the key directory,
/// domain and port of this test.
fn start_app(
    name: &'static str,
    command: &mut Command,
    key_dir: &std::path::Path,
    domain: &str,
) -> App {
    let addr = free_port();
    let child = command
        .env("KEY_DIR", key_dir)
        .env("CLOUDFRONT_DOMAIN", domain)
        .env("URL_LIFETIME_SECONDS", "20")
        .env("PORT", addr.port().to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start the {name} app: {e}"));
    App { name, addr, child }
}

/// Asks the app for a signed URL for `path`; returns (URL, key pair ID).
async fn ask(app: &App, path: &str) -> (String, String) {
    let body = crate::support::http_get(app.addr, &format!("/signed-url?path={path}")).await;
    let answer: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{} app answered {body:?}: {e}", app.name));
    (
        answer["url"].as_str().unwrap().to_owned(),
        answer["keyPairId"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_apps_sign_through_rotations_without_a_refused_url() {
    let stack = Stack::start(
        Cluster::real().await,
        &["--propagation-delay", "2", "--distribution", DISTRIBUTION],
        async |cluster, _| {
            cluster.install_keyfront(KEYRING_NAMESPACE).await;
            cluster.create_namespaces(&["video"]).await;
        },
        &["--keyring-namespace", KEYRING_NAMESPACE],
    )
    .await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());

    // The example's SigningKeyGroup, with this run's distribution and a 20 s rotation.
    let mut manifest =
        std::fs::read_to_string(repo("examples/app/signing-key-group.yaml")).unwrap();
    for (from, to) in [
        ("E2EXAMPLE123", DISTRIBUTION),
        ("interval: 720h", "interval: 20s"),
        ("maxSignedUrlLifetime: 1h", "maxSignedUrlLifetime: 20s"),
        ("secretRefreshAllowance: 2m", "secretRefreshAllowance: 5s"),
    ] {
        assert!(
            manifest.contains(from),
            "examples/app/signing-key-group.yaml lost {from:?}"
        );
        manifest = manifest.replace(from, to);
    }
    stack
        .cluster
        .apply(&serde_yaml::from_str(&manifest).unwrap())
        .await;
    let objects: Api<SigningKeyGroup> = Api::namespaced(stack.cluster.client(), "video");
    wait_for("media Ready", Duration::from_secs(90), async || {
        ready(&objects, "media").await
    })
    .await;
    let host = crate::support::domain_name(stack.cf_addr, DISTRIBUTION).await;
    wait_for(
        "the edge to protect the distribution",
        Duration::from_secs(30),
        async || edge_get(stack.edge, &host, "/videos/unsigned.mp4").await == 403,
    )
    .await;

    // The Secret deployment.yaml mounts, projected as the kubelet does.
    let deployment: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo("examples/app/deployment.yaml")).unwrap(),
    )
    .unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "media-cloudfront-key"
    );
    let volume_mount = &pod["containers"][0]["volumeMounts"][0];
    assert!(
        volume_mount["subPath"].is_null(),
        "mount the Secret as a volume: {volume_mount}"
    );
    let key_dir = pod["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "KEY_DIR")
        .unwrap();
    assert_eq!(
        key_dir["value"], volume_mount["mountPath"],
        "the app reads where the Secret is mounted"
    );
    let mount = tempfile::tempdir().unwrap();
    let secrets: Api<Secret> = Api::namespaced(stack.cluster.client(), "video");
    let kubelet =
        crate::support::mount_secret(&secrets, "media-cloudfront-key", mount.path()).await;

    let python = start_app(
        "Python",
        Command::new(crate::support::python()).arg(repo("examples/app/python/app.py")),
        mount.path(),
        &host,
    );
    let node = start_app(
        "Node",
        Command::new("node")
            .arg(repo("examples/app/node/server.js"))
            // The example's one dependency, as tests/js installs it (same pinned version).
            .env("NODE_PATH", repo("tests/js/node_modules")),
        mount.path(),
        &host,
    );
    for app in [&python, &node] {
        wait_for(
            &format!("the {} app to serve", app.name),
            Duration::from_secs(30),
            async || {
                crate::support::http_get_with_status(app.addr, "/healthz")
                    .await
                    .is_some_and(|(status, _)| status == 200)
            },
        )
        .await;
    }

    let (mut sent, mut rejected) = (0u64, Vec::new());
    let mut keys_used: [BTreeSet<String>; 2] = Default::default();
    let start = Instant::now();
    while keys_used.iter().any(|k| k.len() < 4) {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "keys used in {:?}: {keys_used:?}",
            start.elapsed()
        );
        for (i, app) in [&python, &node].into_iter().enumerate() {
            let path = format!("/videos/{sent}.mp4");
            let (url, key_pair_id) = ask(app, &path).await;
            keys_used[i].insert(key_pair_id.clone());
            let path_and_query = &url[url.find(&path).unwrap()..];
            let status = edge_get(stack.edge, &host, path_and_query).await;
            sent += 1;
            if status != 200 {
                rejected.push((app.name, status, key_pair_id, start.elapsed()));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kubelet.abort();
    println!(
        "examples/app: {sent} signed URLs from the Python and Node apps, {} and {} keys used, {} refused, over {:?}",
        keys_used[0].len(),
        keys_used[1].len(),
        rejected.len(),
        start.elapsed()
    );
    assert!(rejected.is_empty(), "refused: {rejected:?}");

    // `keyfront status` shows the object on one screen: conditions, keys, distribution, Events.
    let active = objects
        .get("media")
        .await
        .unwrap()
        .status
        .unwrap()
        .active_key_id
        .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(["status", "media", "-n", "video"])
        .env("KUBECONFIG", &stack.kubeconfig)
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{shown}");
    for expected in [
        "SigningKeyGroup video/media",
        "rotation:       every 20s",
        "Ready",
        &format!("apps sign with {active}"),
        "Retiring",
        DISTRIBUTION,
        "KeyActivated",
    ] {
        assert!(
            shown.contains(expected),
            "{expected:?} missing from:\n{shown}"
        );
    }
}
