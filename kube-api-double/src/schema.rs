//! Admission for custom resources, in the API server's order: prune unknown fields, apply
//! schema defaults, check the structural OpenAPI schema, then evaluate the CEL rules
//! (`x-kubernetes-validations`, with `oldSelf` on updates). Failures name the field the way the
//! API server does (`spec.x: Invalid value: ...`).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use regex::Regex;
use serde_json::{Map, Value};

/// One rejected field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub reason: &'static str,
    /// What is wrong, without the field (`Invalid value: "x": ...`).
    pub detail: String,
}

impl FieldError {
    fn new(field: &str, reason: &'static str, detail: String) -> Self {
        Self {
            field: field.trim_start_matches('.').to_owned(),
            reason,
            detail,
        }
    }

    /// `field: detail`, as the API server words it.
    pub fn message(&self) -> String {
        format!("{}: {}", self.field, self.detail)
    }
}

/// Admits a custom resource: returns the pruned and defaulted object or every field error.
pub fn admit(
    schema: &Value,
    object: &Value,
    old: Option<&Value>,
) -> Result<Value, Vec<FieldError>> {
    let mut pruned = object.clone();
    prune(schema, &mut pruned, true);
    let defaulted = kube_cel::apply_defaults(schema, &pruned);
    // Validation ratcheting (on by default since Kubernetes 1.30): on update, a value left
    // unchanged since the stored object is not held against the writer.
    let unchanged =
        |field: &str| old.is_some_and(|old| value_at(old, field) == value_at(&defaulted, field));
    let mut errors = Vec::new();
    check(schema, &defaulted, "", &mut errors);
    errors.retain(|e| !unchanged(&e.field));
    if errors.is_empty() {
        // Transition rules compare against the stored object as the API server stored it.
        if let Err(failures) = kube_cel::Validator::new().validate(schema, &defaulted, old) {
            for failure in failures.iter().filter(|f| !unchanged(&f.field_path)) {
                let value = type_name(value_at(&defaulted, &failure.field_path));
                errors.push(FieldError::new(
                    &failure.field_path,
                    "FieldValueInvalid",
                    format!("Invalid value: \"{value}\": {}", failure.message),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(defaulted)
    } else {
        Err(errors)
    }
}

fn value_at<'a>(root: &'a Value, path: &str) -> &'a Value {
    let mut current = root;
    for part in path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
    {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        current = current.get(name).unwrap_or(&Value::Null);
        if let Some(i) = index {
            current = current.get(i).unwrap_or(&Value::Null);
        }
    }
    current
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Paths of fields the schema does not declare (what `fieldValidation=Strict` rejects).
pub fn unknown_fields(schema: &Value, object: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    find_unknown(schema, object, "", true, &mut unknown);
    unknown
}

/// How an object schema treats one of the object's keys. Pruning and strict validation both
/// decide through this, so `fieldValidation=Strict` rejects exactly what pruning would drop.
enum Field<'a> {
    /// Checked against this child schema.
    Declared(&'a Value),
    /// Kept as is: the root's `apiVersion`/`kind`/`metadata`, or a schema that says nothing.
    Kept,
    /// Not declared: pruned, or rejected under strict validation.
    Undeclared,
}

fn field<'a>(schema: &'a Value, key: &str, root: bool) -> Field<'a> {
    if root && matches!(key, "apiVersion" | "kind" | "metadata") {
        return Field::Kept;
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(properties) = properties {
        return properties
            .get(key)
            .map_or(Field::Undeclared, Field::Declared);
    }
    if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        return Field::Declared(additional);
    }
    if !root && schema.get("type").and_then(Value::as_str) == Some("object") {
        Field::Undeclared
    } else {
        Field::Kept
    }
}

fn preserves_unknown_fields(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn find_unknown(schema: &Value, value: &Value, path: &str, root: bool, unknown: &mut Vec<String>) {
    if preserves_unknown_fields(schema) {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match field(schema, key, root) {
                    Field::Declared(child_schema) => {
                        find_unknown(child_schema, child, &join(path, key), false, unknown)
                    }
                    Field::Undeclared => unknown.push(join(path, key)),
                    Field::Kept => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    find_unknown(item_schema, item, &format!("{path}[{i}]"), false, unknown);
                }
            }
        }
        _ => {}
    }
}

