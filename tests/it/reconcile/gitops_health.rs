//! Argo CD's view: the `health.lua` scripts under `docs/argocd/resource_customizations/`, run
//! by a real Lua 5.1 interpreter (Argo CD's gopher-lua is 5.1) on the objects keyfront writes
//! as it goes: Healthy when settled, Progressing for a first key, a rotation in flight, a
//! deployment and an unobserved generation, Degraded for each reason a person must fix.
//!
//! The same objects are the scripts' `testdata/`, laid out for upstream with `health_test.yaml`:
//! `KEYFRONT_WRITE_ARGO_TESTDATA=1 cargo test --test it reconcile::gitops` rewrites them from these
//! runs; `committed_argo_testdata_gives_the_recorded_health` checks the committed files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use keyfront::emulator::faults::{FaultKind, ScriptedFault};
use keyfront::reconcile::names;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::reconcile::harness::{World, hourly, manifest};

fn customizations(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/argocd/resource_customizations/keyfront.dev")
        .join(kind)
}

/// A JSON value as a Lua table constructor.
fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!(
            "{{{}}}",
            items.iter().map(lua_literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(k, v)| format!("[{k:?}] = {}", lua_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs `kind`'s health.lua on `object` with lua5.1; returns (status, message).
fn health(kind: &str, object: &Value) -> (String, String) {
    let script = std::fs::read_to_string(customizations(kind).join("health.lua")).unwrap();
    let program = format!(
        "obj = {}\nlocal hs = (function()\n{script}\nend)()\nio.write(hs.status, \"\\n\", hs.message or \"\", \"\\n\")\n",
        lua_literal(object)
    );
    let mut child = Command::new("lua5.1")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lua5.1 is installed (bash .ci/run installs it)");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(program.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines = text.lines();
    (
        lines.next().unwrap().to_owned(),
        lines.next().unwrap_or_default().to_owned(),
    )
}

/// An object as Argo CD would see it, without the server-populated fields that only make the
/// testdata noisy.
fn without_server_fields(mut object: Value) -> Value {
    if let Some(meta) = object["metadata"].as_object_mut() {
        for field in [
            "managedFields",
            "uid",
            "resourceVersion",
            "creationTimestamp",
        ] {
            meta.remove(field);
        }
    }
    object
}

async fn snapshot(world: &World, name: &str) -> Value {
    without_server_fields(serde_json::to_value(world.object(name).await.unwrap()).unwrap())
}

/// Records (case, object, expected status) for the testdata and checks the script says so.
struct Recorder {
    kind: &'static str,
    cases: Vec<(String, Value, String, String)>,
}

impl Recorder {
    fn check(&mut self, case: &str, object: Value, expected: &str) {
        let (status, message) = health(self.kind, &object);
        assert_eq!(status, expected, "{case}: {message}\n{object:#}");
        self.cases.push((case.into(), object, status, message));
    }

    /// kstatus (cli-utils, what Flux reads) on the same objects agrees with Argo CD's verdict
    /// wherever both define one: Healthy is Current, Progressing is InProgress, Degraded is
    /// Failed. Prints the table.
    ///
    /// One known exception: an object keyfront has not yet written a status for. cli-utils'
    /// generic rules call an object with no status Current (there is nothing to contradict
    /// it), while the health script says Progressing. It lasts until the first reconcile,
    /// which writes `Reconciling=True`; the README's GitOps table says so.
    fn agree_with_kstatus(&self) {
        let objects: Vec<Value> = self.cases.iter().map(|(_, o, _, _)| o.clone()).collect();
        let verdicts = crate::support::kstatus(&objects);
        let mut table = String::from("case | Argo CD health.lua | kstatus (cli-utils)\n");
        let mut disagree = Vec::new();
        for ((case, _, argo, _), (kstatus, _)) in self.cases.iter().zip(&verdicts) {
            table += &format!("{case} | {argo} | {kstatus}\n");
            let expected = match argo.as_str() {
                "Healthy" => "Current",
                "Progressing" => "InProgress",
                "Degraded" => "Failed",
                _ => continue,
            };
            let known = case == "progressing_no_status_yet" && kstatus == "Current";
            if kstatus != expected && !known {
                disagree.push(case.clone());
            }
        }
        println!("{table}");
        assert!(
            disagree.is_empty(),
            "Argo CD and kstatus disagree on {disagree:?}:\n{table}"
        );
    }

    fn write_if_asked(&self) {
        if std::env::var_os("KEYFRONT_WRITE_ARGO_TESTDATA").is_none() {
            return;
        }
        let dir = customizations(self.kind);
        let mut tests = Vec::new();
        for (case, object, status, message) in &self.cases {
            let file = format!("testdata/{case}.yaml");
            std::fs::write(dir.join(&file), serde_yaml::to_string(object).unwrap()).unwrap();
            tests.push(
                json!({"healthStatus": {"status": status, "message": message}, "inputPath": file}),
            );
        }
        std::fs::write(
            dir.join("health_test.yaml"),
            serde_yaml::to_string(&json!({"tests": tests})).unwrap(),
        )
        .unwrap();
    }
}

#[tokio::test]
async fn signing_key_group_health_follows_what_keyfront_writes() {
    let mut r = Recorder {
        kind: "SigningKeyGroup",
        cases: Vec::new(),
    };
    let mut world = World::new();
    world.distribution("E1", &[]);
    let attach = json!([{"id": "E1", "defaultCacheBehavior": true}]);
    world
        .apply(manifest("media", hourly(), attach.clone()))
        .await;
    r.check(
        "progressing_no_status_yet",
        snapshot(&world, "media").await,
        "Progressing",
    );
    world.until_ready("media").await;
    r.check(
        "progressing_first_key_deploying",
        snapshot(&world, "media").await,
        "Progressing",
    );
    world.settle("media").await;
    r.check("healthy", snapshot(&world, "media").await, "Healthy");

    world.annotate("media", names::ROTATE_ANNOTATION, "1").await;
    world.reconcile("media").await.unwrap().unwrap();
    r.check(
        "progressing_rotation_in_flight",
        snapshot(&world, "media").await,
        "Progressing",
    );
    world.settle("media").await;

    let mut changed = snapshot(&world, "media").await;
    changed["metadata"]["generation"] =
        json!(changed["metadata"]["generation"].as_i64().unwrap() + 1);
    r.check(
        "progressing_generation_not_observed",
        changed,
        "Progressing",
    );

    // Degraded: each reason a person must fix.
    world
        .secrets()
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "taken-cloudfront-key"}, "stringData": {"app": "mine"}})).unwrap())
        .await
        .unwrap();
    world.apply(manifest("taken", hourly(), json!([]))).await;
    world.reconcile("taken").await.unwrap().unwrap();
    r.check(
        "degraded_secret_conflict",
        snapshot(&world, "taken").await,
        "Degraded",
    );

    let mut elsewhere = manifest("elsewhere", hourly(), json!([]));
    elsewhere["spec"]["accountRef"] = json!({"name": "nobody"});
    world.apply(elsewhere).await;
    world.reconcile("elsewhere").await.unwrap().unwrap();
    r.check(
        "degraded_account_not_found",
        snapshot(&world, "elsewhere").await,
        "Degraded",
    );

    world
        .emulator
        .create_test_distribution_with_id("E2", &[])
        .unwrap();
    let accounts: kube::Api<keyfront::api::CloudFrontAccount> = kube::Api::all(world.admin());
    accounts
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"distributions": [{"id": "E1", "defaultCacheBehavior": true, "pathPatterns": ["*"], "allowPublicOnDetach": true}]}})),
        )
        .await
        .unwrap();
    world
        .apply(manifest(
            "greedy",
            hourly(),
            json!([{"id": "E2", "defaultCacheBehavior": true}]),
        ))
        .await;
    world.until_ready("media").await;
    for _ in 0..3 {
        world.reconcile("greedy").await.unwrap().unwrap();
    }
    r.check(
        "degraded_distribution_not_allowed",
        snapshot(&world, "greedy").await,
        "Degraded",
    );

    world.emulator.script_fault(ScriptedFault {
        operation: None,
        fault: FaultKind::AccessDenied,
        count: 100,
        latency_ms: 0,
    });
    world.apply(manifest("denied", hourly(), json!([]))).await;
    let _ = world.reconcile("denied").await;
    r.check(
        "progressing_access_denied_once",
        snapshot(&world, "denied").await,
        "Progressing",
    );
    let _ = world.reconcile("denied").await;
    r.check(
        "degraded_access_denied_again",
        snapshot(&world, "denied").await,
        "Degraded",
    );
    world.emulator.clear_faults();
    r.agree_with_kstatus();
    r.write_if_asked();
}

