//! What the cluster or CloudFront refuses becomes `Ready=False` with a reason and one Warning
//! Event, without touching what keyfront does not own, and clears once the cause is gone.

use keyfront::cloudfront::{CloudFront as _, KeyGroupConfig};
use keyfront::emulator::faults::{FaultKind, ScriptedFault};
use keyfront::emulator::model::Quotas;
use keyfront::reconcile::{Outcome, reasons};
use serde_json::json;

use crate::reconcile::harness::{NAMESPACE, World, hourly, manifest};

async fn ready_reason(world: &World) -> Option<String> {
    world
        .condition("media", reasons::READY)
        .await
        .map(|(_, reason)| reason)
}

async fn warnings(world: &World, reason: &str) -> usize {
    world
        .events()
        .await
        .iter()
        .filter(|(r, _)| r == reason)
        .count()
}

#[tokio::test]
async fn a_secret_keyfront_does_not_own_is_never_overwritten() {
    let mut world = World::new();
    let foreign: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "media-cloudfront-key", "namespace": NAMESPACE},
        "stringData": {"private_key.pem": "someone else's"},
    }))
    .unwrap();
    world
        .secrets()
        .create(&Default::default(), &foreign)
        .await
        .unwrap();
    world.apply(manifest("media", hourly(), json!([]))).await;
    world.settle("media").await;
    assert_eq!(
        ready_reason(&world).await.as_deref(),
        Some(reasons::SECRET_CONFLICT)
    );
    assert_eq!(warnings(&world, reasons::SECRET_CONFLICT).await, 1);
    let secret = world.app_secret("media-cloudfront-key").await.unwrap();
    assert_eq!(secret["private_key.pem"], "someone else's");
    assert!(
        world.emulator.model().list_public_keys().is_empty(),
        "CloudFront was touched"
    );
    assert!(
        world.emulator.model().list_key_groups().is_empty(),
        "CloudFront was touched"
    );

    world
        .secrets()
        .delete("media-cloudfront-key", &Default::default())
        .await
        .unwrap();
    world.until_ready("media").await;
}

#[tokio::test]
async fn a_key_group_name_owned_by_someone_else_is_left_alone() {
    let mut world = World::new();
    let theirs = world
        .emulator
        .create_key_group(&KeyGroupConfig {
            name: "default_media".into(),
            comment: Some("made by hand".into()),
            items: vec![],
        })
        .await;
    // CloudFront refuses an empty group; put one key in it the way a person would.
    let theirs = match theirs {
        Ok(g) => g.value,
        Err(_) => {
            let key = world
                .emulator
                .create_public_key(&keyfront::cloudfront::NewPublicKey {
                    name: "by-hand".into(),
                    encoded_key: std::fs::read_to_string(concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/tests/fixtures/keys/ec-1.pub.pem"
                    ))
                    .unwrap(),
                    comment: None,
                    caller_reference: "by-hand".into(),
                })
                .await
                .unwrap();
            world
                .emulator
                .create_key_group(&KeyGroupConfig {
                    name: "default_media".into(),
                    comment: Some("made by hand".into()),
                    items: vec![key.value.id],
                })
                .await
                .unwrap()
                .value
        }
    };
    world.apply(manifest("media", hourly(), json!([]))).await;
    world.settle("media").await;
    assert_eq!(
        ready_reason(&world).await.as_deref(),
        Some(reasons::KEY_GROUP_NAME_TAKEN)
    );
    assert_eq!(
        world
            .condition("media", reasons::KEY_GROUP_READY)
            .await
            .map(|c| c.1)
            .as_deref(),
        Some(reasons::KEY_GROUP_NAME_TAKEN)
    );
    assert_eq!(warnings(&world, reasons::KEY_GROUP_NAME_TAKEN).await, 1);
    let model = world.emulator.model();
    let group = model.get_key_group(&theirs.id).unwrap();
    assert_eq!(group.config, theirs.config, "their key group was changed");
    assert_eq!(
        model.list_public_keys().len(),
        1,
        "keyfront created keys anyway"
    );
}

#[tokio::test]
async fn a_missing_distribution_is_named() {
    let mut world = World::new();
    world
        .apply(manifest(
            "media",
            hourly(),
            json!([{"id": "EMISSING", "defaultCacheBehavior": true}]),
        ))
        .await;
    world.settle("media").await;
    assert_eq!(
        ready_reason(&world).await.as_deref(),
        Some(reasons::DISTRIBUTION_NOT_FOUND)
    );
    let (_, message) = world
        .status("media")
        .await
        .conditions
        .into_iter()
        .find(|c| c.type_ == reasons::DISTRIBUTIONS_READY)
        .map(|c| (c.reason, c.message))
        .unwrap();
    assert!(message.contains("EMISSING"), "{message}");
    assert_eq!(warnings(&world, reasons::DISTRIBUTION_NOT_FOUND).await, 1);
}

