//! Just enough OpenAPI v3 for kubectl: per group-version documents whose PATCH operations
//! declare `fieldValidation` (so kubectl leaves validation to the server), with the custom
//! resources' schemas tagged by `x-kubernetes-group-version-kind`.

use serde_json::{Map, Value, json};

use crate::resources::{Registry, ResourceType};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`: where each group-version's document lives.
pub fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for (group, versions) in registry.groups() {
        for version in versions {
            let path = gv_path(&group, &version);
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}")}),
            );
        }
    }
    json!({"paths": paths})
}

fn schema_name(rt: &ResourceType) -> String {
    let reversed: Vec<&str> = if rt.group.is_empty() {
        vec!["io", "k8s", "api", "core"]
    } else {
        rt.group.split('.').rev().collect()
    };
    format!("{}.{}.{}", reversed.join("."), rt.version, rt.kind)
}

fn operation(rt: &ResourceType, verb: &str) -> Value {
    let reference = json!({"$ref": format!("#/components/schemas/{}", schema_name(rt))});
    let mut parameters =
        vec![json!({"name": "fieldManager", "in": "query", "schema": {"type": "string"}})];
    if matches!(verb, "patch" | "put" | "post") {
        parameters
            .push(json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}));
    }
    json!({
        "operationId": format!("{verb}{}", rt.kind),
        "parameters": parameters,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
    })
}

/// `GET /openapi/v3/apis/{group}/{version}` (or `api/v1`).
pub fn document(registry: &Registry, group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for rt in registry.in_group_version(group, version) {
        let prefix = format!("/{}", gv_path(group, version));
        let collection = if rt.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", rt.plural)
        } else {
            format!("{prefix}/{}", rt.plural)
        };
        paths.insert(
            collection.clone(),
            json!({"get": operation(rt, "list"), "post": operation(rt, "post")}),
        );
        paths.insert(format!("{collection}/{{name}}"), json!({"get": operation(rt, "get"), "put": operation(rt, "put"), "patch": operation(rt, "patch"), "delete": operation(rt, "delete")}));
        let mut schema = rt.schema.clone().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        schema["x-kubernetes-group-version-kind"] =
            json!([{"group": rt.group, "version": rt.version, "kind": rt.kind}]);
        schemas.insert(schema_name(rt), schema);
    }
    json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths, "components": {"schemas": schemas}})
}
