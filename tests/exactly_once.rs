//! Exactly-once calls across retries on the fake cluster: a call whose
//! outcome the client cannot know (its answer was on the way when the
//! holder's node went down in the client's view) is sent again under the
//! same key, and the window of answered calls answers it with its original
//! reply instead of running it again: on the same holder, after a takeover,
//! after a crash failover from a checkpoint taken after every call. Past the
//! window, the retry is refused with a typed error, unapplied. The
//! real-process case is `tests/real_exactly_once.rs`.
//!
//! Each test makes the outcome unknown the same way: the holder's link to
//! the client is held, so the holder applies the call and its answer waits
//! on the link; then the client's node sees the holder's node go down
//! (`split`, or a crash), and the call ends `HolderDown` inside the client.

mod support;

use ractor_takeover::event::EventKind;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::*;
use support::*;

/// Starts `Add(10)` from `client` with the link `holder -> client` held,
/// and returns once the holder applied it (its answer waits on the link).
async fn applied_with_answer_held(
    cluster: &FakeCluster,
    holder: &str,
    client: &GlobalClient<Counter>,
    node: &str,
) -> tokio::task::JoinHandle<Result<CounterState, CallErr>> {
    cluster.hold(holder, node);
    let c = client.clone();
    let call = tokio::spawn(async move { c.call(CounterMsg::Add(10), TIMEOUT).await });
    wait_until("the holder applied the call; its answer waits", || {
        let queued = cluster.queued(holder, node);
        async move { queued >= 1 }
    })
    .await;
    tracing::info!("--- the holder applied the call; its answer waits on the link");
    call
}

/// Cuts `holder` from `node` (each sees the other down, as a heartbeat
/// would) and lets the held answer go, to be lost on the cut link.
async fn lose_the_held_answer(cluster: &FakeCluster, holder: &str, node: &str) {
    cluster.split(holder, node);
    cluster.release(holder, node);
    wait_until("the held answer was lost on the cut link", || {
        let queued = cluster.queued(holder, node);
        async move { queued == 0 }
    })
    .await;
}

/// The same holder: the answer is lost with the link (the client sees the
/// holder's node down), the link heals, and the retry reaches the same
/// holder, whose window answers it `total: 11` without adding 10 again.
#[tokio::test]
async fn a_retry_on_the_same_holder_gets_the_original_reply() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "c"]);
    let config = TakeoverConfig::default();
    let _a = spawn(&cluster, "a", &config).await;
    let cc = client(&cluster, "c");
    cc.call(CounterMsg::Add(1), TIMEOUT).await.unwrap();

    let call = applied_with_answer_held(&cluster, "a", &cc, "c").await;
    lose_the_held_answer(&cluster, "a", "c").await;
    cluster.heal("a", "c");
    let reply = call.await.unwrap().expect("the retried call's reply");
    assert_eq!(
        reply,
        CounterState {
            total: 11,
            calls: 2
        },
        "the original reply"
    );
    let now = cc.call(CounterMsg::Get, TIMEOUT).await.unwrap();
    assert_eq!(
        now,
        CounterState {
            total: 11,
            calls: 2
        },
        "applied once"
    );
}

/// The same scenario with retries off: the caller gets `HolderDown`, the
/// unknown outcome (or `NoReply`, if the lost answer closed its port
/// first), and nothing is sent again (what the test above checks
/// is the retry's doing).
#[tokio::test]
async fn with_retries_off_an_unknown_outcome_is_the_callers() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "c"]);
    let _a = spawn(&cluster, "a", &TakeoverConfig::default()).await;
    let cc = client(&cluster, "c").with_retries(false);
    cc.call(CounterMsg::Add(1), TIMEOUT).await.unwrap();

    let call = applied_with_answer_held(&cluster, "a", &cc, "c").await;
    lose_the_held_answer(&cluster, "a", "c").await;
    let got = call.await.unwrap();
    assert!(
        matches!(got, Err(CallErr::HolderDown { .. } | CallErr::NoReply)),
        "{got:?}"
    );
    cluster.heal("a", "c");
    let now = cc.call(CounterMsg::Get, TIMEOUT).await.unwrap();
    assert_eq!(
        now,
        CounterState {
            total: 11,
            calls: 2
        }
    );
}

