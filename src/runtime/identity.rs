//! The cluster identity: the `--cluster-id` that, with an object's namespace and name, makes the
//! owner token marked on every CloudFront object keyfront creates ([`crate::reconcile::names`]).
//! Two clusters sharing an AWS account must differ in it; one install must never change it.
//!
//! Decided once per install and recorded in a ConfigMap in keyfront's namespace
//! ([`IDENTITY_CONFIG_MAP`]), then always read back from there:
//! - `--cluster-id` given: that (refused if it differs from the recorded one);
//! - none given, an install from before 0.2 (keyrings exist, no record): `default`, the identity
//!   its objects already carry;
//! - none given, a new install: the UID of the `kube-system` namespace, stable for the
//!   cluster's life and different between clusters.
//!
//! [`decide`] is the pure rule (no client required); [`resolve`] reads and records (client
//! required); [`settle`] is what `keyfront run` does at start.

use std::collections::BTreeMap;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Api;
use kube::api::{ListParams, ObjectMeta, PostParams};

use crate::reconcile::names;

/// The ConfigMap, in keyfront's namespace, recording the identity in use.
pub const IDENTITY_CONFIG_MAP: &str = "keyfront-cluster-identity";
const KEY: &str = "clusterId";
/// The identity every install before 0.2 used unless told otherwise.
pub const LEGACY_DEFAULT: &str = "default";

/// What [`decide`] settles on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub cluster_id: String,
    /// Where it came from, for the startup log.
    pub source: &'static str,
    /// Whether it still has to be recorded.
    pub record: bool,
    /// This physical cluster's claim on the keys it makes ([`names::install_claim`] of the
    /// kube-system UID), whatever the cluster ID; empty if kube-system cannot be read.
    pub install_claim: String,
}

/// The rule above, from what was found.
pub fn decide(
    flag: Option<&str>,
    recorded: Option<&str>,
    has_keyrings: bool,
    kube_system_uid: Option<&str>,
    where_recorded: &str,
) -> anyhow::Result<Identity> {
    let found = |id: &str, source, record| Identity {
        cluster_id: id.to_owned(),
        source,
        record,
        install_claim: kube_system_uid
            .map(names::install_claim)
            .unwrap_or_default(),
    };
    match (flag, recorded) {
        (Some(flag), Some(recorded)) if flag != recorded => anyhow::bail!(
            "--cluster-id {flag:?} differs from the identity this install recorded ({recorded:?}, in ConfigMap {where_recorded}); every CloudFront object keyfront made here is marked with it. Keep {recorded:?} (or leave --cluster-id out), or delete that ConfigMap to start over under a new identity, leaving the old objects behind"
        ),
        (_, Some(recorded)) => Ok(found(recorded, "recorded", false)),
        (Some(flag), None) => Ok(found(flag, "--cluster-id", true)),
        (None, None) if has_keyrings => Ok(found(
            LEGACY_DEFAULT,
            "kept from an install before 0.2",
            true,
        )),
        (None, None) => match kube_system_uid {
            Some(uid) => Ok(found(uid, "the kube-system namespace's UID", true)),
            None => anyhow::bail!(
                "no --cluster-id was given and the kube-system namespace cannot be read to derive one; pass --cluster-id (different for every cluster sharing an AWS account)"
            ),
        },
    }
}

/// Why [`resolve`] has no identity.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The rule refuses (a `--cluster-id` other than the recorded one): a person must act.
    #[error("{0:#}")]
    Refused(anyhow::Error),
    /// The Kubernetes API could not be asked: try again.
    #[error("{0:#}")]
    Unreachable(anyhow::Error),
}

/// Reads the recorded identity, decides, and records it if new. Two replicas starting at once
/// both derive the same value; the second create finds the first's record and reads it back.
pub async fn resolve(
    client: &kube::Client,
    namespace: &str,
    flag: Option<&str>,
) -> Result<Identity, IdentityError> {
    read_decide_record(client, namespace, flag)
        .await
        .map_err(|e| match e.downcast::<Refusal>() {
            Ok(Refusal(refused)) => IdentityError::Refused(refused),
            Err(other) => IdentityError::Unreachable(other),
        })
}

/// A refusal of [`decide`], told apart from API errors in [`resolve`].
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
struct Refusal(anyhow::Error);

