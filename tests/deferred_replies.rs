//! Deferred replies: a lock manager whose `Acquire` is answered when the
//! lock frees, through the `Reply` its message carries, across a takeover
//! and a crash failover with callers waiting. Every waiting caller ends
//! with its grant or a typed error it can retry on, none hangs, none is
//! dropped silently; no two callers hold the lock at once.

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use ractor_takeover::event::EventKind;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::*;
use ractor_takeover_testkit::lock_manager::{
    ends_granted, waiter, waiting, LockManager, LockMessage, LockProtocol, KEY, LOCKS, NAME,
};
use support::{init_tracing, wait_until, TIMEOUT};

async fn spawn_on(cluster: &FakeCluster, node: &str) -> TakeoverRef<LockManager> {
    TakeoverServer::new(
        NAME,
        LockManager,
        cluster.registry(node),
        Default::default(),
    )
    .spawn(())
    .await
    .expect("spawns")
    .0
}

fn client(cluster: &FakeCluster, node: &str) -> GlobalClient<LockManager> {
    GlobalClient::new(NAME, cluster.registry(node))
}

/// A takeover while eight callers (on the old holder's node, the new
/// one's, and two others) wait in `Acquire`: each is answered `Moved` when
/// the state goes, sends again, waits on the new holder and gets the lock
/// in turn once its holder releases it there. Then a crash of that holder
/// with six callers waiting: each ends with a typed error at once (its
/// holder's node is down, or its port went with the instance), and gets
/// the lock from the standby that fails over.
#[tokio::test]
async fn waiting_acquires_survive_a_takeover_and_a_crash() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c", "d"]);
    let _on_a = spawn_on(&cluster, "a").await;
    let on_b = spawn_on(&cluster, "b").await;
    let main = client(&cluster, "d");
    let busy = Arc::new(AtomicBool::new(false));

    tracing::info!("--- d takes the lock; eight callers wait for it");
    let first = call_t!(main, LockMessage::Acquire, 5_000, KEY.to_string()).expect("free lock");
    let mut waiters = Vec::new();
    for node in ["a", "b", "c", "d"] {
        for _ in 0..2 {
            waiters.push(waiter(client(&cluster, node), busy.clone(), TIMEOUT));
        }
    }
    wait_until("eight callers wait on a", || async {
        waiting(&main).await == 8
    })
    .await;

    tracing::info!("--- take over to b while they wait");
    let report = on_b.takeover(TIMEOUT).await.expect("takeover");
    assert_eq!(report.start, StartType::Takeover { from: "a".into() });
    wait_until("the eight wait again, on b", || async {
        waiting(&main).await == 8
    })
    .await;

    tracing::info!("--- d releases on b: each waiter gets the lock in turn");
    cast!(main, LockMessage::Release(KEY.into(), first.id)).expect("releases");
    let mut ids = ends_granted(waiters, |e| *e == CallErr::Moved).await;
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8, "one grant each");

    tracing::info!("--- a standby on c; d takes the lock on b; six callers wait");
    let on_c = spawn_on(&cluster, "c").await;
    let held = call_t!(main, LockMessage::Acquire, 5_000, KEY.to_string()).expect("free lock");
    assert!(held.id > first.id, "ids moved on with the state");
    let mut waiters = Vec::new();
    for node in ["a", "c", "d"] {
        for _ in 0..2 {
            waiters.push(waiter(client(&cluster, node), busy.clone(), TIMEOUT));
        }
    }
    wait_until("six callers wait on b", || async {
        waiting(&main).await == 6
    })
    .await;

    tracing::info!("--- crash b; c fails over");
    cluster.crash("b");
    on_c.failover("b", TIMEOUT).await.expect("failover");
    // The lock d held went with b's state (no checkpoint): each waiter gets
    // it from c's fresh state.
    let ids = ends_granted(waiters, |e| {
        matches!(
            e,
            CallErr::HolderDown { .. } | CallErr::NoReply | CallErr::ReplyDropped
        )
    })
    .await;
    assert_eq!(ids.len(), 6);
}

