//! Synchronous standby on the fake cluster: a holder answers a call only
//! once the next standby in priority stored its effect, so a crash
//! failover loses no acknowledged call; with no standby it refuses
//! (consistency) or falls back to asynchronous with an event
//! (availability); a takeover by a standby in sync moves no state.
//! `tests/real_sync_standby.rs` checks the crash on real processes.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::ActorProcessingErr;
use ractor_takeover::config::SyncStandby;
use ractor_takeover::event::EventKind;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::status::{CheckpointInfo, Phase};
use ractor_takeover::*;
use serde::{Deserialize, Serialize};
use support::*;

const CALLERS: usize = 4;

fn sync_config(sync: SyncStandby) -> TakeoverConfig {
    TakeoverConfig::default()
        .with_placement(Placement::parse("a > b > c"))
        .with_sync_standby(sync)
}

async fn standbys(cluster: &FakeCluster, n: usize) {
    wait_until(&format!("{n} standbys joined"), || {
        let members = cluster.registry("a").members(&format!("{NAME}#standby"));
        async move { members.len() == n }
    })
    .await;
}

/// Callers that call `Add(1)` without pause and keep the `calls` count of
/// every OK they got. The counter answers its count after the call, and a
/// failover's state is a prefix of the old holder's calls: an acknowledged
/// call missing from the new holder's state shows as a count answered
/// twice (once by the old holder, once again by the new one).
struct Load {
    oks: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(client: &GlobalClient<Counter>) -> Self {
        let oks: Arc<Mutex<Vec<u64>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..CALLERS)
            .map(|_| {
                let (client, oks, stop) = (client.clone(), oks.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        // A call in flight to the crashed holder fails
                        // (`NoReply`, `HolderDown`): not acknowledged.
                        if let Ok(r) = client.call(CounterMsg::Add(1), TIMEOUT).await {
                            oks.lock().unwrap().push(r.calls);
                        }
                    }
                })
            })
            .collect();
        Self { oks, stop, tasks }
    }

    fn count(&self) -> usize {
        self.oks.lock().unwrap().len()
    }

    /// Waits until `n` more calls than now are answered.
    async fn wait_more(&self, what: &str, n: usize) {
        let from = self.count();
        wait_until(what, || {
            let done = self.count() >= from + n;
            async move { done }
        })
        .await;
    }

    fn max(&self) -> u64 {
        self.oks.lock().unwrap().iter().copied().max().unwrap_or(0)
    }

    async fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let oks = self.oks.lock().unwrap().clone();
        oks
    }
}

/// `a` holds, `b` and `c` stand by: the three instances, in that order.
async fn holder_and_two_standbys(
    cluster: &FakeCluster,
    config: &TakeoverConfig,
    events: &mut Watcher,
) -> [TakeoverRef<Counter>; 3] {
    let a = spawn(cluster, "a", config).await;
    events.registered("a").await;
    let b = spawn(cluster, "b", config).await;
    let c = spawn(cluster, "c", config).await;
    standbys(cluster, 2).await;
    [a, b, c]
}

/// Every count answered once: a count answered twice is an acknowledged
/// call that the state it was answered from lost.
fn assert_no_count_twice(oks: &[u64], what: &str) {
    let distinct: BTreeSet<u64> = oks.iter().copied().collect();
    assert_eq!(distinct.len(), oks.len(), "a count answered twice: {what}");
}

/// Placement `a > b > c`, synchronous standby (refuse); four callers call
/// the holder `a` without pause; `a` crashes. `b` fails over from its
/// replica, and no count is answered twice across the failover: every call
/// `a` acknowledged is in `b`'s state. (With warm standby instead, every
/// 50 calls, the same check fails: `b` answers again counts `a` had.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_failover_keeps_every_acknowledged_call() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c", "client"]);
    let config = sync_config(SyncStandby::refuse());
    let mut events = Watcher::new(&config.events);
    let _instances = holder_and_two_standbys(&cluster, &config, &mut events).await;
    let cc = client(&cluster, "client");
    let load = Load::start(&cc);
    load.wait_more("500 calls answered", 500).await;

    tracing::info!("--- crash the holder a under load");
    // Sampled before the crash: with no failover delay, `b` may fail over
    // and answer before this task runs again after `crash` (a loaded CI
    // machine saw `b`'s answers taken for `a`'s). The calls `a`
    // acknowledged in between are checked below: none is answered twice.
    let acked_by_a = load.max();
    cluster.crash("a");
    let start = events.registered("b").await;
    let StartType::Failover {
        checkpoint: Some(cp),
        ..
    } = start
    else {
        panic!("b should fail over from its replica: {start:?}");
    };
    b_holds_what_a_acknowledged(load, &cp, acked_by_a).await;
}

