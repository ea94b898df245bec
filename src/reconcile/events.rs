//! Events about a `SigningKeyGroup`, one series per transition.
//!
//! kube-runtime's [`Recorder`] folds Events with the same type, reason, action and object into
//! one series that keeps its *first* note: with one action for everything, `KeyActivated ×6`
//! would still name the first key. Here the action is the transition (`WriteAppSecret`,
//! `UpdateKeyGroup`, …) followed by a digest of the note, so only Events that say the same
//! thing are folded and every Event's note is true of its latest occurrence.
//!
//! A series update answered 404 (the API server expired the Event the Recorder remembers) is
//! published again as a new Event by a Recorder with an empty cache.

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource as _, ResourceExt as _};

use crate::api::SigningKeyGroup;

/// Publishes Events; failures are logged, never fatal.
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    reporter: Reporter,
    recorder: Recorder,
}

impl Events {
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            client,
            reporter,
        }
    }

    /// Publishes `note` about `object` as part of `transition` (what keyfront did or found).
    pub async fn publish(
        &self,
        object: &SigningKeyGroup,
        type_: EventType,
        reason: &str,
        transition: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            action: action(transition, &note),
            note: Some(note),
            secondary: None,
        };
        let reference = object.object_ref(&());
        let result = match self.recorder.publish(&event, &reference).await {
            Err(kube::Error::Api(status)) if status.code == 404 => {
                Recorder::new(self.client.clone(), self.reporter.clone())
                    .publish(&event, &reference)
                    .await
            }
            other => other,
        };
        if let Err(kube::Error::Api(status)) = &result
            && status.code == 403
            && status.message.contains("being terminated")
        {
            // Nothing can be recorded in a namespace being deleted; the cleanup goes on.
            tracing::debug!(reason, "no Event: the namespace is being deleted");
            return;
        }
        if let Err(error) = result {
            tracing::warn!(%error, reason, object = %object.name_any(), "could not record event");
        }
    }
}

/// `transition/digest-of-note`: a series per distinct note (an Event's action is at most 128
/// characters; transitions are short names).
pub fn action(transition: &str, note: &str) -> String {
    // FNV-1a: stable across processes and releases, so a restarted operator continues a series.
    let digest = note.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    format!("{transition}/{digest:08x}")
}

#[cfg(test)]
mod tests {
    use super::action;

    #[test]
    fn the_same_transition_with_another_note_is_another_series() {
        let first = action("WriteAppSecret", "Secret s now holds public key K1");
        assert_eq!(
            first,
            action("WriteAppSecret", "Secret s now holds public key K1")
        );
        assert_ne!(
            first,
            action("WriteAppSecret", "Secret s now holds public key K2")
        );
        assert!(first.starts_with("WriteAppSecret/"));
        assert!(first.len() <= 128);
    }
}
