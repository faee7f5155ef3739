//! Calls: serving them, holding them in the bounded buffer, forwarding them,
//! and the one decision of whether a holder may answer a call now.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use ractor::ActorProcessingErr;
use tokio::time::Instant;

use super::checkpoint::Clock;
use super::conflict::Conflict;
use super::phase;
use super::sync::Answered;
use super::{ServerState, Stage, TakeoverServer};
use crate::dedup::Seen;
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
    /// Another live registration of our name that is not our handover
    /// partner: a takeover under way (it ranks above ours and its state
    /// request is coming) or a rival holder. Calls wait in the buffer while
    /// it [`Conflict::holds`].
    pub(super) conflict: Option<Conflict>,
    /// The epoch of the takeover or failover our state descends from (0:
    /// started `Normal`), what our [`crate::Claim`]s carry.
    pub(super) lineage: crate::Epoch,
    /// The last loser whose state we merged: it stays registered until it
    /// reads `MergeDone`, and is no rival meanwhile. The instance counts,
    /// not only its `(epoch, node)`: a node that restarted without its
    /// epochs (B1) can register the name again under the very same pair,
    /// and that is a new rival (seed 2321795355: ignored as the merged
    /// loser, it held its calls for good).
    pub(super) merged: Option<Registration>,
    /// Quorum mode: it saw no majority at its last call, and holds calls
    /// until it does.
    pub(super) quorum_lost: bool,
    /// It had no lease at its last check (see `docs/lease.md`), and holds
    /// calls until it has one again.
    pub(super) lease_lost: bool,
    /// Warm standby: calls handled, and when the last checkpoint was taken.
    pub(super) clock: Clock,
}

impl Holder {
    /// Why this holder holds its calls, if for want of a quorum or a lease
    /// (a conflict's hold comes first: it would hold them either way). The
    /// flags are from its last look, the one `may_answer` just took.
    #[cfg(feature = "metrics")]
    fn held_for(&self) -> Option<crate::metrics::HeldFor> {
        if self.conflict.as_ref().is_some_and(|c| c.holds()) {
            None
        } else if self.quorum_lost {
            Some(crate::metrics::HeldFor::Quorum)
        } else if self.lease_lost {
            Some(crate::metrics::HeldFor::Lease)
        } else {
            None
        }
    }
}

/// How often a holder without a lease looks again. Why this short: the
/// lease comes back with a pong, which no message of ours announces, and a
/// look is one lock and a few comparisons; a registry event looks at once.
pub(super) const LEASE_RECHECK: Duration = Duration::from_millis(20);

impl<A: TakeoverActor> TakeoverServer<A> {
    /// Whether this instance may answer a call now: it holds the name, no
    /// conflict holds its calls, no registration ranks above it in view,
    /// (quorum mode) it sees a majority, and it holds a lease. The one place
    /// this is decided; every path that serves asks it, before each call.
    ///
    /// Why the view is read here and not only through the registry pump:
    /// after a hang, the calls queued in the mailbox come before the pump's
    /// news of a newer holder.
    pub(super) fn may_answer(&self, state: &mut ServerState<A>) -> bool {
        let Stage::Holder(holder) = &state.stage else {
            return false;
        };
        holder.conflict.as_ref().is_none_or(|c| !c.holds())
            && state.failed.is_none()
            && !self.rival_in_view(state)
            && self.quorum_now(state)
            && self.lease_now(state)
            && !self.sync_holds(state)
    }

    /// Whether a registration of our name ranks above ours in the view.
    fn rival_in_view(&self, state: &ServerState<A>) -> bool {
        let Some(me) = state.ctx.registration.as_ref() else {
            return false;
        };
        let top = self.registry.lookup(&self.name);
        phase::ranks_above(top.as_ref().map(Registration::info), me.info())
    }

    /// On a holder: whether it holds a lease now (the proof that no other
    /// node declared it down), noting the change. Without one it holds its
    /// calls and looks again after [`LEASE_RECHECK`].
    pub(super) fn lease_now(&self, state: &mut ServerState<A>) -> bool {
        let lease = self
            .registry
            .lease_until()
            .is_some_and(|t| t > Instant::now());
        if !matches!(state.stage, Stage::Holder(_)) {
            return lease;
        }
        if !lease {
            self.arm_lease_recheck(state);
        }
        let Stage::Holder(holder) = &mut state.stage else {
            return lease;
        };
        if lease != holder.lease_lost {
            return lease;
        }
        holder.lease_lost = !lease;
        if lease {
            tracing::info!("lease regained; serving the held calls");
            self.publish(state, EventKind::LeaseRegained);
        } else {
            tracing::warn!("no lease (a stall, or a peer not heard from); holding calls");
            self.publish(state, EventKind::LeaseLost);
        }
        lease
    }

