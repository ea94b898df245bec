//! The Helm chart against the binary it deploys: its CRDs are the generated ones, every flag
//! its Deployment passes exists, and — installed with the `helm` CLI (built from helm.sh/helm/v4
//! by `tests/control-plane/build.sh`) into a real kube-apiserver — its roles grant exactly the
//! calls the operator makes (`support/rbac.rs`), with and without `watchNamespaces`, the
//! operator run with the chart's ServiceAccount reconciles with no denial from the API server's
//! RBAC, and its `default` CloudFrontAccount admits nothing by default.

use std::process::Command;

use keyfront::api::CloudFrontAccount;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::json;

use crate::support::Cluster;
use crate::support::rbac::{self, OPERATOR_CALLS, Place};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/keyfront");
/// `helm install` of the chart as the tests name the release.
const INSTALL: [&str; 5] = [
    "install",
    "keyfront",
    CHART,
    "--namespace",
    "keyfront-system",
];

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

/// Installs the chart with the helm CLI into a fresh control plane (namespaces keyfront-system,
/// team-a and team-b exist) and returns it.
async fn helm_install(values: serde_json::Value) -> Cluster {
    helm_install_and_upgrade(values, &[]).await
}

/// [`helm_install`], then `helm upgrade` with each of `upgrades` in turn.
async fn helm_install_and_upgrade(
    values: serde_json::Value,
    upgrades: &[serde_json::Value],
) -> Cluster {
    let (cluster, output) = helm(&values, upgrades).await;
    assert!(
        output.status.success(),
        "helm install with {values}:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    cluster
}

/// `helm lint`, `helm install` and each `helm upgrade` into a fresh control plane; stops at the
/// first command that fails and returns its output.
async fn helm(
    values: &serde_json::Value,
    upgrades: &[serde_json::Value],
) -> (Cluster, std::process::Output) {
    helm_into(Cluster::real().await, values, upgrades).await
}

/// [`helm`] into a cluster prepared by the caller (with other CRDs, say).
async fn helm_into(
    cluster: Cluster,
    values: &serde_json::Value,
    upgrades: &[serde_json::Value],
) -> (Cluster, std::process::Output) {
    cluster
        .create_namespaces(&["keyfront-system", "team-a", "team-b"])
        .await;
    let mut output = helm_cli(&cluster, &["lint", CHART], values).await;
    if output.status.success() {
        output = helm_cli(&cluster, &INSTALL, values).await;
    }
    for upgrade in upgrades {
        if !output.status.success() {
            break;
        }
        let args = [
            "upgrade",
            "keyfront",
            CHART,
            "--namespace",
            "keyfront-system",
        ];
        output = helm_cli(&cluster, &args, upgrade).await;
    }
    (cluster, output)
}

/// The `helm` CLI with `args` and `values` (as a values file; none when null) against `cluster`.
async fn helm_cli(
    cluster: &Cluster,
    args: &[&str],
    values: &serde_json::Value,
) -> std::process::Output {
    let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    let mut command = tokio::process::Command::new(test_cluster::tool("helm"));
    command.args(args);
    if !values.is_null() {
        std::fs::write(file.path(), values.to_string()).unwrap();
        command.arg("--values").arg(file.path());
    }
    command
        .env("KUBECONFIG", cluster.kubeconfig())
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("keyfront-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("keyfront-helm-config"),
        )
        .output()
        .await
        .unwrap()
}

/// `helm template` of the chart with `values`: every manifest an install would apply, hooks
/// included.
pub(super) async fn helm_template(values: &serde_json::Value) -> String {
    let cluster_free = tokio::process::Command::new(test_cluster::tool("helm"))
        .args([
            "template",
            "keyfront",
            CHART,
            "--namespace",
            "keyfront-system",
            "--values",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = cluster_free;
    use tokio::io::AsyncWriteExt as _;
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(values.to_string().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "helm template with {values}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn rules(
    cluster: &Cluster,
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
        Some(ns) => Api::namespaced_with(cluster.client(), ns, &resource),
        None => Api::all_with(cluster.client(), &resource),
    };
    api.get_opt(name)
        .await
        .unwrap()
        .map(|o| o.data["rules"].clone())
}

/// Every call in the table is granted where it lands, and nothing beyond the table is.
async fn check_roles(cluster: &Cluster, watched: &[&str]) {
    let cluster_role = rules(cluster, "ClusterRole", None, "keyfront")
        .await
        .expect("ClusterRole");
    let keyrings = rules(
        cluster,
        "Role",
        Some("keyfront-system"),
        "keyfront-keyrings",
    )
    .await;
    let lease = rules(
        cluster,
        "Role",
        Some("keyfront-system"),
        "keyfront-leader-election",
    )
    .await
    .expect("a Role for the leader-election Lease");
    let mut namespaced = Vec::new();
    for ns in watched {
        let role = rules(cluster, "Role", Some(ns), "keyfront-app-secrets")
            .await
            .unwrap_or_else(|| panic!("no Role for Secrets in {ns}"));
        namespaced.push(role);
    }
    for &(group, resource, verb, place) in OPERATOR_CALLS {
        let by_cluster_role = rbac::allows(&cluster_role, group, resource, verb);
        let ok = match place {
            Place::Cluster => by_cluster_role,
            Place::Tenant
                if ["secrets", "configmaps"].contains(&resource) && !watched.is_empty() =>
            {
                !by_cluster_role
                    && namespaced
                        .iter()
                        .all(|r| rbac::allows(r, group, resource, verb))
            }
            Place::Tenant => by_cluster_role,
            // Narrow unless tenants need the same call everywhere (ConfigMaps, get and create).
            Place::Lease => {
                rbac::allows(&lease, group, resource, verb)
                    && (!by_cluster_role
                        || (watched.is_empty()
                            && rbac::in_table(group, resource, verb, Place::Tenant)))
            }
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
    let mut all = rbac::granted(&cluster_role);
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
            !rbac::allows(&cluster_role, "", "secrets", "get"),
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
    let cluster = helm_install(json!({})).await;
    let accounts: Api<CloudFrontAccount> = Api::all(cluster.client());
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
    let crds = |cluster: &Cluster| Api::<DynamicObject>::all_with(cluster.client(), &resource);
    let kept = |crd: &DynamicObject| {
        crd.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("helm.sh/resource-policy"))
            .cloned()
    };

    let cluster = helm_install_and_upgrade(json!({}), &[json!({"crds": {"keep": false}})]).await;
    let installed = helm_install(json!({})).await;
    for (file, yaml) in keyfront::crds().unwrap() {
        let generated: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        let name = generated["metadata"]["name"].as_str().unwrap();
        let mut crd = crds(&installed).get(name).await.expect(&file);
        // The API server defaults the conversion strategy and the list kind; the generated CRD
        // leaves both out.
        let spec = crd.data["spec"].as_object_mut().unwrap();
        if spec["conversion"] == json!({"strategy": "None"}) {
            spec.remove("conversion");
        }
        let list_kind = format!("{}List", spec["names"]["kind"].as_str().unwrap());
        if spec["names"]["listKind"] == json!(list_kind) {
            spec["names"].as_object_mut().unwrap().remove("listKind");
        }
        // Through Helm's fromYaml/toYaml every number is a float: compare numbers as numbers.
        let differences = differences(
            "spec",
            &numbers_as_floats(&crd.data["spec"]),
            &numbers_as_floats(&generated["spec"]),
        );
        assert!(
            differences.is_empty(),
            "{name} as Helm installed it differs from the generated CRD: {differences:#?}"
        );
        assert_eq!(kept(&crd).as_deref(), Some("keep"), "{name}");
        let upgraded = crds(&cluster).get(name).await.unwrap();
        assert_eq!(
            kept(&upgraded),
            None,
            "{name} after upgrading with crds.keep=false"
        );
    }
}

/// Where `installed` and `generated` differ, as paths with both values (short, unlike a whole
/// CRD in an assertion).
fn differences(
    path: &str,
    installed: &serde_json::Value,
    generated: &serde_json::Value,
) -> Vec<String> {
    use serde_json::Value;
    match (installed, generated) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .flat_map(|k| {
                    let null = Value::Null;
                    differences(
                        &format!("{path}.{k}"),
                        a.get(k).unwrap_or(&null),
                        b.get(k).unwrap_or(&null),
                    )
                })
                .collect()
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .flat_map(|(i, (x, y))| differences(&format!("{path}[{i}]"), x, y))
            .collect(),
        (a, b) if a == b => Vec::new(),
        (a, b) => {
            let short = |v: &Value| v.to_string().chars().take(120).collect::<String>();
            vec![format!(
                "{path}: installed {} / generated {}",
                short(a),
                short(b)
            )]
        }
    }
}

/// `helm uninstall` with the default `crds.keep` leaves the CRDs, and so every SigningKeyGroup
/// and the keys they describe; the operator's own objects go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninstall_keeps_the_crds_and_every_object() {
    let cluster = helm_install(json!({})).await;
    cluster
        .apply(
            &json!({"apiVersion": "keyfront.dev/v1alpha1", "kind": "SigningKeyGroup",
            "metadata": {"name": "site", "namespace": "team-a"}, "spec": {}}),
        )
        .await;
    let uninstall = helm_cli(
        &cluster,
        &[
            "uninstall",
            "keyfront",
            "--namespace",
            "keyfront-system",
            "--wait",
        ],
        &serde_json::Value::Null,
    )
    .await;
    assert!(
        uninstall.status.success(),
        "{}",
        String::from_utf8_lossy(&uninstall.stderr)
    );
    let said = String::from_utf8_lossy(&uninstall.stdout);
    assert!(said.contains("kept due to the resource policy"), "{said}");
    let crd = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
    ));
    let crds = Api::<DynamicObject>::all_with(cluster.client(), &crd);
    for name in [
        "signingkeygroups.keyfront.dev",
        "cloudfrontaccounts.keyfront.dev",
    ] {
        assert!(
            crds.get_opt(name).await.unwrap().is_some(),
            "{name} went with the release"
        );
    }
    let objects: Api<keyfront::api::SigningKeyGroup> = Api::namespaced(cluster.client(), "team-a");
    assert!(objects.get_opt("site").await.unwrap().is_some());
    let deployments = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"));
    let left =
        Api::<DynamicObject>::namespaced_with(cluster.client(), "keyfront-system", &deployments)
            .get_opt("keyfront")
            .await
            .unwrap();
    assert!(left.is_none(), "the Deployment outlived the release");
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

    let cluster = helm_install(json!({})).await;
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"));
    let deployment =
        Api::<DynamicObject>::namespaced_with(cluster.client(), "keyfront-system", &resource)
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
        let (cluster, output) = helm(&values, &[]).await;
        // helm lint names the key on stdout, helm install on stderr.
        let said = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{values} was accepted");
        assert!(said.contains(named), "{values}: {said}");
        let deployments = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"));
        let installed = Api::<DynamicObject>::all_with(cluster.client(), &deployments)
            .list(&Default::default())
            .await
            .unwrap();
        assert!(
            installed.items.is_empty(),
            "{values}: something was installed"
        );
    }
}

