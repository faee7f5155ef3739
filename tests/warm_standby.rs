//! Warm standby on the fake cluster: checkpoints make a crash failover start
//! from the holder's recent state; stale checkpoints are refused.

mod support;

use ractor_takeover::event::EventKind;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::*;
use support::*;

/// Checkpoints every 5 handled calls: after 12 calls the standby has the
/// checkpoint of call 10, so the failover after the holder's crash starts
/// from it (`Failover { checkpoint: Some(..) }`, handled 10) and loses only
/// the 2 calls since, as the README's bound says (fewer than `every_calls`).
#[tokio::test]
async fn failover_starts_from_the_last_checkpoint() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = TakeoverConfig::default()
        .with_placement(Placement::parse("a > b > c"))
        .with_checkpoints(CheckpointPolicy::every_calls(5));
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let _b = spawn(&cluster, "b", &config).await;
    events.standby("b").await;
    wait_until("b joined the standbys", || {
        let members = cluster.registry("a").members(&format!("{NAME}#standby"));
        async move { members.len() == 1 }
    })
    .await;

    let cc = client(&cluster, "c");
    for _ in 0..12 {
        cc.call(CounterMsg::Add(1), TIMEOUT).await.unwrap();
    }
    events
        .wait_for("b stored checkpoint 2", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointStored { seq: 2, .. })
        })
        .await;

    cluster.crash("a");
    let ev = events
        .wait_for("b fails over", |e| {
            on(e, "b") && matches!(e.kind, EventKind::Registered { .. })
        })
        .await;
    let EventKind::Registered {
        start: StartType::Failover {
            from,
            checkpoint: Some(cp),
        },
    } = ev.kind
    else {
        panic!("expected a failover from a checkpoint: {ev:?}");
    };
    assert_eq!(from.as_str(), "a");
    assert_eq!((cp.seq, cp.handled), (2, 10));
    let state = cc.call(CounterMsg::Get, TIMEOUT).await.unwrap();
    assert_eq!(
        state,
        CounterState {
            total: 10,
            calls: 10
        },
        "lost only the 2 calls since the checkpoint"
    );
}
