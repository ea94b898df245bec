//! The account's public keys, which every tenant shares (issue 20): a new object is admitted
//! only if it fits with headroom for the others' rotations, a rotation with no slot waits its
//! turn while signing goes on, and an emergency revocation uses the one key kept free for it,
//! with the account otherwise full.

use std::time::Duration;

use keyfront::cloudfront::NewPublicKey;
use keyfront::reconcile::capacity::{Count, Limited, RESERVE, Share, Slot, fits, steady_need};

/// A first key that makes its key group, needing one key between rotations.
const FIRST: Slot = Slot::FirstKey {
    need: 1,
    group: true,
};
use keyfront::reconcile::{names, reasons};
use serde_json::json;

use crate::reconcile::harness::{World, hourly, manifest};

#[test]
fn what_fits_leaves_the_reserve_to_revocations_and_headroom_to_rotations() {
    let count = |used| Count {
        used,
        foreign: 3,
        committed: used,
        quota: 10,
        groups: Some((3, 10)),
        namespace: Vec::new(),
    };
    // A first key needs its own need, one for rotations and one for revocations.
    assert!(fits(&count(7), FIRST, 0).is_ok());
    let refused = fits(&count(8), FIRST, 0).unwrap_err();
    assert!(
        refused.contains("8 of its 10 public keys (5 by keyfront, 3 by other owners)"),
        "{refused}"
    );
    assert!(
        fits(
            &count(6),
            Slot::FirstKey {
                need: 3,
                group: true
            },
            0
        )
        .is_err()
    );
    // A rotation may take the last key but the reserve.
    assert!(fits(&count(8), Slot::Rotation, 0).is_ok());
    assert!(fits(&count(9), Slot::Rotation, 0).is_err());
    // A revocation may take the reserve, and is told when even that is gone.
    assert!(fits(&count(9), Slot::Revocation, 0).is_ok());
    assert!(
        fits(&count(10), Slot::Revocation, 0)
            .unwrap_err()
            .contains("not even the")
    );
    // Rotations already waiting come first, before other rotations and before new objects.
    assert!(
        fits(&count(2), Slot::Rotation, 1)
            .unwrap_err()
            .contains("takes its turn")
    );
    assert!(fits(&count(2), FIRST, 1).is_err());
    assert_eq!(RESERVE, 1);
}

#[test]
fn a_namespace_holds_at_most_its_share_with_room_for_its_own_rotations() {
    let count = |used| Count {
        used: 6,
        foreign: 0,
        committed: 6,
        quota: 10,
        groups: None,
        namespace: vec![Share {
            name: "team-b".into(),
            what: Limited::PublicKeys,
            used,
            committed: used,
            limit: 5,
            defaulted: true,
        }],
    };
    assert!(fits(&count(3), FIRST, 0).is_ok());
    let refused = fits(&count(4), FIRST, 0).unwrap_err();
    assert!(
        refused.contains("namespace \"team-b\" holds 4 of the 5 public keys")
            && refused.contains("10 public keys ÷ the namespaces it admits"),
        "{refused}"
    );
    assert!(fits(&count(4), Slot::Rotation, 0).is_ok());
    assert!(fits(&count(5), Slot::Rotation, 0).is_err());
    // A revocation is never held by the namespace's share.
    assert!(fits(&count(5), Slot::Revocation, 0).is_ok());

    // The default share: the quota over the namespaces the account names, rounded up.
    let account = |spec: serde_json::Value| -> keyfront::api::CloudFrontAccountSpec {
        serde_json::from_value(spec).unwrap()
    };
    let three = json!({"allowedNamespaces": {"from": "Names", "names": ["a", "b", "c"]}});
    assert_eq!(account(three).public_keys_per_namespace(), Some((4, true)));
    let one = json!({"allowedNamespaces": {"from": "Names", "names": ["a"]}});
    assert_eq!(account(one).public_keys_per_namespace(), None);
    let all =
        json!({"allowedNamespaces": {"from": "All"}, "limits": {"publicKeysPerNamespace": 3}});
    assert_eq!(account(all).public_keys_per_namespace(), Some((3, false)));
}

