//! Random operation sequences against a reference model (proptest): reconciles, clock jumps,
//! spec edits, CloudFront faults (throttling, 5xx, 412), crashes, rotate and revoke
//! annotations, and deletion. I1, I2, I4, I5 and I6 are checked after every step; at the end
//! faults stop, everything converges, and the world must match what the model expects (I3).

use std::time::Duration;

use keyfront::emulator::faults::{FaultKind, ScriptedFault};
use keyfront::reconcile::{names, reasons};
use proptest::prelude::*;
use serde_json::json;

use crate::reconcile::harness::{World, hourly, manifest};

const NAME: &str = "media";

#[derive(Debug, Clone)]
enum Op {
    Reconcile,
    Advance {
        minutes: u64,
    },
    /// Protect E1 (default behavior, and `/private/*` if `paths`), or no distribution.
    EditDistributions {
        e1: bool,
        paths: bool,
    },
    Fault {
        kind: FaultKind,
        operation: Option<&'static str>,
        count: u32,
    },
    /// The operator dies after this many more side effects.
    Crash {
        after: usize,
    },
    Rotate,
    RevokeSigningKey,
    Delete,
}

fn op() -> impl Strategy<Value = Op> {
    let operations = prop_oneof![
        Just(None),
        Just(Some("CreatePublicKey")),
        Just(Some("UpdateKeyGroup")),
        Just(Some("UpdateDistribution")),
        Just(Some("GetDistribution")),
        Just(Some("DeletePublicKey")),
    ];
    prop_oneof![
        6 => Just(Op::Reconcile),
        3 => (1u64..90).prop_map(|minutes| Op::Advance { minutes }),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(e1, paths)| Op::EditDistributions { e1, paths }),
        2 => (
            prop_oneof![
                Just(FaultKind::Throttle),
                Just(FaultKind::ServerError),
                Just(FaultKind::PreconditionFailed)
            ],
            operations,
            1u32..3
        )
            .prop_map(|(kind, operation, count)| Op::Fault { kind, operation, count }),
        2 => (1usize..6).prop_map(|after| Op::Crash { after }),
        1 => Just(Op::Rotate),
        1 => Just(Op::RevokeSigningKey),
        1 => Just(Op::Delete),
    ]
}

/// What the user asked for, and so what the world must look like once it settles.
#[derive(Debug, Default)]
struct Model {
    deleted: bool,
    e1: bool,
    paths: bool,
    revoked: Vec<String>,
    rotations_requested: u32,
}

fn distributions(e1: bool, paths: bool) -> serde_json::Value {
    if !e1 {
        return json!([]);
    }
    let patterns: Vec<&str> = if paths { vec!["/private/*"] } else { vec![] };
    json!([{"id": "E1", "defaultCacheBehavior": true, "pathPatterns": patterns, "allowPublicOnDetach": true}])
}

async fn signing_key(world: &World) -> Option<String> {
    world.key_pair_id("media-cloudfront-key").await
}

async fn run(ops: Vec<Op>, seed: u64) {
    let mut world = World::with_seed(seed);
    world.distribution("E1", &["/private/*"]);
    let mut model = Model::default();
    world
        .apply(manifest(NAME, hourly(), distributions(false, false)))
        .await;
    let uid = world.owner(NAME);
    for op in ops {
        match op {
            Op::Reconcile => {
                world.reconcile(NAME).await;
                world.check_invariants(NAME).await;
                if world.switch.crashed() {
                    world.switch.restart();
                }
            }
            Op::Advance { minutes } => world.clock.advance(Duration::from_secs(minutes * 60)),
            Op::EditDistributions { e1, paths } if !model.deleted => {
                model.e1 = e1;
                model.paths = paths;
                world
                    .apply(manifest(NAME, hourly(), distributions(e1, paths)))
                    .await;
            }
            Op::Fault {
                kind,
                operation,
                count,
            } => world.emulator.script_fault(ScriptedFault {
                operation: operation.map(str::to_owned),
                fault: kind,
                count,
                latency_ms: 0,
            }),
            Op::Crash { after } => world.switch.arm(after),
            Op::Rotate if !model.deleted => {
                model.rotations_requested += 1;
                let value = model.rotations_requested.to_string();
                world.annotate(NAME, names::ROTATE_ANNOTATION, &value).await;
            }
            Op::RevokeSigningKey if !model.deleted => {
                if let Some(key) = signing_key(&world).await {
                    world.mark_revoked(&key);
                    model.revoked.push(key.clone());
                    world.annotate(NAME, names::REVOKE_ANNOTATION, &key).await;
                }
            }
            Op::Delete if !model.deleted => {
                model.deleted = true;
                world.delete(NAME).await;
            }
            _ => {}
        }
    }

    // Faults stop; the operator restarts and runs until the world settles.
    world.emulator.clear_faults();
    world.switch.restart();
    if model.deleted {
        world.until_gone(NAME).await;
        world.assert_no_orphans(&uid);
        assert!(world.app_secret("media-cloudfront-key").await.is_none());
        assert!(world.keyring_secret(&uid).await.is_none());
        for trust in world.trust_of("E1") {
            assert!(trust.trusted_key_groups.is_empty(), "{trust:?}");
        }
    } else {
        let settled = world
            .run_until(NAME, 200, async |w: &World| {
                let Some((kg, items)) = w.key_group_of(&uid) else {
                    return false;
                };
                let trusted: Vec<bool> = w
                    .trust_of("E1")
                    .iter()
                    .map(|t| t.trusted_key_groups.contains(&kg))
                    .collect();
                let expected = vec![model.e1, model.e1 && model.paths];
                w.is_ready(NAME).await
                    && w.condition(NAME, reasons::ROTATING).await
                        == Some(("False".into(), reasons::IDLE.into()))
                    && trusted == expected
                    && items.len() == w.public_keys_of(&uid).len()
                    && w.status(NAME)
                        .await
                        .distributions
                        .iter()
                        .all(|d| d.deployed)
            })
            .await;
        assert!(settled, "never settled: {:#?}", world.status(NAME).await);
        world.assert_only_group_keys(&uid);
        let signing = signing_key(&world).await.unwrap();
        assert!(
            !model.revoked.contains(&signing),
            "signing with a revoked key"
        );
    }
    world.check_logs_and_errors();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        max_shrink_iters: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_keep_the_invariants_and_converge(
        ops in proptest::collection::vec(op(), 1..40),
        seed in 0u64..1000,
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(run(ops, seed));
    }
}
