//! Run with: cargo run --release --example cluster_demo
//!
//! Erlang's classic takeover scenario on real `ractor_cluster` nodes, each a separate OS
//! process on loopback with a cookie: a globally registered power monitor
//! placed on `a > b > c`. This process starts the three node processes (it
//! re-runs itself with `node`), joins as a client node and reports without
//! pause; it SIGKILLs the holder's process (failover to `b`), restarts `a`
//! (automatic takeover back, state carried over), then runs a rolling
//! restart (SIGTERM each node in turn: it drains, its names move with their
//! state; restart it; next, with takeovers back held meanwhile) and prints a
//! timeline, the moves per name (`MOVES`), then one line a script can read:
//!
//! `RESULT takeovers=<n> failovers=<n> calls_sent=<n> calls_answered=<n> lost_in_takeover=<n> duplicated=<n> state_ok=<true|false>`
//!
//! (`lost_in_takeover` counts every call that failed after the failover:
//! during the takeover back and the rolling restart.) Built with `--features
//! metrics`, it also prints each node's metrics (`METRICS`, see
//! `ractor_takeover::metrics`) before `RESULT`. `--scenario classic`
//! runs the first part alone, `--scenario rolling` the rolling restart alone.
//!
//! One node by hand, one terminal each (same cookie, full mesh of peers):
//!
//! ```text
//! cargo run --release --example cluster_demo -- node --name a --port 47101 \
//!     --peers b@127.0.0.1:47102,c@127.0.0.1:47103 --placement "a > b > c" --cookie secret
//! ```
//!
//! and `client --port 47100 --peers a@127.0.0.1:47101,b@...,c@... --cookie secret`
//! to report from another terminal. The demo runs with warm standby (a
//! checkpoint every 100 reports; `--checkpoint-every 0` turns it off, and
//! then a failover loses the whole state); `--tls true` runs it over mutual
//! TLS with a self-signed certificate made for the run. Every role's flags:
//! `cargo run --example cluster_demo -- help` (`node --help`, `client
//! --help`, `demo --help`). The node role is the one the real-process tests
//! start (`ractor_takeover_testkit::node`, the `test-node` binary).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{ArgAction, Args, Parser, Subcommand};
use ractor_takeover::cluster::{ClusterConfig, ClusterNode, ClusterTls, PeerAddr};
use ractor_takeover::{CallErr, GlobalClient};
use ractor_takeover_testkit::node::{self, AnyErr, ClusterArgs, NodeArgs, DEMO_COOKIE};
use ractor_takeover_testkit::power_monitor::{PowerMonitor, PowerMsg, PowerReply, NAME};
use ractor_takeover_testkit::procs::NodeProc;
use tokio::sync::mpsc;

const NODES: [&str; 3] = ["a", "b", "c"];
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// The takeover show on three node processes; or one of its roles by hand.
#[derive(Parser)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    /// The show's flags, when no role is named.
    #[command(flatten)]
    demo: DemoArgs,
}

#[derive(Subcommand)]
enum Role {
    /// One node running the power monitor.
    Node(NodeArgs),
    /// A client node that reports once a second and prints the answers.
    Client(ClusterArgs),
    /// The whole show (the default).
    Demo(DemoArgs),
}

#[derive(Args)]
struct DemoArgs {
    /// The client node's port; nodes a, b, c take the next three.
    #[arg(long, default_value_t = 47100)]
    base_port: u16,
    /// Warm standby: the holder checkpoints its state to the standbys every
    /// this many reports (0: off, and a failover loses the whole state).
    #[arg(long, default_value_t = 100)]
    checkpoint_every: u64,
    /// Mutual TLS everywhere, with a self-signed certificate made for the run.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    tls: bool,
    /// Which part of the show: the failover and takeover back (`classic`),
    /// the rolling restart (`rolling`), or one after the other (`all`).
    #[arg(long, value_enum, default_value_t = Scenario::All)]
    scenario: Scenario,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// SIGKILL the holder (failover), restart it (takeover back).
    Classic,
    /// SIGTERM each node in turn (a drain), restart it, next.
    Rolling,
    /// Both, classic first.
    All,
}

