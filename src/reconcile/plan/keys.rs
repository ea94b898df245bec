//! Keys: the keyring's bookkeeping from what was observed, when to stage the next key, and
//! when a published key may become the one apps sign with.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::Timestamp;

use super::distributions::trusts;
use jiff::SignedDuration;

use super::{Plan, Settings};
use crate::api::{KeyAlgorithm, KeyState};
use crate::cloudfront::DeploymentStatus;
use crate::reconcile::keyring::{KeyRecord, Keyring};
use crate::reconcile::names;
use crate::reconcile::observed::{AppSecret, DistributionState, Observed, Subject};
use crate::reconcile::reasons;

/// `d` as a signed span, saturating.
pub(super) fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// `t` plus `d`, saturating.
pub(super) fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(signed(d)).unwrap_or(Timestamp::MAX)
}

/// `t` less `d`, saturating.
pub(super) fn before(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_sub(signed(d)).unwrap_or(Timestamp::MIN)
}

/// When a Retiring key may leave the group (revoked keys: at once).
pub fn leave_time(record: &KeyRecord, grace: Duration) -> Option<Timestamp> {
    if record.state != KeyState::Retiring {
        return None;
    }
    if record.revoked {
        return Some(Timestamp::MIN);
    }
    Some(after(record.retired_at.unwrap_or(record.created_at), grace))
}

/// A duration as people write it (`1m`, `1h 30m`).
pub(super) fn friendly(d: Duration) -> String {
    format!("{:#}", signed(d))
}

/// What a deployment took here before none was observed: CloudFront's usual few minutes.
const FIRST_DEPLOYMENT: Duration = Duration::from_secs(5 * 60);

/// How long the last key that went live took from its publication to live (from staging, for
/// a key recorded before publications were): what CloudFront takes, not what the account's
/// capacity made it wait.
pub(super) fn observed_deployment(keyring: &Keyring) -> Option<Duration> {
    keyring
        .keys
        .iter()
        .filter_map(|r| {
            let published = r.published_at.unwrap_or(r.created_at);
            Some(r.live_at?.duration_since(published).unsigned_abs())
        })
        .next_back()
}

/// When the active key is due to be replaced: `interval` after it took over, less the advance
/// placed for it ([`crate::reconcile::capacity::stagger`]), and not before it took over.
pub fn next_rotation(keyring: &Keyring, interval: Duration) -> Option<Timestamp> {
    let active = keyring.active()?;
    let took_over = took_over(active);
    let declared = after(took_over, interval);
    let early = active.rotates_early_by.unwrap_or_default();
    Some(
        declared
            .saturating_sub(early)
            .unwrap_or(declared)
            .max(took_over),
    )
}

/// When the active key will have been active for `d`.
pub(super) fn active_for(keyring: &Keyring, d: Duration) -> Option<Timestamp> {
    Some(after(took_over(keyring.active()?), d))
}

/// When a key became the one apps sign with (its creation, for a record without that time).
pub(super) fn took_over(record: &KeyRecord) -> Timestamp {
    record.activated_at.unwrap_or(record.created_at)
}

/// A keyring being (re)built: the annotations already on the object were acted on by the
/// record that was lost (or predate the object's first key), so they are not replayed — a
/// replayed `rotate` would rotate again, a replayed `revoke-key` warn about a key long gone.
pub(super) fn take_annotations_as_handled_when_rebuilding(
    plan: &mut Plan,
    subject: &Subject,
    observed: &Observed,
) {
    if observed.keyring.is_none() {
        plan.keyring.handled_rotate = subject.rotate_request.clone();
        plan.keyring.handled_revoke = subject.revoke_request.clone();
    }
}

/// A lost keyring with keyfront's Secret still in place: the Secret's key is the active key.
pub(super) fn adopt_active_key_from_app_secret(
    plan: &mut Plan,
    subject: &Subject,
    observed: &Observed,
    now: Timestamp,
) {
    if observed.keyring.is_some() {
        return;
    }
    let AppSecret::Owned(secret) = &observed.app_secret else {
        return;
    };
    let (Some(id), Some(public), Some(private)) = (
        &secret.key_pair_id,
        &secret.public_key_pem,
        &secret.private_key,
    ) else {
        return;
    };
    let Ok(fingerprint) = crate::keys::fingerprint(public) else {
        return;
    };
    let listed = observed.listed_public_keys.as_deref().unwrap_or_default();
    let Some(found) = listed.iter().find(|k| &k.id == id) else {
        return;
    };
    let serial = names::serial_of_public_key(&subject.owner, &found.name).unwrap_or(0);
    let algorithm = if private.expose().contains("RSA PRIVATE KEY") {
        KeyAlgorithm::Rsa2048
    } else {
        KeyAlgorithm::EcdsaP256
    };
    plan.keyring.keys.push(KeyRecord {
        serial,
        algorithm,
        state: KeyState::Active,
        public_key_id: Some(id.clone()),
        public_key_pem: public.clone(),
        fingerprint,
        created_at: now,
        live_at: Some(now),
        published_at: None,
        activated_at: Some(now),
        rotates_early_by: None,
        takes_over_at: None,
        retired_at: None,
        revoked: false,
        private_key_lost: false,
        private_key: Some(private.clone()),
    });
    plan.keyring.next_serial = plan.keyring.next_serial.max(serial.saturating_add(1));
}

