//! Run with: cargo run --release -p ractor_takeover_bench -- [FLAGS]
//!
//! (`-- --quick` for a short run of about 15 s; the default run takes one
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
//! - `takeover_pause_{1k,1m,64m}_{p50,p99}`: the longest gap between
//!   consecutive replies of a client calling without pause, over takeovers
//!   back and forth between `a` and `b`, per state blob size;
//!   `raw_transfer_{1m,64m}`: one plain Echo call from `c` to `a` carrying as
//!   many bytes; `pause_1k_rtt_multiple`, `pause_{1m,64m}_raw_multiple`.
//! - `throughput_{1,8}` and `throughput_{1,8}_takeover` (a takeover every
//!   second), `lost`, `duplicated`, `call_errors` under that load, from
//!   per-client sequence numbers recorded in the state.
//! - `failover_time`: SIGKILL of the holder's process to the first answer from
//!   the new holder, with the heartbeat settings.
//! - `peak_rss_64m` (VmHWM of `a` and `b` through the 64 MiB takeovers) and
//!   its ratio to the state size.
//!
//! Flags (`--help`): `--quick`; `--only fake,rtt,throughput,pause,failover`
//! (default: all); `--sizes 1k,1m,64m` (default: all; `--skip-64m`);
//! `--takeovers N` (100 per size for 1k and 1m); `--takeovers-64m N` (20);
//! `--budget-64m-s S` (150: the 64 MiB series stops early after that long
//! and says how many it did); `--seconds S` (5, per throughput run);
//! `--failovers N` (5); `--rtt-calls N` (10000 per kind); `--heartbeat-ms`
//! (200); `--misses` (5); `--verbose` (echo the nodes' output on stderr).

use std::collections::{BTreeMap, HashMap, HashSet};
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
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::{
    decode_postcard, encode_postcard, status, takeover, CallErr, GlobalClient, Phase, Placement,
    StateCodecErr, TakeoverActor, TakeoverConfig, TakeoverCtx, TakeoverRef, TakeoverServer,
};
use ractor_takeover_testkit::node::{self, AnyErr, ClusterArgs};
use ractor_takeover_testkit::procs::{free_ports, NodeProc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The benchmark server's global name (manual moves between `a` and `b`).
const NAME: &str = "bench";
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
/// How often a node process may respawn its instance (bounds its loop).
const MAX_RESPAWNS: usize = 100_000;
/// How long a node process lives at most (it normally ends with the parent).
const NODE_LIFETIME: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------
// The benchmark behaviour.

/// What clients send.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum BenchMsg {
    /// Count one call of `client`, numbered `seq` (1, 2, ... per client).
    Incr { client: u32, seq: u64 },
    /// Replace the blob with `bytes` bytes made on the holder.
    SetBlob { bytes: u64 },
    /// The whole state but the blob.
    Get,
    /// Answer with the payload (the handle's round trip).
    Ping {
        #[serde(with = "ractor_takeover::bytes")]
        payload: Vec<u8>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum BenchReply {
    Count {
        /// Calls counted so far, all clients.
        counter: u64,
        /// Calls of this client handled so far.
        handled: u64,
        /// Who answered.
        node: String,
    },
    Blob {
        len: u64,
    },
    State {
        counter: u64,
        blob_len: u64,
        clients: Vec<(u32, ClientRec)>,
    },
    Pong {
        #[serde(with = "ractor_takeover::bytes")]
        payload: Vec<u8>,
    },
}

/// One client's calls as the state recorded them.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct ClientRec {
    /// The highest `seq` handled.
    last_seq: u64,
    /// Calls handled (duplicates included).
    handled: u64,
    /// Calls whose `seq` was not above `last_seq`: handled twice or out of order.
    dups: u64,
}

/// The state that moves: a counter, per-client records, and a blob.
#[derive(Debug, Default, Serialize, Deserialize)]
struct BenchState {
    counter: u64,
    clients: BTreeMap<u32, ClientRec>,
    #[serde(with = "ractor_takeover::bytes")]
    blob: Vec<u8>,
}

struct Bench;

impl TakeoverActor for Bench {
    type Msg = BenchMsg;
    type Reply = BenchReply;
    type State = BenchState;
    type Arguments = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<BenchState, ActorProcessingErr> {
        Ok(BenchState::default())
    }

    async fn handle(
        &self,
        ctx: &TakeoverCtx<Self>,
        msg: BenchMsg,
        state: &mut BenchState,
    ) -> Result<BenchReply, ActorProcessingErr> {
        Ok(match msg {
            BenchMsg::Incr { client, seq } => {
                let rec = state.clients.entry(client).or_default();
                if seq <= rec.last_seq {
                    rec.dups += 1;
                }
                rec.last_seq = rec.last_seq.max(seq);
                rec.handled += 1;
                state.counter += 1;
                BenchReply::Count {
                    counter: state.counter,
                    handled: rec.handled,
                    node: ctx.node().to_string(),
                }
            }
            BenchMsg::SetBlob { bytes } => {
                state.blob = vec![0xA5; bytes as usize];
                BenchReply::Blob { len: bytes }
            }
            BenchMsg::Get => BenchReply::State {
                counter: state.counter,
                blob_len: state.blob.len() as u64,
                clients: state.clients.iter().map(|(k, v)| (*k, *v)).collect(),
            },
            BenchMsg::Ping { payload } => BenchReply::Pong { payload },
        })
    }

    fn encode_state(&self, state: &BenchState) -> Result<Vec<u8>, StateCodecErr> {
        encode_postcard(state)
    }

    fn decode_state(&self, bytes: &[u8]) -> Result<BenchState, StateCodecErr> {
        decode_postcard(bytes)
    }
}

// ---------------------------------------------------------------------------
// Plain actors: Echo (the baseline) and Control (the parent's hands on a node).

/// A plain request for Echo and Control: an operation, raw argument bytes and
/// a byte reply port. Its wire form is ractor's own `SerializedMessage`, with
/// nothing added: `args` and the reply travel as they are.
struct Envelope {
    op: String,
    args: Vec<u8>,
    reply: Option<RpcReplyPort<Vec<u8>>>,
}

impl ractor::Message for Envelope {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        Ok(match self.reply {
            Some(reply) => SerializedMessage::Call {
                variant: self.op,
                args: self.args,
                reply,
                metadata: None,
            },
            None => SerializedMessage::Cast {
                variant: self.op,
                args: self.args,
                metadata: None,
            },
        })
    }

    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match bytes {
            SerializedMessage::Call {
                variant,
                args,
                reply,
                ..
            } => Ok(Self {
                op: variant,
                args,
                reply: Some(reply),
            }),
            SerializedMessage::Cast { variant, args, .. } => Ok(Self {
                op: variant,
                args,
                reply: None,
            }),
            SerializedMessage::CallReply(..) => Err(BoxedDowncastErr),
        }
    }
}