/// Values that set every standard knob a platform team expects of a chart.
pub(super) fn every_knob() -> serde_json::Value {
    json!({
        "serviceAccount": {"create": false, "name": "keyfront-irsa"},
        "nameOverride": "kf",
        "fullnameOverride": "platform-keyfront",
        "podAnnotations": {"example.com/scrape": "true"},
        "podLabels": {"team": "platform"},
        "imagePullSecrets": [{"name": "registry-credentials"}],
        "priorityClassName": "system-cluster-critical",
    })
}

/// The standard knobs land where Kubernetes reads them; a ServiceAccount made elsewhere is
/// used (and none is made), and forgetting its name is refused with the fix named.
#[tokio::test]
async fn the_standard_knobs_render_where_kubernetes_reads_them() {
    let rendered = helm_template(&every_knob()).await;
    let objects: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&rendered)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|o: &serde_json::Value| !o.is_null())
        .collect();
    let of_kind = |kind: &str| -> Vec<&serde_json::Value> {
        objects.iter().filter(|o| o["kind"] == kind).collect()
    };
    assert!(
        of_kind("ServiceAccount").is_empty(),
        "a ServiceAccount was made"
    );
    let deployment = of_kind("Deployment")[0];
    assert_eq!(deployment["metadata"]["name"], "platform-keyfront");
    let pod = &deployment["spec"]["template"];
    assert_eq!(pod["spec"]["serviceAccountName"], "keyfront-irsa");
    assert_eq!(
        pod["spec"]["imagePullSecrets"],
        json!([{"name": "registry-credentials"}])
    );
    assert_eq!(pod["spec"]["priorityClassName"], "system-cluster-critical");
    assert_eq!(pod["metadata"]["annotations"]["example.com/scrape"], "true");
    assert_eq!(pod["metadata"]["labels"]["team"], "platform");
    assert_eq!(pod["metadata"]["labels"]["app.kubernetes.io/name"], "kf");
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "kf"
    );
    for binding in of_kind("ClusterRoleBinding")
        .into_iter()
        .chain(of_kind("RoleBinding"))
    {
        assert_eq!(binding["subjects"][0]["name"], "keyfront-irsa", "{binding}");
    }
    let output = tokio::process::Command::new(test_cluster::tool("helm"))
        .args([
            "template",
            "keyfront",
            CHART,
            "--set",
            "serviceAccount.create=false",
        ])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("serviceAccount.name is required with serviceAccount.create=false"),
        "{said}"
    );
}

