//! A power monitor (the classic Erlang takeover example): a cluster-global server that counts
//! power-failure reports from clients and answers queries. Shared by the
//! multi-process demo, the test node and the real-cluster tests.

use std::collections::BTreeMap;

use ractor::ActorProcessingErr;
use ractor_takeover::{StartType, TakeoverActor, TakeoverCtx};
use serde::{Deserialize, Serialize};

/// The global name.
pub const NAME: &str = "power_monitor";

/// What clients send.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum PowerMsg {
    /// A power failure in `building`; `seq` numbers one client's reports, so
    /// that the monitor can count any it sees twice.
    Report {
        /// Where the power failed.
        building: String,
        /// The client's report number.
        seq: u64,
    },
    /// How many reports so far.
    Count,
    /// Grow the state by `bytes` of filler (to measure big transfers).
    Ballast {
        /// The filler's size.
        bytes: usize,
    },
    /// Make the handler panic (to test what its callers see).
    Panic,
    /// Apply the call named `key` (unique per call): the exactly-once
    /// tests send each once, and the state records every time it ran.
    /// Answers with how many distinct keys ran so far in `total`.
    Once {
        /// The call's own name.
        key: String,
    },
    /// How the call named `key` ran: `total` is how many times (0, 1, or
    /// more if it ran twice), and `node`, `epoch` and `duplicates` are
    /// those of the reply its first run gave, to compare with the one its
    /// caller got.
    Applied {
        /// The call's own name.
        key: String,
    },
}

/// What the monitor answers: the count after the request, and who answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerReply {
    /// Reports counted so far.
    pub total: u64,
    /// The node that answered.
    pub node: String,
    /// Its epoch (fencing token).
    pub epoch: u64,
    /// Reports seen twice (a `seq` not above the last one).
    pub duplicates: u64,
}

/// The state that moves on takeover.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PowerState {
    /// Reports counted.
    pub total: u64,
    /// Reports per building.
    pub per_building: BTreeMap<String, u64>,
    /// The highest report `seq` seen.
    pub last_seq: u64,
    /// Reports whose `seq` was not above `last_seq`.
    pub duplicates: u64,
    /// Filler bytes (see [`PowerMsg::Ballast`]).
    #[serde(with = "ractor_takeover::codec::bytes")]
    pub ballast: Vec<u8>,
    /// Each [`PowerMsg::Once`] key: how many times it ran, and the reply
    /// its first run gave.
    pub once: BTreeMap<String, (u64, PowerReply)>,
}

/// The behaviour.
pub struct PowerMonitor;

impl TakeoverActor for PowerMonitor {
    type Msg = PowerMsg;
    type Reply = PowerReply;
    type State = PowerState;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<PowerState, ActorProcessingErr> {
        Ok(PowerState::default())
    }

    async fn go(
        &self,
        ctx: &TakeoverCtx<Self>,
        start: &StartType,
        state: &mut PowerState,
    ) -> Result<(), ActorProcessingErr> {
        tracing::info!(node = %ctx.node(), epoch = ?ctx.epoch(), ?start, total = state.total, "power monitor running");
        Ok(())
    }

    async fn handle(
        &self,
        ctx: &TakeoverCtx<Self>,
        msg: PowerMsg,
        state: &mut PowerState,
    ) -> Result<PowerReply, ActorProcessingErr> {
        match msg {
            PowerMsg::Report { building, seq } => {
                if seq <= state.last_seq {
                    state.duplicates += 1;
                }
                state.last_seq = state.last_seq.max(seq);
                state.total += 1;
                *state.per_building.entry(building).or_default() += 1;
            }
            PowerMsg::Count => {}
            PowerMsg::Ballast { bytes } => state.ballast = vec![0xA5; bytes],
            PowerMsg::Panic => panic!("power monitor asked to panic"),
            PowerMsg::Once { key } => {
                let reply = PowerReply {
                    total: state.once.len() as u64 + 1,
                    node: ctx.node().to_string(),
                    epoch: ctx.epoch().unwrap_or(0),
                    duplicates: state.duplicates,
                };
                let ran = state.once.entry(key).or_insert((0, reply.clone()));
                ran.0 += 1;
                if ran.0 > 1 {
                    // Ran twice: counted, and answered as a second run
                    // would be, not with the first run's reply.
                    state.duplicates += 1;
                    return Ok(PowerReply {
                        total: state.once.len() as u64,
                        duplicates: state.duplicates,
                        ..reply
                    });
                }
                return Ok(reply);
            }
            PowerMsg::Applied { key } => {
                return Ok(match state.once.get(&key) {
                    Some((times, first)) => PowerReply {
                        total: *times,
                        ..first.clone()
                    },
                    None => PowerReply {
                        total: 0,
                        node: String::new(),
                        epoch: 0,
                        duplicates: 0,
                    },
                });
            }
        }
        Ok(PowerReply {
            total: state.total,
            node: ctx.node().to_string(),
            epoch: ctx.epoch().unwrap_or(0),
            duplicates: state.duplicates,
        })
    }
}

/// Callers that send reports to the power monitor without pause, one
/// building each, and keep every answer they get (the real-process tests'
/// load: a call that fails was not acknowledged, and is not kept).
#[derive(Debug)]
pub struct ReportLoad {
    oks: std::sync::Arc<std::sync::Mutex<Vec<PowerReply>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    callers: Vec<tokio::task::JoinHandle<()>>,
}

impl ReportLoad {
    /// Starts `callers` callers on `client`, each call with `timeout`.
    pub fn start(
        client: &ractor_takeover::GlobalClient<PowerMonitor>,
        callers: usize,
        timeout: std::time::Duration,
    ) -> Self {
        use std::sync::atomic::Ordering;
        let oks: std::sync::Arc<std::sync::Mutex<Vec<PowerReply>>> = Default::default();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let callers = (0..callers)
            .map(|caller| {
                let (client, oks, stop) = (client.clone(), oks.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut seq = 0;
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        let report = PowerMsg::Report {
                            building: format!("caller{caller}"),
                            seq,
                        };
                        if let Ok(r) = client.call(report, timeout).await {
                            oks.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                        }
                    }
                })
            })
            .collect();
        Self { oks, stop, callers }
    }

    /// The answers so far, in the order they came.
    pub fn answers(&self) -> Vec<PowerReply> {
        self.oks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many answers came from `node`.
    pub fn count(&self, node: &str) -> usize {
        let oks = self.oks.lock().unwrap_or_else(|e| e.into_inner());
        oks.iter().filter(|r| r.node == node).count()
    }

    /// Stops the callers (each finishes its call in flight) and returns
    /// every answer.
    pub async fn stop(self) -> Vec<PowerReply> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for caller in self.callers {
            caller.await.expect("a caller panicked");
        }
        let oks = self.oks.lock().unwrap_or_else(|e| e.into_inner());
        oks.clone()
    }
}