/// Calls a plain actor (local or remote) with an [`Envelope`].
async fn envelope_call(
    to: &ActorRef<Envelope>,
    op: &str,
    args: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, AnyErr> {
    let outcome = to
        .call(
            |reply| Envelope {
                op: op.to_string(),
                args,
                reply: Some(reply),
            },
            Some(timeout),
        )
        .await;
    match outcome {
        Ok(CallResult::Success(bytes)) => Ok(bytes),
        Ok(CallResult::Timeout) => Err(format!("{op}: timed out after {timeout:?}").into()),
        Ok(CallResult::SenderError) => Err(format!("{op}: no reply (actor gone)").into()),
        Err(_) => Err(format!("{op}: could not send").into()),
    }
}

/// `echo` answers with its payload; `sink` answers with the payload's length.
struct Echo;

impl Actor for Echo {
    type Msg = Envelope;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Envelope>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Envelope>,
        msg: Envelope,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let Some(reply) = msg.reply {
            let answer = match msg.op.as_str() {
                "sink" => (msg.args.len() as u64).to_le_bytes().to_vec(),
                _ => msg.args,
            };
            let _ = reply.send(answer);
        }
        Ok(())
    }
}

/// The node's current `bench` instance (it respawns after it retires).
type Slot = Arc<Mutex<Option<TakeoverRef<Bench>>>>;

/// What a `takeover` through Control did.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TakeoverOutcome {
    /// The new holder's own pause (steal until the buffered calls were served).
    pause_us: u64,
    state_bytes: u64,
    buffered: u64,
    /// The whole `takeover` call on the node.
    total_us: u64,
    /// How long Control waited for its node's standby to be ready.
    waited_us: u64,
}

/// A node's memory, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Mem {
    hwm_kb: u64,
    rss_kb: u64,
}

/// Every Control op answers `Result<T, String>` in postcard.
struct Control;

impl Actor for Control {
    type Msg = Envelope;
    type State = Slot;
    type Arguments = Slot;

    async fn pre_start(
        &self,
        _: ActorRef<Envelope>,
        slot: Slot,
    ) -> Result<Slot, ActorProcessingErr> {
        Ok(slot)
    }

    async fn handle(
        &self,
        _: ActorRef<Envelope>,
        msg: Envelope,
        slot: &mut Slot,
    ) -> Result<(), ActorProcessingErr> {
        let Some(reply) = msg.reply else {
            return Ok(());
        };
        let answer = match msg.op.as_str() {
            "takeover" => postcard::to_allocvec(&ctl_takeover(slot, &msg.args).await),
            "raw" => postcard::to_allocvec(&ctl_raw(&msg.args).await),
            "stats" => postcard::to_allocvec(&ctl_stats(&msg.args)),
            other => postcard::to_allocvec(&Err::<(), String>(format!("unknown op {other}"))),
        };
        let _ = reply.send(answer?);
        Ok(())
    }
}

