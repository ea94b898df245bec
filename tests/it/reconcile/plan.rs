//! Table tests of the pure plan: one per rule of the rotation protocol (DESIGN.md), each a
//! hand-built observation at a fixed `now`, and the steps, findings and wake time that must
//! come out. No I/O: `plan()` is a function.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use keyfront::api::{CloudFrontAccountSpec, KeyAlgorithm, KeyState, SigningKeyGroupSpec};
use keyfront::cloudfront::{
    ActiveKeyGroup, BehaviorSelector, BehaviorTrust, DeploymentStatus, Distribution, Etag,
    KeyGroup, KeyGroupConfig, PublicKey, Tagged,
};
use keyfront::keys::PrivateKeyPem;
use keyfront::reconcile::capacity::stagger::Window;
use keyfront::reconcile::keyring::{KeyRecord, Keyring, MadeFor};
use keyfront::reconcile::observed::{
    AppSecret, DistributionState, KeyGroupState, Observed, OwnedAppSecret, StoredKeyring, Subject,
};
use keyfront::reconcile::plan::{self, Plan, Stage, Step};
use keyfront::reconcile::{names, reasons};
use keyfront::tenancy::NamespaceFacts;
use serde_json::json;

const UID: &str = "0b0b0b0b-1111-2222-3333-444444444444";
const NAMESPACE_UID: &str = "9a9a9a9a-1111-2222-3333-444444444444";

/// The namespace and object every test keyring was made for.
fn made_for() -> MadeFor {
    MadeFor {
        namespace_uid: NAMESPACE_UID.into(),
        object_uid: UID.into(),
    }
}

/// The owner token of `default/media` in cluster `c`.
fn owner() -> String {
    names::owner_token("c", "default", "media")
}

/// An account admitting every namespace, distribution and behavior, honouring the public
/// opt-in: the rotation rules below are tested apart from the grant rules.
fn open_account() -> CloudFrontAccountSpec {
    serde_json::from_value(json!({
        "allowedNamespaces": {"from": "All"},
        "distributions": [{"id": "*", "defaultCacheBehavior": true, "pathPatterns": ["*"], "allowPublicOnDetach": true}],
    }))
    .unwrap()
}
const KG: &str = "kg-1";
const POLL: Duration = Duration::from_secs(15);
/// The operator's pace in these cases: no floor on rotations unless a case sets one.
const PACING: plan::Pacing = plan::Pacing {
    propagation_poll: POLL,
    min_rotation_interval: Duration::ZERO,
};

fn t0() -> Timestamp {
    "2026-03-01T00:00:00Z".parse().unwrap()
}

fn at(minutes: i64) -> Timestamp {
    t0() + SignedDuration::from_mins(minutes)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A key record for serial 1 or 2 (fixture keys ec-1 / ec-2).
fn key(serial: u32, state: KeyState, id: Option<&str>) -> KeyRecord {
    let public = fixture(&format!("ec-{serial}.pub.pem"));
    KeyRecord {
        serial,
        algorithm: KeyAlgorithm::EcdsaP256,
        state,
        public_key_id: id.map(str::to_owned),
        fingerprint: keyfront::keys::fingerprint(&public).unwrap(),
        public_key_pem: public,
        created_at: t0(),
        live_at: None,
        published_at: None,
        activated_at: (state == KeyState::Active).then(t0),
        // Placed when it became active, on its own in the account.
        rotates_early_by: (state == KeyState::Active).then_some(SignedDuration::ZERO),
        takes_over_at: None,
        retired_at: None,
        revoked: false,
        private_key_lost: false,
        private_key: Some(PrivateKeyPem::new(fixture(&format!("ec-{serial}.pem")))),
    }
}

/// Rotation hourly, URLs live 10 minutes, pods refresh within 2: grace 12 minutes.
fn spec(distributions: serde_json::Value) -> SigningKeyGroupSpec {
    serde_json::from_value(json!({
        "key": {"algorithm": "ECDSAP256"},
        "rotation": {"interval": "1h", "maxSignedUrlLifetime": "10m", "secretRefreshAllowance": "2m", "minPropagationWait": "0s"},
        "distributions": distributions,
    }))
    .unwrap()
}

struct Case {
    subject: Subject,
    spec: SigningKeyGroupSpec,
    observed: Observed,
    now: Timestamp,
}

impl Case {
    fn new() -> Self {
        Self {
            subject: Subject {
                uid: UID.into(),
                owner: owner(),
                namespace: "default".into(),
                name: "media".into(),
                generation: Some(1),
                deleting: false,
                has_finalizer: true,
                rotate_request: None,
                revoke_request: None,
            },
            spec: spec(json!([])),
            observed: Observed {
                account: Some(open_account()),
                namespace: NamespaceFacts {
                    name: "default".into(),
                    uid: NAMESPACE_UID.into(),
                    labels: BTreeMap::new(),
                    terminating: false,
                },
                keyring: None,
                app_secret: AppSecret::Missing,
                id_config_map: Default::default(),
                key_group: KeyGroupState::Missing,
                listed_public_keys: None,
                public_keys_present: BTreeMap::new(),
                adoption_trust: None,
                trusting_distributions: None,
                claimed_elsewhere: Vec::new(),
                distributions: BTreeMap::new(),
                rotations: Vec::new(),
            },
            now: t0(),
        }
    }

    fn keys(mut self, keys: Vec<KeyRecord>) -> Self {
        let next_serial = keys.iter().map(|k| k.serial + 1).max().unwrap_or(1);
        self.observed.keyring = Some(StoredKeyring {
            keyring: Keyring {
                next_serial,
                key_group_id: None,
                keys,
                made_for: Some(made_for()),
                key_group_name: Some("default_media".into()),
                ..Keyring::default()
            },
            resource_version: Some("1".into()),
            resume_in_namespace: None,
        });
        self
    }

    /// Records that keyfront attached the group to distribution `id`.
    fn attached(&mut self, id: &str, allow_public_on_detach: bool) {
        self.keyring().attachments.insert(
            id.into(),
            keyfront::reconcile::keyring::Attachment {
                allow_public_on_detach,
                ..Default::default()
            },
        );
    }

    fn keyring(&mut self) -> &mut Keyring {
        &mut self.observed.keyring.as_mut().unwrap().keyring
    }

    fn group(mut self, items: &[&str]) -> Self {
        self.observed.key_group = KeyGroupState::Owned(Tagged {
            value: KeyGroup {
                id: KG.into(),
                config: KeyGroupConfig {
                    name: "default_media".into(),
                    comment: Some(names::owned_comment(&owner(), None)),
                    items: items.iter().map(|s| s.to_string()).collect(),
                },
                last_modified_time: t0(),
            },
            etag: Etag("E-kg".into()),
        });
        if let Some(k) = self.observed.keyring.as_mut() {
            k.keyring.key_group_id = Some(KG.into());
        }
        self
    }

    /// The app Secret exactly as keyfront writes it for key `serial`.
    fn signing_with(mut self, serial: u32) -> Self {
        let settings = plan::settings(&self.spec, &self.subject, None).unwrap();
        let record = self.keyring().record(serial).unwrap().clone();
        self.observed.app_secret = AppSecret::Owned(OwnedAppSecret {
            resource_version: Some("1".into()),
            key_pair_id: record.public_key_id.clone(),
            public_key_pem: Some(record.public_key_pem.clone()),
            hash_algorithm: Some("SHA256".into()),
            private_key: record.private_key.clone(),
            labels: plan::app_secret_labels(&settings),
            annotations: plan::app_secret_annotations(
                &settings,
                &owner(),
                record.public_key_id.as_deref(),
            ),
            owner_referenced: true,
        });
        self
    }

    /// Distribution `id`, default behavior trusting `trusted`, edge verifying `live` keys.
    fn distribution(mut self, id: &str, trusted: &[&str], live: &[&str], deployed: bool) -> Self {
        let trusted: Vec<String> = trusted.iter().map(|s| s.to_string()).collect();
        self.observed.distributions.insert(
            id.into(),
            DistributionState::Found(Tagged {
                value: Distribution {
                    id: id.into(),
                    status: if deployed {
                        DeploymentStatus::Deployed
                    } else {
                        DeploymentStatus::InProgress
                    },
                    enabled: true,
                    behaviors: vec![BehaviorTrust {
                        behavior: BehaviorSelector::Default,
                        trusted_key_groups: trusted.clone(),
                    }],
                    active_trusted_key_groups: trusted
                        .iter()
                        .map(|g| ActiveKeyGroup {
                            key_group_id: g.clone(),
                            key_pair_ids: live.iter().map(|s| s.to_string()).collect(),
                        })
                        .collect(),
                },
                etag: Etag(format!("E-{id}")),
            }),
        );
        self
    }

    fn plan(&self) -> Plan {
        self.plan_with(&PACING)
    }

    fn plan_with(&self, pacing: &plan::Pacing) -> Plan {
        plan::plan(&self.subject, &self.spec, &self.observed, self.now, pacing)
    }

    fn clone_case(&self) -> Self {
        Self {
            subject: self.subject.clone(),
            spec: self.spec.clone(),
            observed: self.observed.clone(),
            now: self.now,
        }
    }
}

/// Step kinds, in order, for compact assertions.
/// The steady state: key 1 active, alone in the group, in the app's Secret.
fn signing_with_key_1() -> Case {
    Case::new()
        .keys(vec![key(1, KeyState::Active, Some("K1"))])
        .group(&["K1"])
        .signing_with(1)
}

fn kinds(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| match s {
            Step::SaveKeyring { stage: Some(_) } => "StageKey".to_owned(),
            Step::SaveKeyring { stage: None } => "SaveKeyring".to_owned(),
            Step::CreatePublicKey { serial, .. } => format!("CreatePublicKey({serial})"),
            Step::CreateKeyGroup { config } => format!("CreateKeyGroup{:?}", config.items),
            Step::UpdateKeyGroup { config, .. } => format!("UpdateKeyGroup{:?}", config.items),
            Step::SetTrust {
                distribution_id,
                behaviors,
                ..
            } => format!(
                "SetTrust({distribution_id}:{:?})",
                behaviors
                    .iter()
                    .map(|b| b.trusted_key_groups.clone())
                    .collect::<Vec<_>>()
            ),
            Step::WriteAppSecret { serial } => format!("WriteAppSecret({serial})"),
            Step::WriteIdConfigMap { name, data } => {
                format!("WriteIdConfigMap({name}:{})", data["keyGroupId"])
            }
            Step::DeletePublicKey { id } => format!("DeletePublicKey({id})"),
            Step::DeleteKeyGroup { id, .. } => format!("DeleteKeyGroup({id})"),
            Step::ReleaseSecrets { delete } => format!("ReleaseSecrets(delete={delete})"),
            Step::AddFinalizer => "AddFinalizer".to_owned(),
            Step::RemoveFinalizer => "RemoveFinalizer".to_owned(),
        })
        .collect()
}

