//! Synchronous standby: a holder answers a call only once the standby that
//! a crash failover would start has stored the call's effect.
//!
//! ```text
//!   client            holder (epoch e)                    standby (next in priority)
//!     |-- call ---------->| handle, seq n                       |
//!     |                   |-- Replica{e, n, delta or state} --->| fence (e, n), store
//!     |   (answer waits)  |   next calls: served, their        |
//!     |                   |   answers wait behind this one      |
//!     |                   |<---------- ReplicaAck{e, n} --------|
//!     |<-- answer --------| every answer up to n                |
//! ```
//!
//! What travels is the *effect* of the call, not the call: the whole new
//! state, or the delta the behaviour describes
//! ([`crate::TakeoverActor::take_delta`]). Why not the call, replayed on
//! the standby: a handler has side effects (it answers reply ports, it
//! talks to other systems under a fencing token) and may read the clock,
//! so running it twice is neither safe nor sure to give the same state.
//! A state image is what the standby needs at a failover, and a delta
//! keeps its cost to the size of the change.
//!
//! Replicas share their numbers with checkpoints (`Clock::seq`), and the
//! standby keeps them where it keeps checkpoints (`Warm`), so a failover
//! starts from the newest replica exactly as from a checkpoint, and a
//! takeover by a standby that holds the holder's current replica moves no
//! state at all (`StateUnchanged`).
//!
//! Answers wait in [`SyncOut`], in call order; an acknowledgement of `n`
//! releases every answer up to `n`, since replica `n` holds the effect of
//! every call before it. Answers are pipelined: the holder serves the next
//! calls while the acknowledgement is on its way.
//!
//! The window of answered calls (`crate::dedup`) is part of what is
//! replicated: a whole state carries it, a delta carries what it gained
//! (`ReplicaBody::answered`). A retried call that the window answers waits
//! too, while the replica that recorded it is not stored yet: its first
//! answer may still be waiting, and a crash now must not leave a caller
//! with an answer the next holder knows nothing of.
//!
//! This file holds the holder's side as the rest of the server calls it
//! (answer, hold, begin, release); sending replicas is in `replicate`, the
//! standbys' acknowledgements and the sync tick in `acks`.

mod acks;
mod replicate;

use std::collections::{BTreeMap, VecDeque};

use tokio::time::Instant;

use super::checkpoint::standby_name;
use super::{ServerState, Stage, TakeoverServer};
use crate::config::NoStandby;
use crate::dedup::WindowDelta;
use crate::message::{deliver, Answer, ReplicaBody, ReplicaImage};
use crate::{
    CallErr, Epoch, EventKind, HandoverMsg, NodeName, RegistrationInfo, TakeoverActor,
    TakeoverMessage,
};

/// A holder's side of synchronous standby.
pub(super) struct SyncOut<A: TakeoverActor> {
    /// Answers of applied calls, waiting for their replica's
    /// acknowledgement, in call order.
    waiting: VecDeque<Waiting<A>>,
    /// What each standby (by node) got from us and acknowledged, at
    /// `epoch`.
    peers: BTreeMap<NodeName, Peer>,
    /// The holder epoch `peers` is about: a new tenure starts afresh.
    epoch: Option<Epoch>,
    /// `NoStandby::Async` fell back: answers go at once until a standby
    /// has caught up.
    degraded: bool,
    /// A `SyncTick` is on its way.
    ticking: bool,
    /// The recent deltas, oldest first, after the last whole state: a
    /// standby a few replicas behind (the old holder of a takeover, back
    /// as a standby with the state it handed over) catches up with them
    /// instead of the whole state.
    history: VecDeque<(u64, u64, Change)>,
    history_bytes: usize,
    /// Per replica not yet stored, `(seq, window ordinal)`: the newest
    /// answered call it records. Why: a retry the window answers waits
    /// for the replica of its call.
    ordinals: VecDeque<(u64, u64)>,
    /// Every window entry up to this ordinal is stored by the standbys
    /// (in this tenure): a retry of one is answered at once.
    stored_ordinal: u64,
    /// Since when no standby could store a call (refuse mode holds calls
    /// for up to `ack_timeout` before it refuses them: a takeover leaves
    /// the new holder without a standby until the old one is back).
    alone_since: Option<Instant>,
    /// An answer of this tenure went out. Until one has, the state is
    /// still ours to give up for a standby's that holds more (see
    /// `conflict::merge`, `may_adopt`): no caller has seen it.
    pub(super) answered: bool,
    /// A takeover's `HandoverDone`, held until a standby stored our first
    /// replica (see `handover_done`).
    done: Option<DeferredDone>,
}

