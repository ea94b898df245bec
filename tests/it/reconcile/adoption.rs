//! Adopting a key group keyfront did not create (the Terraform setup it replaces): refused
//! without `adopt: true`; with it, keyfront marks the group, publishes its own key into it
//! (same group ID, no distribution update), keeps the keys it found trusted until
//! `retireAdoptedKeysAfter`, then removes them from the group and deletes them only if asked.
//! Refused when adopting would reach distributions or behaviors the account does not grant or
//! the spec does not list; a full group waits and says so.

use std::time::Duration;

use keyfront::cloudfront::{
    BehaviorSelector, BehaviorTrust, CloudFront, KeyGroupConfig, NewPublicKey,
};
use keyfront::reconcile::names;
use serde_json::{Value, json};

use crate::reconcile::harness::{World, hourly, manifest};

const TERRAFORM_COMMENT: &str = "managed by terraform";

/// What Terraform made: `count` public keys (fixtures rsa-1..), key group `legacy` holding
/// them, and the default behavior of each of `distributions` trusting it.
struct Terraform {
    key_group_id: String,
    key_ids: Vec<String>,
}

async fn terraform(world: &World, count: usize, distributions: &[&str]) -> Terraform {
    let cf = &world.emulator;
    let mut key_ids = Vec::new();
    for n in 1..=count {
        let key = cf
            .create_public_key(&NewPublicKey {
                name: format!("terraform-key-{n}"),
                encoded_key: fixture(&format!("rsa-{n}.pub.pem")),
                comment: None,
                caller_reference: format!("terraform-{n}"),
            })
            .await
            .unwrap();
        key_ids.push(key.value.id);
    }
    let group = cf
        .create_key_group(&KeyGroupConfig {
            name: "legacy".into(),
            comment: Some(TERRAFORM_COMMENT.into()),
            items: key_ids.clone(),
        })
        .await
        .unwrap();
    for id in distributions {
        world.distribution(id, &[]);
        let current = cf.get_distribution(id).await.unwrap();
        cf.set_trusted_key_groups(
            id,
            &[BehaviorTrust {
                behavior: BehaviorSelector::Default,
                trusted_key_groups: vec![group.value.id.clone()],
            }],
            &current.etag,
        )
        .await
        .unwrap();
    }
    Terraform {
        key_group_id: group.value.id,
        key_ids,
    }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A SigningKeyGroup named `media` for key group `legacy`, protecting E1's default behavior.
fn adopting(key_group: Value) -> Value {
    let mut object = manifest(
        "media",
        hourly(),
        json!([{"id": "E1", "defaultCacheBehavior": true}]),
    );
    object["spec"]["keyGroup"] = key_group;
    object
}

fn group(world: &World, id: &str) -> (Option<String>, Vec<String>) {
    let model = world.emulator.model();
    let group = model.get_key_group(id).unwrap();
    (group.config.comment.clone(), group.config.items.clone())
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

fn distribution_etag(world: &World, id: &str) -> String {
    world
        .emulator
        .model()
        .get_distribution(id)
        .unwrap()
        .etag
        .clone()
}

async fn reconcile_a_few(world: &mut World, times: usize) {
    for _ in 0..times {
        world.reconcile("media").await.unwrap().ok();
        world.clock.advance(Duration::from_secs(5));
    }
}

#[tokio::test]
async fn a_terraform_key_group_is_refused_without_adopt_and_taken_over_with_it() {
    let mut world = World::new();
    let tf = terraform(&world, 2, &["E1"]).await;
    world.allow_foreign_keys(&tf.key_ids);
    let e1_etag = distribution_etag(&world, "E1");
    let legacy_pem = fixture("rsa-1.pem");

    // Without adopt: the same name is someone else's group. Nothing is touched.
    world.apply(adopting(json!({"name": "legacy"}))).await;
    reconcile_a_few(&mut world, 3).await;
    let (_, reason) = world.condition("media", "KeyGroupReady").await.unwrap();
    assert_eq!(reason, "KeyGroupNameTaken");
    assert_eq!(
        group(&world, &tf.key_group_id),
        (Some(TERRAFORM_COMMENT.into()), tf.key_ids.clone())
    );
    let message = serde_json::to_string(&world.status("media").await).unwrap();
    assert!(message.contains("adopt: true"), "{message}");

    // With adopt: keyfront's key joins the same group; E1 is never updated.
    world
        .apply(adopting(json!({"name": "legacy", "adopt": true})))
        .await;
    world.until_ready("media").await;
    let app = world.app_secret("media-cloudfront-key").await.unwrap();
    let ours = app["key_pair_id"].clone();
    let (comment, items) = group(&world, &tf.key_group_id);
    let owner = world.owner("media");
    assert!(
        names::is_owned_comment(comment.as_deref(), &owner)
            && comment.as_deref().unwrap().ends_with(TERRAFORM_COMMENT),
        "{comment:?}"
    );
    let mut expected = [tf.key_ids.clone(), vec![ours.clone()]].concat();
    expected.sort();
    assert_eq!(sorted(items), expected);
    assert_eq!(
        world.status("media").await.key_group_id.as_deref(),
        Some(tf.key_group_id.as_str())
    );
    let events = world.events_text().await;
    assert!(events.contains("KeyGroupAdopted"), "{events}");

    // A legacy pod keeps signing with the Terraform key for a full URL lifetime (10 min); the
    // new pods sign with the mounted Secret. The edge refuses neither.
    let legacy_url = world.sign("E1", &legacy_pem, &tf.key_ids[0], "/legacy.ts", 600);
    let new_url = world.sign("E1", &app["private_key.pem"], &ours, "/new.ts", 600);
    let mut rejected = Vec::new();
    for step in 0..20 {
        world.reconcile("media").await.unwrap().unwrap();
        world.check_invariants("media").await;
        for (name, url) in [("legacy", &legacy_url), ("new", &new_url)] {
            if let Err(reason) = world.edge("E1", url) {
                rejected.push((step, name, reason));
            }
        }
        world.clock.advance(Duration::from_secs(30));
    }
    assert!(rejected.is_empty(), "rejected: {rejected:?}");

    // retireAdoptedKeysAfter (default 10m + 2m) after keyfront's key became active, the
    // Terraform keys leave the group; they are not deleted (deleteAdoptedKeys is off).
    world.settle("media").await;
    let (_, items) = group(&world, &tf.key_group_id);
    assert_eq!(items, vec![ours.clone()]);
    let model_keys: Vec<String> = world
        .emulator
        .model()
        .list_public_keys()
        .iter()
        .map(|k| k.id.clone())
        .collect();
    for id in &tf.key_ids {
        assert!(model_keys.contains(id), "adopted key {id} was deleted");
    }
    assert_eq!(distribution_etag(&world, "E1"), e1_etag, "E1 was updated");
    world.check_logs_and_errors();
}

#[tokio::test]
async fn adopted_keys_are_deleted_after_they_leave_when_asked() {
    let mut world = World::new();
    let tf = terraform(&world, 1, &["E1"]).await;
    world.allow_foreign_keys(&tf.key_ids);
    world
        .apply(adopting(json!({
            "name": "legacy", "adopt": true,
            "retireAdoptedKeysAfter": "1m", "deleteAdoptedKeys": true,
        })))
        .await;
    world.until_ready("media").await;
    let ours = world.key_pair_id("media-cloudfront-key").await.unwrap();
    world.settle("media").await;
    assert_eq!(group(&world, &tf.key_group_id).1, vec![ours]);
    assert!(
        world
            .emulator
            .model()
            .list_public_keys()
            .iter()
            .all(|k| k.id != tf.key_ids[0]),
        "the adopted key was not deleted"
    );
    let events = world.events_text().await;
    assert!(events.contains("AdoptedKeyReleased"), "{events}");
}

#[tokio::test]
async fn a_full_adopted_group_waits_and_says_why_until_a_key_is_removed() {
    let mut world = World::new();
    let tf = terraform(&world, 5, &["E1"]).await;
    world.allow_foreign_keys(&tf.key_ids);
    world
        .apply(adopting(json!({"name": "legacy", "adopt": true})))
        .await;
    reconcile_a_few(&mut world, 5).await;
    let (status, reason) = world.condition("media", "Ready").await.unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "KeyGroupFull")
    );
    let stalled = world.condition("media", "Stalled").await.unwrap();
    assert_eq!(stalled.0, "True");
    let text = serde_json::to_string(&world.status("media").await).unwrap();
    assert!(text.contains("remove one of them"), "{text}");
    assert_eq!(
        sorted(group(&world, &tf.key_group_id).1),
        sorted(tf.key_ids.clone())
    );

    // Someone removes one key by hand: keyfront publishes its own and does not put it back.
    let cf = &world.emulator;
    let current = cf.get_key_group(&tf.key_group_id).await.unwrap();
    let mut config = current.value.config.clone();
    config.items.retain(|id| id != &tf.key_ids[4]);
    cf.update_key_group(&tf.key_group_id, &config, &current.etag)
        .await
        .unwrap();
    world.until_ready("media").await;
    let items = group(&world, &tf.key_group_id).1;
    assert_eq!(items.len(), 5);
    assert!(!items.contains(&tf.key_ids[4]));
}

