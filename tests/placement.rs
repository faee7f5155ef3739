//! Priority placement on the fake cluster, like Erlang's `distributed`
//! parameter: start-up on the preferred node, failover down the priority
//! list, takeover back to the preferred node with the state, equal priorities
//! that never move, a flapping preferred node, and a cascade past a listed
//! node that runs no instance.

mod support;

use std::time::Duration;

use ractor_takeover::event::EventKind;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::status::Phase;
use ractor_takeover::*;
use support::*;

/// How long a vacant name waits for the first standby in priority order.
const FAILOVER_DELAY: Duration = Duration::from_millis(100);
/// How much longer each next standby waits. Real-time tests need it well above
/// scheduling noise: it is what keeps the next standby from racing the first.
const STANDBY_GRACE: Duration = Duration::from_millis(300);

/// One config for every instance of a test, so that all events reach one hub.
fn config(spec: &str) -> TakeoverConfig {
    TakeoverConfig::default().with_placement(
        Placement::parse(spec)
            .with_failover_delay(FAILOVER_DELAY)
            .with_standby_grace(STANDBY_GRACE),
    )
}

/// Under paused time: lets everything run until the clock reads `at`; every
/// timer due before it fires, in order, and its work runs.
async fn run_until(at: tokio::time::Instant) {
    tokio::time::sleep_until(at).await;
}

/// Crashes `a`, the holder; `b` fails over from it (no warm standby) and
/// every view resolves the name to `b`.
async fn crash_a_then_b_fails_over(cluster: &FakeCluster, events: &mut Watcher) {
    cluster.crash("a");
    assert_eq!(
        events.registered("b").await,
        StartType::Failover {
            from: "a".into(),
            checkpoint: None
        }
    );
    wait_holder_everywhere(cluster, "b").await;
}

/// `a > b > c`: an instance on `a` registers, then standbys on `b` and `c`.
async fn holder_on_a_standbys_on_b_and_c(
    cluster: &FakeCluster,
    config: &TakeoverConfig,
    events: &mut Watcher,
) -> (
    TakeoverRef<Counter>,
    TakeoverRef<Counter>,
    TakeoverRef<Counter>,
) {
    tracing::info!("--- start a (first in priority: registers at once), then b and c");
    let a = spawn(cluster, "a", config).await;
    assert_eq!(events.registered("a").await, StartType::Normal);
    let b = spawn(cluster, "b", config).await;
    assert_eq!(events.standby("b").await.map(|h| h.node), Some("a".into()));
    let c = spawn(cluster, "c", config).await;
    assert_eq!(events.standby("c").await.map(|h| h.node), Some("a".into()));
    wait_holder_everywhere(cluster, "a").await;
    (a, b, c)
}

/// Instances start in reverse priority order, each once the previous one is
/// settled: `c` registers (`Normal`) after its turn passes with nobody ahead
/// of it running, `b` takes over from `c`, `a` takes over from `b` (each with
/// `StartType::Takeover` and the state). In the end `a` holds and the
/// supervised instances on `b` and `c` wait as standbys; no other
/// registration ever happened.
#[tokio::test]
async fn startup_in_any_order_ends_on_the_preferred_node() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = config("a > b > c");
    let mut events = Watcher::new(&config.events);
    let mut all = Watcher::new(&config.events);

    tracing::info!("--- start c: a and b are up but run no instance; c registers after its turn");
    let mut c = Supervised::start(&cluster, "c", &config).await;
    assert_eq!(events.registered("c").await, StartType::Normal);
    wait_holder_everywhere(&cluster, "c").await;
    let cc = client(&cluster, "c");
    assert_eq!(cc.call(CounterMsg::Add(5), TIMEOUT).await.unwrap().total, 5);

    tracing::info!("--- start b: it outranks c and takes over");
    let mut b = Supervised::start(&cluster, "b", &config).await;
    assert_eq!(
        events.registered("b").await,
        StartType::Takeover { from: "c".into() }
    );
    wait_holder_everywhere(&cluster, "b").await;
    c.wait_phase(Phase::Standby).await;
    assert_eq!(cc.call(CounterMsg::Add(1), TIMEOUT).await.unwrap().total, 6);

    tracing::info!("--- start a: it outranks b and takes over");
    let mut a = Supervised::start(&cluster, "a", &config).await;
    assert_eq!(
        events.registered("a").await,
        StartType::Takeover { from: "b".into() }
    );
    wait_holder_everywhere(&cluster, "a").await;

    tracing::info!("--- a holds with the state of both moves; b and c are standbys");
    a.wait_phase(Phase::Holder).await;
    b.wait_phase(Phase::Standby).await;
    c.wait_phase(Phase::Standby).await;
    assert_eq!(
        cc.call(CounterMsg::Get, TIMEOUT).await.unwrap(),
        CounterState { total: 6, calls: 2 }
    );
    assert_eq!(
        registrations(&all.drain()),
        vec![
            ("c".to_string(), StartType::Normal),
            ("b".to_string(), StartType::Takeover { from: "c".into() }),
            ("a".to_string(), StartType::Takeover { from: "b".into() }),
        ],
        "restarted standbys never registered"
    );
}