fn has_finding(plan: &Plan, reason: &str) -> bool {
    plan.findings.iter().any(|f| f.reason == reason)
}

fn record(plan: &Plan, serial: u32) -> &KeyRecord {
    plan.keyring.record(serial).unwrap()
}

#[test]
fn the_finalizer_comes_before_anything_that_would_need_cleaning_up() {
    let mut case = Case::new();
    case.subject.has_finalizer = false;
    assert_eq!(kinds(&case.plan()), ["AddFinalizer", "StageKey"]);
}

#[test]
fn staged_the_first_key_is_stored_before_cloudfront_hears_of_it() {
    let plan = Case::new().plan();
    assert_eq!(
        kinds(&plan),
        ["StageKey"],
        "no CloudFront step beside the staging"
    );
}

#[test]
fn published_a_staged_key_is_created_once_a_listing_shows_it_missing() {
    let mut case = Case::new().keys(vec![key(1, KeyState::Staged, None)]);
    assert!(
        kinds(&case.plan()).is_empty(),
        "without a listing nothing is created"
    );
    case.observed.listed_public_keys = Some(vec![]);
    assert_eq!(kinds(&case.plan()), ["CreatePublicKey(1)"]);
}

#[test]
fn published_a_created_key_whose_answer_was_lost_is_found_by_name_and_fingerprint() {
    let mut case = Case::new().keys(vec![key(1, KeyState::Staged, None)]);
    let listed = |name: String, pem: &str| PublicKey {
        id: "K1".into(),
        name,
        encoded_key: fixture(pem),
        comment: Some(names::comment_marker(&owner())),
        created_time: t0(),
    };
    // Same name, other key material: not ours to record.
    case.observed.listed_public_keys = Some(vec![listed(
        names::public_key_name(&owner(), 1),
        "ec-2.pub.pem",
    )]);
    let plan = case.plan();
    assert_eq!(record(&plan, 1).public_key_id, None);
    case.observed.listed_public_keys = Some(vec![listed(
        names::public_key_name(&owner(), 1),
        "ec-1.pub.pem",
    )]);
    let plan = case.plan();
    assert_eq!(record(&plan, 1).public_key_id.as_deref(), Some("K1"));
    assert_eq!(record(&plan, 1).state, KeyState::Published);
    assert_eq!(kinds(&plan), ["SaveKeyring", "CreateKeyGroup[\"K1\"]"]);
}

#[test]
fn published_the_key_group_is_created_with_the_first_key() {
    let plan = Case::new()
        .keys(vec![key(1, KeyState::Published, Some("K1"))])
        .plan();
    assert!(
        kinds(&plan).contains(&"CreateKeyGroup[\"K1\"]".to_owned()),
        "{:?}",
        kinds(&plan)
    );
    assert!(
        !kinds(&plan).iter().any(|k| k.starts_with("WriteAppSecret")),
        "activated before it is in a group"
    );
}

#[test]
fn active_with_no_distribution_the_key_activates_once_in_the_group() {
    let plan = Case::new()
        .keys(vec![key(1, KeyState::Published, Some("K1"))])
        .group(&["K1"])
        .plan();
    // The keyring records when the key went live (the next rotation's lead uses it).
    assert_eq!(kinds(&plan), ["SaveKeyring", "WriteAppSecret(1)"]);
}

/// `active` signing, and key 2 published beside it in the group, which E1 (attached on its
/// default behavior, still InProgress) does not verify yet.
fn key_2_deploying_on_e1(active: KeyRecord) -> Case {
    let mut case = Case::new()
        .keys(vec![active, key(2, KeyState::Published, Some("K2"))])
        .group(&["K1", "K2"])
        .signing_with(1)
        .distribution("E1", &[KG], &["K1"], false);
    case.spec = spec(json!([{"id": "E1", "defaultCacheBehavior": true}]));
    case.attached("E1", false);
    case.keyring()
        .attachments
        .get_mut("E1")
        .unwrap()
        .trusted_behaviors
        .insert(BehaviorSelector::Default);
    case
}

#[test]
fn active_waits_until_every_trusting_distribution_verifies_the_key() {
    let case = key_2_deploying_on_e1(key(1, KeyState::Active, Some("K1")));
    let plan = case.plan();
    assert!(kinds(&plan).is_empty(), "{:?}", kinds(&plan));
    assert!(has_finding(&plan, reasons::WAITING_FOR_PROPAGATION));
    assert_eq!(plan.wake_at, Some(case.now + SignedDuration::from_secs(15)));
    // keyfront's other writes to E1 wait while this key deploys there.
    assert_eq!(plan.awaits_deployment, ["E1"]);

    // Deployed with both keys at the edge: the Secret switches to key 2.
    let case = case.distribution("E1", &[KG], &["K1", "K2"], true);
    let plan = case.plan();
    assert_eq!(kinds(&plan), ["SaveKeyring", "WriteAppSecret(2)"]);
    assert!(plan.awaits_deployment.is_empty(), "the hold ends");
}

/// A distribution that stays InProgress past twice the last observed deployment is named, with
/// how long the key has waited, rather than waited on in silence.
#[test]
fn a_distribution_kept_in_progress_by_another_writer_is_reported() {
    let mut first = key(1, KeyState::Active, Some("K1"));
    first.live_at = Some(at(2)); // the last deployment took 2 minutes
    let mut case = key_2_deploying_on_e1(first);
    case.now = at(4);
    assert!(has_finding(&case.plan(), reasons::WAITING_FOR_PROPAGATION));
    case.now = at(5);
    let message = finding_message(&case.plan(), reasons::DISTRIBUTION_BUSY);
    assert!(
        message.contains("waited 5m") && message.contains("E1") && message.contains("took 2m"),
        "{message}"
    );
}

#[test]
fn active_min_propagation_wait_counts_from_when_the_key_went_live() {
    let mut case = Case::new()
        .keys(vec![key(1, KeyState::Published, Some("K1"))])
        .group(&["K1"]);
    case.spec.rotation.min_propagation_wait = "5m".into();
    let plan = case.plan();
    assert!(!kinds(&plan).contains(&"WriteAppSecret(1)".to_owned()));
    assert_eq!(
        record(&plan, 1).live_at,
        Some(t0()),
        "live time is recorded"
    );
    assert_eq!(plan.wake_at, Some(at(5)));
    case.keyring().keys[0].live_at = Some(t0());
    case.now = at(5);
    assert_eq!(kinds(&case.plan()), ["WriteAppSecret(1)"]);
}

#[test]
fn retiring_the_secret_switch_is_recorded_as_activation_and_retirement() {
    let mut case = Case::new()
        .keys(vec![
            key(1, KeyState::Active, Some("K1")),
            key(2, KeyState::Published, Some("K2")),
        ])
        .group(&["K1", "K2"]);
    case = case.signing_with(2);
    case.now = at(61);
    let plan = case.plan();
    assert_eq!(record(&plan, 2).state, KeyState::Active);
    assert_eq!(record(&plan, 2).activated_at, Some(at(61)));
    assert_eq!(record(&plan, 1).state, KeyState::Retiring);
    assert_eq!(record(&plan, 1).retired_at, Some(at(61)));
    assert_eq!(kinds(&plan), ["SaveKeyring"]);
}

#[test]
fn an_activated_key_is_placed_to_rotate_beside_the_accounts_other_rotations() {
    let mut case = Case::new()
        .keys(vec![
            key(1, KeyState::Active, Some("K1")),
            key(2, KeyState::Published, Some("K2")),
        ])
        .group(&["K1", "K2"])
        .signing_with(2);
    case.now = at(61);
    let hour = Duration::from_secs(3600);
    // Alone in its account: due an interval after it took over.
    let alone = case.plan();
    assert_eq!(
        record(&alone, 2).rotates_early_by,
        Some(SignedDuration::ZERO)
    );
    assert!(alone.rotation.unwrap().placed);
    assert_eq!(plan::next_rotation(&alone.keyring, hour), Some(at(121)));

    // Another object of the account rotates then: this one is placed earlier, its window
    // (its grace of 12 minutes, and two deployments and two polls after it; no deployment
    // observed yet counts as a poll) ending where that one's starts.
    case.observed.rotations = vec![Window {
        start: at(120),
        end: at(135),
    }];
    let beside = case.plan();
    let placed = beside.rotation.unwrap();
    assert!(placed.placed);
    assert_eq!(placed.window.end, at(120));
    let due = plan::next_rotation(&beside.keyring, hour).unwrap();
    assert_eq!(due, at(120) - SignedDuration::from_mins(13));
    assert_eq!(kinds(&beside), ["SaveKeyring"], "the advance is recorded");

    // Recorded, it is kept whatever the account's timeline says later, and moves with the
    // interval.
    *case.keyring() = beside.keyring.clone();
    case.observed.rotations.clear();
    let kept = case.plan();
    assert!(!kept.rotation.unwrap().placed);
    assert_eq!(plan::next_rotation(&kept.keyring, hour), Some(due));
    assert!(kinds(&kept).is_empty(), "{:?}", kinds(&kept));
    assert_eq!(
        plan::next_rotation(&kept.keyring, 2 * hour),
        Some(due + SignedDuration::from_hours(1))
    );
}

