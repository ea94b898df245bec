//! The chart's rendered manifests against the Kubernetes OpenAPI of the release the tests run,
//! with kubeconform (built from its Go module by `tests/control-plane/build.sh`). These machines
//! cannot download kubeconform's published schemas, so the schemas come from the real API
//! server's `/openapi/v2`, with keyfront's and the Prometheus Operator's CRDs installed, turned
//! into the standalone strict JSON schemas kubeconform reads (what yannh's openapi2jsonschema
//! does: every `$ref` resolvable inside the file, no property a schema does not name,
//! int-or-string and quantities as string or number).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use super::chart::{helm_template, prometheus_operator_crds};
use crate::support::Cluster;

/// The OpenAPI v2 document of the cluster, as JSON.
async fn openapi_v2(cluster: &Cluster) -> Value {
    // The API server publishes a new CRD's schema a moment after the CRD is established: wait
    // for every custom kind the manifests use.
    let wanted = [
        "dev.keyfront.v1alpha1.SigningKeyGroup",
        "dev.keyfront.v1alpha1.CloudFrontAccount",
        "com.coreos.monitoring.v1.ServiceMonitor",
        "com.coreos.monitoring.v1.PrometheusRule",
    ];
    let mut openapi = Value::Null;
    crate::support::wait_for(
        "the CRDs' schemas in /openapi/v2",
        std::time::Duration::from_secs(60),
        async || {
            let request = http::Request::get("/openapi/v2")
                .header("Accept", "application/json")
                .body(Vec::new())
                .unwrap();
            let text = cluster.client().request_text(request).await.unwrap();
            openapi = serde_json::from_str(&text).unwrap();
            wanted
                .iter()
                .all(|d| openapi["definitions"].get(d).is_some())
        },
    )
    .await;
    openapi
}

/// Makes every object schema strict and widens the two string formats YAML writes as numbers.
fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("format") == Some(&json!("int-or-string")) {
                map.remove("type");
                map.remove("format");
                map.insert(
                    "oneOf".into(),
                    json!([{"type": "string"}, {"type": "integer"}]),
                );
            }
            let open = map.contains_key("additionalProperties")
                || map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            if map.contains_key("properties") && !open {
                map.insert("additionalProperties".into(), json!(false));
            }
            for value in map.values_mut() {
                strict(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

/// Writes `<dir>/<group>/<version>/<kind>.json` (kubeconform's `{{ .Group }}`,
/// `{{ .ResourceAPIVersion }}`, `{{ .ResourceKind }}`; the core group is its version) for every
/// kind in `kinds` (`apiVersion`, `kind`).
fn write_schemas(openapi: &Value, kinds: &BTreeSet<(String, String)>, dir: &Path) -> usize {
    let mut definitions = openapi["definitions"].clone();
    strict(&mut definitions);
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] =
        json!({"oneOf": [{"type": "string"}, {"type": "number"}]});
    let mut written = 0;
    for (name, definition) in definitions.as_object().unwrap() {
        let Some(gvks) = definition["x-kubernetes-group-version-kind"].as_array() else {
            continue;
        };
        for gvk in gvks {
            let (group, version, kind) = (
                gvk["group"].as_str().unwrap(),
                gvk["version"].as_str().unwrap(),
                gvk["kind"].as_str().unwrap(),
            );
            let api_version = if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            };
            if !kinds.contains(&(api_version.clone(), kind.to_owned())) {
                continue;
            }
            let first = api_version.split('/').next().unwrap();
            let path = dir
                .join(first)
                .join(version)
                .join(format!("{}.json", kind.to_lowercase()));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let schema = json!({
                "$ref": format!("#/definitions/{name}"),
                "definitions": definitions,
            });
            std::fs::write(&path, serde_json::to_vec(&schema).unwrap()).unwrap();
            written += 1;
        }
    }
    written
}

/// kubeconform, strict, on `manifests` with the schemas [`write_schemas`] wrote under `schemas`.
fn kubeconform(manifests: &Path, schemas: &Path, extra: &[&str]) -> std::process::Output {
    let location = format!(
        "{}/{{{{ .Group }}}}/{{{{ .ResourceAPIVersion }}}}/{{{{ .ResourceKind }}}}.json",
        schemas.display()
    );
    std::process::Command::new(test_cluster::tool("kubeconform"))
        .args(["-strict", "-schema-location", &location])
        .args(extra)
        .arg(manifests)
        .output()
        .unwrap()
}

/// Every manifest of the three variants (default values, `watchNamespaces`, metrics on) is
/// valid against the schemas of this Kubernetes release, strictly: an unknown field anywhere
/// (a misplaced key in a template, say) fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifests_pass_kubeconform_against_the_release_openapi() {
    let cluster = Cluster::real().await;
    prometheus_operator_crds(&cluster).await;
    cluster.install_crds().await;
    let openapi = openapi_v2(&cluster).await;
    let dir = tempfile::tempdir().unwrap();
    let metrics_on = json!({"metrics": {"serviceMonitor": {"enabled": true}, "prometheusRule": {"enabled": true}}});
    let mut sources = Vec::new();
    for values in [
        json!({}),
        json!({"watchNamespaces": ["team-a", "team-b"]}),
        metrics_on,
        super::chart::every_knob(),
    ] {
        sources.push((values.to_string(), helm_template(&values).await));
    }
    // The app example a team copies: its Deployment and SigningKeyGroup.
    let app = [
        "examples/app/deployment.yaml",
        "examples/app/signing-key-group.yaml",
    ]
    .map(|f| std::fs::read_to_string(crate::support::repo(f)).unwrap())
    .join("\n---\n");
    sources.push(("examples/app".to_owned(), app));
    for (values, rendered) in sources {
        let mut kinds = BTreeSet::new();
        for document in serde_yaml::Deserializer::from_str(&rendered) {
            let object: Value = serde::Deserialize::deserialize(document).unwrap();
            if let (Some(api_version), Some(kind)) =
                (object["apiVersion"].as_str(), object["kind"].as_str())
            {
                kinds.insert((api_version.to_owned(), kind.to_owned()));
            }
        }
        let schemas = dir.path().join("schemas");
        let written = write_schemas(&openapi, &kinds, &schemas);
        assert!(
            written >= kinds.len(),
            "schemas for {kinds:?}: only {written}"
        );
        let manifests = dir.path().join("rendered.yaml");
        std::fs::write(&manifests, &rendered).unwrap();
        let output = kubeconform(&manifests, &schemas, &["-summary", "-output", "text"]);
        let said = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{values}: kubeconform:\n{said}");
        let documents = rendered
            .split("\n---")
            .filter(|d| d.lines().any(|l| l.starts_with("kind:")))
            .count();
        assert!(
            said.contains(&format!("Valid: {documents},")),
            "{values}: every one of the {documents} manifests checked:\n{said}"
        );
    }

    // The check can fail: a field the schema does not name, deep in the Deployment, is refused.
    let misplaced = helm_template(&json!({})).await.replacen(
        "serviceAccountName: keyfront",
        "serviceAccountName: keyfront\n      serviceAcountName: typo",
        1,
    );
    assert!(misplaced.contains("serviceAcountName"));
    let manifests = dir.path().join("misplaced.yaml");
    std::fs::write(&manifests, &misplaced).unwrap();
    let output = kubeconform(&manifests, &dir.path().join("schemas"), &[]);
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "a misspelt field passed:\n{said}");
    assert!(said.contains("serviceAcountName"), "{said}");
}
