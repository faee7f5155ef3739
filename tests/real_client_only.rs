//! A client-only node (`ClusterConfig::client_only`: it calls, never
//! holds, and is in no placement) that hangs pauses nobody: its peers count
//! it neither for their holder lease nor in a safe lookup. Before, every
//! node running `ClusterNode` counted, so a client stopped by SIGSTOP
//! voided every holder's lease until it was declared down, and held every
//! safe lookup as long.
//!
//! This test process is node `x`, whose lease and lookups are watched; `b`
//! is a server node and `k` a client-only node, both processes. One
//! scenario per test binary: `ractor::pg` is a process static.

mod support;

use std::time::Duration;

use ractor_takeover::registry::Registry;
use ractor_takeover_testkit::procs::test_node_binary;
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};
use tokio::time::Instant;

const COOKIE: &str = "real-client-only-test";

/// `k` is SIGSTOPped. A safe lookup on `x` answers while `x` still counts
/// `k` up (it did not wait for `k`'s answer, which cannot come), and `x`
/// holds its lease at every sample from the SIGSTOP until it declares `k`
/// down (a hung server node voids it after the lease duration; see
/// `real_lease`). `k` is still declared down (a client's calls still follow
/// the detector), and comes back after SIGCONT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_client_node_pauses_no_holder_and_no_lookup() {
    support::init_tracing();
    let mesh = Mesh::new(&["x", "b", "k"], COOKIE);
    let x = mesh.client_node().await;
    let log = Log::default();
    let _b = NodeProc::start("b", &mesh.flags("b", &[("placement", "b")]), &log);
    let mut cmd = std::process::Command::new(test_node_binary());
    cmd.args(["client", "--name", "k", "--names", "1", "--client-only"]);
    for (flag, value) in mesh.flags("k", &[]) {
        cmd.arg(format!("--{flag}")).arg(value);
    }
    let log_k = log.clone();
    let k = NodeProc::spawn("k", cmd, move |tag, line| log_k.push(tag, line)).expect("start k");
    log.wait("k", &["READY"]).await;
    wait_for("x sees b and k up and holds a lease", || {
        x.live_nodes().len() == 3 && x.lease_until().is_some()
    })
    .await;

    k.signal("STOP");
    let stopped = Instant::now();
    let found = x
        .safe_lookup(
            ractor_takeover_testkit::power_monitor::NAME,
            Duration::from_secs(10),
        )
        .await
        .expect("the lookup answers");
    let k_up = x.live_nodes().iter().any(|n| n.as_str() == "k");
    println!(
        "safe lookup with k hung: {:?} after the SIGSTOP, k still up: {k_up}",
        stopped.elapsed()
    );
    assert!(found.is_some_and(|r| r.node().as_str() == "b"));
    assert!(k_up, "the lookup waited until k was declared down");

    let (mut samples, mut lost) = (0u32, 0u32);
    while x.live_nodes().iter().any(|n| n.as_str() == "k") {
        samples += 1;
        if x.lease_until().is_none() {
            lost += 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(
            stopped.elapsed() < support::TIMEOUT,
            "k never declared down"
        );
    }
    println!(
        "k declared down {:?} after the SIGSTOP; x had no lease in {lost} of {samples} samples",
        stopped.elapsed()
    );
    assert_eq!(lost, 0, "a hung client voided x's lease");

    k.signal("CONT");
    wait_for("x sees k up again", || x.live_nodes().len() == 3).await;
    x.shutdown();
}
