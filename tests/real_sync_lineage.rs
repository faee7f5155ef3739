//! Synchronous standby across real processes: a standby keeps replicas
//! that a new holder's state lacks, and the new holder gets them.
//!
//! Placement `a > b > c`, synchronous standby (refuse). `b` is SIGKILLed,
//! and `a` goes on with `c` storing every call. `c` is SIGSTOPped (a hung
//! process: nothing more can be stored, so `a` answers nothing more) and
//! `a` is SIGKILLed: every call `a` acknowledged is in the hung `c`'s
//! replica only. `b` starts again (with a state directory, so its epoch is
//! above `a`'s); it cannot finish a session with the hung `c`, and after
//! its start-up timeout it takes the vacant name with nothing. `c` is
//! SIGCONTed. The epoch fence alone would let `c` store `b`'s replica over
//! its own, and the power monitor's merge keeps the winner's state: every
//! acknowledged report lost. `c` refuses `b`'s replicas and offers its
//! own; `b`, which answered nothing, takes it whole (or `c`, seeing the
//! name vacant first, fails over itself and wins). Either way every answer
//! after the restart counts more than `a` acknowledged.
//!
//! One scenario per test binary: `ractor::pg` is a process static.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use ractor_takeover::GlobalClient;
use ractor_takeover_testkit::power_monitor::{PowerMonitor, ReportLoad, NAME};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc, TempDir};

const COOKIE: &str = "real-sync-lineage-test";
const CALLERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_started_without_a_standbys_replicas_gets_them() {
    support::init_tracing();
    let mesh = Mesh::new(&["client", "a", "b", "c"], COOKIE);
    let dir_b = TempDir::new("sync_lineage_b");
    let flags = |me: &str| {
        let mut f = mesh.flags(
            me,
            &[("placement", "a > b > c"), ("sync-standby", "refuse")],
        );
        match me {
            "b" => f.push(("state-dir", dir_b.0.display().to_string())),
            // So that `c`, resumed, sees `b` holding before it would take
            // the name itself: the path where `b` needs `c`'s replica.
            "c" => f.push(("failover-delay-ms", "3000".to_string())),
            _ => {}
        }
        f
    };
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
    let load = ReportLoad::start(&client, CALLERS, Duration::from_secs(2));
    wait_for("200 reports answered by a", || load.count("a") >= 200).await;

    tracing::info!("--- SIGKILL b; a goes on with c storing its calls");
    b.kill();
    let before = load.count("a");
    wait_for("300 more reports answered by a, stored by c alone", || {
        load.count("a") >= before + 300
    })
    .await;

    tracing::info!("--- SIGSTOP c, then SIGKILL a");
    c.signal("STOP");
    a.kill();
    let first_epoch = load.answers().iter().map(|r| r.epoch).max().unwrap_or(0);
    let max_a = load
        .answers()
        .iter()
        .filter(|r| r.node == "a")
        .map(|r| r.total)
        .max()
        .expect("a answered");

    tracing::info!("--- start b again: c is hung, a is gone");
    let _b = NodeProc::start("b", &flags("b"), &log);
    log.wait("b", &["Registered"]).await;
    tracing::info!("--- SIGCONT c");
    c.signal("CONT");
    wait_for("200 reports answered after the restart", || {
        load.answers()
            .iter()
            .filter(|r| r.epoch > first_epoch)
            .count()
            >= 200
    })
    .await;
    let oks = load.stop().await;

    let lines = log.lines();
    for (n, l) in &lines {
        if l.contains("Registered") || l.contains("SplitBrain") || l.contains("refused") {
            println!("{n}: {l}");
        }
    }
    let took = lines
        .iter()
        .find(|(_, l)| l.contains("TookTheirs"))
        .map(|(n, l)| format!("{n}: {l}"));
    let after = oks
        .iter()
        .filter(|r| r.epoch > first_epoch)
        .map(|r| r.total)
        .min()
        .expect("answers after the restart");
    println!(
        "a acknowledged up to report {max_a}; the first answer after the restart counted {after}; taken whole: {took:?}"
    );
    assert!(
        after > max_a,
        "an answer after the restart counted {after}, a had acknowledged {max_a}: acknowledged reports were lost"
    );
    let totals: BTreeSet<u64> = oks.iter().map(|r| r.total).collect();
    assert_eq!(totals.len(), oks.len(), "a count answered twice");
    me.shutdown();
}