/// Across a takeover: the call was applied by `a`, then `b` took the name
/// over with `a`'s state and its window; the retry reaches `b`, which
/// answers the original reply and does not add again.
#[tokio::test]
async fn a_retry_after_a_takeover_gets_the_original_reply_from_the_new_holder() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = TakeoverConfig::default();
    let _a = spawn(&cluster, "a", &config).await;
    let b = spawn(&cluster, "b", &config).await;
    let cc = client(&cluster, "c");
    cc.call(CounterMsg::Add(1), TIMEOUT).await.unwrap();

    let call = applied_with_answer_held(&cluster, "a", &cc, "c").await;
    tracing::info!("--- b takes over while a's answer waits");
    b.takeover(TIMEOUT).await.expect("takeover");
    lose_the_held_answer(&cluster, "a", "c").await;
    let reply = call.await.unwrap().expect("the retried call's reply");
    assert_eq!(
        reply,
        CounterState {
            total: 11,
            calls: 2
        },
        "the original reply"
    );
    assert_eq!(cc.whereis().map(|h| h.node.to_string()), Some("b".into()));
    let now = cc.call(CounterMsg::Get, TIMEOUT).await.unwrap();
    assert_eq!(
        now,
        CounterState {
            total: 11,
            calls: 2
        },
        "applied once"
    );
}

/// Across a crash failover with a checkpoint after every call: `b` stored
/// the checkpoint of the call (with the window) before `a` crashed; the
/// retry reaches `b` as the failover holder and gets the original reply.
#[tokio::test]
async fn a_retry_after_a_crash_failover_gets_the_original_reply_from_the_checkpoint() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = TakeoverConfig::default()
        .with_placement(Placement::parse("a > b"))
        .with_checkpoints(CheckpointPolicy::every_calls(1));
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
    cc.call(CounterMsg::Add(1), TIMEOUT).await.unwrap();

    let call = applied_with_answer_held(&cluster, "a", &cc, "c").await;
    events
        .wait_for("b stored the checkpoint of the held call", |e| {
            on(e, "b") && matches!(e.kind, EventKind::CheckpointStored { seq: 2, .. })
        })
        .await;
    cluster.crash("a");
    // What waited on the held link goes now: the news of the crash, and the
    // answer, which a dead node's link drops.
    cluster.release("a", "c");
    let reply = call.await.unwrap().expect("the retried call's reply");
    assert_eq!(
        reply,
        CounterState {
            total: 11,
            calls: 2
        },
        "the original reply"
    );
    assert_eq!(cc.whereis().map(|h| h.node.to_string()), Some("b".into()));
    let now = cc.call(CounterMsg::Get, TIMEOUT).await.unwrap();
    assert_eq!(
        now,
        CounterState {
            total: 11,
            calls: 2
        },
        "applied once"
    );
}

/// Past the window: with room for one answered call, two calls from
/// another client push the held one out; its retry is refused with
/// `PastDedupWindow` (it may have been applied: the server cannot tell),
/// and it was not applied a second time.
#[tokio::test]
async fn past_the_window_a_retry_is_refused_not_applied_again() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "c", "d"]);
    let config = TakeoverConfig::default().with_dedup_window(1);
    let _a = spawn(&cluster, "a", &config).await;
    let cc = client(&cluster, "c");
    let cd = client(&cluster, "d");
    cc.call(CounterMsg::Add(1), TIMEOUT).await.unwrap();

    let call = applied_with_answer_held(&cluster, "a", &cc, "c").await;
    for _ in 0..2 {
        cd.call(CounterMsg::Add(100), TIMEOUT).await.unwrap();
    }
    lose_the_held_answer(&cluster, "a", "c").await;
    cluster.heal("a", "c");
    let got = call.await.unwrap();
    assert!(
        matches!(got, Err(CallErr::PastDedupWindow { .. })),
        "{got:?}"
    );
    let now = cc.call(CounterMsg::Get, TIMEOUT).await.unwrap();
    assert_eq!(
        now,
        CounterState {
            total: 211,
            calls: 4
        },
        "applied once"
    );
}