/// Waits (bounded) for this node's instance to be a standby, then takes over.
async fn ctl_takeover(slot: &Slot, args: &[u8]) -> Result<TakeoverOutcome, String> {
    let timeout_ms: u64 = postcard::from_bytes(args).map_err(|e| e.to_string())?;
    let asked = Instant::now();
    let deadline = asked + Duration::from_secs(30);
    let instance = loop {
        let current = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(instance) = current {
            let st = status(&instance, Duration::from_secs(1)).await;
            if st.is_some_and(|s| s.phase == Phase::Standby) {
                break instance;
            }
        }
        if Instant::now() >= deadline {
            return Err("no standby instance on this node within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let started = Instant::now();
    let report = takeover(&instance, Duration::from_millis(timeout_ms))
        .await
        .map_err(|e| e.to_string())?;
    Ok(TakeoverOutcome {
        pause_us: report.pause.as_micros() as u64,
        state_bytes: report.state_bytes as u64,
        buffered: report.buffered as u64,
        total_us: started.elapsed().as_micros() as u64,
        waited_us: (started - asked).as_micros() as u64,
    })
}

/// Times `reps` plain calls carrying `bytes` bytes to node `to`'s Echo (the
/// reply is 8 bytes), in microseconds. The payload is made before the clock.
async fn ctl_raw(args: &[u8]) -> Result<Vec<u64>, String> {
    let (to, bytes, reps): (String, u64, u32) =
        postcard::from_bytes(args).map_err(|e| e.to_string())?;
    let echo = find_member(&format!("echo|{to}"), Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    // One more first, as a warm-up: not recorded.
    for i in 0..=reps.min(1000) {
        let payload = vec![0x5A; bytes as usize];
        let t = Instant::now();
        let answer = envelope_call(&echo, "sink", payload, CALL_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        if i > 0 {
            out.push(t.elapsed().as_micros() as u64);
        }
        if answer != bytes.to_le_bytes() {
            return Err("the sink answered another length".into());
        }
    }
    Ok(out)
}

/// This process's peak and current RSS; with `reset`, then resets the peak.
fn ctl_stats(args: &[u8]) -> Result<Mem, String> {
    let reset: bool = postcard::from_bytes(args).map_err(|e| e.to_string())?;
    let mem = read_mem("self")?;
    if reset {
        std::fs::write("/proc/self/clear_refs", "5").map_err(|e| e.to_string())?;
    }
    Ok(mem)
}

fn read_mem(pid: &str) -> Result<Mem, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(Mem {
        hwm_kb: field("VmHWM:"),
        rss_kb: field("VmRSS:"),
    })
}

/// The first member of `group` in the bench scope, waiting (bounded) for it.
async fn find_member(group: &str, wait: Duration) -> Result<ActorRef<Envelope>, AnyErr> {
    let deadline = Instant::now() + wait;
    loop {
        let cells: Vec<ActorCell> = pg::get_scoped_members(&SCOPE.to_string(), &group.to_string());
        if let Some(cell) = cells.into_iter().next() {
            return Ok(cell.into());
        }
        if Instant::now() >= deadline {
            return Err(format!("no member of {group:?} after {wait:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

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
            role: Some(Role::Bench(args)),
            ..
        }
        | Cli { bench: args, .. } => run_bench(args).await,
    }
}

// ---------------------------------------------------------------------------
// The node role.

/// One node process: a ClusterNode, Echo, Control, and the servers its flags
/// ask for (`--bench true`, `--fo-placement "a > c"`). Prints `READY` once
/// every instance is past its start-up, and `EVENT` lines.
async fn run_node(args: NodeArgs) -> Result<(), AnyErr> {
    let name = args.name;
    let node = ClusterNode::start(args.cluster.config(&name)?).await?;
    let (echo, _) = Actor::spawn(None, Echo, ()).await?;
    pg::join_scoped(
        SCOPE.to_string(),
        format!("echo|{name}"),
        vec![echo.get_cell()],
    );
    let slot: Slot = Arc::default();
    let fo_slot: Slot = Arc::default();
    let mut slots = Vec::new();
    if args.bench {
        let config = TakeoverConfig::default().with_pull_timeout(CALL_TIMEOUT);
        keep_instance(NAME, &node, config, slot.clone());
        slots.push((NAME, slot.clone()));
    }
    let fo_placement = args.fo_placement;
    if !fo_placement.is_empty() {
        let placement = Placement::parse(&fo_placement).with_failover_delay(Duration::ZERO);
        let config = TakeoverConfig::default().with_placement(placement);
        keep_instance(FO_NAME, &node, config, fo_slot.clone());
        slots.push((FO_NAME, fo_slot));
    }
    let (control, _) = Actor::spawn(None, Control, slot).await?;
    pg::join_scoped(
        SCOPE.to_string(),
        format!("control|{name}"),
        vec![control.get_cell()],
    );
    let mut phases = Vec::new();
    for (server, slot) in slots {
        let deadline = Instant::now() + Duration::from_secs(60);
        let phase = loop {
            let current = slot.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(st) = match current {
                Some(inst) => status(&inst, Duration::from_secs(30)).await,
                None => None,
            } {
                break st.phase;
            }
            if Instant::now() >= deadline {
                return Err(format!("{server} did not start").into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        phases.push(format!("{server}={phase:?}"));
    }
    println!(
        "READY node={name} pid={} {}",
        std::process::id(),
        phases.join(" ")
    );
    if args.exit_on_stdin_eof {
        // Started by the parent: end with it, even if it is killed.
        node::exit_on_stdin_eof();
    }
    tokio::time::sleep(NODE_LIFETIME).await;
    node.shutdown();
    Ok(())
}

/// Keeps one instance of `name` on this node: a retired instance stops, and
/// a fresh one takes its place as a standby (so takeovers can go back).
fn keep_instance(name: &'static str, node: &ClusterNode, config: TakeoverConfig, slot: Slot) {
    let registry = node.registry();
    let mut events = config.events.subscribe();
    let node_name = node.config().node.to_string();
    tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            println!(
                "EVENT node={node_name} name={} epoch={:?} {:?}",
                ev.name, ev.epoch, ev.kind
            );
        }
    });
    tokio::spawn(async move {
        for _ in 0..MAX_RESPAWNS {
            match TakeoverServer::new(name, Bench, registry.clone(), config.clone())
                .spawn(())
                .await
            {
                Ok((instance, handle)) => {
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(instance);
                    let _ = handle.await;
                }
                Err(e) => {
                    eprintln!("spawn of {name} failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
}

// ---------------------------------------------------------------------------
// The parent: figures.

struct Figure {
    name: String,
    value: f64,
    unit: &'static str,
    goal: String,
    note: String,
}

#[derive(Default)]
struct Figures(Vec<Figure>);

impl Figures {
    fn add(&mut self, name: &str, value: f64, unit: &'static str, goal: &str, note: &str) {
        eprintln!("  {name} = {} {unit} {note}", fmt_num(value));
        self.0.push(Figure {
            name: name.to_string(),
            value,
            unit,
            goal: goal.to_string(),
            note: note.to_string(),
        });
    }

    fn get(&self, name: &str) -> f64 {
        self.0
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
            .unwrap_or(f64::NAN)
    }

    fn print(&self, header: &[String]) {
        let mut out = std::io::stdout().lock();
        for line in header {
            let _ = writeln!(out, "{line}");
        }
        let w = self
            .0
            .iter()
            .map(|f| f.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "{:<w$}  {:>12}  {:<8}  {:<8}  note",
            "figure", "value", "unit", "goal"
        );
        let _ = writeln!(out, "{}", "-".repeat(w + 40));
        for f in &self.0 {
            let _ = writeln!(
                out,
                "{:<w$}  {:>12}  {:<8}  {:<8}  {}",
                f.name,
                fmt_num(f.value),
                f.unit,
                f.goal,
                f.note
            );
        }
        let _ = writeln!(out);
        for f in &self.0 {
            let value = if f.value.is_finite() {
                fmt_num(f.value)
            } else {
                "null".to_string()
            };
            let _ = writeln!(
                out,
                "{{\"name\":\"{}\",\"value\":{value},\"unit\":\"{}\"}}",
                f.name, f.unit
            );
        }
    }
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "NaN".into();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Nearest-rank percentile (`p` in 0..=1) of unsorted samples.
fn pct(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn progress(what: &str, t0: Instant) {
    eprintln!("[{:>7.2}s] {what}", t0.elapsed().as_secs_f64());
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

const PHASES: [&str; 5] = ["fake", "rtt", "throughput", "pause", "failover"];
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

/// Times `a` and `b` alternately, call by call (the order flips every pair,
/// and a tenth more pairs run first as a warm-up), so that both see the same
/// scheduler and machine noise. Samples in microseconds.
async fn alternate<A, B, FA, FB, TA, TB, EA, EB>(
    pairs: usize,
    mut a: A,
    mut b: B,
) -> Result<(Vec<f64>, Vec<f64>), AnyErr>
where
    A: FnMut() -> FA,
    B: FnMut() -> FB,
    FA: Future<Output = Result<TA, EA>>,
    FB: Future<Output = Result<TB, EB>>,
    EA: Into<AnyErr>,
    EB: Into<AnyErr>,
{
    let warm = (pairs / 10).max(50);
    let (mut sa, mut sb) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
    for i in 0..warm + pairs {
        for a_turn in [i % 2 == 0, i % 2 == 1] {
            let started = Instant::now();
            if a_turn {
                a().await.map_err(Into::into)?;
            } else {
                b().await.map_err(Into::into)?;
            }
            let took = us(started.elapsed());
            if i >= warm {
                if a_turn {
                    sa.push(took);
                } else {
                    sb.push(took);
                }
            }
        }
    }
    Ok((sa, sb))
}

// ---------------------------------------------------------------------------
// In-process: the fake cluster.

async fn fake_rtt(opts: &Opts, figs: &mut Figures) -> Result<(), AnyErr> {
    let cluster = FakeCluster::new(["a", "b"]);
    let t = Duration::from_secs(10);
    let srv =
        |n: &str| TakeoverServer::new(NAME, Bench, cluster.registry(n), TakeoverConfig::default());
    let (on_a, _) = srv("a").spawn(()).await?;
    status(&on_a, t).await.ok_or("fake a did not start")?;
    let (on_b, _) = srv("b").spawn(()).await?;
    status(&on_b, t).await.ok_or("fake b did not start")?;
    let local = GlobalClient::<Bench>::new(NAME, cluster.registry("a"));
    let cross = GlobalClient::<Bench>::new(NAME, cluster.registry("b"));
    let (echo, _) = Actor::spawn(None, Echo, ()).await?;
    let payload = vec![7u8; SMALL];
    let ping = || BenchMsg::Ping {
        payload: payload.clone(),
    };

    let (direct, handle) = alternate(
        opts.rtt_calls,
        || envelope_call(&echo, "echo", payload.clone(), t),
        || local.call(ping(), t),
    )
    .await?;
    let (remote, _) = alternate(
        (opts.rtt_calls / 20).max(50),
        || cross.call(ping(), t),
        || async { Ok::<(), AnyErr>(()) },
    )
    .await?;
    let (d, h) = (pct(&direct, 0.5), pct(&handle, 0.5));
    figs.add(
        "fake_call_rtt_direct",
        d,
        "us",
        "",
        &format!(
            "p50 of {}: ActorRef::call to a local plain actor",
            direct.len()
        ),
    );
    figs.add(
        "fake_call_rtt_handle",
        h,
        "us",
        "",
        &format!(
            "p50 of {}: GlobalClient::call, client and holder on fake node a",
            handle.len()
        ),
    );
    figs.add(
        "fake_handle_overhead_ratio",
        h / d,
        "x",
        "<= 1.25",
        "fake_call_rtt_handle / fake_call_rtt_direct (calls alternated)",
    );
    figs.add(
        "fake_call_rtt_handle_cross_node",
        pct(&remote, 0.5),
        "us",
        "",
        &format!(
            "p50 of {}: client on fake node b, holder on a (through the fake router)",
            remote.len()
        ),
    );
    on_a.stop(None);
    on_b.stop(None);
    echo.stop(None);
    Ok(())
}

// ---------------------------------------------------------------------------
// Real node processes.

const NODES: [&str; 3] = ["a", "b", "c"];

struct Cluster {
    me: ClusterNode,
    ports: HashMap<String, u16>,
    procs: HashMap<String, NodeProc>,
    pids: HashMap<String, u32>,
    /// Nodes whose current process printed `READY`.
    ready: HashSet<String>,
    lines_tx: mpsc::UnboundedSender<(String, String)>,
    lines: mpsc::UnboundedReceiver<(String, String)>,
    heartbeat: (u64, u32),
    verbose: bool,
}

impl Cluster {
    async fn start(opts: &Opts) -> Result<Self, AnyErr> {
        let names = ["bench", "a", "b", "c"];
        let ports: HashMap<String, u16> = names
            .iter()
            .map(|n| n.to_string())
            .zip(free_ports(names.len()))
            .collect();
        let peers: Vec<PeerAddr> = NODES
            .iter()
            .map(|n| format!("{n}@127.0.0.1:{}", ports[*n]).parse())
            .collect::<Result<_, _>>()?;
        let me = ClusterNode::start(
            ClusterConfig::new("bench", ports["bench"], COOKIE)
                .with_peers(peers)
                .with_heartbeat(Duration::from_millis(opts.heartbeat_ms), opts.misses),
        )
        .await?;
        let (lines_tx, lines) = mpsc::unbounded_channel();
        let mut cluster = Self {
            me,
            ports,
            procs: HashMap::new(),
            pids: HashMap::new(),
            ready: HashSet::new(),
            lines_tx,
            lines,
            heartbeat: (opts.heartbeat_ms, opts.misses),
            verbose: opts.verbose,
        };
        // `a` first, so that it registers both names; then `b` and `c`.
        cluster.spawn("a")?;
        cluster.wait_ready("a").await?;
        cluster.spawn("b")?;
        cluster.spawn("c")?;
        cluster.wait_ready("b").await?;
        cluster.wait_ready("c").await?;
        Ok(cluster)
    }

    fn spawn(&mut self, name: &str) -> Result<(), AnyErr> {
        let peers: Vec<String> = ["bench", "a", "b", "c"]
            .iter()
            .filter(|n| **n != name)
            .map(|n| format!("{n}@127.0.0.1:{}", self.ports[*n]))
            .collect();
        let (bench, fo) = match name {
            "a" => ("true", FO_PLACEMENT),
            "b" => ("true", ""),
            _ => ("false", FO_PLACEMENT),
        };
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["node", "--name", name])
            .args(["--port", &self.ports[name].to_string()])
            .args(["--peers", &peers.join(","), "--cookie", COOKIE])
            .args(["--bench", bench, "--fo-placement", fo])
            .args(["--heartbeat-ms", &self.heartbeat.0.to_string()])
            .args(["--misses", &self.heartbeat.1.to_string()])
            .args(["--exit-on-stdin-eof", "true"]);
        let tx = self.lines_tx.clone();
        let node = NodeProc::spawn(name, cmd, move |node, line| {
            let _ = tx.send((node.to_string(), line));
        })?;
        self.pids.insert(name.to_string(), node.pid());
        self.procs.insert(name.to_string(), node);
        Ok(())
    }

    async fn wait_ready(&mut self, name: &str) -> Result<(), AnyErr> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.ready.contains(name) {
            let (node, line) = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .map_err(|_| format!("node {name} not ready within 60 s"))?
                .ok_or("node output closed")?;
            self.saw(node, line);
        }
        Ok(())
    }

    fn saw(&mut self, node: String, line: String) {
        if self.verbose || line.starts_with("READY") {
            eprintln!("    {node}: {line}");
        }
        if line.starts_with("READY") {
            self.ready.insert(node);
        }
    }

    /// Reads what the nodes printed meanwhile (echoed with `--verbose`).
    fn drain_lines(&mut self) {
        while let Ok((node, line)) = self.lines.try_recv() {
            self.saw(node, line);
        }
    }

    fn kill(&mut self, name: &str) -> Result<(), AnyErr> {
        self.drain_lines();
        self.ready.remove(name);
        if let Some(node) = self.procs.remove(name) {
            node.kill(); // SIGKILL, by its PID
        }
        Ok(())
    }

    fn stop_all(&mut self) {
        for (_, node) in self.procs.drain() {
            node.kill();
        }
        self.me.shutdown();
    }

    fn pid(&self, name: &str) -> String {
        self.pids
            .get(name)
            .map(|p| p.to_string())
            .unwrap_or_default()
    }
}

/// Calls node `node`'s Control; its answer is `Result<T, String>`.
async fn ctl<T: DeserializeOwned>(
    node: &str,
    op: &str,
    args: &impl Serialize,
    timeout: Duration,
) -> Result<T, AnyErr> {
    let control = find_member(&format!("control|{node}"), Duration::from_secs(10)).await?;
    let bytes = envelope_call(&control, op, postcard::to_allocvec(args)?, timeout).await?;
    let answer: Result<T, String> = postcard::from_bytes(&bytes)?;
    answer.map_err(|e| format!("{op} on {node}: {e}").into())
}

/// Takes `bench` over on the node that does not hold it (a <-> b).
async fn takeover_other(client: &GlobalClient<Bench>) -> Result<(String, TakeoverOutcome), AnyErr> {
    let holder = client
        .whereis()
        .map(|h| h.node.to_string())
        .ok_or("nobody holds bench")?;
    let target = if holder == "a" { "b" } else { "a" };
    let outcome = ctl::<TakeoverOutcome>(
        target,
        "takeover",
        &(CALL_TIMEOUT.as_millis() as u64),
        CALL_TIMEOUT + Duration::from_secs(35),
    )
    .await?;
    Ok((target.to_string(), outcome))
}

async fn wait_until(
    what: &str,
    wait: Duration,
    mut cond: impl FnMut() -> bool,
) -> Result<(), AnyErr> {
    let deadline = Instant::now() + wait;
    while !cond() {
        if Instant::now() >= deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

async fn real_benchmarks(
    opts: &Opts,
    cluster: &mut Cluster,
    figs: &mut Figures,
    t0: Instant,
) -> Result<(), AnyErr> {
    let client = GlobalClient::<Bench>::new(NAME, cluster.me.registry());
    wait_until(
        "the client to see a holding bench",
        Duration::from_secs(30),
        || client.whereis().is_some_and(|h| h.node.as_str() == "a"),
    )
    .await?;
    for n in ["a", "b"] {
        find_member(&format!("echo|{n}"), Duration::from_secs(30)).await?;
        find_member(&format!("control|{n}"), Duration::from_secs(30)).await?;
    }
    cluster.drain_lines();

    if opts.runs("rtt") {
        progress(
            "remote round trips: Echo on a vs GlobalClient to bench on a",
            t0,
        );
        remote_rtt(opts, &client, figs).await?;
    }

    let mut next_client = 100u32;
    if opts.runs("throughput") {
        progress("throughput through the handle", t0);
        let mut load = LoadTotals::default();
        for (clients, moving) in [(1, false), (8, false), (1, true), (8, true)] {
            let r = throughput(opts, &client, clients, moving, &mut next_client).await?;
            let name = format!(
                "throughput_{clients}{}",
                if moving { "_takeover" } else { "" }
            );
            let note = if moving {
                format!(
                    "{clients} client(s), {:.1} s, a takeover every second ({} done)",
                    r.seconds, r.takeovers
                )
            } else {
                format!("{clients} client(s), {:.1} s, steady state", r.seconds)
            };
            figs.add(&name, r.calls as f64 / r.seconds, "calls/s", "", &note);
            if moving {
                load.add(&r);
            }
            cluster.drain_lines();
        }
        figs.add(
            "lost",
            load.lost as f64,
            "calls",
            "0",
            &format!(
                "under load with takeovers: {} calls acknowledged, {} takeovers",
                load.acked, load.takeovers
            ),
        );
        figs.add(
            "duplicated",
            load.duplicated as f64,
            "calls",
            "0",
            "under load with takeovers: a seq handled again or out of order",
        );
        figs.add(
            "call_errors",
            load.errors as f64,
            "calls",
            "0",
            "under load with takeovers: calls that got an error",
        );
    }

    if opts.runs("pause") {
        progress("takeover pauses", t0);
        let mut pause_checks = LoadTotals::default();
        for (label, bytes) in SIZES {
            if !opts.sizes.iter().any(|s| s == label) {
                continue;
            }
            pause_series(
                opts,
                cluster,
                &client,
                figs,
                label,
                bytes,
                &mut next_client,
                &mut pause_checks,
                t0,
            )
            .await?;
            cluster.drain_lines();
        }
        figs.add(
            "pause_runs_lost",
            pause_checks.lost as f64,
            "calls",
            "0",
            "over every takeover_pause series",
        );
        figs.add(
            "pause_runs_duplicated",
            pause_checks.duplicated as f64,
            "calls",
            "0",
            "over every takeover_pause series",
        );
    }

    if opts.runs("failover") {
        progress(
            "failover: SIGKILL the holder of bench_fo (placement a > c)",
            t0,
        );
        failover(opts, cluster, figs, t0).await?;
    }
    Ok(())
}

async fn remote_rtt(
    opts: &Opts,
    client: &GlobalClient<Bench>,
    figs: &mut Figures,
) -> Result<(), AnyErr> {
    let echo = find_member("echo|a", Duration::from_secs(10)).await?;
    let t = Duration::from_secs(10);
    let payload = vec![7u8; SMALL];
    let ping = || BenchMsg::Ping {
        payload: payload.clone(),
    };
    let (direct, handle) = alternate(
        opts.rtt_calls,
        || envelope_call(&echo, "echo", payload.clone(), t),
        || client.call(ping(), t),
    )
    .await?;
    let (d, h) = (pct(&direct, 0.5), pct(&handle, 0.5));
    figs.add(
        "call_rtt_direct",
        d,
        "us",
        "",
        &format!(
            "p50 of {}: ActorRef::call to Echo on node a, {SMALL} B payload",
            direct.len()
        ),
    );
    figs.add("call_rtt_direct_p99", pct(&direct, 0.99), "us", "", "");
    figs.add(
        "call_rtt_handle",
        h,
        "us",
        "",
        &format!(
            "p50 of {}: GlobalClient::call(Ping) to bench on node a, {SMALL} B payload",
            handle.len()
        ),
    );
    figs.add("call_rtt_handle_p99", pct(&handle, 0.99), "us", "", "");
    figs.add(
        "handle_overhead_ratio",
        h / d,
        "x",
        "<= 1.10",
        "call_rtt_handle / call_rtt_direct (calls alternated)",
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Load: throughput, loss and duplicates.

#[derive(Default)]
struct LoadTotals {
    acked: u64,
    errors: u64,
    lost: u64,
    duplicated: u64,
    takeovers: usize,
}

impl LoadTotals {
    fn add(&mut self, r: &LoadResult) {
        self.acked += r.calls;
        self.errors += r.errors;
        self.lost += r.lost;
        self.duplicated += r.duplicated;
        self.takeovers += r.takeovers;
    }
}

struct LoadResult {
    calls: u64,
    errors: u64,
    seconds: f64,
    lost: u64,
    duplicated: u64,
    takeovers: usize,
}

/// A client that calls `Incr` without pause until `stop` (or `until`),
/// numbering its calls; `on_reply` sees each answer's arrival.
async fn incr_loop(
    client: GlobalClient<Bench>,
    id: u32,
    stop: Arc<AtomicBool>,
    until: Instant,
    on_reply: impl Fn(Instant) + Send + 'static,
) -> (u64, u64) {
    let (mut acked, mut errors) = (0u64, 0u64);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < until && seq < 100_000_000 {
        seq += 1;
        match client
            .call(BenchMsg::Incr { client: id, seq }, CALL_TIMEOUT)
            .await
        {
            Ok(_) => {
                acked += 1;
                on_reply(Instant::now());
            }
            Err(e) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("  client {id}: call {seq} failed: {e}");
                }
            }
        }
    }
    (acked, errors)
}

/// Compares what the clients saw acknowledged with what the state recorded.
async fn check_clients(
    client: &GlobalClient<Bench>,
    acked: &[(u32, u64)],
) -> Result<(u64, u64), AnyErr> {
    let BenchReply::State { clients, .. } = client.call(BenchMsg::Get, CALL_TIMEOUT).await? else {
        return Err("Get answered something else".into());
    };
    let recs: HashMap<u32, ClientRec> = clients.into_iter().collect();
    let (mut lost, mut dups) = (0, 0);
    for (id, n) in acked {
        let rec = recs.get(id).copied().unwrap_or_default();
        let distinct = rec.handled - rec.dups;
        lost += n.saturating_sub(distinct);
        dups += rec.dups;
    }
    Ok((lost, dups))
}

async fn throughput(
    opts: &Opts,
    client: &GlobalClient<Bench>,
    clients: u32,
    moving: bool,
    next_client: &mut u32,
) -> Result<LoadResult, AnyErr> {
    let stop = Arc::new(AtomicBool::new(false));
    let duration = Duration::from_secs_f64(opts.seconds);
    let start = Instant::now();
    let until = start + duration + Duration::from_secs(60);
    let ids: Vec<u32> = (0..clients).map(|i| *next_client + i).collect();
    *next_client += clients;
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| tokio::spawn(incr_loop(client.clone(), *id, stop.clone(), until, |_| {})))
        .collect();
    let mut takeovers = 0;
    if moving {
        // At 0.5 s, 1.5 s, ...: one takeover per second of the run.
        for i in 0..(opts.seconds.round() as u64).max(1) {
            tokio::time::sleep_until(start + Duration::from_millis(500 + 1000 * i)).await;
            if start.elapsed() >= duration {
                break;
            }
            takeover_other(client).await?;
            takeovers += 1;
        }
    }
    tokio::time::sleep_until(start + duration).await;
    stop.store(true, Ordering::Relaxed);
    let (mut calls, mut errors, mut acked) = (0, 0, Vec::new());
    for (id, task) in ids.iter().zip(tasks) {
        let (a, e) = task.await?;
        calls += a;
        errors += e;
        acked.push((*id, a));
    }
    // Until the last call in flight at the stop was answered.
    let seconds = start.elapsed().as_secs_f64();
    let (lost, duplicated) = check_clients(client, &acked).await?;
    Ok(LoadResult {
        calls,
        errors,
        seconds,
        lost,
        duplicated,
        takeovers,
    })
}

// ---------------------------------------------------------------------------
// Takeover pauses.

/// The longest gap between consecutive replies that overlaps `[from, to]`.
fn longest_gap(replies: &[Instant], from: Instant, to: Instant) -> Duration {
    // First pair whose second reply is at or after `from`.
    let first = replies.partition_point(|r| *r < from).max(1);
    let mut best = Duration::ZERO;
    for j in first..replies.len() {
        if replies[j - 1] > to {
            break;
        }
        best = best.max(replies[j] - replies[j - 1]);
    }
    best
}

#[allow(clippy::too_many_arguments)]
async fn pause_series(
    opts: &Opts,
    cluster: &mut Cluster,
    client: &GlobalClient<Bench>,
    figs: &mut Figures,
    label: &str,
    bytes: u64,
    next_client: &mut u32,
    checks: &mut LoadTotals,
    t0: Instant,
) -> Result<(), AnyErr> {
    let big = bytes >= 64 * MIB;
    let count = if big {
        opts.takeovers_64m
    } else {
        opts.takeovers
    };
    let budget = if big {
        opts.budget_64m
    } else {
        Duration::from_secs(120)
    };
    progress(
        &format!("state blob {label}: {count} takeovers back and forth"),
        t0,
    );
    match client
        .call(BenchMsg::SetBlob { bytes }, CALL_TIMEOUT)
        .await?
    {
        BenchReply::Blob { len } if len == bytes => {}
        other => return Err(format!("SetBlob answered {other:?}").into()),
    }

    // The same bytes in one plain call, node to node (c's Control to a's
    // Echo). From c, which takes no part in the takeovers: ractor_cluster's
    // session writer keeps the buffer of the largest frame it wrote, so a
    // 64 MiB call from b would leave 64 MiB resident in b that the peak RSS
    // below would then count against the takeover.
    if label != "1k" {
        let reps: u32 = match (big, opts.quick) {
            (true, true) => 2,
            (true, false) => 5,
            (false, true) => 5,
            (false, false) => 20,
        };
        let times: Vec<u64> = ctl(
            "c",
            "raw",
            &("a".to_string(), bytes, reps),
            CALL_TIMEOUT * (reps + 1),
        )
        .await?;
        let samples: Vec<f64> = times.iter().map(|t| *t as f64 / 1e3).collect();
        figs.add(
            &format!("raw_transfer_{label}"),
            pct(&samples, 0.5),
            "ms",
            "",
            &format!("p50 of {reps}: one plain call c -> Echo on a carrying {label} (8 B reply)"),
        );
    }

    if big {
        // Peaks from here on only.
        for n in ["a", "b"] {
            ctl::<Mem>(n, "stats", &true, Duration::from_secs(10)).await?;
        }
    }

    let replies: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let id = *next_client;
    *next_client += 1;
    let last_reply = Arc::new(AtomicU64::new(0));
    let base = Instant::now();
    let caller = tokio::spawn(incr_loop(
        client.clone(),
        id,
        stop.clone(),
        base + budget + Duration::from_secs(600),
        {
            let (replies, last_reply) = (replies.clone(), last_reply.clone());
            move |at| {
                replies.lock().unwrap_or_else(|e| e.into_inner()).push(at);
                last_reply.store((at - base).as_nanos() as u64, Ordering::Release);
            }
        },
    ));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let settle = Duration::from_millis(if big { 300 } else { 100 });
    let (mut gaps, mut server_pauses, mut totals) = (Vec::new(), Vec::new(), Vec::new());
    let mut first_mem: Option<(String, Mem, String, Mem)> = None;
    let series_start = Instant::now();
    for i in 0..count {
        if series_start.elapsed() > budget {
            eprintln!("  {label}: time budget of {budget:?} reached after {i} takeovers");
            break;
        }
        let from = Instant::now();
        let (target, outcome) = takeover_other(client).await?;
        let to = Instant::now();
        // The first reply after the takeover closes the gap.
        let after = (to - base).as_nanos() as u64;
        wait_until(
            "a reply after the takeover",
            Duration::from_secs(60),
            || last_reply.load(Ordering::Acquire) > after,
        )
        .await?;
        let gap = {
            let r = replies.lock().unwrap_or_else(|e| e.into_inner());
            longest_gap(&r, from + Duration::from_micros(outcome.waited_us), to)
        };
        gaps.push(ms(gap));
        server_pauses.push(outcome.pause_us as f64 / 1e3);
        totals.push(outcome.total_us as f64 / 1e3);
        if big && i == 0 {
            let source = if target == "a" { "b" } else { "a" };
            let m_to: Mem = ctl(&target, "stats", &false, Duration::from_secs(10)).await?;
            let m_from: Mem = ctl(source, "stats", &false, Duration::from_secs(10)).await?;
            first_mem = Some((source.to_string(), m_from, target.clone(), m_to));
        }
        tokio::time::sleep(settle).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (acked, errors) = caller.await?;
    let (lost, duplicated) = check_clients(client, &[(id, acked)]).await?;
    checks.acked += acked;
    checks.errors += errors;
    checks.lost += lost;
    checks.duplicated += duplicated;
    let done = gaps.len();
    let count_note = if done < count {
        format!(" (only {done} of {count}: time budget)")
    } else {
        String::new()
    };
    figs.add(
        &format!("takeover_pause_{label}_p50"),
        pct(&gaps, 0.5),
        "ms",
        "",
        &format!(
            "{done} takeovers{count_note}: longest gap between replies of a client calling without pause"
        ),
    );
    figs.add(
        &format!("takeover_pause_{label}_p99"),
        pct(&gaps, 0.99),
        "ms",
        "",
        &if done < 100 {
            format!("nearest rank over {done}: the max of the series")
        } else {
            format!("nearest rank over {done}")
        },
    );
    figs.add(
        &format!("takeover_count_{label}"),
        done as f64,
        "count",
        if big { "" } else { ">= 20" },
        &format!("client errors {errors}, lost {lost}, duplicated {duplicated}"),
    );
    figs.add(
        &format!("takeover_server_pause_{label}_p50"),
        pct(&server_pauses, 0.5),
        "ms",
        "",
        "HandoverReport.pause: steal until the buffered calls were served",
    );
    figs.add(
        &format!("takeover_call_{label}_p50"),
        pct(&totals, 0.5),
        "ms",
        "",
        "the whole takeover() on the new node, until it returned",
    );
    let p50 = pct(&gaps, 0.5);
    if label == "1k" {
        let rtt = figs.get("call_rtt_direct") / 1e3;
        figs.add(
            "pause_1k_rtt_multiple",
            p50 / rtt,
            "x",
            "<= 3",
            "takeover_pause_1k_p50 / call_rtt_direct",
        );
    } else {
        let raw = figs.get(&format!("raw_transfer_{label}"));
        figs.add(
            &format!("pause_{label}_raw_multiple"),
            p50 / raw,
            "x",
            "<= 1.5",
            &format!("takeover_pause_{label}_p50 / raw_transfer_{label}"),
        );
    }
    if big {
        let state_mib = bytes as f64 / MIB as f64;
        let mib = |kb: u64| kb as f64 / 1024.0;
        if let Some((from, m_from, to, m_to)) = first_mem {
            figs.add(
                "peak_rss_64m_sender",
                mib(m_from.hwm_kb),
                "MiB",
                "",
                &format!(
                    "VmHWM of {from} (old holder) over the first takeover; pid {}",
                    cluster.pid(&from)
                ),
            );
            figs.add(
                "peak_rss_64m_receiver",
                mib(m_to.hwm_kb),
                "MiB",
                "",
                &format!(
                    "VmHWM of {to} (new holder) over the first takeover; pid {}",
                    cluster.pid(&to)
                ),
            );
        }
        let a: Mem = ctl("a", "stats", &false, Duration::from_secs(10)).await?;
        let b: Mem = ctl("b", "stats", &false, Duration::from_secs(10)).await?;
        let peak = mib(a.hwm_kb.max(b.hwm_kb));
        figs.add(
            "peak_rss_64m",
            peak,
            "MiB",
            "",
            &format!(
                "max VmHWM of a, b over all {done} takeovers (a {:.0}, b {:.0}; now a {:.0}, b {:.0})",
                mib(a.hwm_kb),
                mib(b.hwm_kb),
                mib(a.rss_kb),
                mib(b.rss_kb)
            ),
        );
        figs.add(
            "peak_rss_64m_ratio",
            peak / state_mib,
            "x",
            "< 3",
            "peak_rss_64m / 64 MiB (whole process, runtime included)",
        );
        // Back to a small state for what follows.
        client
            .call(BenchMsg::SetBlob { bytes: KIB }, CALL_TIMEOUT)
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Failover.

async fn failover(
    opts: &Opts,
    cluster: &mut Cluster,
    figs: &mut Figures,
    t0: Instant,
) -> Result<(), AnyErr> {
    let client = GlobalClient::<Bench>::new(FO_NAME, cluster.me.registry());
    let mut times = Vec::new();
    for k in 0..opts.failovers {
        wait_until("a to hold bench_fo", Duration::from_secs(60), || {
            client.whereis().is_some_and(|h| h.node.as_str() == "a")
        })
        .await?;
        // Calls without pause, each answer tagged with who answered.
        let answers: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let caller = tokio::spawn({
            let (client, answers, stop) = (client.clone(), answers.clone(), stop.clone());
            async move {
                let until = Instant::now() + Duration::from_secs(120);
                let mut seq = 0;
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    seq += 1;
                    let call = BenchMsg::Incr {
                        client: 5000 + k as u32,
                        seq,
                    };
                    match client.call(call, Duration::from_secs(2)).await {
                        Ok(BenchReply::Count { node, .. }) => answers
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((Instant::now(), node)),
                        Ok(_) => {}
                        Err(CallErr::Timeout) => {}
                        Err(_) => tokio::time::sleep(Duration::from_micros(200)).await,
                    }
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed = Instant::now();
        cluster.kill("a")?;
        let found = wait_until("an answer from c", Duration::from_secs(60), || {
            answers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|(at, n)| *at > killed && n == "c")
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        caller.await?;
        found?;
        let first = answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(at, n)| *at > killed && n == "c")
            .map(|(at, _)| *at - killed)
            .ok_or("no answer from c")?;
        progress(
            &format!(
                "failover {}: first answer from c {:.1} ms after the SIGKILL of a",
                k + 1,
                ms(first)
            ),
            t0,
        );
        times.push(ms(first));
        if k + 1 < opts.failovers {
            // a comes back and takes the name back (placement a > c).
            cluster.spawn("a")?;
            cluster.wait_ready("a").await?;
        }
    }
    let (hb, misses) = cluster.heartbeat;
    let settings = format!(
        "heartbeat {hb} ms x {misses} misses (detection {} ms), failover_delay 0; a closed session marks the peer down at once",
        hb * misses as u64
    );
    figs.add(
        "failover_time",
        pct(&times, 0.5),
        "ms",
        "",
        &format!(
            "p50 of {}: SIGKILL of the holder -> first answer from the new holder; {settings}",
            times.len()
        ),
    );
    figs.add(
        "failover_time_max",
        pct(&times, 1.0),
        "ms",
        "",
        &format!("max of {}", times.len()),
    );
    figs.add("heartbeat_interval", hb as f64, "ms", "", "");
    figs.add("heartbeat_misses", misses as f64, "count", "", "");
    Ok(())
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