#[test]
fn retiring_a_key_stays_in_the_group_for_the_grace_then_leaves_and_is_deleted() {
    let mut retiring = key(1, KeyState::Retiring, Some("K1"));
    retiring.retired_at = Some(at(60));
    let mut active = key(2, KeyState::Active, Some("K2"));
    active.activated_at = Some(at(60));
    let mut case = Case::new()
        .keys(vec![retiring, active])
        .group(&["K1", "K2"])
        .signing_with(2);
    case.now = at(71);
    let plan = case.plan();
    assert!(kinds(&plan).is_empty(), "{:?}", kinds(&plan));
    assert_eq!(plan.wake_at, Some(at(72)), "wakes when the grace ends");

    case.now = at(72);
    assert_eq!(kinds(&case.plan()), ["UpdateKeyGroup[\"K2\"]"]);
    // Out of the group: the public key goes next, then the record is forgotten.
    let mut case = case.group(&["K2"]);
    case.observed.public_keys_present.insert("K1".into(), true);
    assert_eq!(kinds(&case.plan()), ["DeletePublicKey(K1)"]);
    case.observed.public_keys_present.insert("K1".into(), false);
    let plan = case.plan();
    assert!(plan.keyring.record(1).is_none());
    assert_eq!(kinds(&plan), ["SaveKeyring"]);
}

#[test]
fn a_scheduled_rotation_publishes_ahead_and_takes_over_when_due() {
    let mut case = signing_with_key_1();
    // No deployment observed yet: the lead is a poll for deploying plus a poll for noticing.
    let lead = SignedDuration::from_secs(30);
    case.now = at(59);
    let plan = case.plan();
    assert!(kinds(&plan).is_empty());
    assert_eq!(plan.wake_at, Some(at(60) - lead), "wakes to publish ahead");
    case.now = at(60) - lead;
    let plan = case.plan();
    assert_eq!(kinds(&plan), ["StageKey"]);
    assert_eq!(
        plan.steps[0],
        Step::SaveKeyring {
            stage: Some(Stage {
                algorithm: KeyAlgorithm::EcdsaP256,
                takes_over_at: Some(at(60)),
            })
        }
    );

    // Published and deployed before its time: it waits for it, without Reconciling.
    let mut next = key(2, KeyState::Published, Some("K2"));
    next.takes_over_at = Some(at(60));
    let mut case = case
        .keys(vec![key(1, KeyState::Active, Some("K1")), next])
        .group(&["K1", "K2"]);
    case.now = at(60) - SignedDuration::from_secs(10);
    let plan = case.plan();
    assert!(
        !kinds(&plan).iter().any(|k| k.starts_with("WriteAppSecret")),
        "{:?}",
        kinds(&plan)
    );
    assert!(has_finding(&plan, reasons::NEXT_KEY_READY));
    assert_eq!(plan.wake_at, Some(at(60)));
    case.keyring().keys[1].live_at = Some(case.now);
    case.now = at(60);
    assert_eq!(kinds(&case.plan()), ["WriteAppSecret(2)"]);
}

#[test]
fn the_lead_counts_the_deployment_time_last_observed() {
    let mut earlier = key(1, KeyState::Retiring, Some("K1"));
    earlier.created_at = at(-10);
    earlier.live_at = Some(at(-7));
    earlier.retired_at = Some(t0());
    let mut case = Case::new()
        .keys(vec![earlier, key(2, KeyState::Active, Some("K2"))])
        .group(&["K1", "K2"])
        .signing_with(2);
    case.spec.rotation.min_propagation_wait = "1m".into();
    // 3 minutes to deploy last time, 1 minute's wait, 15 s to notice.
    let expected = at(60) - SignedDuration::from_secs(4 * 60 + 15);
    case.now = expected - SignedDuration::from_secs(1);
    assert!(!kinds(&case.plan()).contains(&"StageKey".to_owned()));
    case.now = expected;
    assert!(kinds(&case.plan()).contains(&"StageKey".to_owned()));
}

#[test]
fn rotation_that_would_need_a_sixth_key_waits() {
    let mut keys: Vec<KeyRecord> = (1..=4)
        .map(|serial| {
            let mut k = key(1, KeyState::Retiring, Some(&format!("K{serial}")));
            k.serial = serial;
            k.retired_at = Some(at(55 + i64::from(serial)));
            k
        })
        .collect();
    let mut active = key(2, KeyState::Active, Some("K5"));
    active.serial = 5;
    keys.push(active);
    let mut case = Case::new()
        .keys(keys)
        .group(&["K1", "K2", "K3", "K4", "K5"])
        .signing_with(5);
    case.now = at(61);
    let plan = case.plan();
    assert!(
        !kinds(&plan).contains(&"StageKey".to_owned()),
        "{:?}",
        kinds(&plan)
    );
    assert!(has_finding(&plan, reasons::KEY_GROUP_FULL));
    assert_eq!(
        plan.wake_at,
        Some(at(68)),
        "wakes when the first retiring key may leave"
    );
}

#[test]
fn rotation_by_annotation_happens_once_per_value() {
    let mut case = signing_with_key_1();
    case.subject.rotate_request = Some("2026-03-01".into());
    let plan = case.plan();
    assert_eq!(kinds(&plan), ["StageKey"]);
    assert_eq!(plan.keyring.handled_rotate.as_deref(), Some("2026-03-01"));
    case.keyring().handled_rotate = Some("2026-03-01".into());
    assert!(kinds(&case.plan()).is_empty());
}

/// `--min-rotation-interval` above the spec's interval: the object rotates at the floor, and
/// says so when it does.
#[test]
fn an_interval_below_the_operators_floor_rotates_at_the_floor() {
    let floor = plan::Pacing {
        min_rotation_interval: Duration::from_secs(2 * 3600),
        ..PACING
    };
    let mut case = signing_with_key_1();
    case.now = at(61);
    assert_eq!(kinds(&case.plan()), ["StageKey"], "the spec's hour is up");
    assert!(
        kinds(&case.plan_with(&floor)).is_empty(),
        "the floor's 2h is not"
    );
    case.now = at(121);
    let plan = case.plan_with(&floor);
    assert_eq!(kinds(&plan), ["StageKey"]);
    let notice = plan
        .notices
        .iter()
        .find(|n| n.reason == reasons::ROTATION_INTERVAL_RAISED)
        .expect("the raised interval is said");
    assert!(
        notice.warning
            && notice.message.contains("every 2h")
            && notice.message.contains("not every 1h"),
        "{}",
        notice.message
    );
}

/// A rotation requested sooner than the floor after the last waits for it, says when it will
/// start, and then starts by itself; a revocation never waits.
#[test]
fn a_requested_rotation_waits_for_the_floor_and_a_revocation_does_not() {
    let floor = plan::Pacing {
        min_rotation_interval: Duration::from_secs(50 * 60),
        ..PACING
    };
    let mut case = signing_with_key_1();
    case.subject.rotate_request = Some("again".into());
    case.now = at(10);
    let plan = case.plan_with(&floor);
    assert!(kinds(&plan).is_empty(), "{:?}", kinds(&plan));
    assert!(has_finding(&plan, reasons::ROTATION_REQUEST_DEFERRED));
    assert_eq!(plan.keyring.handled_rotate, None, "still to be done");
    assert_eq!(plan.wake_at, Some(at(50)));
    case.now = at(50);
    let plan = case.plan_with(&floor);
    assert_eq!(kinds(&plan), ["StageKey"]);
    assert_eq!(plan.keyring.handled_rotate.as_deref(), Some("again"));

    case.now = at(10);
    case.subject.rotate_request = None;
    case.subject.revoke_request = Some("K1".into());
    assert_eq!(kinds(&case.plan_with(&floor)), ["StageKey"]);
}

#[test]
fn revocation_replaces_the_active_key_then_drops_it_without_grace() {
    let mut case = signing_with_key_1();
    case.subject.revoke_request = Some("K1".into());
    let plan = case.plan();
    assert!(record(&plan, 1).revoked);
    assert_eq!(
        kinds(&plan),
        ["StageKey"],
        "a fresh key first; K1 stays until it is replaced"
    );

    // Once key 2 is active, K1 leaves at once.
    let mut revoked = key(1, KeyState::Retiring, Some("K1"));
    revoked.revoked = true;
    revoked.retired_at = Some(at(3));
    let mut case = Case::new()
        .keys(vec![revoked, key(2, KeyState::Active, Some("K2"))])
        .group(&["K1", "K2"])
        .signing_with(2);
    case.now = at(3);
    assert_eq!(kinds(&case.plan()), ["UpdateKeyGroup[\"K2\"]"]);
}

#[test]
fn a_secret_keyfront_does_not_own_stops_everything() {
    let mut case = Case::new();
    case.observed.app_secret = AppSecret::Foreign;
    let plan = case.plan();
    assert!(plan.steps.is_empty());
    assert!(has_finding(&plan, reasons::SECRET_CONFLICT));
}

/// A key group keyfront did not create (or another object's), as found by name.
fn foreign_group(id: &str, items: &[&str], comment: Option<String>) -> Tagged<KeyGroup> {
    Tagged {
        value: KeyGroup {
            id: id.into(),
            config: KeyGroupConfig {
                name: "default-media".into(),
                comment,
                items: items.iter().map(|s| s.to_string()).collect(),
            },
            last_modified_time: t0(),
        },
        etag: Etag("E-theirs".into()),
    }
}

fn adopting() -> Case {
    let mut case = Case::new();
    case.spec.key_group.name = Some("default-media".into());
    case.spec.key_group.adopt = true;
    case.observed.adoption_trust = Some(Vec::new());
    case
}

#[test]
fn adoption_records_the_keys_found_before_marking_the_group() {
    let mut case = adopting();
    case.observed.key_group = KeyGroupState::Taken(foreign_group(
        "theirs",
        &["TF1", "TF2"],
        Some("managed by terraform".into()),
    ));
    let plan = case.plan();
    assert_eq!(
        kinds(&plan),
        ["SaveKeyring", "UpdateKeyGroup[\"TF1\", \"TF2\"]"],
        "the keyring records the adopted keys before the group carries keyfront's marker"
    );
    let adoption = plan.keyring.adoption.as_ref().unwrap();
    assert_eq!(adoption.keys, ["TF1", "TF2"]);
    assert_eq!(plan.keyring.key_group_id.as_deref(), Some("theirs"));
    let Step::UpdateKeyGroup { config, .. } = &plan.steps[1] else {
        unreachable!()
    };
    let comment = config.comment.as_deref().unwrap();
    assert!(
        names::is_owned_comment(Some(comment), &owner()),
        "{comment}"
    );
    assert!(comment.ends_with(" managed by terraform"), "{comment}");
}

