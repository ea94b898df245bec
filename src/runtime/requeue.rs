//! A backstop for short requeues. The soak showed objects whose reconcile asked to be looked
//! at again within a second and were then not reconciled for minutes, until some unrelated
//! change woke them (kube-runtime's scheduler held or dropped the requeue; the cause is not
//! found yet). A rotation waiting on a deployment cannot afford that, so each short requeue is
//! armed here too: if no reconcile of the object has started by twice the delay plus 5 s, the
//! object is triggered through `Controller::reconcile_on`. When the scheduler honours the
//! requeue, the backstop finds a newer start and does nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use kube::runtime::reflector::ObjectRef;

use crate::api::SigningKeyGroup;

/// Requeues longer than this are left to the scheduler alone.
const SHORT: Duration = Duration::from_secs(60);

/// Remembers when each object's reconcile last started, and re-triggers missed requeues.
pub(super) struct RequeueBackstop {
    started: Mutex<HashMap<String, Instant>>,
    trigger: mpsc::UnboundedSender<ObjectRef<SigningKeyGroup>>,
}

impl RequeueBackstop {
    /// The backstop and the trigger stream to give `Controller::reconcile_on`.
    pub(super) fn new() -> (
        Arc<Self>,
        mpsc::UnboundedReceiver<ObjectRef<SigningKeyGroup>>,
    ) {
        let (trigger, triggered) = mpsc::unbounded();
        let backstop = Self {
            started: Mutex::default(),
            trigger,
        };
        (Arc::new(backstop), triggered)
    }

    /// A reconcile of `key` starts now.
    pub(super) fn started(&self, key: &str) {
        self.lock().insert(key.to_owned(), Instant::now());
    }

    /// The reconcile of `object` asked to be looked at again after `after`.
    pub(super) fn arm(
        self: &Arc<Self>,
        object: ObjectRef<SigningKeyGroup>,
        key: String,
        after: Duration,
    ) {
        if after > SHORT {
            return;
        }
        let armed_at = Instant::now();
        let backstop = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after * 2 + Duration::from_secs(5)).await;
            let missed = backstop
                .lock()
                .get(&key)
                .is_none_or(|started| *started < armed_at);
            if missed {
                tracing::debug!(object = %key, "a requeue was not honoured; triggering the object");
                let _ = backstop.trigger.unbounded_send(object);
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.started.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
