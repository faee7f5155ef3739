//! Membership through seed nodes (`ClusterConfig::with_seeds`): a node
//! added to a running cluster, and a client-only process, each list one
//! member only, learn the others from it and reach them. A joining node's
//! first safe lookup already sees a name held on a member it had not
//! reached yet: the seed tells the members before its pong, and the
//! lookup waits for every member it learnt.
//!
//! This test process is the joining node `j`; `s1`, `s2` (a running
//! two-node cluster that knows neither `j` nor `k`) and the client `k` are
//! processes. One scenario per test binary: `ractor::pg` is a process static.

mod support;

use std::time::Duration;

use ractor_takeover::cluster::{ClusterConfig, ClusterNode, PeerAddr};
use ractor_takeover::registry::Registry;
use ractor_takeover_testkit::node::svc_name;
use ractor_takeover_testkit::procs::{free_ports, test_node_binary, wait_for, Log, NodeProc};

const COOKIE: &str = "real-seed-join-test";

/// `s2` holds `svc-0` (placement `s2`). `j` starts with `s1` as its only
/// seed: its first safe lookup finds `svc-0` on `s2`, and `j` counts `s2`
/// up. Then `k`, a client-only process with `s1` as its only seed, is
/// answered by `s2`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_and_a_client_join_through_one_seed() {
    support::init_tracing();
    let ports = free_ports(4);
    let (j_port, s1, s2, k_port) = (ports[0], ports[1], ports[2], ports[3]);
    let addr = |name: &str, port: u16| format!("{name}@127.0.0.1:{port}");
    let log = Log::default();
    let server = |port: u16, other: String| {
        vec![
            ("port", port.to_string()),
            ("peers", other),
            ("cookie", COOKIE.to_string()),
            ("names", "1".to_string()),
            ("placement", "s2".to_string()),
        ]
    };
    let _s1 = NodeProc::start("s1", &server(s1, addr("s2", s2)), &log);
    let _s2 = NodeProc::start("s2", &server(s2, addr("s1", s1)), &log);
    log.wait("s2", &["Registered"]).await;
    log.wait("s1", &["Standby"]).await;

    tracing::info!("--- j joins with s1 as its only seed");
    let seed: PeerAddr = addr("s1", s1).parse().unwrap();
    let config = ClusterConfig::new("j", j_port, COOKIE).with_seeds(vec![seed]);
    let j = ClusterNode::start(config).await.expect("node j");
    let found = j
        .safe_lookup(&svc_name(0), Duration::from_secs(20))
        .await
        .expect("the lookup settles");
    assert_eq!(
        found.map(|r| r.node().to_string()),
        Some("s2".to_string()),
        "j's first lookup did not see the holder on s2"
    );
    wait_for("j counts s2 up", || {
        j.live_nodes().iter().any(|n| n.as_str() == "s2")
    })
    .await;

    tracing::info!("--- a client-only process joins with s1 as its only seed");
    let mut cmd = std::process::Command::new(test_node_binary());
    cmd.args(["client", "--name", "k", "--names", "1", "--client-only"]);
    cmd.args(["--port", &k_port.to_string(), "--cookie", COOKIE]);
    cmd.args(["--seeds", &addr("s1", s1)]);
    let log_k = log.clone();
    let _k = NodeProc::spawn("k", cmd, move |tag, line| log_k.push(tag, line)).expect("start k");
    log.wait("k", &["ANSWER", "ok node=s2"]).await;
    j.shutdown();
}