/// A `HandoverDone` not sent yet: to `old`, for our registration
/// `successor`, once replica `seq` is stored.
struct DeferredDone {
    old: crate::Registration,
    successor: RegistrationInfo,
    seq: u64,
    since: Instant,
}

impl<A: TakeoverActor> Default for SyncOut<A> {
    fn default() -> Self {
        Self {
            waiting: VecDeque::new(),
            peers: BTreeMap::new(),
            epoch: None,
            degraded: false,
            ticking: false,
            history: VecDeque::new(),
            history_bytes: 0,
            ordinals: VecDeque::new(),
            stored_ordinal: 0,
            alone_since: None,
            answered: false,
            done: None,
        }
    }
}

struct Waiting<A: TakeoverActor> {
    seq: u64,
    since: Instant,
    reply: Answer<A>,
    answer: Answered<A>,
}

impl<A: TakeoverActor> Waiting<A> {
    fn send(self) {
        self.answer.send(self.reply);
    }
}

/// An answer to send once its replica is stored: the handler's reply, or
/// one encoded already (a keyed call's, as the window keeps it).
pub(super) enum Answered<A: TakeoverActor> {
    Reply(A::Reply),
    Encoded(Vec<u8>),
}

impl<A: TakeoverActor> Answered<A> {
    pub(super) fn send(self, to: Answer<A>) {
        match self {
            Self::Reply(answer) => to.send(Ok(answer)),
            Self::Encoded(bytes) => to.send_encoded(bytes),
        }
    }
}

/// One replica's change: the behaviour's delta and what the window of
/// answered calls gained.
#[derive(Clone)]
struct Change {
    image: Vec<u8>,
    answered: WindowDelta,
}

impl Change {
    fn size(&self) -> usize {
        self.image.len() + self.answered.size()
    }

    fn body(self) -> ReplicaBody {
        ReplicaBody {
            image: ReplicaImage::Delta(self.image),
            answered: Some(self.answered),
        }
    }
}

/// One standby, as its holder sees it.
#[derive(Default)]
struct Peer {
    /// Its entry in the standby group, once seen there. Why: peers are
    /// kept by node, and a new instance on the node (the old one stopped
    /// once it had handed over, or its node restarted) has none of what
    /// the old one got; a new entry is a new peer.
    entry: Option<RegistrationInfo>,
    /// The newest replica it acknowledged.
    acked: u64,
    /// The newest replica sent to it; a delta goes only on top of it.
    sent: u64,
    sent_at: Option<Instant>,
    /// It lacks a replica a delta would build on: it gets the whole state.
    broken: bool,
    /// It has a replica of this tenure to build on: it got one from us,
    /// or is the old holder of our takeover (it kept the state it handed
    /// over as replica 0). Otherwise it gets the whole state.
    known: bool,
    /// A whole state in parts is on its way to it, as this replica: the
    /// deltas made meanwhile wait here (they would overtake the parts).
    in_parts: Option<u64>,
    queued: VecDeque<(u64, u64, Change)>,
    queued_bytes: usize,
}

/// Deltas queued behind a state in parts, at most: past it the standby
/// gets the whole state again once the parts are in.
const QUEUE_MAX_BYTES: usize = 64 << 20;

/// The recent deltas kept to catch a standby up, at most (bytes, count).
const HISTORY_MAX_BYTES: usize = 16 << 20;
const HISTORY_MAX: usize = 10_000;

impl<A: TakeoverActor> SyncOut<A> {
    /// The peer `standby` (an entry of the standby group) is: afresh if
    /// the entry is not the one we knew on its node.
    fn peer(&mut self, standby: &RegistrationInfo) -> &mut Peer {
        let peer = self.peers.entry(standby.node.clone()).or_default();
        match &peer.entry {
            Some(known) if known != standby => {
                *peer = Peer {
                    entry: Some(standby.clone()),
                    ..Peer::default()
                };
            }
            Some(_) => {}
            None => peer.entry = Some(standby.clone()),
        }
        peer
    }
}

impl<A: TakeoverActor> TakeoverServer<A> {
    pub(super) fn sync_on(&self) -> bool {
        self.config.sync.is_some()
    }

    /// Refuse mode with no standby to store a call: the caller gets
    /// `NoStandby`, and the call is not applied.
    pub(super) fn sync_refuses(&self, state: &mut ServerState<A>) -> bool {
        match &self.config.sync {
            Some(s) if s.on_no_standby == NoStandby::Refuse => self.stored_upto(state).is_none(),
            _ => false,
        }
    }