#[test]
fn an_objects_need_follows_its_grace_and_interval() {
    let h = |hours: u64| Duration::from_secs(hours * 3600);
    assert_eq!(steady_need(h(720), h(24)), 1);
    assert_eq!(steady_need(h(1), h(1)), 2);
    assert_eq!(steady_need(h(1), Duration::from_secs(3 * 3600 - 1)), 3);
    assert_eq!(steady_need(h(1), h(3)), 4);
    assert_eq!(steady_need(Duration::ZERO, h(1)), 4);
}

/// Admission counts what the objects already admitted are committed to, not only what they
/// hold now: an object whose grace spans two intervals holds 1 key today and 3 later.
#[test]
fn admission_counts_admitted_objects_at_their_steady_needs_and_their_key_groups() {
    let count = |used, committed, groups| Count {
        used,
        foreign: 0,
        committed,
        quota: 10,
        groups: Some((groups, 10)),
        namespace: Vec::new(),
    };
    // 5 keys exist, but the objects holding them are committed to 8: no room for another.
    assert!(fits(&count(5, 5, 3), FIRST, 0).is_ok());
    let refused = fits(&count(5, 8, 3), FIRST, 0).unwrap_err();
    assert!(refused.contains("committed to 8"), "{refused}");
    // Rotations are live: they may use what exists now.
    assert!(fits(&count(5, 8, 3), Slot::Rotation, 0).is_ok());
    // A first key is refused when its key group would not fit, unless it adopts a group.
    let refused = fits(&count(2, 2, 10), FIRST, 0).unwrap_err();
    assert!(
        refused.contains("10 of its 10 key groups") && refused.contains("spec.keyGroup.adopt"),
        "{refused}"
    );
    let adopting = Slot::FirstKey {
        need: 1,
        group: false,
    };
    assert!(fits(&count(2, 2, 10), adopting, 0).is_ok());
}

/// A namespace's key groups and objects are limited like its keys: the defaults divide the
/// account's key-group quota among the namespaces it names, and objects are limited only where
/// the account says so.
#[test]
fn a_namespace_is_limited_in_key_groups_and_objects_too() {
    let share = |what, used, limit| Share {
        name: "team-b".into(),
        what,
        used,
        committed: used,
        limit,
        defaulted: what == Limited::KeyGroups,
    };
    let count = |shares| Count {
        used: 2,
        foreign: 0,
        committed: 2,
        quota: 10,
        groups: Some((2, 10)),
        namespace: shares,
    };
    let groups_full = count(vec![share(Limited::KeyGroups, 5, 5)]);
    let refused = fits(&groups_full, FIRST, 0).unwrap_err();
    assert!(
        refused.contains("holds 5 of the 5 key groups")
            && refused.contains("spec.limits.keyGroupsPerNamespace"),
        "{refused}"
    );
    // Rotations and revocations make no group: never held by it.
    assert!(fits(&groups_full, Slot::Rotation, 0).is_ok());
    assert!(fits(&groups_full, Slot::Revocation, 0).is_ok());
    let objects_full = count(vec![share(Limited::Objects, 3, 3)]);
    let refused = fits(&objects_full, FIRST, 0).unwrap_err();
    assert!(
        refused.contains("holds 3 of the 3 SigningKeyGroups with keys")
            && refused.contains("what the account's spec.limits.objectsPerNamespace allows"),
        "{refused}"
    );
    assert!(fits(&count(vec![share(Limited::Objects, 2, 3)]), FIRST, 0).is_ok());

    let account = |spec: serde_json::Value| -> keyfront::api::CloudFrontAccountSpec {
        serde_json::from_value(spec).unwrap()
    };
    let three = json!({"allowedNamespaces": {"from": "Names", "names": ["a", "b", "c"]}});
    assert_eq!(
        account(three.clone()).key_groups_per_namespace(),
        Some((4, true))
    );
    assert_eq!(account(three).objects_per_namespace(), None);
    let set = json!({"allowedNamespaces": {"from": "All"},
        "limits": {"keyGroupsPerNamespace": 2, "objectsPerNamespace": 1}});
    assert_eq!(
        account(set.clone()).key_groups_per_namespace(),
        Some((2, false))
    );
    assert_eq!(account(set).objects_per_namespace(), Some(1));
}