#[test]
fn a_group_another_signing_key_group_owns_is_never_adopted() {
    let mut case = adopting();
    let other = names::owner_token("c", "team-b", "video");
    case.observed.key_group = KeyGroupState::Taken(foreign_group(
        "theirs",
        &["B1"],
        Some(names::owned_comment(&other, None)),
    ));
    let plan = case.plan();
    assert!(plan.steps.is_empty(), "{:?}", kinds(&plan));
    assert!(plan.keyring.adoption.is_none());
    assert!(has_finding(&plan, reasons::KEY_GROUP_NAME_TAKEN));
}

/// The group may be on its way (Terraform applied beside the object): looked for again soon.
#[test]
fn adopt_names_a_group_that_does_not_exist() {
    let case = adopting();
    let plan = case.plan();
    assert!(plan.steps.is_empty(), "{:?}", kinds(&plan));
    assert!(has_finding(&plan, reasons::KEY_GROUP_NOT_FOUND));
    assert_eq!(
        plan.wake_at,
        Some(case.now + jiff::SignedDuration::from_secs(30))
    );
}

#[test]
fn a_key_group_name_taken_by_someone_else_stops_everything() {
    let mut case = Case::new().keys(vec![key(1, KeyState::Published, Some("K1"))]);
    case.observed.key_group = KeyGroupState::Taken(foreign_group("theirs", &[], None));
    let plan = case.plan();
    assert!(plan.steps.is_empty());
    assert!(has_finding(&plan, reasons::KEY_GROUP_NAME_TAKEN));
}

#[test]
fn distributions_are_attached_only_once_a_key_is_active_and_in_the_secret() {
    let mut case = Case::new()
        .keys(vec![key(1, KeyState::Published, Some("K1"))])
        .group(&["K1"])
        .distribution("E1", &[], &[], true);
    case.spec = spec(json!([{"id": "E1", "defaultCacheBehavior": true}]));
    let plan = case.plan();
    assert!(
        !kinds(&plan).iter().any(|k| k.starts_with("SetTrust")),
        "{:?}",
        kinds(&plan)
    );
    let case = Case {
        observed: Observed {
            keyring: Some(StoredKeyring {
                keyring: Keyring {
                    next_serial: 2,
                    key_group_id: Some(KG.into()),
                    keys: vec![key(1, KeyState::Active, Some("K1"))],
                    made_for: Some(made_for()),
                    key_group_name: Some("default_media".into()),
                    ..Keyring::default()
                },
                resource_version: Some("1".into()),
                resume_in_namespace: None,
            }),
            ..case.observed
        },
        ..case
    }
    .signing_with(1);
    let plan = case.plan();
    assert_eq!(kinds(&plan), ["SaveKeyring", "SetTrust(E1:[[\"kg-1\"]])"]);
    assert!(
        plan.keyring.attachments.contains_key("E1"),
        "the attachment is remembered"
    );
}

#[test]
fn distributions_keep_other_key_groups_and_never_go_public_without_opt_in() {
    let base = signing_with_key_1();
    // Attaching keeps the group already there.
    let mut case = base.distribution("E1", &["theirs"], &[], true);
    case.spec = spec(json!([{"id": "E1", "defaultCacheBehavior": true}]));
    assert!(kinds(&case.plan()).contains(&"SetTrust(E1:[[\"theirs\", \"kg-1\"]])".to_owned()));

    // Dropped from the spec while the only trusted group: kept, and said why.
    let mut case = case.distribution("E1", &[KG], &["K1"], true);
    case.attached("E1", false);
    case.spec = spec(json!([]));
    let plan = case.plan();
    assert!(
        !kinds(&plan).iter().any(|k| k.starts_with("SetTrust")),
        "{:?}",
        kinds(&plan)
    );
    assert!(has_finding(&plan, reasons::DETACH_WOULD_MAKE_PUBLIC));
    case.keyring()
        .attachments
        .get_mut("E1")
        .unwrap()
        .allow_public_on_detach = true;
    assert!(kinds(&case.plan()).contains(&"SetTrust(E1:[[]])".to_owned()));
}

/// An attached, signing object whose distribution E1 another writer changes: `trusted` is
/// what E1's default behavior trusts now.
fn attached_then_changed_elsewhere(policy: &str, trusted: &[&str]) -> Case {
    let mut case = signing_with_key_1().distribution("E1", &[KG], &["K1"], true);
    case.spec = spec(json!([{"id": "E1", "defaultCacheBehavior": true, "onTrustRemoved": policy}]));
    case.attached("E1", false);
    // keyfront sees its attachment hold, and records the behavior as trusting.
    let plan = case.plan();
    assert_eq!(
        plan.keyring.attachments["E1"].trusted_behaviors,
        [BehaviorSelector::Default].into()
    );
    *case.keyring() = plan.keyring;
    case.distribution("E1", trusted, &[], true)
}

fn set_trust_steps(plan: &Plan) -> Vec<String> {
    kinds(plan)
        .into_iter()
        .filter(|k| k.starts_with("SetTrust"))
        .collect()
}

#[test]
fn trust_another_writer_removes_is_reattached_after_a_pause_that_doubles() {
    let mut case = attached_then_changed_elsewhere("Reattach", &["terraforms"]);
    // Found removed: no write yet, a warning naming the way out, and a wake at the pause.
    let plan = case.plan();
    assert_eq!(set_trust_steps(&plan), Vec::<String>::new());
    let message = finding_message(&plan, reasons::TRUST_REMOVED);
    assert!(message.contains("set trust: External"), "{message}");
    assert!(
        message.contains("default cache behavior of distribution E1"),
        "{message}"
    );
    assert_eq!(plan.wake_at, Some(t0() + SignedDuration::from_secs(30)));
    let removal = plan.keyring.attachments["E1"].trust_removed.unwrap();
    assert_eq!((removal.at, removal.count), (t0(), 1));
    *case.keyring() = plan.keyring;

    // Still removed 10 s later: still waiting, still removal 1.
    case.now = t0() + SignedDuration::from_secs(10);
    let plan = case.plan();
    assert_eq!(set_trust_steps(&plan), Vec::<String>::new());
    assert_eq!(
        plan.keyring.attachments["E1"].trust_removed.unwrap().count,
        1
    );

    // After the pause: attached again, beside the group the other writer put there.
    case.now = t0() + SignedDuration::from_secs(30);
    let plan = case.plan();
    assert_eq!(
        set_trust_steps(&plan),
        ["SetTrust(E1:[[\"terraforms\", \"kg-1\"]])"]
    );
    *case.keyring() = plan.keyring;

    // Held, then removed again a minute later: the second pause is twice the first.
    let mut case = case.distribution("E1", &[KG], &["K1"], true);
    case.now = t0() + SignedDuration::from_secs(40);
    *case.keyring() = case.plan().keyring;
    let mut case = case.distribution("E1", &[], &[], true);
    case.now = t0() + SignedDuration::from_secs(90);
    let plan = case.plan();
    assert_eq!(set_trust_steps(&plan), Vec::<String>::new());
    assert_eq!(
        plan.keyring.attachments["E1"].trust_removed.unwrap().count,
        2
    );
    assert_eq!(plan.wake_at, Some(t0() + SignedDuration::from_secs(150)));
    assert!(has_finding(&plan, reasons::TRUST_REMOVED));
}

#[test]
fn trust_another_writer_removes_is_left_alone_when_the_entry_says_leave() {
    let mut case = attached_then_changed_elsewhere("Leave", &[]);
    for minutes in [0, 5, 600] {
        case.now = at(minutes);
        let plan = case.plan();
        assert_eq!(
            set_trust_steps(&plan),
            Vec::<String>::new(),
            "at {minutes} min"
        );
        let message = finding_message(&plan, reasons::TRUST_REMOVED_LEFT);
        assert!(message.contains("onTrustRemoved: Leave"), "{message}");
        *case.keyring() = plan.keyring;
    }
    // A person attaches it again: all is well, nothing written.
    let case = case.distribution("E1", &[KG], &["K1"], true);
    let plan = case.plan();
    assert!(!has_finding(&plan, reasons::TRUST_REMOVED_LEFT));
    assert_eq!(set_trust_steps(&plan), Vec::<String>::new());
}

#[test]
fn a_behavior_newly_selected_is_attached_at_once_not_taken_for_a_removal() {
    let mut case = attached_then_changed_elsewhere("Reattach", &[KG]);
    case.spec =
        spec(json!([{"id": "E1", "defaultCacheBehavior": true, "pathPatterns": ["/new/*"]}]));
    if let Some(DistributionState::Found(dist)) = case.observed.distributions.get_mut("E1") {
        dist.value.behaviors.push(BehaviorTrust {
            behavior: BehaviorSelector::PathPattern("/new/*".into()),
            trusted_key_groups: vec![],
        });
    }
    let plan = case.plan();
    assert!(!has_finding(&plan, reasons::TRUST_REMOVED));
    assert_eq!(set_trust_steps(&plan), ["SetTrust(E1:[[\"kg-1\"]])"]);
}

#[test]
fn the_key_group_id_is_published_in_the_named_config_map_never_over_a_foreign_one() {
    let mut case = signing_with_key_1();
    case.spec.key_group.id_config_map = Some("media-key-group".into());
    assert!(kinds(&case.plan()).contains(&"WriteIdConfigMap(media-key-group:kg-1)".to_owned()));

    // Already there and current: nothing to write.
    case.observed.id_config_map = keyfront::reconcile::observed::IdConfigMap::Owned(
        plan::id_config_map_data(KG, "default_media"),
    );
    let plan = case.plan();
    assert!(
        !kinds(&plan)
            .iter()
            .any(|k| k.starts_with("WriteIdConfigMap"))
    );
    assert!(!has_finding(&plan, reasons::CONFIG_MAP_CONFLICT));

    // Someone else's ConfigMap of that name: not overwritten, and said so.
    case.observed.id_config_map = keyfront::reconcile::observed::IdConfigMap::Foreign;
    let plan = case.plan();
    assert!(
        !kinds(&plan)
            .iter()
            .any(|k| k.starts_with("WriteIdConfigMap"))
    );
    let message = finding_message(&plan, reasons::CONFIG_MAP_CONFLICT);
    assert!(message.contains("default/media-key-group"), "{message}");
}

