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

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use tokio::time::Instant;

use super::checkpoint::standby_name;
use super::{ServerState, Stage, TakeoverServer};
use crate::config::NoStandby;
use crate::dedup::WindowDelta;
use crate::message::{deliver, Answer, ReplicaBody, ReplicaImage};
use crate::{
    CallErr, Epoch, EventKind, HandoverMsg, NodeName, PartOf, Registration, RegistrationInfo,
    StateCodecErr, TakeoverActor, TakeoverMessage,
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
            (Some(reply), None) => answer.send(reply),
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

    /// The state leaves with a takeover or a merge offer: the successor
    /// or the winner has every effect, so the answers go.
    pub(super) fn sync_release_all(&self, state: &mut ServerState<A>) {
        for w in std::mem::take(&mut state.sync.waiting) {
            w.send();
        }
    }

    /// The instance failed: what waits was applied but maybe not stored.
    pub(super) fn sync_fail(&self, state: &mut ServerState<A>) {
        for w in std::mem::take(&mut state.sync.waiting) {
            w.reply.send(Err(CallErr::NoReply));
        }
    }

    /// Sends the effect of the last change, as replica `seq`, to every
    /// standby. Returns `seq`, or `None` when nothing could be sent.
    fn replicate(
        &self,
        state: &mut ServerState<A>,
        delta: Option<Result<Vec<u8>, StateCodecErr>>,
    ) -> Option<u64> {
        let me = state.ctx.registration.as_ref()?.info().clone();
        if state.sync.epoch != Some(me.epoch) {
            state.sync.peers.clear();
            state.sync.ordinals.clear();
            state.sync.stored_ordinal = 0;
            state.sync.epoch = Some(me.epoch);
        }
        // Taken whatever goes (a delta or the whole state), so that the
        // next delta starts after this replica.
        let window = state.answered.take_delta();
        let Stage::Holder(holder) = &mut state.stage else {
            return None;
        };
        holder.clock.seq += 1;
        holder.clock.at = holder.clock.handled;
        holder.clock.dirty = false;
        let (seq, handled) = (holder.clock.seq, holder.clock.handled);
        state
            .sync
            .ordinals
            .push_back((seq, state.answered.applied()));
        if state.sync.ordinals.len() > HISTORY_MAX {
            // Alone for long (async mode): a retry of an old entry waits
            // for a later replica instead, which holds it too.
            state.sync.ordinals.pop_front();
        }
        let delta = match (delta, window) {
            (Some(Ok(image)), Some(answered)) => Some(Change { image, answered })
                .filter(|c| c.size() <= self.config.state_part_bytes),
            // A merge renumbered the window: only a whole state says it.
            (Some(Ok(_)), None) | (None, _) => None,
            (Some(Err(e)), _) => {
                tracing::warn!(error = %e, "delta does not encode; the whole state goes");
                None
            }
        };
        match &delta {
            Some(d) => {
                let sync = &mut state.sync;
                sync.history_bytes += d.size();
                sync.history.push_back((seq, handled, d.clone()));
                while sync.history_bytes > HISTORY_MAX_BYTES || sync.history.len() > HISTORY_MAX {
                    match sync.history.pop_front() {
                        Some((_, _, old)) => sync.history_bytes -= old.size(),
                        None => break,
                    }
                }
            }
            None => {
                // A whole state: no delta before it builds on it.
                state.sync.history.clear();
                state.sync.history_bytes = 0;
            }
        }
        let mut full: Option<Arc<Vec<u8>>> = None;
        for standby in self.registry.members(&standby_name(&self.name)) {
            let node = standby.node().clone();
            let peer = state.sync.peers.entry(node.clone()).or_default();
            if peer.in_parts.is_some() {
                match &delta {
                    Some(d) if !peer.broken && peer.queued_bytes + d.size() <= QUEUE_MAX_BYTES => {
                        peer.queued_bytes += d.size();
                        peer.queued.push_back((seq, handled, d.clone()));
                    }
                    _ => peer.broken = true,
                }
                continue;
            }
            if let (Some(d), false, true) =
                (&delta, peer.broken, peer.known && peer.sent + 1 == seq)
            {
                peer.sent = seq;
                peer.sent_at = Some(Instant::now());
                let body = d.clone().body();
                self.send_replica(state, &standby, &me, seq, handled, body);
                continue;
            }
            // A few replicas behind (it came back as a standby since):
            // the deltas it lacks, this one included, if we kept them.
            let from = peer.sent + 1;
            if delta.is_some()
                && !peer.broken
                && peer.known
                && self.catch_up(state, &standby, &me, from)
            {
                continue;
            }
            if full.is_none() {
                match self.encode_for_transfer(&state.user, &state.answered) {
                    Ok(b) => full = Some(Arc::new(b)),
                    Err(e) => {
                        tracing::warn!(error = %e, "state does not encode; no replica");
                        return None;
                    }
                }
            }
            if let Some(bytes) = &full {
                self.send_full(state, &standby, &me, seq, handled, bytes.clone());
            }
        }
        Some(seq)
    }

    fn send_replica(
        &self,
        state: &ServerState<A>,
        to: &Registration,
        me: &RegistrationInfo,
        seq: u64,
        handled: u64,
        body: ReplicaBody,
    ) {
        let msg = HandoverMsg::Replica {
            holder: me.clone(),
            seq,
            handled,
            body,
        };
        deliver(&state.registry, to, TakeoverMessage::<A>::Handover(msg));
    }

    /// The whole state as replica `seq`: in one `Replica`, or as a
    /// `Checkpoint` in parts when it is bigger than a part.
    fn send_full(
        &self,
        state: &mut ServerState<A>,
        to: &Registration,
        me: &RegistrationInfo,
        seq: u64,
        handled: u64,
        bytes: Arc<Vec<u8>>,
    ) {
        if let Some(peer) = state.sync.peers.get_mut(to.node()) {
            peer.sent = seq;
            peer.sent_at = Some(Instant::now());
            peer.broken = false;
            peer.known = true;
            if bytes.len() > self.config.state_part_bytes {
                peer.in_parts = Some(seq);
            }
        }
        if bytes.len() <= self.config.state_part_bytes {
            let bytes = Arc::try_unwrap(bytes).unwrap_or_else(|shared| (*shared).clone());
            let body = ReplicaBody {
                image: ReplicaImage::Full(bytes),
                answered: None,
            };
            return self.send_replica(state, to, me, seq, handled, body);
        }
        let of = PartOf::Checkpoint {
            holder: me.clone(),
            seq,
            handled,
        };
        self.send_state(state, to, of, bytes);
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
        match self.stored_upto(state) {
            Some(upto) => {
                while state.sync.waiting.front().is_some_and(|w| w.seq <= upto) {
                    if let Some(w) = state.sync.waiting.pop_front() {
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

    fn arm_sync_tick(&self, state: &mut ServerState<A>) {
        let (Some(sync), Some(epoch)) = (&self.config.sync, state.ctx.epoch()) else {
            return;
        };
        if state.sync.ticking || !matches!(state.stage, Stage::Holder(_)) {
            return;
        }
        state.sync.ticking = true;
        self.timer(
            state,
            sync.ack_timeout / 4,
            TakeoverMessage::SyncTick(epoch),
        );
    }

    /// Every quarter `ack_timeout` while holding: a standby that joined or
    /// whose replica got no acknowledgement in time gets the whole state;
    /// answers that waited `ack_timeout` make async mode fall back.
    pub(super) async fn on_sync_tick(
        &self,
        state: &mut ServerState<A>,
        epoch: Epoch,
    ) -> Result<(), ractor::ActorProcessingErr> {
        self.sync_tick(state, epoch);
        // Calls held for a standby: served (or refused) now.
        self.serve_held_if_answering(state).await
    }

    fn sync_tick(&self, state: &mut ServerState<A>, epoch: Epoch) {
        state.sync.ticking = false;
        let Some(sync) = self.config.sync.clone() else {
            return;
        };
        let current = match &state.stage {
            Stage::Holder(h) if state.ctx.epoch() == Some(epoch) => h.clock.seq,
            _ => return,
        };
        let Some(me) = state.ctx.registration.as_ref().map(|r| r.info().clone()) else {
            return;
        };
        if !self.lease_now(state) {
            self.arm_sync_tick(state);
            return;
        }
        let now = Instant::now();
        let mut full: Option<Arc<Vec<u8>>> = None;
        for standby in self.registry.members(&standby_name(&self.name)) {
            let peer = state.sync.peers.entry(standby.node().clone()).or_default();
            if peer.in_parts.is_some()
                && peer
                    .sent_at
                    .is_some_and(|t| now.duration_since(t) >= sync.ack_timeout)
                && !self.checkpoint_going_to(state, standby.info())
            {
                // The whole state in parts was given up on the way (a
                // closed session, a stalled transfer): it goes again.
                let Some(peer) = state.sync.peers.get_mut(standby.node()) else {
                    continue;
                };
                peer.in_parts = None;
                peer.broken = true;
                peer.queued.clear();
                peer.queued_bytes = 0;
            }
            let Some(peer) = state.sync.peers.get_mut(standby.node()) else {
                continue;
            };
            if peer.known && peer.sent_at.is_none() {
                // The old holder of our takeover: it says what it has
                // when it is back; the whole state only if it does not.
                peer.sent_at = Some(now);
                continue;
            }
            let lagging = peer.acked < current
                && peer.in_parts.is_none()
                && peer
                    .sent_at
                    .is_none_or(|t| now.duration_since(t) >= sync.ack_timeout);
            if !lagging {
                continue;
            }
            if full.is_none() {
                match self.encode_for_transfer(&state.user, &state.answered) {
                    Ok(b) => full = Some(Arc::new(b)),
                    Err(e) => {
                        tracing::warn!(error = %e, "state does not encode; no replica");
                        break;
                    }
                }
            }
            if let Some(bytes) = &full {
                let handled = match &state.stage {
                    Stage::Holder(h) => h.clock.handled,
                    _ => 0,
                };
                self.send_full(state, &standby, &me, current, handled, bytes.clone());
            }
        }
        let overdue = state
            .sync
            .waiting
            .front()
            .is_some_and(|w| now.duration_since(w.since) >= sync.ack_timeout);
        if overdue && sync.on_no_standby == NoStandby::Async {
            let reason = format!("no standby acknowledged within {:?}", sync.ack_timeout);
            self.degrade(state, reason);
        }
        // Callers past their deadline got `Timeout`; their answers need not wait.
        state
            .sync
            .waiting
            .retain(|w| w.reply.deadline().is_none_or(|d| d > now));
        self.release(state);
    }

    /// On the holder: a standby's acknowledgement.
    pub(super) async fn on_replica_ack(
        &self,
        state: &mut ServerState<A>,
        holder_epoch: Epoch,
        seq: u64,
        standby: NodeName,
        need_full: bool,
    ) -> Result<(), ractor::ActorProcessingErr> {
        self.replica_ack(state, holder_epoch, seq, standby, need_full);
        // Calls held for want of a standby: this may be the one.
        self.serve_held_if_answering(state).await
    }

    fn replica_ack(
        &self,
        state: &mut ServerState<A>,
        holder_epoch: Epoch,
        seq: u64,
        standby: NodeName,
        need_full: bool,
    ) {
        if !matches!(state.stage, Stage::Holder(_)) || state.sync.epoch != Some(holder_epoch) {
            return;
        }
        let Some(me) = state.ctx.registration.as_ref().map(|r| r.info().clone()) else {
            return;
        };
        let Some(to) = self
            .registry
            .members(&standby_name(&self.name))
            .into_iter()
            .find(|m| *m.node() == standby)
        else {
            return;
        };
        let peer = state.sync.peers.entry(standby).or_default();
        peer.acked = peer.acked.max(seq);
        if need_full {
            peer.broken = true;
            peer.in_parts = None;
            peer.queued.clear();
            peer.queued_bytes = 0;
        } else if peer.in_parts.is_some_and(|s| seq >= s) {
            // The whole state is in: the deltas made meanwhile follow it.
            peer.in_parts = None;
            peer.queued_bytes = 0;
            let queued = std::mem::take(&mut peer.queued);
            for (seq, handled, d) in queued {
                if let Some(peer) = state.sync.peers.get_mut(to.node()) {
                    peer.sent = seq;
                    peer.sent_at = Some(Instant::now());
                }
                self.send_replica(state, &to, &me, seq, handled, d.body());
            }
        }
        let (current, handled) = match &state.stage {
            Stage::Holder(h) => (h.clock.seq, h.clock.handled),
            _ => return,
        };
        // It acknowledged a replica older than the ones we sent it, or
        // than ours when we sent it nothing since (a standby that came
        // back says what it has): the deltas since, if we still have
        // them all, else the whole state.
        let behind = state
            .sync
            .peers
            .get(to.node())
            .filter(|p| p.in_parts.is_none() && p.acked < current && p.sent <= p.acked)
            .map(|p| (p.acked, p.known));
        let caught_up = match (need_full, behind) {
            (false, Some((acked, true))) => self.catch_up(state, &to, &me, acked + 1),
            (false, _) => true,
            (true, _) => false,
        };
        if !caught_up {
            match self.encode_for_transfer(&state.user, &state.answered) {
                Ok(b) => self.send_full(state, &to, &me, current, handled, Arc::new(b)),
                Err(e) => tracing::warn!(error = %e, "state does not encode; no replica"),
            }
        }
        self.release(state);
    }

    /// Sends `to` the kept deltas from replica `from` on, if none is
    /// missing; whether it did.
    fn catch_up(
        &self,
        state: &mut ServerState<A>,
        to: &Registration,
        me: &RegistrationInfo,
        from: u64,
    ) -> bool {
        let complete = state
            .sync
            .history
            .front()
            .is_some_and(|(first, _, _)| *first <= from);
        if !complete {
            return false;
        }
        let deltas: Vec<_> = state
            .sync
            .history
            .iter()
            .filter(|(s, _, _)| *s >= from)
            .cloned()
            .collect();
        tracing::debug!(standby = %to.node(), from, n = deltas.len(), "catching a standby up with deltas");
        for (seq, handled, d) in deltas {
            if let Some(peer) = state.sync.peers.get_mut(to.node()) {
                peer.sent = seq;
                peer.sent_at = Some(Instant::now());
            }
            self.send_replica(state, to, me, seq, handled, d.body());
        }
        true
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
