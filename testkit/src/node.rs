//! One real node: a `ractor_cluster` node ([`ClusterNode`]) with one power
//! monitor instance, replaced like a supervisor would when it retires. The
//! `test-node` binary and the `cluster_demo` example's `node` role both run
//! [`run`], so the tests exercise the node the demo shows.
//!
//! It prints `READY node=<name>` once its instance is spawned, and one line
//! per takeover event, which the tests and the demo read:
//! `EVENT t_ms=<unix ms> node=<node> epoch=<Option<u64>> <EventKind as Debug>`.
//!
//! With `--names N` it hosts `N` global names instead, `svc-0..svc-<N-1>`
//! ([`svc_name`]), a power monitor each with the same placement, prints
//! `READY node=<name> names=<N>`, and its `EVENT` lines carry `name=<name>`.
//! Either way it answers a `holders` line on its stdin with one line saying
//! which of its names it holds (see [`HOLDERS`]), which is how a test counts
//! names with two holders without trusting anyone's view of the registry.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{ArgAction, Args};
use ractor_takeover::cluster::{ClusterConfig, ClusterNode, ClusterTls, PeerAddr};
use ractor_takeover::status::Phase;
use ractor_takeover::{
    CheckpointPolicy, Placement, SyncStandby, TakeoverConfig, TakeoverRef, TakeoverServer,
};

use crate::power_monitor::{PowerMonitor, NAME};

/// The error of the binaries here: anything, printed by `main`.
pub type AnyErr = Box<dyn std::error::Error + Send + Sync>;

/// The cookie of the demo (and of a node started without `--cookie`).
pub const DEMO_COOKIE: &str = "ractor-takeover-demo";

/// How a node joins its cluster: the flags every node-like role shares.
#[derive(Args, Clone, Debug)]
pub struct ClusterArgs {
    /// TCP port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Every other node, `name@host:port`, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub peers: Vec<PeerAddr>,
    /// The shared secret of the cluster.
    #[arg(long, default_value = DEMO_COOKIE)]
    pub cookie: String,
    /// Heartbeat interval.
    #[arg(long, default_value_t = 200)]
    pub heartbeat_ms: u64,
    /// Heartbeats missed before a peer counts as down.
    #[arg(long, default_value_t = 5)]
    pub misses: u32,
    /// Keep the newest epoch per name in this directory across restarts.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Mutual TLS with `DIR/cert.pem` and `DIR/key.pem`, trusting
    /// `DIR/cert.pem` as the CA (a self-signed certificate is its own CA).
    #[arg(long, value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,
    /// The name the TLS certificate carries.
    #[arg(long, default_value = "localhost")]
    pub tls_name: String,
    /// The inbound frame cap (default: the crate's, 16 MiB).
    #[arg(long)]
    pub max_frame_bytes: Option<u64>,
    /// Start a `ractor_cluster::NodeServer` here, as an application that
    /// already runs one does, and attach the crate to it
    /// (`ClusterNode::attach`) instead of letting the crate start its own.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub attach: bool,
    /// A client-only node (`ClusterConfig::client_only`): it holds no name,
    /// and its peers count it neither for their lease nor in a safe lookup.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub client_only: bool,
    /// Seed nodes, `name@host:port`, comma-separated: members of a running
    /// cluster to join through (`ClusterConfig::with_seeds`).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<PeerAddr>,
}

impl ClusterArgs {
    /// The configuration of node `name` with these flags.
    pub fn config(&self, name: &str) -> Result<ClusterConfig, AnyErr> {
        let config = ClusterConfig::new(name, self.port, self.cookie.clone())
            .with_peers(self.peers.clone())
            .with_heartbeat(Duration::from_millis(self.heartbeat_ms), self.misses);
        let config = match &self.state_dir {
            Some(dir) => config.with_state_dir(dir),
            None => config,
        };
        let config = config.with_seeds(self.seeds.clone());
        let config = if self.client_only {
            config.client_only()
        } else {
            config
        };
        let config = match self.max_frame_bytes {
            Some(max) => config.with_max_frame_bytes(max),
            None => config,
        };
        let Some(dir) = &self.tls_dir else {
            return Ok(config);
        };
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let tls = ClusterTls::from_pem_files(&cert, &key, &cert, &self.tls_name)?;
        Ok(config.with_tls(tls))
    }
}