#[test]
fn an_invalid_spec_is_named_and_nothing_happens() {
    let mut case = Case::new();
    case.spec.rotation.interval = "soon".into();
    let plan = case.plan();
    assert!(plan.steps.is_empty());
    let finding = plan
        .findings
        .iter()
        .find(|f| f.reason == reasons::INVALID_SPEC)
        .unwrap();
    assert!(
        finding.message.contains("spec.rotation.interval"),
        "{}",
        finding.message
    );
}

#[test]
fn deletion_with_delete_detaches_then_deletes_the_group_then_keys_then_secrets() {
    let mut case = signing_with_key_1().distribution("E1", &["theirs", KG], &["K1"], true);
    case.spec = spec(json!([{"id": "E1", "defaultCacheBehavior": true}]));
    // An invalid spec does not stop cleanup.
    case.spec.rotation.interval = "soon".into();
    case.subject.deleting = true;
    assert_eq!(kinds(&case.plan()), ["SetTrust(E1:[[\"theirs\"]])"]);
    let mut case = case.distribution("E1", &["theirs"], &[], true);
    assert_eq!(kinds(&case.plan()), ["DeleteKeyGroup(kg-1)"]);
    case.observed.key_group = KeyGroupState::Missing;
    case.observed.public_keys_present.insert("K1".into(), true);
    assert_eq!(kinds(&case.plan()), ["DeletePublicKey(K1)"]);
    case.observed.public_keys_present.insert("K1".into(), false);
    case.observed.listed_public_keys = Some(vec![]);
    assert_eq!(
        kinds(&case.plan()),
        ["ReleaseSecrets(delete=true)", "RemoveFinalizer"]
    );
}

#[test]
fn deletion_with_retain_leaves_cloudfront_and_keeps_the_secrets() {
    let mut case = signing_with_key_1();
    case.spec.deletion_policy = Some(keyfront::api::DeletionPolicy::Retain);
    case.subject.deleting = true;
    assert_eq!(
        kinds(&case.plan()),
        ["ReleaseSecrets(delete=false)", "RemoveFinalizer"]
    );
}

#[test]
fn a_lost_keyring_is_rebuilt_from_the_secret_and_cloudfront() {
    let record = key(1, KeyState::Active, Some("K1"));
    let mut case = Case::new()
        .keys(vec![record.clone()])
        .group(&["K1"])
        .signing_with(1);
    case.observed.keyring = None;
    case.observed.listed_public_keys = Some(vec![PublicKey {
        id: "K1".into(),
        name: names::public_key_name(&owner(), 1),
        encoded_key: record.public_key_pem.clone(),
        comment: Some(names::comment_marker(&owner())),
        created_time: t0(),
    }]);
    let plan = case.plan();
    let adopted = plan.keyring.by_public_key_id("K1").unwrap();
    assert_eq!(adopted.state, KeyState::Active);
    assert_eq!(plan.keyring.next_serial, 2, "serial 1 is never reused");
    assert_eq!(
        kinds(&plan),
        ["SaveKeyring"],
        "no new key, no CloudFront change"
    );
}

#[test]
fn active_waits_for_a_distribution_whose_edge_still_trusts_the_group_while_detaching() {
    let mut case = Case::new()
        .keys(vec![
            key(1, KeyState::Active, Some("K1")),
            key(2, KeyState::Published, Some("K2")),
        ])
        .group(&["K1", "K2"])
        .signing_with(1)
        .distribution("E1", &[KG], &["K1"], false);
    // The configuration no longer trusts the group; the edge does until the change deploys.
    if let Some(DistributionState::Found(d)) = case.observed.distributions.get_mut("E1") {
        d.value.behaviors[0].trusted_key_groups.clear();
    }
    case.attached("E1", true);
    let plan = case.plan();
    assert!(
        !kinds(&plan).contains(&"WriteAppSecret(2)".to_owned()),
        "{:?}",
        kinds(&plan)
    );
    assert!(
        plan.keyring.attachments.contains_key("E1"),
        "forgotten before the edge let go"
    );
}

// ---- grants: what the CloudFrontAccount lets the object do ----

/// A Ready object signing with K1, attached to E1's default behavior only, with the grant
/// given as the account's `distributions`.
fn attached_under(grant: serde_json::Value) -> Case {
    let mut case = signing_with_key_1().distribution("E1", &[KG], &["K1"], true);
    case.attached("E1", true);
    case.spec =
        spec(json!([{"id": "E1", "defaultCacheBehavior": true, "allowPublicOnDetach": true}]));
    case.observed.account = Some(
        serde_json::from_value(
            json!({"allowedNamespaces": {"from": "All"}, "distributions": grant}),
        )
        .unwrap(),
    );
    case
}

fn finding_message(plan: &Plan, reason: &str) -> String {
    plan.findings
        .iter()
        .find(|f| f.reason == reason)
        .map(|f| f.message.clone())
        .unwrap_or_else(|| panic!("no {reason} finding in {:?}", plan.findings))
}

#[test]
fn grant_a_missing_account_stops_everything_and_reaches_no_cloudfront() {
    let mut case = Case::new();
    case.observed.account = None;
    let plan = case.plan();
    assert!(kinds(&plan).is_empty(), "{:?}", kinds(&plan));
    assert!(finding_message(&plan, reasons::ACCOUNT_NOT_FOUND).contains("\"default\""));
    let admission = plan::admission(&case.spec, &case.observed);
    assert!(!plan::reaches_cloudfront(&admission, &case.observed));
    let case = case.keys(vec![key(1, KeyState::Active, Some("K1"))]);
    assert!(
        !plan::reaches_cloudfront(&admission, &case.observed),
        "no credentials to act with"
    );
}

/// The attack: a namespace admitted with no distribution filled the account's public
/// keys with objects that protect nothing. By default it creates nothing; an account that
/// allows it, or any distribution grant, lets it proceed; what it made before goes on.
#[test]
fn grant_a_namespace_with_no_distribution_creates_nothing_unless_the_account_allows_it() {
    let ungranted = || {
        let mut case = Case::new();
        case.observed.account = Some(
            serde_json::from_value(
                json!({"allowedNamespaces": {"from": "All"}, "distributions": [
                {"id": "E1", "defaultCacheBehavior": true,
                 "allowedNamespaces": {"from": "Names", "names": ["team-a"]}}]}),
            )
            .unwrap(),
        );
        case
    };
    let case = ungranted();
    let plan = case.plan();
    assert!(kinds(&plan).is_empty(), "{:?}", kinds(&plan));
    let message = finding_message(&plan, reasons::NO_DISTRIBUTION_GRANTED);
    assert!(
        message.contains("namespacesWithoutDistributions: Allow"),
        "{message}"
    );
    let admission = plan::admission(&case.spec, &case.observed);
    assert!(!plan::reaches_cloudfront(&admission, &case.observed));

    let mut allowed = ungranted();
    allowed
        .observed
        .account
        .as_mut()
        .unwrap()
        .namespaces_without_distributions = keyfront::api::UngrantedNamespacePolicy::Allow;
    let plan = allowed.plan();
    assert!(!has_finding(&plan, reasons::NO_DISTRIBUTION_GRANTED));
    assert!(
        kinds(&plan).contains(&"StageKey".to_owned()),
        "{:?}",
        kinds(&plan)
    );

    // Keys made before the grant was withdrawn are still looked after.
    let resumed = case
        .keys(vec![key(1, KeyState::Active, Some("K1"))])
        .group(&["K1"]);
    assert!(!has_finding(
        &resumed.plan(),
        reasons::NO_DISTRIBUTION_GRANTED
    ));
    let admission = plan::admission(&resumed.spec, &resumed.observed);
    assert!(plan::reaches_cloudfront(&admission, &resumed.observed));
}

#[test]
fn grant_a_namespace_the_account_does_not_admit_generates_no_key() {
    let mut case = Case::new();
    case.observed.account = Some(
        serde_json::from_value(
            json!({"allowedNamespaces": {"from": "Names", "names": ["team-a"]}}),
        )
        .unwrap(),
    );
    let plan = case.plan();
    assert!(kinds(&plan).is_empty(), "{:?}", kinds(&plan));
    let message = finding_message(&plan, reasons::NAMESPACE_NOT_ALLOWED);
    assert!(
        message.contains("\"default\"") && message.contains("team-a"),
        "{message}"
    );
    let admission = plan::admission(&case.spec, &case.observed);
    assert!(!plan::reaches_cloudfront(&admission, &case.observed));
}

#[test]
fn grant_a_distribution_not_granted_is_named_and_never_written() {
    let mut case = signing_with_key_1()
        .distribution("E1", &[], &[], true)
        .distribution("E2", &[], &[], true);
    case.spec = spec(json!([
        {"id": "E1", "defaultCacheBehavior": true},
        {"id": "E2", "defaultCacheBehavior": true},
    ]));
    case.observed.account = Some(
        serde_json::from_value(json!({
            "allowedNamespaces": {"from": "All"},
            "distributions": [{"id": "E2", "defaultCacheBehavior": true}],
        }))
        .unwrap(),
    );
    let plan = case.plan();
    assert_eq!(
        kinds(&plan),
        ["SaveKeyring", "SetTrust(E2:[[\"kg-1\"]])"],
        "the granted entry proceeds"
    );
    let message = finding_message(&plan, reasons::DISTRIBUTION_NOT_ALLOWED);
    assert!(
        message.contains("E1") && message.contains("\"default\""),
        "{message}"
    );
    assert!(!plan.keyring.attachments.contains_key("E1"));
}

#[test]
fn grant_a_behavior_not_granted_is_named_and_never_attached() {
    let mut case = signing_with_key_1().distribution("E1", &[], &[], true);
    case.spec = spec(json!([{"id": "E1", "defaultCacheBehavior": true}]));
    case.observed.account = Some(
        serde_json::from_value(json!({
            "allowedNamespaces": {"from": "All"},
            "distributions": [{"id": "E1", "pathPatterns": ["/video/*"]}],
        }))
        .unwrap(),
    );
    let plan = case.plan();
    assert!(
        !kinds(&plan).iter().any(|k| k.starts_with("SetTrust")),
        "{:?}",
        kinds(&plan)
    );
    assert!(
        finding_message(&plan, reasons::BEHAVIOR_NOT_ALLOWED).contains("default cache behavior")
    );
}

