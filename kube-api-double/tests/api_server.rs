//! What the double promises, shown through `kube::Client`: each behaviour runs against the
//! double and against a real control plane (kube-apiserver, etcd and kube-controller-manager from
//! `tests/control-plane/build.sh`, one for the whole run; each behaviour has its own namespace),
//! or against any cluster that `KEYFRONT_TEST_KUBECONFIG` names.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail loudly by design

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_api_double::ApiDouble;
use serde_json::{Value, json};

const CRD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crds/signingkeygroups.keyfront.dev.yaml"
);

struct Cluster {
    client: Client,
    namespace: String,
    /// Kept alive for the in-process double.
    _double: Option<ApiDouble>,
}

impl Cluster {
    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
    fn skgs(&self) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("keyfront.dev", "v1alpha1", "SigningKeyGroup");
        Api::namespaced_with(
            self.client.clone(),
            &self.namespace,
            &ApiResource::from_gvk_with_plural(&gvk, "signingkeygroups"),
        )
    }
}

async fn prepare(client: Client, double: Option<ApiDouble>) -> Cluster {
    let crd: Value =
        serde_yaml::from_str(&std::fs::read_to_string(CRD).expect("CRD file")).expect("CRD yaml");
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    crds.patch(
        "signingkeygroups.keyfront.dev",
        &PatchParams::apply("kube-api-double-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("install CRD");
    // A real API server serves a new CRD's resource only once it is Established (a moment
    // later); the double serves it at once. Waiting for it to list works on both.
    let gvk = GroupVersionKind::gvk("keyfront.dev", "v1alpha1", "SigningKeyGroup");
    let skgs: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&gvk, "signingkeygroups"),
    );
    let started = std::time::Instant::now();
    while skgs.list(&ListParams::default().limit(1)).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the CRD is not served after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let namespace = format!("double-test-{:08x}", rand::random::<u32>());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}})).expect("ns"),
        )
        .await
        .expect("create namespace");
    Cluster {
        client,
        namespace,
        _double: double,
    }
}

async fn on_double() -> Cluster {
    let double = ApiDouble::with_settings(Duration::from_millis(100), 50);
    prepare(double.client(), Some(double)).await
}

async fn on_real_cluster() -> Cluster {
    let client = match std::env::var_os("KEYFRONT_TEST_KUBECONFIG") {
        Some(kubeconfig) => test_cluster::client_for(std::path::Path::new(&kubeconfig)).await,
        None => test_cluster::ControlPlane::shared().client().await,
    };
    prepare(client, None).await
}

impl Cluster {
    /// Deletes the test's namespace, first releasing any finalizer a failed test left on its
    /// objects (else a real cluster keeps the namespace Terminating).
    async fn clean_up(client: Client, namespace: String) {
        let cluster = Cluster {
            client,
            namespace,
            _double: None,
        };
        if let Ok(list) = cluster.skgs().list(&ListParams::default()).await {
            for object in list.items {
                let name = object.metadata.name.unwrap_or_default();
                let release = json!({"metadata": {"finalizers": null}});
                let _ = cluster
                    .skgs()
                    .patch(&name, &PatchParams::default(), &Patch::Merge(release))
                    .await;
            }
        }
        let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
        let _ = namespaces
            .delete(&cluster.namespace, &DeleteParams::default())
            .await;
    }
}

/// Runs a behaviour, then removes its namespace whether it passed or not.
async fn run<F: Future<Output = ()>>(cluster: Cluster, behaviour: fn(Cluster) -> F) {
    use futures::FutureExt as _;
    let (client, namespace) = (cluster.client.clone(), cluster.namespace.clone());
    let outcome = std::panic::AssertUnwindSafe(behaviour(cluster))
        .catch_unwind()
        .await;
    Cluster::clean_up(client, namespace).await;
    if let Err(failure) = outcome {
        std::panic::resume_unwind(failure);
    }
}

macro_rules! behaviour {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn on_double() {
                super::run(super::on_double().await, super::$name).await;
            }
            #[tokio::test]
            async fn on_real_cluster() {
                super::run(super::on_real_cluster().await, super::$name).await;
            }
        }
    };
}

/// A behaviour only the double can show on demand, with the reason in the call.
macro_rules! behaviour_on_double_only {
    ($name:ident, $why:literal) => {
        mod $name {
            #[doc = $why]
            #[tokio::test]
            async fn on_double() {
                super::run(super::on_double().await, super::$name).await;
            }
        }
    };
}

