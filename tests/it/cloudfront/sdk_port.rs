//! Every operation and every typed error of the CloudFront port, run twice: against the
//! in-process emulator, and through the production `aws-sdk-cloudfront` adapter over HTTP to
//! `keyfront emulator`'s wire front. The same assertions passing on both shows the adapter
//! speaks CloudFront's wire protocol and the emulator keeps CloudFront's rules.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudfront::config::{BehaviorVersion, Credentials, Region};
use keyfront::clock::ManualClock;
use keyfront::cloudfront::sdk::SdkCloudFront;
use keyfront::cloudfront::{
    BehaviorSelector, BehaviorTrust, CloudFront, DeploymentStatus, ErrorKind, Etag, KeyGroupConfig,
    NewPublicKey,
};
use keyfront::emulator::faults::{FaultKind, FaultSettings, ScriptedFault};
use keyfront::emulator::model::{ModelSettings, Quotas};
use keyfront::emulator::{Emulator, wire};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("tests/fixtures/keys/{name}")).expect("fixture key")
}

fn new_key(name: &str, fixture_index: usize) -> NewPublicKey {
    NewPublicKey {
        name: name.into(),
        encoded_key: fixture(&format!("rsa-{fixture_index}.pub.pem")),
        comment: Some("keyfront test".into()),
        caller_reference: format!("ref-{name}"),
    }
}

struct Setup {
    emulator: Emulator,
    clock: ManualClock,
}

fn setup(quotas: Quotas) -> Setup {
    let clock = ManualClock::new(jiff::Timestamp::from_second(1_800_000_000).expect("time"));
    let settings = ModelSettings {
        propagation_delay: Duration::from_secs(2),
        quotas,
        seed: Some(1),
    };
    Setup {
        emulator: Emulator::new(settings, FaultSettings::default(), Arc::new(clock.clone())),
        clock,
    }
}

async fn sdk_over_http(emulator: &Emulator) -> SdkCloudFront {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = wire::router(emulator.clone().into());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let config = aws_sdk_cloudfront::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(format!("http://{addr}"))
        .retry_config(
            aws_sdk_cloudfront::config::retry::RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(5)),
        )
        .timeout_config(keyfront::cloudfront::accounts::default_timeouts())
        .build();
    SdkCloudFront::new(aws_sdk_cloudfront::Client::from_conf(config))
}

/// Runs one scenario against both implementations.
macro_rules! both {
    ($name:ident, $quotas:expr, $scenario:ident) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn in_process() {
                let s = setup($quotas);
                $scenario(&s.emulator.clone(), &s).await;
            }
            #[tokio::test]
            async fn sdk_over_http() {
                let s = setup($quotas);
                let sdk = super::sdk_over_http(&s.emulator).await;
                $scenario(&sdk, &s).await;
            }
        }
    };
}

both!(
    public_key_lifecycle,
    Quotas::default(),
    public_key_lifecycle_scenario
);
both!(
    key_group_lifecycle,
    Quotas::default(),
    key_group_lifecycle_scenario
);
both!(account_quotas, Quotas::default(), account_quotas_scenario);
both!(
    distribution_trust_and_propagation,
    Quotas::default(),
    distribution_scenario
);
both!(injected_faults, Quotas::default(), faults_scenario);
both!(
    listing_pages_through_everything,
    Quotas {
        public_keys: 250,
        ..Quotas::default()
    },
    pagination_scenario
);

