//! Split brain on the fake cluster: two holders after a detected partition,
//! healed without killing anyone; and quorum mode, which prevents it.

mod support;

use std::time::Duration;

use ractor_takeover::event::EventKind;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::registry::NodeName;
use ractor_takeover::resolver::PriorityThenEpoch;
use ractor_takeover::status::Phase;
use ractor_takeover::*;
use support::*;

/// The scenarios written for the resolver that was the default before
/// `NewerLineage` (priority first) keep it: they check what it still does.
fn config(counter_merges: bool) -> (TakeoverConfig, Counter) {
    let (config, counter) = lineage_config(counter_merges);
    (config.with_resolver(PriorityThenEpoch), counter)
}

/// The default resolver (`NewerLineage`).
fn lineage_config(counter_merges: bool) -> (TakeoverConfig, Counter) {
    let config = TakeoverConfig::default()
        .with_placement(
            Placement::parse("a > b > c").with_standby_grace(Duration::from_millis(200)),
        )
        .with_conflict_grace(Duration::from_millis(200));
    (
        config,
        Counter {
            merge_adds: counter_merges,
            ..Counter::default()
        },
    )
}

async fn spawn_with(
    cluster: &FakeCluster,
    node: &str,
    config: &TakeoverConfig,
    counter: &Counter,
) -> TakeoverRef<Counter> {
    TakeoverServer::new(
        NAME,
        counter.clone(),
        cluster.registry(node),
        config.clone(),
    )
    .spawn(())
    .await
    .expect("spawn")
    .0
}

/// The holder on `a`, then a standby on each of `standbys`, in order.
async fn start(
    cluster: &FakeCluster,
    config: &TakeoverConfig,
    counter: &Counter,
    events: &mut Watcher,
    standbys: &[&str],
) -> Vec<TakeoverRef<Counter>> {
    let mut out = vec![spawn_with(cluster, "a", config, counter).await];
    events.registered("a").await;
    for node in standbys {
        out.push(spawn_with(cluster, node, config, counter).await);
        events.standby(node).await;
    }
    out
}

/// Splits `node` from both other nodes (detected) and waits until it sees
/// only itself.
async fn cut_off(cluster: &FakeCluster, node: &str) {
    for other in ["a", "b", "c"] {
        if other != node {
            cluster.split(node, other);
        }
    }
    let registry = cluster.registry(node);
    wait_until(&format!("{node} sees only itself"), || {
        let live = registry.live_nodes();
        async move { live.len() == 1 }
    })
    .await;
}

/// `a | b, c` split with detection: `b` fails over, so both sides hold the
/// name and both serve. After the heal, exactly one holder is left, the one
/// of higher priority (`a`), nobody was killed: the loser (`b`) offered its
/// state, the winner merged it (the counter adds), and the loser retired.
/// The final state counts every call answered on either side.
#[tokio::test]
async fn healed_split_brain_keeps_one_holder_and_merges_the_state() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let (config, counter) = config(true);
    let mut events = Watcher::new(&config.events);
    let running = start(&cluster, &config, &counter, &mut events, &["b", "c"]).await;
    let (a, b) = (&running[0], &running[1]);
    assert_eq!(
        client(&cluster, "c")
            .call(CounterMsg::Add(1), TIMEOUT)
            .await
            .unwrap()
            .total,
        1
    );

    cluster.split("a", "b");
    cluster.split("a", "c");
    let ev = events
        .wait_for("b fails over", |e| {
            on(e, "b") && matches!(e.kind, EventKind::Registered { .. })
        })
        .await;
    assert!(matches!(
        ev.kind,
        EventKind::Registered {
            start: StartType::Failover { .. }
        }
    ));

    tracing::info!("--- both sides serve");
    let on_a = client(&cluster, "a")
        .call(CounterMsg::Add(10), TIMEOUT)
        .await
        .unwrap();
    let on_b = client(&cluster, "c")
        .call(CounterMsg::Add(100), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(on_a.total, 11, "a kept its state");
    assert_eq!(on_b.total, 100, "b started from nothing");
    assert_eq!(phase(a).await, Some(Phase::Holder));
    assert_eq!(phase(b).await, Some(Phase::Holder));

    cluster.heal_all();
    let ev = events
        .wait_for("the winner merges", |e| {
            matches!(e.kind, EventKind::SplitBrainHealed { .. })
        })
        .await;
    assert_eq!(ev.node.as_str(), "a", "the node of higher priority wins");
    assert!(matches!(
        ev.kind,
        EventKind::SplitBrainHealed {
            outcome: Some(MergeOutcome::Merged),
            ..
        }
    ));
    events
        .wait_for("b retires", |e| {
            on(e, "b") && matches!(e.kind, EventKind::Retired { .. })
        })
        .await;
    wait_holder_everywhere(&cluster, "a").await;

    let total = client(&cluster, "c")
        .call(CounterMsg::Get, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        total,
        CounterState {
            total: 111,
            calls: 3
        },
        "every answered call counted once"
    );
    assert_eq!(phase(a).await, Some(Phase::Holder));
    // The loser handed its state over: a standby again, not stopped.
    wait_phase(b, Phase::Standby).await;
}