    /// Starts the lease re-check timer, unless one is on its way.
    fn arm_lease_recheck(&self, state: &mut ServerState<A>) {
        if state.lease_recheck {
            return;
        }
        state.lease_recheck = true;
        self.timer(state, LEASE_RECHECK, TakeoverMessage::LeaseTick);
    }

    /// The lease re-check timer fired: serve the held calls if this holder
    /// may answer now; with a newer registration in view, let the conflict
    /// path decide (a handover request, or the resolver) instead.
    pub(super) async fn on_lease_tick(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        state.lease_recheck = false;
        if !matches!(state.stage, Stage::Holder(_)) {
            return Ok(());
        }
        if self.rival_in_view(state) {
            if matches!(&state.stage, Stage::Holder(h) if h.conflict.is_none()) {
                return self.check_conflict(state).await;
            }
            // Keep looking: the lease events must still be published.
            self.lease_now(state);
            return Ok(());
        }
        self.serve_held_if_answering(state).await
    }

    pub(super) async fn on_call(
        &self,
        state: &mut ServerState<A>,
        call: Pending<A>,
    ) -> Result<(), ActorProcessingErr> {
        if self.may_answer(state) {
            // Held calls first: the lease may be back before its timer says so.
            self.serve_buffered(state).await?;
            if state.buffer.is_empty() {
                return self.serve(state, call).await;
            }
        }
        match &mut state.stage {
            Stage::Yielding(_) => self.yielding_call(state, call),
            Stage::Holder(h) => {
                let unsuspected = h.conflict.is_none();
                self.hold(state, call);
                // A newer holder in view that the pump has not told us of yet
                // (its news queue behind this call): start the conflict path.
                if unsuspected && self.rival_in_view(state) {
                    return self.check_conflict(state).await;
                }
            }
            Stage::Pulling(_) => self.hold(state, call),
            Stage::Retiring(_) => self.retiring_call(state, call),
            Stage::Standby(_) => self.forward_to_holder(state, call),
        }
        Ok(())
    }