async fn public_key_lifecycle_scenario(cf: &impl CloudFront, _s: &Setup) {
    let created = cf
        .create_public_key(&new_key("kf-a", 1))
        .await
        .expect("create");
    assert!(created.value.id.starts_with('K'));
    assert_eq!(created.value.name, "kf-a");
    assert_eq!(created.value.comment.as_deref(), Some("keyfront test"));
    let read = cf.get_public_key(&created.value.id).await.expect("get");
    assert_eq!(
        read.value.encoded_key.trim(),
        fixture("rsa-1.pub.pem").trim()
    );
    assert_eq!(read.etag, created.etag);
    assert!(
        cf.list_public_keys()
            .await
            .expect("list")
            .iter()
            .any(|k| k.id == created.value.id)
    );

    let duplicate = cf
        .create_public_key(&new_key("kf-a", 2))
        .await
        .expect_err("names are unique");
    assert_eq!(
        (duplicate.kind, duplicate.code.as_str()),
        (ErrorKind::AlreadyExists, "PublicKeyAlreadyExists")
    );

    let mut short = new_key("kf-short", 1);
    short.encoded_key = fixture("rsa1024.pub.pem");
    assert_eq!(
        cf.create_public_key(&short)
            .await
            .expect_err("1024-bit")
            .kind,
        ErrorKind::Invalid
    );
    let ec = NewPublicKey {
        encoded_key: fixture("ec-1.pub.pem"),
        ..new_key("kf-ec", 1)
    };
    cf.create_public_key(&ec)
        .await
        .expect("ECDSA P-256 keys are accepted");
    assert_eq!(
        cf.create_public_key(&new_key("bad name!", 1))
            .await
            .expect_err("name")
            .kind,
        ErrorKind::Invalid
    );

    let stale = cf
        .delete_public_key(&created.value.id, &Etag("ESTALE".into()))
        .await
        .expect_err("stale etag");
    assert_eq!(
        (stale.kind, stale.code.as_str()),
        (ErrorKind::PreconditionFailed, "PreconditionFailed")
    );
    cf.delete_public_key(&created.value.id, &read.etag)
        .await
        .expect("delete");
    let gone = cf
        .get_public_key(&created.value.id)
        .await
        .expect_err("deleted");
    assert_eq!(
        (gone.kind, gone.code.as_str()),
        (ErrorKind::NotFound, "NoSuchPublicKey")
    );
    assert!(gone.is_not_found() && !gone.is_retryable());
}

async fn key_group_lifecycle_scenario(cf: &impl CloudFront, _s: &Setup) {
    let mut keys = Vec::new();
    for i in 1..=6 {
        keys.push(
            cf.create_public_key(&new_key(&format!("kf-{i}"), i))
                .await
                .expect("key")
                .value
                .id,
        );
    }
    let config = KeyGroupConfig {
        name: "kf-group".into(),
        comment: Some("owned by keyfront".into()),
        items: vec![keys[0].clone()],
    };
    let group = cf.create_key_group(&config).await.expect("create group");
    assert_eq!(group.value.config, config);
    let again = cf.create_key_group(&config).await.expect_err("unique name");
    assert_eq!(
        (again.kind, again.code.as_str()),
        (ErrorKind::AlreadyExists, "KeyGroupAlreadyExists")
    );
    assert_eq!(cf.list_key_groups().await.expect("list").len(), 1);

    let two = KeyGroupConfig {
        items: keys[..2].to_vec(),
        ..config.clone()
    };
    let updated = cf
        .update_key_group(&group.value.id, &two, &group.etag)
        .await
        .expect("update");
    assert_ne!(updated.etag, group.etag, "every write changes the ETag");
    assert_eq!(
        cf.get_key_group(&group.value.id)
            .await
            .expect("get")
            .value
            .config
            .items,
        keys[..2].to_vec()
    );
    let stale = cf
        .update_key_group(&group.value.id, &config, &group.etag)
        .await
        .expect_err("stale");
    assert_eq!(stale.kind, ErrorKind::PreconditionFailed);
    assert!(stale.is_retryable());

    let six = KeyGroupConfig {
        items: keys.clone(),
        ..config.clone()
    };
    let too_many = cf
        .update_key_group(&group.value.id, &six, &updated.etag)
        .await
        .expect_err("6 keys");
    assert_eq!(
        (too_many.kind, too_many.code.as_str()),
        (ErrorKind::QuotaExceeded, "TooManyPublicKeysInKeyGroup")
    );

    let key_etag = cf.get_public_key(&keys[0]).await.expect("key").etag;
    let in_use = cf
        .delete_public_key(&keys[0], &key_etag)
        .await
        .expect_err("in a group");
    assert_eq!(
        (in_use.kind, in_use.code.as_str()),
        (ErrorKind::InUse, "PublicKeyInUse")
    );

    let missing = cf
        .get_key_group("00000000-0000-4000-8000-000000000000")
        .await
        .expect_err("missing");
    assert_eq!(
        (missing.kind, missing.code.as_str()),
        (ErrorKind::NotFound, "NoSuchResource")
    );
    cf.delete_key_group(&group.value.id, &updated.etag)
        .await
        .expect("delete group");
    cf.delete_public_key(&keys[0], &key_etag)
        .await
        .expect("no longer in use");
}

