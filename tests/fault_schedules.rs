//! The randomized fault-schedule suite (issue 5, section 4).
//!
//! A seeded generator (`rand`, `StdRng::seed_from_u64`) writes a schedule for
//! a 3-node fake cluster (placement `a > b > c`, failover delay 50 ms,
//! standby grace 100 ms, conflict grace 100 ms, pull timeout 600 ms; per
//! schedule at random: warm standby, every message through its wire form,
//! quorum mode, a small handover buffer): 2 to 5 clients, each on one node,
//! call the global server one call at a time, each call with its client's
//! next sequence number and its own deadline; meanwhile the schedule takes
//! over manually, crashes and restarts nodes (a restart is
//! `FakeCluster::restart` plus a fresh instance there; one node always stays
//! up), splits links (detected partitions), cuts links silently (undetected
//! partitions), heals them, delays links, and holds links (each hold is
//! released later). Like a supervisor, the harness replaces an instance that
//! stopped (retired) with a fresh standby. At the end every link is healed
//! and released, every crashed node restarted, and the run waits (with a
//! deadline) until the cluster is quiet and stays so. Time is paused
//! (`start_paused`; ractor's timers are tokio's too): a schedule is timer
//! logic, so it runs as fast as the CPU allows and replays the same way.
//!
//! The server is a ledger: its state records, per client, the sequence
//! numbers it applied, in order; its hooks (`go`, `handle`, `merge`) write
//! to a log, with the instance and its epoch, so the checker knows which
//! instance held which state when. The checker then verifies:
//!
//! 1. at most one instance serves per epoch (no two instances ran `go` or
//!    handled a call under one epoch; no two nodes published `Registered`,
//!    `TakeoverStarted` or `ConflictWon` with one epoch; an instance runs `go`
//!    once, or again only as a `Failover` under a new epoch: an old holder
//!    whose successor vanished), and after the final
//!    heal exactly one holder remains, on `a`, in every node's view, and the
//!    other nodes' instances are standbys;
//! 2. every acknowledged call is in the final state, unless a node crash lost
//!    it and the events report the loss: an instance killed by the crash had
//!    it in its state, and a holder that started after that instance did
//!    started with `Failover { from }` naming its node (by placement, or
//!    after `StateLost`). With warm standby, the state a failover installed
//!    is exactly the checkpointing holder's state after `handled` calls, so
//!    only the updates since that checkpoint are lost;
//! 3. no call is applied twice, none answered "not handled" (`NotRegistered`,
//!    `BufferFull`) was applied, every acknowledgement names the holder
//!    (node and epoch) that applied the call, the acknowledged calls of a
//!    client appear in the final state in increasing order, and every call and
//!    every `takeover` returned by its deadline;
//! 4. no instance failed (ractor supervision: only an instance whose node
//!    crashed may fail, and not with a panic) and nothing panicked.
//!
//! A call whose deadline passed may still be applied later (after later calls
//! of the same client): it was not acknowledged, as with `gen_server:call`.
//!
//! The suite found bugs in `src/` (see the `known_bug_*` tests at the end,
//! one per bug, each replaying a seed, `#[ignore]`d so CI stays green). A
//! violation that matches one of those bugs' signatures exactly is counted
//! and listed in the summary, not failed; any other violation fails the
//! suite. `FAULT_STRICT=1` with `FAULT_SEED` fails on known bugs too.
//!
//! A failing schedule prints its seed, its schedule, the violations and how
//! to replay it. Environment:
//!
//! - `FAULT_SCHEDULES=N`: how many schedules (default 1500: about a minute
//!   in debug on 2 idle cores, 40 ms of CPU each; a schedule is 1 to 5 s of
//!   virtual time and about 570 calls);
//! - `FAULT_BASE=K` or `FAULT_BASE=random`: the first seed (default 1, so
//!   CI runs the same seeds every time);
//! - `FAULT_SEED=S`: replay only seed `S`, printing its schedule, the hooks'
//!   log and the events (`FAULT_TRACE=full` for every call,
//!   `RUST_LOG=ractor_takeover=debug` for the runtime's own logs);
//! - `FAULT_THREADS=T`: worker threads (default: the available cores);
//! - `FAULT_MACHINE=off`: no paused nodes, frame limits or slow dials
//!   (drawn in one seed in three otherwise, see `machine_faults`).
//!
//! The long run (50 000 schedules, new seeds each time; about 6 minutes in
//! release on 2 cores), one command:
//!
//! ```sh
//! FAULT_SCHEDULES=50000 FAULT_BASE=random cargo test --release --all-features --test fault_schedules -- --nocapture
//! ```

mod support;

use support::{Failures, Watchdog};

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, ActorStatus};
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

const NODES: [&str; 3] = ["a", "b", "c"];
const NAME: &str = "ledger";
/// The deadline of a manual takeover.
const TAKEOVER_TIMEOUT: Duration = Duration::from_millis(2_000);
/// How long the final quiescence may take (virtual time).
const QUIET_DEADLINE: Duration = Duration::from_secs(60);
/// Clients keep calling this long after the final heal.
const TAIL_MS: u64 = 800;

// ---------------------------------------------------------------------------
// The server: a ledger of applied client sequence numbers, logging every hook.

type CallId = (u32, u64);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerState {
    /// Per client, the sequence numbers applied, in the order applied.
    applied: BTreeMap<u32, Vec<u64>>,
}

impl LedgerState {
    fn content(&self) -> BTreeSet<CallId> {
        self.applied
            .iter()
            .flat_map(|(c, seqs)| seqs.iter().map(move |s| (*c, *s)))
            .collect()
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LedgerMsg {
    Apply { client: u32, seq: u64 },
    Get,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum LedgerReply {
    Applied { node: String, epoch: Option<u64> },
    State(LedgerState),
}

/// What the hooks and the harness saw, in one order (one thread, one runtime).
#[derive(Clone, Debug)]
enum Entry {
    Spawn {
        inst: ActorId,
        node: usize,
    },
    Go {
        inst: ActorId,
        epoch: Option<u64>,
        start: StartType,
        content: BTreeSet<CallId>,
    },
    Apply {
        inst: ActorId,
        node: String,
        epoch: Option<u64>,
        call: CallId,
    },
    Read {
        inst: ActorId,
        epoch: Option<u64>,
    },
    Merged {
        inst: ActorId,
        epoch: Option<u64>,
        loser: RegistrationInfo,
        content: BTreeSet<CallId>,
    },
    Crash {
        node: usize,
        killed: Vec<ActorId>,
    },
    /// The harness found the instance stopped (retired, or lost a conflict).
    Stopped {
        inst: ActorId,
    },
    Fault {
        at_ms: u64,
        fault: Fault,
    },
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Entry>>>);

impl Log {
    fn push(&self, e: Entry) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(e);
    }
    fn take(&self) -> Vec<Entry> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Clone)]
struct Ledger {
    log: Log,
}

impl TakeoverActor for Ledger {
    type Msg = LedgerMsg;
    type Reply = LedgerReply;
    type State = LedgerState;
    type Arguments = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<LedgerState, ActorProcessingErr> {
        Ok(LedgerState::default())
    }

    async fn go(
        &self,
        ctx: &TakeoverCtx<Self>,
        start: &StartType,
        state: &mut LedgerState,
    ) -> Result<(), ActorProcessingErr> {
        self.log.push(Entry::Go {
            inst: ctx.myself().get_id(),
            epoch: ctx.epoch(),
            start: start.clone(),
            content: state.content(),
        });
        Ok(())
    }

    async fn handle(
        &self,
        ctx: &TakeoverCtx<Self>,
        msg: LedgerMsg,
        state: &mut LedgerState,
    ) -> Result<LedgerReply, ActorProcessingErr> {
        let inst = ctx.myself().get_id();
        match msg {
            LedgerMsg::Apply { client, seq } => {
                state.applied.entry(client).or_default().push(seq);
                self.log.push(Entry::Apply {
                    inst,
                    node: ctx.node().to_string(),
                    epoch: ctx.epoch(),
                    call: (client, seq),
                });
                Ok(LedgerReply::Applied {
                    node: ctx.node().to_string(),
                    epoch: ctx.epoch(),
                })
            }
            LedgerMsg::Get => {
                self.log.push(Entry::Read {
                    inst,
                    epoch: ctx.epoch(),
                });
                Ok(LedgerReply::State(state.clone()))
            }
        }
    }

    /// Split brain: the winner keeps both sides' calls (a union, sorted).
    async fn merge(
        &self,
        ctx: &TakeoverCtx<Self>,
        mine: &mut LedgerState,
        theirs: LedgerState,
        from: &RegistrationInfo,
    ) -> Result<MergeOutcome, ActorProcessingErr> {
        for (client, seqs) in theirs.applied {
            let list = mine.applied.entry(client).or_default();
            let have: BTreeSet<u64> = list.iter().copied().collect();
            list.extend(seqs.into_iter().filter(|s| !have.contains(s)));
            list.sort_unstable();
        }
        self.log.push(Entry::Merged {
            inst: ctx.myself().get_id(),
            epoch: ctx.epoch(),
            loser: from.clone(),
            content: mine.content(),
        });
        Ok(MergeOutcome::Merged)
    }

    fn encode_state(&self, state: &LedgerState) -> Result<Vec<u8>, StateCodecErr> {
        encode_postcard(state)
    }

