//! A holder's exits (see `phase::holder`): state requests granted, and
//! the split-brain decisions; with the seeds the fault suite found there.

use super::*;

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
