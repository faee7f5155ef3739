//! Deferred replies on the real backend: `ractor_cluster` nodes in separate
//! OS processes on loopback run the lock manager; this test process is the
//! client node whose callers wait in `Acquire`.
//!
//! One scenario per test binary: `ractor::pg` is a process static, so this
//! process can be only one node.

mod support;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use ractor_takeover::{call_t, cast, CallErr, GlobalClient};
use ractor_takeover_testkit::lock_manager::{
    ends_granted, waiter, waiting, LockMessage, LockProtocol, KEY, LOCKS,
};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};
use tokio::time::Instant;

const COOKIE: &str = "real-deferred-test";
const TIMEOUT: Duration = Duration::from_secs(60);
const WAITERS: usize = 6;

/// Polls `waiting` until `n` callers wait; panics after [`TIMEOUT`].
async fn wait_waiting(client: &GlobalClient<LockProtocol>, n: usize, on: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let now = waiting(client).await;
        if now == n {
            tracing::info!("ok: {n} callers wait on {on}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} callers on {on} ({now} wait)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Placement `b > a > c`: `a` holds the lock manager; this node's callers
/// acquire a lock that is held, so their ports wait in `a`'s state, across
/// the network. Then `b` starts and takes over automatically: each waiting
/// caller is answered `Moved` at once (not at its deadline), sends again,
/// waits on `b`, and gets the lock in turn when it is released there; no
/// two callers hold it at once. Then, with a standby on `c`, callers wait on
/// `b` and `b` is killed (SIGKILL): each ends with a typed error as soon as
/// this node sees `b` go (its session closes, or its heartbeat marks it
/// down), not at its deadline, sends again and gets the lock from the node
/// that fails over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_acquires_through_a_takeover_and_a_kill() {
    support::init_tracing();
    let mesh = Mesh::new(&["client", "a", "b", "c"], COOKIE);
    let flags = |me: &str| {
        mesh.flags(
            me,
            &[
                ("placement", "b > a > c"),
                ("pull-timeout-ms", "10000"),
                ("locks", "true"),
            ],
        )
    };
    let me = mesh.client_node().await;
    // Typed by the protocol: this node links no lock manager behaviour.
    let client = LOCKS.client(me.registry());
    let log = Log::default();

    let _a = NodeProc::start("a", &flags("a"), &log);
    log.wait("a", &["Registered", "Normal"]).await;
    wait_for("the client sees a as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;

    tracing::info!("--- the client takes the lock on a; {WAITERS} callers wait for it");
    let first = call_t!(client, LockMessage::Acquire, 10_000, KEY.to_string()).expect("free lock");
    let busy = Arc::new(AtomicBool::new(false));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| waiter(client.clone(), busy.clone(), TIMEOUT))
        .collect();
    wait_waiting(&client, WAITERS, "a").await;

    tracing::info!("--- b starts and takes over while they wait");
    let b = NodeProc::start("b", &flags("b"), &log);
    log.wait("b", &["Registered", "Takeover"]).await;
    wait_for("the client sees b as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "b")
    })
    .await;
    wait_waiting(&client, WAITERS, "b").await;

    tracing::info!("--- release on b: each waiter gets the lock in turn");
    cast!(client, LockMessage::Release(KEY.into(), first.id)).expect("releases");
    let mut ids = ends_granted(waiters, |e| *e == CallErr::Moved).await;
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), WAITERS, "one grant each");
    assert!(
        ids.iter().all(|id| *id > first.id),
        "ids moved on with the state"
    );

    tracing::info!("--- a standby on c; the client takes the lock on b; callers wait");
    let _c = NodeProc::start("c", &flags("c"), &log);
    log.wait("c", &["Standby"]).await;
    let _held = call_t!(client, LockMessage::Acquire, 10_000, KEY.to_string()).expect("free lock");
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| waiter(client.clone(), busy.clone(), TIMEOUT))
        .collect();
    wait_waiting(&client, WAITERS, "b").await;

    tracing::info!("--- SIGKILL b while they wait");
    b.kill();
    // The lock went with b's state (no checkpoint): the node that fails
    // over grants it to each caller in turn.
    let ids = ends_granted(waiters, |e| {
        matches!(
            e,
            CallErr::HolderDown { .. } | CallErr::NoReply | CallErr::ReplyDropped
        )
    })
    .await;
    assert_eq!(ids.len(), WAITERS);
}
