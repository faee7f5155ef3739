//! The old holder's side after it sent its state: waiting for
//! `HandoverDone`, and what to do when it does not come.
//!
//! Three things can go wrong once the state is sent (each found by the
//! fault-schedule suite):
//!
//! - the `HandoverDone` is lost (an undetected partition): the old holder
//!   asks again with `HandoverQuery` every `pull_timeout`, and a successor
//!   that installed that state answers `HandoverDone` once more;
//! - the successor leaves before its `HandoverDone` reached us, and a newer
//!   registration holds: it may have taken the name over from the successor
//!   (with or without our state: the successor may have given its pull up
//!   as a failover), stolen it from us, or failed over. We ask it
//!   (`HandoverQuery` naming the successor); only the successor itself can
//!   confirm, so it answers `HandoverUnknown` and we resume as below (a
//!   newer instance still pulling says nothing, and we ask again). If our
//!   state did go on with the successor, the two holders meet as a split
//!   brain and the conflict resolution merges them: reported, not lost;
//! - the successor vanishes and nobody newer holds (or the newer one says
//!   `HandoverUnknown`): we cannot know whether it installed the state
//!   and served calls. Resuming silently, as if the takeover had failed,
//!   would lose what it acknowledged without a word. So the old holder takes
//!   a new epoch (fencing whatever the successor wrote) and runs `go` with
//!   `Failover { from: successor's node }`, whose `checkpoint` describes the
//!   state it resumes from: its own at the handover (its old epoch, the
//!   calls it had handled, `seq` 0, age since the state was sent). User code
//!   learns exactly what a failover from a checkpoint would tell it.

use ractor::ActorProcessingErr;

use super::{send_later, ServerState, Stage, TakeoverServer};
use crate::message::deliver;
use crate::{
    CheckpointInfo, EventKind, HandoverMsg, LeaveReason, RegistrationInfo, StartType,
    TakeoverActor, TakeoverMessage,
};

impl<A: TakeoverActor> TakeoverServer<A> {
    /// On the old holder, every `pull_timeout` while it retires: ask the
    /// successor whether our state reached it (or, the successor gone, the
    /// newer holder we asked whether it took over from the successor).
    pub(super) async fn on_retire_tick(
        &self,
        state: &mut ServerState<A>,
        successor_epoch: u64,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Retiring {
            successor, asked, ..
        } = &state.stage
        else {
            return Ok(());
        };
        if successor.epoch != successor_epoch {
            return Ok(());
        }
        let (successor, asked) = (successor.clone(), asked.clone());
        let Some(me) = state.me.as_ref().map(|m| m.info().clone()) else {
            return Ok(());
        };
        let ask = self
            .registry
            .resolve(&successor)
            .or_else(|| asked.and_then(|a| self.registry.resolve(&a)));
        match ask {
            Some(to) => {
                tracing::info!(name = %self.name, node = %self.registry.node(), ?successor, to = ?to.info(), "no HandoverDone yet; asking");
                deliver(
                    &state.registry,
                    &to,
                    TakeoverMessage::<A>::Handover(HandoverMsg::HandoverQuery {
                        old: me,
                        successor,
                    }),
                );
            }
            // Gone, and so is whoever we asked (or we missed the departure:
            // a lagging subscription): decide again from the view.
            None => self.successor_gone(state).await?,
        }
        // One timer chain per handover, for as long as we retire.
        if matches!(&state.stage, Stage::Retiring { successor, .. } if successor.epoch == successor_epoch)
        {
            send_later(
                &state.ctx.myself,
                self.config.pull_timeout,
                TakeoverMessage::RetireTick(successor_epoch),
            );
        }
        Ok(())
    }

