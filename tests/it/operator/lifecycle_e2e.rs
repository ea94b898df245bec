//! The real binaries end to end: `keyfront run` (a separate process) against a real
//! kube-apiserver (with etcd and the controller manager, a fresh one per test) and
//! `keyfront emulator`, driven by `kubectl apply` of the manifests in `examples/`.
//!
//! Checks: Ready with the Secret in place; at least 3 rotations with never more than 5 keys in
//! the group and the Secret's `key_pair_id` always in the key group and live at the edge of the
//! distribution it protects; `Delete` leaves nothing of keyfront's in the emulator and no
//! Secret; `Retain` keeps both; SIGTERM stops the operator cleanly; no key material in its log.
//!
//! And the migration from Terraform: boto3 plays Terraform, a legacy app keeps signing with the
//! Terraform key while keyfront adopts the group, and not one URL is refused.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use keyfront::api::SigningKeyGroup;
use keyfront::cloudfront::CloudFront as _;
use keyfront::reconcile::names;
use kube::{Api, ResourceExt as _};
use kube_api_double::{ApiDouble, write_kubeconfig};

use crate::support::Cluster;
use crate::support::stack::Stack;

use crate::support::{
    ShowLogOnFailure, data, edge_get, free_port, keyfront, kubectl, ready, repo, wait_for,
};

const CLUSTER_ID: &str = "e2e";
const KEYRING_NAMESPACE: &str = "keyfront-system";

/// A real control plane with keyfront's CRDs and the single-team account, `keyfront emulator`
/// and `keyfront run` as separate processes.
async fn start() -> Stack {
    Stack::start(
        Cluster::real().await,
        &[
            "--propagation-delay",
            "3",
            "--distribution",
            "EFASTDEMO1",
            "--distribution",
            "E3DOWNLOADS456=/downloads/*,/exports/*",
        ],
        async |cluster, _| cluster.install_keyfront(KEYRING_NAMESPACE).await,
        &[
            "--cluster-id",
            CLUSTER_ID,
            "--keyring-namespace",
            KEYRING_NAMESPACE,
        ],
    )
    .await
}