#[test]
fn grant_narrowed_later_detaches_where_it_is_safe() {
    // Another group still protects the behavior, so detaching leaves it private.
    let mut case = attached_under(json!([]));
    case = case.distribution("E1", &["theirs", KG], &["K1"], true);
    let plan = case.plan();
    assert!(
        kinds(&plan).contains(&"SetTrust(E1:[[\"theirs\"]])".to_owned()),
        "{:?}",
        kinds(&plan)
    );
    assert!(has_finding(&plan, reasons::DISTRIBUTION_NOT_ALLOWED));

    // The namespace itself is no longer admitted: keyfront only winds down (no new key even
    // when a rotation is due), detaching under the same rule.
    let mut case = attached_under(json!([{"id": "E1", "defaultCacheBehavior": true}]))
        .distribution("E1", &["theirs", KG], &["K1"], true);
    case.observed.account.as_mut().unwrap().allowed_namespaces =
        serde_json::from_value(json!({"from": "Names", "names": ["team-a"]})).unwrap();
    case.now = at(24 * 60);
    let plan = case.plan();
    assert!(
        kinds(&plan).contains(&"SetTrust(E1:[[\"theirs\"]])".to_owned()),
        "{:?}",
        kinds(&plan)
    );
    assert!(
        !kinds(&plan).contains(&"StageKey".to_owned()),
        "{:?}",
        kinds(&plan)
    );
    assert!(has_finding(&plan, reasons::NAMESPACE_NOT_ALLOWED));
}

#[test]
fn grant_the_public_opt_in_is_honoured_only_where_the_account_allows_it() {
    // The tenant opted in, the account does not honour it: the behavior stays protected.
    let plan = attached_under(json!([])).plan();
    assert!(
        !kinds(&plan).iter().any(|k| k.starts_with("SetTrust")),
        "{:?}",
        kinds(&plan)
    );
    let message = finding_message(&plan, reasons::DETACH_WOULD_MAKE_PUBLIC);
    assert!(
        message.contains("does not honour allowPublicOnDetach"),
        "{message}"
    );

    // Even keyfront's own record of an earlier opt-in does not outlive the grant.
    let mut case = attached_under(json!([{"id": "E1", "defaultCacheBehavior": true}]));
    case.spec = spec(json!([]));
    let plan = case.plan();
    assert!(has_finding(&plan, reasons::DETACH_WOULD_MAKE_PUBLIC));

    // Both say yes: the detach goes through.
    let mut case = attached_under(
        json!([{"id": "E1", "defaultCacheBehavior": true, "allowPublicOnDetach": true}]),
    );
    case.spec = spec(json!([]));
    assert!(kinds(&case.plan()).contains(&"SetTrust(E1:[[]])".to_owned()));
}

#[test]
fn deletion_without_an_account_lets_go_only_if_nothing_was_created() {
    let mut case = Case::new();
    case.subject.deleting = true;
    case.observed.account = None;
    assert_eq!(
        kinds(&case.plan()),
        ["ReleaseSecrets(delete=true)", "RemoveFinalizer"]
    );
    let mut case = case.keys(vec![key(1, KeyState::Active, Some("K1"))]);
    case.subject.deleting = true;
    let plan = case.plan();
    assert!(kinds(&plan).is_empty(), "{:?}", kinds(&plan));
    assert!(has_finding(&plan, reasons::ACCOUNT_NOT_FOUND));
}

#[test]
fn a_lost_keyring_keeps_unrecorded_keys_in_the_group_for_their_grace() {
    // K1 active (its Secret survives), K2 retiring at the time the keyring was lost.
    let k1 = key(1, KeyState::Active, Some("K1"));
    let k2 = key(2, KeyState::Retiring, Some("K2"));
    let listed = |k: &KeyRecord| PublicKey {
        id: k.public_key_id.clone().unwrap(),
        name: names::public_key_name(&owner(), k.serial),
        encoded_key: k.public_key_pem.clone(),
        comment: Some(names::comment_marker(&owner())),
        created_time: t0(),
    };
    let mut case = Case::new()
        .keys(vec![k1.clone()])
        .group(&["K1", "K2"])
        .signing_with(1);
    case.observed.keyring = None;
    case.observed.listed_public_keys = Some(vec![listed(&k1), listed(&k2)]);
    case.now = at(30);
    let plan = case.plan();
    let kept = plan.keyring.by_public_key_id("K2").unwrap();
    assert_eq!(kept.state, KeyState::Retiring);
    assert!(kept.private_key_lost && kept.private_key.is_none());
    assert_eq!(
        kept.retired_at,
        Some(at(30)),
        "the grace counts from when it was found"
    );
    assert_eq!(kinds(&plan), ["SaveKeyring"], "K2 stays in the group");
    assert_eq!(plan.keyring.next_serial, 3);

    // Within the grace (12 minutes) it stays; after it, it leaves.
    let mut later = Case {
        now: at(41),
        ..case
    };
    later.observed.keyring = Some(StoredKeyring {
        keyring: plan.keyring.clone(),
        resource_version: Some("2".into()),
        resume_in_namespace: None,
    });
    assert!(
        kinds(&later.plan()).is_empty(),
        "{:?}",
        kinds(&later.plan())
    );
    later.now = at(43);
    assert_eq!(kinds(&later.plan()), ["UpdateKeyGroup[\"K1\"]"]);
}

#[test]
fn a_lost_keyring_and_secret_stage_a_new_key_beside_the_found_ones() {
    let k1 = key(1, KeyState::Active, Some("K1"));
    let mut case = Case::new().keys(vec![k1.clone()]).group(&["K1"]);
    case.observed.keyring = None;
    case.observed.listed_public_keys = Some(vec![PublicKey {
        id: "K1".into(),
        name: names::public_key_name(&owner(), 1),
        encoded_key: k1.public_key_pem.clone(),
        comment: Some(names::comment_marker(&owner())),
        created_time: t0(),
    }]);
    let plan = case.plan();
    assert_eq!(
        kinds(&plan),
        ["StageKey"],
        "K1 stays; only a new key is made"
    );
    assert_eq!(
        plan.keyring.by_public_key_id("K1").unwrap().state,
        KeyState::Retiring
    );
    assert_eq!(
        plan.desired_items,
        ["K1"],
        "pods signing with K1 keep working"
    );
}

// ---- isolation: what a tenant who owns one namespace must never reach ----

/// A Ready object signing with K1 in the group, attached to E1: then its namespace is deleted
/// and created again (another UID), and an object of the same name appears there.
fn recreated_namespace() -> Case {
    let mut case = Case::new()
        .keys(vec![key(1, KeyState::Active, Some("K1"))])
        .group(&["K1"])
        .distribution("E1", &[KG], &["K1"], true);
    case.attached("E1", false);
    case.spec = spec(json!([{"id": "E1", "defaultCacheBehavior": true}]));
    case.observed.namespace.uid = "a-new-namespace-uid".into();
    case.subject.uid = "a-new-object-uid".into();
    case.subject.has_finalizer = false;
    case
}

#[test]
fn isolation_a_keyring_made_for_a_deleted_namespace_is_neither_used_nor_written_there() {
    let case = recreated_namespace();
    let plan = case.plan();
    assert!(kinds(&plan).is_empty(), "{:?}", kinds(&plan));
    let message = finding_message(&plan, reasons::KEYRING_OF_ANOTHER_NAMESPACE);
    assert!(
        message.contains("keyfront.dev/resume-in-namespace=a-new-namespace-uid"),
        "{message}"
    );
    assert!(
        plan.keyring.keys.is_empty(),
        "status shows none of its keys"
    );
    let admission = plan::admission(&case.spec, &case.observed);
    assert!(!plan::reaches_cloudfront(&admission, &case.observed));

    // Even when the new namespace is not admitted at all (the attack that was found).
    let mut refused = recreated_namespace();
    refused.observed.account = Some(
        serde_json::from_value(json!({"allowedNamespaces": {"from": "Names", "names": ["x"]}}))
            .unwrap(),
    );
    let admission = plan::admission(&refused.spec, &refused.observed);
    assert!(!plan::reaches_cloudfront(&admission, &refused.observed));
    assert!(kinds(&refused.plan()).is_empty());

    // Deleting the new object winds nothing of the old tenant's down.
    let mut deleting = recreated_namespace();
    deleting.subject.deleting = true;
    deleting.subject.has_finalizer = true;
    assert_eq!(kinds(&deleting.plan()), ["RemoveFinalizer"]);
}

#[test]
fn isolation_an_object_recreated_in_its_own_namespace_resumes_its_keyring() {
    let mut case = recreated_namespace();
    case.observed.namespace.uid = NAMESPACE_UID.into();
    let plan = case.plan();
    assert!(
        kinds(&plan).contains(&"WriteAppSecret(1)".to_owned()),
        "{:?}",
        kinds(&plan)
    );
    assert_eq!(
        plan.keyring.made_for.as_ref().unwrap().object_uid,
        "a-new-object-uid",
        "the new object UID is recorded"
    );
}

#[test]
fn isolation_a_cluster_admin_lets_a_new_namespace_resume_a_keyring_by_annotation() {
    let mut case = recreated_namespace();
    case.observed.keyring.as_mut().unwrap().resume_in_namespace = Some("someone-else".into());
    assert!(has_finding(
        &case.plan(),
        reasons::KEYRING_OF_ANOTHER_NAMESPACE
    ));
    case.observed.keyring.as_mut().unwrap().resume_in_namespace =
        Some("a-new-namespace-uid".into());
    let plan = case.plan();
    assert!(!has_finding(&plan, reasons::KEYRING_OF_ANOTHER_NAMESPACE));
    assert!(
        kinds(&plan).contains(&"WriteAppSecret(1)".to_owned()),
        "{:?}",
        kinds(&plan)
    );
    assert_eq!(
        plan.keyring.made_for.as_ref().unwrap().namespace_uid,
        "a-new-namespace-uid"
    );
}