/// A node server of the application's own, on the node's port, as a
/// ractor_cluster user starts it (plain TCP: `--attach` does not combine
/// with `--tls-dir` here).
async fn own_node_server(
    config: &ClusterConfig,
) -> Result<ractor::ActorRef<ractor_cluster::NodeServerMessage>, AnyErr> {
    if config.tls.is_some() {
        return Err("--attach runs a plain TCP node server; drop --tls-dir".into());
    }
    let server = ractor_cluster::NodeServer::new(
        config.port,
        config.cookie.clone(),
        config.node.to_string(),
        config.hostname.clone(),
        None,
        None,
    )
    .with_max_inbound_frame_size(config.max_frame_bytes);
    let (server, _) = ractor::Actor::spawn(None, server, ()).await?;
    Ok(server)
}

/// The flags of one node running the power monitor.
#[derive(Args, Clone, Debug)]
pub struct NodeArgs {
    /// This node's name.
    #[arg(long, default_value = "a")]
    pub name: String,
    /// How it joins the cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Placement of the power monitor, in priority order.
    #[arg(long, default_value = "a > b > c")]
    pub placement: String,
    /// How long a standby waits before it fails over.
    #[arg(long, default_value_t = 0)]
    pub failover_delay_ms: u64,
    /// How long a takeover may wait for the old holder's state.
    #[arg(long, default_value_t = 5000)]
    pub pull_timeout_ms: u64,
    /// Warm standby: a checkpoint every this many calls (0: off).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: u64,
    /// Synchronous standby: `refuse` (consistency) or `async`
    /// (availability) when no standby can store a call; off without it.
    #[arg(long)]
    pub sync_standby: Option<String>,
    /// Exit when standard input closes: a node started by a test or the demo
    /// ends with its parent, even if the parent is killed.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub exit_on_stdin_eof: bool,
    /// Host this many names, `svc-0..svc-<N-1>`, instead of the one power
    /// monitor (0: the power monitor alone, as the demo runs it).
    #[arg(long, default_value_t = 0)]
    pub names: usize,
    /// Run the lock manager (`lock_manager::NAME`, deferred replies)
    /// instead of the power monitor.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", default_value_t = false)]
    pub locks: bool,
}

/// The global name of service `i` of a node started with `--names`.
pub fn svc_name(i: usize) -> String {
    format!("svc-{i}")
}

/// The reply to a `holders` line on a node's stdin:
/// `HOLDERS node=<node> q=<k> holder=<count> other=<count> unknown=<count>
/// names=<i,j,..>`, where `q` is the query's number on this node (from 1),
/// `holder` counts its instances in [`Phase::Holder`], `other` those in
/// another phase, `unknown` those that did not answer within a second, and
/// `names` lists the indexes of the names it holds (with `--names`; `0` is
/// the power monitor without it).
pub const HOLDERS: &str = "HOLDERS";

/// A `takeover` line on a node's stdin makes its first name's instance
/// take the name over (a manual takeover, [`ractor_takeover::TakeoverRef::takeover`]);
/// the node answers `TAKEOVER node=<node> result=<Ok(HandoverReport) or
/// Err(TakeoverErr) as Debug>`.
pub const TAKEOVER: &str = "takeover";

/// A `hog <ms>` line on a node's stdin saturates its runtime: one
/// CPU-bound task per worker thread, each spinning for `<ms>` without an
/// await (what a CPU-bound handler does to the node it runs on); the node
/// prints `HOGGED node=<node> ms=<ms>` when they are done.
pub const HOG: &str = "hog";

/// What a line on stdin asks for.
enum Ask {
    Holders,
    Takeover,
    Hog(u64),
}

/// Printed once per instance a node spawns:
/// `INSTANCE node=<node> name=<name> id=<actor id>`. A test counts them to
/// tell a node that kept its instance across takeovers from one that had to
/// start a new one.
pub const INSTANCE: &str = "INSTANCE";

/// How many instances a node with `--names` starts at once.
const START_AT_ONCE: usize = 64;

/// One instance per name, each replaced if it fails.
type Slots = Vec<Arc<Mutex<Option<TakeoverRef<PowerMonitor>>>>>;

/// Logs to stderr (`RUST_LOG`, default `warn`): stdout carries the lines the
/// parent reads.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Milliseconds since the Unix epoch, to line up events of several processes.
pub fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Ends this process when standard input closes (see
/// [`NodeArgs::exit_on_stdin_eof`]).
pub fn exit_on_stdin_eof() {
    on_stdin_lines(|_| {});
}

/// Hands every line of standard input to `on_line` (on a blocking thread),
/// and ends this process when standard input closes.
pub fn on_stdin_lines(mut on_line: impl FnMut(String) + Send + 'static) {
    tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        while std::io::stdin()
            .read_line(&mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            on_line(line.trim().to_string());
            line.clear();
        }
        std::process::exit(0);
    });
}

