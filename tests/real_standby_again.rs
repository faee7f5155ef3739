//! A retired instance stays in its node process as a standby (issue 12),
//! between real `ractor_cluster` node processes on loopback: no node
//! respawns its instance, and the name moves back and forth between the
//! same two instances with its state. This test process is the client node.
//!
//! One scenario per test binary: `ractor::pg` is a process static.

mod support;

use std::time::Duration;

use ractor_takeover::GlobalClient;
use ractor_takeover_testkit::node::{INSTANCE, TAKEOVER};
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, NAME};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};

const COOKIE: &str = "real-standby-again-test";
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Placement `a, b` (equal priority, so nothing moves the name by itself).
/// `a` holds and counts three reports; `b` takes the name over (a `takeover`
/// line on its stdin): `a` retires and is a standby again in its process,
/// with no new instance. Then `a`'s same instance takes the name back, `b`
/// is a standby again, and the count of three came along both ways. Each
/// node printed exactly one `INSTANCE` line: nothing was respawned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_instance_stays_a_standby_and_takes_the_name_back() {
    support::init_tracing();
    let mesh = Mesh::new(&["client", "a", "b"], COOKIE);
    let flags = |me: &str| mesh.flags(me, &[("placement", "a, b"), ("pull-timeout-ms", "10000")]);
    let me = mesh.client_node().await;
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();

    let mut a = NodeProc::start("a", &flags("a"), &log);
    log.wait("a", &["Registered", "Normal"]).await;
    let mut b = NodeProc::start("b", &flags("b"), &log);
    log.wait("b", &["EVENT", "Standby"]).await;
    wait_for("the client sees a as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;
    for seq in 1..=3 {
        let report = PowerMsg::Report {
            building: "b1".into(),
            seq,
        };
        let reply = client.call(report, CALL_TIMEOUT).await.expect("a answers");
        assert_eq!((reply.node.as_str(), reply.total), ("a", seq));
    }

    tracing::info!("--- b takes the name over");
    b.send_line(TAKEOVER).expect("write to b");
    log.wait("b", &["TAKEOVER", "Ok("]).await;
    log.wait("b", &["Registered", "Takeover", "from: \"a\""])
        .await;
    log.wait("a", &["Retired"]).await;
    log.wait("a", &["EVENT", "Standby"]).await;
    wait_for("the client sees b as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "b")
    })
    .await;
    let count = client
        .call(PowerMsg::Count, CALL_TIMEOUT)
        .await
        .expect("b answers");
    assert_eq!((count.node.as_str(), count.total), ("b", 3));

    tracing::info!("--- a's same instance takes the name back");
    a.send_line(TAKEOVER).expect("write to a");
    log.wait("a", &["TAKEOVER", "Ok("]).await;
    log.wait("a", &["Registered", "Takeover", "from: \"b\""])
        .await;
    log.wait("b", &["Retired"]).await;
    wait_for("b is a standby again", || {
        log.count("b", &["EVENT", "Standby"]) >= 2
    })
    .await;
    wait_for("the client sees a as holder again", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;
    let count = client
        .call(PowerMsg::Count, CALL_TIMEOUT)
        .await
        .expect("a answers again");
    assert_eq!((count.node.as_str(), count.total), ("a", 3));

    assert_eq!(log.count("a", &[INSTANCE]), 1, "a never respawned");
    assert_eq!(log.count("b", &[INSTANCE]), 1, "b never respawned");
    me.shutdown();
}
