//! Every stage's exits, without actors or clocks; and the seeds the fault
//! suite found (`tests/fault_schedules.rs`), each as the transitions it
//! exercised. Here the table, the timers, the infos and what an instance
//! remembers, and the short stages; one file a stage for the others.

mod holder;
mod pulling;
mod retiring;
mod standby;

use std::collections::BTreeSet;
use std::time::Duration;

use super::standby::may_take_over;
use super::*;
use crate::resolver::PriorityThenEpoch;
use crate::{Claim, LeaveReason, NewerLineage, NodeName, Placement, RegistryEvent, StateCodecErr};

fn node(n: &str) -> NodeName {
    NodeName::new(n)
}

fn reg(epoch: Epoch, n: &str) -> RegistrationInfo {
    RegistrationInfo {
        name: "counter".into(),
        epoch,
        node: node(n),
    }
}

fn view(phase: Phase, epoch: Option<Epoch>) -> TimerView {
    TimerView {
        phase,
        epoch,
        successor: None,
        suspect: false,
    }
}

// ---- the transition table -------------------------------------------------

#[test]
fn every_stage_has_its_exits_in_the_table_and_no_other() {
    use Phase::*;
    let exits = |from: Phase| -> Vec<Phase> {
        [Standby, Pulling, Holder, Retiring, Yielding]
            .into_iter()
            .filter(|to| may_enter(from, *to))
            .collect()
    };
    assert_eq!(exits(Standby), [Pulling, Holder]);
    assert_eq!(exits(Pulling), [Standby, Holder]);
    assert_eq!(exits(Holder), [Retiring, Yielding]);
    assert_eq!(exits(Retiring), [Standby, Holder]);
    assert_eq!(exits(Yielding), [Standby, Holder]);
}

/// An instance that handed its state over is a standby again (issue 12):
/// no stage of the machine ends in a stop, so a plain ractor supervisor
/// keeps its child across a takeover, and the old holder can take back.
#[test]
fn a_handed_over_instance_is_a_standby_again() {
    assert!(may_enter(Phase::Retiring, Phase::Standby));
    assert!(may_enter(Phase::Yielding, Phase::Standby));
    // Only through a pull or a vacant name does it hold again.
    assert!(!may_enter(Phase::Standby, Phase::Retiring));
    assert!(!may_enter(Phase::Standby, Phase::Yielding));
}

// ---- the instance's own messages ------------------------------------------

#[test]
fn an_info_is_handled_only_by_a_serving_holder_in_its_own_tenure() {
    assert_eq!(info_fate(Some(3), 3, Phase::Holder, true), InfoFate::Handle);
    // The holder holds its calls: the info waits with them.
    assert_eq!(info_fate(Some(3), 3, Phase::Holder, false), InfoFate::Hold);
    // A tick of an earlier tenure (the instance held before, handed over,
    // and holds again) or of a tenure that ended.
    assert_eq!(
        info_fate(Some(5), 3, Phase::Holder, true),
        InfoFate::DropStale
    );
    assert_eq!(
        info_fate(None, 3, Phase::Standby, false),
        InfoFate::DropStale
    );
    assert_eq!(
        info_fate(None, 3, Phase::Pulling, false),
        InfoFate::DropStale
    );
    // The state is on its way out: not applied to a state already sent.
    assert_eq!(
        info_fate(Some(3), 3, Phase::Retiring, false),
        InfoFate::DropNotServing
    );
    assert_eq!(
        info_fate(Some(3), 3, Phase::Yielding, false),
        InfoFate::DropNotServing
    );
}

// ---- timers ---------------------------------------------------------------

#[test]
fn a_timer_counts_only_in_its_own_stage_and_epoch() {
    assert!(timer_current(Timer::Pull, view(Phase::Pulling, Some(3)), 3));
    assert!(!timer_current(
        Timer::Pull,
        view(Phase::Pulling, Some(4)),
        3
    ));
    assert!(!timer_current(Timer::Pull, view(Phase::Holder, Some(3)), 3));
    assert!(timer_current(
        Timer::Checkpoint,
        view(Phase::Holder, Some(3)),
        3
    ));
    assert!(!timer_current(
        Timer::Checkpoint,
        view(Phase::Retiring, Some(3)),
        3
    ));
    assert!(timer_current(
        Timer::Yield,
        view(Phase::Yielding, Some(3)),
        3
    ));
    assert!(!timer_current(
        Timer::Yield,
        view(Phase::Holder, Some(3)),
        3
    ));
    assert!(!timer_current(Timer::Pull, view(Phase::Standby, None), 3));
}

#[test]
fn a_conflict_timer_counts_only_while_a_rival_is_suspected() {
    let mut v = view(Phase::Holder, Some(5));
    assert!(!timer_current(Timer::Conflict, v, 5));
    v.suspect = true;
    assert!(timer_current(Timer::Conflict, v, 5));
    assert!(!timer_current(Timer::Conflict, v, 4));
}

#[test]
fn a_retire_timer_is_keyed_by_the_successor_epoch() {
    let mut v = view(Phase::Retiring, Some(2));
    v.successor = Some(7);
    assert!(timer_current(Timer::Retire, v, 7));
    assert!(!timer_current(Timer::Retire, v, 2));
    v.phase = Phase::Holder;
    assert!(!timer_current(Timer::Retire, v, 7));
}

// ---- memories -------------------------------------------------------------

#[test]
fn the_newest_holder_seen_is_kept_by_rank() {
    assert!(newer_holder(None, &reg(1, "a")));
    assert!(newer_holder(Some(&reg(1, "a")), &reg(2, "a")));
    assert!(newer_holder(Some(&reg(2, "a")), &reg(2, "b")));
    // B3: a lower-ranked leftover never replaces the newest holder.
    assert!(!newer_holder(Some(&reg(4, "a")), &reg(3, "b")));
    assert!(!newer_holder(Some(&reg(4, "a")), &reg(4, "a")));
}

#[test]
fn a_vacant_name_starts_normal_only_if_no_holder_was_ever_seen() {
    assert_eq!(vacant_start(None), StartType::Normal);
    assert_eq!(
        vacant_start(Some(&reg(6, "b"))),
        StartType::Failover {
            from: node("b"),
            checkpoint: None
        }
    );
}

// ---- Yielding exits -------------------------------------------------------

#[test]
fn a_loser_whose_winner_lives_serves_again_under_its_epoch() {
    assert_eq!(yield_ended(true), YieldExit::ServeAgain);
}

/// Seed 3373115778: a split-brain loser held the name again when the
/// winner crashed, as if nothing was lost. It takes a new epoch and reports
/// a failover from the winner.
#[test]
fn regression_3373115778_a_vanished_winner_is_a_failover() {
    assert_eq!(yield_ended(false), YieldExit::HoldAgainAsFailover);
}

// ---- warm standby ---------------------------------------------------------

#[test]
fn a_standby_keeps_only_newer_checkpoints() {
    assert!(checkpoint_newer(None, 1, 1));
    assert!(checkpoint_newer(Some((3, 9)), 3, 10));
    assert!(checkpoint_newer(Some((3, 9)), 4, 1));
    assert!(!checkpoint_newer(Some((3, 9)), 3, 9));
    assert!(!checkpoint_newer(Some((3, 9)), 2, 50));
}
