//! The Kubernetes calls `keyfront run` makes, as RBAC sees them: one table that two tests hold
//! the code and the chart to. `tests/it/operator/tenancy_e2e.rs` checks that every request the real
//! operator sends to the API double is in the table; `tests/it/install/chart.rs` checks that the roles
//! Helm renders grant every entry and nothing beyond the table.

use serde_json::Value;

/// Where a call lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A cluster-scoped resource.
    Cluster,
    /// A watched namespace (cluster-wide when every namespace is watched).
    Tenant,
    /// The operator's own namespace, where the keyrings live.
    Keyring,
    /// The operator's own state in its namespace: the leader-election Lease and the cluster
    /// identity record (a Role of their own, whatever is watched).
    Lease,
}

/// (API group, resource, verb, where). `signingkeygroups/finalizers` `update` is never sent:
/// the API server checks it when keyfront sets a controller ownerReference on an app Secret.
pub const OPERATOR_CALLS: &[(&str, &str, &str, Place)] = &[
    // Who may read /metrics (delegated authentication and authorization).
    (
        "authentication.k8s.io",
        "tokenreviews",
        "create",
        Place::Cluster,
    ),
    (
        "authorization.k8s.io",
        "subjectaccessreviews",
        "create",
        Place::Cluster,
    ),
    ("keyfront.dev", "cloudfrontaccounts", "get", Place::Cluster),
    ("keyfront.dev", "cloudfrontaccounts", "list", Place::Cluster),
    (
        "keyfront.dev",
        "cloudfrontaccounts",
        "watch",
        Place::Cluster,
    ),
    (
        "keyfront.dev",
        "cloudfrontaccounts/status",
        "patch",
        Place::Cluster,
    ),
    ("", "namespaces", "get", Place::Cluster),
    ("", "namespaces", "list", Place::Cluster),
    ("", "namespaces", "watch", Place::Cluster),
    ("keyfront.dev", "signingkeygroups", "get", Place::Tenant),
    ("keyfront.dev", "signingkeygroups", "list", Place::Tenant),
    ("keyfront.dev", "signingkeygroups", "watch", Place::Tenant),
    ("keyfront.dev", "signingkeygroups", "patch", Place::Tenant),
    (
        "keyfront.dev",
        "signingkeygroups/status",
        "patch",
        Place::Tenant,
    ),
    (
        "keyfront.dev",
        "signingkeygroups/finalizers",
        "update",
        Place::Tenant,
    ),
    ("", "secrets", "get", Place::Tenant),
    ("", "secrets", "list", Place::Tenant),
    ("", "secrets", "watch", Place::Tenant),
    ("", "secrets", "create", Place::Tenant),
    ("", "secrets", "update", Place::Tenant),
    ("", "secrets", "patch", Place::Tenant),
    ("", "secrets", "delete", Place::Tenant),
    // spec.keyGroup.idConfigMap (server-side apply: create and patch).
    ("", "configmaps", "get", Place::Tenant),
    ("", "configmaps", "create", Place::Tenant),
    ("", "configmaps", "patch", Place::Tenant),
    ("events.k8s.io", "events", "create", Place::Tenant),
    ("events.k8s.io", "events", "patch", Place::Tenant),
    ("", "secrets", "get", Place::Keyring),
    ("", "secrets", "list", Place::Keyring),
    ("", "secrets", "create", Place::Keyring),
    ("", "secrets", "update", Place::Keyring),
    ("", "secrets", "delete", Place::Keyring),
    ("coordination.k8s.io", "leases", "get", Place::Lease),
    ("coordination.k8s.io", "leases", "create", Place::Lease),
    ("coordination.k8s.io", "leases", "update", Place::Lease),
    ("", "configmaps", "get", Place::Lease),
    ("", "configmaps", "create", Place::Lease),
];

/// Whether a table entry covers a call.
pub fn in_table(group: &str, resource: &str, verb: &str, place: Place) -> bool {
    OPERATOR_CALLS
        .iter()
        .any(|&(g, r, v, p)| g == group && r == resource && v == verb && p == place)
}

/// Whether an RBAC rule list (a Role's or ClusterRole's `rules`, as JSON) allows a call.
pub fn allows(rules: &Value, group: &str, resource: &str, verb: &str) -> bool {
    let has = |rule: &Value, field: &str, want: &str| {
        rule[field]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i == want || i == "*"))
    };
    rules.as_array().is_some_and(|rules| {
        rules.iter().any(|rule| {
            has(rule, "apiGroups", group)
                && has(rule, "resources", resource)
                && has(rule, "verbs", verb)
        })
    })
}

/// Every (group, resource, verb) a rule list grants.
pub fn granted(rules: &Value) -> Vec<(String, String, String)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for rule in rules.as_array().into_iter().flatten() {
        for g in strings(&rule["apiGroups"]) {
            for r in strings(&rule["resources"]) {
                for v in strings(&rule["verbs"]) {
                    out.push((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}
