//! The CloudFront emulator: one model of CloudFront's semantics with two fronts.
//!
//! - In-process: [`Emulator`] implements [`CloudFront`], for tests that want no sockets.
//! - Over HTTP: [`wire::router`] serves CloudFront's REST-XML protocol (API 2020-05-31), so
//!   AWS SDKs and `keyfront`'s own SDK adapter talk to it unchanged (`keyfront emulator`).
//!
//! Every call passes through fault injection ([`faults`]) and then one lock on the [`model`].
//! Where the emulator knowingly differs from CloudFront is listed in `docs/emulator.md`.

pub mod accounts;
pub mod command;
pub mod edge;
pub mod faults;
pub mod iam;
pub mod model;
pub mod wire;
pub mod xml;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::clock::Clock;
use crate::cloudfront::{
    BehaviorSelector, BehaviorTrust, CloudFront, CloudFrontError, DeploymentStatus, Distribution,
    Etag, KeyGroup, KeyGroupConfig, NewPublicKey, PublicKey, Result, Tagged,
};
use faults::{FaultSettings, Faults, ScriptedFault};
use model::{
    ApiError, Model, ModelSettings, PublicKeyConfig, StoredDistribution, StoredKeyGroup,
    StoredPublicKey,
};
use xml::Element;

/// A shared handle on one emulated CloudFront account.
#[derive(Debug, Clone)]
pub struct Emulator {
    model: Arc<Mutex<Model>>,
    faults: Arc<Mutex<Faults>>,
}

impl Emulator {
    pub fn new(settings: ModelSettings, faults: FaultSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            model: Arc::new(Mutex::new(Model::new(settings, clock))),
            faults: Arc::new(Mutex::new(Faults::new(faults))),
        }
    }

    /// Direct access to the model, bypassing fault injection (for assertions and setup).
    pub fn model(&self) -> MutexGuard<'_, Model> {
        let mut model = self.model.lock().unwrap_or_else(PoisonError::into_inner);
        model.settle();
        model
    }

    /// Queues a scripted fault.
    pub fn script_fault(&self, fault: ScriptedFault) {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .script(fault);
    }

    /// Faults injected so far, by kind (see [`faults::Faults::injected`]).
    pub fn faults_injected(&self) -> std::collections::BTreeMap<String, u64> {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .injected()
    }

    /// Removes scripted faults and zeroes the rates.
    pub fn clear_faults(&self) {
        self.faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Runs one operation: fault injection, then the model under its lock.
    pub async fn call<T>(
        &self,
        operation: &str,
        f: impl FnOnce(&mut Model) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let injection = self
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next(operation);
        if !injection.delay.is_zero() {
            tokio::time::sleep(injection.delay).await;
        }
        if let Some(error) = injection.error {
            return Err(error);
        }
        f(&mut self.model())
    }

    /// Like [`Emulator::create_test_distribution`], under a chosen ID.
    pub fn create_test_distribution_with_id(
        &self,
        id: &str,
        path_patterns: &[&str],
    ) -> Result<String, ApiError> {
        let mut model = self.model();
        let config = minimal_distribution_config(&format!("keyfront-{id}"), path_patterns);
        Ok(model.create_distribution_with_id(id, config)?.id)
    }

    /// Adds the distribution a command line names (`--distribution` of `keyfront emulator` and
    /// `keyfront dev`): `ID`, or `ID=/a/*,/b/*` for one behavior per path pattern besides the
    /// default one. Returns the ID and the patterns.
    pub fn add_distribution_from_flag(&self, flag: &str) -> Result<(String, Vec<String>), String> {
        let (id, patterns) = parse_distribution_flag(flag)?;
        let borrowed: Vec<&str> = patterns.iter().map(String::as_str).collect();
        self.create_test_distribution_with_id(&id, &borrowed)
            .map_err(|e| format!("--distribution {flag}: {}", e.message))?;
        Ok((id, patterns))
    }

    /// Creates a distribution with one S3 origin, a default behavior and the given path
    /// patterns, none trusting a key group. Returns its ID.
    pub fn create_test_distribution(&self, path_patterns: &[&str]) -> Result<String, ApiError> {
        let mut model = self.model();
        let reference = format!("keyfront-test-{}", model.list_distributions().len());
        Ok(model
            .create_distribution(minimal_distribution_config(&reference, path_patterns))?
            .id)
    }
}

