//! Split brain: two holders of one name after a partition heals.
//!
//! A holder that sees a registration of its name ranked above its own holds
//! its calls (a stale holder stops serving at once) and waits
//! `conflict_grace` for that instance's state request: a takeover steals
//! first and asks right after, so a request means a normal handover. With no
//! request, both holders ask the resolver, which gives the same answer on
//! every node:
//!
//! ```text
//!   winner (lower rank)                       loser
//!     | steal: rank above the loser's           |
//!     | serve the held calls                    | sees the winner above it,
//!     |                                         | no request: resolver says it lost
//!     |<---------- MergeOffer{state} -----------| forwards every call to the winner
//!     | merge hook (default: keep own state)    |
//!     |----------- MergeDone ------------------>| unregisters, a standby again
//! ```
//!
//! If the winner ranks above the loser already, it skips the steal.

use std::sync::Arc;

use ractor::{ActorProcessingErr, ActorRef};

use super::calls::Pending;
use super::phase::{self, Verdict, YieldExit};
use super::{Holder, ServerState, Stage, TakeoverServer};
use crate::message::deliver;
use crate::{
    EventKind, HandoverMsg, LeaveReason, PartOf, Registration, RegistrationInfo, RegistryEvent,
    ReplyErr, StateCodecErr, TakeoverActor, TakeoverMessage,
};

/// The stage of a holder that lost a split-brain conflict.
pub(super) struct Yielding {
    /// Where our state went, and every call goes now.
    winner: Registration,
    /// The holder we were, to serve again as if the winner never confirms.
    holder: Holder,
}

impl<A: TakeoverActor> TakeoverServer<A> {
    /// On a holder: is there a registration ranked above ours? If so, hold
    /// calls and give it `conflict_grace` to ask for a handover.
    pub(super) async fn check_conflict(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(me) = state.ctx.registration.clone() else {
            return Ok(());
        };
        let top = self.registry.lookup(&self.name);
        let Stage::Holder(holder) = &mut state.stage else {
            return Ok(());
        };
        match top.filter(|top| phase::ranks_above(Some(top.info()), me.info())) {
            Some(other) => {
                if holder.suspect.as_ref().map(Registration::info) != Some(other.info()) {
                    // Usually a takeover whose state request is right behind
                    // its steal: not worth a warning until the grace passes.
                    tracing::debug!(other = ?other.info(), "a registration above ours; holding calls");
                    holder.suspect = Some(other);
                    self.timer(
                        state,
                        self.config.conflict_grace,
                        TakeoverMessage::ConflictTick(me.epoch()),
                    );
                }
                Ok(())
            }
            None => {
                let suspected = holder.suspect.take().is_some();
                if (suspected || holder.quorum_lost) && self.may_answer(state) {
                    self.serve_buffered(state).await?;
                }
                Ok(())
            }
        }
    }

    /// A registry change on a holder: did the rival we wait on die? Else,
    /// check for a conflict again.
    pub(super) async fn holder_on_change(
        &self,
        state: &mut ServerState<A>,
        event: &RegistryEvent,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Holder(holder) = &mut state.stage else {
            return Ok(());
        };
        let rival = holder.suspect.as_ref().map(Registration::info);
        let resolves = rival.is_some_and(|r| self.registry.resolve(r).is_some());
        if !phase::rival_died(event, rival, resolves) {
            return self.check_conflict(state).await;
        }
        let Some(rival) = holder.suspect.take() else {
            return Ok(());
        };
        tracing::warn!(rival = ?rival.info(), "a rival holder died before the split brain healed: holding again as a failover from it");
        self.hold_again_as_failover(state, rival.info(), None)
            .await?;
        self.serve_held_if_answering(state).await
    }

    /// The conflict grace passed (the guard in `dispatch` checked it is this
    /// epoch's) with no state request from the rival.
    pub(super) async fn on_conflict_tick(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let (Some(me), Stage::Holder(holder)) = (state.ctx.registration.clone(), &mut state.stage)
        else {
            return Ok(());
        };
        let Some(other) = holder.suspect.clone() else {
            return Ok(());
        };
        let still_above = self
            .registry
            .resolve(other.info())
            .is_some_and(|o| phase::ranks_above(Some(o.info()), me.info()));
        if !still_above {
            holder.suspect = None;
            if self.may_answer(state) {
                self.serve_buffered(state).await?;
            }
            return Ok(());
        }
        tracing::warn!(other = ?other.info(), "a registration above ours never asked for a handover: two holders");
        self.publish(
            state,
            EventKind::ConflictSuspected {
                other: other.info().clone(),
            },
        );
        let placement = self.config.placement.as_ref();
        match phase::verdict(&*self.config.resolver, me.info(), other.info(), placement) {
            Verdict::Win => self.win(myself, state, me, other).await,
            Verdict::Yield => {
                self.yield_to(state, me, other);
                Ok(())
            }
        }
    }

