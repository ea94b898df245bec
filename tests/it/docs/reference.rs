//! The reference pages under `docs/reference/` are rendered from the code: the reasons table
//! from `keyfront::reconcile::reasons::ALL`, and the field reference from the CRDs' OpenAPI
//! schemas. The test fails when a committed page differs from what the code renders; run
//! `KEYFRONT_UPDATE_DOCS=1 cargo test --test it docs::reference` to write them again.

use keyfront::reconcile::reasons::{self, Kind};
use kube::CustomResourceExt as _;
use serde_json::Value;

/// Table cell text: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn reasons_page() -> String {
    let mut page = String::from(
        "# Condition and Event reasons\n\n\
         <!-- Rendered from src/reconcile/reasons.rs by tests/it/docs/reference.rs; do not edit. -->\n\n\
         Each reason is both a condition reason (`kubectl get skg -o yaml`) and an Event reason \
         (`kubectl describe skg`). A condition that turns `False` for a reason marked *Warning* \
         raises one Warning Event; one marked *Stalled* also sets `Stalled=True`, which Argo CD \
         and kstatus read as failed. Everything else is keyfront at work, and sets \
         `Reconciling=True`.\n",
    );
    let sections = [
        ("Settled", &[Kind::Healthy][..]),
        ("In progress", &[Kind::Waiting]),
        (
            "Someone must act",
            &[Kind::NeedsPerson, Kind::NeedsPersonIfRepeated],
        ),
        ("Retried by keyfront", &[Kind::Retried]),
        ("Events only", &[Kind::Transition, Kind::WarningEvent]),
    ];
    for (title, kinds) in sections {
        page.push_str(&format!(
            "\n## {title}\n\n| reason | conditions | follows | meaning |\n|---|---|---|---|\n"
        ));
        for reason in reasons::ALL.iter().filter(|r| kinds.contains(&r.kind)) {
            let follows = if reason.kind == Kind::Transition {
                "Normal Event"
            } else if reasons::needs_a_human(reason.name, None) {
                "Warning, Stalled"
            } else if reasons::needs_a_human(reason.name, Some(reason.name)) {
                "Warning; Stalled on the second pass in a row"
            } else if reasons::is_waiting(reason.name) {
                "—"
            } else {
                "Warning"
            };
            let conditions = reason
                .conditions
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ");
            page.push_str(&format!(
                "| `{}` | {} | {follows} | {} |\n",
                reason.name,
                if conditions.is_empty() {
                    "—".into()
                } else {
                    conditions
                },
                cell(reason.meaning)
            ));
        }
    }
    page
}

/// What a schema node is, in a few words: its type, enum values, default and format.
fn type_of(schema: &Value) -> String {
    let mut kind = match schema["type"].as_str() {
        Some("array") => format!("array of {}", type_of(&schema["items"])),
        Some(t) => t.to_owned(),
        None if schema["x-kubernetes-int-or-string"] == true => "integer or string".into(),
        None => "any".into(),
    };
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| format!("`{}`", v.as_str().unwrap_or_default()))
            .collect();
        kind = format!("{kind}: {}", values.join(", "));
    }
    if schema["pattern"].is_string() && schema["pattern"] == keyfront::api::DURATION_PATTERN {
        kind = format!("duration ({kind}, e.g. `720h`)");
    }
    if !schema["default"].is_null() {
        kind = format!("{kind}; default `{}`", schema["default"]);
    }
    kind
}

fn fields(path: &str, schema: &Value, required: bool, rows: &mut String) {
    let mut rules: Vec<String> = schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["message"].as_str().map(|m| format!("Rule: {m}.")))
        .collect();
    if !path.is_empty() {
        let mut text = cell(schema["description"].as_str().unwrap_or_default());
        rules.iter_mut().for_each(|r| *r = cell(r));
        if !rules.is_empty() {
            text = format!("{text} {}", rules.join(" ")).trim().to_owned();
        }
        rows.push_str(&format!(
            "| `{path}` | {} | {} | {text} |\n",
            cell(&type_of(schema)),
            if required { "yes" } else { "" }
        ));
    }
    let (node, prefix) = if schema["type"] == "array" {
        (&schema["items"], format!("{path}[]"))
    } else {
        (schema, path.to_owned())
    };
    let required: Vec<&str> = node["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if let Some(properties) = node["properties"].as_object() {
        for (name, child) in properties {
            let child_path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            fields(&child_path, child, required.contains(&name.as_str()), rows);
        }
    }
}

