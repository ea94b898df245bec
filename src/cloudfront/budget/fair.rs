//! Fair turns at an account's bucket: namespaces take its tokens in turn, not first come first
//! served, so a namespace that floods changes spends its own share of the account's calls and
//! no one else's.
//!
//! This is start-time fair queueing with every call costing one turn and every namespace
//! weighing the same. A call from namespace `n` gets the tag `max(V, last(n))`, where `V` is
//! the tag of the call served last and `last(n)` is one past the tag of `n`'s previous call;
//! the waiting call with the smallest tag takes the next token (arrival order among equals).
//! A namespace's calls thus carry tags `t, t+1, t+2, …` however many it queues, while a
//! namespace that was quiet starts at `V`.
//!
//! **The bound.** A call from a namespace with nothing else waiting is served after at most
//! one call of each other namespace with calls waiting (those tagged at or before it), so it
//! waits at most `k ÷ rate` for the tokens, with `k` the namespaces waiting beside it — what
//! its own fair share of the rate gives it — however many calls the others queue.
//! `cloudfront::budget::fair::tests` measures it with one namespace queueing 200 calls.
//!
//! Hand-written because no crate found here fair-queues async callers over an adaptive token
//! bucket (`governor` paces one key or a keyed set of independent limiters; neither shares one
//! rate between keys in turn).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::bucket::Bucket;

/// A call's place: its tag, then arrival order among equal tags.
type Place = (u64, u64);

#[derive(Debug, Default)]
struct Turns {
    /// The tag of the call served last.
    served: u64,
    /// One past each namespace's last tag, kept while it is ahead of `served`.
    next: HashMap<String, u64>,
    waiting: BTreeSet<Place>,
    arrivals: u64,
}

/// An adaptive bucket whose tokens namespaces take in fair turns.
#[derive(Debug)]
pub struct FairBucket {
    pub(super) bucket: Bucket,
    turns: Mutex<Turns>,
    /// Woken whenever the first place in line may have changed.
    changed: Notify,
}

/// Leaves the line if the caller gives up (its future dropped) before its turn.
struct InLine<'a> {
    fair: &'a FairBucket,
    place: Place,
    served: bool,
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        if !self.served {
            self.fair.turns().waiting.remove(&self.place);
            self.fair.changed.notify_waiters();
        }
    }
}

impl FairBucket {
    pub fn new(bucket: Bucket) -> Self {
        Self {
            bucket,
            turns: Mutex::default(),
            changed: Notify::new(),
        }
    }

    fn turns(&self) -> std::sync::MutexGuard<'_, Turns> {
        self.turns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `namespace`'s turn and a token.
    pub async fn take(&self, namespace: &str) {
        let place = {
            let mut turns = self.turns();
            let served = turns.served;
            let next = turns.next.entry(namespace.to_owned()).or_insert(served);
            let tag = (*next).max(served);
            *next = tag + 1;
            turns.arrivals += 1;
            let place = (tag, turns.arrivals);
            turns.waiting.insert(place);
            place
        };
        let mut line = InLine {
            fair: self,
            place,
            served: false,
        };
        // A newcomer may be first now, ahead of a first in line asleep until its token.
        self.changed.notify_waiters();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let first = self.turns().waiting.first() == Some(&place);
            if !first {
                changed.await;
                continue;
            }
            match self.bucket.try_take(Instant::now()) {
                Ok(()) => break,
                Err(wait) => {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = changed => {}
                    }
                }
            }
        }
        {
            let mut turns = self.turns();
            turns.waiting.remove(&place);
            turns.served = turns.served.max(place.0);
            let served = turns.served;
            turns.next.retain(|_, next| *next > served);
        }
        line.served = true;
        self.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::cloudfront::budget::Rate;

    fn fair(per_second: f64, burst: u32) -> Arc<FairBucket> {
        Arc::new(FairBucket::new(Bucket::new(Rate { per_second, burst })))
    }

    /// When each of `calls` calls of `namespace` got its token, after a start at `start`.
    fn queue(
        fair: &Arc<FairBucket>,
        namespace: &'static str,
        calls: usize,
        start: Instant,
    ) -> Vec<tokio::task::JoinHandle<Duration>> {
        (0..calls)
            .map(|_| {
                let fair = fair.clone();
                tokio::spawn(async move {
                    fair.take(namespace).await;
                    start.elapsed()
                })
            })
            .collect()
    }

    /// The flood's calls are all queued before the victim's one call; first come first served
    /// would serve the victim 40 s later (200 calls at 5/s). In fair turns it waits for one
    /// of the flood's calls: the bound in the module doc, k = 1, is 0.2 s after its arrival.
    #[tokio::test(start_paused = true)]
    async fn a_flooding_namespace_delays_another_by_its_own_turn_only() {
        let fair = fair(5.0, 1);
        let start = Instant::now();
        let flood = queue(&fair, "flood", 200, start);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let victim = queue(&fair, "victim", 1, start)
            .pop()
            .unwrap()
            .await
            .unwrap();
        assert!(
            victim <= Duration::from_millis(1200),
            "arrived at 1 s, served at {victim:?}"
        );
        let mut flood_done = Vec::new();
        for call in flood {
            flood_done.push(call.await.unwrap());
        }
        // The flood still had the whole rate while the victim was quiet: 201 tokens in all,
        // the first free, then one each 0.2 s.
        assert_eq!(flood_done.iter().max(), Some(&Duration::from_secs(40)));
    }

    /// Two namespaces flooding side by side share the rate half and half.
    #[tokio::test(start_paused = true)]
    async fn namespaces_that_both_flood_share_the_rate_equally() {
        let fair = fair(10.0, 1);
        let start = Instant::now();
        let a = queue(&fair, "a", 100, start);
        let b = queue(&fair, "b", 20, start);
        let mut b_done = Duration::ZERO;
        for call in b {
            b_done = b_done.max(call.await.unwrap());
        }
        // b's 20 calls alternate with a's: done after about 40 tokens (4 s), not 120 (12 s).
        assert!(
            b_done <= Duration::from_millis(4000),
            "b's last call was served at {b_done:?}"
        );
        for call in a {
            call.await.unwrap();
        }
    }

    /// A caller that gives up leaves the line, and the next one is served in its place.
    #[tokio::test(start_paused = true)]
    async fn a_caller_that_gives_up_does_not_hold_the_line() {
        let fair = fair(1.0, 1);
        fair.take("a").await; // the burst
        let gave_up = tokio::time::timeout(Duration::from_millis(100), fair.take("a")).await;
        assert!(gave_up.is_err());
        let start = Instant::now();
        fair.take("b").await;
        assert!(start.elapsed() <= Duration::from_secs(1));
    }
}
