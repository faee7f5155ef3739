//! A pull's exits (see `phase::pulling`): registry changes, the timeout,
//! state parts and a state that comes late; with the seeds the fault
//! suite found there.

use super::*;

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