/// The holder's node goes down: the next node in priority (`b`) registers
/// with `Failover { from: "a" }`, `c` stays a standby, and a client on `c`
/// keeps working, answered by `b` (with a fresh state: `a`'s went down with it).
#[tokio::test]
async fn holder_node_down_fails_over_to_the_next_in_priority() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = config("a > b > c");
    let mut events = Watcher::new(&config.events);
    let (_a, b, c) = holder_on_a_standbys_on_b_and_c(&cluster, &config, &mut events).await;
    let mut all = Watcher::new(&config.events);
    let cc = client(&cluster, "c");
    assert_eq!(
        cc.call(CounterMsg::Add(10), TIMEOUT).await.unwrap().total,
        10
    );

    tracing::info!("--- crash a");
    crash_a_then_b_fails_over(&cluster, &mut events).await;

    tracing::info!("--- the client on c is answered by b");
    assert_eq!(cc.whereis().map(|h| h.node), Some("b".into()));
    assert_eq!(
        cc.call(CounterMsg::Add(1), TIMEOUT).await.unwrap(),
        CounterState { total: 1, calls: 1 }
    );
    assert_eq!(
        cc.call(CounterMsg::Add(2), TIMEOUT).await.unwrap(),
        CounterState { total: 3, calls: 2 }
    );
    assert_eq!(phase(&b).await, Some(Phase::Holder));
    assert_eq!(phase(&c).await, Some(Phase::Standby));
    assert_eq!(
        registrations(&all.drain()),
        vec![(
            "b".to_string(),
            StartType::Failover {
                from: "a".into(),
                checkpoint: None
            }
        )],
        "only b registered"
    );
}

/// Issue 11: no race between the nodes in line. Everything from `b` to `c`
/// is held, so `c` does not see `b` take the vacant name; with a fixed
/// grace alone `c` took it too at its own turn (two holders, as 500 names
/// on loaded real nodes all were). `c` sees `b`'s standby in line ahead of
/// it and waits for it past its own turn; once the link is released it
/// sees `b` hold and stays a standby: `b` was the only node to register.
/// Then, with `b` crashed as well (its standby gone with it), `c` takes
/// the name at its turn.
#[tokio::test(start_paused = true)]
async fn the_next_in_line_waits_for_the_standby_ahead_of_it() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = config("a > b > c");
    let mut events = Watcher::new(&config.events);
    let (_a, b, c) = holder_on_a_standbys_on_b_and_c(&cluster, &config, &mut events).await;
    let mut all = Watcher::new(&config.events);

    tracing::info!("--- hold b -> c, crash a");
    cluster.hold("b", "c");
    let crashed = tokio::time::Instant::now();
    cluster.crash("a");
    assert!(matches!(
        events.registered("b").await,
        StartType::Failover { .. }
    ));
    tracing::info!("--- well past c's own turn: c still waits for b");
    run_until(crashed + FAILOVER_DELAY + STANDBY_GRACE * 4).await;
    settle().await;
    assert_eq!(phase(&c).await, Some(Phase::Standby));
    assert!(cluster.holders(NAME)[&registry::NodeName::new("c")].is_none());

    tracing::info!("--- release b -> c: c sees b hold");
    cluster.release("b", "c");
    wait_holder_everywhere(&cluster, "b").await;
    settle().await;
    assert_eq!(phase(&b).await, Some(Phase::Holder));
    assert_eq!(phase(&c).await, Some(Phase::Standby));
    assert_eq!(
        registrations(&all.drain())
            .into_iter()
            .map(|(node, _)| node)
            .collect::<Vec<_>>(),
        vec!["b".to_string()],
        "only b registered"
    );

    tracing::info!("--- crash b too: nobody ahead of c, c takes the name at its turn");
    cluster.crash("b");
    assert!(matches!(
        events.registered("c").await,
        StartType::Failover { .. }
    ));
}

