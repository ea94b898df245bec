//! Staggered rotations: each key's scheduled rotation is placed, when the key becomes active,
//! so that it does not fall due together with the other rotations of its account.
//!
//! A rotation holds one public key more than its object's steady need from its next key's
//! publication until the old key has left the group: its [`Window`]. The account keeps one key
//! free for rotations ([`super::ROTATION_HEADROOM`]), so rotations whose windows overlap take
//! turns, and objects created together would fall due together and each wait for the turns
//! before it. Placing each rotation ahead of time avoids the queue rather than managing it:
//!
//! - a key's rotation is due at its activation plus the interval, as declared; [`place`]
//!   keeps that time when its window overlaps no other rotation of the account, and otherwise
//!   moves it **earlier**, to the latest time whose window is clear. A key is never kept past
//!   its interval: staggering only shortens the first lifetimes, after which rotations keep
//!   their spacing by themselves;
//! - it is never earlier than the operator's rotation floor after the activation, nor than a
//!   whole window after it (the object's last rotation deletes its old key first, so an object
//!   never holds two spare keys); when no clear time exists in between, the declared time
//!   stays and the rotation takes its turn in the queue as before;
//! - the advance is recorded with the key (`rotatesEarlyBy` in the keyring) and the time
//!   shown as `status.nextRotationTime`, so it is placed once and known in advance.
//!
//! Each account's windows are kept here in memory by the leader ([`Timeline`]), refreshed by
//! every reconcile of an object with an active key, so a new leader knows them again once it
//! has looked at each object. A window in the past is dropped; a deleted object's window stays
//! until then, which at worst places another rotation earlier than it needed to be.

use std::collections::HashMap;

use jiff::Timestamp;

/// The time a rotation holds a public key beyond its object's steady need: from its next
/// key's publication to the old key's deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Window {
    fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// The shape of one rotation's window around its due time `at`: `lead` before it (publishing
/// and deploying the next key), `tail` after it (the old key's grace, its removal's
/// deployment and its deletion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub lead: jiff::SignedDuration,
    pub tail: jiff::SignedDuration,
}

impl Shape {
    pub fn around(&self, at: Timestamp) -> Window {
        Window {
            start: at.saturating_sub(self.lead).unwrap_or(Timestamp::MIN),
            end: at.saturating_add(self.tail).unwrap_or(Timestamp::MAX),
        }
    }
}

/// The latest time in `earliest..=declared` whose window overlaps none of `others`; the
/// declared time when there is none (the rotation then takes its turn).
pub fn place(
    declared: Timestamp,
    earliest: Timestamp,
    shape: Shape,
    others: &[Window],
) -> Timestamp {
    // A clear time, if any, is the declared one or ends just where another window starts.
    let candidates = std::iter::once(declared).chain(
        others
            .iter()
            .filter_map(|w| w.start.saturating_sub(shape.tail).ok())
            .filter(|t| *t < declared),
    );
    candidates
        .filter(|t| *t >= earliest)
        .filter(|t| {
            let window = shape.around(*t);
            others.iter().all(|w| !window.overlaps(w))
        })
        .max()
        .unwrap_or(declared)
}

/// Each account's rotation windows, by object (`namespace/name`).
#[derive(Debug, Default)]
pub struct Timeline {
    accounts: HashMap<String, HashMap<String, Window>>,
}

impl Timeline {
    /// The windows of the account's other objects that have not ended by `now`.
    pub fn others(&mut self, account: &str, object: &str, now: Timestamp) -> Vec<Window> {
        let Some(windows) = self.accounts.get_mut(account) else {
            return Vec::new();
        };
        windows.retain(|_, w| w.end > now);
        windows
            .iter()
            .filter(|(o, _)| o.as_str() != object)
            .map(|(_, w)| *w)
            .collect()
    }

    /// Records the object's window if it overlaps no other's: `false` when another object
    /// took an overlapping one since `others` was read (place again).
    pub fn reserve(&mut self, account: &str, object: &str, window: Window) -> bool {
        let windows = self.accounts.entry(account.to_owned()).or_default();
        if windows
            .iter()
            .any(|(o, w)| o.as_str() != object && w.overlaps(&window))
        {
            return false;
        }
        windows.insert(object.to_owned(), window);
        true
    }

