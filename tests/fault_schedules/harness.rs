//! Running one schedule on a 3-node fake cluster in paused time: the
//! instances (replaced like a supervisor would), the client loops, the
//! faults, the final heal and the wait for quiet, and what it all recorded.

use std::cell::Cell;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use ractor::{Actor, ActorId, ActorRef, ActorStatus};
use ractor_takeover::event::{EventHub, TakeoverEvent};
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::registry::{NodeName, RegistrationInfo, Registry};
use ractor_takeover::status::{InstanceStatus, Phase};
use ractor_takeover::*;
use tokio::time::Instant;

use crate::generator::{ClientPlan, Fault, Schedule};
use crate::ledger::{CallId, Entry, Ledger, LedgerMsg, LedgerReply, LedgerState, Log};
use crate::support::{Failures, Watchdog};
use crate::{NAME, NODES};

/// The deadline of a manual takeover.
pub const TAKEOVER_TIMEOUT: Duration = Duration::from_millis(2_000);
/// How long the final quiescence may take (virtual time).
const QUIET_DEADLINE: Duration = Duration::from_secs(60);
/// Clients keep calling this long after the final heal.
const TAIL_MS: u64 = 800;
/// How long peers take to see a paused node down (the fake's heartbeat).
const DETECTION: Duration = Duration::from_millis(300);

#[derive(Clone, Debug)]
pub struct CallRecord {
    pub call: CallId,
    pub client_node: usize,
    pub timeout: Duration,
    pub took: Duration,
    pub result: Result<LedgerReply, CallErr>,
}

#[derive(Clone, Debug)]
pub struct TakeoverRecord {
    pub node: usize,
    pub took: Duration,
    pub result: Result<HandoverReport, TakeoverErr>,
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

pub fn install_panic_counter() {
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
pub struct Outcome {
    pub log: Vec<Entry>,
    pub calls: Vec<CallRecord>,
    pub takeovers: Vec<TakeoverRecord>,
    pub events: Vec<TakeoverEvent>,
    pub final_state: Result<LedgerState, String>,
    pub quiet: Result<(), String>,
    /// Each node's current instance's status after the wait for quiet.
    pub statuses: Vec<Option<InstanceStatus>>,
    /// The holder in `a`'s view then.
    pub view_holder: Option<RegistrationInfo>,
    pub failures: Vec<(ActorId, String)>,
    pub panics: u64,
    /// Instance -> (node, its node's crash count at spawn).
    pub insts: HashMap<ActorId, (usize, u32)>,
    pub crashes: [u32; 3],
    /// The schedule ran in quorum mode.
    pub quorum: bool,
    /// Its nodes kept the epochs they saw across crashes
    /// (`FakeCluster::set_durable`).
    pub durable: bool,
    /// Its clients retried calls of unknown outcome under their keys
    /// (`FAULT_RETRIES=1`, see [`retries_on`]).
    pub retries: bool,
}

/// `FAULT_ENTRY_DELAY=MS`: every message to a standby's entry arrives up
/// to `MS` late, drawn per seed (`FakeCluster::delay_standby_entries`), as
/// the real backend's per-registration relays may reorder it against
/// messages to the instance's other registration. Off by default, so that
/// the seeds found without it replay as found.
pub fn entry_delay(seed: u64) -> Option<Duration> {
    use rand::{Rng, SeedableRng};
    let max = crate::env_u64("FAULT_ENTRY_DELAY")?;
    // Drawn apart from the schedule's generator: the schedule stays as it was.
    let ms = rand::rngs::StdRng::seed_from_u64(seed ^ 0x0e47_ede1_a700).random_range(0..=max);
    Some(Duration::from_millis(ms))
}

/// Whether the clients retry calls whose outcome is unknown, under their
/// keys (exactly-once retries): `FAULT_RETRIES=1`. Off by default, and not
/// drawn from the seed: the seeds of the known gaps and regressions replay
/// the schedules they were found in, with clients that did not retry.
pub fn retries_on() -> bool {
    RETRIES
        .with(std::cell::Cell::get)
        .unwrap_or_else(|| std::env::var("FAULT_RETRIES").is_ok_and(|v| v == "1"))
}

thread_local! {
    /// This thread's own setting over `FAULT_RETRIES` (see [`with_retries`]).
    /// Why per thread: a schedule runs on the thread that runs it (a
    /// current-thread runtime), and the tests of one binary run side by side.
    static RETRIES: std::cell::Cell<Option<bool>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with the clients' retries `on` on this thread, whatever
/// `FAULT_RETRIES` says: a seed found with retries replays with them.
pub fn with_retries<T>(on: bool, f: impl FnOnce() -> T) -> T {
    RETRIES.with(|r| r.set(Some(on)));
    let out = f();
    RETRIES.with(|r| r.set(None));
    out
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
    /// The other names of the many-names mode (`FAULT_NAMES`).
    extras: crate::many_names::Extras,
}

impl Run {
    async fn new(s: &Schedule) -> Self {
        let cluster = FakeCluster::new(NODES);
        cluster.set_durable(s.durable);
        if let Some(d) = entry_delay(s.seed) {
            cluster.delay_standby_entries(d);
        }
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
        if let Some(sync) = &s.sync {
            config = config.with_sync_standby(sync.clone());
        }
        config = config.with_quorum(s.quorum);
        let failures: Failures = Arc::default();
        let (watchdog, _) = Actor::spawn(None, Watchdog, failures.clone())
            .await
            .expect("spawn the watchdog");
        let extras = crate::many_names::Extras::new(&config).await;
        Run {
            extras,
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
        let paused = self.paused.clone();
        self.extras
            .respawn(&self.cluster, |n| paused.contains(&n))
            .await;
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
                    let result = actor.takeover(TAKEOVER_TIMEOUT).await;
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
            .get(&NodeName::new("a"))
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
            let st = self.insts[i]
                .actor
                .status(Duration::from_secs(1))
                .await
                .ok();
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
    let client = GlobalClient::<Ledger>::new(NAME, registry).with_retries(retries_on());
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

pub async fn run_schedule(s: &Schedule) -> Outcome {
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
    let quiet = match quiet {
        Ok(()) => run.extras.quiesce(&run.cluster, QUIET_DEADLINE).await,
        not => not,
    };
    let mut statuses = Vec::new();
    for n in 0..3 {
        statuses.push(match run.current[n] {
            Some(i) => run.insts[i].actor.status(Duration::from_secs(1)).await.ok(),
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
    run.extras.stop();
    run.watchdog.stop(None);
    collector.abort();

    let outcome = Outcome {
        quorum: s.quorum,
        retries: retries_on(),
        durable: s.durable,
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
            .get(&NodeName::new("a"))
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
