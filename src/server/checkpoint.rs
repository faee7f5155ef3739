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
use crate::message::{deliver, ReplicaBody, ReplicaImage};
use crate::{
    CheckpointInfo, Epoch, EventKind, HandoverMsg, LeaveReason, NodeName, PartOf, Registration,
    RegistrationInfo, StartType, TakeoverActor, TakeoverMessage,
};

/// A standby's side of warm standby: its entry in the standby group and the
/// newest checkpoint it received. A standby that pulls keeps it, for a pull
/// that ends as a failover (or rolls back).
pub(super) struct Warm<A: TakeoverActor> {
    reg: Option<Registration>,
    stored: Option<Stored<A>>,
    /// The holder epoch we last offered `stored` to for a merge, and when
    /// (see `offer_stored`).
    offered: Option<(Epoch, Instant)>,
}

impl<A: TakeoverActor> Default for Warm<A> {
    fn default() -> Self {
        Self {
            reg: None,
            stored: None,
            offered: None,
        }
    }
}

/// The newest checkpoint a standby holds, decoded.
struct Stored<A: TakeoverActor> {
    holder_epoch: Epoch,
    /// The node of the holder that made it.
    holder_node: NodeName,
    seq: u64,
    handled: u64,
    bytes: usize,
    received: Instant,
    state: A::State,
    /// The window of answered calls `state` has the effect of.
    answered: crate::dedup::Window,
}

impl<A: TakeoverActor> Warm<A> {
    /// The checkpoint or replica it holds, as `(holder epoch, seq)`.
    pub(super) fn have(&self) -> Option<(Epoch, u64)> {
        self.stored.as_ref().map(|s| (s.holder_epoch, s.seq))
    }

    /// Keeps the state an old holder handed over to the successor at
    /// `epoch`, as replica 0 of that epoch (synchronous standby), with
    /// the window of answered calls it has the effect of.
    pub(super) fn keep_handed_over(
        &mut self,
        successor: &RegistrationInfo,
        state: A::State,
        answered: crate::dedup::Window,
    ) {
        self.stored = Some(Stored {
            holder_epoch: successor.epoch,
            holder_node: successor.node.clone(),
            seq: 0,
            handled: 0,
            bytes: 0,
            received: Instant::now(),
            state,
            answered,
        });
    }

    /// Takes the stored state and its window of answered calls if it is
    /// replica `seq` of `holder_epoch`.
    pub(super) fn take_if(
        &mut self,
        holder_epoch: Epoch,
        seq: u64,
    ) -> Option<(A::State, crate::dedup::Window)> {
        if self.have() != Some((holder_epoch, seq)) {
            return None;
        }
        self.stored.take().map(|s| {
            let mut answered = s.answered;
            // What the old holder kept as this replica: the next delta of
            // our tenure builds on it.
            answered.settle();
            (s.state, answered)
        })
    }
}

/// The warm part of a standby, or of a standby that pulls (it keeps
/// storing replicas: the holder it pulls from may serve a few more calls).
fn warm_of<A: TakeoverActor>(stage: &mut Stage<A>) -> Option<&mut Warm<A>> {
    match stage {
        Stage::Standby(s) => Some(s.warm_mut()),
        Stage::Pulling(p) => Some(p.warm_mut()),
        _ => None,
    }
}

/// A holder's side: calls handled, and when the last checkpoint was taken.
/// It lives as long as the instance holds (across a retirement or a yield
/// that ends in serving again), so checkpoint numbers keep rising.
#[derive(Default)]
pub(super) struct Clock {
    pub(super) handled: u64,
    pub(super) at: u64,
    /// The newest checkpoint or replica's number (synchronous standby's
    /// replicas count here too, see `sync`).
    pub(super) seq: u64,
    /// The state may have changed since checkpoint or replica `seq` (a
    /// call, an info, a merge, `go`): a takeover must move it.
    pub(super) dirty: bool,
}

impl Clock {
    /// Calls handled by this instance as holder.
    pub(super) fn handled(&self) -> u64 {
        self.handled
    }
}

/// The group every standby of `name` joins: where a holder sends its
/// checkpoints, and how the nodes behind a standby in line see that it is
/// in line (see `phase::vacancy_turn`).
pub(super) fn standby_name(name: &str) -> String {
    format!("{name}{}", crate::drain::STANDBY_SUFFIX)
}

