//! The budgeted client: retries within the budget, one budget per AWS account, and the
//! leader's write gate.

use super::*;

/// Every attempt spends a token and is seen by the metrics beneath; a call throttled to
/// the last attempt fails as throttled, and the account's write rate has halved.
#[tokio::test(start_paused = true)]
async fn throttled_attempts_are_retried_within_the_budget_and_slow_the_account() {
    use crate::cloudfront::KeyGroupConfig;
    use crate::emulator::{Emulator, faults::FaultSettings, model::ModelSettings};

    let emulator = Emulator::new(
        ModelSettings::default(),
        FaultSettings {
            throttle_rate: 1.0,
            ..FaultSettings::default()
        },
        std::sync::Arc::new(crate::clock::SystemClock),
    );
    let (accounts, client, metrics) = test_client(emulator, BudgetSettings::default()).await;
    let start = Instant::now();
    let error = client
        .create_key_group(&KeyGroupConfig::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Throttled);
    let text = metrics.render(&[], true, &[], jiff::Timestamp::now());
    assert!(
        text.contains(r#"keyfront_cloudfront_calls_total{account="media",operation="CreateKeyGroup",outcome="throttled"} 4"#),
        "{text}"
    );
    // After the first halving (1 → 0.5/s, saved burst given up) each retry waited for a
    // token of the halved rate: 2 s, 4 s, 8 s.
    assert_eq!(start.elapsed(), Duration::from_secs(14));
    let write_rate = accounts
        .rates()
        .into_iter()
        .find(|(account, class, _)| account == "media" && *class == "write")
        .map(|(_, _, rate)| rate);
    assert_eq!(write_rate, Some(0.125), "halved down to the floor, 1/8");
}

fn emulator() -> crate::emulator::Emulator {
    crate::emulator::Emulator::new(
        crate::emulator::model::ModelSettings::default(),
        crate::emulator::faults::FaultSettings::default(),
        std::sync::Arc::new(crate::clock::SystemClock),
    )
}

/// Two CloudFrontAccounts naming one AWS account share its budget (and its coalescing):
/// the limits are the AWS account's, not the object's, also for calls made before the AWS
/// account was known.
#[tokio::test(start_paused = true)]
async fn the_budget_belongs_to_the_aws_account_not_the_object_naming_it() {
    let accounts = BudgetedAccounts::new(emulator(), BudgetSettings::default());
    let access = |name: &str, id: Option<&str>| AccountAccess {
        account: name.into(),
        assume_role: None,
        namespace: "team".into(),
        aws_account_id: id.map(Into::into),
    };
    let a = accounts
        .connect(&access("team-a", Some("111122223333")))
        .await
        .unwrap();
    let b = accounts
        .connect(&access("team-b", Some("111122223333")))
        .await
        .unwrap();
    let c = accounts.connect(&access("other", None)).await.unwrap();
    assert!(Arc::ptr_eq(&a.account, &b.account));
    assert!(!Arc::ptr_eq(&a.account, &c.account));
    let keys: Vec<String> = accounts.rates().into_iter().map(|(k, _, _)| k).collect();
    assert!(keys.contains(&"111122223333".to_owned()) && keys.contains(&"other".to_owned()));

    // "other" learns its AWS account: the budget its calls used so far is that account's from
    // now on, under either name (one queue per distribution, one memory of reads).
    let d = accounts
        .connect(&access("other", Some("444455556666")))
        .await
        .unwrap();
    let e = accounts.connect(&access("other", None)).await.unwrap();
    assert!(Arc::ptr_eq(&c.account, &d.account) && Arc::ptr_eq(&d.account, &e.account));
    let keys: Vec<String> = accounts.rates().into_iter().map(|(k, _, _)| k).collect();
    assert!(keys.contains(&"444455556666".to_owned()) && !keys.contains(&"other".to_owned()));
}

/// A write whose replica's leadership lapsed while it waited for its token is not sent.
#[tokio::test(start_paused = true)]
async fn a_write_is_not_sent_once_the_gate_closes() {
    let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let gate = {
        let open = open.clone();
        WriteGate::new(move || open.load(std::sync::atomic::Ordering::SeqCst))
    };
    let accounts =
        BudgetedAccounts::new(emulator(), BudgetSettings::default()).with_write_gate(gate);
    let client = accounts
        .connect(&AccountAccess {
            account: "a".into(),
            assume_role: None,
            namespace: "team".into(),
            aws_account_id: None,
        })
        .await
        .unwrap();
    let config = crate::cloudfront::KeyGroupConfig::default();
    open.store(false, std::sync::atomic::Ordering::SeqCst);
    let error = client.create_key_group(&config).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::NotLeader);
    assert!(
        client.list_key_groups().await.unwrap().is_empty(),
        "nothing was sent"
    );
}
