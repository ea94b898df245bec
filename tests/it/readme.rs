//! README.md's commands, run as a newcomer types them. Every line of its shell blocks is read
//! from the README itself and run through bash in a fresh directory, with three substitutions
//! a newcomer's machine makes for them:
//!
//! - `cargo run --release --` is the `keyfront` this test was built with (the same code; a
//!   second release build would cost CI minutes), and `cargo install --path .` is that binary's
//!   directory on `PATH`;
//! - placeholders the README asks the reader to fill (`<the kubeconfig path it printed>`) are
//!   filled from what `keyfront dev` printed;
//! - `docker build` and `kind load` need a Docker engine, which this machine lacks; the chart is
//!   installed on a real kube-apiserver instead, where no pod runs.
//!
//! Long-running commands (`dev`, `kubectl get -w`) run until they have shown what the README
//! says they show. `bash .ci/run` is the test command itself. A line this test does not know
//! fails it, so a new README command cannot go untried.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{Cluster, Process, repo};

/// The README's shell lines in order, continuations joined, each with its comment dropped.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let mut out = Vec::new();
    let (mut shell, mut in_block, mut pending) = (false, false, String::new());
    for line in readme.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            in_block = !in_block;
            shell = in_block && info.trim() == "sh";
            continue;
        }
        if !shell {
            continue;
        }
        let code = match line.find(" #") {
            Some(at) if !line.starts_with('#') => line[..at].trim_end(),
            _ => line.trim_end(),
        };
        if code.trim_start().starts_with('#') || code.trim().is_empty() {
            continue;
        }
        pending.push_str(code.trim_start());
        match pending.strip_suffix('\\') {
            Some(open) => pending = format!("{} ", open.trim_end()),
            None => out.push(std::mem::take(&mut pending)),
        }
    }
    out
}

