//! The CRD as the API server enforces it: the committed YAML matches `keyfront crd`, every
//! example is accepted with defaults filled, and invalid specs are rejected with a message that
//! names the field. Admission runs in the Kubernetes API double (schema, defaults, CEL).

use std::path::Path;

use keyfront::api::{CloudFrontAccount, SigningKeyGroup};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, CustomResourceExt as _};
use kube_api_double::ApiDouble;
use serde_json::{Value, json};

fn double_with_crd() -> ApiDouble {
    let double = ApiDouble::new();
    for (file, _) in keyfront::crds().expect("CRDs serialize") {
        double
            .create_from_yaml(&Path::new("crds").join(&file))
            .unwrap_or_else(|e| panic!("the committed crds/{file} installs: {e}"));
    }
    double
}

fn object(spec: Value) -> Value {
    json!({"apiVersion": "keyfront.dev/v1alpha1", "kind": "SigningKeyGroup", "metadata": {"name": "media", "namespace": "default"}, "spec": spec})
}

#[test]
fn committed_crds_match_generated_crds() {
    let generated = keyfront::crds().expect("CRDs serialize");
    assert_eq!(generated.len(), 2);
    for (file, yaml) in generated {
        let committed = std::fs::read_to_string(Path::new("crds").join(&file))
            .unwrap_or_else(|_| panic!("crds/ holds {file}"));
        assert!(
            committed == yaml,
            "crds/{file} is stale: run `cargo run -- crd --out-dir crds`"
        );
    }
}

#[test]
fn crd_has_status_subresource_short_name_and_printer_columns() {
    let crd = serde_json::to_value(SigningKeyGroup::crd()).expect("json");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["skg"]));
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        ["Ready", "Key Group", "Active Key", "Next Rotation", "Age"]
    );
}

#[test]
fn every_example_manifest_is_accepted() {
    let double = double_with_crd();
    {
        let namespace = "streaming";
        double
            .create(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            )
            .expect("namespace");
    }
    let mut seen = 0;
    for entry in std::fs::read_dir("examples").expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let created = double
                .create_from_yaml(&path)
                .unwrap_or_else(|e| panic!("{} rejected: {e}", path.display()));
            assert!(!created.is_empty());
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected example manifests, found {seen}");
    // The example accounts are alternatives (two are named `default`): one cluster each.
    let mut accounts = 0;
    for entry in std::fs::read_dir("examples/accounts").expect("examples/accounts/") {
        let path = entry.expect("entry").path();
        double_with_crd()
            .create_from_yaml(&path)
            .unwrap_or_else(|e| panic!("{} rejected: {e}", path.display()));
        accounts += 1;
    }
    assert!(accounts >= 3, "expected example accounts, found {accounts}");
}

#[test]
fn defaults_are_filled_on_admission() {
    let double = double_with_crd();
    let created = double
        .create(object(json!({})))
        .expect("empty spec is valid");
    let spec = &created["spec"];
    assert_eq!(spec["key"]["algorithm"], "RSA2048");
    assert_eq!(
        spec["rotation"],
        json!({"interval": "720h", "maxSignedUrlLifetime": "24h", "minPropagationWait": "0s", "secretRefreshAllowance": "2m"})
    );
    // No schema default: keyfront decides (Delete, or Retain for an adopted key group).
    assert!(spec.get("deletionPolicy").is_none(), "{spec}");
    assert_eq!(spec["distributions"], json!([]));
}

