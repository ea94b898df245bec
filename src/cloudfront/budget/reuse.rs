//! Account reads reused briefly: `ListPublicKeys`, `ListKeyGroups`, `GetKeyGroup` and
//! `ListDistributionsByKeyGroup`.
//!
//! A new object's first reconciles, the capacity gate in front of its first key and the
//! account's usage status each make these reads within a second or two of one another; made
//! one by one, they were most of a lone object's reads, and at the default read budget they
//! kept it from Ready for seconds. So an answer is reused for [`REUSE`], and never across a
//! change keyfront makes to what it read:
//! - every write through this account's budget forgets the answers it changes ([`Change`]:
//!   a public key the key listing; a key group the group listing, the group and who trusts
//!   it; a distribution's trust who trusts the group) before it is sent, and an answer of
//!   that kind read while such a write was in flight is not kept (it may or may not show
//!   the write);
//! - a caller never gets an answer older than [`REUSE`]. Changes made outside keyfront (the
//!   console, Terraform, another cluster) can be that much late, which they can be anyway:
//!   such a change can land just after a fresh read too.
//!
//! Distributions are not read through here: the reconciler decides when a remembered one
//! will do ([`super::CloudFront::known_distribution`]), since it polls them for deployment.
//! Reads waiting for their token are shared besides ([`super::shared_reads`]).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::Budgeted;
use super::shared_reads::{self, PendingReads};
use crate::cloudfront::{KeyGroup, PublicKey, Result, Tagged};

/// How long an answer may stand in for a fresh read while keyfront changes nothing in the
/// account.
pub const REUSE: Duration = Duration::from_secs(2);

/// One kind of read: the answers kept, by what was read, the reads waiting for a token, and
/// keyfront's writes that change what it reads.
#[derive(Debug)]
pub(super) struct Reused<T> {
    kept: Mutex<HashMap<String, (Instant, T)>>,
    pending: PendingReads<T>,
    writes: Mutex<Writes>,
}

impl<T> Default for Reused<T> {
    fn default() -> Self {
        Self {
            kept: Mutex::default(),
            pending: PendingReads::default(),
            writes: Mutex::default(),
        }
    }
}

/// Counts keyfront's writes that change one kind of read, so an answer is kept only if none
/// was in flight or sent while it was read.
#[derive(Debug, Default)]
struct Writes {
    /// Bumped when a write starts and when it ends.
    generation: u64,
    in_flight: usize,
}

impl<T> Reused<T> {
    fn kept(&self) -> MutexGuard<'_, HashMap<String, (Instant, T)>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn writes(&self) -> MutexGuard<'_, Writes> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The generation a read starts at, if its answer may be kept (no write in flight).
    fn quiet(&self) -> Option<u64> {
        let writes = self.writes();
        (writes.in_flight == 0).then_some(writes.generation)
    }
}

/// What a write in flight does to one kind of read.
trait Changed: Send + Sync {
    /// The write starts: every answer kept is forgotten.
    fn starts(&self);
    /// The write's answer is in.
    fn ends(&self);
}

impl<T: Send> Changed for Reused<T> {
    fn starts(&self) {
        let mut writes = self.writes();
        writes.in_flight += 1;
        writes.generation += 1;
        self.kept().clear();
    }

    fn ends(&self) {
        let mut writes = self.writes();
        writes.in_flight -= 1;
        writes.generation += 1;
    }
}

/// What a write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// A public key created or deleted: the public key listing.
    PublicKey,
    /// A key group created, updated or deleted: the group listing, the group, and which
    /// distributions trust it.
    KeyGroup,
    /// A distribution's trusted key groups: which distributions trust a group.
    Trust,
}

/// The account's reads that may be reused.
#[derive(Debug, Default)]
pub(super) struct Recent {
    pub(super) public_keys: Reused<Vec<PublicKey>>,
    pub(super) key_groups: Reused<Vec<KeyGroup>>,
    pub(super) key_group: Reused<Tagged<KeyGroup>>,
    pub(super) trusting: Reused<Vec<String>>,
}

/// A write in flight: the reads it changes forget their answers when it starts, and keep
/// none until every such write has ended.
pub(super) struct Writing<'a>(Vec<&'a dyn Changed>);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        for changed in &self.0 {
            changed.ends();
        }
    }
}

impl Recent {
    /// Call before sending a write that makes `change`; hold until its answer is in.
    pub(super) fn writing(&self, change: Change) -> Writing<'_> {
        let changed: Vec<&dyn Changed> = match change {
            Change::PublicKey => vec![&self.public_keys],
            Change::KeyGroup => vec![&self.key_groups, &self.key_group, &self.trusting],
            Change::Trust => vec![&self.trusting],
        };
        for c in &changed {
            c.starts();
        }
        Writing(changed)
    }
}

