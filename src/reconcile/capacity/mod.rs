//! The account's public keys and key groups, which every tenant shares: a gate in front of
//! each `CreatePublicKey`.
//!
//! CloudFront allows 10 public keys and 10 key groups per AWS account, and counts every
//! owner's: other clusters', Terraform's, the console's. Planned one object at a time, one
//! namespace could fill them and leave every other tenant's rotation, and every emergency
//! revocation, failing with `TooManyPublicKeys`. The gate decides, per account, whether a key
//! may be created now:
//!
//! - it counts the account afresh ([`count`]: one `ListPublicKeys`, and for a new object one
//!   `ListKeyGroups`), under a lock held until the key (and a new object's key group) exists,
//!   so two objects never both take the last slot;
//! - [`RESERVE`] keys are kept free for emergency revocations, which alone may use them;
//! - a new object is admitted only if its steady need ([`steady_need`]) fits beside what the
//!   objects already admitted are committed to (each counted at its own steady need, or at
//!   what it holds if more), with [`ROTATION_HEADROOM`] left for their rotations, a key group
//!   free if it makes one, and never while a rotation waits;
//! - a namespace holds at most its share of the account (`spec.limits`: public keys, key
//!   groups and objects; keys and groups default to the quota divided by the namespaces the
//!   account names), with the same headroom for its own rotations; a revocation is never held
//!   by it;
//! - rotations held for a slot queue in the order they first asked, so each takes its turn
//!   when a retiring key leaves (a waiter that stops asking for [`STALE_AFTER`] loses its
//!   place, so a deleted object cannot hold the queue).
//!
//! Keys and groups made outside this cluster count as they are. Two `CloudFrontAccount`s
//! naming one AWS account have separate queues; the count each sees is still the account's.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;

mod count;
pub mod stagger;

pub(super) use count::count;

/// Public keys kept free for emergency revocations (`keyfront.dev/revoke-key`).
pub const RESERVE: u32 = 1;
/// Public keys a new object must leave free for the rotations of the objects already there.
pub const ROTATION_HEADROOM: u32 = 1;
/// A rotation that has not asked again for this long loses its place in the queue.
pub const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

/// What a key is for, which decides how much of the account it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// An object's first key: its steady need, plus the rotation headroom, must fit, and a key
    /// group too when it will make one (it does unless it adopts a group).
    FirstKey { need: u32, group: bool },
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

/// The account as just listed, and what the asking object's namespace holds of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// Public keys in the account.
    pub used: u32,
    /// Of `used`, those keyfront did not make (other tools, the console).
    pub foreign: u32,
    /// Public keys the account is committed to: `used`, with each object admitted here counted
    /// at its steady need where that is more than it holds now.
    pub committed: u32,
    pub quota: u32,
    /// Key groups in the account against their quota, counted for a first key that makes one.
    pub groups: Option<(u32, u32)>,
    /// The namespace's public keys, key groups and objects, where the account limits them.
    pub namespace: Vec<Share>,
}

/// What one namespace holds of the account, against what it may.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub name: String,
    pub what: Limited,
    pub used: u32,
    /// `used`, with each admitted object counted at its steady need if more (keys only).
    pub committed: u32,
    pub limit: u32,
    /// The limit is the default share (quota ÷ the namespaces the account names), not set.
    pub defaulted: bool,
}

/// What `spec.limits` caps per namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    PublicKeys,
    KeyGroups,
    Objects,
}

impl Limited {
    fn noun(self) -> &'static str {
        match self {
            Self::PublicKeys => "public keys",
            Self::KeyGroups => "key groups",
            Self::Objects => "SigningKeyGroups with keys",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Self::PublicKeys => "spec.limits.publicKeysPerNamespace",
            Self::KeyGroups => "spec.limits.keyGroupsPerNamespace",
            Self::Objects => "spec.limits.objectsPerNamespace",
        }
    }
}

/// Whether a key for `slot` fits in `count`, with `waiting` rotations queued ahead of it.
/// `Err` says why not, with the numbers.
pub fn fits(count: &Count, slot: Slot, waiting: usize) -> Result<(), String> {
    fits_account(count, slot, waiting)?;
    fits_namespace(count, slot)
}