impl<A: TakeoverActor> TakeoverServer<A> {
    /// A standby joins the standby group. Why with warm standby off too:
    /// the nodes behind it in placement wait for it on a vacant name.
    pub(super) async fn join_standbys(&self, state: &mut ServerState<A>) {
        if matches!(&state.stage, Stage::Standby(s) if s.warm().reg.is_some()) {
            return;
        }
        let cell = state.ctx.myself.get_cell();
        match self.registry.steal(&standby_name(&self.name), cell).await {
            Ok(reg) => {
                if let Stage::Standby(s) = &mut state.stage {
                    s.warm_mut().reg = Some(reg);
                }
                // Synchronous standby: tell the holder what we have, so
                // that it sends what we lack (see `sync`).
                let have = match &state.stage {
                    Stage::Standby(s) => s.warm().have(),
                    _ => None,
                };
                if let (true, Some((epoch, seq)), Some(holder)) =
                    (self.sync_on(), have, self.registry.lookup(&self.name))
                {
                    if holder.epoch() == epoch {
                        self.ack_replica(state, holder.info(), seq, false);
                    }
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

    /// Whether this standby is in the standby group (in line for the name).
    pub(super) fn in_line(state: &ServerState<A>) -> bool {
        matches!(&state.stage, Stage::Standby(s) if s.warm().reg.is_some())
    }

    /// A standby leaves the standby group and stays a standby (see
    /// `phase::vacancy_turn`, `empty`); whether it was in it.
    pub(super) fn leave_line(&self, state: &mut ServerState<A>) -> bool {
        let Stage::Standby(s) = &mut state.stage else {
            return false;
        };
        match s.warm_mut().reg.take() {
            Some(reg) => {
                self.registry
                    .unregister_instance(&reg, LeaveReason::InstanceDied);
                true
            }
            None => false,
        }
    }

    /// A standby that becomes holder leaves the standby group. Why not as
    /// `Unregistered`: a clean leave also joins a tombstone group on the
    /// real backend (see `cluster::token::tombstone`), one more pg change
    /// to every peer per name, and nothing reads why a standby left; in a
    /// mass failover those changes queue in every session ahead of the
    /// heartbeats.
    pub(super) fn leave_standbys(&self, warm: Warm<A>) {
        if let Some(reg) = warm.reg {
            self.registry
                .unregister_instance(&reg, LeaveReason::InstanceDied);
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
        holder.clock.dirty = true;
        if self.sync_on() {
            // Every call's effect is replicated (see `sync`): no checkpoint.
            return;
        }
        let every = self.config.checkpoint.as_ref().and_then(|p| p.every_calls);
        if every.is_some_and(|n| holder.clock.handled - holder.clock.at >= n) {
            self.send_checkpoint(state);
        }
    }

    /// The checkpoint timer fired (the guard in `dispatch` checked it is this
    /// holder's).
    pub(super) fn on_checkpoint_tick(&self, state: &mut ServerState<A>, epoch: Epoch) {
        if self.sync_on() {
            return;
        }
        if matches!(&state.stage, Stage::Holder(h) if h.clock.handled > h.clock.at || h.clock.dirty)
        {
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
        holder.clock.dirty = false;
        state.answered.lineage.note(me.epoch, holder.clock.seq + 1);
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
        self.store_checkpoint(state, holder, seq, handled, bytes, true);
    }

    /// Keeps a checkpoint or a whole-state replica if it is newer than the
    /// one we have. Why `publish`: a synchronous replica comes with every
    /// call, and an event per call would flood the hub.
    fn store_checkpoint(
        &self,
        state: &mut ServerState<A>,
        holder: RegistrationInfo,
        seq: u64,
        handled: u64,
        bytes: Vec<u8>,
        publish: bool,
    ) {
        let reject = |state: &ServerState<A>, reason: String| {
            tracing::warn!(%reason, "checkpoint refused");
            self.publish(state, EventKind::CheckpointRejected { reason });
        };
        if holder.name != self.name {
            return reject(state, format!("it is for {:?}", holder.name));
        }
        let Some(warm) = warm_of(&mut state.stage) else {
            return;
        };
        let have = warm.have();
        if self.sync_on() && have == Some((holder.epoch, seq)) {
            // Sent again (its acknowledgement was late or lost): we have it.
            return self.ack_replica(state, &holder, seq, false);
        }
        if let (false, Some((epoch, have_seq))) =
            (phase::checkpoint_newer(have, holder.epoch, seq), have)
        {
            let why = format!(
                "stale: epoch {} seq {seq}, we have epoch {epoch} seq {have_seq}",
                holder.epoch
            );
            reject(state, why);
            return self.offer_stored(state, &holder);
        }
        match self.decode_transferred(&bytes) {
            Ok((decoded, mut answered)) => {
                if let Some(lacks) = self.lacks_our_replica(state, &holder, &answered) {
                    reject(state, lacks);
                    return self.offer_stored(state, &holder);
                }
                answered.lineage.note(holder.epoch, seq);
                if let Some(warm) = warm_of(&mut state.stage) {
                    warm.stored = Some(Stored {
                        holder_epoch: holder.epoch,
                        holder_node: holder.node.clone(),
                        seq,
                        handled,
                        bytes: bytes.len(),
                        received: Instant::now(),
                        state: decoded,
                        answered,
                    });
                }
                if self.sync_on() {
                    // A whole state in parts is a synchronous replica too.
                    self.ack_replica(state, &holder, seq, false);
                }
                if publish {
                    self.publish(state, EventKind::CheckpointStored { holder, seq });
                }
            }
            Err(e) => reject(state, e.to_string()),
        }
    }

    /// Synchronous standby: why the whole state `holder` sent lacks the
    /// replica we keep, a replica of another holder that its lineage does
    /// not hold (see `dedup::lineage`), if it does. Storing it would throw
    /// away what we stored, perhaps calls that holder answered; we keep
    /// ours and offer it instead. Only with synchronous standby: it is the
    /// mode that promises every answered call a replica; a warm standby's
    /// checkpoint is a best effort, and the newest holder's is the one to
    /// keep.
    fn lacks_our_replica(
        &self,
        state: &mut ServerState<A>,
        holder: &RegistrationInfo,
        theirs: &crate::dedup::Window,
    ) -> Option<String> {
        if !self.sync_on() {
            return None;
        }
        let stored = warm_of(&mut state.stage)?.stored.as_ref()?;
        if stored.holder_epoch == holder.epoch
            || theirs.lineage.holds(stored.holder_epoch, stored.seq)
        {
            return None;
        }
        Some(format!(
            "the state of epoch {} lacks replica {} of epoch {} (from {}) that we keep",
            holder.epoch, stored.seq, stored.holder_epoch, stored.holder_node
        ))
    }

    /// On a standby: the holder of our view sent a checkpoint older than
    /// the one we keep, which a holder no longer in our view made: the
    /// other side of a split brain, gone before the heal, or an incarnation
    /// of the same epoch that a restart without a state directory forgot.
    /// Or (synchronous standby) a newer one whose state lacks ours
    /// (`lacks_our_replica`): a failover that started without the replicas
    /// we stored. Left alone, neither gives way: we refuse each of its
    /// checkpoints (with synchronous standby it then answers no call,
    /// ever), and a failover to us would start from the gone holder's
    /// state without the holder's calls. So we offer what we keep for a
    /// merge, as a split-brain loser does (`conflict::on_merge_offer`): the
    /// holder merges it, or takes it whole if it answered nothing yet, and
    /// takes an epoch above it; its next checkpoint is newer than ours and
    /// holds it. At most once per holder epoch and `pull_timeout`: a lost
    /// offer is made again, a stream of stale replicas is not answered one
    /// by one.
    fn offer_stored(&self, state: &mut ServerState<A>, sender: &RegistrationInfo) {
        // Ordered by rank: the last is the holder of our view (`lookup`).
        let members = self.registry.members(&self.name);
        let Some(top) = members.last() else {
            return;
        };
        if top.info() != sender {
            // A holder that is not the newest we see: the conflict between
            // them settles which state goes on.
            return;
        }
        let to = top.clone();
        let Some(warm) = warm_of(&mut state.stage) else {
            return;
        };
        // The parts' acks come back to our entry in the standby group.
        let Some(via) = warm.reg.as_ref().map(|r| r.info().clone()) else {
            return;
        };
        let Some(stored) = warm.stored.as_ref() else {
            return;
        };
        let gone = RegistrationInfo {
            name: self.name.clone(),
            epoch: stored.holder_epoch,
            node: stored.holder_node.clone(),
        };
        if gone != *sender && members.iter().any(|m| *m.info() == gone) {
            // Still registered: a split brain that the holders merge.
            return;
        }
        let now = Instant::now();
        if warm.offered.is_some_and(|(epoch, at)| {
            epoch == sender.epoch && now.duration_since(at) < self.config.pull_timeout
        }) {
            return;
        }
        let bytes = match self.encode_for_transfer(&stored.state, &stored.answered) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "the checkpoint we keep does not encode; not offered");
                return;
            }
        };
        warm.offered = Some((sender.epoch, now));
        tracing::warn!(
            ?gone,
            holder = ?sender,
            "the holder's state is older than the checkpoint we keep, or lacks it; offering it for a merge"
        );
        let of = PartOf::MergeOffer {
            loser: gone,
            winner_epoch: sender.epoch,
            seq: stored.seq,
            handled: stored.handled,
            via: Some(via),
        };
        self.send_state(state, &to, of, Arc::new(bytes));
    }

    /// On a standby (synchronous standby): store a replica, fenced as a
    /// checkpoint is, and acknowledge what we hold.
    pub(super) fn on_replica(
        &self,
        state: &mut ServerState<A>,
        holder: RegistrationInfo,
        seq: u64,
        handled: u64,
        body: ReplicaBody,
    ) {
        if holder.name != self.name {
            let reason = format!("a replica for {:?}", holder.name);
            tracing::warn!(%reason, "replica refused");
            return self.publish(state, EventKind::CheckpointRejected { reason });
        }
        let (delta, window) = match (body.image, body.answered) {
            (ReplicaImage::Full(bytes), _) => {
                return self.store_checkpoint(state, holder, seq, handled, bytes, false);
            }
            (ReplicaImage::Delta(d), Some(w)) => (d, w),
            (ReplicaImage::Delta(_), None) => {
                // Without the window's change the replica would know of
                // calls it cannot answer a retry of: the whole state.
                tracing::warn!(
                    seq,
                    "a delta without the window of answered calls; asking for the whole state"
                );
                return self.ack_replica(state, &holder, 0, true);
            }
        };
        let Some(warm) = warm_of(&mut state.stage) else {
            return;
        };
        let follows = warm.have() == Some((holder.epoch, seq.wrapping_sub(1)));
        let Some(stored) = warm.stored.as_mut().filter(|_| follows) else {
            tracing::debug!(seq, have = ?warm.have(), "a delta that does not follow our replica; asking for the whole state");
            return self.ack_replica(state, &holder, 0, true);
        };
        // The window first (it checks that the delta follows it before it
        // changes anything); on any error the stored replica is dropped.
        let applied = stored
            .answered
            .apply_delta(&window)
            .map_err(crate::StateCodecErr::Decode)
            .and_then(|()| self.behaviour.apply_delta(&mut stored.state, &delta));
        match applied {
            Ok(()) => {
                stored.answered.lineage.note(holder.epoch, seq);
                stored.seq = seq;
                stored.handled = handled;
                stored.received = Instant::now();
                self.ack_replica(state, &holder, seq, false);
            }
            Err(e) => {
                // Half applied, perhaps: not a state to fail over from.
                warm.stored = None;
                let reason = format!("delta {seq} does not apply: {e}");
                tracing::warn!(%reason, "replica refused; the stored state is dropped");
                self.publish(state, EventKind::CheckpointRejected { reason });
                self.ack_replica(state, &holder, 0, true);
            }
        }
    }

    fn ack_replica(
        &self,
        state: &ServerState<A>,
        holder: &RegistrationInfo,
        seq: u64,
        need_full: bool,
    ) {
        let Some(to) = self.registry.resolve(holder) else {
            return;
        };
        let ack = HandoverMsg::ReplicaAck {
            holder_epoch: holder.epoch,
            seq,
            standby: self.registry.node().clone(),
            need_full,
        };
        deliver(&state.registry, &to, TakeoverMessage::<A>::Handover(ack));
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
