//! A standby whose process is SIGKILLed while a client calls the holder
//! without pause. The OS closes the dead process's sessions, so the holder's
//! node declares it down at once and it leaves the lease's set: by the
//! lease design (`docs/lease.md`) a crashed standby costs the holder no
//! pause, and a peer that is not seen to close costs at most the margin
//! plus one heartbeat interval. This test process is the client node.
//!
//! One scenario per test binary: `ractor::pg` is a process static.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor_takeover::GlobalClient;
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, NAME};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};
use tokio::time::Instant;

const COOKIE: &str = "real-standby-kill-test";
const CALLERS: usize = 4;
/// The nodes' defaults (the test node binary sets no heartbeat flags):
/// 200 ms x 5 misses, so a detection time of 1 s and a margin of 250 ms.
const INTERVAL: Duration = Duration::from_millis(200);
const MARGIN: Duration = Duration::from_millis(250);

/// Placement `a > b > c`; `a` holds, four callers call without pause; the
/// standby `b` is SIGKILLed. The longest gap between two OKs around the
/// kill is printed; it must stay below the bound the lease design documents
/// for a peer the holder does not see close (margin + interval), with a
/// slack of twice that, since a crashed peer should cost nothing at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_standby_pauses_the_holder_no_longer_than_the_lease_bound() {
    support::init_tracing();
    let mesh = Mesh::new(&["client", "a", "b", "c"], COOKIE);
    let flags = |me: &str| mesh.flags(me, &[("placement", "a > b > c")]);
    let me = mesh.client_node().await;
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();

    let _a = NodeProc::start("a", &flags("a"), &log);
    log.wait("a", &["Registered", "Normal"]).await;
    let b = NodeProc::start("b", &flags("b"), &log);
    log.wait("b", &["Standby"]).await;
    let _c = NodeProc::start("c", &flags("c"), &log);
    log.wait("c", &["Standby"]).await;
    wait_for("the client sees a as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;

    let oks: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS)
        .map(|caller| {
            let (client, oks, stop) = (client.clone(), oks.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) {
                    seq += 1;
                    let report = PowerMsg::Report {
                        building: format!("caller{caller}"),
                        seq,
                    };
                    if let Ok(r) = client.call(report, Duration::from_secs(5)).await {
                        assert_eq!(r.node, "a", "the holder stays a");
                        oks.lock().unwrap().push(Instant::now());
                    }
                }
            })
        })
        .collect();
    let count = || oks.lock().unwrap().len();
    wait_for("200 reports answered", || count() >= 200).await;

    tracing::info!("--- SIGKILL the standby b");
    let before = count();
    let killed = Instant::now();
    b.kill();
    wait_for("2 s and 200 more answers after the kill", || {
        killed.elapsed() >= Duration::from_secs(2) && count() >= before + 200
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }

    let oks = oks.lock().unwrap().clone();
    // From the last OK before the kill on.
    let from = before.saturating_sub(1);
    let pause = oks[from..]
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    let bound = MARGIN + INTERVAL;
    println!(
        "longest gap between two OKs after the SIGKILL of the standby: {:.1} ms (documented bound for a peer not seen to close: {} ms)",
        pause.as_secs_f64() * 1000.0,
        bound.as_millis()
    );
    assert!(
        pause < bound * 2,
        "the holder paused {pause:?} after a standby's SIGKILL; the lease design bounds it by {bound:?}"
    );
    me.shutdown();
}