/// Whether the asking object's namespace has room in its share of the account.
fn fits_namespace(count: &Count, slot: Slot) -> Result<(), String> {
    count
        .namespace
        .iter()
        .try_for_each(|share| fits_share(share, count, slot))
}

fn fits_share(share: &Share, count: &Count, slot: Slot) -> Result<(), String> {
    let fits = match (share.what, slot) {
        (_, Slot::Revocation) => true,
        (Limited::PublicKeys, Slot::Rotation) => share.used < share.limit,
        (Limited::PublicKeys, Slot::FirstKey { need, .. }) => {
            share.committed + need + ROTATION_HEADROOM <= share.limit
        }
        (Limited::KeyGroups, Slot::FirstKey { group: true, .. })
        | (Limited::Objects, Slot::FirstKey { .. }) => share.used < share.limit,
        (Limited::KeyGroups | Limited::Objects, _) => true,
    };
    if fits {
        return Ok(());
    }
    let noun = share.what.noun();
    let whose = if share.defaulted {
        let quota = match share.what {
            Limited::KeyGroups => count.groups.map_or(0, |(_, quota)| quota),
            _ => count.quota,
        };
        format!(
            "its share of the account ({quota} {noun} ÷ the namespaces it admits, rounded up; {} sets another)",
            share.what.field()
        )
    } else {
        format!("what the account's {} allows", share.what.field())
    };
    let wants = match (share.what, slot) {
        (Limited::PublicKeys, Slot::FirstKey { need, .. }) => format!(
            "this object needs {need}, and {ROTATION_HEADROOM} must stay free for the namespace's own rotations"
        ),
        (Limited::PublicKeys, _) => {
            "the next key waits until one of the namespace's retiring keys leaves".to_owned()
        }
        _ => "this object would need one more".to_owned(),
    };
    let held = if share.committed > share.used {
        format!(
            "holds {} (committed to {} at its objects' steady needs)",
            share.used, share.committed
        )
    } else {
        format!("holds {}", share.used)
    };
    Err(format!(
        "namespace {:?} {held} of the {} {noun} that are {whose}: {wants}",
        share.name, share.limit
    ))
}