    /// Records the object's window as it is (one placed earlier, or kept after a restart).
    pub fn keep(&mut self, account: &str, object: &str, window: Window) {
        self.accounts
            .entry(account.to_owned())
            .or_default()
            .insert(object.to_owned(), window);
    }
}

#[cfg(test)]
mod tests {
    use jiff::{SignedDuration, Timestamp};

    use super::*;

    const SHAPE: Shape = Shape {
        lead: SignedDuration::from_secs(2),
        tail: SignedDuration::from_secs(5),
    };

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_000_000 + secs).unwrap()
    }

    #[test]
    fn a_rotation_alone_keeps_its_declared_time() {
        assert_eq!(place(at(60), at(1), SHAPE, &[]), at(60));
        // A window that ends before this one starts is no reason to move.
        assert_eq!(place(at(60), at(1), SHAPE, &[SHAPE.around(at(50))]), at(60));
    }

    #[test]
    fn a_rotation_that_would_overlap_moves_earlier_to_end_where_the_other_starts() {
        let other = SHAPE.around(at(60));
        let placed = place(at(61), at(1), SHAPE, &[other]);
        assert_eq!(
            placed,
            at(53),
            "its window [51, 58) ends where [58, 65) starts"
        );
        assert!(!SHAPE.around(placed).overlaps(&other));
    }

    #[test]
    fn objects_activated_together_are_spread_over_the_interval_and_none_is_late() {
        let mut timeline = Timeline::default();
        let mut placed = Vec::new();
        for n in 0..8 {
            let activated = at(n); // one a second, as first keys go live one after another
            let others = timeline.others("acct", &format!("team/o{n}"), activated);
            let t = place(at(n + 60), at(n + 2), SHAPE, &others);
            assert!(timeline.reserve("acct", &format!("team/o{n}"), SHAPE.around(t)));
            placed.push(t);
        }
        for (n, t) in placed.iter().enumerate() {
            assert!(
                *t <= at(n as i64 + 60),
                "rotation {n} placed after its interval"
            );
        }
        let windows: Vec<Window> = placed.iter().map(|t| SHAPE.around(*t)).collect();
        for (i, a) in windows.iter().enumerate() {
            for b in &windows[i + 1..] {
                assert!(!a.overlaps(b), "{a:?} overlaps {b:?}");
            }
        }
        // 7 s windows back to back before the first object's declared time; the last,
        // activated 7 s after the first, keeps its own, just after the first's window.
        assert_eq!(placed, [60, 53, 46, 39, 32, 25, 18, 67].map(at));
    }

    #[test]
    fn with_no_clear_time_after_the_floor_the_declared_time_stays() {
        let others = [SHAPE.around(at(60)), SHAPE.around(at(53))];
        assert_eq!(place(at(60), at(50), SHAPE, &others), at(60));
        assert_eq!(place(at(60), at(40), SHAPE, &others), at(46));
    }

    #[test]
    fn the_timeline_refuses_an_overlapping_reservation_and_forgets_windows_past() {
        let mut timeline = Timeline::default();
        assert!(timeline.reserve("acct", "a/x", SHAPE.around(at(60))));
        assert!(!timeline.reserve("acct", "b/y", SHAPE.around(at(62))));
        assert!(timeline.reserve("other-acct", "b/y", SHAPE.around(at(62))));
        // An object's own window never blocks it; a kept window is recorded as it is.
        assert!(timeline.reserve("acct", "a/x", SHAPE.around(at(61))));
        timeline.keep("acct", "b/y", SHAPE.around(at(62)));
        assert_eq!(
            timeline.others("acct", "a/x", at(0)),
            [SHAPE.around(at(62))]
        );
        assert_eq!(
            timeline.others("acct", "c/z", at(67)),
            [],
            "both have ended by 67"
        );
    }
}
