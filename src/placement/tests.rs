use std::collections::BTreeSet;
use std::time::Duration;

use super::Placement;
use crate::NodeName;

fn live(nodes: &[&str]) -> BTreeSet<NodeName> {
    nodes.iter().map(NodeName::new).collect()
}

/// `>` separates priorities and `,` equal ones; whitespace does not matter.
#[test]
fn parses_groups() {
    let p = Placement::parse("a > b, c >d");
    assert_eq!(
        p.groups(),
        &[
            vec!["a".into()],
            vec!["b".into(), "c".into()],
            vec![NodeName::new("d")]
        ]
    );
    assert_eq!(p.priority(&"c".into()), Some(1));
    assert_eq!(p.priority(&"x".into()), None);
}

/// Only strictly higher priority outranks: equal nodes never displace each other.
#[test]
fn outranks_is_strict() {
    let p = Placement::parse("a > b, c");
    assert!(p.outranks(&"a".into(), &"b".into()));
    assert!(!p.outranks(&"b".into(), &"c".into()));
    assert!(!p.outranks(&"c".into(), &"b".into()));
    assert!(!p.outranks(&"b".into(), &"a".into()));
    assert!(p.outranks(&"c".into(), &"x".into()));
    assert!(!p.outranks(&"x".into(), &"c".into()));
}

/// The first live node waits the failover delay, each next one a grace more;
/// dead and unlisted nodes get no turn; equal ones are ordered by name.
#[test]
fn vacancy_waits_follow_priority() {
    let p = Placement::parse("a > c, b > d")
        .with_failover_delay(Duration::from_millis(100))
        .with_standby_grace(Duration::from_secs(1));
    let up = live(&["b", "c", "d", "x"]);
    assert_eq!(
        p.order(&up),
        vec![NodeName::new("b"), "c".into(), "d".into()]
    );
    assert_eq!(
        p.vacancy_wait(&"b".into(), &up),
        Some(Duration::from_millis(100))
    );
    assert_eq!(
        p.vacancy_wait(&"c".into(), &up),
        Some(Duration::from_millis(1100))
    );
    assert_eq!(
        p.vacancy_wait(&"d".into(), &up),
        Some(Duration::from_millis(2100))
    );
    assert_eq!(p.vacancy_wait(&"a".into(), &up), None);
    assert_eq!(p.vacancy_wait(&"x".into(), &up), None);
}

/// Failed takeovers back off: each wait lies between half and all of
/// `retry_after` doubled per failure, capped at `retry_max`; the draw is the
/// same on every run for a node, and differs between nodes.
#[test]
fn retry_delay_doubles_with_jitter_up_to_the_cap() {
    let p = Placement::parse("a > b")
        .with_retry_after(Duration::from_millis(100))
        .with_retry_max(Duration::from_millis(1000));
    let a: NodeName = "a".into();
    for failures in 1..40 {
        let full = Duration::from_millis(100 * (1u64 << (failures - 1).min(10)))
            .min(Duration::from_millis(1000));
        let d = p.retry_delay(failures, &a);
        assert!(
            d >= full / 2 && d <= full,
            "failure {failures}: {d:?} outside [{:?}, {full:?}]",
            full / 2
        );
        assert_eq!(d, p.retry_delay(failures, &a), "the draw replays");
    }
    assert!(
        p.retry_delay(30, &a) >= Duration::from_millis(500),
        "capped, not wrapped"
    );
    let b: NodeName = "b".into();
    assert!(
        (1..10).any(|f| p.retry_delay(f, &a) != p.retry_delay(f, &b)),
        "two nodes do not retry in lockstep"
    );
    // A cap below the base leaves the base.
    let low = Placement::parse("a")
        .with_retry_after(Duration::from_secs(2))
        .with_retry_max(Duration::from_secs(1));
    assert!(low.retry_delay(5, &a) >= Duration::from_secs(1));
}

/// The defaults are the ones each field's rustdoc states (keep them in step).
#[test]
fn defaults_are_the_documented_ones() {
    let p = Placement::parse("a > b");
    assert_eq!(p.failover_delay, Duration::ZERO);
    assert_eq!(p.standby_grace, Duration::from_secs(1));
    assert_eq!(p.retry_after, Duration::from_secs(1));
    assert_eq!(p.retry_max, Duration::from_secs(30));
}