    fn decode_state(&self, bytes: &[u8]) -> Result<LedgerState, StateCodecErr> {
        decode_postcard(bytes)
    }
}

// ---------------------------------------------------------------------------
// Schedules.

#[derive(Clone, Debug)]
enum Fault {
    Takeover(usize),
    Crash(usize),
    Restart(usize),
    Split(usize, usize),
    /// An undetected partition: what crosses is dropped, views go stale.
    Partition(usize, usize),
    Heal(usize, usize),
    Delay(usize, usize, u64),
    Hold(usize, usize),
    Release(usize, usize),
    /// A hung process (`FakeCluster::pause`), until `Resume`.
    Pause(usize),
    Resume(usize),
    /// The largest frame the second node takes from the first (`None`:
    /// lifted again); an oversized one closes their session.
    FrameLimit(usize, usize, Option<usize>),
    /// The next restart of the first node dials the second this late (ms).
    SlowDial(usize, usize, u64),
}

#[derive(Clone, Debug)]
struct ClientPlan {
    node: usize,
    /// Per call: think time before it and its deadline, in ms.
    calls: Vec<(u64, u64)>,
}

#[derive(Clone, Debug)]
struct Schedule {
    seed: u64,
    /// Faults happen before this (ms); the final heal happens at it.
    duration: u64,
    warm: Option<CheckpointPolicy>,
    serialize: bool,
    quorum: bool,
    /// Nodes keep the newest registration per name across a crash
    /// (`FakeCluster::set_durable`).
    durable: bool,
    /// A small handover buffer, to see `BufferFull`.
    buffer: Option<usize>,
    /// States travel in parts of this many bytes. Chosen from the seed
    /// outside the generator's random sequence (one seed in five), so the
    /// other seeds, the known bugs' among them, replay as before.
    parts: Option<usize>,
    clients: Vec<ClientPlan>,
    faults: Vec<(u64, Fault)>,
}

impl Schedule {
    fn generate(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let duration = rng.random_range(1_000..=4_000u64);
        let warm = match rng.random_range(0..4u8) {
            0 | 1 => None,
            2 => Some(CheckpointPolicy::every_calls(rng.random_range(1..=6))),
            _ => {
                let mut p =
                    CheckpointPolicy::every(Duration::from_millis(rng.random_range(20..=200)));
                if rng.random_bool(0.5) {
                    p.every_calls = Some(rng.random_range(1..=8));
                }
                Some(p)
            }
        };
        let serialize = rng.random_bool(0.5);
        let quorum = rng.random_bool(0.25);
        let buffer = rng.random_bool(0.2).then(|| rng.random_range(1..=16));
        let clients = (0..rng.random_range(2..=5))
            .map(|_| ClientPlan {
                node: rng.random_range(0..3),
                calls: (0..400)
                    .map(|_| {
                        let think = if rng.random_bool(0.2) {
                            0
                        } else {
                            rng.random_range(1..=40)
                        };
                        (think, rng.random_range(100..=1_500))
                    })
                    .collect(),
            })
            .collect();

        let count = rng.random_range(2..=24);
        let mut times: Vec<u64> = (0..count).map(|_| rng.random_range(30..duration)).collect();
        times.sort_unstable();
        let mut up = [true; 3];
        let mut cut: BTreeSet<(usize, usize)> = BTreeSet::new();
        let mut faults = Vec::new();
        let pairs = [(0, 1), (0, 2), (1, 2)];
        for t in times {
            let ups: Vec<usize> = (0..3).filter(|n| up[*n]).collect();
            let downs: Vec<usize> = (0..3).filter(|n| !up[*n]).collect();
            let uncut: Vec<(usize, usize)> =
                pairs.iter().copied().filter(|p| !cut.contains(p)).collect();
            let mut kinds: Vec<(u8, u32)> = vec![(0, 3), (5, 2), (6, 2)];
            if ups.len() >= 2 {
                kinds.push((1, 2));
            }
            if !downs.is_empty() {
                kinds.push((2, 3));
            }
            if !uncut.is_empty() {
                kinds.push((3, 2));
                kinds.push((7, 1));
            }
            if !cut.is_empty() {
                kinds.push((4, 3));
            }
            let total: u32 = kinds.iter().map(|k| k.1).sum();
            let mut pick = rng.random_range(0..total);
            let kind = kinds
                .iter()
                .find(|k| {
                    if pick < k.1 {
                        true
                    } else {
                        pick -= k.1;
                        false
                    }
                })
                .map(|k| k.0)
                .unwrap_or(0);
            let directed = |rng: &mut StdRng| {
                let (x, y) = pairs[rng.random_range(0..3)];
                if rng.random_bool(0.5) {
                    (x, y)
                } else {
                    (y, x)
                }
            };
            match kind {
                0 => faults.push((t, Fault::Takeover(rng.random_range(0..3)))),
                1 => {
                    let n = ups[rng.random_range(0..ups.len())];
                    up[n] = false;
                    faults.push((t, Fault::Crash(n)));
                }
                2 => {
                    let n = downs[rng.random_range(0..downs.len())];
                    up[n] = true;
                    faults.push((t, Fault::Restart(n)));
                }
                3 => {
                    let p = uncut[rng.random_range(0..uncut.len())];
                    cut.insert(p);
                    faults.push((t, Fault::Split(p.0, p.1)));
                }
                7 => {
                    let p = uncut[rng.random_range(0..uncut.len())];
                    cut.insert(p);
                    faults.push((t, Fault::Partition(p.0, p.1)));
                }
                4 => {
                    let cuts: Vec<_> = cut.iter().copied().collect();
                    let p = cuts[rng.random_range(0..cuts.len())];
                    cut.remove(&p);
                    faults.push((t, Fault::Heal(p.0, p.1)));
                }
                5 => {
                    let (x, y) = directed(&mut rng);
                    let d = if rng.random_bool(0.3) {
                        0
                    } else {
                        rng.random_range(1..=60)
                    };
                    faults.push((t, Fault::Delay(x, y, d)));
                }
                _ => {
                    let (x, y) = directed(&mut rng);
                    faults.push((t, Fault::Hold(x, y)));
                    let until = t + rng.random_range(5..=300);
                    faults.push((until, Fault::Release(x, y)));
                }
            }
        }
        faults.extend(machine_faults(seed, duration));
        faults.sort_by_key(|f| f.0);
        // Drawn apart from the schedule's own generator, so that adding it
        // left every seed's schedule as it was.
        let durable = StdRng::seed_from_u64(seed ^ 0x00d0_7ab1_e000).random_bool(0.5);
        Schedule {
            seed,
            duration,
            warm,
            serialize,
            quorum,
            durable,
            buffer,
            parts: (seed % 5 == 4).then_some(16),
            clients,
            faults,
        }
    }

    fn describe(&self) -> String {
        let mut s = format!(
            "seed {}: {} ms, warm standby {:?}, serialize {}, quorum {}, durable {}, buffer {:?}, state parts {:?}, clients on {:?}\n",
            self.seed,
            self.duration,
            self.warm,
            self.serialize,
            self.quorum,
            self.durable,
            self.buffer,
            self.parts,
            self.clients
                .iter()
                .map(|c| NODES[c.node])
                .collect::<Vec<_>>()
        );
        for (t, f) in &self.faults {
            let _ = writeln!(s, "  {t:>5} ms  {}", fault_name(f));
        }
        s
    }
}

/// The faults of real machines (a paused node, a frame limit, a slow dial),
/// in one seed in three (none with `FAULT_MACHINE=off`, to compare). Drawn apart from the schedule's own generator, so
/// that every other seed's schedule stays as it was; the seed mixer is one
/// under which none of the seeds replayed by name below draws them.
fn machine_faults(seed: u64, duration: u64) -> Vec<(u64, Fault)> {
    let mut rng = StdRng::seed_from_u64(seed ^ MACHINE_FAULTS);
    let mut out = Vec::new();
    if std::env::var("FAULT_MACHINE").is_ok_and(|v| v == "off") || !rng.random_bool(1.0 / 3.0) {
        return out;
    }
    for _ in 0..rng.random_range(1..=3) {
        let t = rng.random_range(30..duration);
        let x = rng.random_range(0..3);
        let y = (x + rng.random_range(1..3)) % 3;
        match rng.random_range(0..3) {
            0 => {
                out.push((t, Fault::Pause(x)));
                out.push((t + rng.random_range(50..=1_500), Fault::Resume(x)));
            }
            1 => {
                out.push((
                    t,
                    Fault::FrameLimit(x, y, Some(rng.random_range(48..=1_024))),
                ));
                out.push((
                    t + rng.random_range(100..=1_500),
                    Fault::FrameLimit(x, y, None),
                ));
            }
            _ => out.push((t, Fault::SlowDial(x, y, rng.random_range(50..=1_500)))),
        }
    }
    out
}

/// See [`machine_faults`].
const MACHINE_FAULTS: u64 = 0x3ac4_17e5_00f5;

/// How long peers take to see a paused node down (the fake's heartbeat).
const DETECTION: Duration = Duration::from_millis(300);

fn fault_name(f: &Fault) -> String {
    let n = |i: &usize| NODES[*i];
    match f {
        Fault::Takeover(x) => format!("takeover on {}", n(x)),
        Fault::Crash(x) => format!("crash {}", n(x)),
        Fault::Restart(x) => format!("restart {}", n(x)),
        Fault::Split(x, y) => format!("split {} | {}", n(x), n(y)),
        Fault::Partition(x, y) => format!("partition {} | {} (undetected)", n(x), n(y)),
        Fault::Heal(x, y) => format!("heal {} - {}", n(x), n(y)),
        Fault::Delay(x, y, d) => format!("delay {} -> {} by {d} ms", n(x), n(y)),
        Fault::Hold(x, y) => format!("hold {} -> {}", n(x), n(y)),
        Fault::Release(x, y) => format!("release {} -> {}", n(x), n(y)),
        Fault::Pause(x) => format!("pause {}", n(x)),
        Fault::Resume(x) => format!("resume {}", n(x)),
        Fault::FrameLimit(x, y, Some(l)) => format!("frame limit {} -> {} {l} bytes", n(x), n(y)),
        Fault::FrameLimit(x, y, None) => format!("frame limit {} -> {} lifted", n(x), n(y)),
        Fault::SlowDial(x, y, d) => format!("next restart of {} dials {} {d} ms late", n(x), n(y)),
    }
}

// ---------------------------------------------------------------------------
// Running one schedule.

#[derive(Clone, Debug)]
struct CallRecord {
    call: CallId,
    client_node: usize,
    timeout: Duration,
    took: Duration,
    result: Result<LedgerReply, CallErr>,
}

#[derive(Clone, Debug)]
struct TakeoverRecord {
    node: usize,
    took: Duration,
    result: Result<HandoverReport, TakeoverErr>,
}

struct Inst {
    id: ActorId,
    node: usize,
    actor: TakeoverRef<Ledger>,
    /// How many times its node had crashed when it was spawned.
    crashes_at_spawn: u32,
}

thread_local! {
    /// Panics on this thread (each schedule runs on its own runtime, on one thread).
    static PANICS: Cell<u64> = const { Cell::new(0) };
}

fn install_panic_counter() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

/// Everything a run produced, for the checker.
struct Outcome {
    log: Vec<Entry>,
    calls: Vec<CallRecord>,
    takeovers: Vec<TakeoverRecord>,
    events: Vec<TakeoverEvent>,
    final_state: Result<LedgerState, String>,
    quiet: Result<(), String>,
    /// Each node's current instance's status after the wait for quiet.
    statuses: Vec<Option<InstanceStatus>>,
    /// The holder in `a`'s view then.
    view_holder: Option<RegistrationInfo>,
    failures: Vec<(ActorId, String)>,
    panics: u64,
    /// Instance -> (node, its node's crash count at spawn).
    insts: HashMap<ActorId, (usize, u32)>,
    crashes: [u32; 3],
}

struct Run {
    cluster: FakeCluster,
    config: TakeoverConfig,
    log: Log,
    watchdog: ActorRef<()>,
    failures: Failures,
    insts: Vec<Inst>,
    current: [Option<usize>; 3],
    crashes: [u32; 3],
    cut: BTreeSet<(usize, usize)>,
    held: BTreeSet<(usize, usize)>,
    delayed: BTreeSet<(usize, usize)>,
    paused: BTreeSet<usize>,
    limited: BTreeSet<(usize, usize)>,
    takeovers: Arc<Mutex<Vec<TakeoverRecord>>>,
    pending: Vec<tokio::task::JoinHandle<()>>,
}

impl Run {
    async fn new(s: &Schedule) -> Self {
        let cluster = FakeCluster::new(NODES);
        cluster.set_serialize_messages(s.serialize);
        cluster.set_durable(s.durable);
        cluster.set_detection_time(DETECTION);
        let mut config = TakeoverConfig::default()
            .with_placement(
                Placement::parse("a > b > c")
                    .with_failover_delay(Duration::from_millis(50))
                    .with_standby_grace(Duration::from_millis(100))
                    .with_retry_after(Duration::from_millis(200)),
            )
            .with_conflict_grace(Duration::from_millis(100))
            .with_pull_timeout(Duration::from_millis(600))
            .with_events(EventHub::new(1 << 16));
        if let Some(policy) = &s.warm {
            config = config.with_checkpoints(policy.clone());
        }
        if let Some(capacity) = s.buffer {
            config = config.with_buffer_capacity(capacity);
        }
        if let Some(part) = s.parts {
            config = config.with_state_part_bytes(part);
        }
        config = config.with_quorum(s.quorum);
        let failures: Failures = Arc::default();
        let (watchdog, _) = Actor::spawn(None, Watchdog, failures.clone())
            .await
            .expect("spawn the watchdog");
        Run {
            cluster,
            config,
            log: Log::default(),
            watchdog,
            failures,
            insts: Vec::new(),
            current: [None; 3],
            crashes: [0; 3],
            cut: BTreeSet::new(),
            held: BTreeSet::new(),
            delayed: BTreeSet::new(),
            paused: BTreeSet::new(),
            limited: BTreeSet::new(),
            takeovers: Arc::default(),
            pending: Vec::new(),
        }
    }

