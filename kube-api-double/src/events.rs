//! Events, as a real API server serves them: one store under two APIs. keyfront (through
//! kube-runtime's Recorder) writes `events.k8s.io/v1` Events; `kubectl describe` lists core
//! `v1` Events. A list of either includes the other's, converted field by field as the API
//! server converts them (`regarding` is `involvedObject`, `note` is `message`, the
//! `deprecated*` fields are the core ones), so `kubectl describe skg` shows what keyfront
//! recorded. Lists only: a get by name or a watch sees the API it was written through.

use serde_json::{Map, Value, json};

/// (from, to) field names between `events.k8s.io/v1` and core `v1`.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

/// Fields both APIs name alike.
const SHARED: &[&str] = &[
    "metadata",
    "eventTime",
    "series",
    "reason",
    "type",
    "action",
    "related",
    "reportingInstance",
];

/// Whether a group and plural name Events (core or `events.k8s.io`).
pub fn is_events(group: &str, plural: &str) -> bool {
    plural == "events" && (group.is_empty() || group == "events.k8s.io")
}

/// The other API's group for Events.
pub fn other_group(group: &str) -> &'static str {
    if group.is_empty() {
        "events.k8s.io"
    } else {
        ""
    }
}

/// `event`, stored under `from_group`, as the API of `to_group` serves it.
pub fn convert(event: &Value, from_group: &str, to_group: &str) -> Value {
    let to_core = to_group.is_empty();
    let mut out = Map::new();
    out.insert(
        "apiVersion".into(),
        json!(if to_core { "v1" } else { "events.k8s.io/v1" }),
    );
    out.insert("kind".into(), json!("Event"));
    for field in SHARED {
        if let Some(v) = event.get(*field) {
            out.insert((*field).into(), v.clone());
        }
    }
    for (new, old) in RENAMED {
        let (from, to) = if from_group.is_empty() {
            (old, new)
        } else {
            (new, old)
        };
        if let Some(v) = event.get(*from) {
            out.insert((*to).into(), v.clone());
        }
    }
    if to_core
        && !out.contains_key("source")
        && let Some(controller) = event.get("reportingController")
    {
        out.insert("source".into(), json!({"component": controller}));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_api_event_reads_as_a_core_one_and_back() {
        let new = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e1", "namespace": "video"},
            "regarding": {"kind": "SigningKeyGroup", "name": "media", "namespace": "video"},
            "note": "Secret media-cloudfront-key now holds public key K1",
            "reason": "KeyActivated", "type": "Normal", "action": "WriteAppSecret/1",
            "eventTime": "2026-12-06T10:00:00.000000Z",
            "reportingController": "keyfront", "reportingInstance": "keyfront-0",
        });
        let core = convert(&new, "events.k8s.io", "");
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "media");
        assert_eq!(core["message"], new["note"]);
        assert_eq!(core["source"]["component"], "keyfront");
        assert_eq!(core["reportingComponent"], "keyfront");
        let back = convert(&core, "", "events.k8s.io");
        for field in [
            "regarding",
            "note",
            "reason",
            "type",
            "action",
            "eventTime",
            "metadata",
        ] {
            assert_eq!(back[field], new[field], "{field}");
        }
    }
}
