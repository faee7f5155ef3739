//! Run with: `cargo run -p ractor_takeover_bench --bin detector -- --rounds 10`
//!
//! The failure detector's detection time on real node processes: this
//! process is the observer node `x`; each round starts a test node `p`,
//! waits until `x` counts it up, then SIGKILLs it (or SIGSTOPs it, then
//! SIGKILLs it once it was declared down) and times the signal to `x`'s
//! `NodeDown(p)`. Prints one line per round, then min/median/max per fault
//! as a table and one JSON object per figure, e.g.
//! `{"name":"detect_sigstop_median","value":1012.3,"unit":"ms"}`.
//! `--fixed` measures the fixed detector instead of phi accrual.

use std::time::Duration;

use clap::Parser;
use ractor_takeover::cluster::{ClusterConfig, ClusterNode};
use ractor_takeover::registry::{Registry, RegistryEvent};
use ractor_takeover_testkit::procs::{free_ports, wait_for, Log, NodeProc};
use tokio::time::Instant;

const COOKIE: &str = "bench-detector";

#[derive(Parser)]
struct Args {
    /// Rounds per fault.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// The fixed detector (`interval x misses`) instead of phi accrual.
    #[arg(long)]
    fixed: bool,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let ports = free_ports(1 + 2 * args.rounds);
    let config = ClusterConfig::new("x", ports[0], COOKIE);
    let config = if args.fixed {
        config.with_fixed_detector()
    } else {
        config
    };
    let x = ClusterNode::start(config).await.expect("node x");
    let log = Log::default();
    let mut figures = Vec::new();
    let mut port = ports[1..].iter();
    for (fault, signal) in [("sigkill", "KILL"), ("sigstop", "STOP")] {
        let mut times = Vec::new();
        for round in 1..=args.rounds {
            // A fresh process and port each round (`p` < `x`: `p` dials).
            let p_port = *port.next().expect("a port per round");
            let flags = vec![
                ("port", p_port.to_string()),
                ("peers", format!("x@127.0.0.1:{}", ports[0])),
                ("cookie", COOKIE.to_string()),
                ("placement", "p".to_string()),
            ];
            let p = NodeProc::start("p", &flags, &log);
            wait_for("x counts p up", || {
                x.live_nodes().iter().any(|n| n.as_str() == "p")
            })
            .await;
            // Let the detector learn p's rhythm, as in a running cluster.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let mut events = x.subscribe();
            let sent = Instant::now();
            p.signal(signal);
            let took = loop {
                match events.recv().await {
                    Ok(RegistryEvent::NodeDown(n)) if n.as_str() == "p" => break sent.elapsed(),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(e) => panic!("x's events ended: {e}"),
                }
            };
            eprintln!("{fault} round {round}: NodeDown after {took:?}");
            times.push(took.as_secs_f64() * 1000.0);
            p.kill();
            wait_for("x counts p gone", || {
                !x.live_nodes().iter().any(|n| n.as_str() == "p")
            })
            .await;
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        figures.push((format!("detect_{fault}_min"), times[0]));
        figures.push((format!("detect_{fault}_median"), median));
        figures.push((format!("detect_{fault}_max"), times[times.len() - 1]));
    }
    let detector = if args.fixed { "fixed" } else { "phi accrual" };
    println!(
        "detector: {detector}, {} rounds per fault, defaults (200 ms x 5)",
        args.rounds
    );
    for (name, value) in &figures {
        println!("{name:<24} {value:>9.1} ms");
    }
    for (name, value) in &figures {
        println!("{{\"name\":\"{name}\",\"value\":{value:.1},\"unit\":\"ms\"}}");
    }
    x.shutdown();
}
