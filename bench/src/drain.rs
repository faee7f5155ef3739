//! The drain series (`bench drain`): how long a node's drain takes, per
//! state size.
//!
//! Two test node processes, `a > b` (the power monitor), and this process
//! as a client node. For each size (the state's ballast: 1 KiB, 1 MiB,
//! 64 MiB) and each round: wait until `a` holds (its takeover back
//! finished), SIGTERM `a` (it drains: the name moves to `b` with its
//! state), read the drain's own time from its `DRAINED` line (mark set
//! until every handover confirmed and every forwarded call answered),
//! restart `a` (it takes the name back: placement). Before each size's
//! rounds, the same client times `rtt-calls` plain remote calls
//! (`GlobalClient::call(Count)` to the holder on `a`), and each drain is
//! given as a ratio to their median too. No client load during the drain
//! itself: the figure is the drain's own cost.

use std::time::Duration;

use clap::Args;
use ractor_takeover::GlobalClient;
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, NAME};
use ractor_takeover_testkit::procs::{wait_for, Log, Mesh, NodeProc};
use tokio::time::Instant;

use crate::figures::{pct, progress, us, Figures};
use crate::{loadavg, AnyErr, KIB, MIB};

const COOKIE: &str = "ractor-takeover-bench-drain";

/// The drain series' flags.
#[derive(Args, Clone, Debug)]
pub(crate) struct DrainArgs {
    /// Drains per state size.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Drains of the 64 MiB state (each moves 64 MiB twice: the drain and
    /// the takeover back).
    #[arg(long, default_value_t = 5)]
    rounds_64m: usize,
    /// State sizes (`1k`, `1m`, `64m`).
    #[arg(long, value_delimiter = ',', default_values_t = ["1k".to_string(), "1m".to_string(), "64m".to_string()])]
    sizes: Vec<String>,
    /// Plain remote calls timed before each size's drains.
    #[arg(long, default_value_t = 500)]
    rtt_calls: usize,
}

/// Runs the series and prints its figures.
pub(crate) async fn run_drain(args: DrainArgs) -> Result<(), AnyErr> {
    let t0 = Instant::now();
    let load_before = loadavg();
    let mesh = Mesh::new(&["bench", "a", "b"], COOKIE);
    let flags = |me: &str| {
        mesh.flags(
            me,
            &[
                ("placement", "a > b"),
                ("pull-timeout-ms", "120000"),
                ("drain-timeout-ms", "120000"),
            ],
        )
    };
    let me = mesh.client_node().await;
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());
    let log = Log::default();
    let mut a = NodeProc::start("a", &flags("a"), &log);
    log.wait("a", &["Registered", "Normal"]).await;
    let _b = NodeProc::start("b", &flags("b"), &log);
    log.wait("b", &["Standby"]).await;
    let t = Duration::from_secs(120);
    let mut figs = Figures::default();
    let mut rows = Vec::new();
    // How many takeovers back `a` has finished, and drains it has done.
    let (mut back, mut drained) = (0usize, 0usize);
    for (label, bytes) in [("1k", KIB), ("1m", MIB), ("64m", 64 * MIB)] {
        if !args.sizes.iter().any(|s| s == label) {
            continue;
        }
        progress(&format!("drain series: {label} state"), t0);
        wait_for("the client sees a holding", || {
            client.whereis().is_some_and(|h| h.node.as_str() == "a")
        })
        .await;
        let set = client
            .call(
                PowerMsg::Ballast {
                    bytes: bytes as usize,
                },
                t,
            )
            .await?;
        if set.node != "a" {
            return Err(format!("the ballast landed on {}, not a", set.node).into());
        }
        let mut rtt = Vec::with_capacity(args.rtt_calls);
        for _ in 0..args.rtt_calls.max(1) {
            let start = Instant::now();
            client.call(PowerMsg::Count, t).await?;
            rtt.push(us(start.elapsed()));
        }
        let rtt_p50 = pct(&rtt, 0.5);
        let rounds = if label == "64m" {
            args.rounds_64m
        } else {
            args.rounds
        };
        let mut took = Vec::with_capacity(rounds);
        for round in 0..rounds.max(1) {
            a.terminate().await;
            drained += 1;
            let line = {
                let n = drained;
                let probe = log.clone();
                wait_for("a's DRAINED line", move || {
                    probe.count("a", &["DRAINED"]) >= n
                })
                .await;
                log.lines()
                    .into_iter()
                    .filter(|(node, l)| node == "a" && l.starts_with("DRAINED"))
                    .nth(n - 1)
                    .map(|(_, l)| l)
                    .unwrap_or_default()
            };
            if !line.contains("complete=true") || !line.contains("moved=power_monitor@b") {
                return Err(format!("drain {round} of {label} did not complete: {line}").into());
            }
            let took_us: f64 = line
                .split("took_us=")
                .nth(1)
                .and_then(|s| s.split_whitespace().next())
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("no took_us in {line}"))?;
            took.push(took_us);
            a = NodeProc::start("a", &flags("a"), &log);
            back += 1;
            let (probe, n) = (log.clone(), back);
            wait_for("a took the name back", move || {
                probe.count("a", &["HandoverDone"]) >= n
            })
            .await;
        }
        let min = took.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = took.iter().cloned().fold(0.0, f64::max);
        let median = pct(&took, 0.5);
        let note = format!(
            "{} drains of a {label} state, a > b; plain remote call p50 {:.0} us over {} calls",
            took.len(),
            rtt_p50,
            rtt.len()
        );
        figs.add(
            &format!("drain_{label}_median"),
            median / 1000.0,
            "ms",
            "",
            &note,
        );
        figs.add(&format!("drain_{label}_min"), min / 1000.0, "ms", "", "");
        figs.add(&format!("drain_{label}_max"), max / 1000.0, "ms", "", "");
        figs.add(&format!("drain_{label}_rtt"), rtt_p50, "us", "", "");
        figs.add(
            &format!("drain_{label}_rtt_multiple"),
            median / rtt_p50,
            "x",
            "",
            "drain median / plain remote call p50",
        );
        rows.push(format!(
            "{label:<5} drain min/median/max {:>8.2} / {:>8.2} / {:>8.2} ms   rtt p50 {:>6.0} us   x rtt {:>7.1} / {:>7.1} / {:>7.1}",
            min / 1000.0,
            median / 1000.0,
            max / 1000.0,
            rtt_p50,
            min / rtt_p50,
            median / rtt_p50,
            max / rtt_p50,
        ));
    }
    drop(a);
    me.shutdown();
    let mut header = vec![
        "ractor_takeover drain series (bench drain)".to_string(),
        "two test node processes a > b on loopback, this process the client; SIGTERM a: it drains, the name moves to b; a restarts and takes it back".to_string(),
        format!(
            "load average (1 min) before {load_before}, after {}: other work on the machine inflates the times",
            loadavg()
        ),
        String::new(),
    ];
    header.extend(rows);
    header.push(String::new());
    figs.print(&header);
    Ok(())
}
