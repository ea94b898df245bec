//! Trust changes: one object's edit of the trusted key groups of a distribution's cache
//! behaviors, expressed as *what to add and remove* rather than as whole lists, so that the
//! edits of several objects on one distribution can be applied together to whatever the
//! distribution holds when the write happens ([`super::budget`] coalesces them).
//!
//! Must not: loosen a decision of the reconciler. A change that was planned to leave a
//! behavior trusted is refused if, applied to the distribution as it is now, it would leave
//! the behavior public (someone removed the other key groups meanwhile); the object then
//! plans again from a fresh read.

use tokio::sync::oneshot;

use super::{
    BehaviorSelector, BehaviorTrust, CloudFront, CloudFrontError, Distribution, ErrorKind,
};
use super::{Result, Tagged};

/// CloudFront allows at most this many key groups on one cache behavior.
pub const MAX_KEY_GROUPS_PER_BEHAVIOR: usize = 4;

/// How often a read-modify-write is read and applied again after its ETag went stale.
const STALE_ETAG_RETRIES: usize = 3;

/// One behavior's edit: key groups to add and to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustChange {
    pub behavior: BehaviorSelector,
    pub add: Vec<String>,
    pub remove: Vec<String>,
    /// Whether the behavior may end with no trusted key group (public); planned only with
    /// the tenant's opt-in and the account's leave.
    pub may_make_public: bool,
}

impl TrustChange {
    /// The edit that turns `before` into `after` (the same behavior).
    pub fn between(before: &BehaviorTrust, after: &BehaviorTrust) -> Self {
        let add = after
            .trusted_key_groups
            .iter()
            .filter(|g| !before.trusted_key_groups.contains(g))
            .cloned()
            .collect();
        let remove = before
            .trusted_key_groups
            .iter()
            .filter(|g| !after.trusted_key_groups.contains(g))
            .cloned()
            .collect();
        Self {
            behavior: after.behavior.clone(),
            add,
            remove,
            may_make_public: after.trusted_key_groups.is_empty(),
        }
    }

    /// Applies the edit to the behavior's trust in `behaviors` (the distribution's, as read).
    fn apply_to(&self, distribution_id: &str, behaviors: &mut [BehaviorTrust]) -> Result<()> {
        let refused = |kind, code: &str, message: String| {
            Err(CloudFrontError::new(
                "UpdateDistribution",
                kind,
                code,
                message,
            ))
        };
        let Some(trust) = behaviors.iter_mut().find(|b| b.behavior == self.behavior) else {
            return refused(
                ErrorKind::NotFound,
                "NoSuchCacheBehavior",
                format!(
                    "distribution {distribution_id} has no {} any more",
                    self.behavior
                ),
            );
        };
        let was_trusted = !trust.trusted_key_groups.is_empty();
        trust
            .trusted_key_groups
            .retain(|g| !self.remove.contains(g));
        for group in &self.add {
            if !trust.trusted_key_groups.contains(group) {
                trust.trusted_key_groups.push(group.clone());
            }
        }
        if was_trusted && trust.trusted_key_groups.is_empty() && !self.may_make_public {
            return refused(
                ErrorKind::PreconditionFailed,
                "WouldMakePublic",
                format!(
                    "the {} of distribution {distribution_id} changed since it was read: removing key group(s) {} would now make it public; not applied",
                    self.behavior,
                    self.remove.join(", ")
                ),
            );
        }
        if trust.trusted_key_groups.len() > MAX_KEY_GROUPS_PER_BEHAVIOR {
            return refused(
                ErrorKind::QuotaExceeded,
                "TooManyKeyGroupsAssociatedToDistribution",
                format!(
                    "the {} of distribution {distribution_id} already trusts {MAX_KEY_GROUPS_PER_BEHAVIOR} key groups, CloudFront's limit",
                    self.behavior
                ),
            );
        }
        Ok(())
    }
}

/// `distribution` with `changes` applied (all or none).
pub fn apply(distribution: &Distribution, changes: &[TrustChange]) -> Result<Distribution> {
    let mut edited = distribution.clone();
    for change in changes {
        change.apply_to(&distribution.id, &mut edited.behaviors)?;
    }
    Ok(edited)
}

