//! `keyfront check-account`, run as a user runs it (the binary, credentials from the
//! environment) against the emulator over HTTP: with the policy `keyfront iam-policy` prints it
//! confirms every assumption and every action, and leaves the account as it found it; without
//! one action it names that action and still cleans up; against a CloudFront that deploys
//! instantly (as the real one may not behave) it reports the assumptions contradicted.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keyfront::api::{CloudFrontAccount, CloudFrontAccountSpec, DistributionGrant};
use keyfront::cloudfront::{
    BehaviorSelector, BehaviorTrust, CloudFront, KeyGroupConfig, NewPublicKey,
};
use keyfront::emulator::accounts::{Aws, DEFAULT_ACCOUNT_ID};
use keyfront::emulator::model::ModelSettings;
use keyfront::emulator::{Emulator, wire};
use keyfront::iam::{OneOrMany, PolicyDocument, policy};

const DISTRIBUTION: &str = "ECHECKACCOUNT1";
/// The access key the command runs with (the test's own calls use another, unrestricted).
const USER_KEY: &str = "AKIDCHECKUSER";

/// An emulator whose distribution's default behavior already trusts a "platform" group (as a
/// behavior that requires signed URLs does), with `policy` enforced on [`USER_KEY`]. Returns
/// its address and the platform group's ID.
async fn account(propagation: Duration, policy: Option<PolicyDocument>) -> (SocketAddr, String) {
    account_with(propagation, policy, true).await
}

/// As [`account`]; with `restricted` false the behavior trusts no group (it is public).
async fn account_with(
    propagation: Duration,
    policy: Option<PolicyDocument>,
    restricted: bool,
) -> (SocketAddr, String) {
    let emulator = Emulator::new(
        ModelSettings {
            propagation_delay: propagation,
            ..ModelSettings::default()
        },
        Default::default(),
        Arc::new(keyfront::clock::SystemClock),
    );
    emulator
        .create_test_distribution_with_id(DISTRIBUTION, &[])
        .unwrap();
    let aws = Aws::from(emulator);
    aws.set_identity_policy(USER_KEY, policy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, wire::router(aws)).await });

    let cf = crate::support::cloudfront(addr);
    let key = cf
        .create_public_key(&NewPublicKey {
            name: "platform".into(),
            encoded_key: std::fs::read_to_string(crate::support::repo(
                "tests/fixtures/keys/rsa-1.pub.pem",
            ))
            .unwrap(),
            comment: None,
            caller_reference: "platform".into(),
        })
        .await
        .unwrap();
    let group = cf
        .create_key_group(&KeyGroupConfig {
            name: "platform".into(),
            comment: None,
            items: vec![key.value.id],
        })
        .await
        .unwrap();
    if !restricted {
        return (addr, group.value.id);
    }
    let d = cf.get_distribution(DISTRIBUTION).await.unwrap();
    cf.set_trusted_key_groups(
        DISTRIBUTION,
        &[BehaviorTrust {
            behavior: BehaviorSelector::Default,
            trusted_key_groups: vec![group.value.id.clone()],
        }],
        &d.etag,
    )
    .await
    .unwrap();
    (addr, group.value.id)
}

/// What `keyfront iam-policy` prints for an account granting the distribution.
fn generated_policy() -> PolicyDocument {
    let account = CloudFrontAccount::new(
        "default",
        CloudFrontAccountSpec {
            distributions: vec![DistributionGrant {
                id: DISTRIBUTION.to_owned(),
                allowed_namespaces: None,
                default_cache_behavior: true,
                path_patterns: Vec::new(),
                allow_public_on_detach: false,
            }],
            ..Default::default()
        },
    );
    policy::account_policy(&account, Some(DEFAULT_ACCOUNT_ID))
}

/// Runs `keyfront check-account --live` as [`USER_KEY`]; (passed, stdout).
async fn check_account(addr: SocketAddr) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(["check-account", "--cloudfront-endpoint"])
        .arg(format!("http://{addr}"))
        .args(["--distribution", DISTRIBUTION, "--live", "--poll", "100ms"])
        .env("AWS_ACCESS_KEY_ID", USER_KEY)
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    (output.status.success(), stdout)
}