#[tokio::test]
async fn cloudfront_account_health_follows_its_credential_check() {
    let mut r = Recorder {
        kind: "CloudFrontAccount",
        cases: Vec::new(),
    };
    let world = World::new();
    let accounts: kube::Api<keyfront::api::CloudFrontAccount> = kube::Api::all(world.admin());
    let account =
        || async { serde_json::to_value(accounts.get("default").await.unwrap()).unwrap() };
    r.check(
        "progressing_not_checked_yet",
        without_server_fields(account().await),
        "Progressing",
    );
    let ctx = world.context();
    keyfront::reconcile::account::reconcile_account(
        std::sync::Arc::new(accounts.get("default").await.unwrap()),
        ctx.clone(),
        |_| {},
    )
    .await
    .unwrap();
    r.check("healthy", without_server_fields(account().await), "Healthy");
    world.emulator.script_fault(ScriptedFault {
        operation: Some("ListKeyGroups".into()),
        fault: FaultKind::AccessDenied,
        count: 1,
        latency_ms: 0,
    });
    let _ = keyfront::reconcile::account::reconcile_account(
        std::sync::Arc::new(accounts.get("default").await.unwrap()),
        ctx,
        |_| {},
    )
    .await;
    r.check(
        "degraded_access_denied",
        without_server_fields(account().await),
        "Degraded",
    );
    r.write_if_asked();
}

#[test]
fn committed_argo_testdata_gives_the_recorded_health() {
    let mut checked = 0;
    for kind in ["SigningKeyGroup", "CloudFrontAccount"] {
        let dir = customizations(kind);
        let tests: Value =
            serde_yaml::from_str(&std::fs::read_to_string(dir.join("health_test.yaml")).unwrap())
                .unwrap();
        let mut statuses = BTreeMap::new();
        for test in tests["tests"].as_array().unwrap() {
            let object: Value = serde_yaml::from_str(
                &std::fs::read_to_string(dir.join(test["inputPath"].as_str().unwrap())).unwrap(),
            )
            .unwrap();
            let (status, message) = health(kind, &object);
            assert_eq!(
                status, test["healthStatus"]["status"],
                "{kind} {}",
                test["inputPath"]
            );
            assert_eq!(
                message, test["healthStatus"]["message"],
                "{kind} {}",
                test["inputPath"]
            );
            *statuses.entry(status).or_insert(0) += 1;
            checked += 1;
        }
        for status in ["Healthy", "Progressing", "Degraded"] {
            assert!(
                statuses.contains_key(status),
                "{kind}: no {status} case in health_test.yaml"
            );
        }
    }
    assert!(checked >= 12, "{checked}");
}
