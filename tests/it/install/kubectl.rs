//! kubectl (a client we did not write) against the Kubernetes API double over HTTP and against a
//! real kube-apiserver, the same steps on both: install the CRD, apply an example, read it back
//! with defaults filled, be refused for an invalid one with the field named, delete it; and
//! GitOps appliers sharing a list by server-side apply.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::Cluster;

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl is installed (bash .ci/run installs it)")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_reads_rejects_and_deletes_on_the_double() {
    let dir = tempfile::tempdir().expect("tempdir");
    kubectl_applies_reads_rejects_and_deletes(Cluster::double(dir.path()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_reads_rejects_and_deletes_on_a_real_api_server() {
    kubectl_applies_reads_rejects_and_deletes(Cluster::real().await).await;
}

async fn kubectl_applies_reads_rejects_and_deletes(cluster: Cluster) {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = cluster.kubeconfig().to_owned();
    // Served before kubectl applies the example (a real server serves a new CRD a moment later).
    cluster.install_crds().await;
    let invalid = dir.path().join("invalid.yaml");
    std::fs::write(&invalid, "apiVersion: keyfront.dev/v1alpha1\nkind: SigningKeyGroup\nmetadata:\n  name: broken\nspec:\n  rotation:\n    interval: 1h\n    maxSignedUrlLifetime: 10h\n").expect("write");

    let kc = kubeconfig.clone();
    let invalid_path = invalid.to_string_lossy().into_owned();
    tokio::task::spawn_blocking(move || {
        let out = kubectl(&kc, &["apply", "--server-side", "-f", "crds/"]);
        assert!(
            out.status.success(),
            "CRD apply failed: {}",
            text(&out.stderr)
        );
        let out = kubectl(
            &kc,
            &["apply", "--server-side", "-f", "examples/minimal.yaml"],
        );
        assert!(
            out.status.success(),
            "example apply failed: {}",
            text(&out.stderr)
        );

        let out = kubectl(&kc, &["get", "skg", "media-signing", "-o", "json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let object: Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(object["spec"]["key"]["algorithm"], "RSA2048");
        assert_eq!(object["spec"]["rotation"]["interval"], "720h");
        assert_eq!(object["spec"]["distributions"], serde_json::json!([]));

        let status = r#"{"status": {"nextRotationTime": "2030-01-02T03:04:05Z"}}"#;
        let out = kubectl(
            &kc,
            &[
                "patch",
                "skg",
                "media-signing",
                "--subresource=status",
                "--type=merge",
                "-p",
                status,
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = kubectl(&kc, &["get", "skg"]);
        let table = text(&out.stdout);
        assert!(
            table.contains("NEXT ROTATION") && table.contains("media-signing"),
            "{table}"
        );
        // A future time reads as a time, not as kubectl's "<invalid>" age.
        assert!(
            table.contains("2030-01-02T03:04:05Z") && !table.contains("<invalid>"),
            "{table}"
        );

        let out = kubectl(&kc, &["apply", "--server-side", "-f", &invalid_path]);
        assert!(!out.status.success(), "invalid manifest accepted");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("spec.rotation") && stderr.contains("3 × interval"),
            "{stderr}"
        );

        let out = kubectl(&kc, &["delete", "-f", "examples/minimal.yaml"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let out = kubectl(&kc, &["get", "skg", "-o", "name"]);
        assert!(
            text(&out.stdout).trim().is_empty(),
            "still there: {}",
            text(&out.stdout)
        );
    })
    .await
    .expect("kubectl steps");
}

/// Removes every `x-kubernetes-list-type`/`-list-map-keys` marker: the CRD as it was when its
/// lists were atomic.
fn without_list_types(value: &mut serde_yaml::Value) {
    match value {
        serde_yaml::Value::Mapping(map) => {
            map.remove("x-kubernetes-list-type");
            map.remove("x-kubernetes-list-map-keys");
            map.iter_mut().for_each(|(_, v)| without_list_types(v));
        }
        serde_yaml::Value::Sequence(items) => items.iter_mut().for_each(without_list_types),
        _ => {}
    }
}

/// What GitOps tools do to one manifest: two field managers apply it, and a server-side apply
/// follows a client-side one. `spec.distributions` is a map keyed by `id`, so none of this
/// conflicts over the defaults the server fills into its entries; with the atomic list it had
/// before, the same steps conflict on `.spec.distributions`, as a real API server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitops_appliers_share_spec_distributions_without_conflicts_on_the_double() {
    let (shipped, atomic) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clusters = [
        Cluster::double(shipped.path()).await,
        Cluster::double(atomic.path()).await,
    ];
    gitops_appliers_share_spec_distributions_without_conflicts(clusters).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitops_appliers_share_spec_distributions_without_conflicts_on_a_real_api_server() {
    let clusters = [Cluster::real().await, Cluster::real().await];
    gitops_appliers_share_spec_distributions_without_conflicts(clusters).await;
}

/// `clusters`: one for the shipped CRD, one for the CRD with the list made atomic.
async fn gitops_appliers_share_spec_distributions_without_conflicts(clusters: [Cluster; 2]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut atomic: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string("crds/signingkeygroups.keyfront.dev.yaml").expect("crd"),
    )
    .expect("yaml");
    without_list_types(&mut atomic);
    let atomic_crd = dir.path().join("atomic-crd.yaml");
    std::fs::write(&atomic_crd, serde_yaml::to_string(&atomic).expect("yaml")).expect("write");
    let changed = dir.path().join("changed.yaml");
    std::fs::write(
        &changed,
        std::fs::read_to_string("examples/distribution.yaml")
            .expect("example")
            .replace("defaultCacheBehavior: true", "defaultCacheBehavior: false"),
    )
    .expect("write");

    let extra = dir.path().join("extra.yaml");
    std::fs::write(
        &extra,
        std::fs::read_to_string("examples/distribution.yaml")
            .expect("example")
            .replace(
                "  deletionPolicy:",
                "    - id: E3EXTRA\n      pathPatterns: [\"/extra/*\"]\n  deletionPolicy:",
            ),
    )
    .expect("write");
    let extra = extra.to_string_lossy().into_owned();
    let namespace = dir.path().join("namespace.yaml");
    std::fs::write(
        &namespace,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: streaming\n",
    )
    .expect("write");
    let namespace = namespace.to_string_lossy().into_owned();
    let shipped = clusters[0].kubeconfig().to_owned();
    let atomic = clusters[1].kubeconfig().to_owned();
    let (atomic_crd, changed) = (
        atomic_crd.to_string_lossy().into_owned(),
        changed.to_string_lossy().into_owned(),
    );
    tokio::task::spawn_blocking(move || {
        let example = "examples/distribution.yaml";
        let ok = |kc: &Path, args: &[&str]| {
            let out = kubectl(kc, args);
            assert!(
                out.status.success(),
                "kubectl {args:?}: {}",
                text(&out.stderr)
            );
        };
        let refused = |kc: &Path, args: &[&str]| {
            let out = kubectl(kc, args);
            assert!(!out.status.success(), "kubectl {args:?} was not refused");
            text(&out.stderr)
        };
        for (kc, crd) in [
            (&shipped, "crds/signingkeygroups.keyfront.dev.yaml"),
            (&atomic, &atomic_crd),
        ] {
            ok(kc, &["apply", "--server-side", "-f", crd]);
            ok(kc, &["apply", "--server-side", "-f", &namespace]);
        }

        // Two managers apply the identical manifest.
        let ssa = |manager: &'static str| {
            [
                "apply",
                "--server-side",
                "--field-manager",
                manager,
                "-f",
                example,
            ]
        };
        ok(&shipped, &ssa("argocd-controller"));
        ok(&shipped, &ssa("flux-kustomize"));
        // A different value for a field the first one owns still conflicts, item by item.
        let stderr = refused(
            &shipped,
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "flux-kustomize",
                "-f",
                &changed,
            ],
        );
        assert!(
            stderr.contains(r#".spec.distributions[id="E2EXAMPLE123"].defaultCacheBehavior"#),
            "{stderr}"
        );
        // An entry only one manager applied goes, defaults and all, when it stops applying it.
        ok(
            &shipped,
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "argocd-controller",
                "-f",
                &extra,
            ],
        );
        let ids = |kc: &Path| {
            let out = kubectl(
                kc,
                &["get", "skg", "video", "-n", "streaming", "-o", "json"],
            );
            let object: Value = serde_json::from_slice(&out.stdout).expect("json");
            object["spec"]["distributions"]
                .as_array()
                .expect("distributions")
                .iter()
                .map(|d| d["id"].as_str().expect("id").to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&shipped), ["E2EXAMPLE123", "E3EXTRA"]);
        ok(&shipped, &ssa("argocd-controller"));
        assert_eq!(ids(&shipped), ["E2EXAMPLE123"]);
        ok(&shipped, &["delete", "skg", "video", "-n", "streaming"]);

        // A server-side apply over an earlier client-side apply.
        ok(&shipped, &["apply", "-f", example]);
        ok(&shipped, &["apply", "--server-side", "-f", example]);

        // The control: with an atomic list the same steps conflict, as the issue saw on a real
        // API server, so the steps above would catch a regression.
        ok(&atomic, &ssa("argocd-controller"));
        let stderr = refused(&atomic, &ssa("flux-kustomize"));
        assert!(
            stderr.contains("conflict with \"argocd-controller\"")
                && stderr.contains(".spec.distributions"),
            "{stderr}"
        );
        ok(&atomic, &["delete", "skg", "video", "-n", "streaming"]);
        ok(&atomic, &["apply", "-f", example]);
        let stderr = refused(&atomic, &["apply", "--server-side", "-f", example]);
        assert!(stderr.contains(".spec.distributions"), "{stderr}");
    })
    .await
    .expect("kubectl steps");
    drop(clusters);
}