/// Every rendered manifest of four variants (default values, `watchNamespaces`, metrics on, every
/// standard knob),
/// as `helm template` renders them, passes `kubectl apply --dry-run=server` against a fresh
/// real API server that has only the CRDs and namespaces, and the dry run leaves it unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_manifests_pass_a_server_side_dry_run() {
    let metrics_on = json!({"metrics": {"serviceMonitor": {"enabled": true}, "prometheusRule": {"enabled": true}}});
    for values in [
        json!({}),
        json!({"watchNamespaces": ["team-a", "team-b"]}),
        metrics_on,
        every_knob(),
    ] {
        let text = helm_template(&values).await;
        assert!(text.contains("kind: Deployment"), "{values}: {text}");
        let dir = tempfile::tempdir().unwrap();
        let rendered = dir.path().join("rendered.yaml");
        std::fs::write(&rendered, &text).unwrap();

        let target = Cluster::real().await;
        prometheus_operator_crds(&target).await;
        target.install_crds().await;
        target
            .create_namespaces(&["keyfront-system", "team-a", "team-b"])
            .await;
        let applied = tokio::process::Command::new("kubectl")
            .env("KUBECONFIG", target.kubeconfig())
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
    let cluster = helm_install(json!({})).await;
    let get = async |group: &str, kind: &str, name: &str| {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind));
        Api::<DynamicObject>::namespaced_with(cluster.client(), "keyfront-system", &resource)
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

