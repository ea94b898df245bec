//! The Kubernetes HTTP API in front of the store: discovery, CRUD, patch flavours, watch
//! streams with bookmarks, pagination, and server-side tables for `kubectl get`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{PatchKind, Propagation, StatusError, Store, Target, WatchEvent};

/// Shared state of one API server double.
#[derive(Clone, Debug)]
pub struct Shared {
    pub store: Arc<Mutex<Store>>,
    pub bookmark_interval: Duration,
    pub audit: Arc<Mutex<Vec<AuditRecord>>>,
    pub faults: Arc<crate::faults::Faults>,
    pub reviews: Arc<Mutex<crate::reviews::Reviews>>,
}

/// Marks requests that came over a socket ([`crate::ApiDouble::serve`]), not in-process.
#[derive(Clone, Copy, Debug)]
pub struct OverHttp;

/// One resource request, as an API server's audit log would show it (what RBAC decides on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`.
    pub verb: String,
    pub group: String,
    /// The plural, with `/status` for the status subresource.
    pub resource: String,
    pub namespace: Option<String>,
    pub user_agent: Option<String>,
    /// Came over HTTP (another process), not from an in-process client.
    pub over_http: bool,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The store a write goes to: the live one, or for a dry run a copy that is dropped after.
    fn writable(&self, dry_run: bool) -> Writable<'_> {
        let live = self.lock();
        if dry_run {
            Writable::DryRun(Box::new(live.dry_run_copy()))
        } else {
            Writable::Live(live)
        }
    }
}

enum Writable<'a> {
    Live(std::sync::MutexGuard<'a, Store>),
    DryRun(Box<Store>),
}

impl std::ops::Deref for Writable<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        match self {
            Self::Live(store) => store,
            Self::DryRun(store) => store,
        }
    }
}

impl std::ops::DerefMut for Writable<'_> {
    fn deref_mut(&mut self) -> &mut Store {
        match self {
            Self::Live(store) => store,
            Self::DryRun(store) => store,
        }
    }
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn error(e: StatusError) -> Response {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    )
}

/// Answers a TokenReview or SubjectAccessReview create (recorded as RBAC sees it).
fn review(
    shared: &Shared,
    group: &str,
    resource: &str,
    headers: &HeaderMap,
    over_http: bool,
    body: &Bytes,
    answer: impl FnOnce(&crate::reviews::Reviews, &Value) -> Value,
) -> Response {
    shared
        .audit
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(AuditRecord {
            verb: "create".to_owned(),
            group: group.to_owned(),
            resource: resource.to_owned(),
            namespace: None,
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            over_http,
        });
    let review: Value = serde_json::from_slice(body).unwrap_or_default();
    let reviews = shared
        .reviews
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    json_response(StatusCode::CREATED, &answer(&reviews, &review))
}

/// The one handler: routes by path shape, like the API server's path parser.
pub async fn handle(
    State(shared): State<Shared>,
    remote: Option<axum::Extension<OverHttp>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["version"] => json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-kube-api-double", "platform": "linux/amd64"}),
        ),
        ["api"] => json_response(
            StatusCode::OK,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        ["apis"] => json_response(StatusCode::OK, &group_list(&shared.lock())),
        ["api", "v1"] => json_response(StatusCode::OK, &resource_list(&shared.lock(), "", "v1")),
        ["apis", group, version] => json_response(
            StatusCode::OK,
            &resource_list(&shared.lock(), group, version),
        ),
        ["openapi", "v3"] => json_response(
            StatusCode::OK,
            &crate::openapi::index(&shared.lock().registry),
        ),
        ["openapi", "v3", "api", "v1"] => json_response(
            StatusCode::OK,
            &crate::openapi::document(&shared.lock().registry, "", "v1"),
        ),
        ["openapi", "v3", "apis", group, version] => json_response(
            StatusCode::OK,
            &crate::openapi::document(&shared.lock().registry, group, version),
        ),
        ["api", "v1", rest @ ..] => {
            let over_http = remote.is_some();
            resource(
                shared, "", "v1", rest, method, &headers, &query, body, over_http,
            )
            .await
        }
        ["apis", "authentication.k8s.io", "v1", "tokenreviews"] if method == Method::POST => {
            review(
                &shared,
                "authentication.k8s.io",
                "tokenreviews",
                &headers,
                remote.is_some(),
                &body,
                |r, v| r.token_review(v),
            )
        }
        ["apis", "authorization.k8s.io", "v1", "subjectaccessreviews"]
            if method == Method::POST =>
        {
            review(
                &shared,
                "authorization.k8s.io",
                "subjectaccessreviews",
                &headers,
                remote.is_some(),
                &body,
                |r, v| r.access_review(v),
            )
        }
        ["apis", group, version, rest @ ..] => {
            let over_http = remote.is_some();
            resource(
                shared, group, version, rest, method, &headers, &query, body, over_http,
            )
            .await
        }
        _ => error(StatusError::new(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource ({})",
                uri.path()
            ),
        )),
    }
}

