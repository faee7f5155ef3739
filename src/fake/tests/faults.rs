//! The faults of real machines: a paused node, a frame over a link's limit,
//! a slow dial after a restart. Time is tokio's paused clock: the detection
//! and dial delays are logic here, not waits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{holder_in, idle, recorder, wait_event, wait_until, wire};
use crate::fake::FakeCluster;
use crate::registry::Transport;
use crate::{NodeName, Registry, RegistryEvent};

fn node_down(who: &'static str) -> impl Fn(&RegistryEvent) -> bool {
    move |ev| matches!(ev, RegistryEvent::NodeDown(n) if n.as_str() == who)
}

fn node_up(who: &'static str) -> impl Fn(&RegistryEvent) -> bool {
    move |ev| matches!(ev, RegistryEvent::NodeUp(n) if n.as_str() == who)
}

/// A paused node gets nothing and sends nothing while messages to it queue;
/// its peers see it down only after the detection time; on resume what
/// queued is delivered in order both ways and the peers see it (and its
/// registrations) again.
#[tokio::test(start_paused = true)]
async fn a_paused_node_is_seen_down_late_and_gets_what_queued_on_resume() {
    let cluster = FakeCluster::new(["a", "b"]);
    cluster.set_detection_time(Duration::from_secs(1));
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let on_a = recorder("a", log.clone()).await;
    a.register("x", idle().await).await.expect("register x");
    wait_until("b sees x", || holder_in(&cluster, "b", "x").is_some()).await;
    let mut b_events = b.subscribe();

    tracing::info!("--- pause a; b sends to it and a registers y");
    cluster.pause("a");
    assert!(cluster.is_paused("a"));
    for i in 0..3 {
        b.send_wire(&on_a, wire(format!("m{i}"))).expect("sent");
    }
    a.register("y", idle().await).await.expect("register y");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(cluster.queued("b", "a"), 3);
    assert!(
        log.lock().unwrap().is_empty(),
        "a paused node got a message"
    );
    assert_eq!(holder_in(&cluster, "b", "y"), None);
    assert!(
        b.live_nodes().contains(&NodeName::new("a")),
        "down too early"
    );

    tracing::info!("--- the detection time passes");
    wait_event(&mut b_events, "b sees a down", node_down("a")).await;
    assert_eq!(holder_in(&cluster, "b", "x"), None);
    assert!(!b.live_nodes().contains(&NodeName::new("a")));
    assert!(log.lock().unwrap().is_empty());

    tracing::info!("--- resume a");
    cluster.resume("a");
    wait_event(&mut b_events, "b sees a again", node_up("a")).await;
    wait_until("what queued reaches a, in order", || {
        *log.lock().unwrap() == ["m0", "m1", "m2"]
    })
    .await;
    wait_until("b sees x and y", || {
        holder_in(&cluster, "b", "x").is_some() && holder_in(&cluster, "b", "y").is_some()
    })
    .await;
    assert!(b.live_nodes().contains(&NodeName::new("a")));
}

/// A frame over a link's limit closes the session: both sides see each
/// other down at once, everything in flight on it both ways is lost, and a
/// new session syncs both views; frames within the limit pass.
#[tokio::test(start_paused = true)]
async fn an_oversized_frame_closes_the_session() {
    let cluster = FakeCluster::new(["a", "b"]);
    let (a, b) = (cluster.node("a"), cluster.node("b"));
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let on_b = recorder("b", log.clone()).await;
    let on_a = recorder("a", log.clone()).await;
    a.register("x", idle().await).await.expect("register x");
    wait_until("b sees x", || holder_in(&cluster, "b", "x").is_some()).await;
    cluster.set_frame_limit("a", "b", Some(64));

    a.send_wire(&on_b, wire("small".into())).expect("sent");
    wait_until("a small frame passes", || log.lock().unwrap().len() == 1).await;

    tracing::info!("--- a frame over the limit, with more in flight both ways");
    let (mut a_events, mut b_events) = (a.subscribe(), b.subscribe());
    cluster.hold("a", "b");
    cluster.hold("b", "a");
    a.send_wire(&on_b, wire("big".repeat(30))).expect("sent");
    a.send_wire(&on_b, wire("after".into())).expect("sent");
    b.send_wire(&on_a, wire("back".into())).expect("sent");
    cluster.release("a", "b");
    wait_event(&mut b_events, "b sees a down", node_down("a")).await;
    wait_event(&mut a_events, "a sees b down", node_down("b")).await;
    cluster.release("b", "a");
    wait_event(&mut b_events, "b sees a again", node_up("a")).await;
    wait_event(&mut a_events, "a sees b again", node_up("b")).await;
    wait_until("the links are empty", || {
        cluster.queued("a", "b") == 0 && cluster.queued("b", "a") == 0
    })
    .await;
    assert_eq!(
        *log.lock().unwrap(),
        ["small"],
        "in flight on the closed session"
    );
    assert!(
        holder_in(&cluster, "b", "x").is_some(),
        "the new session synced"
    );

    a.send_wire(&on_b, wire("again".into())).expect("sent");
    wait_until("the new session carries frames", || {
        log.lock().unwrap().len() == 2
    })
    .await;
}

