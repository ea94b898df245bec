//! Coalescing as the budgeted client does it: trust changes to one distribution within the window
//! go out as one UpdateDistribution, and a batch whose leader is dropped is answered.

use std::sync::Arc;
use std::time::Duration;

use super::Budgeted;
use crate::clock::SystemClock;
use crate::cloudfront::CloudFront as _;
use crate::cloudfront::budget::{self, BudgetSettings};
use crate::cloudfront::{BehaviorSelector, ErrorKind, KeyGroupConfig};
use crate::cloudfront::{NewPublicKey, TrustChange};
use crate::emulator::Emulator;
use crate::emulator::faults::FaultSettings;
use crate::emulator::model::ModelSettings;
use crate::runtime::metrics::Metrics;

const PUBLIC_KEY: &str = include_str!("../../../tests/fixtures/keys/ec-1.pub.pem");

struct Setup {
    client: Budgeted<crate::runtime::metrics::Metered<Emulator>>,
    metrics: Metrics,
    distribution: String,
    groups: Vec<String>,
}

async fn setup(window: Duration) -> Setup {
    let emulator = Emulator::new(
        ModelSettings::default(),
        FaultSettings::default(),
        Arc::new(SystemClock),
    );
    let key = emulator
        .create_public_key(&NewPublicKey {
            name: "k".into(),
            encoded_key: PUBLIC_KEY.into(),
            comment: None,
            caller_reference: "k".into(),
        })
        .await
        .unwrap();
    let mut groups = Vec::new();
    for n in 0..4 {
        let group = emulator
            .create_key_group(&KeyGroupConfig {
                name: format!("g{n}"),
                comment: None,
                items: vec![key.value.id.clone()],
            })
            .await
            .unwrap();
        groups.push(group.value.id);
    }
    let distribution = emulator.create_test_distribution(&["/a/*"]).unwrap();
    let settings = BudgetSettings {
        coalesce_window: window,
        ..BudgetSettings::default()
    };
    let (_, client, metrics) = budget::test_client(emulator, settings).await;
    Setup {
        client,
        metrics,
        distribution,
        groups,
    }
}

