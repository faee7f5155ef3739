//! A standby's exits (see `phase::standby`): quorum, the turn at a
//! vacancy, and placement's moves; with the seeds the fault suite found
//! there.

use super::*;

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
        vacancy_turn(&placement, &b, &live, &set(&["b", "c"]), ms(0), false),
        VacancyTurn::WaitUntil(ms(100))
    );
    assert_eq!(
        vacancy_turn(&placement, &b, &live, &set(&["b", "c"]), ms(100), false),
        VacancyTurn::Take
    );
    // c behind b's standby: not at its own turn (400 ms) ...
    assert_eq!(
        vacancy_turn(&placement, &c, &live, &set(&["b", "c"]), ms(400), false),
        VacancyTurn::WaitUntil(ms(5000))
    );
    // ... only past the timeout, for a standby ahead that hangs.
    assert_eq!(
        vacancy_turn(&placement, &c, &live, &set(&["b", "c"]), ms(5400), false),
        VacancyTurn::Take
    );
    // b runs no standby (or gave up its place): the grace alone, as before.
    assert_eq!(
        vacancy_turn(&placement, &c, &live, &set(&["c"]), ms(400), false),
        VacancyTurn::Take
    );
    // A standby on a node down (not live) does not hold anyone up.
    assert_eq!(
        vacancy_turn(
            &placement,
            &c,
            &set(&["c"]),
            &set(&["a", "c"]),
            ms(100),
            false
        ),
        VacancyTurn::Take
    );
    // Not live, or not listed: not in line.
    assert_eq!(
        vacancy_turn(&placement, &node("a"), &live, &set(&[]), ms(0), false),
        VacancyTurn::NotInLine
    );
    assert_eq!(
        vacancy_turn(&placement, &node("x"), &live, &set(&[]), ms(0), false),
        VacancyTurn::NotInLine
    );
}

/// With warm or synchronous standby, an empty standby (no checkpoint, and
/// the name had a holder) goes after the whole line: here `a`, restarted
/// at once after its crash, lets `b`, which keeps the replica, fail over
/// (fault seed 3823538645: `a` took the name from nothing and every call
/// the crashed holder had acknowledged was lost). Alone, it takes its turn.
#[test]
fn an_empty_standby_lets_one_with_the_state_fail_over_first() {
    let ms = Duration::from_millis;
    let placement = Placement::parse("a > b > c")
        .with_failover_delay(ms(100))
        .with_standby_grace(ms(300))
        .with_in_line_timeout(ms(5000));
    let set = |nodes: &[&str]| nodes.iter().map(|n| node(n)).collect::<BTreeSet<_>>();
    let live = set(&["a", "b", "c"]);
    let a = node("a");
    // Behind all three nodes, then its own rank: 100 + 300 * (3 + 0).
    assert_eq!(
        vacancy_turn(&placement, &a, &live, &set(&["a", "b", "c"]), ms(100), true),
        VacancyTurn::WaitUntil(ms(900))
    );
    assert_eq!(
        vacancy_turn(
            &placement,
            &a,
            &live,
            &set(&["a", "b", "c"]),
            ms(1000),
            true
        ),
        VacancyTurn::Take
    );
    // a leaves the standby group meanwhile (`placement`), so b, which
    // keeps the state, takes at its own turn (100 + 300 * 1), not after
    // the in-line timeout.
    assert_eq!(
        vacancy_turn(
            &placement,
            &node("b"),
            &live,
            &set(&["b", "c"]),
            ms(400),
            false
        ),
        VacancyTurn::Take
    );
    // Nobody else stands by: an empty standby takes its own turn.
    assert_eq!(
        vacancy_turn(&placement, &a, &live, &set(&["a"]), ms(100), true),
        VacancyTurn::Take
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

fn set(nodes: &[&str]) -> BTreeSet<NodeName> {
    nodes.iter().map(|n| node(n)).collect()
}

/// A drain hands a name to the first live node in priority order that does
/// not drain, up or down; the next ones wait their turn; a draining node's
/// standby never takes a name.
#[test]
fn a_draining_holder_is_left_to_the_first_eligible_node() {
    let placement = Placement::parse("a > b > c");
    let (a, b, c) = (node("a"), node("b"), node("c"));
    let drains_a = set(&["a"]);
    let eligible = set(&["b", "c"]);
    let holder_a = [(false, &a)];
    assert_eq!(
        move_now(
            &placement,
            &b,
            holder_a.into_iter(),
            &eligible,
            &drains_a,
            false
        ),
        MoveNow::Drain { rank: 0 }
    );
    assert_eq!(
        move_now(
            &placement,
            &c,
            holder_a.into_iter(),
            &eligible,
            &drains_a,
            false
        ),
        MoveNow::Drain { rank: 1 }
    );
    // Down the order too: c drains, a higher node a takes it (a hold does
    // not stop a drain).
    let drains_c = set(&["c"]);
    let holder_c = [(false, &c)];
    assert_eq!(
        move_now(
            &placement,
            &a,
            holder_c.into_iter(),
            &set(&["a", "b"]),
            &drains_c,
            true
        ),
        MoveNow::Drain { rank: 0 }
    );
    // The draining node's own standby stays, even above the holder.
    assert_eq!(
        move_now(
            &placement,
            &a,
            holder_c.into_iter(),
            &set(&["b"]),
            &set(&["a"]),
            false
        ),
        MoveNow::Stay
    );
}

/// Placement never takes a name back to a draining node, and a hold on
/// takeovers back keeps a returned node of higher priority from moving the
/// name again in the middle of a restart wave.
#[test]
fn no_takeover_back_to_a_draining_node_nor_while_held() {
    let placement = Placement::parse("a > b > c");
    let (a, b) = (node("a"), node("b"));
    let holder_b = [(false, &b)];
    let none = BTreeSet::new();
    assert_eq!(
        move_now(
            &placement,
            &a,
            holder_b.into_iter(),
            &set(&["a", "b"]),
            &none,
            false
        ),
        MoveNow::Placement
    );
    assert_eq!(
        move_now(
            &placement,
            &a,
            holder_b.into_iter(),
            &set(&["a", "b"]),
            &none,
            true
        ),
        MoveNow::Stay
    );
    assert_eq!(
        move_now(
            &placement,
            &a,
            holder_b.into_iter(),
            &set(&["b"]),
            &set(&["a"]),
            false
        ),
        MoveNow::Stay
    );
}
