//! The phase machine's decisions, pure: no actor, no registry, no clock.
//!
//! Each function here decides one exit of one stage from facts the actor
//! read from its view (who resolves, who is registered, what we remember);
//! the role files execute the decision (send, register, steal, unregister,
//! serve, forward, publish, start a timer). Keeping the decisions here lets
//! [`tests`] check every stage's exits, and replay each seed the fault suite
//! ever found as a few lines, without actors or clocks.
//!
//! ```text
//!             go / placement                       state installed
//!   Standby ------------------> Pulling -----------------------------> Holder
//!    ^  ^ ^                       |  | old holder gone: failover          | ^  |
//!    |  | |   abort (timeout,     |  +----------------------------------->+ |  |
//!    |  | +-- refused, bad state) +                                       | |  |
//!    |  |                                   state request granted           | |  |
//!    |  |                     Retiring <------------------------------------+ |  |
//!    |  +--- HandoverDone ----+  |  aborted / successor lost: serve again ----+  |
//!    |                           +--------------------------------------------+  |
//!    |                              lost a conflict                             |
//!    |                        Yielding <-----------------------------------------+
//!    +------ MergeDone -------+  |  winner gone / no answer: serve again --> Holder
//! ```

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::time::Duration;

use crate::{
    Claim, ConflictResolver, Epoch, LeaveReason, NodeName, Phase, Placement, RegistrationInfo,
    RegistryEvent, StartType, StateCodecErr,
};

#[cfg(test)]
mod tests;

/// Every change of stage the runtime makes, `(from, to)`: the diagram
/// above as data. The actor checks each transition against it (in debug
/// builds, so every test and fault schedule does), which keeps the diagram,
/// this table and the code from drifting apart. An instance that handed
/// its state over (retired, or yielded to a split-brain winner) is a
/// standby again, ready for a takeover back; no stage ends the actor.
pub(super) const TRANSITIONS: [(Phase, Phase); 10] = [
    (Phase::Standby, Phase::Pulling),
    (Phase::Standby, Phase::Holder),
    (Phase::Pulling, Phase::Holder),
    (Phase::Pulling, Phase::Standby),
    (Phase::Holder, Phase::Retiring),
    (Phase::Holder, Phase::Yielding),
    (Phase::Retiring, Phase::Holder),
    (Phase::Yielding, Phase::Holder),
    (Phase::Retiring, Phase::Standby),
    (Phase::Yielding, Phase::Standby),
];

/// Whether the phase machine has a transition from `from` to `to`.
pub(super) fn may_enter(from: Phase, to: Phase) -> bool {
    TRANSITIONS.contains(&(from, to))
}

/// The runtime's timers. Each fires as a message carrying the epoch it was
/// started under, so a timer of an earlier stage or epoch is recognised and
/// dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// A pull waits `pull_timeout` for the old holder's state.
    Pull,
    /// A holder waits `conflict_grace` for a rival's state request.
    Conflict,
    /// A holder checkpoints every `CheckpointPolicy::every`.
    Checkpoint,
    /// A split-brain loser waits `pull_timeout` for `MergeDone`.
    Yield,
    /// A retiring holder asks again every `pull_timeout` (keyed by the
    /// successor's epoch).
    Retire,
}

/// What a timer is checked against: the instance's phase, its epoch, the
/// successor's epoch while it retires, whether a rival is suspected.
#[derive(Clone, Copy, Debug)]
pub(super) struct TimerView {
    pub(super) phase: Phase,
    pub(super) epoch: Option<Epoch>,
    pub(super) successor: Option<Epoch>,
    pub(super) suspect: bool,
}

/// The one guard for stale timers: whether `timer`, started under `fired`,
/// still belongs to the stage the instance is in.
pub(super) fn timer_current(timer: Timer, now: TimerView, fired: Epoch) -> bool {
    let current = match (timer, now.phase) {
        (Timer::Pull, Phase::Pulling)
        | (Timer::Checkpoint, Phase::Holder)
        | (Timer::Yield, Phase::Yielding) => now.epoch,
        (Timer::Conflict, Phase::Holder) if now.suspect => now.epoch,
        (Timer::Retire, Phase::Retiring) => now.successor,
        _ => None,
    };
    current == Some(fired)
}

/// What becomes of one of the instance's own messages (see
/// [`crate::TakeoverActor::Info`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum InfoFate {
    /// The holder serves, in the info's tenure: handle it.
    Handle,
    /// The holder holds its calls, in the info's tenure: keep it with them.
    Hold,
    /// Sent in a tenure that ended (or on an instance that never held).
    DropStale,
    /// Its tenure goes on, but the state is on its way to another instance
    /// (retiring, yielding).
    DropNotServing,
}

