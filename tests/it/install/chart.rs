//! The Helm chart against the binary it deploys: its CRDs are the generated ones, every flag
//! its Deployment passes exists, and — installed with Helm's own code (helm-sdkpy) into the API
//! double — its roles grant exactly the calls the operator makes (`support/rbac.rs`), with and
//! without `watchNamespaces`, and its `default` CloudFrontAccount admits nothing by default.

use std::process::Command;

use keyfront::api::CloudFrontAccount;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube_api_double::{ApiDouble, write_kubeconfig};
use serde_json::json;

use crate::support::rbac::{self, OPERATOR_CALLS, Place};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/keyfront");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{CHART}/{path}")).unwrap()
}

#[test]
fn the_chart_ships_the_generated_crds() {
    for (file, yaml) in keyfront::crds().unwrap() {
        assert_eq!(
            read(&format!("files/crds/{file}")),
            yaml,
            "charts/keyfront/files/crds is stale: cargo run -- crd --out-dir charts/keyfront/files/crds"
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
    helm_install_and_upgrade(values, &[]).await
}

/// [`helm_install`], then `helm upgrade` with each of `upgrades` in turn.
async fn helm_install_and_upgrade(
    values: serde_json::Value,
    upgrades: &[serde_json::Value],
) -> ApiDouble {
    let (double, output) = helm(&values, upgrades).await;
    assert!(
        output.status.success(),
        "helm install with {values} ({}; needs helm-sdkpy, which bash .ci/run installs):\n{}\n{}",
        crate::support::python().display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    double
}

/// Runs `tests/python/helm_install.py` against a fresh API double: lint, install, upgrades.
async fn helm(
    values: &serde_json::Value,
    upgrades: &[serde_json::Value],
) -> (ApiDouble, std::process::Output) {
    helm_into(ApiDouble::new(), values, upgrades).await
}

/// [`helm`] into a double prepared by the caller (with other CRDs, say).
async fn helm_into(
    double: ApiDouble,
    values: &serde_json::Value,
    upgrades: &[serde_json::Value],
) -> (ApiDouble, std::process::Output) {
    helm_run(double, values, upgrades, None).await
}

/// [`helm_into`], also writing the install's rendered manifests to `rendered`.
async fn helm_into_rendering(
    double: ApiDouble,
    values: &serde_json::Value,
    rendered: &std::path::Path,
) -> (ApiDouble, std::process::Output) {
    helm_run(double, values, &[], Some(rendered)).await
}

async fn helm_run(
    double: ApiDouble,
    values: &serde_json::Value,
    upgrades: &[serde_json::Value],
    rendered: Option<&std::path::Path>,
) -> (ApiDouble, std::process::Output) {
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
    let python = crate::support::python();
    let mut command = tokio::process::Command::new(&python);
    if let Some(rendered) = rendered {
        command.env("KEYFRONT_RENDERED_OUT", rendered);
    }
    let output = command
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
        .args(upgrades.iter().map(|u| u.to_string()))
        .output()
        .await
        .unwrap();
    (double, output)
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
    let lease = rules(
        double,
        "Role",
        Some("keyfront-system"),
        "keyfront-leader-election",
    )
    .await
    .expect("a Role for the leader-election Lease");
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
            Place::Lease => !by_cluster_role && rbac::allows(&lease, group, resource, verb),
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
    for role in namespaced.iter().chain(keyrings.iter()).chain([&lease]) {
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

/// The CRDs are templates: installed and upgraded by Helm, with `helm.sh/resource-policy: keep`
/// unless `crds.keep` is false, and each equal to the generated one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_are_installed_upgraded_and_kept_by_helm() {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
    ));
    let crds = |double: &ApiDouble| Api::<DynamicObject>::all_with(double.client(), &resource);
    let kept = |crd: &DynamicObject| {
        crd.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("helm.sh/resource-policy"))
            .cloned()
    };

    let double = helm_install_and_upgrade(json!({}), &[json!({"crds": {"keep": false}})]).await;
    let installed = helm_install(json!({})).await;
    for (file, yaml) in keyfront::crds().unwrap() {
        let generated: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        let name = generated["metadata"]["name"].as_str().unwrap();
        let crd = crds(&installed).get(name).await.expect(&file);
        // Through Helm's fromYaml/toYaml every number is a float: compare numbers as numbers.
        assert_eq!(
            numbers_as_floats(&crd.data["spec"]),
            numbers_as_floats(&generated["spec"]),
            "{name} as Helm installed it"
        );
        assert_eq!(kept(&crd).as_deref(), Some("keep"), "{name}");
        let upgraded = crds(&double).get(name).await.unwrap();
        assert_eq!(
            kept(&upgraded),
            None,
            "{name} after upgrading with crds.keep=false"
        );
    }
}

fn numbers_as_floats(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => json!(n.as_f64()),
        Value::Array(items) => Value::Array(items.iter().map(numbers_as_floats).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), numbers_as_floats(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The pod runs as the image's user, by number: the kubelet cannot verify `runAsNonRoot` for
/// a user name and refuses to start such a container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_runs_as_the_images_numeric_user() {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let user = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("the Dockerfile sets USER");
    let (uid, gid) = user.trim().split_once(':').expect("USER uid:gid");
    let (uid, gid): (i64, i64) = (
        uid.parse().expect("numeric uid"),
        gid.parse().expect("numeric gid"),
    );
    assert_ne!(uid, 0);

    let double = helm_install(json!({})).await;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"));
    let deployment =
        Api::<DynamicObject>::namespaced_with(double.client(), "keyfront-system", &resource)
            .get("keyfront")
            .await
            .unwrap();
    let pod = &deployment.data["spec"]["template"]["spec"]["securityContext"];
    assert_eq!(pod["runAsNonRoot"], json!(true));
    assert_eq!(pod["runAsUser"], json!(uid));
    assert_eq!(pod["runAsGroup"], json!(gid));
    assert_eq!(pod["fsGroup"], json!(gid));
}

/// `values.schema.json` refuses what the chart would misread, naming it, before anything is
/// installed: a misspelt key (silently ignored without a schema) and a malformed duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_the_schema_refuses_are_named() {
    for (values, named) in [
        (json!({"watchNamespace": ["team-a"]}), "watchNamespace"),
        (json!({"resync": "hourly"}), "resync"),
        (json!({"crds": {"keep": "yes"}}), "keep"),
        (json!({"cloudfrontBudget": {"writeRate": 0}}), "writeRate"),
    ] {
        let (double, output) = helm(&values, &[]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{values} was accepted");
        assert!(stderr.contains(named), "{values}: {stderr}");
        let deployments = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"));
        let installed = Api::<DynamicObject>::all_with(double.client(), &deployments)
            .list(&Default::default())
            .await
            .unwrap();
        assert!(
            installed.items.is_empty(),
            "{values}: something was installed"
        );
    }
}

/// Every rendered manifest of three variants (default values, `watchNamespaces`, metrics on)
/// passes `kubectl apply --dry-run=server` against a fresh API double that has only the CRDs
/// and namespaces, and the dry run leaves that double unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifests_pass_a_server_side_dry_run() {
    let metrics_on = json!({"metrics": {"serviceMonitor": {"enabled": true}, "prometheusRule": {"enabled": true}}});
    for values in [
        json!({}),
        json!({"watchNamespaces": ["team-a", "team-b"]}),
        metrics_on,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let rendered = dir.path().join("rendered.yaml");
        let installed_into = ApiDouble::new();
        prometheus_operator_crds(&installed_into);
        let (_, output) = helm_into_rendering(installed_into, &values, &rendered).await;
        assert!(
            output.status.success(),
            "{values}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = std::fs::read_to_string(&rendered).unwrap();
        assert!(text.contains("kind: Deployment"), "{values}: {text}");

        let target = ApiDouble::new();
        prometheus_operator_crds(&target);
        for crd in std::fs::read_dir(format!("{CHART}/files/crds")).unwrap() {
            target.create_from_yaml(&crd.unwrap().path()).unwrap();
        }
        for namespace in ["keyfront-system", "team-a", "team-b"] {
            target
                .create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
                .unwrap();
        }
        let addr = target.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        write_kubeconfig(&kubeconfig, addr).unwrap();
        let applied = tokio::process::Command::new("kubectl")
            .env("KUBECONFIG", &kubeconfig)
            .args(["apply", "--dry-run=server", "-f"])
            .arg(&rendered)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&applied.stdout);
        assert!(
            applied.status.success(),
            "{values}: kubectl apply --dry-run=server refused:\n{}\n{stdout}",
            String::from_utf8_lossy(&applied.stderr)
        );
        let objects = text
            .split("\n---")
            .filter(|d| d.lines().any(|l| l.starts_with("kind:")))
            .count();
        let dry = stdout
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert_eq!(
            dry, objects,
            "{values}: every object dry-run applied:\n{stdout}"
        );
        // Nothing was kept.
        let deployments = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"));
        let kept = Api::<DynamicObject>::all_with(target.client(), &deployments)
            .list(&Default::default())
            .await
            .unwrap();
        assert!(
            kept.items.is_empty(),
            "{values}: the dry run created a Deployment"
        );
    }
}

/// Two replicas by default, rolled over one at a time, spread over nodes, with a budget that
/// keeps one through a drain, and every replica running with leader election.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_a_leader_and_survive_a_drain() {
    let double = helm_install(json!({})).await;
    let get = async |group: &str, kind: &str, name: &str| {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind));
        Api::<DynamicObject>::namespaced_with(double.client(), "keyfront-system", &resource)
            .get_opt(name)
            .await
            .unwrap()
    };
    let deployment = get("apps", "Deployment", "keyfront").await.unwrap();
    let spec = &deployment.data["spec"];
    assert_eq!(spec["replicas"], json!(2));
    assert_eq!(spec["strategy"]["type"], json!("RollingUpdate"));
    assert_eq!(
        spec["strategy"]["rollingUpdate"]["maxUnavailable"],
        json!(0)
    );
    let pod = &spec["template"]["spec"];
    let args = pod["containers"][0]["args"].as_array().unwrap();
    assert!(args.contains(&json!("--leader-election")), "{args:?}");
    // keyfront parses every rendered argument, values included (the call budget's among them).
    let rendered: Vec<&str> = args.iter().map(|a| a.as_str().unwrap()).collect();
    assert!(
        rendered.contains(&"--cloudfront-write-rate=1")
            && rendered.contains(&"--coalesce-window=2s"),
        "{rendered:?}"
    );
    let parsed = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(&rendered)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "keyfront refuses the chart's arguments: {}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let anti =
        &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(
        anti["podAffinityTerm"]["topologyKey"],
        json!("kubernetes.io/hostname")
    );
    let pdb = get("policy", "PodDisruptionBudget", "keyfront")
        .await
        .expect("a PodDisruptionBudget");
    assert_eq!(pdb.data["spec"]["maxUnavailable"], json!(1));

    let single = helm_install(json!({"replicas": 1})).await;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "policy",
        "v1",
        "PodDisruptionBudget",
    ));
    let none = Api::<DynamicObject>::namespaced_with(single.client(), "keyfront-system", &resource)
        .get_opt("keyfront")
        .await
        .unwrap();
    assert!(
        none.is_none(),
        "a budget for one replica would block every drain"
    );
}

