//! A standby's exits, decided: whether it may take the name (quorum,
//! its turn at a vacancy behind the standbys ranked before it), and
//! whether placement moves the name to it now (a takeover to a better
//! placed node, or a failover from a holder gone).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::{NodeName, Placement};

/// Whether a majority of the placement's nodes is live (quorum mode).
pub(in crate::server) fn majority(listed: &[&NodeName], live: impl Fn(&NodeName) -> bool) -> bool {
    let up = listed.iter().filter(|n| live(n)).count();
    up * 2 > listed.len()
}

/// Placement, on a standby that sees a holder: take the name over only when
/// every registration in view is on a node below ours. One on a node at or
/// above ours (a split brain we merely see both sides of) is not ours to
/// take over, and taking it would move the name round for as long as the
/// split lasts (B9). `members` are `(is it us, its node)`.
pub(in crate::server) fn may_take_over<'a>(
    placement: &Placement,
    me: &NodeName,
    mut members: impl Iterator<Item = (bool, &'a NodeName)>,
) -> bool {
    members.all(|(ours, node)| !ours && placement.outranks(me, node))
}

/// What a standby does about a vacant name ([`vacancy_turn`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::server) enum VacancyTurn {
    /// Take it now.
    Take,
    /// Not our turn before this instant (a registry change may decide
    /// sooner: look again then).
    WaitUntil(Duration),
    /// We are not in line (not listed, or not live).
    NotInLine,
}

/// Whether `me` takes a vacant name, `vacant_for` after it saw it vacant,
/// with `live` the nodes up in its view and `standing_by` the nodes of
/// those that run a standby of the name (an instance in line for it).
///
/// Why the standbys: a fixed grace per rank alone let the next node in line
/// take a name the one ahead of it had already taken, but whose
/// registration had not reached it yet (a loaded node handles its
/// registry changes late; issue 11 saw every one of 500 names held twice).
/// So a node ahead that runs a standby is waited for until it takes the
/// name (its registration comes), gives up its place (its standby leaves)
/// or goes down, up to `in_line_timeout` past our own turn, in case its
/// instance hangs on a node still up. A node ahead without a standby of
/// the name may not run the server at all: each such one costs
/// `standby_grace`, as before.
///
/// `empty`: this standby keeps no checkpoint or replica (warm or
/// synchronous standby on). Another node standing by may keep the state of
/// a holder this one never saw or forgot (a preferred node restarted at
/// once, without a state directory, is empty and sees the name as never
/// held; its in-sync standby keeps every acknowledged call): an empty
/// standby goes after every node of the line, in its own order among the
/// empty ones, so that one with the state fails over first (this one takes
/// the name back later by placement, with the state). With nobody else
/// standing by it takes its own turn.
pub(in crate::server) fn vacancy_turn(
    placement: &Placement,
    me: &NodeName,
    live: &BTreeSet<NodeName>,
    standing_by: &BTreeSet<NodeName>,
    vacant_for: Duration,
    empty: bool,
) -> VacancyTurn {
    let order = placement.order(live);
    let Some(rank) = order.iter().position(|n| n == me) else {
        return VacancyTurn::NotInLine;
    };
    let others_standing_by = standing_by.iter().any(|n| n != me && order.contains(n));
    let due = if empty && others_standing_by {
        placement.failover_delay + placement.standby_grace * (order.len() + rank) as u32
    } else {
        let own_turn = placement.failover_delay + placement.standby_grace * rank as u32;
        let ahead_in_line = order[..rank].iter().any(|n| standing_by.contains(n));
        if ahead_in_line {
            own_turn + placement.in_line_timeout
        } else {
            own_turn
        }
    };
    if vacant_for >= due {
        VacancyTurn::Take
    } else {
        VacancyTurn::WaitUntil(due - vacant_for)
    }
}

/// Why a standby that sees a holder takes the name over, if it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::server) enum MoveNow {
    /// It stays a standby.
    Stay,
    /// The holder's node has lower priority than ours (a takeover back).
    Placement,
    /// The holder's node drains, and we are `rank`-th (from 0) in priority
    /// order among the live nodes that do not: the `rank`-th waits `rank`
    /// standby graces, in case the ones before it run no instance.
    Drain {
        /// Our place in line.
        rank: usize,
    },
}

/// Placement with drains and holds, on a standby that sees a holder.
/// `members` are `(is it us, its node)`, `eligible` the live nodes that do
/// not drain, `draining` the nodes that do, `held` whether takeovers back
/// are held.
///
/// A draining node's standby never takes a name (it is about to stop). A
/// draining holder is left for the first eligible node in priority order,
/// whatever its priority against the holder's: a drain moves a name down as
/// well as up. Every other registration in view must be below us or drain
/// too, for the same reason as in [`may_take_over`] (B9). A hold stops
/// takeovers back only: a drain must still move the name, or the node could
/// not stop.
pub(in crate::server) fn move_now<'a>(
    placement: &Placement,
    me: &NodeName,
    members: impl Iterator<Item = (bool, &'a NodeName)> + Clone,
    eligible: &BTreeSet<NodeName>,
    draining: &BTreeSet<NodeName>,
    held: bool,
) -> MoveNow {
    if draining.contains(me) {
        return MoveNow::Stay;
    }
    let holder_drains = members
        .clone()
        .last()
        .is_some_and(|(_, n)| draining.contains(n));
    if holder_drains {
        let others_below = members
            .clone()
            .all(|(ours, node)| !ours && (draining.contains(node) || placement.outranks(me, node)));
        return match placement.order(eligible).iter().position(|n| n == me) {
            Some(rank) if others_below => MoveNow::Drain { rank },
            _ => MoveNow::Stay,
        };
    }
    if !held && may_take_over(placement, me, members) {
        MoveNow::Placement
    } else {
        MoveNow::Stay
    }
}