    fn up(&self, n: usize) -> bool {
        self.cluster.is_up(NODES[n])
    }

    async fn spawn_on(&mut self, node: usize) {
        let server = TakeoverServer::new(
            NAME,
            Ledger {
                log: self.log.clone(),
            },
            self.cluster.registry(NODES[node]),
            self.config.clone(),
        );
        let (actor, _) = server
            .spawn_linked((), self.watchdog.get_cell())
            .await
            .expect("spawn an instance");
        let id = actor.get_id();
        self.log.push(Entry::Spawn { inst: id, node });
        self.insts.push(Inst {
            id,
            node,
            actor,
            crashes_at_spawn: self.crashes[node],
        });
        self.current[node] = Some(self.insts.len() - 1);
    }

    /// Like a supervisor: every up node runs an instance; a retired (stopped)
    /// one is replaced by a fresh standby.
    async fn respawn(&mut self) {
        for n in 0..3 {
            let gone = self.current[n]
                .is_none_or(|i| self.insts[i].actor.get_status() == ActorStatus::Stopped);
            // A hung process's supervisor is hung too.
            if self.up(n) && gone && !self.paused.contains(&n) {
                if let Some(i) = self.current[n] {
                    self.log.push(Entry::Stopped {
                        inst: self.insts[i].id,
                    });
                }
                self.spawn_on(n).await;
            }
        }
    }

    async fn apply(&mut self, at_ms: u64, fault: &Fault) {
        self.log.push(Entry::Fault {
            at_ms,
            fault: fault.clone(),
        });
        let c = &self.cluster;
        match *fault {
            Fault::Takeover(n) => {
                let Some(i) = self.current[n] else { return };
                if self.paused.contains(&n) {
                    return; // a hung node asks for nothing
                }
                let actor = self.insts[i].actor.clone();
                let records = self.takeovers.clone();
                self.pending.push(tokio::spawn(async move {
                    let started = Instant::now();
                    let result = takeover(&actor, TAKEOVER_TIMEOUT).await;
                    records
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(TakeoverRecord {
                            node: n,
                            took: started.elapsed(),
                            result,
                        });
                }));
            }
            Fault::Crash(n) => {
                let others_up = (0..3).filter(|o| *o != n && self.up(*o)).count();
                if !self.up(n) || others_up == 0 {
                    return;
                }
                let killed: Vec<ActorId> = self
                    .insts
                    .iter()
                    .filter(|i| i.node == n && i.actor.get_status() < ActorStatus::Stopped)
                    .map(|i| i.id)
                    .collect();
                self.log.push(Entry::Crash { node: n, killed });
                c.crash(NODES[n]);
                self.crashes[n] += 1;
                self.current[n] = None;
                self.paused.remove(&n);
            }
            Fault::Restart(n) => {
                if self.up(n) {
                    return;
                }
                c.restart(NODES[n]);
                self.spawn_on(n).await;
            }
            Fault::Split(x, y) => {
                c.split(NODES[x], NODES[y]);
                self.cut.insert((x, y));
            }
            Fault::Partition(x, y) => {
                c.partition(NODES[x], NODES[y]);
                self.cut.insert((x, y));
            }
            Fault::Heal(x, y) => {
                c.heal(NODES[x], NODES[y]);
                self.cut.remove(&(x, y));
            }
            Fault::Delay(x, y, d) => {
                c.set_delay(NODES[x], NODES[y], Duration::from_millis(d));
                self.delayed.insert((x, y));
            }
            Fault::Hold(x, y) => {
                c.hold(NODES[x], NODES[y]);
                self.held.insert((x, y));
            }
            Fault::Release(x, y) => {
                c.release(NODES[x], NODES[y]);
                self.held.remove(&(x, y));
            }
            Fault::Pause(n) => {
                if self.up(n) {
                    c.pause(NODES[n]);
                    self.paused.insert(n);
                }
            }
            Fault::Resume(n) => {
                c.resume(NODES[n]);
                self.paused.remove(&n);
            }
            Fault::FrameLimit(x, y, limit) => {
                c.set_frame_limit(NODES[x], NODES[y], limit);
                if limit.is_some() {
                    self.limited.insert((x, y));
                } else {
                    self.limited.remove(&(x, y));
                }
            }
            Fault::SlowDial(x, y, d) => c.delay_dial(NODES[x], NODES[y], Duration::from_millis(d)),
        }
    }

    /// Heals, releases and restarts everything, in a fixed order.
    async fn heal_everything(&mut self, at_ms: u64) {
        for (x, y) in std::mem::take(&mut self.held) {
            self.apply(at_ms, &Fault::Release(x, y)).await;
        }
        for n in std::mem::take(&mut self.paused) {
            self.apply(at_ms, &Fault::Resume(n)).await;
        }
        for (x, y) in std::mem::take(&mut self.limited) {
            self.apply(at_ms, &Fault::FrameLimit(x, y, None)).await;
        }
        for (x, y) in std::mem::take(&mut self.delayed) {
            self.apply(at_ms, &Fault::Delay(x, y, 0)).await;
        }
        for (x, y) in self.cut.clone() {
            self.apply(at_ms, &Fault::Heal(x, y)).await;
        }
        for n in 0..3 {
            if !self.up(n) {
                self.apply(at_ms, &Fault::Restart(n)).await;
            }
        }
        self.respawn().await;
    }

    /// Is the cluster quiet, with exactly one holder, on `a`, in every view?
    async fn converged(&self) -> Result<RegistrationInfo, String> {
        for x in NODES {
            for y in NODES {
                if x != y && self.cluster.queued(x, y) > 0 {
                    return Err(format!("link {x} -> {y} still carries items"));
                }
            }
        }
        let views = self.cluster.holders(NAME);
        let holder = views
            .get(&NodeId::new("a"))
            .cloned()
            .flatten()
            .ok_or_else(|| format!("a's view has no holder: {views:?}"))?;
        if views.len() != 3 || views.values().any(|h| h.as_ref() != Some(&holder)) {
            return Err(format!("views disagree: {views:?}"));
        }
        if holder.node.as_str() != "a" {
            return Err(format!("the holder is not on a: {holder:?}"));
        }
        for (n, node) in NODES.iter().enumerate() {
            let Some(i) = self.current[n] else {
                return Err(format!("no instance on {node}"));
            };
            let st = status(&self.insts[i].actor, Duration::from_secs(1)).await;
            let want = if n == 0 {
                Some(Phase::Holder)
            } else {
                Some(Phase::Standby)
            };
            if st.as_ref().map(|s| s.phase) != want {
                return Err(format!("instance on {node} is {st:?}"));
            }
            if n == 0 && st.and_then(|s| s.epoch) != Some(holder.epoch) {
                return Err(format!("a's instance does not hold {holder:?}"));
            }
        }
        Ok(holder)
    }