    /// Refuse mode, and no standby for less than `ack_timeout`: calls wait
    /// in the buffer for one (a takeover's old holder coming back as a
    /// standby, a standby restarting) before they are refused.
    pub(super) fn sync_holds(&self, state: &mut ServerState<A>) -> bool {
        let Some(sync) = &self.config.sync else {
            return false;
        };
        if sync.on_no_standby != NoStandby::Refuse || !matches!(state.stage, Stage::Holder(_)) {
            return false;
        }
        if self.stored_upto(state).is_some() {
            state.sync.alone_since = None;
            return false;
        }
        let since = *state.sync.alone_since.get_or_insert_with(Instant::now);
        let holds = since.elapsed() < sync.ack_timeout;
        if holds {
            self.arm_sync_tick(state);
        }
        holds
    }

    /// After a call was applied: replicate its effect, and answer once it
    /// is stored.
    pub(super) fn sync_answer(
        &self,
        state: &mut ServerState<A>,
        reply: Option<Answer<A>>,
        answer: Answered<A>,
    ) {
        let delta = self.behaviour.take_delta(&mut state.user);
        let seq = self.replicate(state, delta);
        match (reply, seq) {
            (Some(reply), Some(seq)) => state.sync.waiting.push_back(Waiting {
                seq,
                since: Instant::now(),
                reply,
                answer,
            }),
            // No replica (the state does not encode): the effect cannot be
            // stored, the call was applied. Answered at once, as warm
            // standby would (the warning says why).
            (Some(reply), None) => {
                state.sync.answered = true;
                answer.send(reply);
            }
            (None, _) => {}
        }
        self.release(state);
    }

    /// A retried call the window of answered calls answers (its entry at
    /// `ordinal`): at once if the standbys stored the replica that
    /// recorded it, else once they have (see the module docs).
    pub(super) fn sync_answer_again(
        &self,
        state: &mut ServerState<A>,
        reply: Answer<A>,
        bytes: Vec<u8>,
        ordinal: u64,
    ) {
        let current = match &state.stage {
            Stage::Holder(h) => h.clock.seq,
            _ => 0,
        };
        if ordinal <= state.sync.stored_ordinal || state.sync.degraded {
            state.sync.answered = true;
            return reply.send_encoded(bytes);
        }
        // The first replica that recorded it, or (it came with the state
        // this tenure started from) the newest.
        let seq = state
            .sync
            .ordinals
            .iter()
            .find(|(_, o)| *o >= ordinal)
            .map_or(current, |(s, _)| *s);
        state.sync.waiting.push_back(Waiting {
            seq,
            since: Instant::now(),
            reply,
            answer: Answered::Encoded(bytes),
        });
        // Kept in seq order: release answers from the front.
        state.sync.waiting.make_contiguous().sort_by_key(|w| w.seq);
        self.release(state);
    }

    /// After something other than a call changed the state (an info, a
    /// merge, `go`): replicate it too, so the next delta builds on it.
    pub(super) fn sync_changed(&self, state: &mut ServerState<A>) {
        if !self.sync_on() || !matches!(state.stage, Stage::Holder(_)) {
            return;
        }
        let delta = self.behaviour.take_delta(&mut state.user);
        self.replicate(state, delta);
        self.release(state);
    }

    /// A new tenure (`go` has run): every standby gets the whole state.
    pub(super) fn sync_begin(&self, state: &mut ServerState<A>, start: &crate::StartType) {
        if !self.sync_on() {
            return;
        }
        state.sync.peers.clear();
        state.sync.history.clear();
        state.sync.history_bytes = 0;
        state.sync.ordinals.clear();
        state.sync.stored_ordinal = 0;
        state.sync.alone_since = None;
        state.sync.answered = false;
        state.sync.epoch = state.ctx.epoch();
        if let (crate::StartType::Takeover { from }, Stage::Holder(h)) = (start, &state.stage) {
            // The old holder keeps the state it handed over as replica 0
            // of our tenure (see `handover::handed_over`): what `go`
            // changed, as a delta, is all it lacks. Only if our numbers
            // start at 0, as a pulled takeover's do.
            if h.clock.seq == 0 {
                let peer = state.sync.peers.entry(from.clone()).or_default();
                peer.known = true;
            }
        }
        // `go`'s changes, on top of the state we started from.
        let delta = self.behaviour.take_delta(&mut state.user);
        self.replicate(state, delta);
        self.arm_sync_tick(state);
    }

