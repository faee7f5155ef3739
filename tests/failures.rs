//! What a caller sees when things fail, on the fake cluster: a takeover that
//! keeps failing backs off and reports no failover that did not happen; a
//! handler that panics answers its caller at once and the instance stops,
//! its queued calls answered; a call on a holder whose node is marked down
//! ends with `HolderDown`, and a call made while no holder is live waits for
//! the next one.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr};
use ractor_takeover::event::EventKind;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::registry::NodeName;
use ractor_takeover::*;
use serde::{Deserialize, Serialize};
use support::*;

const FAILOVER_DELAY: Duration = Duration::from_millis(100);
const STANDBY_GRACE: Duration = Duration::from_millis(300);

fn placement(spec: &str) -> Placement {
    Placement::parse(spec)
        .with_failover_delay(FAILOVER_DELAY)
        .with_standby_grace(STANDBY_GRACE)
}

/// A takeover whose state never decodes (`a` refuses every state) is tried
/// again and again: each wait is the placement's backoff for that many
/// failures in a row (so it grows, and stops growing at the cap), each
/// failure is published with its reason, the old holder never reports a
/// failover (nothing failed over; it serves on under its own epoch), and a
/// caller keeps being answered, in order, all along.
#[tokio::test]
async fn a_takeover_that_keeps_failing_backs_off_and_reports_no_failover() {
    init_tracing();
    let placement = placement("a > b")
        .with_retry_after(Duration::from_millis(40))
        .with_retry_max(Duration::from_millis(320));
    let config = TakeoverConfig::default().with_placement(placement.clone());
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let mut events = Watcher::new(&config.events);
    tracing::info!("--- b holds (a is not running yet)");
    let _b = spawn(&cluster, "b", &config).await;
    assert_eq!(events.registered("b").await, StartType::Normal);
    let epoch_b = cluster.holders(NAME)[&NodeName::from("b")]
        .as_ref()
        .map(|h| h.epoch);
    let caller = Caller::start(client(&cluster, "c"), 0);
    caller.wait_calls(10).await;
    // For the log only: the longest wait between two answers of a second
    // caller while the takeover keeps failing (how long each try stalls).
    let stop_gaps = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gaps = tokio::spawn({
        let (client, stop) = (client(&cluster, "c"), stop_gaps.clone());
        async move {
            let mut longest = Duration::ZERO;
            let mut last = tokio::time::Instant::now();
            while !stop.load(Ordering::SeqCst) {
                client
                    .call(CounterMsg::Get, TIMEOUT)
                    .await
                    .expect("answered");
                longest = longest.max(last.elapsed());
                last = tokio::time::Instant::now();
            }
            longest
        }
    });
    tracing::info!("--- a starts, outranks b, and takes over with a state it cannot decode");
    let _a = TakeoverServer::new(
        NAME,
        Counter {
            reject_decode: true,
            ..Counter::default()
        },
        cluster.registry("a"),
        config.clone(),
    )
    .spawn(())
    .await
    .expect("spawn a");
    let mut waits = Vec::new();
    for n in 1..=6u32 {
        let ev = events
            .wait_for(&format!("failure {n} of a's takeover"), |e| {
                on(e, "a") && matches!(e.kind, EventKind::TakeoverFailed { .. })
            })
            .await;
        let EventKind::TakeoverFailed {
            error,
            failures,
            retry_in,
        } = ev.kind
        else {
            unreachable!()
        };
        tracing::info!(failures, ?retry_in, %error, "--- takeover failed");
        assert_eq!(failures, n, "failures are counted in a row");
        assert!(
            matches!(error, TakeoverErr::State(StateCodecErr::Decode(_))),
            "the event says why: {error}"
        );
        assert_eq!(retry_in, placement.retry_delay(n, &"a".into()));
        waits.push(retry_in);
        let before = caller.calls();
        caller.wait_calls(before + 5).await;
    }
    tracing::info!(?waits, "--- waits between tries");
    assert!(
        waits[3] > waits[0],
        "the backoff grows: {waits:?} (each in [half, all] of 40 ms doubled)"
    );
    assert!(
        waits.iter().all(|w| *w <= Duration::from_millis(320)),
        "capped at retry_max: {waits:?}"
    );
    let seen = events.drain();
    let b_reported: Vec<_> = registrations(&seen)
        .into_iter()
        .filter(|(node, _)| node == "b")
        .collect();
    assert!(
        b_reported.is_empty(),
        "the old holder reports no (failover) start when nothing failed over: {b_reported:?}"
    );
    let now_b = cluster.holders(NAME)[&NodeName::from("c")]
        .as_ref()
        .map(|h| (h.node.clone(), h.epoch));
    assert_eq!(now_b.as_ref().map(|h| h.0.as_str()), Some("b"));
    assert_eq!(
        now_b.map(|h| h.1),
        epoch_b,
        "b serves on under its own epoch: a rolled-back steal takes it no new one"
    );
    stop_gaps.store(true, Ordering::SeqCst);
    let longest = gaps.await.expect("the second caller ran");
    tracing::info!(
        ?longest,
        "--- longest gap between answers while the takeover kept failing"
    );
    let calls = caller.stop().await;
    tracing::info!(calls, "--- the caller was answered throughout");
}