/// Parses `ID` or `ID=/a/*,/b/*` (see [`Emulator::add_distribution_from_flag`]); also clap's
/// value parser, so a malformed flag is refused before anything starts.
pub fn parse_distribution_flag(flag: &str) -> Result<(String, Vec<String>), String> {
    let (id, patterns) = flag.split_once('=').unwrap_or((flag, ""));
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(format!(
            "{id:?} is not a distribution ID (capital letters and digits, e.g. E2EXAMPLE123=/private/*)"
        ));
    }
    let patterns = patterns
        .split(',')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    Ok((id.to_owned(), patterns))
}

/// clap's value parser for `--distribution`: checks the flag, keeps its text.
pub fn distribution_flag(flag: &str) -> Result<String, String> {
    parse_distribution_flag(flag).map(|_| flag.to_owned())
}

/// A minimal valid `DistributionConfig`: one S3 origin, a default behavior and one behavior per
/// path pattern.
pub fn minimal_distribution_config(caller_reference: &str, path_patterns: &[&str]) -> Element {
    let behavior = |name: &str| {
        Element::new(name)
            .with_text("TargetOriginId", "origin-1")
            .with(model::trusted_key_groups_element(&[]))
            .with_text("ViewerProtocolPolicy", "redirect-to-https")
            .with_text("CachePolicyId", "658327ea-f89d-4fab-a63d-7e88639e58f6")
    };
    let mut behaviors =
        Element::new("CacheBehaviors").with_text("Quantity", path_patterns.len().to_string());
    if !path_patterns.is_empty() {
        behaviors = behaviors.with(
            path_patterns
                .iter()
                .fold(Element::new("Items"), |items, p| {
                    let mut b = behavior("CacheBehavior");
                    b.children.insert(0, Element::text("PathPattern", *p));
                    items.with(b)
                }),
        );
    }
    Element::new("DistributionConfig")
        .with_text("CallerReference", caller_reference)
        .with(
            Element::new("Origins").with_text("Quantity", "1").with(
                Element::new("Items").with(
                    Element::new("Origin")
                        .with_text("Id", "origin-1")
                        .with_text("DomainName", "example-bucket.s3.amazonaws.com")
                        .with(
                            Element::new("S3OriginConfig")
                                .with(Element::new("OriginAccessIdentity")),
                        ),
                ),
            ),
        )
        .with(behavior("DefaultCacheBehavior"))
        .with(behaviors)
        .with_text("Comment", "created by keyfront tests")
        .with_text("Enabled", "true")
}

fn to_error(operation: &'static str, error: ApiError) -> CloudFrontError {
    CloudFrontError::from_code(operation, &error.code, error.message, Some(error.status))
}

fn public_key(key: &StoredPublicKey) -> Tagged<PublicKey> {
    Tagged {
        value: key.summary(),
        etag: Etag(key.etag.clone()),
    }
}

fn key_group(group: &StoredKeyGroup) -> Tagged<KeyGroup> {
    Tagged {
        value: KeyGroup {
            id: group.id.clone(),
            config: group.config.clone(),
            last_modified_time: group.last_modified_time,
        },
        etag: Etag(group.etag.clone()),
    }
}

fn distribution(d: &StoredDistribution) -> Tagged<Distribution> {
    Tagged {
        value: Distribution {
            id: d.id.clone(),
            status: if d.deploy_due.is_some() {
                DeploymentStatus::InProgress
            } else {
                DeploymentStatus::Deployed
            },
            enabled: d.enabled(),
            behaviors: d.behaviors(),
            active_trusted_key_groups: d.deployed.active_trusted_key_groups(),
        },
        etag: Etag(d.etag.clone()),
    }
}

/// Rewrites the `TrustedKeyGroups` of selected behaviors in a config tree.
pub fn apply_trust(config: &mut Element, changes: &[BehaviorTrust]) -> Result<(), ApiError> {
    for change in changes {
        let behavior = match &change.behavior {
            BehaviorSelector::Default => config.child_mut("DefaultCacheBehavior"),
            BehaviorSelector::PathPattern(pattern) => config
                .child_mut("CacheBehaviors")
                .and_then(|c| c.child_mut("Items"))
                .and_then(|items| {
                    items
                        .children
                        .iter_mut()
                        .find(|b| b.child_text("PathPattern") == Some(pattern.as_str()))
                }),
        };
        let behavior = behavior.ok_or_else(|| {
            ApiError::new(
                404,
                "NoSuchCacheBehavior",
                format!("the distribution has no {}", change.behavior),
            )
        })?;
        behavior.set_child(model::trusted_key_groups_element(
            &change.trusted_key_groups,
        ));
    }
    Ok(())
}

