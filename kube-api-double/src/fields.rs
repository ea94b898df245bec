//! Field ownership (`metadata.managedFields`) and server-side apply.
//!
//! Lists follow the resource's schema (`x-kubernetes-list-type`, see [`crate::list_types`]):
//! atomic lists are one field, items of `map` and `set` lists are fields of their own. Built-in
//! kinds have no schema here, so their lists are atomic (a stated simplification), and identity
//! fields (`apiVersion`, `kind`, `metadata.name/namespace/uid/...`) are owned by nobody.
//! Everything else follows the API server: an apply conflicts when it would change a value
//! another manager owns, unless forced; a manager that stops applying a field gives it up, and
//! the field (or list item) is removed when nobody else owns it.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::list_types::{self, is_item, item_segment, list_type, names_item, property};

/// A field path as `f:`-prefixed segments, e.g. `["f:spec", "f:rotation", "f:interval"]`.
pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

const UNOWNED_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

/// The leaf fields a value sets, with list items named as `schema` (the resource's
/// `openAPIV3Schema`) types its lists.
pub fn leaves(value: &Value, schema: Option<&Value>) -> FieldSet {
    let mut set = FieldSet::new();
    if let Value::Object(map) = value {
        for (key, child) in map {
            match key.as_str() {
                "apiVersion" | "kind" => {}
                "metadata" => {
                    if let Value::Object(meta) = child {
                        for (mk, mv) in meta
                            .iter()
                            .filter(|(k, _)| !UNOWNED_METADATA.contains(&k.as_str()))
                        {
                            let path = vec!["f:metadata".into(), format!("f:{mk}")];
                            collect(mv, path, None, &mut set);
                        }
                    }
                }
                _ => collect(
                    child,
                    vec![format!("f:{key}")],
                    property(schema, key),
                    &mut set,
                ),
            }
        }
    }
    set
}

fn collect(value: &Value, path: FieldPath, schema: Option<&Value>, set: &mut FieldSet) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let mut child = path.clone();
                child.push(format!("f:{k}"));
                collect(v, child, property(schema, k), set);
            }
        }
        Value::Array(items) if !matches!(list_type(schema), list_types::ListType::Atomic) => {
            let list = list_type(schema);
            for item in items {
                let mut child = path.clone();
                child.extend(item_segment(&list, item));
                match list {
                    list_types::ListType::Set => {
                        set.insert(child);
                    }
                    _ => collect(item, child, list_types::items(schema), set),
                }
            }
        }
        _ => {
            set.insert(path);
        }
    }
}

fn step<'a>(value: &'a Value, segment: &str) -> Option<&'a Value> {
    if is_item(segment) {
        value
            .as_array()?
            .iter()
            .find(|item| names_item(segment, item))
    } else {
        value.get(segment.trim_start_matches("f:"))
    }
}

/// The value at a field path, if present.
pub fn get<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, seg| step(v, seg))
}

fn remove(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut current = value;
    for seg in parents {
        let next = if is_item(seg) {
            current
                .as_array_mut()
                .and_then(|items| items.iter_mut().find(|item| names_item(seg, item)))
        } else {
            current.get_mut(seg.trim_start_matches("f:"))
        };
        match next {
            Some(next) => current = next,
            None => return,
        }
    }
    match current {
        Value::Object(map) => {
            map.remove(last.trim_start_matches("f:"));
        }
        Value::Array(items) if is_item(last) => items.retain(|item| !names_item(last, item)),
        _ => {}
    }
}

/// Deep-merges `patch` into `target`: maps merge, `map` and `set` lists merge by item,
/// everything else replaces.
pub fn merge(schema: Option<&Value>, target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                let child_schema = property(schema, k);
                match t.get_mut(k) {
                    Some(existing)
                        if (existing.is_object() && v.is_object())
                            || (existing.is_array() && v.is_array()) =>
                    {
                        merge(child_schema, existing, v)
                    }
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(p)) => list_types::merge_list(schema, t, p, merge),
        (t, p) => *t = p.clone(),
    }
}