/// A port answered at once reaches its caller, on the holder's node and on
/// another; a call with a port to a name nobody holds ends with a typed
/// error at its deadline, as any call does.
#[tokio::test]
async fn a_port_answers_its_own_caller() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b"]);
    let nobody = client(&cluster, "b");
    assert_eq!(
        call_t!(nobody, LockMessage::Waiting, 50, KEY.to_string()),
        Err(CallErr::NotRegistered(NAME.into()))
    );
    let _on_a = spawn_on(&cluster, "a").await;
    for node in ["a", "b"] {
        let c = client(&cluster, node);
        assert_eq!(waiting(&c).await, 0, "answered at once from {node}");
        let grant = call_t!(c, LockMessage::Acquire, 5_000, KEY.to_string()).expect("free");
        cast!(c, LockMessage::Release(KEY.into(), grant.id)).expect("sent");
        let again = call_t!(c, LockMessage::Acquire, 5_000, KEY.to_string()).expect("free");
        assert!(again.id > grant.id, "released, then granted again");
        cast!(c, LockMessage::Release(KEY.into(), again.id)).expect("sent");
    }
}

/// A split brain healed while a caller waits on the loser (`a`, whose
/// `Normal` start loses to `b`'s failover, the newer lineage): the loser
/// answers the port it holds `Moved` when it offers its state, the caller
/// sends again and the winner answers it. (The default merge keeps the
/// winner's locks: the one taken on the loser's side is gone, so the
/// waiter gets the lock at once.)
#[tokio::test]
async fn a_merge_answers_the_losers_waiters_moved() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = TakeoverConfig::default()
        .with_placement(
            Placement::parse("a > b > c").with_standby_grace(std::time::Duration::from_millis(50)),
        )
        .with_conflict_grace(std::time::Duration::from_millis(50));
    let mut events = support::Watcher::new(&config.events);
    let spawn = |node: &str| {
        TakeoverServer::new(NAME, LockManager, cluster.registry(node), config.clone()).spawn(())
    };
    let _on_a = spawn("a").await.expect("spawns");
    events.registered("a").await;
    let _on_b = spawn("b").await.expect("spawns");
    events.standby("b").await;

    tracing::info!("--- split a | b, c: b fails over");
    cluster.split("a", "b");
    cluster.split("a", "c");
    events
        .wait_for("b fails over", |e| {
            support::on(e, "b") && matches!(e.kind, EventKind::Registered { .. })
        })
        .await;
    // The loser will be `a`: it started `Normal`, and `b`'s failover is
    // the newer lineage. A caller on a's side takes the lock there and
    // another waits for it.
    let on_a = client(&cluster, "a");
    wait_until("a still serves on its side", || {
        let holder = on_a.whereis();
        async move { holder.is_some_and(|h| h.node.as_str() == "a") }
    })
    .await;
    let _taken = call_t!(on_a, LockMessage::Acquire, 5_000, KEY.to_string()).expect("free on a");
    let busy = Arc::new(AtomicBool::new(false));
    let waiters = vec![waiter(client(&cluster, "a"), busy, TIMEOUT)];
    wait_until("a caller waits on a", || async {
        waiting(&on_a).await == 1
    })
    .await;

    tracing::info!("--- heal: b wins, a offers its state");
    cluster.heal_all();
    let ids = ends_granted(waiters, |e| *e == CallErr::Moved).await;
    assert_eq!(ids.len(), 1);
}

