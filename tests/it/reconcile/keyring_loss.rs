//! Losing the keyring in the middle of a rotation: the keys keyfront then finds in its group
//! without a record keep their full grace from the moment they are found, so no URL signed
//! with them within its lifetime is refused; afterwards they leave and are deleted.
//!
//! DESIGN.md's I1 cannot hold here (the retiring key's private key went with the keyring), so
//! these reconciles run without the per-step invariant checks; what matters is the edge.

use std::time::Duration;

use keyfront::reconcile::names;
use serde_json::json;

use crate::reconcile::harness::{World, hourly, manifest};

#[tokio::test]
async fn losing_the_keyring_mid_rotation_keeps_retiring_keys_for_their_grace() {
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
    world.settle("media").await;
    let first = world.app_secret("media-cloudfront-key").await.unwrap();

    // Rotate: K2 becomes active and K1 starts retiring (grace 2m + 10m).
    world.annotate("media", names::ROTATE_ANNOTATION, "1").await;
    let k1 = first["key_pair_id"].clone();
    assert!(
        world
            .run_until("media", 40, async |w: &World| w
                .key_pair_id("media-cloudfront-key")
                .await
                .as_deref()
                != Some(&k1))
            .await
    );
    // A pod that has not seen the new Secret yet signs with K1, a URL living its full 10 min.
    let sign = |secret: &std::collections::BTreeMap<String, String>, path| {
        world.sign(
            "E1",
            &secret["private_key.pem"],
            &secret["key_pair_id"],
            path,
            600,
        )
    };
    let url_k1 = sign(&first, "/video/k1.ts");
    let second = world.app_secret("media-cloudfront-key").await.unwrap();
    let url_k2 = sign(&second, "/video/k2.ts");
    assert_eq!(world.edge("E1", &url_k1), Ok(()));

    // The keyring is lost.
    let owner = world.owner("media");
    world
        .keyrings()
        .delete(&names::keyring_secret_name(&owner), &Default::default())
        .await
        .unwrap();
    let lost_at = world.clock_now();

    // Every 30 s for the URLs' lifetime: keyfront keeps both keys; the edge refuses neither.
    let mut rejected = Vec::new();
    for step in 0..20 {
        world.reconcile("media").await.unwrap().unwrap();
        for (name, url) in [("K1", &url_k1), ("K2", &url_k2)] {
            if let Err(reason) = world.edge("E1", url) {
                rejected.push((step, name, reason));
            }
        }
        world.clock.advance(Duration::from_secs(30));
    }
    assert!(rejected.is_empty(), "rejected: {rejected:?}");
    let (_, items) = world.key_group_of(&owner).unwrap();
    assert!(items.contains(&k1), "K1 left before its grace: {items:?}");
    assert_eq!(
        world.key_pair_id("media-cloudfront-key").await,
        Some(second["key_pair_id"].clone())
    );
    let keyring = world
        .keyring_secret(&owner)
        .await
        .expect("the keyring is rebuilt");
    assert!(
        keyring.data.unwrap().len() >= 2,
        "the record and K2's private key"
    );

    // After the grace counted from when K1 was found, it leaves the group and is deleted.
    world.clock.advance(
        (lost_at + jiff::SignedDuration::from_mins(13))
            .duration_since(world.clock_now())
            .unsigned_abs(),
    );
    for _ in 0..10 {
        world.reconcile("media").await.unwrap().unwrap();
        world.clock.advance(Duration::from_secs(20));
    }
    let (_, items) = world.key_group_of(&owner).unwrap();
    assert_eq!(items, vec![second["key_pair_id"].clone()]);
    assert!(
        !world.public_keys_of(&owner).contains_key(&k1),
        "K1 was not deleted"
    );
}