/// After `b` failed over from `cp`: it holds every call `a` acknowledged
/// (up to `acked_by_a`), and answers 200 more without a count twice.
async fn b_holds_what_a_acknowledged(load: Load, cp: &CheckpointInfo, acked_by_a: u64) {
    println!(
        "a acknowledged up to call {acked_by_a}; b started from replica {} of epoch {} holding {} calls",
        cp.seq, cp.holder_epoch, cp.handled
    );
    assert!(
        cp.handled >= acked_by_a,
        "b's state holds {} calls, a acknowledged {acked_by_a}",
        cp.handled
    );
    load.wait_more("200 calls answered by b", 200).await;
    let oks = load.stop().await;
    assert_no_count_twice(&oks, "a call a acknowledged was lost");
}

/// A standby keeps replicas that the new holder's state lacks. Placement
/// `a > b > c`, synchronous standby (refuse): `b` crashes, `a` serves with
/// `c` storing every call; `b` restarts cut off from `a`, keeps nothing,
/// sees the name vacant and registers it; then `a` crashes. Every call
/// `a` acknowledged is in `c`'s replica and in no state `b` has. `c` must
/// not store `b`'s replica over its own (the epoch fence lets it: `b`'s
/// epoch is newer), and the counter's merge keeps the winner's state, so
/// a merge would drop the calls too. `c` refuses `b`'s replicas and offers
/// its own; `b`, which has answered nothing, takes it whole, as a
/// failover from `a`'s replica, and no count is answered twice. The fault
/// suite found it in quorum mode (seed 3823538393, 654 calls lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_gives_a_new_holder_the_replicas_its_state_lacks() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c", "client"]);
    let config = sync_config(SyncStandby::refuse());
    let mut events = Watcher::new(&config.events);
    let _instances = holder_and_two_standbys(&cluster, &config, &mut events).await;
    let cc = client(&cluster, "client");
    let load = Load::start(&cc);
    load.wait_more("200 calls answered", 200).await;

    tracing::info!("--- crash b; a goes on with c");
    cluster.crash("b");
    load.wait_more("200 calls answered with c storing them", 200)
        .await;

    tracing::info!("--- b restarts cut off from a, and takes the vacant name");
    cluster.split("a", "b");
    cluster.restart("b");
    let _b = spawn(&cluster, "b", &config).await;
    let first = events.registered("b").await;
    println!("b registered: {first:?}");

    tracing::info!("--- crash a");
    let acked_by_a = load.max();
    cluster.crash("a");
    let start = events
        .wait_for("b takes c's replica", |e| {
            on(e, "b")
                && matches!(
                    &e.kind,
                    EventKind::Registered {
                        start: StartType::Failover {
                            checkpoint: Some(_),
                            ..
                        }
                    }
                )
        })
        .await;
    let EventKind::Registered {
        start: StartType::Failover {
            checkpoint: Some(cp),
            ..
        },
    } = start.kind
    else {
        unreachable!()
    };
    b_holds_what_a_acknowledged(load, &cp, acked_by_a).await;
}