#[tokio::test]
async fn access_denied_is_reported_then_recovered_from() {
    let mut world = World::new();
    world.emulator.script_fault(ScriptedFault {
        operation: Some("CreateKeyGroup".into()),
        fault: FaultKind::AccessDenied,
        count: 1000,
        latency_ms: 0,
    });
    world.apply(manifest("media", hourly(), json!([]))).await;
    world.settle("media").await;
    assert_eq!(
        ready_reason(&world).await.as_deref(),
        Some("CloudFrontAccessDenied")
    );
    let message = world
        .status("media")
        .await
        .conditions
        .into_iter()
        .find(|c| c.type_ == reasons::READY)
        .unwrap()
        .message;
    assert!(message.contains("CreateKeyGroup"), "{message}");
    assert_eq!(
        warnings(&world, "CloudFrontAccessDenied").await,
        1,
        "one Event, not one per retry"
    );
    // Errors come back to the controller, which backs off (never a hot loop).
    assert!(matches!(world.reconcile("media").await, Some(Err(_))));
    world.emulator.clear_faults();
    world.until_ready("media").await;
}

#[tokio::test]
async fn throttling_is_reported_and_retried() {
    let mut world = World::new();
    world.emulator.script_fault(ScriptedFault {
        operation: None,
        fault: FaultKind::Throttle,
        count: 3,
        latency_ms: 0,
    });
    world.apply(manifest("media", hourly(), json!([]))).await;
    let first = world.reconcile("media").await.unwrap();
    let error = first.expect_err("throttled");
    assert!(error.is_retryable(), "{}", error.detail());
    assert_eq!(
        ready_reason(&world).await.as_deref(),
        Some("CloudFrontThrottled")
    );
    world.until_ready("media").await;
    assert_eq!(warnings(&world, "CloudFrontThrottled").await, 1);
}

#[tokio::test]
async fn a_cloudfront_quota_is_reported() {
    let mut world = World::with_quotas(
        3,
        Quotas {
            public_keys: 1,
            ..Quotas::default()
        },
    );
    world
        .emulator
        .create_public_key(&keyfront::cloudfront::NewPublicKey {
            name: "someone-elses".into(),
            encoded_key: std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/keys/ec-1.pub.pem"
            ))
            .unwrap(),
            comment: None,
            caller_reference: "someone-elses".into(),
        })
        .await
        .unwrap();
    world.apply(manifest("media", hourly(), json!([]))).await;
    let outcome = world.reconcile("media").await.unwrap();
    assert!(!matches!(outcome, Ok(Outcome::AwaitChange)));
    world.settle("media").await;
    assert_eq!(
        ready_reason(&world).await.as_deref(),
        Some("CloudFrontQuotaExceeded")
    );
    assert_eq!(warnings(&world, "CloudFrontQuotaExceeded").await, 1);
}

/// A public key under the name keyfront would give its key, but not its key (a clash no retry
/// can fix): the create's AlreadyExists is an error naming it, not taken for success — which
/// planned the same create on every pass, forever.
#[tokio::test]
async fn already_exists_counts_as_success_only_when_the_key_found_is_ours() {
    let mut world = World::new();
    let owner = world.owner("media");
    for serial in 0..=2 {
        let name = keyfront::reconcile::names::public_key_name(&owner, serial);
        world
            .emulator
            .create_public_key(&keyfront::cloudfront::NewPublicKey {
                name: name.clone(),
                encoded_key: std::fs::read_to_string(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/keys/ec-1.pub.pem"
                ))
                .unwrap(),
                comment: None,
                caller_reference: name,
            })
            .await
            .unwrap();
    }
    world.apply(manifest("media", hourly(), json!([]))).await;
    let mut outcome = None;
    for _ in 0..5 {
        outcome = world.reconcile("media").await;
    }
    let Some(Err(error)) = outcome else {
        panic!("expected an error, got {outcome:?}")
    };
    assert_eq!(
        error.category(),
        "CloudFrontAlreadyExists",
        "{}",
        error.detail()
    );
    assert_eq!(
        ready_reason(&world).await.as_deref(),
        Some("CloudFrontAlreadyExists")
    );
}
