//! The takeover protocol on the fake cluster: registration, steal then pull,
//! buffering, the seed's restart race, bad state, crashes and partitions.

mod support;

use std::time::Duration;

use ractor_takeover::event::EventKind;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::status::Phase;
use ractor_takeover::*;
use support::*;

/// The first instance registers and starts with `Normal`; a second one finds
/// the name held and waits as a standby; every view agrees on the holder.
#[tokio::test]
async fn first_registers_second_waits() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let config = TakeoverConfig::default();
    let mut events = Watcher::new(&config.events);

    tracing::info!("--- start a");
    let a = spawn(&cluster, "a", &config).await;
    let ev = events
        .wait_for("a registers", |e| {
            on(e, "a") && matches!(e.kind, EventKind::Registered { .. })
        })
        .await;
    assert!(matches!(
        ev.kind,
        EventKind::Registered {
            start: StartType::Normal
        }
    ));
    assert_eq!(ev.epoch, Some(1));

    tracing::info!("--- start b");
    let b = spawn(&cluster, "b", &config).await;
    let ev = events
        .wait_for("b is standby", |e| {
            on(e, "b") && matches!(e.kind, EventKind::Standby { .. })
        })
        .await;
    let EventKind::Standby {
        holder: Some(holder),
    } = ev.kind
    else {
        panic!("standby without a holder: {ev:?}");
    };
    assert_eq!(holder.node.as_str(), "a");

    assert_eq!(phase(&a).await, Some(Phase::Holder));
    assert_eq!(phase(&b).await, Some(Phase::Standby));
    wait_holder_everywhere(&cluster, "a").await;

    tracing::info!("--- a call from b's node reaches the holder on a");
    let reply = client(&cluster, "b")
        .call(CounterMsg::Add(3), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(reply.total, 3);
}

/// A client on a third node calls without pause through a takeover from a to
/// b (links delayed, messages serialized): every call is answered exactly
/// once, in order (each reply's `calls` is one more than the last), and the
/// final state counts every call.
#[tokio::test]
async fn takeover_moves_name_and_state_without_losing_a_call() {
    takeover_without_losing_a_call(TakeoverConfig::default()).await;
}

/// The same with the state sent in parts of one byte, each acknowledged.
#[tokio::test]
async fn takeover_in_parts_moves_the_state_without_losing_a_call() {
    takeover_without_losing_a_call(TakeoverConfig::default().with_state_part_bytes(1)).await;
}

