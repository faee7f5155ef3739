//! Drains and rolling restarts on the fake cluster (the real-process cases
//! are in `tests/real_drain.rs`).
//!
//! # The invariants
//!
//! - A drain of the holder's node moves the name, by a planned takeover
//!   with its state, to the next live node in priority; a caller that calls
//!   without pause through it sees every call answered once, in order.
//! - No name moves to a draining node.
//! - A drain's node that crashes midway is an ordinary crash: the name
//!   fails over, and the mark dies with the node.
//! - With takeovers back held, a rolling restart (drain, crash, restart each
//!   node in turn) moves the name once per restart of its holder's node,
//!   each move saying `Drain`.

mod support;

use std::time::Duration;

use ractor_takeover::event::{EventHub, EventKind, MoveReason, TakeoverEvent};
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::registry::Registry;
use ractor_takeover::status::Phase;
use ractor_takeover::*;
use support::*;
use tokio::sync::broadcast;

fn config(hub: &EventHub) -> TakeoverConfig {
    TakeoverConfig::default()
        .with_placement(
            Placement::parse("a > b > c")
                .with_standby_grace(Duration::from_millis(200))
                .with_retry_after(Duration::from_millis(100)),
        )
        .with_events(hub.clone())
}

/// The moves in `events`: (to node, from node, reason).
fn moves(events: &mut broadcast::Receiver<TakeoverEvent>) -> Vec<(String, String, MoveReason)> {
    let mut out = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let EventKind::Moved { from, reason } = ev.kind {
            let from = from.map(|f| f.to_string()).unwrap_or_default();
            out.push((ev.node.to_string(), from, reason));
        }
    }
    out
}

/// A drain of the holder's node under a caller: the name moves to `b` with
/// its state, every call answered once and in order, the drain's report
/// says where it went, and `b`'s status says why it moved.
#[tokio::test]
async fn a_drain_moves_the_name_with_its_state_and_loses_no_call() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c", "client"]);
    let hub = EventHub::default();
    let mut events = hub.subscribe();
    let _a = spawn(&cluster, "a", &config(&hub)).await;
    let b = spawn(&cluster, "b", &config(&hub)).await;
    let _c = spawn(&cluster, "c", &config(&hub)).await;
    wait_holder_everywhere(&cluster, "a").await;
    let caller = Caller::start(client(&cluster, "client"), 0);
    caller.wait_calls(50).await;

    tracing::info!("--- drain a under load");
    let report = cluster
        .drain("a", TIMEOUT)
        .await
        .expect("the drain completes");
    assert_eq!(report.moved.len(), 1, "{report:?}");
    assert_eq!(report.moved[0].to.node.as_str(), "b");
    assert!(report.is_complete());

    let at_drain = caller.calls();
    caller.wait_calls(at_drain + 50).await;
    let calls = caller.stop().await;
    let state = client(&cluster, "client")
        .call(CounterMsg::Get, TIMEOUT)
        .await
        .expect("get");
    assert_eq!(state.calls, calls, "the state came along, every call once");
    let status = b.status(TIMEOUT).await.expect("status");
    assert_eq!(status.phase, Phase::Holder);
    let last = status.last_move.expect("b knows why it holds");
    assert_eq!(last.reason, MoveReason::Drain);
    assert_eq!(last.from.as_ref().map(|n| n.as_str()), Some("a"));
    assert_eq!(
        moves(&mut events),
        vec![("b".into(), "a".into(), MoveReason::Drain)]
    );
}

/// Placement takes no name back to a draining node: `a` drains while `b`
/// holds, and `a`'s standby, of higher priority, stays a standby.
#[tokio::test]
async fn no_name_moves_to_a_draining_node() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let hub = EventHub::default();
    let b = spawn(&cluster, "b", &config(&hub)).await;
    wait_holder_everywhere(&cluster, "b").await;
    cluster.set_draining("a", true);
    let a = spawn(&cluster, "a", &config(&hub)).await;
    wait_phase(&a, Phase::Standby).await;
    // A change every view applies after the mark, and a placement re-run on
    // `a` after it: `c` comes up and its instance registers as a standby.
    let c = spawn(&cluster, "c", &config(&hub)).await;
    wait_phase(&c, Phase::Standby).await;
    assert_eq!(phase(&a).await, Some(Phase::Standby));
    assert_eq!(phase(&b).await, Some(Phase::Holder));

    tracing::info!("--- a undrains: placement takes the name back");
    cluster.set_draining("a", false);
    wait_holder_everywhere(&cluster, "a").await;
}

