//! Which holders' replicas a state holds: the tenures it descends from and
//! how far into each.
//!
//! Why: a standby can keep a replica newer than the state a new holder
//! started from. Quorum mode shows it plainly: `a` holds and replicates
//! to `c` while `b`, just restarted and cut off from `a`, keeps nothing;
//! `a` crashes; `b` sees a majority (itself and `c`) and fails over with
//! an empty state. Every call `a` answered is in `c`'s replica and in no
//! state `b` serves. The replica's epoch fence does not catch this: `b`'s
//! epoch is newer than `a`'s. What does is to ask whether `b`'s state
//! holds `c`'s replica, and a state can answer that only if it says where
//! it came from.
//!
//! So the replicated envelope of a state (the window of answered calls)
//! carries its lineage: per holder epoch it descends from, the newest
//! replica of that epoch it holds. A holder notes its own with every
//! replica it makes; a standby notes the holder's with every replica it
//! stores. A standby whose replica a holder's state does not hold refuses
//! that holder's replicas and offers its own (`checkpoint::offer_stored`).

use serde::{Deserialize, Serialize};

use crate::registry::EPOCH_CEILING;
use crate::Epoch;

/// Tenures kept, at most: past it the oldest ones are forgotten, and
/// counted as held (`floor`). Why a bound: the envelope travels with
/// every whole state, and a name that moved a million times must not
/// carry a million entries. Why this many: a replica older than 64 moves
/// ago is one no holder since has kept; a standby that kept it through
/// all of them was cut off, and its offer would be a split brain's.
const KEPT: usize = 64;

/// See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lineage {
    /// `(holder epoch, newest replica of it held)`, by epoch, ascending.
    tenures: Vec<(Epoch, u64)>,
    /// Every epoch at or below this one counts as held: its entry was
    /// forgotten to keep the list bounded.
    floor: Epoch,
}

impl Lineage {
    /// The state holds replica `seq` of holder epoch `epoch` (and so every
    /// replica of it before).
    pub(crate) fn note(&mut self, epoch: Epoch, seq: u64) {
        if epoch <= self.floor {
            return;
        }
        match self.tenures.binary_search_by_key(&epoch, |(e, _)| *e) {
            Ok(i) => self.tenures[i].1 = self.tenures[i].1.max(seq),
            Err(i) => self.tenures.insert(i, (epoch, seq)),
        }
        self.trim();
    }

    /// Whether the state holds replica `seq` of holder epoch `epoch`.
    pub(crate) fn holds(&self, epoch: Epoch, seq: u64) -> bool {
        epoch <= self.floor
            || self
                .tenures
                .binary_search_by_key(&epoch, |(e, _)| *e)
                .is_ok_and(|i| self.tenures[i].1 >= seq)
    }

    /// Whether this state holds everything `other` holds below epoch
    /// `below` (a holder's own tenure starts there: what it made itself
    /// it may give up).
    pub(crate) fn holds_all(&self, other: &Lineage, below: Epoch) -> bool {
        other
            .tenures
            .iter()
            .filter(|(e, _)| *e < below)
            .all(|&(e, s)| self.holds(e, s))
    }

    /// After a merge: the state holds what either side held.
    pub(crate) fn absorb(&mut self, other: &Lineage) {
        for &(e, s) in &other.tenures {
            self.note(e, s);
        }
        // What the other side forgot it counts as held; so do we, or its
        // standbys would refuse the merged state for an entry it dropped.
        if other.floor > self.floor {
            self.floor = other.floor;
            self.tenures.retain(|(e, _)| *e > other.floor);
        }
    }

