//! The real backend: `ractor_cluster` nodes in separate OS processes on
//! loopback, with a cookie. This test process is the client node.
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

const COOKIE: &str = "real-cluster-test";
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A call of the reporting loop: in which phase it was sent, and its outcome.
type Record = (u8, Result<PowerReply, CallErr>);

/// Placement `a > b > c` over real processes, with a client calling without
/// pause throughout:
/// - SIGKILL of the holder `a`: `b` fails over (`Failover { from: a }`) and
///   answers, with a fresh state (a failover loses the state, as in Erlang);
/// - a 64 MiB state on `b`, then `a` restarts: `a` takes over automatically
///   (`Takeover { from: b }`), the 64 MiB state moves (over ractor_cluster's
///   default 16 MiB frame limit), and no call sent from the restart on is
///   lost, duplicated, or out of order: every answer counts exactly one more
///   report than the one before, across the move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_then_takeover_back_with_a_64_mib_state() {
    support::init_tracing();
    let mesh = Mesh::new(&["client", "a", "b", "c"], COOKIE);
    let flags = |me: &str| {
        mesh.flags(
            me,
            &[("placement", "a > b > c"), ("pull-timeout-ms", "60000")],
        )
    };
    let me = mesh.client_node().await;
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();

    let a = NodeProc::start("a", &flags("a"), &log);
    log.wait("a", &["Registered", "Normal"]).await;
    let _b = NodeProc::start("b", &flags("b"), &log);
    log.wait("b", &["Standby"]).await;
    let _c = NodeProc::start("c", &flags("c"), &log);
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

    phase.store(1, Ordering::SeqCst);
    a.kill();
    log.wait("b", &["Registered", "Failover", "from: \"a\""])
        .await;
    wait_for("100 reports answered by b", || answered_by("b", 1) >= 100).await;
    assert_eq!(log.count("c", &["Registered"]), 0, "c stays a standby");

    tracing::info!("--- a 64 MiB state on b");
    let big = client
        .call(PowerMsg::Ballast { bytes: 64 << 20 }, CALL_TIMEOUT)
        .await
        .expect("ballast");
    assert_eq!(big.node, "b");

    phase.store(2, Ordering::SeqCst);
    let _a = NodeProc::start("a", &flags("a"), &log);
    log.wait("a", &["HandoverDone"]).await;
    wait_for("200 reports answered by a after the takeover", || {
        answered_by("a", 2) >= 200
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    reporter.await.unwrap();

    assert!(log.any("a", &["Registered", "Takeover", "from: \"b\""]));
    let transferred = log
        .lines()
        .into_iter()
        .find(|(n, l)| n == "a" && l.contains("StateTransferred"))
        .expect("a logged the transfer")
        .1;
    let bytes: usize = transferred
        .split("bytes: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .expect("bytes in the StateTransferred event");
    assert!(bytes > 64 << 20, "the 64 MiB state moved ({bytes} bytes)");

    let records = records.lock().unwrap().clone();
    let first_b = records
        .iter()
        .filter(|(p, _)| *p == 1)
        .find_map(|(_, r)| r.as_ref().ok().filter(|r| r.node == "b"))
        .expect("b answered");
    assert!(
        first_b.total < 10,
        "failover starts from b's own state (the state is lost): {first_b:?}"
    );

    let since_restart: Vec<&Record> = records.iter().filter(|(p, _)| *p == 2).collect();
    let failures: Vec<&CallErr> = since_restart
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    assert!(
        failures.is_empty(),
        "calls lost during the takeover: {failures:?}"
    );
    let answers: Vec<&PowerReply> = since_restart
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
    assert!(answers.iter().any(|r| r.node == "b") || first_b.node == "b");
    assert_eq!(answers.last().unwrap().node, "a");
    assert_eq!(
        answers.last().unwrap().duplicates,
        0,
        "no report handled twice"
    );
    let count = client.call(PowerMsg::Count, CALL_TIMEOUT).await.unwrap();
    assert_eq!(
        count.total,
        answers.last().unwrap().total,
        "the state counts every answered report"
    );
    me.shutdown();
}