/// Foreign public keys (Terraform's, another cluster's), made outside keyfront.
async fn foreign_keys(world: &World, count: usize) {
    let pem =
        std::fs::read_to_string(crate::support::repo("tests/fixtures/keys/ec-1.pub.pem")).unwrap();
    for n in 0..count {
        let name = format!("terraform-{n}");
        keyfront::cloudfront::CloudFront::create_public_key(
            &world.emulator,
            &NewPublicKey {
                name: name.clone(),
                encoded_key: pem.clone(),
                comment: Some("made by terraform".into()),
                caller_reference: name,
            },
        )
        .await
        .unwrap();
    }
}

async fn reconcile_a_few_times(world: &mut World, name: &str) {
    for _ in 0..5 {
        world.reconcile(name).await;
        world.clock.advance(Duration::from_secs(2));
    }
}

/// Asserts `name` is `Ready=False AccountCapacityExceeded` and created no public key; returns
/// what its conditions say, joined.
async fn refused_for_capacity(world: &World, name: &str) -> String {
    let (status, refused) = world.condition(name, reasons::READY).await.unwrap();
    assert_eq!(
        (status.as_str(), refused.as_str()),
        ("False", reasons::ACCOUNT_CAPACITY_EXCEEDED)
    );
    assert!(world.public_keys_of(&world.owner(name)).is_empty());
    world
        .status(name)
        .await
        .conditions
        .iter()
        .map(|c| c.message.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn reason(world: &World, name: &str, condition: &str) -> Option<(String, String)> {
    world.condition(name, condition).await
}

/// On the real reconciler: an admitted object whose grace spans two intervals holds one key
/// today and will hold three, and a second object is refused for what the first will need,
/// where counting only the keys that exist would have admitted it.
#[tokio::test]
async fn admission_leaves_room_for_what_admitted_objects_will_hold() {
    let mut world = World::new();
    world.distribution("E1", &["/private/*"]);
    let trust = json!([{"id": "E1", "pathPatterns": ["/private/*"]}]);
    foreign_keys(&world, 5).await;
    let long_grace = json!({
        "interval": "1h",
        "maxSignedUrlLifetime": "2h",
        "secretRefreshAllowance": "2m",
        "minPropagationWait": "0s",
    });
    // 5 foreign + media's need of 3 + 1 headroom = 9, the quota less the reserve.
    world
        .apply(manifest("media", long_grace, trust.clone()))
        .await;
    world.until_ready("media").await;
    assert_eq!(world.emulator.model().list_public_keys().len(), 6);

    // 6 keys exist, but media is committed to 3: 5 + 3 + 1 + 1 is over 9.
    world.apply(manifest("second", hourly(), trust)).await;
    reconcile_a_few_times(&mut world, "second").await;
    let said = refused_for_capacity(&world, "second").await;
    assert!(
        said.contains("6 of its 10 public keys") && said.contains("committed to 8"),
        "{said}"
    );
    world.check_logs_and_errors();
}

/// On the real reconciler: with the account's key groups all taken (by Terraform here), a new
/// object is refused before it creates its first public key, which would otherwise sit in the
/// account with no group to go into.
#[tokio::test]
async fn a_new_object_is_refused_when_its_key_group_would_not_fit() {
    use keyfront::cloudfront::{CloudFront as _, KeyGroupConfig};
    let mut world = World::new();
    world.distribution("E1", &["/private/*"]);
    foreign_keys(&world, 1).await;
    let key = world.emulator.model().list_public_keys()[0].id.clone();
    for n in 0..10 {
        world
            .emulator
            .create_key_group(&KeyGroupConfig {
                name: format!("terraform-{n}"),
                comment: None,
                items: vec![key.clone()],
            })
            .await
            .unwrap();
    }
    let trust = json!([{"id": "E1", "pathPatterns": ["/private/*"]}]);
    world.apply(manifest("media", hourly(), trust)).await;
    reconcile_a_few_times(&mut world, "media").await;
    let said = refused_for_capacity(&world, "media").await;
    assert!(said.contains("10 of its 10 key groups"), "{said}");
    world.check_logs_and_errors();
}

/// Keys made outside keyfront that take even the revocation reserve block a revocation: the
/// object says so at once with its own reason, and the metric the alert reads is 1.
#[tokio::test]
async fn a_revocation_blocked_by_foreign_keys_is_said_at_once_and_measured() {
    let mut world = World::new();
    world.distribution("E1", &["/private/*"]);
    let trust = json!([{"id": "E1", "pathPatterns": ["/private/*"]}]);
    world.apply(manifest("media", hourly(), trust)).await;
    world.until_ready("media").await;
    foreign_keys(&world, 9).await; // 10 of 10
    let active = world.key_pair_id("media-cloudfront-key").await.unwrap();
    world
        .annotate("media", names::REVOKE_ANNOTATION, &active)
        .await;
    reconcile_a_few_times(&mut world, "media").await;
    assert_eq!(
        world.condition("media", reasons::READY).await,
        Some(("False".into(), reasons::REVOCATION_BLOCKED.into()))
    );
    let object = std::sync::Arc::new(world.object("media").await.unwrap());
    let text = keyfront::runtime::metrics::Metrics::default().render(
        &[object],
        true,
        &[],
        jiff::Timestamp::now(),
    );
    assert!(
        text.contains(
            r#"keyfront_signingkeygroup_revocation_blocked{namespace="default",name="media"} 1"#
        ),
        "{text}"
    );
    world.check_logs_and_errors();
}

#[tokio::test]
async fn a_full_account_admits_no_new_object_holds_rotations_and_still_revokes() {
    let mut world = World::new();
    world.distribution("E1", &["/private/*"]);
    let trust = json!([{"id": "E1", "pathPatterns": ["/private/*"]}]);
    foreign_keys(&world, 7).await;

    // 7 foreign + 1 first key + 1 headroom fits under 10 - 1 reserve.
    world
        .apply(manifest("media", hourly(), trust.clone()))
        .await;
    world.until_ready("media").await;
    assert_eq!(world.emulator.model().list_public_keys().len(), 8);

    // A second object would leave no headroom: refused with the numbers, nothing created.
    world
        .apply(manifest("second", hourly(), trust.clone()))
        .await;
    // (Reconciled by hand: the harness's invariant history follows one object, media.)
    reconcile_a_few_times(&mut world, "second").await;
    let said = refused_for_capacity(&world, "second").await;
    assert!(
        said.contains("8 of its 10 public keys (1 by keyfront, 7 by other owners)"),
        "{said}"
    );
    world.delete("second").await;
    reconcile_a_few_times(&mut world, "second").await;
    assert!(
        world.object("second").await.is_none(),
        "second was never deleted"
    );

    // media rotates: the next key takes the last slot but the reserve (9 of 10).
    let first = world.key_pair_id("media-cloudfront-key").await.unwrap();
    world.annotate("media", names::ROTATE_ANNOTATION, "1").await;
    let rotated = world
        .run_until("media", 100, async |w: &World| {
            w.key_pair_id("media-cloudfront-key")
                .await
                .is_some_and(|k| k != first)
        })
        .await;
    assert!(rotated, "{:#?}", world.status("media").await);
    assert_eq!(world.emulator.model().list_public_keys().len(), 9);

    // Another rotation while the retired key is still trusted: held, signing goes on.
    let second = world.key_pair_id("media-cloudfront-key").await.unwrap();
    world.annotate("media", names::ROTATE_ANNOTATION, "2").await;
    world.settle("media").await;
    assert_eq!(
        reason(&world, "media", reasons::ROTATING).await,
        Some(("True".into(), reasons::WAITING_FOR_ACCOUNT_CAPACITY.into()))
    );
    assert_eq!(
        reason(&world, "media", reasons::READY).await.map(|r| r.0),
        Some("True".into()),
        "{:#?}",
        world.status("media").await.conditions
    );
    assert_eq!(
        world.key_pair_id("media-cloudfront-key").await.unwrap(),
        second
    );
    assert_eq!(world.emulator.model().list_public_keys().len(), 9);

    // An emergency revocation of the signing key uses the reserve, and completes.
    world.mark_revoked(&second);
    world
        .annotate("media", names::REVOKE_ANNOTATION, &second)
        .await;
    let uid = world.owner("media");
    let revoked = world
        .run_until("media", 200, async |w: &World| {
            w.key_pair_id("media-cloudfront-key")
                .await
                .is_some_and(|k| k != second)
                && w.key_group_of(&uid)
                    .is_some_and(|(_, items)| !items.contains(&second))
        })
        .await;
    assert!(
        revoked,
        "revocation blocked: {:#?}",
        world.status("media").await
    );
    assert!(world.emulator.model().list_public_keys().len() <= 10);
    let successor = world.key_pair_id("media-cloudfront-key").await.unwrap();

    // Once the retired key has left, the held rotation takes the slot it freed.
    world.clock.advance(Duration::from_secs(3600));
    let rotated = world
        .run_until("media", 100, async |w: &World| {
            w.key_pair_id("media-cloudfront-key")
                .await
                .is_some_and(|k| k != successor)
        })
        .await;
    assert!(rotated, "{:#?}", world.status("media").await);
    world.settle("media").await;
    assert_ne!(
        reason(&world, "media", reasons::ROTATING)
            .await
            .map(|r| r.1),
        Some(reasons::WAITING_FOR_ACCOUNT_CAPACITY.into()),
        "{:#?} {:#?}",
        world.status("media").await,
        world
            .emulator
            .model()
            .list_public_keys()
            .iter()
            .map(|k| (&k.id, &k.config.name))
            .collect::<Vec<_>>()
    );
    assert!(world.emulator.model().list_public_keys().len() <= 9);
    world.check_logs_and_errors();
}

/// The queue is the account's: a rotation held because the account is full waits its turn and
/// the next rotation waits behind it, but a rotation held by its own namespace's share never
/// enters it, so one namespace at its share holds up no other namespace.
#[tokio::test]
async fn only_a_full_account_queues_rotations() {
    use keyfront::reconcile::capacity::Gate;
    let gate = Gate::default();
    let now = jiff::Timestamp::UNIX_EPOCH;
    let count = |used, namespace: &str, share_used| Count {
        used,
        foreign: 0,
        committed: used,
        quota: 10,
        groups: None,
        namespace: vec![Share {
            name: namespace.into(),
            what: Limited::PublicKeys,
            used: share_used,
            committed: share_used,
            limit: 5,
            defaulted: false,
        }],
    };
    let enter = async |object: &str, count: Count| {
        gate.enter("default", object, Slot::Rotation, now, async || {
            Ok::<_, ()>(count)
        })
        .await
        .unwrap()
        .map(drop)
    };
    let held = enter("team-b/full", count(8, "team-b", 5))
        .await
        .unwrap_err();
    assert!(
        held.contains("namespace \"team-b\" holds 5 of the 5"),
        "{held}"
    );
    assert_eq!(enter("team-a/site", count(8, "team-a", 1)).await, Ok(()));

    let full = enter("team-a/one", count(9, "team-a", 2))
        .await
        .unwrap_err();
    assert!(
        full.contains("stays free for emergency revocations"),
        "{full}"
    );
    let behind = enter("team-a/two", count(7, "team-a", 2))
        .await
        .unwrap_err();
    assert!(behind.contains("takes its turn"), "{behind}");
    assert_eq!(enter("team-a/one", count(7, "team-a", 2)).await, Ok(()));
    assert_eq!(enter("team-a/two", count(7, "team-a", 2)).await, Ok(()));
}