/// With the default merge hook the winner keeps its own state and reports
/// the loser's; still exactly one holder, of the higher priority.
#[tokio::test]
async fn default_resolution_keeps_the_winner_state() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let (config, counter) = config(false);
    let mut events = Watcher::new(&config.events);
    let _running = start(&cluster, &config, &counter, &mut events, &["b"]).await;
    cluster.split("a", "b");
    events.registered("b").await;
    client(&cluster, "a")
        .call(CounterMsg::Add(5), TIMEOUT)
        .await
        .unwrap();
    client(&cluster, "b")
        .call(CounterMsg::Add(7), TIMEOUT)
        .await
        .unwrap();

    cluster.heal("a", "b");
    let ev = events
        .wait_for("healed", |e| {
            matches!(e.kind, EventKind::SplitBrainHealed { .. })
        })
        .await;
    assert!(matches!(
        ev.kind,
        EventKind::SplitBrainHealed {
            outcome: Some(MergeOutcome::KeptWinner),
            ..
        }
    ));
    wait_holder_everywhere(&cluster, "a").await;
    assert_eq!(
        client(&cluster, "b")
            .call(CounterMsg::Get, TIMEOUT)
            .await
            .unwrap()
            .total,
        5
    );
}

/// Quorum mode: a node cut off from the majority of the placement's nodes
/// never becomes holder, neither by placement nor by an explicit failover
/// request (`TakeoverErr::NoQuorum`). (A holder already running in a
/// minority holds its calls: next test.)
#[tokio::test]
async fn quorum_mode_refuses_a_holder_in_the_minority() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let (config, counter) = config(false);
    let config = config.with_quorum(true);
    let mut events = Watcher::new(&config.events);
    let _running = start(&cluster, &config, &counter, &mut events, &["b"]).await;

    tracing::info!("--- b loses both peers: alone, it is a minority of three");
    cut_off(&cluster, "b").await;
    let b2 = spawn_with(&cluster, "b", &config, &counter).await;
    let err = b2.failover("a", TIMEOUT).await.unwrap_err();
    assert_eq!(err, TakeoverErr::NoQuorum);
    assert_eq!(phase(&b2).await, Some(Phase::Standby));
    assert_eq!(
        cluster.holders(NAME)[&NodeName::new("b")],
        None,
        "no holder in b's minority"
    );
}

