//! Every stage's exits, without actors or clocks; and the seeds the fault
//! suite found (`tests/fault_schedules.rs`), each as the transitions it
//! exercised.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::resolver::PriorityThenEpoch;
use crate::{Claim, NewerLineage};

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

// ---- Standby exits --------------------------------------------------------

#[test]
fn quorum_needs_a_strict_majority_of_the_listed_nodes() {
    let (a, b, c) = (node("a"), node("b"), node("c"));
    let listed = [&a, &b, &c];
    assert!(majority(&listed, |n| *n != c));
    assert!(!majority(&listed, |n| *n == a));
    let (a2, b2) = (node("a"), node("b"));
    assert!(!majority(&[&a2, &b2], |n| *n == a2));
}

#[test]
fn a_standby_takes_over_from_a_holder_below_it() {
    let placement = Placement::parse("a > b > c");
    let (a, c) = (node("a"), node("c"));
    assert!(may_take_over(&placement, &a, [(false, &c)].into_iter()));
    // Not from a holder above us, nor from ourselves.
    assert!(!may_take_over(&placement, &c, [(false, &a)].into_iter()));
    assert!(!may_take_over(&placement, &a, [(true, &a)].into_iter()));
}

/// A vacant name: the first node in line takes it after `failover_delay`;
/// the next one waits a grace per node ahead without a standby of the
/// name, and for a node ahead that runs one it waits until that one acts
/// (a change wakes it), or `in_line_timeout` past its own turn.
#[test]
fn a_standby_takes_a_vacant_name_only_when_the_ones_ahead_will_not() {
    let ms = Duration::from_millis;
    let placement = Placement::parse("a > b > c")
        .with_failover_delay(ms(100))
        .with_standby_grace(ms(300))
        .with_in_line_timeout(ms(5000));
    let set = |nodes: &[&str]| nodes.iter().map(|n| node(n)).collect::<BTreeSet<_>>();
    let live = set(&["b", "c"]);
    let (b, c) = (node("b"), node("c"));
    // b is first among the live nodes: its turn comes after the delay.
    assert_eq!(
        vacancy_turn(&placement, &b, &live, &set(&["b", "c"]), ms(0)),
        VacancyTurn::WaitUntil(ms(100))
    );
    assert_eq!(
        vacancy_turn(&placement, &b, &live, &set(&["b", "c"]), ms(100)),
        VacancyTurn::Take
    );
    // c behind b's standby: not at its own turn (400 ms) ...
    assert_eq!(
        vacancy_turn(&placement, &c, &live, &set(&["b", "c"]), ms(400)),
        VacancyTurn::WaitUntil(ms(5000))
    );
    // ... only past the timeout, for a standby ahead that hangs.
    assert_eq!(
        vacancy_turn(&placement, &c, &live, &set(&["b", "c"]), ms(5400)),
        VacancyTurn::Take
    );
    // b runs no standby (or gave up its place): the grace alone, as before.
    assert_eq!(
        vacancy_turn(&placement, &c, &live, &set(&["c"]), ms(400)),
        VacancyTurn::Take
    );
    // A standby on a node down (not live) does not hold anyone up.
    assert_eq!(
        vacancy_turn(&placement, &c, &set(&["c"]), &set(&["a", "c"]), ms(100)),
        VacancyTurn::Take
    );
    // Not live, or not listed: not in line.
    assert_eq!(
        vacancy_turn(&placement, &node("a"), &live, &set(&[]), ms(0)),
        VacancyTurn::NotInLine
    );
    assert_eq!(
        vacancy_turn(&placement, &node("x"), &live, &set(&[]), ms(0)),
        VacancyTurn::NotInLine
    );
}

/// B9, seed 2113: an `a | c` split, `b` sees both sides hold. Taking over
/// from `c` made `a` win a conflict with `b`, `c` fail over again, and so
/// on: `b` must leave the split brain to heal.
#[test]
fn regression_b9_a_standby_between_two_holders_stays_put() {
    let placement = Placement::parse("a > b > c");
    let (a, b, c) = (node("a"), node("b"), node("c"));
    let members = [(false, &c), (false, &a)];
    assert!(!may_take_over(&placement, &b, members.into_iter()));
}

// ---- Pulling exits --------------------------------------------------------