fn updates(metrics: &Metrics) -> usize {
    metrics
        .render(&[], true, &[], jiff::Timestamp::now())
        .lines()
        .filter(|l| {
            l.starts_with("keyfront_cloudfront_calls_total") && l.contains("\"UpdateDistribution\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum()
}

fn add(behavior: BehaviorSelector, group: &str) -> Vec<TrustChange> {
    vec![TrustChange {
        behavior,
        add: vec![group.to_owned()],
        remove: vec![],
        may_make_public: false,
    }]
}

#[tokio::test(start_paused = true)]
async fn changes_arriving_within_the_window_make_one_write_with_all_of_them() {
    let s = setup(Duration::from_secs(2)).await;
    let base = s.client.get_distribution(&s.distribution).await.unwrap();
    let path = BehaviorSelector::PathPattern("/a/*".into());
    let changes = [
        add(BehaviorSelector::Default, &s.groups[0]),
        add(BehaviorSelector::Default, &s.groups[1]),
        add(path.clone(), &s.groups[2]),
    ];
    let written = futures::future::join_all(changes.iter().map(|c| {
        s.client
            .change_trust(&s.distribution, c, Some(base.clone()))
    }))
    .await;
    assert_eq!(
        updates(&s.metrics),
        1,
        "one UpdateDistribution for three changes"
    );
    let last = written.into_iter().map(Result::unwrap).next_back().unwrap();
    let trust = |b: &BehaviorSelector| last.value.behavior(b).unwrap().trusted_key_groups.clone();
    assert_eq!(
        trust(&BehaviorSelector::Default),
        [s.groups[0].clone(), s.groups[1].clone()]
    );
    assert_eq!(trust(&path), [s.groups[2].clone()]);

    // A change arriving later makes the next batch, starting from the remembered write.
    s.client
        .change_trust(&s.distribution, &add(path.clone(), &s.groups[3]), None)
        .await
        .unwrap();
    assert_eq!(updates(&s.metrics), 2);
}

#[tokio::test(start_paused = true)]
async fn a_change_that_no_longer_applies_is_refused_alone() {
    let s = setup(Duration::from_secs(2)).await;
    let base = s.client.get_distribution(&s.distribution).await.unwrap();
    // Planned from a read where g0 and g1 were trusted: "remove g0, g1 stays".
    let stale_detach = vec![TrustChange {
        behavior: BehaviorSelector::Default,
        add: vec![],
        remove: vec![s.groups[0].clone()],
        may_make_public: false,
    }];
    s.client
        .change_trust(
            &s.distribution,
            &add(BehaviorSelector::Default, &s.groups[0]),
            Some(base),
        )
        .await
        .unwrap();
    let attach = add(BehaviorSelector::PathPattern("/a/*".into()), &s.groups[1]);
    let (detached, attached) = tokio::join!(
        s.client.change_trust(&s.distribution, &stale_detach, None),
        s.client.change_trust(&s.distribution, &attach, None),
    );
    let refused = detached.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::PreconditionFailed);
    assert!(
        refused.message.contains("would now make it public"),
        "{refused}"
    );
    let attached = attached.unwrap();
    assert_eq!(
        attached
            .value
            .behavior(&BehaviorSelector::Default)
            .unwrap()
            .trusted_key_groups,
        [s.groups[0].clone()],
        "the refused detach was not applied"
    );
    assert_eq!(updates(&s.metrics), 2);
}

#[tokio::test(start_paused = true)]
async fn a_writer_dropped_before_writing_answers_its_queue_with_a_transient_error() {
    let s = setup(Duration::from_secs(2)).await;
    let (first, second) = (
        add(BehaviorSelector::Default, &s.groups[0]),
        add(BehaviorSelector::Default, &s.groups[1]),
    );
    let leader = s.client.change_trust(&s.distribution, &first, None);
    let follower = s.client.change_trust(&s.distribution, &second, None);
    let mut leader = Box::pin(leader);
    // Let the leader queue and start waiting, then the follower join, then drop the leader.
    assert!(futures::poll!(leader.as_mut()).is_pending());
    let mut follower = Box::pin(follower);
    assert!(futures::poll!(follower.as_mut()).is_pending());
    drop(leader);
    let abandoned = follower.await.unwrap_err();
    assert_eq!(abandoned.kind, ErrorKind::Transient);
    assert_eq!(updates(&s.metrics), 0);
    // The next change leads a batch of its own.
    s.client
        .change_trust(
            &s.distribution,
            &add(BehaviorSelector::Default, &s.groups[2]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(updates(&s.metrics), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lone_change_goes_out_at_once_and_one_just_after_a_write_waits_the_window() {
    let s = setup(Duration::from_secs(2)).await;
    let attach = async |group: &str| {
        s.client
            .change_trust(
                &s.distribution,
                &add(BehaviorSelector::Default, group),
                None,
            )
            .await
            .unwrap();
    };
    let started = tokio::time::Instant::now();
    attach(&s.groups[0]).await;
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "a lone change paid the window"
    );
    // Right after that write, the next change waits out the window (then goes alone).
    attach(&s.groups[1]).await;
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    // Long after it, one goes at once again.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let later = tokio::time::Instant::now();
    attach(&s.groups[2]).await;
    assert_eq!(later.elapsed(), Duration::ZERO);
    assert_eq!(updates(&s.metrics), 3);
}

/// While another object's key waits for the distribution to deploy, a co-tenant's changes wait
/// for the hold to end and then go out together in one write: the distribution is not kept
/// `InProgress` through keyfront. With coalescing off, a change waits the same way.
#[tokio::test(start_paused = true)]
async fn changes_to_a_distribution_an_activation_waits_on_are_held_and_folded_into_one() {
    for window in [Duration::from_secs(2), Duration::ZERO] {
        let s = setup(window).await;
        s.client
            .await_deployment("victim", std::slice::from_ref(&s.distribution));
        let start = tokio::time::Instant::now();
        let changes = [
            add(BehaviorSelector::Default, &s.groups[0]),
            add(BehaviorSelector::Default, &s.groups[1]),
        ];
        let writes = futures::future::join_all(changes.iter().map(|c| async {
            s.client
                .change_trust(&s.distribution, c, None)
                .await
                .unwrap();
            start.elapsed()
        }));
        let release = async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            assert_eq!(updates(&s.metrics), 0, "nothing written while held");
            s.client.await_deployment("victim", &[]);
        };
        let (done, ()) = tokio::join!(writes, release);
        assert!(
            done.iter().all(|d| *d >= Duration::from_secs(30)),
            "{done:?}"
        );
        let expected = if window.is_zero() { 2 } else { 1 };
        assert_eq!(updates(&s.metrics), expected, "window {window:?}");
    }
}

/// Objects on their way to a distribution: the first attachment waits for them and the
/// late ones join it, one write for all; a change that removes trust does not wait for them.
#[tokio::test(start_paused = true)]
async fn onboarding_changes_wait_for_objects_on_their_way_and_removals_do_not() {
    let s = setup(Duration::from_secs(2)).await;
    let on_the_way = [s.distribution.clone()];
    s.client.heading_to("second", &on_the_way);
    s.client.heading_to("third", &on_the_way);
    let start = tokio::time::Instant::now();
    let attach = async |who: &str, group: &str, after: u64| {
        tokio::time::sleep(Duration::from_secs(after)).await;
        s.client.heading_to(who, &[]); // arriving: its own change is queued now
        s.client
            .change_trust(
                &s.distribution,
                &add(BehaviorSelector::Default, group),
                None,
            )
            .await
            .unwrap();
        start.elapsed()
    };
    let (first, second, third) = tokio::join!(
        attach("first", &s.groups[0], 0),
        attach("second", &s.groups[1], 5),
        attach("third", &s.groups[2], 12),
    );
    assert_eq!(updates(&s.metrics), 1, "one write for the three");
    let twelve = Duration::from_secs(12);
    assert_eq!((first, second, third), (twelve, twelve, twelve));

    // A removal goes at once, though someone says it is on its way.
    s.client.heading_to("fourth", &on_the_way);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let removal = tokio::time::Instant::now();
    s.client
        .change_trust(
            &s.distribution,
            &[TrustChange {
                behavior: BehaviorSelector::Default,
                add: vec![],
                remove: vec![s.groups[2].clone()],
                may_make_public: false,
            }],
            None,
        )
        .await
        .unwrap();
    assert_eq!(removal.elapsed(), Duration::ZERO);
    assert_eq!(updates(&s.metrics), 2);
}
