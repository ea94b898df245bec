//! The release process, checked where it cannot run: the GitHub workflows pass actionlint
//! (built from its Go module by `tests/control-plane/build.sh`), and the crate, the chart's
//! `version` and `appVersion` agree, with `release.toml` (cargo-release) rewriting each of them
//! exactly once.

use std::path::Path;

use crate::support::repo;

#[test]
fn the_workflows_pass_actionlint() {
    let workflows: Vec<_> = std::fs::read_dir(repo(".github/workflows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    assert!(workflows.len() >= 2, "{workflows:?}");
    let output = std::process::Command::new(test_cluster::tool("actionlint"))
        .args(["-no-color", "-shellcheck=", "-pyflakes="])
        .args(&workflows)
        .current_dir(repo(""))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // The check can fail: an expression naming a job output that does not exist.
    let broken = std::fs::read_to_string(&workflows[0]).unwrap() + "\n# x\n";
    let broken = broken.replacen(
        "runs-on:",
        "runs-on: ${{ needs.nowhere.outputs.x }}\n    # was:",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yml");
    std::fs::write(&file, broken).unwrap();
    let output = std::process::Command::new(test_cluster::tool("actionlint"))
        .args(["-no-color", "-shellcheck=", "-pyflakes="])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "a broken workflow passed actionlint"
    );
}

fn chart_versions(chart_yaml: &str) -> (String, String) {
    let chart: serde_yaml::Value = serde_yaml::from_str(chart_yaml).unwrap();
    (
        chart["version"].as_str().unwrap().to_owned(),
        chart["appVersion"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn the_crate_and_the_chart_carry_one_version_and_cargo_release_bumps_all_of_it() {
    let chart_yaml = std::fs::read_to_string(repo("charts/keyfront/Chart.yaml")).unwrap();
    let (chart, app) = chart_versions(&chart_yaml);
    let crate_version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        (chart.as_str(), app.as_str()),
        (crate_version, crate_version)
    );

    // Each replacement of release.toml, applied as cargo-release applies it (a regex with
    // `exactly = 1`), to a bump to 9.8.7.
    let release: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo("release.toml")).unwrap()).unwrap();
    let mut files = std::collections::BTreeMap::<String, String>::new();
    for replacement in release["pre-release-replacements"].as_array().unwrap() {
        let file = replacement["file"].as_str().unwrap();
        let text = files
            .entry(file.to_owned())
            .or_insert_with(|| std::fs::read_to_string(Path::new(&repo(file))).unwrap());
        let search = regex::Regex::new(replacement["search"].as_str().unwrap()).unwrap();
        assert_eq!(search.find_iter(text).count(), 1, "{search} in {file}");
        let replace = replacement["replace"]
            .as_str()
            .unwrap()
            .replace("{{version}}", "9.8.7")
            .replace("{{date}}", "2026-12-06");
        *text = search.replace(text, regex::NoExpand(&replace)).into_owned();
    }
    assert_eq!(
        chart_versions(&files["charts/keyfront/Chart.yaml"]),
        ("9.8.7".to_owned(), "9.8.7".to_owned())
    );
    assert!(files["CHANGELOG.md"].contains("## [Unreleased]\n\n## [9.8.7] - 2026-12-06"));
    assert_eq!(release["tag-name"].as_str(), Some("v{{version}}"));
}