/// The prefix of `path` that names the outermost list item in it, if any.
fn item_prefix(path: &[String]) -> Option<&[String]> {
    path.iter().position(|s| is_item(s)).map(|i| &path[..=i])
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerEntry {
    pub manager: String,
    pub operation: String,
    pub subresource: String,
    pub api_version: String,
    pub time: String,
    pub fields: FieldSet,
}

impl ManagerEntry {
    fn same_slot(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

fn fields_v1(set: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for seg in path {
            let entry = node.entry(seg.clone()).or_insert_with(|| json!({}));
            node = match entry {
                Value::Object(m) => m,
                _ => break,
            };
        }
    }
    Value::Object(root)
}

fn parse_fields_v1(value: &Value, prefix: FieldPath, set: &mut FieldSet) {
    if let Value::Object(map) = value {
        let children: Vec<_> = map.iter().filter(|(k, _)| k.as_str() != ".").collect();
        if children.is_empty() && !prefix.is_empty() {
            set.insert(prefix);
            return;
        }
        for (k, v) in children {
            let mut p = prefix.clone();
            p.push(k.clone());
            parse_fields_v1(v, p, set);
        }
    }
}

/// Reads `metadata.managedFields` of an object.
pub fn read(object: &Value) -> Vec<ManagerEntry> {
    let entries = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    entries
        .iter()
        .map(|e| {
            let text = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let mut fields = FieldSet::new();
            if let Some(f) = e.get("fieldsV1") {
                parse_fields_v1(f, Vec::new(), &mut fields);
            }
            ManagerEntry {
                manager: text("manager"),
                operation: text("operation"),
                subresource: text("subresource"),
                api_version: text("apiVersion"),
                time: text("time"),
                fields,
            }
        })
        .collect()
}

/// Writes `metadata.managedFields`, dropping managers that own nothing.
pub fn write(object: &mut Value, entries: &[ManagerEntry]) {
    let rendered: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    if !object.get("metadata").is_some_and(Value::is_object) {
        if rendered.is_empty() {
            return;
        }
        object["metadata"] = json!({});
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if rendered.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(rendered));
        }
    }
}

/// Who is writing, and how.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    pub manager: &'a str,
    pub subresource: &'a str,
    pub api_version: &'a str,
    pub time: &'a str,
    /// The resource's `openAPIV3Schema` (custom resources), which types its lists.
    pub schema: Option<&'a Value>,
}

/// Records a non-apply write: the writer owns what it changed; nobody owns what it removed.
pub fn record_update(old: Option<&Value>, new: &mut Value, writer: &Writer<'_>) {
    let mut entries = old.map(read).unwrap_or_default();
    let new_leaves = leaves(new, writer.schema);
    let changed: FieldSet = new_leaves
        .iter()
        .filter(|p| old.and_then(|o| get(o, p)) != get(new, p))
        .cloned()
        .collect();
    for entry in &mut entries {
        entry.fields.retain(|p| {
            new_leaves.iter().any(|l| overlaps(l, p)) && !changed.iter().any(|c| overlaps(c, p))
        });
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.same_slot(writer.manager, "Update", writer.subresource))
        {
            Some(e) => {
                e.fields.extend(changed);
                e.time = writer.time.to_owned();
            }
            None => entries.push(ManagerEntry {
                manager: writer.manager.to_owned(),
                operation: "Update".into(),
                subresource: writer.subresource.to_owned(),
                api_version: writer.api_version.to_owned(),
                time: writer.time.to_owned(),
                fields: changed,
            }),
        }
    }
    write(new, &entries);
}

/// A field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub field: String,
}

