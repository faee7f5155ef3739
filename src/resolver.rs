//! Split-brain resolution: which of two holders of one name keeps it.
//!
//! After a partition heals (or a hung holder resumes beside the one that
//! failed over from it), both sides may hold the name. Each holder that
//! sees another one sends it a [`Claim`] (its registration and its
//! lineage); once both claims are known, both sides ask the resolver the
//! same question, with the same two claims, and get the same answer. The
//! loser is not killed: it stops serving, forwards what reaches it, offers
//! its state to the winner (who may merge it, [`crate::TakeoverActor::merge`])
//! and retires. The winner holds its calls until that offer is merged.

use std::cmp::Ordering;
use std::fmt::Debug;

use serde::{Deserialize, Serialize};

use crate::{Epoch, Placement, RegistrationInfo};

/// What one holder of a name tells a rival holder about itself.
///
/// Why a lineage: the registration's epoch alone cannot say whose state is
/// newer. A conflict winner re-registers under a new epoch without any new
/// state, and a node that restarted and found the name vacant registers
/// `Normal` with an empty state, also under a new epoch. The lineage is the
/// epoch of the takeover or failover the holder's state was installed by
/// (0 for an instance that started `Normal`): it changes only when state
/// moves or is recovered, never when a holder merely re-registers, so the
/// holder whose state descends from the latest takeover or failover has the
/// highest lineage.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Claim {
    /// The holder's registration.
    pub holder: RegistrationInfo,
    /// The epoch of the takeover or failover its state descends from; 0 if
    /// it started `Normal` and never received a state.
    pub lineage: Epoch,
}

impl Claim {
    /// The claim of the holder `holder` whose state descends from the
    /// takeover or failover at epoch `lineage` (0: started `Normal`).
    pub fn new(holder: RegistrationInfo, lineage: Epoch) -> Self {
        Self { holder, lineage }
    }
}

/// Chooses the winner of a name conflict. It must be a pure function of its
/// inputs, symmetric in `a` and `b`, so that every node agrees.
pub trait ConflictResolver: Debug + Send + Sync + 'static {
    /// `Ordering::Greater` if `a` wins over `b`, `Less` if `b` wins. `Equal`
    /// only for the same registration.
    fn compare(&self, a: &Claim, b: &Claim, placement: Option<&Placement>) -> Ordering;
}

/// Lower priority index is better; an unlisted node is worst.
fn priority(placement: Option<&Placement>, r: &RegistrationInfo) -> usize {
    placement
        .and_then(|p| p.priority(&r.node))
        .unwrap_or(usize::MAX)
}

/// The default: the newer lineage wins (the holder whose state descends
/// from the latest takeover or failover), so what the failover holder
/// acknowledged while the old one hung or was cut off is kept, and an
/// instance that started `Normal` with an empty state never wins against
/// one that received a state. Among equal lineages, the holder on the node
/// of higher placement priority wins, then the higher epoch, then the node
/// whose stable name sorts last. Placement still moves the name to the
/// preferred node afterwards, by an ordinary takeover, with its state.
#[derive(Clone, Copy, Debug, Default)]
pub struct NewerLineage;

impl ConflictResolver for NewerLineage {
    fn compare(&self, a: &Claim, b: &Claim, placement: Option<&Placement>) -> Ordering {
        a.lineage
            .cmp(&b.lineage)
            .then_with(|| PriorityThenEpoch.compare(a, b, placement))
    }
}

/// The default of earlier releases (still available): the holder on the node of higher placement
/// priority wins, then the higher epoch, then the node whose stable name
/// sorts last. It ignores lineages, so after a hang of the preferred
/// holder it drops everything the failover holder acknowledged meanwhile
/// (unless `merge` keeps it); choose it only if the preferred node's state
/// matters more than what the others acknowledged.
#[derive(Clone, Copy, Debug, Default)]
pub struct PriorityThenEpoch;