async fn read_decide_record(
    client: &kube::Client,
    namespace: &str,
    flag: Option<&str>,
) -> anyhow::Result<Identity> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let where_recorded = format!("{namespace}/{IDENTITY_CONFIG_MAP}");
    let read_recorded = async || -> anyhow::Result<Option<String>> {
        Ok(maps
            .get_opt(IDENTITY_CONFIG_MAP)
            .await
            .with_context(|| format!("cannot read ConfigMap {where_recorded}"))?
            .and_then(|m| m.data?.get(KEY).cloned()))
    };
    let recorded = read_recorded().await?;
    let has_keyrings = recorded.is_none()
        && !Api::<Secret>::namespaced(client.clone(), namespace)
            .list_metadata(
                &ListParams::default()
                    .labels(&format!("{}=keyring", names::ROLE_LABEL))
                    .limit(1),
            )
            .await
            .with_context(|| format!("cannot list keyrings in {namespace}"))?
            .items
            .is_empty();
    let kube_system_uid = Api::<Namespace>::all(client.clone())
        .get_metadata_opt("kube-system")
        .await
        .ok()
        .flatten()
        .and_then(|n| n.metadata.uid);
    let identity = decide(
        flag,
        recorded.as_deref(),
        has_keyrings,
        kube_system_uid.as_deref(),
        &where_recorded,
    )
    .map_err(Refusal)?;
    if !identity.record {
        return Ok(identity);
    }
    let map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(IDENTITY_CONFIG_MAP.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                names::MANAGED_BY_LABEL.to_owned(),
                names::MANAGED_BY.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            KEY.to_owned(),
            identity.cluster_id.clone(),
        )])),
        ..ConfigMap::default()
    };
    match maps.create(&PostParams::default(), &map).await {
        Ok(_) => Ok(identity),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let recorded = read_recorded().await?;
            Ok(decide(
                flag,
                recorded.as_deref(),
                false,
                kube_system_uid.as_deref(),
                &where_recorded,
            )
            .map_err(Refusal)?)
        }
        Err(e) => Err(e).with_context(|| {
            format!("cannot record the cluster identity in ConfigMap {where_recorded}")
        }),
    }
}

/// The identity `keyfront run` starts with. Without `--cluster-id` it must be read (or made)
/// before anything is reconciled: retried while the API server cannot be reached. With one,
/// the operator starts at once under it, and the record is checked in the background: a
/// refusal there (another identity recorded) ends the process, as it would at start.
pub async fn settle(
    client: &kube::Client,
    namespace: &str,
    flag: Option<&str>,
) -> anyhow::Result<Identity> {
    loop {
        match resolve(client, namespace, flag).await {
            Ok(identity) => return Ok(identity),
            Err(IdentityError::Refused(error)) => return Err(error),
            Err(IdentityError::Unreachable(error)) => {
                let Some(flag) = flag else {
                    tracing::warn!(error = %format!("{error:#}"), "cannot read the cluster identity yet; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    continue;
                };
                tracing::warn!(error = %format!("{error:#}"), "cannot check --cluster-id against the recorded identity yet; starting with it and checking in the background");
                let (client, namespace, owned) =
                    (client.clone(), namespace.to_owned(), flag.to_owned());
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                        match resolve(&client, &namespace, Some(&owned)).await {
                            Ok(_) => return,
                            Err(IdentityError::Refused(error)) => {
                                tracing::error!(error = %format!("{error:#}"), "stopping");
                                std::process::exit(1);
                            }
                            Err(IdentityError::Unreachable(_)) => {}
                        }
                    }
                });
                return Ok(Identity {
                    cluster_id: flag.to_owned(),
                    source: "--cluster-id (not yet checked against the record)",
                    record: false,
                    install_claim: String::new(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(result: anyhow::Result<Identity>) -> (String, bool) {
        let identity = result.unwrap();
        (identity.cluster_id, identity.record)
    }

    #[test]
    fn a_new_install_takes_the_kube_system_uid_and_records_it() {
        assert_eq!(
            id(decide(None, None, false, Some("uid-ks"), "ns/cm")),
            ("uid-ks".into(), true)
        );
        assert!(decide(None, None, false, None, "ns/cm").is_err());
    }

    #[test]
    fn an_install_from_before_keeps_default() {
        assert_eq!(
            id(decide(None, None, true, Some("uid-ks"), "ns/cm")),
            ("default".into(), true)
        );
    }

    #[test]
    fn the_recorded_identity_wins_and_a_different_flag_is_refused() {
        assert_eq!(
            id(decide(
                None,
                Some("prod-eu"),
                false,
                Some("uid-ks"),
                "ns/cm"
            )),
            ("prod-eu".into(), false)
        );
        assert_eq!(
            id(decide(
                Some("prod-eu"),
                Some("prod-eu"),
                false,
                None,
                "ns/cm"
            )),
            ("prod-eu".into(), false)
        );
        let err = decide(Some("prod-us"), Some("prod-eu"), false, None, "ns/cm").unwrap_err();
        assert!(err.to_string().contains("ConfigMap ns/cm"), "{err}");
        assert_eq!(
            id(decide(Some("prod-us"), None, true, None, "ns/cm")),
            ("prod-us".into(), true)
        );
    }
}