async fn apply(stack: &Stack, examples: &'static [&'static str]) {
    let kc = stack.kubeconfig.clone();
    tokio::task::spawn_blocking(move || {
        for example in examples {
            kubectl(&kc, &["apply", "-f", &repo(example).to_string_lossy()]);
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_binary_rotates_and_cleans_up_against_a_real_api_server() {
    let mut stack = start().await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    let Stack {
        cluster,
        cf,
        kubeconfig,
        ..
    } = &stack;
    apply(
        &stack,
        &["examples/fast-rotation.yaml", "examples/ecdsa-retain.yaml"],
    )
    .await;

    let client = cluster.client();
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
    // As Flux sees them: kstatus (cli-utils' own code) on the objects the real API server holds.
    let mut written = Vec::new();
    wait_for(
        "kstatus to call both Current",
        Duration::from_secs(30),
        async || {
            written.clear();
            for name in ["fast", "downloads"] {
                written.push(serde_json::to_value(objects.get(name).await.unwrap()).unwrap());
            }
            crate::support::kstatus(&written)
                .iter()
                .all(|(verdict, _)| verdict == "Current")
        },
    )
    .await;
    let fast_uid = names::owner_token(CLUSTER_ID, "default", "fast");
    let downloads_uid = names::owner_token(CLUSTER_ID, "default", "downloads");

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
    // Keyrings live in the operator's namespace only: Delete removed fast's, Retain kept
    // downloads' (so the object created again resumes its keys).
    let keyrings: Api<Secret> = Api::namespaced(client.clone(), KEYRING_NAMESPACE);
    assert!(
        keyrings
            .get_opt(&names::keyring_secret_name(&fast_uid))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        keyrings
            .get_opt(&names::keyring_secret_name(&downloads_uid))
            .await
            .unwrap()
            .is_some()
    );
    let in_tenant_namespace = secrets
        .list(&kube::api::ListParams::default().labels("keyfront.dev/role=keyring"))
        .await
        .unwrap();
    assert!(
        in_tenant_namespace.items.is_empty(),
        "a keyring in the tenant namespace"
    );

    // SIGTERM: the operator finishes what it is doing and exits 0.
    let mut operator = stack.operator.take().unwrap();
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

    let log = std::fs::read_to_string(&stack.operator_log).unwrap();
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

/// DESIGN.md's first measure: zero failed signed requests through repeated rotations under
/// continuous signing traffic, with propagation delays simulated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuous_signing_through_five_rotations_is_never_rejected() {
    let stack = start().await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    apply(&stack, &["examples/fast-rotation.yaml"]).await;
    let objects: Api<SigningKeyGroup> = Api::namespaced(stack.cluster.client(), "default");
    wait_for("fast to be Ready", Duration::from_secs(60), async || {
        ready(&objects, "fast").await
    })
    .await;
    let host = crate::support::domain_name(stack.cf_addr, "EFASTDEMO1").await;

    // Once the attachment deploys, the edge refuses what is not signed: the check can fail.
    wait_for(
        "the edge to protect EFASTDEMO1",
        Duration::from_secs(30),
        async || edge_get(stack.edge, &host, "/segments/unsigned.ts").await == 403,
    )
    .await;

    // The kubelet: looks at the Secret every 4 s (under secretRefreshAllowance, 5 s) and
    // swaps the mounted directory when it changed.
    let mount = tempfile::tempdir().unwrap();
    let secrets: Api<Secret> = Api::namespaced(stack.cluster.client(), "default");
    let kubelet = crate::support::mount_secret(&secrets, "fast-cloudfront-key", mount.path()).await;

    // The app: signs with the library from the mounted directory and fetches through the edge.
    let signer = keyfront::signer::MountedSigner::open(mount.path()).unwrap();
    let (mut sent, mut rejected) = (0u64, Vec::new());
    let mut keys_used = BTreeSet::new();
    let start = Instant::now();
    while keys_used.len() < 6 {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "only {} keys used in {:?}",
            keys_used.len(),
            start.elapsed()
        );
        let current = signer.current().unwrap();
        keys_used.insert(current.key_pair_id().to_owned());
        let path = format!("/segments/{sent}.ts");
        let url = format!("https://{host}{path}");
        let expires = jiff::Timestamp::now().as_second() + 30;
        let signed = current
            .sign_url(&url, &keyfront::signer::Policy::canned(&url, expires))
            .unwrap();
        let path_and_query = &signed[signed.find(&path).unwrap()..];
        let status = edge_get(stack.edge, &host, path_and_query).await;
        sent += 1;
        if status != 200 {
            rejected.push((status, current.key_pair_id().to_owned(), start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kubelet.abort();
    assert_eq!(
        edge_get(stack.edge, &host, "/segments/unsigned.ts").await,
        403
    );
    println!(
        "zero-downtime: {sent} signed requests, {} rotations seen by the app, {} rejected, over {:?}",
        keys_used.len() - 1,
        rejected.len(),
        start.elapsed()
    );
    assert!(rejected.is_empty(), "rejected: {rejected:?}");
}

/// Signs a canned URL for `path` valid `lifetime` seconds and fetches it through the edge.
async fn fetch_signed(
    stack: &Stack,
    host: &str,
    signer: &keyfront::signer::Signer,
    path: &str,
    lifetime: i64,
) -> (String, u16) {
    let url = format!("https://{host}{path}");
    let expires = jiff::Timestamp::now().as_second() + lifetime;
    let signed = signer
        .sign_url(&url, &keyfront::signer::Policy::canned(&url, expires))
        .unwrap();
    let path_and_query = signed[signed.find(path).unwrap()..].to_owned();
    let status = edge_get(stack.edge, host, &path_and_query).await;
    (path_and_query, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terraform_key_group_is_adopted_without_refusing_a_signed_url() {
    const URL_LIFETIME: i64 = 20;
    let stack = start().await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());

    // Terraform's state: a key, a group holding it, a distribution whose default behavior
    // trusts the group.
    let tf = crate::support::terraform_setup(&format!("http://{}", stack.cf_addr));
    let host = tf.domain_name.clone();
    let updates = async || {
        crate::support::emulator_requests(stack.cf_addr)
            .await
            .iter()
            .filter(|r| r.operation == "UpdateDistribution")
            .count()
    };
    let updates_before = updates().await;

    // The adopting manifest of examples/, with this run's distribution and URLs living 20 s.
    let manifest = std::fs::read_to_string(repo("examples/adopt-terraform.yaml")).unwrap();
    let mut manifest = manifest.replace("EXXXXXXXXXXXXX", &tf.distribution_id);
    for (from, to) in [
        ("retireAdoptedKeysAfter: 2h", "retireAdoptedKeysAfter: 25s"),
        ("maxSignedUrlLifetime: 1h", "maxSignedUrlLifetime: 20s"),
        ("secretRefreshAllowance: 2m", "secretRefreshAllowance: 5s"),
        ("minPropagationWait: 5m", "minPropagationWait: 2s"),
    ] {
        assert!(
            manifest.contains(from),
            "examples/adopt-terraform.yaml lost {from:?}"
        );
        manifest = manifest.replace(from, to);
    }
    let manifest_path = stack.operator_log.with_file_name("adopt.yaml");
    std::fs::write(&manifest_path, manifest).unwrap();

    let legacy = keyfront::signer::Signer::from_pem(
        std::fs::read(repo("tests/fixtures/keys/rsa-1.pem"))
            .unwrap()
            .as_slice(),
        &tf.key_id,
        None,
    )
    .unwrap();
    assert_eq!(
        fetch_signed(&stack, &host, &legacy, "/before.ts", URL_LIFETIME)
            .await
            .1,
        200,
        "the Terraform setup serves signed URLs"
    );
    assert_eq!(edge_get(stack.edge, &host, "/unsigned.ts").await, 403);

    let kc = stack.kubeconfig.clone();
    tokio::task::spawn_blocking(move || {
        kubectl(&kc, &["apply", "-f", &manifest_path.to_string_lossy()]);
    })
    .await
    .unwrap();

    // The legacy app signs with the Terraform key until it is restarted onto the mounted
    // Secret (here: secretRefreshAllowance after the Secret appears); its URLs are fetched again
    // until they expire. The new app signs with the Secret as soon as there is one.
    let secrets: Api<Secret> = Api::namespaced(stack.cluster.client(), "default");
    let (mut sent, mut rejected) = (0u32, Vec::new());
    let mut legacy_urls: Vec<(String, i64)> = Vec::new();
    let mut secret_seen_at: Option<Instant> = None;
    let mut ours: Option<String> = None;
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "the Terraform key never left the group"
        );
        let now = jiff::Timestamp::now().as_second();
        let legacy_running = secret_seen_at.is_none_or(|t| t.elapsed() < Duration::from_secs(5));
        if legacy_running {
            let path = format!("/legacy/{sent}.ts");
            let (url, status) = fetch_signed(&stack, &host, &legacy, &path, URL_LIFETIME).await;
            sent += 1;
            if status != 200 {
                rejected.push(("legacy new", status, start.elapsed()));
            }
            legacy_urls.push((url, now + URL_LIFETIME));
        }
        // Every legacy URL still within its lifetime (with a second's margin) must pass.
        legacy_urls.retain(|(_, expires)| *expires > now + 1);
        if let Some((url, _)) = legacy_urls.first() {
            let status = edge_get(stack.edge, &host, url).await;
            if status != 200 {
                rejected.push(("legacy replayed", status, start.elapsed()));
            }
        }
        if let Some(secret) = secrets.get_opt("media-cloudfront-key").await.unwrap() {
            secret_seen_at.get_or_insert_with(Instant::now);
            let signer = keyfront::signer::Signer::from_pem(
                data(&secret, "private_key.pem").as_bytes(),
                &data(&secret, "key_pair_id"),
                None,
            )
            .unwrap();
            ours = Some(data(&secret, "key_pair_id"));
            let path = format!("/new/{sent}.ts");
            let status = fetch_signed(&stack, &host, &signer, &path, URL_LIFETIME)
                .await
                .1;
            sent += 1;
            if status != 200 {
                rejected.push(("new", status, start.elapsed()));
            }
        }
        let group = stack
            .cf
            .get_key_group(&tf.key_group_id)
            .await
            .unwrap()
            .value;
        if !legacy_running
            && legacy_urls.is_empty()
            && group.config.items == ours.clone().into_iter().collect::<Vec<_>>()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!(
        "migration: {sent} signed requests, {} rejected, Terraform key retired after {:?}",
        rejected.len(),
        start.elapsed()
    );
    assert!(rejected.is_empty(), "rejected: {rejected:?}");

    // The same group, only keyfront's key in it, the Terraform key kept in CloudFront, and the
    // distribution never updated.
    let objects: Api<SigningKeyGroup> = Api::namespaced(stack.cluster.client(), "default");
    let object = objects.get("media").await.unwrap();
    assert_eq!(
        object
            .status
            .as_ref()
            .and_then(|s| s.key_group_id.as_deref()),
        Some(tf.key_group_id.as_str())
    );
    assert!(stack.cf.get_public_key(&tf.key_id).await.is_ok());
    assert_eq!(
        updates().await,
        updates_before,
        "keyfront updated a distribution"
    );
    assert_eq!(
        edge_get(stack.edge, &host, "/unsigned.ts").await,
        403,
        "the behavior stayed private"
    );
}

/// `/readyz` answers 503 naming what it waits for until the watches have listed and keyfront's
/// own credentials made one CloudFront read; both failures are logged at warn.
///
/// On the API double: the test starts the API server after the operator, on a port chosen
/// before, which the in-process double can do at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_synced_watches_and_a_credential_check() {
    let dir = tempfile::tempdir().unwrap();
    let (api_addr, cf_addr, health) = (free_port(), free_port(), free_port());
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, api_addr).unwrap();
    let _emulator = keyfront(
        &["emulator", "--listen", &cf_addr.to_string()],
        &dir.path().join("emulator.log"),
    );
    wait_for("the emulator", Duration::from_secs(20), async || {
        tokio::net::TcpStream::connect(cf_addr).await.is_ok()
    })
    .await;
    let denied = r#"{"operation": "ListKeyGroups", "fault": "access-denied", "count": 1}"#;
    assert_eq!(
        crate::support::http_post(cf_addr, "/_emulator/faults", denied).await,
        204
    );

    // The API server is not up yet: the watches cannot list.
    let log = dir.path().join("operator.log");
    let _operator = crate::support::operator(
        &kubeconfig,
        cf_addr,
        // With --cluster-id it starts at once and checks the identity record in the background
        // (without one it must read the record first: see runtime::identity::settle).
        &[
            "--health-listen",
            &health.to_string(),
            "--cluster-id",
            "readiness",
        ],
        &log,
    );
    let readyz = async || crate::support::http_get_with_status(health, "/readyz").await;
    wait_for(
        "/readyz to name both pending checks",
        Duration::from_secs(20),
        async || {
            let Some((status, body)) = readyz().await else {
                return false;
            };
            status == 503
                && body.contains("not ready: CloudFront credentials: ListKeyGroups failed")
                && body.contains(
                    "not ready: SigningKeyGroup watch (all namespaces): waiting for the first list",
                )
        },
    )
    .await;

    let double = ApiDouble::new();
    for crd in std::fs::read_dir(repo("crds")).unwrap() {
        double.create_from_yaml(&crd.unwrap().path()).unwrap();
    }
    double.serve(api_addr).await.unwrap();
    // The credential check retries every 10 s; the watches back off up to 30 s.
    let mut last = None;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(45) && last != Some((200, "ok\n".to_owned())) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = readyz().await;
    }
    assert_eq!(
        last,
        Some((200, "ok\n".to_owned())),
        "/readyz after {:?}; log:\n{}",
        start.elapsed(),
        std::fs::read_to_string(&log).unwrap()
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    let warned = |message: &str| {
        logged.lines().any(|l| {
            l.contains(r#""level":"WARN""#) && l.contains(&format!(r#""message":"{message}"#))
        })
    };
    assert!(warned("CloudFront credential check failed"), "{logged}");
    assert!(warned("watch failed; retrying"), "{logged}");
}

/// `/metrics` of the real operator, scraped after an object became Ready: the families the
/// alerts and the dashboard use exist with their labels, values say what happened, no key ID
/// appears, and promtool accepts the exposition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_scraped_by_name_and_labels() {
    let stack = start().await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    apply(&stack, &["examples/fast-rotation.yaml"]).await;
    let objects: Api<SigningKeyGroup> = Api::namespaced(stack.cluster.client(), "default");
    wait_for("fast to be Ready", Duration::from_secs(60), async || {
        ready(&objects, "fast").await
    })
    .await;
    // Prometheus's ServiceAccount, bound to a metrics-reader ClusterRole; and a tenant's. The
    // real API server reviews their tokens and authorizes the path.
    let cluster = &stack.cluster;
    cluster.create_namespaces(&["monitoring", "team-a"]).await;
    cluster
        .apply(
            &serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "keyfront-metrics-reader"},
            "rules": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}]}),
        )
        .await;
    cluster
        .apply(&serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "prometheus-reads-keyfront"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "keyfront-metrics-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}]}))
        .await;
    let prometheus_token = cluster
        .service_account_token("monitoring", "prometheus")
        .await;
    let tenant_token = cluster.service_account_token("team-a", "app").await;
    let status_as = async |token: Option<&str>| {
        crate::support::http_get_as(stack.health, "/metrics", token)
            .await
            .map(|(status, _)| status)
    };
    assert_eq!(status_as(None).await, Some(401), "no token");
    assert_eq!(
        status_as(Some("not-a-token")).await,
        Some(401),
        "a token the cluster does not know"
    );
    assert_eq!(
        status_as(Some(&tenant_token)).await,
        Some(403),
        "a tenant's token"
    );
    let text = async || {
        crate::support::http_get_as(stack.health, "/metrics", Some(&prometheus_token))
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    };
    // The cache sees Ready a moment after the API does.
    let ready_line =
        r#"keyfront_signingkeygroup_ready{namespace="default",name="fast",status="True"} 1"#;
    wait_for(
        "Ready in the metrics",
        Duration::from_secs(10),
        async || text().await.contains(ready_line),
    )
    .await;
    let metrics = text().await;
    for expected in [
        r#"keyfront_signingkeygroup_ready{namespace="default",name="fast",status="False"} 0"#,
        r#"keyfront_signingkeygroup_keys{namespace="default",name="fast",state="active"} 1"#,
        r#"keyfront_cloudfront_calls_total{account="default",operation="CreatePublicKey",outcome="ok"}"#,
        r#"keyfront_cloudfront_calls_total{account="default",operation="UpdateDistribution",outcome="ok"}"#,
        r#"keyfront_cloudfront_call_duration_seconds_bucket{le="#,
        r#"keyfront_reconciles_total{result="ok"}"#,
        r#"keyfront_reconcile_duration_seconds_count"#,
        r#"keyfront_signingkeygroup_next_rotation_timestamp_seconds{namespace="default",name="fast"}"#,
        r#"keyfront_signingkeygroup_active_key_age_seconds{namespace="default",name="fast"}"#,
        "keyfront_leader 1",
    ] {
        assert!(metrics.contains(expected), "no {expected} in:\n{metrics}");
    }
    // Every family the alerts and the dashboard query is exposed.
    let names = regex_names(
        &(std::fs::read_to_string(repo("charts/keyfront/files/prometheus/alerts.yaml")).unwrap()
            + &std::fs::read_to_string(repo("charts/keyfront/dashboards/keyfront.json")).unwrap()),
    );
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        let family = ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        // A family with labels has no sample before its first event: errors by reason appear
        // with the first error, while the error count is there from the start.
        let declared = metrics.contains(&format!("# TYPE {family} "))
            || (family == "keyfront_reconcile_errors"
                && metrics.contains(r#"keyfront_reconciles_total{result="error"} 0"#));
        assert!(declared, "{name} is queried but not exposed");
    }
    // No key ID in any label or value.
    let secrets: Api<Secret> = Api::namespaced(stack.cluster.client(), "default");
    let key_id = data(
        &secrets.get("fast-cloudfront-key").await.unwrap(),
        "key_pair_id",
    );
    assert!(!metrics.contains(&key_id), "a key ID in the metrics");
    // promtool lints the exposition (names, types, help).
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed (bash .ci/run installs Debian's prometheus)");
    use std::io::Write as _;
    lint.stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    // promtool 2.x reads the classic text format, where a counter's HELP names the sample
    // (`x_total`); OpenMetrics names the family (`x`). Those are the only findings forgiven.
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = said
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            let counter_help = l
                .strip_suffix(" no help text")
                .and_then(|n| n.strip_suffix("_total"))
                .is_some_and(|family| metrics.contains(&format!("# HELP {family} ")));
            !counter_help
        })
        .collect();
    assert!(problems.is_empty(), "promtool check metrics: {problems:?}");
}

/// The `keyfront_…` metric names a query text mentions.
fn regex_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("keyfront_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}
