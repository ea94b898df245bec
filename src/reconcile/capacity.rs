//! The account's public keys, which every tenant shares: a gate in front of each
//! `CreatePublicKey`.
//!
//! CloudFront allows 10 public keys per AWS account, and counts every owner's: other clusters',
//! Terraform's, the console's. Planned one object at a time, one namespace could fill them and
//! leave every other tenant's rotation, and every emergency revocation, failing with
//! `TooManyPublicKeys`. The gate decides, per account, whether a key may be created now:
//!
//! - it counts the account's public keys afresh (one `ListPublicKeys`), under a lock held until
//!   the key is created, so two objects never both take the last slot;
//! - [`RESERVE`] keys are kept free for emergency revocations, which alone may use them;
//! - a new object's first key is admitted only if its steady need ([`steady_need`]) fits and
//!   [`ROTATION_HEADROOM`] is left for the rotations of the objects already there, and never
//!   while a rotation waits;
//! - a namespace holds at most its share of the account (`spec.limits`, by default the quota
//!   divided by the namespaces the account names), with the same headroom for its own
//!   rotations; a revocation is never held by it;
//! - rotations held for a slot queue in the order they first asked, so each takes its turn
//!   when a retiring key leaves (a waiter that stops asking for [`STALE_AFTER`] loses its
//!   place, so a deleted object cannot hold the queue).
//!
//! Counts are live, so foreign keys count as used. Needs are not: an admitted object whose
//! grace is longer than its interval may later hold more keys than it did when another object
//! was admitted. Two `CloudFrontAccount`s naming one AWS account have separate queues; the
//! count each sees is still the account's.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use kube::{Api, ResourceExt as _};

use super::error::kube_error;
use super::observed::Subject;
use super::{Context, Error, KubeOperation, names};
use crate::api::{AccountQuotas, CloudFrontAccountSpec, SigningKeyGroup};
use crate::cloudfront::{CloudFront, PublicKey};

/// Public keys kept free for emergency revocations (`keyfront.dev/revoke-key`).
pub const RESERVE: u32 = 1;
/// Public keys a new object must leave free for the rotations of the objects already there.
pub const ROTATION_HEADROOM: u32 = 1;
/// A rotation that has not asked again for this long loses its place in the queue.
pub const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// What a key is for, which decides how much of the account it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// An object's first key: its steady need, plus the rotation headroom, must fit.
    FirstKey { need: u32 },
    /// The next key of a rotation.
    Rotation,
    /// The successor of a revoked key: may use the reserve.
    Revocation,
}

/// Keys an object holds between rotations: 1, plus one for each whole interval its grace
/// (how long a retired key stays trusted) lasts, at most 4. A rotation needs one more for a
/// while, from the account's shared headroom.
pub fn steady_need(interval: Duration, grace: Duration) -> u32 {
    if interval.is_zero() {
        return 4;
    }
    let whole = grace.as_nanos() / interval.as_nanos();
    u32::try_from(whole)
        .unwrap_or(u32::MAX)
        .saturating_add(1)
        .min(4)
}

/// The account's public keys as just listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub used: u32,
    /// Of `used`, those keyfront did not make (other tools, the console).
    pub foreign: u32,
    pub quota: u32,
    /// The asking object's namespace, when the account limits what one namespace holds.
    pub namespace: Option<Share>,
}

/// What one namespace holds of the account, against what it may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub name: String,
    pub used: u32,
    pub limit: u32,
    /// The limit is the default share (quota ÷ the namespaces the account names), not set.
    pub defaulted: bool,
}

/// Whether a key for `slot` fits in `count`, with `waiting` rotations queued ahead of it.
/// `Err` says why not, with the numbers.
pub fn fits(count: &Count, slot: Slot, waiting: usize) -> Result<(), String> {
    fits_account(count, slot, waiting)?;
    fits_namespace(count, slot)
}

