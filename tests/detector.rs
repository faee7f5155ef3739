//! The failure detector as the fake cluster models it, beside the
//! real-process tests `real_detector_load` and `real_client_only`: a node
//! is seen down only when its heartbeats stop (a crash, a pause), never
//! because what it sends is slow to arrive (a big transfer or a registry
//! storm ahead on the link, a busy node), and a client node that hangs
//! pauses no holder and no lookup.

mod support;

use std::time::Duration;

use ractor_takeover::event::EventKind;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::*;
use support::*;

/// Both links between the holder `a` and its standby `b` are held for
/// three detection times (everything between them queues, as behind a
/// big transfer or a storm on a session): `b` does not fail over, and
/// once the links flow again `a` answers under the epoch it had.
#[tokio::test(start_paused = true)]
async fn a_slow_link_does_not_make_a_node_down() {
    init_tracing();
    let config = TakeoverConfig::default().with_placement(Placement::parse("a > b"));
    let cluster = FakeCluster::new(["a", "b"]);
    let detection = Duration::from_secs(1);
    cluster.set_detection_time(detection);
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    assert_eq!(events.registered("a").await, StartType::Normal);
    let _b = spawn(&cluster, "b", &config).await;
    events.standby("b").await;
    let client = client(&cluster, "b");
    client
        .call(CounterMsg::Add(1), TIMEOUT)
        .await
        .expect("a answers");
    let epoch = client.whereis().expect("a holder").epoch;

    tracing::info!("--- hold both links a-b for three detection times");
    cluster.hold("a", "b");
    cluster.hold("b", "a");
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.call(CounterMsg::Add(1), TIMEOUT).await })
    };
    tokio::time::sleep(detection * 3).await;
    cluster.release("a", "b");
    cluster.release("b", "a");
    let answer = call
        .await
        .expect("the call ran")
        .expect("a answers after the hold");
    assert_eq!(answer.total, 2);
    settle().await;
    let moved: Vec<_> = events
        .drain()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::Registered { .. }))
        .collect();
    assert!(
        moved.is_empty(),
        "b took the name of a live node: {moved:?}"
    );
    assert_eq!(
        client.whereis().map(|h| (h.node.to_string(), h.epoch)),
        Some(("a".into(), epoch))
    );
}

/// A client node `k` (it only calls) hangs: the holder on `a` answers the
/// calls of a client on `b` all along (no `LeaseLost`), and a safe lookup
/// on `b` answers while `k` is still paused.
#[tokio::test(start_paused = true)]
async fn a_hung_client_node_pauses_nobody() {
    init_tracing();
    let config = TakeoverConfig::default().with_placement(Placement::parse("a > b"));
    let cluster = FakeCluster::new(["a", "b", "k"]);
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    assert_eq!(events.registered("a").await, StartType::Normal);
    let on_k = client(&cluster, "k");
    on_k.call(CounterMsg::Add(1), TIMEOUT)
        .await
        .expect("a answers k");

    tracing::info!("--- k hangs");
    cluster.pause("k");
    let on_b = client(&cluster, "b");
    for i in 2..=20 {
        let answer = on_b
            .call(CounterMsg::Add(1), TIMEOUT)
            .await
            .expect("a answers b");
        assert_eq!(answer.total, i);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let found = cluster
        .registry("b")
        .safe_lookup(NAME, TIMEOUT)
        .await
        .expect("the lookup answers");
    assert!(found.is_some_and(|r| r.node().as_str() == "a"));
    assert!(cluster.is_paused("k"), "the lookup answered while k hung");
    let lost: Vec<_> = events
        .drain()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::LeaseLost))
        .collect();
    assert!(lost.is_empty(), "a hung client paused the holder: {lost:?}");
    cluster.resume("k");
}