/// The one decision on an info: `tenure` is the instance's current one,
/// `sent_in` the info's, `serving` whether the holder may answer now.
pub(super) fn info_fate(
    tenure: Option<Epoch>,
    sent_in: Epoch,
    phase: Phase,
    serving: bool,
) -> InfoFate {
    if tenure != Some(sent_in) {
        return InfoFate::DropStale;
    }
    match (phase, serving) {
        (Phase::Holder, true) => InfoFate::Handle,
        (Phase::Holder, false) => InfoFate::Hold,
        // A tenure is only current on a holder or on one whose state is
        // leaving; anything else is stale.
        (Phase::Retiring | Phase::Yielding, _) => InfoFate::DropNotServing,
        _ => InfoFate::DropStale,
    }
}

/// Remembers the newest holder seen, by rank: a lower-ranked registration
/// that shows again after the newest one died is a stale leftover, not the
/// holder whose state a failover loses.
pub(super) fn newer_holder(last: Option<&RegistrationInfo>, seen: &RegistrationInfo) -> bool {
    last.is_none_or(|last| seen.rank() > last.rank())
}

/// How a start on a vacant name must be reported: `Normal` only if no
/// holder of the name was ever seen; otherwise a `Failover` from the newest
/// holder seen, whose state is not here.
pub(super) fn vacant_start(last_holder: Option<&RegistrationInfo>) -> StartType {
    match last_holder {
        Some(h) => StartType::Failover {
            from: h.node.clone(),
            checkpoint: None,
        },
        None => StartType::Normal,
    }
}

// ---- Standby --------------------------------------------------------------

/// Whether a majority of the placement's nodes is live (quorum mode).
pub(super) fn majority(listed: &[&NodeName], live: impl Fn(&NodeName) -> bool) -> bool {
    let up = listed.iter().filter(|n| live(n)).count();
    up * 2 > listed.len()
}

/// Placement, on a standby that sees a holder: take the name over only when
/// every registration in view is on a node below ours. One on a node at or
/// above ours (a split brain we merely see both sides of) is not ours to
/// take over, and taking it would move the name round for as long as the
/// split lasts (B9). `members` are `(is it us, its node)`.
pub(super) fn may_take_over<'a>(
    placement: &Placement,
    me: &NodeName,
    mut members: impl Iterator<Item = (bool, &'a NodeName)>,
) -> bool {
    members.all(|(ours, node)| !ours && placement.outranks(me, node))
}

/// What a standby does about a vacant name ([`vacancy_turn`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VacancyTurn {
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
pub(super) fn vacancy_turn(
    placement: &Placement,
    me: &NodeName,
    live: &BTreeSet<NodeName>,
    standing_by: &BTreeSet<NodeName>,
    vacant_for: Duration,
) -> VacancyTurn {
    let order = placement.order(live);
    let Some(rank) = order.iter().position(|n| n == me) else {
        return VacancyTurn::NotInLine;
    };
    let own_turn = placement.failover_delay + placement.standby_grace * rank as u32;
    let ahead_in_line = order[..rank].iter().any(|n| standing_by.contains(n));
    let due = if ahead_in_line {
        own_turn + placement.in_line_timeout
    } else {
        own_turn
    };
    if vacant_for >= due {
        VacancyTurn::Take
    } else {
        VacancyTurn::WaitUntil(due - vacant_for)
    }
}

// ---- Pulling --------------------------------------------------------------

/// How a pull ends early.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PullExit {
    /// Keep pulling.
    Wait,
    /// The old holder lives but did not send its state in time: roll back.
    AbortTimedOut,
    /// The old holder's registration left, yet the instance is still
    /// registered under a newer epoch (it won a conflict): not a death,
    /// roll back (B5).
    AbortReRegistered,
    /// The old holder is gone: run as a failover, its state is lost.
    FailOver,
}

/// A registry change while pulling: `from_left` if it removed the old
/// holder's registration (or its node), `from_resolves` if that
/// registration is still in view, `old_registered` if the old holder's
/// instance holds any registration of the name.
pub(super) fn pull_on_change(
    from_left: bool,
    from_resolves: bool,
    old_registered: bool,
) -> PullExit {
    if !from_left || from_resolves {
        PullExit::Wait
    } else if old_registered {
        PullExit::AbortReRegistered
    } else {
        PullExit::FailOver
    }
}

