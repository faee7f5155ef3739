//! The scale series (`bench scale`): many global names on real node
//! processes, issue 11's measure.
//!
//! For each cluster size (N names, `svc-0..`, on nodes `a > b > c`, or 5 and
//! 7 nodes with `--wide`) it runs `ractor_takeover_testkit::many::
//! failover_and_back` on a fresh cluster of `test-node --names N` processes
//! and a `test-node client` calling every name without pause: start-up
//! until every name answers; resident memory per node and per name; idle
//! CPU per node (client paused); SIGKILL of the node holding most names and
//! the time until each name answers from another node (p50/p99/max over
//! names); its restart and the client's pause per name when the name moves
//! back (p50/p99/max); calls lost and duplicated and names with two holders.
//! Each phase is bounded (`--start-s`, `--failover-s`, `--takeover-s`,
//! `--settle-s`): a set of names that does not settle is reported with its
//! counts (`*_unsettled`, `*_never`), and the next run goes on. With
//! `--repeats R`, each figure is the median of the runs, with `_min` and
//! `_max` beside it.

use std::time::Duration;

use clap::Args;
use ractor_takeover_testkit::answers::percentile;
use ractor_takeover_testkit::many::{failover_and_back, Bounds, ManyNamesOpts, Run};
use tokio::time::Instant;

use crate::figures::{progress, Figures};
use crate::loadavg;

/// The scale series' flags.
#[derive(Args, Clone, Debug)]
pub(crate) struct ScaleArgs {
    /// Names per cluster, one series each.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 100, 1000])]
    names: Vec<usize>,
    /// Nodes of the series (`a > b > c > ...`).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Add 10 000 names on the same nodes.
    #[arg(long)]
    with_10k: bool,
    /// Add 1000 names on 5 and on 7 nodes.
    #[arg(long)]
    wide: bool,
    /// Runs per cluster size (fresh processes each).
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// The client's workers (0: one per name up to 64).
    #[arg(long, default_value_t = 0)]
    callers: usize,
    /// The deadline of each client call, ms.
    #[arg(long, default_value_t = 2000)]
    call_timeout_ms: u64,
    /// Bound of the start-up (launch until every name answers), s.
    #[arg(long, default_value_t = 60)]
    start_s: u64,
    /// Bound of the failover (SIGKILL until every name answers elsewhere), s.
    #[arg(long, default_value_t = 60)]
    failover_s: u64,
    /// Bound of the takeover back (restart until every name answers from
    /// the restarted node), s.
    #[arg(long, default_value_t = 60)]
    takeover_s: u64,
    /// Bound of every other wait, s.
    #[arg(long, default_value_t = 15)]
    settle_s: u64,
    /// How long idle CPU is measured, s (0: not measured). Why 10: the
    /// CPU times in /proc tick every 10 ms, and over 3 s one stray tick or
    /// a neighbour's burst moved the busiest node's figure by several
    /// percent.
    #[arg(long, default_value_t = 10)]
    idle_s: u64,
    /// How long the cluster rests (client paused) before idle CPU is
    /// measured, s; the window right after the start-up is reported as
    /// "settling CPU". Why 45: each registration that left in the
    /// start-up's moves (a standby's entry too, as its instance became
    /// holder) keeps its token for `token_linger` (30 s) and then stops it,
    /// one remote-actor termination per name on every peer; 10 000 of them
    /// took about 8 s on this machine. 0: idle CPU is the window right
    /// after the start-up.
    #[arg(long, default_value_t = 45)]
    rest_s: u64,
    /// The nodes' heartbeat interval, ms.
    #[arg(long, default_value_t = 200)]
    heartbeat_ms: u64,
    /// Heartbeats missed before a peer counts as down.
    #[arg(long, default_value_t = 5)]
    misses: u32,
}

const NODE_NAMES: [&str; 7] = ["a", "b", "c", "d", "e", "f", "g"];

