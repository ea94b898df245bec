//! Protobuf request bodies, for the one imperative command a newcomer types first:
//! `kubectl create namespace NAME`. kubectl sends built-in kinds as protobuf
//! (`application/vnd.kubernetes.protobuf`) and does not fall back to JSON when refused. The
//! body is Kubernetes' envelope: the magic `k8s\0`, then a `runtime.Unknown` whose `raw` holds
//! the object. Only a Namespace's metadata (name, generateName, labels, annotations) is
//! decoded; any other kind is refused, naming `kubectl apply` (which sends JSON) as the way.
//!
//! The messages are declared here with prost (tags from k8s.io/apimachinery's and k8s.io/api's
//! `generated.proto`): no maintained crate serves protobuf-to-JSON for Kubernetes objects
//! without pulling in every generated type.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Kubernetes' protobuf envelope prefix.
const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, PartialEq, prost::Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", tag = "2")]
    raw: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TypeMeta {
    #[prost(string, tag = "1")]
    api_version: String,
    #[prost(string, tag = "2")]
    kind: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Namespace {
    #[prost(message, optional, tag = "1")]
    metadata: Option<ObjectMeta>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ObjectMeta {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    generate_name: String,
    #[prost(btree_map = "string, string", tag = "11")]
    labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    annotations: BTreeMap<String, String>,
}

/// The JSON form of a protobuf body, or why it cannot be read.
pub fn to_json(body: &[u8]) -> Result<Value, String> {
    use prost::Message as _;
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("a protobuf body must start with Kubernetes' k8s\\0 envelope")?;
    let unknown =
        Unknown::decode(envelope).map_err(|e| format!("invalid protobuf envelope: {e}"))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    if type_meta.kind != "Namespace" {
        return Err(format!(
            "the kube API double reads protobuf only for a Namespace, not a {:?}: use kubectl apply -f (it sends JSON)",
            type_meta.kind
        ));
    }
    let namespace =
        Namespace::decode(unknown.raw.as_slice()).map_err(|e| format!("invalid Namespace: {e}"))?;
    let meta = namespace.metadata.unwrap_or_default();
    let mut metadata = json!({});
    if !meta.name.is_empty() {
        metadata["name"] = json!(meta.name);
    }
    if !meta.generate_name.is_empty() {
        metadata["generateName"] = json!(meta.generate_name);
    }
    if !meta.labels.is_empty() {
        metadata["labels"] = json!(meta.labels);
    }
    if !meta.annotations.is_empty() {
        metadata["annotations"] = json!(meta.annotations);
    }
    Ok(json!({"apiVersion": type_meta.api_version, "kind": "Namespace", "metadata": metadata}))
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    fn envelope(kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: "v1".into(),
                kind: kind.into(),
            }),
            raw,
        };
        [MAGIC.to_vec(), unknown.encode_to_vec()].concat()
    }

    #[test]
    fn a_namespace_is_read_with_its_labels() {
        let namespace = Namespace {
            metadata: Some(ObjectMeta {
                name: "streaming".into(),
                labels: BTreeMap::from([("team".into(), "video".into())]),
                ..Default::default()
            }),
        };
        let json = to_json(&envelope("Namespace", namespace.encode_to_vec())).unwrap();
        assert_eq!(
            json,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "streaming", "labels": {"team": "video"}}})
        );
    }

    #[test]
    fn other_kinds_and_bad_bodies_are_named() {
        let refused = to_json(&envelope("Secret", Vec::new())).unwrap_err();
        assert!(
            refused.contains("\"Secret\"") && refused.contains("kubectl apply"),
            "{refused}"
        );
        assert!(to_json(b"{}").unwrap_err().contains("envelope"));
    }
}