    /// A pulled takeover is in: tell the old holder, which then retires
    /// (and its behaviour may stop it, or its node may stop for a drain).
    /// With synchronous standby, only once a standby we wait for stored
    /// the replica our tenure began with: until then the state the old
    /// holder handed over lives in this instance alone, and a crash here
    /// would lose every call acknowledged before the takeover (fault seed
    /// 4260756349: the old holder stopped, the new one crashed while its
    /// first replica was on its way in parts). The old holder, still
    /// retiring, resumes from what it sent if we crash first. With no
    /// standby in view, held only while another node of the placement is
    /// live (its standby may be starting: the old ones stopped once they
    /// had handed over, seed 3094847983); else not, since the old holder
    /// becomes our standby. For at most `ack_timeout` (a standby that
    /// does not answer must not keep the old holder retiring), or until
    /// the old holder asks.
    pub(super) fn handover_done(
        &self,
        state: &mut ServerState<A>,
        old: crate::Registration,
        successor: RegistrationInfo,
    ) {
        let seq = match &state.stage {
            Stage::Holder(h) if self.sync_on() => h.clock.seq,
            _ => 0,
        };
        let wait = seq > 0 && !self.done_may_go(state, seq, old.node());
        state.sync.done = Some(DeferredDone {
            old,
            successor,
            seq,
            since: Instant::now(),
        });
        if wait {
            tracing::debug!(
                seq,
                "HandoverDone waits for a standby to store our first replica"
            );
            self.arm_sync_tick(state);
        } else {
            self.flush_handover_done(state);
        }
    }

    /// Whether a takeover's `HandoverDone` may go: the standbys we wait
    /// for stored replica `seq`, or none is in view and none may come but
    /// the old holder on `old` (see `handover_done`).
    fn done_may_go(&self, state: &ServerState<A>, seq: u64, old: &NodeName) -> bool {
        match self.stored_upto(state) {
            Some(upto) => upto >= seq,
            None => {
                let Some(placement) = &self.config.placement else {
                    return true;
                };
                let me = self.registry.node();
                !self
                    .registry
                    .live_nodes()
                    .iter()
                    .any(|n| n != me && n != old && placement.priority(n).is_some())
            }
        }
    }

    /// Sends a held `HandoverDone` now; whether one was held.
    pub(super) fn flush_handover_done(&self, state: &mut ServerState<A>) -> bool {
        let Some(d) = state.sync.done.take() else {
            return false;
        };
        let done = HandoverMsg::HandoverDone {
            successor: d.successor,
        };
        deliver(
            &state.registry,
            &d.old,
            TakeoverMessage::<A>::Handover(done),
        );
        true
    }

    /// The state leaves with a takeover or a merge offer: the successor
    /// or the winner has every effect, so the answers go.
    pub(super) fn sync_release_all(&self, state: &mut ServerState<A>) {
        self.flush_handover_done(state);
        for w in std::mem::take(&mut state.sync.waiting) {
            state.sync.answered = true;
            w.send();
        }
    }

    /// Gives up this tenure's state for `theirs`, a standby's replica (or
    /// a loser's state) that holds everything ours started from and more
    /// (see `conflict::merge`). The calls we applied meanwhile were
    /// answered to nobody: their callers get `NoReply` (outcome unknown;
    /// a retry runs on the state we keep, once). Our own replicas' entries
    /// stay in its lineage, so a standby that stored one of them takes the
    /// whole state the new tenure (`handover::hold_anew`) sends.
    pub(super) fn sync_adopt(
        &self,
        state: &mut ServerState<A>,
        theirs: A::State,
        mut answered: crate::dedup::Window,
    ) {
        let ours = std::mem::take(&mut state.answered.lineage);
        answered.lineage.absorb(&ours);
        answered.replaced();
        state.user = theirs;
        state.answered = answered;
        self.sync_fail(state);
    }

    /// Whether this holder may give up its state for `theirs` whole (see
    /// `sync_adopt`): synchronous standby, no answer of this tenure went
    /// out, and `theirs` holds everything our state started from and
    /// something it did not.
    pub(super) fn may_adopt(&self, state: &ServerState<A>, theirs: &crate::dedup::Window) -> bool {
        let Some(tenure) = state.ctx.tenure else {
            return false;
        };
        let ours = &state.answered.lineage;
        self.sync_on()
            && !state.sync.answered
            && theirs.lineage.holds_all(ours, tenure)
            && !ours.holds_all(&theirs.lineage, Epoch::MAX)
    }

    /// The instance failed: what waits was applied but maybe not stored.
    pub(super) fn sync_fail(&self, state: &mut ServerState<A>) {
        for w in std::mem::take(&mut state.sync.waiting) {
            w.reply.send(Err(CallErr::NoReply));
        }
    }

