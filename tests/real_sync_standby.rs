//! Synchronous standby across real processes: the holder's process is
//! SIGKILLed while four callers call it without pause, and the standby
//! that fails over holds every call the holder acknowledged. This test
//! process is the client node.
//!
//! The check: the power monitor answers its report count after each call,
//! and a failover starts from a prefix of the old holder's calls. So the
//! new holder's first answer must count more than the highest count the
//! old holder acknowledged (every acknowledged call is in its state), and
//! no count is answered twice over the whole run.
//!
//! One scenario per test binary: `ractor::pg` is a process static.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use ractor_takeover::GlobalClient;
use ractor_takeover_testkit::power_monitor::{PowerMonitor, ReportLoad, NAME};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};

const COOKIE: &str = "real-sync-standby-test";
const CALLERS: usize = 4;
/// The mode under test. With `("checkpoint-every", "50")` (warm standby)
/// instead, this test fails: one run lost 17 acknowledged reports.
const MODE: (&str, &str) = ("sync-standby", "refuse");

/// Placement `a > b > c`, synchronous standby (refuse) on every node; `a`
/// holds; four callers call; `a` is SIGKILLed; `b` fails over and the
/// callers go on against it. Every OK from `a` counts fewer reports than
/// `b`'s first OK, and no count shows twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_holder_loses_no_acknowledged_call() {
    support::init_tracing();
    let mesh = Mesh::new(&["client", "a", "b", "c"], COOKIE);
    let flags = |me: &str| mesh.flags(me, &[("placement", "a > b > c"), (MODE.0, MODE.1)]);
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

    tracing::info!("--- SIGKILL the holder a under load");
    a.kill();
    log.wait("b", &["Registered", "Failover"]).await;
    wait_for("300 reports answered by b", || load.count("b") >= 300).await;
    let oks = load.stop().await;

    let max_a = oks.iter().filter(|r| r.node == "a").map(|r| r.total).max();
    let min_b = oks.iter().filter(|r| r.node == "b").map(|r| r.total).min();
    let failover = log
        .lines()
        .into_iter()
        .find(|(n, l)| n == "b" && l.contains("Registered") && l.contains("Failover"))
        .map(|(_, l)| l);
    println!(
        "a acknowledged up to report {max_a:?}; b's first answer counted {min_b:?}; {failover:?}"
    );
    let (Some(max_a), Some(min_b)) = (max_a, min_b) else {
        panic!("both holders answered");
    };
    assert!(
        min_b > max_a,
        "b answered count {min_b}, a had acknowledged {max_a}: an acknowledged report was lost"
    );
    let totals: BTreeSet<u64> = oks.iter().map(|r| r.total).collect();
    assert_eq!(totals.len(), oks.len(), "a count answered twice");
    me.shutdown();
}