fn secret(name: &str, labels: Value) -> Secret {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "stringData": {"k": "v"}}),
    )
    .expect("secret")
}

fn skg(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "keyfront.dev/v1alpha1", "kind": "SigningKeyGroup", "metadata": {"name": name}, "spec": spec})).expect("skg")
}

fn api_code(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.message),
        other => panic!("expected an API error, got {other}"),
    }
}

behaviour!(get_and_list_filter_by_label_and_field_selectors);
async fn get_and_list_filter_by_label_and_field_selectors(c: Cluster) {
    let secrets = c.secrets();
    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        secrets
            .create(
                &PostParams::default(),
                &secret(name, json!({"tier": tier, "app": "shop"})),
            )
            .await
            .expect("create");
    }
    let names = |list: kube::api::ObjectList<Secret>| {
        list.items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            secrets
                .list(&ListParams::default().labels("tier=web"))
                .await
                .expect("list")
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            secrets
                .list(&ListParams::default().labels("app=shop,tier notin (web)"))
                .await
                .expect("list")
        ),
        ["c"]
    );
    assert_eq!(
        names(
            secrets
                .list(&ListParams::default().fields("metadata.name=b"))
                .await
                .expect("list")
        ),
        ["b"]
    );
    assert_eq!(
        secrets
            .get("c")
            .await
            .expect("get")
            .metadata
            .labels
            .and_then(|l| l.get("tier").cloned())
            .as_deref(),
        Some("db")
    );
    let (code, _) = api_code(secrets.get("missing").await.expect_err("404"));
    assert_eq!(code, 404);
}

behaviour!(secret_string_data_is_stored_as_data);
async fn secret_string_data_is_stored_as_data(c: Cluster) {
    let created = c
        .secrets()
        .create(&PostParams::default(), &secret("s", json!({})))
        .await
        .expect("create");
    assert!(created.string_data.is_none());
    let data = created.data.expect("data");
    assert_eq!(data.get("k").map(|v| v.0.as_slice()), Some(b"v".as_slice()));
}

behaviour!(lists_page_with_limit_and_continue);
async fn lists_page_with_limit_and_continue(c: Cluster) {
    let secrets = c.secrets();
    for i in 0..5 {
        secrets
            .create(
                &PostParams::default(),
                &secret(&format!("s{i}"), json!({"page": "yes"})),
            )
            .await
            .expect("create");
    }
    let mut seen = Vec::new();
    let mut params = ListParams::default().labels("page=yes").limit(2);
    loop {
        let page = secrets.list(&params).await.expect("page");
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().filter_map(|s| s.metadata.name));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(seen, ["s0", "s1", "s2", "s3", "s4"]);
}

behaviour!(create_conflicts_and_stale_replaces_are_refused);
async fn create_conflicts_and_stale_replaces_are_refused(c: Cluster) {
    let secrets = c.secrets();
    let created = secrets
        .create(&PostParams::default(), &secret("dup", json!({})))
        .await
        .expect("create");
    assert_eq!(
        api_code(
            secrets
                .create(&PostParams::default(), &secret("dup", json!({})))
                .await
                .expect_err("exists")
        )
        .0,
        409
    );
    let mut fresh = created.clone();
    fresh.metadata.labels = Some([("v".to_string(), "2".to_string())].into());
    let replaced = secrets
        .replace("dup", &PostParams::default(), &fresh)
        .await
        .expect("replace at current version");
    assert_ne!(
        replaced.metadata.resource_version,
        created.metadata.resource_version
    );
    let (code, message) = api_code(
        secrets
            .replace("dup", &PostParams::default(), &fresh)
            .await
            .expect_err("stale"),
    );
    assert_eq!(code, 409, "{message}");
    assert!(message.contains("modified"), "{message}");
}

behaviour!(merge_and_json_patches_apply);
async fn merge_and_json_patches_apply(c: Cluster) {
    let secrets = c.secrets();
    secrets
        .create(&PostParams::default(), &secret("p", json!({"a": "1"})))
        .await
        .expect("create");
    let merged = secrets
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"b": "2", "a": null}}})),
        )
        .await
        .expect("merge");
    assert_eq!(
        merged.metadata.labels,
        Some([("b".to_string(), "2".to_string())].into())
    );
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{"op": "add", "path": "/metadata/labels/c", "value": "3"}]))
            .expect("ops");
    let patched = secrets
        .patch("p", &PatchParams::default(), &Patch::<()>::Json(ops))
        .await
        .expect("json patch");
    assert_eq!(patched.metadata.labels.map(|l| l.len()), Some(2));
}