/// The operator as the chart deploys it: the rendered Deployment's arguments, the chart's
/// ServiceAccount token, and the real API server's RBAC deciding every call. It reconciles a
/// SigningKeyGroup in a namespace the default account admits to Ready, and the API server's audit
/// log shows not one request of the ServiceAccount refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_with_the_charts_service_account_and_is_never_denied() {
    let values = json!({"defaultAccount": {
        "allowedNamespaces": {"from": "Names", "names": ["team-a"]},
        "distributions": [{"id": "EFASTDEMO1", "defaultCacheBehavior": true}],
    }});
    let cluster = helm_install(values).await;
    let dir = tempfile::tempdir().unwrap();
    let emulator = crate::support::stack::Emulator::start(
        dir.path(),
        &["--propagation-delay", "1", "--distribution", "EFASTDEMO1"],
    )
    .await;
    let cf = emulator.api;

    let deployments = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", "Deployment"));
    let deployment =
        Api::<DynamicObject>::namespaced_with(cluster.client(), "keyfront-system", &deployments)
            .get("keyfront")
            .await
            .unwrap();
    let pod = &deployment.data["spec"]["template"]["spec"];
    let account = pod["serviceAccountName"].as_str().unwrap();
    let user = format!("system:serviceaccount:keyfront-system:{account}");
    let token = cluster
        .service_account_token("keyfront-system", account)
        .await;
    let kubeconfig = dir.path().join("kubeconfig");
    cluster
        .control_plane()
        .write_kubeconfig_with_token(&token, &kubeconfig);

    // The rendered arguments, with loopback ports and the emulator for CloudFront.
    let health = crate::support::free_port();
    let endpoint = format!("http://{cf}");
    let mut args: Vec<String> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .filter(|a| !a.starts_with("--health-listen=") && !a.starts_with("--propagation-poll="))
        .collect();
    args.extend([
        format!("--health-listen={health}"),
        "--propagation-poll=1s".into(),
        format!("--cloudfront-endpoint={endpoint}"),
        format!("--sts-endpoint={endpoint}"),
    ]);
    let log = dir.path().join("operator.log");
    let _show_log = crate::support::ShowLogOnFailure(log.clone());
    let _operator = crate::support::Process(
        Command::new(env!("CARGO_BIN_EXE_keyfront"))
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAME", "keyfront-0")
            .env("POD_NAMESPACE", "keyfront-system")
            .env("RUST_LOG", "keyfront=debug,info")
            .env("AWS_ACCESS_KEY_ID", "AKIDEMULATOR")
            .env("AWS_SECRET_ACCESS_KEY", "emulator")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );

    cluster
        .apply(&json!({"apiVersion": "keyfront.dev/v1alpha1", "kind": "SigningKeyGroup",
            "metadata": {"name": "site", "namespace": "team-a"},
            "spec": {"distributions": [{"id": "EFASTDEMO1", "defaultCacheBehavior": true}],
                     "rotation": {"interval": "1h", "maxSignedUrlLifetime": "1m", "secretRefreshAllowance": "5s"}}}))
        .await;
    let objects: Api<keyfront::api::SigningKeyGroup> = Api::namespaced(cluster.client(), "team-a");
    crate::support::wait_for(
        "team-a/site Ready",
        std::time::Duration::from_secs(90),
        async || crate::support::ready(&objects, "site").await,
    )
    .await;

    let audit = cluster.control_plane().audit();
    let by_operator: Vec<_> = audit.iter().filter(|e| e.user == user).collect();
    assert!(
        by_operator.len() > 20,
        "only {} requests by {user}",
        by_operator.len()
    );
    let denied: Vec<String> = by_operator
        .iter()
        .filter(|e| e.code == 403)
        .map(|e| format!("{} {}", e.verb, e.request_uri))
        .collect();
    assert!(
        denied.is_empty(),
        "the API server refused {user}: {denied:#?}"
    );
}

