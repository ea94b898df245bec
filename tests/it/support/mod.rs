//! What the end-to-end tests share: child processes that die with the test, free loopback
//! ports, kubectl and SDK clients against the doubles, waiting, and the verifying edge.

pub mod cluster;
pub mod rbac;
pub mod stack;

pub use cluster::Cluster;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_cloudfront::config::{BehaviorVersion, Credentials, Region};
use k8s_openapi::api::core::v1::Secret;
use keyfront::api::SigningKeyGroup;
use keyfront::cloudfront::sdk::SdkCloudFront;
use kube::Api;

/// Kills the child when the test ends, however it ends.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

pub fn keyfront(args: &[&str], log: &Path) -> Process {
    let log = std::fs::File::create(log).unwrap();
    Process(
        Command::new(env!("CARGO_BIN_EXE_keyfront"))
            .args(args)
            .env("RUST_LOG", "keyfront=debug,info")
            .env("AWS_ACCESS_KEY_ID", "AKIDEMULATOR")
            .env("AWS_SECRET_ACCESS_KEY", "emulator")
            .env("AWS_REGION", "us-east-1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start keyfront"),
    )
}

/// Runs kubectl with `kubeconfig`, asserting it succeeds; returns what it printed.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl is installed (bash .ci/run installs it)");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The AWS SDK's own CloudFront client for the emulator at `addr`, for what the port does not
/// read (the raw DistributionConfig, a distribution's domain name).
pub fn raw_cloudfront(addr: SocketAddr) -> aws_sdk_cloudfront::Client {
    aws_sdk_cloudfront::Client::from_conf(
        aws_sdk_cloudfront::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(format!("http://{addr}"))
            .build(),
    )
}

/// keyfront's CloudFront port on the emulator at `addr`.
pub fn cloudfront(addr: SocketAddr) -> SdkCloudFront {
    SdkCloudFront::new(raw_cloudfront(addr))
}

/// The domain name the emulator at `addr` serves distribution `id` under (the edge's `Host`).
pub async fn domain_name(addr: SocketAddr, id: &str) -> String {
    raw_cloudfront(addr)
        .get_distribution()
        .id(id)
        .send()
        .await
        .unwrap()
        .distribution
        .unwrap()
        .domain_name
}

pub async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Prints the operator's log if the test fails, so CI shows why.
pub struct ShowLogOnFailure(pub PathBuf);

impl Drop for ShowLogOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- operator log (last 60 lines) ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