/// The pull timer fired.
pub(super) fn pull_timed_out(from_resolves: bool, old_registered: bool) -> PullExit {
    if from_resolves || old_registered {
        PullExit::AbortTimedOut
    } else {
        PullExit::FailOver
    }
}

/// Whose state a failover out of a pull loses: the newest holder seen below
/// our own registration, which may not be the one we pulled from (it may
/// have been replaced while our request was lost). One above ours stole the
/// name from us and never had that state.
pub(super) fn lost_with(
    last_holder: Option<&RegistrationInfo>,
    mine: Option<&RegistrationInfo>,
    from: &RegistrationInfo,
) -> RegistrationInfo {
    match (last_holder, mine) {
        (Some(h), Some(me)) if h.rank() < me.rank() && h.rank() >= from.rank() => h.clone(),
        _ => from.clone(),
    }
}

/// Checks one part of a big state against what came so far (`got`: the
/// announced total and the bytes received). Parts come in order; one that
/// does not continue the others is an error, which aborts the pull.
pub(super) fn check_part(
    got: Option<(u64, u64)>,
    offset: u64,
    total: u64,
    len: usize,
    max: usize,
) -> Result<(), StateCodecErr> {
    let size = usize::try_from(total).unwrap_or(usize::MAX);
    if size > max {
        return Err(StateCodecErr::TooLarge { bytes: size, max });
    }
    let continues = match got {
        None => offset == 0,
        Some((t, received)) => t == total && received == offset,
    };
    let end = offset.checked_add(len as u64);
    if !continues || len == 0 || end.is_none_or(|end| end > total) {
        return Err(StateCodecErr::Decode(format!(
            "a state part at {offset} of {total} bytes does not continue the parts received"
        )));
    }
    Ok(())
}

/// A state for a pull that already ended. If we gave that pull up as a
/// failover, the old holder sent its state and now forwards to us, waiting
/// for a `HandoverDone` that will not come: returns the old holder, to be
/// told to serve again (B8). Two holders then meet and the conflict
/// resolution decides, instead of the old state being dropped.
pub(super) fn late_state_owner(
    mine: Option<&RegistrationInfo>,
    abandoned: Option<&RegistrationInfo>,
    requester_epoch: Epoch,
    sent: bool,
) -> Option<RegistrationInfo> {
    match (mine, abandoned) {
        (Some(me), Some(old)) if sent && me.epoch == requester_epoch => Some(old.clone()),
        _ => None,
    }
}

// ---- Holder ---------------------------------------------------------------