fn crd_fields_page() -> String {
    let mut page = String::from(
        "# Field reference\n\n\
         <!-- Rendered from the CRDs' schemas by tests/it/docs/reference.rs; do not edit. -->\n\n\
         Every field of keyfront's resources, with its type and the API server's own checks. \
         [The API](../api.md) explains how they fit together, with examples.\n",
    );
    for crd in [
        keyfront::api::SigningKeyGroup::crd(),
        keyfront::api::CloudFrontAccount::crd(),
    ] {
        let crd = serde_json::to_value(&crd).unwrap();
        let version = &crd["spec"]["versions"][0];
        page.push_str(&format!(
            "\n## {} ({}/{})\n\nShort names: {}. Scope: {}.\n",
            crd["spec"]["names"]["kind"].as_str().unwrap(),
            crd["spec"]["group"].as_str().unwrap(),
            version["name"].as_str().unwrap(),
            crd["spec"]["names"]["shortNames"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| format!("`{}`", n.as_str().unwrap()))
                .collect::<Vec<_>>()
                .join(", "),
            crd["spec"]["scope"].as_str().unwrap(),
        ));
        let schema = &version["schema"]["openAPIV3Schema"]["properties"];
        for part in ["spec", "status"] {
            let mut rows = String::new();
            fields("", &schema[part], false, &mut rows);
            page.push_str(&format!(
                "\n### `{part}`\n\n| field | type | required | description |\n|---|---|---|---|\n{rows}"
            ));
        }
    }
    page
}

#[test]
fn the_reference_pages_are_rendered_from_the_code() {
    let update = std::env::var_os("KEYFRONT_UPDATE_DOCS").is_some();
    let mut stale = Vec::new();
    for (file, rendered) in [
        ("docs/reference/reasons.md", reasons_page()),
        ("docs/reference/fields.md", crd_fields_page()),
    ] {
        let path = crate::support::repo(file);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &rendered).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(rendered.as_str()) {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what the code renders: run \
         `KEYFRONT_UPDATE_DOCS=1 cargo test --test it docs::reference` and commit them"
    );
}

#[test]
fn every_reason_is_named_once_and_documented() {
    let mut names: Vec<&str> = reasons::ALL.iter().map(|r| r.name).collect();
    names.sort_unstable();
    let count = names.len();
    names.dedup();
    assert_eq!(names.len(), count, "a reason is listed twice");
    for reason in reasons::ALL {
        assert!(
            reason.meaning.trim().len() > 10,
            "{} has no meaning",
            reason.name
        );
        let transition = matches!(reason.kind, Kind::Transition | Kind::WarningEvent);
        assert_eq!(
            reason.conditions.is_empty(),
            transition,
            "{}: conditions {:?} for a {:?}",
            reason.name,
            reason.conditions,
            reason.kind
        );
    }
    let page = reasons_page();
    assert!(page.contains("| `KeyGroupFull` | `Ready`, `Rotating` | Warning, Stalled |"));
    assert!(page.contains("| `CloudFrontAccessDenied` | `Ready` | Warning; Stalled on the second"));
}

#[test]
fn the_field_reference_names_nested_fields_and_their_rules() {
    let page = crd_fields_page();
    for expected in [
        "| `rotation.interval` | duration (string, e.g. `720h`)",
        "| `distributions[].id` | string | yes |",
        "## CloudFrontAccount (keyfront.dev/v1alpha1)",
        "Rule: ",
    ] {
        assert!(page.contains(expected), "missing {expected:?} in:\n{page}");
    }
}
