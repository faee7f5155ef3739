//! A holder's exits, decided: whether it grants a state request (a
//! takeover), and the split-brain decisions: who is a rival, the verdict
//! between two claims, and the step a rival's claim makes.

use std::cmp::Ordering;

use crate::{
    Claim, ConflictResolver, Epoch, LeaveReason, Placement, RegistrationInfo, RegistryEvent,
    StartType,
};

/// Whether a holder at `my_epoch` grants a state request made to the holder
/// at `holder_epoch`: only the holder asked, only for a newer registration
/// of its own name.
pub(in crate::server) fn grants_state(
    holding: bool,
    name: &str,
    my_epoch: Option<Epoch>,
    holder_epoch: Epoch,
    requester: &RegistrationInfo,
) -> bool {
    holding
        && my_epoch == Some(holder_epoch)
        && requester.name == name
        && requester.epoch > holder_epoch
}

/// Whether `top`, the newest registration in view, ranks above ours: a
/// takeover under way or a second holder.
pub(in crate::server) fn ranks_above(
    top: Option<&RegistrationInfo>,
    me: &RegistrationInfo,
) -> bool {
    top.is_some_and(|top| top.rank() > me.rank())
}

/// Whether a registry change says that the rival we hold calls for (a split
/// brain being healed) died before merging with us: whatever it served is
/// lost, and only we can say so. A clean unregistration is a handover or a
/// rollback, not a death; a node down counts only if the rival left our view.
pub(in crate::server) fn rival_died(
    event: &RegistryEvent,
    rival: Option<&RegistrationInfo>,
    rival_resolves: bool,
) -> bool {
    let Some(rival) = rival else {
        return false;
    };
    match event {
        RegistryEvent::Unregistered { info, reason } => {
            *reason != LeaveReason::Unregistered && info == rival
        }
        RegistryEvent::NodeDown(node) => *node == rival.node && !rival_resolves,
        _ => false,
    }
}

/// The lineage of a holder that starts holding with `start` under `epoch`:
/// the epoch of the takeover or failover that installed its state, or 0
/// for a `Normal` start (no state received). A takeover takes its own new
/// epoch rather than inheriting the old holder's lineage: epochs only grow,
/// so the holder whose state moved or was recovered last has the highest
/// lineage, and the takeover needs nothing on the wire. A conflict winner
/// that re-registers keeps its lineage (no new state came with the steal).
pub(in crate::server) fn lineage_of(start: &StartType, epoch: Option<Epoch>) -> Epoch {
    match start {
        StartType::Normal => 0,
        StartType::Takeover { .. } | StartType::Failover { .. } => epoch.unwrap_or(0),
    }
}

/// The rival a holder must settle with: the highest-ranked registration of
/// its name in view, among `others` (every registration that is not one of
/// ours), that is neither the predecessor it took over from (it retires
/// once it reads our `HandoverDone`) nor a loser it merged already (it
/// retires once it reads `MergeDone`).
pub(in crate::server) fn rival<'a>(
    others: impl Iterator<Item = &'a RegistrationInfo>,
    predecessor: Option<&RegistrationInfo>,
    merged: Option<&RegistrationInfo>,
) -> Option<&'a RegistrationInfo> {
    others
        .filter(|o| Some(*o) != predecessor && Some(*o) != merged)
        .max_by(|a, b| a.rank().cmp(&b.rank()))
}

/// Who keeps the name when two holders met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::server) enum Verdict {
    /// We keep it: hold calls until the loser's state is merged.
    Win,
    /// We stop, offer our state to the other and forward to it.
    Yield,
}

/// The conflict rule, in one place: the resolver compares both claims (ours
/// as we sent it, theirs as it came), the same way on every node, and only
/// a strict win keeps the name.
pub(in crate::server) fn verdict(
    resolver: &dyn ConflictResolver,
    ours: &Claim,
    theirs: &Claim,
    placement: Option<&Placement>,
) -> Verdict {
    if resolver.compare(ours, theirs, placement) == Ordering::Greater {
        Verdict::Win
    } else {
        Verdict::Yield
    }
}

/// What a holder does with a `Rival` claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::server) enum RivalStep {
    /// Not for us (another name, our own registration, a loser merged
    /// already, or a rival we cannot reach yet: it sends again).
    Ignore,
    /// We decided already: answer with our claim if asked, nothing more.
    AnswerOnly,
    /// The first claim from this rival: record it, answer if asked, decide.
    Decide,
    /// We are waiting for another loser's state: it sends again later.
    Busy,
    /// The loser we merged sends its claim again: it never read our
    /// `MergeDone` (lost on a partition), its yield timed out and it holds
    /// again. It is a rival once more: forget the merge and decide anew
    /// (seed 1506719230: ignored as the merged loser, it held its calls
    /// for good and the name never settled).
    MergedResumed,
}

/// `current`: the rival we have a conflict with, whether we have its claim,
/// whether we wait for a merge. `reachable`: its registration is in view.
pub(in crate::server) fn on_rival_claim(
    claim: &RegistrationInfo,
    name: &str,
    me: Option<&RegistrationInfo>,
    merged: Option<&RegistrationInfo>,
    current: Option<(&RegistrationInfo, bool, bool)>,
    reachable: bool,
) -> RivalStep {
    if claim.name != name || me.is_none_or(|me| me == claim) {
        return RivalStep::Ignore;
    }
    // A yielding loser sends no claim after its merge offer (its claims go
    // first, on the same link): one that comes later is from a loser that
    // holds again.
    if merged == Some(claim) {
        return if reachable {
            RivalStep::MergedResumed
        } else {
            RivalStep::Ignore
        };
    }
    match current {
        Some((other, true, _)) if other == claim => RivalStep::AnswerOnly,
        Some((other, _, true)) if other != claim => RivalStep::Busy,
        _ if !reachable => RivalStep::Ignore,
        _ => RivalStep::Decide,
    }
}