    /// On the successor, or on a newer holder: the old holder asks whether
    /// the state it sent to `successor` reached us.
    pub(super) fn on_handover_query(
        &self,
        state: &ServerState<A>,
        old: RegistrationInfo,
        successor: RegistrationInfo,
    ) {
        // Only the successor itself can say it installed that state: a
        // newer holder that took the name over from the successor cannot
        // tell whether the successor's state came from the old holder (the
        // successor may have given its pull up as a failover before the state
        // came), so it answers `HandoverUnknown`, and the old holder resumes
        // as a reported failover; a conflict then merges the two.
        let reached = state.took_over.as_ref() == Some(&(old.clone(), successor.epoch));
        let answer = if reached {
            HandoverMsg::HandoverDone { successor }
        } else if matches!(state.stage, Stage::Pulling { .. }) {
            // Our pull ends by itself and says so (to whom it concerns).
            tracing::debug!(name = %self.name, ?old, ?successor, "handover query while pulling; no answer yet");
            return;
        } else {
            HandoverMsg::HandoverUnknown { successor }
        };
        if let Some(to) = self.registry.resolve(&old) {
            deliver(&state.registry, &to, TakeoverMessage::<A>::Handover(answer));
        }
    }

    /// On the old holder: the instance we asked holds no state from our
    /// handover. If the successor is gone too, resume.
    pub(super) async fn on_handover_unknown(
        &self,
        state: &mut ServerState<A>,
        successor: RegistrationInfo,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Retiring {
            successor: expected,
            sent,
            ..
        } = &state.stage
        else {
            return Ok(());
        };
        if *expected != successor || self.registry.resolve(&successor).is_some() {
            return Ok(());
        }
        let sent = *sent;
        self.resume_after_loss(state, successor, sent).await
    }

    /// On the old holder: the successor left our view before its
    /// `HandoverDone` came.
    pub(super) async fn successor_gone(
        &self,
        state: &mut ServerState<A>,
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
        let (Some(newer), Some(me)) = (newer, state.me.as_ref().map(|m| m.info().clone())) else {
            return self.resume_after_loss(state, successor, sent).await;
        };
        tracing::info!(name = %self.name, ?successor, newer = ?newer.info(), "successor gone before confirming; asking the newer holder");
        deliver(
            &state.registry,
            &newer,
            TakeoverMessage::<A>::Handover(HandoverMsg::HandoverQuery {
                old: me,
                successor: successor.clone(),
            }),
        );
        if let Stage::Retiring { asked, .. } = &mut state.stage {
            *asked = Some(newer.info().clone());
        }
        Ok(())
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
        // The state we resume from is our own at the handover: describe it
        // as a checkpoint of our old epoch, after the calls we had handled.
        let checkpoint = CheckpointInfo {
            holder_epoch: state.me.as_ref().map(|m| m.epoch()).unwrap_or_default(),
            seq: 0,
            handled: state.handled,
            age: sent.elapsed(),
            bytes: *bytes,
        };
        let Stage::Retiring { waiting, .. } = std::mem::replace(&mut state.stage, Stage::Holder)
        else {
            return Ok(());
        };
        tracing::warn!(name = %self.name, node = %self.registry.node(), ?successor, "successor gone before confirming the handover: resuming as a failover from the state sent to it; what it served since is lost");
        self.hold_again_as_failover(state, &successor, Some(checkpoint))
            .await?;
        for call in waiting {
            self.on_call(state, call).await?;
        }
        Ok(())
    }

    /// Holds the name again after the instance we handed it to (a successor,
    /// or a split-brain winner) vanished before we knew our state was safe
    /// with it: a new epoch, above everything it may have fenced, and `go`
    /// with `Failover { from: its node }`, which reports that what it served
    /// is lost. `checkpoint` describes the state we resume from, if known.
    pub(super) async fn hold_again_as_failover(
        &self,
        state: &mut ServerState<A>,
        gone: &RegistrationInfo,
        checkpoint: Option<CheckpointInfo>,
    ) -> Result<(), ActorProcessingErr> {
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
        self.publish(
            state,
            EventKind::HandoverResumed {
                successor: gone.clone(),
            },
        );
        let start = StartType::Failover {
            from: gone.node.clone(),
            checkpoint,
        };
        self.start_holder(state, start).await
    }
}
