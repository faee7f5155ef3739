//! A retiring holder's exits (see `phase::retiring`): whom it asks, the
//! handover query and its answers; with the seeds the fault suite found
//! there.

use super::*;

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
