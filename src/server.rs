//! The runtime actor that runs a [`TakeoverActor`]: registration at start,
//! the `go` phase, and both sides of the handover (drawn on
//! [`crate::HandoverMsg`]).
//!
//! Everything is message driven. Nothing waits inside `post_start` except the
//! safe lookup (which needs no message of ours): the state pull, its timeout
//! and registry changes all arrive as messages, so calls keep being buffered
//! while the state is on its way.
//!
//! An instance is in one [`Stage`], which carries the data valid in it
//! alone. This file holds the server, its stages and the one transition
//! function ([`TakeoverServer::enter`]), with what every stage shares
//! (events, timers, becoming a standby or a holder); the machinery and
//! each side of the protocol have their own files:
//!
//! - `runtime`: the ractor actor behind the server, its hooks, and the pump
//!   of registry changes into its mailbox;
//! - `state`: the instance's state across stages, and what it remembers;
//! - `dispatch`: the one match over messages (and over protocol messages),
//!   each sent on to the file of its side;
//! - `phase`: the decisions of every stage's exits, pure (unit-tested
//!   without actors or clocks);
//! - `calls`: serving, buffering and forwarding calls, and whether a holder
//!   may answer one now;
//! - `takeover`: the new holder's side (go, pull, install, abort, timeout);
//! - `handover`: the old holder's side (state request, parts, retiring,
//!   handover query, holding again after a lost successor);
//! - `placement`: automatic failover and takeover, and quorum;
//! - `conflict`: split-brain detection and merge;
//! - `checkpoint`: warm standby;
//! - `sync`: synchronous standby, answers that wait for a standby's
//!   acknowledgement;
//! - `info`: the instance's own messages and timers, and the tenure they
//!   belong to; supervision events of linked children;
//! - `transfer`: a state sent between instances (takeover reply, merge
//!   offer, checkpoint): its size limit, and the parts a big one travels in;
//! - `control`: [`TakeoverRef`], the instance's handle, which drives it
//!   from outside (`takeover`, `failover`, `status`, `send_call`).

mod calls;
mod checkpoint;
mod conflict;
mod control;
mod dispatch;
mod handover;
mod info;
mod phase;
mod placement;
mod runtime;
mod state;
mod sync;
mod takeover;
mod transfer;

pub use self::control::TakeoverRef;

use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr};

use self::calls::Holder;
use self::checkpoint::Warm;
use self::conflict::Yielding;
use self::handover::Retiring;
use self::placement::Standby;
use self::runtime::Runtime;
use self::state::ServerState;
use self::takeover::Pulling;
use crate::{
    Epoch, EventKind, LeaveReason, Phase, Registration, RegistrationInfo, Registry, RegistryEvent,
    StartType, TakeoverActor, TakeoverConfig, TakeoverEvent, TakeoverMessage,
};

/// The ractor actor that runs a [`TakeoverActor`] under a global name.
///
/// Spawn one per node that may run the server; the first registers, the
/// others wait as standbys. It links and supervises like any ractor actor
/// ([`TakeoverServer::spawn_linked`]). It is not itself an
/// [`Actor`](ractor::Actor): the actor inside is private, so that its
/// message type (the handover protocol, the timers) has no public path.
/// This, for one, does not compile:
///
/// ```compile_fail
/// # use ractor::ActorProcessingErr;
/// # use ractor_takeover::{TakeoverActor, TakeoverCtx, TakeoverServer};
/// # struct Counter;
/// # impl TakeoverActor for Counter {
/// #     type Msg = u64;
/// #     type Reply = u64;
/// #     type State = u64;
/// #     type Arguments = ();
/// #     type Info = ();
/// #     async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<u64, ActorProcessingErr> {
/// #         Ok(0)
/// #     }
/// #     async fn handle(&self, _: &TakeoverCtx<Self>, n: u64, t: &mut u64)
/// #         -> Result<u64, ActorProcessingErr> { *t += n; Ok(*t) }
/// # }
/// // A path to the instance's messages, to build a forged timer with:
/// let forged: Option<<TakeoverServer<Counter> as ractor::Actor>::Msg> = None;
/// ```
///
/// # How an instance ends
///
/// It does not end by itself when it hands the name over: a retired
/// instance (its successor confirmed, or a split-brain winner merged its
/// state) runs [`TakeoverActor::on_handed_over`] and is a standby again, so
/// a supervisor that linked it keeps it, and a takeover back needs no new
/// spawn. It ends only
/// - when it fails: a handler, hook or `handle_info` returned an error or
///   panicked (its supervisor sees `ActorFailed` with that error, after the
///   queued calls were answered), or its start-up failed;
/// - when you stop or kill it (your reason; the fake cluster kills the
///   instances of a node it crashes).
///
/// A child that user code links to it does not stop it (see
/// [`TakeoverActor::handle_supervisor_evt`]).
pub struct TakeoverServer<A: TakeoverActor> {
    behaviour: A,
    name: String,
    registry: Arc<dyn Registry>,
    config: TakeoverConfig,
}

