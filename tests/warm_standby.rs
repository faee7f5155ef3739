//! Warm standby on the fake cluster: checkpoints make a crash failover start
//! from the holder's recent state; stale checkpoints are refused.

mod support;

use std::time::Duration;

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

/// A standby keeps only the newest checkpoint by (holder epoch, seq): an
/// older one, or one for another name, is refused and reported, and the one
/// it has stays; a checkpoint that does not decode is refused too.
#[tokio::test]
async fn stale_or_foreign_or_bad_checkpoints_are_refused() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let config = TakeoverConfig::default().with_checkpoints(CheckpointPolicy::every_calls(1));
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let b = spawn(&cluster, "b", &config).await;
    events.standby("b").await;

    let holder = |epoch| RegistrationInfo {
        name: NAME.into(),
        epoch,
        node: "a".into(),
    };
    let send = |holder: RegistrationInfo, seq, bytes: Vec<u8>| {
        b.send_message(TakeoverMessage::Handover(HandoverMsg::Checkpoint {
            holder,
            seq,
            handled: seq,
            bytes,
        }))
        .unwrap()
    };
    let good = encode_postcard(&CounterState {
        total: 42,
        calls: 1,
    })
    .unwrap();
    send(holder(5), 3, good.clone());
    events
        .wait_for("stored", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointStored { seq: 3, .. })
        })
        .await;
    send(holder(5), 2, good.clone());
    events
        .wait_for("older seq refused", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointRejected { .. })
        })
        .await;
    send(holder(4), 9, good.clone());
    events
        .wait_for("older epoch refused", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointRejected { .. })
        })
        .await;
    send(
        RegistrationInfo {
            name: "other".into(),
            ..holder(9)
        },
        1,
        good.clone(),
    );
    events
        .wait_for("other name refused", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointRejected { .. })
        })
        .await;
    send(holder(6), 1, vec![0xff; 3]);
    events
        .wait_for("garbage refused", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointRejected { .. })
        })
        .await;

    cluster.crash("a");
    wait_until("b sees a gone", || {
        let holder = cluster.holders(NAME)[&NodeId::new("b")].clone();
        async move { holder.is_none() }
    })
    .await;
    let report = go(&b, GoRequest::Failover { from: "a".into() }, TIMEOUT)
        .await
        .unwrap();
    let StartType::Failover {
        checkpoint: Some(cp),
        ..
    } = report.start
    else {
        panic!("expected the stored checkpoint: {report:?}");
    };
    assert_eq!(
        (cp.holder_epoch, cp.seq),
        (5, 3),
        "the newest good checkpoint stayed"
    );
    let state = client(&cluster, "b")
        .call(CounterMsg::Get, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(state.total, 42);
}
