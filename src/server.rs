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
//! alone. This file holds the actor, its dispatch and the one transition
//! function ([`TakeoverServer::enter`]); each side of the protocol has its
//! own file:
//!
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
mod handover;
mod info;
mod phase;
mod placement;
mod sync;
mod takeover;
mod transfer;

pub use self::control::TakeoverRef;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use tracing::Instrument;

use self::calls::{Holder, Pending};
use self::checkpoint::Warm;
use self::conflict::Yielding;
use self::handover::Retiring;
use self::phase::{Timer, TimerView};
use self::placement::Standby;
use self::takeover::Pulling;
use self::transfer::Transfers;
use crate::{
    Epoch, EventKind, HandoverMsg, InstanceStatus, LeaveReason, Phase, Registration,
    RegistrationInfo, Registry, RegistryEvent, StartType, TakeoverActor, TakeoverConfig,
    TakeoverCtx, TakeoverEvent, TakeoverMessage,
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

/// The runtime's state of one instance.
pub(crate) struct ServerState<A: TakeoverActor> {
    /// What user hooks see, with our registration (the one place the epoch
    /// lives, see [`TakeoverCtx`]) while we hold the name, retire or yield.
    /// Why the registration lives in this state: when the actor dies, for
    /// whatever reason, this state is dropped and `Drop` unregisters, so a
    /// dead instance never holds the name.
    ctx: TakeoverCtx<A>,
    user: A::State,
    /// The state `init` made, encoded, or why it could not be. A retired
    /// instance goes back to it once it handed its state over: what it kept
    /// is older than what its successor serves, and a failover to it
    /// without a checkpoint must start, as any standby's, from `init`'s
    /// state, not resurrect locks or counts its successor has moved past.
    initial: Result<Vec<u8>, crate::StateCodecErr>,
    stage: Stage<A>,
    registry: Arc<dyn Registry>,
    /// Calls waiting to be served: while we pull, or while a holder holds
    /// them. Instance-wide because a pull's buffer is served once the pull
    /// ends as holder, whatever the holder then holds for.
    buffer: VecDeque<Pending<A>>,
    pump: JoinHandle<()>,
    /// One span per instance (name, node, epoch): every log line of the
    /// instance carries them.
    span: tracing::Span,
    /// The epoch `span` was made with.
    span_epoch: Option<Epoch>,
    /// What the instance remembers of past stages.
    memory: Memory,
    /// The handler failed on a call, for this reason: the instance gave the
    /// name up and stops once its mailbox is answered (see `calls::fail`).
    failed: Option<String>,
    /// States in parts on their way out or in (see `transfer`).
    transfers: Transfers,
    /// A lease re-check timer is on its way (one at a time).
    lease_recheck: bool,
    /// Reply ports the handler kept to answer later: a handover or a merge
    /// answers them `CallErr::Moved` (see `crate::reply`).
    held: crate::reply::HeldPorts,
    /// Infos of the current tenure that came while the holder held its
    /// calls: handled after the held calls, once it serves (see
    /// [`TakeoverActor::Info`]). Bounded by `buffer_capacity`.
    infos: VecDeque<A::Info>,
    /// The window of answered keyed calls with their replies, so that a
    /// retried call is applied once (see `crate::dedup`). Part of the state
    /// an instance sends: it is what the user's state has the effect of.
    answered: crate::dedup::Window,
    /// Synchronous standby: answers waiting for a standby's
    /// acknowledgement, and what each standby has (see `sync`).
    sync: self::sync::SyncOut<A>,
    /// Our place among the node's placement takeovers
    /// ([`TakeoverConfig::move_limit`]): held while we pull, given back as
    /// soon as the instance is in any other stage (see `Runtime::handle`).
    move_permit: Option<tokio::sync::OwnedSemaphorePermit>,
    /// A task waits for a permit for us (one at a time).
    awaiting_permit: bool,
    /// The instance's gauges and held-calls counters (see `crate::metrics`).
    #[cfg(feature = "metrics")]
    metrics: crate::metrics::Instance,
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
struct Memory {
    /// The newest holder this instance saw, for `Failover { from }`.
    last_holder: Option<RegistrationInfo>,
    /// A pull we ended as a failover (the old holder looked gone): if its
    /// state still comes, the old holder must be told to serve again.
    abandoned_pull: Option<RegistrationInfo>,
    /// The last takeover we finished: the old holder and our epoch then, to
    /// answer its `HandoverQuery` if our `HandoverDone` was lost.
    took_over: Option<(RegistrationInfo, Epoch)>,
    /// Takeovers of ours that failed in a row since we last held the name:
    /// the next try backs off by this much (see `Placement::retry_delay`).
    failed_takeovers: u32,
    /// Why the takeover under way started (placement sets it, a `go` from
    /// the handle says `Requested`): the `Moved` event's reason once it ends.
    move_reason: Option<crate::event::MoveReason>,
    /// The last move of the name to this instance, for its status.
    last_move: Option<crate::status::LastMove>,
}

impl<A: TakeoverActor> ServerState<A> {
    /// The registration we act under: the one we hold, or the one we stole
    /// for a pull.
    fn registration(&self) -> Option<&Registration> {
        match &self.stage {
            Stage::Pulling(p) => Some(p.registration()),
            _ => self.ctx.registration.as_ref(),
        }
    }

    fn epoch(&self) -> Option<Epoch> {
        self.registration().map(Registration::epoch)
    }

    fn timer_view(&self) -> TimerView {
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
                .unregister(p.registration().info(), LeaveReason::InstanceDied);
        }
        if let Some(me) = self.ctx.registration.take() {
            self.registry
                .unregister(me.info(), LeaveReason::InstanceDied);
        }
    }
}

/// The ractor actor itself: a [`TakeoverServer`] under a name nobody
/// outside the crate can write.
///
/// Why not `impl Actor for TakeoverServer`: an actor's message type is
/// public through its `Actor` impl (`<TakeoverServer<A> as Actor>::Msg`
/// names it, and a type alias of that builds its variants), so anyone could
/// have forged a protocol message or a timer. Behind this private newtype
/// the message type has no public path at all. It derefs to the server, so
/// the hooks below read as methods of the server.
struct Runtime<A: TakeoverActor>(TakeoverServer<A>);

impl<A: TakeoverActor> std::ops::Deref for Runtime<A> {
    type Target = TakeoverServer<A>;

    fn deref(&self) -> &TakeoverServer<A> {
        &self.0
    }
}

impl<A: TakeoverActor> Actor for Runtime<A> {
    type Msg = TakeoverMessage<A>;
    type State = ServerState<A>;
    type Arguments = A::Arguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Before `init`: a setting that cannot work fails the spawn, not a
        // handover later (see `spawn`).
        self.config.validate(self.registry.max_frame_bytes())?;
        self.config.validate_whereis(self.registry.settle_time())?;
        let span = instance_span(&self.name, self.registry.node(), None);
        let ctx = TakeoverCtx {
            myself: myself.clone(),
            name: self.name.clone(),
            node: self.registry.node().clone(),
            registration: None,
            tenure: None,
            timers: Default::default(),
        };
        let user = self
            .behaviour
            .init(&ctx, args)
            .instrument(span.clone())
            .await?;
        let initial = self.behaviour.encode_state(&user);
        self.registry.attach(&myself.get_cell());
        let pump = spawn_pump(
            self.registry.watch(&self.name),
            self.registry.watch(&checkpoint::standby_name(&self.name)),
            myself,
        );
        Ok(ServerState {
            ctx,
            user,
            initial,
            stage: Stage::Standby(Standby::default()),
            registry: self.registry.clone(),
            buffer: VecDeque::new(),
            pump,
            span,
            span_epoch: None,
            memory: Memory::default(),
            failed: None,
            transfers: Transfers::default(),
            lease_recheck: false,
            held: Default::default(),
            answered: Default::default(),
            infos: VecDeque::new(),
            sync: Default::default(),
            move_permit: None,
            awaiting_permit: false,
            #[cfg(feature = "metrics")]
            metrics: crate::metrics::Instance::new(&self.name, self.registry.node()),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        self.start(myself, state).instrument(span).await
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        let done = self.dispatch(myself, message, state).instrument(span).await;
        // A permit counts a pull: whatever ended it (installed, aborted,
        // failed over, or a takeover that never began), it goes back.
        if !matches!(state.stage, Stage::Pulling(_)) {
            state.move_permit = None;
        }
        #[cfg(feature = "metrics")]
        self.sample_metrics(state);
        done
    }

    /// Why not ractor's default (which stops an actor whose linked child
    /// ended): a child that user code links to the instance must not take
    /// the global server down; the behaviour decides (see
    /// [`TakeoverActor::handle_supervisor_evt`]).
    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = state.span.clone();
        self.on_supervisor_evt(state, event).instrument(span).await
    }
}

impl<A: TakeoverActor> TakeoverServer<A> {
    /// The one enum match over messages: each goes to the file of its role.
    async fn dispatch(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        message: TakeoverMessage<A>,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(why) = state.failed.clone() {
            return self.dispatch_failed(state, message, why);
        }
        match message {
            TakeoverMessage::HandlerFailed(why) => Err(why.into()),
            TakeoverMessage::Call { msg, reply } => {
                self.on_call(state, Pending { msg, reply }).await
            }
            TakeoverMessage::Go { request, reply } => {
                state.memory.move_reason = Some(crate::event::MoveReason::Requested);
                self.on_go(myself, state, request, reply).await
            }
            TakeoverMessage::Status(reply) => {
                let _ = reply.send(InstanceStatus {
                    phase: state.stage.phase(),
                    epoch: state.epoch(),
                    node: self.registry.node().clone(),
                    last_move: state.memory.last_move.clone(),
                });
                Ok(())
            }
            TakeoverMessage::Handover(h) => self.on_handover(myself, state, h).await,
            TakeoverMessage::Registry(event) => self.on_registry(myself, state, event).await,
            TakeoverMessage::PlacementTick => self.place(myself, state).await,
            TakeoverMessage::PullTimeout(epoch) if self.due(state, Timer::Pull, epoch) => {
                self.on_pull_timeout(state).await
            }
            TakeoverMessage::ConflictTick(epoch) if self.due(state, Timer::Conflict, epoch) => {
                self.on_conflict_tick(myself, state).await
            }
            TakeoverMessage::CheckpointTick(epoch) if self.due(state, Timer::Checkpoint, epoch) => {
                self.on_checkpoint_tick(state, epoch);
                Ok(())
            }
            TakeoverMessage::YieldTimeout(epoch) if self.due(state, Timer::Yield, epoch) => {
                self.on_yield_timeout(state).await
            }
            TakeoverMessage::RetireTick(epoch) if self.due(state, Timer::Retire, epoch) => {
                self.on_retire_tick(state, epoch).await
            }
            TakeoverMessage::TransferTick => {
                self.on_transfer_tick(state);
                Ok(())
            }
            TakeoverMessage::LeaseTick => self.on_lease_tick(state).await,
            TakeoverMessage::SyncTick(epoch) => self.on_sync_tick(state, epoch).await,
            TakeoverMessage::MovePermit(permit) => {
                state.awaiting_permit = false;
                state.move_permit = Some(permit);
                self.place(myself, state).await
            }
            TakeoverMessage::Info(own) => self.on_info(state, own).await,
            TakeoverMessage::PullTimeout(_)
            | TakeoverMessage::ConflictTick(_)
            | TakeoverMessage::CheckpointTick(_)
            | TakeoverMessage::YieldTimeout(_)
            | TakeoverMessage::RetireTick(_) => Ok(()),
        }
    }

    /// After the handler failed: answer what is queued, then fail the actor
    /// when the instance's own [`TakeoverMessage::HandlerFailed`] comes.
    fn dispatch_failed(
        &self,
        state: &mut ServerState<A>,
        message: TakeoverMessage<A>,
        why: String,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            TakeoverMessage::HandlerFailed(why) => Err(why.into()),
            TakeoverMessage::Call { msg, reply } => {
                self.refuse_stopped(state, Pending { msg, reply }, &why);
                Ok(())
            }
            TakeoverMessage::Go { reply, .. } => {
                if let Some(reply) = reply {
                    let _ = reply.send(Err(crate::TakeoverErr::InstanceGone));
                }
                Ok(())
            }
            TakeoverMessage::Status(reply) => {
                let _ = reply.send(InstanceStatus {
                    phase: state.stage.phase(),
                    epoch: state.epoch(),
                    node: self.registry.node().clone(),
                    last_move: state.memory.last_move.clone(),
                });
                Ok(())
            }
            // The protocol and the timers: the peers' own timeouts cover an
            // instance that stopped.
            _ => Ok(()),
        }
    }

    /// The one guard for stale timers (see [`phase::timer_current`]).
    fn due(&self, state: &ServerState<A>, timer: Timer, fired: Epoch) -> bool {
        phase::timer_current(timer, state.timer_view(), fired)
    }

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

    /// A protocol message: each goes to the file of its side.
    async fn on_handover(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        msg: HandoverMsg,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HandoverMsg::StateRequest {
                holder_epoch,
                requester,
                have,
            } => {
                self.on_state_request(state, holder_epoch, requester, have)
                    .await
            }
            HandoverMsg::StateUnchanged {
                requester_epoch,
                holder_epoch,
                seq,
            } => {
                self.on_state_unchanged(state, requester_epoch, holder_epoch, seq)
                    .await
            }
            HandoverMsg::Replica {
                holder,
                seq,
                handled,
                body,
            } => {
                self.on_replica(state, holder, seq, handled, body);
                Ok(())
            }
            HandoverMsg::ReplicaAck {
                holder_epoch,
                seq,
                standby,
                need_full,
            } => {
                self.on_replica_ack(state, holder_epoch, seq, standby, need_full)
                    .await
            }
            HandoverMsg::StateReply {
                requester_epoch,
                result,
            } => self.on_state_reply(state, requester_epoch, result).await,
            HandoverMsg::StatePart {
                of,
                offset,
                total,
                bytes,
            } => self.on_state_part(state, of, offset, total, bytes).await,
            HandoverMsg::StatePartAck {
                of,
                receiver,
                received,
            } => {
                self.on_part_ack(state, of, receiver, received);
                Ok(())
            }
            HandoverMsg::HandoverDone { successor } => {
                self.on_handover_done(myself, state, successor).await
            }
            HandoverMsg::HandoverAborted { successor } => {
                self.on_handover_aborted(state, successor).await
            }
            HandoverMsg::HandoverQuery { old, successor } => {
                self.on_handover_query(state, old, successor);
                Ok(())
            }
            HandoverMsg::HandoverUnknown {
                successor,
                answerer,
            } => self.on_handover_unknown(state, successor, answerer).await,
            HandoverMsg::Rival { claim, want_reply } => {
                self.on_rival(myself, state, claim, want_reply).await
            }
            HandoverMsg::MergeOffer {
                loser,
                winner_epoch,
                result,
            } => {
                self.on_merge_offer(state, loser, winner_epoch, result)
                    .await
            }
            HandoverMsg::MergeDone { loser } => self.on_merge_done(myself, state, loser).await,
            HandoverMsg::Checkpoint {
                holder,
                seq,
                handled,
                bytes,
            } => {
                self.on_checkpoint(state, holder, seq, handled, bytes);
                Ok(())
            }
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

/// Feeds this node's changes of our name (and node up/down) into the
/// instance's mailbox, so that they are handled between messages like
/// everything else; a change of the name's standby group becomes a
/// placement pass (a standby behind one that left its place may take the
/// name now). The watches drop nothing, so no change is missed.
fn spawn_pump<A: TakeoverActor>(
    mut changes: crate::NameWatch,
    mut standbys: crate::NameWatch,
    myself: ActorRef<TakeoverMessage<A>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut standbys_open = true;
        loop {
            let msg = tokio::select! {
                event = changes.recv() => match event {
                    Some(event) => TakeoverMessage::Registry(event),
                    None => break,
                },
                event = standbys.recv(), if standbys_open => match event {
                    // Node up/down comes through `changes` already.
                    Some(RegistryEvent::Registered(_) | RegistryEvent::Unregistered { .. }) => {
                        TakeoverMessage::PlacementTick
                    }
                    Some(_) => continue,
                    None => {
                        standbys_open = false;
                        continue;
                    }
                },
            };
            if myself.send_message(msg).is_err() {
                break;
            }
        }
    })
}