/// Quorum mode: the holder `a`, cut off from `b` and `c`, is a minority. It
/// keeps the call that reaches it (answers nothing, `QuorumLost`) while the
/// majority fails over to `b` and serves. At the heal `a` wins the conflict
/// (priority), merges `b`'s state, regains quorum and serves the held call:
/// every call is counted once and the minority acknowledged nothing while
/// it was one.
#[tokio::test]
async fn quorum_mode_holder_in_the_minority_holds_its_calls() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let (config, counter) = config(true);
    let config = config.with_quorum(true);
    let mut events = Watcher::new(&config.events);
    let _running = start(&cluster, &config, &counter, &mut events, &["b", "c"]).await;

    cut_off(&cluster, "a").await;
    let on_a = client(&cluster, "a");
    let held =
        tokio::spawn(async move { on_a.call(CounterMsg::Add(5), Duration::from_secs(30)).await });
    events
        .wait_for("a loses quorum", |e| {
            on(e, "a") && matches!(e.kind, EventKind::QuorumLost { .. })
        })
        .await;
    events.registered("b").await;
    assert_eq!(
        client(&cluster, "b")
            .call(CounterMsg::Add(7), TIMEOUT)
            .await
            .unwrap()
            .total,
        7
    );
    assert!(!held.is_finished(), "the minority holder answered a call");

    cluster.heal_all();
    events
        .wait_for("healed", |e| {
            matches!(e.kind, EventKind::SplitBrainHealed { .. })
        })
        .await;
    held.await
        .expect("the caller")
        .expect("the held call is served");
    wait_holder_everywhere(&cluster, "a").await;
    assert_eq!(
        client(&cluster, "c")
            .call(CounterMsg::Get, TIMEOUT)
            .await
            .unwrap()
            .total,
        12
    );
}

/// After a heal that `b` won: the client goes on calling; the loser on `a`
/// is a standby again, on the preferred node, so placement takes the name
/// back by an ordinary takeover, with b's state; every call the client was
/// acknowledged is in that state.
async fn a_takes_the_name_back(cluster: &FakeCluster, caller: Caller, on_a: &TakeoverRef<Counter>) {
    let at_heal = caller.calls();
    caller.wait_calls(at_heal + 20).await;
    tracing::info!("--- the instance on a takes the name back, with b's state");
    wait_phase(on_a, Phase::Holder).await;
    wait_holder_everywhere(cluster, "a").await;
    let at_takeover = caller.calls();
    caller.wait_calls(at_takeover + 20).await;
    let last = caller.stop().await;
    let state = client(cluster, "c")
        .call(CounterMsg::Get, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(state.calls, last, "every acknowledged call is in the state");
}

/// Issue 10, items 2 and 3, with the default resolver and the default merge
/// (keep the winner's state): the preferred holder `a` is cut off, `b` fails
/// over and serves a client on `c`. At the heal `a` (lineage 0: it started
/// `Normal`) loses to `b` (lineage: its failover's epoch), although `a` has
/// the higher priority: `b` keeps every call it acknowledged. The client
/// calls without pause through the heal and the takeover that moves the
/// name back to `a` (a fresh instance there), and each answer counts
/// exactly one call more than the one before: its state never goes
/// backwards, nothing it was told is lost.
#[tokio::test]
async fn a_cut_off_preferred_holder_loses_to_the_failover_holder() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let (config, counter) = lineage_config(false);
    let mut events = Watcher::new(&config.events);
    let running = start(&cluster, &config, &counter, &mut events, &["b", "c"]).await;
    client(&cluster, "a")
        .call(CounterMsg::Add(1), TIMEOUT)
        .await
        .unwrap();

    tracing::info!("--- cut a off; b fails over");
    cluster.split("a", "b");
    cluster.split("a", "c");
    events.registered("b").await;
    let caller = Caller::start(client(&cluster, "c"), 0);
    caller.wait_calls(20).await;

    tracing::info!("--- heal: a resumes beside b");
    cluster.heal_all();
    let ev = events
        .wait_for("the winner merges", |e| {
            matches!(e.kind, EventKind::SplitBrainHealed { .. })
        })
        .await;
    assert_eq!(ev.node.as_str(), "b", "the newer lineage wins");
    assert!(matches!(
        ev.kind,
        EventKind::SplitBrainHealed {
            outcome: Some(MergeOutcome::KeptWinner),
            ..
        }
    ));
    a_takes_the_name_back(&cluster, caller, &running[0]).await;
}