#[test]
fn a_pull_waits_while_the_old_holder_is_in_view() {
    assert_eq!(pull_on_change(false, false, false), PullExit::Wait);
    assert_eq!(pull_on_change(true, true, false), PullExit::Wait);
}

#[test]
fn a_pull_whose_old_holder_is_gone_runs_as_a_failover() {
    assert_eq!(pull_on_change(true, false, false), PullExit::FailOver);
    assert_eq!(pull_timed_out(false, false), PullExit::FailOver);
}

#[test]
fn a_pull_that_times_out_while_the_old_holder_lives_rolls_back() {
    assert_eq!(pull_timed_out(true, false), PullExit::AbortTimedOut);
    assert_eq!(pull_timed_out(false, true), PullExit::AbortTimedOut);
}

/// B5, seed 1302: the old holder won a conflict and re-registered (its old
/// registration left); the puller took that for a death and became a second
/// holder for good. A re-registration rolls the pull back.
#[test]
fn regression_b5_an_old_holder_that_re_registered_is_not_dead() {
    assert_eq!(
        pull_on_change(true, false, true),
        PullExit::AbortReRegistered
    );
}

#[test]
fn a_failover_out_of_a_pull_names_the_newest_holder_below_us() {
    let from = reg(3, "a");
    let me = reg(5, "b");
    // The holder we pulled from was replaced while our request was lost.
    assert_eq!(lost_with(Some(&reg(4, "c")), Some(&me), &from), reg(4, "c"));
    // One above us stole the name from us: it never had that state.
    assert_eq!(lost_with(Some(&reg(6, "c")), Some(&me), &from), from);
    // An older one than the holder we pulled from is not it either.
    assert_eq!(lost_with(Some(&reg(2, "c")), Some(&me), &from), from);
    assert_eq!(lost_with(None, Some(&me), &from), from);
}

#[test]
fn state_parts_must_come_in_order() {
    assert_eq!(check_part(None, 0, 10, 4, 100), Ok(()));
    assert_eq!(check_part(Some((10, 4)), 4, 10, 6, 100), Ok(()));
    // A gap, a repeat, another total, an empty part, past the end.
    assert!(matches!(
        check_part(None, 4, 10, 4, 100),
        Err(StateCodecErr::Decode(_))
    ));
    assert!(matches!(
        check_part(Some((10, 4)), 0, 10, 4, 100),
        Err(StateCodecErr::Decode(_))
    ));
    assert!(matches!(
        check_part(Some((10, 4)), 4, 12, 4, 100),
        Err(StateCodecErr::Decode(_))
    ));
    assert!(matches!(
        check_part(None, 0, 10, 0, 100),
        Err(StateCodecErr::Decode(_))
    ));
    assert!(matches!(
        check_part(Some((10, 8)), 8, 10, 4, 100),
        Err(StateCodecErr::Decode(_))
    ));
}

#[test]
fn a_state_over_the_limit_is_refused_before_any_part_is_kept() {
    assert_eq!(
        check_part(None, 0, 1000, 10, 100),
        Err(StateCodecErr::TooLarge {
            bytes: 1000,
            max: 100
        })
    );
}

/// B8, seed 21766: a pull gave up as a failover; its state request, held on
/// the link, reached the old holder after the heal, and its state came late.
/// The old holder must be told to serve again, not left retiring.
#[test]
fn regression_b8_a_late_state_sends_the_old_holder_back_to_serving() {
    let (me, old) = (reg(4, "a"), reg(3, "b"));
    assert_eq!(
        late_state_owner(Some(&me), Some(&old), 4, true),
        Some(old.clone())
    );
    // Not for another pull of ours, nor for a refusal, nor if we never gave up.
    assert_eq!(late_state_owner(Some(&me), Some(&old), 2, true), None);
    assert_eq!(late_state_owner(Some(&me), Some(&old), 4, false), None);
    assert_eq!(late_state_owner(Some(&me), None, 4, true), None);
}

// ---- Holder exits ---------------------------------------------------------

#[test]
fn a_holder_grants_its_state_only_to_a_newer_registration_of_its_name() {
    let newer = reg(5, "b");
    assert!(grants_state(true, "counter", Some(4), 4, &newer));
    assert!(!grants_state(false, "counter", Some(4), 4, &newer));
    assert!(!grants_state(true, "counter", Some(3), 4, &newer));
    assert!(!grants_state(true, "other", Some(4), 4, &newer));
    assert!(!grants_state(true, "counter", Some(5), 5, &newer));
}

