//! Split-brain resolution: which of two holders of one name keeps it.
//!
//! After a partition heals, both sides may hold the name. Each holder that
//! sees another one (and gets no handover request from it within
//! `TakeoverConfig::conflict_grace`) asks the resolver for the winner; both
//! sides ask the same question and get the same answer. The loser is not
//! killed: it stops serving, forwards what reaches it, offers its state to
//! the winner (who may merge it, [`crate::TakeoverActor::merge`]) and retires.

use std::cmp::Ordering;
use std::fmt::Debug;

use crate::{Placement, RegistrationInfo};

/// Chooses the winner of a name conflict. It must be a pure function of its
/// inputs, symmetric in `a` and `b`, so that every node agrees.
pub trait ConflictResolver: Debug + Send + Sync + 'static {
    /// `Ordering::Greater` if `a` wins over `b`, `Less` if `b` wins. `Equal`
    /// only for the same registration.
    fn compare(
        &self,
        a: &RegistrationInfo,
        b: &RegistrationInfo,
        placement: Option<&Placement>,
    ) -> Ordering;
}

/// The default: the holder on the node of higher placement priority wins,
/// then the higher epoch, then the node whose stable name sorts last.
#[derive(Clone, Copy, Debug, Default)]
pub struct PriorityThenEpoch;

impl ConflictResolver for PriorityThenEpoch {
    fn compare(
        &self,
        a: &RegistrationInfo,
        b: &RegistrationInfo,
        placement: Option<&Placement>,
    ) -> Ordering {
        // Lower priority index is better; an unlisted node is worst.
        let prio = |r: &RegistrationInfo| {
            placement
                .and_then(|p| p.priority(&r.node))
                .unwrap_or(usize::MAX)
        };
        prio(b).cmp(&prio(a)).then_with(|| a.rank().cmp(&b.rank()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeName;

    fn reg(node: &str, epoch: u64) -> RegistrationInfo {
        RegistrationInfo {
            name: "n".into(),
            epoch,
            node: NodeName::new(node),
        }
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
    }
}