#[test]
fn isolation_a_keyring_from_before_uids_is_claimed_only_where_its_key_already_is() {
    let mut legacy = Case::new()
        .keys(vec![key(1, KeyState::Active, Some("K1"))])
        .group(&["K1"]);
    legacy.keyring().made_for = None;
    // No app Secret holding its key: a re-created namespace cannot prove anything.
    assert!(has_finding(
        &legacy.plan(),
        reasons::KEYRING_OF_ANOTHER_NAMESPACE
    ));
    // A forged Secret (right owner marker, another key) proves nothing either.
    let mut forged = legacy.clone_case().signing_with(1);
    if let AppSecret::Owned(s) = &mut forged.observed.app_secret {
        s.private_key = Some(PrivateKeyPem::new(fixture("ec-2.pem")));
    }
    assert!(has_finding(
        &forged.plan(),
        reasons::KEYRING_OF_ANOTHER_NAMESPACE
    ));
    // The live install being upgraded: its Secret holds the active key; the UIDs are recorded.
    let live = legacy.signing_with(1);
    let plan = live.plan();
    assert!(!has_finding(&plan, reasons::KEYRING_OF_ANOTHER_NAMESPACE));
    assert_eq!(kinds(&plan), ["SaveKeyring"]);
    assert_eq!(plan.keyring.made_for, Some(made_for()));
}

#[test]
fn isolation_no_key_material_goes_into_a_namespace_the_account_does_not_admit() {
    let mut case = Case::new()
        .keys(vec![key(1, KeyState::Active, Some("K1"))])
        .group(&["K1"]);
    case.observed.account = Some(
        serde_json::from_value(
            json!({"allowedNamespaces": {"from": "Names", "names": ["team-a"]}}),
        )
        .unwrap(),
    );
    let plan = case.plan();
    assert!(
        !kinds(&plan).iter().any(|k| k.starts_with("WriteAppSecret")),
        "{:?}",
        kinds(&plan)
    );
    assert!(has_finding(&plan, reasons::NAMESPACE_NOT_ALLOWED));
}

#[test]
fn isolation_a_star_entry_never_widens_an_entry_that_names_the_distribution() {
    let case = attached_under(json!([
        {"id": "E1", "defaultCacheBehavior": true, "allowedNamespaces": {"from": "Names", "names": ["team-a"]}},
        {"id": "*", "defaultCacheBehavior": true, "pathPatterns": ["*"]}
    ]));
    let mut fresh = case.clone_case();
    fresh.keyring().attachments.clear();
    fresh = fresh.distribution("E1", &[], &[], true);
    let plan = fresh.plan();
    assert!(has_finding(&plan, reasons::DISTRIBUTION_NOT_ALLOWED));
    assert!(
        !kinds(&plan).iter().any(|k| k.starts_with("SetTrust")),
        "{:?}",
        kinds(&plan)
    );
}

#[test]
fn isolation_one_distribution_is_split_by_behavior_between_namespaces() {
    let grant = json!([
        {"id": "E1", "pathPatterns": ["/a/*"], "allowedNamespaces": {"from": "Names", "names": ["team-a"]}},
        {"id": "E1", "pathPatterns": ["/b/*"], "allowedNamespaces": {"from": "Names", "names": ["default"]}},
        {"id": "*", "defaultCacheBehavior": true, "pathPatterns": ["*"]}
    ]);
    let mut case = attached_under(grant);
    case.keyring().attachments.clear();
    case = case.distribution("E1", &[], &[], true);
    case.spec = spec(json!([{"id": "E1", "pathPatterns": ["/a/*", "/b/*"]}]));
    let plan = case.plan();
    let message = finding_message(&plan, reasons::BEHAVIOR_NOT_ALLOWED);
    assert!(
        message.contains("/a/*") && !message.contains("/b/*"),
        "{message}"
    );
}

#[test]
fn isolation_a_withdrawn_grant_is_detached_when_the_admin_allows_it_public() {
    // The entry is narrowed to no namespace; it and the object both allow public detach.
    let case = attached_under(json!([{
        "id": "E1", "defaultCacheBehavior": true, "allowPublicOnDetach": true,
        "allowedNamespaces": {"from": "Names", "names": []}
    }]));
    let plan = case.plan();
    assert!(
        kinds(&plan).contains(&"SetTrust(E1:[[]])".to_owned()),
        "{:?}",
        kinds(&plan)
    );
    let message = finding_message(&plan, reasons::DISTRIBUTION_NOT_ALLOWED);
    assert!(message.contains("detaches"), "{message}");
}

#[test]
fn isolation_a_withdrawn_grant_whose_detach_is_blocked_freezes_the_group_but_not_revocation() {
    let mut case = attached_under(json!([{
        "id": "E1", "defaultCacheBehavior": true,
        "allowedNamespaces": {"from": "Names", "names": []}
    }]));
    case.now = at(24 * 60); // the scheduled rotation is long due
    let plan = case.plan();
    assert!(has_finding(&plan, reasons::DETACH_WOULD_MAKE_PUBLIC));
    assert!(has_finding(&plan, reasons::ROTATION_FROZEN));
    assert!(
        !kinds(&plan)
            .iter()
            .any(|k| k == "StageKey" || k.starts_with("CreatePublicKey")),
        "{:?}",
        kinds(&plan)
    );
    // A staged key is not published either.
    let mut staged = case.clone_case();
    staged.keyring().keys.push(key(2, KeyState::Staged, None));
    staged.keyring().next_serial = 3;
    staged.observed.listed_public_keys = Some(vec![]);
    assert!(
        !kinds(&staged.plan())
            .iter()
            .any(|k| k.starts_with("CreatePublicKey"))
    );
    // An emergency revocation still proceeds.
    case.subject.revoke_request = Some("K1".into());
    let plan = case.plan();
    assert!(
        kinds(&plan).contains(&"StageKey".to_owned()),
        "{:?}",
        kinds(&plan)
    );
    assert!(!has_finding(&plan, reasons::ROTATION_FROZEN));
    // ... through to its successor's public key, which may take the account's reserve.
    let mut revoking = case.clone_case();
    revoking.keyring().keys[0].revoked = true;
    revoking.keyring().handled_revoke = Some("K1".into());
    revoking.keyring().keys.push(key(2, KeyState::Staged, None));
    revoking.keyring().next_serial = 3;
    revoking.observed.listed_public_keys = Some(vec![]);
    let plan = revoking.plan();
    assert!(
        plan.steps.contains(&Step::CreatePublicKey {
            serial: 2,
            slot: keyfront::reconcile::capacity::Slot::Revocation
        }),
        "{:?}",
        kinds(&plan)
    );
}

#[test]
fn isolation_default_key_group_names_cannot_collide_and_existing_ones_are_kept() {
    let subject = |namespace: &str, name: &str| Subject {
        namespace: namespace.into(),
        name: name.into(),
        ..Case::new().subject
    };
    let spec = spec(json!([]));
    let a = plan::key_group_name(&spec, &subject("team", "a-x"), None);
    let b = plan::key_group_name(&spec, &subject("team-a", "x"), None);
    assert_ne!(a, b);
    assert_eq!(b, "team-a_x");
    // A keyring from before the recorded name keeps the name it was created under.
    let legacy = Keyring::default();
    assert_eq!(
        plan::key_group_name(&spec, &subject("team-a", "x"), Some(&legacy)),
        "team-a-x"
    );
    // Once recorded, it is used as recorded.
    let recorded = Keyring {
        key_group_name: Some("chosen".into()),
        ..Keyring::default()
    };
    assert_eq!(
        plan::key_group_name(&spec, &subject("team-a", "x"), Some(&recorded)),
        "chosen"
    );
    // The plan records the name with the first key.
    assert_eq!(
        Case::new().plan().keyring.key_group_name.as_deref(),
        Some("default_media")
    );
}

#[test]
fn isolation_an_account_can_require_namespace_prefixed_key_group_names() {
    let mut case = Case::new();
    case.spec.key_group.name = Some("shared-name".into());
    let mut account = open_account();
    account.key_group_names = keyfront::api::KeyGroupNamePolicy::NamespacePrefixed;
    case.observed.account = Some(account);
    let plan = case.plan();
    assert!(kinds(&plan).is_empty(), "{:?}", kinds(&plan));
    assert!(finding_message(&plan, reasons::KEY_GROUP_NAME_NOT_ALLOWED).contains("\"default_\""));
    case.spec.key_group.name = Some("default_media-v2".into());
    assert!(!has_finding(
        &case.plan(),
        reasons::KEY_GROUP_NAME_NOT_ALLOWED
    ));
    case.spec.key_group.name = None;
    assert!(!has_finding(
        &case.plan(),
        reasons::KEY_GROUP_NAME_NOT_ALLOWED
    ));
}

fn status_of(case: &Case, plan: &Plan) -> keyfront::api::SigningKeyGroupStatus {
    keyfront::reconcile::status::status(&keyfront::reconcile::status::StatusInputs {
        subject: &case.subject,
        spec: &case.spec,
        plan,
        observed: Some(&case.observed),
        error: None,
        previous: None,
        now: case.now,
    })
}

fn condition<'a>(
    status: &'a keyfront::api::SigningKeyGroupStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

#[test]
fn ready_is_not_true_while_a_revoked_key_is_still_trusted() {
    let mut revoked = key(1, KeyState::Retiring, Some("K1"));
    revoked.revoked = true;
    revoked.retired_at = Some(t0());
    let mut case = Case::new()
        .keys(vec![revoked, key(2, KeyState::Active, Some("K2"))])
        .group(&["K2"])
        .signing_with(2)
        .distribution("E1", &[KG], &["K1", "K2"], false);
    case.attached("E1", false);
    case.spec = spec(json!([{"id": "E1", "defaultCacheBehavior": true}]));
    case.observed.public_keys_present.insert("K1".into(), true);
    let plan = case.plan();
    let status = status_of(&case, &plan);
    let ready = condition(&status, reasons::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", reasons::REVOCATION_IN_PROGRESS)
    );
}

