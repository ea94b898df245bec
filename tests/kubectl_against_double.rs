//! kubectl (a client we did not write) against the Kubernetes API double over HTTP: install the
//! CRD, apply an example, read it back with defaults filled, be refused for an invalid one with
//! the field named, delete it.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail loudly by design

use std::path::Path;
use std::process::{Command, Output};

use kube_api_double::{ApiDouble, write_kubeconfig};
use serde_json::Value;

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
async fn kubectl_applies_reads_rejects_and_deletes() {
    let double = ApiDouble::new();
    let addr = double
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, addr).expect("kubeconfig");
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
        assert_eq!(object["spec"]["deletionPolicy"], "Delete");

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