/// Whether the asking object's namespace has room in its share of the account.
fn fits_namespace(count: &Count, slot: Slot) -> Result<(), String> {
    match (&count.namespace, slot) {
        (_, Slot::Revocation) | (None, _) => Ok(()),
        (Some(share), Slot::Rotation) if share.used < share.limit => Ok(()),
        (Some(share), Slot::FirstKey { need })
            if share.used + need + ROTATION_HEADROOM <= share.limit =>
        {
            Ok(())
        }
        (Some(share), slot) => {
            let whose = if share.defaulted {
                format!(
                    "its share of the account ({} keys ÷ the namespaces it admits, rounded up; spec.limits.publicKeysPerNamespace sets another)",
                    count.quota
                )
            } else {
                "what the account's spec.limits.publicKeysPerNamespace allows".to_owned()
            };
            let wants = match slot {
                Slot::FirstKey { need } => format!(
                    "this object needs {need}, and {ROTATION_HEADROOM} must stay free for the namespace's own rotations"
                ),
                _ => "the next key waits until one of the namespace's retiring keys leaves"
                    .to_owned(),
            };
            Err(format!(
                "namespace {:?} holds {} of the {} public keys that are {whose}: {wants}",
                share.name, share.used, share.limit
            ))
        }
    }
}

fn fits_account(count: &Count, slot: Slot, waiting: usize) -> Result<(), String> {
    let &Count {
        used,
        foreign,
        quota,
        ..
    } = count;
    let held = format!(
        "the AWS account holds {used} of its {quota} public keys ({} by keyfront, {foreign} by other owners)",
        used - foreign.min(used)
    );
    let spare = quota.saturating_sub(RESERVE);
    match slot {
        Slot::Revocation if used < quota => Ok(()),
        Slot::Revocation => Err(format!(
            "{held}, so not even the {RESERVE} keyfront keeps for revocations is free: the revoked key's successor cannot be created. Delete a public key the account no longer needs (`aws cloudfront list-public-keys` names them)"
        )),
        Slot::Rotation if used < spare && waiting == 0 => Ok(()),
        Slot::Rotation if used < spare => Err(format!(
            "{held}; {waiting} rotation(s) asked for a slot first, and this one takes its turn after them"
        )),
        Slot::Rotation => Err(format!(
            "{held}, and {RESERVE} stays free for emergency revocations: the next key waits until a retiring key leaves"
        )),
        Slot::FirstKey { need } if waiting > 0 => Err(format!(
            "{held}; {waiting} rotation(s) of objects already here wait for a slot, and come before a new object (it needs {need})"
        )),
        Slot::FirstKey { need } if used + need + ROTATION_HEADROOM <= spare => Ok(()),
        Slot::FirstKey { need } => Err(format!(
            "{held}. This object needs {need} between rotations, and {} more must stay free ({ROTATION_HEADROOM} for the rotations of the objects already here, {RESERVE} for emergency revocations). Delete objects or public keys this account no longer needs, or give this namespace an account of its own",
            ROTATION_HEADROOM + RESERVE
        )),
    }
}

#[derive(Debug, Default)]
struct Queue {
    /// Objects whose rotation waits for a slot, first asked first, with when they last asked.
    waiting: VecDeque<(String, Timestamp)>,
}

impl Queue {
    fn drop_stale(&mut self, now: Timestamp) {
        let stale = jiff::SignedDuration::try_from(STALE_AFTER).unwrap_or_default();
        self.waiting
            .retain(|(_, asked)| now.duration_since(*asked) < stale);
    }

    /// Rotations ahead of `object` (all of them if it is not queued).
    fn ahead_of(&self, object: &str) -> usize {
        self.waiting
            .iter()
            .position(|(o, _)| o == object)
            .unwrap_or(self.waiting.len())
    }

    fn ask(&mut self, object: &str, now: Timestamp) {
        match self.waiting.iter_mut().find(|(o, _)| o == object) {
            Some(entry) => entry.1 = now,
            None => self.waiting.push_back((object.to_owned(), now)),
        }
    }