/// Whether a holder at `my_epoch` grants a state request made to the holder
/// at `holder_epoch`: only the holder asked, only for a newer registration
/// of its own name.
pub(super) fn grants_state(
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
pub(super) fn ranks_above(top: Option<&RegistrationInfo>, me: &RegistrationInfo) -> bool {
    top.is_some_and(|top| top.rank() > me.rank())
}

/// Whether a registry change says that the rival we hold calls for (a split
/// brain being healed) died before merging with us: whatever it served is
/// lost, and only we can say so. A clean unregistration is a handover or a
/// rollback, not a death; a node down counts only if the rival left our view.
pub(super) fn rival_died(
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
pub(super) fn lineage_of(start: &StartType, epoch: Option<Epoch>) -> Epoch {
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
pub(super) fn rival<'a>(
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
pub(super) enum Verdict {
    /// We keep it: hold calls until the loser's state is merged.
    Win,
    /// We stop, offer our state to the other and forward to it.
    Yield,
}

/// The conflict rule, in one place: the resolver compares both claims (ours
/// as we sent it, theirs as it came), the same way on every node, and only
/// a strict win keeps the name.
pub(super) fn verdict(
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
pub(super) enum RivalStep {
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
pub(super) fn on_rival_claim(
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

// ---- Retiring -------------------------------------------------------------

/// Whom a retiring holder asks whether its state arrived, each
/// `pull_timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ask {
    /// The successor itself: it is still in view.
    Successor,
    /// The newer holder we asked before, the successor gone.
    Newer,
    /// Nobody is left to ask: decide again from the view.
    Nobody,
}

/// The retire timer fired.
pub(super) fn whom_to_ask(successor_resolves: bool, asked_resolves: bool) -> Ask {
    if successor_resolves {
        Ask::Successor
    } else if asked_resolves {
        Ask::Newer
    } else {
        Ask::Nobody
    }
}

/// How a retiring holder goes on after its successor left before
/// confirming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum RetireExit {
    /// A newer registration holds: it may have taken the name over from the
    /// successor, stolen it from us, or failed over. Ask it.
    AskNewer(RegistrationInfo),
    /// Nobody newer: we cannot know whether the successor installed our
    /// state and served, so hold the name again at a new epoch as a
    /// failover from it (B7).
    ResumeAsFailover,
}

/// The successor left our view before its `HandoverDone` came (B7, seeds
/// 3373128272 and 3373116214). `registered`: we still hold our own
/// registration.
pub(super) fn after_successor_left(
    successor: &RegistrationInfo,
    top: Option<&RegistrationInfo>,
    registered: bool,
) -> RetireExit {
    match top {
        Some(top) if registered && top.rank() > successor.rank() => {
            RetireExit::AskNewer(top.clone())
        }
        _ => RetireExit::ResumeAsFailover,
    }
}

/// The successor left our view before its `HandoverDone` came, and before
/// its `HandoverAborted` did: whether it rolled its steal back. On a real
/// cluster the registry's change can overtake the successor's last message
/// (pg events go first), and taking a rollback for a vanished successor made
/// the old holder steal a new epoch and report a failover that never
/// happened. A rollback is a clean departure (`clean`) with nothing newer
/// than the successor in view now (`top`) or ever seen (`newest_seen`): a
/// successor that took over and served, then handed on, leaves a newer
/// registration behind, and we ask or resume as a failover then.
pub(super) fn successor_rolled_back(
    successor: &RegistrationInfo,
    clean: bool,
    top: Option<&RegistrationInfo>,
    newest_seen: Option<&RegistrationInfo>,
) -> bool {
    let not_newer = |r: Option<&RegistrationInfo>| r.is_none_or(|r| r.rank() <= successor.rank());
    clean && not_newer(top) && not_newer(newest_seen)
}

/// How an instance answers a `HandoverQuery` from `old` about `successor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum QueryAnswer {
    /// We are that successor and installed that state: `HandoverDone` again
    /// (B6: the first one was lost).
    Done,
    /// We hold no state from that handover. Only the successor itself can
    /// confirm, so a newer holder that took over from the successor says
    /// this too (seed 3373122513).
    Unknown,
    /// We are still pulling: our pull ends by itself and says so.
    Silent,
}

/// `took_over`: the last takeover we finished (the old holder, our epoch).
pub(super) fn answer_query(
    took_over: Option<&(RegistrationInfo, Epoch)>,
    old: &RegistrationInfo,
    successor: &RegistrationInfo,
    pulling: bool,
) -> QueryAnswer {
    if took_over.is_some_and(|(from, epoch)| from == old && *epoch == successor.epoch) {
        QueryAnswer::Done
    } else if pulling {
        QueryAnswer::Silent
    } else {
        QueryAnswer::Unknown
    }
}

/// A `HandoverUnknown` about `answered`, from the instance registered as
/// `answerer`, ends the retirement only if it is about our successor and
/// either the successor is gone or it answered itself: it has no state from
/// our handover, so it never confirms it. (Seed 2324595638: a node that
/// forgot its epochs restarted and registered its crashed puller's very
/// registration again; the old holder, seeing "its successor" alive, asked
/// it forever and never resumed, and its state never came back.) A newer
/// holder's answer while the successor is still in view does not count:
/// the successor may yet confirm.
pub(super) fn unknown_ends_retiring(
    successor: &RegistrationInfo,
    answered: &RegistrationInfo,
    answerer: Option<&RegistrationInfo>,
    successor_resolves: bool,
) -> bool {
    successor == answered && (!successor_resolves || answerer == Some(successor))
}

// ---- Yielding -------------------------------------------------------------

/// How a split-brain loser stops yielding (the winner left our view, or
/// never confirmed the merge).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum YieldExit {
    /// The winner is still there (it did not answer): serve again under our
    /// epoch, and check the conflict again.
    ServeAgain,
    /// The winner vanished: it may have merged our state and served since,
    /// all lost with it. Hold the name at a new epoch as a failover from it
    /// (seed 3373115778).
    HoldAgainAsFailover,
}

/// The yield ends.
pub(super) fn yield_ended(winner_resolves: bool) -> YieldExit {
    if winner_resolves {
        YieldExit::ServeAgain
    } else {
        YieldExit::HoldAgainAsFailover
    }
}

// ---- Warm standby ---------------------------------------------------------

/// Whether a checkpoint `(epoch, seq)` is newer than the one a standby has
/// (fencing: a standby never installs an older one).
pub(super) fn checkpoint_newer(have: Option<(Epoch, u64)>, epoch: Epoch, seq: u64) -> bool {
    have.is_none_or(|have| (epoch, seq) > have)
}
