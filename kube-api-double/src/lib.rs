//! A Kubernetes API server double for keyfront's tests.
//!
//! No Kubernetes API server can be installed where keyfront is built, so its tests run against
//! this double. It speaks the Kubernetes HTTP API for what keyfront uses: CRDs (installed by
//! applying `crds/`), Secrets, Events, Leases and Namespaces; get/list with label and field
//! selectors and pagination; watch from a resourceVersion with bookmarks and `410 Gone`;
//! create; replace with resourceVersion conflicts; merge, JSON and server-side-apply patches
//! with field managers; the status subresource and `metadata.generation`; finalizers and
//! `deletionTimestamp`; ownerReference garbage collection; and admission of custom resources
//! against their CRD schema, defaults and CEL rules (422 naming the field).
//!
//! It serves `kube::Client` in-process ([`ApiDouble::client`]) and over HTTP on a loopback
//! port ([`ApiDouble::serve`], or `cargo run --example kube-api-double`), where kubectl works
//! against it. Known differences from a real API server are listed in `docs/kube-api-double.md`.

mod events;
mod faults;
mod fields;
mod http;
mod list_types;
mod openapi;
mod protobuf;
mod resources;
mod reviews;
mod schema;
mod selectors;
mod store;
mod table;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use serde_json::Value;

pub use http::AuditRecord;
pub use store::{EVENT_WINDOW, StatusError};

/// One in-memory API server. Clones share state.
#[derive(Clone, Debug)]
pub struct ApiDouble {
    shared: http::Shared,
}

impl Default for ApiDouble {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiDouble {
    /// A fresh cluster with the `default`, `kube-system` and `kube-public` namespaces, watch
    /// bookmarks every second and [`EVENT_WINDOW`] events of watch history.
    pub fn new() -> Self {
        Self::with_settings(Duration::from_secs(1), EVENT_WINDOW)
    }

    /// A fresh cluster with the given bookmark interval and watch history length.
    pub fn with_settings(bookmark_interval: Duration, event_window: usize) -> Self {
        Self {
            shared: http::Shared {
                store: Arc::new(Mutex::new(store::Store::new(event_window))),
                bookmark_interval,
                audit: Arc::default(),
                faults: Arc::default(),
                reviews: Arc::default(),
            },
        }
    }

    /// The HTTP API as an axum router (a tower service).
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(http::handle)
            // A real API server refuses request bodies over 3 MiB.
            .layer(axum::extract::DefaultBodyLimit::max(3 * 1024 * 1024))
            .with_state(self.shared.clone())
    }

    /// A `kube::Client` served in-process, with `default` as its namespace.
    pub fn client(&self) -> kube::Client {
        kube::Client::new(self.router(), "default")
    }

    /// Serves the API on `addr` (port 0 picks a free one) until the process ends.
    pub async fn serve(&self, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        let router = self.router().layer(axum::Extension(http::OverHttp));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(local)
    }

    /// Every resource request so far, oldest first (the audit log).
    pub fn audit(&self) -> Vec<AuditRecord> {
        self.shared
            .audit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Creates every object in a multi-document YAML file (CRDs first-class).
    pub fn create_from_yaml(&self, path: &Path) -> anyhow::Result<Vec<Value>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let mut created = Vec::new();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let object: Value = serde::Deserialize::deserialize(document)
                .with_context(|| format!("invalid YAML in {}", path.display()))?;
            if object.is_null() {
                continue;
            }
            created.push(self.create(object)?);
        }
        Ok(created)
    }

    /// Creates one object, found by its `apiVersion` and `kind`.
    pub fn create(&self, object: Value) -> anyhow::Result<Value> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .context("apiVersion is required")?;
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .context("kind is required")?;
        let mut store = self.shared.lock();
        let rt = resource_type(&store, api_version, kind)?;
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| rt.namespaced.then(|| "default".to_owned()));
        store
            .create(&rt, namespace.as_deref(), object, "kube-api-double")
            .map_err(|e| anyhow::anyhow!(e.message))
    }

    /// Changes a stored object bypassing admission, as data written by an older schema would
    /// look: for testing how a controller copes with what today's validation refuses.
    pub fn edit_unchecked(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) -> anyhow::Result<Value> {
        let mut store = self.shared.lock();
        let rt = resource_type(&store, api_version, kind)?;
        store
            .edit_unchecked(&rt, namespace, name, edit)
            .map_err(|e| anyhow::anyhow!(e.message))
    }

    /// From now on, each update or patch that comes over HTTP gets `409 Conflict` with
    /// probability `rate` (0 stops it), as when another writer changed the object first.
    pub fn set_write_conflict_rate(&self, rate: f64) {
        self.shared.faults.set_conflict_rate(rate);
    }

    /// From now on, `mutate` changes every `resource` (plural, e.g. `secrets`) written by
    /// create, update, patch or apply, as a mutating admission webhook does: before
    /// validation and storage, so the writer gets the mutated object back.
    pub fn add_mutating_webhook(
        &self,
        resource: &str,
        mutate: impl Fn(&mut serde_json::Value) + Send + Sync + 'static,
    ) {
        self.shared.lock().webhooks.push(store::MutatingWebhook {
            resource: resource.to_owned(),
            mutate: std::sync::Arc::new(mutate),
        });
    }

    /// From now on (`on`), requests over HTTP for `resource` (plural, e.g. `leases`) are
    /// accepted and never answered, as by a hung API server; `false` answers them again.
    pub fn hang(&self, resource: &str, on: bool) {
        self.shared.faults.set_hang(resource, on);
    }

    /// TokenReviews of `token` authenticate it as `user` in `groups`.
    pub fn add_token(&self, token: &str, user: &str, groups: &[&str]) {
        self.reviews().add_token(token, user, groups);
    }

    /// SubjectAccessReviews allow `user` to `get` the non-resource `path` (as a ClusterRole
    /// with `nonResourceURLs` bound to it would); `system:masters` may get any path.
    pub fn grant_path(&self, user: &str, path: &str) {
        self.reviews().grant_path(user, path);
    }

    fn reviews(&self) -> std::sync::MutexGuard<'_, reviews::Reviews> {
        self.shared
            .reviews
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends every open watch stream now, as an API server restart does; returns how many.
    pub fn drop_watches(&self) -> usize {
        self.shared.faults.drop_watches()
    }

    /// Conflicts injected and watch streams dropped so far.
    pub fn faults_injected(&self) -> (u64, u64) {
        let faults = &self.shared.faults;
        (faults.conflicts_injected(), faults.watches_dropped())
    }

    /// The current resourceVersion of the whole store.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().resource_version()
    }
}

/// The served resource of an `apiVersion` and `kind`.
fn resource_type(
    store: &store::Store,
    api_version: &str,
    kind: &str,
) -> anyhow::Result<resources::ResourceType> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    store
        .registry
        .in_group_version(group, version)
        .find(|t| t.kind == kind)
        .cloned()
        .with_context(|| format!("no resource for {api_version} {kind}"))
}

/// Writes a kubeconfig pointing at a double served on `addr`.
pub fn write_kubeconfig(path: &Path, addr: SocketAddr) -> anyhow::Result<()> {
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-api-double\n  cluster:\n    server: http://{addr}\ncontexts:\n- name: kube-api-double\n  context:\n    cluster: kube-api-double\n    user: tester\n    namespace: default\ncurrent-context: kube-api-double\nusers:\n- name: tester\n  user:\n    token: kube-api-double\n"
    );
    // Owner-only, as kubectl writes ~/.kube/config.
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(config.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}
