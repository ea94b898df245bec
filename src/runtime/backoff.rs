//! Per-object retry delays: exponential, capped, jittered, and forgotten on success.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Per-object exponential backoff with jitter, reset by a successful reconcile.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before retrying `key` after one more failure: base × 2^(failures−1), capped,
    /// then scaled by a random factor in [0.5, 1] so objects failing together spread out.
    pub fn next(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let count = failures.entry(key.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        let exponential = self
            .base
            .saturating_mul(
                1u32.checked_shl(count.saturating_sub(1).min(20))
                    .unwrap_or(u32::MAX),
            )
            .min(self.max);
        exponential.mul_f64(rand::random_range(0.5..=1.0))
    }

    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_per_object_is_capped_and_resets() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let delays: Vec<Duration> = (0..6).map(|_| backoff.next("a")).collect();
        for (n, d) in delays.iter().enumerate() {
            let full = Duration::from_secs(1 << n.min(3));
            assert!(*d <= full && *d >= full / 2, "failure {n}: {d:?}");
        }
        let other = backoff.next("b");
        assert!(other <= Duration::from_secs(1), "{other:?}");
        backoff.reset("a");
        assert!(backoff.next("a") <= Duration::from_secs(1));
    }
}