/// A takeover is confirmed to the old holder (`HandoverDone`, after which
/// it retires, and its behaviour or a drain may stop it) only once a
/// standby stored the new holder's state: until then the state lives in
/// the new holder alone. Here `b` takes over from `a` while its messages
/// to the only other standby, `c`, are held, and `b` crashes. `a`, still
/// retiring, resumes from the state it sent (`HandoverResumed`) and no
/// count is answered twice. The fault suite found it with an old holder
/// that stopped itself once it had handed over (seed 4260756349, 287
/// acknowledged calls lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_is_confirmed_once_a_standby_stored_the_state() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c", "client"]);
    // No placement (nothing moves back by itself); an acknowledgement
    // timeout far above the test, so that the confirmation waits for the
    // standby and not for the clock.
    let config = TakeoverConfig::default()
        .with_sync_standby(SyncStandby::refuse().with_ack_timeout(Duration::from_secs(60)));
    let mut events = Watcher::new(&config.events);
    let [a, b, _c] = holder_and_two_standbys(&cluster, &config, &mut events).await;
    let cc = client(&cluster, "client");
    let load = Load::start(&cc);
    load.wait_more("200 calls answered", 200).await;

    tracing::info!("--- b takes over with its messages to c held, then crashes");
    cluster.hold("b", "c");
    b.takeover(TIMEOUT).await.expect("the takeover");
    // Everything `b` sent `a` is in `a`'s mailbox, so the status request
    // comes after it: a `HandoverDone` would have been handled.
    wait_until("b's messages to a delivered", || {
        let n = cluster.queued("b", "a");
        async move { n == 0 }
    })
    .await;
    assert_eq!(
        phase(&a).await,
        Some(Phase::Retiring),
        "a was told the handover is done before a standby stored b's state"
    );
    let acked = load.max();
    cluster.crash("b");
    events
        .wait_for("a resumes from the state it sent", |e| {
            on(e, "a") && matches!(e.kind, EventKind::HandoverResumed { .. })
        })
        .await;
    cluster.release("b", "c");
    load.wait_more("200 calls answered after the crash", 200)
        .await;
    let oks = load.stop().await;
    println!(
        "{acked} calls acknowledged before the crash; {} in all",
        oks.len()
    );
    assert_no_count_twice(&oks, "an acknowledged call was lost");
}

/// Consistency: with no standby running, a call is refused with
/// `NoStandby` and not applied; once a standby runs, calls are answered,
/// and the refused one is not in the state.
#[tokio::test]
async fn refuse_mode_refuses_a_call_no_standby_can_store() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let config = sync_config(SyncStandby::refuse());
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let ca = client(&cluster, "a");
    assert_eq!(
        ca.call(CounterMsg::Add(1), TIMEOUT).await,
        Err(CallErr::NoStandby)
    );
    let _b = spawn(&cluster, "b", &config).await;
    standbys(&cluster, 1).await;
    let r = ca.call(CounterMsg::Add(1), TIMEOUT).await.unwrap();
    assert_eq!(r.calls, 1, "the refused call was not applied");
}

/// Availability: with no standby, the holder answers and says so
/// (`SyncLost`); once a standby has caught up, `SyncRestored`, and what it
/// answers from then on is stored: a crash loses none of it.
#[tokio::test]
async fn async_mode_answers_alone_with_an_event_and_syncs_again() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = sync_config(SyncStandby::fall_back_to_async());
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let ca = client(&cluster, "c");
    assert_eq!(ca.call(CounterMsg::Add(1), TIMEOUT).await.unwrap().calls, 1);
    events
        .wait_for("a says it answers without a standby", |e| {
            on(e, "a") && matches!(e.kind, EventKind::SyncLost { .. })
        })
        .await;
    let _b = spawn(&cluster, "b", &config).await;
    events
        .wait_for("b caught up", |e| {
            on(e, "a") && matches!(e.kind, EventKind::SyncRestored)
        })
        .await;
    let r = ca.call(CounterMsg::Add(1), TIMEOUT).await.unwrap();
    assert_eq!(r.calls, 2);
    cluster.crash("a");
    events.registered("b").await;
    let r = ca.call(CounterMsg::Get, TIMEOUT).await.unwrap();
    assert_eq!(r.calls, 2, "both acknowledged calls survived the crash");
}

/// Availability, with a standby in view that does not answer (its link
/// held): the calls wait `ack_timeout`, then the holder falls back with
/// `SyncLost` and answers them; released, the standby catches up.
#[tokio::test]
async fn async_mode_falls_back_when_no_acknowledgement_comes() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let sync = SyncStandby::fall_back_to_async().with_ack_timeout(Duration::from_millis(200));
    let config = sync_config(sync);
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let _b = spawn(&cluster, "b", &config).await;
    standbys(&cluster, 1).await;
    let ca = client(&cluster, "c");
    assert_eq!(ca.call(CounterMsg::Add(1), TIMEOUT).await.unwrap().calls, 1);

    tracing::info!("--- hold b's link to a: no acknowledgement comes");
    cluster.hold("b", "a");
    let r = ca.call(CounterMsg::Add(1), TIMEOUT).await.unwrap();
    assert_eq!(r.calls, 2);
    let ev = events
        .wait_for("a falls back", |e| {
            on(e, "a") && matches!(e.kind, EventKind::SyncLost { .. })
        })
        .await;
    println!("{ev:?}");
    cluster.release("b", "a");
    events
        .wait_for("b caught up", |e| {
            on(e, "a") && matches!(e.kind, EventKind::SyncRestored)
        })
        .await;
}