#[tokio::main]
async fn main() -> Result<(), AnyErr> {
    let cli = Cli::parse();
    if matches!(cli.role, None | Some(Role::Demo(_))) && std::env::var_os("RUST_LOG").is_none() {
        // The show kills a node: ractor_cluster and the heartbeat then warn
        // of closed sessions and peers down, in this process and in the
        // nodes (which inherit the setting). Those warnings are the
        // expected effect of the kill, and the timeline already tells it;
        // `RUST_LOG=warn` brings them back.
        std::env::set_var("RUST_LOG", "error");
    }
    node::init_tracing();
    match cli {
        Cli {
            role: Some(Role::Node(args)),
            ..
        } => {
            #[cfg(feature = "metrics")]
            metrics_on_usr1(args.name.clone())?;
            node::run(args).await
        }
        Cli {
            role: Some(Role::Client(args)),
            ..
        } => run_client(args).await,
        Cli {
            role: Some(Role::Demo(args)),
            ..
        }
        | Cli { demo: args, .. } => run_demo(args).await,
    }
}

/// A client node that reports once a second and prints the answers.
async fn run_client(args: ClusterArgs) -> Result<(), AnyErr> {
    let node = ClusterNode::start(args.config("client")?).await?;
    let client = GlobalClient::<PowerMonitor>::new(NAME, node.registry());
    for seq in 1.. {
        let building = format!("building-{}", seq % 4);
        match client
            .call(PowerMsg::Report { building, seq }, CALL_TIMEOUT)
            .await
        {
            Ok(r) => println!(
                "total={} answered by {} at epoch {}",
                r.total, r.node, r.epoch
            ),
            Err(e) => println!("call failed: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

/// Starts node `name` (this executable's `node` role) with the demo's
/// ports; its lines go to `lines`.
fn start_node(
    name: &str,
    base: u16,
    extra: &[String],
    lines: mpsc::UnboundedSender<(String, String)>,
) -> Result<NodeProc, AnyErr> {
    let port = |n: &str| base + 1 + NODES.iter().position(|x| *x == n).unwrap_or(0) as u16;
    // Every node lists every other one, the client included: in each pair the
    // node whose name sorts first dials.
    let mut peers: Vec<String> = NODES
        .iter()
        .filter(|n| **n != name)
        .map(|n| format!("{n}@127.0.0.1:{}", port(n)))
        .collect();
    peers.push(format!("client@127.0.0.1:{base}"));
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["node", "--name", name, "--port", &port(name).to_string()])
        .args(["--peers", &peers.join(","), "--placement", "a > b > c"])
        .args(["--exit-on-stdin-eof", "true"])
        .args(extra);
    Ok(NodeProc::spawn(name, cmd, move |node, line| {
        let _ = lines.send((node.to_string(), line));
    })?)
}

/// The demo's timeline: one line per event worth telling, with the time
/// since the start. Routine events (a checkpoint sent and stored: three
/// lines every 100 reports) are counted instead, and summed up in one line
/// before the next line told, so the story (start, kill, failover, restart,
/// takeover back, result) reads at a glance.
struct Timeline {
    t0: Instant,
    routine: RefCell<BTreeMap<String, u64>>,
}

impl Timeline {
    /// Event kinds that are counted, not told one by one.
    const ROUTINE: [&'static str; 2] = ["CheckpointSent", "CheckpointStored"];

    fn new() -> Self {
        Self {
            t0: Instant::now(),
            routine: RefCell::default(),
        }
    }

    /// Tells `what`, after the sum of the routine events since the last line.
    fn say(&self, what: String) {
        let counted = std::mem::take(&mut *self.routine.borrow_mut());
        let at = self.t0.elapsed().as_secs_f64();
        if !counted.is_empty() {
            let sums: Vec<String> = counted.iter().map(|(k, n)| format!("{k} x{n}")).collect();
            println!("[{at:>7.3}s]   ({})", sums.join(", "));
        }
        println!("[{at:>7.3}s] {what}");
    }

    /// Tells or counts one line of a node's output, if it is an event.
    fn event(&self, node: &str, line: &str) {
        if !line.starts_with("EVENT") {
            return;
        }
        let event = &line[line.find("node=").unwrap_or(0)..];
        match Self::ROUTINE.iter().find(|kind| event.contains(*kind)) {
            Some(kind) => {
                *self
                    .routine
                    .borrow_mut()
                    .entry(format!("{node} {kind}"))
                    .or_default() += 1
            }
            None => self.say(format!("{node}: {event}")),
        }
    }
}

/// With feature `metrics`: the node records into an in-memory recorder and
/// prints one `METRICS` line of it on each SIGUSR1 (the demo sends one at
/// the end). Installed before the node spawns its servers, which take their
/// gauges' handles when they spawn.
#[cfg(feature = "metrics")]
fn metrics_on_usr1(node: String) -> Result<(), AnyErr> {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .map_err(|_| "a metrics recorder was installed already")?;
    let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            println!("{}", metrics_line(&node, &snapshotter));
        }
    });
    Ok(())
}

/// `METRICS node=<node> <metric>{<labels>}=<value> ..`, the crate's prefix
/// and the labels every entry shares (the one name, this node) left out,
/// the events summed over their kinds, counters at 0 left out, and a
/// histogram as its samples.
#[cfg(feature = "metrics")]
fn metrics_line(node: &str, snapshotter: &metrics_util::debugging::Snapshotter) -> String {
    use metrics_util::debugging::DebugValue;
    let mut entries = BTreeMap::new();
    let mut events = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let metric = key.name().trim_start_matches("ractor_takeover_");
        let labels: Vec<String> = key
            .labels()
            .filter(|l| !matches!(l.key(), "name" | "node"))
            .map(|l| l.value().to_string())
            .collect();
        let shown = match labels.is_empty() {
            true => metric.to_string(),
            false => format!("{metric}{{{}}}", labels.join(",")),
        };
        let value = match value {
            DebugValue::Counter(n) if key.name() == ractor_takeover::metrics::EVENTS => {
                events += n;
                continue;
            }
            DebugValue::Counter(0) => continue,
            DebugValue::Counter(n) => n.to_string(),
            DebugValue::Gauge(x) => x.to_string(),
            DebugValue::Histogram(xs) => {
                let xs: Vec<String> = xs
                    .iter()
                    .map(|x| match metric.ends_with("_seconds") {
                        true => format!("{:.4}", x.0),
                        false => x.0.to_string(),
                    })
                    .collect();
                format!("[{}]", xs.join(","))
            }
        };
        entries.insert(shown, value);
    }
    let entries: Vec<String> = entries.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("METRICS node={node} {} events={events}", entries.join(" "))
}

