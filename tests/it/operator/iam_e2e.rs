//! The operator end to end under the IAM policy `keyfront iam-policy` prints, with the emulator
//! enforcing it: `keyfront iam-policy -f account.yaml` (the CLI a user runs) makes the policy
//! of the account the test installs; `keyfront emulator --iam-policy` enforces it on the
//! operator's credentials; `keyfront run` creates, attaches, rotates, adopts a key group made
//! outside keyfront, detaches and deletes on a real API server, and the emulator's request log
//! shows no call denied. Then the policy loses
//! `cloudfront:GetDistributionConfig` (the action the README's hand-written policy lacked) and
//! a new object says `CloudFrontAccessDenied`, naming that action.

use std::time::Duration;

use keyfront::api::SigningKeyGroup;
use keyfront::cloudfront::CloudFront as _;
use kube::Api;

use crate::support::stack::Stack;
use crate::support::{Cluster, ShowLogOnFailure, emulator_requests, http_post, wait_for};

const KEYRING_NAMESPACE: &str = "keyfront-system";
/// The access key `crate::support::operator` runs keyfront with.
const OPERATOR_ACCESS_KEY: &str = "AKIDEMULATOR";

/// The account the test installs: every namespace, one distribution's default behavior.
const ACCOUNT: &str = r#"apiVersion: keyfront.dev/v1alpha1
kind: CloudFrontAccount
metadata:
  name: default
spec:
  allowedNamespaces:
    from: All
  distributions:
    - id: EIAMDEMO1
      defaultCacheBehavior: true
      allowPublicOnDetach: true
"#;

fn object(interval: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "keyfront.dev/v1alpha1",
        "kind": "SigningKeyGroup",
        "metadata": {"name": "scoped", "namespace": "default"},
        "spec": {
            "key": {"algorithm": "ECDSAP256"},
            "rotation": {"interval": interval, "maxSignedUrlLifetime": "10s", "secretRefreshAllowance": "2s", "minPropagationWait": "0s"},
            "distributions": [{"id": "EIAMDEMO1", "defaultCacheBehavior": true, "allowPublicOnDetach": true}],
        },
    })
}

