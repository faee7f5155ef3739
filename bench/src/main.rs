//! Run with: `cargo run --release -p ractor_takeover_bench -- --quick`
//!
//! (`--quick`: a short run of about 15 s; without it the full run takes one
//! to two minutes on 2 cores; `-- --help` lists the flags.)
//!
//! Measures what a global name costs on real `ractor_cluster` nodes (separate
//! OS processes on loopback, cookie auth) and in-process on the fake cluster.
//! It prints, on stdout, a header, a human table (figure, value, unit, goal,
//! note), then one JSON object per figure, one per line, e.g.
//! `{"name":"call_rtt_direct","value":88.1,"unit":"us"}` (a value that could
//! not be measured is `null`). Progress goes to stderr.
//!
//! This process is the parent: it re-runs itself with the `node` role for
//! three node processes and joins the cluster as the client node `bench`:
//!
//! - `a` and `b` each run an instance of the benchmark server `bench` (no
//!   placement: every move is a manual `takeover`; a retired instance is
//!   replaced by a fresh standby so that moves can go back), an `Echo` actor
//!   (pg scope `bench`, group `echo|<node>`: the plain ractor_cluster
//!   baseline) and a `Control` actor (group `control|<node>`: runs `takeover`
//!   on its node's standby, times plain transfers node to node, reports and
//!   resets its peak RSS);
//! - `a` and `c` run `bench_fo` with placement `a > c`, only for the failover
//!   figure: `a` is SIGKILLed, `c` takes the name by itself; `a` restarts and
//!   takes it back before the next round.
//!
//! Figures:
//! - `call_rtt_direct`, `call_rtt_handle`, `handle_overhead_ratio`: p50 round
//!   trips with a 32 B payload, `ActorRef::call` to Echo vs
//!   `GlobalClient::call`, calls alternated one by one; the same with `fake_`
//!   in-process (a local plain actor vs the handle on the same fake node).
//!   `call_rtt_keyed`, `call_rtt_unkeyed`, `keyed_rtt_ratio`: the handle's
//!   round trip with a key on each call (retries on, the default) against
//!   `with_retries(false)`, alternated the same way.
//! - `takeover_pause_{1k,1m,64m}_{p50,p99}`: the longest gap between
//!   consecutive replies of a client calling without pause, over takeovers
//!   back and forth between `a` and `b`, per state blob size;
//!   `raw_transfer_{1m,64m}`: one plain Echo call from `c` to `a` carrying as
//!   many bytes; `pause_1k_rtt_multiple`, `pause_{1m,64m}_raw_multiple`.
//! - `throughput_{1,8}` and `throughput_{1,8}_takeover` (a takeover every
//!   second), `lost`, `duplicated`, `call_errors` under that load, from
//!   per-client sequence numbers recorded in the state.
//! - `failover_time`: SIGKILL of the holder's process to the first answer from
//!   the new holder, with the heartbeat settings; `failover_time_hung`: the
//!   same after SIGSTOP (a hung holder, declared down only after the
//!   detection time), and `hung_holder_stale_oks`: OKs from an older epoch
//!   after a newer one once it resumes (`hang.rs`).
//! - `peak_rss_64m` (VmHWM of `a` and `b` through the 64 MiB takeovers) and
//!   its ratio to the state size.
//!
//! - `sync_*` (`sync.rs`): synchronous standby on (`bench_sync`, on `a`
//!   and `b` too) against off (`bench`) in the same run: round trip and
//!   calls/s ratios from 1 and 8 clients, takeover pauses of 1 KiB and
//!   64 MiB.
//!
//! Flags (`--help`): `--quick`; `--only fake,rtt,throughput,pause,failover,hang,sync`
//! (default: all); `--sizes 1k,1m,64m` (default: all; `--skip-64m`);
//! `--takeovers N` (100 per size for 1k and 1m); `--takeovers-64m N` (20);
//! `--budget-64m-s S` (150: the 64 MiB series stops early after that long
//! and says how many it did); `--seconds S` (5, per throughput run);
//! `--failovers N` (5); `--rtt-calls N` (10000 per kind); `--heartbeat-ms`
//! (200); `--misses` (5); `--verbose` (echo the nodes' output on stderr).
//!
//! The scale series is a subcommand of its own (`-- scale`, `-- scale
//! --help`; `scale.rs`): N = 1, 100, 1000 names on 3 node processes (10 000
//! with `--with-10k`, 1000 on 5 and 7 nodes with `--wide`), start-up, memory,
//! idle CPU, mass failover and takeover back per name, calls lost and
//! duplicated, names with two holders; its nodes are the test node's
//! (`test-node --names N`, `test-node client`).
//!
//! The drain series is one too (`-- drain`, `drain.rs`): the time of a
//! node's drain (SIGTERM of the test node) with 1 KiB, 1 MiB and 64 MiB
//! states, min/median/max, and as multiples of a plain remote call's round
//! trip in the same run.
//!
//! Layout: here the command line and the run; `server.rs` the benchmark
//! server, `actors.rs` Echo and Control, `node_process.rs` the node role,
//! `cluster.rs` the node processes and the real figures' driver, `fake.rs`,
//! `load.rs`, `pause.rs` and `failover.rs` one series each, `figures.rs`
//! the table, the JSON lines and the timing helpers. Node processes are
//! started and stopped (by PID) with `ractor_takeover_testkit::procs`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::rpc::CallResult;
use ractor::{pg, Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_takeover::cluster::{ClusterConfig, ClusterNode, PeerAddr};
use ractor_takeover::config::SyncStandby;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::status::Phase;
use ractor_takeover::{
    CallErr, GlobalClient, Placement, StateCodecErr, TakeoverActor, TakeoverConfig, TakeoverCtx,
    TakeoverRef, TakeoverServer,
};
use ractor_takeover_testkit::node::{self, AnyErr, ClusterArgs};
use ractor_takeover_testkit::procs::{free_ports, NodeProc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

mod actors;
mod cluster;
mod drain;
mod failover;
mod fake;
mod figures;
mod hang;
mod load;
mod node_process;
mod pause;
mod scale;
mod server;
mod sync;

use actors::{envelope_call, find_member, Control, Echo, Mem, Slot, TakeoverOutcome};
use cluster::{ctl, real_benchmarks, takeover_other, wait_until, Cluster};
use failover::failover;
use fake::fake_rtt;
use figures::{alternate, ms, pct, progress, Figures};
use hang::hang_failover;
use load::{check_clients, incr_loop, throughput, LoadTotals};
use node_process::run_node;
use pause::pause_series;
use server::{Bench, BenchMsg, BenchReply, ClientRec};

/// The benchmark server's global name (manual moves between `a` and `b`).
const NAME: &str = "bench";
/// The same server with synchronous standby on (`sync.rs`), on `a` and `b`.
const SYNC_NAME: &str = "bench_sync";
/// The failover server's global name (placement `a > c`).
const FO_NAME: &str = "bench_fo";
const FO_PLACEMENT: &str = "a > c";
/// The pg scope of the Echo and Control actors.
const SCOPE: &str = "bench";
const COOKIE: &str = "ractor-takeover-bench";
const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
/// The payload of the small round trips.
const SMALL: usize = 32;
/// Deadline of one benchmark call (64 MiB states included).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a node process tries to start its instance (a start-up can
/// fail while its peers are still unknown).
const MAX_START_TRIES: usize = 10;
/// How long a node process lives at most (it normally ends with the parent).
const NODE_LIFETIME: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------
// The command line.

/// The benchmark; or, as the bench starts them, one of its node processes.
#[derive(Parser)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    /// The bench's flags, when no role is named.
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Subcommand)]
enum Role {
    /// One node process (started by the bench).
    Node(NodeArgs),
    /// The benchmark (the default).
    Bench(BenchArgs),
    /// The scale series: many global names on real node processes
    /// (issue 11; `scale --help`).
    Scale(scale::ScaleArgs),
    /// The drain series: a node's drain with 1 KiB, 1 MiB and 64 MiB states
    /// (`drain --help`).
    Drain(drain::DrainArgs),
}

