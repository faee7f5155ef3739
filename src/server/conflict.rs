//! Split brain: two holders of one name, after a partition heals or a hung
//! holder resumes beside the one that failed over from it.
//!
//! A holder that sees another live registration of its name (not the
//! predecessor it took over from, not a loser it merged) sends it its
//! [`Claim`] in a `Rival` message. One ranked above ours may also be a
//! takeover whose state request is right behind its steal: calls are held
//! from the moment it shows, and its state request (a handover) or its
//! claim (a rival holder) says which. Once both claims are known, both
//! holders ask the resolver with the same two claims, so they agree:
//!
//! ```text
//!   winner                                    loser
//!     |<---------- Rival{claim} ---------------->|  each holds from here on
//!     | resolver: win; holds its calls           | resolver: lose; stops answering
//!     |<---------- MergeOffer{state} ------------| forwards its held calls, then
//!     | merge hook (default: keep own state)     | every call, to the winner
//!     | re-registers above the loser if needed,  |
//!     | serves the held calls                    |
//!     |----------- MergeDone ------------------->| unregisters, a standby again
//! ```
//!
//! The loser's held and later calls reach the winner after its offer (same
//! link, in order), so the winner serves them on the merged state: no
//! client sees the state go backwards across the heal. If the offer does
//! not come within `pull_timeout`, the winner serves without it and says so
//! (`MergeMissed`). Placement then moves the name to the preferred node by
//! an ordinary takeover, with its state.
//!
//! This file holds the conflict as the holders settle it (detection,
//! claims, the verdict); the merge that follows, on both sides, is in
//! `merge`.

mod merge;

use ractor::{ActorProcessingErr, ActorRef};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::phase::{self, RivalStep, Verdict};
use super::{Holder, ServerState, Stage, TakeoverServer};
use crate::message::deliver;
use crate::{
    Claim, EventKind, HandoverMsg, Registration, RegistrationInfo, RegistryEvent, TakeoverActor,
    TakeoverMessage,
};

/// The stage of a holder that lost a split-brain conflict.
pub(super) struct Yielding {
    /// Where our state went, and every call goes now.
    winner: Registration,
    /// The holder we were, to serve again as if the winner never confirms.
    holder: Holder,
}

/// A holder's open question with another registration of its name.
pub(super) struct Conflict {
    other: Registration,
    /// Our claim as we first sent it: the verdict must use exactly what the
    /// other side got.
    ours: Claim,
    theirs: Option<Claim>,
    /// It ranked above ours when it showed: maybe a takeover, so we hold
    /// until its state request or its claim says which.
    above: bool,
    /// We won: we hold our calls for its merge offer until then.
    merge_by: Option<Instant>,
    seen: Instant,
    warned: bool,
    /// The conflict tick: it resends our claim while we have none from the
    /// other (it may have been lost, or its node did not see us yet).
    tick: Option<AbortHandle>,
}

impl Conflict {
    /// Whether the holder holds its calls for this conflict.
    pub(super) fn holds(&self) -> bool {
        (self.above && self.theirs.is_none()) || self.merge_by.is_some()
    }
}

impl Drop for Conflict {
    fn drop(&mut self) {
        if let Some(t) = self.tick.take() {
            t.abort();
        }
    }
}

impl<A: TakeoverActor> TakeoverServer<A> {
    /// On a holder: is there another registration of our name to settle
    /// with? Opens a conflict with it (and sends our claim), or closes one
    /// whose rival left our view.
    pub(super) async fn check_conflict(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(me) = state.ctx.registration.clone() else {
            return Ok(());
        };
        let my_id = state.ctx.myself.get_id();
        let others: Vec<Registration> = self
            .registry
            .members(&self.name)
            .into_iter()
            .filter(|m| m.cell().get_id() != my_id)
            .collect();
        let predecessor = state.memory.took_over.as_ref().map(|(from, _)| from);
        let Stage::Holder(holder) = &mut state.stage else {
            return Ok(());
        };
        let merged = holder
            .merged
            .as_ref()
            .filter(|m| others.iter().any(|o| same_instance(o, m)))
            .map(Registration::info);
        let rival = phase::rival(others.iter().map(Registration::info), predecessor, merged)
            .and_then(|r| others.iter().find(|m| m.info() == r))
            .cloned();
        let current = holder.conflict.as_ref();
        match rival {
            Some(r) if current.is_some_and(|c| c.other.info() == r.info()) => Ok(()),
            Some(_) if current.is_some_and(|c| c.merge_by.is_some()) => Ok(()),
            Some(other) => {
                let above = phase::ranks_above(Some(other.info()), me.info());
                tracing::debug!(other = ?other.info(), above, "another registration of our name; sending our claim");
                let ours = Claim::new(me.info().clone(), holder.lineage);
                holder.conflict = Some(Conflict {
                    other,
                    ours,
                    theirs: None,
                    above,
                    merge_by: None,
                    seen: Instant::now(),
                    warned: false,
                    tick: None,
                });
                self.send_claim(state, true);
                self.arm_conflict_tick(state);
                Ok(())
            }
            None => {
                if let Some(c) = holder.conflict.take() {
                    if c.merge_by.is_some() {
                        self.merge_missed(state, c.other.info().clone());
                    }
                }
                self.serve_held_if_answering(state).await
            }
        }
    }