/// The same failover with time as logic: `b` takes the name exactly when the
/// failover delay is over (not before), and `c`, whose turn comes one grace
/// later, sees `b` then and stays a standby.
#[tokio::test(start_paused = true)]
async fn failover_waits_exactly_the_failover_delay() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = config("a > b > c");
    let mut events = Watcher::new(&config.events);
    let (_a, b, c) = holder_on_a_standbys_on_b_and_c(&cluster, &config, &mut events).await;
    let mut all = Watcher::new(&config.events);

    tracing::info!("--- crash a");
    let crashed = tokio::time::Instant::now();
    cluster.crash("a");
    run_until(crashed + FAILOVER_DELAY - Duration::from_millis(1)).await;
    tracing::info!("--- just before the failover delay: the name is vacant");
    assert!(cluster.holders(NAME).values().all(Option::is_none));
    assert_eq!(phase(&b).await, Some(Phase::Standby));

    run_until(crashed + FAILOVER_DELAY + Duration::from_millis(1)).await;
    tracing::info!("--- just after it: b holds");
    assert_eq!(phase(&b).await, Some(Phase::Holder));
    wait_holder_everywhere(&cluster, "b").await;

    tracing::info!("--- past c's turn: c stays a standby");
    run_until(crashed + FAILOVER_DELAY + STANDBY_GRACE * 2).await;
    settle().await;
    assert_eq!(phase(&c).await, Some(Phase::Standby));
    assert_eq!(
        registrations(&all.drain()),
        vec![(
            "b".to_string(),
            StartType::Failover {
                from: "a".into(),
                checkpoint: None
            }
        )]
    );
}

/// The preferred node comes back after a failover: a fresh instance on `a`
/// takes over from `b` (`Takeover { from: "b" }`) with the state `b`
/// accumulated, and a client on `c` calling in a loop throughout loses no
/// call and gets none answered twice (each reply's `calls` is the previous
/// plus one; the final state counts every call).
#[tokio::test]
async fn preferred_node_back_takes_over_with_the_state() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = config("a > b > c");
    let mut events = Watcher::new(&config.events);
    let (_a, _b, _c) = holder_on_a_standbys_on_b_and_c(&cluster, &config, &mut events).await;

    tracing::info!("--- crash a: b fails over");
    crash_a_then_b_fails_over(&cluster, &mut events).await;

    tracing::info!("--- a client on c calls in a loop, served by b");
    let caller = Caller::start(client(&cluster, "c"), 0);
    caller.wait_calls(20).await;

    tracing::info!("--- restart a and start a fresh instance there: it takes over from b");
    cluster.restart("a");
    let a = spawn(&cluster, "a", &config).await;
    assert_eq!(
        events.registered("a").await,
        StartType::Takeover { from: "b".into() }
    );
    events
        .wait_for("b retires", |e| {
            on(e, "b") && matches!(e.kind, EventKind::Retired { .. })
        })
        .await;
    caller.wait_calls(caller.calls() + 30).await;
    let sent = caller.stop().await;

    tracing::info!("--- a holds the state with every call counted");
    wait_holder_everywhere(&cluster, "a").await;
    assert_eq!(phase(&a).await, Some(Phase::Holder));
    assert_eq!(
        client(&cluster, "b")
            .call(CounterMsg::Get, TIMEOUT)
            .await
            .unwrap(),
        CounterState {
            total: sent,
            calls: sent
        }
    );
}

