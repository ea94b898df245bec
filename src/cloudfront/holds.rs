//! Distribution writes held while an activation waits on the distribution.
//!
//! CloudFront reports liveness only per distribution: a new key is live once the whole
//! distribution is `Deployed` with the key in `ActiveTrustedKeyGroups`, and every update
//! restarts the deployment. A co-tenant on another cache behavior that changes the
//! distribution every few seconds would keep it `InProgress` and another tenant's rotation (or
//! revocation) waiting without end.
//!
//! So an object whose key waits for a distribution to deploy holds it ([`Holds::set`], each
//! pass), and keyfront's own writes to that distribution wait until no hold is left
//! ([`Holds::clear`]); with coalescing on, the changes that arrive meanwhile are folded into
//! one write after the hold. **The bound:** the activation completes within two propagations
//! of its own change (one for a write already in flight when the hold began, one for its own).
//! A hold ends when its object's activation is done, when the object stops renewing it for
//! [`LEASE`] (it was deleted, or another replica leads), and at the latest [`AT_MOST`] after it
//! began, so a co-tenant's write waits at most that long. Writers outside keyfront are not
//! held; the waiting object reports a distribution that stays busy.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A hold its object has not renewed for this long ends.
pub const LEASE: Duration = Duration::from_secs(120);
/// No hold lasts longer than this, however often it is renewed.
pub const AT_MOST: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy)]
struct Hold {
    began: Instant,
    renewed: Instant,
}

impl Hold {
    fn ends(&self) -> Instant {
        (self.renewed + LEASE).min(self.began + AT_MOST)
    }
}

/// Holds per distribution, by the object holding it.
#[derive(Debug, Default)]
pub struct Holds {
    held: Mutex<HashMap<String, HashMap<String, Hold>>>,
    released: Notify,
}

impl Holds {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Hold>>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `holder` waits on exactly `distributions` now: its holds there begin or are renewed,
    /// and its holds elsewhere end.
    pub fn set(&self, holder: &str, distributions: &[String]) {
        let now = Instant::now();
        let mut held = self.held();
        let mut ended = false;
        for (distribution, holders) in held.iter_mut() {
            if !distributions.contains(distribution) {
                ended |= holders.remove(holder).is_some();
            }
        }
        held.retain(|_, holders| !holders.is_empty());
        for distribution in distributions {
            held.entry(distribution.clone())
                .or_default()
                .entry(holder.to_owned())
                .or_insert(Hold {
                    began: now,
                    renewed: now,
                })
                .renewed = now;
        }
        drop(held);
        if ended {
            self.released.notify_waiters();
        }
    }

    /// When the last hold on `distribution` ends, if any is in force at `now`.
    fn until(&self, distribution: &str, now: Instant) -> Option<Instant> {
        self.held()
            .get(distribution)?
            .values()
            .map(Hold::ends)
            .filter(|ends| *ends > now)
            .max()
    }

    /// Waits until no hold on `distribution` is in force.
    pub async fn clear(&self, distribution: &str) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let Some(until) = self.until(distribution, Instant::now()) else {
                return;
            };
            tracing::debug!(
                distribution,
                "holding a write while another object's key deploys there"
            );
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                () = released => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_waits_for_the_hold_to_end_and_no_longer() {
        let holds = Arc::new(Holds::default());
        holds.set("victim", &["E1".into()]);
        let start = Instant::now();
        let writer = {
            let holds = holds.clone();
            tokio::spawn(async move {
                holds.clear("E1").await;
                start.elapsed()
            })
        };
        // Another distribution is not held.
        holds.clear("E2").await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Renewed each pass; the activation is done after 40 s.
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(10)).await;
            holds.set("victim", &["E1".into()]);
        }
        holds.set("victim", &[]);
        assert_eq!(writer.await.unwrap(), Duration::from_secs(40));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_ends_unrenewed_after_its_lease_and_renewed_after_at_most() {
        let holds = Holds::default();
        holds.set("gone", &["E1".into()]);
        let start = Instant::now();
        holds.clear("E1").await;
        assert_eq!(start.elapsed(), LEASE);

        let holds = Arc::new(Holds::default());
        holds.set("slow", &["E1".into()]);
        let renewing = {
            let holds = holds.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(15)).await;
                    holds.set("slow", &["E1".into()]);
                }
            })
        };
        let start = Instant::now();
        holds.clear("E1").await;
        assert_eq!(start.elapsed(), AT_MOST);
        renewing.abort();
    }
}