/// The Prometheus Operator's two kinds, schemaless: enough for Helm to install into the double.
fn prometheus_operator_crds(double: &ApiDouble) {
    for (plural, kind) in [
        ("servicemonitors", "ServiceMonitor"),
        ("prometheusrules", "PrometheusRule"),
    ] {
        double
            .create(json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": format!("{plural}.monitoring.coreos.com")},
                "spec": {
                    "group": "monitoring.coreos.com",
                    "scope": "Namespaced",
                    "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
                    "versions": [{"name": "v1", "served": true, "storage": true, "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }}],
                },
            }))
            .unwrap();
    }
}

/// With metrics on, the chart installs a Service for /metrics, a ServiceMonitor whose job label
/// is what the alerts select, and a PrometheusRule holding exactly files/prometheus/alerts.yaml,
/// which promtool accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_installs_a_service_monitor_and_the_alerts() {
    let double = ApiDouble::new();
    prometheus_operator_crds(&double);
    let values = json!({"metrics": {
        "serviceMonitor": {"enabled": true},
        "prometheusRule": {"enabled": true},
        "readers": [{"namespace": "monitoring", "name": "prometheus"}],
    }});
    let (double, output) = helm_into(double, &values, &[]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let get = async |group: &str, kind: &str, name: &str| {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind));
        Api::<DynamicObject>::namespaced_with(double.client(), "keyfront-system", &resource)
            .get(name)
            .await
            .unwrap()
    };
    let service = get("", "Service", "keyfront-metrics").await;
    assert_eq!(
        service.data["spec"]["ports"][0]["targetPort"],
        json!("health")
    );
    let monitor = get("monitoring.coreos.com", "ServiceMonitor", "keyfront").await;
    assert_eq!(
        monitor.data["spec"]["jobLabel"],
        json!("app.kubernetes.io/name")
    );
    assert_eq!(
        monitor.data["spec"]["endpoints"][0]["path"],
        json!("/metrics")
    );
    // /metrics wants a token that may get it: the ServiceMonitor sends Prometheus's, and the
    // readers are bound to the ClusterRole that grants the path.
    assert_eq!(
        monitor.data["spec"]["endpoints"][0]["bearerTokenFile"],
        json!("/var/run/secrets/kubernetes.io/serviceaccount/token")
    );
    let cluster_wide = async |kind: &str, name: &str| {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "rbac.authorization.k8s.io",
            "v1",
            kind,
        ));
        Api::<DynamicObject>::all_with(double.client(), &resource)
            .get(name)
            .await
            .unwrap()
    };
    let reader = cluster_wide("ClusterRole", "keyfront-metrics-reader").await;
    assert_eq!(
        reader.data["rules"],
        json!([{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}])
    );
    let binding = cluster_wide("ClusterRoleBinding", "keyfront-metrics-reader").await;
    assert_eq!(
        binding.data["subjects"],
        json!([{"kind": "ServiceAccount", "namespace": "monitoring", "name": "prometheus"}])
    );

    let rule = get("monitoring.coreos.com", "PrometheusRule", "keyfront").await;
    let shipped: serde_json::Value =
        serde_yaml::from_str(&read("files/prometheus/alerts.yaml")).unwrap();
    assert_eq!(
        rule.data["spec"], shipped,
        "the PrometheusRule is not alerts.yaml"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, serde_yaml::to_string(&rule.data["spec"]).unwrap()).unwrap();
    let check = Command::new("promtool")
        .args(["check", "rules", file.to_str().unwrap()])
        .output()
        .expect("promtool is installed (bash .ci/run installs Debian's prometheus)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// Every alert's promtool unit test (tests/prometheus/alerts.test.yaml): each fires when it
/// should, with its labels and annotations, and not before.
#[test]
fn every_alert_passes_its_promtool_unit_test() {
    let output = Command::new("promtool")
        .args(["test", "rules", "alerts.test.yaml"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/prometheus"))
        .output()
        .expect("promtool is installed (bash .ci/run installs Debian's prometheus)");
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&read("files/prometheus/alerts.yaml")).unwrap();
    let tests = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/prometheus/alerts.test.yaml"
    ))
    .unwrap();
    for alert in rules["groups"][0]["rules"].as_sequence().unwrap() {
        let name = alert["alert"].as_str().unwrap();
        assert!(
            tests.contains(&format!(
                "alertname: {name}\n        exp_alerts:\n          - "
            )),
            "{name} has no test that expects it to fire"
        );
    }
}
