//! Sending replicas: the effect of each change, as the behaviour's delta
//! when the standby has the replica it builds on, as the kept deltas it
//! lacks when it is a few behind, or else as the whole state (in parts
//! when it is bigger than a part, the deltas made meanwhile queued behind
//! it).

use std::sync::Arc;

use tokio::time::Instant;

use super::{Change, HISTORY_MAX, HISTORY_MAX_BYTES, QUEUE_MAX_BYTES};
use crate::message::{deliver, ReplicaBody, ReplicaImage};
use crate::server::checkpoint::standby_name;
use crate::server::{ServerState, Stage, TakeoverServer};
use crate::{
    HandoverMsg, PartOf, Registration, RegistrationInfo, StateCodecErr, TakeoverActor,
    TakeoverMessage,
};

impl<A: TakeoverActor> TakeoverServer<A> {
    /// Sends the effect of the last change, as replica `seq`, to every
    /// standby. Returns `seq`, or `None` when nothing could be sent.
    pub(super) fn replicate(
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
        // Our state holds this replica (see `dedup::lineage`); a whole
        // state sent from now says so.
        state.answered.lineage.note(me.epoch, seq);
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
            let peer = state.sync.peer(standby.info());
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
                full = Some(self.full_replica(state)?);
            }
            if let Some(bytes) = &full {
                self.send_full(state, &standby, &me, seq, handled, bytes.clone());
            }
        }
        Some(seq)
    }

    pub(super) fn send_replica(
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

    /// The whole state (with the window of answered calls), encoded once
    /// for every standby that needs it; `None`, with a warning, when it
    /// does not encode (no replica goes).
    pub(super) fn full_replica(&self, state: &ServerState<A>) -> Option<Arc<Vec<u8>>> {
        match self.encode_for_transfer(&state.user, &state.answered) {
            Ok(b) => Some(Arc::new(b)),
            Err(e) => {
                tracing::warn!(error = %e, "state does not encode; no replica");
                None
            }
        }
    }

    /// The whole state as replica `seq`: in one `Replica`, or as a
    /// `Checkpoint` in parts when it is bigger than a part.
    pub(super) fn send_full(
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

    /// Sends `to` the kept deltas from replica `from` on, if none is
    /// missing; whether it did.
    pub(super) fn catch_up(
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
}
