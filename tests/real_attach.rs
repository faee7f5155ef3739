//! Nodes attached to the application's own `ractor_cluster::NodeServer`
//! (`ClusterNode::attach`), beside a node the crate started: a takeover
//! between two attached node processes moves the state, and a SIGKILL of
//! the holder fails over, as between started nodes.
//!
//! One scenario per test binary: `ractor::pg` is a process static, so this
//! process can be only one node.

mod support;

use std::time::Duration;

use ractor_takeover::GlobalClient;
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, NAME};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};

const COOKIE: &str = "real-attach-test";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// `b > a`, both attached to a node server of their own: `a` starts alone
/// and holds, the client reports 10 times; `b` starts and takes the name
/// over with the count; `b` is killed and `a` fails over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attached_nodes_take_over_and_fail_over() {
    support::init_tracing();
    let mesh = Mesh::new(&["client", "a", "b"], COOKIE);
    let flags = |me: &str| mesh.flags(me, &[("placement", "b > a"), ("attach", "true")]);
    let me = mesh.client_node().await;
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();

    let _a = NodeProc::start("a", &flags("a"), &log);
    log.wait("a", &["Registered"]).await;
    wait_for("the client sees a as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;
    for seq in 1..=10 {
        let reply = client
            .call(
                PowerMsg::Report {
                    building: "north".into(),
                    seq,
                },
                CALL_TIMEOUT,
            )
            .await
            .expect("a answers");
        assert_eq!((reply.node.as_str(), reply.total), ("a", seq));
    }

    tracing::info!("--- b starts, attached too, and takes the name over");
    let b = NodeProc::start("b", &flags("b"), &log);
    log.wait("b", &["HandoverDone"]).await;
    wait_for("the client sees b as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "b")
    })
    .await;
    let on_b = client
        .call(PowerMsg::Count, CALL_TIMEOUT)
        .await
        .expect("b answers");
    assert_eq!(on_b.node, "b");
    assert_eq!(on_b.total, 10, "the count moved with the name");
    assert_eq!(on_b.duplicates, 0);

    tracing::info!("--- SIGKILL b: a fails over");
    b.kill();
    log.wait("a", &["Registered", "Failover"]).await;
    wait_for("the client sees a as holder again", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;
    let on_a = client
        .call(PowerMsg::Count, CALL_TIMEOUT)
        .await
        .expect("a answers after the failover");
    assert_eq!(on_a.node, "a");
    me.shutdown();
}