async fn takeover_without_losing_a_call(config: TakeoverConfig) {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    for (x, y) in [("a", "b"), ("b", "a"), ("a", "c"), ("c", "b"), ("b", "c")] {
        cluster.set_delay(x, y, Duration::from_millis(1));
    }
    // Slower from the client to the old holder than from the new holder to
    // it: calls sent just before the client sees the steal reach the old
    // holder after the state request, and must be forwarded.
    cluster.set_delay("c", "a", Duration::from_millis(8));
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let b = spawn(&cluster, "b", &config).await;
    events.standby("b").await;
    wait_holder_everywhere(&cluster, "a").await;

    let c = client(&cluster, "c");
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let caller = tokio::spawn(async move {
        let mut last = 0;
        let mut after_done = 0;
        loop {
            let reply = c
                .call(CounterMsg::Add(1), TIMEOUT)
                .await
                .expect("every call is answered");
            assert_eq!(reply.calls, last + 1, "calls answered once each, in order");
            last = reply.calls;
            if after_done > 0 || done_rx.try_recv().is_ok() {
                after_done += 1;
                if after_done == 50 {
                    return last;
                }
            }
        }
    });

    wait_until("the client made some calls on a", || {
        let c = client(&cluster, "c");
        async move { c.call(CounterMsg::Get, TIMEOUT).await.unwrap().calls >= 30 }
    })
    .await;
    tracing::info!("--- take over to b while the client calls");
    let report = b.takeover(TIMEOUT).await.expect("takeover");
    assert_eq!(report.start, StartType::Takeover { from: "a".into() });
    assert!(report.holder.epoch > 1);
    done_tx.send(()).unwrap();

    let sent = caller.await.unwrap();
    wait_holder_everywhere(&cluster, "b").await;
    let final_state = client(&cluster, "a")
        .call(CounterMsg::Get, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(final_state.calls, sent, "the final state counts every call");
    assert_eq!(final_state.total, sent);
    events
        .wait_for("a retires", |e| {
            on(e, "a") && matches!(e.kind, EventKind::Retired { .. })
        })
        .await;
}

/// A call sent to the old holder before the steal that reaches it only after
/// it sent its state is forwarded to the new holder and counted there, once.
#[tokio::test]
async fn a_late_call_to_the_old_holder_is_forwarded() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = TakeoverConfig::default();
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let b = spawn(&cluster, "b", &config).await;
    events.standby("b").await;
    wait_holder_everywhere(&cluster, "a").await;
    let cc = client(&cluster, "c");
    assert_eq!(cc.call(CounterMsg::Add(1), TIMEOUT).await.unwrap().total, 1);

    tracing::info!("--- a call from c to a waits on the held link c -> a");
    cluster.hold("c", "a");
    let late = tokio::spawn({
        let cc = cc.clone();
        async move { cc.call(CounterMsg::Add(10), TIMEOUT).await }
    });
    wait_until("c's call is on the link to a", || {
        let queued = cluster.queued("c", "a");
        async move { queued == 1 }
    })
    .await;
    let report = start_takeover(&b);
    events
        .wait_for("a sent its state", |e| {
            on(e, "a") && matches!(e.kind, EventKind::StateSent { .. })
        })
        .await;
    cluster.release("c", "a");
    assert_eq!(
        late.await.unwrap().unwrap().total,
        11,
        "served by b, on top of the transferred state"
    );
    report.await.unwrap().expect("takeover");
    wait_holder_everywhere(&cluster, "b").await;
    assert_eq!(
        cc.call(CounterMsg::Get, TIMEOUT).await.unwrap(),
        CounterState {
            total: 11,
            calls: 2
        }
    );
}

/// Calls that reach the new holder while its state is on the way wait in the
/// buffer and are served, in order, once the state is in; calls over the
/// buffer's capacity get `CallErr::BufferFull` at once, and nothing is lost.
#[tokio::test]
async fn calls_during_takeover_are_buffered_and_a_full_buffer_rejects() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let config = TakeoverConfig::default().with_buffer_capacity(2);
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let b = spawn(&cluster, "b", &config).await;
    events.standby("b").await;
    let cb = client(&cluster, "b");
    assert_eq!(
        cb.call(CounterMsg::Add(10), TIMEOUT).await.unwrap().total,
        10
    );

    tracing::info!("--- hold the link a -> b so the state waits");
    cluster.hold("a", "b");
    let pending = start_takeover(&b);
    events
        .wait_for("b pulls", |e| {
            on(e, "b") && matches!(e.kind, EventKind::TakeoverStarted { .. })
        })
        .await;

    let first = send_call(&b, CounterMsg::Add(1));
    let second = send_call(&b, CounterMsg::Add(2));
    // Statuses go through b's mailbox, so once b answers, both calls before it are in the buffer.
    assert_eq!(phase(&b).await, Some(Phase::Pulling));
    for n in 3..6 {
        let rejected = cb.call(CounterMsg::Add(n), TIMEOUT).await;
        assert_eq!(rejected, Err(CallErr::BufferFull { capacity: 2 }));
    }
    events
        .wait_for("buffer full reported", |e| {
            matches!(e.kind, EventKind::BufferFull { capacity: 2 })
        })
        .await;

    tracing::info!("--- release the link: the state comes, the buffer is served in order");
    cluster.release("a", "b");
    let report = pending.await.unwrap().expect("takeover");
    assert_eq!(report.buffered, 2);
    assert_eq!(first.await.unwrap().unwrap().total, 11);
    assert_eq!(second.await.unwrap().unwrap().total, 13);
    events
        .wait_for("a retires", |e| {
            on(e, "a") && matches!(e.kind, EventKind::Retired { .. })
        })
        .await;
    assert_eq!(cb.call(CounterMsg::Get, TIMEOUT).await.unwrap().total, 13);
}