/// What `keyfront iam-policy -f FILE --aws-account-id …` prints.
fn generated_policy(dir: &std::path::Path) -> std::path::PathBuf {
    let account = dir.join("account.yaml");
    std::fs::write(&account, ACCOUNT).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(["iam-policy", "-f", &account.to_string_lossy()])
        .args([
            "--aws-account-id",
            keyfront::emulator::accounts::DEFAULT_ACCOUNT_ID,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let policy = dir.join("policy.json");
    std::fs::write(&policy, &output.stdout).unwrap();
    policy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_works_under_the_generated_policy_and_names_a_missing_action() {
    let policy_dir = tempfile::tempdir().unwrap();
    let policy = generated_policy(policy_dir.path());
    let enforce = format!("{OPERATOR_ACCESS_KEY}={}", policy.display());
    let stack = Stack::start(
        Cluster::real().await,
        &[
            "--propagation-delay",
            "1",
            "--distribution",
            "EIAMDEMO1",
            "--iam-policy",
            &enforce,
        ],
        async |cluster, _| {
            cluster.install_crds().await;
            cluster.create_namespaces(&[KEYRING_NAMESPACE]).await;
            cluster.apply(&serde_yaml::from_str(ACCOUNT).unwrap()).await;
        },
        &["--keyring-namespace", KEYRING_NAMESPACE],
    )
    .await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    let objects: Api<SigningKeyGroup> = Api::namespaced(stack.cluster.client(), "default");

    // Create, attach, rotate twice, then delete (detach, delete the group and the keys).
    stack.cluster.apply(&object("10s")).await;
    wait_for("Ready", Duration::from_secs(60), async || {
        crate::support::ready(&objects, "scoped").await
    })
    .await;
    // The account's usage, as `kubectl get cfa` prints it from the real API server.
    let kubeconfig = stack.kubeconfig.clone();
    let mut table = String::new();
    wait_for(
        "kubectl get cfa to show usage",
        Duration::from_secs(60),
        async || {
            let kc = kubeconfig.clone();
            table = tokio::task::spawn_blocking(move || {
                crate::support::kubectl(&kc, &["get", "cfa", "default"])
            })
            .await
            .unwrap();
            let mut lines = table.lines();
            let header: Vec<&str> = lines
                .next()
                .unwrap_or_default()
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            let row: Vec<&str> = lines
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            header.starts_with(&[
                "NAME",
                "READY",
                "ACCOUNT",
                "KEYS",
                "KEY QUOTA",
                "GROUPS",
                "GROUP QUOTA",
            ]) && row.get(3).is_some_and(|keys| keys.parse::<u32>().is_ok())
                && row.get(4) == Some(&"10")
        },
    )
    .await;
    println!("{table}");
    let mut active_keys = std::collections::BTreeSet::new();
    wait_for("two rotations", Duration::from_secs(90), async || {
        if let Some(active) = objects
            .get("scoped")
            .await
            .unwrap()
            .status
            .and_then(|s| s.active_key_id)
        {
            active_keys.insert(active);
        }
        active_keys.len() >= 3
    })
    .await;
    // An admin tailing the operator's log sees each key transition on one info line.
    let log = std::fs::read_to_string(&stack.operator_log).unwrap();
    for reason in ["KeyStaged", "KeyPublished", "KeyActivated"] {
        let line = log
            .lines()
            .find(|l| {
                l.contains("\"level\":\"INFO\"") && l.contains(&format!("\"reason\":\"{reason}\""))
            })
            .unwrap_or_else(|| panic!("no info line for {reason}"));
        assert!(line.contains("default/scoped"), "{line}");
    }
    // Adoption: a key group made outside keyfront (Terraform, here the test's own
    // unrestricted credentials) is taken over under the same policy.
    let cf = crate::support::cloudfront(stack.cf_addr);
    let foreign_key = cf
        .create_public_key(&keyfront::cloudfront::NewPublicKey {
            name: "terraform-key".into(),
            encoded_key: std::fs::read_to_string(crate::support::repo(
                "tests/fixtures/keys/rsa-1.pub.pem",
            ))
            .unwrap(),
            comment: None,
            caller_reference: "terraform-key".into(),
        })
        .await
        .unwrap();
    cf.create_key_group(&keyfront::cloudfront::KeyGroupConfig {
        name: "terraform-made".into(),
        comment: None,
        items: vec![foreign_key.value.id],
    })
    .await
    .unwrap();
    stack
        .cluster
        .apply(&serde_json::json!({
            "apiVersion": "keyfront.dev/v1alpha1",
            "kind": "SigningKeyGroup",
            "metadata": {"name": "adopted", "namespace": "default"},
            "spec": {
                "keyGroup": {"name": "terraform-made", "adopt": true},
                "key": {"algorithm": "ECDSAP256"},
            },
        }))
        .await;
    wait_for(
        "the adopted group Ready",
        Duration::from_secs(60),
        async || crate::support::ready(&objects, "adopted").await,
    )
    .await;
    objects
        .delete("adopted", &Default::default())
        .await
        .unwrap();
    objects.delete("scoped", &Default::default()).await.unwrap();
    wait_for(
        "the adopted object to be gone",
        Duration::from_secs(60),
        async || objects.get_opt("adopted").await.unwrap().is_none(),
    )
    .await;
    wait_for(
        "the object to be gone",
        Duration::from_secs(60),
        async || objects.get_opt("scoped").await.unwrap().is_none(),
    )
    .await;
    let log = emulator_requests(stack.cf_addr).await;
    let denied: Vec<_> = log.iter().filter(|r| r.denied).collect();
    assert!(
        denied.is_empty(),
        "denied under the generated policy: {denied:?}"
    );
    let operations: std::collections::BTreeSet<&str> =
        log.iter().map(|r| r.operation.as_str()).collect();
    for needed in [
        "CreatePublicKey",
        "CreateKeyGroup",
        "UpdateKeyGroup",
        "GetDistributionConfig",
        "UpdateDistribution",
        "DeleteKeyGroup",
        "DeletePublicKey",
    ] {
        assert!(
            operations.contains(needed),
            "{needed} never called: {operations:?}"
        );
    }
    println!(
        "under the generated policy: {} calls, 0 denied ({operations:?})",
        log.len()
    );

    // The policy without GetDistributionConfig: a new object cannot attach, and says why.
    let mut narrowed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&policy).unwrap()).unwrap();
    for statement in narrowed["Statement"].as_array_mut().unwrap() {
        if let Some(actions) = statement["Action"].as_array_mut() {
            actions.retain(|a| a != "cloudfront:GetDistributionConfig");
        }
    }
    let control = serde_json::json!({"principal": OPERATOR_ACCESS_KEY, "policy": narrowed});
    assert_eq!(
        http_post(stack.cf_addr, "/_emulator/iam-policy", &control.to_string()).await,
        204
    );
    stack.cluster.apply(&object("720h")).await;
    let mut said = String::new();
    wait_for(
        "Ready=False CloudFrontAccessDenied",
        Duration::from_secs(60),
        async || {
            let Some(status) = objects.get("scoped").await.unwrap().status else {
                return false;
            };
            status.conditions.iter().any(|c| {
                said = c.message.clone();
                c.type_ == "Ready" && c.status == "False" && c.reason == "CloudFrontAccessDenied"
            })
        },
    )
    .await;
    assert!(said.contains("cloudfront:GetDistributionConfig"), "{said}");
    assert!(said.contains("keyfront iam-policy"), "{said}");
}