/// Runs the series and prints its figures.
pub(crate) async fn run_scale(args: ScaleArgs) -> Result<(), crate::AnyErr> {
    let t0 = Instant::now();
    let load_before = loadavg();
    let nodes = args.nodes.clamp(2, NODE_NAMES.len());
    let mut series: Vec<(usize, usize)> = args.names.iter().map(|&n| (nodes, n.max(1))).collect();
    if args.with_10k {
        series.push((nodes, 10_000));
    }
    if args.wide {
        series.push((5, 1000));
        series.push((7, 1000));
    }
    let bounds = Bounds {
        start: Duration::from_secs(args.start_s),
        failover: Duration::from_secs(args.failover_s),
        takeover: Duration::from_secs(args.takeover_s),
        settle: Duration::from_secs(args.settle_s),
        idle: Duration::from_secs(args.idle_s),
        rest: Duration::from_secs(args.rest_s),
    };
    let repeats = args.repeats.clamp(1, 100);
    let mut figs = Figures::default();
    let mut rows = Vec::new();
    // Memory of a node with one name, per node count: the base that the
    // per-name figure is measured above.
    let mut base_rss: Vec<(usize, f64)> = Vec::new();
    for (k, n) in series {
        let mut runs = Vec::with_capacity(repeats);
        for r in 0..repeats {
            progress(
                &format!("scale: {n} names on {k} nodes, run {}/{repeats}", r + 1),
                t0,
            );
            let mut opts = ManyNamesOpts::new(&NODE_NAMES[..k], n);
            opts.callers = args.callers;
            opts.call_timeout = Duration::from_millis(args.call_timeout_ms);
            opts.heartbeat_ms = args.heartbeat_ms;
            opts.misses = args.misses;
            opts.cookie = crate::COOKIE.into();
            let run = failover_and_back(opts, &bounds).await;
            progress(&format!("  {run}"), t0);
            runs.push(run);
        }
        let summary = Summary::of(&runs);
        if n == 1 {
            base_rss.push((k, summary.rss_node_kib.median()));
        }
        let base = base_rss.iter().find(|(kk, _)| *kk == k).map(|(_, b)| *b);
        summary.add_figures(&mut figs, k, n, base, &args);
        rows.push(summary.row(k, n, base));
    }

    let detection = args.heartbeat_ms * args.misses as u64;
    let mut header = vec![
        format!(
            "ractor_takeover scale bench ({:.0} s, {} CPUs, release={}, {repeats} run(s) per size)",
            t0.elapsed().as_secs_f64(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            !cfg!(debug_assertions)
        ),
        format!(
            "node processes `test-node --names N` (a counter each, placement a > b > ...) + a client process calling every name without pause; heartbeat {} ms x {} (detection {detection} ms); bounds start {} s, failover {} s, takeover {} s",
            args.heartbeat_ms, args.misses, args.start_s, args.failover_s, args.takeover_s
        ),
        format!(
            "load average (1 min) before {load_before}, after {}: other work on the machine inflates the times",
            loadavg()
        ),
        String::new(),
        format!(
            "{:<14} {:>11} {:>26} {:>26} {:>9} {:>9} {:>8} {:>7} {:>7} {:>7} {:>7}",
            "names/nodes",
            "start-up",
            "failover p50/p99/max",
            "takeover p50/p99/max",
            "rss/node",
            "per name",
            "idle cpu",
            "lost",
            "dup",
            "two h.",
            "settled"
        ),
    ];
    header.extend(rows);
    header.push(String::new());
    figs.print(&header);
    Ok(())
}

/// One scalar per run.
struct PerRun(Vec<f64>);

impl PerRun {
    fn median(&self) -> f64 {
        percentile(&self.0, 0.5)
    }
    fn min(&self) -> f64 {
        self.0.iter().copied().fold(f64::NAN, f64::min)
    }
    fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NAN, f64::max)
    }
}

/// The runs of one cluster size, figure by figure.
struct Summary {
    runs: usize,
    startup_ms: PerRun,
    start_unsettled: usize,
    answering_at_start: PerRun,
    start_cpu_s: PerRun,
    rss_node_kib: PerRun,
    idle_cpu_pct: PerRun,
    settling_cpu_pct: PerRun,
    held_by_killed: PerRun,
    failover: [PerRun; 3],
    failover_never: PerRun,
    failover_unsettled: usize,
    takeover: [PerRun; 3],
    takeover_never: PerRun,
    takeover_unsettled: usize,
    steady_gap_p50_ms: PerRun,
    lost: PerRun,
    duplicated: PerRun,
    two_holders: PerRun,
    flip_backs: PerRun,
    answering_at_end: PerRun,
    call_errors: PerRun,
    calls: PerRun,
}

/// p50, p99 and max of the answered names' times, and how many never
/// answered.
fn spread(times: &[Option<u128>]) -> ([f64; 3], f64) {
    let ms: Vec<f64> = times.iter().flatten().map(|&t| t as f64).collect();
    let never = times.iter().filter(|t| t.is_none()).count() as f64;
    (
        [
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            percentile(&ms, 1.0),
        ],
        never,
    )
}

