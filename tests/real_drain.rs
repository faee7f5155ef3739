//! Drain and rolling restart on the real backend: node processes on
//! loopback, SIGTERM'd (the test node drains on SIGTERM, then exits); this
//! test process is the client node. The fake-cluster cases are in
//! `tests/drain.rs`.
//!
//! One scenario per test binary: `ractor::pg` is a process static, so this
//! process can be only one node.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor_takeover::{CallErr, GlobalClient};
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, PowerReply, NAME};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};

const COOKIE: &str = "real-drain-test";
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A call of the reporting loop: in which phase it was sent, and its outcome.
type Record = (u8, Result<PowerReply, CallErr>);

/// Placement `a > b > c`, a client reporting without pause throughout:
///
/// 1. SIGTERM of the holder's node `a`: it drains, the name moves to `b`
///    with its state, `a` prints a complete `DRAINED` line and exits;
/// 2. a rolling restart of all three nodes with takeovers back held by the
///    client: `a` restarts (it does not take the name back), `b` is
///    SIGTERM'd (the name moves to `a`, the first live node that does not
///    drain) and restarts, then `c` (it holds nothing: nothing moves).
///
/// Throughout: every call answered `Ok` (none lost, calls in flight at
/// each drain included), each answer counts one more report than the one
/// before (none applied twice, the state kept across every move), and the
/// name moved exactly twice, each time by a drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_and_rolling_restart_under_load_lose_nothing() {
    support::init_tracing();
    let mesh = Mesh::new(&["client", "a", "b", "c"], COOKIE);
    let flags = |me: &str| mesh.flags(me, &[("placement", "a > b > c")]);
    let me = mesh.client_node().await;
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();

    let a = NodeProc::start("a", &flags("a"), &log);
    log.wait("a", &["Registered", "Normal"]).await;
    let b = NodeProc::start("b", &flags("b"), &log);
    log.wait("b", &["Standby"]).await;
    let c = NodeProc::start("c", &flags("c"), &log);
    log.wait("c", &["Standby"]).await;
    wait_for("the client sees a as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;

    tracing::info!("--- the client reports without pause");
    let records: Arc<Mutex<Vec<Record>>> = Arc::default();
    let phase = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reporter = tokio::spawn({
        let (client, records, phase, stop) =
            (client.clone(), records.clone(), phase.clone(), stop.clone());
        async move {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let sent_in = phase.load(Ordering::SeqCst);
                let report = PowerMsg::Report {
                    building: format!("b{}", seq % 3),
                    seq,
                };
                let result = client.call(report, CALL_TIMEOUT).await;
                records.lock().unwrap().push((sent_in, result));
            }
        }
    });
    let answered_by = |node: &str, in_phase: u8| {
        records
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, r)| *p == in_phase && r.as_ref().is_ok_and(|r| r.node == node))
            .count()
    };
    wait_for("200 reports answered by a", || answered_by("a", 0) >= 200).await;

    tracing::info!("--- 1. SIGTERM the holder's node a: it drains under load");
    phase.store(1, Ordering::SeqCst);
    let status = a.terminate().await;
    assert!(
        status.success(),
        "a exits cleanly after its drain: {status}"
    );
    assert!(
        log.any("a", &["DRAINED", "complete=true", "moved=power_monitor@b"]),
        "a's drain moved the name to b: {:?}",
        log.lines()
            .iter()
            .filter(|(n, l)| n == "a" && l.starts_with("DRAINED"))
            .collect::<Vec<_>>()
    );
    wait_for("200 reports answered by b", || answered_by("b", 1) >= 200).await;

    tracing::info!("--- 2. a rolling restart, takeovers back held");
    let hold = me.hold_takeback().await.expect("hold");
    phase.store(2, Ordering::SeqCst);
    let a = NodeProc::start("a", &flags("a"), &log);
    // The log keeps the first process's lines too: count the second's
    // READY, printed once its instance started (as a standby: held).
    let standby_again = |node: &'static str| {
        let log = log.clone();
        move || log.count(node, &["READY"]) >= 2
    };
    wait_for("the restarted a is a standby", standby_again("a")).await;
    wait_for("100 more reports answered by b", || {
        answered_by("b", 2) >= 100
    })
    .await;
    let status = b.terminate().await;
    assert!(
        status.success(),
        "b exits cleanly after its drain: {status}"
    );
    assert!(log.any("b", &["DRAINED", "complete=true", "moved=power_monitor@a"]));
    wait_for("100 reports answered by a", || answered_by("a", 2) >= 100).await;
    let _b = NodeProc::start("b", &flags("b"), &log);
    wait_for("the restarted b is a standby", standby_again("b")).await;
    let status = c.terminate().await;
    assert!(
        status.success(),
        "c exits cleanly after its drain: {status}"
    );
    assert!(log.any("c", &["DRAINED", "complete=true", "moved= ", "not_moved=0"]));
    let _c = NodeProc::start("c", &flags("c"), &log);
    wait_for("the restarted c is a standby", standby_again("c")).await;
    hold.release();
    phase.store(3, Ordering::SeqCst);
    wait_for("100 reports answered by a after the wave", || {
        answered_by("a", 3) >= 100
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    reporter.await.unwrap();
    // The moves are counted before `a` goes: killing it at the end makes
    // `b` fail over, a third move that is not the test's.
    let lines = log.lines();
    drop(a);

    let records = records.lock().unwrap().clone();
    let failures: Vec<&CallErr> = records
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    assert!(failures.is_empty(), "calls lost: {failures:?}");
    let answers: Vec<&PowerReply> = records
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    for pair in answers.windows(2) {
        assert_eq!(
            pair[1].total,
            pair[0].total + 1,
            "each answer counts one more report: {pair:?}"
        );
    }
    assert_eq!(
        answers.last().unwrap().duplicates,
        0,
        "no report handled twice"
    );
    let moves: Vec<(String, String)> = lines
        .into_iter()
        .filter(|(_, l)| l.contains("Moved {"))
        .collect();
    assert_eq!(
        moves.len(),
        2,
        "two moves, one per restart of the holder's node: {moves:?}"
    );
    assert!(
        moves[0].0 == "b" && moves[0].1.contains("from: Some(\"a\"), reason: Drain"),
        "{moves:?}"
    );
    assert!(
        moves[1].0 == "a" && moves[1].1.contains("from: Some(\"b\"), reason: Drain"),
        "{moves:?}"
    );
    me.shutdown();
}