async fn account_quotas_scenario(cf: &impl CloudFront, _s: &Setup) {
    let mut ids = Vec::new();
    for i in 1..=10 {
        ids.push(
            cf.create_public_key(&new_key(&format!("kf-q{i}"), i))
                .await
                .expect("within quota")
                .value
                .id,
        );
    }
    let eleventh = cf
        .create_public_key(&new_key("kf-q11", 11))
        .await
        .expect_err("quota");
    assert_eq!(
        (eleventh.kind, eleventh.code.as_str()),
        (ErrorKind::QuotaExceeded, "TooManyPublicKeys")
    );
    for (i, id) in ids.iter().enumerate() {
        let config = KeyGroupConfig {
            name: format!("kf-g{i}"),
            comment: None,
            items: vec![id.clone()],
        };
        cf.create_key_group(&config).await.expect("within quota");
    }
    let config = KeyGroupConfig {
        name: "kf-g10".into(),
        comment: None,
        items: vec![ids[0].clone()],
    };
    let too_many = cf.create_key_group(&config).await.expect_err("quota");
    assert_eq!(
        (too_many.kind, too_many.code.as_str()),
        (ErrorKind::QuotaExceeded, "TooManyKeyGroups")
    );
}

async fn distribution_scenario(cf: &impl CloudFront, s: &Setup) {
    let distribution_id = s
        .emulator
        .create_test_distribution(&["/private/*", "/public/*"])
        .expect("distribution");
    let d = cf.get_distribution(&distribution_id).await.expect("get");
    assert_eq!(d.value.status, DeploymentStatus::InProgress);
    s.clock.advance(Duration::from_secs(3));
    let d = cf.get_distribution(&distribution_id).await.expect("get");
    assert_eq!(d.value.status, DeploymentStatus::Deployed);
    assert!(d.value.enabled);
    assert_eq!(d.value.behaviors.len(), 3);
    assert!(
        d.value
            .behaviors
            .iter()
            .all(|b| b.trusted_key_groups.is_empty())
    );

    let k1 = cf
        .create_public_key(&new_key("kf-d1", 1))
        .await
        .expect("key")
        .value
        .id;
    let k2 = cf
        .create_public_key(&new_key("kf-d2", 2))
        .await
        .expect("key")
        .value
        .id;
    let group = cf
        .create_key_group(&KeyGroupConfig {
            name: "kf-dg".into(),
            comment: None,
            items: vec![k1.clone()],
        })
        .await
        .expect("group");
    let private = BehaviorSelector::PathPattern("/private/*".into());
    let attach = [
        BehaviorTrust {
            behavior: BehaviorSelector::Default,
            trusted_key_groups: vec![group.value.id.clone()],
        },
        BehaviorTrust {
            behavior: private.clone(),
            trusted_key_groups: vec![group.value.id.clone()],
        },
    ];

    let unknown = [BehaviorTrust {
        behavior: BehaviorSelector::Default,
        trusted_key_groups: vec!["00000000-0000-4000-8000-000000000000".into()],
    }];
    let err = cf
        .set_trusted_key_groups(&distribution_id, &unknown, &d.etag)
        .await
        .expect_err("unknown group");
    assert_eq!(
        (err.kind, err.code.as_str()),
        (ErrorKind::Invalid, "TrustedKeyGroupDoesNotExist")
    );
    let no_such = [BehaviorTrust {
        behavior: BehaviorSelector::PathPattern("/nope/*".into()),
        trusted_key_groups: vec![],
    }];
    assert_eq!(
        cf.set_trusted_key_groups(&distribution_id, &no_such, &d.etag)
            .await
            .expect_err("no behavior")
            .kind,
        ErrorKind::NotFound
    );

    let attached = cf
        .set_trusted_key_groups(&distribution_id, &attach, &d.etag)
        .await
        .expect("attach");
    assert_eq!(attached.value.status, DeploymentStatus::InProgress);
    assert!(
        !attached.value.is_key_live(&group.value.id, &k1),
        "not live before propagation"
    );
    assert_eq!(
        attached
            .value
            .behavior(&private)
            .map(|b| b.trusted_key_groups.clone()),
        Some(vec![group.value.id.clone()])
    );
    assert_eq!(
        attached
            .value
            .behavior(&BehaviorSelector::PathPattern("/public/*".into()))
            .map(|b| b.trusted_key_groups.len()),
        Some(0),
        "other behaviors untouched"
    );
    {
        let model = s.emulator.model();
        let config = &model.get_distribution(&distribution_id).expect("d").config;
        assert_eq!(
            config
                .path(&["DefaultCacheBehavior", "CachePolicyId"])
                .map(|e| e.text.as_str()),
            Some("658327ea-f89d-4fab-a63d-7e88639e58f6"),
            "other settings preserved"
        );
        assert_eq!(
            config.child_text("Comment"),
            Some("created by keyfront tests")
        );
    }
    s.clock.advance(Duration::from_secs(3));
    let live = cf.get_distribution(&distribution_id).await.expect("get");
    assert!(live.value.is_key_live(&group.value.id, &k1));

    // Adding a key to a trusted group propagates like a distribution change.
    let two = KeyGroupConfig {
        name: "kf-dg".into(),
        comment: None,
        items: vec![k1.clone(), k2.clone()],
    };
    cf.update_key_group(&group.value.id, &two, &group.etag)
        .await
        .expect("add key");
    let propagating = cf.get_distribution(&distribution_id).await.expect("get");
    assert_eq!(propagating.value.status, DeploymentStatus::InProgress);
    assert!(!propagating.value.is_key_live(&group.value.id, &k2));
    s.clock.advance(Duration::from_secs(3));
    assert!(
        cf.get_distribution(&distribution_id)
            .await
            .expect("get")
            .value
            .is_key_live(&group.value.id, &k2)
    );

    let group_etag = cf.get_key_group(&group.value.id).await.expect("group").etag;
    let in_use = cf
        .delete_key_group(&group.value.id, &group_etag)
        .await
        .expect_err("trusted");
    assert_eq!(
        (in_use.kind, in_use.code.as_str()),
        (ErrorKind::InUse, "ResourceInUse")
    );

    // Another writer changes the distribution: our ETag goes stale.
    let before = cf
        .get_distribution(&distribution_id)
        .await
        .expect("get")
        .etag;
    s.emulator
        .model()
        .touch_distribution(&distribution_id)
        .expect("touch");
    let stale = cf
        .set_trusted_key_groups(&distribution_id, &[], &before)
        .await
        .expect_err("stale");
    assert_eq!(stale.kind, ErrorKind::PreconditionFailed);

    let mut groups = Vec::new();
    for i in 0..4 {
        groups.push(
            cf.create_key_group(&KeyGroupConfig {
                name: format!("kf-extra{i}"),
                comment: None,
                items: vec![k2.clone()],
            })
            .await
            .expect("group")
            .value
            .id,
        );
    }
    groups.push(group.value.id.clone());
    let fresh = cf
        .get_distribution(&distribution_id)
        .await
        .expect("get")
        .etag;
    let five = [BehaviorTrust {
        behavior: BehaviorSelector::Default,
        trusted_key_groups: groups,
    }];
    let err = cf
        .set_trusted_key_groups(&distribution_id, &five, &fresh)
        .await
        .expect_err("5 groups on one behavior");
    assert_eq!(
        (err.kind, err.code.as_str()),
        (
            ErrorKind::QuotaExceeded,
            "TooManyKeyGroupsAssociatedToDistribution"
        )
    );

    let detach = [
        BehaviorTrust {
            behavior: BehaviorSelector::Default,
            trusted_key_groups: vec![],
        },
        BehaviorTrust {
            behavior: private,
            trusted_key_groups: vec![],
        },
    ];
    cf.set_trusted_key_groups(&distribution_id, &detach, &fresh)
        .await
        .expect("detach");
    let group_etag = cf.get_key_group(&group.value.id).await.expect("group").etag;
    cf.delete_key_group(&group.value.id, &group_etag)
        .await
        .expect("no longer referenced");

    let missing = cf
        .get_distribution("EDOESNOTEXIST")
        .await
        .expect_err("missing");
    assert_eq!(
        (missing.kind, missing.code.as_str()),
        (ErrorKind::NotFound, "NoSuchDistribution")
    );
}

