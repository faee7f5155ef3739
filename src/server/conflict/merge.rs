//! The merge that ends a split brain, both sides: the loser yields (offers
//! its state to the winner, forwards its calls there, and waits as
//! `Yielding`); the winner merges the offer, ranks its registration above
//! the loser's if need be, and confirms with `MergeDone`; a loser whose
//! winner vanishes or never answers holds the name again.

use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorProcessingErr, ActorRef};

use super::Yielding;
use crate::message::deliver;
use crate::server::calls::Pending;
use crate::server::phase::{self, YieldExit};
use crate::server::{ServerState, Stage, TakeoverServer};
use crate::{
    CheckpointInfo, EventKind, HandoverMsg, LeaveReason, MergeOutcome, PartOf, Registration,
    RegistrationInfo, ReplyErr, StateCodecErr, TakeoverActor, TakeoverMessage,
};

impl<A: TakeoverActor> TakeoverServer<A> {
    /// Loses a conflict: stop answering, offer the state to the winner,
    /// forward the held calls (after the offer, so the winner serves them on
    /// the merged state) and every call from now on.
    pub(super) fn yield_to(
        &self,
        state: &mut ServerState<A>,
        me: Registration,
        winner: Registration,
    ) {
        tracing::warn!(winner = ?winner.info(), "split brain: this holder loses; offering its state");
        let (seq, handled) = match &state.stage {
            Stage::Holder(h) => (h.clock.seq, h.clock.handled()),
            _ => (0, 0),
        };
        match self.encode_for_transfer(&state.user, &state.answered) {
            Ok(bytes) => {
                let of = PartOf::MergeOffer {
                    loser: me.info().clone(),
                    winner_epoch: winner.epoch(),
                    seq,
                    handled,
                    via: None,
                };
                self.send_state(state, &winner, of, Arc::new(bytes));
            }
            Err(e) => deliver(
                &state.registry,
                &winner,
                TakeoverMessage::<A>::Handover(HandoverMsg::MergeOffer {
                    loser: me.info().clone(),
                    winner_epoch: winner.epoch(),
                    seq,
                    handled,
                    result: Err(ReplyErr::State(e)),
                }),
            ),
        }
        self.answer_held_moved(state);
        let Stage::Holder(holder) = &mut state.stage else {
            return;
        };
        holder.conflict = None;
        let holder = std::mem::take(holder);
        for call in std::mem::take(&mut state.buffer) {
            self.forward(state, &winner, call);
        }
        let lost = EventKind::ConflictLost {
            winner: winner.info().clone(),
        };
        self.enter(
            state,
            Stage::Yielding(Yielding { winner, holder }),
            Some(lost),
        );
        self.timer(
            state,
            self.config.pull_timeout,
            TakeoverMessage::YieldTimeout(me.epoch()),
        );
    }

    /// A call while yielding: to the winner, which has our state.
    pub(in crate::server) fn yielding_call(&self, state: &ServerState<A>, call: Pending<A>) {
        if let Stage::Yielding(y) = &state.stage {
            self.forward(state, &y.winner, call);
        }
    }

