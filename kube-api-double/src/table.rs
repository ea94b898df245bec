//! Server-side tables (`Accept: ...;as=Table`), which `kubectl get` prints.

use serde_json::{Value, json};

use crate::resources::ResourceType;

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `.a[0]` and
/// `.a[?(@.k=="v")].b`.
pub fn json_path<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = root;
    let mut rest = path.trim_start_matches('.');
    while !rest.is_empty() {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let (name, tail) = rest.split_at(end);
        if !name.is_empty() {
            current = current.get(name)?;
        }
        rest = tail;
        if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']')?;
            let selector = &after[..close];
            rest = &after[close + 1..];
            current = if let Some(filter) = selector
                .strip_prefix("?(@.")
                .and_then(|f| f.strip_suffix(')'))
            {
                let (key, value) = filter.split_once("==")?;
                let value = value.trim().trim_matches('"').trim_matches('\'');
                current
                    .as_array()?
                    .iter()
                    .find(|item| item.get(key.trim()).and_then(Value::as_str) == Some(value))?
            } else {
                current.get(selector.parse::<usize>().ok()?)?
            };
        }
        rest = rest.trim_start_matches('.');
    }
    Some(current)
}

fn cell(value: Option<&Value>) -> Value {
    match value {
        None | Some(Value::Null) => json!("<none>"),
        Some(v) => v.clone(),
    }
}

/// `5s`, `3m20s`, `4h`, `2d3h`: how the API server renders `date` columns.
fn human_age(timestamp: &str) -> String {
    let Ok(then) = timestamp.parse::<jiff::Timestamp>() else {
        return "<invalid>".into();
    };
    let seconds = (jiff::Timestamp::now().as_second() - then.as_second()).max(0);
    let (m, h, d) = (seconds / 60, seconds / 3600, seconds / 86_400);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 600 && s % 60 != 0 => format!("{m}m{}s", s % 60),
        s if s < 3 * 3600 => format!("{m}m"),
        s if s < 8 * 3600 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        s if s < 48 * 3600 => format!("{h}h"),
        s if s < 8 * 86_400 && h % 24 != 0 => format!("{d}d{}h", h % 24),
        _ => format!("{d}d"),
    }
}

pub fn table(rt: &ResourceType, items: &[Value], metadata: Value) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}),
    ];
    let mut paths = Vec::new();
    for column in &rt.printer_columns {
        let name = column
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let path = column
            .get("jsonPath")
            .and_then(Value::as_str)
            .unwrap_or_default();
        columns.push(json!({"name": name, "type": column.get("type").cloned().unwrap_or(json!("string")), "format": "", "description": column.get("description").cloned().unwrap_or(json!("")), "priority": column.get("priority").cloned().unwrap_or(json!(0))}));
        let is_date = column.get("type").and_then(Value::as_str) == Some("date");
        paths.push((path.to_owned(), is_date));
    }
    if !paths
        .iter()
        .any(|(p, _)| p == ".metadata.creationTimestamp")
    {
        columns.push(
            json!({"name": "Age", "type": "date", "format": "", "description": "", "priority": 0}),
        );
        paths.push((".metadata.creationTimestamp".into(), true));
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut cells = vec![cell(item.pointer("/metadata/name"))];
            cells.extend(paths.iter().map(|(path, is_date)| match json_path(item, path) {
                Some(Value::String(t)) if *is_date => json!(human_age(t)),
                value => cell(value),
            }));
            let partial = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item.get("metadata").cloned().unwrap_or(json!({}))});
            json!({"cells": cells, "object": partial})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_printer_column_paths() {
        let obj = json!({"status": {"conditions": [{"type": "Other", "status": "False"}, {"type": "Ready", "status": "True"}], "keyGroupId": "kg"}});
        assert_eq!(
            json_path(&obj, ".status.conditions[?(@.type==\"Ready\")].status"),
            Some(&json!("True"))
        );
        assert_eq!(json_path(&obj, ".status.keyGroupId"), Some(&json!("kg")));
        assert_eq!(
            json_path(&obj, ".status.conditions[0].type"),
            Some(&json!("Other"))
        );
        assert_eq!(json_path(&obj, ".status.missing"), None);
    }
}