#[test]
fn a_registration_above_ours_is_a_takeover_or_a_rival() {
    assert!(ranks_above(Some(&reg(5, "b")), &reg(4, "a")));
    assert!(ranks_above(Some(&reg(4, "b")), &reg(4, "a")));
    assert!(!ranks_above(Some(&reg(4, "a")), &reg(4, "a")));
    assert!(!ranks_above(None, &reg(4, "a")));
}

#[test]
fn the_conflict_rule_is_the_resolvers_strict_answer() {
    let placement = Placement::parse("a > b");
    let (a, b) = (Claim::new(reg(3, "a"), 0), Claim::new(reg(5, "b"), 0));
    let r = PriorityThenEpoch;
    assert_eq!(verdict(&r, &a, &b, Some(&placement)), Verdict::Win);
    assert_eq!(verdict(&r, &b, &a, Some(&placement)), Verdict::Yield);
    // Both sides reach the same conclusion.
    assert_ne!(verdict(&r, &a, &b, None), verdict(&r, &b, &a, None));
}

/// Issue 10, item 3: the preferred holder hung (it started `Normal`), `b`
/// failed over at epoch 2 and served. With the default resolver both sides
/// agree that `b`'s newer lineage keeps the name, although `a` ranks first
/// in placement; with `PriorityThenEpoch` `a` would win and the default
/// merge would drop what `b` acknowledged.
#[test]
fn the_default_verdict_keeps_the_failover_holders_lineage() {
    let placement = Placement::parse("a > b > c");
    let hung = Claim::new(reg(1, "a"), lineage_of(&StartType::Normal, Some(1)));
    let failover = StartType::Failover {
        from: NodeName::new("a"),
        checkpoint: None,
    };
    let b = Claim::new(reg(2, "b"), lineage_of(&failover, Some(2)));
    let r = NewerLineage;
    assert_eq!(verdict(&r, &b, &hung, Some(&placement)), Verdict::Win);
    assert_eq!(verdict(&r, &hung, &b, Some(&placement)), Verdict::Yield);
    assert_eq!(
        verdict(&PriorityThenEpoch, &hung, &b, Some(&placement)),
        Verdict::Win
    );
}

/// Issue 10, item 3 (second way): a preferred node restarted, found the
/// name vacant and registered `Normal` at a higher epoch beside the live
/// holder. It loses on both sides.
#[test]
fn a_restarted_normal_instance_loses_to_the_live_holder() {
    let placement = Placement::parse("a > b > c");
    let takeover = StartType::Takeover {
        from: NodeName::new("a"),
    };
    let live = Claim::new(reg(4, "b"), lineage_of(&takeover, Some(4)));
    let restarted = Claim::new(reg(6, "a"), lineage_of(&StartType::Normal, Some(6)));
    let r = NewerLineage;
    assert_eq!(
        verdict(&r, &restarted, &live, Some(&placement)),
        Verdict::Yield
    );
    assert_eq!(
        verdict(&r, &live, &restarted, Some(&placement)),
        Verdict::Win
    );
}

/// A holder's lineage is its takeover's or failover's epoch, 0 for a
/// `Normal` start.
#[test]
fn lineage_is_the_epoch_that_installed_the_state() {
    assert_eq!(lineage_of(&StartType::Normal, Some(7)), 0);
    let t = StartType::Takeover {
        from: NodeName::new("a"),
    };
    assert_eq!(lineage_of(&t, Some(7)), 7);
    assert_eq!(lineage_of(&t, None), 0);
}

/// The rival is the highest-ranked other registration, not the
/// predecessor we took over from nor a loser we merged.
#[test]
fn the_rival_skips_handover_partners() {
    let (old, loser, top) = (reg(2, "a"), reg(3, "c"), reg(5, "b"));
    let all = [old.clone(), loser.clone(), top.clone()];
    assert_eq!(rival(all.iter(), None, None), Some(&top));
    assert_eq!(rival(all.iter(), Some(&top), None), Some(&loser));
    assert_eq!(rival(all.iter(), Some(&top), Some(&loser)), Some(&old));
    assert_eq!(rival([old.clone()].iter(), Some(&old), None), None);
}