async fn faults_scenario(cf: &impl CloudFront, s: &Setup) {
    let script = |fault, count| ScriptedFault {
        operation: Some("ListKeyGroups".into()),
        fault,
        count,
        latency_ms: 0,
    };
    s.emulator.script_fault(script(FaultKind::Throttle, 5));
    let throttled = cf.list_key_groups().await.expect_err("throttled");
    assert_eq!(
        (throttled.kind, throttled.code.as_str()),
        (ErrorKind::Throttled, "Throttling")
    );
    assert!(throttled.is_retryable());
    s.emulator.clear_faults();
    s.emulator.script_fault(script(FaultKind::ServerError, 5));
    let unavailable = cf.list_key_groups().await.expect_err("5xx");
    assert_eq!(unavailable.kind, ErrorKind::Transient);
    assert!(unavailable.is_retryable());
    s.emulator.clear_faults();
    s.emulator.script_fault(script(FaultKind::AccessDenied, 1));
    let denied = cf.list_key_groups().await.expect_err("403");
    assert_eq!(
        (denied.kind, denied.code.as_str()),
        (ErrorKind::AccessDenied, "AccessDenied")
    );
    assert!(!denied.is_retryable());
    s.emulator.script_fault(ScriptedFault {
        operation: Some("ListKeyGroups".into()),
        fault: FaultKind::Latency,
        count: 1,
        latency_ms: 50,
    });
    let started = std::time::Instant::now();
    cf.list_key_groups()
        .await
        .expect("latency alone does not fail");
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(
        cf.list_key_groups()
            .await
            .expect("faults run out")
            .is_empty()
    );
}

