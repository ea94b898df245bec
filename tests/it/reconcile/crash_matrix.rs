//! The crash matrix: every side effect (CloudFront write, Kubernetes write) of create, rotate,
//! revoke and delete is numbered; for each N the operator dies right after effect N (before
//! hearing its answer), restarts with nothing in memory, and must converge with I1–I6 intact
//! and CloudFront holding exactly what it should.

use std::time::Duration;

use keyfront::reconcile::names;
use serde_json::json;

use crate::reconcile::harness::{World, hourly, manifest};

const NAME: &str = "media";

async fn signing_key(world: &World) -> Option<String> {
    world.key_pair_id("media-cloudfront-key").await
}

async fn group_size(world: &World) -> Option<usize> {
    let uid = world.owner(NAME);
    world.key_group_of(&uid).map(|(_, items)| items.len())
}

/// Runs the whole scenario; returns the effect count at the end of each phase.
async fn scenario(world: &mut World) -> [usize; 4] {
    world.distribution("E1", &["/private/*"]);
    world
        .apply(manifest(
            NAME,
            hourly(),
            json!([{"id": "E1", "defaultCacheBehavior": true, "pathPatterns": ["/private/*"], "allowPublicOnDetach": true}]),
        ))
        .await;
    let created = world
        .run_until(NAME, 100, async |w: &World| {
            w.is_ready(NAME).await
                && w.status(NAME)
                    .await
                    .distributions
                    .iter()
                    .all(|d| d.deployed)
        })
        .await;
    assert!(
        created,
        "create never converged: {:#?}",
        world.status(NAME).await
    );
    let uid = world.owner(NAME);
    world.assert_only_group_keys(&uid);
    let after_create = world.switch.effects();

    // Rotation by schedule: a new key becomes active, the old one leaves after the grace.
    let first = signing_key(world).await.unwrap();
    world.clock.advance(Duration::from_secs(3600));
    let rotated = world
        .run_until(NAME, 200, async |w: &World| {
            signing_key(w).await.is_some_and(|k| k != first)
                && group_size(w).await == Some(1)
                && w.public_keys_of(&uid).len() == 1
        })
        .await;
    assert!(
        rotated,
        "rotation never converged: {:#?}",
        world.status(NAME).await
    );
    world.assert_only_group_keys(&uid);
    let after_rotate = world.switch.effects();

    // Emergency revocation of the signing key.
    let revoked = signing_key(world).await.unwrap();
    world.mark_revoked(&revoked);
    world
        .annotate(NAME, names::REVOKE_ANNOTATION, &revoked)
        .await;
    let replaced = world
        .run_until(NAME, 200, async |w: &World| {
            signing_key(w).await.is_some_and(|k| k != revoked)
                && !w.public_keys_of(&uid).contains_key(&revoked)
                && group_size(w).await == Some(1)
        })
        .await;
    assert!(
        replaced,
        "revocation never converged: {:#?}",
        world.status(NAME).await
    );
    world.assert_only_group_keys(&uid);
    let after_revoke = world.switch.effects();

    world.delete(NAME).await;
    world.until_gone(NAME).await;
    world.assert_no_orphans(&uid);
    for trust in world.trust_of("E1") {
        assert!(trust.trusted_key_groups.is_empty(), "{trust:?}");
    }
    assert!(world.app_secret("media-cloudfront-key").await.is_none());
    assert!(world.keyring_secret(&uid).await.is_none());
    world.check_logs_and_errors();
    [
        after_create,
        after_rotate,
        after_revoke,
        world.switch.effects(),
    ]
}

#[tokio::test]
async fn every_crash_point_converges_with_the_invariants_intact() {
    let mut clean = World::with_seed(11);
    clean.switch.count_only();
    let phases = scenario(&mut clean).await;
    let total = phases[3];
    assert!(total > 20, "suspiciously few side effects: {phases:?}");
    for n in 1..=total {
        let mut world = World::with_seed(11);
        world.switch.arm(n);
        scenario(&mut world).await;
        assert!(world.switch.tripped(), "crash point {n} was never reached");
    }
    println!(
        "crash matrix: covered {total} crash points (create {}, rotate {}, revoke {}, delete {})",
        phases[0],
        phases[1] - phases[0],
        phases[2] - phases[1],
        phases[3] - phases[2]
    );
}