impl<A: TakeoverActor> std::fmt::Debug for TakeoverServer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TakeoverServer")
            .field("name", &self.name)
            .field("node", self.registry.node())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<A: TakeoverActor> TakeoverServer<A> {
    /// An instance of `behaviour` under the global `name`, on the node whose
    /// view `registry` is.
    pub fn new(
        name: impl Into<String>,
        behaviour: A,
        registry: Arc<dyn Registry>,
        config: TakeoverConfig,
    ) -> Self {
        Self {
            behaviour,
            name: name.into(),
            registry,
            config,
        }
    }

    /// An instance under the typed `name` (see [`crate::GlobalName`]): a
    /// name declared for a protocol with other message or reply types than
    /// the behaviour's does not compile here.
    pub fn named<P>(
        name: &crate::GlobalName<P>,
        behaviour: A,
        registry: Arc<dyn Registry>,
        config: TakeoverConfig,
    ) -> Self
    where
        P: crate::Protocol<Msg = A::Msg, Reply = A::Reply>,
    {
        Self::new(name.as_str(), behaviour, registry, config)
    }

    /// Spawns the instance, as [`Actor::spawn`] does (with no local name),
    /// and returns once it has started: it holds the name or waits as a
    /// standby. Why it waits: ractor returns from `spawn` after `pre_start`,
    /// while the safe whereis and the registration run in `post_start`; a
    /// caller that spawns on one node and then on another expects the first
    /// to have registered (two spawns in a row raced for the name before).
    /// An instance that stops during its start-up (a failed safe whereis, a
    /// `go` that returned an error) gives `SpawnErr::StartupFailed`.
    ///
    /// # Errors
    ///
    /// Besides those, `SpawnErr::StartupFailed` with a [`crate::ConfigErr`]
    /// inside (`err.downcast_ref::<ConfigErr>()` on the boxed error) when
    /// the settings cannot work on this registry (see
    /// [`TakeoverConfig::validate`]): checked first, before
    /// [`TakeoverActor::init`] runs ([`TakeoverServer::spawn_linked`]
    /// checks the same).
    pub async fn spawn(
        self,
        args: A::Arguments,
    ) -> Result<(TakeoverRef<A>, JoinHandle<()>), SpawnErr> {
        let (instance, handle) = Actor::spawn(None, Runtime(self), args).await?;
        started(instance, handle).await
    }

    /// Spawns the instance linked to `supervisor`, as [`Actor::spawn_linked`]
    /// does. Unlike [`TakeoverServer::spawn`] it returns right after
    /// `pre_start`, as ractor's does: a supervisor restarts its child from
    /// its own handler, and must not wait there for the child's safe whereis
    /// (which can wait for registry changes the supervisor's node has not
    /// seen yet). Wait with [`TakeoverRef::status`] if you need the child
    /// started.
    pub async fn spawn_linked(
        self,
        args: A::Arguments,
        supervisor: ActorCell,
    ) -> Result<(TakeoverRef<A>, JoinHandle<()>), SpawnErr> {
        let (instance, handle) = Actor::spawn_linked(None, Runtime(self), args, supervisor).await?;
        Ok((TakeoverRef::new(instance), handle))
    }
}

/// The span every log line of one instance carries.
fn instance_span(name: &str, node: &crate::NodeName, epoch: Option<Epoch>) -> tracing::Span {
    match epoch {
        // A root span: made while the old epoch's span is entered, it would
        // nest under it, one level deeper per epoch.
        Some(epoch) => tracing::info_span!(parent: None, "takeover", %name, %node, epoch),
        None => tracing::info_span!(parent: None, "takeover", %name, %node),
    }
}

/// Waits for a freshly spawned instance's start-up: ractor handles messages
/// only after `post_start`, so the answer to a status request comes after it.
async fn started<A: TakeoverActor>(
    instance: ActorRef<TakeoverMessage<A>>,
    handle: JoinHandle<()>,
) -> Result<(TakeoverRef<A>, JoinHandle<()>), SpawnErr> {
    match instance.call(TakeoverMessage::Status, None).await {
        Ok(ractor::rpc::CallResult::Success(_)) => Ok((TakeoverRef::new(instance), handle)),
        _ => Err(SpawnErr::StartupFailed(
            "the instance stopped during its start-up (see its log)".into(),
        )),
    }
}