async fn pagination_scenario(cf: &impl CloudFront, _s: &Setup) {
    for i in 0..230 {
        cf.create_public_key(&new_key(&format!("kf-page-{i:03}"), 1 + i % 12))
            .await
            .expect("key");
    }
    let keys = cf.list_public_keys().await.expect("list");
    assert_eq!(keys.len(), 230);
    let mut names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 230, "no key listed twice");
}

/// `UpdateDistribution` through the SDK adapter changes `TrustedKeyGroups` and nothing else of
/// a distribution someone else owns: every element and value comes back as it was, or — where
/// this build's SDK does not know an element and would drop it — nothing is written at all and
/// the error names the element.
mod no_field_lost {
    use super::*;
    use keyfront::emulator::xml::Element;

    /// The config without the `TrustedKeyGroups` elements (the only thing keyfront changes).
    fn without_trust(mut config: Element) -> Element {
        let mut pending = vec![&mut config];
        while let Some(element) = pending.pop() {
            element.children.retain(|c| c.name != "TrustedKeyGroups");
            pending.extend(element.children.iter_mut());
        }
        config
    }

    /// Stores `xml`, has the SDK adapter trust a key group on the default behavior, then
    /// trust none again, and returns the stored config before, after the attach and after the
    /// detach.
    async fn attach_and_detach_through_the_sdk(
        xml: &str,
    ) -> ((Element, String), (Element, String), (Element, String)) {
        let s = setup(Quotas::default());
        let sdk = sdk_over_http(&s.emulator).await;
        let key = sdk
            .create_public_key(&new_key("nfl", 1))
            .await
            .expect("key");
        let group = sdk
            .create_key_group(&KeyGroupConfig {
                name: "nfl".into(),
                comment: None,
                items: vec![key.value.id],
            })
            .await
            .expect("group");
        let config = Element::parse(xml.as_bytes()).expect("config parses");
        let id = s
            .emulator
            .model()
            .create_distribution(config)
            .expect("the emulator stores the config")
            .id;
        let stored = |s: &Setup| {
            let model = s.emulator.model();
            let d = model.get_distribution(&id).expect("distribution");
            (d.config.clone(), d.etag.clone())
        };
        let before = stored(&s);
        let trust = |groups: Vec<String>| {
            [BehaviorTrust {
                behavior: BehaviorSelector::Default,
                trusted_key_groups: groups,
            }]
        };
        sdk.set_trusted_key_groups(&id, &trust(vec![group.value.id]), &Etag(before.1.clone()))
            .await
            .expect("attached");
        let attached = stored(&s);
        sdk.set_trusted_key_groups(&id, &trust(Vec::new()), &Etag(attached.1.clone()))
            .await
            .expect("detached");
        let detached = stored(&s);
        (before, attached, detached)
    }