/// A Staged key whose public key a listing found (the create's answer was lost): record it.
pub(super) fn record_found_public_keys(plan: &mut Plan, subject: &Subject, observed: &Observed) {
    let Some(listed) = &observed.listed_public_keys else {
        return;
    };
    for record in &mut plan.keyring.keys {
        if record.public_key_id.is_some() {
            continue;
        }
        let found = listed.iter().find(|k| {
            names::serial_of_public_key(&subject.owner, &k.name) == Some(record.serial)
                && crate::keys::fingerprint(&k.encoded_key).ok().as_ref()
                    == Some(&record.fingerprint)
        });
        if let Some(found) = found {
            record.public_key_id = Some(found.id.clone());
            record.published_at = Some(found.created_time);
            if record.state == KeyState::Staged {
                record.state = KeyState::Published;
            }
        }
    }
    // Serials of found keys are taken, even if unrecorded.
    for k in listed {
        if let Some(serial) = names::serial_of_public_key(&subject.owner, &k.name) {
            plan.keyring.next_serial = plan.keyring.next_serial.max(serial.saturating_add(1));
        }
    }
}

/// Keys of this object found in its key group that no record accounts for (the keyring was
/// lost): URLs signed with them may still be in use, so they count as Retiring from now and
/// keep their full grace, never removed at once. Their private keys are gone with the keyring.
pub(super) fn record_unaccounted_keys_as_retiring(
    plan: &mut Plan,
    subject: &Subject,
    observed: &Observed,
    in_group: &BTreeSet<String>,
    now: Timestamp,
) {
    let Some(listed) = &observed.listed_public_keys else {
        return;
    };
    for key in listed {
        if !in_group.contains(&key.id) || plan.keyring.by_public_key_id(&key.id).is_some() {
            continue;
        }
        let (Some(serial), Ok(fingerprint), Ok(algorithm)) = (
            names::serial_of_public_key(&subject.owner, &key.name),
            crate::keys::fingerprint(&key.encoded_key),
            crate::keys::public_key_algorithm(&key.encoded_key),
        ) else {
            continue;
        };
        plan.keyring.keys.push(KeyRecord {
            serial,
            algorithm,
            state: KeyState::Retiring,
            public_key_id: Some(key.id.clone()),
            public_key_pem: key.encoded_key.clone(),
            fingerprint,
            created_at: key.created_time,
            live_at: None,
            published_at: None,
            activated_at: None,
            rotates_early_by: None,
            takes_over_at: None,
            retired_at: Some(now),
            revoked: false,
            private_key_lost: true,
            private_key: None,
        });
        plan.keyring.next_serial = plan.keyring.next_serial.max(serial.saturating_add(1));
    }
    plan.keyring.keys.sort_by_key(|k| k.serial);
}

/// A recorded public key that CloudFront no longer has: forget the key (after deletion, or
/// after someone deleted it by hand; either way it can no longer verify anything).
pub(super) fn forget_deleted_keys(plan: &mut Plan, observed: &Observed) {
    plan.keyring.keys.retain(|r| {
        r.public_key_id
            .as_ref()
            .is_none_or(|id| observed.public_keys_present.get(id) != Some(&false))
    });
}

/// The app-facing Secret names a Published key: it was activated (the Secret is written
/// first, so a crash in between is recovered here with a later, safer timestamp).
pub(super) fn record_activation(plan: &mut Plan, observed: &Observed, now: Timestamp) {
    let AppSecret::Owned(secret) = &observed.app_secret else {
        return;
    };
    let Some(id) = &secret.key_pair_id else {
        return;
    };
    let is_published = plan
        .keyring
        .keys
        .iter()
        .any(|r| r.public_key_id.as_ref() == Some(id) && r.state == KeyState::Published);
    if !is_published {
        return;
    }
    for record in &mut plan.keyring.keys {
        if record.public_key_id.as_ref() == Some(id) {
            record.state = KeyState::Active;
            record.activated_at = Some(now);
        } else if record.state == KeyState::Active {
            record.state = KeyState::Retiring;
            record.retired_at = Some(now);
        }
    }
}