    /// Waits (with a deadline) until the cluster is quiet and stays so.
    async fn quiesce(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + QUIET_DEADLINE;
        loop {
            let last;
            self.respawn().await;
            match self.converged().await {
                Ok(holder) => {
                    // Past every grace and retry: nothing may move any more.
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    self.respawn().await;
                    match self.converged().await {
                        Ok(again) if again == holder => return Ok(()),
                        Ok(again) => last = format!("the holder moved: {holder:?} -> {again:?}"),
                        Err(e) => last = e,
                    }
                }
                Err(e) => last = e,
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not quiet {QUIET_DEADLINE:?} after the final heal: {last}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn client_loop(
    cluster: FakeCluster,
    registry: Arc<dyn Registry>,
    id: u32,
    plan: ClientPlan,
    until: Instant,
    records: Arc<Mutex<Vec<CallRecord>>>,
) {
    let client = GlobalClient::<Ledger>::new(NAME, registry);
    for (i, (think, timeout)) in plan.calls.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(*think)).await;
        // A client in a hung process calls nothing until it resumes.
        while cluster.is_paused(NODES[plan.node]) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if Instant::now() >= until {
            return;
        }
        let call = (id, i as u64 + 1);
        let timeout = Duration::from_millis(*timeout);
        let started = Instant::now();
        let result = client
            .call(
                LedgerMsg::Apply {
                    client: call.0,
                    seq: call.1,
                },
                timeout,
            )
            .await;
        records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(CallRecord {
                call,
                client_node: plan.node,
                timeout,
                took: started.elapsed(),
                result,
            });
    }
}

async fn run_schedule(s: &Schedule) -> Outcome {
    let panics_before = PANICS.with(Cell::get);
    let mut run = Run::new(s).await;
    let events: Arc<Mutex<Vec<TakeoverEvent>>> = Arc::default();
    let collector = {
        let mut rx = run.config.events.subscribe();
        let events = events.clone();
        tokio::spawn(async move {
            while let Ok(ev) = rx.recv().await {
                events.lock().unwrap_or_else(|e| e.into_inner()).push(ev);
            }
        })
    };

    // Start-up in priority order; each settles before the next starts.
    for n in 0..3 {
        run.spawn_on(n).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let start = Instant::now();
    let calls: Arc<Mutex<Vec<CallRecord>>> = Arc::default();
    let clients: Vec<_> = s
        .clients
        .iter()
        .enumerate()
        .map(|(i, plan)| {
            tokio::spawn(client_loop(
                run.cluster.clone(),
                run.cluster.registry(NODES[plan.node]),
                i as u32,
                plan.clone(),
                start + Duration::from_millis(s.duration + TAIL_MS),
                calls.clone(),
            ))
        })
        .collect();

    let mut next = 0;
    loop {
        let now = start.elapsed().as_millis() as u64;
        while next < s.faults.len() && s.faults[next].0 <= now {
            let (t, f) = &s.faults[next];
            run.apply(*t, f).await;
            next += 1;
        }
        run.respawn().await;
        if now >= s.duration {
            break;
        }
        let mut wake = now + 10;
        if let Some((t, _)) = s.faults.get(next) {
            wake = wake.min(*t);
        }
        tokio::time::sleep_until(start + Duration::from_millis(wake.min(s.duration))).await;
    }
    run.heal_everything(s.duration).await;
    while !clients.iter().all(|c| c.is_finished()) {
        run.respawn().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for c in clients {
        let _ = c.await;
    }
    for p in std::mem::take(&mut run.pending) {
        let _ = p.await;
    }
    let quiet = run.quiesce().await;
    let mut statuses = Vec::new();
    for n in 0..3 {
        statuses.push(match run.current[n] {
            Some(i) => status(&run.insts[i].actor, Duration::from_secs(1)).await,
            None => None,
        });
    }
    let final_state = match GlobalClient::<Ledger>::new(NAME, run.cluster.registry("a"))
        .call(LedgerMsg::Get, Duration::from_secs(5))
        .await
    {
        Ok(LedgerReply::State(st)) => Ok(st),
        other => Err(format!("the final read failed: {other:?}")),
    };
    tokio::time::sleep(Duration::from_millis(10)).await;

    for i in &run.insts {
        i.actor.stop(None);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    run.watchdog.stop(None);
    collector.abort();

    let outcome = Outcome {
        log: run.log.take(),
        calls: calls.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        takeovers: run
            .takeovers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        events: events.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        final_state,
        quiet,
        statuses,
        view_holder: run
            .cluster
            .holders(NAME)
            .get(&NodeId::new("a"))
            .cloned()
            .flatten(),
        failures: run
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        panics: PANICS.with(Cell::get) - panics_before,
        insts: run
            .insts
            .iter()
            .map(|i| (i.id, (i.node, i.crashes_at_spawn)))
            .collect(),
        crashes: run.crashes,
    };
    outcome
}

// ---------------------------------------------------------------------------
// The checker.

#[derive(Default, Debug, Clone)]
struct Stats {
    calls: usize,
    acked: usize,
    timed_out: usize,
    not_registered: usize,
    no_reply: usize,
    lost_reported: usize,
    applied_unacked: usize,
    takeovers_ok: usize,
    failovers: usize,
    checkpoint_failovers: usize,
    merges: usize,
    crashes: usize,
}

impl Stats {
    fn add(&mut self, o: &Stats) {
        self.calls += o.calls;
        self.acked += o.acked;
        self.timed_out += o.timed_out;
        self.not_registered += o.not_registered;
        self.no_reply += o.no_reply;
        self.lost_reported += o.lost_reported;
        self.applied_unacked += o.applied_unacked;
        self.takeovers_ok += o.takeovers_ok;
        self.failovers += o.failovers;
        self.checkpoint_failovers += o.checkpoint_failovers;
        self.merges += o.merges;
        self.crashes += o.crashes;
    }
}

/// One broken property: `check` names which (1 to 4 in the module docs).
#[derive(Debug, Clone)]
struct Violation {
    check: &'static str,
    detail: String,
    /// The known bug this violation is a symptom of, if it matches one's
    /// signature exactly (see [`EPOCH_TIE`], [`SPLIT_BRAIN_CRASH`]).
    known: Option<&'static str>,
}

fn violation(out: &mut Vec<Violation>, check: &'static str, detail: String) {
    out.push(Violation {
        check,
        detail,
        known: None,
    });
}

/// Known bug B1: two holders get the same epoch. Two causes, the first
/// fixed: (1) neither node's view had the other's registration (each side
/// of a split), and both allocated "highest epoch seen + 1"; now every node
/// allocates in its own class of epochs (`next_epoch`), so two nodes never
/// take one epoch. (2) Every view that had seen an epoch was lost in crashes
/// (a node restarted while cut off, or all that knew crashed), and the node
/// takes an epoch again; a standby then refuses the new holder's checkpoints
/// as "stale". Fixed where nodes are durable (`FakeCluster::set_durable`,
/// half of the schedules; `ClusterConfig::state_dir` on the real backend).
/// Replayed by `known_bug_b1_two_holders_share_an_epoch`.
const EPOCH_TIE: &str = "B1 two holders with one epoch (different nodes, or a crash forgot it)";

/// Known bug B2: during a split brain both holders acknowledge calls; when
/// one of them crashes before the heal, its calls are lost and no event
/// reports it: nobody fails over from it, the other side already has a
/// holder (and often no live node ever saw its registration). The runtime
/// has no way to report this; only preventing the second holder from
/// acknowledging would. Quorum mode does for a *detected* partition (a
/// holder in a minority holds its calls, `QuorumLost`); what is left there
/// are undetected partitions, where both sides think they have a majority.
/// A holder that saw the crashed rival (it suspected a conflict with it)
/// reports a failover from it.
/// Replayed by `known_bug_b2_split_brain_holder_crash_is_unreported`.
const SPLIT_BRAIN_CRASH: &str =
    "B2 a split-brain holder crashed: its acknowledged calls are lost unreported";

/// Known bug B3: the `from` of a failover (a standby's `last_holder`) is
/// stale: `server.rs` `place()` records the holder only when it runs to the
/// end, not while a retry (`retry_at`, after a refused takeover) is pending,
/// and a view that still shows an older holder (its departure slow on a
/// link) records that one. The failover after the real holder's crash then
/// reports the loss as `Failover { from }` naming another node. Since B4's
/// fix, a fresh instance names the newest registration its node has seen
/// (`Registry::newest_seen`), which can be a steal that was rolled back (it
/// never held). Replayed by `known_bug_b3_failover_names_a_stale_holder`.
const STALE_FROM: &str = "B3 a failover reported the loss under a stale previous holder's node";

/// Known bug B4: the holder crashes, no standby fails over (the node comes
/// back within the failover delay, or quorum mode forbids the survivors), and
/// a fresh instance (`server.rs` `post_start`) then finds the name vacant and
/// registers it as `Normal` with an empty state. The holder's whole state is
/// lost and no event says so (no `Failover`, no `StateLost`), although the
/// registry knows the name had holders (its new epoch is above 1). Replayed
/// by `known_bug_b4_vacant_name_after_a_crash_starts_normal`. Mostly fixed:
/// a vacant name is taken as `Failover { from }` when the node has seen a
/// holder (`Registry::newest_seen`, learned from peers). Left: a node that
/// restarts cut off from every node that had seen a holder knows nothing
/// (views are not durable; the same cause as B1's forgotten epochs).
const RESTARTED_AS_NORMAL: &str =
    "B4 after a holder's crash a fresh instance registered as Normal: loss unreported";

/// Known bug B5: a takeover whose state request is lost (an undetected
/// partition drops it) leaves the old holder suspecting a conflict; after
/// `conflict_grace` it wins, re-registers under a new epoch and unregisters
/// the old one (or, a yielding loser, it merges into a third holder and
/// retires). The puller takes that unregistration for the old holder's
/// death: it publishes `StateLost` (wrongly: the state is alive), starts as a
/// `Failover` holder with an empty state and serves its buffered calls. No
/// registry event reaches it after that, so it never checks for the conflict
/// (the winner's wait for its `MergeOffer` never ends either): it stays a
/// second holder, below the real one, forever, and the calls it acknowledged
/// are lost. In `server.rs`: `on_registry` (`Stage::Pulling` ends the pull as
/// lost on any `Unregistered` of `from`, whatever the `LeaveReason`) and
/// `finish_pull`/`start_holder` (no `check_conflict` after becoming holder).
/// Replayed by `known_bug_b5_puller_stranded_as_a_second_holder`.
const STRANDED_PULLER: &str =
    "B5 a puller took its old holder's re-registration for a death: a second holder forever";

/// Known bug B6: an old holder in `Retiring` waits for `HandoverDone` with no
/// timeout; if it is lost (an undetected partition), the instance stays
/// `Retiring` forever after the heal: it keeps its registration and never
/// becomes a standby again. Worse, when that successor later leaves (it
/// yields or hands over), the old holder takes it for a failed takeover and
/// resumes (`HandoverResumed`) as a holder of the state it had already handed
/// over, a fork, and never checks for the higher registration. In
/// `server.rs`: `Stage::Retiring` (no timer; `on_registry` does not notice
/// that its successor holds the name) and `resume` (no `check_conflict`).
/// Replayed by `known_bug_b6_lost_handover_done_never_retires`. Fixed
/// (`server/retire.rs`): a retiring holder asks its successor again every
/// `pull_timeout` (`HandoverQuery`), and checks for a newer holder when it
/// resumes.
const NEVER_RETIRES: &str = "B6 an old holder whose HandoverDone was lost stays Retiring forever";

/// Known bug B7: the new holder installs the state, serves calls, and its
/// node crashes before its `HandoverDone` reaches the old holder (in flight
/// on a slow link). The old holder, still `Retiring`, sees its successor
/// vanish and resumes (`HandoverResumed`) with the state it had sent: the
/// calls the successor acknowledged are lost, and the events say the
/// takeover failed instead of reporting a loss. In `server.rs`: `on_registry`
/// (`Stage::Retiring` resumes on any departure of the successor) and
/// `resume`. Replayed by `known_bug_b7_resume_over_a_successor_that_served`.
/// Fixed (`server/retire.rs`): the old holder resumes under a new epoch as
/// `Failover { from: successor's node }`, which reports the loss.
const RESUMED_OVER_A_SUCCESSOR: &str =
    "B7 an old holder resumed after its successor had served and crashed: loss unreported";

/// Known bug B8: a takeover's pull ends as a failover (`StateLost`: the old
/// holder's node looked down, a detected split), and the state request,
/// delayed on a slow link, reaches the old holder after the heal. The old
/// holder answers it as a normal handover: it sends its state and retires
/// (`Retiring`), but the requester is no longer pulling and drops the reply
/// ("state reply for no pull of ours"). The old holder's state is lost,
/// unreported, and it stays `Retiring` forever (or, when that requester later
/// leaves, resumes as a holder below it, for good). In `server.rs`:
/// `on_state_request` (no check that the requester still pulls) and the
/// `StateReply` branch of `on_handover` (drops an unexpected state instead of
/// merging it or sending `HandoverAborted`). Replayed by
/// `known_bug_b8_state_sent_to_a_puller_that_gave_up`.
const STATE_SENT_TO_NOBODY: &str =
    "B8 an old holder sent its state to a puller that had given up: the state is lost";

/// One instance's history as a holder: its state after each logged step,
/// with the number of calls it had handled then.
type History = Vec<(u64, BTreeSet<CallId>)>;

struct Failover {
    at: usize,
    by: ActorId,
    from: NodeId,
    checkpoint: Option<CheckpointInfo>,
    content: BTreeSet<CallId>,
}

fn check(o: &Outcome) -> (Stats, Vec<Violation>) {
    let mut v = Vec::new();
    let mut stats = Stats {
        crashes: o.crashes.iter().map(|c| *c as usize).sum(),
        ..Stats::default()
    };
    let node_of = |id: &ActorId| o.insts.get(id).map(|(n, _)| NODES[*n]).unwrap_or("?");

    // Replay the log: every instance's state, crashes, failovers, epochs.
    let mut shadow: HashMap<ActorId, BTreeSet<CallId>> = HashMap::new();
    let mut handled: HashMap<ActorId, u64> = HashMap::new();
    let mut history: HashMap<ActorId, History> = HashMap::new();
    let mut go_at: HashMap<ActorId, usize> = HashMap::new();
    let mut dead: Vec<(ActorId, usize, BTreeSet<CallId>)> = Vec::new();
    let mut failovers: Vec<Failover> = Vec::new();
    let mut applied: HashMap<CallId, Vec<(ActorId, String, Option<u64>)>> = HashMap::new();
    let mut epoch_insts: BTreeMap<u64, BTreeSet<ActorId>> = BTreeMap::new();
    // Where each instance stopped holding for good (killed or stopped).
    let mut ended: HashMap<ActorId, usize> = HashMap::new();
    let mut go_start: HashMap<ActorId, StartType> = HashMap::new();
    let mut go_epoch: HashMap<ActorId, Option<u64>> = HashMap::new();
    // Where each instance last ran go, applied or read.
    let mut served_last: HashMap<ActorId, usize> = HashMap::new();
    let mut normal_starts: Vec<(usize, ActorId)> = Vec::new();
    // Where nodes crashed: a node's view (and the epochs it has seen) dies
    // with it.
    let mut crashes_at: Vec<usize> = Vec::new();
    for (at, e) in o.log.iter().enumerate() {
        if let Entry::Go { inst, .. } | Entry::Apply { inst, .. } | Entry::Read { inst, .. } = e {
            served_last.insert(*inst, at);
        }
        match e {
            Entry::Go {
                inst,
                epoch,
                start,
                content,
            } => {
                go_start.insert(*inst, start.clone());
                let before = go_epoch.insert(*inst, *epoch);
                // A second go is allowed only as a failover under a new
                // epoch: an old holder whose successor vanished before
                // confirming the handover resumes that way (`server/retire.rs`).
                let again_as_failover = matches!(start, StartType::Failover { .. })
                    && before.is_some_and(|b| b.is_some() && b != *epoch);
                if go_at.insert(*inst, at).is_some() && !again_as_failover {
                    violation(
                        &mut v,
                        "1 one holder per epoch",
                        format!("instance {inst} on {} ran go twice", node_of(inst)),
                    );
                }
                shadow.insert(*inst, content.clone());
                let h = *handled.entry(*inst).or_default();
                history.entry(*inst).or_default().push((h, content.clone()));
                match epoch {
                    Some(ep) => {
                        epoch_insts.entry(*ep).or_default().insert(*inst);
                    }
                    None => violation(
                        &mut v,
                        "1 one holder per epoch",
                        format!("instance {inst} ran go without an epoch"),
                    ),
                }
                if *start == StartType::Normal {
                    normal_starts.push((at, *inst));
                }
                if let StartType::Failover { from, checkpoint } = start {
                    stats.failovers += 1;
                    if checkpoint.is_some() {
                        stats.checkpoint_failovers += 1;
                    }
                    failovers.push(Failover {
                        at,
                        by: *inst,
                        from: from.clone(),
                        checkpoint: checkpoint.clone(),
                        content: content.clone(),
                    });
                }
            }
            Entry::Apply {
                inst,
                node,
                epoch,
                call,
            } => {
                match shadow.get_mut(inst) {
                    Some(s) => {
                        s.insert(*call);
                    }
                    None => violation(
                        &mut v,
                        "1 one holder per epoch",
                        format!("instance {inst} applied {call:?} before it ran go"),
                    ),
                }
                let h = handled.entry(*inst).or_default();
                *h += 1;
                let h = *h;
                if let Some(s) = shadow.get(inst) {
                    history.entry(*inst).or_default().push((h, s.clone()));
                }
                applied
                    .entry(*call)
                    .or_default()
                    .push((*inst, node.clone(), *epoch));
                if let Some(ep) = epoch {
                    epoch_insts.entry(*ep).or_default().insert(*inst);
                }
            }
            Entry::Read { inst, epoch } => {
                let h = handled.entry(*inst).or_default();
                *h += 1;
                let h = *h;
                if let Some(s) = shadow.get(inst) {
                    history.entry(*inst).or_default().push((h, s.clone()));
                }
                if let Some(ep) = epoch {
                    epoch_insts.entry(*ep).or_default().insert(*inst);
                }
            }
            Entry::Merged {
                inst,
                epoch,
                content,
                ..
            } => {
                stats.merges += 1;
                shadow.insert(*inst, content.clone());
                let h = *handled.entry(*inst).or_default();
                history.entry(*inst).or_default().push((h, content.clone()));
                if let Some(ep) = epoch {
                    epoch_insts.entry(*ep).or_default().insert(*inst);
                }
            }
            Entry::Crash { killed, .. } => {
                crashes_at.push(at);
                for k in killed {
                    ended.entry(*k).or_insert(at);
                    if let Some(s) = shadow.get(k) {
                        dead.push((*k, at, s.clone()));
                    }
                }
            }
            Entry::Stopped { inst } => {
                ended.entry(*inst).or_insert(at);
            }
            Entry::Spawn { .. } | Entry::Fault { .. } => {}
        }
    }
    // Did another node's instance hold the name while `x` did (split brain)?
    // Not when `y` merely handed the name over to `x` (a takeover: `y` then
    // retires, forwarding, and serves nothing after `x` ran go).
    let split_brain_with = |x: &ActorId, crash_at: usize| {
        let go = go_at.get(x).copied().unwrap_or(0);
        go_at.iter().any(|(y, y_go)| {
            let y_end = ended.get(y).copied().unwrap_or(usize::MAX);
            let handed_over = matches!(go_start.get(x),
                Some(StartType::Takeover { from }) if from.as_str() == node_of(y))
                && served_last.get(y).is_none_or(|last| *last < go);
            node_of(y) != node_of(x) && *y_go < crash_at && y_end > go && !handed_over
        })
    };

    // (1) One instance per epoch, one node per epoch in the events.
    for (epoch, insts) in &epoch_insts {
        if insts.len() > 1 {
            let who: Vec<String> = insts
                .iter()
                .map(|i| format!("{i} on {}", node_of(i)))
                .collect();
            // B1's signature: the instances are on different nodes, or a
            // node crashed (and forgot the epochs it had seen) between them.
            let first = |i: &ActorId| go_at.get(i).copied().unwrap_or(0);
            let b1 = insts.iter().all(|x| {
                insts.iter().all(|y| {
                    let (lo, hi) = (first(x).min(first(y)), first(x).max(first(y)));
                    x == y
                        || node_of(x) != node_of(y)
                        || crashes_at.iter().any(|at| *at > lo && *at < hi)
                })
            });
            v.push(Violation {
                check: "1 one holder per epoch",
                detail: format!("epoch {epoch} served by several instances: {who:?}"),
                known: b1.then_some(EPOCH_TIE),
            });
        }
    }
    let mut epoch_nodes: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for ev in &o.events {
        let holds = matches!(
            ev.kind,
            EventKind::Registered { .. }
                | EventKind::TakeoverStarted { .. }
                | EventKind::ConflictWon { .. }
        );
        if let (true, Some(epoch)) = (holds, ev.epoch) {
            epoch_nodes
                .entry(epoch)
                .or_default()
                .insert(ev.node.to_string());
        }
    }
    for (epoch, nodes) in &epoch_nodes {
        if nodes.len() > 1 {
            v.push(Violation {
                check: "1 one holder per epoch",
                detail: format!("epoch {epoch} taken on several nodes: {nodes:?}"),
                known: Some(EPOCH_TIE),
            });
        }
    }
    // B5's signature: a puller reported `StateLost` for an old holder that
    // did not die (no crash killed it: it re-registered after winning a
    // conflict, or retired after a merge).
    let killed: BTreeSet<ActorId> = o
        .log
        .iter()
        .flat_map(|e| match e {
            Entry::Crash { killed, .. } => killed.clone(),
            _ => Vec::new(),
        })
        .collect();
    let mut stranded: BTreeSet<(String, u64)> = BTreeSet::new();
    for lost in &o.events {
        let (EventKind::StateLost { from }, Some(epoch)) = (&lost.kind, lost.epoch) else {
            continue;
        };
        // With B1 a rank may repeat: the latest instance with it is the one.
        let old = epoch_insts
            .get(&from.epoch)
            .into_iter()
            .flatten()
            .filter(|i| node_of(i) == from.node.as_str())
            .max_by_key(|i| go_at.get(*i).copied().unwrap_or(0));
        if old.is_some_and(|i| !killed.contains(i)) {
            stranded.insert((lost.node.to_string(), epoch));
        }
    }
    // B6's: an old holder sent its state, the new one installed it and
    // finished (published `HandoverDone`), and the old one never retired.
    // B8's: an old holder sent its state to a puller that had already given
    // up (published `StateLost` for it): nobody installs that state.
    let mut unretired: BTreeSet<(String, u64)> = BTreeSet::new();
    let mut abandoned: BTreeSet<(String, u64)> = BTreeSet::new();
    for sent in &o.events {
        let (EventKind::StateSent { to, .. }, Some(epoch)) = (&sent.kind, sent.epoch) else {
            continue;
        };
        let by_successor = |pred: &dyn Fn(&EventKind) -> bool| {
            o.events
                .iter()
                .any(|d| d.node == to.node && d.epoch == Some(to.epoch) && pred(&d.kind))
        };
        let old = |r: &RegistrationInfo| r.node == sent.node && r.epoch == epoch;
        let gave_up = by_successor(&|k| matches!(k, EventKind::StateLost { from } if old(from)));
        let done =
            by_successor(&|k| matches!(k, EventKind::StateTransferred { from, .. } if old(from)))
                && by_successor(
                    &|k| matches!(k, EventKind::HandoverDone { from, .. } if old(from)),
                );
        let retired = o.events.iter().any(|r| {
            r.node == sent.node && matches!(&r.kind, EventKind::Retired { to: t, .. } if t == to)
        });
        if gave_up {
            abandoned.insert((sent.node.to_string(), epoch));
        } else if done && !retired {
            unretired.insert((sent.node.to_string(), epoch));
        }
    }
    if let Err(e) = &o.quiet {
        // The instances that are not as they should be (a holds, b, c wait).
        let offenders: Vec<&InstanceStatus> = o
            .statuses
            .iter()
            .enumerate()
            .filter_map(|(n, st)| {
                let want = if n == 0 {
                    Phase::Holder
                } else {
                    Phase::Standby
                };
                let holds = o.view_holder.as_ref().map(|h| h.epoch);
                st.as_ref()
                    .filter(|st| st.phase != want || (n == 0 && st.epoch != holds))
            })
            .collect();
        let stuck = |phase: Phase, set: &BTreeSet<(String, u64)>| {
            offenders.iter().any(|st| {
                st.phase == phase
                    && st
                        .epoch
                        .is_some_and(|ep| set.contains(&(st.node.to_string(), ep)))
            })
        };
        v.push(Violation {
            check: "1 exactly one holder after the heal",
            detail: e.clone(),
            known: if stuck(Phase::Holder, &stranded) {
                Some(STRANDED_PULLER)
            } else if stuck(Phase::Retiring, &unretired) || stuck(Phase::Holder, &unretired) {
                Some(NEVER_RETIRES)
            } else if stuck(Phase::Retiring, &abandoned) || stuck(Phase::Holder, &abandoned) {
                Some(STATE_SENT_TO_NOBODY)
            } else {
                None
            },
        });
    }

    // (3) Calls: deadlines, errors, single application, acknowledgements.
    let mut acked: BTreeMap<CallId, (String, Option<u64>)> = BTreeMap::new();
    for c in &o.calls {
        stats.calls += 1;
        if c.took > c.timeout + Duration::from_millis(1) {
            violation(
                &mut v,
                "3 no call past its deadline",
                format!(
                    "call {:?} from {} returned after {:?}, deadline {:?}",
                    c.call, NODES[c.client_node], c.took, c.timeout
                ),
            );
        }
        match &c.result {
            Ok(LedgerReply::Applied { node, epoch }) => {
                stats.acked += 1;
                acked.insert(c.call, (node.clone(), *epoch));
            }
            Ok(other) => violation(
                &mut v,
                "3 answered once",
                format!("call {:?} got a foreign reply {other:?}", c.call),
            ),
            Err(CallErr::Timeout) => stats.timed_out += 1,
            Err(CallErr::NoReply) => stats.no_reply += 1,
            Err(e @ (CallErr::NotRegistered(_) | CallErr::BufferFull { .. })) => {
                if matches!(e, CallErr::NotRegistered(_)) {
                    stats.not_registered += 1;
                }
                if let Some(by) = applied.get(&c.call) {
                    violation(
                        &mut v,
                        "3 answered once",
                        format!(
                            "call {:?} was answered {e:?} (not handled) but applied by {by:?}",
                            c.call
                        ),
                    );
                }
            }
            Err(e) => violation(
                &mut v,
                "3 answered once",
                format!("call {:?} failed with {e:?}", c.call),
            ),
        }
    }
    for (call, by) in &applied {
        if by.len() > 1 {
            violation(
                &mut v,
                "3 answered once",
                format!("call {call:?} applied {} times: {by:?}", by.len()),
            );
        }
    }
    for (call, (node, epoch)) in &acked {
        let matches = applied
            .get(call)
            .is_some_and(|by| by.iter().any(|(_, n, e)| n == node && e == epoch));
        if !matches {
            violation(
                &mut v,
                "3 answered once",
                format!(
                    "call {call:?} acknowledged by {node} at epoch {epoch:?}, applied by {:?}",
                    applied.get(call)
                ),
            );
        }
    }
    for calls in o.calls.iter().fold(BTreeMap::new(), |mut m, c| {
        m.entry(c.call.0).or_insert_with(Vec::new).push(c.call.1);
        m
    }) {
        let (client, seqs) = calls;
        if seqs.windows(2).any(|w| w[1] != w[0] + 1) {
            violation(
                &mut v,
                "3 per-sender order",
                format!("client {client} did not send in sequence: {seqs:?}"),
            );
        }
    }

    // (2) The final state: every acknowledged call, unless a reported crash lost it.
    match &o.final_state {
        Err(e) => violation(&mut v, "2 acknowledged calls kept", e.clone()),
        Ok(state) => {
            let content = state.content();
            for (client, seqs) in &state.applied {
                let mut seen = BTreeSet::new();
                let mut prev_acked = 0;
                for s in seqs {
                    if !seen.insert(*s) {
                        violation(
                            &mut v,
                            "3 answered once",
                            format!("the final state has call {:?} twice", (client, s)),
                        );
                    }
                    if !applied.contains_key(&(*client, *s)) {
                        violation(
                            &mut v,
                            "2 acknowledged calls kept",
                            format!("the final state has call {:?}, never applied", (client, s)),
                        );
                    }
                    if acked.contains_key(&(*client, *s)) {
                        if *s < prev_acked {
                            violation(
                                &mut v,
                                "3 per-sender order",
                                format!(
                                    "client {client}: acknowledged call {s} after {prev_acked} in the final state"
                                ),
                            );
                        }
                        prev_acked = *s;
                    }
                }
            }
            for (call, (node, epoch)) in &acked {
                if content.contains(call) {
                    continue;
                }
                let mut holders = Vec::new();
                let reported = dead.iter().any(|(x, _, had)| {
                    if !had.contains(call) {
                        return false;
                    }
                    holders.push(format!("{x} on {}", node_of(x)));
                    failovers.iter().any(|f| {
                        f.from.as_str() == node_of(x)
                            && f.by != *x
                            && go_at.get(x).is_some_and(|g| f.at > *g)
                    })
                });
                if reported {
                    stats.lost_reported += 1;
                } else if holders.is_empty() {
                    let b5 = epoch.is_some_and(|ep| stranded.contains(&(node.clone(), ep)));
                    // B8: an instance whose state went to nobody had it.
                    // (Any of its epochs: a conflict won re-registers it.)
                    let b8 = shadow.iter().any(|(x, had)| {
                        had.contains(call)
                            && epoch_insts.iter().any(|(ep, insts)| {
                                insts.contains(x)
                                    && abandoned.contains(&(node_of(x).to_string(), *ep))
                            })
                    });
                    v.push(Violation {
                        check: "2 acknowledged calls kept",
                        detail: format!(
                            "call {call:?} (acknowledged by {node} at epoch {epoch:?}) is lost, and no crashed instance had it"
                        ),
                        known: if b5 {
                            Some(STRANDED_PULLER)
                        } else if b8 {
                            Some(STATE_SENT_TO_NOBODY)
                        } else {
                            None
                        },
                    });
                } else {
                    let after: Vec<String> = dead
                        .iter()
                        .filter(|(_, _, had)| had.contains(call))
                        .flat_map(|(x, _, _)| {
                            failovers
                                .iter()
                                .filter(|f| go_at.get(x).is_some_and(|g| f.at > *g))
                                .map(|f| format!("{} from {}", node_of(&f.by), f.from))
                        })
                        .collect();
                    // B2's signature: an instance that had the call crashed
                    // while another node's instance held the name too.
                    let split_brain = dead.iter().any(|(x, crash_at, had)| {
                        had.contains(call) && split_brain_with(x, *crash_at)
                    });
                    // B7's: the crashed instance had taken over (and served),
                    // and its predecessor then resumed as holder.
                    let resumed_over = dead.iter().any(|(x, _, had)| {
                        had.contains(call)
                            && matches!(go_start.get(x), Some(StartType::Takeover { .. }))
                            && o.events.iter().any(|e| {
                                matches!(&e.kind, EventKind::HandoverResumed { successor }
                                    if successor.node.as_str() == node_of(x)
                                        && Some(successor.epoch) == go_epoch.get(x).copied().flatten())
                            })
                    });
                    // B3's: a failover after the crash reported a loss, but
                    // named another node as the previous holder's.
                    let misnamed = dead.iter().any(|(x, crash_at, had)| {
                        had.contains(call)
                            && failovers
                                .iter()
                                .any(|f| f.at > *crash_at && f.from.as_str() != node_of(x))
                    });
                    // B4's: after the crash, a fresh instance found the name
                    // vacant and registered it as `Normal`.
                    let normal_again = dead.iter().any(|(_, crash_at, had)| {
                        had.contains(call) && normal_starts.iter().any(|(at, _)| at > crash_at)
                    });
                    v.push(Violation {
                        check: "2 acknowledged calls kept",
                        detail: format!(
                            "call {call:?} (acknowledged by {node} at epoch {epoch:?}) was lost with the crash of {holders:?}, and no later failover from that node reported it (later failovers: {after:?})"
                        ),
                        known: if resumed_over {
                            Some(RESUMED_OVER_A_SUCCESSOR)
                        } else if split_brain {
                            Some(SPLIT_BRAIN_CRASH)
                        } else if misnamed {
                            Some(STALE_FROM)
                        } else if normal_again {
                            Some(RESTARTED_AS_NORMAL)
                        } else {
                            None
                        },
                    });
                }
            }
        }
    }

    // (2, warm standby) A failover installs exactly the checkpointed state.
    for f in &failovers {
        let Some(cp) = &f.checkpoint else { continue };
        let Some(holders) = epoch_insts.get(&cp.holder_epoch) else {
            continue; // the checkpointing holder never ran go or served at that epoch
        };
        // With B1 several instances may share the epoch: any may have sent it.
        let matches = |k: &ActorId| {
            history
                .get(k)
                .into_iter()
                .flatten()
                .any(|(h, snap)| *h == cp.handled && *snap == f.content)
        };
        if !holders.iter().any(matches) {
            let who: Vec<String> = holders
                .iter()
                .map(|k| format!("{k} on {}", node_of(k)))
                .collect();
            violation(
                &mut v,
                "2 at most the updates since the checkpoint",
                format!(
                    "{} failed over from checkpoint {cp:?} of {who:?}, but installed {} calls that match no state of it after {} handled",
                    node_of(&f.by),
                    f.content.len(),
                    cp.handled
                ),
            );
        }
    }

    // (3) Takeovers return by their deadline.
    for t in &o.takeovers {
        if t.took > TAKEOVER_TIMEOUT + Duration::from_millis(1) {
            violation(
                &mut v,
                "3 no call past its deadline",
                format!(
                    "takeover on {} returned after {:?}: {:?}",
                    NODES[t.node], t.took, t.result
                ),
            );
        }
        if t.result.is_ok() {
            stats.takeovers_ok += 1;
        }
    }

    // (4) Nothing failed or panicked.
    for (id, why) in &o.failures {
        let crashed_since = o.insts.get(id).is_some_and(|(n, at)| o.crashes[*n] > *at);
        if !crashed_since || why.contains("panic") {
            violation(
                &mut v,
                "4 nothing fails",
                format!("instance {id} on {} failed: {why}", node_of(id)),
            );
        }
    }
    if o.panics > 0 {
        violation(
            &mut v,
            "4 nothing fails",
            format!("{} panic(s) on the schedule's thread", o.panics),
        );
    }
    stats.applied_unacked = o
        .log
        .iter()
        .filter(|e| matches!(e, Entry::Apply { call, .. } if !acked.contains_key(call)))
        .count();
    (stats, v)
}

// ---------------------------------------------------------------------------
// Drivers.

/// One seed's run and its verdict.
struct SeedRun {
    schedule: Schedule,
    outcome: Option<Outcome>,
    stats: Stats,
    violations: Vec<Violation>,
}

impl SeedRun {
    /// The known bugs whose signatures this run showed.
    fn known(&self) -> BTreeSet<&'static str> {
        self.violations.iter().filter_map(|v| v.known).collect()
    }

    /// The violations that count: all of them when `strict`, else those that
    /// match no known bug.
    fn failing(&self, strict: bool) -> Vec<&Violation> {
        self.violations
            .iter()
            .filter(|v| strict || v.known.is_none())
            .collect()
    }

    /// The report of a failing run: seed, schedule, violations, replay.
    fn report(&self, strict: bool) -> Option<String> {
        let failing = self.failing(strict);
        if failing.is_empty() {
            return None;
        }
        let seed = self.schedule.seed;
        let mut report = self.schedule.describe();
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        for x in &failing {
            let n = shown.entry(x.check).or_default();
            *n += 1;
            if *n <= 4 {
                let known = x
                    .known
                    .map(|k| format!(" (known bug {k})"))
                    .unwrap_or_default();
                let _ = writeln!(report, "  VIOLATION [{}] {}{known}", x.check, x.detail);
            }
        }
        for (check, n) in shown.into_iter().filter(|(_, n)| *n > 4) {
            let _ = writeln!(report, "  ... {n} violations of [{check}] in all");
        }
        let _ = writeln!(
            report,
            "replay: FAULT_SEED={seed} cargo test --all-features --test fault_schedules -- --nocapture"
        );
        Some(report)
    }
}

/// Runs one seed on its own paused current-thread runtime, and checks it.
fn run_seed(seed: u64) -> SeedRun {
    install_panic_counter();
    let schedule = Schedule::generate(seed);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(run_schedule(&schedule))
    }));
    drop(rt);
    match outcome {
        Ok(outcome) => {
            let (stats, violations) = check(&outcome);
            SeedRun {
                schedule,
                outcome: Some(outcome),
                stats,
                violations,
            }
        }
        Err(e) => {
            let why = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            SeedRun {
                schedule,
                outcome: None,
                stats: Stats::default(),
                violations: vec![Violation {
                    check: "4 nothing fails",
                    detail: format!("the harness panicked: {why}"),
                    known: None,
                }],
            }
        }
    }
}

/// The log and the events of a run, for a replay.
fn trace_of(o: &Outcome) -> String {
    let mut s = String::from("log:\n");
    let node_of = |id: &ActorId| o.insts.get(id).map(|(n, _)| NODES[*n]).unwrap_or("?");
    let full = std::env::var("FAULT_TRACE").is_ok_and(|v| v == "full");
    let mut skipped = 0;
    for e in &o.log {
        if !full && matches!(e, Entry::Apply { .. } | Entry::Read { .. }) {
            skipped += 1;
            continue;
        }
        if skipped > 0 {
            let _ = writeln!(s, "  ({skipped} calls handled)");
            skipped = 0;
        }
        let line = match e {
            Entry::Spawn { inst, node } => format!("spawn {inst} on {}", NODES[*node]),
            Entry::Go {
                inst,
                epoch,
                start,
                content,
            } => format!(
                "go {inst} on {} epoch {epoch:?} {start:?} with {} calls",
                node_of(inst),
                content.len()
            ),
            Entry::Apply {
                inst, epoch, call, ..
            } => format!(
                "apply {call:?} by {inst} on {} epoch {epoch:?}",
                node_of(inst)
            ),
            Entry::Read { inst, epoch } => format!("read by {inst} epoch {epoch:?}"),
            Entry::Merged {
                inst,
                epoch,
                loser,
                content,
            } => format!(
                "merge into {inst} on {} epoch {epoch:?} from {loser:?}: {} calls",
                node_of(inst),
                content.len()
            ),
            Entry::Crash { node, killed } => format!("crash {} killing {killed:?}", NODES[*node]),
            Entry::Stopped { inst } => format!("{inst} on {} stopped", node_of(inst)),
            Entry::Fault { at_ms, fault } => format!("@{at_ms} ms: {}", fault_name(fault)),
        };
        let _ = writeln!(s, "  {line}");
    }
    s.push_str("events:\n");
    for e in &o.events {
        let chatty = matches!(
            e.kind,
            EventKind::CheckpointSent { .. } | EventKind::CheckpointStored { .. }
        );
        if chatty && !full {
            continue;
        }
        let _ = writeln!(s, "  {} epoch {:?}: {:?}", e.node, e.epoch, e.kind);
    }
    match &o.final_state {
        Ok(st) if !full => {
            let _ = writeln!(s, "final state: {} calls", st.content().len());
        }
        other => {
            let _ = writeln!(s, "final state: {other:?}");
        }
    }
    let _ = writeln!(s, "quiet: {:?}", o.quiet);
    s
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// What many schedules found.
#[derive(Default)]
struct Summary {
    stats: Stats,
    failed: Vec<(u64, String)>,
    /// Known bug -> the seeds that showed it.
    known: BTreeMap<&'static str, Vec<u64>>,
    /// Known bug -> how many of those seeds ran in quorum mode.
    known_in_quorum: BTreeMap<&'static str, usize>,
    /// Known bug -> how many of those seeds ran with durable nodes.
    known_durable: BTreeMap<&'static str, usize>,
}

/// Runs `count` seeds from `base` on `threads` threads.
fn run_many(base: u64, count: u64, threads: usize) -> Summary {
    let next = AtomicU64::new(0);
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= count {
                    return;
                }
                let seed = base.wrapping_add(i);
                let run = run_seed(seed);
                let mut sum = summary.lock().unwrap_or_else(|e| e.into_inner());
                sum.stats.add(&run.stats);
                for k in run.known() {
                    sum.known.entry(k).or_default().push(seed);
                    if run.schedule.quorum {
                        *sum.known_in_quorum.entry(k).or_default() += 1;
                    }
                    if run.schedule.durable {
                        *sum.known_durable.entry(k).or_default() += 1;
                    }
                }
                if let Some(report) = run.report(false) {
                    eprintln!("FAILED {report}");
                    sum.failed.push((seed, report));
                }
            });
        }
    });
    let mut summary = summary.into_inner().unwrap_or_else(|e| e.into_inner());
    summary.failed.sort_by_key(|f| f.0);
    for seeds in summary.known.values_mut() {
        seeds.sort_unstable();
    }
    summary
}