/// The lines with `verdict`, as the report prints them.
fn lines_with<'a>(stdout: &'a str, verdict: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter(|l| l.trim_start().starts_with(&format!("{verdict} ")))
        .collect()
}

/// The account holds exactly what it held before: the platform key and group, and the
/// behavior trusts only that group.
async fn left_as_found(addr: SocketAddr, platform: &str) {
    let cf = crate::support::cloudfront(addr);
    let keys: Vec<String> = cf
        .list_public_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(keys, ["platform"]);
    let groups: Vec<String> = cf
        .list_key_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id)
        .collect();
    assert_eq!(groups, [platform]);
    let d = cf.get_distribution(DISTRIBUTION).await.unwrap().value;
    assert_eq!(d.behaviors[0].trusted_key_groups, [platform]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_generated_policy_every_assumption_and_action_is_confirmed_and_nothing_is_left() {
    let (addr, platform) = account(Duration::from_millis(500), Some(generated_policy())).await;
    let (passed, stdout) = check_account(addr).await;
    assert!(passed, "{stdout}");
    assert_eq!(lines_with(&stdout, "confirmed").len(), 6, "{stdout}");
    assert!(lines_with(&stdout, "CONTRADICTED").is_empty(), "{stdout}");
    for action in policy::cloudfront_actions() {
        assert!(
            lines_with(&stdout, "ok")
                .iter()
                .any(|l| l.contains(&format!("{action}:"))),
            "{action} not checked: {stdout}"
        );
    }
    assert!(stdout.contains("left behind: nothing"), "{stdout}");
    left_as_found(addr, &platform).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_action_is_named_and_the_test_still_cleans_up() {
    let mut narrowed = generated_policy();
    for statement in &mut narrowed.statement {
        if let Some(actions) = &statement.action {
            let kept = actions
                .values()
                .iter()
                .filter(|a| *a != "cloudfront:UpdateKeyGroup")
                .cloned()
                .collect();
            statement.action = Some(OneOrMany::Many(kept));
        }
    }
    let (addr, platform) = account(Duration::from_millis(500), Some(narrowed)).await;
    let (passed, stdout) = check_account(addr).await;
    assert!(!passed, "{stdout}");
    let denied = lines_with(&stdout, "DENIED");
    assert_eq!(denied.len(), 1, "{stdout}");
    assert!(denied[0].contains("cloudfront:UpdateKeyGroup"), "{stdout}");
    assert!(denied[0].contains("keyfront iam-policy"), "{stdout}");
    assert!(stdout.contains("left behind: nothing"), "{stdout}");
    left_as_found(addr, &platform).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudfront_that_deploys_at_once_contradicts_the_assumptions() {
    let (addr, platform) = account(Duration::ZERO, None).await;
    let (passed, stdout) = check_account(addr).await;
    assert!(!passed, "{stdout}");
    let contradicted = lines_with(&stdout, "CONTRADICTED");
    assert!(
        contradicted
            .iter()
            .any(|l| l.contains("attaching a key group starts a deployment"))
            && contradicted
                .iter()
                .any(|l| l.contains("adding a key to a group starts a deployment")),
        "{stdout}"
    );
    left_as_found(addr, &platform).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_behavior_is_not_restricted_without_consent() {
    let (addr, _) = account_with(Duration::from_millis(100), None, false).await;
    let (passed, stdout) = check_account(addr).await;
    assert!(!passed, "{stdout}");
    assert!(stdout.contains("pass --allow-restricting"), "{stdout}");
    let cf = crate::support::cloudfront(addr);
    assert_eq!(
        cf.list_public_keys().await.unwrap().len(),
        1,
        "nothing created"
    );
    let d = cf.get_distribution(DISTRIBUTION).await.unwrap().value;
    assert!(d.behaviors[0].trusted_key_groups.is_empty(), "still public");
}

#[test]
fn live_needs_a_distribution() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(["check-account", "--live"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--distribution"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