fn fits_account(count: &Count, slot: Slot, waiting: usize) -> Result<(), String> {
    let &Count {
        used,
        foreign,
        committed,
        quota,
        groups,
        ..
    } = count;
    let mut held = format!(
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
        Slot::FirstKey { need, .. } if waiting > 0 => Err(format!(
            "{held}; {waiting} rotation(s) of objects already here wait for a slot, and come before a new object (it needs {need})"
        )),
        Slot::FirstKey { group: true, .. } if groups.is_some_and(|(used, quota)| used >= quota) => {
            let (used, quota) = groups.unwrap_or_default();
            Err(format!(
                "the AWS account holds or is committed to {used} of its {quota} key groups, and this object would make one more. Delete objects or key groups this account no longer needs, adopt an existing group (spec.keyGroup.adopt), or give this namespace an account of its own"
            ))
        }
        Slot::FirstKey { need, .. } if committed.max(used) + need + ROTATION_HEADROOM <= spare => {
            Ok(())
        }
        Slot::FirstKey { need, .. } => {
            if committed > used {
                held = format!(
                    "{held}, and the objects admitted here are committed to {committed} at their steady needs"
                );
            }
            Err(format!(
                "{held}. This object needs {need} between rotations, and {} more must stay free ({ROTATION_HEADROOM} for the rotations of the objects already here, {RESERVE} for emergency revocations). Delete objects or public keys this account no longer needs, or give this namespace an account of its own",
                ROTATION_HEADROOM + RESERVE
            ))
        }
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

/// One lock and one queue per account, and the news of what changed in them. Cheap to clone;
/// shared by every reconcile.
#[derive(Debug, Clone)]
pub struct Gate {
    accounts: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<Queue>>>>>,
    changed: tokio::sync::broadcast::Sender<String>,
    /// The first rotation waiting in each account's queue (`namespace/name`), woken
    /// ([`Gate::wakes`]) when a key leaves that account.
    heads: Arc<Mutex<HashMap<String, String>>>,
    wake: tokio::sync::broadcast::Sender<String>,
    rotations: Arc<Mutex<stagger::Timeline>>,
    /// Off only to measure what planning saves: every key is then created unasked.
    planning: bool,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new(true)
    }
}

impl Gate {
    fn note_head(&self, account: &str, queue: &Queue) {
        let mut heads = self.heads();
        match queue.waiting.front() {
            Some((head, _)) => heads.insert(account.to_owned(), head.clone()),
            None => heads.remove(account),
        };
    }
}

/// A broadcast as a stream; a listener that lags misses names, not its turn (it looks again
/// on its own schedule).
fn listen(
    sender: &tokio::sync::broadcast::Sender<String>,
) -> impl futures::Stream<Item = String> + Send + 'static {
    futures::stream::unfold(sender.subscribe(), |mut names| async move {
        loop {
            match names.recv().await {
                Ok(name) => return Some((name, names)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// A slot granted: hold it until the key is created, so no other object counts meanwhile.
#[derive(Debug)]
pub struct Granted {
    _held: tokio::sync::OwnedMutexGuard<Queue>,
}

impl Gate {
    /// A gate that plans the accounts, or with `planning` off (for comparison runs only: see
    /// [`crate::reconcile::ReconcilerConfig::plan_account_capacity`]) lets every key through.
    pub fn new(planning: bool) -> Self {
        Self {
            accounts: Arc::default(),
            // A slow listener misses names, not its turn: it looks again on its own schedule.
            changed: tokio::sync::broadcast::channel(256).0,
            heads: Arc::default(),
            wake: tokio::sync::broadcast::channel(256).0,
            rotations: Arc::default(),
            planning,
        }
    }

    /// A public key or key group of the account (the `CloudFrontAccount` named `account`) was
    /// created or deleted: its usage in status is stale.
    pub fn changed(&self, account: &str) {
        let _ = self.changed.send(account.to_owned());
        let head = self.heads().get(account).cloned();
        if let Some(head) = head {
            let _ = self.wake.send(head);
        }
    }

    fn heads(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.heads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn timeline(&self) -> std::sync::MutexGuard<'_, stagger::Timeline> {
        self.rotations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The rotation windows of the account's other objects, to place a new one beside
    /// ([`stagger`]); none when not planning.
    pub fn rotations(&self, account: &str, object: &str, now: Timestamp) -> Vec<stagger::Window> {
        if !self.planning {
            return Vec::new();
        }
        self.timeline().others(account, object, now)
    }

    /// Records an object's rotation window: `placed` just now (`false` if another object took
    /// an overlapping one meanwhile: place it again), or kept from before (always `true`).
    pub fn record_rotation(
        &self,
        account: &str,
        object: &str,
        window: stagger::Window,
        placed: bool,
    ) -> bool {
        if !self.planning {
            return true;
        }
        let mut timeline = self.timeline();
        if placed {
            return timeline.reserve(account, object, window);
        }
        timeline.keep(account, object, window);
        true
    }

    /// The accounts whose keys or key groups changed, as they change.
    pub fn changes(&self) -> impl futures::Stream<Item = String> + Send + 'static {
        listen(&self.changed)
    }

    /// The waiting rotations (`namespace/name`) to look at again now: the first in an
    /// account's queue, each time a key of that account is created or deleted. So a rotation
    /// held for a slot takes it when one frees, without polling the account meanwhile.
    pub fn wakes(&self) -> impl futures::Stream<Item = String> + Send + 'static {
        listen(&self.wake)
    }

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
        if !self.planning {
            return Ok(Ok(Granted { _held: queue }));
        }
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
                self.note_head(account, &queue);
            }
            return Ok(Err(why));
        }
        // Past the account's queue: a namespace at its own share waits outside it, so it
        // holds up no other namespace's rotation.
        queue.leave(object);
        self.note_head(account, &queue);
        match fits_namespace(&count, slot) {
            Ok(()) => Ok(Ok(Granted { _held: queue })),
            Err(why) => Ok(Err(why)),
        }
    }
}