/// Public keys of this object that are outside the key group and not wanted in it.
pub(super) fn public_keys_to_delete(
    plan: &Plan,
    subject: &Subject,
    observed: &Observed,
    in_group: &BTreeSet<String>,
    desired: &[String],
) -> Vec<String> {
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for r in &plan.keyring.keys {
        if let Some(id) = &r.public_key_id
            && r.state == KeyState::Retiring
            && !desired.contains(id)
            && !in_group.contains(id)
            && observed.public_keys_present.get(id) == Some(&true)
        {
            ids.insert(id.clone());
        }
    }
    // Keys carrying this object's name and marker that no record accounts for.
    if let Some(listed) = &observed.listed_public_keys {
        let recorded = plan.keyring.public_key_ids();
        for k in listed {
            if !recorded.contains(k.id.as_str())
                && !in_group.contains(&k.id)
                && names::serial_of_public_key(&subject.owner, &k.name).is_some()
            {
                ids.insert(k.id.clone());
            }
        }
    }
    ids.into_iter().collect()
}

/// Picks a Published key that every distribution trusting the group verifies, once any
/// declared wait has passed. Returns its serial if the Secret should switch to it now.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan_activation(
    plan: &mut Plan,
    settings: &Settings,
    observed: &Observed,
    in_group: &BTreeSet<String>,
    kg_id: Option<&str>,
    now: Timestamp,
    poll: Duration,
) -> Option<u32> {
    let kg_id = kg_id?;
    let due_at = next_rotation(&plan.keyring, settings.interval);
    let active_revoked = plan.keyring.active().is_none_or(|a| a.revoked);
    let trusting: Vec<_> = observed
        .distributions
        .values()
        .filter_map(|d| match d {
            DistributionState::Found(d) => Some(&d.value),
            DistributionState::NotFound => None,
        })
        .filter(|d| trusts(d, kg_id))
        .collect();
    let candidate = plan.keyring.keys.iter().find(|r| {
        r.state == KeyState::Published
            && !r.revoked
            && r.public_key_id
                .as_ref()
                .is_some_and(|id| in_group.contains(id))
    })?;
    let id = candidate.public_key_id.clone()?;
    let published_at = candidate.published_at.unwrap_or(candidate.created_at);
    // How long the last key took from staging to live: what a deployment takes here.
    let last_deployment = observed_deployment(&plan.keyring).unwrap_or(FIRST_DEPLOYMENT);
    let not_live: Vec<&str> = trusting
        .iter()
        .filter(|d| !d.is_key_live(kg_id, &id))
        .map(|d| d.id.as_str())
        .collect();
    if !not_live.is_empty() {
        plan.awaits_deployment
            .extend(not_live.iter().map(|d| (*d).to_owned()));
        plan.wake(after(now, poll));
        let waited = now.duration_since(published_at).unsigned_abs();
        let busy: Vec<&str> = trusting
            .iter()
            .filter(|d| not_live.contains(&d.id.as_str()))
            .filter(|d| d.status == DeploymentStatus::InProgress)
            .map(|d| d.id.as_str())
            .collect();
        let (reason, message) = if waited > 2 * last_deployment && !busy.is_empty() {
            (
                reasons::DISTRIBUTION_BUSY,
                format!(
                    "public key {id} has waited {} for distributions {} to deploy it (the last key took {}): they stay InProgress because another writer keeps changing them; keyfront holds its own writes there",
                    friendly(waited),
                    busy.join(", "),
                    friendly(last_deployment)
                ),
            )
        } else {
            (
                reasons::WAITING_FOR_PROPAGATION,
                format!(
                    "public key {id} is in the key group; waiting until distributions {} have deployed it",
                    not_live.join(", ")
                ),
            )
        };
        plan.wait(reasons::ROTATING, reason, message);
        return None;
    }
    let candidate = plan
        .keyring
        .keys
        .iter_mut()
        .find(|r| r.public_key_id.as_ref() == Some(&id))?;
    let live_at = *candidate.live_at.get_or_insert(now);
    if !settings.min_propagation_wait.is_zero() {
        let ready_at = after(live_at, settings.min_propagation_wait);
        if ready_at > now {
            plan.wake(ready_at);
            plan.wait(
                reasons::ROTATING,
                reasons::WAITING_FOR_PROPAGATION,
                format!("public key {id} is live; waiting for minPropagationWait until {ready_at}"),
            );
            return None;
        }
    }
    // Published ahead of schedule: it takes over when the rotation is due (sooner if the
    // interval was shortened since), unless the active key may no longer be used.
    let scheduled = candidate
        .takes_over_at
        .map(|t| due_at.map_or(t, |d| t.min(d)));
    if let Some(at) = scheduled.filter(|t| *t > now)
        && !active_revoked
    {
        plan.wake(at);
        plan.wait(
            reasons::ROTATING,
            reasons::NEXT_KEY_READY,
            format!("public key {id} is deployed everywhere and takes over at {at}"),
        );
        return None;
    }
    Some(candidate.serial)
}
