//! Execute (client required): carry out a plan's steps in order, stopping at the first
//! failure. Each step is one side effect (or a read plus its write), so a crash between any
//! two leaves a state the next plan recognizes.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt as _};
use serde_json::json;

use super::capacity::{self, Slot};
use super::error::{is_not_found, kube_error};
use super::keyring::KeyRecord;
use super::observed::{AppSecret, DistributionState, Observed, Subject};
use super::plan::{Finding, Plan, Step};
use super::secrets::{delete_secret, orphan_secret, save_keyring, write_app_secret};
use super::{Context, Error, KubeOperation, names, reasons};
use crate::api::{KeyState, SigningKeyGroup};
use crate::cloudfront::{BehaviorTrust, CloudFront, ErrorKind, NewPublicKey, TrustChange};
use crate::keys;

/// What running a plan changed that the caller must know.
#[derive(Debug, Default)]
pub struct Executed {
    pub steps: usize,
    pub finalizer_removed: bool,
    /// The account had no room for a key: it was not created (the other steps were run).
    pub held: Option<Held>,
}

/// A public key the account had no room for, and why.
#[derive(Debug, Clone)]
pub struct Held {
    pub slot: Slot,
    pub message: String,
}

impl Held {
    /// What it means for the object: a rotation waits (signing works), while a first key or a
    /// revoked key's successor leaves it not Ready.
    pub fn finding(&self) -> Finding {
        let (condition, reason, blocking) = match self.slot {
            Slot::Rotation => (
                reasons::ROTATING,
                reasons::WAITING_FOR_ACCOUNT_CAPACITY,
                false,
            ),
            Slot::FirstKey { .. } => (reasons::READY, reasons::ACCOUNT_CAPACITY_EXCEEDED, true),
            Slot::Revocation => (reasons::READY, reasons::REVOCATION_BLOCKED, true),
        };
        Finding {
            condition,
            reason,
            message: self.message.clone(),
            blocking,
        }
    }
}

