//! The instance's own messages and timers (see [`crate::TakeoverActor::Info`]):
//! a tenure begins with every `go` and ends when the instance stops holding;
//! an info is handled only in the tenure it was sent in, and only while the
//! holder serves (it waits with the held calls otherwise).

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use ractor::{ActorProcessingErr, SupervisionEvent};

use super::calls::panic_message;
use super::phase::{self, InfoFate};
use super::{ServerState, Stage, TakeoverServer};
use crate::message::OwnInfo;
use crate::{CallErr, TakeoverActor};

impl<A: TakeoverActor> TakeoverServer<A> {
    /// An info of ours came back (sent now, or a timer's tick).
    pub(super) async fn on_info(
        &self,
        state: &mut ServerState<A>,
        own: OwnInfo<A>,
    ) -> Result<(), ActorProcessingErr> {
        let serving = self.may_answer(state);
        match phase::info_fate(state.ctx.tenure, own.tenure, state.stage.phase(), serving) {
            InfoFate::Handle => {
                // What was held first, calls then infos, as they came.
                self.serve_buffered(state).await?;
                if state.buffer.is_empty() && state.infos.is_empty() && state.failed.is_none() {
                    self.handle_info(state, own.info).await;
                } else {
                    self.hold_info(state, own.info);
                }
            }
            InfoFate::Hold => self.hold_info(state, own.info),
            InfoFate::DropStale => {
                tracing::debug!(
                    sent_in = own.tenure,
                    tenure = ?state.ctx.tenure,
                    "an info of an earlier tenure; dropped"
                );
            }
            InfoFate::DropNotServing => {
                tracing::debug!(phase = ?state.stage.phase(), "an info while the state is on its way out; dropped");
            }
        }
        Ok(())
    }

    /// Keeps an info until the holder serves again, or drops it (logged)
    /// when the queue is full.
    fn hold_info(&self, state: &mut ServerState<A>, info: A::Info) {
        let capacity = self.config.buffer_capacity;
        if state.infos.len() >= capacity {
            tracing::warn!(capacity, "held infos full; info dropped");
            return;
        }
        state.infos.push_back(info);
    }

    /// Handles the held infos, in order, while this holder may answer.
    pub(super) async fn serve_held_infos(&self, state: &mut ServerState<A>) {
        while !state.infos.is_empty() && state.failed.is_none() && self.may_answer(state) {
            if let Some(info) = state.infos.pop_front() {
                self.handle_info(state, info).await;
            }
        }
    }

    /// Runs the behaviour on one info. A failing handler fails the instance
    /// as a failing call does (see `calls::fail`).
    async fn handle_info(&self, state: &mut ServerState<A>, info: A::Info) {
        let handled = AssertUnwindSafe(self.behaviour.handle_info(
            &state.ctx,
            info,
            &mut state.user,
        ))
        .catch_unwind()
        .await;
        self.hook_ran(state, handled);
    }

    /// A new tenure, right before `go`: the last one's timers and held
    /// infos end, and what `go` starts belongs to this one.
    pub(super) fn begin_tenure(&self, state: &mut ServerState<A>) {
        self.end_tenure(state);
        state.ctx.tenure = state.ctx.epoch();
    }

    /// The instance stopped holding: its timers stop, its held infos go.
    pub(super) fn end_tenure(&self, state: &mut ServerState<A>) {
        if state.ctx.tenure.is_some() && !state.infos.is_empty() {
            tracing::debug!(
                dropped = state.infos.len(),
                "tenure ended; held infos dropped"
            );
        }
        state.infos.clear();
        state.ctx.end_tenure();
    }

    /// A supervision event (a child user code linked to us): the
    /// behaviour's, whose default logs. An error fails the instance as a
    /// failing call does, so what is queued is answered first.
    pub(super) async fn on_supervisor_evt(
        &self,
        state: &mut ServerState<A>,
        event: SupervisionEvent,
    ) -> Result<(), ActorProcessingErr> {
        if state.failed.is_some() {
            return Ok(());
        }
        let handled = AssertUnwindSafe(self.behaviour.handle_supervisor_evt(
            &state.ctx,
            event,
            &mut state.user,
        ))
        .catch_unwind()
        .await;
        self.hook_ran(state, handled);
        Ok(())
    }

    /// After a user hook that may change the state (`handle_info`,
    /// `handle_supervisor_evt`) ran: the state changed (a checkpoint is
    /// due, a replica goes), or the hook failed or panicked, which fails
    /// the instance as a failing call does.
    fn hook_ran(
        &self,
        state: &mut ServerState<A>,
        handled: std::thread::Result<Result<(), ActorProcessingErr>>,
    ) {
        match handled {
            Ok(Ok(())) => {
                if let Stage::Holder(h) = &mut state.stage {
                    h.clock.dirty = true;
                }
                self.sync_changed(state);
            }
            Ok(Err(e)) => self.fail(state, CallErr::Handler(e.to_string())),
            Err(panic) => self.fail(state, CallErr::Panicked(panic_message(panic.as_ref()))),
        }
    }
}
