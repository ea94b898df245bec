//! The resource types the double serves: a few built-ins and whatever CRDs are applied.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// One served resource type (one group/version/plural).
#[derive(Debug, Clone)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// `openAPIV3Schema` for custom resources; built-ins are not schema-validated.
    pub schema: Option<Value>,
    pub status_subresource: bool,
    pub printer_columns: Vec<Value>,
    /// Custom resources track `metadata.generation`.
    pub custom: bool,
}

impl ResourceType {
    fn builtin(
        group: &str,
        version: &str,
        plural: &str,
        kind: &str,
        namespaced: bool,
        short: &[&str],
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            schema: None,
            status_subresource: false,
            printer_columns: Vec::new(),
            custom: false,
        }
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Objects are stored once per group and plural, whatever version they are served at.
    pub fn storage_key(&self) -> (String, String) {
        (self.group.clone(), self.plural.clone())
    }

    /// Display name for errors: `signingkeygroups.keyfront.dev` or `secrets`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn discovery_entry(&self) -> Value {
        let mut verbs = vec![
            "create", "delete", "get", "list", "patch", "update", "watch",
        ];
        verbs.sort_unstable();
        json!({
            "name": self.plural, "singularName": self.singular, "namespaced": self.namespaced,
            "kind": self.kind, "verbs": verbs, "shortNames": self.short_names,
        })
    }
}

/// All served resource types.
#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            types: vec![
                ResourceType::builtin("", "v1", "namespaces", "Namespace", false, &["ns"]),
                ResourceType::builtin("", "v1", "secrets", "Secret", true, &[]),
                ResourceType::builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
                ResourceType::builtin("", "v1", "events", "Event", true, &["ev"]),
                ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"]),
                ResourceType::builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
                // What a Helm chart installs: stored as given (built-ins are not validated).
                ResourceType::builtin("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
                ResourceType::builtin("", "v1", "services", "Service", true, &["svc"]),
                ResourceType::builtin("apps", "v1", "deployments", "Deployment", true, &["deploy"]),
                ResourceType::builtin(
                    "policy",
                    "v1",
                    "poddisruptionbudgets",
                    "PodDisruptionBudget",
                    true,
                    &["pdb"],
                ),
                ResourceType::builtin(
                    "rbac.authorization.k8s.io",
                    "v1",
                    "clusterroles",
                    "ClusterRole",
                    false,
                    &[],
                ),
                ResourceType::builtin(
                    "rbac.authorization.k8s.io",
                    "v1",
                    "clusterrolebindings",
                    "ClusterRoleBinding",
                    false,
                    &[],
                ),
                ResourceType::builtin(
                    "rbac.authorization.k8s.io",
                    "v1",
                    "roles",
                    "Role",
                    true,
                    &[],
                ),
                ResourceType::builtin(
                    "rbac.authorization.k8s.io",
                    "v1",
                    "rolebindings",
                    "RoleBinding",
                    true,
                    &[],
                ),
                ResourceType::builtin(
                    "apiextensions.k8s.io",
                    "v1",
                    "customresourcedefinitions",
                    "CustomResourceDefinition",
                    false,
                    &["crd", "crds"],
                ),
            ],
        }
    }
}

impl Registry {
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in &self.types {
            let versions = groups.entry(t.group.clone()).or_default();
            if !versions.contains(&t.version) {
                versions.push(t.version.clone());
            }
        }
        groups
    }

    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceType> + 'a {
        self.types
            .iter()
            .filter(move |t| t.group == group && t.version == version)
    }

    /// Registers (or replaces) the served versions of a CustomResourceDefinition.
    pub fn register_crd(&mut self, crd: &Value) -> Result<(), String> {
        let spec = crd.get("spec").ok_or("spec is required")?;
        let group = spec
            .get("group")
            .and_then(Value::as_str)
            .ok_or("spec.group is required")?;
        let names = spec.get("names").ok_or("spec.names is required")?;
        let plural = names
            .get("plural")
            .and_then(Value::as_str)
            .ok_or("spec.names.plural is required")?;
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .ok_or("spec.names.kind is required")?;
        let singular = names
            .get("singular")
            .and_then(Value::as_str)
            .map_or_else(|| kind.to_lowercase(), str::to_owned);
        let short_names: Vec<String> = names
            .get("shortNames")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .ok_or("spec.versions is required")?;
        self.types
            .retain(|t| !(t.group == group && t.plural == plural));
        for v in versions
            .iter()
            .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(false))
        {
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .ok_or("spec.versions[].name is required")?;
            self.types.push(ResourceType {
                group: group.into(),
                version: name.into(),
                plural: plural.into(),
                singular: singular.clone(),
                kind: kind.into(),
                namespaced,
                short_names: short_names.clone(),
                schema: v.pointer("/schema/openAPIV3Schema").cloned(),
                status_subresource: v.pointer("/subresources/status").is_some(),
                printer_columns: v
                    .get("additionalPrinterColumns")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                custom: true,
            });
        }
        Ok(())
    }

    /// Stops serving the custom resource a CRD defined.
    pub fn unregister_crd(&mut self, crd: &Value) {
        let (group, plural) = crd_storage_key(crd);
        self.types
            .retain(|t| !(t.custom && t.group == group && t.plural == plural));
    }
}

/// The (group, plural) a CRD's objects are stored under.
pub fn crd_storage_key(crd: &Value) -> (String, String) {
    let text = |pointer: &str| {
        crd.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("/spec/group"), text("/spec/names/plural"))
}
