//! Many names on the fake cluster: what a mass event costs a node.
//!
//! Each of N names (`svc-0..`) runs an instance on each of three nodes
//! (placement `a > b > c`) and has a client on each node. Then `a`, which
//! holds every name, crashes, and `b` fails over all of them. The test
//! counts, on `b`, the registry changes handed to instances and clients
//! (each one a wake-up: a mailbox message for an instance, a cache drop
//! for a client), and what the same changes cost when every instance and
//! every client read the node's whole change stream (as they did before
//! per-name watches): every change times every reader.
//!
//! Run with `cargo test --all-features --test scale -- --nocapture` to
//! see the figures.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor_takeover::fake::FakeCluster;
use ractor_takeover::*;
use support::*;
use tokio::sync::broadcast::error::RecvError;

const NODES: [&str; 3] = ["a", "b", "c"];

fn name(i: usize) -> String {
    format!("svc-{i}")
}

/// What one mass failover cost node `b`.
#[derive(Debug)]
struct Cost {
    /// Changes handed to the per-name watches of `b`'s instances and clients.
    deliveries: u64,
    /// Changes `b`'s view applied (its whole stream).
    changes: u64,
    /// What those changes cost with one whole-stream reader per instance and
    /// per client: `changes x 2N`.
    whole_stream: u64,
}

/// Starts N names on three nodes, crashes the holder of all of them, waits
/// until `b` holds every name, and returns what that cost `b`.
async fn mass_failover(n: usize) -> Cost {
    let cluster = FakeCluster::new(NODES);
    let config = TakeoverConfig::default().with_placement(
        Placement::parse("a > b > c")
            .with_failover_delay(Duration::from_millis(100))
            .with_standby_grace(Duration::from_millis(300)),
    );
    tracing::info!("--- start {n} names on a, then their standbys on b and c");
    let mut keep = Vec::new();
    for node in NODES {
        for i in 0..n {
            let server = TakeoverServer::new(
                name(i),
                Counter::default(),
                cluster.registry(node),
                config.clone(),
            );
            keep.push(server.spawn(()).await.expect("spawn").0);
        }
    }
    let clients: Vec<GlobalClient<Counter>> = NODES
        .iter()
        .flat_map(|node| (0..n).map(|i| GlobalClient::new(name(i), cluster.registry(node))))
        .collect();
    let all_on = |node: &'static str| {
        let cluster = cluster.clone();
        move || {
            let cluster = cluster.clone();
            async move {
                (0..n).all(|i| {
                    cluster
                        .holders(&name(i))
                        .values()
                        .all(|h| h.as_ref().is_some_and(|h| h.node.as_str() == node))
                })
            }
        }
    };
    wait_until("every name is held on a in every view", all_on("a")).await;
    settle().await;

    // Counts the changes b's view applies from now on (its whole stream).
    let mut stream = cluster.registry("b").subscribe();
    let seen = Arc::new(AtomicU64::new(0));
    let counter = tokio::spawn({
        let seen = seen.clone();
        async move {
            loop {
                let add = match stream.recv().await {
                    Ok(_) => 1,
                    Err(RecvError::Lagged(missed)) => missed,
                    Err(RecvError::Closed) => return,
                };
                seen.fetch_add(add, Ordering::Relaxed);
            }
        }
    });
    let before = cluster.deliveries("b");
    tracing::info!("--- crash a, the holder of all {n} names");
    cluster.crash("a");
    wait_until("every name is held on b in every up view", all_on("b")).await;
    settle().await;
    let deliveries = cluster.deliveries("b") - before;
    counter.abort();
    let changes = seen.load(Ordering::Relaxed);
    drop(clients);
    drop(keep);
    Cost {
        deliveries,
        changes,
        whole_stream: changes * 2 * n as u64,
    }
}

