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
//!     |----------- MergeDone ------------------>| unregisters, drains, stops
//! ```
//!
//! If the winner ranks above the loser already, it skips the steal.

use std::cmp::Ordering;

use ractor::{ActorProcessingErr, ActorRef};

use super::{send_later, ServerState, Stage, TakeoverServer};
use crate::message::deliver;
use crate::{
    EventKind, HandoverMsg, LeaveReason, Registration, RegistrationInfo, ReplyErr, StateCodecErr,
    TakeoverActor, TakeoverMessage,
};

impl<A: TakeoverActor> TakeoverServer<A> {
    /// Whether this node may start a holder: always, unless quorum mode is on
    /// and fewer than a majority of the placement's nodes are live.
    pub(super) fn has_quorum(&self) -> bool {
        if !self.config.quorum {
            return true;
        }
        let Some(placement) = &self.config.placement else {
            return true;
        };
        let listed: Vec<_> = placement.groups().iter().flatten().collect();
        let live = self.registry.live_nodes();
        let up = listed.iter().filter(|n| live.contains(**n)).count();
        up * 2 > listed.len()
    }

    /// On a holder, quorum mode: whether a majority is live, noting the
    /// change. Without quorum the holder holds its calls (in `buffer`), so a
    /// holder cut into a minority acknowledges nothing the majority's new
    /// holder will not know about.
    pub(super) fn may_serve(&self, state: &mut ServerState<A>) -> bool {
        let quorum = self.has_quorum();
        if quorum == state.quorum_lost {
            state.quorum_lost = !quorum;
            if quorum {
                tracing::info!(name = %self.name, node = %self.registry.node(), "quorum regained; serving the held calls");
                self.publish(state, EventKind::QuorumRegained);
            } else {
                let live: Vec<_> = self.registry.live_nodes().into_iter().collect();
                tracing::warn!(name = %self.name, node = %self.registry.node(), ?live, "quorum lost; holding calls");
                self.publish(state, EventKind::QuorumLost { live });
            }
        }
        quorum
    }

    /// On a holder: is there a registration ranked above ours?
    pub(super) async fn check_conflict(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(me) = state.me.clone() else {
            return Ok(());
        };
        let above = self
            .registry
            .lookup(&self.name)
            .filter(|top| top.info().rank() > me.info().rank());
        match above {
            Some(other) => {
                if state.suspect.as_ref().map(Registration::info) != Some(other.info()) {
                    // Usually a takeover whose state request is right behind
                    // its steal: not worth a warning until the grace passes.
                    tracing::debug!(name = %self.name, node = %self.registry.node(), other = ?other.info(), "a registration above ours; holding calls");
                    state.suspect = Some(other);
                    send_later(
                        &state.ctx.myself,
                        self.config.conflict_grace,
                        TakeoverMessage::ConflictTick(me.epoch()),
                    );
                }
                Ok(())
            }
            None => {
                let suspected = state.suspect.take().is_some();
                if (suspected || state.quorum_lost) && self.may_serve(state) {
                    self.release_held(state).await?;
                }
                Ok(())
            }
        }
    }

    /// Serves the held calls if nothing holds them any more (no suspected
    /// conflict, and quorum if quorum mode is on).
    pub(super) async fn release_held_if_serving(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        if matches!(state.stage, Stage::Holder) && state.suspect.is_none() && self.may_serve(state)
        {
            self.release_held(state).await?;
        }
        Ok(())
    }

    /// Serves the calls held while a conflict was suspected, in order.
    pub(super) async fn release_held(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        while let Some(call) = state.buffer.pop_front() {
            self.serve(state, call).await?;
        }
        Ok(())
    }

    pub(super) async fn on_conflict_tick(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        epoch: u64,
    ) -> Result<(), ActorProcessingErr> {
        let (Stage::Holder, Some(me), Some(other)) =
            (&state.stage, state.me.clone(), state.suspect.clone())
        else {
            return Ok(());
        };
        if me.epoch() != epoch {
            return Ok(());
        }
        let still_above = self
            .registry
            .resolve(other.info())
            .is_some_and(|o| o.info().rank() > me.info().rank());
        if !still_above {
            state.suspect = None;
            if self.may_serve(state) {
                self.release_held(state).await?;
            }
            return Ok(());
        }
        tracing::warn!(name = %self.name, node = %self.registry.node(), other = ?other.info(), "a registration above ours never asked for a handover: two holders");
        self.publish(
            state,
            EventKind::ConflictSuspected {
                other: other.info().clone(),
            },
        );
        let verdict =
            self.config
                .resolver
                .compare(me.info(), other.info(), self.config.placement.as_ref());
        if verdict == Ordering::Greater {
            // We keep the name; rank above the loser so every lookup agrees.
            match self.registry.steal(&self.name, myself.get_cell()).await {
                Ok(new) => {
                    self.registry
                        .unregister(me.info(), LeaveReason::Unregistered);
                    state.ctx.epoch = Some(new.epoch());
                    state.me = Some(new);
                }
                Err(e) => {
                    tracing::warn!(name = %self.name, error = %e, "conflict won, but the steal failed; retrying after the grace");
                    state.suspect = None;
                    return self.check_conflict(state).await;
                }
            }
            tracing::warn!(name = %self.name, node = %self.registry.node(), loser = ?other.info(), "split brain: this holder wins");
            state.suspect = None;
            self.publish(
                state,
                EventKind::ConflictWon {
                    loser: other.info().clone(),
                },
            );
            self.release_held(state).await
        } else {
            self.yield_to(state, me, other);
            Ok(())
        }
    }