/// Consistency, with the standby's link held: the answer waits (a caller
/// whose deadline is short gets `Timeout`), and comes once the link is
/// released; nothing was answered that the standby did not store.
#[tokio::test]
async fn refuse_mode_waits_for_the_acknowledgement() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = sync_config(SyncStandby::refuse());
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let _b = spawn(&cluster, "b", &config).await;
    standbys(&cluster, 1).await;
    let ca = client(&cluster, "c");
    assert_eq!(ca.call(CounterMsg::Add(1), TIMEOUT).await.unwrap().calls, 1);
    cluster.hold("b", "a");
    let short = ca
        .call(CounterMsg::Add(1), Duration::from_millis(300))
        .await;
    assert_eq!(
        short,
        Err(CallErr::Timeout),
        "no answer without the standby's ack"
    );
    let waiting = tokio::spawn({
        let ca = ca.clone();
        async move { ca.call(CounterMsg::Add(1), TIMEOUT).await }
    });
    cluster.release("b", "a");
    let r = waiting.await.unwrap().unwrap();
    // The timed-out call was applied (its caller was told `Timeout`: maybe).
    assert_eq!(r.calls, 3);
}

/// A takeover by a standby in sync moves no state: `a` holds, `b` is in
/// sync after some calls, `b` takes the name over: its report says 0
/// bytes, and its state is `a`'s.
#[tokio::test]
async fn a_takeover_by_a_standby_in_sync_moves_no_state() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = TakeoverConfig::default().with_sync_standby(SyncStandby::refuse());
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let b = spawn(&cluster, "b", &config).await;
    standbys(&cluster, 1).await;
    let cc = client(&cluster, "c");
    for _ in 0..20 {
        cc.call(CounterMsg::Add(1), TIMEOUT).await.unwrap();
    }
    let report = b.takeover(TIMEOUT).await.unwrap();
    assert_eq!(report.state_bytes, 0, "the standby in sync had the state");
    assert_eq!(cc.call(CounterMsg::Get, TIMEOUT).await.unwrap().calls, 20);
}

/// Under load, a standby's takeover asks for the state while replicas are
/// on their way to it. The holder, having sent them all, names its newest
/// replica as its state; that replica went to the standby's entry, which
/// on the real backend relays through a token of its own, so it can come
/// after the answer that names it (`real_sync_exactly_once` failed 1 run
/// in 6 so, the takeover refused). Here the fake delays every message to a
/// standby entry by 30 ms; the puller waits for the named replica, the
/// takeover succeeds, and no count is answered twice across it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_under_load_waits_for_the_replica_it_was_named() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "client"]);
    cluster.delay_standby_entries(Duration::from_millis(30));
    let config = TakeoverConfig::default().with_sync_standby(SyncStandby::refuse());
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let b = spawn(&cluster, "b", &config).await;
    standbys(&cluster, 1).await;
    let cc = client(&cluster, "client");
    let load = Load::start(&cc);
    wait_until("100 calls answered", || {
        let n = load.count();
        async move { n >= 100 }
    })
    .await;
    let report = b
        .takeover(TIMEOUT)
        .await
        .expect("the takeover waits for the named replica");
    println!("takeover moved {} bytes", report.state_bytes);
    let after = load.count();
    wait_until("100 calls answered by b", || {
        let n = load.count();
        async move { n >= after + 100 }
    })
    .await;
    let oks = load.stop().await;
    let distinct: BTreeSet<u64> = oks.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        oks.len(),
        "a count answered twice across the takeover"
    );
}

/// A state that describes its changes: a log of numbers, with the entries
/// appended since the last delta.
#[derive(Clone, Default, Serialize, Deserialize)]
struct LogState {
    entries: Vec<u64>,
    #[serde(skip)]
    fresh: Vec<u64>,
}

struct Log;