fn group_list(store: &Store) -> Value {
    let groups: Vec<Value> = store
        .registry
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": vs, "preferredVersion": vs[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(store: &Store, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for rt in store.registry.in_group_version(group, version) {
        resources.push(rt.discovery_entry());
        if rt.status_subresource {
            resources.push(json!({"name": format!("{}/status", rt.plural), "singularName": "", "namespaced": rt.namespaced, "kind": rt.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

struct Request<'a> {
    rt: ResourceType,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    status: bool,
}

fn parse_resource<'a>(
    store: &Store,
    group: &str,
    version: &str,
    rest: &[&'a str],
) -> Result<Request<'a>, StatusError> {
    let find = |plural: &str| store.registry.find(group, version, plural).cloned();
    let not_found = || {
        StatusError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let (namespace, rest): (Option<&str>, &[&str]) = match rest {
        ["namespaces", ns, plural, ..] if find(plural).is_some_and(|rt| rt.namespaced) => {
            (Some(*ns), &rest[2..])
        }
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return Err(not_found()),
    };
    let rt = find(plural).ok_or_else(not_found)?;
    let status = match sub {
        None => false,
        Some("status") if rt.status_subresource || rt.kind == "Namespace" => true,
        Some(_) => return Err(not_found()),
    };
    Ok(Request {
        rt,
        namespace,
        name,
        status,
    })
}

fn manager(query: &HashMap<String, String>, headers: &HeaderMap) -> String {
    query.get("fieldManager").cloned().unwrap_or_else(|| {
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        agent.split('/').next().unwrap_or("unknown").to_owned()
    })
}

/// Parses a request body; with `fieldValidation=Strict`, fields the CRD schema does not
/// declare are an error instead of being pruned.
fn parse_body(
    rt: &ResourceType,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Value, StatusError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let value: Value = if content_type.contains("protobuf") {
        crate::protobuf::to_json(body)
            .map_err(|message| StatusError::new(415, "UnsupportedMediaType", message))?
    } else if content_type.contains("yaml") {
        serde_yaml::from_slice(body)
            .map_err(|e| StatusError::bad_request(format!("invalid YAML body: {e}")))?
    } else {
        serde_json::from_slice(body)
            .map_err(|e| StatusError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let strict = query.get("fieldValidation").is_some_and(|v| v == "Strict");
    if let (true, Some(schema), false) = (strict, &rt.schema, content_type.contains("json-patch")) {
        let unknown = crate::schema::unknown_fields(schema, &value);
        if !unknown.is_empty() {
            let fields: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            return Err(StatusError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                rt.kind,
                rt.version,
                rt.kind,
                fields.join(", ")
            )));
        }
    }
    Ok(value)
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    shared: Shared,
    group: &str,
    version: &str,
    rest: &[&str],
    method: Method,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: Bytes,
    over_http: bool,
) -> Response {
    let request = match parse_resource(&shared.lock(), group, version, rest) {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    if over_http {
        // A hung server accepts the request and answers nothing (until released).
        let plural = request.rt.plural.clone();
        shared.faults.pass(&plural).await;
    }
    let watching = query.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (&method, request.name) {
        (&Method::GET, None) if watching => "watch",
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, None) => "deletecollection",
        (&Method::DELETE, Some(_)) => "delete",
        _ => "unknown",
    };
    shared
        .audit
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(AuditRecord {
            verb: verb.to_owned(),
            group: group.to_owned(),
            resource: if request.status {
                format!("{}/status", request.rt.plural)
            } else {
                request.rt.plural.clone()
            },
            namespace: request.namespace.map(str::to_owned),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            over_http,
        });
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None => false,
        Some("All") => true,
        Some(other) => {
            return error(StatusError::bad_request(format!(
                "Invalid value: {other:?}: supported values: \"All\""
            )));
        }
    };
    if over_http && matches!(method, Method::PUT | Method::PATCH) && shared.faults.conflict() {
        return error(StatusError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                if group.is_empty() {
                    request.rt.plural.clone()
                } else {
                    format!("{}.{group}", request.rt.plural)
                },
                request.name.unwrap_or_default()
            ),
        ));
    }
    let manager = manager(query, headers);
    let ok = |object: Value| (StatusCode::OK, object);
    let result: Result<(StatusCode, Value), StatusError> = match (&method, request.name) {
        (&Method::GET, None) if watching => return watch(shared, request, query, headers),
        (&Method::GET, None) => return list(&shared, &request, query, headers),
        (&Method::GET, Some(name)) => {
            let store = shared.lock();
            let found = store.get(&request.rt, request.namespace, name);
            let as_table = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("as=Table"));
            match found {
                // `kubectl get KIND NAME` asks for a table of one row, with the printer
                // columns, as for a list.
                Ok(object) if as_table => {
                    let metadata = json!({"resourceVersion": store.resource_version().to_string()});
                    return json_response(
                        StatusCode::OK,
                        &crate::table::table(&request.rt, &[object], metadata),
                    );
                }
                other => other.map(ok),
            }
        }
        (&Method::POST, None) => parse_body(&request.rt, query, headers, &body)
            .and_then(|object| {
                shared
                    .writable(dry_run)
                    .create(&request.rt, request.namespace, object, &manager)
            })
            .map(|object| (StatusCode::CREATED, object)),
        (&Method::PUT, Some(name)) => {
            let target = Target {
                rt: &request.rt,
                namespace: request.namespace,
                name,
                status: request.status,
            };
            parse_body(&request.rt, query, headers, &body)
                .and_then(|object| shared.writable(dry_run).replace(target, object, &manager))
                .map(ok)
        }
        (&Method::PATCH, Some(name)) => {
            let target = Target {
                rt: &request.rt,
                namespace: request.namespace,
                name,
                status: request.status,
            };
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            parse_body(&request.rt, query, headers, &body)
                .and_then(|patch| {
                    let mut store = shared.writable(dry_run);
                    match content_type.split(';').next().unwrap_or_default().trim() {
                        "application/apply-patch+yaml" => {
                            if !query.contains_key("fieldManager") {
                                return Err(StatusError::bad_request("PATCH with apply requires a fieldManager"));
                            }
                            store.apply(target, &patch, &manager, query.get("force").is_some_and(|f| f == "true"))
                        }
                        "application/merge-patch+json" => store.patch(target, PatchKind::Merge, &patch, &manager),
                        "application/json-patch+json" => store.patch(target, PatchKind::Json, &patch, &manager),
                        "application/strategic-merge-patch+json" => store.patch(target, PatchKind::Strategic, &patch, &manager),
                        other => Err(StatusError::new(415, "UnsupportedMediaType", format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"))),
                    }
                })
                .map(ok)
        }
        (&Method::DELETE, Some(name)) => {
            let options: Value = if body.is_empty() {
                json!({})
            } else {
                serde_json::from_slice(&body).unwrap_or(json!({}))
            };
            let policy = query
                .get("propagationPolicy")
                .map(String::as_str)
                .or(options.get("propagationPolicy").and_then(Value::as_str));
            let propagation = if policy == Some("Orphan") {
                Propagation::Orphan
            } else {
                Propagation::Background
            };
            shared
                .writable(dry_run)
                .delete(&request.rt, request.namespace, name, propagation)
                .map(ok)
        }
        _ => Err(StatusError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on this path"),
        )),
    };
    match result {
        Ok((code, object)) => json_response(code, &object),
        Err(e) => error(e),
    }
}

fn selectors(
    query: &HashMap<String, String>,
) -> Result<(LabelSelector, FieldSelector), StatusError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(StatusError::bad_request)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str))
        .map_err(StatusError::bad_request)?;
    Ok((labels, fields))
}

