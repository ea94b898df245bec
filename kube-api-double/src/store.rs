//! The object store: every write the API server performs, with its rules.
//!
//! Owns: resource versions, the watch event log, create/replace/patch/apply/delete semantics,
//! the status subresource, `metadata.generation`, finalizers and `deletionTimestamp`,
//! ownerReference garbage collection, namespace existence, and admission of custom resources
//! (schema, defaults, CEL). The HTTP layer only translates requests into these calls.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::fields::{self, Writer};
use crate::resources::{Registry, ResourceType};
use crate::schema;
use crate::selectors::{FieldSelector, LabelSelector};

/// By default, how many past events a watch can resume from before it gets `410 Gone`.
pub const EVENT_WINDOW: usize = 10_000;

/// An API error, rendered as a `metav1.Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl StatusError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", rt.qualified()),
        )
        .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural}))
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        status
    }
}

pub type Result<T> = std::result::Result<T, StatusError>;

/// A watch event as kept in the log.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub resource_version: u64,
    pub storage: (String, String),
    pub kind: &'static str,
    pub object: Value,
}

type ObjectKey = (String, String);

/// How a DELETE treats dependents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Orphan,
}

/// Patch flavours other than server-side apply (see [`Store::apply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    /// Strategic merge is served as a JSON merge patch (lists replace rather than merge by key).
    Strategic,
}

/// What a write is aimed at.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub rt: &'a ResourceType,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub status: bool,
}

/// A mutating admission webhook: changes every object of one resource (plural, e.g.
/// `secrets`) written by create, update, patch or apply, before validation and storage.
#[derive(Clone)]
pub struct MutatingWebhook {
    pub resource: String,
    pub mutate: Arc<dyn Fn(&mut Value) + Send + Sync>,
}

impl std::fmt::Debug for MutatingWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MutatingWebhook")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct Store {
    pub registry: Registry,
    pub webhooks: Vec<MutatingWebhook>,
    resource_version: u64,
    objects: HashMap<(String, String), BTreeMap<ObjectKey, Value>>,
    log: VecDeque<Arc<WatchEvent>>,
    event_window: usize,
    events: broadcast::Sender<Arc<WatchEvent>>,
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn uid() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn meta<'a>(object: &'a Value, field: &str) -> Option<&'a Value> {
    object.get("metadata").and_then(|m| m.get(field))
}

fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    meta(object, field).and_then(Value::as_str)
}

fn set_meta(object: &mut Value, field: &str, value: Value) {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"][field] = value;
}

