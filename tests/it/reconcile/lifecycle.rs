//! One test per behaviour of the key lifecycle, driven through whole reconciles.

use std::time::Duration;

use keyfront::reconcile::{names, reasons};
use kube::ResourceExt as _;
use serde_json::json;

use crate::reconcile::harness::{NAMESPACE, World, hourly, manifest};

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
    let uid = world.owner("media");
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
        assert_eq!(
            trust.trusted_key_groups,
            std::slice::from_ref(&kg_id),
            "{trust:?}"
        );
    }
    world.assert_only_group_keys(&uid);

    let status = world.status("media").await;
    assert_eq!(status.key_group_id.as_deref(), Some(kg_id.as_str()));
    assert_eq!(status.observed_generation, object.metadata.generation);
    assert!(status.next_rotation_time.is_some());
    let reasons_seen: Vec<String> = world.events().await.into_iter().map(|(r, _)| r).collect();
    assert!(
        !reasons_seen
            .iter()
            .any(|r| r == reasons::RECONCILED || r == reasons::NOT_STALLED),
        "a healthy object announced its GitOps conditions: {reasons_seen:?}"
    );
    // Rollout hints for apps that do not reload: which key, since when.
    let written = world.secrets().get("media-cloudfront-key").await.unwrap();
    let annotations = written.metadata.annotations.unwrap();
    assert_eq!(
        annotations[names::KEY_PAIR_ID_ANNOTATION],
        secret["key_pair_id"]
    );
    let activated: jiff::Timestamp = annotations[names::ACTIVATED_AT_ANNOTATION].parse().unwrap();
    assert!(activated <= world.clock_now());

    // Ready while the distribution deploys: still reconciling, until it has.
    assert_eq!(
        world.condition("media", reasons::RECONCILING).await,
        Some(("True".into(), reasons::DEPLOYING.into()))
    );
    world.settle("media").await;
    assert_eq!(
        world.condition("media", reasons::RECONCILING).await,
        Some(("False".into(), reasons::RECONCILED.into()))
    );
    assert_eq!(
        world.condition("media", reasons::STALLED).await,
        Some(("False".into(), reasons::NOT_STALLED.into()))
    );
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
            .run_until(
                "media",
                200,
                async |w: &crate::reconcile::harness::World| {
                    w.app_secret("media-cloudfront-key").await.unwrap()["key_pair_id"] != before
                },
            )
            .await;
        assert!(changed, "no rotation: {:#?}", world.status("media").await);
    }
    let uid = world.owner("media");
    // The last retiring key lives out its 12-minute grace, then only the active key is left,
    // well before the next rotation is due.
    let (_, items) = world.key_group_of(&uid).unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    let start = world.clock_now();
    let alone = world
        .run_until("media", 20, async |w: &crate::reconcile::harness::World| {
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

/// Two distributions, both on the default behavior, so the key group is attached somewhere
/// and rotations must wait for propagation.
async fn ready_with_distribution(world: &mut World, allow_public: bool) -> String {
    world.distribution("E1", &[]);
    world
        .apply(manifest(
            "media",
            hourly(),
            json!([{"id": "E1", "defaultCacheBehavior": true, "allowPublicOnDetach": allow_public}]),
        ))
        .await;
    world.until_ready("media").await;
    // Let the attachment deploy.
    world
        .run_until("media", 20, async |w: &World| {
            w.status("media")
                .await
                .distributions
                .iter()
                .all(|d| d.deployed)
        })
        .await;
    world.owner("media")
}

async fn signing_key(world: &World) -> String {
    world.key_pair_id("media-cloudfront-key").await.unwrap()
}

#[tokio::test]
async fn steady_state_makes_no_writes_and_at_most_two_reads() {
    let mut world = World::new();
    ready_with_distribution(&mut world, false).await;
    // An unrelated edit (as `kubectl annotate` makes) wakes the controller; nothing is due.
    world
        .annotate("media", "example.com/owner", "team-media")
        .await;
    let before = world.object("media").await.unwrap().resource_version();
    world.calls.take();
    let outcome = world.reconcile("media").await.unwrap().unwrap();
    let (reads, writes) = world.calls.take();
    assert_eq!(writes, 0, "CloudFront writes in steady state");
    assert!(reads <= 2, "{reads} CloudFront reads in steady state");
    assert_eq!(
        world.object("media").await.unwrap().resource_version(),
        before,
        "status was rewritten although nothing changed"
    );
    // The next look is the rotation, not a fixed poll.
    let keyfront::reconcile::Outcome::Requeue(after) = outcome else {
        panic!("{outcome:?}");
    };
    assert!(after > Duration::from_secs(50 * 60), "{after:?}");
}

#[tokio::test]
async fn a_new_key_is_signed_with_only_after_every_distribution_deployed_it() {
    let mut world = World::new();
    ready_with_distribution(&mut world, false).await;
    let old = signing_key(&world).await;
    world.annotate("media", names::ROTATE_ANNOTATION, "1").await;
    let start = world.clock_now();
    let rotated = world
        .run_until("media", 50, async |w: &World| signing_key(w).await != old)
        .await;
    assert!(rotated);
    // The emulator takes PROPAGATION to deploy the key group change; I2 (checked after every
    // reconcile) says the edge verified the new key when the Secret switched.
    let waited = world.clock_now().duration_since(start).unsigned_abs();
    assert!(
        waited >= crate::reconcile::harness::PROPAGATION,
        "{waited:?}"
    );
    let status = world.status("media").await;
    assert_eq!(status.keys.len(), 2, "{:#?}", status.keys);
    // The same annotation value does not rotate again.
    let current = signing_key(&world).await;
    world.settle("media").await;
    assert_eq!(signing_key(&world).await, current);
}

#[tokio::test]
async fn min_propagation_wait_delays_activation() {
    let mut world = World::new();
    world
        .apply(manifest(
            "media",
            json!({"interval": "1h", "maxSignedUrlLifetime": "10m", "secretRefreshAllowance": "2m", "minPropagationWait": "5m"}),
            json!([]),
        ))
        .await;
    let start = world.clock_now();
    world.until_ready("media").await;
    let waited = world.clock_now().duration_since(start).unsigned_abs();
    assert!(
        waited >= Duration::from_secs(300) && waited < Duration::from_secs(400),
        "{waited:?}"
    );
}

#[tokio::test]
async fn revoking_the_signing_key_replaces_it_and_drops_it_at_once() {
    let mut world = World::new();
    let uid = ready_with_distribution(&mut world, false).await;
    let revoked = signing_key(&world).await;
    world.mark_revoked(&revoked);
    world
        .annotate("media", names::REVOKE_ANNOTATION, &revoked)
        .await;
    let start = world.clock_now();
    let gone = world
        .run_until("media", 50, async |w: &World| {
            !w.key_group_of(&uid).unwrap().1.contains(&revoked)
        })
        .await;
    assert!(gone);
    assert_ne!(signing_key(&world).await, revoked);
    let waited = world.clock_now().duration_since(start).unsigned_abs();
    assert!(
        waited < Duration::from_secs(12 * 60),
        "revocation waited out the grace: {waited:?}"
    );
    world
        .run_until("media", 10, async |w: &World| {
            !w.public_keys_of(&uid).contains_key(&revoked)
        })
        .await;
    assert!(!world.public_keys_of(&uid).contains_key(&revoked));
    let reasons_seen: Vec<String> = world.events().await.into_iter().map(|(r, _)| r).collect();
    assert!(reasons_seen.iter().any(|r| r == reasons::KEY_REVOKED));
}

#[tokio::test]
async fn revoking_an_unknown_key_warns_and_changes_nothing() {
    let mut world = World::new();
    let uid = ready_with_distribution(&mut world, false).await;
    let before = world.key_group_of(&uid);
    world
        .annotate("media", names::REVOKE_ANNOTATION, "KNOTOURS")
        .await;
    world.settle("media").await;
    assert_eq!(world.key_group_of(&uid), before);
    let events = world.events().await;
    let warned: Vec<_> = events
        .iter()
        .filter(|(r, _)| r == reasons::REVOKE_KEY_NOT_FOUND)
        .collect();
    assert_eq!(warned.len(), 1, "acted on once per value: {events:?}");
    assert!(warned[0].1.contains("KNOTOURS"));
}

#[tokio::test]
async fn a_rotation_that_would_need_a_sixth_key_waits_and_says_why() {
    let mut world = World::new();
    world.apply(manifest("media", hourly(), json!([]))).await;
    world.until_ready("media").await;
    let uid = world.owner("media");
    for n in 1..=4 {
        let old = signing_key(&world).await;
        world
            .annotate("media", names::ROTATE_ANNOTATION, &n.to_string())
            .await;
        assert!(
            world
                .run_until("media", 20, async |w: &World| signing_key(w).await != old)
                .await
        );
    }
    assert_eq!(world.key_group_of(&uid).unwrap().1.len(), 5);
    let old = signing_key(&world).await;
    world.annotate("media", names::ROTATE_ANNOTATION, "5").await;
    world.reconcile("media").await.unwrap().unwrap();
    world.check_invariants("media").await;
    assert_eq!(signing_key(&world).await, old);
    assert_eq!(
        world.condition("media", reasons::ROTATING).await,
        Some(("False".into(), reasons::KEY_GROUP_FULL.into()))
    );
    assert!(world.is_ready("media").await, "signing still works");
    assert!(
        world
            .events()
            .await
            .iter()
            .any(|(r, _)| r == reasons::KEY_GROUP_FULL)
    );
    // Once the oldest retiring key has lived out its grace, the rotation goes ahead.
    assert!(
        world
            .run_until("media", 30, async |w: &World| signing_key(w).await != old)
            .await
    );
}

#[tokio::test]
async fn removing_a_distribution_from_the_spec_detaches_only_when_that_is_safe() {
    let mut world = World::new();
    let uid = ready_with_distribution(&mut world, false).await;
    let (kg_id, _) = world.key_group_of(&uid).unwrap();
    world.apply(manifest("media", hourly(), json!([]))).await;
    world.settle("media").await;
    assert_eq!(
        world.trust_of("E1")[0].trusted_key_groups,
        std::slice::from_ref(&kg_id),
        "made public"
    );
    assert_eq!(
        world.condition("media", reasons::DISTRIBUTIONS_READY).await,
        Some(("False".into(), reasons::DETACH_WOULD_MAKE_PUBLIC.into()))
    );
    assert!(
        world
            .events()
            .await
            .iter()
            .any(|(r, _)| r == reasons::DETACH_WOULD_MAKE_PUBLIC)
    );

    // With the opt-in back on the entry the key group leaves.
    world
        .apply(manifest(
            "media",
            hourly(),
            json!([{"id": "E1", "defaultCacheBehavior": true, "allowPublicOnDetach": true}]),
        ))
        .await;
    world.settle("media").await;
    world.apply(manifest("media", hourly(), json!([]))).await;
    assert!(
        world
            .run_until("media", 10, async |w: &World| w.trust_of("E1")[0]
                .trusted_key_groups
                .is_empty())
            .await
    );
    assert!(world.is_ready("media").await);
}

#[tokio::test]
async fn delete_detaches_and_removes_everything_keyfront_made() {
    let mut world = World::new();
    let uid = ready_with_distribution(&mut world, true).await;
    world.delete("media").await;
    world.until_gone("media").await;
    world.assert_no_orphans(&uid);
    assert!(world.trust_of("E1")[0].trusted_key_groups.is_empty());
    assert!(world.app_secret("media-cloudfront-key").await.is_none());
    assert!(world.keyring_secret(&uid).await.is_none());
    world.check_logs_and_errors();
}

#[tokio::test]
async fn delete_that_would_make_a_behavior_public_waits_with_everything_in_place() {
    let mut world = World::new();
    let uid = ready_with_distribution(&mut world, false).await;
    world.delete("media").await;
    world.settle("media").await;
    assert!(
        world.object("media").await.is_some(),
        "finalizer released too early"
    );
    assert!(world.key_group_of(&uid).is_some());
    assert!(world.app_secret("media-cloudfront-key").await.is_some());
    assert_eq!(
        world
            .condition("media", reasons::DISTRIBUTIONS_READY)
            .await
            .map(|c| c.1),
        Some(reasons::DETACH_WOULD_MAKE_PUBLIC.into())
    );
    assert!(
        world
            .events()
            .await
            .iter()
            .any(|(r, _)| r == reasons::DETACH_WOULD_MAKE_PUBLIC)
    );
    // Blocked, not merely waiting: the runtime backs off instead of polling forever.
    assert!(
        matches!(
            world.reconcile("media").await,
            Some(Ok(keyfront::reconcile::Outcome::Blocked(_)))
        ),
        "a deletion blocked on a person is not reported as such"
    );
}

#[tokio::test]
async fn retain_keeps_cloudfront_and_the_secret_but_lets_go_of_them() {
    let mut world = World::new();
    world.distribution("E1", &[]);
    let mut object = manifest(
        "media",
        hourly(),
        json!([{"id": "E1", "defaultCacheBehavior": true}]),
    );
    object["spec"]["deletionPolicy"] = json!("Retain");
    world.apply(object).await;
    world.until_ready("media").await;
    let uid = world.owner("media");
    let object_uid = world.object("media").await.unwrap().uid().unwrap();
    let group = world.key_group_of(&uid);
    let secret_before = world.app_secret("media-cloudfront-key").await;
    world.delete("media").await;
    world.until_gone("media").await;
    assert_eq!(world.key_group_of(&uid), group);
    assert_eq!(
        world.app_secret("media-cloudfront-key").await,
        secret_before
    );
    let secret = world.secrets().get("media-cloudfront-key").await.unwrap();
    assert!(
        secret
            .owner_references()
            .iter()
            .all(|r| r.uid != object_uid),
        "the kept Secret still has an ownerReference and would be garbage-collected"
    );
}

#[tokio::test]
async fn cleanup_works_from_an_invalid_spec() {
    let mut world = World::new();
    world.apply(manifest("media", hourly(), json!([]))).await;
    world.until_ready("media").await;
    let uid = world.owner("media");
    // Admission refuses a bad duration, so break the stored object behind its back.
    world
        .api
        .edit_unchecked(
            "keyfront.dev/v1alpha1",
            "SigningKeyGroup",
            Some("default"),
            "media",
            |o| {
                o["spec"]["rotation"]["interval"] = json!("soon");
            },
        )
        .unwrap();
    world.reconcile("media").await;
    assert_eq!(
        world.condition("media", reasons::READY).await.map(|c| c.1),
        Some(reasons::INVALID_SPEC.into())
    );
    let invalid: Vec<_> = world
        .events()
        .await
        .into_iter()
        .filter(|(r, _)| r == reasons::INVALID_SPEC)
        .collect();
    assert!(
        invalid[0].1.contains("spec.rotation.interval"),
        "{invalid:?}"
    );
    world.delete("media").await;
    world.until_gone("media").await;
    world.assert_no_orphans(&uid);
}

/// The next key is published ahead, counting the deployment time observed, so each rotation
/// happens at the `nextRotationTime` the status announced (give or take one poll) instead of
/// a deployment and a poll later. Every `KeyActivated` Event names the key it is about.
#[tokio::test]
async fn rotations_happen_at_the_announced_time() {
    let mut world = World::with_propagation(Duration::from_secs(2));
    world.distribution("E1", &[]);
    world
        .apply(manifest(
            "media",
            json!({"interval": "20s", "maxSignedUrlLifetime": "20s", "secretRefreshAllowance": "10s", "minPropagationWait": "0s"}),
            json!([{"id": "E1", "defaultCacheBehavior": true}]),
        ))
        .await;
    world.until_ready("media").await;
    let start = world.clock_now();
    let poll = world.config.propagation_poll;
    let mut signing = signing_key(&world).await;
    let mut announced = world.status("media").await.next_rotation_time.unwrap().0;
    // (key, announced time, time it took over)
    let mut rotations: Vec<(String, jiff::Timestamp, jiff::Timestamp)> = Vec::new();
    world
        .run_until("media", 1000, async |w: &World| {
            let now = w.clock_now();
            let current = signing_key(w).await;
            if current != signing {
                rotations.push((current.clone(), announced, now));
                signing = current;
                announced = w.status("media").await.next_rotation_time.unwrap().0;
            }
            now.duration_since(start) >= jiff::SignedDuration::from_secs(75)
        })
        .await;
    assert!(
        rotations.len() >= 3,
        "{} rotations in 75 s at a 20 s interval: {rotations:#?}",
        rotations.len()
    );
    for (key, announced, took_over) in &rotations {
        let late = took_over.duration_since(*announced).unsigned_abs();
        assert!(
            *took_over >= *announced && late <= poll,
            "{key} took over at {took_over}, announced for {announced}"
        );
    }
    // One KeyActivated Event per key, each naming its own key (none folded into another's).
    let activated: Vec<String> = world
        .events()
        .await
        .into_iter()
        .filter(|(reason, _)| reason == "KeyActivated")
        .map(|(_, note)| note)
        .collect();
    for (key, _, _) in &rotations {
        assert_eq!(
            activated
                .iter()
                .filter(|n| n.ends_with(key.as_str()))
                .count(),
            1,
            "{key}: {activated:#?}"
        );
    }
    world.check_logs_and_errors();
}

/// Deleting the namespace: the namespace controller deletes the app Secret at once and marks
/// the object; keyfront detaches and deletes what it made in CloudFront without creating
/// anything in the terminating namespace, and the namespace goes.
#[tokio::test]
async fn deleting_the_namespace_cleans_up_without_creating_anything_there() {
    use k8s_openapi::api::core::v1::Namespace;
    let mut world = World::new();
    let owner = ready_with_distribution(&mut world, true).await;
    let namespaces: kube::Api<Namespace> = kube::Api::all(world.admin());
    namespaces
        .delete(NAMESPACE, &Default::default())
        .await
        .unwrap();
    let requests_before = world.api.audit().len();
    assert!(world.app_secret("media-cloudfront-key").await.is_none());
    world.until_gone("media").await;
    world.assert_no_orphans(&owner);
    assert!(namespaces.get_opt(NAMESPACE).await.unwrap().is_none());
    let created_there: Vec<_> = world.api.audit()[requests_before..]
        .iter()
        .filter(|r| r.verb == "create" && r.namespace.as_deref() == Some(NAMESPACE))
        .filter(|r| r.resource != "events")
        .cloned()
        .collect();
    assert!(created_there.is_empty(), "{created_there:#?}");
    world.check_logs_and_errors();
}

/// The operator's clock has sub-second precision, which a status `Time` does not keep: the
/// status read back is compared as the API server stores it, so a settled object writes no
/// status. (Compared as values, every pass rewrote it; on the API double each rewrite woke the
/// object again, a loop paced only by the CloudFront read budget.)
#[tokio::test]
async fn a_settled_object_writes_no_status_though_the_clock_has_sub_seconds() {
    let mut world = World::new();
    world.clock.advance(std::time::Duration::from_millis(250));
    world.distribution("E1", &[]);
    world
        .apply(manifest(
            "media",
            hourly(),
            json!([{"id": "E1", "defaultCacheBehavior": true}]),
        ))
        .await;
    world.until_ready("media").await;
    world.settle("media").await;
    let status_writes = |world: &World| {
        world
            .api
            .audit()
            .iter()
            .filter(|r| r.resource == "signingkeygroups/status" && r.verb == "patch")
            .count()
    };
    let before = status_writes(&world);
    for _ in 0..3 {
        world.clock.advance(std::time::Duration::from_millis(1_300));
        world.reconcile("media").await.unwrap().unwrap();
    }
    assert_eq!(
        status_writes(&world) - before,
        0,
        "an unchanged status was written again"
    );
}

#[tokio::test]
async fn metadata_others_add_to_the_secret_stays_and_causes_no_writes() {
    let mut world = World::new();
    world.distribution("E1", &["/private/*"]);
    let mut object = manifest(
        "media",
        hourly(),
        json!([{"id": "E1", "pathPatterns": ["/private/*"]}]),
    );
    object["spec"]["secret"] = json!({"labels": {"team": "media", "tier": "gold"}});
    // A mutating webhook (a policy engine, a service mesh) adds its own label and annotation
    // to every Secret written, keyfront's included, as the API server admits it.
    world.api.add_mutating_webhook("secrets", |secret| {
        let metadata = &mut secret["metadata"];
        metadata["labels"]["webhook.example.com/injected"] = json!("true");
        metadata["annotations"]["policy.example.com/checked"] = json!("yes");
    });
    world.apply(object.clone()).await;
    world.until_ready("media").await;

    let secrets = world.secrets();
    let name = "media-cloudfront-key";
    let keyrings: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(world.admin(), crate::reconcile::harness::KEYRING_NAMESPACE);
    let secret_versions = async || {
        let mut versions: Vec<_> = keyrings
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|s| s.resource_version())
            .collect();
        versions.push(secrets.get(name).await.unwrap().resource_version());
        versions
    };
    let before = secret_versions().await;
    for _ in 0..3 {
        world.reconcile("media").await.unwrap().unwrap();
    }
    assert_eq!(
        secret_versions().await,
        before,
        "a Secret was rewritten for metadata keyfront does not own"
    );
    let secret = secrets.get(name).await.unwrap();
    assert!(
        secret.labels().contains_key("webhook.example.com/injected"),
        "the webhook did not run: {:?}",
        secret.labels()
    );

    // Removing a label from the spec removes it from the Secret, and only it.
    object["spec"]["secret"] = json!({"labels": {"team": "media"}});
    world.apply(object).await;
    world.settle("media").await;
    let secret = secrets.get(name).await.unwrap();
    let labels = secret.labels();
    assert_eq!(labels.get("team").map(String::as_str), Some("media"));
    assert!(!labels.contains_key("tier"), "{labels:?}");
    assert!(
        labels.contains_key("webhook.example.com/injected"),
        "{labels:?}"
    );
    assert!(
        secret
            .annotations()
            .contains_key("policy.example.com/checked")
    );
}

/// A reconcile cut short by the pass limit reports `Unsettled` (the runtime then backs off)
/// rather than asking to look again at once, which spun when a plan never settled.
#[tokio::test]
async fn a_reconcile_stopped_by_the_pass_limit_says_it_did_not_settle() {
    let mut world = World::new();
    world.distribution("E1", &["/private/*"]);
    world
        .apply(manifest(
            "media",
            hourly(),
            json!([{"id": "E1", "pathPatterns": ["/private/*"]}]),
        ))
        .await;
    world.config.max_passes = 1;
    let outcome = world.reconcile("media").await.unwrap().unwrap();
    assert_eq!(outcome, keyfront::reconcile::Outcome::Unsettled);
    world.config.max_passes = 16;
    world.until_ready("media").await;
}