/// The trust of the behaviors of `distribution` that any of `changes` edits: what an
/// `UpdateDistribution` carrying them must set.
pub fn touched<'a>(
    distribution: &Distribution,
    changes: impl IntoIterator<Item = &'a TrustChange> + Clone,
) -> Vec<BehaviorTrust> {
    distribution
        .behaviors
        .iter()
        .filter(|b| {
            changes
                .clone()
                .into_iter()
                .any(|c| c.behavior == b.behavior)
        })
        .cloned()
        .collect()
}

/// One object's edit of a distribution waiting to be written, and where its outcome goes.
#[derive(Debug)]
pub(super) struct PendingEdit {
    changes: Vec<TrustChange>,
    /// A read the object already has; saves a read while its ETag is current.
    base: Option<Tagged<Distribution>>,
    answer: oneshot::Sender<Result<Tagged<Distribution>>>,
}

/// The outcome of a [`PendingEdit`], once written (or refused).
pub(super) struct EditOutcome(oneshot::Receiver<Result<Tagged<Distribution>>>);

impl PendingEdit {
    pub(super) fn new(
        changes: &[TrustChange],
        base: Option<Tagged<Distribution>>,
    ) -> (Self, EditOutcome) {
        let (answer, answered) = oneshot::channel();
        let edit = Self {
            changes: changes.to_vec(),
            base,
            answer,
        };
        (edit, EditOutcome(answered))
    }

    /// Whether it only adds key groups (an object onboarding), removing none.
    pub(super) fn only_adds(&self) -> bool {
        self.changes.iter().all(|c| c.remove.is_empty())
    }

    fn answer(self, result: Result<Tagged<Distribution>>) {
        // The object may have stopped waiting (its reconcile was dropped): nothing to tell.
        let _ = self.answer.send(result);
    }
}

impl EditOutcome {
    /// The written distribution, or why the edit was not written. An edit whose writer went
    /// away before writing it (a dropped batch leader) fails as transient: try again.
    pub(super) async fn wait(self, id: &str) -> Result<Tagged<Distribution>> {
        self.0.await.unwrap_or_else(|_| {
            Err(CloudFrontError::new(
                "UpdateDistribution",
                ErrorKind::Transient,
                "BatchAbandoned",
                format!("the batched update of distribution {id} was abandoned; try again"),
            ))
        })
    }
}

/// Writes several objects' edits of one distribution with one read-modify-write: each edit
/// (all of its changes or none) is applied in turn to the distribution as read, starting from
/// the first base an edit brought or a fresh read. An edit that no longer applies is answered
/// with its own error and left out; the rest go out in one `UpdateDistribution` and are all
/// answered with its result. A stale ETag means a fresh read and another try, a few times.
pub(super) async fn write_together<C: CloudFront + ?Sized>(
    cloudfront: &C,
    id: &str,
    mut edits: Vec<PendingEdit>,
) {
    // The newest read or write of the distribution this client saw, else a read an object
    // brought: an object's read may predate the write just before this one.
    let known = cloudfront.known_distribution(id).map(|(_, d)| d);
    let mut base = known.or_else(|| edits.iter_mut().find_map(|e| e.base.take()));
    let mut stale = 0;
    loop {
        let current = match base.take() {
            Some(known) => known,
            None => match cloudfront.get_distribution(id).await {
                Ok(read) => read,
                Err(e) => return answer_all(edits, &Err(e)),
            },
        };
        let mut edited = current.value.clone();
        let mut accepted = Vec::new();
        for edit in edits {
            match apply(&edited, &edit.changes) {
                Ok(next) => {
                    edited = next;
                    accepted.push(edit);
                }
                Err(e) => edit.answer(Err(e)),
            }
        }
        if accepted.is_empty() {
            return;
        }
        let behaviors = touched(&edited, accepted.iter().flat_map(|e| &e.changes));
        match cloudfront
            .set_trusted_key_groups(id, &behaviors, &current.etag)
            .await
        {
            Err(e) if e.kind == ErrorKind::PreconditionFailed && stale < STALE_ETAG_RETRIES => {
                stale += 1;
                edits = accepted;
            }
            written => return answer_all(accepted, &written),
        }
    }
}