pub async fn ready(objects: &Api<SigningKeyGroup>, name: &str) -> bool {
    let Ok(Some(object)) = objects.get_opt(name).await else {
        return false;
    };
    object.status.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

pub fn data(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// One plain GET (the emulator's test controls); returns the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    http_get_with_status(addr, path)
        .await
        .unwrap_or_else(|| panic!("GET {path} from {addr} got no HTTP answer"))
        .1
}

/// One plain GET; the status and body, or `None` if nothing listens.
pub async fn http_get_with_status(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    http_get_as(addr, path, None).await
}

/// One GET with `Authorization: Bearer <token>` when a token is given; status and body.
pub async fn http_get_as(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8(response).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// One plain POST of a JSON body (the emulator's test controls); returns the status.
pub async fn http_post(addr: SocketAddr, path: &str, json: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let head = String::from_utf8_lossy(&response[..response.len().min(64)]).into_owned();
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The emulator's request log (`/_emulator/requests`): account, caller, operation, time and
/// user agent of every CloudFront and STS call, in order.
pub async fn emulator_requests(
    cf_addr: SocketAddr,
) -> Vec<keyfront::emulator::accounts::RequestRecord> {
    serde_json::from_str(&http_get(cf_addr, "/_emulator/requests").await).unwrap()
}

/// Whether a CloudFront operation (as the emulator's request log names it) writes.
pub fn is_cloudfront_write(operation: &str) -> bool {
    ["Create", "Update", "Delete"]
        .iter()
        .any(|verb| operation.starts_with(verb))
}

/// One GET through the verifying edge; returns the HTTP status.
pub async fn edge_get(edge: SocketAddr, host: &str, path_and_query: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(edge).await.unwrap();
    let request =
        format!("GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let head = String::from_utf8_lossy(&response[..response.len().min(64)]).into_owned();
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// kstatus's verdict on each object (`Current`, `InProgress`, `Failed`, `Terminating`, ...) and
/// its message, computed by sigs.k8s.io/cli-utils itself (`tests/control-plane/kstatus`).
pub fn kstatus(objects: &[serde_json::Value]) -> Vec<(String, String)> {
    use std::io::Write as _;
    let mut child = Command::new(test_cluster::tool("kstatus"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(objects).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kstatus: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    verdicts
        .iter()
        .map(|v| {
            (
                v["status"].as_str().unwrap().to_owned(),
                v["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The Python with `tests/python/requirements.txt` installed:
/// `$KEYFRONT_PYTHON`, else `.venv/bin/python` (made by `.ci/run`), else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("KEYFRONT_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// `keyfront run` as its own process against the API double at `kubeconfig` and the emulator at
/// `cloudfront` (also its STS): fast polls and backoff, JSON logs at debug into `log`, then
/// `extra` flags.
pub fn operator(kubeconfig: &Path, cloudfront: SocketAddr, extra: &[&str], log: &Path) -> Process {
    let endpoint = format!("http://{cloudfront}");
    let child = Command::new(env!("CARGO_BIN_EXE_keyfront"))
        .args([
            "--log-format",
            "json",
            "run",
            "--cloudfront-endpoint",
            &endpoint,
        ])
        .args(["--sts-endpoint", &endpoint, "--propagation-poll", "1s"])
        // The suites rotate every few seconds; the floor has its own tests.
        .args(["--min-rotation-interval", "1s"])
        .args(["--backoff-base", "200ms", "--backoff-max", "5s"])
        .args(extra)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "keyfront=debug,info")
        .env("AWS_ACCESS_KEY_ID", "AKIDEMULATOR")
        .env("AWS_SECRET_ACCESS_KEY", "emulator")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Process(child)
}

/// The kubelet of a pod that mounts Secret `name` as a volume at `dir`: the first version is
/// projected before this returns, then the Secret is looked at every 4 s and the mount swapped
/// when it changed, until the handle is aborted.
pub async fn mount_secret(
    secrets: &kube::Api<Secret>,
    name: &str,
    dir: &Path,
) -> tokio::task::JoinHandle<()> {
    let first = secrets.get(name).await.unwrap();
    keyfront::dev::kubelet::project(dir, 0, first.data.as_ref().unwrap()).unwrap();
    let (secrets, name, dir) = (secrets.clone(), name.to_owned(), dir.to_path_buf());
    tokio::spawn(async move {
        let mut current = first.data;
        for version in 1.. {
            tokio::time::sleep(Duration::from_secs(4)).await;
            let secret = secrets.get(&name).await.unwrap();
            if secret.data != current {
                current = secret.data.clone();
                keyfront::dev::kubelet::project(&dir, version, secret.data.as_ref().unwrap())
                    .unwrap();
            }
        }
    })
}

/// What `tests/python/terraform_setup.py` made: Terraform's key, the key group `media-signing`
/// holding it, and a distribution whose default behavior trusts the group.
#[derive(serde::Deserialize)]
pub struct TerraformState {
    pub key_id: String,
    pub key_group_id: String,
    pub distribution_id: String,
    pub domain_name: String,
}

/// Runs `tests/python/<script>` with `args`; its stdout, or a failure naming its stderr.
pub fn python_script(script: &str, args: &[&str]) -> Vec<u8> {
    let output = Command::new(python())
        .arg(script)
        .args(args)
        .current_dir(repo("tests/python"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// boto3, playing Terraform, makes [`TerraformState`] in the CloudFront at `endpoint`.
pub fn terraform_setup(endpoint: &str) -> TerraformState {
    let state = python_script(
        "terraform_setup.py",
        &[endpoint, "media-signing", "rsa-1.pub.pem"],
    );
    serde_json::from_slice(&state).unwrap()
}