/// Issue 10, item 3 (second way): the preferred node `a` crashes, `b` fails
/// over and serves; `a` restarts cut off from both peers, finds the name
/// vacant and registers `Normal` beside the live holder, with an empty
/// state. At the heal it loses (lineage 0 against a served state), though it
/// has the higher priority and the newer epoch: `b`'s state survives, and
/// placement then moves the name to `a` by a takeover, with that state.
#[tokio::test]
async fn a_restarted_preferred_node_that_registered_normal_loses() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let (config, counter) = lineage_config(false);
    let mut events = Watcher::new(&config.events);
    let _running = start(&cluster, &config, &counter, &mut events, &["b", "c"]).await;

    tracing::info!("--- crash a; b fails over");
    cluster.crash("a");
    events.registered("b").await;
    let caller = Caller::start(client(&cluster, "c"), 0);
    caller.wait_calls(20).await;

    tracing::info!("--- a restarts cut off and registers Normal");
    cluster.split("a", "b");
    cluster.split("a", "c");
    cluster.restart("a");
    let restarted = spawn_with(&cluster, "a", &config, &counter).await;
    assert_eq!(events.registered("a").await, StartType::Normal);

    tracing::info!("--- heal: the fresh Normal holder meets the live one");
    cluster.heal_all();
    let ev = events
        .wait_for("the winner merges", |e| {
            matches!(e.kind, EventKind::SplitBrainHealed { .. })
        })
        .await;
    assert_eq!(ev.node.as_str(), "b", "the served state wins");
    a_takes_the_name_back(&cluster, caller, &restarted).await;
}

/// Issue 10, items 1 to 3 on the fake, beside `tests/real_hang_epochs.rs`:
/// the preferred holder `a` hangs (`pause`), `b` fails over once its node
/// sees `a` down and serves a client on `c`; then `a` resumes beside it.
/// With the default resolver and the default merge (keep the winner's
/// state) `b` (lineage: its failover) wins against `a` (lineage 0), though
/// `a` has the higher priority: every call `b` acknowledged is kept. The
/// client calls without pause through the resume, the conflict and the
/// takeover that moves the name back to `a`, and each answer counts
/// exactly one call more than the one before: no answer from the resumed
/// holder's old state, nothing it was told is lost.
#[tokio::test]
async fn a_paused_preferred_holder_loses_to_the_failover_holder() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    cluster.set_detection_time(Duration::from_millis(200));
    let (config, counter) = lineage_config(false);
    let mut events = Watcher::new(&config.events);
    let running = start(&cluster, &config, &counter, &mut events, &["b", "c"]).await;
    client(&cluster, "a")
        .call(CounterMsg::Add(1), TIMEOUT)
        .await
        .unwrap();

    tracing::info!("--- pause a; b fails over");
    cluster.pause("a");
    events.registered("b").await;
    let on_c = client(&cluster, "c");
    wait_until("c's client resolves the name to b", || {
        let on_c = on_c.clone();
        async move { on_c.whereis().is_some_and(|h| h.node.as_str() == "b") }
    })
    .await;
    let caller = Caller::start(on_c, 0);
    caller.wait_calls(20).await;

    tracing::info!("--- resume a beside b");
    cluster.resume("a");
    let ev = events
        .wait_for("the winner merges", |e| {
            matches!(e.kind, EventKind::SplitBrainHealed { .. })
        })
        .await;
    assert_eq!(ev.node.as_str(), "b", "the newer lineage wins");
    a_takes_the_name_back(&cluster, caller, &running[0]).await;
}