fn answer_all(edits: Vec<PendingEdit>, result: &Result<Tagged<Distribution>>) {
    for edit in edits {
        edit.answer(result.clone());
    }
}

/// Read-modify-write of one distribution's trust: `changes` applied to `base` (a read the
/// caller already has) or, when that is stale or absent, to a fresh read.
pub async fn read_modify_write<C: CloudFront + ?Sized>(
    cloudfront: &C,
    id: &str,
    changes: &[TrustChange],
    base: Option<Tagged<Distribution>>,
) -> Result<Tagged<Distribution>> {
    let (edit, outcome) = PendingEdit::new(changes, base);
    write_together(cloudfront, id, vec![edit]).await;
    outcome.wait(id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudfront::DeploymentStatus;

    fn trust(behavior: BehaviorSelector, groups: &[&str]) -> BehaviorTrust {
        BehaviorTrust {
            behavior,
            trusted_key_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    fn distribution(default: &[&str], images: &[&str]) -> Distribution {
        Distribution {
            id: "E1".into(),
            status: DeploymentStatus::Deployed,
            enabled: true,
            behaviors: vec![
                trust(BehaviorSelector::Default, default),
                trust(BehaviorSelector::PathPattern("/img/*".into()), images),
            ],
            active_trusted_key_groups: vec![],
        }
    }

    #[test]
    fn edits_of_several_objects_combine_on_the_current_trust() {
        let read = distribution(&["theirs"], &[]);
        let a = TrustChange::between(
            &trust(BehaviorSelector::Default, &["theirs"]),
            &trust(BehaviorSelector::Default, &["theirs", "kg-a"]),
        );
        // Planned by another object from the same read: it, too, only adds its own group.
        let b = TrustChange::between(
            &trust(BehaviorSelector::Default, &["theirs"]),
            &trust(BehaviorSelector::Default, &["theirs", "kg-b"]),
        );
        let changes = [a, b];
        let written = touched(&apply(&read, &changes).unwrap(), &changes);
        assert_eq!(
            written,
            [trust(
                BehaviorSelector::Default,
                &["theirs", "kg-a", "kg-b"]
            )]
        );
    }

    #[test]
    fn a_detach_planned_as_safe_is_refused_when_it_would_now_make_the_behavior_public() {
        let planned = TrustChange::between(
            &trust(BehaviorSelector::Default, &["theirs", "kg-a"]),
            &trust(BehaviorSelector::Default, &["theirs"]),
        );
        assert!(!planned.may_make_public);
        // Meanwhile "theirs" was removed: now kg-a is the only group.
        let error = apply(&distribution(&["kg-a"], &[]), &[planned]).unwrap_err();
        assert_eq!(error.kind, ErrorKind::PreconditionFailed);
        assert!(
            error.message.contains("would now make it public"),
            "{error}"
        );
        // A detach planned with the opt-in may.
        let allowed = TrustChange::between(
            &trust(BehaviorSelector::Default, &["kg-a"]),
            &trust(BehaviorSelector::Default, &[]),
        );
        let edited = apply(&distribution(&["kg-a"], &[]), &[allowed]).unwrap();
        assert_eq!(edited.behaviors[0], trust(BehaviorSelector::Default, &[]));
    }

    #[test]
    fn a_missing_behavior_and_a_full_one_are_named() {
        let add = |behavior| TrustChange {
            behavior,
            add: vec!["kg-a".into()],
            remove: vec![],
            may_make_public: false,
        };
        let gone = apply(
            &distribution(&[], &[]),
            &[add(BehaviorSelector::PathPattern("/video/*".into()))],
        )
        .unwrap_err();
        assert!(gone.message.contains("\"/video/*\""), "{gone}");
        let full = apply(
            &distribution(&["1", "2", "3", "4"], &[]),
            &[add(BehaviorSelector::Default)],
        )
        .unwrap_err();
        assert_eq!(full.kind, ErrorKind::QuotaExceeded);
    }
}