/// Runs the node until it is killed (or its stdin closes, with
/// `--exit-on-stdin-eof`).
pub async fn run(args: NodeArgs) -> Result<(), AnyErr> {
    if args.locks {
        return crate::lock_manager::run(args).await;
    }
    let name = args.name.clone();
    let config = args.cluster.config(&name)?;
    let node = if args.cluster.attach {
        ClusterNode::attach(own_node_server(&config).await?, config).await?
    } else {
        ClusterNode::start(config).await?
    };
    let placement = Placement::parse(&args.placement)
        .with_failover_delay(Duration::from_millis(args.failover_delay_ms));
    let config = TakeoverConfig::default()
        .with_placement(placement)
        .with_pull_timeout(Duration::from_millis(args.pull_timeout_ms));
    let config = match args.checkpoint_every {
        0 => config,
        n => config.with_checkpoints(CheckpointPolicy::every_calls(n)),
    };
    let config = match args.sync_standby.as_deref() {
        None => config,
        Some("refuse") => config.with_sync_standby(SyncStandby::refuse()),
        Some("async") => config.with_sync_standby(SyncStandby::fall_back_to_async()),
        Some(other) => return Err(format!("--sync-standby {other:?}: refuse or async").into()),
    };
    let many = args.names > 0;
    let mut events = config.events.subscribe();
    tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            let name = if many {
                format!(" name={}", ev.name)
            } else {
                String::new()
            };
            println!(
                "EVENT t_ms={} node={}{name} epoch={:?} {:?}",
                unix_ms(),
                ev.node,
                ev.epoch,
                ev.kind
            );
        }
    });
    let names: Vec<String> = if many {
        (0..args.names).map(svc_name).collect()
    } else {
        vec![NAME.to_string()]
    };
    let slots: Slots = names.iter().map(|_| Arc::new(Mutex::new(None))).collect();
    // Up to START_AT_ONCE instances start at once, as an application with
    // many names would start them: one after the other, each waiting out
    // its safe lookup, made the start-up of thousands of names take one
    // lookup per name in a row (the node's lookups share their ping rounds
    // when they run together).
    let mut starting = tokio::task::JoinSet::new();
    for (global, slot) in names.into_iter().zip(slots.iter().cloned()) {
        if starting.len() >= START_AT_ONCE {
            if let Some(done) = starting.join_next().await {
                done??;
            }
        }
        let (node, config) = (node.clone(), config.clone());
        starting.spawn(async move { keep_instance(global, &node, &config, slot).await });
    }
    while let Some(done) = starting.join_next().await {
        done??;
    }
    if many {
        println!("READY node={name} names={}", args.names);
    } else {
        println!("READY node={name}");
    }
    let (queries, mut asked) = tokio::sync::mpsc::unbounded_channel();
    if args.exit_on_stdin_eof {
        on_stdin_lines(move |line| {
            let ask = match line.as_str() {
                "holders" => Ask::Holders,
                TAKEOVER => Ask::Takeover,
                hog if hog.starts_with(HOG) => match hog[HOG.len()..].trim().parse() {
                    Ok(ms) => Ask::Hog(ms),
                    Err(_) => return,
                },
                _ => return,
            };
            let _ = queries.send(ask);
        });
    }
    let mut q = 0u64;
    while let Some(ask) = asked.recv().await {
        match ask {
            Ask::Holders => {
                q += 1;
                println!("{}", holders_line(&name, q, &slots).await);
            }
            Ask::Takeover => println!("{}", takeover_line(&name, &slots).await),
            Ask::Hog(ms) => hog(&name, ms),
        }
    }
    // No stdin to read: run until killed.
    std::future::pending::<()>().await;
    Ok(())
}

/// Spawns the first instance of `global` into `slot`, then, like a
/// supervisor, replaces an instance that failed (a handler that panicked,
/// as `real_panic` makes it), and the node keeps running. An instance that
/// handed the name over does not stop: it is a standby again by itself.
async fn keep_instance(
    global: String,
    node: &ClusterNode,
    config: &TakeoverConfig,
    slot: Arc<Mutex<Option<TakeoverRef<PowerMonitor>>>>,
) -> Result<(), AnyErr> {
    let registry = node.registry();
    let config = config.clone();
    let (instance, mut handle) = start_instance(&global, &registry, &config).await?;
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(instance);
    tokio::spawn(async move {
        loop {
            if handle.await.is_err() {
                eprintln!("instance of {global} panicked; starting a fresh one");
            }
            match start_instance(&global, &registry, &config).await {
                Ok((instance, next)) => {
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(instance);
                    handle = next;
                }
                Err(e) => {
                    eprintln!("spawn of {global} failed: {e}");
                    std::process::exit(1);
                }
            }
        }
    });
    Ok(())
}