/// A restarted node whose dial to one peer is slow syncs with the others at
/// once, but with that peer only after the delay: until then each counts the
/// other down and what would cross is dropped.
#[tokio::test(start_paused = true)]
async fn a_slow_dial_keeps_one_peer_apart_after_a_restart() {
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let (a, b, c) = (cluster.node("a"), cluster.node("b"), cluster.node("c"));
    b.register("on_b", idle().await)
        .await
        .expect("register on b");
    c.register("on_c", idle().await)
        .await
        .expect("register on c");
    wait_until("a sees both", || {
        holder_in(&cluster, "a", "on_b").is_some() && holder_in(&cluster, "a", "on_c").is_some()
    })
    .await;

    tracing::info!("--- crash a; it restarts with a slow dial to b");
    cluster.crash("a");
    cluster.delay_dial("a", "b", Duration::from_secs(5));
    let mut b_events = b.subscribe();
    cluster.restart("a");
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let on_a = recorder("a", log.clone()).await;
    wait_until("a syncs with c", || {
        holder_in(&cluster, "a", "on_c").is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(holder_in(&cluster, "a", "on_b"), None);
    assert!(!a.live_nodes().contains(&NodeName::new("b")));
    b.send_wire(&on_a, wire("lost".into())).expect("sent");
    wait_until("the link is empty", || cluster.queued("b", "a") == 0).await;
    assert!(
        log.lock().unwrap().is_empty(),
        "crossed a session not yet up"
    );

    tracing::info!("--- the dial completes");
    wait_event(&mut b_events, "b sees a up", node_up("a")).await;
    wait_until("a sees b's registration", || {
        holder_in(&cluster, "a", "on_b").is_some()
    })
    .await;
    assert!(a.live_nodes().contains(&NodeName::new("b")));
    b.send_wire(&on_a, wire("now".into())).expect("sent");
    wait_until("the session carries frames", || {
        *log.lock().unwrap() == ["now"]
    })
    .await;
}

/// An epoch-stamping counter: every reply says which epoch answered it.
struct Stamped;

impl crate::TakeoverActor for Stamped {
    type Msg = u64;
    type Reply = (Option<crate::Epoch>, u64);
    type State = u64;
    type Arguments = ();
    type Info = ();

    async fn init(
        &self,
        _: &crate::TakeoverCtx<Self>,
        _: (),
    ) -> Result<u64, ractor::ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        ctx: &crate::TakeoverCtx<Self>,
        add: u64,
        total: &mut u64,
    ) -> Result<Self::Reply, ractor::ActorProcessingErr> {
        *total += add;
        Ok((ctx.epoch(), *total))
    }
}

/// The hung holder of real machines (issue 10's target): `a` holds, and
/// hangs; a call from `c` queues towards it; `b` sees `a` down, fails over
/// and answers a second call from `c`. When `a` resumes it must not answer
/// the queued call under its old epoch: its lease is void until `b`'s
/// answer to its resume arrives, which comes after `b`'s registration, so
/// by then `a` sees a newer holder and does not serve.
#[tokio::test(start_paused = true)]
async fn a_resumed_hung_holder_does_not_answer_after_its_failover() {
    use crate::{GlobalClient, Placement, TakeoverConfig, TakeoverServer};
    let cluster = FakeCluster::new(["a", "b", "c"]);
    cluster.set_detection_time(Duration::from_millis(300));
    let config = TakeoverConfig::default().with_placement(
        Placement::parse("a > b > c").with_failover_delay(Duration::from_millis(50)),
    );
    let srv = |n: &str| TakeoverServer::new("n", Stamped, cluster.registry(n), config.clone());
    let (_on_a, _) = srv("a").spawn(()).await.expect("spawn on a");
    let (_on_b, _) = srv("b").spawn(()).await.expect("spawn on b");
    let on_c = GlobalClient::<Stamped>::new("n", cluster.registry("c"));
    let t = Duration::from_secs(5);
    let (first, _) = on_c.call(1, t).await.expect("a answers");

    tracing::info!("--- a hangs; a call from c queues towards it");
    cluster.pause("a");
    let queued = {
        let on_c = on_c.clone();
        tokio::spawn(async move { on_c.call(10, t).await })
    };
    wait_until("the call is on c -> a", || cluster.queued("c", "a") == 1).await;

    tracing::info!("--- b fails over and answers");
    let second = GlobalClient::<Stamped>::new("n", cluster.registry("c"));
    let deadline = tokio::time::Instant::now() + t;
    let (failover, _) = loop {
        match second.call(100, Duration::from_millis(200)).await {
            Ok((Some(e), total)) if Some(e) > first => break (Some(e), total),
            _ if tokio::time::Instant::now() > deadline => panic!("b never failed over"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };

    tracing::info!("--- a resumes");
    cluster.resume("a");
    let answer = queued.await.expect("call task");
    assert!(
        !matches!(answer, Ok((e, _)) if e < failover),
        "the resumed old holder answered {answer:?} after the failover at {failover:?} had"
    );
}

/// A holder on a paused node has no lease: a call from its own node (which
/// no link holds) waits in the buffer (`LeaseLost`) and is answered once
/// the node resumes (`LeaseRegained`; no peer saw it down, so no re-sync is
/// owed). A call whose caller gave up meanwhile is not applied.
#[tokio::test(start_paused = true)]
async fn a_paused_holder_holds_its_calls_until_its_lease_is_back() {
    use crate::{EventHub, EventKind, GlobalClient, TakeoverConfig, TakeoverServer};
    let cluster = FakeCluster::new(["a", "b"]);
    cluster.set_detection_time(Duration::from_secs(60));
    let events = EventHub::new(1024);
    let mut seen = events.subscribe();
    let config = TakeoverConfig::default().with_events(events);
    let (_on_a, _) = TakeoverServer::new("n", Stamped, cluster.registry("a"), config)
        .spawn(())
        .await
        .expect("spawn on a");
    let on_a = GlobalClient::<Stamped>::new("n", cluster.registry("a"));
    let t = Duration::from_secs(5);
    let (epoch, total) = on_a.call(1, t).await.expect("a answers");
    assert_eq!(total, 1);

    cluster.pause("a");
    // Gives up before the resume: must not be applied.
    let gave_up = on_a.call(10, Duration::from_millis(100)).await;
    assert!(
        matches!(gave_up, Err(crate::CallErr::Timeout)),
        "{gave_up:?}"
    );
    let held = {
        let on_a = on_a.clone();
        tokio::spawn(async move { on_a.call(100, t).await })
    };
    let deadline = tokio::time::Instant::now() + t;
    loop {
        match tokio::time::timeout_at(deadline, seen.recv()).await {
            Ok(Ok(ev)) if matches!(ev.kind, EventKind::LeaseLost) => break,
            Ok(Ok(_)) => continue,
            other => panic!("no LeaseLost: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!held.is_finished(), "a paused holder answered");

    cluster.resume("a");
    let answer = held
        .await
        .expect("call task")
        .expect("answered after resume");
    assert_eq!(
        answer,
        (epoch, 101),
        "the call that gave up was not applied"
    );
    loop {
        match tokio::time::timeout_at(deadline, seen.recv()).await {
            Ok(Ok(ev)) if matches!(ev.kind, EventKind::LeaseRegained) => break,
            Ok(Ok(_)) => continue,
            other => panic!("no LeaseRegained: {other:?}"),
        }
    }
}

/// A slow dial of an earlier life of a node (it crashed before the dial
/// completed) neither completes nor cancels the slow dial of its next life:
/// that session comes up after its own delay and syncs both views. Seed
/// 2324582863 of the fault suite: the old dial's timer took the new dial's
/// place, so the link carried frames but the views never synced; the
/// restarted node never saw the peer's registration, and a split-brain
/// winner there could never confirm the loser's merge.
#[tokio::test(start_paused = true)]
async fn a_dial_of_an_earlier_restart_does_not_cancel_the_next_one() {
    let cluster = FakeCluster::new(["a", "b"]);
    let b = cluster.node("b");
    b.register("on_b", idle().await)
        .await
        .expect("register on b");
    wait_until("a sees on_b", || holder_in(&cluster, "a", "on_b").is_some()).await;

    tracing::info!("--- a restarts with a 2 s dial to b, and crashes within it");
    cluster.crash("a");
    cluster.delay_dial("a", "b", Duration::from_secs(2));
    cluster.restart("a");
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.crash("a");

    tracing::info!("--- a restarts again, with a 3 s dial to b");
    cluster.delay_dial("a", "b", Duration::from_secs(3));
    cluster.restart("a");
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let on_a = recorder("a", log.clone()).await;
    // Past the first dial's end (2 s after the first restart).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(holder_in(&cluster, "a", "on_b"), None);
    b.send_wire(&on_a, wire("early".into())).expect("sent");
    wait_until("the link is empty", || cluster.queued("b", "a") == 0).await;
    assert!(
        log.lock().unwrap().is_empty(),
        "crossed a session not yet up: the first dial's end completed the second"
    );

    tracing::info!("--- the second dial completes");
    wait_until("a sees b's registration", || {
        holder_in(&cluster, "a", "on_b").is_some()
    })
    .await;
    assert!(cluster.node("a").live_nodes().contains(&NodeName::new("b")));
}
