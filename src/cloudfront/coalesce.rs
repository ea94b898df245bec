//! UpdateDistribution coalescing: writes to one distribution are serialized, and each write
//! carries every trust change of every object of the account waiting for that distribution at
//! that moment.
//!
//! - A change that finds no write in flight, and none just done, goes out at once (after one
//!   yield, so changes made in the same instant join it): a lone object pays no window.
//! - A change that finds a write in flight waits for it; the writer then takes every change
//!   waiting, no earlier than the window after its previous write, and writes them with one
//!   read-modify-write ([`trust::write_together`]: a change that no longer applies — say it
//!   would now make a behavior public — is answered with its own error and left out).
//! - The reconcile that found no writer becomes the writer and serves the queue until it is
//!   empty. So fifty objects attaching to one distribution at once make two or three writes,
//!   at most one per window, instead of fifty racing on its ETag. The writer's own reconcile
//!   returns once the queue is drained: at most one window per batch that kept arriving while
//!   it wrote.
//!
//! - While another object's key waits for the distribution to deploy, the writer waits for
//!   that hold to end ([`Holds`]) before taking the batch.
//! - While every waiting change only adds trust, the writer also waits (at most
//!   [`super::arrivals::AT_MOST`]) for the objects on their way to the distribution
//!   ([`Arrivals`]), so objects onboarded together attach in a few writes even when their
//!   keys and groups trickle through the write budget.
//!
//! If the writer's reconcile is dropped before its queue is drained, the waiting changes are
//! answered with a transient error and their objects retry (one of them becomes the writer).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::arrivals::Arrivals;
use super::holds::Holds;
use super::trust::{self, PendingEdit, TrustChange};
use super::{CloudFront, Distribution, Result, Tagged};

/// One distribution's waiting changes (and since when the oldest waits), whether someone is
/// writing them, and when the last write ended.
#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<PendingEdit>,
    oldest: Option<Instant>,
    writing: bool,
    last_write: Option<Instant>,
}

/// Queued edits per distribution of one account.
#[derive(Debug, Default)]
pub(super) struct Batches(Mutex<HashMap<String, Queue>>);

impl Batches {
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Queue) -> T) -> T {
        let mut queues = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(queues.entry(id.to_owned()).or_default())
    }

    /// Queues an edit; `true` if no one is writing to the distribution (the caller writes).
    fn queue(&self, id: &str, edit: PendingEdit) -> bool {
        self.with(id, |q| {
            q.waiting.push(edit);
            q.oldest.get_or_insert_with(Instant::now);
            !std::mem::replace(&mut q.writing, true)
        })
    }

    /// Since when the oldest change waits, if every change waiting only adds trust.
    fn only_adding(&self, id: &str) -> Option<Instant> {
        self.with(id, |q| {
            q.oldest
                .filter(|_| q.waiting.iter().all(PendingEdit::only_adds))
        })
    }

    /// The edits waiting now; none means the writer stands down.
    fn take(&self, id: &str) -> Vec<PendingEdit> {
        self.with(id, |q| {
            let batch = std::mem::take(&mut q.waiting);
            q.oldest = None;
            q.writing = !batch.is_empty();
            batch
        })
    }

    /// Records the end of a write; `true` if nothing waits (the writer stands down).
    fn written(&self, id: &str) -> bool {
        self.with(id, |q| {
            q.last_write = Some(Instant::now());
            q.writing = !q.waiting.is_empty();
            !q.writing
        })
    }

    fn last_write(&self, id: &str) -> Option<Instant> {
        self.with(id, |q| q.last_write)
    }
}

/// Answers the waiting changes of a writer that went away before draining its queue.
struct Writer<'a> {
    batches: &'a Batches,
    id: &'a str,
    drained: bool,
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        if !self.drained {
            self.batches.with(self.id, |q| {
                q.writing = false;
                drop(std::mem::take(&mut q.waiting));
            });
        }
    }
}

/// One account's distribution writes: the changes queued, the distributions held for a
/// deployment ([`Holds`]) and the objects on their way ([`Arrivals`]).
#[derive(Debug, Default)]
pub(super) struct Coalescing {
    batches: Batches,
    pub(super) holds: Holds,
    pub(super) arrivals: Arrivals,
}

/// [`CloudFront::change_trust`] through `coalescing`: queues the change, and if no one is
/// writing to the distribution, writes the queue with `client` (the budgeted client, which
/// spends each write from the account's budget) until it is empty, at most one write per
/// `window`.
pub(super) async fn change_trust<C: CloudFront>(
    client: &C,
    coalescing: &Coalescing,
    window: Duration,
    id: &str,
    changes: &[TrustChange],
    base: Option<Tagged<Distribution>>,
) -> Result<Tagged<Distribution>> {
    let Coalescing {
        batches,
        holds,
        arrivals,
    } = coalescing;
    let (edit, outcome) = PendingEdit::new(changes, base);
    if batches.queue(id, edit) {
        let mut writer = Writer {
            batches,
            id,
            drained: false,
        };
        loop {
            match batches.last_write(id) {
                Some(last) if last + window > Instant::now() => {
                    tokio::time::sleep_until(last + window).await;
                }
                _ => tokio::task::yield_now().await,
            }
            // Changes arriving while a hold lasts join this batch: one write after it.
            holds.clear(id).await;
            // Onboarding waits a little for the objects on their way; a removal never does.
            if let Some(oldest) = batches.only_adding(id) {
                arrivals.gather(id, oldest).await;
                holds.clear(id).await;
            }
            let batch = batches.take(id);
            if batch.is_empty() {
                break;
            }
            trust::write_together(client, id, batch).await;
            if batches.written(id) {
                break;
            }
        }
        writer.drained = true;
    }
    outcome.wait(id).await
}
