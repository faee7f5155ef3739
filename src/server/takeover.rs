//! The new holder's side of a takeover: `go`, the steal, the pull (the
//! state whole or in parts, see `transfer`), installing the state, and how a pull ends otherwise (rolled
//! back, or run as a failover when the old holder is gone).

use ractor::concurrency::JoinHandle;
use ractor::{ActorCell, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};
use tokio::time::Instant;

use super::checkpoint::Warm;
use super::phase::{self, PullExit};
use super::placement::Standby;
use super::{left, Holder, ServerState, Stage, TakeoverServer};
use crate::message::deliver;
use crate::{
    Epoch, EventKind, GoRequest, HandoverMsg, HandoverReport, LeaveReason, Registration,
    RegistrationInfo, RegistryEvent, ReplyErr, StartType, TakeoverActor, TakeoverErr,
    TakeoverMessage,
};

type GoReply = RpcReplyPort<Result<HandoverReport, TakeoverErr>>;

/// The stage of an instance that stole the name and waits for the state.
pub(super) struct Pulling<A: TakeoverActor> {
    /// The registration we stole: the epoch we pull under.
    me: Registration,
    from: RegistrationInfo,
    /// The old holder's instance: it may re-register under a new epoch
    /// (after winning a conflict), which is not a death.
    old: ActorCell,
    started: Instant,
    go_reply: Option<GoReply>,
    timer: JoinHandle<Result<(), MessagingErr<TakeoverMessage<A>>>>,
    /// The standby's checkpoint and group entry: a pull that ends as a
    /// failover starts from that checkpoint, one rolled back is a standby
    /// again.
    warm: Warm<A>,
    /// The replica the old holder named as its state (`StateUnchanged`)
    /// before it reached us: it was sent first, but to our standby entry,
    /// and on the real backend each registration relays through a token
    /// actor of its own, so the two can arrive in either order.
    awaiting: Option<(Epoch, u64)>,
}

impl<A: TakeoverActor> Pulling<A> {
    /// The standby's part it pulls with (replicas keep coming while it pulls).
    pub(super) fn warm_mut(&mut self) -> &mut Warm<A> {
        &mut self.warm
    }

    /// The registration we stole: the epoch we pull under.
    pub(super) fn registration(&self) -> &Registration {
        &self.me
    }

    /// The old holder we pull from, as we reach it (its state comes from
    /// there, our acks for its parts go there).
    pub(super) fn old_holder(&self) -> Registration {
        Registration::new(self.from.clone(), self.old.clone())
    }
}

impl<A: TakeoverActor> TakeoverServer<A> {
    pub(super) async fn on_go(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        request: GoRequest,
        reply: Option<GoReply>,
    ) -> Result<(), ActorProcessingErr> {
        let answer = |reply: Option<GoReply>, r: Result<HandoverReport, TakeoverErr>| {
            if let Some(reply) = reply {
                let _ = reply.send(r);
            }
        };
        if !matches!(state.stage, Stage::Standby(_)) {
            answer(reply, Err(TakeoverErr::NotStandby));
            return Ok(());
        }
        match request {
            GoRequest::Failover { from } => {
                let start = StartType::Failover {
                    from,
                    checkpoint: None,
                };
                let outcome = self.take_vacant(&myself, state, start).await?;
                answer(reply, outcome);
            }
            GoRequest::Takeover => {
                let Some(holder) = self.registry.lookup(&self.name) else {
                    answer(reply, Err(TakeoverErr::NoHolder));
                    return Ok(());
                };
                // Steal first: from here on every lookup resolves to us, so new
                // calls come here (and wait in the buffer) instead of racing
                // the state transfer at the old holder.
                let have = match &state.stage {
                    Stage::Standby(s) => s.warm().have(),
                    _ => None,
                };
                let me = match self.registry.steal(&self.name, myself.get_cell()).await {
                    Ok(me) => me,
                    Err(e) => {
                        answer(reply, Err(e.into()));
                        return Ok(());
                    }
                };
                deliver(
                    &state.registry,
                    &holder,
                    TakeoverMessage::<A>::Handover(HandoverMsg::StateRequest {
                        holder_epoch: holder.epoch(),
                        requester: me.info().clone(),
                        have,
                    }),
                );
                let timer = self.timer(
                    state,
                    self.config.pull_timeout,
                    TakeoverMessage::PullTimeout(me.epoch()),
                );
                tracing::info!(epoch = me.epoch(), from = %holder.node(), "takeover: name stolen, pulling state");
                let Stage::Standby(standby) = &mut state.stage else {
                    return Ok(());
                };
                let warm = standby.take_warm();
                let pulling = Pulling {
                    me,
                    from: holder.info().clone(),
                    old: holder.cell().clone(),
                    started: Instant::now(),
                    go_reply: reply,
                    timer,
                    warm,
                    awaiting: None,
                };
                let started = EventKind::TakeoverStarted {
                    from: holder.info().clone(),
                };
                self.enter(state, Stage::Pulling(pulling), Some(started));
            }
        }
        Ok(())
    }

