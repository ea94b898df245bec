//! The status keyfront writes, as GitOps tools read it: each Ready reason maps to the kstatus
//! result Flux and the cli-utils applier compute — Current, InProgress, Failed or Terminating.
//! The verdict is kstatus's own: the objects go through sigs.k8s.io/cli-utils'
//! `kstatus/status.Compute` (`tests/control-plane/kstatus`, built by
//! `tests/control-plane/build.sh`), not through a re-statement of its rules.

use jiff::Timestamp;
use keyfront::api::{KeyAlgorithm, KeyState, SigningKeyGroupSpec, SigningKeyGroupStatus};
use keyfront::keys::PrivateKeyPem;
use keyfront::reconcile::keyring::{KeyRecord, Keyring};
use keyfront::reconcile::observed::Subject;
use keyfront::reconcile::plan::{Finding, Plan, Step};
use keyfront::reconcile::reasons;
use keyfront::reconcile::status::{StatusInputs, status};

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Kstatus {
    Current,
    InProgress,
    Failed,
    Terminating,
}

impl Kstatus {
    fn from_cli_utils(verdict: &str) -> Kstatus {
        match verdict {
            "Current" => Kstatus::Current,
            "InProgress" => Kstatus::InProgress,
            "Failed" => Kstatus::Failed,
            "Terminating" => Kstatus::Terminating,
            other => panic!("kstatus said {other}, which no SigningKeyGroup should give"),
        }
    }
}

/// The object as the API server would hold it (generation 2), with `status`.
fn object(deleting: bool, status: &SigningKeyGroupStatus) -> serde_json::Value {
    let mut metadata =
        serde_json::json!({"name": "media", "namespace": "default", "generation": 2});
    if deleting {
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        metadata["finalizers"] = serde_json::json!(["keyfront.dev/cleanup"]);
    }
    serde_json::json!({
        "apiVersion": "keyfront.dev/v1alpha1",
        "kind": "SigningKeyGroup",
        "metadata": metadata,
        "spec": {},
        "status": status,
    })
}

/// kstatus's verdicts on `objects`, in order.
fn kstatus(objects: &[serde_json::Value]) -> Vec<Kstatus> {
    crate::support::kstatus(objects)
        .iter()
        .map(|(verdict, _)| Kstatus::from_cli_utils(verdict))
        .collect()
}

fn subject(deleting: bool) -> Subject {
    Subject {
        uid: "u".into(),
        owner: "o".into(),
        namespace: "default".into(),
        name: "media".into(),
        generation: Some(2),
        deleting,
        has_finalizer: true,
        rotate_request: None,
        revoke_request: None,
    }
}

fn plan(active: bool) -> Plan {
    let keys = if active {
        vec![KeyRecord {
            serial: 1,
            algorithm: KeyAlgorithm::EcdsaP256,
            state: KeyState::Active,
            public_key_id: Some("K1".into()),
            public_key_pem: String::new(),
            fingerprint: "f".into(),
            created_at: Timestamp::UNIX_EPOCH,
            live_at: None,
            published_at: None,
            activated_at: Some(Timestamp::UNIX_EPOCH),
            rotates_early_by: None,
            takes_over_at: None,
            retired_at: None,
            revoked: false,
            private_key_lost: false,
            private_key: Some(PrivateKeyPem::new(String::new())),
        }]
    } else {
        Vec::new()
    };
    Plan {
        keyring: Keyring {
            next_serial: 2,
            key_group_id: Some("KG".into()),
            keys,
            ..Keyring::default()
        },
        steps: Vec::new(),
        findings: Vec::new(),
        notices: Vec::new(),
        desired_items: vec!["K1".into()],
        wake_at: None,
        awaits_deployment: Vec::new(),
        rotation: None,
        settings: None,
    }
}

fn finding(condition: &'static str, reason: &'static str, blocking: bool) -> Finding {
    Finding {
        condition,
        reason,
        message: format!("{reason} happened"),
        blocking,
    }
}

struct Case {
    what: &'static str,
    plan: Plan,
    error: Option<&'static str>,
    previous_ready: Option<&'static str>,
    deleting: bool,
    expect: Kstatus,
}

fn case(what: &'static str, plan: Plan, expect: Kstatus) -> Case {
    Case {
        what,
        plan,
        error: None,
        previous_ready: None,
        deleting: false,
        expect,
    }
}

fn with_finding(mut plan: Plan, finding: Finding) -> Plan {
    plan.findings.push(finding);
    plan
}