behaviour!(server_side_apply_tracks_field_managers);
async fn server_side_apply_tracks_field_managers(c: Cluster) {
    let skgs = c.skgs();
    let alice = PatchParams::apply("alice");
    let first = json!({"apiVersion": "keyfront.dev/v1alpha1", "kind": "SigningKeyGroup", "metadata": {"name": "ssa", "labels": {"team": "a"}}, "spec": {"rotation": {"interval": "100h"}}});
    let created = skgs
        .patch("ssa", &alice, &Patch::Apply(&first))
        .await
        .expect("apply creates");
    assert_eq!(created.data["spec"]["rotation"]["interval"], "100h");
    assert_eq!(
        created.data["spec"]["rotation"]["maxSignedUrlLifetime"], "24h",
        "defaults filled"
    );
    let managers: Vec<String> = created
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"alice".to_string()), "{managers:?}");

    let bob = json!({"apiVersion": "keyfront.dev/v1alpha1", "kind": "SigningKeyGroup", "metadata": {"name": "ssa"}, "spec": {"rotation": {"interval": "200h"}}});
    let (code, message) = api_code(
        skgs.patch("ssa", &PatchParams::apply("bob"), &Patch::Apply(&bob))
            .await
            .expect_err("conflict"),
    );
    assert_eq!(code, 409);
    assert!(
        message.contains("alice") && message.contains("interval"),
        "{message}"
    );
    let forced = skgs
        .patch(
            "ssa",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&bob),
        )
        .await
        .expect("force");
    assert_eq!(forced.data["spec"]["rotation"]["interval"], "200h");

    // alice stops applying her label: it goes, because nobody else owns it.
    let without_label = json!({"apiVersion": "keyfront.dev/v1alpha1", "kind": "SigningKeyGroup", "metadata": {"name": "ssa"}, "spec": {}});
    let after = skgs
        .patch("ssa", &alice, &Patch::Apply(&without_label))
        .await
        .expect("apply");
    assert!(
        !after
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("team")
    );
    assert_eq!(
        after.data["spec"]["rotation"]["interval"], "200h",
        "bob's field stays"
    );
}

behaviour!(status_subresource_is_written_apart_from_spec);
async fn status_subresource_is_written_apart_from_spec(c: Cluster) {
    let skgs = c.skgs();
    let created = skgs
        .create(&PostParams::default(), &skg("st", json!({})))
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    let status = json!({"status": {"keyGroupId": "kg-1", "observedGeneration": 1}});
    let with_status = skgs
        .patch_status("st", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
    assert_eq!(with_status.data["status"]["keyGroupId"], "kg-1");
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );
    let sneaky =
        json!({"spec": {"rotation": {"interval": "99h"}}, "status": {"keyGroupId": "forged"}});
    let updated = skgs
        .patch("st", &PatchParams::default(), &Patch::Merge(&sneaky))
        .await
        .expect("spec");
    assert_eq!(
        updated.metadata.generation,
        Some(2),
        "spec writes bump generation"
    );
    assert_eq!(
        updated.data["status"]["keyGroupId"], "kg-1",
        "status in a main-resource write is ignored"
    );
    let unchanged = skgs
        .patch(
            "st",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"rotation": {"interval": "99h"}}})),
        )
        .await
        .expect("no-op");
    assert_eq!(
        unchanged.metadata.resource_version, updated.metadata.resource_version,
        "a no-op write changes nothing"
    );
}

behaviour!(finalizers_hold_deletion_until_removed);
async fn finalizers_hold_deletion_until_removed(c: Cluster) {
    let skgs = c.skgs();
    let mut object = skg("fin", json!({}));
    object.metadata.finalizers = Some(vec!["keyfront.dev/cleanup".into()]);
    skgs.create(&PostParams::default(), &object)
        .await
        .expect("create");
    skgs.delete("fin", &DeleteParams::default())
        .await
        .expect("delete accepted");
    let terminating = skgs.get("fin").await.expect("still there");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    let (code, message) = api_code(
        skgs.patch(
            "fin",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"finalizers": ["keyfront.dev/cleanup", "other/new"]}}),
            ),
        )
        .await
        .expect_err("no new finalizers"),
    );
    assert_eq!(code, 422, "{message}");
    skgs.patch(
        "fin",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    assert_eq!(api_code(skgs.get("fin").await.expect_err("gone")).0, 404);
}

