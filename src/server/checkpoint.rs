//! Warm standby: the holder sends checkpoints of its state to the standbys,
//! so that a crash failover starts from the last one instead of from nothing.
//!
//! Standbys make themselves known by registering under `"<name>#standby"`
//! (any number may), so both backends carry them without anything new. A
//! standby keeps only the newest checkpoint, ordered by `(holder epoch, seq)`:
//! it never installs one older than the one it has (fencing).

use std::time::Duration;

use tokio::time::Instant;

use super::{send_later, ServerState, Stage, TakeoverServer};
use crate::message::deliver;
use crate::{
    CheckpointInfo, EventKind, HandoverMsg, LeaveReason, NodeId, RegistrationInfo, StartType,
    TakeoverActor, TakeoverMessage,
};

/// The newest checkpoint a standby holds, decoded.
pub(crate) struct Stored<A: TakeoverActor> {
    holder_epoch: u64,
    seq: u64,
    handled: u64,
    bytes: usize,
    received: Instant,
    state: A::State,
}

pub(crate) fn standby_name(name: &str) -> String {
    format!("{name}#standby")
}

impl<A: TakeoverActor> TakeoverServer<A> {
    /// A standby joins the standby group (only with warm standby on).
    pub(super) async fn join_standbys(&self, state: &mut ServerState<A>) {
        if self.config.checkpoint.is_none() || state.standby_reg.is_some() {
            return;
        }
        let cell = state.ctx.myself.get_cell();
        match self.registry.steal(&standby_name(&self.name), cell).await {
            Ok(reg) => state.standby_reg = Some(reg),
            Err(e) => {
                tracing::warn!(name = %self.name, error = %e, "could not join the standbys; no checkpoints will come")
            }
        }
    }

    pub(super) fn leave_standbys(&self, state: &mut ServerState<A>) {
        if let Some(reg) = state.standby_reg.take() {
            self.registry
                .unregister(reg.info(), LeaveReason::Unregistered);
        }
    }

    /// A new holder starts its checkpoint clock.
    pub(super) fn start_checkpoints(&self, state: &mut ServerState<A>) {
        state.checkpointed_at = state.handled;
        if let (Some(every), Some(epoch)) = (
            self.config.checkpoint.as_ref().and_then(|p| p.every),
            state.ctx.epoch,
        ) {
            tick_after(state, every, epoch);
        }
    }

    pub(super) fn after_serve(&self, state: &mut ServerState<A>) {
        state.handled += 1;
        let every = self.config.checkpoint.as_ref().and_then(|p| p.every_calls);
        if every.is_some_and(|n| state.handled - state.checkpointed_at >= n) {
            self.send_checkpoint(state);
        }
    }

    pub(super) fn on_checkpoint_tick(
        &self,
        _myself: ractor::ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        epoch: u64,
    ) {
        if !matches!(state.stage, Stage::Holder) || state.ctx.epoch != Some(epoch) {
            return;
        }
        if state.handled > state.checkpointed_at {
            self.send_checkpoint(state);
        }
        if let Some(every) = self.config.checkpoint.as_ref().and_then(|p| p.every) {
            tick_after(state, every, epoch);
        }
    }

    fn send_checkpoint(&self, state: &mut ServerState<A>) {
        let Some(me) = state.me.as_ref().map(|m| m.info().clone()) else {
            return;
        };
        state.checkpointed_at = state.handled;
        let bytes = match self.behaviour.encode_state(&state.user) {
            Ok(b) if b.len() <= self.config.max_state_bytes => b,
            Ok(b) => {
                tracing::warn!(name = %self.name, bytes = b.len(), "state over max_state_bytes; no checkpoint");
                return;
            }
            Err(e) => {
                tracing::warn!(name = %self.name, error = %e, "state does not encode; no checkpoint");
                return;
            }
        };
        state.checkpoint_seq += 1;
        let standbys = self.registry.members(&standby_name(&self.name));
        for standby in &standbys {
            deliver(
                &state.registry,
                standby,
                TakeoverMessage::<A>::Handover(HandoverMsg::Checkpoint {
                    holder: me.clone(),
                    seq: state.checkpoint_seq,
                    handled: state.handled,
                    bytes: bytes.clone(),
                }),
            );
        }
        let (seq, size, standbys) = (state.checkpoint_seq, bytes.len(), standbys.len());
        self.publish(
            state,
            EventKind::CheckpointSent {
                seq,
                bytes: size,
                standbys,
            },
        );
    }

    /// On a standby: keep a checkpoint if it is newer than the one we have.
    pub(super) fn on_checkpoint(
        &self,
        state: &mut ServerState<A>,
        holder: RegistrationInfo,
        seq: u64,
        handled: u64,
        bytes: Vec<u8>,
    ) {
        let reject = |state: &ServerState<A>, reason: String| {
            tracing::warn!(name = %self.name, %reason, "checkpoint refused");
            self.publish(state, EventKind::CheckpointRejected { reason });
        };
        if holder.name != self.name {
            return reject(state, format!("it is for {:?}", holder.name));
        }
        if !matches!(state.stage, Stage::Standby) {
            return;
        }
        if let Some(have) = &state.stored {
            if (holder.epoch, seq) <= (have.holder_epoch, have.seq) {
                let why = format!(
                    "stale: epoch {} seq {seq}, we have epoch {} seq {}",
                    holder.epoch, have.holder_epoch, have.seq
                );
                return reject(state, why);
            }
        }
        if bytes.len() > self.config.max_state_bytes {
            return reject(
                state,
                format!("{} bytes, over max_state_bytes", bytes.len()),
            );
        }
        match self.behaviour.decode_state(&bytes) {
            Ok(decoded) => {
                state.stored = Some(Stored {
                    holder_epoch: holder.epoch,
                    seq,
                    handled,
                    bytes: bytes.len(),
                    received: Instant::now(),
                    state: decoded,
                });
                self.publish(state, EventKind::CheckpointStored { holder, seq });
            }
            Err(e) => reject(state, e.to_string()),
        }
    }

    /// The start type of a failover, installing the newest checkpoint if we
    /// have one.
    pub(super) fn failover_start(&self, state: &mut ServerState<A>, from: NodeId) -> StartType {
        let checkpoint = state.stored.take().map(|stored| {
            state.user = stored.state;
            CheckpointInfo {
                holder_epoch: stored.holder_epoch,
                seq: stored.seq,
                handled: stored.handled,
                age: stored.received.elapsed(),
                bytes: stored.bytes,
            }
        });
        StartType::Failover { from, checkpoint }
    }
}

fn tick_after<A: TakeoverActor>(state: &ServerState<A>, after: Duration, epoch: u64) {
    send_later(
        &state.ctx.myself,
        after,
        TakeoverMessage::CheckpointTick(epoch),
    );
}