impl Summary {
    fn of(runs: &[Run]) -> Self {
        let per = |f: &dyn Fn(&Run) -> f64| PerRun(runs.iter().map(f).collect());
        let mean = |v: Vec<f64>| {
            if v.is_empty() {
                f64::NAN
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let fo: Vec<([f64; 3], f64)> = runs.iter().map(|r| spread(&r.failover_ms)).collect();
        let tk: Vec<([f64; 3], f64)> = runs.iter().map(|r| spread(&r.takeover_gap_ms)).collect();
        let col = |v: &[([f64; 3], f64)], i: usize| PerRun(v.iter().map(|x| x.0[i]).collect());
        Self {
            runs: runs.len(),
            startup_ms: PerRun(
                runs.iter()
                    .filter_map(|r| r.started.map(|d| d.as_secs_f64() * 1e3))
                    .collect(),
            ),
            start_unsettled: runs.iter().filter(|r| r.started.is_none()).count(),
            answering_at_start: per(&|r| r.answering_at_start as f64),
            start_cpu_s: per(&|r| {
                r.start_cpu
                    .values()
                    .map(Duration::as_secs_f64)
                    .fold(f64::NAN, f64::max)
            }),
            rss_node_kib: per(&|r| mean(r.rss_kib.values().map(|&k| k as f64).collect())),
            idle_cpu_pct: per(&|r| r.idle_cpu_pct.values().copied().fold(f64::NAN, f64::max)),
            settling_cpu_pct: per(&|r| {
                r.settling_cpu_pct
                    .values()
                    .copied()
                    .fold(f64::NAN, f64::max)
            }),
            held_by_killed: per(&|r| r.held_by_killed as f64),
            failover: [col(&fo, 0), col(&fo, 1), col(&fo, 2)],
            failover_never: PerRun(fo.iter().map(|x| x.1).collect()),
            failover_unsettled: runs.iter().filter(|r| !r.failover_settled).count(),
            takeover: [col(&tk, 0), col(&tk, 1), col(&tk, 2)],
            takeover_never: PerRun(tk.iter().map(|x| x.1).collect()),
            takeover_unsettled: runs.iter().filter(|r| !r.takeover_settled).count(),
            steady_gap_p50_ms: per(&|r| {
                let gaps: Vec<f64> = r.steady_gaps_ms.iter().map(|&g| g as f64).collect();
                percentile(&gaps, 0.5)
            }),
            lost: per(&|r| r.accounting.lost as f64),
            duplicated: per(&|r| r.accounting.duplicated as f64),
            two_holders: per(&|r| r.two_holders as f64),
            flip_backs: per(&|r| r.accounting.flip_backs as f64),
            answering_at_end: per(&|r| r.answering_at_end as f64),
            call_errors: per(&|r| r.accounting.errors.values().sum::<u64>() as f64),
            calls: per(&|r| r.calls as f64),
        }
    }

    fn add_figures(
        &self,
        figs: &mut Figures,
        k: usize,
        n: usize,
        base_rss: Option<f64>,
        args: &ScaleArgs,
    ) {
        let p = format!("scale_{k}n_{n}");
        let runs = self.runs;
        let mut add = |name: &str, v: &PerRun, unit: &'static str, goal: &str, note: &str| {
            let name = format!("{p}_{name}");
            figs.add(&name, v.median(), unit, goal, note);
            if v.0.len() > 1 {
                figs.add(&format!("{name}_min"), v.min(), unit, "", "");
                figs.add(&format!("{name}_max"), v.max(), unit, "", "");
            }
        };
        let detection_plus_1s = args.heartbeat_ms * args.misses as u64 + 1000;
        add(
            "startup",
            &self.startup_ms,
            "ms",
            if n >= 10_000 { "<10000" } else { "" },
            &format!(
                "launch -> every name answered once; {} of {runs} runs did not settle within {} s",
                self.start_unsettled, args.start_s
            ),
        );
        add(
            "answering_at_start",
            &self.answering_at_start,
            "count",
            &n.to_string(),
            "names answering when the start-up wait ended",
        );
        add(
            "start_cpu",
            &self.start_cpu_s,
            "s",
            "",
            "CPU time of the busiest node from launch to every name answering",
        );
        add(
            "rss_node",
            &self.rss_node_kib,
            "KiB",
            "",
            "mean VmRSS of the nodes after the start-up",
        );
        let per_name = PerRun(
            self.rss_node_kib
                .0
                .iter()
                .map(|r| match base_rss {
                    Some(b) if n > 1 => (r - b) / (n - 1) as f64,
                    _ => r / n as f64,
                })
                .collect(),
        );
        if n > 1 {
            add(
                "rss_per_name",
                &per_name,
                "KiB",
                "",
                if base_rss.is_some() && n > 1 {
                    "(node RSS - node RSS with 1 name) / (N - 1)"
                } else {
                    "node RSS / N (no 1-name run to subtract)"
                },
            );
        }
        add(
            "idle_cpu",
            &self.idle_cpu_pct,
            "%",
            "<2",
            &format!(
                "busiest node, client paused, over {} s after a rest of {} s (utime+stime from /proc)",
                args.idle_s, args.rest_s
            ),
        );
        if args.rest_s > 0 {
            add(
                "settling_cpu",
                &self.settling_cpu_pct,
                "%",
                "",
                &format!(
                    "busiest node, client paused, over {} s right after every name settled on its preferred node",
                    args.idle_s
                ),
            );
        }
        add(
            "held_by_killed",
            &self.held_by_killed,
            "count",
            &n.to_string(),
            "names whose last answer before the SIGKILL came from the killed node",
        );
        let fo_goal = if n == 1000 {
            format!("<{detection_plus_1s}")
        } else {
            String::new()
        };
        for (i, q) in ["p50", "p99", "max"].iter().enumerate() {
            add(
                &format!("failover_{q}"),
                &self.failover[i],
                "ms",
                if *q == "max" { &fo_goal } else { "" },
                "per name: SIGKILL of its holder -> its first answer from another node",
            );
        }
        add(
            "failover_never",
            &self.failover_never,
            "count",
            "0",
            &format!(
                "names that never answered from another node within {} s ({} of {runs} runs unsettled)",
                args.failover_s, self.failover_unsettled
            ),
        );
        for (i, q) in ["p50", "p99", "max"].iter().enumerate() {
            add(
                &format!("takeover_pause_{q}"),
                &self.takeover[i],
                "ms",
                "",
                "per name: the client's gap between its last answer from the failover holder and its first from the restarted node",
            );
        }
        add(
            "takeover_never",
            &self.takeover_never,
            "count",
            "0",
            &format!(
                "names that did not move back within {} s ({} of {runs} runs unsettled)",
                args.takeover_s, self.takeover_unsettled
            ),
        );
        add(
            "steady_gap_p50",
            &self.steady_gap_p50_ms,
            "ms",
            "",
            "the client's period per name before the SIGKILL (the pauses include it)",
        );
        add(
            "lost",
            &self.lost,
            "count",
            "0",
            "acknowledged calls a later answer no longer counts (the failover's reset by design aside)",
        );
        add(
            "duplicated",
            &self.duplicated,
            "count",
            "0",
            "reports a counter saw twice",
        );
        add(
            "two_holders",
            &self.two_holders,
            "count",
            "0",
            "names more than one node held at the end",
        );
        add(
            "flip_backs",
            &self.flip_backs,
            "count",
            "0",
            "answers from a holder the name had already left (two serving at once)",
        );
        add(
            "answering_at_end",
            &self.answering_at_end,
            "count",
            &n.to_string(),
            "names that answered once more at the end",
        );
        add("calls", &self.calls, "count", "", "calls the client made");
        add(
            "call_errors",
            &self.call_errors,
            "count",
            "",
            "calls that failed (NoReply, Timeout, NotRegistered)",
        );
    }

    fn row(&self, k: usize, n: usize, base_rss: Option<f64>) -> String {
        let f = |v: f64| {
            if v.is_finite() {
                format!("{v:.0}")
            } else {
                "-".into()
            }
        };
        let three = |v: &[PerRun; 3]| {
            format!(
                "{}/{}/{} ms",
                f(v[0].median()),
                f(v[1].median()),
                f(v[2].median())
            )
        };
        let rss = self.rss_node_kib.median();
        let per_name = match base_rss {
            Some(b) if n > 1 => (rss - b) / (n - 1) as f64,
            _ => rss / n as f64,
        };
        let settled = self.runs * 3
            - self.start_unsettled
            - self.failover_unsettled
            - self.takeover_unsettled;
        format!(
            "{:<14} {:>11} {:>26} {:>26} {:>9} {:>9} {:>8} {:>7} {:>7} {:>7} {:>7}",
            format!("{n} on {k}"),
            if self.startup_ms.0.is_empty() {
                format!("({} ans.)", f(self.answering_at_start.median()))
            } else {
                format!("{} ms", f(self.startup_ms.median()))
            },
            three(&self.failover),
            three(&self.takeover),
            format!("{} MiB", f(rss / 1024.0)),
            if n > 1 {
                format!("{per_name:.1} KiB")
            } else {
                "-".into()
            },
            format!("{:.1} %", self.idle_cpu_pct.median()),
            f(self.lost.median()),
            f(self.duplicated.median()),
            f(self.two_holders.median()),
            format!("{settled}/{}", self.runs * 3),
        )
    }
}
