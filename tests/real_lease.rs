//! The holder lease of the real backend (`ClusterNode::lease_until`) with
//! real peer processes that crash (SIGKILL) and hang (SIGSTOP). This test
//! process is the node whose lease is watched.
//!
//! One scenario per test binary: `ractor::pg` is a process static, so this
//! process can be only one node.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor_takeover::cluster::{ClusterConfig, ClusterNode, PeerAddr};
use ractor_takeover::registry::Registry;
use ractor_takeover_testkit::procs::{free_ports, mesh_peers, wait_for, Log, NodeProc};
use tokio::time::Instant;

const COOKIE: &str = "real-lease-test";

/// `lease_until` sampled over time, with whether `b` was up then (read
/// after the lease: `b` leaves the set before it leaves the live nodes'
/// read, never the other way round).
type Samples = Arc<Mutex<Vec<(Instant, Option<Instant>, bool)>>>;

/// The longest stretch without a lease among the samples taken after `from`.
fn longest_gap(samples: &Samples, from: Instant) -> Duration {
    let samples = samples.lock().unwrap();
    let (mut longest, mut lost) = (Duration::ZERO, None);
    for (at, lease, _) in samples.iter().filter(|(at, _, _)| *at >= from) {
        match (lease, lost) {
            (None, None) => lost = Some(*at),
            (Some(_), Some(since)) => {
                longest = longest.max(at.duration_since(since));
                lost = None;
            }
            _ => {}
        }
    }
    if let Some(since) = lost {
        longest = longest.max(samples.last().unwrap().0.duration_since(since));
    }
    longest
}

/// Node `x` (this process) with peers `b` and `c` (processes), default
/// heartbeats (200 ms x 5, lease 750 ms):
/// - `c` is SIGKILLed: its session closes, `x` drops it from the lease's set
///   at once; the lease comes back (the pause is printed);
/// - `b` is SIGSTOPped: from then on `x`'s lease never reaches past the
///   SIGSTOP plus the lease duration (a stopped peer answers no ping sent
///   after it stopped, and queued answers prove only their send times), so
///   it runs out; once `x` declares `b` down, `x` holds a lease again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_outlives_a_crashed_peer_and_never_a_hung_one() {
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
    let b = NodeProc::start("b", &flags("b", 1), &log);
    let c = NodeProc::start("c", &flags("c", 2), &log);
    wait_for("x sees b and c up and holds a lease", || {
        x.live_nodes().len() == 3 && x.lease_until().is_some()
    })
    .await;

    let samples: Samples = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (x, samples, stop) = (x.clone(), samples.clone(), stop.clone());
        async move {
            let mut every = tokio::time::interval(Duration::from_millis(2));
            while !stop.load(Ordering::Relaxed) {
                every.tick().await;
                let lease = x.lease_until();
                let b_up = x.live_nodes().iter().any(|n| n.as_str() == "b");
                samples.lock().unwrap().push((Instant::now(), lease, b_up));
            }
        }
    });

    tracing::info!("--- SIGKILL c");
    let killed = Instant::now();
    c.kill();
    wait_for("x declares c down", || x.live_nodes().len() == 2).await;
    wait_for("x holds a lease one detection time after the kill", || {
        killed.elapsed() >= Duration::from_secs(1) && x.lease_until().is_some()
    })
    .await;
    let crash_gap = longest_gap(&samples, killed);

    tracing::info!("--- SIGSTOP b");
    b.signal("STOP");
    let stopped = Instant::now();
    wait_for("x declares b down", || x.live_nodes().len() == 1).await;
    wait_for("x holds a lease again, alone", || x.lease_until().is_some()).await;
    let declared = Instant::now();
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    b.signal("CONT");

    let hang_gap = longest_gap(&samples, stopped);
    println!(
        "lease {lease:?}: longest pause after SIGKILL of a peer {crash_gap:?}, after SIGSTOP of a peer {hang_gap:?} (declared down {:?} after the SIGSTOP)",
        declared.duration_since(stopped)
    );
    let samples = samples.lock().unwrap();
    // While b counts as up, no lease reaches past the SIGSTOP plus the
    // lease duration: b answered no ping sent after it stopped.
    let while_b_up: Vec<_> = samples
        .iter()
        .filter(|(at, _, b_up)| *at >= stopped && *b_up)
        .collect();
    assert!(
        while_b_up.iter().any(|(_, l, _)| l.is_none()),
        "the lease ran out while b was stopped"
    );
    for (at, l, _) in &while_b_up {
        if let Some(until) = l {
            assert!(
                *until <= stopped + lease,
                "a lease sampled {:?} after the SIGSTOP reaches {:?} past it, over the lease {lease:?}",
                at.duration_since(stopped),
                until.duration_since(stopped)
            );
        }
    }
    x.shutdown();
}
