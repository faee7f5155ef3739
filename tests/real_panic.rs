//! A handler that panics on a real node process: the caller on another node
//! gets a typed error at once, over the wire, not a timeout; a concurrent
//! caller is answered by the next holder.
//!
//! One scenario per test binary: `ractor::pg` is a process static, so this
//! process can be only one node.

mod support;

use std::time::{Duration, Instant};

use ractor_takeover::{CallErr, GlobalClient};
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, NAME};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};

const COOKIE: &str = "real-panic-test";
/// Long on purpose: a caller that waited it out would be the bug.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Placement `a > b` over real processes and a client node. A call that
/// makes `a`'s handler panic is answered `Panicked` at once (far inside its
/// 60 s deadline); `a`'s instance gives the name up and fails, `b` fails
/// over, and a call sent while the panic was handled is answered by `b` (or
/// told typed that it was not handled), never left to time out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_a_remote_caller_at_once() {
    support::init_tracing();
    let mesh = Mesh::new(&["client", "a", "b"], COOKIE);
    let flags = |me: &str| mesh.flags(me, &[("placement", "a > b")]);
    let me = mesh.client_node().await;
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();
    let _a = NodeProc::start("a", &flags("a"), &log);
    log.wait("a", &["Registered", "Normal"]).await;
    let _b = NodeProc::start("b", &flags("b"), &log);
    log.wait("b", &["Standby"]).await;
    wait_for("the client sees a as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;
    let first = client
        .call(PowerMsg::Count, CALL_TIMEOUT)
        .await
        .expect("a answers");
    assert_eq!(first.node, "a");

    tracing::info!("--- a panicking call, and a concurrent one");
    let concurrent = tokio::spawn({
        let client = client.clone();
        async move {
            // Sent right behind the panicking call.
            tokio::task::yield_now().await;
            client.call(PowerMsg::Count, CALL_TIMEOUT).await
        }
    });
    // Timed for the log only: the typed answer itself shows the caller did
    // not wait out its deadline (that would have been `Timeout`).
    let sent = Instant::now();
    let panicked = client.call(PowerMsg::Panic, CALL_TIMEOUT).await;
    let took = sent.elapsed();
    tracing::info!(?took, ?panicked, "--- the panicking call's answer");
    assert!(
        matches!(&panicked, Err(CallErr::Panicked(m)) if m.contains("asked to panic")),
        "the caller gets the panic, typed: {panicked:?}"
    );
    log.wait("a", &["HandlerFailed", "Panicked"]).await;
    let concurrent = concurrent.await.expect("the concurrent caller ran");
    tracing::info!(?concurrent, "--- the concurrent call's answer");
    match &concurrent {
        Ok(reply) => assert!(
            reply.node == "b" || reply.node == "a",
            "answered by a holder: {reply:?}"
        ),
        Err(e) => assert!(
            matches!(e, CallErr::InstanceStopped(_) | CallErr::NotRegistered(_)),
            "a typed error, never a timeout: {e:?}"
        ),
    }
    let after = client
        .call(PowerMsg::Count, CALL_TIMEOUT)
        .await
        .expect("the next holder answers");
    tracing::info!(node = %after.node, epoch = after.epoch, "--- served again");
}