/// A claim is decided once; an answer is sent only when asked (so two
/// holders never ping-pong claims); a claim from a second rival waits while
/// we wait for the first one's merge.
#[test]
fn a_rival_claim_is_decided_once() {
    let (me, x, y) = (reg(4, "a"), reg(5, "b"), reg(6, "c"));
    let step = |claim: &RegistrationInfo, current, reachable| {
        on_rival_claim(claim, "counter", Some(&me), None, current, reachable)
    };
    assert_eq!(step(&x, None, true), RivalStep::Decide);
    assert_eq!(step(&x, None, false), RivalStep::Ignore);
    assert_eq!(step(&x, Some((&x, false, false)), true), RivalStep::Decide);
    assert_eq!(
        step(&x, Some((&x, true, true)), true),
        RivalStep::AnswerOnly
    );
    assert_eq!(step(&y, Some((&x, true, true)), true), RivalStep::Busy);
    assert_eq!(step(&y, Some((&x, false, false)), true), RivalStep::Decide);
    assert_eq!(step(&me, None, true), RivalStep::Ignore);
    // The loser we merged claims again: it missed `MergeDone` and holds
    // again (seed 1506719230), so it is a rival once more; out of view it
    // waits until it is back.
    assert_eq!(
        on_rival_claim(&x, "counter", Some(&me), Some(&x), None, true),
        RivalStep::MergedResumed
    );
    assert_eq!(
        on_rival_claim(&x, "counter", Some(&me), Some(&x), None, false),
        RivalStep::Ignore
    );
    assert_eq!(
        on_rival_claim(&x, "other", Some(&me), None, None, true),
        RivalStep::Ignore
    );
    assert_eq!(
        on_rival_claim(&x, "counter", None, None, None, true),
        RivalStep::Ignore
    );
}

#[test]
fn a_rival_that_unregistered_cleanly_did_not_die() {
    let rival = reg(5, "b");
    let clean = RegistryEvent::Unregistered {
        info: rival.clone(),
        reason: LeaveReason::Unregistered,
    };
    assert!(!rival_died(&clean, Some(&rival), false));
    let died = RegistryEvent::Unregistered {
        info: rival.clone(),
        reason: LeaveReason::InstanceDied,
    };
    assert!(rival_died(&died, Some(&rival), false));
    assert!(!rival_died(&died, None, false));
    let other = RegistryEvent::Unregistered {
        info: reg(6, "c"),
        reason: LeaveReason::InstanceDied,
    };
    assert!(!rival_died(&other, Some(&rival), false));
}

/// Seed 1208702206: a holder whose yield timed out holds again, and its
/// rival died behind an undetected partition; it learns of it only when the
/// rival's node restarts (its old registrations leave as `NodeDown`).
#[test]
fn regression_1208702206_a_rival_gone_with_its_node_died() {
    let rival = reg(5, "a");
    let down = RegistryEvent::NodeDown(node("a"));
    assert!(rival_died(&down, Some(&rival), false));
    // Its node is down in our view, yet the rival still resolves: not gone.
    assert!(!rival_died(&down, Some(&rival), true));
    assert!(!rival_died(
        &RegistryEvent::NodeDown(node("c")),
        Some(&rival),
        false
    ));
}

// ---- Retiring exits -------------------------------------------------------

/// B6, seed 133: the `HandoverDone` was lost on an undetected partition.
/// The old holder asks its successor again, and the successor, which
/// installed that state, confirms once more.
#[test]
fn regression_b6_a_lost_handover_done_is_asked_for_again() {
    assert_eq!(whom_to_ask(true, false), Ask::Successor);
    let (old, successor) = (reg(3, "c"), reg(4, "a"));
    let took_over = (old.clone(), 4);
    assert_eq!(
        answer_query(Some(&took_over), &old, &successor, false),
        QueryAnswer::Done
    );
}

#[test]
fn a_retiring_holder_with_nobody_to_ask_decides_from_the_view() {
    assert_eq!(whom_to_ask(false, true), Ask::Newer);
    assert_eq!(whom_to_ask(false, false), Ask::Nobody);
}

