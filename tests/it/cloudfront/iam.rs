//! The policy `keyfront iam-policy` generates is exactly what keyfront's CloudFront calls
//! need, with the emulator enforcing it: every call keyfront makes, through the production SDK
//! adapter over HTTP, passes under it; with any one action removed, the call that needs it is
//! refused with AWS's AccessDenied and keyfront names that action (not the operation it thought
//! it was doing) in its `CloudFrontAccessDenied` reason.

use std::sync::Arc;

use keyfront::api::{CloudFrontAccount, CloudFrontAccountSpec, DistributionGrant};
use keyfront::cloudfront::sdk::SdkCloudFront;
use keyfront::cloudfront::{
    BehaviorSelector, BehaviorTrust, CloudFront, CloudFrontError, ErrorKind, KeyGroupConfig,
    NewPublicKey,
};
use keyfront::emulator::accounts::{Aws, DEFAULT_ACCOUNT_ID};
use keyfront::emulator::model::ModelSettings;
use keyfront::emulator::{Emulator, wire};
use keyfront::iam::{OneOrMany, PolicyDocument, policy};
use keyfront::reconcile::reasons;

const GRANTED: &str = "EIAMGRANTED1";
const NOT_GRANTED: &str = "EIAMOTHER1";
/// The access key `crate::support::cloudfront` signs with.
const ACCESS_KEY: &str = "AKIDTEST";

fn account() -> CloudFrontAccount {
    CloudFrontAccount::new(
        "media",
        CloudFrontAccountSpec {
            distributions: vec![DistributionGrant {
                id: GRANTED.to_owned(),
                allowed_namespaces: None,
                default_cache_behavior: true,
                path_patterns: Vec::new(),
                allow_public_on_detach: false,
            }],
            ..Default::default()
        },
    )
}

/// An emulator enforcing `policy` on [`ACCESS_KEY`], with both distributions, and the port
/// over HTTP to it.
async fn enforcing(policy: PolicyDocument) -> SdkCloudFront {
    let emulator = Emulator::new(
        ModelSettings::default(),
        Default::default(),
        Arc::new(keyfront::clock::SystemClock),
    );
    for id in [GRANTED, NOT_GRANTED] {
        emulator
            .create_test_distribution_with_id(id, &[])
            .expect("distribution");
    }
    let aws = Aws::from(emulator);
    aws.set_identity_policy(ACCESS_KEY, Some(policy));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, wire::router(aws)).await });
    crate::support::cloudfront(addr)
}

/// Every CloudFront call keyfront makes, in the order of an object's life: create a key and a
/// group, read them back, attach to the granted distribution, find it by the group, detach,
/// delete. Returns the first refusal.
async fn life(cf: &SdkCloudFront) -> Result<(), CloudFrontError> {
    let key = cf
        .create_public_key(&NewPublicKey {
            name: "iam-key".into(),
            encoded_key: std::fs::read_to_string("tests/fixtures/keys/rsa-1.pub.pem")
                .expect("fixture"),
            comment: None,
            caller_reference: "iam-key".into(),
        })
        .await?;
    cf.get_public_key(&key.value.id).await?;
    cf.list_public_keys().await?;
    let config = KeyGroupConfig {
        name: "iam-group".into(),
        comment: None,
        items: vec![key.value.id.clone()],
    };
    let group = cf.create_key_group(&config).await?;
    let read = cf.get_key_group(&group.value.id).await?;
    cf.list_key_groups().await?;
    let group_etag = cf
        .update_key_group(&group.value.id, &config, &read.etag)
        .await?
        .etag;
    let distribution = cf.get_distribution(GRANTED).await?;
    let trust = |groups: Vec<String>| {
        [BehaviorTrust {
            behavior: BehaviorSelector::Default,
            trusted_key_groups: groups,
        }]
    };
    let attached = cf
        .set_trusted_key_groups(
            GRANTED,
            &trust(vec![group.value.id.clone()]),
            &distribution.etag,
        )
        .await?;
    let trusting = cf.list_distributions_by_key_group(&group.value.id).await?;
    assert_eq!(trusting, [GRANTED]);
    cf.set_trusted_key_groups(GRANTED, &trust(Vec::new()), &attached.etag)
        .await?;
    cf.delete_key_group(&group.value.id, &group_etag).await?;
    let key_etag = cf.get_public_key(&key.value.id).await?.etag;
    cf.delete_public_key(&key.value.id, &key_etag).await
}