/// One call of the client loop, as the demo records it.
struct Sent {
    at: Instant,
    result: Result<PowerReply, CallErr>,
}

async fn run_demo(args: DemoArgs) -> Result<(), AnyErr> {
    let base = args.base_port;
    let checkpoint_every = args.checkpoint_every;
    let timeline = Timeline::new();
    let say = |what: String| timeline.say(what);
    let (lines_tx, mut lines) = mpsc::unbounded_channel::<(String, String)>();
    let mut procs: HashMap<&str, NodeProc> = HashMap::new();

    let peers: Vec<PeerAddr> = NODES
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n}@127.0.0.1:{}", base + 1 + i as u16).parse())
        .collect::<Result<_, _>>()?;
    let mut extra = vec![
        "--checkpoint-every".to_string(),
        checkpoint_every.to_string(),
    ];
    let mut client_config = ClusterConfig::new("client", base, DEMO_COOKIE).with_peers(peers);
    // `--tls true`: mutual TLS everywhere, with a self-signed certificate made
    // for this run in a temporary directory (removed at the end).
    let tls_dir = args.tls.then(|| {
        std::env::temp_dir().join(format!("ractor_takeover_demo_tls_{}", std::process::id()))
    });
    if let Some(dir) = &tls_dir {
        std::fs::create_dir_all(dir)?;
        client_config = client_config.with_tls(ClusterTls::self_signed(dir, &["localhost"])?);
        extra.extend(["--tls-dir".to_string(), dir.display().to_string()]);
        say(format!(
            "mutual TLS on, self-signed certificate in {}",
            dir.display()
        ));
    }
    let me = ClusterNode::start(client_config).await?;
    let client = GlobalClient::<PowerMonitor>::new(NAME, me.registry());

    // Everything the nodes print goes to the timeline; waits look for lines.
    let mut log: Vec<(String, String)> = Vec::new();
    macro_rules! wait_line {
        ($what:expr, $pred:expr) => {{
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let (node, line) = tokio::time::timeout_at(deadline, lines.recv())
                    .await
                    .map_err(|_| format!("timed out waiting for {}", $what))?
                    .ok_or("node output closed")?;
                timeline.event(&node, &line);
                log.push((node.clone(), line.clone()));
                let pred: &dyn Fn(&str, &str) -> bool = &$pred;
                if pred(&node, &line) {
                    break;
                }
            }
        }};
    }

    for name in NODES {
        say(format!("start node {name}"));
        procs.insert(name, start_node(name, base, &extra, lines_tx.clone())?);
        let expect = if name == "a" { "Registered" } else { "Standby" };
        wait_line!(format!("{name} {expect}"), |n, l| n == name
            && l.contains(expect));
    }

    say("client starts reporting without pause".into());
    let stop = Arc::new(AtomicBool::new(false));
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Sent>();
    let reporter = tokio::spawn({
        let (client, stop) = (client.clone(), stop.clone());
        async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let at = Instant::now();
                let report = PowerMsg::Report {
                    building: format!("building-{}", i % 4),
                    seq: i,
                };
                let result = client.call(report, CALL_TIMEOUT).await;
                let _ = sent_tx.send(Sent { at, result });
            }
        }
    });
    let mut calls: Vec<Sent> = Vec::new();
    let mut collect_until = |calls: &mut Vec<Sent>, pred: &dyn Fn(&Sent) -> bool| {
        while let Ok(s) = sent_rx.try_recv() {
            calls.push(s);
        }
        calls.iter().any(pred)
    };
    let pause = |ms| tokio::time::sleep(Duration::from_millis(ms));

    let classic = args.scenario != Scenario::Rolling;
    // The calls of the failover (before_kill..restart_index), whose answers
    // may start over; every other call must be answered, once.
    let (mut before_kill, mut restart_index) = (0, 0);
    let (mut lost_in_failover, mut failed_in_failover) = (0, 0);
    if classic {
        pause(1500).await;
        collect_until(&mut calls, &|_| false);
        before_kill = calls.len();
        let last_on_a = calls.iter().rev().find_map(|s| {
            s.result
                .as_ref()
                .ok()
                .filter(|r| r.node == "a")
                .map(|r| r.total)
        });
        say(format!(
            "SIGKILL node a (holder; {} reports counted there)",
            last_on_a.unwrap_or(0)
        ));
        let killed_at = Instant::now();
        if let Some(a) = procs.remove("a") {
            a.kill();
        }
        wait_line!("failover to b", |n, l| n == "b" && l.contains("Failover"));
        let mut first_on_b = None;
        while first_on_b.is_none() {
            pause(5).await;
            collect_until(&mut calls, &|_| false);
            first_on_b = calls[before_kill..]
                .iter()
                .find(|s| s.result.as_ref().is_ok_and(|r| r.node == "b"))
                .map(|s| s.at);
        }
        let first_b = calls[before_kill..].iter().find_map(|s| {
            s.result
                .as_ref()
                .ok()
                .filter(|r| r.node == "b")
                .map(|r| (s.at, r.total))
        });
        let (failover_ms, b_started_from) = first_b
            .map(|(at, total)| {
                (
                    (at.max(killed_at) - killed_at).as_secs_f64() * 1000.0,
                    total - 1,
                )
            })
            .unwrap_or((f64::NAN, 0));
        lost_in_failover = last_on_a.unwrap_or(0).saturating_sub(b_started_from);
        say(format!(
            "failover: first call answered by b {failover_ms:.1} ms after the kill; b started from {b_started_from} reports, a had counted {}: {lost_in_failover} reports lost with a",
            last_on_a.unwrap_or(0)
        ));
        say(if checkpoint_every > 0 {
            format!("  (warm standby, a checkpoint every {checkpoint_every} reports: a failover loses fewer than {checkpoint_every}, plus any checkpoint on the wire)")
        } else {
            "  (warm standby off: a failover loses the whole state)".to_string()
        });

        pause(1500).await;
        collect_until(&mut calls, &|_| false);
        restart_index = calls.len();
        say("restart node a".into());
        procs.insert("a", start_node("a", base, &extra, lines_tx.clone())?);
        wait_line!("takeover back to a", |n, l| n == "a"
            && l.contains("HandoverDone"));
        pause(1500).await;
        collect_until(&mut calls, &|_| false);
        failed_in_failover = calls[before_kill..restart_index]
            .iter()
            .filter(|s| s.result.is_err())
            .count();
    }
    if args.scenario != Scenario::Classic {
        say("rolling restart: takeovers back held by the client until the wave is done".into());
        let hold = me.hold_takeback().await?;
        for name in NODES {
            say(format!("SIGTERM node {name}: it drains"));
            if let Some(p) = procs.remove(name) {
                p.terminate().await;
            }
            wait_line!(format!("{name} drained"), |n, l| n == name
                && l.starts_with("DRAINED"));
            let drained = log.last().map(|(_, l)| l.clone()).unwrap_or_default();
            say(format!("{name}: {drained}"));
            say(format!("restart node {name}"));
            procs.insert(name, start_node(name, base, &extra, lines_tx.clone())?);
            wait_line!(format!("{name} ready"), |n, l| n == name
                && l.starts_with("READY"));
            pause(500).await;
        }
        hold.release();
        say("rolling restart done; takeovers back released".into());
    }
    pause(1000).await;
    stop.store(true, Ordering::Relaxed);
    reporter.await?;
    collect_until(&mut calls, &|_| false);
    while let Ok((node, line)) = lines.try_recv() {
        timeline.event(&node, &line);
        log.push((node, line));
    }
    let final_count = client.call(PowerMsg::Count, CALL_TIMEOUT).await?;
    say(format!(
        "final count {} on {} at epoch {}",
        final_count.total, final_count.node, final_count.epoch
    ));

    // With feature `metrics`: each node's own metrics, as a scrape would
    // read them (a node restarted by the show counts from its restart).
    #[cfg(feature = "metrics")]
    for name in NODES {
        if let Some(p) = procs.get(name) {
            p.signal("USR1");
            wait_line!(format!("{name} metrics"), |n, l| n == name
                && l.starts_with("METRICS"));
        }
    }

    // The numbers.
    let answered: Vec<&PowerReply> = calls
        .iter()
        .filter_map(|s| s.result.as_ref().ok())
        .collect();
    let after_failover = |i: usize| i < before_kill || i >= restart_index;
    let lost_in_takeover = calls
        .iter()
        .enumerate()
        .filter(|(i, s)| after_failover(*i) && s.result.is_err())
        .count();
    for (_, s) in calls
        .iter()
        .enumerate()
        .filter(|(i, s)| after_failover(*i) && s.result.is_err())
    {
        if let Err(failed) = &s.result {
            say(format!("a call failed outside the failover: {failed}"));
        }
    }
    // Every answer must count exactly one more report than the answer
    // before it; only the failover from a to b may lose some.
    let mut state_ok = true;
    let mut prev: Option<(usize, &PowerReply)> = None;
    for (i, s) in calls.iter().enumerate() {
        let Ok(next) = &s.result else { continue };
        if let Some((_, p)) = prev {
            let failover_boundary = classic && i >= before_kill && i < restart_index;
            if !failover_boundary && next.total != p.total + 1 {
                say(format!("answer chain broken: {p:?} then {next:?}"));
                state_ok = false;
            }
        }
        prev = Some((i, next));
    }
    let duplicated = final_count.duplicates;
    let last_total = answered.last().map(|r| r.total).unwrap_or(0);
    state_ok &= final_count.node == "a" && final_count.total == last_total;
    let count = |kind: &str, start: &str| {
        log.iter()
            .filter(|(_, l)| l.starts_with("EVENT") && l.contains(kind) && l.contains(start))
            .count()
    };
    let takeovers = count("HandoverDone", "");
    let failovers = count("Registered", "Failover");
    // Moves per name, by reason, from the new holders' `Moved` events.
    let mut moves: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (_, line) in log
        .iter()
        .filter(|(_, l)| l.starts_with("EVENT") && l.contains("Moved {"))
    {
        let reason = line
            .split("reason: ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or("?");
        *moves
            .entry(NAME.to_string())
            .or_default()
            .entry(reason.to_lowercase())
            .or_default() += 1;
    }
    for (name, reasons) in &moves {
        let total: u64 = reasons.values().sum();
        let by: Vec<String> = reasons.iter().map(|(r, n)| format!("{r}={n}")).collect();
        println!("MOVES name={name} moves={total} {}", by.join(" "));
    }
    for (_, line) in log.iter().filter(|(_, l)| l.starts_with("METRICS")) {
        println!("{line}");
    }
    for (kind, what) in [
        ("HandoverDone", "takeover pause"),
        ("StateTransferred", "state transfer"),
    ] {
        for (node, line) in log.iter().filter(|(_, l)| l.contains(kind)) {
            say(format!(
                "{what} on {node}: {}",
                &line[line.find(kind).unwrap_or(0)..]
            ));
        }
    }
    if classic {
        say(format!(
            "calls failed while no node held the name (failover): {failed_in_failover}; reports lost with a's state: {lost_in_failover}"
        ));
    }
    // Dropping a node process kills it (by its PID).
    drop(procs);
    me.shutdown();
    if let Some(dir) = &tls_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    println!(
        "RESULT takeovers={takeovers} failovers={failovers} calls_sent={} calls_answered={} lost_in_takeover={lost_in_takeover} duplicated={duplicated} state_ok={state_ok}",
        calls.len(),
        answered.len()
    );
    // The classic part takes over once and fails over once; the rolling
    // restart moves the name once per restart of its holder's node (a, then
    // b: a restarted does not take it back while held).
    let drains = moves.values().flat_map(|r| r.get("drain")).sum::<u64>();
    let moves_ok = match args.scenario {
        Scenario::Classic => takeovers > 0 && failovers > 0,
        Scenario::Rolling => drains == 2,
        Scenario::All => takeovers > 0 && failovers > 0 && drains == 2,
    };
    if lost_in_takeover > 0 || duplicated > 0 || !state_ok || !moves_ok {
        return Err("the demo did not meet its guarantees".into());
    }
    Ok(())
}
