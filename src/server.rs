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
//! - `transfer`: the size limit on a state sent between instances;
//! - `control`: `go`, `takeover` and `status`, driving an instance from
//!   outside.

mod calls;
mod checkpoint;
mod conflict;
mod control;
mod handover;
mod phase;
mod placement;
mod takeover;
mod transfer;

pub use self::control::go;
pub use self::control::status;
pub use self::control::takeover;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr};
use tokio::sync::broadcast::error::RecvError;
use tracing::Instrument;

use self::calls::{Holder, Pending};
use self::checkpoint::Warm;
use self::conflict::Yielding;
use self::handover::Retiring;
use self::phase::{Timer, TimerView};
use self::placement::Standby;
use self::takeover::Pulling;
use crate::{
    Epoch, EventKind, HandoverMsg, InstanceStatus, LeaveReason, Phase, Registration,
    RegistrationInfo, Registry, RegistryEvent, StartType, TakeoverActor, TakeoverConfig,
    TakeoverCtx, TakeoverEvent, TakeoverMessage,
};

/// A running instance, as a ractor actor reference.
pub type TakeoverRef<A> = ActorRef<TakeoverMessage<A>>;

/// The ractor actor that runs a [`TakeoverActor`] under a global name.
///
/// Spawn one per node that may run the server; the first registers, the
/// others wait as standbys. It links and supervises like any ractor actor.
pub struct TakeoverServer<A: TakeoverActor> {
    behaviour: A,
    name: String,
    registry: Arc<dyn Registry>,
    config: TakeoverConfig,
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

    /// Spawns the instance, as [`Actor::spawn`] does (with no local name).
    pub async fn spawn(
        self,
        args: A::Arguments,
    ) -> Result<(TakeoverRef<A>, JoinHandle<()>), SpawnErr> {
        Actor::spawn(None, self, args).await
    }

    /// Spawns the instance linked to `supervisor`, as [`Actor::spawn_linked`] does.
    pub async fn spawn_linked(
        self,
        args: A::Arguments,
        supervisor: ActorCell,
    ) -> Result<(TakeoverRef<A>, JoinHandle<()>), SpawnErr> {
        Actor::spawn_linked(None, self, args, supervisor).await
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
pub struct ServerState<A: TakeoverActor> {
    /// What user hooks see, with our registration (the one place the epoch
    /// lives, see [`TakeoverCtx`]) while we hold the name, retire or yield.
    /// Why the registration lives in this state: when the actor dies, for
    /// whatever reason, this state is dropped and `Drop` unregisters, so a
    /// dead instance never holds the name.
    ctx: TakeoverCtx<A>,
    user: A::State,
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
    /// What the instance remembers of past stages.
    memory: Memory,
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

impl<A: TakeoverActor> Actor for TakeoverServer<A> {
    type Msg = TakeoverMessage<A>;
    type State = ServerState<A>;
    type Arguments = A::Arguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let span = tracing::info_span!(
            "takeover",
            name = %self.name,
            node = %self.registry.node(),
            epoch = tracing::field::Empty,
        );
        let ctx = TakeoverCtx {
            myself: myself.clone(),
            name: self.name.clone(),
            node: self.registry.node().clone(),
            registration: None,
        };
        let user = self
            .behaviour
            .init(&ctx, args)
            .instrument(span.clone())
            .await?;
        self.registry.attach(&myself.get_cell());
        let pump = spawn_pump(self.registry.as_ref(), myself);
        Ok(ServerState {
            ctx,
            user,
            stage: Stage::Standby(Standby::default()),
            registry: self.registry.clone(),
            buffer: VecDeque::new(),
            pump,
            span,
            memory: Memory::default(),
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
        self.dispatch(myself, message, state).instrument(span).await
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
        match message {
            TakeoverMessage::Call { msg, reply } => {
                self.on_call(state, Pending { msg, reply }).await
            }
            TakeoverMessage::Go { request, reply } => {
                self.on_go(myself, state, request, reply).await
            }
            TakeoverMessage::Status(reply) => {
                let _ = reply.send(InstanceStatus {
                    phase: state.stage.phase(),
                    epoch: state.epoch(),
                    node: self.registry.node().clone(),
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
            TakeoverMessage::PullTimeout(_)
            | TakeoverMessage::ConflictTick(_)
            | TakeoverMessage::CheckpointTick(_)
            | TakeoverMessage::YieldTimeout(_)
            | TakeoverMessage::RetireTick(_) => Ok(()),
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
        self.config.events.publish(TakeoverEvent {
            name: self.name.clone(),
            node: self.registry.node().clone(),
            epoch: state.epoch(),
            kind,
        });
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
        debug_assert!(
            phase::may_enter(from.phase(), state.stage.phase()),
            "no transition {:?} -> {:?} in the phase machine",
            from.phase(),
            state.stage.phase()
        );
        state
            .span
            .record("epoch", tracing::field::debug(state.epoch()));
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
        state
            .span
            .record("epoch", tracing::field::debug(state.epoch()));
        old
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
            } => self.on_state_request(state, holder_epoch, requester).await,
            HandoverMsg::StateReply {
                requester_epoch,
                result,
            } => self.on_state_reply(state, requester_epoch, result).await,
            HandoverMsg::StatePart {
                requester_epoch,
                offset,
                total,
                bytes,
            } => {
                self.on_state_part(state, requester_epoch, offset, total, bytes)
                    .await
            }
            HandoverMsg::StatePartAck {
                requester,
                received,
            } => {
                self.on_part_ack(state, requester, received);
                Ok(())
            }
            HandoverMsg::HandoverDone { successor } => {
                self.on_handover_done(myself, state, successor)
            }
            HandoverMsg::HandoverAborted { successor } => {
                self.on_handover_aborted(state, successor).await
            }
            HandoverMsg::HandoverQuery { old, successor } => {
                self.on_handover_query(state, old, successor);
                Ok(())
            }
            HandoverMsg::HandoverUnknown { successor } => {
                self.on_handover_unknown(state, successor).await
            }
            HandoverMsg::Rival { claim, want_reply } => {
                self.on_rival(myself, state, claim, want_reply).await
            }
            HandoverMsg::MergeOffer {
                loser,
                winner_epoch,
                result,
            } => {
                self.on_merge_offer(myself, state, loser, winner_epoch, result)
                    .await
            }
            HandoverMsg::MergeDone { loser } => self.on_merge_done(myself, state, loser),
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
        self.leave_standbys(warm);
        self.start_checkpoints(state);
        self.behaviour
            .go(&state.ctx, &start, &mut state.user)
            .await?;
        tracing::info!(?start, "holder");
        self.publish(state, EventKind::Registered { start });
        // A failover can land beside a holder it could not see: resolve it.
        self.check_conflict(state).await
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

/// Feeds this node's registry changes into the instance's mailbox, so that
/// they are handled between messages like everything else.
fn spawn_pump<A: TakeoverActor>(
    registry: &dyn Registry,
    myself: ActorRef<TakeoverMessage<A>>,
) -> JoinHandle<()> {
    let mut events = registry.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if myself
                        .send_message(TakeoverMessage::Registry(event))
                        .is_err()
                    {
                        break;
                    }
                }
                // Lagging loses nothing the instance needs: every decision
                // re-reads the view itself.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    })
}
