//! Run with: cargo run --release --example cluster_demo
//!
//! The seed's scenario on real `ractor_cluster` nodes, each a separate OS
//! process on loopback with a cookie: a globally registered power monitor
//! placed on `a > b > c`. This process starts the three node processes (it
//! re-runs itself with `node`), joins as a client node and reports without
//! pause; it SIGKILLs the holder's process (failover to `b`), restarts `a`
//! (automatic takeover back, state carried over) and prints a timeline, then
//! one line a script can read:
//!
//! `RESULT takeovers=<n> failovers=<n> calls_sent=<n> calls_answered=<n> lost_in_takeover=<n> duplicated=<n> state_ok=<true|false>`
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
//! then a failover loses the whole state). Flags: `--heartbeat-ms` (200), `--misses`
//! (5), `--failover-delay-ms` (0), `--pull-timeout-ms` (5000), `--base-port`
//! (demo, 47100), `--tls true` (demo: mutual TLS between every node, with a
//! self-signed certificate generated for the run), `--tls-dir DIR` (node and client: mutual TLS with
//! `DIR/cert.pem` and `DIR/key.pem`, trusting `DIR/cert.pem` as the CA) and
//! `--tls-name` (the name the certificate carries, `localhost`), `--state-dir DIR`
//! (node: keep the newest epoch per name in `DIR` across restarts).

#[path = "common/power_monitor.rs"]
mod power_monitor;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use power_monitor::{PowerMonitor, PowerMsg, PowerReply, NAME};
use ractor_takeover::cluster::{ClusterConfig, ClusterNode, ClusterTls, PeerAddr};
use ractor_takeover::{
    CallErr, CheckpointPolicy, GlobalClient, Placement, TakeoverConfig, TakeoverServer,
};
use tokio::sync::mpsc;

type AnyErr = Box<dyn std::error::Error + Send + Sync>;

const NODES: [&str; 3] = ["a", "b", "c"];
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// `--key value` flags after the role.
struct Flags(HashMap<String, String>);

impl Flags {
    fn parse(args: &[String]) -> Result<Self, AnyErr> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(key) = it.next() {
            let key = key
                .strip_prefix("--")
                .ok_or(format!("expected --flag, got {key:?}"))?;
            let value = it.next().ok_or(format!("--{key} needs a value"))?;
            map.insert(key.to_string(), value.clone());
        }
        Ok(Self(map))
    }

    fn get(&self, key: &str, default: &str) -> String {
        self.0
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    fn num(&self, key: &str, default: u64) -> Result<u64, AnyErr> {
        Ok(self.get(key, &default.to_string()).parse()?)
    }

    fn cluster(&self, name: &str) -> Result<ClusterConfig, AnyErr> {
        let peers = self
            .get("peers", "")
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<PeerAddr>, _>>()?;
        let config = ClusterConfig::new(
            name,
            self.num("port", 0)? as u16,
            self.get("cookie", "ractor-takeover-demo"),
        )
        .with_peers(peers)
        .with_heartbeat(
            Duration::from_millis(self.num("heartbeat-ms", 200)?),
            self.num("misses", 5)? as u32,
        );
        let config = match self.0.get("state-dir") {
            Some(dir) => config.with_state_dir(dir),
            None => config,
        };
        let Some(dir) = self.0.get("tls-dir") else {
            return Ok(config);
        };
        // A self-signed certificate (`ClusterTls::self_signed`) is its own CA.
        let cert = Path::new(dir).join("cert.pem");
        let key = Path::new(dir).join("key.pem");
        let tls =
            ClusterTls::from_pem_files(&cert, &key, &cert, &self.get("tls-name", "localhost"))?;
        Ok(config.with_tls(tls))
    }
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), AnyErr> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("node") => run_node(Flags::parse(&args[1..])?).await,
        Some("client") => run_client(Flags::parse(&args[1..])?).await,
        Some("demo") => run_demo(Flags::parse(&args[1..])?).await,
        None => run_demo(Flags::parse(&[])?).await,
        Some(flag) if flag.starts_with("--") => run_demo(Flags::parse(&args)?).await,
        Some(other) => Err(format!("unknown role {other:?}: use node, client or demo").into()),
    }
}

/// One node: a ractor_cluster node with one power monitor instance. Prints
/// `EVENT ...` lines for the demo's timeline.
async fn run_node(flags: Flags) -> Result<(), AnyErr> {
    let name = flags.get("name", "a");
    let node = ClusterNode::start(flags.cluster(&name)?).await?;
    let placement = Placement::parse(&flags.get("placement", "a > b > c"))
        .with_failover_delay(Duration::from_millis(flags.num("failover-delay-ms", 0)?));
    let config = TakeoverConfig::default()
        .with_placement(placement)
        .with_pull_timeout(Duration::from_millis(flags.num("pull-timeout-ms", 5000)?));
    let config = match flags.num("checkpoint-every", 0)? {
        0 => config,
        n => config.with_checkpoints(CheckpointPolicy::every_calls(n)),
    };
    let mut events = config.events.subscribe();
    tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            println!(
                "EVENT t_ms={} node={} epoch={:?} {:?}",
                unix_ms(),
                ev.node,
                ev.epoch,
                ev.kind
            );
        }
    });
    let (_server, mut handle) =
        TakeoverServer::new(NAME, PowerMonitor, node.registry(), config.clone())
            .spawn(())
            .await?;
    println!("READY node={name}");
    if flags.get("exit-on-stdin-eof", "false") == "true" {
        // Started by the demo: end with it, even if it is killed.
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
            std::process::exit(0);
        });
    }
    // Like a supervisor: an instance that retired (it handed the name over)
    // is replaced by a fresh standby, and the node keeps running. Why it
    // matters: a retired instance's token relays the replies of the calls it
    // forwarded for a while (`token_linger`); a node process that exited
    // with its instance dropped those replies.
    loop {
        handle.await?;
        handle = TakeoverServer::new(NAME, PowerMonitor, node.registry(), config.clone())
            .spawn(())
            .await?
            .1;
    }
}

