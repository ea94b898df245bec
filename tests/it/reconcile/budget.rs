//! The reconciler through the call budget, as `keyfront run` reaches CloudFront: an object
//! on 100 distributions reads only what is due, not all 100 on every pass.

use serde_json::json;

use crate::reconcile::harness::{World, hourly, manifest};

#[tokio::test]
async fn an_object_on_a_hundred_distributions_reads_only_what_is_due() {
    let mut world = World::new();
    world.through_the_budget();
    let ids: Vec<String> = (0..100).map(|n| format!("E{n:03}")).collect();
    for id in &ids {
        world.distribution(id, &[]);
    }
    let entries: Vec<_> = ids
        .iter()
        .map(|id| json!({"id": id, "defaultCacheBehavior": true}))
        .collect();
    world
        .apply(manifest("media", hourly(), json!(entries)))
        .await;
    world.until_ready("media").await;
    world
        .run_until("media", 20, async |w: &World| {
            w.status("media")
                .await
                .distributions
                .iter()
                .all(|d| d.deployed)
        })
        .await;

    // Steady state: the key group is read (or its read of under 2 s ago reused); every
    // distribution was last seen deployed and verifying exactly the group's keys, so none is
    // read again.
    world.annotate("media", "example.com/poke", "1").await;
    world.calls.take();
    world.reconcile("media").await.unwrap().unwrap();
    let (reads, writes) = world.calls.take();
    assert!(
        reads <= 1 && writes == 0,
        "steady state: {reads} reads, {writes} writes"
    );

    // A rotation changes the group: now every distribution has something awaited (the new
    // key reaching its edge) and is read until it does.
    world
        .annotate(
            "media",
            keyfront::reconcile::names::ROTATE_ANNOTATION,
            "now",
        )
        .await;
    world.reconcile("media").await.unwrap().unwrap();
    let (reads, _) = world.calls.take();
    assert!(reads > 100, "{reads} reads while a new key propagates");
    world
        .run_until("media", 40, async |w: &World| {
            let status = w.status("media").await;
            // The old key retired and removed, and that change deployed everywhere.
            status.keys.len() == 1 && status.distributions.iter().all(|d| d.deployed)
        })
        .await;
    world.calls.take();
    world.annotate("media", "example.com/poke", "2").await;
    world.reconcile("media").await.unwrap().unwrap();
    let (reads, writes) = world.calls.take();
    assert!(
        reads <= 1 && writes == 0,
        "steady state again after the rotation: {reads} reads, {writes} writes"
    );
}

/// A new object on a quiet account and a deployed distribution reaches Ready within the
/// default read burst, so at the
/// default budget it never waits for a read token: the account's listings and the key group
/// are read once and reused, and a distribution read a moment ago stands in for a fresh one
/// until there is something to wait for there.
#[tokio::test]
async fn a_lone_new_object_is_ready_within_the_default_read_burst() {
    let mut world = World::new();
    world.through_the_budget();
    world.distribution("E1", &[]);
    world.clock.advance(crate::reconcile::harness::PROPAGATION); // deployed
    world.calls.take();
    world
        .apply(manifest(
            "lone",
            hourly(),
            json!([{"id": "E1", "defaultCacheBehavior": true}]),
        ))
        .await;
    world.until_ready("lone").await;
    let (reads, writes) = world.calls.take();
    let burst = keyfront::cloudfront::budget::BudgetSettings::default()
        .reads
        .burst;
    assert!(
        reads <= burst as usize,
        "{reads} reads (and {writes} writes) to Ready; the default read burst is {burst}"
    );
}
