//! The Helm chart against the binary it deploys: its CRDs are the generated ones, every flag
//! its Deployment passes exists, and — installed with Helm's own code (helm-sdkpy) into the API
//! double — its roles grant exactly the calls the operator makes (`e2e/rbac.rs`), with and
//! without `watchNamespaces`, and its `default` CloudFrontAccount admits nothing by default.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail loudly by design

use std::process::Command;

use keyfront::api::CloudFrontAccount;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube_api_double::{ApiDouble, write_kubeconfig};
use serde_json::json;

mod e2e;
use e2e::rbac::{self, OPERATOR_CALLS, Place};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/keyfront");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{CHART}/{path}")).unwrap()
}

#[test]
fn the_chart_ships_the_generated_crds() {
    for (file, yaml) in keyfront::crds().unwrap() {
        assert_eq!(
            read(&format!("crds/{file}")),
            yaml,
            "charts/keyfront/crds is stale: cargo run -- crd --out-dir charts/keyfront/crds"
        );
    }
}

#[test]
fn every_flag_the_deployment_passes_exists() {
    let deployment = read("templates/deployment.yaml");
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_keyfront"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let known = help(&["--help"]) + &help(&["run", "--help"]);
    let flags: Vec<&str> = deployment
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- --"))
        .map(|f| f.split('=').next().unwrap())
        .collect();
    assert!(flags.len() >= 6, "{flags:?}");
    for flag in flags {
        assert!(
            known.contains(&format!("--{flag}")),
            "keyfront has no --{flag}"
        );
    }
}

/// Installs the chart with Helm's own code into a fresh API double (namespaces
/// keyfront-system, team-a and team-b exist) and returns the double.
async fn helm_install(values: serde_json::Value) -> ApiDouble {
    let double = ApiDouble::new();
    let addr = double.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    for namespace in ["keyfront-system", "team-a", "team-b"] {
        double
            .create(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}),
            )
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, addr).unwrap();
    let python = e2e::python();
    let output = tokio::process::Command::new(&python)
        .env("HELM_DRIVER", "memory")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/helm_install.py"
        ))
        .args([
            kubeconfig.to_str().unwrap(),
            "keyfront-system",
            "keyfront",
            &values.to_string(),
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "helm install with {values} ({}; needs helm-sdkpy, which bash .ci/run installs):\n{}\n{}",
        python.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    double
}

async fn rules(
    double: &ApiDouble,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Option<serde_json::Value> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "rbac.authorization.k8s.io",
        "v1",
        kind,
    ));
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(double.client(), ns, &resource),
        None => Api::all_with(double.client(), &resource),
    };
    api.get_opt(name)
        .await
        .unwrap()
        .map(|o| o.data["rules"].clone())
}

/// Every call in the table is granted where it lands, and nothing beyond the table is.
async fn check_roles(double: &ApiDouble, watched: &[&str]) {
    let cluster = rules(double, "ClusterRole", None, "keyfront")
        .await
        .expect("ClusterRole");
    let keyrings = rules(double, "Role", Some("keyfront-system"), "keyfront-keyrings").await;
    let mut namespaced = Vec::new();
    for ns in watched {
        let role = rules(double, "Role", Some(ns), "keyfront-app-secrets")
            .await
            .unwrap_or_else(|| panic!("no Role for Secrets in {ns}"));
        namespaced.push(role);
    }
    for &(group, resource, verb, place) in OPERATOR_CALLS {
        let by_cluster_role = rbac::allows(&cluster, group, resource, verb);
        let ok = match place {
            Place::Cluster => by_cluster_role,
            Place::Tenant if resource == "secrets" && !watched.is_empty() => {
                !by_cluster_role
                    && namespaced
                        .iter()
                        .all(|r| rbac::allows(r, group, resource, verb))
            }
            Place::Tenant => by_cluster_role,
            Place::Keyring => {
                by_cluster_role
                    || keyrings
                        .as_ref()
                        .is_some_and(|r| rbac::allows(r, group, resource, verb))
            }
        };
        assert!(
            ok,
            "{verb} {group}/{resource} ({place:?}) not granted as it should be (watched: {watched:?})"
        );
    }
    let mut all = rbac::granted(&cluster);
    for role in namespaced.iter().chain(keyrings.iter()) {
        all.extend(rbac::granted(role));
    }
    for (group, resource, verb) in all {
        assert!(
            OPERATOR_CALLS
                .iter()
                .any(|&(g, r, v, _)| g == group && r == resource && v == verb),
            "the chart grants {verb} {group}/{resource}, which keyfront never calls"
        );
    }
    if watched.is_empty() {
        assert!(
            keyrings.is_none(),
            "the ClusterRole covers the keyrings already"
        );
    } else {
        assert!(
            !rbac::allows(&cluster, "", "secrets", "get"),
            "Secrets cluster-wide with watchNamespaces set"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_roles_that_grant_exactly_what_the_operator_calls() {
    let everywhere = helm_install(json!({})).await;
    check_roles(&everywhere, &[]).await;
    let two = helm_install(json!({"watchNamespaces": ["team-a", "team-b"]})).await;
    check_roles(&two, &["team-a", "team-b"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_account_admits_nothing_until_values_say_so() {
    let double = helm_install(json!({})).await;
    let accounts: Api<CloudFrontAccount> = Api::all(double.client());
    let default = accounts
        .get("default")
        .await
        .expect("the chart creates the default account");
    let admission = keyfront::tenancy::admit(
        "default",
        Some(&default.spec),
        &keyfront::tenancy::NamespaceFacts {
            name: "team-a".into(),
            ..Default::default()
        },
    );
    assert!(
        matches!(
            admission,
            keyfront::tenancy::Admission::NamespaceNotAllowed { .. }
        ),
        "{admission:?}"
    );
    assert!(default.spec.distributions.is_empty());

    let granted = helm_install(json!({"defaultAccount": {
        "allowedNamespaces": {"from": "Names", "names": ["team-a"]},
        "distributions": [{"id": "E2EXAMPLE123", "defaultCacheBehavior": true}],
    }}))
    .await;
    let default = Api::<CloudFrontAccount>::all(granted.client())
        .get("default")
        .await
        .unwrap();
    let keyfront::tenancy::Admission::Admitted(grants) = keyfront::tenancy::admit(
        "default",
        Some(&default.spec),
        &keyfront::tenancy::NamespaceFacts {
            name: "team-a".into(),
            ..Default::default()
        },
    ) else {
        panic!("team-a not admitted by {:?}", default.spec)
    };
    assert!(grants.distribution("E2EXAMPLE123").is_some());
}
