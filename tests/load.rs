//! Load: many callers without pause while the server is taken over back and
//! forth, on the fake cluster.
//!
//! # The invariant
//!
//! Across any number of clean takeovers (no crash, no partition, no bad
//! state), for every caller that waits for each answer before the next call:
//!
//! - every call is answered `Ok`, by the instance that applied it;
//! - the calls of each caller are applied **exactly once and in the order it
//!   sent them**: the seqs the final state records for caller `i` are exactly
//!   `1..=n_i`, where `n_i` is the number of answers `i` got (no gap = nothing
//!   lost, no repeat = nothing applied twice, ascending = per-sender order);
//! - every answer reports the seq applied just before it for that caller
//!   (`prev == seq - 1`), so an anomaly is caught at the call where it happens;
//! - the epochs that answer one caller never go down (an older holder never
//!   serves after a newer one did: a single chain of state);
//! - the final total equals the sum of the acknowledged amounts;
//! - every takeover completes as a `Takeover` (never a failover, never an
//!   error), all of them.
//!
//! The run is driven by a seeded RNG (link delays, which node each caller
//! uses, the amounts, the pause between takeovers). The seed is printed at the
//! start; `LOAD_SEED=<seed>` replays the same choices (the interleaving of
//! tasks still varies from run to run).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::ActorProcessingErr;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::registry::Epoch;
use ractor_takeover::status::Phase;
use ractor_takeover::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use support::{init_tracing, TIMEOUT};
use tokio::sync::watch;