    /// The old holder's answer to our state request.
    pub(super) async fn on_state_reply(
        &self,
        state: &mut ServerState<A>,
        requester_epoch: Epoch,
        result: Result<Vec<u8>, ReplyErr>,
    ) -> Result<(), ActorProcessingErr> {
        if !self.pulling_at(state, requester_epoch) {
            self.on_late_state(state, requester_epoch, result.is_ok());
            return Ok(());
        }
        match result.map_err(|e| match e {
            ReplyErr::State(e) => TakeoverErr::State(e),
            ReplyErr::Refused(why) => TakeoverErr::Refused(why),
        }) {
            Ok(bytes) => self.install(state, bytes).await,
            Err(e) => {
                self.abort(state, e).await;
                Ok(())
            }
        }
    }

    /// The old holder's answer when the replica we hold is its state: install
    /// that, and nothing moves.
    pub(super) async fn on_state_unchanged(
        &self,
        state: &mut ServerState<A>,
        requester_epoch: Epoch,
        holder_epoch: Epoch,
        seq: u64,
    ) -> Result<(), ActorProcessingErr> {
        if !self.pulling_at(state, requester_epoch) {
            self.on_late_state(state, requester_epoch, true);
            return Ok(());
        }
        let Stage::Pulling(p) = &mut state.stage else {
            return Ok(());
        };
        if p.from.epoch != holder_epoch {
            let why = format!(
                "the old holder named replica {seq} of epoch {holder_epoch}, which this standby does not hold"
            );
            self.abort(state, TakeoverErr::Refused(why)).await;
            return Ok(());
        }
        if p.warm.have() != Some((holder_epoch, seq)) {
            // Sent before this answer, but it may come after it (see
            // `Pulling::awaiting`); a replica that never comes ends the
            // pull at its timeout, as a lost state reply does.
            tracing::debug!(seq, have = ?p.warm.have(), "the replica the old holder named is on its way; waiting for it");
            p.awaiting = Some((holder_epoch, seq));
            return Ok(());
        }
        self.install_replica(state, holder_epoch, seq).await
    }

    /// After a replica reached a puller: is it the one the old holder
    /// named as its state? Then the pull ends with it.
    pub(super) async fn awaited_replica_came(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Pulling(p) = &mut state.stage else {
            return Ok(());
        };
        match p.awaiting {
            Some((epoch, seq)) if p.warm.have() == Some((epoch, seq)) => {
                p.awaiting = None;
                self.install_replica(state, epoch, seq).await
            }
            _ => Ok(()),
        }
    }

    /// The pull ends with the replica we hold, the old holder's state.
    async fn install_replica(
        &self,
        state: &mut ServerState<A>,
        holder_epoch: Epoch,
        seq: u64,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Pulling(p) = &mut state.stage else {
            return Ok(());
        };
        let from = p.from.clone();
        // Both callers saw that we hold it.
        let Some((user, answered)) = p.warm.take_if(holder_epoch, seq) else {
            return Ok(());
        };
        state.user = user;
        // The replica's window: the calls it holds the effect of are
        // answered from it, not run again.
        state.answered = answered;
        let transferred = EventKind::StateTransferred {
            from,
            bytes: 0,
            duration: p.started.elapsed(),
        };
        self.publish(state, transferred);
        self.finish_pull(state, 0, false).await
    }