fn finalizers(object: &Value) -> Vec<String> {
    meta(object, "finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether two objects differ in anything but bookkeeping metadata.
fn same_content(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        v
    };
    strip(a) == strip(b)
}

/// Spec-like content: everything except metadata and status.
fn generation_content(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    v
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl Store {
    /// A store that keeps `event_window` past events for watches to resume from.
    pub fn new(event_window: usize) -> Self {
        let (events, _) = broadcast::channel(event_window.max(1));
        let mut store = Self {
            registry: Registry::default(),
            webhooks: Vec::new(),
            resource_version: 1,
            objects: HashMap::new(),
            log: VecDeque::new(),
            event_window: event_window.max(1),
            events,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let rt = store.registry.find("", "v1", "namespaces").cloned();
            if let Some(rt) = rt {
                let _ = store.create(
                    &rt,
                    None,
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    "kube-apiserver",
                );
            }
        }
        store
    }
}

impl Store {
    /// A copy to carry out a dry run (`?dryRun=All`) on: the same types and objects, but no
    /// watcher and no event history, so the write is validated and answered, then dropped
    /// unseen.
    pub fn dry_run_copy(&self) -> Self {
        let (events, _) = broadcast::channel(1);
        Self {
            registry: self.registry.clone(),
            webhooks: self.webhooks.clone(),
            resource_version: self.resource_version,
            objects: self.objects.clone(),
            log: VecDeque::new(),
            event_window: 1,
            events,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.events.subscribe()
    }

    /// Events after `since`, or `None` when `since` is older than the retained window.
    pub fn events_since(&self, since: u64) -> Option<Vec<Arc<WatchEvent>>> {
        let oldest = self
            .log
            .front()
            .map_or(self.resource_version, |e| e.resource_version);
        if since + 1 < oldest && since < self.resource_version {
            return None;
        }
        Some(
            self.log
                .iter()
                .filter(|e| e.resource_version > since)
                .cloned()
                .collect(),
        )
    }

    fn record(&mut self, storage: (String, String), kind: &'static str, object: Value) {
        let event = Arc::new(WatchEvent {
            resource_version: self.resource_version,
            storage,
            kind,
            object,
        });
        self.log.push_back(event.clone());
        while self.log.len() > self.event_window {
            self.log.pop_front();
        }
        let _ = self.events.send(event);
    }

    fn next_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    fn key(rt: &ResourceType, namespace: Option<&str>, name: &str) -> ObjectKey {
        (
            if rt.namespaced {
                namespace.unwrap_or_default().to_owned()
            } else {
                String::new()
            },
            name.to_owned(),
        )
    }

    fn table(&self, rt: &ResourceType) -> Option<&BTreeMap<ObjectKey, Value>> {
        self.objects.get(&rt.storage_key())
    }

    /// Serves a stored object at the requested version.
    fn present(rt: &ResourceType, mut object: Value) -> Value {
        object["apiVersion"] = json!(rt.api_version());
        object["kind"] = json!(rt.kind);
        object
    }

    pub fn get(&self, rt: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Value> {
        self.table(rt)
            .and_then(|t| t.get(&Self::key(rt, namespace, name)))
            .map(|o| Self::present(rt, o.clone()))
            .ok_or_else(|| StatusError::not_found(rt, name))
    }

    /// Changes a stored object without admission (see [`crate::ApiDouble::edit_unchecked`]).
    pub fn edit_unchecked(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Value> {
        let mut object = self.get(rt, namespace, name)?;
        edit(&mut object);
        let rv = self.next_version();
        set_meta(&mut object, "resourceVersion", json!(rv.to_string()));
        self.objects
            .entry(rt.storage_key())
            .or_default()
            .insert(Self::key(rt, namespace, name), object.clone());
        self.record(rt.storage_key(), "MODIFIED", object.clone());
        Ok(object)
    }

    /// Objects of a type, sorted by namespace and name, after `after` (for `continue`).
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        self.table(rt)
            .into_iter()
            .flat_map(|t| t.iter())
            .filter(|((ns, _), _)| namespace.is_none_or(|n| !rt.namespaced || ns == n))
            .map(|(_, o)| Self::present(rt, o.clone()))
            .filter(|o| labels.matches(o) && fields.matches(o))
            .collect()
    }

    fn check_namespace(&self, rt: &ResourceType, namespace: Option<&str>) -> Result<()> {
        if !rt.namespaced {
            return Ok(());
        }
        let ns = namespace
            .filter(|n| !n.is_empty())
            .ok_or_else(|| StatusError::bad_request("the namespace of the object must be set"))?;
        let exists = self
            .objects
            .get(&(String::new(), "namespaces".into()))
            .is_some_and(|t| t.contains_key(&(String::new(), ns.to_owned())));
        if exists {
            Ok(())
        } else {
            Err(
                StatusError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
                    .with_details(json!({"name": ns, "kind": "namespaces"})),
            )
        }
    }

    /// Whether `namespace` is being deleted (its objects are being removed).
    fn terminating(&self, namespace: &str) -> bool {
        self.objects
            .get(&(String::new(), "namespaces".into()))
            .and_then(|t| t.get(&(String::new(), namespace.to_owned())))
            .is_some_and(|ns| meta(ns, "deletionTimestamp").is_some())
    }

    fn admit(&self, rt: &ResourceType, mut object: Value, old: Option<&Value>) -> Result<Value> {
        if rt.group.is_empty() && rt.kind == "Secret" {
            merge_string_data(&mut object);
        }
        for webhook in self.webhooks.iter().filter(|w| w.resource == rt.plural) {
            (webhook.mutate)(&mut object);
        }
        let Some(schema) = &rt.schema else {
            return Ok(object);
        };
        schema::admit(schema, &object, old).map_err(|errors| {
            let name = meta_str(&object, "name").unwrap_or_default();
            let causes: Vec<Value> = errors
                .iter()
                .map(|e| json!({"reason": e.reason, "message": e.detail, "field": e.field}))
                .collect();
            let summary: Vec<String> = errors.iter().map(schema::FieldError::message).collect();
            let message = if summary.len() == 1 {
                format!(
                    "{}.{} \"{name}\" is invalid: {}",
                    rt.kind, rt.group, summary[0]
                )
            } else {
                format!(
                    "{}.{} \"{name}\" is invalid: [{}]",
                    rt.kind,
                    rt.group,
                    summary.join(", ")
                )
            };
            StatusError::new(422, "Invalid", message).with_details(
                json!({"name": name, "group": rt.group, "kind": rt.kind, "causes": causes}),
            )
        })
    }

    /// POST.
    pub fn create(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        object: Value,
        manager: &str,
    ) -> Result<Value> {
        self.create_as(rt, namespace, object, manager, None)
    }

    fn create_as(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
        manager: &str,
        applied: Option<&Value>,
    ) -> Result<Value> {
        if !object.is_object() {
            return Err(StatusError::bad_request("the body must be an object"));
        }
        let namespace = if rt.namespaced {
            namespace
                .or(meta_str(&object, "namespace"))
                .map(str::to_owned)
        } else {
            None
        };
        if let (Some(path_ns), Some(body_ns)) =
            (namespace.as_deref(), meta_str(&object, "namespace"))
            && path_ns != body_ns
        {
            return Err(StatusError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        self.check_namespace(rt, namespace.as_deref())?;
        let name = match (meta_str(&object, "name"), meta_str(&object, "generateName")) {
            (Some(n), _) if !n.is_empty() => n.to_owned(),
            (_, Some(prefix)) => format!("{prefix}{}", &uid()[..5]),
            _ => {
                return Err(StatusError::new(
                    422,
                    "Invalid",
                    format!(
                        "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                        rt.kind
                    ),
                ));
            }
        };
        if !valid_name(&name) {
            return Err(StatusError::new(
                422,
                "Invalid",
                format!(
                    "{} \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
                    rt.kind
                ),
            ));
        }
        // NamespaceLifecycle admission: nothing new in a namespace being deleted.
        if let Some(ns) = namespace.as_deref().filter(|ns| self.terminating(ns)) {
            return Err(StatusError::new(
                403,
                "Forbidden",
                format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rt.plural
                ),
            )
            .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural})));
        }
        let key = Self::key(rt, namespace.as_deref(), &name);
        if self.table(rt).is_some_and(|t| t.contains_key(&key)) {
            return Err(StatusError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", rt.qualified()),
            )
            .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural})));
        }
        if rt.status_subresource
            && let Some(m) = object.as_object_mut()
        {
            m.remove("status");
        }
        set_meta(&mut object, "name", json!(name));
        if let Some(ns) = &namespace {
            set_meta(&mut object, "namespace", json!(ns));
        }
        if let Some(m) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
                "managedFields",
            ] {
                m.remove(f);
            }
        }
        let mut object = self.admit(rt, Self::present(rt, object), None)?;
        set_meta(&mut object, "uid", json!(uid()));
        set_meta(&mut object, "creationTimestamp", json!(now()));
        if rt.custom {
            set_meta(&mut object, "generation", json!(1));
        }
        if rt.kind == "Namespace" {
            object["status"] = json!({"phase": "Active"});
        }
        let time = now();
        let writer = Writer {
            manager,
            subresource: "",
            api_version: &rt.api_version(),
            time: &time,
            schema: rt.schema.as_ref(),
        };
        match applied {
            Some(applied) => {
                let owned = fields::apply(None, applied, &writer, true)
                    .map_err(|_| StatusError::new(409, "Conflict", "apply conflict on create"))?;
                fields::write(&mut object, &fields::read(&owned));
            }
            None => fields::record_update(None, &mut object, &writer),
        }
        if rt.kind == "CustomResourceDefinition" {
            self.registry.register_crd(&object).map_err(|e| {
                StatusError::new(
                    422,
                    "Invalid",
                    format!("CustomResourceDefinition \"{name}\" is invalid: {e}"),
                )
            })?;
            object["status"] = json!({
                "conditions": [{"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now()},
                               {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now()}],
                "acceptedNames": object.pointer("/spec/names").cloned().unwrap_or(json!({})),
                "storedVersions": object.pointer("/spec/versions").and_then(Value::as_array).map(|v| v.iter().filter(|x| x.get("storage") == Some(&json!(true))).filter_map(|x| x.get("name").cloned()).collect::<Vec<_>>()).unwrap_or_default(),
            });
        }
        let rv = self.next_version();
        set_meta(&mut object, "resourceVersion", json!(rv.to_string()));
        self.objects
            .entry(rt.storage_key())
            .or_default()
            .insert(key, object.clone());
        self.record(rt.storage_key(), "ADDED", object.clone());
        Ok(object)
    }

    /// Commits a new version of an existing object (PUT, PATCH, apply on an existing object).
    fn commit(
        &mut self,
        target: Target<'_>,
        old: Value,
        mut candidate: Value,
        writer: &Writer<'_>,
        ownership: Ownership<'_>,
    ) -> Result<Value> {
        let rt = target.rt;
        if target.status {
            let status = candidate.get("status").cloned();
            candidate = old.clone();
            match status {
                Some(s) => candidate["status"] = s,
                None => {
                    if let Some(m) = candidate.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        } else if rt.status_subresource {
            match old.get("status") {
                Some(s) => candidate["status"] = s.clone(),
                None => {
                    if let Some(m) = candidate.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        for identity in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match meta(&old, identity) {
                Some(v) => set_meta(&mut candidate, identity, v.clone()),
                None => {
                    if let Some(m) = candidate.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove(identity);
                    }
                }
            }
        }
        if meta(&old, "deletionTimestamp").is_some() {
            let before = finalizers(&old);
            if let Some(added) = finalizers(&candidate)
                .into_iter()
                .find(|f| !before.contains(f))
            {
                return Err(StatusError::new(
                    422,
                    "Invalid",
                    format!(
                        "{} \"{}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers [\"{added}\"]",
                        rt.kind, target.name
                    ),
                ));
            }
        }
        let mut candidate = self.admit(rt, Self::present(rt, candidate), Some(&old))?;
        if rt.custom && generation_content(&candidate) != generation_content(&old) {
            let generation = meta(&old, "generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            set_meta(&mut candidate, "generation", json!(generation + 1));
        }
        match ownership {
            Ownership::Update => fields::record_update(Some(&old), &mut candidate, writer),
            Ownership::Applied(owned) => fields::write(&mut candidate, &fields::read(owned)),
        }
        if same_content(&candidate, &old) && fields::read(&candidate) == fields::read(&old) {
            return Ok(old);
        }
        if rt.kind == "CustomResourceDefinition" {
            self.registry
                .register_crd(&candidate)
                .map_err(|e| StatusError::new(422, "Invalid", e))?;
        }
        let rv = self.next_version();
        set_meta(&mut candidate, "resourceVersion", json!(rv.to_string()));
        let key = Self::key(rt, target.namespace, target.name);
        if meta(&candidate, "deletionTimestamp").is_some() && finalizers(&candidate).is_empty() {
            return self.remove(rt, key, candidate, Propagation::Background);
        }
        self.objects
            .entry(rt.storage_key())
            .or_default()
            .insert(key, candidate.clone());
        self.record(rt.storage_key(), "MODIFIED", candidate.clone());
        Ok(candidate)
    }

    /// PUT: replaces the object; a stale `metadata.resourceVersion` is a 409 conflict.
    pub fn replace(&mut self, target: Target<'_>, object: Value, manager: &str) -> Result<Value> {
        let old = self.get(target.rt, target.namespace, target.name)?;
        if meta_str(&object, "name").is_some_and(|n| n != target.name) {
            return Err(StatusError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        if let Some(rv) = meta_str(&object, "resourceVersion").filter(|v| !v.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(conflict(
                target,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let (time, api_version) = (now(), target.rt.api_version());
        let writer = Self::writer_for(target, manager, &api_version, &time);
        self.commit(target, old, object, &writer, Ownership::Update)
    }

    fn writer_for<'a>(
        target: Target<'a>,
        manager: &'a str,
        api_version: &'a str,
        time: &'a str,
    ) -> Writer<'a> {
        Writer {
            manager,
            subresource: if target.status { "status" } else { "" },
            api_version,
            time,
            schema: target.rt.schema.as_ref(),
        }
    }

    /// Server-side apply: merges the applied configuration with field ownership; creates the
    /// object when it does not exist.
    pub fn apply(
        &mut self,
        target: Target<'_>,
        body: &Value,
        manager: &str,
        force: bool,
    ) -> Result<Value> {
        if meta_str(body, "name").is_some_and(|n| n != target.name) {
            return Err(StatusError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let (time, api_version) = (now(), target.rt.api_version());
        let writer = Self::writer_for(target, manager, &api_version, &time);
        let old = match self.get(target.rt, target.namespace, target.name) {
            Ok(old) => old,
            Err(e) if e.code == 404 && !target.status => {
                let mut object = body.clone();
                set_meta(&mut object, "name", json!(target.name));
                return self.create_as(target.rt, target.namespace, object, manager, Some(body));
            }
            Err(e) => return Err(e),
        };
        let merged = fields::apply(Some(&old), body, &writer, force).map_err(|conflicts| {
            let list: Vec<String> = conflicts.iter().map(|c| format!("conflict with \"{}\": {}", c.manager, c.field)).collect();
            let causes: Vec<Value> = conflicts.iter().map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", c.manager), "field": c.field})).collect();
            StatusError::new(409, "Conflict", format!("Apply failed with {} conflict{}: {}", conflicts.len(), if conflicts.len() == 1 { "" } else { "s" }, list.join(", ")))
                .with_details(json!({"name": target.name, "group": target.rt.group, "kind": target.rt.plural, "causes": causes}))
        })?;
        self.commit(
            target,
            old,
            merged.clone(),
            &writer,
            Ownership::Applied(&merged),
        )
    }

    /// PATCH with a merge, JSON or strategic-merge patch.
    pub fn patch(
        &mut self,
        target: Target<'_>,
        kind: PatchKind,
        body: &Value,
        manager: &str,
    ) -> Result<Value> {
        let (time, api_version) = (now(), target.rt.api_version());
        let writer = Self::writer_for(target, manager, &api_version, &time);
        let old = self.get(target.rt, target.namespace, target.name)?;
        let mut patched = old.clone();
        match kind {
            PatchKind::Merge | PatchKind::Strategic => json_patch::merge(&mut patched, body),
            PatchKind::Json => {
                let ops: json_patch::Patch = serde_json::from_value(body.clone())
                    .map_err(|e| StatusError::bad_request(format!("invalid JSON patch: {e}")))?;
                json_patch::patch(&mut patched, &ops).map_err(|e| {
                    StatusError::new(
                        422,
                        "Invalid",
                        format!("the JSON patch could not be applied: {e}"),
                    )
                })?;
            }
        }
        if let Some(rv) = meta_str(&patched, "resourceVersion").filter(|v| !v.is_empty())
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(conflict(
                target,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        self.commit(target, old, patched, &writer, Ownership::Update)
    }

    /// DELETE: marks objects with finalizers, removes the rest and collects their dependents.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        propagation: Propagation,
    ) -> Result<Value> {
        let mut object = self.get(rt, namespace, name)?;
        let key = Self::key(rt, namespace, name);
        if rt.group.is_empty() && rt.kind == "Namespace" {
            return Ok(self.terminate_namespace(object));
        }
        if !finalizers(&object).is_empty() {
            if meta(&object, "deletionTimestamp").is_none() {
                set_meta(&mut object, "deletionTimestamp", json!(now()));
                set_meta(&mut object, "deletionGracePeriodSeconds", json!(0));
                if rt.custom {
                    let generation = meta(&object, "generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    set_meta(&mut object, "generation", json!(generation + 1));
                }
                let rv = self.next_version();
                set_meta(&mut object, "resourceVersion", json!(rv.to_string()));
                self.objects
                    .entry(rt.storage_key())
                    .or_default()
                    .insert(key, object.clone());
                self.record(rt.storage_key(), "MODIFIED", object.clone());
            }
            return Ok(object);
        }
        self.remove(rt, key, object, propagation)
    }

    fn remove(
        &mut self,
        rt: &ResourceType,
        key: ObjectKey,
        mut object: Value,
        propagation: Propagation,
    ) -> Result<Value> {
        if let Some(t) = self.objects.get_mut(&rt.storage_key()) {
            t.remove(&key);
        }
        let rv = self.next_version();
        set_meta(&mut object, "resourceVersion", json!(rv.to_string()));
        self.record(rt.storage_key(), "DELETED", object.clone());
        if rt.kind == "CustomResourceDefinition" {
            self.drop_custom_objects(&object);
        }
        if let Some(owner_uid) = meta_str(&object, "uid").map(str::to_owned) {
            self.collect_dependents(&owner_uid, propagation);
        }
        if rt.namespaced && self.terminating(&key.0) {
            self.finish_namespace(&key.0);
        }
        Ok(object)
    }

    fn all_types(&self) -> Vec<ResourceType> {
        let mut seen = std::collections::HashSet::new();
        self.registry
            .groups()
            .iter()
            .flat_map(|(g, versions)| {
                versions
                    .iter()
                    .flat_map(move |v| self.registry.in_group_version(g, v))
            })
            .filter(|rt| seen.insert(rt.storage_key()))
            .cloned()
            .collect()
    }

    fn collect_dependents(&mut self, owner_uid: &str, propagation: Propagation) {
        for rt in self.all_types() {
            let dependents: Vec<(ObjectKey, Value)> = self
                .table(&rt)
                .into_iter()
                .flat_map(|t| t.iter())
                .filter(|(_, o)| {
                    meta(o, "ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|refs| {
                            refs.iter()
                                .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid))
                        })
                })
                .map(|(k, o)| (k.clone(), o.clone()))
                .collect();
            for ((ns, name), mut dependent) in dependents {
                let namespace = (!ns.is_empty()).then_some(ns.as_str());
                match propagation {
                    Propagation::Background => {
                        let _ = self.delete(&rt, namespace, &name, Propagation::Background);
                    }
                    Propagation::Orphan => {
                        let old = dependent.clone();
                        if let Some(refs) = dependent
                            .get_mut("metadata")
                            .and_then(|m| m.get_mut("ownerReferences"))
                            .and_then(Value::as_array_mut)
                        {
                            refs.retain(|r| {
                                r.get("uid").and_then(Value::as_str) != Some(owner_uid)
                            });
                        }
                        let target = Target {
                            rt: &rt,
                            namespace,
                            name: &name,
                            status: false,
                        };
                        let time = now();
                        let api_version = rt.api_version();
                        let writer = Writer {
                            manager: "kube-controller-manager",
                            subresource: "",
                            api_version: &api_version,
                            time: &time,
                            schema: rt.schema.as_ref(),
                        };
                        let _ = self.commit(target, old, dependent, &writer, Ownership::Update);
                    }
                }
            }
        }
    }

    fn drop_custom_objects(&mut self, crd: &Value) {
        let (group, plural) = crate::resources::crd_storage_key(crd);
        if let Some(table) = self.objects.remove(&(group.clone(), plural.clone())) {
            for (_, object) in table {
                self.next_version();
                self.record((group.clone(), plural.clone()), "DELETED", object);
            }
        }
        self.registry.unregister_crd(crd);
    }

    /// DELETE of a Namespace, as the API server and the namespace controller do it: the
    /// namespace turns `Terminating` (no new content), every object in it is deleted — those
    /// with finalizers stay, marked for deletion, until their controllers remove them — and the
    /// namespace goes when it is empty.
    fn terminate_namespace(&mut self, mut namespace: Value) -> Value {
        let name = meta_str(&namespace, "name").unwrap_or_default().to_owned();
        if meta(&namespace, "deletionTimestamp").is_none() {
            set_meta(&mut namespace, "deletionTimestamp", json!(now()));
            namespace["spec"] = json!({"finalizers": ["kubernetes"]});
            namespace["status"] = json!({"phase": "Terminating"});
            let rv = self.next_version();
            set_meta(&mut namespace, "resourceVersion", json!(rv.to_string()));
            let storage = (String::new(), "namespaces".to_owned());
            self.objects
                .entry(storage.clone())
                .or_default()
                .insert((String::new(), name.clone()), namespace.clone());
            self.record(storage, "MODIFIED", namespace.clone());
        }
        for rt in self.all_types().into_iter().filter(|t| t.namespaced) {
            for object in self.names_in(&rt, &name) {
                let _ = self.delete(&rt, Some(&name), &object, Propagation::Background);
            }
        }
        self.finish_namespace(&name);
        namespace
    }

    /// The namespace controller's last step: a terminating namespace with nothing left goes.
    fn finish_namespace(&mut self, namespace: &str) {
        let empty = self
            .all_types()
            .iter()
            .filter(|t| t.namespaced)
            .all(|rt| self.names_in(rt, namespace).is_empty());
        if !empty {
            return;
        }
        let storage = (String::new(), "namespaces".to_owned());
        let key = (String::new(), namespace.to_owned());
        if let Some(mut object) = self.objects.get_mut(&storage).and_then(|t| t.remove(&key)) {
            let rv = self.next_version();
            set_meta(&mut object, "resourceVersion", json!(rv.to_string()));
            self.record(storage, "DELETED", object);
        }
    }

    fn names_in(&self, rt: &ResourceType, namespace: &str) -> Vec<String> {
        self.table(rt)
            .into_iter()
            .flat_map(|t| t.keys())
            .filter(|(ns, _)| ns == namespace)
            .map(|(_, n)| n.clone())
            .collect()
    }
}

enum Ownership<'a> {
    Update,
    Applied(&'a Value),
}

fn conflict(target: Target<'_>, why: &str) -> StatusError {
    StatusError::new(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{}\": {why}",
            target.rt.qualified(),
            target.name
        ),
    )
    .with_details(json!({"name": target.name, "group": target.rt.group, "kind": target.rt.plural}))
}

/// A Secret's write-only `stringData` is merged into `data` (base64), winning over `data`.
fn merge_string_data(secret: &mut Value) {
    use base64::Engine as _;
    let Some(Value::Object(strings)) = secret.as_object_mut().and_then(|o| o.remove("stringData"))
    else {
        return;
    };
    if !secret["data"].is_object() {
        secret["data"] = json!({});
    }
    for (key, value) in strings {
        let text = value.as_str().unwrap_or_default();
        secret["data"][key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}
