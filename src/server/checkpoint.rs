//! Warm standby: the holder sends checkpoints of its state to the standbys,
//! so that a crash failover starts from the last one instead of from nothing.
//!
//! Standbys make themselves known by registering under `"<name>#standby"`
//! (any number may), so both backends carry them without anything new. A
//! standby keeps only the newest checkpoint, ordered by `(holder epoch, seq)`:
//! it never installs one older than the one it has (fencing). A checkpoint
//! bigger than a part travels in parts (see `transfer`) and is installed
//! only once complete: until then the standby keeps the one it has.

use std::sync::Arc;

use tokio::time::Instant;

use super::phase;
use super::{ServerState, Stage, TakeoverServer};
use crate::{
    CheckpointInfo, Epoch, EventKind, LeaveReason, NodeName, PartOf, Registration,
    RegistrationInfo, StartType, TakeoverActor, TakeoverMessage,
};

/// A standby's side of warm standby: its entry in the standby group and the
/// newest checkpoint it received. A standby that pulls keeps it, for a pull
/// that ends as a failover (or rolls back).
pub(super) struct Warm<A: TakeoverActor> {
    reg: Option<Registration>,
    stored: Option<Stored<A>>,
}

impl<A: TakeoverActor> Default for Warm<A> {
    fn default() -> Self {
        Self {
            reg: None,
            stored: None,
        }
    }
}

/// The newest checkpoint a standby holds, decoded.
struct Stored<A: TakeoverActor> {
    holder_epoch: Epoch,
    seq: u64,
    handled: u64,
    bytes: usize,
    received: Instant,
    state: A::State,
    /// The window of answered calls `state` has the effect of.
    answered: crate::dedup::Window,
}

/// A holder's side: calls handled, and when the last checkpoint was taken.
/// It lives as long as the instance holds (across a retirement or a yield
/// that ends in serving again), so checkpoint numbers keep rising.
#[derive(Default)]
pub(super) struct Clock {
    handled: u64,
    at: u64,
    seq: u64,
}

impl Clock {
    /// Calls handled by this instance as holder.
    pub(super) fn handled(&self) -> u64 {
        self.handled
    }
}

fn standby_name(name: &str) -> String {
    format!("{name}#standby")
}