/// A test server whose handler panics or fails on request.
#[derive(Clone, Default)]
struct Fragile;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum FragileMsg {
    Add(u64),
    Panic,
}

impl TakeoverActor for Fragile {
    type Msg = FragileMsg;
    type Reply = u64;
    type State = u64;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: &TakeoverCtx<Self>,
        msg: FragileMsg,
        total: &mut u64,
    ) -> Result<u64, ActorProcessingErr> {
        match msg {
            FragileMsg::Add(n) => {
                *total += n;
                Ok(*total)
            }
            FragileMsg::Panic => panic!("fragile handler asked to panic"),
        }
    }
}

const FRAGILE: &str = "fragile";

/// A handler that panics answers its caller at once with `Panicked` (a
/// caller on another node, whose answer travels the wire, included), and a
/// call queued behind it gets `InstanceStopped` (it was not handled). The
/// instance gives the name up and fails (its supervisor sees `ActorFailed`);
/// a concurrent caller's call goes on to the standby that fails over, and is
/// answered there.
#[tokio::test]
async fn a_panicking_handler_answers_its_callers_at_once() {
    init_tracing();
    let config = TakeoverConfig::default().with_placement(placement("a > b"));
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let mut events = Watcher::new(&config.events);
    let failures: Failures = Arc::default();
    let (watchdog, _) = Actor::spawn(None, Watchdog, failures.clone())
        .await
        .expect("watchdog");
    let (a, a_done) = TakeoverServer::new(FRAGILE, Fragile, cluster.registry("a"), config.clone())
        .spawn_linked((), watchdog.get_cell())
        .await
        .expect("spawn a");
    events
        .wait_for("a registers", |e| {
            on(e, "a") && matches!(e.kind, EventKind::Registered { .. })
        })
        .await;
    let (_b, _) = TakeoverServer::new(FRAGILE, Fragile, cluster.registry("b"), config.clone())
        .spawn(())
        .await
        .expect("spawn b");
    let remote = GlobalClient::<Fragile>::new(FRAGILE, cluster.registry("c"));
    assert_eq!(remote.call(FragileMsg::Add(2), TIMEOUT).await, Ok(2));

    tracing::info!(
        "--- a panic from a remote caller, a call queued behind it, a concurrent remote caller"
    );
    // Both straight into a's mailbox, in this order: the panic, then a
    // call that waits behind it.
    let (tx1, panicked) = ractor::concurrency::oneshot();
    let (tx2, queued) = ractor::concurrency::oneshot();
    a.send_call(FragileMsg::Panic, tx1.into())
        .expect("a takes the panic");
    a.send_call(FragileMsg::Add(1), tx2.into())
        .expect("a takes the call behind it");
    let concurrent = tokio::spawn({
        let remote = remote.clone();
        async move { remote.call(FragileMsg::Add(5), TIMEOUT).await }
    });
    let panicked = panicked.await.expect("the panicking call is answered");
    assert!(
        matches!(&panicked, Err(CallErr::Panicked(m)) if m.contains("fragile handler asked to panic")),
        "the caller gets the panic, typed: {panicked:?}"
    );
    let queued = queued.await.expect("the queued call is answered");
    assert!(
        matches!(queued, Err(CallErr::InstanceStopped(_))),
        "a call queued behind the panic was not handled, and says so: {queued:?}"
    );
    a_done.await.expect("a stopped");
    wait_until("the watchdog saw a fail", || async {
        !failures.lock().unwrap().is_empty()
    })
    .await;
    tracing::info!(failures = ?failures.lock().unwrap(), "--- a failed, as a panicking ractor actor does");
    events
        .wait_for("b fails over", |e| {
            on(e, "b") && matches!(e.kind, EventKind::Registered { .. })
        })
        .await;
    let concurrent = concurrent.await.expect("the concurrent caller ran");
    assert_eq!(
        concurrent,
        Ok(5),
        "the concurrent call reached b, the next holder (its state starts at 0)"
    );

    tracing::info!("--- a remote caller's own call panics: typed, at once, over the wire");
    let answer = remote.call(FragileMsg::Panic, TIMEOUT).await;
    assert!(
        matches!(&answer, Err(CallErr::Panicked(_))),
        "a remote caller gets the panic, typed: {answer:?}"
    );
}

