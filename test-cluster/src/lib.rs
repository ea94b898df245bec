//! A real Kubernetes control plane for tests: etcd, kube-apiserver and kube-controller-manager
//! (its garbage collector and namespace controller) on loopback, with TLS and a client-certificate
//! admin, started fresh for one test and stopped when the handle drops.
//!
//! The binaries come from `tests/control-plane/build.sh`, which builds them from the Go module
//! proxy into a cache outside the checkout. A test that needs them and finds none fails with that
//! command: it never passes or skips silently. `KEYFRONT_TOOLS` moves the cache.
//!
//! Written here rather than taken from a library: envtest (controller-runtime) is Go, and no Rust
//! crate starts a control plane; what it takes is a few certificates and three processes.

mod certs;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// The versions `tests/control-plane/build.sh` builds (one file, read by both).
const VERSIONS: &str = include_str!("../../tests/control-plane/versions.env");

/// The Kubernetes release the binaries are built from.
pub fn kubernetes_version() -> &'static str {
    VERSIONS
        .lines()
        .find_map(|line| line.strip_prefix("KUBERNETES_VERSION="))
        .map(str::trim)
        .unwrap_or_else(|| fail("tests/control-plane/versions.env names no KUBERNETES_VERSION"))
}

/// How long a control plane may take to answer `/readyz` (about 3 s on an idle 2-core machine)
/// before the attempt is given up and the next one starts on fresh ports: a loopback port picked
/// free can be taken by another test's connection before the component binds it.
const READY_WITHIN: Duration = Duration::from_secs(45);
const ATTEMPTS: usize = 3;

/// Where `tests/control-plane/build.sh` puts the binaries of [`kubernetes_version`].
pub fn tools_dir() -> PathBuf {
    let root = std::env::var_os("KEYFRONT_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("keyfront-tools"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/keyfront-tools"))
        })
        .unwrap_or_else(|| PathBuf::from("/tmp/keyfront-tools"));
    root.join(format!("k8s-{}", kubernetes_version()))
}

/// The path of a built tool (`kube-apiserver`, `helm`, `kstatus`, ...); panics naming the
/// command that builds it when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let path = tools_dir().join(name);
    if !path.is_file() {
        fail(&format!(
            "{} is missing: build the real Kubernetes tools with `bash tests/control-plane/build.sh` \
             (from the Go module proxy, cached outside the checkout)",
            path.display()
        ));
    }
    path
}

#[allow(clippy::panic)] // a test fails loudly, naming the fix
fn fail(message: &str) -> ! {
    panic!("{message}")
}

/// One request in the API server's audit log.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, ...
    pub verb: String,
    pub user: String,
    pub user_agent: Option<String>,
    /// `""` for the core group.
    pub group: String,
    /// The plural; `None` for a non-resource URL such as `/readyz`.
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub request_uri: String,
    pub code: u16,
}

/// A component, run under a small shell guard that holds a pipe from this process: when the pipe
/// closes (the handle drops, or the test process exits however it exits, even killed) the guard
/// stops the component. No control plane outlives its test run.
struct Running(Child);

const GUARD: &str = r#""$@" & child=$!; read -r _; kill -9 "$child" 2>/dev/null; wait "$child""#;

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// One running control plane, its files (certificates, logs, etcd data) in a temporary directory.
pub struct ControlPlane {
    // Drop order: the controller manager and API server go before etcd, then the files.
    processes: Vec<Running>,
    server: String,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager, and waits until the API server is
    /// ready and its bootstrap namespaces exist.
    pub async fn start() -> ControlPlane {
        let mut failures = Vec::new();
        for attempt in 1..=ATTEMPTS {
            match Self::try_start().await {
                Ok(plane) => return plane,
                Err(logs) => failures.push(format!("attempt {attempt}:\n{logs}")),
            }
        }
        fail(&format!(
            "the control plane was not ready within {READY_WITHIN:?}, {ATTEMPTS} times; its logs:\n{}",
            failures.join("\n")
        ))
    }