    pub(super) fn pulling_at(&self, state: &ServerState<A>, requester_epoch: Epoch) -> bool {
        matches!(&state.stage, Stage::Pulling(p) if p.me.epoch() == requester_epoch)
    }

    /// A state for a pull that already ended (see [`phase::late_state_owner`]).
    pub(super) fn on_late_state(&self, state: &ServerState<A>, requester_epoch: Epoch, sent: bool) {
        let me = state.registration().map(|m| m.info().clone());
        let owner = phase::late_state_owner(
            me.as_ref(),
            state.memory.abandoned_pull.as_ref(),
            requester_epoch,
            sent,
        );
        match (owner, me) {
            (Some(old), Some(me)) => {
                tracing::warn!(
                    ?old,
                    "state of an abandoned pull came late; the old holder serves again"
                );
                if let Some(to) = self.registry.resolve(&old) {
                    deliver(
                        &state.registry,
                        &to,
                        TakeoverMessage::<A>::Handover(HandoverMsg::HandoverAborted {
                            successor: me,
                        }),
                    );
                }
            }
            _ => tracing::warn!(requester_epoch, "state reply for no pull of ours; ignored"),
        }
    }

    async fn install(
        &self,
        state: &mut ServerState<A>,
        bytes: Vec<u8>,
    ) -> Result<(), ActorProcessingErr> {
        match self.decode_transferred(&bytes) {
            Ok((user, answered)) => {
                state.user = user;
                state.answered = answered;
                let Stage::Pulling(p) = &state.stage else {
                    return Ok(());
                };
                let transferred = EventKind::StateTransferred {
                    from: p.from.clone(),
                    bytes: bytes.len(),
                    duration: p.started.elapsed(),
                };
                self.publish(state, transferred);
                self.finish_pull(state, bytes.len(), false).await
            }
            Err(e) => {
                self.abort(state, TakeoverErr::State(e)).await;
                Ok(())
            }
        }
    }

    /// Ends a pull as holder: a takeover, or a failover when `lost` (the old
    /// holder went away before its state came).
    async fn finish_pull(
        &self,
        state: &mut ServerState<A>,
        state_bytes: usize,
        lost: bool,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Pulling(p) = &mut state.stage else {
            return Ok(());
        };
        let mut warm = std::mem::take(&mut p.warm);
        let Stage::Pulling(p) = self.enter(state, Stage::Holder(Holder::default()), None) else {
            return Ok(());
        };
        p.timer.abort();
        let from = p.from;
        self.set_registration(state, Some(p.me));
        let start = if lost {
            tracing::warn!(from = %from.node, "old holder gone before its state came: running as failover, its state is lost");
            self.publish(state, EventKind::StateLost { from: from.clone() });
            state.memory.abandoned_pull = Some(from.clone());
            self.note_holder(state, &from);
            let mine = state.registration().map(|m| m.info().clone());
            let lost_with =
                phase::lost_with(state.memory.last_holder.as_ref(), mine.as_ref(), &from);
            self.failover_start(state, lost_with.node, &mut warm)
        } else {
            StartType::Takeover {
                from: from.node.clone(),
            }
        };
        self.begin_holding(state, start.clone(), warm).await?;
        let buffered = state.buffer.len();
        self.serve_buffered(state).await?;
        let pause = p.started.elapsed();
        let me = state.registration().map(|m| m.info().clone());
        if let (false, Some(me)) = (lost, &me) {
            state.memory.took_over = Some((from.clone(), me.epoch));
        }
        if let (false, Some(old), Some(me)) = (lost, self.registry.resolve(&from), me.clone()) {
            self.handover_done(state, old, me);
        }
        self.publish(
            state,
            EventKind::HandoverDone {
                from,
                pause,
                buffered,
            },
        );
        if let (Some(reply), Some(holder)) = (p.go_reply, me) {
            let _ = reply.send(Ok(HandoverReport {
                holder,
                start,
                state_bytes,
                pause,
                buffered,
            }));
        }
        Ok(())
    }