    /// On the winner: the loser's state arrived.
    pub(in crate::server) async fn on_merge_offer(
        &self,
        state: &mut ServerState<A>,
        loser: RegistrationInfo,
        winner_epoch: u64,
        (seq, handled): (u64, u64),
        result: Result<Vec<u8>, ReplyErr>,
    ) -> Result<(), ActorProcessingErr> {
        if loser.name != self.name || !matches!(state.stage, Stage::Holder(_)) {
            tracing::warn!(
                ?loser,
                winner_epoch,
                "merge offer for another name, or we do not hold it; ignored"
            );
            return Ok(());
        }
        let bytes = result.as_ref().map(Vec::len).unwrap_or(0);
        // Taken whole: the state our new tenure starts from, as a
        // failover's checkpoint.
        let mut took = None;
        let theirs = match result {
            Ok(b) => self.decode_transferred(&b),
            Err(ReplyErr::State(e)) => Err(e),
            Err(ReplyErr::Refused(why)) => Err(StateCodecErr::Encode(why)),
        };
        let outcome = match theirs {
            Ok((theirs, answered)) if self.may_adopt(state, &answered) => {
                // Nothing we served was seen, and theirs holds all our
                // state started from: no merge (the default one keeps
                // ours, and would drop what they stored) but theirs,
                // whole. Quorum mode's failover from an empty standby
                // while another kept the replicas lands here.
                tracing::warn!(
                    ?loser,
                    "the offered state holds more than ours started from, and we answered nothing yet; taking it"
                );
                self.sync_adopt(state, theirs, answered);
                took = Some(CheckpointInfo {
                    holder_epoch: loser.epoch,
                    seq,
                    handled,
                    age: Duration::ZERO,
                    bytes,
                });
                Some(MergeOutcome::TookTheirs)
            }
            Ok((theirs, answered)) => {
                // The loser's answered calls, whatever `merge` keeps of its
                // state: a retry of one must not run again here (what the
                // merge drops is reported by its outcome).
                state.answered.absorb(answered, self.config.dedup_window);
                Some(
                    self.behaviour
                        .merge(&state.ctx, &mut state.user, theirs, &loser)
                        .await?,
                )
            }
            Err(e) => {
                // Not noted in our lineage: a standby that offered it goes
                // on refusing our replicas and offers it again after
                // `pull_timeout`, so a transfer that failed on the way
                // (seed 1074: two offers of one loser's state, in parts,
                // interleaved) is not a silent loss.
                tracing::warn!(?loser, error = %e, "the loser's state could not be read; it is dropped");
                None
            }
        };
        if let Stage::Holder(h) = &mut state.stage {
            h.clock.dirty = true;
        }
        tracing::info!(?loser, ?outcome, "split brain healed");
        self.publish(
            state,
            EventKind::SplitBrainHealed {
                loser: loser.clone(),
                outcome,
                bytes,
            },
        );
        if took.is_none() {
            self.moved(
                state,
                Some(loser.node.clone()),
                crate::event::MoveReason::Conflict,
            );
        }
        // A standby's offer of a checkpoint from an incarnation of our own
        // registration (see `checkpoint::offer_stored`) has nobody to tell.
        let me = state.ctx.registration.as_ref().map(|r| r.info().clone());
        let to = self
            .registry
            .resolve(&loser)
            .filter(|to| Some(to.info()) != me.as_ref());
        if let Some(to) = &to {
            deliver(
                &state.registry,
                to,
                TakeoverMessage::<A>::Handover(HandoverMsg::MergeDone {
                    loser: loser.clone(),
                }),
            );
        }
        if let Stage::Holder(holder) = &mut state.stage {
            holder.merged = to;
            if holder
                .conflict
                .as_ref()
                .is_some_and(|c| c.other.info() == &loser)
            {
                holder.conflict = None;
            }
        }
        if outcome.is_some() && loser.epoch <= crate::registry::EPOCH_CEILING {
            // The loser may be gone and unseen here (a standby's checkpoint
            // from the other side of a split): the steal goes above it. Only
            // for a state that decoded and an epoch some node could have
            // taken: a corrupt or forged offer must not push this name's
            // epochs to their end.
            self.registry.note_seen(&loser);
        }
        if took.is_some() {
            // A new tenure on the state we took: a new epoch (above the
            // loser's, noted above) and `go` as a failover from it, which
            // tells the behaviour its state was replaced and replicates
            // it whole.
            return self.hold_anew(state, &loser, took).await;
        }
        self.rank_above(state, &loser).await?;
        // The merged state to the standbys, under the epoch taken above if
        // any: a standby that kept the loser's replica refuses one under
        // ours, and calls held for its acknowledgement would wait for good.
        self.sync_changed(state);
        self.check_conflict(state).await
    }