impl TakeoverActor for Log {
    type Msg = u64;
    type Reply = usize;
    type State = LogState;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<LogState, ActorProcessingErr> {
        Ok(LogState::default())
    }

    async fn handle(
        &self,
        _: &TakeoverCtx<Self>,
        n: u64,
        s: &mut LogState,
    ) -> Result<usize, ActorProcessingErr> {
        s.entries.push(n);
        s.fresh.push(n);
        Ok(s.entries.len())
    }

    fn take_delta(&self, s: &mut LogState) -> Option<Result<Vec<u8>, StateCodecErr>> {
        let fresh = std::mem::take(&mut s.fresh);
        Some(codec::encode_postcard(&fresh))
    }

    fn apply_delta(&self, s: &mut LogState, delta: &[u8]) -> Result<(), StateCodecErr> {
        let fresh: Vec<u64> = codec::decode_postcard(delta)?;
        s.entries.extend(fresh);
        Ok(())
    }
}

/// With deltas: the standby that stored every delta fails over with every
/// acknowledged entry, in order, and a standby that joined late got the
/// whole state first (a delta needs the replica before it).
#[tokio::test]
async fn deltas_keep_every_acknowledged_call_and_a_late_standby_catches_up() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = sync_config(SyncStandby::refuse());
    let mut events = Watcher::new(&config.events);
    let log = |node| TakeoverServer::new("log", Log, cluster.registry(node), config.clone());
    let _a = log("a").spawn(()).await.unwrap();
    events.registered("a").await;
    let _c = log("c").spawn(()).await.unwrap();
    let client = GlobalClient::<Log>::new("log", cluster.registry("a"));
    wait_until("c joined the standbys", || {
        let n = cluster.registry("a").members("log#standby").len();
        async move { n == 1 }
    })
    .await;
    for i in 0..10 {
        assert_eq!(client.call(i, TIMEOUT).await.unwrap(), i as usize + 1);
    }
    tracing::info!("--- b joins late: b ranks above c, so a waits for b");
    let _b = log("b").spawn(()).await.unwrap();
    wait_until("b joined the standbys", || {
        let n = cluster.registry("a").members("log#standby").len();
        async move { n == 2 }
    })
    .await;
    for i in 10..20 {
        assert_eq!(client.call(i, TIMEOUT).await.unwrap(), i as usize + 1);
    }
    cluster.crash("a");
    let start = events.registered("b").await;
    assert!(
        matches!(start, StartType::Failover { checkpoint: Some(ref cp), .. } if cp.handled == 20),
        "b fails over with all 20 calls: {start:?}"
    );
    let client = GlobalClient::<Log>::new("log", cluster.registry("c"));
    assert_eq!(client.call(20, TIMEOUT).await.unwrap(), 21);
}

/// Takeovers back and forth with deltas: each moves no state (the
/// standby in sync has it, and an old holder back as a standby keeps the
/// state it handed over and gets only what changed since), and the log
/// holds every entry, in order.
#[tokio::test]
async fn takeovers_back_and_forth_with_deltas_move_no_state() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = TakeoverConfig::default().with_sync_standby(SyncStandby::refuse());
    let mut events = Watcher::new(&config.events);
    let log = |node| TakeoverServer::new("log", Log, cluster.registry(node), config.clone());
    let (a, _) = log("a").spawn(()).await.unwrap();
    events.registered("a").await;
    let (b, _) = log("b").spawn(()).await.unwrap();
    let client = GlobalClient::<Log>::new("log", cluster.registry("c"));
    let mut n = 0u64;
    for round in 0..6 {
        for _ in 0..5 {
            n += 1;
            assert_eq!(client.call(n, TIMEOUT).await.unwrap(), n as usize);
        }
        let to = if round % 2 == 0 { &b } else { &a };
        let report = to.takeover(TIMEOUT).await.unwrap();
        tracing::info!(round, ?report, "--- takeover");
        assert_eq!(
            report.state_bytes, 0,
            "round {round}: the standby was in sync"
        );
    }
    n += 1;
    assert_eq!(client.call(n, TIMEOUT).await.unwrap(), n as usize);
}