impl<A: TakeoverActor> TakeoverServer<A> {
    /// A standby joins the standby group (only with warm standby on).
    pub(super) async fn join_standbys(&self, state: &mut ServerState<A>) {
        if self.config.checkpoint.is_none() {
            return;
        }
        if matches!(&state.stage, Stage::Standby(s) if s.warm().reg.is_some()) {
            return;
        }
        let cell = state.ctx.myself.get_cell();
        match self.registry.steal(&standby_name(&self.name), cell).await {
            Ok(reg) => {
                if let Stage::Standby(s) = &mut state.stage {
                    s.warm_mut().reg = Some(reg);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not join the standbys; no checkpoints will come")
            }
        }
    }

    /// A standby's entry in the standby group: what a holder sends its
    /// checkpoints to, and what the standby acknowledges their parts as.
    pub(super) fn standby_registration(&self, state: &ServerState<A>) -> Option<RegistrationInfo> {
        match &state.stage {
            Stage::Standby(s) => s.warm().reg.as_ref().map(|r| r.info().clone()),
            _ => None,
        }
    }

    /// A standby that becomes holder leaves the standby group.
    pub(super) fn leave_standbys(&self, warm: Warm<A>) {
        if let Some(reg) = warm.reg {
            self.registry
                .unregister(reg.info(), LeaveReason::Unregistered);
        }
    }

    /// A new holder starts its checkpoint clock.
    pub(super) fn start_checkpoints(&self, state: &mut ServerState<A>) {
        // A holder without a lease may be stale: its checkpoint could
        // overwrite a newer holder's at a standby. The next tick tries again.
        if !self.lease_now(state) {
            return;
        }
        let Stage::Holder(holder) = &mut state.stage else {
            return;
        };
        holder.clock.at = holder.clock.handled;
        if let (Some(every), Some(epoch)) = (
            self.config.checkpoint.as_ref().and_then(|p| p.every),
            state.ctx.epoch(),
        ) {
            self.timer(state, every, TakeoverMessage::CheckpointTick(epoch));
        }
    }

    pub(super) fn after_serve(&self, state: &mut ServerState<A>) {
        let Stage::Holder(holder) = &mut state.stage else {
            return;
        };
        holder.clock.handled += 1;
        let every = self.config.checkpoint.as_ref().and_then(|p| p.every_calls);
        if every.is_some_and(|n| holder.clock.handled - holder.clock.at >= n) {
            self.send_checkpoint(state);
        }
    }

    /// The checkpoint timer fired (the guard in `dispatch` checked it is this
    /// holder's).
    pub(super) fn on_checkpoint_tick(&self, state: &mut ServerState<A>, epoch: Epoch) {
        if matches!(&state.stage, Stage::Holder(h) if h.clock.handled > h.clock.at) {
            self.send_checkpoint(state);
        }
        if let Some(every) = self.config.checkpoint.as_ref().and_then(|p| p.every) {
            self.timer(state, every, TakeoverMessage::CheckpointTick(epoch));
        }
    }

    fn send_checkpoint(&self, state: &mut ServerState<A>) {
        let Some(me) = state.ctx.registration.as_ref().map(|m| m.info().clone()) else {
            return;
        };
        // A holder without a lease may be stale: its checkpoint could
        // overwrite a newer holder's at a standby. The next tick tries again.
        if !self.lease_now(state) {
            return;
        }
        let Stage::Holder(holder) = &mut state.stage else {
            return;
        };
        holder.clock.at = holder.clock.handled;
        // With the window of answered calls this state has the effect of:
        // a failover from it answers their retries, not runs them again.
        let bytes = match self.encode_for_transfer(&state.user, &state.answered) {
            Ok(b) => b,
            Err(crate::StateCodecErr::TooLarge { bytes, .. }) => {
                tracing::warn!(bytes, "state over max_state_bytes; no checkpoint");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "state does not encode; no checkpoint");
                return;
            }
        };
        holder.clock.seq += 1;
        let (seq, handled) = (holder.clock.seq, holder.clock.handled);
        let size = bytes.len();
        let bytes = Arc::new(bytes);
        let mut sent = 0;
        for standby in &self.registry.members(&standby_name(&self.name)) {
            // Still receiving an earlier one in parts: this one would
            // replace it and, if they keep coming faster than they travel,
            // no checkpoint would ever be complete. It gets the next.
            if self.checkpoint_going_to(state, standby.info()) {
                tracing::debug!(standby = ?standby.info(), "a checkpoint in parts still going to it; skipped");
                continue;
            }
            let of = PartOf::Checkpoint {
                holder: me.clone(),
                seq,
                handled,
            };
            self.send_state(state, standby, of, bytes.clone());
            sent += 1;
        }
        self.publish(
            state,
            EventKind::CheckpointSent {
                seq,
                bytes: size,
                standbys: sent,
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
            tracing::warn!(%reason, "checkpoint refused");
            self.publish(state, EventKind::CheckpointRejected { reason });
        };
        if holder.name != self.name {
            return reject(state, format!("it is for {:?}", holder.name));
        }
        let Stage::Standby(standby) = &state.stage else {
            return;
        };
        let have = standby
            .warm()
            .stored
            .as_ref()
            .map(|s| (s.holder_epoch, s.seq));
        if let (false, Some((epoch, have_seq))) =
            (phase::checkpoint_newer(have, holder.epoch, seq), have)
        {
            let why = format!(
                "stale: epoch {} seq {seq}, we have epoch {epoch} seq {have_seq}",
                holder.epoch
            );
            return reject(state, why);
        }
        match self.decode_transferred(&bytes) {
            Ok((decoded, answered)) => {
                if let Stage::Standby(standby) = &mut state.stage {
                    standby.warm_mut().stored = Some(Stored {
                        holder_epoch: holder.epoch,
                        seq,
                        handled,
                        bytes: bytes.len(),
                        received: Instant::now(),
                        state: decoded,
                        answered,
                    });
                }
                self.publish(state, EventKind::CheckpointStored { holder, seq });
            }
            Err(e) => reject(state, e.to_string()),
        }
    }

    /// The start type of a failover, installing the newest checkpoint of
    /// `warm` if it has one.
    pub(super) fn failover_start(
        &self,
        state: &mut ServerState<A>,
        from: NodeName,
        warm: &mut Warm<A>,
    ) -> StartType {
        let checkpoint = warm.stored.take().map(|stored| {
            state.user = stored.state;
            state.answered = stored.answered;
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