/// The seed's race: the old instance crashes on the retiring side, after it
/// sent its state and before the new holder finished, and its supervisor
/// restarts it. The restarted instance must not re-register: it finds the new
/// holder with a safe lookup and waits as a standby.
#[tokio::test]
async fn restart_on_the_retiring_side_does_not_re_register() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let config = TakeoverConfig::default();
    let mut events = Watcher::new(&config.events);
    let mut on_a = Supervised::start(&cluster, "a", &config).await;
    let a1 = on_a.current();
    events.registered("a").await;
    let b = spawn(&cluster, "b", &config).await;
    events.standby("b").await;
    let cb = client(&cluster, "b");
    assert_eq!(cb.call(CounterMsg::Add(7), TIMEOUT).await.unwrap().total, 7);

    cluster.hold("a", "b");
    let pending = start_takeover(&b);
    events
        .wait_for("a sent its state", |e| {
            on(e, "a") && matches!(e.kind, EventKind::StateSent { .. })
        })
        .await;
    tracing::info!("--- the retiring instance on a crashes");
    a1.get_cell().kill();
    let a2 = on_a.next_restart().await;
    let ev = events
        .wait_for("restarted a is standby", |e| {
            on(e, "a") && matches!(e.kind, EventKind::Standby { .. })
        })
        .await;
    let EventKind::Standby {
        holder: Some(holder),
    } = ev.kind
    else {
        panic!("unexpected {ev:?}");
    };
    assert_eq!(
        holder.node.as_str(),
        "b",
        "the restarted instance sees the new holder"
    );
    assert_eq!(phase(&a2).await, Some(Phase::Standby));

    cluster.release("a", "b");
    let report = pending.await.unwrap().expect("takeover");
    assert_eq!(report.start, StartType::Takeover { from: "a".into() });
    wait_holder_everywhere(&cluster, "b").await;
    assert_eq!(cb.call(CounterMsg::Get, TIMEOUT).await.unwrap().total, 7);
    assert_eq!(
        phase(&a2).await,
        Some(Phase::Standby),
        "never re-registered"
    );
}

/// The same race one step earlier: the holder crashes and restarts while the
/// steal is still on its way to its node. The safe lookup waits for the
/// change in flight, sees the new holder and stays a standby; the new holder,
/// whose old holder is gone, runs as a failover. Time is paused, so "the
/// restarted instance had every chance to register" is exact, not a sleep.
#[tokio::test(start_paused = true)]
async fn restart_while_the_steal_is_in_flight_waits_for_it() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let config = TakeoverConfig::default();
    let mut events = Watcher::new(&config.events);
    let mut on_a = Supervised::start(&cluster, "a", &config).await;
    let a1 = on_a.current();
    events.registered("a").await;
    let b = spawn(&cluster, "b", &config).await;
    events.standby("b").await;

    cluster.hold("b", "a");
    let pending = start_takeover(&b);
    events
        .wait_for("b stole the name", |e| {
            on(e, "b") && matches!(e.kind, EventKind::TakeoverStarted { .. })
        })
        .await;
    tracing::info!("--- the holder on a crashes; the steal is still on the link b -> a");
    a1.get_cell().kill();
    let a2 = on_a.next_restart().await;
    settle().await;
    tracing::info!("--- everything idle; now the steal reaches a");
    cluster.release("b", "a");
    let ev = events
        .wait_for("restarted a is standby", |e| {
            on(e, "a") && matches!(e.kind, EventKind::Standby { .. })
        })
        .await;
    assert!(
        matches!(ev.kind, EventKind::Standby { holder: Some(ref h) } if h.node.as_str() == "b")
    );
    let report = pending.await.unwrap().expect("the new holder runs");
    assert_eq!(
        report.start,
        StartType::Failover {
            from: "a".into(),
            checkpoint: None
        }
    );
    wait_holder_everywhere(&cluster, "b").await;
    assert_eq!(phase(&a2).await, Some(Phase::Standby));
}

/// A state that fails to decode aborts the takeover with a typed error; the
/// old instance keeps the name and its state, and a call made during the
/// attempt is still answered exactly once.
#[tokio::test]
async fn bad_state_aborts_and_the_old_holder_keeps_serving() {
    bad_state_aborts(TakeoverConfig::default()).await;
}