/// The drain's node crashes midway (the name stolen, the state not sent:
/// the link from `b` is held, with its state request): `b` fails over, and the crashed node's mark is
/// gone with it, so when it restarts the name goes back to it.
#[tokio::test]
async fn a_drain_whose_node_dies_midway_fails_over() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let hub = EventHub::default();
    let mut events = hub.subscribe();
    let _a = spawn(&cluster, "a", &config(&hub)).await;
    let b = spawn(&cluster, "b", &config(&hub)).await;
    wait_holder_everywhere(&cluster, "a").await;
    cluster.hold("b", "a");
    let drain = tokio::spawn({
        let cluster = cluster.clone();
        // Short: the node dies under it, so it cannot complete.
        async move { cluster.drain("a", Duration::from_secs(3)).await }
    });
    wait_phase(&b, Phase::Pulling).await;
    tracing::info!("--- crash a in the middle of its drain");
    cluster.crash("a");
    cluster.release("b", "a");
    let report = drain.await.expect("drain task");
    assert!(
        matches!(report, Err(ractor_takeover::drain::DrainErr::Incomplete(_))),
        "{report:?}"
    );
    wait_phase(&b, Phase::Holder).await;
    let status = b.status(TIMEOUT).await.expect("status");
    assert_eq!(
        status.last_move.map(|m| m.reason),
        Some(MoveReason::Failover)
    );
    assert!(cluster.node("b").draining().is_empty());

    tracing::info!("--- a restarts: not draining, it takes the name back");
    cluster.restart("a");
    let _a = spawn(&cluster, "a", &config(&hub)).await;
    wait_holder_everywhere(&cluster, "a").await;
    let reasons: Vec<MoveReason> = moves(&mut events).into_iter().map(|m| m.2).collect();
    assert_eq!(reasons, vec![MoveReason::Failover, MoveReason::Placement]);
}

/// A rolling restart with takeovers back held: drain, crash and restart
/// `a`, `b`, `c` in turn under a caller. The name moves a -> b (a's
/// restart), b -> a (b's restart), and not at all for c's (it never held):
/// two moves, both `Drain`, no call lost or doubled.
#[tokio::test]
async fn a_rolling_restart_moves_the_name_once_per_restart_of_its_holder() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c", "client"]);
    let hub = EventHub::default();
    let mut events = hub.subscribe();
    for n in ["a", "b", "c"] {
        spawn(&cluster, n, &config(&hub)).await;
    }
    wait_holder_everywhere(&cluster, "a").await;
    let caller = Caller::start(client(&cluster, "client"), 0);
    caller.wait_calls(20).await;
    cluster.hold_takeback("client");
    for n in ["a", "b", "c"] {
        tracing::info!("--- rolling: drain {n}");
        cluster
            .drain(n, TIMEOUT)
            .await
            .expect("the drain completes");
        cluster.crash(n);
        cluster.restart(n);
        let back = spawn(&cluster, n, &config(&hub)).await;
        wait_phase(&back, Phase::Standby).await;
        let now = caller.calls();
        caller.wait_calls(now + 20).await;
    }
    cluster.release_takeback("client");
    let calls = caller.stop().await;
    let state = client(&cluster, "client")
        .call(CounterMsg::Get, TIMEOUT)
        .await
        .expect("get");
    assert_eq!(state.calls, calls);
    assert_eq!(
        moves(&mut events),
        vec![
            ("b".into(), "a".into(), MoveReason::Drain),
            ("a".into(), "b".into(), MoveReason::Drain),
        ]
    );
}
