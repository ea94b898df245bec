//! The CloudFront call budget: every call of every reconcile to one account passes through
//! that account's token buckets, one for reads and one for writes.
//!
//! CloudFront's control plane throttles early (a few distribution updates a minute) and its
//! limits cannot be raised, so keyfront paces itself rather than leaning on retries:
//! - **Token buckets** per account ([`Bucket`]): reads and writes have separate rates and
//!   bursts (`--cloudfront-read-rate`, `--cloudfront-write-rate`, ...).
//! - **Fair turns** per namespace ([`FairBucket`]): the tenants of an account take its tokens
//!   in turn, so one namespace flooding changes delays another's call by at most one of its
//!   own calls per namespace waiting (the bound is in [`fair`]'s module doc).
//! - **Adaptive**: a `Throttling` answer halves the bucket's rate (at most once a second, so a
//!   burst of throttled calls counts once; never below an eighth of the configured rate);
//!   every 10 s without throttling gives back a tenth of the configured rate.
//! - **Every attempt is budgeted**: the SDK's own retries are off for CloudFront
//!   ([`super::accounts`]); this layer retries throttled and transient failures itself, each
//!   attempt after a token, so the emulator's request log (or CloudTrail) shows the budget.
//! - **UpdateDistribution is coalesced** per distribution ([`super::coalesce`]), waits a little
//!   for objects on their way to it ([`super::arrivals`]), and is **held** while another object's
//!   key waits for that distribution to deploy ([`super::holds`]), so a co-tenant's writes through
//!   keyfront cannot keep it `InProgress`.
//! - **Account reads are reused** for a moment (lists, key groups), never across keyfront's
//!   own writes ([`reuse`]).
//! - **Distribution reads are remembered** for `--distribution-resync`, for the reconciler to
//!   skip reading a distribution that has nothing it waits for ([`CloudFront::known_distribution`]),
//!   and **shared**: callers asking for a distribution whose read is still waiting for its
//!   token get that read's answer instead of queueing reads of their own.
//!
//! Must not: change what a call does. A call that fails after its attempts fails as it would
//! have; the reconciler's backoff takes over from there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

mod bucket;
mod fair;
mod gate;
pub mod reuse;
mod shared_reads;

#[cfg(test)]
mod coalescing_tests;

pub use bucket::{Bucket, Rate};
pub use fair::FairBucket;
pub use gate::WriteGate;
use reuse::{Change, Recent};
use shared_reads::PendingReads;

use super::coalesce::Coalescing;
use super::hooked::Class;
use super::{
    AccountAccess, BehaviorTrust, CloudFront, CloudFrontAccounts, Distribution, ErrorKind, Etag,
    KeyGroup, KeyGroupConfig, NewPublicKey, PublicKey, Result, Tagged, TrustChange,
};

/// First delay before retrying a transient failure; doubles per attempt.
const TRANSIENT_RETRY_BASE: Duration = Duration::from_millis(200);

/// How keyfront paces its CloudFront calls (flags of `keyfront run`).
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetSettings {
    pub reads: Rate,
    pub writes: Rate,
    /// How long an UpdateDistribution waits for other objects' changes to the same
    /// distribution before it is sent; zero sends each change on its own.
    pub coalesce_window: Duration,
    /// How long a remembered distribution read may stand in for a fresh one.
    pub distribution_resync: Duration,
    /// Attempts per call when CloudFront throttles or fails transiently.
    pub max_attempts: u32,
}

impl Default for BudgetSettings {
    /// Conservative: well under what one account's control plane allows, leaving room for
    /// people and other tools in the same account.
    fn default() -> Self {
        Self {
            reads: Rate {
                per_second: 5.0,
                burst: 10,
            },
            writes: Rate {
                per_second: 1.0,
                burst: 5,
            },
            coalesce_window: Duration::from_secs(2),
            distribution_resync: Duration::from_secs(600),
            max_attempts: 4,
        }
    }
}