/// Drops fields the schema does not declare, as structural schemas require.
fn prune(schema: &Value, value: &mut Value, root: bool) {
    if preserves_unknown_fields(schema) {
        return;
    }
    match value {
        Value::Object(map) => {
            map.retain(|key, _| !matches!(field(schema, key, root), Field::Undeclared));
            for (key, child) in map.iter_mut() {
                if let Field::Declared(child_schema) = field(schema, key, root) {
                    prune(child_schema, child, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prune(item_schema, item, false);
                }
            }
        }
        _ => {}
    }
}

fn regex(pattern: &str) -> Option<Regex> {
    static CACHE: Mutex<Option<HashMap<String, Regex>>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(r) = cache.get(pattern) {
        return Some(r.clone());
    }
    let compiled = Regex::new(pattern).ok()?;
    cache.insert(pattern.to_owned(), compiled.clone());
    Some(compiled)
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn quoted(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Structural OpenAPI v3 checks: type, enum, pattern, lengths, bounds, required.
fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let s = |k: &str| schema.get(k);
    if value.is_null() {
        if s("nullable").and_then(Value::as_bool) != Some(true)
            && s("type").is_some()
            && !path.is_empty()
        {
            errors.push(FieldError::new(
                path,
                "FieldValueTypeInvalid",
                format!(
                    "Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                    s("type").and_then(Value::as_str).unwrap_or("object")
                ),
            ));
        }
        return;
    }
    if s("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return;
    }
    if let Some(expected) = s("type").and_then(Value::as_str) {
        let actual = type_name(value);
        let ok = actual == expected || (expected == "number" && actual == "integer");
        if !ok {
            errors.push(FieldError::new(path, "FieldValueTypeInvalid", format!("Invalid value: \"{actual}\": {path} in body must be of type {expected}: \"{actual}\"")));
            return;
        }
    }
    if let Some(allowed) = s("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(quoted).collect();
        errors.push(FieldError::new(
            path,
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {}: supported values: {}",
                quoted(value),
                list.join(", ")
            ),
        ));
    }
    match value {
        Value::String(text) => {
            let length = text.chars().count() as u64;
            if let Some(max) = s("maxLength")
                .and_then(Value::as_u64)
                .filter(|m| length > *m)
            {
                errors.push(FieldError::new(
                    path,
                    "FieldValueTooLong",
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
            if let Some(min) = s("minLength")
                .and_then(Value::as_u64)
                .filter(|m| length < *m)
            {
                errors.push(FieldError::new(
                    path,
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: {path} in body should be at least {min} chars long",
                        quoted(value)
                    ),
                ));
            }
            if let Some(pattern) = s("pattern").and_then(Value::as_str)
                && regex(pattern).is_some_and(|r| !r.is_match(text))
            {
                errors.push(FieldError::new(
                    path,
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: {path} in body should match '{pattern}'",
                        quoted(value)
                    ),
                ));
            }
        }
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or_default();
            if let Some(max) = s("maximum").and_then(Value::as_f64).filter(|m| v > *m) {
                errors.push(FieldError::new(
                    path,
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {n}: {path} in body should be less than or equal to {max}"
                    ),
                ));
            }
            if let Some(min) = s("minimum").and_then(Value::as_f64).filter(|m| v < *m) {
                errors.push(FieldError::new(path, "FieldValueInvalid", format!("Invalid value: {n}: {path} in body should be greater than or equal to {min}")));
            }
        }
        Value::Array(items) => {
            if let Some(max) = s("maxItems")
                .and_then(Value::as_u64)
                .filter(|m| items.len() as u64 > *m)
            {
                errors.push(FieldError::new(
                    path,
                    "FieldValueTooMany",
                    format!("Too many: {}: must have at most {max} items", items.len()),
                ));
            }
            if let Some(min) = s("minItems")
                .and_then(Value::as_u64)
                .filter(|m| (items.len() as u64) < *m)
            {
                errors.push(FieldError::new(
                    path,
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: {path} in body should have at least {min} items",
                        items.len()
                    ),
                ));
            }
            if let Some(item_schema) = s("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
            for (i, identity) in crate::list_types::duplicates(schema, items) {
                let shown = if identity.starts_with('{') {
                    format!("map[string]interface {{}}{identity}")
                } else {
                    identity
                };
                errors.push(FieldError::new(
                    &format!("{path}[{i}]"),
                    "FieldValueDuplicate",
                    format!("Duplicate value: {shown}"),
                ));
            }
        }
        Value::Object(map) => check_object(schema, map, path, errors),
        _ => {}
    }
}

fn check_object(
    schema: &Value,
    map: &Map<String, Value>,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(required) {
            errors.push(FieldError::new(
                &join(path, required),
                "FieldValueRequired",
                "Required value".to_owned(),
            ));
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, child) in map {
        if path.is_empty() && key == "metadata" {
            continue;
        }
        if let Some(child_schema) = properties.and_then(|p| p.get(key)).or(additional) {
            check(child_schema, child, &join(path, key), errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string", "pattern": "^[A-Z]+$", "maxLength": 4},
            "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
            "count": {"type": "integer", "minimum": 1},
            "tags": {"type": "array", "maxItems": 1, "items": {"type": "string"}}
        }, "x-kubernetes-validations": [{"rule": "self.count < 10", "message": "count must be below 10"}]}}})
    }

    #[test]
    fn defaults_and_prunes_before_validating() {
        let admitted = admit(
            &schema(),
            &json!({"metadata": {"name": "x"}, "spec": {"id": "AB", "count": 2, "junk": 1}}),
            None,
        )
        .expect("valid");
        assert_eq!(admitted["spec"]["mode"], "A");
        assert!(admitted["spec"].get("junk").is_none());
        assert_eq!(admitted["metadata"]["name"], "x");
    }

    #[test]
    fn names_each_structural_failure() {
        let errors = admit(
            &schema(),
            &json!({"spec": {"id": "abcdef", "mode": "C", "count": 0, "tags": ["a", "b"]}}),
            None,
        )
        .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.count", "spec.id", "spec.id", "spec.mode", "spec.tags"]
        );
        assert!(errors[3].detail.contains("supported values: \"A\", \"B\""));
        let missing = admit(&schema(), &json!({"spec": {}}), None).expect_err("invalid");
        assert_eq!(missing[0].message(), "spec.id: Required value");
    }

    #[test]
    fn reports_undeclared_fields_for_strict_validation() {
        let unknown = unknown_fields(
            &schema(),
            &json!({"metadata": {"x": 1}, "spec": {"id": "A", "typo": 1, "tags": ["a"]}, "extra": {}}),
        );
        assert_eq!(unknown, ["extra", "spec.typo"]);
    }

    #[test]
    fn runs_cel_rules_after_the_schema_passes() {
        let errors = admit(&schema(), &json!({"spec": {"id": "AB", "count": 12}}), None)
            .expect_err("invalid");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "spec");
        assert!(
            errors[0].detail.contains("count must be below 10"),
            "{}",
            errors[0].detail
        );
    }
}
