//! The shared AWS account end to end (issue 20), on the tenancy suite's stack: the real
//! `keyfront run` and `keyfront emulator` against a real kube-apiserver.
//!
//! - A co-tenant that flaps its attachment to a shared distribution through keyfront cannot
//!   hold up another tenant's rotation: keyfront holds the co-tenant's writes while the other
//!   tenant's key deploys there, so the rotation completes within two propagations of its
//!   change, where before it waited as long as the flapping went on.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use keyfront::reconcile::names;
use kube::Api;

use super::tenancy_e2e::{OPERATOR_ARGS, annotate, object, rand_name, start_on, trusted_on};
use crate::support::{ShowLogOnFailure, data, ready, wait_for};

/// What CloudFront takes to deploy a change here, in seconds: more than keyfront's coalescing
/// window (2 s), so a co-tenant writing once a window would keep the distribution busy.
const PROPAGATION: u64 = 5;

fn on(patterns: &str) -> String {
    format!("  distributions:\n    - id: E3SHARED\n      pathPatterns: [{patterns}]\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_co_tenant_flapping_its_attachment_cannot_hold_up_a_rotation() {
    let stack = start_on(&PROPAGATION.to_string(), OPERATOR_ARGS).await;
    let _show_log = ShowLogOnFailure(stack.operator_log.clone());
    // team-b keeps /b/* private with b1, and flaps b2 on and off it.
    stack.apply(&object("team-a", "a", &on("\"/a/*\""))).await;
    stack.apply(&object("team-b", "b1", &on("\"/b/*\""))).await;
    stack.apply(&object("team-b", "b2", &on("\"/b/*\""))).await;
    for (namespace, name) in [("team-a", "a"), ("team-b", "b1"), ("team-b", "b2")] {
        wait_for(
            &format!("{namespace}/{name} Ready"),
            Duration::from_secs(90),
            async || ready(&stack.objects(namespace), name).await,
        )
        .await;
    }
    let secrets: Api<Secret> = Api::namespaced(stack.cluster.client(), "team-a");
    let secret = "a-cloudfront-key";
    let first = data(&secrets.get(secret).await.unwrap(), "key_pair_id");

    let flap = async {
        for n in 0.. {
            let spec = if n % 2 == 0 {
                "  distributions: []\n".to_owned()
            } else {
                on("\"/b/*\"")
            };
            stack.apply(&object("team-b", "b2", &spec)).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let rotate = async {
        // Flapping for a few propagations first, so the distribution is busy.
        tokio::time::sleep(Duration::from_secs(2 * PROPAGATION)).await;
        let since = stack.requests().await.len();
        annotate(
            &stack.objects("team-a"),
            "a",
            names::ROTATE_ANNOTATION,
            &rand_name(),
        )
        .await;
        let asked = Instant::now();
        wait_for(
            "team-a/a's rotation to switch its Secret",
            Duration::from_secs(120),
            async || data(&secrets.get(secret).await.unwrap(), "key_pair_id") != first,
        )
        .await;
        let took = asked.elapsed();
        let updates = stack.requests().await[since..]
            .iter()
            .filter(|r| r.operation == "UpdateDistribution")
            .count();
        (took, updates)
    };
    let (took, updates) = tokio::select! {
        () = flap => unreachable!("flaps until the rotation is done"),
        done = rotate => done,
    };
    println!(
        "rotation with a co-tenant flapping every 1 s: {:.1} s (propagation {PROPAGATION} s), {updates} UpdateDistribution meanwhile",
        took.as_secs_f64()
    );
    // Two propagations of its own change, and the polls and passes around them.
    assert!(
        took <= Duration::from_secs(2 * PROPAGATION + 6),
        "the rotation took {took:?}"
    );
    // The co-tenant is held, not starved: its last change goes out once the hold ends.
    stack.apply(&object("team-b", "b2", &on("\"/b/*\""))).await;
    wait_for(
        "b1's and b2's groups both on /b/*",
        Duration::from_secs(90),
        async || trusted_on(&stack, "/b/*").await.len() == 2,
    )
    .await;
}