/// Invariant: a mass failover of N names costs a node a bounded number of
/// wake-ups per name (its instance and client of each name hear only that
/// name's changes and the node-down notice): linear in N, where one whole
/// stream per reader cost about 2N² at N = 1000.
#[tokio::test(start_paused = true)]
async fn a_mass_failover_costs_each_node_work_per_name() {
    for n in [100, 1000] {
        let cost = mass_failover(n).await;
        println!(
            "names={n} per-name deliveries on b={} ({:.1} per name); changes applied={}; \
             with a whole stream per reader={} ({:.0} per name)",
            cost.deliveries,
            cost.deliveries as f64 / n as f64,
            cost.changes,
            cost.whole_stream,
            cost.whole_stream as f64 / n as f64,
        );
        // Per name on b: the old holder's leave, the node-down notice and
        // b's own registration, each to one instance and one client.
        assert!(
            cost.deliveries <= 8 * n as u64,
            "{n} names: {} deliveries on b, more than 8 per name",
            cost.deliveries
        );
        assert!(
            cost.deliveries >= 2 * n as u64,
            "{n} names: {} deliveries on b: the failover was not seen",
            cost.deliveries
        );
    }
}

/// Invariant: a node that comes back takes its names back at most
/// `move_limit` at a time, and takes every one back. Twelve names on
/// `a > b`; `a` crashes, `b` fails over all of them; `a` restarts with
/// `move_limit(3)` on its instances' config, and every link between the two
/// nodes is slowed (200 ms), so a takeover lasts long enough for the next
/// ones to start beside it. From the events on `a`: at no moment were more
/// than 3 of its takeovers under way (steal to holder or abort), and more
/// than one was (the limit, not the order of spawns, is what held them).
#[tokio::test(start_paused = true)]
async fn a_returning_node_takes_its_names_back_at_most_move_limit_at_once() {
    const N: usize = 12;
    const LIMIT: usize = 3;
    let cluster = FakeCluster::new(["a", "b"]);
    let base = TakeoverConfig::default().with_placement(
        Placement::parse("a > b")
            .with_failover_delay(Duration::from_millis(100))
            .with_standby_grace(Duration::from_millis(300)),
    );
    let spawn_all = |node: &'static str, config: TakeoverConfig| {
        let cluster = cluster.clone();
        async move {
            let mut keep = Vec::new();
            for i in 0..N {
                let server = TakeoverServer::new(
                    name(i),
                    Counter::default(),
                    cluster.registry(node),
                    config.clone(),
                );
                keep.push(server.spawn(()).await.expect("spawn").0);
            }
            keep
        }
    };
    let held_on = |node: &'static str| {
        let cluster = cluster.clone();
        move || {
            let cluster = cluster.clone();
            async move {
                (0..N).all(|i| {
                    cluster
                        .holders(&name(i))
                        .values()
                        .all(|h| h.as_ref().is_some_and(|h| h.node.as_str() == node))
                })
            }
        }
    };
    tracing::info!("--- {N} names on a, standbys on b");
    let _on_a = spawn_all("a", base.clone()).await;
    let _on_b = spawn_all("b", base.clone()).await;
    wait_until("a holds every name", held_on("a")).await;
    tracing::info!("--- crash a: b fails over every name");
    cluster.crash("a");
    wait_until("b holds every name", held_on("b")).await;

    tracing::info!("--- slow links, restart a with move_limit({LIMIT})");
    cluster.set_delay("a", "b", Duration::from_millis(200));
    cluster.set_delay("b", "a", Duration::from_millis(200));
    let mut events = base.events.subscribe();
    cluster.restart("a");
    let _back = spawn_all("a", base.clone().with_move_limit(LIMIT)).await;
    wait_until("a holds every name again", held_on("a")).await;

    let mut running = std::collections::BTreeSet::new();
    let (mut most, mut started) = (0, 0);
    while let Ok(ev) = events.try_recv() {
        if ev.node.as_str() != "a" {
            continue;
        }
        match ev.kind {
            event::EventKind::TakeoverStarted { .. } => {
                started += 1;
                running.insert(ev.name.clone());
                most = most.max(running.len());
            }
            event::EventKind::Registered { .. } | event::EventKind::TakeoverAborted { .. } => {
                running.remove(&ev.name);
            }
            _ => {}
        }
    }
    println!("takeovers started on a: {started}; most under way at once: {most}");
    assert!(
        started >= N,
        "every name was taken back: {started} takeovers"
    );
    assert!(
        most <= LIMIT,
        "{most} takeovers at once, above the limit {LIMIT}"
    );
    assert!(
        most > 1,
        "the takeovers ran one by one: the test shows nothing"
    );
}
