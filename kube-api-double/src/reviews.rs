//! TokenReview and SubjectAccessReview, as the API server answers them to a delegating
//! authenticator/authorizer (kube-rbac-proxy, controller-runtime's metrics filter, keyfront's
//! `/metrics`): tokens the test registers authenticate as their user; a user may `get` a
//! non-resource path if it is in `system:masters` or the test granted that path to it.
//!
//! Not modelled: RBAC objects (ClusterRoles with `nonResourceURLs`) — the test states the
//! grant; resource attributes in a SubjectAccessReview (always denied).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

/// Registered tokens and granted non-resource paths.
#[derive(Debug, Default)]
pub struct Reviews {
    /// token → (username, groups)
    tokens: BTreeMap<String, (String, Vec<String>)>,
    /// (username, path) granted `get`.
    granted: BTreeSet<(String, String)>,
}

impl Reviews {
    pub fn add_token(&mut self, token: &str, user: &str, groups: &[&str]) {
        self.tokens.insert(
            token.to_owned(),
            (
                user.to_owned(),
                groups.iter().map(|g| (*g).to_owned()).collect(),
            ),
        );
    }

    pub fn grant_path(&mut self, user: &str, path: &str) {
        self.granted.insert((user.to_owned(), path.to_owned()));
    }

    /// The TokenReview's answer, its `spec.token` looked up.
    pub fn token_review(&self, review: &Value) -> Value {
        let token = review["spec"]["token"].as_str().unwrap_or_default();
        let status = match self.tokens.get(token) {
            Some((user, groups)) => json!({
                "authenticated": true,
                "user": {"username": user, "uid": format!("uid-{user}"), "groups": groups},
            }),
            None => json!({"authenticated": false, "error": "invalid bearer token"}),
        };
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": review["spec"], "status": status})
    }

    /// The SubjectAccessReview's answer.
    pub fn access_review(&self, review: &Value) -> Value {
        let spec = &review["spec"];
        let user = spec["user"].as_str().unwrap_or_default();
        let masters = spec["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "system:masters"));
        let attributes = &spec["nonResourceAttributes"];
        let allowed = attributes.is_object()
            && attributes["verb"] == "get"
            && (masters
                || attributes["path"]
                    .as_str()
                    .is_some_and(|p| self.granted.contains(&(user.to_owned(), p.to_owned()))));
        let reason = if allowed {
            "allowed by the test's grant"
        } else {
            "no grant for this user and path"
        };
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec, "status": {"allowed": allowed, "reason": reason}})
    }
}
