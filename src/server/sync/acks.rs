//! The holder's view of its standbys' progress: their acknowledgements
//! (which release answers, and say when a standby lacks a replica), and
//! the sync tick, every quarter `ack_timeout`, which sends the whole state
//! to a standby that joined or lags, and makes async mode fall back when
//! no standby answers in time.

use std::sync::Arc;

use tokio::time::Instant;

use crate::config::NoStandby;
use crate::server::checkpoint::standby_name;
use crate::server::{ServerState, Stage, TakeoverServer};
use crate::{Epoch, NodeName, TakeoverActor, TakeoverMessage};

impl<A: TakeoverActor> TakeoverServer<A> {
    pub(super) fn arm_sync_tick(&self, state: &mut ServerState<A>) {
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
    pub(in crate::server) async fn on_sync_tick(
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
            let peer = state.sync.peer(standby.info());
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
                let Some(b) = self.full_replica(state) else {
                    break;
                };
                full = Some(b);
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
    pub(in crate::server) async fn on_replica_ack(
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
            if let Some(b) = self.full_replica(state) {
                self.send_full(state, &to, &me, current, handled, b);
            }
        }
        self.release(state);
    }
}