    /// A list from a peer may be longer or out of order, or name epochs no
    /// node could have taken: the wire bounds nothing. Keeps the newest
    /// `KEPT` up to the epoch ceiling, sorted, and a floor only where one
    /// can be: a floor rises only as entries are forgotten, so `KEPT`
    /// entries stand above it. Why: a forged floor or epoch near
    /// `u64::MAX` would count every replica as held, and no standby would
    /// ever refuse a holder that lacks its replica. Dropped, the standby
    /// may offer a replica the holder holds: a merge too many, not a loss.
    pub(crate) fn tidy(&mut self) {
        self.tenures.retain(|(e, _)| *e <= EPOCH_CEILING);
        self.tenures.sort_unstable();
        self.tenures.dedup_by(|b, a| {
            if a.0 == b.0 {
                a.1 = a.1.max(b.1);
                true
            } else {
                false
            }
        });
        let floor = self.floor;
        self.tenures.retain(|(e, _)| *e > floor);
        if self.tenures.len() < KEPT {
            self.floor = 0;
        }
        self.trim();
    }

    fn trim(&mut self) {
        while self.tenures.len() > KEPT {
            let (e, _) = self.tenures.remove(0);
            self.floor = self.floor.max(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_holds_what_it_noted_and_nothing_later() {
        let mut l = Lineage::default();
        l.note(1, 40);
        l.note(3, 2);
        assert!(l.holds(1, 40));
        assert!(l.holds(1, 7));
        assert!(!l.holds(1, 41), "a later replica of epoch 1");
        assert!(!l.holds(2, 1), "an epoch it does not descend from");
        assert!(l.holds(3, 0));
        l.note(1, 10);
        assert!(l.holds(1, 40), "notes only raise");
    }

    #[test]
    fn forgotten_tenures_count_as_held() {
        let mut l = Lineage::default();
        for e in 1..=(KEPT as u64 + 5) {
            l.note(e, 1);
        }
        assert_eq!(l.tenures.len(), KEPT);
        assert!(l.holds(3, u64::MAX), "forgotten: counted as held");
        assert!(!l.holds(KEPT as u64 + 5, 2));
        l.note(2, 9);
        assert_eq!(
            l.tenures.len(),
            KEPT,
            "an epoch below the floor is not noted"
        );
    }

    #[test]
    fn holds_all_leaves_out_the_holders_own_tenure() {
        let mut ours = Lineage::default();
        ours.note(1, 40);
        ours.note(2, 9);
        let mut theirs = Lineage::default();
        theirs.note(1, 55);
        assert!(theirs.holds_all(&ours, 2));
        assert!(!theirs.holds_all(&ours, u64::MAX));
        let mut short = Lineage::default();
        short.note(1, 30);
        assert!(
            !short.holds_all(&ours, 2),
            "it lacks replicas 31..40 of epoch 1"
        );
    }

    #[test]
    fn a_merge_holds_both_sides() {
        let mut a = Lineage::default();
        a.note(1, 40);
        a.note(4, 2);
        let mut b = Lineage::default();
        b.note(1, 55);
        b.note(3, 8);
        a.absorb(&b);
        assert!(a.holds(1, 55) && a.holds(3, 8) && a.holds(4, 2));
        assert!(!a.holds(4, 3));
    }

    #[test]
    fn forged_epochs_past_the_ceiling_are_dropped() {
        let mut l = Lineage {
            tenures: vec![(3, 1), (u64::MAX, 1)],
            floor: u64::MAX - 1,
        };
        l.tidy();
        assert_eq!(l.floor, 0, "a floor with no entries above it is forged");
        assert_eq!(l.tenures, vec![]);
        assert!(!l.holds(3, 1));
        let mut l = Lineage {
            tenures: vec![(3, 1), (EPOCH_CEILING + 1, 1)],
            floor: 0,
        };
        l.tidy();
        assert_eq!(l.tenures, vec![(3, 1)]);
    }

    #[test]
    fn a_hostile_list_is_sorted_merged_and_bounded() {
        let mut l = Lineage {
            tenures: (0..1000u64).rev().map(|e| (e % 300, e)).collect(),
            floor: 5,
        };
        l.tidy();
        assert_eq!(l.tenures.len(), KEPT);
        assert!(l.tenures.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(l.tenures.iter().all(|(e, _)| *e > 5));
        assert!(l.holds(299, 899) && !l.holds(299, 900));
    }
}
