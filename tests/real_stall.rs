//! A node that stalls (the whole process stopped for 3 s, as a GC pause, a
//! swap storm or a VM migration does; its sockets keep filling meanwhile)
//! suspects itself before its peers: it declares none of them down on the
//! strength of its own late timers, and it holds no lease until they
//! answered pings sent after the stall. This test process is that node (it
//! has a helper process SIGCONT it); its peers are real processes.
//!
//! One scenario per test binary: `ractor::pg` is a process static.

mod support;

use std::time::Duration;

use ractor_takeover::cluster::{ClusterConfig, ClusterNode, PeerAddr};
use ractor_takeover::registry::{Registry, RegistryEvent};
use ractor_takeover_testkit::procs::{free_ports, mesh_peers, wait_for, Log, NodeProc};
use tokio::time::Instant;

const COOKIE: &str = "real-stall-test";
/// The stall: three detection times.
const STALL: Duration = Duration::from_secs(3);

/// Node `x` (this process) with peers `b` and `c` (processes). `x` stops
/// itself (SIGSTOP: every thread, the failure detector's own included) for
/// 3 s; a helper process it started resumes it. After it: `x` publishes no
/// `NodeDown` (its peers were alive all along), and any lease it holds
/// counts from a ping sent after the stall, so it ends more than half the
/// stall past `stopping + lease` (a lease from a pong that queued during
/// the stall ends by `stopping + lease`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_node_suspects_itself_first() {
    support::init_tracing();
    let ports = free_ports(3);
    let names = ["x", "b", "c"];
    let flags = |me: &str, i: usize| {
        vec![
            ("port", ports[i].to_string()),
            ("peers", mesh_peers(&names, &ports, me)),
            ("cookie", COOKIE.to_string()),
            ("placement", "b > c".to_string()),
        ]
    };
    let peers: Vec<PeerAddr> = mesh_peers(&names, &ports, "x")
        .split(',')
        .map(|p| p.parse().unwrap())
        .collect();
    let config = ClusterConfig::new("x", ports[0], COOKIE).with_peers(peers);
    let lease = config.lease_duration().expect("the defaults leave a lease");
    let x = ClusterNode::start(config).await.expect("node x");
    let log = Log::default();
    let _b = NodeProc::start("b", &flags("b", 1), &log);
    let _c = NodeProc::start("c", &flags("c", 2), &log);
    wait_for("x sees b and c up and holds a lease", || {
        x.live_nodes().len() == 3 && x.lease_until().is_some()
    })
    .await;
    let mut events = x.subscribe();

    tracing::info!("--- stop this whole process for {STALL:?}");
    // The fault itself, not a wait: a helper process stops us, and resumes
    // us after the stall. Why the helper sends the stop too, and why we
    // watch our own clock for it: a SIGSTOP takes effect when some thread
    // of ours next runs, which may be after a `kill` we ran ourselves has
    // returned (CI saw this thread go on for a moment). The instant before
    // the gap is the last one before the stop.
    let me = std::process::id();
    // Taken before the helper starts: the stop can come before this thread
    // runs again after the spawn (CI saw it stop us before a clock read
    // placed after the spawn, so no gap showed and the test failed).
    let began = Instant::now();
    let mut stopping = began;
    let mut helper = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "kill -STOP {me}; sleep {}; kill -CONT {me}",
            STALL.as_secs()
        ))
        .spawn()
        .expect("the helper that stops and resumes us");
    let resumed = loop {
        tokio::time::sleep(Duration::from_millis(1)).await;
        let now = Instant::now();
        if now.duration_since(stopping) > STALL / 2 {
            break now;
        }
        assert!(
            now.duration_since(began) < STALL * 4,
            "the process was never stopped"
        );
        stopping = now;
    };
    let _ = helper.wait();

    let mut samples = Vec::new();
    while resumed.elapsed() < Duration::from_secs(2) {
        samples.push((Instant::now(), x.lease_until(), x.live_nodes().len()));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    wait_for("x holds a lease again", || x.lease_until().is_some()).await;

    let mut downs = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let RegistryEvent::NodeDown(node) = event {
            downs.push(node);
        }
    }
    assert!(downs.is_empty(), "x declared live peers down: {downs:?}");
    assert!(
        samples.iter().all(|(_, _, live)| *live == 3),
        "x kept both peers up"
    );
    let first_lease = samples
        .iter()
        .find(|(_, l, _)| l.is_some())
        .map(|(at, _, _)| at.duration_since(resumed));
    println!("after a {STALL:?} stall, x held a lease again {first_lease:?} after resuming");
    for (at, l, _) in &samples {
        if let Some(until) = l {
            assert!(
                *until > stopping + lease + STALL / 2,
                "a lease sampled {:?} after the resume ends {:?} after the stall began: it counts from before the stall",
                at.duration_since(resumed),
                until.duration_since(stopping)
            );
        }
    }
    x.shutdown();
}