    /// Keeps a call in the bounded buffer, or refuses it when full.
    fn hold(&self, state: &mut ServerState<A>, call: Pending<A>) {
        if state.buffer.len() >= self.config.buffer_capacity {
            // Calls whose callers gave up make no room claim: drop them first.
            let now = Instant::now();
            state.buffer.retain(|c| {
                c.reply
                    .as_ref()
                    .and_then(|r| r.deadline())
                    .is_none_or(|d| d > now)
            });
        }
        if state.buffer.len() < self.config.buffer_capacity {
            state.buffer.push_back(call);
            #[cfg(feature = "metrics")]
            if let Some(cause) = match &state.stage {
                Stage::Holder(h) => h.held_for(),
                _ => None,
            } {
                state.metrics.held(cause);
            }
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
    ///
    /// A call whose caller stopped waiting is not applied (the caller got
    /// `Timeout` already, and applying it late would change the state behind
    /// its back).
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
        if let Some(late) = call
            .reply
            .as_ref()
            .and_then(|r| r.deadline())
            .and_then(|d| Instant::now().checked_duration_since(d))
        {
            tracing::debug!(
                ?late,
                "a call past its caller's deadline; dropped, not applied"
            );
            return Ok(());
        }
        // The call's own `Reply`, if its message has one: if the handler
        // keeps it, a handover must find it (see `crate::reply`).
        let port = call
            .reply
            .as_ref()
            .and_then(|r| r.port_slot())
            .map(std::sync::Arc::downgrade);
        // A keyed call (a client that retries): applied once, whatever
        // holder its tries reach (see `crate::dedup`). Why not for a call
        // whose message carries a `Reply`: its answer is what the handler
        // sends on the port, perhaps later, not this return value; clients
        // send those without a key.
        let key = match call.reply.as_ref().and_then(|r| r.key()) {
            Some(key) if port.is_none() => Some(*key),
            _ => None,
        };
        if let Some(key) = &key {
            match state.answered.check(key) {
                Seen::New => {}
                Seen::Answered(bytes) => {
                    tracing::debug!(
                        seq = key.seq,
                        "a retried call applied already; its reply again"
                    );
                    if let Some(reply) = call.reply {
                        if self.sync_on() {
                            // Once a standby stored it, as its first answer.
                            let ordinal = state
                                .answered
                                .ordinal(key)
                                .unwrap_or_else(|| state.answered.applied());
                            self.sync_answer_again(state, reply, bytes, ordinal);
                        } else {
                            reply.send_encoded(bytes);
                        }
                    }
                    return Ok(());
                }
                Seen::PastWindow { applied } => {
                    tracing::debug!(
                        seq = key.seq,
                        applied,
                        "a keyed call older than the window of answered calls; refused, not applied"
                    );
                    if let Some(reply) = call.reply {
                        reply.send(Err(crate::dedup::past_window(applied)));
                    }
                    return Ok(());
                }
                Seen::Ended { applied } => {
                    // Nobody waits for this answer; the error says "not
                    // applied here" should anyone read it.
                    tracing::debug!(
                        seq = key.seq,
                        floor = key.floor,
                        "a late try of a call its client had ended; refused, not applied"
                    );
                    if let Some(reply) = call.reply {
                        reply.send(Err(crate::dedup::past_window(applied)));
                    }
                    return Ok(());
                }
            }
        }
        if self.sync_on() && self.sync_refuses(state) {
            // Consistency: nobody could store its effect, so it is not applied.
            if let Some(reply) = call.reply {
                reply.send(Err(CallErr::NoStandby));
            }
            return Ok(());
        }
        let handled =
            AssertUnwindSafe(self.behaviour.handle(&state.ctx, call.msg, &mut state.user))
                .catch_unwind()
                .await;
        let error = match handled {
            Ok(Ok(answer)) => {
                let answer = match (&call.reply, key) {
                    (Some(_), Some(key)) => {
                        // Encoded once, for the window and the caller.
                        let bytes = postcard::to_allocvec(&Ok::<&A::Reply, CallErr>(&answer))
                            .or_else(|e| {
                                postcard::to_allocvec(&Err::<(), CallErr>(CallErr::Codec(
                                    e.to_string(),
                                )))
                            });
                        match bytes {
                            Ok(bytes) => {
                                let window = self.config.dedup_window;
                                state.answered.record(&key, bytes.clone(), window);
                                Answered::Encoded(bytes)
                            }
                            // A `CallErr` always encodes; kept typed all the same.
                            Err(_) => Answered::Reply(answer),
                        }
                    }
                    _ => Answered::Reply(answer),
                };
                if let Some(kept) = port.and_then(|w| w.upgrade()) {
                    state.held.keep(&kept);
                }
                self.after_serve(state);
                if self.sync_on() {
                    // Answered once a standby stored it (see `sync`), the
                    // window's new entry with it.
                    self.sync_answer(state, call.reply, answer);
                } else if let Some(reply) = call.reply {
                    answer.send(reply);
                }
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
    pub(super) fn fail(&self, state: &mut ServerState<A>, error: CallErr) {
        let why = error.to_string();
        tracing::error!(%why, "handler failed: giving the name up and stopping");
        self.publish(state, EventKind::HandlerFailed { error });
        state.failed = Some(why.clone());
        self.sync_fail(state);
        self.end_tenure(state);
        if let Some(me) = self.set_registration(state, None) {
            self.registry
                .unregister_instance(&me, LeaveReason::InstanceDied);
        }
        for call in std::mem::take(&mut state.buffer) {
            self.refuse_stopped(state, call, &why);
        }
        let _ = state
            .ctx
            .myself
            .send_message(TakeoverMessage::HandlerFailed(why));
    }

    /// Our state went to another instance (a takeover, a merge offer):
    /// every reply port the handler kept in it is answered
    /// [`CallErr::Moved`], so that its caller sends the request again,
    /// to the new holder, where the port is detached.
    pub(super) fn answer_held_moved(&self, state: &mut ServerState<A>) {
        let moved = state.held.answer_moved();
        if moved > 0 {
            tracing::info!(moved, "held reply ports answered Moved");
        }
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

    /// Serves the buffered calls, in order, while this holder may answer
    /// (asked before each call: a long buffer can outlast a lease), then
    /// the infos held with them.
    pub(super) async fn serve_buffered(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        while !state.buffer.is_empty() && self.may_answer(state) {
            if let Some(call) = state.buffer.pop_front() {
                self.serve(state, call).await?;
            }
        }
        if state.buffer.is_empty() {
            self.serve_held_infos(state).await;
        }
        Ok(())
    }

    /// Serves the buffered calls a holder owes before it sends its state to
    /// a successor that stole the name from it: that successor ranks above
    /// us, and waits for our state before it serves, so only the lease is
    /// asked. Returns whether the lease held for all of them (those left
    /// stay in the buffer).
    pub(super) async fn serve_buffered_before_handover(
        &self,
        state: &mut ServerState<A>,
    ) -> Result<bool, ActorProcessingErr> {
        while !state.buffer.is_empty() {
            if !self.lease_now(state) {
                return Ok(false);
            }
            if let Some(call) = state.buffer.pop_front() {
                self.serve(state, call).await?;
            }
        }
        Ok(self.lease_now(state))
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
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}
