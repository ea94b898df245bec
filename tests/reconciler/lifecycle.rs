//! One test per behaviour of the key lifecycle, driven through whole reconciles.

use std::time::Duration;

use keyfront::reconcile::{names, reasons};
use kube::ResourceExt as _;
use serde_json::json;

use crate::harness::{World, hourly, manifest};

#[tokio::test]
async fn create_reaches_ready_with_the_secret_key_group_and_trust_in_place() {
    let mut world = World::new();
    world.distribution("E1", &["/private/*"]);
    world
        .apply(manifest(
            "media",
            hourly(),
            json!([{"id": "E1", "defaultCacheBehavior": true, "pathPatterns": ["/private/*"]}]),
        ))
        .await;
    world.until_ready("media").await;
    let object = world.object("media").await.unwrap();
    let uid = object.uid().unwrap();
    assert!(object.finalizers().contains(&names::FINALIZER.to_owned()));

    let secret = world
        .app_secret("media-cloudfront-key")
        .await
        .expect("app Secret");
    let keys: Vec<&str> = secret.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "hash_algorithm",
            "key_pair_id",
            "private_key.pem",
            "public_key.pem"
        ]
    );
    assert_eq!(secret["hash_algorithm"], "SHA256");
    let (kg_id, items) = world.key_group_of(&uid).expect("key group");
    assert_eq!(items, [secret["key_pair_id"].clone()]);
    for trust in world.trust_of("E1") {
        assert_eq!(trust.trusted_key_groups, [kg_id.clone()], "{trust:?}");
    }
    world.assert_only_group_keys(&uid);

    let status = world.status("media").await;
    assert_eq!(status.key_group_id.as_deref(), Some(kg_id.as_str()));
    assert_eq!(status.observed_generation, object.metadata.generation);
    assert!(status.next_rotation_time.is_some());
    let reasons_seen: Vec<String> = world.events().await.into_iter().map(|(r, _)| r).collect();
    for reason in [
        reasons::KEY_STAGED,
        reasons::KEY_PUBLISHED,
        reasons::KEY_GROUP_CREATED,
        reasons::KEY_ACTIVATED,
        reasons::DISTRIBUTION_UPDATED,
    ] {
        assert!(
            reasons_seen.iter().any(|r| r == reason),
            "no {reason} event in {reasons_seen:?}"
        );
    }
    world.check_logs_and_errors();
}

#[tokio::test]
async fn rotations_keep_at_most_five_keys_and_retire_after_the_grace() {
    let mut world = World::new();
    world.distribution("E1", &[]);
    world
        .apply(manifest(
            "media",
            hourly(),
            json!([{"id": "E1", "defaultCacheBehavior": true}]),
        ))
        .await;
    world.until_ready("media").await;
    let mut signing = Vec::new();
    for _ in 0..4 {
        let before = world.app_secret("media-cloudfront-key").await.unwrap()["key_pair_id"].clone();
        signing.push(before.clone());
        let changed = world
            .run_until("media", 200, async |w: &crate::harness::World| {
                w.app_secret("media-cloudfront-key").await.unwrap()["key_pair_id"] != before
            })
            .await;
        assert!(changed, "no rotation: {:#?}", world.status("media").await);
    }
    let uid = world.object("media").await.unwrap().uid().unwrap();
    // The last retiring key lives out its 12-minute grace, then only the active key is left,
    // well before the next rotation is due.
    let (_, items) = world.key_group_of(&uid).unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    let start = world.clock_now();
    let alone = world
        .run_until("media", 20, async |w: &crate::harness::World| {
            w.key_group_of(&uid).unwrap().1.len() == 1
        })
        .await;
    assert!(alone);
    let waited = world.clock_now().duration_since(start).unsigned_abs();
    assert!(
        waited >= Duration::from_secs(12 * 60) && waited < Duration::from_secs(40 * 60),
        "{waited:?}"
    );
    world.assert_only_group_keys(&uid);
    world.check_logs_and_errors();
}