/// The suite: `FAULT_SCHEDULES` schedules (default 1500) from seed
/// `FAULT_BASE` (default 1), or only `FAULT_SEED`. Violations that match a
/// known bug's signature exactly ([`EPOCH_TIE`], [`SPLIT_BRAIN_CRASH`]) are
/// counted and listed, not failed; the `known_bug_*` tests replay them.
#[test]
fn fault_schedules() {
    if let Some(seed) = env_u64("FAULT_SEED") {
        support::init_tracing();
        let run = run_seed(seed);
        println!("{}", run.schedule.describe());
        if let Some(o) = &run.outcome {
            println!("{}", trace_of(o));
        }
        println!("{:?}", run.stats);
        for k in run.known() {
            println!("known bug seen: {k}");
        }
        let strict = std::env::var("FAULT_STRICT").is_ok();
        if let Some(report) = run.report(strict) {
            panic!("{report}");
        }
        return;
    }
    let count = env_u64("FAULT_SCHEDULES").unwrap_or(1500);
    let base = match std::env::var("FAULT_BASE").as_deref() {
        Ok("random") => rand::random::<u32>() as u64,
        Ok(n) => n.parse().expect("FAULT_BASE: a number or `random`"),
        Err(_) => 1,
    };
    let threads = env_u64("FAULT_THREADS")
        .map(|t| t as usize)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
        .max(1);
    let started = std::time::Instant::now();
    let summary = run_many(base, count, threads);
    println!(
        "fault schedules: {count} schedules (seeds {base}..{}) on {threads} threads in {:.1?}",
        base + count,
        started.elapsed()
    );
    println!("  {:?}", summary.stats);
    for (k, seeds) in &summary.known {
        println!(
            "  known bug {k}: {} schedules ({} in quorum mode, {} durable), e.g. seeds {:?}",
            seeds.len(),
            summary.known_in_quorum.get(k).copied().unwrap_or(0),
            summary.known_durable.get(k).copied().unwrap_or(0),
            &seeds[..seeds.len().min(8)]
        );
    }
    let seeds: Vec<u64> = summary.failed.iter().map(|f| f.0).collect();
    assert!(
        summary.failed.is_empty(),
        "{} of {count} schedules failed, seeds {seeds:?}; replay one with FAULT_SEED=<seed>",
        seeds.len()
    );
}