/// Spawns an instance of `global`, as a supervisor would: a start-up that
/// failed (a safe whereis that could not settle while a peer was still
/// unknown) is tried again, a bounded number of times.
async fn start_instance(
    global: &str,
    registry: &std::sync::Arc<dyn ractor_takeover::registry::Registry>,
    config: &TakeoverConfig,
) -> Result<
    (
        TakeoverRef<PowerMonitor>,
        ractor::concurrency::JoinHandle<()>,
    ),
    ractor::SpawnErr,
> {
    let mut tries = 0;
    loop {
        tries += 1;
        match TakeoverServer::new(global, PowerMonitor, registry.clone(), config.clone())
            .spawn(())
            .await
        {
            Err(ractor::SpawnErr::StartupFailed(e)) if tries < 10 => {
                eprintln!("start-up of {global} failed ({e}); trying again");
            }
            Ok((instance, handle)) => {
                println!(
                    "{INSTANCE} node={} name={global} id={}",
                    registry.node(),
                    instance.get_id()
                );
                return Ok((instance, handle));
            }
            other => return other,
        }
    }
}

/// Saturates every worker thread of this runtime for `ms` (see [`HOG`]).
fn hog(node: &str, ms: u64) {
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let until = std::time::Instant::now() + Duration::from_millis(ms);
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..workers {
        let (done, node) = (done.clone(), node.to_string());
        tokio::spawn(async move {
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
            if done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == workers {
                println!("HOGGED node={node} ms={ms}");
            }
        });
    }
}

/// The [`TAKEOVER`] line: a manual takeover by the first name's instance.
async fn takeover_line(node: &str, slots: &Slots) -> String {
    let instance = slots
        .first()
        .and_then(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()).clone());
    let result = match instance {
        Some(i) => format!("{:?}", i.takeover(Duration::from_secs(30)).await),
        None => "no instance".to_string(),
    };
    format!("TAKEOVER node={node} result={result}")
}

/// The [`HOLDERS`] line: every instance asked for its phase at once.
async fn holders_line(node: &str, q: u64, slots: &Slots) -> String {
    let asks: Vec<_> = slots
        .iter()
        .map(|slot| {
            let instance = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
            tokio::spawn(async move {
                match instance {
                    Some(i) => i.status(Duration::from_secs(1)).await.ok().map(|s| s.phase),
                    None => None,
                }
            })
        })
        .collect();
    let (mut holder, mut other, mut unknown) = (0, 0, 0);
    let mut held = Vec::new();
    for (i, ask) in asks.into_iter().enumerate() {
        match ask.await.ok().flatten() {
            Some(Phase::Holder) => {
                holder += 1;
                held.push(i.to_string());
            }
            Some(_) => other += 1,
            None => unknown += 1,
        }
    }
    format!(
        "{HOLDERS} node={node} q={q} holder={holder} other={other} unknown={unknown} names={}",
        held.join(",")
    )
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::NodeArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }

    /// clap's own consistency checks of the flags (names, defaults, actions).
    #[test]
    fn the_node_flags_are_consistent() {
        Cli::command().debug_assert();
    }

    /// The flags the tests and the demo pass, in the forms they pass them.
    #[test]
    fn the_node_flags_parse_as_the_tests_write_them() {
        let cli = Cli::try_parse_from([
            "test-node",
            "--name",
            "b",
            "--exit-on-stdin-eof",
            "true",
            "--port",
            "4002",
            "--peers",
            "a@127.0.0.1:4001,c@127.0.0.1:4003",
            "--placement",
            "a > b",
            "--pull-timeout-ms",
            "60000",
        ])
        .expect("the flags parse");
        let node = cli.node;
        assert_eq!(node.name, "b");
        assert!(node.exit_on_stdin_eof);
        assert_eq!(node.cluster.port, 4002);
        let peers: Vec<&str> = node.cluster.peers.iter().map(|p| p.node.as_str()).collect();
        assert_eq!(peers, ["a", "c"]);
        assert_eq!(node.placement, "a > b");
        assert_eq!(node.pull_timeout_ms, 60_000);
        assert_eq!(node.checkpoint_every, 0);
        assert!(Cli::try_parse_from(["test-node", "--peers", "nobody"]).is_err());
    }
}