    /// Loses a conflict: offer the state to the winner, forward from now on.
    fn yield_to(&self, state: &mut ServerState<A>, me: Registration, winner: Registration) {
        tracing::warn!(name = %self.name, node = %self.registry.node(), winner = ?winner.info(), "split brain: this holder loses; offering its state");
        let result = self
            .encode_for_transfer(&state.user)
            .map_err(ReplyErr::State);
        deliver(
            &state.registry,
            &winner,
            TakeoverMessage::<A>::Handover(HandoverMsg::MergeOffer {
                loser: me.info().clone(),
                winner_epoch: winner.epoch(),
                result,
            }),
        );
        state.suspect = None;
        for call in std::mem::take(&mut state.buffer) {
            self.forward(state, &winner, call);
        }
        self.publish(
            state,
            EventKind::ConflictLost {
                winner: winner.info().clone(),
            },
        );
        state.stage = Stage::Yielding { winner };
        send_later(
            &state.ctx.myself,
            self.config.pull_timeout,
            TakeoverMessage::YieldTimeout(me.epoch()),
        );
    }

    /// On the winner: the loser's state arrived.
    pub(super) async fn on_merge_offer(
        &self,
        state: &mut ServerState<A>,
        loser: RegistrationInfo,
        winner_epoch: u64,
        result: Result<Vec<u8>, ReplyErr>,
    ) -> Result<(), ActorProcessingErr> {
        if loser.name != self.name || !matches!(state.stage, Stage::Holder) {
            tracing::warn!(name = %self.name, ?loser, winner_epoch, "merge offer for another name, or we do not hold it; ignored");
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
                tracing::warn!(name = %self.name, ?loser, error = %e, "the loser's state could not be read; it is dropped");
                None
            }
        };
        tracing::info!(name = %self.name, ?loser, ?outcome, "split brain healed");
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

    /// On the loser: the winner has our state; retire.
    pub(super) fn on_merge_done(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        loser: RegistrationInfo,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Yielding { winner } = &state.stage else {
            return Ok(());
        };
        if state.me.as_ref().map(Registration::info) != Some(&loser) {
            tracing::warn!(name = %self.name, ?loser, "merge done for another registration; ignored");
            return Ok(());
        }
        let to = winner.info().clone();
        if let Some(me) = state.me.take() {
            self.registry
                .unregister(me.info(), LeaveReason::Unregistered);
        }
        self.publish(state, EventKind::Retired { to, forwarded: 0 });
        myself.drain()?;
        Ok(())
    }

    pub(super) async fn on_yield_timeout(
        &self,
        _myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        epoch: u64,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Yielding { winner } = &state.stage else {
            return Ok(());
        };
        if state.me.as_ref().map(Registration::epoch) != Some(epoch) {
            return Ok(());
        }
        let winner = winner.info().clone();
        tracing::warn!(name = %self.name, ?winner, "the winner never confirmed the merge; serving again");
        self.stop_yielding(state, &winner).await
    }

    /// The winner went away (or never answered): hold the name again. If it
    /// went away, it may have merged our state and served calls since, all
    /// lost with it: take a new epoch and report a failover from it.
    pub(super) async fn stop_yielding(
        &self,
        state: &mut ServerState<A>,
        winner: &RegistrationInfo,
    ) -> Result<(), ActorProcessingErr> {
        if self.registry.resolve(winner).is_none() {
            tracing::warn!(name = %self.name, node = %self.registry.node(), ?winner, "the split-brain winner vanished: holding again as a failover from it");
            state.stage = Stage::Holder;
            state.suspect = None;
            return self.hold_again_as_failover(state, winner, None).await;
        }
        state.stage = Stage::Holder;
        state.suspect = None;
        self.publish(
            state,
            EventKind::HandoverResumed {
                successor: winner.clone(),
            },
        );
        self.check_conflict(state).await
    }
}