    fn leave(&mut self, object: &str) {
        self.waiting.retain(|(o, _)| o != object);
    }
}

/// One lock and one queue per account. Cheap to clone; shared by every reconcile.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    accounts: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<Queue>>>>>,
}

/// A slot granted: hold it until the key is created, so no other object counts meanwhile.
#[derive(Debug)]
pub struct Granted {
    _held: tokio::sync::OwnedMutexGuard<Queue>,
}

impl Gate {
    /// Waits for the account's lock, then lets `count` say how full the account is. `Ok` with
    /// the lock held until the caller has created the key, or `Err` with why it must wait.
    pub async fn enter<E>(
        &self,
        account: &str,
        object: &str,
        slot: Slot,
        now: Timestamp,
        count: impl AsyncFnOnce() -> Result<Count, E>,
    ) -> Result<Result<Granted, String>, E> {
        let queue = {
            let mut accounts = self
                .accounts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            accounts.entry(account.to_owned()).or_default().clone()
        };
        let mut queue = queue.lock_owned().await;
        queue.drop_stale(now);
        let ahead = if slot == Slot::Revocation {
            0
        } else {
            queue.ahead_of(object)
        };
        let count = count().await?;
        if let Err(why) = fits_account(&count, slot, ahead) {
            if slot == Slot::Rotation {
                queue.ask(object, now);
            }
            return Ok(Err(why));
        }
        // Past the account's queue: a namespace at its own share waits outside it, so it
        // holds up no other namespace's rotation.
        queue.leave(object);
        match fits_namespace(&count, slot) {
            Ok(()) => Ok(Ok(Granted { _held: queue })),
            Err(why) => Ok(Err(why)),
        }
    }
}

/// The account's public keys as [`Gate::enter`] needs them: one listing, and with a
/// per-namespace limit, the keys of the asking object's namespace.
pub(super) async fn count<A, C: CloudFront>(
    ctx: &Context<A>,
    cloudfront: &C,
    subject: &Subject,
    account: Option<&CloudFrontAccountSpec>,
) -> Result<Count, Error> {
    let keys = cloudfront
        .list_public_keys()
        .await
        .map_err(Error::cloudfront("ListPublicKeys"))?;
    let foreign = keys
        .iter()
        .filter(|k| !names::made_by_keyfront(k.comment.as_deref()))
        .count();
    let namespace = match account.and_then(CloudFrontAccountSpec::public_keys_per_namespace) {
        Some((limit, defaulted)) => Some(Share {
            name: subject.namespace.clone(),
            used: namespace_keys(ctx, &subject.namespace, &keys).await?,
            limit,
            defaulted,
        }),
        None => None,
    };
    Ok(Count {
        used: u32::try_from(keys.len()).unwrap_or(u32::MAX),
        foreign: u32::try_from(foreign).unwrap_or(u32::MAX),
        quota: account.map_or_else(
            || AccountQuotas::default().public_keys,
            |a| a.quotas.public_keys,
        ),
        namespace,
    })
}

/// Of the account's public keys, those of `namespace`'s SigningKeyGroups (by the owner each
/// key's name carries).
async fn namespace_keys<A>(
    ctx: &Context<A>,
    namespace: &str,
    keys: &[PublicKey],
) -> Result<u32, Error> {
    let objects: Api<SigningKeyGroup> = Api::namespaced(ctx.client.clone(), namespace);
    let prefixes: Vec<String> = objects
        .list(&Default::default())
        .await
        .map_err(kube_error(KubeOperation::ReadObject))?
        .items
        .iter()
        .map(|o| {
            let owner = names::owner_token(&ctx.config.cluster_id, namespace, &o.name_any());
            names::public_key_prefix(&owner)
        })
        .collect();
    let held = keys
        .iter()
        .filter(|k| prefixes.iter().any(|p| k.name.starts_with(p)))
        .count();
    Ok(u32::try_from(held).unwrap_or(u32::MAX))
}