    /// Wins a conflict: re-register above the loser so every lookup agrees,
    /// and serve the held calls.
    async fn win(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        me: Registration,
        loser: Registration,
    ) -> Result<(), ActorProcessingErr> {
        match self.registry.steal(&self.name, myself.get_cell()).await {
            Ok(new) => {
                self.registry
                    .unregister(me.info(), LeaveReason::Unregistered);
                self.set_registration(state, Some(new));
            }
            Err(e) => {
                tracing::warn!(error = %e, "conflict won, but the steal failed; retrying after the grace");
                self.clear_suspect(state);
                return self.check_conflict(state).await;
            }
        }
        tracing::warn!(loser = ?loser.info(), "split brain: this holder wins");
        self.clear_suspect(state);
        self.publish(
            state,
            EventKind::ConflictWon {
                loser: loser.info().clone(),
            },
        );
        self.serve_buffered(state).await
    }

    fn clear_suspect(&self, state: &mut ServerState<A>) {
        if let Stage::Holder(holder) = &mut state.stage {
            holder.suspect = None;
        }
    }

    /// Loses a conflict: offer the state to the winner, forward from now on.
    fn yield_to(&self, state: &mut ServerState<A>, me: Registration, winner: Registration) {
        tracing::warn!(winner = ?winner.info(), "split brain: this holder loses; offering its state");
        match self.encode_for_transfer(&state.user) {
            Ok(bytes) => {
                let of = PartOf::MergeOffer {
                    loser: me.info().clone(),
                    winner_epoch: winner.epoch(),
                };
                self.send_state(state, &winner, of, Arc::new(bytes));
            }
            Err(e) => deliver(
                &state.registry,
                &winner,
                TakeoverMessage::<A>::Handover(HandoverMsg::MergeOffer {
                    loser: me.info().clone(),
                    winner_epoch: winner.epoch(),
                    result: Err(ReplyErr::State(e)),
                }),
            ),
        }
        self.answer_held_moved(state);
        let Stage::Holder(holder) = &mut state.stage else {
            return;
        };
        holder.suspect = None;
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
    pub(super) fn yielding_call(&self, state: &ServerState<A>, call: Pending<A>) {
        if let Stage::Yielding(y) = &state.stage {
            self.forward(state, &y.winner, call);
        }
    }

    /// On the winner: the loser's state arrived.
    pub(super) async fn on_merge_offer(
        &self,
        state: &mut ServerState<A>,
        loser: RegistrationInfo,
        winner_epoch: u64,
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
        let theirs = match result {
            Ok(b) => self.decode_transferred(&b),
            Err(ReplyErr::State(e)) => Err(e),
            Err(ReplyErr::Refused(why)) => Err(StateCodecErr::Encode(why)),
        };
        let outcome = match theirs {
            Ok(theirs) => Some(
                self.behaviour
                    .merge(&state.ctx, &mut state.user, theirs, &loser)
                    .await?,
            ),
            Err(e) => {
                tracing::warn!(?loser, error = %e, "the loser's state could not be read; it is dropped");
                None
            }
        };
        tracing::info!(?loser, ?outcome, "split brain healed");
        self.publish(
            state,
            EventKind::SplitBrainHealed {
                loser: loser.clone(),
                outcome,
                bytes,
            },
        );
        if let Some(to) = self.registry.resolve(&loser) {
            deliver(
                &state.registry,
                &to,
                TakeoverMessage::<A>::Handover(HandoverMsg::MergeDone { loser }),
            );
        }
        Ok(())
    }

    /// On the loser: the winner has our state; retire, and wait as a
    /// standby (see `handover::handed_over`).
    pub(super) async fn on_merge_done(
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
                .unregister(me.info(), LeaveReason::Unregistered);
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
    pub(super) async fn on_yield_timeout(
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
    pub(super) async fn yielding_on_change(
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
        holder.suspect = None;
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
