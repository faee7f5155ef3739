//! Hostile bytes on the node ports of a real cluster: three node processes
//! (`a > b > c`) on loopback and a client node (this process) calling the
//! power monitor without pause, while test sockets that never authenticate
//! send each node's port (1) random bytes, (2) a length prefix of a
//! terabyte, (3) a valid-looking prefix and then silence, and (4) many
//! connections at once that say nothing.
//!
//! It checks what the node's gate (`src/cluster/guard.rs`) promises: the
//! cluster keeps serving (every call succeeds, the name never moves), each
//! hostile connection is closed by the node within a bound (polled with a
//! deadline far above `auth_timeout`, 5 s; nothing timed), and each node's
//! resident memory stays bounded (printed; the bound is far below what one
//! big unauthenticated frame used to cost). The random bytes are seeded;
//! the seed is printed (`HOSTILE_SEED=<seed>` replays them).
//!
//! The fake cluster has no analogue: it models sessions between its nodes,
//! not a node's TCP port, so there is nothing hostile to connect to there.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor_takeover::cluster::{ClusterConfig, ClusterNode};
use ractor_takeover::GlobalClient;
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, NAME};
use ractor_takeover_testkit::procs::{free_ports, mesh_peers, wait_for, Log, NodeProc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Connections at once per node in attack (4): above the 64 a node lets
/// authenticate at once.
const MANY: usize = 100;

/// How long a hostile connection may stay open: far above the node's
/// `auth_timeout` (5 s), so that only a connection never closed fails.
const CLOSE_BOUND: Duration = Duration::from_secs(30);

/// The growth of a node's resident memory the attack may cause, at most:
/// generous, and far below one unauthenticated 16 MiB frame per connection
/// (the cost before the gate).
const RSS_BOUND: u64 = 64 << 20;

fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib << 10
}