/// The Prometheus Operator's two kinds, schemaless: enough for Helm to install.
pub(super) async fn prometheus_operator_crds(cluster: &Cluster) {
    for (plural, kind) in [
        ("servicemonitors", "ServiceMonitor"),
        ("prometheusrules", "PrometheusRule"),
    ] {
        cluster
            .apply(&json!({
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
            .await;
    }
    cluster
        .kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=30s",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
        ])
        .await;
}

/// With metrics on, the chart installs a Service for /metrics, a ServiceMonitor whose job label
/// is what the alerts select, and a PrometheusRule holding exactly files/prometheus/alerts.yaml,
/// which promtool accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_installs_a_service_monitor_and_the_alerts() {
    let cluster = Cluster::real().await;
    prometheus_operator_crds(&cluster).await;
    let values = json!({"metrics": {
        "serviceMonitor": {"enabled": true},
        "prometheusRule": {"enabled": true},
        "readers": [{"namespace": "monitoring", "name": "prometheus"}],
    }});
    let (cluster, output) = helm_into(cluster, &values, &[]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let get = async |group: &str, kind: &str, name: &str| {
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind));
        Api::<DynamicObject>::namespaced_with(cluster.client(), "keyfront-system", &resource)
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
        json!("keyfront.dev/metrics-job")
    );
    assert_eq!(
        service.metadata.labels.as_ref().unwrap()["keyfront.dev/metrics-job"],
        "keyfront",
        "series carry job=\"keyfront\", what the alerts expect"
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
        Api::<DynamicObject>::all_with(cluster.client(), &resource)
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

/// `kubectl apply -f crds/` and then `helm install`, as a newcomer might: the install is
/// refused with both ways out named, and each way out then installs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_applied_with_kubectl_first_are_refused_with_the_fix_named() {
    let cluster = Cluster::real().await;
    cluster.install_crds().await;
    let (cluster, refused) = helm_into(cluster, &serde_json::Value::Null, &[]).await;
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "installed over kubectl's CRDs");
    for fix in [
        "CustomResourceDefinitions cloudfrontaccounts.keyfront.dev signingkeygroups.keyfront.dev \
         already exist and release keyfront does not own them",
        "--set crds.enabled=false",
        "kubectl annotate crd",
    ] {
        assert!(said.contains(fix), "no {fix:?} in: {said}");
    }
    // The first way out: the chart leaves the CRDs alone.
    let values = json!({"crds": {"enabled": false}});
    let output = helm_cli(&cluster, &INSTALL, &values).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The second: label and annotate as the message says, then the chart owns them.
    let uninstall = ["uninstall", "keyfront", "--namespace", "keyfront-system"];
    assert!(
        helm_cli(&cluster, &uninstall, &serde_json::Value::Null)
            .await
            .status
            .success()
    );
    let fix = said[said.find("kubectl label").unwrap()..].trim();
    for command in fix.split(" && ") {
        let words: Vec<&str> = command.split_whitespace().skip(1).collect();
        cluster.kubectl(&words).await;
    }
    let output = helm_cli(&cluster, &INSTALL, &serde_json::Value::Null).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