/// (spec, field the message must name)
fn invalid_specs() -> Vec<(Value, &'static str)> {
    let dist = |extra: Value| {
        let mut d = json!({"id": "E2EXAMPLE", "defaultCacheBehavior": true});
        if let (Some(d), Some(e)) = (d.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        d
    };
    vec![
        (
            json!({"keyGroup": {"name": "has space"}}),
            "spec.keyGroup.name",
        ),
        (
            json!({"keyGroup": {"name": "a".repeat(129)}}),
            "spec.keyGroup.name",
        ),
        (json!({"keyGroup": {"name": ""}}), "spec.keyGroup.name"),
        (
            json!({"keyGroup": {"comment": "c".repeat(81)}}),
            "spec.keyGroup.comment",
        ),
        (
            json!({"key": {"algorithm": "RSA4096"}}),
            "spec.key.algorithm",
        ),
        (
            json!({"rotation": {"interval": "30d"}}),
            "spec.rotation.interval",
        ),
        (
            json!({"rotation": {"interval": "0s"}}),
            "spec.rotation.interval",
        ),
        (
            json!({"rotation": {"maxSignedUrlLifetime": "0s"}}),
            "spec.rotation.maxSignedUrlLifetime",
        ),
        (
            json!({"rotation": {"maxSignedUrlLifetime": "-1h"}}),
            "spec.rotation.maxSignedUrlLifetime",
        ),
        (
            json!({"rotation": {"secretRefreshAllowance": "soon"}}),
            "spec.rotation.secretRefreshAllowance",
        ),
        (
            json!({"rotation": {"minPropagationWait": "5 minutes"}}),
            "spec.rotation.minPropagationWait",
        ),
        (
            json!({"rotation": {"interval": "1h", "maxSignedUrlLifetime": "4h"}}),
            "spec.rotation",
        ),
        (
            json!({"rotation": {"interval": "10m", "maxSignedUrlLifetime": "20m", "secretRefreshAllowance": "9m", "minPropagationWait": "2m"}}),
            "spec.rotation",
        ),
        (
            json!({"keyGroup": {"adopt": true}}),
            "spec.keyGroup.name: Invalid value",
        ),
        (
            json!({"keyGroup": {"name": "legacy", "adopt": true, "retireAdoptedKeysAfter": "soon"}}),
            "spec.keyGroup.retireAdoptedKeysAfter",
        ),
        (
            json!({"secret": {"name": "Not_A_DNS_Name"}}),
            "spec.secret.name",
        ),
        (
            json!({"secret": {"labels": {"app.kubernetes.io/managed-by": "me"}}}),
            "spec.secret.labels",
        ),
        (
            json!({"distributions": [{"id": "E2EXAMPLE"}]}),
            "spec.distributions[0]",
        ),
        (
            json!({"distributions": [{"id": "e2example", "defaultCacheBehavior": true}]}),
            "spec.distributions[0].id",
        ),
        (
            json!({"distributions": [{"defaultCacheBehavior": true}]}),
            "spec.distributions[0].id",
        ),
        (
            json!({"distributions": [dist(json!({})), dist(json!({}))]}),
            "spec.distributions[1]: Duplicate value",
        ),
        (
            json!({"distributions": [dist(json!({"pathPatterns": ["/a/*", "/a/*"]}))]}),
            "spec.distributions[0].pathPatterns[1]: Duplicate value",
        ),
        (
            json!({"distributions": [dist(json!({"pathPatterns": [""]}))]}),
            "spec.distributions[0].pathPatterns[0]",
        ),
        (
            json!({"distributions": [dist(json!({"pathPatterns": (0..26).map(|i| format!("/p{i}/*")).collect::<Vec<_>>()}))]}),
            "spec.distributions[0].pathPatterns",
        ),
        (
            json!({"distributions": (0..101).map(|i| json!({"id": format!("E{i}"), "defaultCacheBehavior": true})).collect::<Vec<_>>()}),
            "spec.distributions",
        ),
        (json!({"deletionPolicy": "Orphan"}), "spec.deletionPolicy"),
        (
            json!({"distributions": [dist(json!({"allowPublicOnDetach": "yes"}))]}),
            "spec.distributions[0].allowPublicOnDetach",
        ),
    ]
}

#[test]
fn invalid_specs_are_rejected_naming_the_field() {
    let double = double_with_crd();
    let cases = invalid_specs();
    assert!(cases.len() >= 20);
    for (spec, field) in cases {
        let err = double
            .create(object(spec.clone()))
            .expect_err(&format!("accepted invalid spec {spec}"));
        let message = err.to_string();
        assert!(
            message.contains(field),
            "rejection of {spec} does not name {field}: {message}"
        );
    }
}

#[test]
fn names_that_cannot_default_a_key_group_name_are_rejected() {
    let double = double_with_crd();
    let mut dotted = object(json!({}));
    dotted["metadata"]["name"] = json!("media.v2");
    let message = double
        .create(dotted.clone())
        .expect_err("dotted name needs an explicit key group name")
        .to_string();
    assert!(message.contains("spec.keyGroup.name"), "{message}");
    dotted["spec"]["keyGroup"] = json!({"name": "media-v2"});
    double
        .create(dotted)
        .expect("explicit key group name makes it valid");
}

#[tokio::test]
async fn key_group_name_algorithm_and_secret_name_are_immutable() {
    let double = double_with_crd();
    let api: Api<SigningKeyGroup> = Api::namespaced(double.client(), "default");
    let initial: SigningKeyGroup = serde_json::from_value(object(
        json!({"keyGroup": {"name": "media"}, "secret": {"name": "media-key"}}),
    ))
    .expect("typed");
    api.create(&PostParams::default(), &initial)
        .await
        .expect("create");
    for (patch, field) in [
        (
            json!({"spec": {"keyGroup": {"name": "renamed"}}}),
            "spec.keyGroup",
        ),
        (
            json!({"spec": {"key": {"algorithm": "ECDSAP256"}}}),
            "spec.key.algorithm",
        ),
        (
            json!({"spec": {"secret": {"name": "other"}}}),
            "spec.secret",
        ),
    ] {
        let err = api
            .patch("media", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect_err(&format!("{patch} must be refused"));
        let message = err.to_string();
        assert!(
            message.contains(field) && message.contains("immutable"),
            "{message}"
        );
    }
    let ok = json!({"spec": {"rotation": {"interval": "1000h"}}});
    let updated = api
        .patch("media", &PatchParams::default(), &Patch::Merge(&ok))
        .await
        .expect("mutable field changes");
    assert_eq!(updated.spec.rotation.interval, "1000h");
    assert_eq!(updated.metadata.generation, Some(2));
}

#[tokio::test]
async fn pinning_a_defaulted_name_to_the_value_in_effect_is_not_a_change() {
    let double = double_with_crd();
    let api: Api<SigningKeyGroup> = Api::namespaced(double.client(), "default");
    let initial: SigningKeyGroup = serde_json::from_value(object(json!({}))).expect("typed");
    api.create(&PostParams::default(), &initial)
        .await
        .expect("create");
    // keyfront records the names in effect.
    let status =
        json!({"status": {"keyGroupName": "default_media", "secretName": "media-cloudfront-key"}});
    api.patch_status("media", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("status");
    for (patch, field) in [
        (
            json!({"spec": {"keyGroup": {"name": "default-media"}}}),
            "spec.keyGroup",
        ),
        (
            json!({"spec": {"secret": {"name": "other"}}}),
            "spec.secret",
        ),
    ] {
        let err = api
            .patch("media", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect_err(&format!("{patch} must be refused"));
        let message = err.to_string();
        assert!(
            message.contains(field) && message.contains("status."),
            "{message}"
        );
    }
    let pinned = json!({"spec": {"keyGroup": {"name": "default_media"}, "secret": {"name": "media-cloudfront-key"}}});
    let updated = api
        .patch("media", &PatchParams::default(), &Patch::Merge(&pinned))
        .await
        .expect("pinning the names in effect is accepted");
    assert_eq!(
        updated.spec.key_group.name.as_deref(),
        Some("default_media")
    );
}

#[test]
fn the_account_crd_is_cluster_scoped_with_short_name_cfa() {
    let crd = serde_json::to_value(CloudFrontAccount::crd()).expect("json");
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["cfa"]));
    assert_eq!(crd["spec"]["scope"], "Cluster");
    assert!(crd["spec"]["versions"][0]["subresources"]["status"].is_object());
}

fn account(spec: Value) -> Value {
    json!({"apiVersion": "keyfront.dev/v1alpha1", "kind": "CloudFrontAccount", "metadata": {"name": "media"}, "spec": spec})
}

#[test]
fn an_empty_account_admits_nothing_by_default() {
    let double = double_with_crd();
    let created = double
        .create(account(json!({})))
        .expect("empty spec is valid");
    assert_eq!(
        created["spec"]["allowedNamespaces"],
        json!({"from": "Names"})
    );
    assert_eq!(
        created["spec"]["quotas"],
        json!({"publicKeys": 10, "keyGroups": 10})
    );
    let object = double.create(object(json!({}))).expect("SigningKeyGroup");
    assert_eq!(object["spec"]["accountRef"], json!({"name": "default"}));
}

#[test]
fn invalid_accounts_are_rejected_naming_the_field() {
    let double = double_with_crd();
    for (spec, field) in [
        (
            json!({"assumeRole": {"roleArn": "role/keyfront"}}),
            "spec.assumeRole.roleArn",
        ),
        (
            json!({"assumeRole": {"roleArn": "arn:aws:iam::123456789012:role/k", "externalId": "has space"}}),
            "spec.assumeRole.externalId",
        ),
        (
            json!({"allowedNamespaces": {"from": "Selector"}}),
            "spec.allowedNamespaces.selector",
        ),
        (
            json!({"allowedNamespaces": {"from": "All", "names": ["a"]}}),
            "spec.allowedNamespaces.names",
        ),
        (
            json!({"allowedNamespaces": {"from": "Some"}}),
            "spec.allowedNamespaces.from",
        ),
        (
            json!({"distributions": [{"id": "e1"}]}),
            "spec.distributions[0].id",
        ),
        (
            json!({"quotas": {"publicKeys": 0}}),
            "spec.quotas.publicKeys",
        ),
    ] {
        let err = double
            .create(account(spec.clone()))
            .expect_err(&format!("accepted invalid account {spec}"));
        let message = err.to_string();
        assert!(
            message.contains(field),
            "rejection of {spec} does not name {field}: {message}"
        );
    }
}

#[tokio::test]
async fn the_account_reference_is_immutable() {
    let double = double_with_crd();
    let api: Api<SigningKeyGroup> = Api::namespaced(double.client(), "default");
    let initial: SigningKeyGroup =
        serde_json::from_value(object(json!({"accountRef": {"name": "team-a"}}))).expect("typed");
    api.create(&PostParams::default(), &initial)
        .await
        .expect("create");
    let err = api
        .patch(
            "media",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"accountRef": {"name": "team-b"}}})),
        )
        .await
        .expect_err("moving to another account must be refused");
    let message = err.to_string();
    assert!(
        message.contains("spec.accountRef") && message.contains("immutable"),
        "{message}"
    );
}