/// A node process's flags.
#[derive(Args)]
struct NodeArgs {
    /// This node's name.
    #[arg(long, default_value = "a")]
    name: String,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Run an instance of the benchmark server `bench`.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    bench: bool,
    /// Run an instance of the failover server `bench_fo` with this placement.
    #[arg(long, default_value = "")]
    fo_placement: String,
    /// Exit when standard input closes (the bench is gone).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    exit_on_stdin_eof: bool,
}

/// The benchmark's flags; counts left out take the full or quick default.
#[derive(Args)]
struct BenchArgs {
    /// A short run (about 15 s).
    #[arg(long)]
    quick: bool,
    /// Only these phases.
    #[arg(long, value_delimiter = ',', value_parser = PHASES, default_values_t = PHASES.map(String::from))]
    only: Vec<String>,
    /// Only these state sizes in the pause series.
    #[arg(long, value_delimiter = ',', value_parser = SIZES.map(|(l, _)| l), default_values_t = SIZES.map(|(l, _)| l.to_string()))]
    sizes: Vec<String>,
    /// Leave the 64 MiB series out.
    #[arg(long)]
    skip_64m: bool,
    /// Round trips per kind [default: 10000, quick 2000].
    #[arg(long)]
    rtt_calls: Option<usize>,
    /// Takeovers per size for 1k and 1m [default: 100, quick 6].
    #[arg(long)]
    takeovers: Option<usize>,
    /// Takeovers of 64 MiB [default: 20, quick 3].
    #[arg(long = "takeovers-64m")]
    takeovers_64m: Option<usize>,
    /// The 64 MiB series stops early after this long [default: 150, quick 60].
    #[arg(long = "budget-64m-s")]
    budget_64m_s: Option<u64>,
    /// Seconds per throughput run [default: 5, quick 1].
    #[arg(long)]
    seconds: Option<f64>,
    /// Failovers [default: 5, quick 1].
    #[arg(long)]
    failovers: Option<usize>,
    /// The nodes' heartbeat interval.
    #[arg(long, default_value_t = 200)]
    heartbeat_ms: u64,
    /// Heartbeats missed before a peer counts as down.
    #[arg(long, default_value_t = 5)]
    misses: u32,
    /// Echo the nodes' output on stderr.
    #[arg(long)]
    verbose: bool,
}