#[test]
fn stalled_is_true_while_a_deletion_waits_for_a_person() {
    let mut case = attached_under(json!([{"id": "E1", "defaultCacheBehavior": true}]));
    case.spec = spec(json!([{"id": "E1", "defaultCacheBehavior": true}]));
    case.subject.deleting = true;
    let plan = case.plan();
    assert!(
        has_finding(&plan, reasons::DETACH_WOULD_MAKE_PUBLIC),
        "{:?}",
        plan.findings
    );
    let status = status_of(&case, &plan);
    let stalled = condition(&status, reasons::STALLED);
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", reasons::DETACH_WOULD_MAKE_PUBLIC)
    );
    assert_eq!(condition(&status, reasons::RECONCILING).status, "False");
}

#[test]
fn isolation_a_lost_keyring_of_an_object_named_before_0_2_keeps_its_group_name() {
    // The keyring is gone; the group found (by its legacy name, marked as this object's).
    let mut case = signing_with_key_1();
    case.observed.keyring = None;
    if let KeyGroupState::Owned(g) = &mut case.observed.key_group {
        g.value.config.name = "default-media".into();
    }
    case.observed.listed_public_keys = Some(vec![]);
    let plan = case.plan();
    assert!(
        !kinds(&plan).iter().any(|k| k.starts_with("UpdateKeyGroup")),
        "the group is not renamed: {:?}",
        kinds(&plan)
    );
    assert_eq!(
        plan.keyring.key_group_name.as_deref(),
        Some("default-media")
    );
}

#[test]
fn isolation_activation_waits_for_a_granted_distribution_that_trusts_the_group_from_outside() {
    // The spec lists no distribution; Terraform attached the group to E9, which is granted.
    let mut case = Case::new()
        .keys(vec![
            key(1, KeyState::Active, Some("K1")),
            key(2, KeyState::Published, Some("K2")),
        ])
        .group(&["K1", "K2"])
        .signing_with(1)
        .distribution("E9", &[KG], &["K1"], false);
    case.observed.trusting_distributions = Some(vec!["E9".into()]);
    let plan = case.plan();
    assert!(
        !kinds(&plan).iter().any(|k| k.starts_with("WriteAppSecret")),
        "{:?}",
        kinds(&plan)
    );
    assert!(finding_message(&plan, reasons::WAITING_FOR_PROPAGATION).contains("E9"));
    assert!(
        !kinds(&plan).iter().any(|k| k.starts_with("SetTrust")),
        "keyfront never writes a distribution it did not attach"
    );
    let case = case.distribution("E9", &[KG], &["K1", "K2"], true);
    assert!(kinds(&case.plan()).contains(&"WriteAppSecret(2)".to_owned()));
}

#[test]
fn isolation_a_trusting_distribution_outside_the_grant_is_reported_not_read() {
    let mut case = Case::new()
        .keys(vec![
            key(1, KeyState::Active, Some("K1")),
            key(2, KeyState::Published, Some("K2")),
        ])
        .group(&["K1", "K2"])
        .signing_with(1);
    case.observed.trusting_distributions = Some(vec!["E8OTHER".into()]);
    let plan = case.plan();
    let message = finding_message(&plan, reasons::TRUSTED_OUTSIDE_GRANT);
    assert!(
        message.contains("E8OTHER") && message.contains("403"),
        "{message}"
    );
    let status = status_of(&case, &plan);
    assert_eq!(
        condition(&status, reasons::DISTRIBUTIONS_READY).reason,
        reasons::TRUSTED_OUTSIDE_GRANT
    );
}

#[test]
fn isolation_keys_another_cluster_made_under_this_identity_stop_everything() {
    // Two clusters run with one --cluster-id in one AWS account: the other's keys carry our
    // names and marker, and its install claim.
    let mut case = Case::new().group(&["K9"]);
    case.observed.listed_public_keys = Some(vec![]);
    case.observed.claimed_elsewhere = vec![names::public_key_name(&owner(), 1)];
    let plan = case.plan();
    assert!(kinds(&plan).is_empty(), "{:?}", kinds(&plan));
    let message = finding_message(&plan, reasons::IDENTITY_CLAIMED_ELSEWHERE);
    assert!(message.contains("--cluster-id"), "{message}");
    // Deleting lets the object go, touching none of it (the keyring stays, listed unclaimed).
    case.subject.deleting = true;
    assert_eq!(kinds(&case.plan()), ["RemoveFinalizer"]);
}

#[test]
fn an_external_distribution_is_never_written_and_gates_activation_once_its_owner_attached() {
    let mut case = signing_with_key_1().distribution("E1", &[], &[], true);
    case.spec = spec(json!([{"id": "E1", "defaultCacheBehavior": true, "trust": "External"}]));
    // An attachment keyfront made before the entry said External is handed to the owner.
    case.attached("E1", true);
    let no_writes = |plan: &Plan| {
        assert!(
            !kinds(plan).iter().any(|k| k.starts_with("SetTrust")),
            "{:?}",
            kinds(plan)
        );
    };
    let plan = case.plan();
    no_writes(&plan);
    let waiting = plan
        .findings
        .iter()
        .find(|f| f.reason == reasons::AWAITING_EXTERNAL_ATTACHMENT)
        .expect("says the owner has not attached");
    assert!(waiting.message.contains(KG), "{}", waiting.message);
    assert!(!plan.keyring.attachments.contains_key("E1"));
    assert!(
        plan.wake_at
            .is_some_and(|w| w <= case.now + SignedDuration::from_secs(60))
    );

    // The owner attached: nothing to say, nothing to write.
    let case = case.distribution("E1", &[KG], &["K1"], true);
    let plan = case.plan();
    no_writes(&plan);
    assert!(!has_finding(&plan, reasons::AWAITING_EXTERNAL_ATTACHMENT));

    // A rotation waits until the owner's distribution verifies the new key.
    let mut rotating = Case::new()
        .keys(vec![
            key(1, KeyState::Active, Some("K1")),
            key(2, KeyState::Published, Some("K2")),
        ])
        .group(&["K1", "K2"])
        .signing_with(1)
        .distribution("E1", &[KG], &["K1"], true);
    rotating.spec = case.spec.clone();
    let plan = rotating.plan();
    no_writes(&plan);
    assert!(has_finding(&plan, reasons::WAITING_FOR_PROPAGATION));
    let rotating = rotating.distribution("E1", &[KG], &["K1", "K2"], true);
    assert_eq!(
        kinds(&rotating.plan()),
        ["SaveKeyring", "WriteAppSecret(2)"]
    );

    // Deleting: the owner detaches; until then the group stays, and keyfront says so.
    let mut deleting = case.clone_case();
    deleting.subject.deleting = true;
    let plan = deleting.plan();
    no_writes(&plan);
    let held = plan
        .findings
        .iter()
        .find(|f| f.reason == reasons::DELETING)
        .expect("says why the group stays");
    assert!(held.message.contains("E1"), "{}", held.message);
    let deleting = deleting.distribution("E1", &[], &[], true);
    assert_eq!(kinds(&deleting.plan()), ["DeleteKeyGroup(kg-1)"]);
}

/// Every reason keyfront sets, from the reasons table, so that a new one is covered without
/// anyone remembering to list it.
fn every_reason() -> Vec<&'static str> {
    let found: Vec<&'static str> = reasons::ALL.iter().map(|r| r.name).collect();
    assert!(found.len() > 60, "only {} reasons", found.len());
    found
}

/// What the status says about itself must hold together, as kstatus, Argo CD and a person
/// read it: asserts the invariants and names the case that broke one.
///
/// - one condition of each type, True or False;
/// - never Ready and Stalled, never Stalled and Reconciling;
/// - not Ready means in progress (Reconciling) or waiting for a person (Stalled);
/// - Rotating=True means Reconciling=True (a rotation under way is work left to do);
/// - a readiness condition False for something keyfront is at (a deployment, a re-attach)
///   means Reconciling=True. Warnings that leave signing working (KeyGroupFull,
///   TrustedOutsideGrant) may sit beside Reconciling=False: kstatus reads them as Current.
fn assert_consistent(status: &keyfront::api::SigningKeyGroupStatus, case: &str) {
    let of = |t: &str| {
        let found: Vec<_> = status.conditions.iter().filter(|c| c.type_ == t).collect();
        assert_eq!(found.len(), 1, "{case}: one {t} condition");
        assert!(
            ["True", "False"].contains(&found[0].status.as_str()),
            "{case}: {t}"
        );
        found[0].status == "True"
    };
    // A readiness condition False for something keyfront is doing or will do by itself.
    let at_work = |t: &str| {
        !of(t)
            && status.conditions.iter().any(|c| {
                c.type_ == t
                    && (reasons::is_waiting(&c.reason) || c.reason == reasons::TRUST_REMOVED)
            })
    };
    let ready = of(reasons::READY);
    let rotating = of(reasons::ROTATING);
    let reconciling = of(reasons::RECONCILING);
    let stalled = of(reasons::STALLED);
    let show = || format!("{case}: {:#?}", status.conditions);
    assert!(!(ready && stalled), "Ready and Stalled at once: {}", show());
    assert!(
        !(stalled && reconciling),
        "Stalled and Reconciling at once: {}",
        show()
    );
    assert!(
        ready || reconciling || stalled,
        "not Ready, yet neither in progress nor stalled: {}",
        show()
    );
    assert!(
        !rotating || reconciling,
        "Rotating but nothing left to do: {}",
        show()
    );
    assert!(
        reconciling
            || stalled
            || !(at_work(reasons::KEY_GROUP_READY) || at_work(reasons::DISTRIBUTIONS_READY)),
        "a condition says keyfront is at work, yet nothing left to do: {}",
        show()
    );
}

#[test]
fn conditions_never_contradict_each_other_whatever_the_reason() {
    let case = signing_with_key_1();
    let steady = case.plan();
    assert_consistent(&status_of(&case, &steady), "steady state");
    let mut checked = 0;
    for reason in every_reason() {
        for condition in [
            reasons::READY,
            reasons::KEY_GROUP_READY,
            reasons::DISTRIBUTIONS_READY,
            reasons::ROTATING,
        ] {
            for blocking in [true, false] {
                let mut plan = steady.clone();
                plan.findings.push(plan::Finding {
                    condition,
                    reason,
                    message: format!("{reason} happened"),
                    blocking,
                });
                let what = format!("{condition}/{reason} (blocking: {blocking})");
                assert_consistent(&status_of(&case, &plan), &what);
                checked += 1;
            }
        }
    }
    println!("{checked} cases consistent");
}
