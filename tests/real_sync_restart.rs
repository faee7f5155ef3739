//! Synchronous standby across real processes, when the holder's node is
//! restarted at once after a SIGKILL (a supervisor that restarts a crashed
//! service): the restarted node is first in line but keeps nothing, while
//! its in-sync standby keeps every acknowledged call. It must not take the
//! vacant name from nothing (that lost every acknowledged call in the fault
//! suite, seed 3823538645); it lets the standby fail over, then takes the
//! name back by placement, with the state. This test process is the
//! client node.
//!
//! Why a failover delay of 3 s: on loopback the standby fails over within
//! milliseconds of the SIGKILL, before a restarted process is up; the
//! delay opens the window a slower failure detector or a loaded machine
//! leaves, so the restarted node sees the name vacant.
//!
//! One scenario per test binary: `ractor::pg` is a process static.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use ractor_takeover::GlobalClient;
use ractor_takeover_testkit::power_monitor::{PowerMonitor, ReportLoad, NAME};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};

const COOKIE: &str = "real-sync-restart-test";
const CALLERS: usize = 4;

/// Placement `a > b > c`, synchronous standby (refuse), failover delay 3 s;
/// `a` holds under load, is SIGKILLed and started again at once. `b`
/// fails over from its replica, `a` takes the name back from `b`, no
/// acknowledged report is lost and no count shows twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_restarted_at_once_does_not_take_the_name_from_nothing() {
    support::init_tracing();
    let mesh = Mesh::new(&["client", "a", "b", "c"], COOKIE);
    let flags = |me: &str| {
        mesh.flags(
            me,
            &[
                ("placement", "a > b > c"),
                ("sync-standby", "refuse"),
                ("failover-delay-ms", "3000"),
            ],
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
    let load = ReportLoad::start(&client, CALLERS, Duration::from_secs(10));
    wait_for("300 reports answered by a", || load.count("a") >= 300).await;

    tracing::info!("--- SIGKILL the holder a under load, and start it again at once");
    a.kill();
    let max_a = load
        .answers()
        .iter()
        .map(|r| r.total)
        .max()
        .expect("a answered");
    let _a = NodeProc::start("a", &flags("a"), &log);
    log.wait("b", &["Registered", "Failover"]).await;
    log.wait("a", &["Registered", "Takeover"]).await;
    let back = load.count("a");
    wait_for("300 more reports answered by a", || {
        load.count("a") >= back + 300
    })
    .await;
    let oks = load.stop().await;

    let lines = log.lines();
    let from_nothing = lines
        .iter()
        .find(|(n, l)| n == "a" && l.contains("Failover") && l.contains("checkpoint: None"));
    assert!(
        from_nothing.is_none(),
        "the restarted a took the name from nothing: {from_nothing:?}"
    );
    let failover = lines
        .iter()
        .find(|(n, l)| n == "b" && l.contains("Registered") && l.contains("Failover"))
        .map(|(_, l)| l.clone());
    // Every answer after the restart (from `b`, or from `a` at a newer
    // epoch) counts more than the old `a` acknowledged: nothing was lost.
    let first_epoch = oks.iter().map(|r| r.epoch).min().unwrap_or(0);
    let after = oks
        .iter()
        .filter(|r| r.node == "b" || r.epoch > first_epoch)
        .map(|r| r.total)
        .min();
    println!("a acknowledged up to report {max_a}; the first answer after the restart counted {after:?}; {failover:?}");
    let after = after.expect("answers after the restart");
    assert!(
        after > max_a,
        "an answer after the restart counted {after}, a had acknowledged {max_a}: an acknowledged report was lost"
    );
    let totals: BTreeSet<u64> = oks.iter().map(|r| r.total).collect();
    assert_eq!(totals.len(), oks.len(), "a count answered twice");
    me.shutdown();
}
