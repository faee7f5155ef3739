//! A holder that restarted without a state directory while its synchronous
//! standby hung, on real processes: the restarted node takes epoch 1 again,
//! and the standby, once resumed, keeps a replica of the first epoch 1 that
//! is newer than everything the new holder sends. Before the standby
//! offered that replica for a merge, it refused each replica as stale and
//! the holder, in refuse mode, answered no call again. The fake-cluster
//! cases are the seeds of `stale_holder_seeds_stay_fixed`
//! (`tests/fault_schedules/regressions.rs`).
//!
//! One scenario per test binary: `ractor::pg` is a process static.

mod support;

use std::time::Duration;

use ractor_takeover::GlobalClient;
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, NAME};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};

const COOKIE: &str = "real-stale-standby-test";
/// Long enough for one call to wait out the restarted holder's start-up
/// (it waits up to `startup_timeout`, 5 s, for the hung standby) and the
/// merge after the standby resumes.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Placement `a > b`, synchronous standby (refuse) on both, no state
/// directory. `a` holds and answers 50 reports, each stored by `b`. `b` is
/// SIGSTOPped; `a` is SIGKILLed and restarted, and registers epoch 1 again
/// (it forgot it; `b`, hung, cannot tell it). `b` is SIGCONTed, with a
/// failover delay that keeps it from failing over while it learns of the
/// new `a`. Then reports are answered again, by `a`, once it merged `b`'s
/// replica, under an epoch above 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_older_than_its_standby_serves_again() {
    support::init_tracing();
    let mesh = Mesh::new(&["client", "a", "b"], COOKIE);
    let flags = |me: &str| {
        mesh.flags(
            me,
            &[
                ("placement", "a > b"),
                ("sync-standby", "refuse"),
                ("failover-delay-ms", "20000"),
            ],
        )
    };
    let me = mesh.client_node().await;
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();

    let a = NodeProc::start("a", &flags("a"), &log);
    log.wait("a", &["Registered", "Normal"]).await;
    let b = NodeProc::start("b", &flags("b"), &log);
    log.wait("b", &["Standby"]).await;
    wait_for("the client sees a as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;
    let mut seq = 0;
    let mut report = || {
        seq += 1;
        PowerMsg::Report {
            building: "b0".into(),
            seq,
        }
    };
    let mut first_epoch = None;
    for _ in 0..50 {
        let r = client
            .call(report(), CALL_TIMEOUT)
            .await
            .expect("a answers before the faults");
        assert_eq!(r.node, "a");
        first_epoch = Some(r.epoch);
    }
    let first_epoch = first_epoch.expect("answers");

    tracing::info!("--- SIGSTOP the standby b, SIGKILL the holder a, restart a");
    b.signal("STOP");
    a.kill();
    let _a = NodeProc::start("a", &flags("a"), &log);
    wait_for("the restarted a holds the name", || {
        log.count("a", &["Registered"]) >= 2
    })
    .await;
    let restarted = log
        .lines()
        .into_iter()
        .filter(|(n, l)| n == "a" && l.contains("Registered"))
        .nth(1)
        .map(|(_, l)| l);
    println!("the restarted a: {restarted:?}");
    b.signal("CONT");

    let r = client
        .call(report(), CALL_TIMEOUT)
        .await
        .expect("a report is answered after the standby resumed");
    println!("answered after the resume: {r:?}");
    assert_eq!(r.node, "a", "the restarted a answers");
    // That call may have run before the merge, under the forgotten epoch;
    // the next runs under the epoch taken above it.
    let next = client
        .call(report(), CALL_TIMEOUT)
        .await
        .expect("the next report is answered");
    println!("the next: {next:?}");
    assert!(
        next.node == "a" && next.epoch > first_epoch,
        "the restarted a answers under an epoch above the one it forgot ({first_epoch}): {next:?}"
    );
    assert!(
        log.any("a", &["SplitBrainHealed"]),
        "a merged the replica b kept"
    );
    me.shutdown();
}