    /// Sends our claim to the rival of the open conflict.
    fn send_claim(&self, state: &ServerState<A>, want_reply: bool) {
        let Stage::Holder(Holder {
            conflict: Some(c), ..
        }) = &state.stage
        else {
            return;
        };
        deliver(
            &state.registry,
            &c.other,
            TakeoverMessage::<A>::Handover(HandoverMsg::Rival {
                claim: c.ours.clone(),
                want_reply,
            }),
        );
    }

    /// (Re)starts the conflict tick of the open conflict.
    pub(super) fn arm_conflict_tick(&self, state: &mut ServerState<A>) {
        let Some(epoch) = state.epoch() else {
            return;
        };
        let tick = self
            .timer(
                state,
                self.config.conflict_grace,
                TakeoverMessage::ConflictTick(epoch),
            )
            .abort_handle();
        if let Stage::Holder(Holder {
            conflict: Some(c), ..
        }) = &mut state.stage
        {
            if let Some(old) = c.tick.replace(tick) {
                old.abort();
            }
        }
    }

    fn merge_missed(&self, state: &mut ServerState<A>, loser: RegistrationInfo) {
        tracing::warn!(
            ?loser,
            "the conflict's loser never sent its state; serving without it"
        );
        let from = loser.node.clone();
        self.publish(state, EventKind::MergeMissed { loser });
        self.moved(state, Some(from), crate::event::MoveReason::Conflict);
    }

    /// A registry change on a holder: did the rival we settle with die?
    /// Else, check for a conflict again.
    pub(super) async fn holder_on_change(
        &self,
        state: &mut ServerState<A>,
        event: &RegistryEvent,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Holder(holder) = &mut state.stage else {
            return Ok(());
        };
        // Only a rival that holds the name (its claim came) or may have
        // stolen it (it ranks above ours) had calls of its own to lose; a
        // lower registration that never answered is a leftover.
        let rival = holder
            .conflict
            .as_ref()
            .filter(|c| c.above || c.theirs.is_some())
            .map(|c| c.other.info());
        let resolves = rival.is_some_and(|r| self.registry.resolve(r).is_some());
        if !phase::rival_died(event, rival, resolves) {
            return self.check_conflict(state).await;
        }
        let Some(rival) = holder.conflict.take() else {
            return Ok(());
        };
        tracing::warn!(rival = ?rival.other.info(), "a rival holder died before the split brain healed: holding again as a failover from it");
        self.hold_again_as_failover(state, rival.other.info(), None)
            .await?;
        self.serve_held_if_answering(state).await
    }