/// One account's share: its buckets, remembered distributions, distribution reads waiting
/// for a token, and pending trust changes.
#[derive(Debug)]
pub(super) struct AccountBudget {
    reads: FairBucket,
    writes: FairBucket,
    distributions: Mutex<HashMap<String, (Instant, Tagged<Distribution>)>>,
    pending_reads: PendingReads<Tagged<Distribution>>,
    /// Reads of the account reused for a moment ([`reuse`]).
    recent: Recent,
    /// Distribution writes: queued changes, holds and arrivals ([`super::coalesce`]).
    coalescing: Coalescing,
}

impl AccountBudget {
    fn bucket(&self, class: Class) -> &FairBucket {
        match class {
            Class::Read => &self.reads,
            Class::Write => &self.writes,
        }
    }

    fn remember(&self, distribution: &Tagged<Distribution>) {
        self.distributions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                distribution.value.id.clone(),
                (Instant::now(), distribution.clone()),
            );
    }
}

/// Hands out [`Budgeted`] clients; every client of one account shares its budget.
#[derive(Debug, Clone)]
pub struct BudgetedAccounts<A> {
    inner: A,
    settings: Arc<BudgetSettings>,
    accounts: Arc<Mutex<HashMap<String, Arc<AccountBudget>>>>,
    /// CloudFrontAccount name → AWS account ID, as learned.
    aliases: Arc<Mutex<HashMap<String, String>>>,
    gate: WriteGate,
}

impl<A> BudgetedAccounts<A> {
    pub fn new(inner: A, settings: BudgetSettings) -> Self {
        Self {
            inner,
            settings: Arc::new(settings),
            accounts: Arc::default(),
            aliases: Arc::default(),
            gate: WriteGate::default(),
        }
    }

    /// Every write attempt first asks `gate` (after waiting for its token).
    #[must_use]
    pub fn with_write_gate(mut self, gate: WriteGate) -> Self {
        self.gate = gate;
        self
    }

    /// The current rate of every bucket in use: (account, class, calls per second).
    pub fn rates(&self) -> Vec<(String, &'static str, f64)> {
        let now = Instant::now();
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rates = Vec::new();
        for (name, budget) in accounts.iter() {
            for class in [Class::Read, Class::Write] {
                rates.push((
                    name.clone(),
                    class.label(),
                    budget.bucket(class).bucket.rate(now),
                ));
            }
        }
        rates
    }

    /// The key of the budget for the CloudFrontAccount `name`: its AWS account once known.
    /// Calls made before that (the account's status not written yet) used a budget under the
    /// name; it becomes the AWS account's, so its queues and memory are not split in two.
    fn key(&self, name: &str, aws_account_id: Option<&str>) -> String {
        let mut aliases = self.aliases.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(id) = aws_account_id else {
            return aliases
                .get(name)
                .cloned()
                .unwrap_or_else(|| name.to_owned());
        };
        if aliases.insert(name.to_owned(), id.to_owned()).is_none() {
            let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(by_name) = accounts.remove(name) {
                accounts.entry(id.to_owned()).or_insert(by_name);
            }
        }
        id.to_owned()
    }

    /// The budget of the account named `name`, made on first use, for calls on behalf of
    /// `namespace` (which take their turns fairly beside other namespaces').
    pub fn budgeted<C>(&self, name: &str, namespace: &str, client: C) -> Budgeted<C> {
        let account = self
            .accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(AccountBudget {
                    reads: FairBucket::new(Bucket::new(self.settings.reads)),
                    writes: FairBucket::new(Bucket::new(self.settings.writes)),
                    distributions: Mutex::default(),
                    pending_reads: PendingReads::default(),
                    recent: Recent::default(),
                    coalescing: Coalescing::default(),
                })
            })
            .clone();
        Budgeted {
            inner: client,
            account,
            namespace: namespace.into(),
            settings: self.settings.clone(),
            gate: self.gate.clone(),
        }
    }
}

impl<A: CloudFrontAccounts> CloudFrontAccounts for BudgetedAccounts<A> {
    type Client = Budgeted<A::Client>;