/// `read` of `key` in `reads`: an answer kept less than [`REUSE`] ago, else a read shared with
/// one of the same key waiting for its token, kept if no write touched the account meanwhile.
pub(super) async fn read<C, T, F>(
    client: &Budgeted<C>,
    reads: &Reused<T>,
    key: &str,
    read: impl Fn() -> F,
) -> Result<T>
where
    T: Clone,
    F: Future<Output = Result<T>>,
{
    if let Some((at, answer)) = reads.kept().get(key)
        && at.elapsed() < REUSE
    {
        return Ok(answer.clone());
    }
    let asked = Instant::now();
    let started = reads.quiet();
    let answer = shared_reads::shared(client, &reads.pending, key, read).await;
    if let Ok(value) = &answer {
        // The writes lock is held while keeping, so no write can start in between.
        let writes = reads.writes();
        if started == Some(writes.generation) && writes.in_flight == 0 {
            reads.kept().insert(key.to_owned(), (asked, value.clone()));
        }
    }
    answer
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{BudgetSettings, test_client};
    use super::REUSE;
    use crate::cloudfront::{CloudFront as _, KeyGroupConfig, NewPublicKey};
    use crate::emulator::{Emulator, faults::FaultSettings, model::ModelSettings};

    fn emulator() -> Emulator {
        Emulator::new(
            ModelSettings::default(),
            FaultSettings::default(),
            std::sync::Arc::new(crate::clock::SystemClock),
        )
    }

    fn calls(metrics: &crate::runtime::metrics::Metrics, operation: &str) -> usize {
        let text = metrics.render(&[], true, &[], jiff::Timestamp::now());
        let prefix = format!(
            r#"keyfront_cloudfront_calls_total{{account="media",operation="{operation}",outcome="ok"}} "#
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |n| n.parse().unwrap())
    }

    fn key(name: &str) -> NewPublicKey {
        NewPublicKey {
            name: name.into(),
            encoded_key: crate::keys::generate(crate::api::KeyAlgorithm::EcdsaP256)
                .unwrap()
                .public_key_pem,
            comment: None,
            caller_reference: name.into(),
        }
    }

    /// Listings close together are one call; a key (or group) keyfront creates, or the reuse
    /// time passing, makes the next listing of keys (or groups) fresh, and it shows the new one.
    #[tokio::test(start_paused = true)]
    async fn an_answer_is_reused_briefly_and_never_across_keyfronts_own_write() {
        let (_, client, metrics) = test_client(emulator(), BudgetSettings::default()).await;
        assert!(client.list_public_keys().await.unwrap().is_empty());
        client.list_public_keys().await.unwrap();
        client.list_key_groups().await.unwrap();
        client.list_key_groups().await.unwrap();
        assert_eq!(calls(&metrics, "ListPublicKeys"), 1);
        assert_eq!(calls(&metrics, "ListKeyGroups"), 1);

        let created = client.create_public_key(&key("one")).await.unwrap();
        assert_eq!(client.list_public_keys().await.unwrap().len(), 1);
        assert_eq!(calls(&metrics, "ListPublicKeys"), 2);
        client.list_key_groups().await.unwrap();
        assert_eq!(
            calls(&metrics, "ListKeyGroups"),
            1,
            "a new key changes no group"
        );
        let group = KeyGroupConfig {
            name: "group".into(),
            items: vec![created.value.id],
            comment: None,
        };
        client.create_key_group(&group).await.unwrap();
        assert_eq!(client.list_key_groups().await.unwrap().len(), 1);
        assert_eq!(calls(&metrics, "ListKeyGroups"), 2);
        client.list_public_keys().await.unwrap();
        assert_eq!(
            calls(&metrics, "ListPublicKeys"),
            2,
            "a new group changes no key"
        );

        tokio::time::sleep(REUSE - Duration::from_millis(1)).await;
        client.list_public_keys().await.unwrap();
        assert_eq!(calls(&metrics, "ListPublicKeys"), 2);
        tokio::time::sleep(Duration::from_millis(1)).await;
        client.list_public_keys().await.unwrap();
        assert_eq!(calls(&metrics, "ListPublicKeys"), 3);
    }

    /// An answer read while a write is in flight may or may not show it: it is not kept.
    #[tokio::test(start_paused = true)]
    async fn an_answer_read_during_a_write_is_not_kept() {
        let settings = BudgetSettings {
            writes: super::super::Rate {
                per_second: 1.0,
                burst: 1,
            },
            ..BudgetSettings::default()
        };
        let (_, client, metrics) = test_client(emulator(), settings).await;
        client
            .create_public_key(&key("spends-the-burst"))
            .await
            .unwrap();
        let two = key("two");
        let (created, listed) = tokio::join!(client.create_public_key(&two), async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            client.list_public_keys().await
        });
        created.unwrap();
        assert_eq!(listed.unwrap().len(), 1, "listed while the write waited");
        assert_eq!(client.list_public_keys().await.unwrap().len(), 2);
        assert_eq!(calls(&metrics, "ListPublicKeys"), 2);
    }
}
