//! The runtime actor that runs a [`TakeoverActor`]: registration at start,
//! the `go` phase, and both sides of the handover (drawn on
//! [`crate::HandoverMsg`]).
//!
//! Everything is message driven. Nothing waits inside `post_start` except the
//! safe lookup (which needs no message of ours): the state pull, its timeout
//! and registry changes all arrive as messages, so calls keep being buffered
//! while the state is on its way.

mod checkpoint;
mod conflict;
mod retire;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr};
use tokio::sync::broadcast::error::RecvError;

use crate::message::{deliver, Answer};
use crate::{
    CallErr, EventKind, GoRequest, HandoverMsg, HandoverReport, InstanceStatus, LeaveReason, Phase,
    Registration, RegistrationInfo, Registry, RegistryErr, RegistryEvent, ReplyErr, StartType,
    StateCodecErr, TakeoverActor, TakeoverConfig, TakeoverCtx, TakeoverErr, TakeoverEvent,
    TakeoverMessage,
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

/// Asks the standby `instance` to take the name over from its current holder
/// (steal, then pull the state), like `application:takeover/2`. Returns when
/// the instance serves as holder, or with why it does not.
pub async fn takeover<A: TakeoverActor>(
    instance: &TakeoverRef<A>,
    timeout: Duration,
) -> Result<HandoverReport, TakeoverErr> {
    go(instance, GoRequest::Takeover, timeout).await
}

/// Sends a `go` request to a standby and waits for its outcome.
pub async fn go<A: TakeoverActor>(
    instance: &TakeoverRef<A>,
    request: GoRequest,
    timeout: Duration,
) -> Result<HandoverReport, TakeoverErr> {
    let outcome = instance
        .call(
            |reply| TakeoverMessage::Go {
                request,
                reply: Some(reply),
            },
            Some(timeout),
        )
        .await;
    match outcome {
        Ok(ractor::rpc::CallResult::Success(result)) => result,
        Ok(ractor::rpc::CallResult::Timeout) => Err(TakeoverErr::Timeout { after: timeout }),
        Ok(ractor::rpc::CallResult::SenderError) | Err(_) => Err(TakeoverErr::InstanceGone),
    }
}

/// Asks an instance what it is doing.
pub async fn status<A: TakeoverActor>(
    instance: &TakeoverRef<A>,
    timeout: Duration,
) -> Option<InstanceStatus> {
    match instance.call(TakeoverMessage::Status, Some(timeout)).await {
        Ok(ractor::rpc::CallResult::Success(s)) => Some(s),
        _ => None,
    }
}

/// A call waiting to be served.
struct Pending<A: TakeoverActor> {
    msg: A::Msg,
    reply: Option<Answer<A>>,
}

enum Stage<A: TakeoverActor> {
    Standby,
    Holder,
    Pulling {
        from: RegistrationInfo,
        /// The old holder's instance: it may re-register under a new epoch
        /// (after winning a conflict), which is not a death.
        old: ActorCell,
        started: Instant,
        go_reply: Option<RpcReplyPort<Result<HandoverReport, TakeoverErr>>>,
        timer: JoinHandle<()>,
        /// A state coming in parts: its whole length and what came so far.
        incoming: Option<(u64, Vec<u8>)>,
    },
    Retiring {
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
        /// The state still going out in parts, if it is big.
        outgoing: Option<Outgoing>,
    },
    /// Lost a split-brain conflict: offered our state to `winner`, forward.
    Yielding {
        winner: Registration,
    },
}

/// A state the old holder sends in parts.
struct Outgoing {
    to: Registration,
    requester_epoch: u64,
    bytes: Vec<u8>,
    /// How much of `bytes` went out.
    sent: usize,
}

/// How many parts of a big state may be on their way, unacknowledged.
const PARTS_IN_FLIGHT: usize = 2;

/// The runtime's state of one instance.
pub struct ServerState<A: TakeoverActor> {
    ctx: TakeoverCtx<A>,
    user: A::State,
    stage: Stage<A>,
    /// Our registration while we hold the name or pull the state. Why it lives
    /// here: when the actor dies, for whatever reason, this state is dropped
    /// and `Drop` unregisters, so a dead instance never holds the name.
    me: Option<Registration>,
    registry: Arc<dyn Registry>,
    buffer: VecDeque<Pending<A>>,
    pump: JoinHandle<()>,
    /// The last holder this instance saw, for `Failover { from }`.
    last_holder: Option<RegistrationInfo>,
    /// Since when the name has been vacant in our view (placement).
    vacant_since: Option<Instant>,
    /// No self-initiated takeover before this (after a failed one).
    retry_at: Option<Instant>,
    /// Holder: a newer registration of our name that has not (yet) asked for
    /// a handover. While it is set, calls are held in `buffer`, not served.
    suspect: Option<Registration>,
    /// Warm standby, on the holder: calls handled, and when the last
    /// checkpoint was taken.
    handled: u64,
    checkpointed_at: u64,
    checkpoint_seq: u64,
    /// Warm standby, on a standby: the newest checkpoint received.
    stored: Option<checkpoint::Stored<A>>,
    /// Warm standby, on a standby: our entry in the standby group.
    standby_reg: Option<Registration>,
    /// Quorum mode, on a holder: it saw no majority at its last call, and
    /// holds calls until it does.
    quorum_lost: bool,
    /// A pull we ended as a failover (the old holder looked gone): if its
    /// state still comes, the old holder must be told to serve again.
    abandoned_pull: Option<RegistrationInfo>,
    /// The last takeover we finished: the old holder and our epoch then, to
    /// answer its `HandoverQuery` if our `HandoverDone` was lost.
    took_over: Option<(RegistrationInfo, u64)>,
}

impl<A: TakeoverActor> Drop for ServerState<A> {
    fn drop(&mut self) {
        self.pump.abort();
        if let Some(me) = self.me.take() {
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
        let ctx = TakeoverCtx {
            myself: myself.clone(),
            name: self.name.clone(),
            node: self.registry.node().clone(),
            epoch: None,
        };
        let user = self.behaviour.init(&ctx, args).await?;
        self.registry.attach(&myself.get_cell());
        let pump = spawn_pump(self.registry.as_ref(), myself);
        Ok(ServerState {
            ctx,
            user,
            stage: Stage::Standby,
            me: None,
            registry: self.registry.clone(),
            buffer: VecDeque::new(),
            pump,
            last_holder: None,
            vacant_since: None,
            retry_at: None,
            suspect: None,
            handled: 0,
            checkpointed_at: 0,
            checkpoint_seq: 0,
            stored: None,
            standby_reg: None,
            abandoned_pull: None,
            took_over: None,
            quorum_lost: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The seed's init: a safe whereis first. An instance restarted on the
        // retiring side of a takeover finds the new holder here (the steal
        // reached this node before the state request did) and stays a standby.
        let holder = self
            .registry
            .safe_lookup(&self.name, self.config.whereis_timeout)
            .await?;
        if let Some(holder) = holder {
            self.become_standby(state, Some(holder.info().clone()))
                .await;
            return self.place(myself, state).await;
        }
        let first_in_line = match &self.config.placement {
            // Only the first live node in priority order registers at once;
            // the others wait their turn as standbys.
            Some(placement) => {
                let order = placement.order(&self.registry.live_nodes());
                order.first() == Some(self.registry.node())
            }
            None => true,
        };
        if !first_in_line || !self.has_quorum() {
            self.become_standby(state, None).await;
            return self.place(myself, state).await;
        }
        // Before registering (which makes us the newest registration).
        let start = self.vacant_start(state);
        match self.registry.register(&self.name, myself.get_cell()).await {
            Ok(me) => {
                state.me = Some(me);
                let start = match start {
                    StartType::Failover { from, .. } => self.failover_start(state, from),
                    other => other,
                };
                self.start_holder(state, start).await
            }
            Err(RegistryErr::AlreadyRegistered { .. }) => {
                let holder = self.registry.lookup(&self.name).map(|r| r.info().clone());
                self.become_standby(state, holder).await;
                self.place(myself, state).await
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
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
                    phase: match state.stage {
                        Stage::Standby => Phase::Standby,
                        Stage::Holder => Phase::Holder,
                        Stage::Pulling { .. } => Phase::Pulling,
                        Stage::Retiring { .. } => Phase::Retiring,
                        Stage::Yielding { .. } => Phase::Yielding,
                    },
                    epoch: state.me.as_ref().map(|m| m.epoch()),
                    node: self.registry.node().clone(),
                });
                Ok(())
            }
            TakeoverMessage::Handover(h) => self.on_handover(myself, state, h).await,
            TakeoverMessage::Registry(event) => self.on_registry(myself, state, event).await,
            TakeoverMessage::PullTimeout(epoch) => self.on_pull_timeout(state, epoch).await,
            TakeoverMessage::PlacementTick => self.place(myself, state).await,
            TakeoverMessage::ConflictTick(epoch) => {
                self.on_conflict_tick(myself, state, epoch).await
            }
            TakeoverMessage::CheckpointTick(epoch) => {
                self.on_checkpoint_tick(myself, state, epoch);
                Ok(())
            }
            TakeoverMessage::YieldTimeout(epoch) => {
                self.on_yield_timeout(myself, state, epoch).await
            }
            TakeoverMessage::RetireTick(epoch) => self.on_retire_tick(state, epoch).await,
        }
    }
}

impl<A: TakeoverActor> TakeoverServer<A> {
    fn publish(&self, state: &ServerState<A>, kind: EventKind) {
        self.config.events.publish(TakeoverEvent {
            name: self.name.clone(),
            node: self.registry.node().clone(),
            epoch: state.me.as_ref().map(|m| m.epoch()),
            kind,
        });
    }

    async fn become_standby(&self, state: &mut ServerState<A>, holder: Option<RegistrationInfo>) {
        state.stage = Stage::Standby;
        state.ctx.epoch = None;
        // Registry changes seen while we pulled were not recorded; a later
        // failover must name the holder as it is now.
        if let Some(now) = self.registry.lookup(&self.name) {
            note_holder(state, now.info());
        } else if let Some(h) = &holder {
            note_holder(state, h);
        }
        self.join_standbys(state).await;
        tracing::info!(name = %self.name, node = %self.registry.node(), holder = ?holder, "standby");
        self.publish(state, EventKind::Standby { holder });
    }

    /// Runs `go` and switches to serving; `state.me` is set.
    async fn start_holder(
        &self,
        state: &mut ServerState<A>,
        start: StartType,
    ) -> Result<(), ActorProcessingErr> {
        state.ctx.epoch = state.me.as_ref().map(|m| m.epoch());
        state.stage = Stage::Holder;
        state.suspect = None;
        state.stored = None;
        self.leave_standbys(state);
        self.start_checkpoints(state);
        self.behaviour
            .go(&state.ctx, &start, &mut state.user)
            .await?;
        tracing::info!(name = %self.name, node = %self.registry.node(), epoch = ?state.ctx.epoch, ?start, "holder");
        self.publish(state, EventKind::Registered { start });
        // A failover can land beside a holder it could not see: resolve it.
        self.check_conflict(state).await
    }

    async fn serve(
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

    fn forward(&self, state: &ServerState<A>, to: &Registration, call: Pending<A>) {
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
    fn forward_to_holder(&self, state: &ServerState<A>, call: Pending<A>) {
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

    async fn on_call(
        &self,
        state: &mut ServerState<A>,
        call: Pending<A>,
    ) -> Result<(), ActorProcessingErr> {
        if matches!(state.stage, Stage::Holder) && state.suspect.is_none() && self.may_serve(state)
        {
            return self.serve(state, call).await;
        }
        match &mut state.stage {
            Stage::Yielding { winner } => {
                let winner = winner.clone();
                self.forward(state, &winner, call);
            }
            Stage::Holder | Stage::Pulling { .. } => {
                if state.buffer.len() < self.config.buffer_capacity {
                    state.buffer.push_back(call);
                } else {
                    let capacity = self.config.buffer_capacity;
                    tracing::warn!(name = %self.name, capacity, "handover buffer full; call rejected");
                    if let Some(reply) = call.reply {
                        reply.send(Err(CallErr::BufferFull { capacity }));
                    }
                    self.publish(state, EventKind::BufferFull { capacity });
                }
            }
            Stage::Retiring {
                successor,
                waiting,
                forwarded,
                ..
            } => match self.registry.resolve(successor) {
                Some(next) if waiting.is_empty() => {
                    *forwarded += 1;
                    self.forward(state, &next, call);
                }
                _ => waiting.push_back(call),
            },
            Stage::Standby => self.forward_to_holder(state, call),
        }
        Ok(())
    }

    async fn on_go(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        request: GoRequest,
        reply: Option<RpcReplyPort<Result<HandoverReport, TakeoverErr>>>,
    ) -> Result<(), ActorProcessingErr> {
        let answer = |reply: Option<RpcReplyPort<_>>, r: Result<HandoverReport, TakeoverErr>| {
            if let Some(reply) = reply {
                let _ = reply.send(r);
            }
        };
        if !matches!(state.stage, Stage::Standby) {
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
                let me = match self.registry.steal(&self.name, myself.get_cell()).await {
                    Ok(me) => me,
                    Err(e) => {
                        answer(reply, Err(e.into()));
                        return Ok(());
                    }
                };
                let epoch = me.epoch();
                deliver(
                    &state.registry,
                    &holder,
                    TakeoverMessage::<A>::Handover(HandoverMsg::StateRequest {
                        holder_epoch: holder.epoch(),
                        requester: me.info().clone(),
                    }),
                );
                state.me = Some(me);
                let timer = send_later(
                    &myself,
                    self.config.pull_timeout,
                    TakeoverMessage::PullTimeout(epoch),
                );
                tracing::info!(name = %self.name, node = %self.registry.node(), epoch, from = %holder.node(), "takeover: name stolen, pulling state");
                state.stage = Stage::Pulling {
                    from: holder.info().clone(),
                    old: holder.cell().clone(),
                    started: Instant::now(),
                    go_reply: reply,
                    timer,
                    incoming: None,
                };
                self.publish(
                    state,
                    EventKind::TakeoverStarted {
                        from: holder.info().clone(),
                    },
                );
            }
        }
        Ok(())
    }

    /// How a start on a vacant name must be reported: `Normal` only if no
    /// holder of the name was ever seen here (by this instance, or by its
    /// node, which learns the newest registration from its peers); otherwise
    /// a `Failover` from the newest holder seen, whose state is not here.
    fn vacant_start(&self, state: &mut ServerState<A>) -> StartType {
        if state.last_holder.is_none() {
            if let Some(seen) = self.registry.newest_seen(&self.name) {
                note_holder(state, &seen);
            }
        }
        match &state.last_holder {
            Some(h) => StartType::Failover {
                from: h.node.clone(),
                checkpoint: None,
            },
            None => StartType::Normal,
        }
    }

    /// Registers a vacant name and starts as holder with `start`.
    async fn take_vacant(
        &self,
        myself: &ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        start: StartType,
    ) -> Result<Result<HandoverReport, TakeoverErr>, ActorProcessingErr> {
        if !self.has_quorum() {
            return Ok(Err(TakeoverErr::NoQuorum));
        }
        match self.registry.register(&self.name, myself.get_cell()).await {
            Ok(me) => {
                let info = me.info().clone();
                state.me = Some(me);
                let start = match start {
                    StartType::Failover { from, .. } => self.failover_start(state, from),
                    other => other,
                };
                self.start_holder(state, start.clone()).await?;
                Ok(Ok(HandoverReport {
                    holder: info,
                    start,
                    state_bytes: 0,
                    pause: Duration::ZERO,
                    buffered: 0,
                }))
            }
            Err(e) => Ok(Err(e.into())),
        }
    }

    /// Placement, on a standby: take a vacant name when it is our turn, take
    /// the name over from a holder of lower priority. Re-run on every registry
    /// change and on [`TakeoverMessage::PlacementTick`].
    async fn place(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(placement) = &self.config.placement else {
            return Ok(());
        };
        if !matches!(state.stage, Stage::Standby) {
            return Ok(());
        }
        let now = Instant::now();
        let holder = self.registry.lookup(&self.name);
        if let Some(holder) = &holder {
            // Before anything else: a failover must name the last holder seen.
            state.vacant_since = None;
            note_holder(state, holder.info());
        }
        if let Some(at) = state.retry_at {
            if now < at {
                send_later(&myself, at - now, TakeoverMessage::PlacementTick);
                return Ok(());
            }
            state.retry_at = None;
        }
        let me = self.registry.node().clone();
        match holder {
            Some(holder) => {
                // Only when every registration in our view is below us: one
                // on a node at or above ours (a split brain we merely see
                // both sides of) is not ours to take over, and taking it
                // would move the name round for as long as the split lasts.
                let all_below = self.registry.members(&self.name).iter().all(|m| {
                    m.cell().get_id() != myself.get_id() && placement.outranks(&me, m.node())
                });
                if all_below {
                    tracing::info!(name = %self.name, node = %me, holder = %holder.node(), "placement: the holder's node has lower priority; taking over");
                    self.on_go(myself, state, GoRequest::Takeover, None).await?;
                }
            }
            None => {
                let live = self.registry.live_nodes();
                let Some(wait) = placement.vacancy_wait(&me, &live) else {
                    return Ok(());
                };
                let due = *state.vacant_since.get_or_insert(now) + wait;
                if now < due {
                    send_later(&myself, due - now, TakeoverMessage::PlacementTick);
                    return Ok(());
                }
                let start = self.vacant_start(state);
                tracing::info!(name = %self.name, node = %me, ?start, "placement: the name is vacant and it is our turn");
                if let Err(e) = self.take_vacant(&myself, state, start).await? {
                    tracing::info!(name = %self.name, error = %e, "placement: could not take the vacant name");
                }
            }
        }
        Ok(())
    }

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
            } => {
                let pulling = matches!(state.stage, Stage::Pulling { .. })
                    && state.me.as_ref().map(|m| m.epoch()) == Some(requester_epoch);
                if !pulling {
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
            HandoverMsg::StatePart {
                requester_epoch,
                offset,
                total,
                bytes,
            } => {
                let pulling = matches!(state.stage, Stage::Pulling { .. })
                    && state.me.as_ref().map(|m| m.epoch()) == Some(requester_epoch);
                if !pulling {
                    // The first part stands for the whole state here.
                    if offset == 0 {
                        self.on_late_state(state, requester_epoch, true);
                    }
                    return Ok(());
                }
                self.on_state_part(state, offset, total, bytes).await
            }
            HandoverMsg::StatePartAck {
                requester,
                received,
            } => {
                if matches!(&state.stage, Stage::Retiring { successor, .. } if *successor == requester)
                {
                    self.send_parts(state, received);
                }
                Ok(())
            }
            HandoverMsg::HandoverDone { successor } => {
                let Stage::Retiring {
                    successor: expected,
                    waiting,
                    forwarded,
                    ..
                } = &mut state.stage
                else {
                    return Ok(());
                };
                if *expected != successor {
                    tracing::warn!(name = %self.name, ?successor, "handover done from an unexpected instance; ignored");
                    return Ok(());
                }
                let waiting = std::mem::take(waiting);
                let mut forwarded = *forwarded;
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
                if let Some(me) = state.me.take() {
                    self.registry
                        .unregister(me.info(), LeaveReason::Unregistered);
                }
                tracing::info!(name = %self.name, node = %self.registry.node(), to = %successor.node, forwarded, "retired");
                self.publish(
                    state,
                    EventKind::Retired {
                        to: successor,
                        forwarded,
                    },
                );
                // Drain: whatever is queued is still forwarded; later sends are
                // refused, and a refused call is re-routed to the new holder.
                myself.drain()?;
                Ok(())
            }
            HandoverMsg::MergeOffer {
                loser,
                winner_epoch,
                result,
            } => {
                self.on_merge_offer(state, loser, winner_epoch, result)
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
            HandoverMsg::HandoverAborted { successor } => {
                if matches!(&state.stage, Stage::Retiring { successor: s, .. } if *s == successor) {
                    self.resume(state, successor).await?;
                }
                Ok(())
            }
            HandoverMsg::HandoverQuery { old, successor } => {
                self.on_handover_query(state, old, successor);
                Ok(())
            }
            HandoverMsg::HandoverUnknown { successor } => {
                self.on_handover_unknown(state, successor).await
            }
        }
    }

    /// A state reply for a pull that already ended. If we gave the pull up
    /// as a failover, the old holder sent its state and now forwards to us,
    /// waiting for a `HandoverDone` that will not come: tell it to serve
    /// again. Two holders then meet, and the conflict resolution (with its
    /// merge hook) decides, instead of the old state being dropped.
    fn on_late_state(&self, state: &mut ServerState<A>, requester_epoch: u64, sent: bool) {
        let me = state.me.as_ref().map(|m| m.info().clone());
        let abandoned = state.abandoned_pull.clone();
        match (me, abandoned) {
            (Some(me), Some(old)) if sent && me.epoch == requester_epoch => {
                tracing::warn!(name = %self.name, ?old, "state of an abandoned pull came late; the old holder serves again");
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
            _ => {
                tracing::warn!(name = %self.name, requester_epoch, "state reply for no pull of ours; ignored")
            }
        }
    }

    async fn on_state_request(
        &self,
        state: &mut ServerState<A>,
        holder_epoch: u64,
        requester: RegistrationInfo,
    ) -> Result<(), ActorProcessingErr> {
        // Calls held since the steal showed up arrived before this request:
        // they are ours to answer, and go into the state we send.
        if matches!(state.stage, Stage::Holder) {
            state.suspect = None;
            self.release_held(state).await?;
        }
        let Some(to) = self.registry.resolve(&requester) else {
            // The steal always reaches a node before the request does (same
            // link, in order), so an unknown requester rolled back already.
            tracing::warn!(name = %self.name, ?requester, "state request from an instance not in our view; ignored");
            return Ok(());
        };
        let holding = matches!(state.stage, Stage::Holder)
            && state.me.as_ref().map(|m| m.epoch()) == Some(holder_epoch)
            && requester.name == self.name
            && requester.epoch > holder_epoch;
        let result = if !holding {
            Err(ReplyErr::Refused(format!(
                "instance on {} does not hold {:?} at epoch {holder_epoch}",
                self.registry.node(),
                self.name
            )))
        } else {
            self.encode_for_transfer(&state.user)
                .map_err(ReplyErr::State)
        };
        if let Ok(bytes) = &result {
            tracing::info!(name = %self.name, node = %self.registry.node(), to = %requester.node, bytes = bytes.len(), "state sent; forwarding from now on");
            self.publish(
                state,
                EventKind::StateSent {
                    to: requester.clone(),
                    bytes: bytes.len(),
                },
            );
            state.stage = Stage::Retiring {
                successor: requester.clone(),
                waiting: VecDeque::new(),
                forwarded: 0,
                sent: Instant::now(),
                bytes: bytes.len(),
                asked: None,
                outgoing: None,
            };
            send_later(
                &state.ctx.myself,
                self.config.pull_timeout,
                TakeoverMessage::RetireTick(requester.epoch),
            );
        }
        let result = match result {
            Ok(bytes) if bytes.len() > self.config.state_part_bytes => {
                if let Stage::Retiring { outgoing, .. } = &mut state.stage {
                    *outgoing = Some(Outgoing {
                        to,
                        requester_epoch: requester.epoch,
                        bytes,
                        sent: 0,
                    });
                }
                self.send_parts(state, 0);
                return Ok(());
            }
            other => other,
        };
        deliver(
            &state.registry,
            &to,
            TakeoverMessage::<A>::Handover(HandoverMsg::StateReply {
                requester_epoch: requester.epoch,
                result,
            }),
        );
        Ok(())
    }

    /// Old holder: sends the next parts of a big state, up to
    /// [`PARTS_IN_FLIGHT`] ahead of the `received` bytes the new instance
    /// acknowledged. Frees the encoded state once the last part is out.
    fn send_parts(&self, state: &mut ServerState<A>, received: u64) {
        let part = self.config.state_part_bytes;
        let Stage::Retiring { outgoing, .. } = &mut state.stage else {
            return;
        };
        let Some(out) = outgoing.as_mut() else {
            return;
        };
        let total = out.bytes.len();
        let limit = usize::try_from(received)
            .unwrap_or(usize::MAX)
            .saturating_add(PARTS_IN_FLIGHT.saturating_mul(part));
        while out.sent < total && out.sent < limit {
            let end = total.min(out.sent.saturating_add(part));
            let msg = HandoverMsg::StatePart {
                requester_epoch: out.requester_epoch,
                offset: out.sent as u64,
                total: total as u64,
                bytes: out.bytes[out.sent..end].to_vec(),
            };
            out.sent = end;
            deliver(
                &state.registry,
                &out.to,
                TakeoverMessage::<A>::Handover(msg),
            );
        }
        if out.sent >= total {
            *outgoing = None;
        }
    }

    /// New instance: one part of a big state. Parts come in order; a part
    /// that does not continue what came so far aborts the takeover (the old
    /// holder serves again), as a state that does not decode does.
    async fn on_state_part(
        &self,
        state: &mut ServerState<A>,
        offset: u64,
        total: u64,
        bytes: Vec<u8>,
    ) -> Result<(), ActorProcessingErr> {
        let max = self.config.max_state_bytes;
        let me = state.me.as_ref().map(|m| m.info().clone());
        let Stage::Pulling {
            from,
            old,
            incoming,
            ..
        } = &mut state.stage
        else {
            return Ok(());
        };
        let size = usize::try_from(total).unwrap_or(usize::MAX);
        if size > max {
            let e = StateCodecErr::TooLarge { bytes: size, max };
            self.abort(state, TakeoverErr::State(e)).await;
            return Ok(());
        }
        let continues = match incoming {
            None => offset == 0,
            Some((t, got)) => *t == total && got.len() as u64 == offset,
        };
        let end = offset.checked_add(bytes.len() as u64);
        if !continues || bytes.is_empty() || end.is_none_or(|end| end > total) {
            let e = StateCodecErr::Decode(format!(
                "a state part at {offset} of {total} bytes does not continue the parts received"
            ));
            self.abort(state, TakeoverErr::State(e)).await;
            return Ok(());
        }
        if incoming.is_none() {
            let mut buf = Vec::new();
            if buf.try_reserve_exact(size).is_err() {
                let e = StateCodecErr::Decode(format!("no memory for a state of {size} bytes"));
                self.abort(state, TakeoverErr::State(e)).await;
                return Ok(());
            }
            *incoming = Some((total, buf));
        }
        let Some((_, got)) = incoming else {
            return Ok(());
        };
        got.extend_from_slice(&bytes);
        drop(bytes);
        if got.len() as u64 == total {
            let whole = std::mem::take(got);
            *incoming = None;
            return self.install(state, whole).await;
        }
        if let Some(me) = me {
            let received = got.len() as u64;
            let to = Registration::new(from.clone(), old.clone());
            deliver(
                &state.registry,
                &to,
                TakeoverMessage::<A>::Handover(HandoverMsg::StatePartAck {
                    requester: me,
                    received,
                }),
            );
        }
        Ok(())
    }

    /// Encodes our state for another instance (a takeover or a merge),
    /// refusing one over `max_state_bytes`.
    fn encode_for_transfer(&self, user: &A::State) -> Result<Vec<u8>, StateCodecErr> {
        let bytes = self.behaviour.encode_state(user)?;
        let max = self.config.max_state_bytes;
        if bytes.len() > max {
            return Err(StateCodecErr::TooLarge {
                bytes: bytes.len(),
                max,
            });
        }
        Ok(bytes)
    }

    /// Decodes a state another instance sent, refusing one over
    /// `max_state_bytes` before decoding it.
    fn decode_transferred(&self, bytes: &[u8]) -> Result<A::State, StateCodecErr> {
        let max = self.config.max_state_bytes;
        if bytes.len() > max {
            return Err(StateCodecErr::TooLarge {
                bytes: bytes.len(),
                max,
            });
        }
        self.behaviour.decode_state(bytes)
    }

    async fn install(
        &self,
        state: &mut ServerState<A>,
        bytes: Vec<u8>,
    ) -> Result<(), ActorProcessingErr> {
        match self.decode_transferred(&bytes) {
            Ok(user) => {
                state.user = user;
                let Stage::Pulling { from, started, .. } = &state.stage else {
                    return Ok(());
                };
                let (from, duration) = (from.clone(), started.elapsed());
                self.publish(
                    state,
                    EventKind::StateTransferred {
                        from,
                        bytes: bytes.len(),
                        duration,
                    },
                );
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
        let Stage::Pulling {
            from,
            started,
            go_reply,
            timer,
            ..
        } = std::mem::replace(&mut state.stage, Stage::Holder)
        else {
            return Ok(());
        };
        timer.abort();
        let start = if lost {
            tracing::warn!(name = %self.name, from = %from.node, "old holder gone before its state came: running as failover, its state is lost");
            self.publish(state, EventKind::StateLost { from: from.clone() });
            state.abandoned_pull = Some(from.clone());
            // The holder whose state is lost is the newest one seen below
            // our own registration, which may not be the one we pulled from
            // (it may have been replaced while our request was lost). One
            // above ours stole the name from us (we were the holder in its
            // view) and never had that state.
            note_holder(state, &from);
            let mine = state.me.as_ref().map(|m| m.info().clone());
            let lost_with = match (&state.last_holder, &mine) {
                (Some(h), Some(me)) if h.rank() < me.rank() && h.rank() >= from.rank() => h.clone(),
                _ => from.clone(),
            };
            self.failover_start(state, lost_with.node.clone())
        } else {
            StartType::Takeover {
                from: from.node.clone(),
            }
        };
        self.start_holder(state, start.clone()).await?;
        let buffered = state.buffer.len();
        while let Some(call) = state.buffer.pop_front() {
            self.serve(state, call).await?;
        }
        let pause = started.elapsed();
        let me = state.me.as_ref().map(|m| m.info().clone());
        if let (false, Some(me)) = (lost, &me) {
            state.took_over = Some((from.clone(), me.epoch));
        }
        if let (false, Some(old), Some(me)) = (lost, self.registry.resolve(&from), me.clone()) {
            deliver(
                &state.registry,
                &old,
                TakeoverMessage::<A>::Handover(HandoverMsg::HandoverDone { successor: me }),
            );
        }
        self.publish(
            state,
            EventKind::HandoverDone {
                from,
                pause,
                buffered,
            },
        );
        if let (Some(reply), Some(holder)) = (go_reply, me) {
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
    async fn abort(&self, state: &mut ServerState<A>, error: TakeoverErr) {
        let Stage::Pulling {
            from,
            go_reply,
            timer,
            ..
        } = std::mem::replace(&mut state.stage, Stage::Standby)
        else {
            return;
        };
        timer.abort();
        tracing::warn!(name = %self.name, node = %self.registry.node(), %error, "takeover aborted and rolled back");
        if let Some(me) = state.me.take() {
            if let Some(old) = self.registry.resolve(&from) {
                deliver(
                    &state.registry,
                    &old,
                    TakeoverMessage::<A>::Handover(HandoverMsg::HandoverAborted {
                        successor: me.info().clone(),
                    }),
                );
            }
            self.registry
                .unregister(me.info(), LeaveReason::Unregistered);
        }
        for call in std::mem::take(&mut state.buffer) {
            self.forward_to_holder(state, call);
        }
        if let Some(placement) = &self.config.placement {
            state.retry_at = Some(Instant::now() + placement.retry_after);
        }
        self.publish(
            state,
            EventKind::TakeoverAborted {
                error: error.clone(),
            },
        );
        if let Some(reply) = go_reply {
            let _ = reply.send(Err(error));
        }
        self.become_standby(state, Some(from)).await;
    }

    /// The old holder serves again after a failed takeover; its state is
    /// untouched (it forwarded every call since it sent the state).
    async fn resume(
        &self,
        state: &mut ServerState<A>,
        successor: RegistrationInfo,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Retiring { waiting, .. } = std::mem::replace(&mut state.stage, Stage::Holder)
        else {
            return Ok(());
        };
        tracing::info!(name = %self.name, node = %self.registry.node(), ?successor, "takeover failed; serving again");
        self.publish(state, EventKind::HandoverResumed { successor });
        for call in waiting {
            self.serve(state, call).await?;
        }
        // A newer holder may have shown while we forwarded.
        self.check_conflict(state).await
    }

    async fn on_pull_timeout(
        &self,
        state: &mut ServerState<A>,
        epoch: u64,
    ) -> Result<(), ActorProcessingErr> {
        let Stage::Pulling { from, old, .. } = &state.stage else {
            return Ok(());
        };
        if state.me.as_ref().map(|m| m.epoch()) != Some(epoch) {
            return Ok(());
        }
        if self.registry.resolve(from).is_some() || self.still_registered(old) {
            self.abort(
                state,
                TakeoverErr::Timeout {
                    after: self.config.pull_timeout,
                },
            )
            .await;
            Ok(())
        } else {
            self.finish_pull(state, 0, true).await
        }
    }

    /// Whether `instance` holds any live registration of our name.
    fn still_registered(&self, instance: &ActorCell) -> bool {
        self.registry
            .members(&self.name)
            .iter()
            .any(|m| m.cell().get_id() == instance.get_id())
    }

    async fn on_registry(
        &self,
        myself: ActorRef<TakeoverMessage<A>>,
        state: &mut ServerState<A>,
        event: RegistryEvent,
    ) -> Result<(), ActorProcessingErr> {
        // Whatever we are doing: a failover must name the newest holder seen.
        if let RegistryEvent::Registered(info) = &event {
            if info.name == self.name && state.me.as_ref().map(|m| m.info()) != Some(info) {
                note_holder(state, info);
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
            if state.last_holder.as_ref() == Some(info) {
                if let Some(now) = self.registry.lookup(&self.name) {
                    state.last_holder = Some(now.info().clone());
                }
            }
        }
        let gone = |info: &RegistrationInfo| match &event {
            RegistryEvent::Unregistered { info: left, .. } => left == info,
            RegistryEvent::NodeDown(node) => *node == info.node,
            _ => false,
        };
        match &mut state.stage {
            Stage::Pulling { from, old, .. }
                if gone(from) && self.registry.resolve(from).is_none() =>
            {
                if self.still_registered(old) {
                    let why = "the old holder re-registered under a new epoch".to_string();
                    self.abort(state, TakeoverErr::Refused(why)).await;
                    return Ok(());
                }
                return self.finish_pull(state, 0, true).await;
            }
            Stage::Retiring { successor, .. }
                if gone(successor) && self.registry.resolve(successor).is_none() =>
            {
                return self.successor_gone(state).await;
            }
            Stage::Retiring {
                successor,
                waiting,
                forwarded,
                ..
            } if !waiting.is_empty() => {
                if let Some(next) = self.registry.resolve(successor) {
                    let waiting = std::mem::take(waiting);
                    *forwarded += waiting.len();
                    for call in waiting {
                        self.forward(state, &next, call);
                    }
                }
            }
            Stage::Standby => return self.place(myself, state).await,
            Stage::Holder => {
                // A rival holder we were waiting on (a split brain being
                // healed) died before merging with us: whatever it served
                // is lost, and only we can say so.
                let died = match &event {
                    RegistryEvent::Unregistered { info, reason } => {
                        *reason != LeaveReason::Unregistered
                            && state.suspect.as_ref().map(Registration::info) == Some(info)
                    }
                    RegistryEvent::NodeDown(node) => state.suspect.as_ref().is_some_and(|s| {
                        s.node() == node && self.registry.resolve(s.info()).is_none()
                    }),
                    _ => false,
                };
                if let (true, Some(rival)) = (died, state.suspect.take()) {
                    tracing::warn!(name = %self.name, node = %self.registry.node(), rival = ?rival.info(), "a rival holder died before the split brain healed: holding again as a failover from it");
                    self.hold_again_as_failover(state, rival.info(), None)
                        .await?;
                    return self.release_held_if_serving(state).await;
                }
                return self.check_conflict(state).await;
            }
            Stage::Yielding { winner } if self.registry.resolve(winner.info()).is_none() => {
                let winner = winner.info().clone();
                return self.stop_yielding(state, &winner).await;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Remembers the newest holder seen, by rank: a lower-ranked registration
/// that shows again after the newest one died is a stale leftover, not the
/// holder whose state a failover loses.
fn note_holder<A: TakeoverActor>(state: &mut ServerState<A>, info: &RegistrationInfo) {
    if state
        .last_holder
        .as_ref()
        .is_none_or(|last| info.rank() > last.rank())
    {
        state.last_holder = Some(info.clone());
    }
}

/// Sends `msg` to the instance after `after`: every timer of the runtime
/// (pull timeout, placement, conflict grace, checkpoints) is a message, so it
/// is handled in order with everything else. A stopped instance drops it.
fn send_later<A: TakeoverActor>(
    myself: &ActorRef<TakeoverMessage<A>>,
    after: Duration,
    msg: TakeoverMessage<A>,
) -> JoinHandle<()> {
    let myself = myself.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let _ = myself.send_message(msg);
    })
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
