//! The phase machine's decisions, pure: no actor, no registry, no clock.
//!
//! Each function here decides one exit of one stage from facts the actor
//! read from its view (who resolves, who is registered, what we remember);
//! the role files execute the decision (send, register, steal, unregister,
//! serve, forward, publish, start a timer). Keeping the decisions here lets
//! [`tests`] check every stage's exits, and replay each seed the fault suite
//! ever found as a few lines, without actors or clocks.
//!
//! One file a stage's exits (`standby`, `pulling`, `holder`, `retiring`,
//! their functions named from here as `phase::…`); this file holds the
//! table of transitions, the timers, the infos, what an instance
//! remembers, and the short stages (yielding, warm standby).
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

use crate::{Epoch, Phase, RegistrationInfo, StartType};

mod holder;
mod pulling;
mod retiring;
mod standby;
#[cfg(test)]
mod tests;

pub(super) use self::holder::{
    grants_state, lineage_of, on_rival_claim, ranks_above, rival, rival_died, verdict, RivalStep,
    Verdict,
};
pub(super) use self::pulling::{
    check_part, late_state_owner, lost_with, pull_on_change, pull_timed_out, PullExit,
};
pub(super) use self::retiring::{
    after_successor_left, answer_query, successor_rolled_back, unknown_ends_retiring, whom_to_ask,
    Ask, QueryAnswer, RetireExit,
};
pub(super) use self::standby::{majority, move_now, vacancy_turn, MoveNow, VacancyTurn};

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