/// Runs `plan.steps` for `object`, with `cloudfront` connected to the object's account.
pub async fn execute<A, C: CloudFront>(
    ctx: &Context<A>,
    cloudfront: Option<&C>,
    object: &SigningKeyGroup,
    subject: &Subject,
    plan: &Plan,
    observed: &Observed,
) -> Result<Executed, Error> {
    let mut done = Executed::default();
    let objects: Api<SigningKeyGroup> = Api::namespaced(ctx.client.clone(), &subject.namespace);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &subject.namespace);
    let keyrings: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.keyring_namespace);
    for step in &plan.steps {
        // A key the account had no room for holds up no other step: none of a plan's steps can
        // name a key not created when it was planned, and the others are what frees the slot
        // it waits for (a retiring key leaving the group, then being deleted).
        if done.held.is_some() && matches!(step, Step::CreatePublicKey { .. }) {
            continue;
        }
        let event = match step {
            Step::AddFinalizer => {
                let mut finalizers = object.finalizers().to_vec();
                finalizers.push(names::FINALIZER.to_owned());
                set_finalizers(
                    &objects,
                    &subject.name,
                    finalizers,
                    object.resource_version(),
                )
                .await?;
                None
            }
            Step::SaveKeyring { stage } => {
                let mut keyring = plan.keyring.clone();
                let mut staged = None;
                if let Some(stage) = *stage {
                    let algorithm = stage.algorithm;
                    let pair = tokio::task::spawn_blocking(move || keys::generate(algorithm))
                        .await
                        .map_err(|_| Error::Internal("key generation task"))?
                        .map_err(Error::Key)?;
                    let serial = keyring.next_serial.max(1);
                    // Serials are never reused (they name public keys): refuse past the last.
                    keyring.next_serial = serial
                        .checked_add(1)
                        .ok_or(Error::Internal("every key serial has been used"))?;
                    keyring.keys.push(KeyRecord {
                        serial,
                        algorithm,
                        state: KeyState::Staged,
                        public_key_id: None,
                        public_key_pem: pair.public_key_pem,
                        fingerprint: pair.fingerprint.clone(),
                        created_at: ctx.clock.now(),
                        live_at: None,
                        published_at: None,
                        activated_at: None,
                        rotates_early_by: None,
                        takes_over_at: stage.takes_over_at,
                        retired_at: None,
                        revoked: false,
                        private_key_lost: false,
                        private_key: Some(pair.private_key),
                    });
                    staged = Some((serial, algorithm, pair.fingerprint));
                }
                save_keyring(
                    &keyrings,
                    &ctx.config.keyring_namespace,
                    subject,
                    &object.spec.account_ref.name,
                    &keyring,
                    observed,
                )
                .await?;
                staged.map(|(serial, algorithm, fingerprint)| {
                    (
                        EventType::Normal,
                        reasons::KEY_STAGED,
                        format!("generated key {serial} ({algorithm}, fingerprint {fingerprint}) and stored it in the cluster"),
                    )
                })
            }
            Step::CreatePublicKey { serial, slot } => {
                let record = plan
                    .keyring
                    .record(*serial)
                    .ok_or(Error::UnknownKey { serial: *serial })?;
                let cf = reach(cloudfront)?;
                let entered = ctx
                    .capacity
                    .enter(
                        &object.spec.account_ref.name,
                        &subject.path(),
                        *slot,
                        ctx.clock.now(),
                        async || {
                            capacity::count(
                                ctx,
                                cf,
                                subject,
                                &object.spec.account_ref.name,
                                observed.account.as_ref(),
                                *slot,
                            )
                            .await
                        },
                    )
                    .await?;
                // Held until the key exists: no other object counts the account meanwhile.
                let _granted = match entered {
                    Ok(granted) => granted,
                    Err(message) => {
                        done.held = Some(Held {
                            slot: *slot,
                            message,
                        });
                        continue;
                    }
                };
                let name = names::public_key_name(&subject.owner, *serial);
                let created = cf
                    .create_public_key(&NewPublicKey {
                        name: name.clone(),
                        encoded_key: record.public_key_pem.clone(),
                        comment: Some(names::public_key_comment(
                            &subject.owner,
                            &ctx.config.install_claim,
                        )),
                        caller_reference: name.clone(),
                    })
                    .await;
                match created {
                    Ok(key) => Some((
                        EventType::Normal,
                        reasons::KEY_PUBLISHED,
                        format!("created CloudFront public key {} ({name})", key.value.id),
                    )),
                    // Created by an earlier attempt whose answer was lost — but only if the
                    // key under that name is this one; else the name is someone else's, and
                    // treating it as done would plan the same create forever.
                    Err(e) if e.kind == ErrorKind::AlreadyExists => {
                        let ours = reach(cloudfront)?
                            .list_public_keys()
                            .await
                            .map_err(Error::cloudfront("ListPublicKeys"))?
                            .into_iter()
                            .any(|k| {
                                k.name == name
                                    && crate::keys::fingerprint(&k.encoded_key).ok()
                                        == Some(record.fingerprint.clone())
                            });
                        if !ours {
                            return Err(Error::cloudfront("CreatePublicKey")(e));
                        }
                        None
                    }
                    Err(e) => return Err(Error::cloudfront("CreatePublicKey")(e)),
                }
            }
            Step::CreateKeyGroup { config } => {
                match reach(cloudfront)?.create_key_group(config).await {
                    Ok(group) => Some((
                        EventType::Normal,
                        reasons::KEY_GROUP_CREATED,
                        format!(
                            "created CloudFront key group {} ({}) with keys {}",
                            group.value.id,
                            config.name,
                            config.items.join(", ")
                        ),
                    )),
                    // As for public keys: done only if the group under that name is ours.
                    Err(e) if e.kind == ErrorKind::AlreadyExists => {
                        let ours = reach(cloudfront)?
                            .list_key_groups()
                            .await
                            .map_err(Error::cloudfront("ListKeyGroups"))?
                            .into_iter()
                            .any(|g| {
                                g.config.name == config.name
                                    && names::is_owned_comment(
                                        g.config.comment.as_deref(),
                                        &subject.owner,
                                    )
                            });
                        if !ours {
                            return Err(Error::cloudfront("CreateKeyGroup")(e));
                        }
                        None
                    }
                    Err(e) => return Err(Error::cloudfront("CreateKeyGroup")(e)),
                }
            }
            Step::UpdateKeyGroup { id, config, etag } => {
                reach(cloudfront)?
                    .update_key_group(id, config, etag)
                    .await
                    .map_err(Error::cloudfront("UpdateKeyGroup"))?;
                Some((
                    EventType::Normal,
                    reasons::KEY_GROUP_UPDATED,
                    format!("key group {id} now holds keys {}", config.items.join(", ")),
                ))
            }
            Step::SetTrust {
                distribution_id,
                behaviors,
            } => {
                let base = match observed.distributions.get(distribution_id) {
                    Some(DistributionState::Found(d)) => d,
                    _ => return Err(Error::Internal("SetTrust on a distribution not observed")),
                };
                let changes: Vec<TrustChange> = behaviors
                    .iter()
                    .map(|after| {
                        let before = base.value.behavior(&after.behavior).cloned();
                        TrustChange::between(
                            &before.unwrap_or(BehaviorTrust {
                                behavior: after.behavior.clone(),
                                trusted_key_groups: Vec::new(),
                            }),
                            after,
                        )
                    })
                    .collect();
                let cloudfront = reach(cloudfront)?;
                // Arriving: its change is queued in this same poll, so a writer gathering for
                // the objects on their way never waits for this one.
                cloudfront.heading_to(&subject.uid, &[]);
                cloudfront
                    .change_trust(distribution_id, &changes, Some(base.clone()))
                    .await
                    .map_err(Error::cloudfront("UpdateDistribution"))?;
                let described: Vec<String> = behaviors
                    .iter()
                    .map(|b| {
                        format!(
                            "{} trusts [{}]",
                            b.behavior,
                            b.trusted_key_groups.join(", ")
                        )
                    })
                    .collect();
                Some((
                    EventType::Normal,
                    reasons::DISTRIBUTION_UPDATED,
                    format!("distribution {distribution_id}: {}", described.join("; ")),
                ))
            }
            Step::WriteAppSecret { serial } => {
                let record = plan
                    .keyring
                    .record(*serial)
                    .ok_or(Error::UnknownKey { serial: *serial })?;
                let settings = plan.settings.as_ref().ok_or(Error::Internal("settings"))?;
                write_app_secret(
                    &secrets,
                    object,
                    subject,
                    settings,
                    record,
                    observed,
                    ctx.clock.now(),
                )
                .await?;
                let previous = match &observed.app_secret {
                    AppSecret::Owned(s) => s.key_pair_id.clone(),
                    _ => None,
                };
                (previous != record.public_key_id).then(|| {
                    (
                        EventType::Normal,
                        reasons::KEY_ACTIVATED,
                        format!(
                            "Secret {} now holds public key {}",
                            settings.secret_name,
                            record.public_key_id.as_deref().unwrap_or_default()
                        ),
                    )
                })
            }
            Step::WriteIdConfigMap { name, data } => {
                super::secrets::write_id_config_map(&ctx.client, object, subject, name, data)
                    .await?;
                Some((
                    EventType::Normal,
                    reasons::KEY_GROUP_ID_PUBLISHED,
                    format!(
                        "ConfigMap {name} holds key group ID {}",
                        data.get("keyGroupId").map_or("", String::as_str)
                    ),
                ))
            }
            Step::DeletePublicKey { id } => {
                let deleted = match reach(cloudfront)?.get_public_key(id).await {
                    Ok(key) => match reach(cloudfront)?.delete_public_key(id, &key.etag).await {
                        Ok(()) => true,
                        Err(e) if e.kind == ErrorKind::NotFound => false,
                        Err(e) => return Err(Error::cloudfront("DeletePublicKey")(e)),
                    },
                    Err(e) if e.kind == ErrorKind::NotFound => false,
                    Err(e) => return Err(Error::cloudfront("GetPublicKey")(e)),
                };
                deleted.then(|| {
                    (
                        EventType::Normal,
                        reasons::KEY_DELETED,
                        format!("deleted CloudFront public key {id}"),
                    )
                })
            }
            Step::DeleteKeyGroup { id, etag } => {
                match reach(cloudfront)?.delete_key_group(id, etag).await {
                    Ok(()) => Some((
                        EventType::Normal,
                        reasons::KEY_GROUP_DELETED,
                        format!("deleted CloudFront key group {id}"),
                    )),
                    Err(e) if e.kind == ErrorKind::NotFound => None,
                    Err(e) => return Err(Error::cloudfront("DeleteKeyGroup")(e)),
                }
            }
            Step::ReleaseSecrets { delete } => {
                let mut released = Vec::new();
                if matches!(observed.app_secret, AppSecret::Owned(_)) {
                    let name = super::plan::secret_name(&object.spec, subject);
                    if *delete {
                        delete_secret(&secrets, &name).await?;
                    } else {
                        orphan_secret(&secrets, &name, &subject.uid).await?;
                    }
                    released.push(format!("{}/{name}", subject.namespace));
                }
                // With Retain the keyring stays too: the object created again under the same
                // name resumes its keys (the keyring is named by identity, not UID).
                if *delete && observed.keyring.is_some() {
                    let name = names::keyring_secret_name(&subject.owner);
                    delete_secret(&keyrings, &name).await?;
                    released.push(format!("{}/{name}", ctx.config.keyring_namespace));
                }
                let verb = if *delete {
                    "deleted"
                } else {
                    "kept, with the keyring (deletionPolicy: Retain)"
                };
                (!released.is_empty()).then(|| {
                    (
                        EventType::Normal,
                        reasons::SECRETS_RELEASED,
                        format!("Secrets {} {verb}", released.join(", ")),
                    )
                })
            }
            Step::RemoveFinalizer => {
                let current = objects
                    .get_opt(&subject.name)
                    .await
                    .map_err(kube_error(KubeOperation::ReadObject))?;
                if let Some(current) =
                    current.filter(|o| o.finalizers().iter().any(|f| f == names::FINALIZER))
                {
                    let finalizers = current
                        .finalizers()
                        .iter()
                        .filter(|f| *f != names::FINALIZER)
                        .cloned()
                        .collect();
                    set_finalizers(
                        &objects,
                        &subject.name,
                        finalizers,
                        current.resource_version(),
                    )
                    .await?;
                }
                done.finalizer_removed = true;
                None
            }
        };
        done.steps += 1;
        if matches!(
            step,
            Step::CreatePublicKey { .. }
                | Step::DeletePublicKey { .. }
                | Step::CreateKeyGroup { .. }
                | Step::DeleteKeyGroup { .. }
        ) {
            // `kubectl get cfa` shows the account's usage as it changes, not minutes later.
            ctx.capacity.changed(&object.spec.account_ref.name);
        }
        if let Some((type_, reason, note)) = event {
            // One line per transition (a key staged, published, active, retiring, deleted, a
            // group or distribution changed), for whoever tails the operator's log. Notes name
            // keys by serial, ID and fingerprint, never by material.
            tracing::info!(
                object = %subject.path(),
                reason,
                "{note}"
            );
            ctx.events
                .publish(object, type_, reason, super::report::step_name(step), note)
                .await;
        }
    }
    Ok(done)
}

/// The account's client, which the plan only asks for when the grant let observe reach it.
fn reach<C>(cloudfront: Option<&C>) -> Result<&C, Error> {
    cloudfront.ok_or(Error::Internal(
        "a CloudFront step without access to its account",
    ))
}

/// Replaces the finalizer list, failing with a conflict if the object changed since it was
/// read (so another writer's finalizer is never dropped).
async fn set_finalizers(
    objects: &Api<SigningKeyGroup>,
    name: &str,
    finalizers: Vec<String>,
    resource_version: Option<String>,
) -> Result<(), Error> {
    let patch =
        json!({"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}});
    match objects
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(kube_error(KubeOperation::PatchObject)(e)),
    }
}