behaviour!(namespace_deletion_removes_content_and_waits_for_finalizers);
async fn namespace_deletion_removes_content_and_waits_for_finalizers(c: Cluster) {
    let secrets = c.secrets();
    secrets
        .create(&PostParams::default(), &secret("app", json!({})))
        .await
        .expect("secret");
    let mut object = skg("held", json!({}));
    object.metadata.finalizers = Some(vec!["keyfront.dev/cleanup".into()]);
    c.skgs()
        .create(&PostParams::default(), &object)
        .await
        .expect("create");
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    namespaces
        .delete(&c.namespace, &DeleteParams::default())
        .await
        .expect("delete namespace");
    let terminating = namespaces.get(&c.namespace).await.expect("still there");
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    // Nothing new in it, not even under a new name.
    let (code, message) = api_code(
        secrets
            .create(&PostParams::default(), &secret("late", json!({})))
            .await
            .expect_err("refused"),
    );
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("because it is being terminated"),
        "{message}"
    );
    // The namespace controller deletes what is in it (a real one takes a few seconds); an object
    // with a finalizer stays, marked, until its controller lets go.
    eventually("the Secret is deleted", async || {
        secrets.get_opt("app").await.expect("get").is_none()
    })
    .await;
    eventually("the SigningKeyGroup is marked for deletion", async || {
        c.skgs()
            .get_opt("held")
            .await
            .expect("get")
            .is_some_and(|o| o.metadata.deletion_timestamp.is_some())
    })
    .await;
    assert!(
        namespaces
            .get_opt(&c.namespace)
            .await
            .expect("get")
            .is_some()
    );
    c.skgs()
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("release");
    eventually("the namespace is gone", async || {
        namespaces
            .get_opt(&c.namespace)
            .await
            .expect("get")
            .is_none()
    })
    .await;
}

/// Polls `condition` for up to a minute (a real cluster's controllers act asynchronously).
async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    for _ in 0..600 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within a minute");
}

behaviour!(owner_references_garbage_collect_dependents);
async fn owner_references_garbage_collect_dependents(c: Cluster) {
    let skgs = c.skgs();
    let secrets = c.secrets();
    for (owner, dependent) in [("owner-bg", "dep-bg"), ("owner-orphan", "dep-orphan")] {
        let created = skgs
            .create(&PostParams::default(), &skg(owner, json!({})))
            .await
            .expect("owner");
        let mut s = secret(dependent, json!({}));
        s.metadata.owner_references = Some(vec![serde_json::from_value(json!({"apiVersion": "keyfront.dev/v1alpha1", "kind": "SigningKeyGroup", "name": owner, "uid": created.metadata.uid, "controller": true})).expect("ref")]);
        secrets
            .create(&PostParams::default(), &s)
            .await
            .expect("dependent");
    }
    skgs.delete("owner-bg", &DeleteParams::background())
        .await
        .expect("delete");
    skgs.delete("owner-orphan", &DeleteParams::orphan())
        .await
        .expect("delete");
    // A real garbage collector notices a newly installed CRD's objects on its next discovery
    // pass (every 30 s), so this may take that long there; the double collects at once.
    let mut collected = false;
    for _ in 0..600 {
        if secrets.get_opt("dep-bg").await.expect("get").is_none() {
            collected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        collected,
        "dependent of a background-deleted owner is collected"
    );
    // Orphaning is the collector's work too: it strips the reference, then lets the owner go.
    eventually(
        "the orphaned dependent loses its owner reference",
        async || {
            secrets
                .get("dep-orphan")
                .await
                .expect("orphaned dependent stays")
                .metadata
                .owner_references
                .unwrap_or_default()
                .is_empty()
        },
    )
    .await;
}

behaviour!(invalid_custom_resources_are_rejected_naming_the_field);
async fn invalid_custom_resources_are_rejected_naming_the_field(c: Cluster) {
    let skgs = c.skgs();
    let (code, message) = api_code(
        skgs.create(
            &PostParams::default(),
            &skg("bad", json!({"key": {"algorithm": "DSA"}})),
        )
        .await
        .expect_err("enum"),
    );
    assert_eq!(code, 422);
    assert!(message.contains("spec.key.algorithm"), "{message}");
    let (code, message) = api_code(
        skgs.create(
            &PostParams::default(),
            &skg(
                "bad",
                json!({"rotation": {"interval": "1h", "maxSignedUrlLifetime": "5h"}}),
            ),
        )
        .await
        .expect_err("cel"),
    );
    assert_eq!(code, 422);
    assert!(message.contains("spec.rotation"), "{message}");
}

/// Validation ratcheting: an object stored under an older, looser schema can still have its
/// metadata and other fields changed; only values the write changes are held to the schema.
/// (Double only: a real cluster cannot be made to store an invalid object on demand.)
#[tokio::test]
async fn updates_are_not_refused_for_invalid_values_they_leave_unchanged() {
    let c = on_double().await;
    let double = c._double.clone().expect("double");
    let skgs = c.skgs();
    skgs.create(&PostParams::default(), &skg("old", json!({})))
        .await
        .expect("create");
    double
        .edit_unchecked(
            "keyfront.dev/v1alpha1",
            "SigningKeyGroup",
            Some(&c.namespace),
            "old",
            |o| {
                o["spec"]["rotation"]["interval"] = json!("soon");
            },
        )
        .expect("edit");
    skgs.patch(
        "old",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"team": "media"}}})),
    )
    .await
    .expect("a metadata change is accepted");
    let (code, message) = api_code(
        skgs.patch(
            "old",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"rotation": {"interval": "later"}}})),
        )
        .await
        .expect_err("a new invalid value is refused"),
    );
    assert_eq!(code, 422);
    assert!(message.contains("spec.rotation.interval"), "{message}");
}