/// A bash in `dir`, with `keyfront` (as `cargo install` puts it), helm and kubectl on PATH.
struct Shell {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Shell {
    fn command(&self, line: &str) -> Command {
        let line = line.replace("cargo run --release --", "keyfront");
        let bin = Path::new(env!("CARGO_BIN_EXE_keyfront")).parent().unwrap();
        let tools = test_cluster::tools_dir();
        let path = format!(
            "{}:{}:{}",
            bin.display(),
            tools.display(),
            std::env::var("PATH").unwrap()
        );
        let mut command = Command::new("bash");
        command
            .args(["-c", &line])
            .current_dir(&self.dir)
            .env("PATH", path);
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Runs `line` to the end; its stdout, or a failure naming it.
    fn run(&self, line: &str) -> String {
        let out = self.command(line).output().unwrap();
        assert!(
            out.status.success(),
            "README command failed: {line}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a long-running `line`; its stdout lines arrive on the receiver.
    fn start(&self, line: &str) -> (Process, mpsc::Receiver<String>) {
        let mut child = self
            .command(&format!("exec {line}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        (Process(child), lines)
    }
}

/// Reads `lines` until one satisfies `wanted`, within `timeout`; returns it.
fn until(
    lines: &mpsc::Receiver<String>,
    timeout: Duration,
    what: &str,
    seen: &mut Vec<String>,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let end = Instant::now() + timeout;
    loop {
        match lines.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                seen.push(line.clone());
                if wanted(&line) {
                    return line;
                }
            }
            Err(_) => panic!(
                "{what}: not shown within {timeout:?}; printed:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// What `keyfront dev` printed that later commands use.
struct Dev {
    _process: Process,
    kubeconfig: String,
    cloudfront: String,
}

/// Runs a README `dev` line until it has shown what the README says: the kubeconfig, then a
/// `keyfront sign` line and a curl that it refreshes, which are run too and must pass the edge.
fn start_dev(shell: &Shell, line: &str) -> Dev {
    let (process, lines) = shell.start(line);
    let mut seen = Vec::new();
    let field = |line: &str| line.split_whitespace().last().unwrap().to_owned();
    let kubeconfig = field(&until(
        &lines,
        Duration::from_secs(60),
        "kubeconfig",
        &mut seen,
        |l| l.trim_start().starts_with("kubeconfig"),
    ));
    let cloudfront = field(&until(
        &lines,
        Duration::from_secs(5),
        "CloudFront",
        &mut seen,
        |l| l.contains("CloudFront/STS"),
    ));
    let curl = until(
        &lines,
        Duration::from_secs(60),
        "curl line",
        &mut seen,
        |l| l.contains("curl "),
    );
    // Said once the kubelet has mounted the key, after the first curl line.
    let sign = until(
        &lines,
        Duration::from_secs(30),
        "sign line",
        &mut seen,
        |l| l.contains("sign yourself:"),
    );
    let sign = sign
        .split("sign yourself:")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let curl = &curl[curl.find("curl ").unwrap()..];
    let fetched = shell.run(curl);
    assert!(fetched.starts_with("HTTP/1.1 200"), "{curl}\n{fetched}");
    let signed = shell.run(&sign);
    assert!(signed.trim().contains("Signature="), "{sign}: {signed}");
    Dev {
        _process: process,
        kubeconfig,
        cloudfront,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readmes_commands_do_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    for linked in ["charts", "examples"] {
        std::os::unix::fs::symlink(repo(linked), dir.path().join(linked)).unwrap();
    }
    let mut shell = Shell {
        dir: dir.path().to_owned(),
        env: Vec::new(),
    };
    let mut dev: Option<Dev> = None;
    let mut cluster: Option<Cluster> = None;
    let mut ran = Vec::new();
    for line in readme_commands() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["cargo", "run", "--release", "--", "dev", ..] => {
                drop(dev.take()); // Ctrl-C in the first terminal before starting it again
                let started = tokio::task::block_in_place(|| start_dev(&shell, &line));
                shell.env = vec![
                    (
                        "KEYFRONT_CLOUDFRONT_ENDPOINT".into(),
                        started.cloudfront.clone(),
                    ),
                    ("AWS_ACCESS_KEY_ID".into(), "dev".into()),
                    ("AWS_SECRET_ACCESS_KEY".into(), "dev".into()),
                ];
                dev = Some(started);
            }
            ["export", assignment, ..] if assignment.starts_with("KUBECONFIG=<") => {
                let kubeconfig = dev.as_ref().expect("dev runs").kubeconfig.clone();
                shell.env.push(("KUBECONFIG".into(), kubeconfig));
            }
            ["kubectl", "get", "skg", "-A", "-w"] => {
                let (_watch, lines) = shell.start(&line);
                let row = tokio::task::block_in_place(|| {
                    until(
                        &lines,
                        Duration::from_secs(60),
                        "the demo, Ready",
                        &mut Vec::new(),
                        |l| l.contains("demo") && l.contains("True"),
                    )
                });
                assert!(row.contains("default"), "{row}");
            }
            ["kubectl", "describe", "skg", "-n", "default", "demo"] => {
                let described = shell.run(&line);
                for shown in ["Conditions:", "SigningKeyActive", "Events:", "KeyActivated"] {
                    assert!(described.contains(shown), "no {shown}:\n{described}");
                }
            }
            ["kubectl", "create", "namespace", "streaming", "&&", ..] => {
                let applied = shell.run(&line);
                assert!(applied.contains("created"), "{applied}");
            }
            ["bash", ".ci/run"] => continue, // the test command: this test is part of it
            ["cargo", "install", "--path", "."] => {} // `keyfront` is on the shell's PATH
            ["docker", "build", ..] | ["kind", "load", ..] => continue, // no Docker engine here
            ["helm", "install", ..] => {
                let real = Cluster::real().await;
                let mut on_cluster = shell.env.clone();
                on_cluster.retain(|(k, _)| k != "KUBECONFIG");
                on_cluster.push(("KUBECONFIG".into(), real.kubeconfig().display().to_string()));
                let installed = Shell {
                    dir: shell.dir.clone(),
                    env: on_cluster,
                }
                .run(&line);
                assert!(installed.contains("STATUS: deployed"), "{installed}");
                cluster = Some(real);
            }
            ["keyfront", "iam-policy", "--account", "default", ">", file] => {
                let real = cluster.as_ref().expect("helm install ran first");
                let in_cluster = Shell {
                    dir: shell.dir.clone(),
                    env: vec![("KUBECONFIG".into(), real.kubeconfig().display().to_string())],
                };
                in_cluster.run(&line);
                let policy: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(dir.path().join(file)).unwrap()).unwrap();
                assert!(
                    policy.to_string().contains("cloudfront:UpdateKeyGroup"),
                    "{policy}"
                );
            }
            ["keyfront", "iam-policy", "--trust", "irsa", ..] => {
                let trust = shell.run(&line);
                assert!(trust.contains("sts:AssumeRoleWithWebIdentity"), "{trust}");
                assert!(
                    trust.contains("system:serviceaccount:keyfront:keyfront"),
                    "{trust}"
                );
            }
            ["keyfront", "check-account", "--distribution", _] => {
                let report = shell.run(&line);
                assert!(!report.contains("DENIED"), "{report}");
                assert!(report.contains("ListKeyGroups"), "{report}");
            }
            ["kubectl", "get", "skg", "-n", "video"] => {
                // The README's first SigningKeyGroup, applied in dev, where the `default`
                // account admits every namespace.
                shell.run("kubectl create namespace video");
                let manifest = first_signing_key_group();
                std::fs::write(dir.path().join("media.yaml"), manifest).unwrap();
                shell.run("kubectl apply -f media.yaml");
                let ready = "kubectl wait skg/media -n video --for=condition=Ready --timeout=60s";
                tokio::task::block_in_place(|| shell.run(ready));
                let listed = shell.run(&line);
                assert!(
                    listed.contains("media") && listed.contains("True"),
                    "{listed}"
                );
            }
            ["keyfront", "status", "media", "-n", "video"] => {
                let status = shell.run(&line);
                for shown in ["Ready", "Active", "E2EXAMPLE123", "KeyActivated"] {
                    assert!(status.contains(shown), "no {shown}:\n{status}");
                }
            }
            _ => panic!("README command this test does not know how to run: {line}"),
        }
        ran.push(line);
    }
    assert!(ran.len() >= 12, "ran only {ran:?}");
    println!("ran {} README commands:\n{}", ran.len(), ran.join("\n"));
}

/// The README's YAML block: its first SigningKeyGroup.
fn first_signing_key_group() -> String {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let start = readme.find("```yaml\n").unwrap() + "```yaml\n".len();
    let manifest = &readme[start..start + readme[start..].find("```").unwrap()];
    assert!(manifest.contains("kind: SigningKeyGroup"), "{manifest}");
    manifest.to_owned()
}

#[test]
fn every_shell_line_of_the_readme_is_read() {
    let commands = readme_commands();
    assert!(
        commands.contains(
            &"helm install keyfront charts/keyfront -n keyfront --create-namespace --set image.repository=keyfront --set image.tag=dev".to_owned()
        ),
        "{commands:#?}"
    );
    assert!(
        commands.contains(&"kubectl get skg -A -w".to_owned()),
        "{commands:#?}"
    );
}