    /// After a merge: re-register above the loser unless we rank above it,
    /// so every lookup resolves to the winner and every standby that kept
    /// the loser's checkpoint takes ours as newer (the lineage stays: no
    /// state came with the steal). Equal ranks: the loser was an
    /// incarnation of our own registration that a restart forgot.
    async fn rank_above(
        &self,
        state: &mut ServerState<A>,
        loser: &RegistrationInfo,
    ) -> Result<(), ActorProcessingErr> {
        let Some(me) = state.ctx.registration.clone() else {
            return Ok(());
        };
        if phase::ranks_above(Some(me.info()), loser) {
            return Ok(());
        }
        let cell = state.ctx.myself.get_cell();
        match self.registry.steal(&self.name, cell).await {
            Ok(new) => {
                self.registry
                    .unregister_instance(&me, LeaveReason::Unregistered);
                self.set_registration(state, Some(new));
                // A conflict still open (another loser whose state we wait
                // for) keeps its deadline: its tick was of the old epoch,
                // which the timer guard now ignores (seed 1704418424: that
                // loser's offer, addressed to our old epoch, was dropped,
                // and we waited for it for good).
                if matches!(&state.stage, Stage::Holder(h) if h.conflict.is_some()) {
                    self.arm_conflict_tick(state);
                }
                self.publish(
                    state,
                    EventKind::ConflictWon {
                        loser: loser.clone(),
                    },
                );
            }
            Err(e) => {
                // The loser forwards to us and retires: lookups agree again
                // once its registration is gone.
                tracing::warn!(error = %e, "merged, but could not re-register above the loser");
            }
        }
        Ok(())
    }

    /// On the loser: the winner has our state; retire, and wait as a
    /// standby (see `handover::handed_over`).
    pub(in crate::server) async fn on_merge_done(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        loser: RegistrationInfo,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Yielding(y) = &state.stage else {
            return Ok(());
        };
        if state.ctx.registration.as_ref().map(Registration::info) != Some(&loser) {
            tracing::warn!(?loser, "merge done for another registration; ignored");
            return Ok(());
        }
        let to = y.winner.info().clone();
        if let Some(me) = self.set_registration(state, None) {
            self.registry
                .unregister_instance(&me, LeaveReason::Unregistered);
        }
        self.publish(
            state,
            EventKind::Retired {
                to: to.clone(),
                forwarded: 0,
            },
        );
        self.handed_over(myself, state, to).await
    }

    /// The winner never confirmed the merge (the guard in `dispatch` checked
    /// the timer is this epoch's).
    pub(in crate::server) async fn on_yield_timeout(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Yielding(y) = &state.stage else {
            return Ok(());
        };
        tracing::warn!(winner = ?y.winner.info(), "the winner never confirmed the merge; serving again");
        self.stop_yielding(state).await
    }

    /// A registry change while yielding: did the winner go?
    pub(in crate::server) async fn yielding_on_change(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        match &state.stage {
            Stage::Yielding(y) if self.registry.resolve(y.winner.info()).is_none() => {
                self.stop_yielding(state).await
            }
            _ => Ok(()),
        }
    }

    /// The winner went away (or never answered): hold the name again (see
    /// [`phase::yield_ended`]).
    async fn stop_yielding(&self, state: &mut ServerState<A>) -> Result<(), ActorProcessingErr> {
        let Stage::Yielding(y) = &mut state.stage else {
            return Ok(());
        };
        let winner = y.winner.info().clone();
        let exit = phase::yield_ended(self.registry.resolve(&winner).is_some());
        let mut holder = std::mem::take(&mut y.holder);
        holder.conflict = None;
        match exit {
            YieldExit::HoldAgainAsFailover => {
                tracing::warn!(
                    ?winner,
                    "the split-brain winner vanished: holding again as a failover from it"
                );
                self.enter(state, Stage::Holder(holder), None);
                self.hold_again_as_failover(state, &winner, None).await
            }
            YieldExit::ServeAgain => {
                let resumed = EventKind::HandoverResumed { successor: winner };
                self.enter(state, Stage::Holder(holder), Some(resumed));
                self.check_conflict(state).await
            }
        }
    }
}