    /// The replica every standby we must wait for has stored, or `None`
    /// when there is no such standby (or, in quorum mode, too few).
    fn stored_upto(&self, state: &ServerState<A>) -> Option<u64> {
        let standbys: Vec<NodeName> = self
            .registry
            .members(&standby_name(&self.name))
            .iter()
            .map(|m| m.node().clone())
            .collect();
        let acked = |n: &NodeName| state.sync.peers.get(n).map_or(0, |p| p.acked);
        // The next in priority: the standbys of the best priority present
        // (a failover starts one of them), or all of them.
        let best = self
            .config
            .placement
            .as_ref()
            .and_then(|p| standbys.iter().filter_map(|n| p.priority(n)).min());
        let tier: Vec<&NodeName> = match (&self.config.placement, best) {
            (Some(p), Some(best)) => standbys
                .iter()
                .filter(|n| p.priority(n) == Some(best))
                .collect(),
            _ => standbys.iter().collect(),
        };
        let mut upto = tier.iter().map(|n| acked(n)).min()?;
        if let (true, Some(p)) = (self.config.quorum, &self.config.placement) {
            // A majority of the placement's nodes, the holder one of them.
            let nodes = p.groups().iter().map(Vec::len).sum::<usize>();
            let need = nodes / 2;
            let mut acks: Vec<u64> = standbys
                .iter()
                .filter(|n| p.priority(n).is_some())
                .map(acked)
                .collect();
            acks.sort_unstable_by(|a, b| b.cmp(a));
            if need > 0 {
                upto = upto.min(*acks.get(need - 1)?);
            }
        }
        Some(upto)
    }

    /// Answers what the standbys have stored; falls back to answering at
    /// once (async mode) when there is no standby.
    fn release(&self, state: &mut ServerState<A>) {
        let Some(sync) = &self.config.sync else {
            return;
        };
        let current = match &state.stage {
            Stage::Holder(h) => h.clock.seq,
            _ => return,
        };
        let go = state.sync.done.as_ref().is_some_and(|d| {
            d.since.elapsed() >= sync.ack_timeout || self.done_may_go(state, d.seq, d.old.node())
        });
        if go {
            self.flush_handover_done(state);
        }
        match self.stored_upto(state) {
            Some(upto) => {
                while state.sync.waiting.front().is_some_and(|w| w.seq <= upto) {
                    if let Some(w) = state.sync.waiting.pop_front() {
                        state.sync.answered = true;
                        w.send();
                    }
                }
                while let Some((_, ordinal)) = state
                    .sync
                    .ordinals
                    .front()
                    .filter(|(s, _)| *s <= upto)
                    .copied()
                {
                    state.sync.ordinals.pop_front();
                    state.sync.stored_ordinal = state.sync.stored_ordinal.max(ordinal);
                }
                if state.sync.degraded && upto >= current {
                    state.sync.degraded = false;
                    tracing::info!("a standby caught up; answering only what it stored");
                    self.publish(state, EventKind::SyncRestored);
                }
            }
            None if sync.on_no_standby == NoStandby::Async => {
                self.degrade(state, "no standby in view".into());
            }
            None => {}
        }
        if state.sync.degraded {
            self.sync_release_all(state);
        }
        self.arm_sync_tick(state);
    }

    fn degrade(&self, state: &mut ServerState<A>, reason: String) {
        if !state.sync.degraded {
            state.sync.degraded = true;
            tracing::warn!(%reason, "synchronous standby lost; answering without a standby");
            self.publish(state, EventKind::SyncLost { reason });
        }
    }

    /// Whether `requester` holds our state as it is now, so that a
    /// takeover by it needs to move nothing: its replica (`have`) is ours
    /// at our epoch and nothing changed since, or (synchronous standby)
    /// every replica up to now went to it, in order, on the link the
    /// answer takes.
    pub(super) fn state_unchanged_for(
        &self,
        state: &ServerState<A>,
        requester: &RegistrationInfo,
        have: Option<(Epoch, u64)>,
    ) -> Option<u64> {
        let Stage::Holder(h) = &state.stage else {
            return None;
        };
        let (epoch, seq) = have?;
        if Some(epoch) != state.ctx.epoch() || h.clock.dirty || h.clock.seq == 0 {
            return None;
        }
        let sent_all = self.sync_on()
            && state.sync.epoch == Some(epoch)
            && state.sync.peers.get(&requester.node).is_some_and(|p| {
                p.sent == h.clock.seq && !p.broken && p.in_parts.is_none() && p.queued.is_empty()
            });
        (seq == h.clock.seq || sent_all).then_some(h.clock.seq)
    }
}