/// Reads `conn` until the node closes it (EOF or an error), or the bound
/// passes: whether it was closed.
async fn closed_by_node(mut conn: TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + CLOSE_BOUND;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // The node may answer a handshake frame: read on.
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Connects to `port`, sends `bytes` (the node may close before all of
/// them went out), and waits for the node to close the connection.
async fn hostile(port: u16, bytes: Vec<u8>) -> bool {
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let _ = conn.write_all(&bytes).await;
    closed_by_node(conn).await
}

/// The four attacks on one node's port, at once; how many connections the
/// node closed, of how many.
async fn attack(port: u16, rng: &mut StdRng) -> (usize, usize) {
    let mut random = vec![0u8; 64 << 10];
    rng.fill(&mut random[..]);
    // A terabyte announced, a little sent.
    let mut huge = (1u64 << 40).to_be_bytes().to_vec();
    huge.extend_from_slice(&[0xab; 1024]);
    // A plausible handshake frame's length, then nothing.
    let prefix = 40u64.to_be_bytes().to_vec();
    let mut tasks = vec![
        tokio::spawn(hostile(port, random)),
        tokio::spawn(hostile(port, huge)),
        tokio::spawn(hostile(port, prefix)),
    ];
    for _ in 0..MANY {
        tasks.push(tokio::spawn(hostile(port, Vec::new())));
    }
    let total = tasks.len();
    let mut closed = 0;
    for t in tasks {
        if t.await.expect("attack task") {
            closed += 1;
        }
    }
    (closed, total)
}

/// The cluster keeps serving through the attacks on every node's port,
/// every hostile connection is closed, and memory stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_on_the_node_ports_cost_little_and_change_nothing() {
    support::init_tracing();
    let seed = std::env::var("HOSTILE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("hostile bytes seed {seed} (replay with HOSTILE_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let names = ["client", "a", "b", "c"];
    let ports = free_ports(names.len());
    let peers_of = |me: &str| mesh_peers(&names, &ports, me);
    let log = Log::default();
    let mut nodes = Vec::new();
    for (i, name) in names.iter().enumerate().skip(1) {
        let flags = vec![
            ("port", ports[i].to_string()),
            ("peers", peers_of(name)),
            ("cookie", "real-hostile-test".to_string()),
            ("placement", "a > b > c".to_string()),
        ];
        nodes.push(NodeProc::start(name, &flags, &log));
        log.wait(name, &["READY"]).await;
    }
    log.wait("a", &["Registered", "Normal"]).await;
    let peers = peers_of("client")
        .split(',')
        .map(|p| p.parse().expect("a peer"))
        .collect();
    let me = ClusterNode::start(
        ClusterConfig::new("client", ports[0], "real-hostile-test").with_peers(peers),
    )
    .await
    .expect("the client node starts");
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    wait_for("the client sees a as holder", || {
        client.whereis().is_some_and(|h| h.node.as_str() == "a")
    })
    .await;

    tracing::info!("--- client load");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let load = {
        let (client, stop, ok) = (client.clone(), stop.clone(), ok.clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let report = PowerMsg::Report {
                    building: "hostile".into(),
                    seq,
                };
                match client.call(report, Duration::from_secs(10)).await {
                    Ok(reply) if reply.node == "a" => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(reply) => failures.push(format!("call {seq} answered by {}", reply.node)),
                    Err(e) => failures.push(format!("call {seq}: {e}")),
                }
            }
            failures
        })
    };
    let before_ok = ok.load(Ordering::Relaxed);
    wait_for("calls succeed before the attack", || {
        ok.load(Ordering::Relaxed) > before_ok + 50
    })
    .await;
    let registered_before: Vec<usize> = ["a", "b", "c"]
        .iter()
        .map(|n| log.count(n, &["Registered"]))
        .collect();
    let rss_before: Vec<u64> = nodes.iter().map(|n| rss(n.pid())).collect();

    tracing::info!("--- the attacks, on every node's port at once");
    let at_attack = ok.load(Ordering::Relaxed);
    let mut attacks = Vec::new();
    for port in &ports[1..] {
        let mut node_rng = StdRng::seed_from_u64(rng.random());
        let port = *port;
        attacks.push(tokio::spawn(
            async move { attack(port, &mut node_rng).await },
        ));
    }
    let mut rss_peak = rss_before.clone();
    let mut results = Vec::new();
    for a in attacks {
        while !a.is_finished() {
            for (peak, n) in rss_peak.iter_mut().zip(&nodes) {
                *peak = (*peak).max(rss(n.pid()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        results.push(a.await.expect("attack"));
    }
    let during = ok.load(Ordering::Relaxed) - at_attack;
    wait_for("calls still succeed after the attack", || {
        ok.load(Ordering::Relaxed) > at_attack + during + 50
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let failures = load.await.expect("load");

    for ((name, (closed, total)), (before, peak)) in names[1..]
        .iter()
        .zip(&results)
        .zip(rss_before.iter().zip(&rss_peak))
    {
        println!(
            "node {name}: {closed} of {total} hostile connections closed by the node; RSS {:.1} MiB, peak {:.1} MiB during the attack",
            *before as f64 / f64::from(1 << 20),
            *peak as f64 / f64::from(1 << 20),
        );
    }
    println!(
        "calls: {} answered by a during the attack, {} in all, {} failed",
        during,
        ok.load(Ordering::Relaxed),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "calls failed: {:?}",
        &failures[..failures.len().min(8)]
    );
    for (name, (closed, total)) in names[1..].iter().zip(&results) {
        assert_eq!(
            closed, total,
            "node {name} left hostile connections open past {CLOSE_BOUND:?}"
        );
    }
    let registered_after: Vec<usize> = ["a", "b", "c"]
        .iter()
        .map(|n| log.count(n, &["Registered"]))
        .collect();
    assert_eq!(registered_before, registered_after, "the name moved");
    assert!(client.whereis().is_some_and(|h| h.node.as_str() == "a"));
    for (name, (before, peak)) in names[1..].iter().zip(rss_before.iter().zip(&rss_peak)) {
        assert!(
            peak.saturating_sub(*before) < RSS_BOUND,
            "node {name} grew by {:.1} MiB",
            peak.saturating_sub(*before) as f64 / f64::from(1 << 20)
        );
    }
    me.shutdown();
    for n in nodes {
        n.kill();
    }
}
