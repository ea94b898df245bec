//! UpdateDistribution coalescing: the trust changes of every object of one account to one
//! distribution that arrive within the coalescing window go out as one read-modify-write.
//!
//! The first change to arrive for a distribution leads its batch: it waits the window, takes
//! every change queued meanwhile and writes them with one read-modify-write
//! ([`trust::write_together`]: a change that no longer applies — say it would now make a
//! behavior public — is answered with its own error and left out). Changes arriving
//! after the batch was taken start the next one. Ten objects attaching to one distribution
//! thus make one write instead of ten writes racing on its ETag.
//!
//! If the leading reconcile is dropped before it took the batch, the batch goes with it:
//! the waiting changes are answered with a transient error and their objects retry.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::trust::{self, PendingEdit, TrustChange};
use super::{CloudFront, Distribution, Result, Tagged};

/// Queued edits per distribution of one account.
#[derive(Debug, Default)]
pub(super) struct Batches(Mutex<HashMap<String, Vec<PendingEdit>>>);

impl Batches {
    /// Queues an edit; `true` if it is the first of its batch (and must lead it).
    fn queue(&self, id: &str, edit: PendingEdit) -> bool {
        let mut batches = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let batch = batches.entry(id.to_owned()).or_default();
        batch.push(edit);
        batch.len() == 1
    }

    fn take(&self, id: &str) -> Vec<PendingEdit> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
            .unwrap_or_default()
    }
}

/// Drops a batch whose leader went away before taking it, so its waiters are answered.
struct Lead<'a> {
    batches: &'a Batches,
    id: &'a str,
    taken: bool,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if !self.taken {
            drop(self.batches.take(self.id));
        }
    }
}

/// [`CloudFront::change_trust`] through `batches`: joins (or leads) the distribution's batch; a
/// leader waits `window`, then writes the batch with `client` (the budgeted client, which spends
/// the write from the account's budget).
pub(super) async fn change_trust<C: CloudFront>(
    client: &C,
    batches: &Batches,
    window: Duration,
    id: &str,
    changes: &[TrustChange],
    base: Option<Tagged<Distribution>>,
) -> Result<Tagged<Distribution>> {
    let (edit, outcome) = PendingEdit::new(changes, base);
    if batches.queue(id, edit) {
        let mut lead = Lead {
            batches,
            id,
            taken: false,
        };
        tokio::time::sleep(window).await;
        let batch = batches.take(id);
        lead.taken = true;
        trust::write_together(client, id, batch).await;
    }
    outcome.wait(id).await
}