/// The same with the state sent in parts of one byte.
#[tokio::test]
async fn bad_state_in_parts_aborts_and_the_old_holder_keeps_serving() {
    bad_state_aborts(TakeoverConfig::default().with_state_part_bytes(1)).await;
}
async fn bad_state_aborts(config: TakeoverConfig) {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let (b, _) = TakeoverServer::new(
        NAME,
        Counter {
            reject_decode: true,
            ..Counter::default()
        },
        cluster.registry("b"),
        config.clone(),
    )
    .spawn(())
    .await
    .unwrap();
    events.standby("b").await;
    let cb = client(&cluster, "b");
    assert_eq!(cb.call(CounterMsg::Add(4), TIMEOUT).await.unwrap().total, 4);

    cluster.hold("a", "b");
    let pending = start_takeover(&b);
    events
        .wait_for("a sent its state", |e| {
            on(e, "a") && matches!(e.kind, EventKind::StateSent { .. })
        })
        .await;
    let during = send_call(&b, CounterMsg::Add(1));
    assert_eq!(phase(&b).await, Some(Phase::Pulling));
    cluster.release("a", "b");

    let err = pending.await.unwrap().expect_err("the takeover must fail");
    assert!(
        matches!(err, TakeoverErr::State(StateCodecErr::Decode(_))),
        "{err}"
    );
    events
        .wait_for("a serves again", |e| {
            on(e, "a") && matches!(e.kind, EventKind::HandoverResumed { .. })
        })
        .await;
    assert_eq!(
        during.await.unwrap().unwrap().total,
        5,
        "the buffered call went back to a"
    );
    wait_holder_everywhere(&cluster, "a").await;
    assert_eq!(phase(&b).await, Some(Phase::Standby));
    assert_eq!(
        cb.call(CounterMsg::Get, TIMEOUT).await.unwrap(),
        CounterState { total: 5, calls: 2 }
    );
}

/// The old node crashes in the middle of a takeover, before its state
/// arrives: the new instance keeps the name, starts as a failover and reports
/// that the state was lost; nothing hangs.
#[tokio::test]
async fn old_node_crash_mid_takeover_ends_as_failover() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = TakeoverConfig::default();
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let b = spawn(&cluster, "b", &config).await;
    events.standby("b").await;
    let cc = client(&cluster, "c");
    assert_eq!(cc.call(CounterMsg::Add(9), TIMEOUT).await.unwrap().total, 9);

    cluster.hold("b", "a");
    let pending = start_takeover(&b);
    events
        .wait_for("b pulls", |e| {
            on(e, "b") && matches!(e.kind, EventKind::TakeoverStarted { .. })
        })
        .await;
    cluster.crash("a");

    let report = pending.await.unwrap().expect("the new instance runs");
    assert_eq!(
        report.start,
        StartType::Failover {
            from: "a".into(),
            checkpoint: None
        }
    );
    events
        .wait_for("state lost reported", |e| {
            on(e, "b") && matches!(e.kind, EventKind::StateLost { .. })
        })
        .await;
    wait_holder_everywhere(&cluster, "b").await;
    assert_eq!(
        cc.call(CounterMsg::Get, TIMEOUT).await.unwrap().total,
        0,
        "the state went down with a"
    );
}

/// A takeover across an (undetected) partition times out with a typed error
/// and is rolled back: exactly one holder is left, before and after the heal.
#[tokio::test]
async fn takeover_across_a_partition_times_out_and_leaves_one_holder() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = TakeoverConfig::default().with_pull_timeout(Duration::from_millis(300));
    let mut events = Watcher::new(&config.events);
    let a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let b = spawn(&cluster, "b", &config).await;
    events.standby("b").await;

    cluster.partition("a", "b");
    let err = b
        .takeover(TIMEOUT)
        .await
        .expect_err("no state can cross the partition");
    assert!(matches!(err, TakeoverErr::Timeout { .. }), "{err}");
    wait_holder_everywhere(&cluster, "a").await;
    assert_eq!(phase(&a).await, Some(Phase::Holder));
    assert_eq!(phase(&b).await, Some(Phase::Standby));

    cluster.heal_all();
    wait_holder_everywhere(&cluster, "a").await;
    assert_eq!(phase(&a).await, Some(Phase::Holder));
    assert_eq!(phase(&b).await, Some(Phase::Standby));
    assert_eq!(
        client(&cluster, "b")
            .call(CounterMsg::Add(1), TIMEOUT)
            .await
            .unwrap()
            .total,
        1
    );
}
