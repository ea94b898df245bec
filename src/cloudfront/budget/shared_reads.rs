//! Shared reads: while many objects poll one deploying distribution (or list the account's
//! public keys or key groups), a read of it that still waits for its token answers everyone
//! who asked before it was sent, instead of each caller queueing a read of its own. No caller
//! gets an answer older than its question.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

use super::{Budgeted, Class};
use crate::cloudfront::Result;

type ReadAnswer<T> = oneshot::Sender<Result<T>>;

/// Reads of one kind waiting for their token, by what they read (a distribution's ID; one
/// key for an account listing), with the callers that joined them.
#[derive(Debug)]
pub(super) struct PendingReads<T>(Mutex<HashMap<String, Vec<ReadAnswer<T>>>>);

impl<T> Default for PendingReads<T> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<T> PendingReads<T> {
    /// Joins the read of `key` waiting for its token, or (`None`) registers one the caller
    /// leads.
    fn join(&self, key: &str) -> Option<oneshot::Receiver<Result<T>>> {
        let mut pending = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.get_mut(key) {
            Some(joiners) => {
                let (answer, answered) = oneshot::channel();
                joiners.push(answer);
                Some(answered)
            }
            None => {
                pending.insert(key.to_owned(), Vec::new());
                None
            }
        }
    }

    /// Closes the read of `key` to joiners (it is being sent) and returns them.
    fn take(&self, key: &str) -> Vec<ReadAnswer<T>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key)
            .unwrap_or_default()
    }
}

/// A read the caller leads; dropped before it was sent, it lets its joiners go (they read
/// for themselves).
struct LeadRead<'a, T> {
    reads: &'a PendingReads<T>,
    key: &'a str,
    joiners: Option<Vec<ReadAnswer<T>>>,
}

impl<T> Drop for LeadRead<'_, T> {
    fn drop(&mut self) {
        if self.joiners.is_none() {
            drop(self.reads.take(self.key));
        }
    }
}

/// `read` through the budget, joining a read of the same `key` in `pending` that waits for
/// its token, or leading one that later callers may join.
pub(super) async fn shared<C, T, F>(
    client: &Budgeted<C>,
    pending: &PendingReads<T>,
    key: &str,
    read: impl Fn() -> F,
) -> Result<T>
where
    T: Clone,
    F: Future<Output = Result<T>>,
{
    if let Some(joined) = pending.join(key) {
        return match joined.await {
            Ok(answer) => answer,
            // The read joined was dropped: make one.
            Err(_) => client.spend(Class::Read, &read).await,
        };
    }
    let mut lead = LeadRead {
        reads: pending,
        key,
        joiners: None,
    };
    let leading = &mut lead;
    let answer = client
        .spend(Class::Read, move || {
            // Sent now: whoever joined before this moment gets this answer.
            if leading.joiners.is_none() {
                leading.joiners = Some(leading.reads.take(leading.key));
            }
            read()
        })
        .await;
    for joiner in lead.joiners.take().unwrap_or_default() {
        let _ = joiner.send(answer.clone());
    }
    answer
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::super::{BudgetSettings, Rate};
    use crate::cloudfront::CloudFront as _;

    /// Objects polling one deploying distribution share a read while it waits for its token.
    #[tokio::test(start_paused = true)]
    async fn reads_of_one_distribution_waiting_for_a_token_are_shared() {
        use crate::emulator::{Emulator, faults::FaultSettings, model::ModelSettings};

        let emulator = Emulator::new(
            ModelSettings::default(),
            FaultSettings::default(),
            std::sync::Arc::new(crate::clock::SystemClock),
        );
        let id = emulator.create_test_distribution(&[]).unwrap();
        let settings = BudgetSettings {
            reads: Rate {
                per_second: 1.0,
                burst: 1,
            },
            ..BudgetSettings::default()
        };
        let (_, client, metrics) = super::super::test_client(emulator, settings).await;
        client.get_distribution(&id).await.unwrap(); // spends the burst
        let start = Instant::now();
        let reads = futures::future::join_all((0..10).map(|_| client.get_distribution(&id))).await;
        assert!(reads.iter().all(Result::is_ok));
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "one token waited for"
        );
        let text = metrics.render(&[], true, &[], jiff::Timestamp::now());
        assert!(
            text.contains(r#"keyfront_cloudfront_calls_total{account="media",operation="GetDistribution",outcome="ok"} 2"#),
            "{text}"
        );
    }
}