/// A client node that reports once a second and prints the answers.
async fn run_client(flags: Flags) -> Result<(), AnyErr> {
    let node = ClusterNode::start(flags.cluster("client")?).await?;
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

/// A node process started by the demo, with its output read on a thread.
struct NodeProc {
    child: Child,
}

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
    let mut child = Command::new(std::env::current_exe()?)
        .args(["node", "--name", name, "--port", &port(name).to_string()])
        .args(["--peers", &peers.join(","), "--placement", "a > b > c"])
        .args(["--exit-on-stdin-eof", "true"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let name = name.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send((name.clone(), line));
        }
    });
    Ok(NodeProc { child })
}

/// One call of the client loop, as the demo records it.
struct Sent {
    at: Instant,
    result: Result<PowerReply, CallErr>,
}

async fn run_demo(flags: Flags) -> Result<(), AnyErr> {
    let base = flags.num("base-port", 47100)? as u16;
    // Warm standby: the holder checkpoints its state to the standbys every
    // this many reports (0: off, and a failover loses the whole state).
    let checkpoint_every = flags.num("checkpoint-every", 100)?;
    let t0 = Instant::now();
    let say = |what: String| println!("[{:>7.3}s] {what}", t0.elapsed().as_secs_f64());
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
    let mut client_config =
        ClusterConfig::new("client", base, "ractor-takeover-demo").with_peers(peers);
    // `--tls true`: mutual TLS everywhere, with a self-signed certificate made
    // for this run in a temporary directory (removed at the end).
    let tls_dir = (flags.get("tls", "false") == "true").then(|| {
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
                if line.starts_with("EVENT") {
                    say(format!(
                        "{node}: {}",
                        &line[line.find("node=").unwrap_or(0)..]
                    ));
                }
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

    pause(1500).await;
    collect_until(&mut calls, &|_| false);
    let before_kill = calls.len();
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
    if let Some(mut a) = procs.remove("a") {
        a.child.kill()?;
        a.child.wait()?;
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
    let lost_in_failover = last_on_a.unwrap_or(0).saturating_sub(b_started_from);
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
    let restart_index = calls.len();
    say("restart node a".into());
    procs.insert("a", start_node("a", base, &extra, lines_tx.clone())?);
    wait_line!("takeover back to a", |n, l| n == "a"
        && l.contains("HandoverDone"));
    pause(1500).await;
    stop.store(true, Ordering::Relaxed);
    reporter.await?;
    collect_until(&mut calls, &|_| false);
    while let Ok((node, line)) = lines.try_recv() {
        if line.starts_with("EVENT") {
            say(format!(
                "{node}: {}",
                &line[line.find("node=").unwrap_or(0)..]
            ));
        }
        log.push((node, line));
    }
    let final_count = client.call(PowerMsg::Count, CALL_TIMEOUT).await?;
    say(format!(
        "final count {} on {} at epoch {}",
        final_count.total, final_count.node, final_count.epoch
    ));

    // The numbers.
    let answered: Vec<&PowerReply> = calls
        .iter()
        .filter_map(|s| s.result.as_ref().ok())
        .collect();
    let failed_in_failover = calls[before_kill..restart_index]
        .iter()
        .filter(|s| s.result.is_err())
        .count();
    let lost_in_takeover = calls[restart_index..]
        .iter()
        .filter(|s| s.result.is_err())
        .count();
    for failed in calls[restart_index..]
        .iter()
        .filter_map(|s| s.result.as_ref().err())
    {
        say(format!("a call failed during the takeover: {failed}"));
    }
    // Every answer on one holder's lineage must count exactly one more report
    // than the answer before it; only the failover from a to b may lose some.
    let mut state_ok = true;
    for pair in answered.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        let failover_boundary = prev.node == "a" && next.node == "b";
        if !failover_boundary && next.total != prev.total + 1 {
            say(format!("answer chain broken: {prev:?} then {next:?}"));
            state_ok = false;
        }
    }
    let duplicated = final_count.duplicates;
    let last_on_b = answered
        .iter()
        .rev()
        .find(|r| r.node == "b")
        .map(|r| r.total)
        .unwrap_or(0);
    let answered_on_a_after = answered
        .iter()
        .skip_while(|r| r.node != "b")
        .filter(|r| r.node == "a")
        .count() as u64;
    state_ok &= final_count.node == "a" && final_count.total == last_on_b + answered_on_a_after;
    let count = |kind: &str, start: &str| {
        log.iter()
            .filter(|(_, l)| l.starts_with("EVENT") && l.contains(kind) && l.contains(start))
            .count()
    };
    let takeovers = count("HandoverDone", "");
    let failovers = count("Registered", "Failover");
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
    say(format!(
        "calls failed while no node held the name (failover): {failed_in_failover}; reports lost with a's state: {lost_in_failover}"
    ));
    for (_, mut p) in procs {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
    me.shutdown();
    if let Some(dir) = &tls_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    println!(
        "RESULT takeovers={takeovers} failovers={failovers} calls_sent={} calls_answered={} lost_in_takeover={lost_in_takeover} duplicated={duplicated} state_ok={state_ok}",
        calls.len(),
        answered.len()
    );
    if lost_in_takeover > 0 || duplicated > 0 || !state_ok || takeovers == 0 || failovers == 0 {
        return Err("the demo did not meet its guarantees".into());
    }
    Ok(())
}