fn object_key(o: &Value) -> (String, String) {
    let text = |f: &str| {
        o.pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("namespace"), text("name"))
}

fn list(
    shared: &Shared,
    request: &Request<'_>,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let (labels, fields) = match selectors(query) {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    let (mut items, resource_version) = {
        let store = shared.lock();
        let mut items = store.list(&request.rt, request.namespace, &labels, &fields);
        // Events are one store under two APIs: each lists the other's, converted.
        if crate::events::is_events(&request.rt.group, &request.rt.plural) {
            let other = crate::events::other_group(&request.rt.group);
            let version = "v1";
            if let Some(other_rt) = store.registry.find(other, version, "events") {
                items.extend(
                    store
                        .list(
                            other_rt,
                            request.namespace,
                            &Default::default(),
                            &Default::default(),
                        )
                        .iter()
                        .map(|e| crate::events::convert(e, other, &request.rt.group))
                        .filter(|e| labels.matches(e) && fields.matches(e)),
                );
                items.sort_by_key(object_key);
            }
        }
        (items, store.resource_version())
    };
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    if let Some(token) = query.get("continue").filter(|t| !t.is_empty()) {
        let after: Option<(String, String)> = engine
            .decode(token)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let Some(after) = after else {
            return error(StatusError::bad_request("invalid continue token"));
        };
        items.retain(|o| object_key(o) > after);
    }
    let mut metadata = json!({"resourceVersion": resource_version.to_string()});
    if let Some(limit) = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        && items.len() > limit
    {
        let remaining = items.len() - limit;
        items.truncate(limit);
        if let Some(last) = items.last() {
            let token = engine.encode(serde_json::to_vec(&object_key(last)).unwrap_or_default());
            metadata["continue"] = json!(token);
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains("as=PartialObjectMetadata") {
        let items: Vec<Value> = items.iter().map(metadata_only).collect();
        return json_response(
            StatusCode::OK,
            &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "items": items}),
        );
    }
    if accept.contains("as=Table") {
        return json_response(
            StatusCode::OK,
            &crate::table::table(&request.rt, &items, metadata),
        );
    }
    json_response(
        StatusCode::OK,
        &json!({"kind": format!("{}List", request.rt.kind), "apiVersion": request.rt.api_version(), "metadata": metadata, "items": items}),
    )
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn gone(message: &str) -> Bytes {
    event_line(
        "ERROR",
        &StatusError::new(410, "Expired", message).to_status(),
    )
}