behaviour!(watches_resume_from_a_resource_version_with_bookmarks);
async fn watches_resume_from_a_resource_version_with_bookmarks(c: Cluster) {
    let secrets = c.secrets();
    let start = secrets
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    secrets
        .create(&PostParams::default(), &secret("w", json!({})))
        .await
        .expect("create");
    secrets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
        )
        .await
        .expect("patch");
    secrets
        .delete("w", &DeleteParams::default())
        .await
        .expect("delete");
    let stream = secrets
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default()
            }
            .timeout(10),
            &start,
        )
        .await
        .expect("watch");
    let mut stream = Box::pin(stream);
    let mut kinds = Vec::new();
    while let Some(event) = stream.try_next().await.expect("event") {
        match event {
            WatchEvent::Added(_) => kinds.push("ADDED"),
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            WatchEvent::Deleted(_) => kinds.push("DELETED"),
            WatchEvent::Bookmark(_) => {
                kinds.push("BOOKMARK");
                break;
            }
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]);
}

behaviour_on_double_only!(
    watches_from_a_compacted_version_get_410_gone,
    "A real API server answers 410 only once etcd compacted the version (every 5 minutes by \
     default) and its watch cache dropped it, which a test cannot bring about in seconds; the \
     double compacts after a set number of writes."
);
async fn watches_from_a_compacted_version_get_410_gone(c: Cluster) {
    let secrets = c.secrets();
    secrets
        .create(&PostParams::default(), &secret("g", json!({})))
        .await
        .expect("create");
    for i in 0..60 {
        secrets
            .patch(
                "g",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"i": i.to_string()}}})),
            )
            .await
            .expect("patch");
    }
    let stream = secrets
        .watch(&WatchParams::default(), "1")
        .await
        .expect("watch opens");
    let first = Box::pin(stream)
        .try_next()
        .await
        .expect("event")
        .expect("one event");
    match first {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

behaviour!(kube_runtime_watcher_sees_changes);
async fn kube_runtime_watcher_sees_changes(c: Cluster) {
    let secrets = c.secrets();
    secrets
        .create(
            &PostParams::default(),
            &secret("before", json!({"watched": "yes"})),
        )
        .await
        .expect("create");
    let config = watcher::Config::default().labels("watched=yes");
    let mut events = Box::pin(watcher(secrets.clone(), config).applied_objects());
    let first = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("in time")
        .expect("item")
        .expect("ok");
    assert_eq!(first.metadata.name.as_deref(), Some("before"));
    secrets
        .create(
            &PostParams::default(),
            &secret("after", json!({"watched": "yes"})),
        )
        .await
        .expect("create");
    let second = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("in time")
        .expect("item")
        .expect("ok");
    assert_eq!(second.metadata.name.as_deref(), Some("after"));
}

/// Injected faults reach only what comes over HTTP: with the conflict rate at 1 every update
/// and patch from another process gets `409 Conflict` (creates do not), while the in-process
/// client still writes; dropping watches ends an open watch stream. (Double only.)
#[tokio::test]
async fn injected_conflicts_and_dropped_watches_hit_remote_clients_only() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let double = ApiDouble::new();
    let addr = double
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .expect("serve");
    let remote = Client::try_from(kube::Config::new(format!("http://{addr}").parse().unwrap()))
        .expect("client");
    let over_http: Api<Secret> = Api::namespaced(remote, "default");
    let in_process: Api<Secret> = Api::namespaced(double.client(), "default");
    let label = |v: &str| Patch::Merge(json!({"metadata": {"labels": {"x": v}}}));

    double.set_write_conflict_rate(1.0);
    over_http
        .create(&PostParams::default(), &secret("c", json!({})))
        .await
        .expect("creates are not faulted");
    let (code, message) = api_code(
        over_http
            .patch("c", &PatchParams::default(), &label("1"))
            .await
            .expect_err("a remote patch conflicts"),
    );
    assert_eq!(code, 409);
    assert!(
        message.contains("the object has been modified"),
        "{message}"
    );
    in_process
        .patch("c", &PatchParams::default(), &label("2"))
        .await
        .expect("the in-process client is not faulted");
    double.set_write_conflict_rate(0.0);
    over_http
        .patch("c", &PatchParams::default(), &label("3"))
        .await
        .expect("no conflicts at rate 0");
    assert_eq!(double.faults_injected().0, 1);

    let stream = over_http
        .watch(&WatchParams::default().timeout(60), "0")
        .await
        .expect("watch");
    let mut stream = Box::pin(stream);
    assert!(matches!(
        stream.try_next().await.expect("event"),
        Some(WatchEvent::Added(_))
    ));
    assert_eq!(double.drop_watches(), 1);
    let end = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .expect("the stream ends at once");
    assert!(end.map_or(true, |e| e.is_none()), "stream still open");
    assert_eq!(double.faults_injected().1, 1);
}

