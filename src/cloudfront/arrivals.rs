//! Objects on their way to a distribution: its next UpdateDistribution waits a little for
//! them, so onboarding many objects makes a few writes, not one each.
//!
//! Fifty objects applied together on one distribution each make a public key and a key group
//! before they can attach. At the default write budget (1 write/s) those attachments arrive
//! over a minute or two, one every few seconds, and a coalescing window of 2 s alone folded
//! few of them together (42 writes for 50 objects). So:
//! - an object whose only missing step before attaching to a distribution is its own key,
//!   key group or signing Secret says so on each pass ([`Arrivals::set`]); it does so only
//!   for distributions its account grants it, and not while it is blocked;
//! - a writer whose waiting changes only add trust (onboarding) waits for those objects
//!   ([`Arrivals::gather`]) until none is left on its way, and at most [`AT_MOST`] after the
//!   oldest waiting change was made. A change that removes trust (a grant withdrawn, an
//!   object deleted) is never held for arrivals;
//! - an object that stops saying so for [`LEASE`] (deleted, stuck, or another replica leads)
//!   is no longer waited for.
//!
//! A lone object, on a distribution no one else is on their way to, waits for nothing. The
//! most any object on its way can delay another's attachment is [`AT_MOST`].

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// An object that has not said it is on its way for this long is not waited for.
pub const LEASE: Duration = Duration::from_secs(60);
/// The longest a change waits for objects on their way to its distribution.
pub const AT_MOST: Duration = Duration::from_secs(30);

/// Per distribution, the objects on their way to it and when each last said so.
#[derive(Debug, Default)]
pub struct Arrivals {
    heading: Mutex<HashMap<String, HashMap<String, Instant>>>,
    changed: Notify,
}

impl Arrivals {
    fn heading(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, Instant>>> {
        self.heading.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `object` is on its way to exactly `distributions` now.
    pub fn set(&self, object: &str, distributions: &[String]) {
        let now = Instant::now();
        let mut heading = self.heading();
        let mut left = false;
        for (distribution, objects) in heading.iter_mut() {
            if !distributions.contains(distribution) {
                left |= objects.remove(object).is_some();
            }
            objects.retain(|_, said| *said + LEASE > now);
        }
        heading.retain(|_, objects| !objects.is_empty());
        for distribution in distributions {
            heading
                .entry(distribution.clone())
                .or_default()
                .insert(object.to_owned(), now);
        }
        drop(heading);
        if left {
            self.changed.notify_waiters();
        }
    }

    /// Until when some object is on its way to `distribution`, if one is at `now`.
    fn awaited(&self, distribution: &str, now: Instant) -> Option<Instant> {
        self.heading()
            .get(distribution)?
            .values()
            .map(|said| *said + LEASE)
            .filter(|until| *until > now)
            .max()
    }

    /// Waits until no object is on its way to `distribution`, or [`AT_MOST`] after `oldest`
    /// (when the oldest change waiting for it was made).
    pub async fn gather(&self, distribution: &str, oldest: Instant) {
        let deadline = oldest + AT_MOST;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            let Some(until) = self.awaited(distribution, now).filter(|_| now < deadline) else {
                return;
            };
            tracing::debug!(
                distribution,
                "gathering objects on their way to the distribution"
            );
            tokio::select! {
                () = tokio::time::sleep_until(deadline.min(until)) => {}
                () = changed => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The wait ends when the last object on its way arrives, and not before.
    #[tokio::test(start_paused = true)]
    async fn a_write_waits_until_the_objects_on_their_way_have_arrived() {
        let arrivals = Arc::new(Arrivals::default());
        let d = "E1".to_owned();
        arrivals.set("a", std::slice::from_ref(&d));
        arrivals.set("b", std::slice::from_ref(&d));
        let start = Instant::now();
        let gathering = tokio::spawn({
            let arrivals = arrivals.clone();
            async move { arrivals.gather("E1", Instant::now()).await }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        arrivals.set("a", &[]);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!gathering.is_finished(), "b is still on its way");
        arrivals.set("b", &[]);
        gathering.await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    /// Nobody on the way: no wait. Someone who never arrives: at most AT_MOST after the
    /// oldest change, even while it keeps saying it is on its way.
    #[tokio::test(start_paused = true)]
    async fn the_wait_is_bounded_and_nothing_is_waited_for_with_no_one_on_the_way() {
        let arrivals = Arrivals::default();
        let start = Instant::now();
        arrivals.gather("E1", start).await;
        assert_eq!(start.elapsed(), Duration::ZERO);

        arrivals.set("stuck", &["E1".to_owned()]);
        arrivals.gather("E2", start).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "on its way elsewhere");
        let oldest = start - Duration::from_secs(10);
        let renewing = async {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                arrivals.set("stuck", &["E1".to_owned()]);
            }
        };
        tokio::select! {
            () = arrivals.gather("E1", oldest) => {}
            () = renewing => unreachable!(),
        }
        assert_eq!(start.elapsed(), AT_MOST - Duration::from_secs(10));
    }

    /// An object that stops saying it is on its way is not waited for after its lease.
    #[tokio::test(start_paused = true)]
    async fn an_object_that_stops_saying_so_is_waited_for_at_most_its_lease() {
        let arrivals = Arrivals::default();
        arrivals.set("gone", &["E1".to_owned()]);
        tokio::time::sleep(LEASE - Duration::from_secs(5)).await;
        let start = Instant::now();
        arrivals.gather("E1", start).await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