/// Warm standby: a checkpoint taken while callers wait holds their ports
/// detached. After a crash the standby fails over from it: it still knows
/// the lock is taken, grants nothing to the detached ports, and the callers
/// (told their holder's node is down) ask again and get the lock in turn
/// once it is released on the new holder.
#[tokio::test]
async fn a_checkpoint_holds_detached_ports() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let config = TakeoverConfig::default().with_checkpoints(CheckpointPolicy::every_calls(1));
    let mut events = support::Watcher::new(&config.events);
    let spawn = |node: &str| {
        TakeoverServer::new(NAME, LockManager, cluster.registry(node), config.clone()).spawn(())
    };
    let _on_a = spawn("a").await.expect("spawns");
    let (on_b, _) = spawn("b").await.expect("spawns");
    let main = client(&cluster, "c");
    let held = call_t!(main, LockMessage::Acquire, 5_000, KEY.to_string()).expect("free lock");
    let busy = Arc::new(AtomicBool::new(false));
    let waiters: Vec<_> = (0..3)
        .map(|_| waiter(client(&cluster, "c"), busy.clone(), TIMEOUT))
        .collect();
    wait_until("three callers wait on a", || async {
        waiting(&main).await == 3
    })
    .await;
    // Every checkpoint sent from here on holds the three ports.
    events.drain();
    let _ = waiting(&main).await;
    let sent = events
        .wait_for("a checkpoint with the waiters", |e| {
            support::on(e, "a") && matches!(e.kind, EventKind::CheckpointSent { .. })
        })
        .await;
    let EventKind::CheckpointSent { seq, .. } = sent.kind else {
        unreachable!("matched above");
    };
    events
        .wait_for("b stores it", |e| {
            support::on(e, "b")
                && matches!(e.kind, EventKind::CheckpointStored { seq: s, .. } if s >= seq)
        })
        .await;

    tracing::info!("--- crash a; b fails over from the checkpoint");
    cluster.crash("a");
    let report = on_b.failover("a", TIMEOUT).await.expect("failover");
    assert!(
        matches!(
            report.start,
            StartType::Failover {
                checkpoint: Some(_),
                ..
            }
        ),
        "from the checkpoint: {:?}",
        report.start
    );
    wait_until("the callers wait again, on b", || async {
        waiting(&main).await == 3
    })
    .await;
    cast!(main, LockMessage::Release(KEY.into(), held.id)).expect("releases");
    let ids = ends_granted(waiters, |e| {
        matches!(
            e,
            CallErr::HolderDown { .. } | CallErr::NoReply | CallErr::ReplyDropped
        )
    })
    .await;
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| *id > held.id), "the grant ids went on");
}

/// A client typed by the protocol alone (`GlobalClient<LockProtocol>`, no
/// behaviour linked), through the typed name `LOCKS`: its calls go in their
/// wire form, to a holder on its own node too, and behave as the
/// behaviour-typed client's do, across a takeover with a caller waiting.
#[tokio::test]
async fn a_client_typed_by_the_protocol() {
    init_tracing();
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let spawn = |node: &str| {
        TakeoverServer::named(
            &LOCKS,
            LockManager,
            cluster.registry(node),
            Default::default(),
        )
        .spawn(())
    };
    let _on_a = spawn("a").await.expect("spawns");
    let (on_b, _) = spawn("b").await.expect("spawns");
    let here = LOCKS.client(cluster.registry("a"));
    let there: GlobalClient<LockProtocol> = GlobalClient::named(&LOCKS, cluster.registry("c"));

    tracing::info!("--- calls to a holder on the client's node and on another");
    let first = call_t!(here, LockMessage::Acquire, 5_000, KEY.to_string()).expect("free");
    assert_eq!(waiting(&there).await, 0);
    // The simple style too: `Release` answers with the handler's `()`.
    assert_eq!(
        here.call(LockMessage::Release(KEY.into(), first.id), TIMEOUT)
            .await,
        Ok(())
    );
    let held = call_t!(there, LockMessage::Acquire, 5_000, KEY.to_string()).expect("free");

    tracing::info!("--- a caller waits on a; b takes over");
    let busy = Arc::new(AtomicBool::new(false));
    let waiters = vec![waiter(here.clone(), busy, TIMEOUT)];
    wait_until("a caller waits on a", || async {
        waiting(&there).await == 1
    })
    .await;
    on_b.takeover(TIMEOUT).await.expect("takeover");
    wait_until("it waits again, on b", || async {
        waiting(&there).await == 1
    })
    .await;
    cast!(there, LockMessage::Release(KEY.into(), held.id)).expect("releases");
    let ids = ends_granted(waiters, |e| *e == CallErr::Moved).await;
    assert!(ids[0] > held.id);
}
