//! Faults a test injects into what another process asks over HTTP, as a busy API server
//! behaves: `409 Conflict` on writes (another writer got there first) and watch connections
//! that end (an API server restart, a load balancer's idle timeout), and requests for a
//! resource that are accepted and never answered (a hung API server). In-process clients
//! ([`crate::ApiDouble::client`]) are never faulted, so a test's own checks see the truth.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::watch;

#[derive(Debug)]
pub struct Faults {
    /// Probability in [0, 1] that an update or patch over HTTP gets `409 Conflict`, and the
    /// draws.
    conflicts: Mutex<(f64, StdRng)>,
    conflicts_injected: AtomicU64,
    /// Bumped to end every open watch stream.
    watch_epoch: watch::Sender<u64>,
    watches_dropped: AtomicU64,
    /// Resources (plurals) whose requests over HTTP hang until released.
    hung: watch::Sender<Vec<String>>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            conflicts: Mutex::new((0.0, StdRng::from_os_rng())),
            conflicts_injected: AtomicU64::new(0),
            watch_epoch: watch::Sender::new(0),
            watches_dropped: AtomicU64::new(0),
            hung: watch::Sender::new(Vec::new()),
        }
    }
}

impl Faults {
    pub fn set_conflict_rate(&self, rate: f64) {
        self.conflicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0 = rate.clamp(0.0, 1.0);
    }

    /// Draws whether this write conflicts, counting the conflicts.
    pub fn conflict(&self) -> bool {
        let mut guard = self
            .conflicts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (rate, rng) = &mut *guard;
        let hit = *rate > 0.0 && rng.random_bool(*rate);
        if hit {
            self.conflicts_injected.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    pub fn conflicts_injected(&self) -> u64 {
        self.conflicts_injected.load(Ordering::Relaxed)
    }

    /// What a watch stream listens to: when it changes, the stream ends.
    pub fn watch_ends(&self) -> watch::Receiver<u64> {
        self.watch_epoch.subscribe()
    }

    /// Ends every open watch stream; returns how many there were.
    pub fn drop_watches(&self) -> usize {
        let open = self.watch_epoch.receiver_count();
        self.watch_epoch.send_modify(|epoch| *epoch += 1);
        self.watches_dropped
            .fetch_add(open as u64, Ordering::Relaxed);
        open
    }

    /// Makes requests for `resource` hang (`on`) or answers them again, the hung ones too.
    pub fn set_hang(&self, resource: &str, on: bool) {
        self.hung.send_modify(|hung| {
            hung.retain(|r| r != resource);
            if on {
                hung.push(resource.to_owned());
            }
        });
    }

    /// Waits while requests for `resource` hang.
    pub async fn pass(&self, resource: &str) {
        let mut hung = self.hung.subscribe();
        // The sender lives as long as `self`, so `wait_for` ends only when released.
        let _ = hung.wait_for(|h| !h.iter().any(|r| r == resource)).await;
    }

    pub fn watches_dropped(&self) -> u64 {
        self.watches_dropped.load(Ordering::Relaxed)
    }
}