#[test]
fn algorithms_print_as_the_spec_spells_them() {
    for algorithm in [
        keyfront::api::KeyAlgorithm::Rsa2048,
        keyfront::api::KeyAlgorithm::EcdsaP256,
    ] {
        assert_eq!(
            json!(algorithm.to_string()),
            serde_json::to_value(algorithm).expect("json"),
            "Events and messages use the spelling the spec takes"
        );
    }
}

/// What a real API server answers a manifest with a day or a negative duration: the CRD's
/// own words, not only the pattern's regex.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_api_server_names_days_and_negative_durations_in_the_users_words() {
    let cluster = crate::support::Cluster::real().await;
    cluster.install_crds().await;
    let objects: kube::Api<SigningKeyGroup> = kube::Api::namespaced(cluster.client(), "default");
    for (field, value, expected) in [
        (
            "interval",
            "30d",
            "days are not supported: write the duration in hours, e.g. 720h for 30d",
        ),
        ("maxSignedUrlLifetime", "-5m", "must not be negative"),
    ] {
        let object: SigningKeyGroup = serde_json::from_value(json!({
            "apiVersion": "keyfront.dev/v1alpha1",
            "kind": "SigningKeyGroup",
            "metadata": {"name": "durations"},
            "spec": {"rotation": {field: value}},
        }))
        .unwrap();
        let error = objects
            .create(&Default::default(), &object)
            .await
            .expect_err(&format!("{field}: {value} was accepted"));
        let said = error.to_string();
        assert!(said.contains(expected), "{field}: {value}: {said}");
        assert!(said.contains(&format!("spec.rotation.{field}")), "{said}");
    }
}
