//! The Kubernetes a test runs against. [`Cluster::real`] starts a real control plane of its own
//! (kube-apiserver, etcd and kube-controller-manager, from `tests/control-plane/build.sh`);
//! [`Cluster::double`] serves the API double on a loopback port. The end-to-end suites use the
//! real one; a test on the double says why (its fault injection, or a request log only it keeps).

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube_api_double::{ApiDouble, AuditRecord};
use test_cluster::ControlPlane;

use super::{kubectl, repo, wait_for};

enum Backend {
    Real(ControlPlane),
    Double(ApiDouble),
}

pub struct Cluster {
    backend: Backend,
    kubeconfig: PathBuf,
    client: Client,
}

impl Cluster {
    /// A fresh real control plane for this test alone (about 3 s to start).
    pub async fn real() -> Cluster {
        let plane = ControlPlane::start().await;
        Cluster {
            kubeconfig: plane.kubeconfig().to_owned(),
            client: plane.client().await,
            backend: Backend::Real(plane),
        }
    }

    /// The API double on a loopback port, its kubeconfig written into `dir`.
    pub async fn double(dir: &Path) -> Cluster {
        let double = ApiDouble::new();
        let addr = double.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let kubeconfig = dir.join("kubeconfig");
        kube_api_double::write_kubeconfig(&kubeconfig, addr).unwrap();
        Cluster {
            kubeconfig,
            client: double.client(),
            backend: Backend::Double(double),
        }
    }

    /// [`Cluster::install_keyfront`], taking and giving back the cluster.
    pub async fn with_keyfront(self, keyring_namespace: &str) -> Cluster {
        self.install_keyfront(keyring_namespace).await;
        self
    }

    /// Raises the `default` account's stated quotas, as an admin does once AWS has raised them
    /// (keyfront admits objects by them); tests with many objects raise the emulator's too.
    pub async fn raise_default_account_quotas(&self, public_keys: u32, key_groups: u32) {
        let accounts: kube::Api<keyfront::api::CloudFrontAccount> = kube::Api::all(self.client());
        let quotas = serde_json::json!({"publicKeys": public_keys, "keyGroups": key_groups});
        accounts
            .patch(
                "default",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"spec": {"quotas": quotas}})),
            )
            .await
            .unwrap();
    }

    /// keyfront's CRDs installed and served, the namespace `keyring_namespace`, and the
    /// `default` CloudFrontAccount of `examples/accounts/single-team.yaml`.
    pub async fn install_keyfront(&self, keyring_namespace: &str) {
        self.install_crds().await;
        self.create_namespaces(&[keyring_namespace]).await;
        self.kubectl(&[
            "apply",
            "-f",
            &repo("examples/accounts/single-team.yaml").to_string_lossy(),
        ])
        .await;
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API double behind this cluster; panics on a real one (the test is double-only).
    pub fn api_double(&self) -> &ApiDouble {
        match &self.backend {
            Backend::Double(double) => double,
            Backend::Real(_) => {
                panic!("this step needs the API double, and the test runs on a real control plane")
            }
        }
    }

    /// Every request the cluster answered, from the real API server's audit log or the
    /// double's request record, in the double's terms (`resource` is `plural[/subresource]`).
    pub fn audit(&self) -> Vec<AuditRecord> {
        match &self.backend {
            Backend::Double(double) => double.audit(),
            Backend::Real(plane) => plane
                .audit()
                .into_iter()
                .filter_map(|event| {
                    let resource = event.resource?;
                    Some(AuditRecord {
                        verb: event.verb,
                        group: event.group,
                        resource: match event.subresource {
                            Some(sub) => format!("{resource}/{sub}"),
                            None => resource,
                        },
                        namespace: event.namespace,
                        user_agent: event.user_agent,
                        over_http: true,
                    })
                })
                .collect(),
        }
    }

    /// The real control plane behind this cluster; panics on the double.
    pub fn control_plane(&self) -> &ControlPlane {
        match &self.backend {
            Backend::Real(plane) => plane,
            Backend::Double(_) => panic!("this step needs a real control plane"),
        }
    }

    /// `kubectl` with this cluster's kubeconfig, off the async runtime.
    pub async fn kubectl(&self, args: &[&str]) {
        let kubeconfig = self.kubeconfig.clone();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            kubectl(&kubeconfig, &args);
        })
        .await
        .unwrap();
    }

    /// Server-side applies one object of any kind (as `kubectl apply --server-side`).
    pub async fn apply(&self, object: &serde_json::Value) {
        self.apply_all(std::slice::from_ref(object)).await;
    }

    /// Server-side applies `objects` with one kubectl call. They go as a stream of documents,
    /// not a `List`: kubectl validates a `List` against the server's OpenAPI, which the API
    /// double does not serve for it.
    pub async fn apply_all(&self, objects: &[serde_json::Value]) {
        let stream: String = objects.iter().map(|o| format!("---\n{o}\n")).collect();
        let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
        std::fs::write(file.path(), stream).unwrap();
        self.kubectl(&[
            "apply",
            "--server-side",
            "-f",
            &file.path().to_string_lossy(),
        ])
        .await;
    }

    /// Creates (server-side applies) the namespaces `names`, with one kubectl call.
    pub async fn create_namespaces(&self, names: &[&str]) {
        let namespaces: Vec<serde_json::Value> = names
            .iter()
            .map(|name| serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
            .collect();
        self.apply_all(&namespaces).await;
    }

    /// A token of the ServiceAccount `namespace/name` (created if missing), from the API
    /// server's TokenRequest API, as a projected token a pod would mount.
    pub async fn service_account_token(&self, namespace: &str, name: &str) -> String {
        use k8s_openapi::api::authentication::v1::TokenRequest;
        use k8s_openapi::api::core::v1::ServiceAccount;
        self.apply(&serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}))
            .await;
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client(), namespace);
        let request: TokenRequest = serde_json::from_value(
            serde_json::json!({"spec": {"audiences": [], "expirationSeconds": 3600}}),
        )
        .unwrap();
        let issued: TokenRequest = accounts
            .create_subresource("token", name, &Default::default(), &request)
            .await
            .unwrap();
        issued.status.unwrap().token.unwrap()
    }

    /// Applies `crds/` and waits until the API server serves both kinds (a real one serves a
    /// new CRD once it is Established).
    pub async fn install_crds(&self) {
        self.kubectl(&[
            "apply",
            "--server-side",
            "-f",
            &repo("crds").to_string_lossy(),
        ])
        .await;
        for (kind, plural) in [
            ("SigningKeyGroup", "signingkeygroups"),
            ("CloudFrontAccount", "cloudfrontaccounts"),
        ] {
            let gvk = GroupVersionKind::gvk("keyfront.dev", "v1alpha1", kind);
            let api: Api<DynamicObject> = Api::all_with(
                self.client(),
                &ApiResource::from_gvk_with_plural(&gvk, plural),
            );
            wait_for(
                &format!("{plural} to be served"),
                Duration::from_secs(30),
                async || api.list(&ListParams::default().limit(1)).await.is_ok(),
            )
            .await;
        }
    }
}
