//! `keyfront dev` as a new user meets it: started as a real process, it prints a kubeconfig
//! that kubectl uses; the demo rotates twice with no request refused at the edge; signing with
//! `keyfront sign --secret-dir` at the printed mount gets 200 from the edge; SIGINT stops it
//! with exit 0 within 5 s. Every example under `examples/` becomes Ready in dev. And `keyfront
//! run` with no cluster says so in one line.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{Process, edge_get, free_port, kubectl, repo};

/// The next printed line that contains `needle`, within `timeout`.
fn line_with(
    lines: &mpsc::Receiver<String>,
    needle: &str,
    timeout: Duration,
    seen: &mut Vec<String>,
) -> String {
    let end = Instant::now() + timeout;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(_) => panic!(
                "no line with {needle:?} within {timeout:?}; printed:\n{}",
                seen.join("\n")
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyfront_dev_runs_the_whole_system_and_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let edge = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args(["dev", "--edge-listen", &edge.to_string(), "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut process = Process(child);
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if send.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();

    // The printed kubeconfig works with kubectl.
    let kubeconfig_line = line_with(&lines, "kubeconfig", Duration::from_secs(30), &mut seen);
    let kubeconfig = std::path::PathBuf::from(kubeconfig_line.split_whitespace().last().unwrap());
    assert!(kubeconfig.exists(), "{kubeconfig_line}");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&kubeconfig).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the kubeconfig holds a credential");
    }
    let kc = kubeconfig.clone();
    tokio::task::spawn_blocking(move || {
        kubectl(&kc, &["get", "skg", "-A"]);
        kubectl(
            &kc,
            &[
                "apply",
                "-f",
                &repo("examples/minimal.yaml").to_string_lossy(),
            ],
        );
    })
    .await
    .unwrap();

    // Two rotations after the first key, with nothing refused.
    line_with(&lines, "activated", Duration::from_secs(30), &mut seen);
    let mut rotations = Vec::new();
    for _ in 0..2 {
        rotations.push(line_with(
            &lines,
            "activated",
            Duration::from_secs(60),
            &mut seen,
        ));
    }
    for line in &rotations {
        assert!(line.contains(", 0 rejected"), "{line}");
        let signed: u64 = line
            .split(" signed requests")
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(signed > 10, "the app kept signing: {line}");
    }
    assert!(
        !seen.iter().any(|l| l.contains("REJECTED")),
        "{}",
        seen.join("\n")
    );

    // The printed curl is refreshed at each activation, signed for the demo's URL lifetime,
    // and works; the printed sign command names the binary, which may not be on PATH.
    let fetch_lines: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains("fetch one (valid 30s)"))
        .collect();
    assert!(
        fetch_lines.len() >= 2,
        "refreshed at activations: {fetch_lines:?}"
    );
    let last = fetch_lines.last().unwrap();
    let quoted = last.rsplit('\'').nth(1).unwrap();
    let printed = &quoted[quoted.find("/hello.txt").unwrap()..];
    let expires: i64 = printed
        .split("Expires=")
        .nth(1)
        .and_then(|r| r.split('&').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(expires <= jiff::Timestamp::now().as_second() + 30, "{last}");
    assert_eq!(
        edge_get(edge, "edevdemo1.cloudfront.net", printed).await,
        200,
        "{last}"
    );
    let sign_line = seen.iter().find(|l| l.contains("sign yourself:")).unwrap();
    let binary = sign_line
        .split("sign yourself:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(std::path::Path::new(binary).is_absolute(), "{sign_line}");

    // Signing with the mounted Secret at the printed directory passes the edge.
    let mount_line = seen
        .iter()
        .find(|l| l.contains("is mounted at"))
        .unwrap()
        .clone();
    let mount = mount_line.split_whitespace().last().unwrap().to_owned();
    let host = "edevdemo1.cloudfront.net";
    let signed = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args([
            "sign",
            "url",
            "--secret-dir",
            &mount,
            "--url",
            &format!("https://{host}/mine.txt"),
            "--expires-in",
            "1m",
        ])
        .output()
        .unwrap();
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let signed = String::from_utf8(signed.stdout).unwrap();
    let path_and_query = &signed.trim()[format!("https://{host}").len()..];
    assert_eq!(edge_get(edge, host, path_and_query).await, 200);
    assert_eq!(
        edge_get(edge, host, "/mine.txt").await,
        403,
        "unsigned is refused"
    );

    // The example object applied with kubectl is reconciled too.
    let kc = kubeconfig.clone();
    let got = tokio::task::spawn_blocking(move || {
        Command::new("kubectl")
            .args([
                "get",
                "skg",
                "media-signing",
                "-o",
                "jsonpath={.status.activeKeyId}",
            ])
            .env("KUBECONFIG", &kc)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        !String::from_utf8_lossy(&got.stdout).is_empty(),
        "media-signing has no active key"
    );

    // Ctrl-C: exit 0 within 5 s.
    let pid = process.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let stop = Instant::now();
    let status = loop {
        if let Some(status) = process.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            stop.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    println!("keyfront dev: {}", rotations.join(" | "));
}

#[test]
fn run_without_a_cluster_says_how_to_get_one_in_one_line() {
    let output = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .arg("run")
        .env_clear()
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("KUBECONFIG") && stderr.contains("keyfront dev"),
        "{stderr}"
    );
    assert!(stderr.len() < 300, "{stderr}");
}

#[test]
fn dev_checks_its_interval_before_starting_anything() {
    for (interval, said) in [
        ("5s", "5s is too short for the demo"),
        ("-1m", "a duration cannot be negative"),
        ("soon", "invalid duration \"soon\""),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_keyfront"))
            .args(["dev", "--interval", interval])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "--interval {interval} started");
        assert!(stderr.contains(said), "--interval {interval}: {stderr}");
        assert!(stderr.len() < 400, "--interval {interval}: {stderr}");
    }
}

/// Every manifest under `examples/` applied to `keyfront dev`, as a newcomer would after
/// reading it, becomes Ready: dev adds the distributions they name (`--distribution`), and for
/// the adoption example boto3 plays Terraform first, making the key group it takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_becomes_ready_in_dev() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args([
            "dev",
            "--no-demo",
            "--distribution",
            "E2EXAMPLE123=/private/*",
            "--distribution",
            "E3DOWNLOADS456=/downloads/*,/exports/*",
            "--distribution",
            "EFASTDEMO1",
            "--dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _process = Process(child);
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if send.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    let kubeconfig_line = line_with(&lines, "kubeconfig", Duration::from_secs(30), &mut seen);
    let kubeconfig = std::path::PathBuf::from(kubeconfig_line.split_whitespace().last().unwrap());
    let endpoint_line = line_with(&lines, "CloudFront/STS", Duration::from_secs(5), &mut seen);
    let endpoint = endpoint_line.split_whitespace().last().unwrap().to_owned();
    let added = line_with(&lines, "distributions", Duration::from_secs(5), &mut seen);
    assert!(added.contains("E2EXAMPLE123 (/private/*)"), "{added}");
    let account = line_with(&lines, "AWS account", Duration::from_secs(5), &mut seen);
    assert!(account.contains("10 public keys"), "{account}");

    // Terraform's key group for examples/adopt-terraform.yaml, on a distribution of its own.
    let terraform_distribution = crate::support::terraform_setup(&endpoint).distribution_id;

    // Each example as written, but for the adoption example's placeholder distribution ID, and
    // minPropagationWait: two examples wait 5 minutes after a key is live before apps sign
    // with it, a margin for real CloudFront that the emulator (2 s) does not need.
    let mut sources: Vec<std::path::PathBuf> = std::fs::read_dir(repo("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    sources.push(repo("examples/app/signing-key-group.yaml"));
    let manifests: Vec<std::path::PathBuf> = sources
        .iter()
        .map(|source| {
            let text = std::fs::read_to_string(source)
                .unwrap()
                .replace("EXXXXXXXXXXXXX", &terraform_distribution)
                .replace("minPropagationWait: 5m", "minPropagationWait: 0s");
            let copy = dir.path().join(source.file_name().unwrap());
            std::fs::write(&copy, text).unwrap();
            copy
        })
        .collect();
    let kc = kubeconfig.clone();
    let applied = manifests.len();
    tokio::task::spawn_blocking(move || {
        // As a newcomer types it: kubectl sends these as protobuf.
        kubectl(&kc, &["create", "namespace", "streaming"]);
        kubectl(&kc, &["create", "namespace", "video"]);
        for manifest in &manifests {
            kubectl(&kc, &["apply", "-f", &manifest.to_string_lossy()]);
        }
    })
    .await
    .unwrap();

    let start = Instant::now();
    loop {
        let kc = kubeconfig.clone();
        let listed =
            tokio::task::spawn_blocking(move || kubectl(&kc, &["get", "skg", "-A", "-o", "json"]))
                .await
                .unwrap();
        let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
        let items = listed["items"].as_array().unwrap();
        let not_ready: Vec<String> = items
            .iter()
            .filter(|o| {
                !o["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .map(|o| {
                let ready = o["status"]["conditions"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned());
                format!(
                    "{}/{}: {ready:?}",
                    o["metadata"]["namespace"], o["metadata"]["name"]
                )
            })
            .collect();
        if items.len() == applied && not_ready.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{} of {applied} objects; not Ready: {not_ready:#?}",
            items.len()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "all {applied} examples Ready in dev after {:?}",
        start.elapsed()
    );

    // `kubectl describe` shows the Events keyfront recorded (through events.k8s.io), and a
    // single-object get has the printer columns, as on a real API server.
    let kc = kubeconfig.clone();
    let (described, got) = tokio::task::spawn_blocking(move || {
        (
            kubectl(&kc, &["describe", "skg", "-n", "streaming", "video"]),
            kubectl(&kc, &["get", "skg", "-n", "streaming", "video"]),
        )
    })
    .await
    .unwrap();
    assert!(described.contains("KeyActivated"), "{described}");
    // The account's usage against its quota, as the banner says.
    let mut usage = serde_json::Value::Null;
    crate::support::wait_for(
        "kubectl get cfa to count the examples' keys",
        Duration::from_secs(30),
        async || {
            let kc = kubeconfig.clone();
            let text = tokio::task::spawn_blocking(move || {
                kubectl(&kc, &["get", "cfa", "default", "-o", "json"])
            })
            .await
            .unwrap();
            usage = serde_json::from_str(&text).unwrap();
            usage["status"]["usage"]["publicKeys"]
                .as_u64()
                .is_some_and(|k| k >= 6)
        },
    )
    .await;
    assert!(!described.contains("Events:  <none>"), "{described}");
    assert!(
        got.contains("ACTIVE KEY") && got.contains("NEXT ROTATION"),
        "{got}"
    );
}