    async fn connect(&self, access: &AccountAccess) -> Result<Self::Client> {
        let client = self.inner.connect(access).await?;
        // Keyed by the AWS account where known: its quotas and throttling are the account's.
        let key = self.key(&access.account, access.aws_account_id.as_deref());
        Ok(self.budgeted(&key, &access.namespace, client))
    }

    async fn caller_account(&self, access: &AccountAccess) -> Result<Option<String>> {
        self.inner.caller_account(access).await
    }
}

/// A CloudFront client whose calls spend its account's budget.
#[derive(Debug, Clone)]
pub struct Budgeted<C> {
    pub(super) inner: C,
    account: Arc<AccountBudget>,
    /// Whose turn each call takes at the account's buckets.
    namespace: Arc<str>,
    settings: Arc<BudgetSettings>,
    gate: WriteGate,
}

impl<C> Budgeted<C> {
    /// Runs `attempt` after a token of `class`, again (after another token) while CloudFront
    /// throttles or fails transiently, up to the configured attempts.
    async fn spend<T, F: Future<Output = Result<T>>>(
        &self,
        class: Class,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T> {
        let bucket = self.account.bucket(class);
        let mut tries: u32 = 0;
        loop {
            bucket.take(&self.namespace).await;
            if class == Class::Write && !self.gate.open() {
                return Err(super::CloudFrontError::new(
                    "write",
                    ErrorKind::NotLeader,
                    "NotLeader",
                    "this replica could not renew the leader Lease in time, so it sends no write",
                ));
            }
            let result = attempt().await;
            tries += 1;
            let kind = match &result {
                Err(e) => e.kind,
                Ok(_) => return result,
            };
            if kind == ErrorKind::Throttled {
                bucket.bucket.throttled(Instant::now());
            }
            let retryable = matches!(kind, ErrorKind::Throttled | ErrorKind::Transient);
            if !retryable || tries >= self.settings.max_attempts.max(1) {
                return result;
            }
            if kind == ErrorKind::Transient {
                let delay = TRANSIENT_RETRY_BASE
                    .saturating_mul(1 << (tries - 1).min(6))
                    .mul_f64(rand::random_range(0.5..=1.0));
                tokio::time::sleep(delay).await;
            }
        }
    }

    pub(super) fn remember(&self, result: &Result<Tagged<Distribution>>) {
        if let Ok(distribution) = result {
            self.account.remember(distribution);
        }
    }
}

impl<C: CloudFront> CloudFront for Budgeted<C> {
    async fn create_public_key(&self, key: &NewPublicKey) -> Result<Tagged<PublicKey>> {
        let _writing = self.account.recent.writing(Change::PublicKey);
        self.spend(Class::Write, move || self.inner.create_public_key(key))
            .await
    }
    async fn get_public_key(&self, id: &str) -> Result<Tagged<PublicKey>> {
        self.spend(Class::Read, move || self.inner.get_public_key(id))
            .await
    }
    async fn list_public_keys(&self) -> Result<Vec<PublicKey>> {
        let reads = &self.account.recent.public_keys;
        reuse::read(self, reads, "", || self.inner.list_public_keys()).await
    }
    async fn delete_public_key(&self, id: &str, etag: &Etag) -> Result<()> {
        let _writing = self.account.recent.writing(Change::PublicKey);
        self.spend(Class::Write, move || self.inner.delete_public_key(id, etag))
            .await
    }
    async fn create_key_group(&self, config: &KeyGroupConfig) -> Result<Tagged<KeyGroup>> {
        let _writing = self.account.recent.writing(Change::KeyGroup);
        self.spend(Class::Write, move || self.inner.create_key_group(config))
            .await
    }
    async fn get_key_group(&self, id: &str) -> Result<Tagged<KeyGroup>> {
        let reads = &self.account.recent.key_group;
        reuse::read(self, reads, id, || self.inner.get_key_group(id)).await
    }
    async fn list_key_groups(&self) -> Result<Vec<KeyGroup>> {
        let reads = &self.account.recent.key_groups;
        reuse::read(self, reads, "", || self.inner.list_key_groups()).await
    }
    async fn update_key_group(
        &self,
        id: &str,
        config: &KeyGroupConfig,
        etag: &Etag,
    ) -> Result<Tagged<KeyGroup>> {
        let _writing = self.account.recent.writing(Change::KeyGroup);
        self.spend(Class::Write, move || {
            self.inner.update_key_group(id, config, etag)
        })
        .await
    }
    async fn delete_key_group(&self, id: &str, etag: &Etag) -> Result<()> {
        let _writing = self.account.recent.writing(Change::KeyGroup);
        self.spend(Class::Write, move || self.inner.delete_key_group(id, etag))
            .await
    }
    async fn get_distribution(&self, id: &str) -> Result<Tagged<Distribution>> {
        let pending = &self.account.pending_reads;
        let read =
            shared_reads::shared(self, pending, id, || self.inner.get_distribution(id)).await;
        self.remember(&read);
        read
    }
    async fn list_distributions_by_key_group(&self, key_group_id: &str) -> Result<Vec<String>> {
        let reads = &self.account.recent.trusting;
        reuse::read(self, reads, key_group_id, || {
            self.inner.list_distributions_by_key_group(key_group_id)
        })
        .await
    }
    async fn set_trusted_key_groups(
        &self,
        id: &str,
        behaviors: &[BehaviorTrust],
        etag: &Etag,
    ) -> Result<Tagged<Distribution>> {
        let writing = self.account.recent.writing(Change::Trust);
        let written = self
            .spend(Class::Write, move || {
                self.inner.set_trusted_key_groups(id, behaviors, etag)
            })
            .await;
        drop(writing);
        self.remember(&written);
        written
    }
    async fn change_trust(
        &self,
        id: &str,
        changes: &[TrustChange],
        base: Option<Tagged<Distribution>>,
    ) -> Result<Tagged<Distribution>> {
        if self.settings.coalesce_window.is_zero() {
            self.account.coalescing.holds.clear(id).await;
            return super::trust::read_modify_write(self, id, changes, base).await;
        }
        let window = self.settings.coalesce_window;
        let coalescing = &self.account.coalescing;
        super::coalesce::change_trust(self, coalescing, window, id, changes, base).await
    }
    fn await_deployment(&self, holder: &str, distributions: &[String]) {
        self.account.coalescing.holds.set(holder, distributions);
    }
    fn heading_to(&self, object: &str, distributions: &[String]) {
        self.account.coalescing.arrivals.set(object, distributions);
    }
    fn known_distribution(&self, id: &str) -> Option<(Duration, Tagged<Distribution>)> {
        let known = self
            .account
            .distributions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        known
            .get(id)
            .map(|(at, distribution)| (at.elapsed(), distribution.clone()))
            .filter(|(age, _)| *age < self.settings.distribution_resync)
    }
}

/// For unit tests: `emulator` behind metrics and the budget, stacked as `keyfront run` stacks
/// them, with a client of the account "media" and the metrics that count its calls.
#[cfg(test)]
pub(super) async fn test_client(
    emulator: crate::emulator::Emulator,
    settings: BudgetSettings,
) -> (
    BudgetedAccounts<crate::runtime::metrics::MeteredAccounts<crate::emulator::Emulator>>,
    Budgeted<crate::runtime::metrics::Metered<crate::emulator::Emulator>>,
    crate::runtime::metrics::Metrics,
) {
    use crate::runtime::metrics::{MeteredAccounts, Metrics};
    let metrics = Metrics::default();
    let accounts = BudgetedAccounts::new(
        MeteredAccounts {
            inner: emulator,
            metrics: metrics.clone(),
        },
        settings,
    );
    let access = AccountAccess {
        account: "media".into(),
        assume_role: None,
        namespace: "team".into(),
        aws_account_id: None,
    };
    let client = accounts.connect(&access).await.unwrap();
    (accounts, client, metrics)
}

#[cfg(test)]
mod tests;