/// Replays `seed` and fails with its report if it shows known bug `bug`.
fn replay_known_bug(seed: u64, bug: &'static str) -> SeedRun {
    let run = run_seed(seed);
    if let Some(report) = run.report(false) {
        panic!("seed {seed} fails in a way no known bug explains:\n{report}");
    }
    let hits: Vec<&Violation> = run
        .violations
        .iter()
        .filter(|v| v.known == Some(bug))
        .collect();
    assert!(
        hits.is_empty(),
        "{bug}, seed {seed}:\n{}{}",
        run.schedule.describe(),
        hits.iter()
            .take(6)
            .map(|v| format!("  VIOLATION [{}] {}\n", v.check, v.detail))
            .collect::<String>()
    );
    run
}

// ---------------------------------------------------------------------------
// Known bugs: each test replays a seed that shows one, checks only that
// bug's signature, and fails while the bug is there. Run them with
// `cargo test --all-features --test fault_schedules -- --ignored`.
// (A seed replays the same run as long as `src/` schedules the same way; if
// a change in `src/` moves it, pick another seed from the suite's summary.)

/// Seed 18: `b | c` split (detected), then `a`, the holder, crashes; `b` and
/// `c` each find the name vacant and fail over, neither seeing the other.
/// They used to take the same epoch (B1); with per-node epochs
/// (`next_epoch`) they cannot: both fail over, at different epochs, and a
/// fencing gate refuses the lower one after the higher one wrote.
#[test]
fn both_sides_of_a_split_fail_over_to_different_epochs() {
    let run = run_seed(18);
    let outcome = run.outcome.as_ref().expect("the run completes");
    let failovers: Vec<&TakeoverEvent> = outcome
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Registered {
                    start: StartType::Failover { .. }
                }
            )
        })
        .collect();
    let (x, y) = failovers
        .iter()
        .find_map(|x| Some((*x, *failovers.iter().find(|y| y.node != x.node)?)))
        .expect("seed 18: both sides of the split fail over");
    assert_ne!(
        x.epoch, y.epoch,
        "the failovers on {} and {} took one epoch",
        x.node, y.node
    );
    let mut by_epoch: BTreeMap<u64, BTreeSet<&NodeId>> = BTreeMap::new();
    for ev in &outcome.events {
        if let (EventKind::Registered { .. }, Some(epoch)) = (&ev.kind, ev.epoch) {
            by_epoch.entry(epoch).or_default().insert(&ev.node);
        }
    }
    for (epoch, nodes) in &by_epoch {
        assert_eq!(nodes.len(), 1, "epoch {epoch} registered on {nodes:?}");
    }
    let token = |e: &TakeoverEvent| FencingToken {
        name: e.name.clone(),
        epoch: e.epoch.unwrap_or_default(),
        node: e.node.clone(),
    };
    let (lo, hi) = if x.epoch < y.epoch {
        (token(x), token(y))
    } else {
        (token(y), token(x))
    };
    let gate = EpochGate::new();
    gate.admit(&hi).expect("the first write passes");
    assert!(
        gate.admit(&lo).is_err(),
        "the gate admits epoch {} after {}",
        lo.epoch,
        hi.epoch
    );
}