/// Equal priority (`a, b > c`): with the holder on `b`, an instance starting
/// on `a` stays a standby, and so does `c`; nothing moves, so the only
/// registration ever made is `b`'s. Time is paused, so "nothing moved once
/// every timer had its chance" is exact.
#[tokio::test(start_paused = true)]
async fn equal_priority_never_moves_the_holder() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = config("a, b > c");
    let mut events = Watcher::new(&config.events);
    let mut all = Watcher::new(&config.events);

    // With `a` up and idle, `b` would wait its grace in case `a` starts (a is
    // first within the group by name); with `a` down, `b` is first and
    // registers at once.
    tracing::info!("--- a is not up yet; start b: first live node, registers at once");
    cluster.crash("a");
    let b = spawn(&cluster, "b", &config).await;
    assert_eq!(events.registered("b").await, StartType::Normal);
    let c = spawn(&cluster, "c", &config).await;
    assert_eq!(events.standby("c").await.map(|h| h.node), Some("b".into()));

    tracing::info!("--- a comes up and starts: same priority as b, it stays a standby");
    cluster.restart("a");
    let a = spawn(&cluster, "a", &config).await;
    assert_eq!(events.standby("a").await.map(|h| h.node), Some("b".into()));
    // Past every placement timer (turns: at most delay + 2 graces; retries: 1s).
    for _ in 0..4 {
        settle().await;
    }

    tracing::info!("--- nobody moved");
    assert_eq!(phase(&a).await, Some(Phase::Standby));
    assert_eq!(phase(&b).await, Some(Phase::Holder));
    assert_eq!(phase(&c).await, Some(Phase::Standby));
    wait_holder_everywhere(&cluster, "b").await;
    let seen = all.drain();
    assert_eq!(
        registrations(&seen),
        vec![("b".to_string(), StartType::Normal)]
    );
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e.kind, EventKind::TakeoverStarted { .. })),
        "no takeover was attempted: {seen:?}"
    );
    assert_eq!(
        client(&cluster, "a")
            .call(CounterMsg::Add(1), TIMEOUT)
            .await
            .unwrap()
            .total,
        1
    );
}

/// A flapping preferred node: after `a` crashed and `b` failed over, `a`
/// comes back and its instance starts a takeover; `b` sends its state (held
/// on the link to `a`) and `a` crashes again before it arrives. `b` gets the
/// name back (`HandoverResumed`) and keeps serving with its state intact;
/// when `a` comes back once more, it takes over with that state.
#[tokio::test]
async fn flapping_preferred_node_leaves_the_state_on_b_until_it_stays_up() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = config("a > b > c");
    let mut events = Watcher::new(&config.events);
    let (_a, b, _c) = holder_on_a_standbys_on_b_and_c(&cluster, &config, &mut events).await;

    tracing::info!("--- crash a: b fails over and counts");
    crash_a_then_b_fails_over(&cluster, &mut events).await;
    let cc = client(&cluster, "c");
    assert_eq!(cc.call(CounterMsg::Add(5), TIMEOUT).await.unwrap().total, 5);
    assert_eq!(
        cc.call(CounterMsg::Add(7), TIMEOUT).await.unwrap().total,
        12
    );

    tracing::info!("--- restart a; once its view is synced, hold b -> a so the state waits");
    cluster.restart("a");
    wait_until("a's view is synced", || {
        let queued = cluster.queued("b", "a") + cluster.queued("c", "a");
        async move { queued == 0 }
    })
    .await;
    cluster.hold("b", "a");
    let _a1 = spawn(&cluster, "a", &config).await;
    events
        .wait_for("a stole the name", |e| {
            on(e, "a") && matches!(e.kind, EventKind::TakeoverStarted { .. })
        })
        .await;
    events
        .wait_for("b sent its state", |e| {
            on(e, "b") && matches!(e.kind, EventKind::StateSent { .. })
        })
        .await;

    tracing::info!("--- a crashes again before the state arrives");
    cluster.crash("a");
    events
        .wait_for("b serves again", |e| {
            on(e, "b") && matches!(e.kind, EventKind::HandoverResumed { .. })
        })
        .await;
    cluster.release("b", "a");
    wait_holder_everywhere(&cluster, "b").await;
    assert_eq!(phase(&b).await, Some(Phase::Holder));
    assert_eq!(
        cc.call(CounterMsg::Add(1), TIMEOUT).await.unwrap(),
        CounterState {
            total: 13,
            calls: 3
        },
        "b kept its state"
    );

    tracing::info!("--- a comes back for good: it takes over with b's state");
    cluster.restart("a");
    let a2 = spawn(&cluster, "a", &config).await;
    assert_eq!(
        events.registered("a").await,
        StartType::Takeover { from: "b".into() }
    );
    wait_holder_everywhere(&cluster, "a").await;
    assert_eq!(phase(&a2).await, Some(Phase::Holder));
    assert_eq!(
        cc.call(CounterMsg::Get, TIMEOUT).await.unwrap(),
        CounterState {
            total: 13,
            calls: 3
        }
    );
}