/// A call waiting on a hung holder ends with `HolderDown` as soon as the
/// caller's node marks the holder's node down (the detection time here is
/// 200 ms, the deadline 20 s), and the next call waits for the standby that
/// fails over and is answered by it (a client with retries off).
#[tokio::test]
async fn a_call_on_a_holder_marked_down_ends_with_holder_down() {
    init_tracing();
    let config = TakeoverConfig::default().with_placement(placement("a > b"));
    let cluster = FakeCluster::new(["a", "b", "c"]);
    cluster.set_detection_time(Duration::from_millis(200));
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    assert_eq!(events.registered("a").await, StartType::Normal);
    let _b = spawn(&cluster, "b", &config).await;
    events.standby("b").await;
    // Retries off: with them on, the call would be sent again to b, under
    // its key (`tests/exactly_once.rs`), and this is about the error.
    let client = client(&cluster, "c").with_retries(false);
    client
        .call(CounterMsg::Add(1), TIMEOUT)
        .await
        .expect("a answers");

    tracing::info!("--- a hangs; a call from c waits on it");
    cluster.pause("a");
    let waiting = client.call(CounterMsg::Add(1), TIMEOUT).await;
    assert_eq!(
        waiting,
        Err(CallErr::HolderDown { node: "a".into() }),
        "the call ends when c marks a down, not at its deadline"
    );
    tracing::info!("--- a new call waits for b and reaches it");
    let next = client.call(CounterMsg::Get, TIMEOUT).await;
    assert!(next.is_ok(), "the next holder answers: {next:?}");
    assert_eq!(
        client.whereis().map(|h| h.node.to_string()),
        Some("b".to_string())
    );
}

/// Calls made right after the holder's node crashed do not fail at once:
/// each waits, within its deadline, for the standby that fails over, and
/// every one of them is answered there, once, in order.
#[tokio::test]
async fn calls_right_after_a_crash_wait_for_the_next_holder() {
    init_tracing();
    let config = TakeoverConfig::default().with_placement(placement("a > b"));
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    assert_eq!(events.registered("a").await, StartType::Normal);
    let _b = spawn(&cluster, "b", &config).await;
    events.standby("b").await;
    let client = client(&cluster, "c");
    client
        .call(CounterMsg::Add(1), TIMEOUT)
        .await
        .expect("a answers");

    tracing::info!("--- crash a, then call from c at once, many times");
    cluster.crash("a");
    let answered = Arc::new(AtomicU64::new(0));
    let mut calls = Vec::new();
    for _ in 0..50 {
        let client = client.clone();
        let answered = answered.clone();
        calls.push(tokio::spawn(async move {
            let reply = client.call(CounterMsg::Add(1), TIMEOUT).await;
            if reply.is_ok() {
                answered.fetch_add(1, Ordering::SeqCst);
            }
            reply
        }));
    }
    let mut counts = Vec::new();
    for call in calls {
        let reply = call.await.expect("the call ran");
        let reply = reply.unwrap_or_else(|e| panic!("a call right after the crash failed: {e}"));
        counts.push(reply.calls);
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=50).collect::<Vec<u64>>(),
        "b (from its own empty state) handled each call once"
    );
    assert_eq!(answered.load(Ordering::SeqCst), 50);
}