/// B1 ([`EPOCH_TIE`]), seed 68 (nodes not durable): a node that crashed
/// forgot the epochs it had seen, and no peer it can reach saw them either,
/// so it takes an epoch again. With durable nodes
/// (`FakeCluster::set_durable`, `ClusterConfig::state_dir` on the real
/// backend) no schedule shows it.
#[test]
#[ignore = "known bug B1: a node that crashed without a state dir can forget epochs"]
fn known_bug_b1_two_holders_share_an_epoch() {
    replay_known_bug(68, EPOCH_TIE);
}

/// B2 ([`SPLIT_BRAIN_CRASH`]), seed 2613: `a | b` split; `b` fails over
/// (from a checkpoint) and acknowledges its clients' calls while `a` keeps
/// holding for `a` and `c`; then `b` crashes. Nobody fails over from `b`
/// (`c` sees `a` holding): the calls `b` acknowledged since the split are
/// lost and no event reports it.
#[test]
#[ignore = "known bug B2: a split-brain holder's crash loses acknowledged calls unreported"]
fn known_bug_b2_split_brain_holder_crash_is_unreported() {
    replay_known_bug(2613, SPLIT_BRAIN_CRASH);
}

/// B3 ([`STALE_FROM`]), seed 277: `a` holds at epoch 4; `b`, cut off from
/// `a` by an undetected partition, steals the name (epoch 5) for a manual
/// takeover that times out and rolls back. `a` crashes; when it restarts,
/// the fresh instance there finds the name vacant and reports
/// `Failover { from: "b" }`: the newest registration its node learned was
/// `b`'s rolled-back steal, which never held. The loss is reported under the
/// wrong node. (Seed 1620, the earlier replay, no longer shows it.)
#[test]
#[ignore = "known bug B3: a failover names a stale previous holder"]
fn known_bug_b3_failover_names_a_stale_holder() {
    replay_known_bug(277, STALE_FROM);
}

