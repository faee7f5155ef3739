//! The old holder's side of a takeover: the state request, the state sent
//! (in parts if it is big, see `transfer`), retiring (forwarding until
//! `HandoverDone`, then a standby again), and what to do when
//! `HandoverDone` does not come.
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

use std::collections::VecDeque;
use std::sync::Arc;

use futures::FutureExt;
use ractor::{ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use super::calls::{panic_message, Pending};
use super::checkpoint::Warm;
use super::phase::{self, Ask, QueryAnswer, RetireExit};
use super::placement::Standby;
use super::{left, Holder, ServerState, Stage, TakeoverServer};
use crate::message::deliver;
use crate::{
    CallErr, CheckpointInfo, Epoch, EventKind, HandoverMsg, LeaveReason, PartOf, Registration,
    RegistrationInfo, RegistryEvent, ReplyErr, StartType, TakeoverActor, TakeoverMessage,
};

/// The stage of an old holder that sent its state.
pub(super) struct Retiring<A: TakeoverActor> {
    successor: RegistrationInfo,
    /// Calls that reached us before the successor showed in our view.
    waiting: VecDeque<Pending<A>>,
    forwarded: usize,
    /// When the state went, and its size: if the successor vanishes
    /// before its `HandoverDone`, that state is where we resume from.
    sent: Instant,
    bytes: usize,
    /// The successor left with no word, and a newer registration holds:
    /// we asked it whether its state came from the successor.
    asked: Option<RegistrationInfo>,
    /// The holder we were, to resume as.
    holder: Holder,
}

impl<A: TakeoverActor> Retiring<A> {
    /// The instance our state went to.
    pub(super) fn successor(&self) -> &RegistrationInfo {
        &self.successor
    }
}

impl<A: TakeoverActor> TakeoverServer<A> {
    pub(super) async fn on_state_request(
        &self,
        state: &mut ServerState<A>,
        holder_epoch: Epoch,
        requester: RegistrationInfo,
        have: Option<(Epoch, u64)>,
    ) -> Result<(), ActorProcessingErr> {
        // Calls held since the steal showed up arrived before this request:
        // they are ours to answer, and go into the state we send.
        if let Stage::Holder(h) = &mut state.stage {
            h.conflict = None;
            // Without a lease the calls left wait in the buffer; they go to
            // the successor with our state (below), which serves them after
            // it: they are never answered here without a lease.
            self.serve_buffered_before_handover(state).await?;
        }
        let Some(to) = self.registry.resolve(&requester) else {
            // The steal always reaches a node before the request does (same
            // link, in order), so an unknown requester rolled back already.
            tracing::warn!(
                ?requester,
                "state request from an instance not in our view; ignored"
            );
            return Ok(());
        };
        let holding = matches!(state.stage, Stage::Holder(_));
        let granted =
            phase::grants_state(holding, &self.name, state.epoch(), holder_epoch, &requester);
        // A standby that holds our state as it is now (synchronous standby,
        // or a checkpoint with nothing changed since) gets none again.
        let unchanged = granted
            .then(|| self.state_unchanged_for(state, &requester, have))
            .flatten();
        let result = if unchanged.is_some() {
            Ok(Vec::new())
        } else if !granted {
            Err(ReplyErr::Refused(format!(
                "instance on {} does not hold {:?} at epoch {holder_epoch}",
                self.registry.node(),
                self.name
            )))
        } else {
            self.encode_for_transfer(&state.user, &state.answered)
                .map_err(ReplyErr::State)
        };
        let (Ok(bytes), Stage::Holder(h)) = (result.as_ref(), &mut state.stage) else {
            let reply = HandoverMsg::StateReply {
                requester_epoch: requester.epoch,
                result,
            };
            deliver(&state.registry, &to, TakeoverMessage::<A>::Handover(reply));
            return Ok(());
        };
        tracing::info!(to = %requester.node, bytes = bytes.len(), unchanged = unchanged.is_some(), "state sent; forwarding from now on");
        let retiring = Retiring {
            successor: requester.clone(),
            // Calls held for want of a lease: the successor serves them
            // after our state, in order, before anything sent later.
            waiting: std::mem::take(&mut state.buffer),
            forwarded: 0,
            sent: Instant::now(),
            bytes: bytes.len(),
            asked: None,
            holder: std::mem::take(h),
        };
        let sent = EventKind::StateSent {
            to: requester.clone(),
            bytes: bytes.len(),
        };
        self.enter(state, Stage::Retiring(retiring), Some(sent));
        self.answer_held_moved(state);
        self.timer(
            state,
            self.config.pull_timeout,
            TakeoverMessage::RetireTick(requester.epoch),
        );
        let Ok(bytes) = result else {
            return Ok(());
        };
        if let (Some(seq), Some(holder_epoch)) = (unchanged, state.epoch()) {
            let msg = HandoverMsg::StateUnchanged {
                requester_epoch: requester.epoch,
                holder_epoch,
                seq,
            };
            deliver(&state.registry, &to, TakeoverMessage::<A>::Handover(msg));
            return Ok(());
        }
        let of = PartOf::StateReply {
            requester_epoch: requester.epoch,
        };
        self.send_state(state, &to, of, Arc::new(bytes));
        Ok(())
    }

    /// A call while retiring: to the successor once it shows in our view,
    /// in the order the calls came.
    pub(super) fn retiring_call(&self, state: &mut ServerState<A>, call: Pending<A>) {
        let Stage::Retiring(r) = &mut state.stage else {
            return;
        };
        match self.registry.resolve(&r.successor) {
            Some(next) if r.waiting.is_empty() => {
                r.forwarded += 1;
                self.forward(state, &next, call);
            }
            _ => r.waiting.push_back(call),
        }
    }

    /// The successor confirmed: forward what waits, unregister, and become a
    /// standby again (see [`Self::handed_over`]).
    pub(super) async fn on_handover_done(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        successor: RegistrationInfo,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Retiring(r) = &mut state.stage else {
            return Ok(());
        };
        if r.successor != successor {
            tracing::warn!(
                ?successor,
                "handover done from an unexpected instance; ignored"
            );
            return Ok(());
        }
        let waiting = std::mem::take(&mut r.waiting);
        let mut forwarded = r.forwarded;
        match self.registry.resolve(&successor) {
            Some(next) => {
                for call in waiting {
                    forwarded += 1;
                    self.forward(state, &next, call);
                }
            }
            None => {
                for call in waiting {
                    self.forward_to_holder(state, call);
                }
            }
        }
        if let Some(me) = self.set_registration(state, None) {
            self.registry
                .unregister_instance(&me, LeaveReason::Unregistered);
        }
        tracing::info!(to = %successor.node, forwarded, "retired");
        self.publish(
            state,
            EventKind::Retired {
                to: successor.clone(),
                forwarded,
            },
        );
        self.handed_over(myself, state, successor).await
    }

    /// An old holder whose state is safe with `to` (a successor that
    /// confirmed, or a split-brain winner that merged it), with its
    /// registration given up: its tenure ends (timers, held infos), the
    /// behaviour's `on_handed_over` runs, and the instance is a standby
    /// again, with a fresh entry in the standby group, ready for a takeover
    /// back. Why not stop, as it did: a plain ractor supervisor that linked
    /// it would stop too, and the node would have no standby left. Calls
    /// still queued are forwarded to the holder, as a standby does.
    pub(super) async fn handed_over(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        to: RegistrationInfo,
    ) -> Result<(), ActorProcessingErr> {
        self.end_tenure(state);
        let hook = std::panic::AssertUnwindSafe(self.behaviour.on_handed_over(
            &state.ctx,
            &to.node,
            &mut state.user,
        ))
        .catch_unwind()
        .await;
        let error = match hook {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(CallErr::Handler(e.to_string())),
            Err(panic) => Some(CallErr::Panicked(panic_message(panic.as_ref()))),
        };
        // Synchronous standby: the state we handed over is where the
        // successor's tenure starts (its replica 0); kept, the successor
        // sends us only what changed since, not the whole state again.
        let kept = self.sync_on().then(|| {
            let initial = match &state.initial {
                Ok(bytes) => self.behaviour.decode_state(bytes),
                Err(e) => Err(e.clone()),
            };
            initial.map(|init| std::mem::replace(&mut state.user, init))
        });
        match kept {
            Some(Ok(handed)) => {
                let mut standby = Standby::default();
                // With its window: the successor's replicas build on both.
                let answered = std::mem::take(&mut state.answered);
                standby.warm_mut().keep_handed_over(&to, handed, answered);
                self.enter(state, Stage::Standby(standby), None);
            }
            _ => {
                self.reset_to_initial(state);
                self.enter(state, Stage::Standby(Standby::default()), None);
            }
        }
        if let Some(error) = error {
            // As a failing handler: the queue is answered, then it fails.
            self.fail(state, error);
            return Ok(());
        }
        self.become_standby(state, Some(to)).await;
        // Placement looks after what is queued (forwarded, as by any
        // standby), not before: a takeover back waits its turn.
        let _ = myself.send_message(TakeoverMessage::PlacementTick);
        Ok(())
    }

    /// Puts back the state `init` made (see `ServerState::initial`). If it
    /// cannot be encoded or decoded again, the instance keeps the state it
    /// handed over, and says so: a failover to it would start from that.
    fn reset_to_initial(&self, state: &mut ServerState<A>) {
        let initial = match &state.initial {
            Ok(bytes) => self.behaviour.decode_state(bytes),
            Err(e) => Err(e.clone()),
        };
        match initial {
            Ok(user) => {
                state.user = user;
                // Its successor has the window now; a failover to this
                // standby starts, as from init's state, knowing no call.
                state.answered = Default::default();
            }
            Err(e) => tracing::warn!(
                error = %e,
                "the state init made does not encode and decode again: this standby keeps the state it handed over"
            ),
        }
    }

    /// A registry change while retiring: the successor left, or showed up
    /// (calls that waited for it go now).
    pub(super) async fn retiring_on_change(
        &self,
        state: &mut ServerState<A>,
        event: &RegistryEvent,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Retiring(r) = &mut state.stage else {
            return Ok(());
        };
        let next = self.registry.resolve(&r.successor);
        if left(event, &r.successor) && next.is_none() {
            let successor = r.successor.clone();
            let clean = matches!(
                event,
                RegistryEvent::Unregistered {
                    reason: LeaveReason::Unregistered,
                    ..
                }
            );
            let top = self.registry.lookup(&self.name);
            if phase::successor_rolled_back(
                &successor,
                clean,
                top.as_ref().map(Registration::info),
                state.memory.last_holder.as_ref(),
            ) {
                tracing::info!(
                    ?successor,
                    "successor left cleanly before its HandoverAborted came: it rolled back"
                );
                return self.on_handover_aborted(state, successor).await;
            }
            return self.successor_gone(state).await;
        }
        if let (Some(next), false) = (next, r.waiting.is_empty()) {
            let waiting = std::mem::take(&mut r.waiting);
            r.forwarded += waiting.len();
            for call in waiting {
                self.forward(state, &next, call);
            }
        }
        Ok(())
    }

    /// The takeover failed (the successor rolled back, or gave its pull up
    /// and got our state late): serve again, with our state untouched (we
    /// forwarded every call since we sent it).
    pub(super) async fn on_handover_aborted(
        &self,
        state: &mut ServerState<A>,
        successor: RegistrationInfo,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Retiring(r) = &mut state.stage else {
            return Ok(());
        };
        if r.successor != successor {
            return Ok(());
        }
        let holder = std::mem::take(&mut r.holder);
        tracing::info!(?successor, "takeover failed; serving again");
        let resumed = EventKind::HandoverResumed { successor };
        let Stage::Retiring(r) = self.enter(state, Stage::Holder(holder), Some(resumed)) else {
            return Ok(());
        };
        for call in r.waiting {
            self.on_call(state, call).await?;
        }
        // A newer holder may have shown while we forwarded.
        self.check_conflict(state).await
    }

    /// Every `pull_timeout` while we retire (the guard in `dispatch` checked
    /// it is this handover's): ask the successor whether our state reached
    /// it (or, the successor gone, the newer holder we asked).
    pub(super) async fn on_retire_tick(
        &self,
        state: &mut ServerState<A>,
        successor_epoch: Epoch,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Retiring(r) = &state.stage else {
            return Ok(());
        };
        let Some(me) = state.ctx.registration.as_ref().map(|m| m.info().clone()) else {
            return Ok(());
        };
        let successor = r.successor.clone();
        let to_successor = self.registry.resolve(&successor);
        let to_asked = r.asked.as_ref().and_then(|a| self.registry.resolve(a));
        let to = match phase::whom_to_ask(to_successor.is_some(), to_asked.is_some()) {
            Ask::Successor => to_successor,
            Ask::Newer => to_asked,
            Ask::Nobody => None,
        };
        match to {
            Some(to) => {
                tracing::info!(?successor, to = ?to.info(), "no HandoverDone yet; asking");
                let query = HandoverMsg::HandoverQuery { old: me, successor };
                deliver(&state.registry, &to, TakeoverMessage::<A>::Handover(query));
            }
            // Gone, and so is whoever we asked (or we missed the departure:
            // a lagging subscription): decide again from the view.
            None => self.successor_gone(state).await?,
        }
        // One timer chain per handover, for as long as we retire.
        if matches!(&state.stage, Stage::Retiring(r) if r.successor.epoch == successor_epoch) {
            self.timer(
                state,
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
        state: &mut ServerState<A>,
        old: RegistrationInfo,
        successor: RegistrationInfo,
    ) {
        let pulling = matches!(state.stage, Stage::Pulling(_));
        let answer =
            match phase::answer_query(state.memory.took_over.as_ref(), &old, &successor, pulling) {
                QueryAnswer::Done => {
                    // Asked after `pull_timeout`: a `HandoverDone` we held
                    // (`sync::handover_done`) waited long enough, and is
                    // the answer.
                    if self.flush_handover_done(state) {
                        return;
                    }
                    HandoverMsg::HandoverDone { successor }
                }
                QueryAnswer::Unknown => HandoverMsg::HandoverUnknown {
                    successor,
                    answerer: state.ctx.registration.as_ref().map(|r| r.info().clone()),
                },
                QueryAnswer::Silent => {
                    tracing::debug!(
                        ?old,
                        ?successor,
                        "handover query while pulling; no answer yet"
                    );
                    return;
                }
            };
        if let Some(to) = self.registry.resolve(&old) {
            deliver(&state.registry, &to, TakeoverMessage::<A>::Handover(answer));
        }
    }

    /// On the old holder: the instance we asked holds no state from our
    /// handover. If that is the successor itself, or the successor is gone
    /// too, resume.
    pub(super) async fn on_handover_unknown(
        &self,
        state: &mut ServerState<A>,
        successor: RegistrationInfo,
        answerer: Option<RegistrationInfo>,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Retiring(r) = &state.stage else {
            return Ok(());
        };
        let resolves = self.registry.resolve(&successor).is_some();
        if !phase::unknown_ends_retiring(&r.successor, &successor, answerer.as_ref(), resolves) {
            return Ok(());
        }
        self.resume_after_loss(state, successor).await
    }

    /// The successor left our view before its `HandoverDone` came.
    async fn successor_gone(&self, state: &mut ServerState<A>) -> Result<(), ActorProcessingErr> {
        let Stage::Retiring(r) = &state.stage else {
            return Ok(());
        };
        let successor = r.successor.clone();
        let top = self.registry.lookup(&self.name);
        let me = state.ctx.registration.as_ref().map(|m| m.info().clone());
        let exit = phase::after_successor_left(
            &successor,
            top.as_ref().map(Registration::info),
            me.is_some(),
        );
        let (RetireExit::AskNewer(_), Some(newer), Some(me)) = (exit, top, me) else {
            return self.resume_after_loss(state, successor).await;
        };
        tracing::info!(?successor, newer = ?newer.info(), "successor gone before confirming; asking the newer holder");
        let query = HandoverMsg::HandoverQuery { old: me, successor };
        deliver(
            &state.registry,
            &newer,
            TakeoverMessage::<A>::Handover(query),
        );
        if let Stage::Retiring(r) = &mut state.stage {
            r.asked = Some(newer.info().clone());
        }
        Ok(())
    }

    /// Holds the name again at a new epoch, as a failover from the vanished
    /// successor whose starting state is the one we sent it.
    async fn resume_after_loss(
        &self,
        state: &mut ServerState<A>,
        successor: RegistrationInfo,
    ) -> Result<(), ActorProcessingErr> {
        let epoch = state.epoch().unwrap_or_default();
        let Stage::Retiring(r) = &mut state.stage else {
            return Ok(());
        };
        // The state we resume from is our own at the handover: describe it
        // as a checkpoint of our old epoch, after the calls we had handled.
        let checkpoint = CheckpointInfo {
            holder_epoch: epoch,
            seq: 0,
            handled: r.holder.clock.handled(),
            age: r.sent.elapsed(),
            bytes: r.bytes,
        };
        let holder = std::mem::take(&mut r.holder);
        tracing::warn!(?successor, "successor gone before confirming the handover: resuming as a failover from the state sent to it; what it served since is lost");
        let Stage::Retiring(r) = self.enter(state, Stage::Holder(holder), None) else {
            return Ok(());
        };
        self.hold_again_as_failover(state, &successor, Some(checkpoint))
            .await?;
        for call in r.waiting {
            self.on_call(state, call).await?;
        }
        Ok(())
    }

    /// On a holder (entered already), after the instance we handed the name
    /// to (a successor, or a split-brain winner) vanished before we knew our
    /// state was safe with it: a new epoch, above everything it may have
    /// fenced, and `go` with `Failover { from: its node }`, which reports
    /// that what it served is lost. `checkpoint` describes the state we
    /// resume from, if known.
    pub(super) async fn hold_again_as_failover(
        &self,
        state: &mut ServerState<A>,
        gone: &RegistrationInfo,
        checkpoint: Option<CheckpointInfo>,
    ) -> Result<(), ActorProcessingErr> {
        self.publish(
            state,
            EventKind::HandoverResumed {
                successor: gone.clone(),
            },
        );
        self.hold_anew(state, gone, checkpoint).await
    }

    /// A new tenure of an instance that holds already, as a failover from
    /// `gone`: a new epoch (above every one seen), then `go`. For a holder
    /// that resumes after a lost handover, and for one that took a
    /// standby's or a loser's state whole (`conflict::merge`).
    pub(super) async fn hold_anew(
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
                if let Some(old) = self.set_registration(state, Some(new)) {
                    self.registry
                        .unregister_instance(&old, LeaveReason::Unregistered);
                }
            }
            Err(e) => {
                // Serving under the old epoch is still better than losing
                // the state; fencing may refuse what we write.
                tracing::warn!(error = %e, "could not take a new epoch; resuming under the old one");
            }
        }
        let start = StartType::Failover {
            from: gone.node.clone(),
            checkpoint,
        };
        self.begin_holding(state, start, Warm::default()).await
    }
}
