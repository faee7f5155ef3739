//! A node whose runtime is saturated (every worker thread held by a
//! CPU-bound task for three detection times, as a CPU-bound handler or a
//! registry storm does) is not declared down by its peers: its failure
//! detector runs on a thread and a socket of its own (`cluster::beacon`).
//! Before, its heartbeats were answered on the saturated runtime, and a
//! peer took its names beside it.
//!
//! This test process is node `x`, an observer; `a` (the holder) and `b`
//! (its standby) are processes. One scenario per test binary:
//! `ractor::pg` is a process static.

mod support;

use std::time::Duration;

use ractor_takeover::registry::{Registry, RegistryEvent};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};

const COOKIE: &str = "real-detector-load-test";
/// How long `a`'s runtime is saturated: three detection times (1 s each
/// with the defaults), five times the lease.
const HOG_MS: u64 = 3000;

/// `a` holds the power monitor (placement `a > b`); every worker thread of
/// `a`'s runtime spins for 3 s. Then: `x` published no `NodeDown(a)`, `b`
/// never failed over (it printed no `Registered` event), and `a` is still
/// the one holder. `RUNS` (default 1) repeats the hog on the same mesh, for
/// the false-down figure in `docs/benchmarks.md`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_node_is_not_declared_down() {
    support::init_tracing();
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let mesh = Mesh::new(&["x", "a", "b"], COOKIE);
    let x = mesh.client_node().await;
    let log = Log::default();
    let mut a = NodeProc::start("a", &mesh.flags("a", &[("placement", "a > b")]), &log);
    log.wait("a", &["READY"]).await;
    let _b = NodeProc::start("b", &mesh.flags("b", &[("placement", "a > b")]), &log);
    log.wait("b", &["READY"]).await;
    wait_for("x sees a and b up", || x.live_nodes().len() == 3).await;
    wait_for("a holds the name", || {
        x.lookup(ractor_takeover_testkit::power_monitor::NAME)
            .is_some_and(|r| r.node().as_str() == "a")
    })
    .await;
    let mut events = x.subscribe();

    let mut false_downs = 0;
    for run in 1..=runs {
        tracing::info!("--- run {run}: saturate every worker of a's runtime for {HOG_MS} ms");
        let hogged = log.count("a", &["HOGGED"]);
        a.send_line(&format!("hog {HOG_MS}"))
            .expect("a takes the hog");
        wait_for("a's hog is over", || log.count("a", &["HOGGED"]) > hogged).await;
        // After the hog: a round trip to every live peer, so whatever `b`
        // registered meanwhile has reached `x` (the barrier's pongs come
        // after `b`'s pg changes on its session).
        x.safe_lookup("any", Duration::from_secs(10))
            .await
            .expect("x's view settles");
        let mut downs = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let RegistryEvent::NodeDown(node) = event {
                downs.push(node);
            }
        }
        let failed_over = log.any("b", &["Registered"]);
        println!("run {run}: NodeDown seen by x: {downs:?}; b failed over: {failed_over}");
        if !downs.is_empty() || failed_over {
            false_downs += 1;
        }
        if runs == 1 {
            assert!(downs.is_empty(), "x declared a live node down: {downs:?}");
            assert!(!failed_over, "b took the name of a live, busy a");
        }
    }
    println!("false downs under a {HOG_MS} ms saturation: {false_downs} in {runs} runs");
    assert_eq!(false_downs, 0);

    tracing::info!("--- a is still the one holder");
    a.send_line("holders").expect("a takes holders");
    log.wait("a", &["HOLDERS", "holder=1"]).await;
    let holder = x
        .lookup(ractor_takeover_testkit::power_monitor::NAME)
        .expect("a holder in x's view");
    assert_eq!(holder.node().as_str(), "a");
    x.shutdown();
}
