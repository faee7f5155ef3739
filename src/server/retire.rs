//! The old holder's side after it sent its state: waiting for
//! `HandoverDone`, and what to do when it does not come.
//!
//! Three things can go wrong once the state is sent (each found by the
//! fault-schedule suite):
//!
//! - the `HandoverDone` is lost (an undetected partition): the old holder
//!   asks again with `HandoverQuery` every `pull_timeout`, and a successor
//!   that installed that state answers `HandoverDone` once more;
//! - the successor leaves cleanly (it handed the name on, or yielded) before
//!   its `HandoverDone` reached us, and a newer holder is in our view: the
//!   state went on with it, so we retire;
//! - the successor vanishes otherwise (its node crashed, or it unregistered
//!   and nobody newer holds): we cannot know whether it installed the state
//!   and served calls. Resuming silently, as if the takeover had failed,
//!   would lose what it acknowledged without a word. So the old holder takes
//!   a new epoch (fencing whatever the successor wrote) and runs `go` with
//!   `Failover { from: successor's node }`, whose `checkpoint` describes the
//!   state it resumes from: its own at the handover (its old epoch, the
//!   calls it had handled, `seq` 0, age since the state was sent). User code
//!   learns exactly what a failover from a checkpoint would tell it.

use ractor::{ActorProcessingErr, ActorRef};

use super::{send_later, ServerState, Stage, TakeoverServer};
use crate::message::deliver;
use crate::{
    CheckpointInfo, EventKind, HandoverMsg, LeaveReason, RegistrationInfo, StartType,
    TakeoverActor, TakeoverMessage,
};

impl<A: TakeoverActor> TakeoverServer<A> {
    /// On the old holder, every `pull_timeout` while it retires: ask the
    /// successor whether our state reached it.
    pub(super) async fn on_retire_tick(
        &self,
        state: &mut ServerState<A>,
        successor_epoch: u64,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Retiring { successor, .. } = &state.stage else {
            return Ok(());
        };
        if successor.epoch != successor_epoch {
            return Ok(());
        }
        let successor = successor.clone();
        let Some(me) = state.me.as_ref().map(|m| m.info().clone()) else {
            return Ok(());
        };
        match self.registry.resolve(&successor) {
            Some(to) => {
                tracing::info!(name = %self.name, node = %self.registry.node(), ?successor, "no HandoverDone yet; asking the successor");
                deliver(
                    &state.registry,
                    &to,
                    TakeoverMessage::<A>::Handover(HandoverMsg::HandoverQuery {
                        old: me,
                        successor: successor.clone(),
                    }),
                );
                send_later(
                    &state.ctx.myself,
                    self.config.pull_timeout,
                    TakeoverMessage::RetireTick(successor_epoch),
                );
                Ok(())
            }
            // Its departure event was missed (a lagging subscription): the
            // view says it is gone, and we cannot tell how it left.
            None => {
                let myself = state.ctx.myself.clone();
                self.successor_gone(myself, state, false).await
            }
        }
    }

    /// On the successor: the old holder asks whether its state reached us.
    pub(super) fn on_handover_query(
        &self,
        state: &ServerState<A>,
        old: RegistrationInfo,
        successor: RegistrationInfo,
    ) {
        if state.took_over.as_ref() != Some(&(old.clone(), successor.epoch)) {
            // Still pulling (the pull ends by itself and says so), or not
            // ours: a stale or forged query changes nothing.
            tracing::debug!(name = %self.name, ?old, ?successor, "handover query for no takeover we finished; ignored");
            return;
        }
        if let Some(to) = self.registry.resolve(&old) {
            deliver(
                &state.registry,
                &to,
                TakeoverMessage::<A>::Handover(HandoverMsg::HandoverDone { successor }),
            );
        }
    }

    /// On the old holder: the successor left our view before its
    /// `HandoverDone` came. `clean`: it unregistered (rather than died or
    /// lost its node).
    pub(super) async fn successor_gone(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        clean: bool,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Retiring {
            successor, sent, ..
        } = &state.stage
        else {
            return Ok(());
        };
        let (successor, sent) = (successor.clone(), *sent);
        let newer = self
            .registry
            .lookup(&self.name)
            .filter(|top| top.info().rank() > successor.rank());
        if let (true, Some(newer)) = (clean, &newer) {
            // It handed the name on (or yielded) after installing our state.
            tracing::info!(name = %self.name, ?successor, newer = ?newer.info(), "successor left after handing on; retiring");
            return self
                .on_handover(
                    myself,
                    state,
                    HandoverMsg::HandoverDone {
                        successor: successor.clone(),
                    },
                )
                .await;
        }
        self.resume_after_loss(state, successor, sent).await
    }

    /// Holds the name again at a new epoch, as a failover from the vanished
    /// successor whose starting state is the one we sent it.
    async fn resume_after_loss(
        &self,
        state: &mut ServerState<A>,
        successor: RegistrationInfo,
        sent: tokio::time::Instant,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Retiring { bytes, .. } = &state.stage else {
            return Ok(());
        };
        let bytes = *bytes;
        // The state we resume from is our own at the handover: describe it
        // as a checkpoint of our old epoch, after the calls we had handled.
        let snapshot_epoch = state.me.as_ref().map(|m| m.epoch()).unwrap_or_default();
        let handled = state.handled;
        match self
            .registry
            .steal(&self.name, state.ctx.myself.get_cell())
            .await
        {
            Ok(new) => {
                if let Some(old) = state.me.replace(new) {
                    self.registry
                        .unregister(old.info(), LeaveReason::Unregistered);
                }
            }
            Err(e) => {
                // Serving under the old epoch is still better than losing
                // the state; fencing may refuse what we write.
                tracing::warn!(name = %self.name, error = %e, "could not take a new epoch; resuming under the old one");
            }
        }
        let Stage::Retiring { waiting, .. } = std::mem::replace(&mut state.stage, Stage::Holder)
        else {
            return Ok(());
        };
        tracing::warn!(name = %self.name, node = %self.registry.node(), ?successor, "successor gone before confirming the handover: resuming as a failover from the state sent to it; what it served since is lost");
        self.publish(
            state,
            EventKind::HandoverResumed {
                successor: successor.clone(),
            },
        );
        let start = StartType::Failover {
            from: successor.node.clone(),
            checkpoint: Some(CheckpointInfo {
                holder_epoch: snapshot_epoch,
                seq: 0,
                handled,
                age: sent.elapsed(),
                bytes,
            }),
        };
        self.start_holder(state, start).await?;
        for call in waiting {
            self.on_call(state, call).await?;
        }
        Ok(())
    }
}
