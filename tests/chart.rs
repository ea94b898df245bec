//! The Helm chart against the binary it deploys (no `helm` here, so by text): its CRD is the
//! generated one, every flag its Deployment passes exists, and its ClusterRole grants what the
//! operator calls.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // tests fail loudly by design

use std::process::Command;

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

#[test]
fn the_cluster_role_grants_what_the_operator_does() {
    let rbac = read("templates/rbac.yaml");
    let rule = |resource: &str| -> String {
        let at = rbac
            .find(&format!("resources: [\"{resource}\"]"))
            .unwrap_or_else(|| panic!("no rule for {resource}"));
        rbac[at..].lines().nth(1).unwrap().to_owned()
    };
    for (resource, verbs) in [
        ("signingkeygroups", &["get", "list", "watch", "patch"][..]),
        ("signingkeygroups/status", &["patch"][..]),
        ("signingkeygroups/finalizers", &["update"][..]),
        (
            "secrets",
            &["get", "list", "watch", "create", "update", "delete"][..],
        ),
        ("events", &["create", "patch"][..]),
    ] {
        let granted = rule(resource);
        for verb in verbs {
            assert!(
                granted.contains(&format!("\"{verb}\"")),
                "{resource}: no {verb} in {granted}"
            );
        }
    }
}