fn watch(
    shared: Shared,
    request: Request<'_>,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let metadata_only_view = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let shape = move |object: Value| {
        if metadata_only_view {
            metadata_only(&object)
        } else {
            object
        }
    };
    let (labels, fields) = match selectors(query) {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    let since = query
        .get("resourceVersion")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v > 0);
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let rt = request.rt.clone();
    let namespace = request.namespace.map(str::to_owned);
    let (backlog, mut live, start_rv) = {
        let store = shared.lock();
        let live = store.subscribe();
        let backlog: Result<Vec<(String, Value)>, ()> = match since {
            None => Ok(store
                .list(&rt, namespace.as_deref(), &labels, &fields)
                .into_iter()
                .map(|o| ("ADDED".to_owned(), o))
                .collect()),
            Some(rv) => match store.events_since(rv) {
                None => Err(()),
                Some(events) => Ok(events
                    .iter()
                    .filter(|e| matches(e, &rt, namespace.as_deref(), &labels, &fields))
                    .map(|e| (e.kind.to_owned(), present(&rt, &e.object)))
                    .collect()),
            },
        };
        (backlog, live, store.resource_version())
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let interval = shared.bookmark_interval;
    let mut dropped = shared.faults.watch_ends();
    tokio::spawn(async move {
        let backlog = match backlog {
            Ok(b) => b,
            Err(()) => {
                let _ = tx.send(Ok(gone("too old resource version"))).await;
                return;
            }
        };
        for (kind, object) in backlog {
            if tx
                .send(Ok(event_line(&kind, &shape(object))))
                .await
                .is_err()
            {
                return;
            }
        }
        let mut last_rv = start_rv;
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            let expired = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = expired => return,
                _ = dropped.changed() => return,
                _ = ticker.tick(), if bookmarks => {
                    let bookmark = json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": last_rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
                    if tx.send(Ok(event_line("BOOKMARK", &bookmark))).await.is_err() { return; }
                }
                event = live.recv() => match event {
                    Ok(event) => {
                        if event.resource_version <= start_rv { continue; }
                        last_rv = event.resource_version;
                        if matches(&event, &rt, namespace.as_deref(), &labels, &fields)
                            && tx.send(Ok(event_line(event.kind, &shape(present(&rt, &event.object))))).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(Ok(gone("the watcher fell behind the event window"))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The `PartialObjectMetadata` form of an object, as served for
/// `Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`.
fn metadata_only(object: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": object.get("metadata").cloned().unwrap_or(Value::Null)})
}

fn present(rt: &ResourceType, object: &Value) -> Value {
    let mut o = object.clone();
    o["apiVersion"] = json!(rt.api_version());
    o["kind"] = json!(rt.kind);
    o
}

fn matches(
    event: &WatchEvent,
    rt: &ResourceType,
    namespace: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> bool {
    event.storage == rt.storage_key()
        && namespace.is_none_or(|ns| {
            event
                .object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                == Some(ns)
        })
        && labels.matches(&event.object)
        && fields.matches(&event.object)
}