/// Where an instance is in the protocol, with the data valid there alone.
enum Stage<A: TakeoverActor> {
    /// Waits for a `go` (or for its turn, with placement).
    Standby(Standby<A>),
    /// Stole the name; waits for the old holder's state.
    Pulling(Pulling<A>),
    /// Holds the name; serves, or holds calls while something is unsure.
    Holder(Holder),
    /// Sent its state; forwards until the successor confirms.
    Retiring(Retiring<A>),
    /// Lost a split-brain conflict: offered its state to the winner, forwards.
    Yielding(Yielding),
}

impl<A: TakeoverActor> Stage<A> {
    /// The public phase of the stage: the only place they are mapped.
    fn phase(&self) -> Phase {
        match self {
            Stage::Standby(_) => Phase::Standby,
            Stage::Pulling(_) => Phase::Pulling,
            Stage::Holder(_) => Phase::Holder,
            Stage::Retiring(_) => Phase::Retiring,
            Stage::Yielding(_) => Phase::Yielding,
        }
    }
}

impl<A: TakeoverActor> TakeoverServer<A> {
    /// Starts a timer: `msg` comes back as a message after `after`, so it is
    /// handled in order with everything else. A stopped instance drops it.
    fn timer(
        &self,
        state: &ServerState<A>,
        after: Duration,
        msg: TakeoverMessage<A>,
    ) -> JoinHandle<Result<(), ractor::MessagingErr<TakeoverMessage<A>>>> {
        state.ctx.myself.send_after(after, move || msg)
    }

    fn publish(&self, state: &ServerState<A>, kind: EventKind) {
        let event = TakeoverEvent {
            name: self.name.clone(),
            node: self.registry.node().clone(),
            epoch: state.epoch(),
            kind,
        };
        // Before the hub: whoever sees the event sees its metrics recorded.
        #[cfg(feature = "metrics")]
        crate::metrics::on_event(&event);
        self.config.events.publish(event);
    }

    /// Sets the instance's gauges from its state, after each message (the
    /// one point every change of the buffer and the checkpoint clock has
    /// passed by then).
    #[cfg(feature = "metrics")]
    fn sample_metrics(&self, state: &ServerState<A>) {
        let warm = self.config.checkpoint.is_some() || self.sync_on();
        let lag = warm.then(|| match &state.stage {
            Stage::Holder(h) => h.clock.handled - h.clock.at,
            _ => 0,
        });
        state.metrics.sample(state.buffer.len(), lag);
    }

    /// The one transition function: switches to `to`, notes the epoch on the
    /// instance's span, logs, and publishes `event` (if the transition has
    /// one at this point). Returns the stage left, whose data the caller
    /// takes along.
    fn enter(
        &self,
        state: &mut ServerState<A>,
        to: Stage<A>,
        event: Option<EventKind>,
    ) -> Stage<A> {
        let from = std::mem::replace(&mut state.stage, to);
        if from.phase() == Phase::Holder && state.stage.phase() != Phase::Holder {
            // Synchronous standby: our state goes on with a successor (a
            // takeover) or a winner (a merge offer), effects included.
            self.sync_release_all(state);
        }
        debug_assert!(
            phase::may_enter(from.phase(), state.stage.phase()),
            "no transition {:?} -> {:?} in the phase machine",
            from.phase(),
            state.stage.phase()
        );
        self.respan(state);
        tracing::info!(from = ?from.phase(), to = ?state.stage.phase(), epoch = ?state.epoch(), "phase");
        if let Some(kind) = event {
            self.publish(state, kind);
        }
        from
    }

    /// Replaces the registration we hold (a new epoch, or none), noting the
    /// epoch on the span. Returns the one we held.
    fn set_registration(
        &self,
        state: &mut ServerState<A>,
        to: Option<Registration>,
    ) -> Option<Registration> {
        let old = std::mem::replace(&mut state.ctx.registration, to);
        self.respan(state);
        old
    }

    /// A fresh span when the epoch changed. Why not `Span::record`: the fmt
    /// subscriber appends a field at every record, so a long-lived instance
    /// would repeat `epoch=` once per change on every line. The new span
    /// covers the next message on; the line that logs a change names the
    /// epoch itself.
    fn respan(&self, state: &mut ServerState<A>) {
        let epoch = state.epoch();
        if state.span_epoch != epoch {
            state.span_epoch = epoch;
            state.span = instance_span(&self.name, self.registry.node(), epoch);
        }
    }

    /// Remembers `info` as the newest holder seen, if it ranks above the one
    /// we remember.
    fn note_holder(&self, state: &mut ServerState<A>, info: &RegistrationInfo) {
        if phase::newer_holder(state.memory.last_holder.as_ref(), info) {
            state.memory.last_holder = Some(info.clone());
        }
    }