impl CloudFront for Emulator {
    async fn create_public_key(&self, key: &NewPublicKey) -> Result<Tagged<PublicKey>> {
        let config = PublicKeyConfig {
            caller_reference: key.caller_reference.clone(),
            name: key.name.clone(),
            encoded_key: key.encoded_key.clone(),
            comment: key.comment.clone(),
        };
        self.call("CreatePublicKey", |m| {
            m.create_public_key(config).map(|k| public_key(&k))
        })
        .await
        .map_err(|e| to_error("CreatePublicKey", e))
    }

    async fn get_public_key(&self, id: &str) -> Result<Tagged<PublicKey>> {
        self.call("GetPublicKey", |m| m.get_public_key(id).map(public_key))
            .await
            .map_err(|e| to_error("GetPublicKey", e))
    }

    async fn list_public_keys(&self) -> Result<Vec<PublicKey>> {
        self.call("ListPublicKeys", |m| {
            Ok(m.list_public_keys()
                .into_iter()
                .map(StoredPublicKey::summary)
                .collect())
        })
        .await
        .map_err(|e| to_error("ListPublicKeys", e))
    }

    async fn delete_public_key(&self, id: &str, etag: &Etag) -> Result<()> {
        self.call("DeletePublicKey", |m| {
            m.delete_public_key(id, Some(etag.as_str()))
        })
        .await
        .map_err(|e| to_error("DeletePublicKey", e))
    }

    async fn create_key_group(&self, config: &KeyGroupConfig) -> Result<Tagged<KeyGroup>> {
        let config = config.clone();
        self.call("CreateKeyGroup", |m| {
            m.create_key_group(config).map(|g| key_group(&g))
        })
        .await
        .map_err(|e| to_error("CreateKeyGroup", e))
    }

    async fn get_key_group(&self, id: &str) -> Result<Tagged<KeyGroup>> {
        self.call("GetKeyGroup", |m| m.get_key_group(id).map(key_group))
            .await
            .map_err(|e| to_error("GetKeyGroup", e))
    }

    async fn list_key_groups(&self) -> Result<Vec<KeyGroup>> {
        self.call("ListKeyGroups", |m| {
            Ok(m.list_key_groups()
                .into_iter()
                .map(|g| key_group(g).value)
                .collect())
        })
        .await
        .map_err(|e| to_error("ListKeyGroups", e))
    }

    async fn list_distributions_by_key_group(&self, key_group_id: &str) -> Result<Vec<String>> {
        self.call("ListDistributionsByKeyGroup", |m| {
            m.distributions_by_key_group(key_group_id)
        })
        .await
        .map_err(|e| to_error("ListDistributionsByKeyGroup", e))
    }

    async fn update_key_group(
        &self,
        id: &str,
        config: &KeyGroupConfig,
        etag: &Etag,
    ) -> Result<Tagged<KeyGroup>> {
        let config = config.clone();
        self.call("UpdateKeyGroup", |m| {
            m.update_key_group(id, config, Some(etag.as_str()))
                .map(|g| key_group(&g))
        })
        .await
        .map_err(|e| to_error("UpdateKeyGroup", e))
    }

    async fn delete_key_group(&self, id: &str, etag: &Etag) -> Result<()> {
        self.call("DeleteKeyGroup", |m| {
            m.delete_key_group(id, Some(etag.as_str()))
        })
        .await
        .map_err(|e| to_error("DeleteKeyGroup", e))
    }

    async fn get_distribution(&self, id: &str) -> Result<Tagged<Distribution>> {
        self.call("GetDistribution", |m| {
            m.get_distribution(id).map(distribution)
        })
        .await
        .map_err(|e| to_error("GetDistribution", e))
    }

    async fn set_trusted_key_groups(
        &self,
        id: &str,
        changes: &[BehaviorTrust],
        etag: &Etag,
    ) -> Result<Tagged<Distribution>> {
        self.call("UpdateDistribution", |m| {
            let current = m.get_distribution(id)?;
            // A stale view is refused before anything else, as the SDK adapter does.
            model::check_if_match(Some(etag.as_str()), &current.etag)?;
            let mut config = current.config.clone();
            apply_trust(&mut config, changes)?;
            m.update_distribution(id, config, Some(etag.as_str()))
                .map(|d| distribution(&d))
        })
        .await
        .map_err(|e| to_error("UpdateDistribution", e))
    }
}
