//! The adaptive token bucket behind the call budget: a sustained rate with a burst above it,
//! halved on throttling (once per [`DECREASE_SPACING`], down to a floor), recovering a tenth
//! of the configured rate per [`RECOVERY_STEP`] without throttling. Time is tokio's, so tests
//! run it on a paused clock.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The lowest a throttled bucket goes: this fraction of its configured rate.
const FLOOR_DIVISOR: f64 = 8.0;
/// Throttled answers closer together than this halve the rate once.
const DECREASE_SPACING: Duration = Duration::from_secs(1);
/// Each such period without throttling gives back a tenth of the configured rate.
const RECOVERY_STEP: Duration = Duration::from_secs(10);
/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

#[derive(Debug)]
struct BucketState {
    rate: f64,
    tokens: f64,
    refilled: Instant,
    last_decrease: Option<Instant>,
    calm_since: Instant,
}

/// An adaptive token bucket.
#[derive(Debug)]
pub struct Bucket {
    base: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

impl Bucket {
    pub fn new(rate: Rate) -> Self {
        let now = Instant::now();
        let base = rate.per_second.max(f64::MIN_POSITIVE);
        Self {
            base,
            burst: f64::from(rate.burst.max(1)),
            state: Mutex::new(BucketState {
                rate: base,
                tokens: f64::from(rate.burst.max(1)),
                refilled: now,
                last_decrease: None,
                calm_since: now,
            }),
        }
    }

    fn settled(&self, now: Instant) -> std::sync::MutexGuard<'_, BucketState> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(state.refilled).as_secs_f64();
        state.tokens = (state.tokens + elapsed * state.rate).min(self.burst);
        state.refilled = now;
        if state.rate < self.base {
            let calm = now.saturating_duration_since(state.calm_since);
            let steps = (calm.as_secs_f64() / RECOVERY_STEP.as_secs_f64()).floor();
            if steps >= 1.0 {
                state.rate = (state.rate + steps * self.base / 10.0).min(self.base);
                state.calm_since += RECOVERY_STEP.mul_f64(steps);
            }
        } else {
            state.calm_since = now;
        }
        state
    }

    /// Takes a token if one is there; else how long until one is.
    pub fn try_take(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self.settled(now);
        // A hair under one token is one: float rounding must not make a caller sleep for 1 ns.
        if state.tokens >= 1.0 - 1e-9 {
            state.tokens = (state.tokens - 1.0).max(0.0);
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - state.tokens) / state.rate))
        }
    }

    /// CloudFront answered `Throttling`: halve the rate (once per [`DECREASE_SPACING`]) and
    /// give up any saved burst.
    pub fn throttled(&self, now: Instant) {
        let mut state = self.settled(now);
        let spaced = state
            .last_decrease
            .is_none_or(|last| now.saturating_duration_since(last) >= DECREASE_SPACING);
        if spaced {
            state.rate = (state.rate / 2.0).max(self.base / FLOOR_DIVISOR);
            state.last_decrease = Some(now);
        }
        state.tokens = state.tokens.min(0.0);
        state.calm_since = now;
    }

    /// The current sustained rate, calls per second.
    pub fn rate(&self, now: Instant) -> f64 {
        self.settled(now).rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(per_second: f64, burst: u32) -> Bucket {
        Bucket::new(Rate { per_second, burst })
    }

    /// Takes tokens one after another as they come due: the waits between them.
    fn spacing(b: &Bucket, mut now: Instant, calls: usize) -> Vec<f64> {
        let start = now;
        let mut at = Vec::new();
        for _ in 0..calls {
            while let Err(wait) = b.try_take(now) {
                now += wait;
            }
            at.push((now - start).as_secs_f64());
        }
        at
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_is_free_and_then_calls_are_spaced_by_the_rate() {
        let b = bucket(2.0, 3);
        let now = Instant::now();
        assert_eq!(spacing(&b, now, 6), [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]);
        // Idle long after, the bucket has refilled to the burst and no further.
        let later = now + Duration::from_secs(100);
        assert_eq!(spacing(&b, later, 4), [0.0, 0.0, 0.0, 0.5]);
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_once_per_second_down_to_an_eighth_and_recovers_slowly() {
        let b = bucket(8.0, 1);
        let start = Instant::now();
        b.throttled(start);
        b.throttled(start + Duration::from_millis(500)); // same burst: counted once
        assert_eq!(b.rate(start + Duration::from_millis(900)), 4.0);
        for s in 1..10 {
            b.throttled(start + Duration::from_secs(s));
        }
        let last = start + Duration::from_secs(9);
        assert_eq!(b.rate(last), 1.0, "floor is an eighth of 8/s");
        // A tenth of the configured rate back per 10 s without throttling.
        assert_eq!(b.rate(last + Duration::from_secs(9)), 1.0);
        assert!((b.rate(last + Duration::from_secs(10)) - 1.8).abs() < 1e-9);
        assert!((b.rate(last + Duration::from_secs(35)) - 3.4).abs() < 1e-9);
        assert_eq!(b.rate(last + Duration::from_secs(200)), 8.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_bucket_spends_its_saved_burst_no_more() {
        let b = bucket(1.0, 5);
        let now = Instant::now();
        b.throttled(now);
        // Rate 0.5/s now, and no burst left: the next call waits 2 s.
        assert_eq!(b.try_take(now), Err(Duration::from_secs(2)));
    }
}