    /// On a standby (entered already): remember the holder, join the
    /// standbys, say so.
    async fn become_standby(&self, state: &mut ServerState<A>, holder: Option<RegistrationInfo>) {
        // Registry changes seen while we pulled were not recorded; a later
        // failover must name the holder as it is now.
        if let Some(now) = self.registry.lookup(&self.name) {
            self.note_holder(state, now.info());
        } else if let Some(h) = &holder {
            self.note_holder(state, h);
        }
        self.join_standbys(state).await;
        tracing::info!(?holder, "standby");
        self.publish(state, EventKind::Standby { holder });
    }

    /// On a holder (entered already, our registration set): leave the
    /// standbys, start checkpoints, run `go` with `start`, say so, and
    /// resolve a conflict a failover may have landed in.
    async fn begin_holding(
        &self,
        state: &mut ServerState<A>,
        start: StartType,
        warm: Warm<A>,
    ) -> Result<(), ActorProcessingErr> {
        let epoch = state.epoch();
        if let Stage::Holder(holder) = &mut state.stage {
            holder.conflict = None;
            holder.lineage = phase::lineage_of(&start, epoch);
        }
        state.memory.failed_takeovers = 0;
        self.leave_standbys(warm);
        self.start_checkpoints(state);
        self.begin_tenure(state);
        self.behaviour
            .go(&state.ctx, &start, &mut state.user)
            .await?;
        if let Stage::Holder(holder) = &mut state.stage {
            holder.clock.dirty = true;
        }
        self.sync_begin(state, &start);
        tracing::info!(?start, "holder");
        let reason = state.memory.move_reason.take();
        let moved = match &start {
            StartType::Normal => None,
            StartType::Failover { from, .. } => {
                Some((from.clone(), crate::event::MoveReason::Failover))
            }
            StartType::Takeover { from } => Some((
                from.clone(),
                reason.unwrap_or(crate::event::MoveReason::Requested),
            )),
        };
        self.publish(state, EventKind::Registered { start });
        if let Some((from, reason)) = moved {
            self.moved(state, Some(from), reason);
        }
        // A failover can land beside a holder it could not see: resolve it.
        self.check_conflict(state).await
    }

    /// The name moved to us: say so, and keep it for the status.
    pub(super) fn moved(
        &self,
        state: &mut ServerState<A>,
        from: Option<crate::NodeName>,
        reason: crate::event::MoveReason,
    ) {
        tracing::info!(?from, %reason, "moved here");
        if let Some(epoch) = state.epoch() {
            state.memory.last_move = Some(crate::status::LastMove {
                from: from.clone(),
                reason,
                epoch,
            });
        }
        self.publish(state, EventKind::Moved { from, reason });
    }

    /// Whether `instance` holds any live registration of our name.
    fn still_registered(&self, instance: &ActorCell) -> bool {
        self.registry
            .members(&self.name)
            .iter()
            .any(|m| m.cell().get_id() == instance.get_id())
    }

    /// A change in this node's view. The stage's own file decides; this only
    /// keeps the memories every stage shares up to date.
    async fn on_registry(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        event: RegistryEvent,
    ) -> Result<(), ActorProcessingErr> {
        // Whatever we are doing: a failover must name the newest holder seen.
        if let RegistryEvent::Registered(info) = &event {
            if info.name == self.name && state.registration().map(|m| m.info()) != Some(info) {
                self.note_holder(state, info);
            }
        }
        // The newest one left cleanly: it handed over (its successor holds)
        // or rolled its steal back (the one it stole from holds again). Its
        // state is not lost: name whoever holds now.
        if let RegistryEvent::Unregistered {
            info,
            reason: LeaveReason::Unregistered,
        } = &event
        {
            if state.memory.last_holder.as_ref() == Some(info) {
                if let Some(now) = self.registry.lookup(&self.name) {
                    state.memory.last_holder = Some(now.info().clone());
                }
            }
        }
        match state.stage.phase() {
            Phase::Standby => self.place(myself, state).await,
            Phase::Pulling => self.pull_on_change(state, &event).await,
            Phase::Holder => self.holder_on_change(state, &event).await,
            Phase::Retiring => self.retiring_on_change(state, &event).await,
            Phase::Yielding => self.yielding_on_change(state).await,
        }
    }
}

/// Whether `event` removed `info` from our view (its registration left, or
/// its node went down).
fn left(event: &RegistryEvent, info: &RegistrationInfo) -> bool {
    match event {
        RegistryEvent::Unregistered { info: left, .. } => left == info,
        RegistryEvent::NodeDown(node) => *node == info.node,
        _ => false,
    }
}