impl ConflictResolver for PriorityThenEpoch {
    fn compare(&self, a: &Claim, b: &Claim, placement: Option<&Placement>) -> Ordering {
        let (a, b) = (&a.holder, &b.holder);
        priority(placement, b)
            .cmp(&priority(placement, a))
            .then_with(|| a.rank().cmp(&b.rank()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeName;

    fn claim(node: &str, epoch: u64, lineage: u64) -> Claim {
        Claim::new(
            RegistrationInfo {
                name: "n".into(),
                epoch,
                node: NodeName::new(node),
            },
            lineage,
        )
    }

    fn reg(node: &str, epoch: u64) -> Claim {
        claim(node, epoch, 0)
    }

    /// Priority first, then epoch, then node; symmetric.
    #[test]
    fn priority_then_epoch_then_node() {
        let p = Placement::parse("a > b, c");
        let r = PriorityThenEpoch;
        assert_eq!(
            r.compare(&reg("a", 1), &reg("b", 9), Some(&p)),
            Ordering::Greater
        );
        assert_eq!(
            r.compare(&reg("b", 9), &reg("a", 1), Some(&p)),
            Ordering::Less
        );
        assert_eq!(
            r.compare(&reg("b", 2), &reg("c", 3), Some(&p)),
            Ordering::Less
        );
        assert_eq!(
            r.compare(&reg("c", 3), &reg("b", 3), Some(&p)),
            Ordering::Greater
        );
        assert_eq!(
            r.compare(&reg("x", 5), &reg("c", 1), Some(&p)),
            Ordering::Less
        );
        assert_eq!(r.compare(&reg("a", 1), &reg("b", 9), None), Ordering::Less);
        // Lineages do not count.
        assert_eq!(
            r.compare(&claim("a", 1, 0), &claim("b", 9, 9), Some(&p)),
            Ordering::Greater
        );
    }

    /// The hung preferred holder (started `Normal`, lineage 0) loses to the
    /// failover holder (lineage = its failover's epoch), whatever the
    /// priorities and epochs; both sides agree.
    #[test]
    fn the_newer_lineage_wins_over_priority() {
        let p = Placement::parse("a > b > c");
        let r = NewerLineage;
        let hung = claim("a", 1, 0);
        let failover = claim("b", 2, 2);
        assert_eq!(r.compare(&failover, &hung, Some(&p)), Ordering::Greater);
        assert_eq!(r.compare(&hung, &failover, Some(&p)), Ordering::Less);
        // A conflict winner re-registered at a high epoch keeps its lineage:
        // the epoch does not outweigh a newer failover.
        let rewon = claim("a", 9, 3);
        let newer = claim("c", 5, 5);
        assert_eq!(r.compare(&newer, &rewon, Some(&p)), Ordering::Greater);
        assert_eq!(r.compare(&rewon, &newer, Some(&p)), Ordering::Less);
    }

    /// A preferred node that restarted and registered `Normal` (lineage 0)
    /// beside a holder that received a state loses, though its epoch and its
    /// priority are higher.
    #[test]
    fn a_fresh_normal_start_never_wins_against_a_served_state() {
        let p = Placement::parse("a > b > c");
        let r = NewerLineage;
        let fresh = claim("a", 7, 0);
        let live = claim("b", 4, 4);
        assert_eq!(r.compare(&fresh, &live, Some(&p)), Ordering::Less);
        assert_eq!(r.compare(&live, &fresh, Some(&p)), Ordering::Greater);
    }

    /// Among equal lineages, priority decides, then the rank; the answer is
    /// antisymmetric and `Equal` only for the same claim.
    #[test]
    fn equal_lineages_fall_back_to_priority_then_rank() {
        let p = Placement::parse("a > b, c");
        let r = NewerLineage;
        assert_eq!(
            r.compare(&claim("a", 1, 0), &claim("b", 3, 0), Some(&p)),
            Ordering::Greater
        );
        assert_eq!(
            r.compare(&claim("c", 6, 4), &claim("b", 5, 4), Some(&p)),
            Ordering::Greater
        );
        let all = [
            claim("a", 1, 0),
            claim("b", 3, 0),
            claim("c", 6, 4),
            claim("b", 5, 4),
            claim("x", 8, 8),
        ];
        for x in &all {
            for y in &all {
                assert_eq!(
                    r.compare(x, y, Some(&p)),
                    r.compare(y, x, Some(&p)).reverse()
                );
                assert_eq!(r.compare(x, y, Some(&p)) == Ordering::Equal, x == y);
            }
        }
    }
}