/// `policy` without `action` in any statement.
fn without(mut policy: PolicyDocument, action: &str) -> PolicyDocument {
    for statement in &mut policy.statement {
        if let Some(actions) = &statement.action {
            let kept: Vec<String> = actions
                .values()
                .iter()
                .filter(|a| *a != action)
                .cloned()
                .collect();
            statement.action = Some(OneOrMany::Many(kept));
        }
    }
    policy
}

#[tokio::test]
async fn the_generated_policy_allows_every_call_keyfront_makes_and_nothing_outside_its_grant() {
    let generated = policy::account_policy(&account(), Some(DEFAULT_ACCOUNT_ID));
    let cf = enforcing(generated).await;
    life(&cf)
        .await
        .expect("no call refused under the generated policy");
    let outside = cf
        .get_distribution(NOT_GRANTED)
        .await
        .expect_err("a distribution the account does not grant");
    assert_eq!(
        outside.denied(),
        Some((
            "cloudfront:GetDistribution",
            format!("arn:aws:cloudfront::{DEFAULT_ACCOUNT_ID}:distribution/{NOT_GRANTED}").as_str()
        ))
    );
}

#[tokio::test]
async fn each_action_of_the_policy_is_needed_and_its_absence_is_named() {
    let generated = policy::account_policy(&account(), Some(DEFAULT_ACCOUNT_ID));
    let mut named = Vec::new();
    for action in policy::cloudfront_actions() {
        let cf = enforcing(without(generated.clone(), action)).await;
        let refused = life(&cf)
            .await
            .expect_err(&format!("everything passed without {action}"));
        assert_eq!(refused.kind, ErrorKind::AccessDenied, "{refused}");
        assert_eq!(
            refused.denied().map(|(a, _)| a),
            Some(action),
            "without {action}: {refused}"
        );
        let error = keyfront::reconcile::Error::CloudFront {
            operation: "test",
            source: refused,
        };
        assert_eq!(error.category(), reasons::CLOUDFRONT_ACCESS_DENIED);
        assert!(error.detail().contains(action), "{}", error.detail());
        assert!(
            error.detail().contains("keyfront iam-policy"),
            "{}",
            error.detail()
        );
        named.push(action);
    }
    println!("each refused and named when removed: {named:?}");
}

fn iam_policy(args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .arg("iam-policy")
        .args(args)
        .output()
        .expect("keyfront runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_cli_prints_each_document_and_names_what_is_missing() {
    let example = "examples/accounts/cross-account.yaml";
    let (ok, out, _) = iam_policy(&["-f", example]);
    assert!(ok);
    let printed: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        printed["Statement"][1]["Resource"],
        "arn:aws:cloudfront::210987654321:distribution/E1MEDIAPROD01"
    );
    assert!(
        printed["Statement"][1]["Action"]
            .as_array()
            .expect("actions")
            .contains(&"cloudfront:GetDistributionConfig".into())
    );
    let operator_role = "arn:aws:iam::111122223333:role/keyfront-operator";
    let (ok, out, _) = iam_policy(&["-f", example, "--operator"]);
    assert!(ok);
    let operator: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(operator["Statement"][0]["Action"], "sts:AssumeRole");
    let (ok, out, _) = iam_policy(&[
        "-f",
        example,
        "--trust",
        "cross-account",
        "--operator-role-arn",
        operator_role,
    ]);
    assert!(ok);
    let trust: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(trust["Statement"][0]["Principal"]["AWS"], operator_role);
    assert!(trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"].is_string());

    let (ok, _, err) = iam_policy(&["--trust", "irsa"]);
    assert!(!ok);
    assert!(err.contains("--trust irsa needs --oidc-issuer"), "{err}");
    let (ok, _, err) = iam_policy(&["--aws-account-id", "12"]);
    assert!(!ok);
    assert!(err.contains("has 12 digits"), "{err}");
    let (ok, _, err) = iam_policy(&["-f", example, "--account", "nope"]);
    assert!(!ok);
    assert!(err.contains("no CloudFrontAccount named \"nope\""), "{err}");
    let (ok, out, err) = iam_policy(&[]);
    assert!(ok);
    assert!(err.contains("allows every distribution"), "{err}");
    assert!(out.contains("distribution/*"), "{out}");
}
