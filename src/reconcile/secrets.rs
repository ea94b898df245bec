//! The Secrets keyfront writes (client required): the keyring, in the operator's namespace, and
//! the app-facing Secret, in the tenant's; orphaning for `Retain` and deleting for `Delete`.
//! Also the ConfigMap that publishes the key group's ID, beside the app Secret.
//! Each is one request; errors name the operation, never the data.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Resource as _, ResourceExt as _};
use serde_json::json;

use super::error::{is_not_found, kube_error};
use super::keyring::{KeyRecord, Keyring};
use super::observed::{AppSecret, Observed, Subject};
use super::plan::{
    Settings, app_secret_annotations, app_secret_labels, hash_algorithm, merged_metadata,
    previous_spec_keys,
};
use super::{Error, KubeOperation, names};
use crate::api::SigningKeyGroup;

fn owner_reference(
    object: &SigningKeyGroup,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    object.controller_owner_ref(&()).into_iter().collect()
}

pub(super) async fn save_keyring(
    keyrings: &Api<Secret>,
    namespace: &str,
    subject: &Subject,
    account: &str,
    keyring: &Keyring,
    observed: &Observed,
) -> Result<(), Error> {
    let name = names::keyring_secret_name(&subject.owner);
    let mut annotations = BTreeMap::from([
        (names::OWNER_ANNOTATION.to_owned(), subject.owner.clone()),
        (names::OWNER_OBJECT_ANNOTATION.to_owned(), subject.path()),
        (names::ACCOUNT_ANNOTATION.to_owned(), account.to_owned()),
    ]);
    if let Some(made_for) = &keyring.made_for {
        annotations.insert(
            names::NAMESPACE_UID_ANNOTATION.to_owned(),
            made_for.namespace_uid.clone(),
        );
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_owned()),
            resource_version: observed
                .keyring
                .as_ref()
                .and_then(|k| k.resource_version.clone()),
            labels: Some(BTreeMap::from([
                (
                    names::MANAGED_BY_LABEL.to_owned(),
                    names::MANAGED_BY.to_owned(),
                ),
                (names::ROLE_LABEL.to_owned(), "keyring".to_owned()),
            ])),
            // No ownerReference: owners cannot cross namespaces, and the keyring must outlive
            // a force-deleted object so that its restore resumes the same keys.
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(keyring.to_secret_data().map_err(Error::Keyring)?),
        ..Secret::default()
    };
    if observed.keyring.is_some() {
        keyrings
            .replace(&name, &PostParams::default(), &secret)
            .await
    } else {
        keyrings.create(&PostParams::default(), &secret).await
    }
    .map_err(kube_error(KubeOperation::WriteSecret))?;
    Ok(())
}

pub(super) async fn delete_secret(secrets: &Api<Secret>, name: &str) -> Result<(), Error> {
    match secrets.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(kube_error(KubeOperation::DeleteSecret)(e)),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn write_app_secret(
    secrets: &Api<Secret>,
    object: &SigningKeyGroup,
    subject: &Subject,
    settings: &Settings,
    record: &KeyRecord,
    observed: &Observed,
    now: jiff::Timestamp,
) -> Result<(), Error> {
    let private = record.private_key.as_ref().ok_or(Error::UnknownKey {
        serial: record.serial,
    })?;
    let id = record.public_key_id.as_ref().ok_or(Error::UnknownKey {
        serial: record.serial,
    })?;
    let (resource_version, labels, annotations_now) = match &observed.app_secret {
        AppSecret::Owned(s) => (
            s.resource_version.clone(),
            s.labels.clone(),
            s.annotations.clone(),
        ),
        _ => Default::default(),
    };
    let (previous_labels, previous_annotations) = previous_spec_keys(&annotations_now);
    // The activation time stays what it was while the Secret keeps the same key.
    let activated_at = match &observed.app_secret {
        AppSecret::Owned(s) if s.key_pair_id.as_deref() == Some(id.as_str()) => {
            s.annotations.get(names::ACTIVATED_AT_ANNOTATION).cloned()
        }
        _ => None,
    }
    .unwrap_or_else(|| now.to_string());
    let mut annotations = app_secret_annotations(settings, &subject.owner, Some(id));
    annotations.insert(names::ACTIVATED_AT_ANNOTATION.into(), activated_at);
    let annotations = merged_metadata(&annotations_now, &previous_annotations, annotations);
    let labels = merged_metadata(&labels, &previous_labels, app_secret_labels(settings));
    let data = BTreeMap::from([
        (
            "private_key.pem".to_owned(),
            ByteString(private.expose().as_bytes().to_vec()),
        ),
        (
            "public_key.pem".to_owned(),
            ByteString(record.public_key_pem.as_bytes().to_vec()),
        ),
        ("key_pair_id".to_owned(), ByteString(id.as_bytes().to_vec())),
        (
            "hash_algorithm".to_owned(),
            ByteString(hash_algorithm(record.algorithm).as_bytes().to_vec()),
        ),
    ]);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(settings.secret_name.clone()),
            namespace: Some(subject.namespace.clone()),
            resource_version: resource_version.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(owner_reference(object)),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    };
    if resource_version.is_some() {
        secrets
            .replace(&settings.secret_name, &PostParams::default(), &secret)
            .await
    } else {
        secrets.create(&PostParams::default(), &secret).await
    }
    .map_err(kube_error(KubeOperation::WriteSecret))?;
    Ok(())
}

/// Removes this object's ownerReference so garbage collection leaves the Secret alone.
pub(super) async fn orphan_secret(
    secrets: &Api<Secret>,
    name: &str,
    uid: &str,
) -> Result<(), Error> {
    let Some(secret) = secrets
        .get_opt(name)
        .await
        .map_err(kube_error(KubeOperation::ReadSecret))?
    else {
        return Ok(());
    };
    let remaining: Vec<_> = secret
        .owner_references()
        .iter()
        .filter(|r| r.uid != uid)
        .cloned()
        .collect();
    if remaining.len() == secret.owner_references().len() {
        return Ok(());
    }
    let patch = json!({"metadata": {"ownerReferences": remaining, "resourceVersion": secret.resource_version()}});
    secrets
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(kube_error(KubeOperation::WriteSecret))?;
    Ok(())
}

/// Writes the ConfigMap `spec.keyGroup.idConfigMap` names (server-side apply): marked as this
/// object's, and owned by it, so it goes with the object.
pub(super) async fn write_id_config_map(
    client: &kube::Client,
    object: &SigningKeyGroup,
    subject: &Subject,
    name: &str,
    data: &BTreeMap<String, String>,
) -> Result<(), Error> {
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(subject.namespace.clone()),
            labels: Some(BTreeMap::from([(
                names::MANAGED_BY_LABEL.to_owned(),
                names::MANAGED_BY.to_owned(),
            )])),
            annotations: Some(BTreeMap::from([(
                names::OWNER_ANNOTATION.to_owned(),
                subject.owner.clone(),
            )])),
            owner_references: Some(owner_reference(object)),
            ..ObjectMeta::default()
        },
        data: Some(data.clone()),
        ..ConfigMap::default()
    };
    let mut value = serde_json::to_value(&config_map).map_err(|_| Error::Internal("ConfigMap"))?;
    value["apiVersion"] = json!("v1");
    value["kind"] = json!("ConfigMap");
    Api::<ConfigMap>::namespaced(client.clone(), &subject.namespace)
        .patch(
            name,
            &PatchParams::apply("keyfront").force(),
            &Patch::Apply(value),
        )
        .await
        .map_err(kube_error(KubeOperation::WriteConfigMap))?;
    Ok(())
}