behaviour!(events_are_one_store_under_both_apis);
async fn events_are_one_store_under_both_apis(c: Cluster) {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    let written: Api<Event> = Api::namespaced(c.client.clone(), &c.namespace);
    let event: Event = serde_json::from_value(json!({
        "metadata": {"name": "media.1", "namespace": c.namespace},
        "regarding": {"apiVersion": "keyfront.dev/v1alpha1", "kind": "SigningKeyGroup", "name": "media", "namespace": c.namespace},
        "note": "Secret media-cloudfront-key now holds public key K1",
        "reason": "KeyActivated",
        "type": "Normal",
        "action": "WriteAppSecret",
        "eventTime": "2026-12-06T10:00:00.000000Z",
        "reportingController": "keyfront",
        "reportingInstance": "keyfront-0",
    }))
    .expect("event");
    written
        .create(&PostParams::default(), &event)
        .await
        .expect("create an events.k8s.io Event");
    // What `kubectl describe` lists: core Events about the object, by field selector.
    let core: Api<CoreEvent> = Api::namespaced(c.client.clone(), &c.namespace);
    let listed = core
        .list(
            &ListParams::default()
                .fields("involvedObject.name=media,involvedObject.kind=SigningKeyGroup"),
        )
        .await
        .expect("list core Events");
    let found: Vec<_> = listed
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("KeyActivated"))
        .collect();
    assert_eq!(found.len(), 1, "{:?}", listed.items);
    assert_eq!(found[0].message, event.note);
    assert_eq!(found[0].involved_object.name.as_deref(), Some("media"));
    assert_eq!(found[0].reporting_component.as_deref(), Some("keyfront"));
    let other = core
        .list(&ListParams::default().fields("involvedObject.name=someone-else"))
        .await
        .expect("list core Events");
    assert!(
        other.items.is_empty(),
        "the field selector applies: {:?}",
        other.items
    );
}

behaviour!(a_single_object_table_has_the_printer_columns);
async fn a_single_object_table_has_the_printer_columns(c: Cluster) {
    c.skgs()
        .create(&PostParams::default(), &skg("tabled", json!({})))
        .await
        .expect("create");
    // What `kubectl get skg NAME` asks for.
    let request = http::Request::get(format!(
        "/apis/keyfront.dev/v1alpha1/namespaces/{}/signingkeygroups/tabled",
        c.namespace
    ))
    .header(
        "Accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )
    .body(Vec::new())
    .expect("request");
    let table: Value =
        serde_json::from_str(&c.client.request_text(request).await.expect("table")).expect("json");
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    for column in [
        "Name",
        "Ready",
        "Key Group",
        "Active Key",
        "Next Rotation",
        "Age",
    ] {
        assert!(
            columns.contains(&column),
            "{column} missing from {columns:?}"
        );
    }
    assert_eq!(table["rows"].as_array().expect("rows").len(), 1);
    assert_eq!(table["rows"][0]["cells"][0], "tabled");
}
