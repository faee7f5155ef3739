//! The server under test: a ledger of applied client sequence numbers,
//! whose hooks (`go`, `handle`, `merge`) write to a log, with the instance
//! and its epoch, so the checker knows which instance held which state when.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use ractor::{ActorId, ActorProcessingErr};
use ractor_takeover::registry::RegistrationInfo;
use ractor_takeover::*;
use serde::{Deserialize, Serialize};

use crate::generator::Fault;

pub type CallId = (u32, u64);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerState {
    /// Per client, the sequence numbers applied, in the order applied.
    pub applied: BTreeMap<u32, Vec<u64>>,
}

impl LedgerState {
    pub fn content(&self) -> BTreeSet<CallId> {
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
pub enum Entry {
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
pub struct Log(Arc<Mutex<Vec<Entry>>>);

impl Log {
    pub fn push(&self, e: Entry) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(e);
    }
    pub fn take(&self) -> Vec<Entry> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Clone)]
pub struct Ledger {
    pub log: Log,
}

impl TakeoverActor for Ledger {
    type Msg = LedgerMsg;
    type Reply = LedgerReply;
    type State = LedgerState;
    type Arguments = ();
    type Info = ();

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

    /// An instance that handed the name over is a standby again by itself;
    /// here it ends instead (it drains: what is queued is still forwarded),
    /// and the harness starts a fresh standby, as it always did. Why: the
    /// replay models an instance as one holding from its `go` to its end
    /// (a second `go` only as a failover of an old holder whose successor
    /// vanished); a standby that holds again would be a second life under
    /// the same id. The standby-again path has its own tests
    /// (`tests/lifecycle.rs`, `tests/real_standby_again.rs`).
    async fn on_handed_over(
        &self,
        ctx: &TakeoverCtx<Self>,
        _: &ractor_takeover::registry::NodeName,
        _: &mut LedgerState,
    ) -> Result<(), ActorProcessingErr> {
        ctx.myself().drain()?;
        Ok(())
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
}