/// Holds the answer of one call from `client` on the link `a -> c` and
/// returns once it is there: with synchronous standby, once `b` stored the
/// call's effect and its entry in the window of answered calls (the
/// answer waits for that acknowledgement).
async fn answer_held_after_the_ack<R: Send + 'static>(
    cluster: &FakeCluster,
    call: impl std::future::Future<Output = Result<R, CallErr>> + Send + 'static,
) -> tokio::task::JoinHandle<Result<R, CallErr>> {
    cluster.hold("a", "c");
    let call = tokio::spawn(call);
    wait_until(
        "a applied the call, b acknowledged it, its answer waits",
        || {
            let queued = cluster.queued("a", "c");
            async move { queued >= 1 }
        },
    )
    .await;
    tracing::info!("--- a's answer waits on the link to c; crash a");
    cluster.crash("a");
    // The answer goes now, to be dropped with the dead node's link.
    cluster.release("a", "c");
    call
}

/// Exactly-once across a failover to the standby in sync, with deltas: a
/// keyed call is applied by `a` and acknowledged by `b` (its delta and its
/// window entry stored), its answer is lost with `a`'s crash, and the
/// client's retry reaches `b` as the failover holder. `b`'s replica holds
/// the window's entry, so the retry gets the original reply (entry 6) and
/// the log holds the call once (the next entry is 7, not 8). `d` is the
/// next standby, so `b`, in refuse mode, has one to store its answers.
#[tokio::test]
async fn a_retry_after_a_failover_to_the_sync_standby_is_answered_from_the_window() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "d", "c"]);
    let config = TakeoverConfig::default()
        .with_placement(Placement::parse("a > b > d"))
        .with_sync_standby(SyncStandby::refuse());
    let mut events = Watcher::new(&config.events);
    let log = |node| TakeoverServer::new("log", Log, cluster.registry(node), config.clone());
    let _a = log("a").spawn(()).await.unwrap();
    events.registered("a").await;
    let _b = log("b").spawn(()).await.unwrap();
    let _d = log("d").spawn(()).await.unwrap();
    wait_until("b and d joined the standbys", || {
        let n = cluster.registry("a").members("log#standby").len();
        async move { n == 2 }
    })
    .await;
    let client = GlobalClient::<Log>::new("log", cluster.registry("c"));
    for i in 1..=5 {
        assert_eq!(client.call(i, TIMEOUT).await.unwrap(), i as usize);
    }
    let c = client.clone();
    let call = answer_held_after_the_ack(&cluster, async move { c.call(6, TIMEOUT).await }).await;
    let start = events.registered("b").await;
    assert!(
        matches!(start, StartType::Failover { checkpoint: Some(ref cp), .. } if cp.handled == 6),
        "b fails over with all 6 calls: {start:?}"
    );
    let reply = call.await.unwrap().expect("the retried call's reply");
    assert_eq!(reply, 6, "the original reply, from b's window");
    assert_eq!(
        client.whereis().map(|h| h.node.to_string()),
        Some("b".into())
    );
    assert_eq!(client.call(7, TIMEOUT).await.unwrap(), 7, "6 applied once");
}

/// The same with whole-state replicas (the counter describes no deltas):
/// the window travels sealed in each one, and the retry after the
/// failover to `b` gets the original reply, applied once.
#[tokio::test]
async fn a_retry_after_a_failover_to_the_sync_standby_with_whole_states_is_applied_once() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "d", "c"]);
    let config = TakeoverConfig::default()
        .with_placement(Placement::parse("a > b > d"))
        .with_sync_standby(SyncStandby::refuse());
    let mut events = Watcher::new(&config.events);
    let _a = spawn(&cluster, "a", &config).await;
    events.registered("a").await;
    let _b = spawn(&cluster, "b", &config).await;
    let _d = spawn(&cluster, "d", &config).await;
    standbys(&cluster, 2).await;
    let cc = client(&cluster, "c");
    cc.call(CounterMsg::Add(1), TIMEOUT).await.unwrap();
    let c = cc.clone();
    let call = answer_held_after_the_ack(&cluster, async move {
        c.call(CounterMsg::Add(10), TIMEOUT).await
    })
    .await;
    events.registered("b").await;
    let reply = call.await.unwrap().expect("the retried call's reply");
    let once = CounterState {
        total: 11,
        calls: 2,
    };
    assert_eq!(reply, once, "the original reply, from b's window");
    let now = cc.call(CounterMsg::Get, TIMEOUT).await.unwrap();
    assert_eq!(now, once, "applied once");
}
