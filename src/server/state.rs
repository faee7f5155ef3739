//! What one instance keeps: [`ServerState`], the runtime's state across
//! its stages, with the [`Memory`] of past stages the protocol needs later;
//! and its `Drop`, which unregisters whatever a dead instance held.

use std::collections::VecDeque;
use std::sync::Arc;

use ractor::concurrency::JoinHandle;

use super::calls::Pending;
use super::phase::TimerView;
use super::transfer::Transfers;
use super::Stage;
use crate::{
    Epoch, LeaveReason, Registration, RegistrationInfo, Registry, TakeoverActor, TakeoverCtx,
};

/// The runtime's state of one instance.
pub(crate) struct ServerState<A: TakeoverActor> {
    /// What user hooks see, with our registration (the one place the epoch
    /// lives, see [`TakeoverCtx`]) while we hold the name, retire or yield.
    /// Why the registration lives in this state: when the actor dies, for
    /// whatever reason, this state is dropped and `Drop` unregisters, so a
    /// dead instance never holds the name.
    pub(super) ctx: TakeoverCtx<A>,
    pub(super) user: A::State,
    /// The state `init` made, encoded, or why it could not be. A retired
    /// instance goes back to it once it handed its state over: what it kept
    /// is older than what its successor serves, and a failover to it
    /// without a checkpoint must start, as any standby's, from `init`'s
    /// state, not resurrect locks or counts its successor has moved past.
    pub(super) initial: Result<Vec<u8>, crate::StateCodecErr>,
    pub(super) stage: Stage<A>,
    pub(super) registry: Arc<dyn Registry>,
    /// Calls waiting to be served: while we pull, or while a holder holds
    /// them. Instance-wide because a pull's buffer is served once the pull
    /// ends as holder, whatever the holder then holds for.
    pub(super) buffer: VecDeque<Pending<A>>,
    pub(super) pump: JoinHandle<()>,
    /// One span per instance (name, node, epoch): every log line of the
    /// instance carries them.
    pub(super) span: tracing::Span,
    /// The epoch `span` was made with.
    pub(super) span_epoch: Option<Epoch>,
    /// What the instance remembers of past stages.
    pub(super) memory: Memory,
    /// The handler failed on a call, for this reason: the instance gave the
    /// name up and stops once its mailbox is answered (see `calls::fail`).
    pub(super) failed: Option<String>,
    /// States in parts on their way out or in (see `transfer`).
    pub(super) transfers: Transfers,
    /// A lease re-check timer is on its way (one at a time).
    pub(super) lease_recheck: bool,
    /// Reply ports the handler kept to answer later: a handover or a merge
    /// answers them `CallErr::Moved` (see `crate::reply`).
    pub(super) held: crate::reply::HeldPorts,
    /// Infos of the current tenure that came while the holder held its
    /// calls: handled after the held calls, once it serves (see
    /// [`TakeoverActor::Info`]). Bounded by `buffer_capacity`.
    pub(super) infos: VecDeque<A::Info>,
    /// The window of answered keyed calls with their replies, so that a
    /// retried call is applied once (see `crate::dedup`). Part of the state
    /// an instance sends: it is what the user's state has the effect of.
    pub(super) answered: crate::dedup::Window,
    /// Synchronous standby: answers waiting for a standby's
    /// acknowledgement, and what each standby has (see `sync`).
    pub(super) sync: super::sync::SyncOut<A>,
    /// Our place among the node's placement takeovers
    /// ([`TakeoverConfig::move_limit`]): held while we pull, given back as
    /// soon as the instance is in any other stage (see `Runtime::handle`).
    pub(super) move_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// A task waits for a permit for us (one at a time).
    pub(super) awaiting_permit: bool,
    /// The instance's gauges and held-calls counters (see `crate::metrics`).
    #[cfg(feature = "metrics")]
    pub(super) metrics: crate::metrics::Instance,
}

impl<A: TakeoverActor> std::fmt::Debug for ServerState<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("ctx", &self.ctx)
            .field("phase", &self.stage.phase())
            .field("buffered", &self.buffer.len())
            .finish_non_exhaustive()
    }
}

/// Memories of past transitions: they outlive the stage that made them,
/// and the protocol needs them later, in another stage.
#[derive(Default)]
pub(super) struct Memory {
    /// The newest holder this instance saw, for `Failover { from }`.
    pub(super) last_holder: Option<RegistrationInfo>,
    /// A pull we ended as a failover (the old holder looked gone): if its
    /// state still comes, the old holder must be told to serve again.
    pub(super) abandoned_pull: Option<RegistrationInfo>,
    /// The last takeover we finished: the old holder and our epoch then, to
    /// answer its `HandoverQuery` if our `HandoverDone` was lost.
    pub(super) took_over: Option<(RegistrationInfo, Epoch)>,
    /// Takeovers of ours that failed in a row since we last held the name:
    /// the next try backs off by this much (see `Placement::retry_delay`).
    pub(super) failed_takeovers: u32,
    /// Why the takeover under way started (placement sets it, a `go` from
    /// the handle says `Requested`): the `Moved` event's reason once it ends.
    pub(super) move_reason: Option<crate::event::MoveReason>,
    /// The last move of the name to this instance, for its status.
    pub(super) last_move: Option<crate::status::LastMove>,
}

impl<A: TakeoverActor> ServerState<A> {
    /// The registration we act under: the one we hold, or the one we stole
    /// for a pull.
    pub(super) fn registration(&self) -> Option<&Registration> {
        match &self.stage {
            Stage::Pulling(p) => Some(p.registration()),
            _ => self.ctx.registration.as_ref(),
        }
    }

    pub(super) fn epoch(&self) -> Option<Epoch> {
        self.registration().map(Registration::epoch)
    }

    pub(super) fn timer_view(&self) -> TimerView {
        TimerView {
            phase: self.stage.phase(),
            epoch: self.epoch(),
            successor: match &self.stage {
                Stage::Retiring(r) => Some(r.successor().epoch),
                _ => None,
            },
            suspect: matches!(&self.stage, Stage::Holder(h) if h.conflict.is_some()),
        }
    }
}

impl<A: TakeoverActor> Drop for ServerState<A> {
    fn drop(&mut self) {
        self.pump.abort();
        // A stopped instance's timers stop with it.
        self.ctx.end_tenure();
        if let Stage::Pulling(p) = &self.stage {
            self.registry
                .unregister_instance(p.registration(), LeaveReason::InstanceDied);
        }
        if let Some(me) = self.ctx.registration.take() {
            self.registry
                .unregister_instance(&me, LeaveReason::InstanceDied);
        }
    }
}