    async fn try_start() -> Result<ControlPlane, String> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let (etcd, apiserver, kcm) = (
            tool("etcd"),
            tool("kube-apiserver"),
            tool("kube-controller-manager"),
        );
        let dir = tempfile::Builder::new()
            .prefix("keyfront-control-plane-")
            .tempdir()
            .unwrap_or_else(|e| fail(&format!("a temporary directory: {e}")));
        let files =
            certs::write(dir.path()).unwrap_or_else(|e| fail(&format!("certificates: {e}")));
        let (client_port, peer_port, secure_port) = (free_port(), free_port(), free_port());
        let server = format!("https://127.0.0.1:{}", secure_port.port());
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, files.kubeconfig(&server))
            .unwrap_or_else(|e| fail(&format!("writing {}: {e}", kubeconfig.display())));

        let mut processes = Vec::new();
        let etcd_url = format!("http://{client_port}");
        let peer_url = format!("http://{peer_port}");
        processes.push(spawn(
            dir.path(),
            "etcd",
            Command::new(etcd).args([
                "--data-dir",
                &path(&dir.path().join("etcd")),
                "--listen-client-urls",
                &etcd_url,
                "--advertise-client-urls",
                &etcd_url,
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
                "--initial-cluster",
                &format!("default={peer_url}"),
                "--unsafe-no-fsync",
                "--log-level",
                "warn",
            ]),
        ));
        processes.push(spawn(
            dir.path(),
            "kube-apiserver",
            Command::new(apiserver).args([
                "--etcd-servers",
                &etcd_url,
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
                // Loopback may not be a Service endpoint; nothing here routes to the Service.
                "--endpoint-reconciler-type",
                "none",
                "--secure-port",
                &secure_port.port().to_string(),
                "--tls-cert-file",
                &path(&files.server_cert),
                "--tls-private-key-file",
                &path(&files.server_key),
                "--client-ca-file",
                &path(&files.ca_cert),
                "--service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
                "--service-account-key-file",
                &path(&files.service_account_public),
                "--service-account-signing-key-file",
                &path(&files.service_account_key),
                "--authorization-mode",
                "RBAC",
                "--service-cluster-ip-range",
                "10.0.0.0/24",
                "--cert-dir",
                &path(&dir.path().join("apiserver-certs")),
                "--enable-priority-and-fairness=false",
                "--audit-policy-file",
                &path(&files.audit_policy),
                "--audit-log-path",
                &path(&dir.path().join("audit.log")),
                "--audit-log-format",
                "json",
                "--audit-log-mode",
                "blocking",
            ]),
        ));
        let plane = ControlPlane {
            processes,
            server,
            kubeconfig,
            dir,
        };
        plane.wait_until_ready().await;
        let kcm = spawn(
            plane.dir.path(),
            "kube-controller-manager",
            Command::new(kcm).args([
                "--kubeconfig",
                &path(&plane.kubeconfig),
                "--controllers",
                "garbagecollector,namespace",
                "--leader-elect=false",
                "--secure-port",
                "0",
            ]),
        );
        // The controller manager stops before the API server it talks to.
        let mut plane = plane;
        plane.processes.insert(0, kcm);
        Ok(plane)
    }

    /// One control plane for the whole test process, started on first use (for tests that
    /// isolate themselves by namespace). It stops when the process exits.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<ControlPlane> = OnceLock::new();
        SHARED.get_or_init(|| {
            std::thread::spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap_or_else(|e| fail(&format!("a runtime: {e}")))
                    .block_on(ControlPlane::start())
            })
            .join()
            .unwrap_or_else(|_| fail("starting the shared control plane failed (see above)"))
        })
    }

    async fn wait_until_ready(&self) -> bool {
        let client = self.client().await;
        let started = Instant::now();
        loop {
            let ready = client
                .request_text(
                    http::Request::get("/readyz")
                        .body(Vec::new())
                        .unwrap_or_default(),
                )
                .await
                .is_ok_and(|body| body.trim() == "ok");
            // The API server creates `default` just after it first reports ready.
            if ready && self.has_default_namespace(&client).await {
                return true;
            }
            if started.elapsed() > READY_WITHIN {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn has_default_namespace(&self, client: &Client) -> bool {
        let request = http::Request::get("/api/v1/namespaces/default").body(Vec::new());
        match request {
            Ok(request) => client.request_text(request).await.is_ok(),
            Err(_) => false,
        }
    }

    /// A kubeconfig file for the admin (`system:masters`), for kubectl, helm and `keyfront run`.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A kubeconfig at `path` that authenticates with a bearer token (a ServiceAccount's, say),
    /// trusting the control plane's CA: the API server's RBAC then decides every call.
    pub fn write_kubeconfig_with_token(&self, token: &str, path: &Path) {
        let ca = self.dir.path().join("ca.crt");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: token\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: token\ncurrent-context: test\n",
            self.server,
            ca.display()
        );
        std::fs::write(path, text)
            .unwrap_or_else(|e| fail(&format!("writing {}: {e}", path.display())));
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// A client as the admin.
    pub async fn client(&self) -> Client {
        client_for(&self.kubeconfig).await
    }

    /// Every request the API server answered, from its audit log (written before the response
    /// goes out, so a request whose answer a test saw is in it).
    pub fn audit(&self) -> Vec<AuditEvent> {
        let log = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["stage"] == "ResponseComplete")
            .map(|event| {
                let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
                let object = &event["objectRef"];
                AuditEvent {
                    verb: text(&event["verb"]).unwrap_or_default(),
                    user: text(&event["user"]["username"]).unwrap_or_default(),
                    user_agent: text(&event["userAgent"]),
                    group: text(&object["apiGroup"]).unwrap_or_default(),
                    resource: text(&object["resource"]),
                    subresource: text(&object["subresource"]),
                    namespace: text(&object["namespace"]),
                    request_uri: text(&event["requestURI"]).unwrap_or_default(),
                    code: event["responseStatus"]["code"].as_u64().unwrap_or_default() as u16,
                }
            })
            .collect()
    }

    /// The last lines each component logged, for a failure message.
    pub fn logs(&self) -> String {
        ["etcd", "kube-apiserver", "kube-controller-manager"]
            .iter()
            .map(|name| {
                let log = std::fs::read_to_string(self.dir.path().join(format!("{name}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {name}\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A client from a kubeconfig file (its current context).
pub async fn client_for(kubeconfig: &Path) -> Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let file = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| fail(&format!("reading {}: {e}", kubeconfig.display())));
    let config = Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| fail(&format!("kubeconfig {}: {e}", kubeconfig.display())));
    Client::try_from(config).unwrap_or_else(|e| fail(&format!("a client: {e}")))
}

fn spawn(dir: &Path, name: &str, command: &mut Command) -> Running {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))
        .unwrap_or_else(|e| fail(&format!("{name}'s log: {e}")));
    let err = log
        .try_clone()
        .unwrap_or_else(|e| fail(&format!("{name}'s log: {e}")));
    let mut guarded = Command::new("bash");
    guarded
        .args(["-c", GUARD, name])
        .arg(command.get_program())
        .args(command.get_args());
    let child = guarded
        .stdin(Stdio::piped())
        .stdout(log)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| fail(&format!("starting {name}: {e}")));
    Running(child)
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| fail(&format!("a free loopback port: {e}")))
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