/// B7, seed 36: the successor installed the state, served, and crashed
/// before its `HandoverDone` came; nobody newer holds. The old holder holds
/// again as a failover from it (reporting the loss), not as if the
/// takeover had failed.
#[test]
fn regression_b7_a_successor_gone_unconfirmed_is_a_failover() {
    let successor = reg(4, "b");
    assert_eq!(
        after_successor_left(&successor, None, true),
        RetireExit::ResumeAsFailover
    );
    // The top registration is the successor's or older: nobody newer.
    assert_eq!(
        after_successor_left(&successor, Some(&reg(3, "a")), true),
        RetireExit::ResumeAsFailover
    );
}

/// Seeds 3373128272 and 3373116214: the successor rolled back and stole
/// again; it left cleanly with a newer holder in view. Taking that for a
/// handover lost the state: the old holder asks the newer holder instead.
#[test]
fn regression_3373128272_a_newer_holder_is_asked_not_trusted() {
    let (successor, newer) = (reg(10, "a"), reg(13, "a"));
    assert_eq!(
        after_successor_left(&successor, Some(&newer), true),
        RetireExit::AskNewer(newer)
    );
    // Without a registration of our own we cannot ask.
    assert_eq!(
        after_successor_left(&successor, Some(&reg(13, "a")), false),
        RetireExit::ResumeAsFailover
    );
}

/// Issue 10, item 6: the successor's clean departure overtook its
/// `HandoverAborted` (a state that does not decode). With nothing newer in
/// view or ever seen, it rolled back: the old holder serves on under its own
/// epoch instead of resuming as a failover. A departure that is not clean,
/// or a newer registration (now or seen before), still means it may have
/// served.
#[test]
fn a_clean_departure_of_the_successor_is_a_rollback() {
    let (me, successor, newer) = (reg(9, "b"), reg(10, "a"), reg(11, "c"));
    assert!(successor_rolled_back(
        &successor,
        true,
        Some(&me),
        Some(&me)
    ));
    assert!(successor_rolled_back(&successor, true, None, None));
    assert!(!successor_rolled_back(
        &successor,
        false,
        Some(&me),
        Some(&me)
    ));
    assert!(!successor_rolled_back(
        &successor,
        true,
        Some(&newer),
        Some(&me)
    ));
    assert!(!successor_rolled_back(
        &successor,
        true,
        Some(&me),
        Some(&newer)
    ));
}

/// Seed 3373122513: `b` gave its pull from `c` up as a failover, then
/// handed the name to `a`. Asked by `c` about `b`, `a` (which took over
/// from `b`, not from `c`) must not confirm: only the successor itself can.
#[test]
fn regression_3373122513_only_the_successor_confirms() {
    let (c, b) = (reg(3, "c"), reg(5, "b"));
    let a_took_over = (b.clone(), 7);
    assert_eq!(
        answer_query(Some(&a_took_over), &c, &b, false),
        QueryAnswer::Unknown
    );
    assert_eq!(answer_query(None, &c, &b, false), QueryAnswer::Unknown);
    // A newer instance still pulling says nothing; its pull ends by itself.
    assert_eq!(answer_query(None, &c, &b, true), QueryAnswer::Silent);
}

#[test]
fn handover_unknown_ends_retiring_only_for_our_successor_once_gone() {
    let successor = reg(4, "b");
    let newer = reg(6, "c");
    assert!(unknown_ends_retiring(
        &successor,
        &successor,
        Some(&newer),
        false
    ));
    assert!(unknown_ends_retiring(&successor, &successor, None, false));
    assert!(!unknown_ends_retiring(
        &successor,
        &successor,
        Some(&newer),
        true
    ));
    assert!(!unknown_ends_retiring(&successor, &successor, None, true));
    assert!(!unknown_ends_retiring(
        &successor,
        &reg(5, "b"),
        Some(&newer),
        false
    ));
}

/// Seed 2324595638: the successor itself says it has no state from our
/// handover (a fresh instance under the crashed puller's registration, on a
/// node that forgot its epochs): final, even though it is in view.
#[test]
fn regression_2324595638_the_successors_own_unknown_ends_retiring() {
    let successor = reg(12, "c");
    assert!(unknown_ends_retiring(
        &successor,
        &successor,
        Some(&successor),
        true
    ));
    assert!(!unknown_ends_retiring(
        &successor,
        &reg(9, "c"),
        Some(&successor),
        true
    ));
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
