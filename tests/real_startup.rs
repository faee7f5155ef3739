//! A restarting node whose session to one peer cannot complete (the peer's
//! process is stopped: the kernel accepts the TCP connection, nobody
//! answers) does not take that peer for down: it waits for it, up to
//! `ClusterConfig::startup_timeout`, and so never registers beside a live
//! holder there.
//!
//! One scenario per test binary: `ractor::pg` is a process static.

mod support;

use std::time::Duration;

use ractor_takeover_testkit::procs::{free_ports, mesh_peers, wait_for, Log, NodeProc};
use tokio::time::Instant;

/// Placement `a > b`: `a` holds, is SIGKILLed, `b` fails over. `b` is
/// stopped, `a` restarts and stays unable to finish its session with `b`
/// for 2 s (twice the detection time, under the 5 s start-up timeout), then
/// `b` resumes. `a` must take the name over from `b` (`Takeover { from: b }`),
/// never register it as vacant (`Normal` or `Failover`) beside `b`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarting_node_waits_for_a_peer_it_cannot_reach_yet() {
    support::init_tracing();
    let ports = free_ports(2);
    let names = ["a", "b"];
    let flags = |i: usize| {
        vec![
            ("port", ports[i].to_string()),
            ("peers", mesh_peers(&names, &ports, names[i])),
            ("placement", "a > b".to_string()),
        ]
    };
    let log = Log::default();
    let a = NodeProc::start("a", &flags(0), &log);
    log.wait("a", &["Registered", "Normal"]).await;
    let b = NodeProc::start("b", &flags(1), &log);
    log.wait("b", &["Standby"]).await;
    a.kill();
    log.wait("b", &["Registered", "Failover", "from: \"a\""])
        .await;

    b.signal("STOP");
    let _a = NodeProc::start("a", &flags(0), &log);
    let restarted = Instant::now();
    wait_for("a ran 2 s without a session to b", || {
        restarted.elapsed() >= Duration::from_secs(2)
    })
    .await;
    let vacant_while_stopped = log.count("a", &["Registered", "Normal"]) > 1
        || log.count("a", &["Registered", "Failover"]) > 0;
    b.signal("CONT");
    assert!(
        !vacant_while_stopped,
        "a registered the name as vacant while b was only unreachable"
    );
    log.wait("a", &["Registered", "Takeover", "from: \"b\""])
        .await;
    assert_eq!(
        log.count("a", &["Registered", "Normal"]),
        1,
        "a's second life never registered as vacant"
    );
    assert_eq!(log.count("a", &["Registered", "Failover"]), 0);
}