    /// The update was written and changed nothing but `TrustedKeyGroups`.
    fn assert_only_trust_changed(xml: &str, before: &(Element, String), after: &(Element, String)) {
        assert_ne!(before.1, after.1, "an update was written");
        assert_ne!(before.0, after.0, "the trust changed");
        assert_eq!(
            without_trust(before.0.clone()),
            without_trust(after.0.clone()),
            "something besides TrustedKeyGroups changed; the config was:\n{xml}"
        );
    }

    /// Elements that no SDK knows (yet), at the top, in an origin and in the default behavior.
    fn with_unknown_elements(mut config: Element) -> Element {
        config
            .children
            .push(Element::new("FutureSetting").with_text("Mode", "strict"));
        for child in &mut config.children {
            if child.name == "DefaultCacheBehavior" {
                child
                    .children
                    .push(Element::text("FutureBehaviorFlag", "true"));
            }
        }
        config
    }

    #[tokio::test]
    async fn elements_the_sdk_does_not_know_come_back_and_the_trust_is_written() {
        let xml = with_unknown_elements(keyfront::emulator::minimal_distribution_config(
            "nfl-unknown",
            &[],
        ))
        .to_document();
        let xml = String::from_utf8(xml).expect("utf-8");
        let (before, attached, detached) = attach_and_detach_through_the_sdk(&xml).await;
        assert_only_trust_changed(&xml, &before, &attached);
        assert_only_trust_changed(&xml, &attached, &detached);
        let kept = |e: &Element, name: &str| e.children.iter().any(|c| c.name == name);
        assert!(kept(&detached.0, "FutureSetting"), "{:?}", detached.0);
    }

    /// Every member botocore's model lists is populated, plus elements no SDK knows: the attach
    /// and the detach go through and everything but `TrustedKeyGroups` comes back unchanged.
    #[tokio::test]
    async fn every_element_of_botocores_model_and_unknown_ones_come_back() {
        let output = std::process::Command::new(crate::support::python())
            .arg("tests/python/maximal_distribution_config.py")
            .output()
            .expect("python runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let config = Element::parse(&output.stdout).expect("generated config parses");
        let xml = String::from_utf8(with_unknown_elements(config).to_document()).expect("utf-8");
        let (before, attached, detached) = attach_and_detach_through_the_sdk(&xml).await;
        assert_only_trust_changed(&xml, &before, &attached);
        assert_only_trust_changed(&xml, &attached, &detached);
    }
}