/// `a > b > c` with no instance on `b`: when `a` goes down, `c` takes the
/// name with `Failover { from: "a" }` and serves.
#[tokio::test]
async fn failover_skips_a_listed_node_without_an_instance() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = config("a > b > c");
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    assert_eq!(events.registered("a").await, StartType::Normal);
    let c = spawn(&cluster, "c", &config).await;
    assert_eq!(events.standby("c").await.map(|h| h.node), Some("a".into()));
    wait_holder_everywhere(&cluster, "a").await;

    tracing::info!("--- crash a; b is up but runs no instance");
    cluster.crash("a");
    assert_eq!(
        events.registered("c").await,
        StartType::Failover {
            from: "a".into(),
            checkpoint: None
        }
    );
    wait_holder_everywhere(&cluster, "c").await;
    assert_eq!(phase(&c).await, Some(Phase::Holder));
    assert_eq!(
        client(&cluster, "b")
            .call(CounterMsg::Add(1), TIMEOUT)
            .await
            .unwrap()
            .total,
        1
    );
}

/// The cascade with time as logic: with no instance on `b`, `c` takes the
/// vacant name exactly when `failover_delay + standby_grace` is over (its
/// rank behind the live `b`), not at `b`'s turn and not later.
#[tokio::test(start_paused = true)]
async fn failover_cascade_waits_one_grace_per_node_ahead() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = config("a > b > c");
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    assert_eq!(events.registered("a").await, StartType::Normal);
    let c = spawn(&cluster, "c", &config).await;
    assert_eq!(events.standby("c").await.map(|h| h.node), Some("a".into()));
    wait_holder_everywhere(&cluster, "a").await;
    let mut all = Watcher::new(&config.events);

    tracing::info!("--- crash a; b is up but runs no instance");
    let crashed = tokio::time::Instant::now();
    cluster.crash("a");
    let turn = crashed + FAILOVER_DELAY + STANDBY_GRACE;
    run_until(turn - Duration::from_millis(1)).await;
    tracing::info!("--- just before c's turn: the name is still vacant");
    assert!(cluster.holders(NAME).values().all(Option::is_none));
    assert_eq!(phase(&c).await, Some(Phase::Standby));

    run_until(turn + Duration::from_millis(1)).await;
    tracing::info!("--- just after it: c holds");
    assert_eq!(phase(&c).await, Some(Phase::Holder));
    wait_holder_everywhere(&cluster, "c").await;
    assert_eq!(
        registrations(&all.drain()),
        vec![(
            "c".to_string(),
            StartType::Failover {
                from: "a".into(),
                checkpoint: None
            }
        )]
    );
}
