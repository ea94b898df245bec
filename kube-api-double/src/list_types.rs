//! List types in server-side apply (`x-kubernetes-list-type`), as structured-merge-diff has
//! them: an `atomic` list (the default) is one field, owned and replaced whole; a `map` list's
//! items are fields of their own, named by their key fields (`k:{"id":"E1"}`); a `set` list's
//! items are named by their value (`v:"/a/*"`). Field path segments carry their kind, so a path
//! can be followed without the schema; building paths and merging need it.

use serde_json::{Map, Value};

/// How a list merges.
pub enum ListType<'a> {
    Atomic,
    /// Items are identified by these fields (`x-kubernetes-list-map-keys`).
    Map(Vec<&'a str>),
    /// Items are scalars identified by their value.
    Set,
}

pub fn list_type(schema: Option<&Value>) -> ListType<'_> {
    let Some(schema) = schema else {
        return ListType::Atomic;
    };
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => ListType::Map(
            schema
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect(),
        ),
        Some("set") => ListType::Set,
        _ => ListType::Atomic,
    }
}

/// The schema of an object's field: a declared property, or the schema of a map's values.
pub fn property<'a>(schema: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    let schema = schema?;
    schema
        .get("properties")
        .and_then(|p| p.get(key))
        .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()))
}

pub fn items(schema: Option<&Value>) -> Option<&Value> {
    schema?.get("items")
}

/// The path segment naming a list item, or `None` for an atomic list.
pub fn item_segment(list: &ListType<'_>, item: &Value) -> Option<String> {
    match list {
        ListType::Atomic => None,
        ListType::Set => Some(format!("v:{item}")),
        ListType::Map(keys) => {
            let identity: Map<String, Value> = keys
                .iter()
                .map(|k| {
                    (
                        (*k).to_owned(),
                        item.get(*k).cloned().unwrap_or(Value::Null),
                    )
                })
                .collect();
            Some(format!("k:{}", Value::Object(identity)))
        }
    }
}

/// Whether `item` is the one a `k:`/`v:` segment names.
pub fn names_item(segment: &str, item: &Value) -> bool {
    if let Some(value) = segment.strip_prefix("v:") {
        return serde_json::from_str::<Value>(value).is_ok_and(|v| &v == item);
    }
    if let Some(key) = segment.strip_prefix("k:") {
        return match serde_json::from_str::<Value>(key) {
            Ok(Value::Object(identity)) => identity
                .iter()
                .all(|(k, v)| item.get(k).unwrap_or(&Value::Null) == v),
            _ => false,
        };
    }
    false
}

/// Whether a segment names a list item rather than an object field.
pub fn is_item(segment: &str) -> bool {
    segment.starts_with("k:") || segment.starts_with("v:")
}

/// A field path as the API server words it in conflicts: `.spec.distributions[id="E1"].id`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if let Some(field) = segment.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(value) = segment.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(Ok(Value::Object(identity))) = segment
            .strip_prefix("k:")
            .map(serde_json::from_str::<Value>)
        {
            let keys: Vec<String> = identity.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", keys.join(",")));
        }
    }
    out
}

/// Items of a `map` or `set` list that repeat an earlier item's identity, as the API server
/// reports them: `(index, identity)`.
pub fn duplicates(schema: &Value, items: &[Value]) -> Vec<(usize, String)> {
    let list = list_type(Some(schema));
    let mut seen = Vec::new();
    let mut repeated = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(segment) = item_segment(&list, item) else {
            return Vec::new();
        };
        if seen.contains(&segment) {
            let identity = segment.get(2..).map_or_else(String::new, ToOwned::to_owned);
            repeated.push((index, identity));
        } else {
            seen.push(segment);
        }
    }
    repeated
}

/// Merges an applied list into the stored one: items of a `map` or `set` list merge by
/// identity (stored order first, new items after); an atomic list is replaced.
pub fn merge_list(
    schema: Option<&Value>,
    target: &mut Vec<Value>,
    patch: &[Value],
    merge: impl Fn(Option<&Value>, &mut Value, &Value),
) {
    let list = list_type(schema);
    if matches!(list, ListType::Atomic) {
        *target = patch.to_vec();
        return;
    }
    for item in patch {
        let Some(segment) = item_segment(&list, item) else {
            continue;
        };
        match target.iter_mut().find(|t| names_item(&segment, t)) {
            Some(existing) => merge(items(schema), existing, item),
            None => target.push(item.clone()),
        }
    }
}