/// Server-side apply of `applied` over `current` (absent when creating).
pub fn apply(
    current: Option<&Value>,
    applied: &Value,
    writer: &Writer<'_>,
    force: bool,
) -> Result<Value, Vec<Conflict>> {
    let mut entries = current.map(read).unwrap_or_default();
    let applied_set = leaves(applied, writer.schema);
    let mut conflicts = Vec::new();
    let mut taken = FieldSet::new();
    if let Some(current) = current {
        for path in &applied_set {
            let applied_value = get(applied, path);
            let unchanged = |v: &Value| {
                // Applying an empty map into an existing map changes nothing.
                Some(v) == applied_value
                    || (v.is_object() && applied_value.is_some_and(Value::is_object))
            };
            if get(current, path).is_none_or(unchanged) {
                continue;
            }
            for entry in entries.iter().filter(|e| {
                !e.same_slot(writer.manager, "Apply", writer.subresource)
                    && e.subresource == writer.subresource
            }) {
                if entry.fields.iter().any(|p| overlaps(p, path)) {
                    conflicts.push(Conflict {
                        manager: entry.manager.clone(),
                        field: list_types::display(path),
                    });
                    taken.insert(path.clone());
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut result = current.cloned().unwrap_or_else(|| json!({}));
    let previous = entries
        .iter()
        .find(|e| e.same_slot(writer.manager, "Apply", writer.subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let owned_elsewhere = |path: &[String]| {
        entries.iter().any(|e| {
            !e.same_slot(writer.manager, "Apply", writer.subresource)
                && e.fields.iter().any(|p| overlaps(p, path))
        })
    };
    for dropped in previous.difference(&applied_set) {
        // A list item nobody applies any more goes whole, defaulted fields included.
        match item_prefix(dropped) {
            Some(item)
                if !owned_elsewhere(item) && !applied_set.iter().any(|p| p.starts_with(item)) =>
            {
                remove(&mut result, item)
            }
            _ if !owned_elsewhere(dropped) => remove(&mut result, dropped),
            _ => {}
        }
    }
    merge(writer.schema, &mut result, applied);
    for entry in &mut entries {
        entry
            .fields
            .retain(|p| !taken.iter().any(|t| overlaps(t, p)));
    }
    match entries
        .iter_mut()
        .find(|e| e.same_slot(writer.manager, "Apply", writer.subresource))
    {
        Some(e) => {
            e.fields = applied_set;
            e.time = writer.time.to_owned();
        }
        None => entries.push(ManagerEntry {
            manager: writer.manager.to_owned(),
            operation: "Apply".into(),
            subresource: writer.subresource.to_owned(),
            api_version: writer.api_version.to_owned(),
            time: writer.time.to_owned(),
            fields: applied_set,
        }),
    }
    write(&mut result, &entries);
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(manager: &str) -> Writer<'_> {
        Writer {
            manager,
            subresource: "",
            api_version: "v1",
            time: "2026-01-01T00:00:00Z",
            schema: None,
        }
    }

    #[test]
    fn apply_conflicts_on_fields_another_manager_owns_unless_forced() {
        let created = apply(
            None,
            &json!({"metadata": {"name": "a"}, "spec": {"x": 1, "y": 2}}),
            &writer("alice"),
            false,
        )
        .expect("create");
        assert!(
            apply(
                Some(&created),
                &json!({"spec": {"x": 1}}),
                &writer("bob"),
                false
            )
            .is_ok(),
            "same value is shared, not a conflict"
        );
        let conflict = apply(
            Some(&created),
            &json!({"spec": {"x": 5}}),
            &writer("bob"),
            false,
        )
        .expect_err("conflict");
        assert_eq!(
            conflict,
            vec![Conflict {
                manager: "alice".into(),
                field: ".spec.x".into()
            }]
        );
        let forced = apply(
            Some(&created),
            &json!({"spec": {"x": 5}}),
            &writer("bob"),
            true,
        )
        .expect("forced");
        assert_eq!(forced["spec"], json!({"x": 5, "y": 2}));
        let owners = read(&forced);
        assert!(owners.iter().any(|e| {
            e.manager == "bob"
                && e.fields
                    .contains(&vec!["f:spec".to_string(), "f:x".to_string()])
        }));
        assert!(!owners.iter().any(|e| {
            e.manager == "alice"
                && e.fields
                    .contains(&vec!["f:spec".to_string(), "f:x".to_string()])
        }));
    }

    #[test]
    fn fields_a_manager_stops_applying_are_removed_when_nobody_else_owns_them() {
        let v1 = apply(
            None,
            &json!({"spec": {"x": 1, "y": 2}, "metadata": {"labels": {"a": "1"}}}),
            &writer("alice"),
            false,
        )
        .expect("v1");
        let v2 = apply(
            Some(&v1),
            &json!({"spec": {"x": 1}}),
            &writer("alice"),
            false,
        )
        .expect("v2");
        assert_eq!(v2["spec"], json!({"x": 1}));
        assert!(v2.pointer("/metadata/labels/a").is_none());
    }

    #[test]
    fn updates_take_ownership_of_what_they_change() {
        let v1 = apply(None, &json!({"spec": {"x": 1}}), &writer("alice"), false).expect("v1");
        let mut v2 = v1.clone();
        v2["spec"]["x"] = json!(3);
        record_update(Some(&v1), &mut v2, &writer("kubectl-edit"));
        let owners = read(&v2);
        assert!(
            owners
                .iter()
                .any(|e| e.manager == "kubectl-edit" && e.operation == "Update")
        );
        assert!(
            owners.iter().all(|e| e.manager != "alice"),
            "alice lost her only field"
        );
    }
}