#[tokio::main]
async fn main() -> Result<(), AnyErr> {
    node::init_tracing();
    match Cli::parse() {
        Cli {
            role: Some(Role::Node(args)),
            ..
        } => run_node(args).await,
        Cli {
            role: Some(Role::Scale(args)),
            ..
        } => scale::run_scale(args).await,
        Cli {
            role: Some(Role::Drain(args)),
            ..
        } => drain::run_drain(args).await,
        Cli {
            role: Some(Role::Bench(args)),
            ..
        }
        | Cli { bench: args, .. } => run_bench(args).await,
    }
}

struct Opts {
    quick: bool,
    rtt_calls: usize,
    takeovers: usize,
    takeovers_64m: usize,
    budget_64m: Duration,
    seconds: f64,
    failovers: usize,
    heartbeat_ms: u64,
    misses: u32,
    phases: Vec<String>,
    sizes: Vec<String>,
    verbose: bool,
}

const PHASES: [&str; 7] = [
    "fake",
    "rtt",
    "throughput",
    "pause",
    "failover",
    "hang",
    "sync",
];
const SIZES: [(&str, u64); 3] = [("1k", KIB), ("1m", MIB), ("64m", 64 * MIB)];

impl Opts {
    fn new(args: BenchArgs) -> Self {
        let quick = args.quick;
        let q = |full: u64, short: u64| if quick { short } else { full };
        let mut sizes = args.sizes;
        if args.skip_64m {
            sizes.retain(|s| s != "64m");
        }
        Self {
            quick,
            rtt_calls: args.rtt_calls.unwrap_or(q(10_000, 2_000) as usize).max(10),
            takeovers: args.takeovers.unwrap_or(q(100, 6) as usize).clamp(1, 1000),
            takeovers_64m: args
                .takeovers_64m
                .unwrap_or(q(20, 3) as usize)
                .clamp(1, 1000),
            budget_64m: Duration::from_secs(args.budget_64m_s.unwrap_or(q(150, 60))),
            seconds: args.seconds.unwrap_or(q(5, 1) as f64).clamp(0.2, 600.0),
            failovers: args.failovers.unwrap_or(q(5, 1) as usize).clamp(1, 100),
            heartbeat_ms: args.heartbeat_ms,
            misses: args.misses,
            phases: args.only,
            sizes,
            verbose: args.verbose,
        }
    }

    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
}

async fn run_bench(args: BenchArgs) -> Result<(), AnyErr> {
    let opts = Opts::new(args);
    let t0 = Instant::now();
    let load_before = loadavg();
    let mut figs = Figures::default();

    if opts.runs("fake") {
        progress("fake cluster: in-process round trips", t0);
        fake_rtt(&opts, &mut figs).await?;
    }

    if opts.phases.iter().any(|p| p != "fake") {
        progress("starting the client node and node processes a, b, c", t0);
        let mut cluster = Cluster::start(&opts).await?;
        let result = real_benchmarks(&opts, &mut cluster, &mut figs, t0).await;
        cluster.stop_all();
        result?;
    }

    let header = vec![
        format!(
            "ractor_takeover bench ({} run, {:.0} s, {} CPUs, release={})",
            if opts.quick { "quick" } else { "full" },
            t0.elapsed().as_secs_f64(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            !cfg!(debug_assertions)
        ),
        format!(
            "nodes: 3 processes + this client on loopback; heartbeat {} ms x {} misses (detection {} ms), failover_delay 0",
            opts.heartbeat_ms,
            opts.misses,
            opts.heartbeat_ms * opts.misses as u64
        ),
        format!(
            "load average (1 min) before {load_before}, after {}: other work on the machine inflates the times",
            loadavg()
        ),
        String::new(),
    ];
    figs.print(&header);
    Ok(())
}

/// The 1-minute load average, as text.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// clap's own consistency checks of the flags (names, defaults, actions).
    #[test]
    fn the_flags_are_consistent() {
        Cli::command().debug_assert();
    }
}