const LEDGER: &str = "ledger";
const NODES: [&str; 3] = ["a", "b", "c"];
const CLIENTS: u32 = 16;
const TAKEOVERS: usize = 20;
/// The most acknowledged calls the driver waits for between two takeovers.
const MAX_PAUSE_CALLS: u64 = 400;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum LedgerMsg {
    /// Apply `amount` as caller `client`'s call number `seq` (from 1).
    Apply { client: u32, seq: u64, amount: u64 },
    /// The whole state.
    Snapshot,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum LedgerReply {
    /// What was applied, where, and the caller's seq applied just before it.
    Applied {
        client: u32,
        seq: u64,
        prev: Option<u64>,
        node: String,
        epoch: Option<Epoch>,
    },
    Snapshot(LedgerState),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct LedgerState {
    /// Per caller, every seq applied, in the order applied.
    seqs: BTreeMap<u32, Vec<u64>>,
    total: u64,
}

/// A takeover actor that records every call it applies.
struct Ledger;

impl TakeoverActor for Ledger {
    type Msg = LedgerMsg;
    type Reply = LedgerReply;
    type State = LedgerState;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<LedgerState, ActorProcessingErr> {
        Ok(LedgerState::default())
    }

    async fn handle(
        &self,
        ctx: &TakeoverCtx<Self>,
        msg: LedgerMsg,
        state: &mut LedgerState,
    ) -> Result<LedgerReply, ActorProcessingErr> {
        Ok(match msg {
            LedgerMsg::Apply {
                client,
                seq,
                amount,
            } => {
                let applied = state.seqs.entry(client).or_default();
                let prev = applied.last().copied();
                applied.push(seq);
                state.total += amount;
                LedgerReply::Applied {
                    client,
                    seq,
                    prev,
                    node: ctx.node().as_str().to_string(),
                    epoch: ctx.epoch(),
                }
            }
            LedgerMsg::Snapshot => LedgerReply::Snapshot(state.clone()),
        })
    }
}

type Instance = (TakeoverRef<Ledger>, JoinHandle<()>);

async fn spawn_ledger(cluster: &FakeCluster, node: &str, config: &TakeoverConfig) -> Instance {
    TakeoverServer::new(LEDGER, Ledger, cluster.registry(node), config.clone())
        .spawn(())
        .await
        .expect("spawn a ledger instance")
}

/// The phase an instance reports (its post_start has run once it answers).
async fn phase_of(instance: &TakeoverRef<Ledger>) -> Option<Phase> {
    instance.status(TIMEOUT).await.ok().map(|s| s.phase)
}

/// What one caller saw.
struct Outcome {
    id: u32,
    node: &'static str,
    /// Calls answered `Ok` (they are seqs `1..=acked`).
    acked: u64,
    /// The sum of their amounts.
    sum: u64,
    /// What broke the invariant, as it was seen (the first few).
    anomalies: Vec<String>,
    /// How many more were not kept.
    more_anomalies: usize,
}

impl Outcome {
    fn anomaly(&mut self, what: String) {
        if self.anomalies.len() < 5 {
            self.anomalies.push(what);
        } else {
            self.more_anomalies += 1;
        }
    }
}

/// Shared between the driver and the callers.
struct Shared {
    stop: AtomicBool,
    /// Takeovers completed so far (tags anomalies).
    takeovers: AtomicUsize,
    /// Calls acknowledged so far, all callers together.
    acks: watch::Sender<u64>,
}

/// Calls without pause until told to stop; never panics, reports instead.
async fn caller(
    id: u32,
    node: &'static str,
    client: GlobalClient<Ledger>,
    mut rng: StdRng,
    shared: Arc<Shared>,
) -> Outcome {
    let mut out = Outcome {
        id,
        node,
        acked: 0,
        sum: 0,
        anomalies: Vec::new(),
        more_anomalies: 0,
    };
    let mut last_epoch: Epoch = 0;
    let mut seq = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        seq += 1;
        let amount = rng.random_range(1..=1_000u64);
        let during = shared.takeovers.load(Ordering::Relaxed);
        let answer = client
            .call(
                LedgerMsg::Apply {
                    client: id,
                    seq,
                    amount,
                },
                TIMEOUT,
            )
            .await;
        let tag = format!("client {id} on {node}, seq {seq}, after takeover #{during}");
        match answer {
            Ok(LedgerReply::Applied {
                client: c,
                seq: s,
                prev,
                node: served_on,
                epoch,
            }) => {
                if (c, s) != (id, seq) {
                    out.anomaly(format!("{tag}: answered for client {c} seq {s}"));
                }
                let want_prev = (seq > 1).then(|| seq - 1);
                if prev != want_prev {
                    out.anomaly(format!(
                        "{tag}: applied after seq {prev:?}, expected {want_prev:?} \
                         (served on {served_on} at epoch {epoch:?})"
                    ));
                }
                match epoch {
                    Some(e) if e >= last_epoch => last_epoch = e,
                    _ => out.anomaly(format!(
                        "{tag}: served on {served_on} at epoch {epoch:?} after epoch {last_epoch}"
                    )),
                }
                out.acked += 1;
                out.sum += amount;
                shared.acks.send_modify(|n| *n += 1);
            }
            Ok(other) => {
                out.anomaly(format!("{tag}: unexpected answer {other:?}"));
                break;
            }
            Err(e) => {
                out.anomaly(format!(
                    "{tag}: call failed: {e:?} (it may or may not have been applied)"
                ));
                break;
            }
        }
    }
    out
}

/// Takeovers back and forth between `a` and `b`; returns a log line per takeover.
async fn drive(
    mut holder: Instance,
    mut standby: Instance,
    rng: &mut StdRng,
    shared: &Shared,
) -> Result<Vec<String>, String> {
    let mut log = Vec::new();
    let mut holder_node = "a";
    let mut standby_node = "b";
    let mut acks = shared.acks.subscribe();
    for k in 1..=TAKEOVERS {
        // The pause: a few scheduler turns, or a number of acknowledged calls.
        let (pause, calls_before) = if rng.random_bool(0.25) {
            let turns = rng.random_range(0..50);
            for _ in 0..turns {
                tokio::task::yield_now().await;
            }
            (format!("{turns} yields"), *acks.borrow())
        } else {
            let more = rng.random_range(1..=MAX_PAUSE_CALLS);
            let target = *acks.borrow() + more;
            // A deadline against a hang, not a measure: the callers stopped.
            match tokio::time::timeout(TIMEOUT, acks.wait_for(|n| *n >= target)).await {
                Ok(Ok(_)) => {}
                _ => {
                    return Err(format!(
                        "before takeover #{k}: the calls stopped flowing (waited for {target})"
                    ))
                }
            }
            (format!("{more} calls"), target)
        };

        let report = standby
            .0
            .takeover(TIMEOUT)
            .await
            .map_err(|e| format!("takeover #{k} {holder_node} -> {standby_node}: {e}"))?;
        if report.start
            != (StartType::Takeover {
                from: holder_node.into(),
            })
        {
            return Err(format!(
                "takeover #{k} {holder_node} -> {standby_node} started as {:?}",
                report.start
            ));
        }
        shared.takeovers.store(k, Ordering::Relaxed);
        match phase_of(&standby.0).await {
            Some(Phase::Holder) => {}
            other => return Err(format!("after takeover #{k}: the new holder is {other:?}")),
        }
        // The retired instance is a standby again once it has HandoverDone:
        // the next takeover goes back to it, no respawn.
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match phase_of(&holder.0).await {
                Some(Phase::Standby) => break,
                other if tokio::time::Instant::now() >= deadline => {
                    return Err(format!(
                        "after takeover #{k}: the old instance on {holder_node} is {other:?}, not a standby"
                    ))
                }
                _ => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
        log.push(format!(
            "#{k:2} {holder_node} -> {standby_node}: pause {pause} (acked {calls_before}), \
             epoch {}, state {} B, buffered {}, handover pause {:?}",
            report.holder.epoch, report.state_bytes, report.buffered, report.pause
        ));
        std::mem::swap(&mut holder, &mut standby);
        std::mem::swap(&mut holder_node, &mut standby_node);
    }
    Ok(log)
}

/// What is wrong with one caller's applied seqs, given `acked` answers.
fn check_seqs(applied: &[u64], acked: u64) -> Option<String> {
    let want: Vec<u64> = (1..=acked).collect();
    if applied == want.as_slice() {
        return None;
    }
    let first_bad = applied
        .iter()
        .zip(&want)
        .position(|(a, w)| a != w)
        .unwrap_or(applied.len().min(want.len()));
    let from = first_bad.saturating_sub(3);
    let mut sorted = applied.to_vec();
    sorted.sort_unstable();
    let dups: Vec<u64> = sorted
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .take(10)
        .collect();
    let missing: Vec<u64> = want
        .iter()
        .filter(|s| sorted.binary_search(s).is_err())
        .copied()
        .take(10)
        .collect();
    Some(format!(
        "{} applied for {acked} acknowledged; first difference at index {first_bad}: \
         applied {:?} vs expected {:?}; duplicated {dups:?}; missing {missing:?}",
        applied.len(),
        &applied[from.min(applied.len())..(first_bad + 3).min(applied.len())],
        &want[from.min(want.len())..(first_bad + 3).min(want.len())],
    ))
}

/// 16 callers spread over three nodes call without pause while the server is
/// taken over 20 times between `a` and `b`; see the module doc for the
/// invariant checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_across_repeated_takeovers() {
    init_tracing();
    let seed = match std::env::var("LOAD_SEED") {
        Ok(s) => s.trim().parse().expect("LOAD_SEED is a u64"),
        Err(_) => rand::random::<u64>(),
    };
    println!("LOAD_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let started = tokio::time::Instant::now();

    let cluster = FakeCluster::new(NODES);
    let mut delays = Vec::new();
    for from in NODES {
        for to in NODES {
            if from != to {
                let ms = rng.random_range(0..=3u64);
                cluster.set_delay(from, to, Duration::from_millis(ms));
                delays.push(format!("{from}->{to} {ms}ms"));
            }
        }
    }
    println!("delays: {}", delays.join(", "));
    let config = TakeoverConfig::default().with_buffer_capacity(1_000_000);

    let holder = spawn_ledger(&cluster, "a", &config).await;
    assert_eq!(phase_of(&holder.0).await, Some(Phase::Holder));
    let standby = spawn_ledger(&cluster, "b", &config).await;
    assert_eq!(phase_of(&standby.0).await, Some(Phase::Standby));

    let (acks, _) = watch::channel(0u64);
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        takeovers: AtomicUsize::new(0),
        acks,
    });
    // Every node has a caller; the rest are placed at random.
    let mut first = NODES;
    first.rotate_left(rng.random_range(0..NODES.len()));
    let callers: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let node = match first.get(id as usize) {
                Some(n) => *n,
                None => NODES[rng.random_range(0..NODES.len())],
            };
            let client = GlobalClient::<Ledger>::new(LEDGER, cluster.registry(node));
            let client_rng = StdRng::seed_from_u64(rng.random());
            tokio::spawn(caller(id, node, client, client_rng, shared.clone()))
        })
        .collect();

    let driven = drive(holder, standby, &mut rng, &shared).await;
    shared.stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for c in callers {
        outcomes.push(c.await.expect("a caller task panicked"));
    }
    let acked: u64 = outcomes.iter().map(|o| o.acked).sum();
    let sum: u64 = outcomes.iter().map(|o| o.sum).sum();
    let mut problems: Vec<String> = outcomes
        .iter()
        .flat_map(|o| {
            let more = (o.more_anomalies > 0)
                .then(|| format!("client {}: {} more like these", o.id, o.more_anomalies));
            o.anomalies.iter().cloned().chain(more)
        })
        .collect();
    match &driven {
        Ok(log) => {
            for line in log {
                println!("{line}");
            }
            if log.len() != TAKEOVERS {
                problems.push(format!("{} takeovers, not {TAKEOVERS}", log.len()));
            }
        }
        Err(e) => problems.push(format!("driver: {e}")),
    }

    // The final state, read through the wire from the third node.
    let snapshot = GlobalClient::<Ledger>::new(LEDGER, cluster.registry("c"))
        .call(LedgerMsg::Snapshot, TIMEOUT)
        .await;
    match snapshot {
        Ok(LedgerReply::Snapshot(state)) => {
            for o in &outcomes {
                let applied = state.seqs.get(&o.id).map(Vec::as_slice).unwrap_or(&[]);
                if let Some(why) = check_seqs(applied, o.acked) {
                    problems.push(format!("client {} on {}: {why}", o.id, o.node));
                }
            }
            let strangers: Vec<&u32> = state
                .seqs
                .keys()
                .filter(|id| !outcomes.iter().any(|o| o.id == **id))
                .collect();
            if !strangers.is_empty() {
                problems.push(format!("seqs recorded for unknown clients {strangers:?}"));
            }
            if state.total != sum {
                problems.push(format!(
                    "final total {} != {sum}, the sum of the acknowledged amounts",
                    state.total
                ));
            }
        }
        other => problems.push(format!("final snapshot: {other:?}")),
    }

    let per_node: BTreeMap<&str, (usize, u64)> =
        outcomes.iter().fold(BTreeMap::new(), |mut m, o| {
            let e = m.entry(o.node).or_insert((0, 0));
            e.0 += 1;
            e.1 += o.acked;
            m
        });
    println!(
        "seed {seed}: {acked} calls acknowledged by {CLIENTS} callers \
         (callers, calls per node: {per_node:?}), {} takeovers, {:?}",
        driven.as_ref().map(Vec::len).unwrap_or(0),
        started.elapsed()
    );
    assert!(
        problems.is_empty(),
        "LOAD_SEED={seed}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}
