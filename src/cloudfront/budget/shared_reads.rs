//! Shared distribution reads: while many objects poll one deploying distribution, a read of it
//! that still waits for its token answers everyone who asked before it was sent, instead of
//! each caller queueing a read of its own. No caller gets an answer older than its question.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::oneshot;

use super::{Budgeted, Class};
use crate::cloudfront::{CloudFront, Distribution, Result, Tagged};

type ReadAnswer = oneshot::Sender<Result<Tagged<Distribution>>>;

/// Reads of a distribution waiting for their token, with the callers that joined them: when
/// many objects poll one deploying distribution, one read answers all who asked before it was
/// sent (so no caller gets an answer older than its question).
#[derive(Debug, Default)]
pub(super) struct PendingReads(Mutex<HashMap<String, Vec<ReadAnswer>>>);

impl PendingReads {
    /// Joins the read of `id` waiting for its token, or (`None`) registers one the caller leads.
    fn join(&self, id: &str) -> Option<oneshot::Receiver<Result<Tagged<Distribution>>>> {
        let mut pending = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.get_mut(id) {
            Some(joiners) => {
                let (answer, answered) = oneshot::channel();
                joiners.push(answer);
                Some(answered)
            }
            None => {
                pending.insert(id.to_owned(), Vec::new());
                None
            }
        }
    }

    /// Closes the read of `id` to joiners (it is being sent) and returns them.
    fn take(&self, id: &str) -> Vec<ReadAnswer> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
            .unwrap_or_default()
    }
}

/// A read the caller leads; dropped before it was sent, it lets its joiners go (they read
/// for themselves).
struct LeadRead<'a> {
    reads: &'a PendingReads,
    id: &'a str,
    joiners: Option<Vec<ReadAnswer>>,
}

impl Drop for LeadRead<'_> {
    fn drop(&mut self) {
        if self.joiners.is_none() {
            drop(self.reads.take(self.id));
        }
    }
}

/// `GetDistribution` through the budget, joining a read of the same distribution that waits
/// for its token, or leading one that later callers may join.
pub(super) async fn get_distribution<C: CloudFront>(
    client: &Budgeted<C>,
    id: &str,
) -> Result<Tagged<Distribution>> {
    let read = match client.account.pending_reads.join(id) {
        Some(joined) => match joined.await {
            Ok(read) => return read,
            // The read joined was dropped: make one.
            Err(_) => {
                client
                    .spend(Class::Read, move || client.inner.get_distribution(id))
                    .await
            }
        },
        None => {
            let mut lead = LeadRead {
                reads: &client.account.pending_reads,
                id,
                joiners: None,
            };
            let (inner, leading) = (&client.inner, &mut lead);
            let read = client
                .spend(Class::Read, move || {
                    // Sent now: whoever joined before this moment gets this answer.
                    if leading.joiners.is_none() {
                        leading.joiners = Some(leading.reads.take(leading.id));
                    }
                    inner.get_distribution(id)
                })
                .await;
            for joiner in lead.joiners.take().unwrap_or_default() {
                let _ = joiner.send(read.clone());
            }
            read
        }
    };
    client.remember(&read);
    read
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
