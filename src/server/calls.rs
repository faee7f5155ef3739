//! Calls: serving them, holding them in the bounded buffer, forwarding them,
//! and the one decision of whether a holder may answer a call now.

use ractor::ActorProcessingErr;

use super::checkpoint::Clock;
use super::conflict::Conflict;
use super::{ServerState, Stage, TakeoverServer};
use crate::message::{deliver, Answer};
use crate::{CallErr, EventKind, Registration, TakeoverActor, TakeoverMessage};

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
    /// Another live registration of our name that is not our handover
    /// partner: a takeover under way (it ranks above ours and its state
    /// request is coming) or a rival holder. Calls wait in the buffer while
    /// it [`Conflict::holds`].
    pub(super) conflict: Option<Conflict>,
    /// The epoch of the takeover or failover our state descends from (0:
    /// started `Normal`), what our [`crate::Claim`]s carry.
    pub(super) lineage: crate::Epoch,
    /// The last loser whose state we merged: it stays registered until it
    /// reads `MergeDone`, and is no rival meanwhile.
    pub(super) merged: Option<crate::RegistrationInfo>,
    /// Quorum mode: it saw no majority at its last call, and holds calls
    /// until it does.
    pub(super) quorum_lost: bool,
    /// Warm standby: calls handled, and when the last checkpoint was taken.
    pub(super) clock: Clock,
}

impl<A: TakeoverActor> TakeoverServer<A> {
    /// Whether this instance may answer a call now: it holds the name, no
    /// conflict holds its calls, and (quorum mode) it sees a majority. The one
    /// place this is decided; every path that serves asks it.
    pub(super) fn may_answer(&self, state: &mut ServerState<A>) -> bool {
        let Stage::Holder(holder) = &state.stage else {
            return false;
        };
        holder.conflict.as_ref().is_none_or(|c| !c.holds()) && self.quorum_now(state)
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
    pub(super) async fn serve(
        &self,
        state: &mut ServerState<A>,
        call: Pending<A>,
    ) -> Result<(), ActorProcessingErr> {
        match self
            .behaviour
            .handle(&state.ctx, call.msg, &mut state.user)
            .await
        {
            Ok(answer) => {
                if let Some(reply) = call.reply {
                    reply.send(Ok(answer));
                }
                self.after_serve(state);
                Ok(())
            }
            Err(e) => {
                if let Some(reply) = call.reply {
                    reply.send(Err(CallErr::Handler(e.to_string())));
                }
                Err(e)
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