/// B4 ([`RESTARTED_AS_NORMAL`]), seed 88: `b` holds (epoch 6); `a` and then
/// `b` crash while `b | c` is split. `b` restarts, reaching neither `a`
/// (down) nor `c` (split), the only node that had seen a holder: its fresh
/// instance registers the name as `Normal` at epoch 1 with an empty state,
/// and no event reports the loss. (Seed 301, the earlier replay, is fixed:
/// the restarted node learns the newest holder from `c` and reports a
/// failover.)
#[test]
#[ignore = "known bug B4: a vacant name after a crash is taken as Normal, the loss unreported"]
fn known_bug_b4_vacant_name_after_a_crash_starts_normal() {
    replay_known_bug(88, RESTARTED_AS_NORMAL);
}

/// B5 ([`STRANDED_PULLER`]), seed 1302: an undetected `a | b` partition;
/// `b` takes over, its state request is dropped. At the heal `a` sees `b`'s
/// registration, gets no request, wins the conflict and re-registers
/// (epoch 3); `b` takes `a`'s old registration leaving for `a`'s death,
/// reports `StateLost`, starts as a `Failover` holder at epoch 2 and stays
/// one, below `a`, for good: the cluster never settles on one holder and the
/// calls `b` acknowledged are lost.
#[test]
fn known_bug_b5_puller_stranded_as_a_second_holder() {
    replay_known_bug(1302, STRANDED_PULLER);
}

/// B6 ([`NEVER_RETIRES`]), seed 133: `a` takes the name back from `c`; its
/// `HandoverDone`, slowed on the link `a -> c`, is dropped by an undetected
/// partition; after the heal `c` is still `Retiring`, for good.
#[test]
fn known_bug_b6_lost_handover_done_never_retires() {
    replay_known_bug(133, NEVER_RETIRES);
}

/// B7 ([`RESUMED_OVER_A_SUCCESSOR`]), seed 36: `b` takes over from `a` over
/// a slow link `b -> a`, installs the state, serves calls, and crashes while
/// its `HandoverDone` is still on that link; `a` resumes
/// (`HandoverResumed`) with the state it had sent: the calls `b`
/// acknowledged are lost, and the events say the takeover failed.
#[test]
fn known_bug_b7_resume_over_a_successor_that_served() {
    replay_known_bug(36, RESUMED_OVER_A_SUCCESSOR);
}

/// B8 ([`STATE_SENT_TO_NOBODY`]), seed 21766: `a` pulls from `b`; an
/// `a | b` split makes it give up (`StateLost`, failover); its state
/// request, held on the link, reaches `b` after the heal; `b` sends its state
/// to `a`, which drops it ("no pull of ours"), and stays `Retiring`: `b`'s
/// state, every call since the start, is lost.
#[test]
fn known_bug_b8_state_sent_to_a_puller_that_gave_up() {
    replay_known_bug(21766, STATE_SENT_TO_NOBODY);
}

/// B5 and B8 again, seed 268, one of the schedules with the faults of real
/// machines (a frame limit `a -> b` while `a` takes over, then `c` paused):
/// in 1500 schedules (seeds 1 to 1500) it is the only one that shows B5's
/// and B8's signatures; without those faults (`FAULT_MACHINE=off`) none
/// does.
#[test]
#[ignore = "known gap: with a frame limit and a paused node, a puller is stranded (B5) and a state is sent to nobody (B8)"]
fn known_gap_machine_faults_strand_a_puller() {
    replay_known_bug(268, STRANDED_PULLER);
    replay_known_bug(268, STATE_SENT_TO_NOBODY);
}

/// B9, seed 2113: one fault, an `a | c` split (detected) for 3.5 s, `b`
/// connected to both. The name never settles: `c` sees it vacant and fails
/// over, `b` (above `c`) takes over from `c`, `a` (above `b`) wins the
/// conflict with `b` and merges its state, `b` retires, `c` sees the name
/// vacant again, and so on, about every 250 ms for the whole split (ten
/// rounds, epochs 2 to 22). Nothing is lost here only because this test's
/// merge hook keeps both sides' calls; with the default hook (keep the
/// winner's state) every round drops what `c`'s side did. Not a checker
/// violation (a split brain may hold two holders); this test asserts that
/// the name moves at most three times while the split lasts. Fixed
/// (`server.rs` `place()`): a standby takes over only when every
/// registration it sees is on a node below its own, so `b`, seeing `a` and
/// `c` both hold, leaves the split brain to heal.
#[test]
fn known_bug_b9_one_link_split_cycles_the_name() {
    let run = run_seed(2113);
    let log = &run.outcome.as_ref().expect("the run completes").log;
    let is_fault =
        |e: &Entry, f: fn(&Fault) -> bool| matches!(e, Entry::Fault { fault, .. } if f(fault));
    let split = log
        .iter()
        .position(|e| is_fault(e, |f| matches!(f, Fault::Split(..))))
        .expect("the schedule splits");
    let heal = log
        .iter()
        .position(|e| is_fault(e, |f| matches!(f, Fault::Heal(..))))
        .expect("and heals");
    let moves = log[split..heal]
        .iter()
        .filter(|e| matches!(e, Entry::Go { .. } | Entry::Merged { .. }))
        .count();
    assert!(
        moves <= 3,
        "seed 2113: the name moved {moves} times (go or merge) during one stable split"
    );
}

/// Seeds a 20 000-schedule run found after this session's first fixes, each
/// replayed strictly (no violation at all, known or not):
/// - 3373128272: `c` retires towards `a`'s pull (epoch 10), whose reply an
///   undetected partition drops; `a` rolls back and steals again (13). At
///   the heal `c` saw its successor leave cleanly with a newer holder and
///   took that for a handover: it retired, and its state was lost. Now it
///   asks the newer holder (`HandoverQuery`), which says `HandoverUnknown`.
/// - 3373116214: the same with `b`.
/// - 3373115778: a split-brain loser (`c`, yielding to `a`) held the name
///   again when `a` crashed, as if nothing was lost; now it takes a new
///   epoch and reports `Failover { from: "a" }`.
/// - 3373122513: `b` gave its pull from `c` up as a failover, then handed
///   the name to `a`; `c`'s state reached `b` too late. `c` asked `a`, which
///   had taken over from `b`, and `a` confirmed the handover it could not
///   vouch for: `c` retired and its state was lost. Now only the successor
///   itself confirms.
/// - 1208702206 (a second 20 000-schedule run): like 3373115778, with `c` holding
///   again after its yield timed out and `a` dying behind an undetected
///   partition; `c` learns of it when `a` restarts (its old registrations
///   leave as `NodeDown`) and reports it.
#[test]
fn long_run_regressions_stay_fixed() {
    for seed in [
        3_373_128_272,
        3_373_116_214,
        3_373_115_778,
        3_373_122_513,
        1_208_702_206,
    ] {
        let run = run_seed(seed);
        if let Some(report) = run.report(true) {
            panic!("seed {seed}:\n{report}");
        }
    }
}

/// Found by the last 20 000-schedule run, not fixed (one schedule in
/// 20 000; nodes not durable): `c` crashes and restarts while split from
/// `a`, and takes epoch 3 again (B1), so two different registrations of `c`
/// share one `(epoch, node)`. After the heal `a`'s view lacks `c`'s live
/// registration, so `a` merges `c`'s offered state but cannot send
/// `MergeDone`; `c`'s yield times out, it holds again, loses the conflict
/// again, and so on: the cluster never settles (88 merges of the same
/// state). Durable nodes (`ClusterConfig::state_dir`) never reuse an epoch.
#[test]
#[ignore = "known bug: a reused (epoch, node) leaves a winner unable to confirm a merge"]
fn known_bug_reused_epoch_livelocks_a_merge() {
    let run = run_seed(3_584_301_186);
    if let Some(report) = run.report(true) {
        panic!("seed 3584301186:\n{report}");
    }
}