    /// A rival holder's claim.
    pub(super) async fn on_rival(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        claim: Claim,
        want_reply: bool,
    ) -> Result<(), ActorProcessingErr> {
        let me = state.ctx.registration.clone();
        let reachable = self.registry.resolve(&claim.holder);
        let Stage::Holder(holder) = &mut state.stage else {
            tracing::debug!(?claim, "a rival's claim, but we do not hold; ignored");
            return Ok(());
        };
        let current = holder
            .conflict
            .as_ref()
            .map(|c| (c.other.info(), c.theirs.is_some(), c.merge_by.is_some()));
        let merged = holder
            .merged
            .as_ref()
            .filter(|m| reachable.as_ref().is_some_and(|r| same_instance(r, m)))
            .map(Registration::info);
        let step = phase::on_rival_claim(
            &claim.holder,
            &self.name,
            me.as_ref().map(Registration::info),
            merged,
            current,
            reachable.is_some(),
        );
        let (Some(me), Some(other)) = (me, reachable) else {
            tracing::debug!(
                ?claim,
                ?step,
                "a rival's claim, but its registration is not in our view; ignored"
            );
            return Ok(());
        };
        match step {
            RivalStep::Ignore | RivalStep::Busy => {
                tracing::debug!(?claim, ?step, "a rival's claim, not acted on");
                return Ok(());
            }
            RivalStep::MergedResumed => {
                tracing::warn!(loser = ?other.info(), "the loser we merged holds again (it missed our MergeDone); deciding anew");
                holder.merged = None;
            }
            RivalStep::AnswerOnly => {
                if want_reply {
                    self.send_claim(state, false);
                }
                return Ok(());
            }
            RivalStep::Decide => {}
        }
        let fresh = holder
            .conflict
            .as_ref()
            .is_none_or(|c| c.other.info() != other.info());
        if fresh {
            holder.conflict = Some(Conflict {
                above: phase::ranks_above(Some(other.info()), me.info()),
                other,
                ours: Claim::new(me.info().clone(), holder.lineage),
                theirs: None,
                merge_by: None,
                seen: Instant::now(),
                warned: false,
                tick: None,
            });
        }
        if let Some(c) = &mut holder.conflict {
            c.theirs = Some(claim);
        }
        // Our claim goes first: a loser's merge offer must reach the winner
        // after the claim it decides with (same link, in order).
        if fresh || want_reply {
            self.send_claim(state, false);
        }
        if fresh {
            self.arm_conflict_tick(state);
        }
        self.decide(myself, state, me).await
    }

    /// Both claims are known: win (hold for the merge) or yield.
    async fn decide(
        &self,
        _myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        me: Registration,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Holder(Holder {
            conflict: Some(c), ..
        }) = &mut state.stage
        else {
            return Ok(());
        };
        let Some(theirs) = &c.theirs else {
            return Ok(());
        };
        let placement = self.config.placement.as_ref();
        match phase::verdict(&*self.config.resolver, &c.ours, theirs, placement) {
            Verdict::Win => {
                c.merge_by = Some(Instant::now() + self.config.pull_timeout);
                let loser = c.other.info().clone();
                tracing::warn!(?loser, ours = ?c.ours, ?theirs, "split brain: this holder wins; holding calls for the loser's state");
                self.publish(state, EventKind::ConflictWon { loser });
                Ok(())
            }
            Verdict::Yield => {
                let winner = c.other.clone();
                self.yield_to(state, me, winner);
                Ok(())
            }
        }
    }

    /// The conflict tick (the guard in `dispatch` checked it is this
    /// epoch's and a conflict is open): give up waiting for a merge that did
    /// not come, or send our claim again.
    pub(super) async fn on_conflict_tick(
        &self,
        _myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Holder(holder) = &mut state.stage else {
            return Ok(());
        };
        let Some(c) = &mut holder.conflict else {
            return Ok(());
        };
        if let Some(by) = c.merge_by {
            if Instant::now() >= by {
                let loser = c.other.info().clone();
                holder.conflict = None;
                self.merge_missed(state, loser);
                // The loser may hold still: it decided against an older
                // claim of ours and waits for our state in turn (seed
                // 4024867561: both ends won, both missed the merge, and
                // both served until the end, no registry change to wake
                // them). Settle with whoever is in view now, or serve.
                return self.check_conflict(state).await;
            }
        } else if c.theirs.is_none() {
            if c.above && !c.warned && c.seen.elapsed() >= self.config.conflict_grace {
                c.warned = true;
                let other = c.other.info().clone();
                tracing::warn!(
                    ?other,
                    "a registration above ours neither asked for a handover nor sent a claim yet"
                );
                self.publish(state, EventKind::ConflictSuspected { other });
            }
            self.send_claim(state, true);
        }
        self.arm_conflict_tick(state);
        Ok(())
    }
}

/// Whether two registrations are the same instance's same registration.
fn same_instance(a: &Registration, b: &Registration) -> bool {
    a.info() == b.info() && a.cell().get_id() == b.cell().get_id()
}
