//! Calls: serving them, holding them in the bounded buffer, forwarding them,
//! and the one decision of whether a holder may answer a call now.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use ractor::ActorProcessingErr;

use super::checkpoint::Clock;
use super::{ServerState, Stage, TakeoverServer};
use crate::message::{deliver, Answer};
use crate::{CallErr, EventKind, LeaveReason, Registration, TakeoverActor, TakeoverMessage};

/// A call waiting to be served.
pub(super) struct Pending<A: TakeoverActor> {
    pub(super) msg: A::Msg,
    pub(super) reply: Option<Answer<A>>,
}

/// The holder's stage: why it holds calls instead of serving them, if it
/// does, and its checkpoint clock. A holder that retires or yields keeps this
/// along, so that it resumes where it was.
#[derive(Default)]
pub(super) struct Holder {
    /// A newer registration of our name that has not (yet) asked for a
    /// handover: calls wait in the buffer until it does, or the conflict is
    /// resolved.
    pub(super) suspect: Option<Registration>,
    /// Quorum mode: it saw no majority at its last call, and holds calls
    /// until it does.
    pub(super) quorum_lost: bool,
    /// Warm standby: calls handled, and when the last checkpoint was taken.
    pub(super) clock: Clock,
}

impl<A: TakeoverActor> TakeoverServer<A> {
    /// Whether this instance may answer a call now: it holds the name, no
    /// rival is suspected, and (quorum mode) it sees a majority. The one
    /// place this is decided; every path that serves asks it.
    pub(super) fn may_answer(&self, state: &mut ServerState<A>) -> bool {
        let Stage::Holder(holder) = &state.stage else {
            return false;
        };
        holder.suspect.is_none() && state.failed.is_none() && self.quorum_now(state)
    }

    pub(super) async fn on_call(
        &self,
        state: &mut ServerState<A>,
        call: Pending<A>,
    ) -> Result<(), ActorProcessingErr> {
        if self.may_answer(state) {
            return self.serve(state, call).await;
        }
        match &mut state.stage {
            Stage::Yielding(_) => self.yielding_call(state, call),
            Stage::Holder(_) | Stage::Pulling(_) => self.hold(state, call),
            Stage::Retiring(_) => self.retiring_call(state, call),
            Stage::Standby(_) => self.forward_to_holder(state, call),
        }
        Ok(())
    }

    /// Keeps a call in the bounded buffer, or refuses it when full.
    fn hold(&self, state: &mut ServerState<A>, call: Pending<A>) {
        if state.buffer.len() < self.config.buffer_capacity {
            state.buffer.push_back(call);
            return;
        }
        let capacity = self.config.buffer_capacity;
        tracing::warn!(capacity, "handover buffer full; call rejected");
        if let Some(reply) = call.reply {
            reply.send(Err(CallErr::BufferFull { capacity }));
        }
        self.publish(state, EventKind::BufferFull { capacity });
    }

    /// Runs the behaviour on one call and answers it.
    ///
    /// A handler that fails (returns an error or panics) answers its caller
    /// with that error at once; then the instance fails (see
    /// [`Self::fail`]). Why catch the panic here rather than let ractor do
    /// it: ractor would stop the actor with its reply ports unanswered, and a
    /// caller on another node, whose port is a promise on the wire, would
    /// wait out its whole deadline.
    pub(super) async fn serve(
        &self,
        state: &mut ServerState<A>,
        call: Pending<A>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(why) = &state.failed {
            // Queued behind a call the handler failed on: not handled.
            let why = why.clone();
            self.refuse_stopped(state, call, &why);
            return Ok(());
        }
        let handled =
            AssertUnwindSafe(self.behaviour.handle(&state.ctx, call.msg, &mut state.user))
                .catch_unwind()
                .await;
        let error = match handled {
            Ok(Ok(answer)) => {
                if let Some(reply) = call.reply {
                    reply.send(Ok(answer));
                }
                self.after_serve(state);
                return Ok(());
            }
            Ok(Err(e)) => CallErr::Handler(e.to_string()),
            Err(panic) => CallErr::Panicked(panic_message(panic.as_ref())),
        };
        if let Some(reply) = call.reply {
            reply.send(Err(error.clone()));
        }
        self.fail(state, error);
        Ok(())
    }

    /// After the handler failed: its state may be half updated, so the
    /// instance gives the name up at once (a standby fails over, clients
    /// re-resolve), answers the calls it holds, and stops as a ractor actor
    /// does, with the failure as its reason. The calls already in its mailbox
    /// come before the [`TakeoverMessage::HandlerFailed`] it sends itself,
    /// and each is answered on the way (see `dispatch_failed`).
    fn fail(&self, state: &mut ServerState<A>, error: CallErr) {
        let why = error.to_string();
        tracing::error!(%why, "handler failed: giving the name up and stopping");
        self.publish(state, EventKind::HandlerFailed { error });
        state.failed = Some(why.clone());
        if let Some(me) = self.set_registration(state, None) {
            self.registry
                .unregister(me.info(), LeaveReason::InstanceDied);
        }
        for call in std::mem::take(&mut state.buffer) {
            self.refuse_stopped(state, call, &why);
        }
        let _ = state
            .ctx
            .myself
            .send_message(TakeoverMessage::HandlerFailed(why));
    }

    /// A call that reached a failed instance: it goes on to a new holder if
    /// one already holds in our view, or gets
    /// [`CallErr::InstanceStopped`] (it was not handled).
    pub(super) fn refuse_stopped(&self, state: &ServerState<A>, call: Pending<A>, why: &str) {
        let me = state.ctx.myself.get_id();
        match self.registry.lookup(&self.name) {
            Some(holder) if holder.cell().get_id() != me => self.forward(state, &holder, call),
            _ => {
                if let Some(reply) = call.reply {
                    reply.send(Err(CallErr::InstanceStopped(why.to_string())));
                }
            }
        }
    }

    /// Serves every buffered call, in order.
    pub(super) async fn serve_buffered(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        while let Some(call) = state.buffer.pop_front() {
            self.serve(state, call).await?;
        }
        Ok(())
    }

    /// Serves the held calls if nothing holds them any more.
    pub(super) async fn serve_held_if_answering(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        if self.may_answer(state) {
            self.serve_buffered(state).await?;
        }
        Ok(())
    }

    pub(super) fn forward(&self, state: &ServerState<A>, to: &Registration, call: Pending<A>) {
        deliver(
            &state.registry,
            to,
            TakeoverMessage::<A>::Call {
                msg: call.msg,
                reply: call.reply,
            },
        );
    }

    /// Sends a call to whoever holds the name in our view, or answers that
    /// nobody does.
    pub(super) fn forward_to_holder(&self, state: &ServerState<A>, call: Pending<A>) {
        let me = state.ctx.myself.get_id();
        match self.registry.lookup(&self.name) {
            Some(holder) if holder.cell().get_id() != me => self.forward(state, &holder, call),
            _ => {
                if let Some(reply) = call.reply {
                    reply.send(Err(CallErr::NotRegistered(self.name.clone())));
                }
            }
        }
    }
}

/// The message a panic carried, as `std` prints it.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}