    /// Rolls a pull back: unregister the stolen name, tell the old holder to
    /// serve again, and send it the buffered calls, in order.
    pub(super) async fn abort(&self, state: &mut ServerState<A>, error: TakeoverErr) {
        if !matches!(state.stage, Stage::Pulling(_)) {
            return;
        }
        // Back off: a takeover that keeps failing pauses the holder's
        // callers on every try (see `Placement::retry_delay`).
        state.memory.failed_takeovers = state.memory.failed_takeovers.saturating_add(1);
        let failures = state.memory.failed_takeovers;
        let retry_in = self
            .config
            .placement
            .as_ref()
            .map(|placement| placement.retry_delay(failures, self.registry.node()));
        let Stage::Pulling(p) = &mut state.stage else {
            return;
        };
        let standby = Standby::after_abort(
            std::mem::take(&mut p.warm),
            retry_in.map(|d| Instant::now() + d),
        );
        tracing::warn!(%error, "takeover aborted and rolled back");
        let Stage::Pulling(p) = self.enter(state, Stage::Standby(standby), None) else {
            return;
        };
        p.timer.abort();
        if let Some(old) = self.registry.resolve(&p.from) {
            deliver(
                &state.registry,
                &old,
                TakeoverMessage::<A>::Handover(HandoverMsg::HandoverAborted {
                    successor: p.me.info().clone(),
                }),
            );
        }
        self.registry
            .unregister_instance(&p.me, LeaveReason::Unregistered);
        for call in std::mem::take(&mut state.buffer) {
            self.forward_to_holder(state, call);
        }
        self.publish(
            state,
            EventKind::TakeoverAborted {
                error: error.clone(),
            },
        );
        if let Some(retry_in) = retry_in {
            tracing::warn!(failures, ?retry_in, "takeover failed; backing off");
            self.publish(
                state,
                EventKind::TakeoverFailed {
                    error: error.clone(),
                    failures,
                    retry_in,
                },
            );
        }
        if let Some(reply) = p.go_reply {
            let _ = reply.send(Err(error));
        }
        self.become_standby(state, Some(p.from)).await;
    }

    /// The pull timer fired (the guard in `dispatch` checked it is ours).
    pub(super) async fn on_pull_timeout(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Pulling(p) = &state.stage else {
            return Ok(());
        };
        let exit = phase::pull_timed_out(
            self.registry.resolve(&p.from).is_some(),
            self.still_registered(&p.old),
        );
        self.end_pull(state, exit).await
    }

    /// A registry change while pulling: did the old holder go?
    pub(super) async fn pull_on_change(
        &self,
        state: &mut ServerState<A>,
        event: &RegistryEvent,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Pulling(p) = &state.stage else {
            return Ok(());
        };
        let from_left = left(event, &p.from);
        let exit = phase::pull_on_change(
            from_left,
            from_left && self.registry.resolve(&p.from).is_some(),
            from_left && self.still_registered(&p.old),
        );
        self.end_pull(state, exit).await
    }

    async fn end_pull(
        &self,
        state: &mut ServerState<A>,
        exit: PullExit,
    ) -> Result<(), ActorProcessingErr> {
        match exit {
            PullExit::Wait => Ok(()),
            PullExit::AbortTimedOut => {
                let after = self.config.pull_timeout;
                self.abort(state, TakeoverErr::Timeout { after }).await;
                Ok(())
            }
            PullExit::AbortReRegistered => {
                let why = "the old holder re-registered under a new epoch".to_string();
                self.abort(state, TakeoverErr::Refused(why)).await;
                Ok(())
            }
            PullExit::FailOver => self.finish_pull(state, 0, true).await,
        }
    }
}