fn compute(c: &Case) -> SigningKeyGroupStatus {
    let previous = c.previous_ready.map(|reason| SigningKeyGroupStatus {
        conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: Some(2),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                Timestamp::UNIX_EPOCH,
            ),
        }],
        ..SigningKeyGroupStatus::default()
    });
    let spec: SigningKeyGroupSpec = serde_json::from_value(serde_json::json!({})).unwrap();
    let subject = subject(c.deleting);
    status(&StatusInputs {
        subject: &subject,
        spec: &spec,
        plan: &c.plan,
        observed: None,
        error: c.error.map(|e| (e, format!("{e} happened"))),
        previous: previous.as_ref(),
        now: Timestamp::UNIX_EPOCH,
    })
}

#[test]
fn every_reason_gives_the_kstatus_result_gitops_tools_must_see() {
    use Kstatus::*;
    let blocking = |condition, reason| with_finding(plan(true), finding(condition, reason, true));
    let waiting = |condition, reason| with_finding(plan(true), finding(condition, reason, false));
    let mut first_key = plan(false);
    first_key.steps.push(Step::SaveKeyring { stage: None });
    let error = |what, category, previous| Case {
        what,
        plan: plan(true),
        error: Some(category),
        previous_ready: previous,
        deleting: false,
        expect: if what.contains("stalled") {
            Failed
        } else {
            InProgress
        },
    };
    let mut cases = vec![
        case("signing, nothing to do", plan(true), Current),
        case("first key on its way", first_key, InProgress),
        case(
            "rotation under way",
            waiting(reasons::ROTATING, reasons::ROTATION_IN_PROGRESS),
            InProgress,
        ),
        case(
            "waiting for the edge",
            waiting(reasons::ROTATING, reasons::WAITING_FOR_PROPAGATION),
            InProgress,
        ),
        case(
            "attaching",
            waiting(reasons::DISTRIBUTIONS_READY, reasons::PROGRESSING),
            InProgress,
        ),
        case(
            "deploying",
            waiting(reasons::DISTRIBUTIONS_READY, reasons::DEPLOYING),
            InProgress,
        ),
        case(
            "waiting for the distribution's owner to attach the group",
            waiting(
                reasons::DISTRIBUTIONS_READY,
                reasons::AWAITING_EXTERNAL_ATTACHMENT,
            ),
            InProgress,
        ),
        case(
            "next key deployed, waiting for its scheduled time",
            waiting(reasons::ROTATING, reasons::NEXT_KEY_READY),
            Current,
        ),
        case(
            "key group full: waits for a key to retire",
            waiting(reasons::ROTATING, reasons::KEY_GROUP_FULL),
            Current,
        ),
        case(
            "a revoked key still trusted somewhere",
            waiting(reasons::READY, reasons::REVOCATION_IN_PROGRESS),
            InProgress,
        ),
        case(
            "a distribution outside the grant trusts the group: reported, signing works",
            waiting(reasons::DISTRIBUTIONS_READY, reasons::TRUSTED_OUTSIDE_GRANT),
            Current,
        ),
        error("throttled: retried", "CloudFrontThrottled", None),
        error(
            "CloudFront unavailable: retried",
            "CloudFrontUnavailable",
            None,
        ),
        error("Kubernetes unavailable: retried", "KubernetesError", None),
        error(
            "access denied once: retried",
            reasons::CLOUDFRONT_ACCESS_DENIED,
            None,
        ),
        error(
            "access denied again: stalled",
            reasons::CLOUDFRONT_ACCESS_DENIED,
            Some(reasons::CLOUDFRONT_ACCESS_DENIED),
        ),
        error("quota: stalled", reasons::CLOUDFRONT_QUOTA_EXCEEDED, None),
        error(
            "keyring unreadable: stalled",
            reasons::KEYRING_INVALID,
            None,
        ),
    ];
    for (condition, reason) in [
        (reasons::READY, reasons::INVALID_SPEC),
        (reasons::READY, reasons::SECRET_CONFLICT),
        (reasons::KEY_GROUP_READY, reasons::KEY_GROUP_NAME_TAKEN),
        (reasons::READY, reasons::KEY_GROUP_NOT_FOUND),
        (reasons::READY, reasons::ADOPTION_NOT_ALLOWED),
        (reasons::READY, reasons::ADOPTED_TRUST_NOT_DECLARED),
        (reasons::READY, reasons::KEY_GROUP_FULL),
        (reasons::READY, reasons::ACCOUNT_NOT_FOUND),
        (reasons::READY, reasons::NAMESPACE_NOT_ALLOWED),
        (reasons::READY, reasons::KEYRING_OF_ANOTHER_NAMESPACE),
        (reasons::READY, reasons::IDENTITY_CLAIMED_ELSEWHERE),
        (reasons::READY, reasons::KEY_GROUP_NAME_NOT_ALLOWED),
        (reasons::ROTATING, reasons::ROTATION_FROZEN),
        (
            reasons::DISTRIBUTIONS_READY,
            reasons::DISTRIBUTION_NOT_ALLOWED,
        ),
        (reasons::DISTRIBUTIONS_READY, reasons::BEHAVIOR_NOT_ALLOWED),
        (
            reasons::DISTRIBUTIONS_READY,
            reasons::DISTRIBUTION_NOT_FOUND,
        ),
        (reasons::DISTRIBUTIONS_READY, reasons::BEHAVIOR_NOT_FOUND),
        (reasons::DISTRIBUTIONS_READY, reasons::TOO_MANY_KEY_GROUPS),
        (
            reasons::DISTRIBUTIONS_READY,
            reasons::DETACH_WOULD_MAKE_PUBLIC,
        ),
    ] {
        cases.push(case(reason, blocking(condition, reason), Failed));
    }
    cases.push(Case {
        deleting: true,
        ..case("deleting", plan(true), Terminating)
    });
    let written: Vec<SigningKeyGroupStatus> = cases.iter().map(compute).collect();
    // A status written for an older generation is InProgress, whatever it says.
    let mut stale = written[0].clone();
    stale.observed_generation = Some(1);
    let mut objects: Vec<serde_json::Value> = cases
        .iter()
        .zip(&written)
        .map(|(c, status)| object(c.deleting, status))
        .collect();
    objects.push(object(false, &stale));
    let verdicts = kstatus(&objects);
    let mut table = String::from("case | kstatus (cli-utils) | expected\n");
    for ((c, status), verdict) in cases.iter().zip(&written).zip(&verdicts) {
        table += &format!("{} | {verdict:?} | {:?}\n", c.what, c.expect);
        let get = |t: &str| status.conditions.iter().find(|x| x.type_ == t).unwrap();
        let (stalled, reconciling) = (get("Stalled"), get("Reconciling"));
        assert!(
            !(stalled.status == "True" && reconciling.status == "True"),
            "{}: Stalled and Reconciling at once",
            c.what
        );
        if stalled.status == "True" {
            assert_eq!(
                stalled.reason,
                get("Ready").reason,
                "{}: Stalled names Ready's reason",
                c.what
            );
        }
    }
    println!("{table}");
    let mismatches: Vec<_> = cases
        .iter()
        .zip(&verdicts)
        .filter(|(c, verdict)| c.expect != **verdict)
        .map(|(c, verdict)| {
            format!(
                "{}: kstatus says {verdict:?}, expected {:?}",
                c.what, c.expect
            )
        })
        .collect();
    assert!(mismatches.is_empty(), "{mismatches:#?}\n{table}");
    assert_eq!(
        verdicts.last(),
        Some(&Kstatus::InProgress),
        "a stale status"
    );
}

#[test]
fn conditions_never_contradict_each_other() {
    // The key group name is taken: keyfront never looked at the distributions, so it cannot
    // say they are attached.
    let mut blocked = plan(false);
    blocked.keyring.key_group_id = None;
    blocked.findings.push(finding(
        reasons::KEY_GROUP_READY,
        reasons::KEY_GROUP_NAME_TAKEN,
        true,
    ));
    let spec: SigningKeyGroupSpec = serde_json::from_value(serde_json::json!({
        "distributions": [{"id": "E1", "defaultCacheBehavior": true}]
    }))
    .unwrap();
    let subject = subject(false);
    let written = status(&StatusInputs {
        subject: &subject,
        spec: &spec,
        plan: &blocked,
        observed: None,
        error: None,
        previous: None,
        now: Timestamp::UNIX_EPOCH,
    });
    let get = |t: &str| written.conditions.iter().find(|c| c.type_ == t).unwrap();
    assert_eq!(get("Ready").status, "False");
    assert_eq!(get("Ready").reason, reasons::KEY_GROUP_NAME_TAKEN);
    assert_eq!(
        get("DistributionsReady").status,
        "False",
        "{:?}",
        get("DistributionsReady")
    );
}
