use std::collections::BTreeSet;
use std::time::Duration;

use super::Placement;
use crate::NodeId;

fn live(nodes: &[&str]) -> BTreeSet<NodeId> {
    nodes.iter().map(NodeId::new).collect()
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
            vec![NodeId::new("d")]
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
    assert_eq!(p.order(&up), vec![NodeId::new("b"), "c".into(), "d".into()]);
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