#[tokio::test]
async fn adoption_is_refused_where_it_would_reach_beyond_the_grant_or_the_spec() {
    let mut world = World::new();
    let tf = terraform(&world, 1, &["E1", "E2"]).await;
    world.allow_foreign_keys(&tf.key_ids);
    let untouched = (Some(TERRAFORM_COMMENT.to_owned()), tf.key_ids.clone());
    let accounts: kube::Api<keyfront::api::CloudFrontAccount> = kube::Api::all(world.admin());
    let grant = |ids: &[&str]| {
        json!({
            "apiVersion": "keyfront.dev/v1alpha1", "kind": "CloudFrontAccount",
            "metadata": {"name": "default"},
            "spec": {
                "allowedNamespaces": {"from": "All"},
                "distributions": ids.iter().map(|id| json!({"id": id, "defaultCacheBehavior": true})).collect::<Vec<_>>(),
            },
        })
    };
    // A merge patch replaces the list (an apply would merge it with the `*` entry the harness
    // created under another field manager).
    let params = kube::api::PatchParams::default();
    accounts
        .patch("default", &params, &kube::api::Patch::Merge(grant(&["E1"])))
        .await
        .unwrap();

    // E2 trusts the group and is not granted: adopting it would let this namespace sign for E2.
    world
        .apply(adopting(json!({"name": "legacy", "adopt": true})))
        .await;
    reconcile_a_few(&mut world, 3).await;
    let (_, reason) = world.condition("media", "Ready").await.unwrap();
    assert_eq!(reason, "AdoptionNotAllowed");
    let text = serde_json::to_string(&world.status("media").await).unwrap();
    assert!(text.contains("distribution E2"), "{text}");
    assert_eq!(group(&world, &tf.key_group_id), untouched);

    // Granted, but the spec does not list E2: keyfront would not wait for it.
    accounts
        .patch(
            "default",
            &params,
            &kube::api::Patch::Merge(grant(&["E1", "E2"])),
        )
        .await
        .unwrap();
    reconcile_a_few(&mut world, 3).await;
    let (_, reason) = world.condition("media", "Ready").await.unwrap();
    assert_eq!(reason, "AdoptedTrustNotDeclared");
    assert_eq!(group(&world, &tf.key_group_id), untouched);

    // Listing it lets the adoption proceed.
    let mut object = adopting(json!({"name": "legacy", "adopt": true}));
    object["spec"]["distributions"] = json!([
        {"id": "E1", "defaultCacheBehavior": true},
        {"id": "E2", "defaultCacheBehavior": true},
    ]);
    world.apply(object).await;
    world.until_ready("media").await;
    assert_eq!(group(&world, &tf.key_group_id).1.len(), 2);
}
