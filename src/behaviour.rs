//! The behaviour users implement: [`TakeoverActor`].

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use ractor::{ActorProcessingErr, ActorRef, SupervisionEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::task::AbortHandle;

use crate::message::OwnInfo;
use crate::{
    Epoch, InfoErr, NodeName, Registration, StateCodec, StateCodecErr, TakeoverMessage, TakeoverRef,
};

/// How an instance came to hold the name, as `go` receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StartType {
    /// Nobody held the name; this instance registered it.
    Normal,
    /// The holder on `from` went away; this instance took the name. Without
    /// warm standby (`TakeoverConfig::checkpoint`) the state is the one
    /// `init` made, on every instance: one that held before and handed its
    /// state over goes back to `init`'s state once `on_handed_over` ran, so
    /// that a failover to it never serves a state older than its
    /// successor's. With warm standby, the state is the last checkpoint
    /// received from the holder, described in `checkpoint`.
    ///
    /// An old holder also gets this, a second `go` under a new epoch, when
    /// the successor it sent its state to vanished (node down, died) before
    /// confirming the handover: it serves again from the state it sent, and
    /// `checkpoint` describes that state (its own old epoch, the calls it had
    /// handled, `seq` 0). What the successor served in between may be lost.
    Failover {
        /// The node of the previous holder.
        from: NodeName,
        /// The checkpoint the state came from, if any.
        checkpoint: Option<CheckpointInfo>,
    },
    /// The holder on `from` handed its name and state to this instance.
    Takeover {
        /// The node of the previous holder.
        from: NodeName,
    },
}

/// Which checkpoint a failover started from, so user code can decide whether
/// it is recent enough.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CheckpointInfo {
    /// The epoch of the holder that sent it.
    pub holder_epoch: Epoch,
    /// Its number within that epoch.
    pub seq: u64,
    /// Calls the holder had handled when it took the checkpoint.
    pub handled: u64,
    /// How long before the failover it arrived.
    pub age: std::time::Duration,
    /// Its encoded size.
    pub bytes: usize,
}

/// What a split-brain merge did with the loser's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MergeOutcome {
    /// The winner kept its own state; the loser's was reported and dropped.
    KeptWinner,
    /// The loser's state was merged into the winner's.
    Merged,
    /// Synchronous standby: the winner had answered no call in its tenure
    /// yet, and the loser's state (or a standby's replica) held everything
    /// the winner's started from and more, so the winner took it whole
    /// instead of calling `merge`. The calls the winner had applied but
    /// not answered got [`crate::CallErr::NoReply`].
    TookTheirs,
}

/// What a running instance knows about itself; passed to every hook.
pub struct TakeoverCtx<A: TakeoverActor> {
    pub(crate) myself: ActorRef<TakeoverMessage<A>>,
    pub(crate) name: String,
    pub(crate) node: NodeName,
    /// The registration this instance holds the name under (or held it
    /// under while it retires or yields), `None` on a standby or while it
    /// pulls. Why here: it is the one place the instance's epoch lives, so
    /// what user code sees as its fencing token cannot drift from the
    /// registration the runtime serves under.
    pub(crate) registration: Option<Registration>,
    /// The tenure this instance holds the name in: the epoch it held when
    /// `go` last ran, `None` outside a tenure. Why not the epoch itself: a
    /// holder that wins a conflict re-registers at a new epoch but keeps
    /// serving the same state, and its timers must go on; a tenure ends only
    /// when the instance stops holding (it handed over, yielded, failed or
    /// stopped) or starts a new one (`go` again, as after a lost successor).
    pub(crate) tenure: Option<Epoch>,
    /// The timers of the current tenure, aborted when it ends. Why a mutex:
    /// hooks get the context by shared reference, as ractor's get `myself`.
    pub(crate) timers: Mutex<Vec<AbortHandle>>,
}

impl<A: TakeoverActor> std::fmt::Debug for TakeoverCtx<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TakeoverCtx")
            .field("myself", &self.myself.get_id())
            .field("name", &self.name)
            .field("node", &self.node)
            .field("registration", &self.registration)
            .finish()
    }
}

impl<A: TakeoverActor> TakeoverCtx<A> {
    /// The instance's own handle, as ractor's `myself` (link children to
    /// it, stop it, ask its status).
    pub fn myself(&self) -> TakeoverRef<A> {
        TakeoverRef::new(self.myself.clone())
    }

    /// The global name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// This node.
    pub fn node(&self) -> &NodeName {
        &self.node
    }

    /// The epoch under which this instance holds the name, `None` while it is
    /// a standby. Use it as a fencing token: attach it to side effects so that
    /// a downstream system can refuse writes from a holder that was replaced.
    pub fn epoch(&self) -> Option<Epoch> {
        self.registration.as_ref().map(Registration::epoch)
    }

    /// The fencing token for side effects (see [`crate::fence::EpochGate`]), `None`
    /// while this instance does not hold the name.
    pub fn fence(&self) -> Option<crate::fence::FencingToken> {
        self.epoch().map(|epoch| crate::FencingToken {
            name: self.name.clone(),
            epoch,
            node: self.node.clone(),
        })
    }

    /// Sends `info` to this instance now, for
    /// [`TakeoverActor::handle_info`]. It is handled only in the current
    /// tenure (see [`TakeoverActor::Info`]).
    ///
    /// # Errors
    ///
    /// [`InfoErr::NotHolding`] outside a tenure (on a standby, while
    /// pulling, in `init`); [`InfoErr::Stopped`] if the instance no longer
    /// takes messages.
    pub fn send_info(&self, info: A::Info) -> Result<(), InfoErr> {
        let tenure = self.tenure.ok_or(InfoErr::NotHolding)?;
        self.myself
            .send_message(TakeoverMessage::Info(OwnInfo { tenure, info }))
            .map_err(|_| InfoErr::Stopped)
    }

    /// Sends `info` to this instance once, after `delay`, as
    /// [`ractor::time::send_after`] does. The timer belongs to the current
    /// tenure: it is cancelled when the instance stops holding (it handed
    /// over, yielded to a split-brain winner, failed or stopped), and a tick
    /// that was already on its way then is dropped.
    ///
    /// # Errors
    ///
    /// [`InfoErr::NotHolding`] outside a tenure: start timers in
    /// [`TakeoverActor::go`], which runs on the holder alone.
    pub fn send_after(&self, delay: Duration, info: A::Info) -> Result<(), InfoErr> {
        let tenure = self.tenure.ok_or(InfoErr::NotHolding)?;
        let timer = self.myself.send_after(delay, move || {
            TakeoverMessage::Info(OwnInfo { tenure, info })
        });
        self.keep_timer(timer.abort_handle());
        Ok(())
    }

    /// Sends `info()` to this instance every `period`, the first after one
    /// `period`, as [`ractor::time::send_interval`] does. The timer belongs
    /// to the current tenure, as with [`TakeoverCtx::send_after`].
    ///
    /// # Errors
    ///
    /// [`InfoErr::NotHolding`] outside a tenure; [`InfoErr::ZeroPeriod`] for
    /// a zero `period` (tokio's interval panics on it).
    pub fn send_interval<F>(&self, period: Duration, info: F) -> Result<(), InfoErr>
    where
        F: Fn() -> A::Info + Send + 'static,
    {
        let tenure = self.tenure.ok_or(InfoErr::NotHolding)?;
        if period.is_zero() {
            return Err(InfoErr::ZeroPeriod);
        }
        let timer = self.myself.send_interval(period, move || {
            TakeoverMessage::Info(OwnInfo {
                tenure,
                info: info(),
            })
        });
        self.keep_timer(timer.abort_handle());
        Ok(())
    }

    /// Remembers a timer of this tenure, forgetting those that finished (so
    /// many one-shot timers do not pile up).
    fn keep_timer(&self, timer: AbortHandle) {
        let mut timers = self.timers.lock().unwrap_or_else(|e| e.into_inner());
        timers.retain(|t| !t.is_finished());
        timers.push(timer);
    }

    /// Ends the current tenure: its timers are aborted, and its infos still
    /// on their way are dropped when they come (their tenure is not current).
    pub(crate) fn end_tenure(&mut self) {
        self.tenure = None;
        for timer in self
            .timers
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            timer.abort();
        }
    }
}

/// A cluster-global server that can move between nodes with its state.
///
/// It mirrors [`ractor::Actor`]: implement it, then spawn it with
/// [`crate::TakeoverServer`], which is the ractor actor that runs it. Every
/// message is a request with a reply (a cast discards the reply), so that the
/// runtime can buffer, forward and answer calls across a takeover without
/// knowing your types.
pub trait TakeoverActor: Sized + Send + Sync + 'static {
    /// The requests clients send.
    type Msg: Serialize + DeserializeOwned + Send + 'static;
    /// The replies to them, for [`crate::GlobalClient::call`]. A server
    /// whose messages carry their own [`crate::Reply`] ports (answered with
    /// [`crate::call_t!`]) writes `()`: the port answers, not the return
    /// value of [`TakeoverActor::handle`].
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// The state that moves on takeover. A serde state travels with postcard
    /// and needs no codec of its own; any other implements [`StateCodec`]
    /// (see [`crate::codec`]).
    type State: StateCodec + Send + 'static;
    /// What `init` gets.
    type Arguments: Send + 'static;
    /// The instance's own messages, for [`TakeoverActor::handle_info`]:
    /// timer ticks and the like, as Erlang's `handle_info`. Write
    /// `type Info = ();` if the server has none.
    ///
    /// Infos are not calls: only [`TakeoverCtx`] makes them
    /// ([`TakeoverCtx::send_info`], [`TakeoverCtx::send_after`],
    /// [`TakeoverCtx::send_interval`]), clients cannot send them, they never
    /// cross nodes and are never forwarded. Each carries the tenure it was
    /// sent in (the holding that began with the last `go`), and is handled
    /// only in that tenure:
    ///
    /// - while the holder holds its calls (a newer registration not yet
    ///   settled, no lease, no quorum), an info waits with them, in a queue
    ///   as bounded as the call buffer (`TakeoverConfig::buffer_capacity`;
    ///   one that finds it full is dropped with a warning), and is handled
    ///   once the holder serves again, after the held calls;
    /// - while it retires or yields (its state is on its way to another
    ///   instance), an info that comes is dropped with a debug log (it would
    ///   change a state already sent); those held from before stay held. If
    ///   the handover is aborted the tenure goes on, and so do its timers;
    /// - once the tenure ended (handed over, yielded, failed, or a new `go`),
    ///   its timers are cancelled and any of its infos still on the way is
    ///   dropped with a debug log, on whatever stage the instance is in.
    type Info: Send + 'static;

    /// Builds the instance's initial state. Every instance runs it, holder or
    /// standby; a takeover replaces the state with the old holder's. Keep in
    /// the state what [`TakeoverActor::go`] needs from the arguments (a
    /// timer's period, say): `go` runs on the holder alone and does not get
    /// them. Timers cannot start here (there is no tenure yet).
    fn init(
        &self,
        ctx: &TakeoverCtx<Self>,
        args: Self::Arguments,
    ) -> impl Future<Output = Result<Self::State, ActorProcessingErr>> + Send;

    /// The start hook of the holder: called once the instance holds the
    /// name and (on a takeover) has the old state, before any buffered call
    /// is served, and on the holder alone: on the first registration
    /// (`Normal`), a takeover, a failover, and when an old holder holds
    /// again after its successor vanished (`Failover`). Each call begins a
    /// tenure: start the holder's timers here, with
    /// [`TakeoverCtx::send_after`] and [`TakeoverCtx::send_interval`]; they
    /// stop by themselves when the tenure ends. A standby never runs it, and
    /// a handover that was aborted resumes the tenure without it.
    fn go(
        &self,
        ctx: &TakeoverCtx<Self>,
        start: &StartType,
        state: &mut Self::State,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send {
        let _ = (ctx, start, state);
        async { Ok(()) }
    }

    /// Handles one request on the holder.
    ///
    /// A message's [`crate::Reply`] may be answered here or kept in the
    /// state and answered later; see [`crate::reply`] for what happens to a
    /// kept one when the state moves.
    ///
    /// An error or a panic fails the instance, as in ractor, but first its
    /// caller is answered at once: [`crate::CallErr::Handler`] with the
    /// error, or [`crate::CallErr::Panicked`] with the panic's message (the
    /// call may have been partly applied). The state may be half updated,
    /// so the instance does not serve again: it gives the name up at once
    /// (with placement, a standby fails over), answers the calls queued
    /// behind the failed one with [`crate::CallErr::InstanceStopped`] (or
    /// forwards them to a new holder already in its view), and then stops
    /// with the failure as its reason, which its supervisor sees as
    /// `ActorFailed`. [`crate::GlobalClient::call`] retries a call answered
    /// `InstanceStopped` at the next holder within its deadline.
    fn handle(
        &self,
        ctx: &TakeoverCtx<Self>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> impl Future<Output = Result<Self::Reply, ActorProcessingErr>> + Send;

    /// Handles one of the instance's own messages (see
    /// [`TakeoverActor::Info`]) on the holder. The default ignores it. An
    /// error or a panic fails the instance as in [`TakeoverActor::handle`].
    fn handle_info(
        &self,
        ctx: &TakeoverCtx<Self>,
        info: Self::Info,
        state: &mut Self::State,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send {
        let _ = (ctx, info, state);
        async { Ok(()) }
    }

    /// Called on the old holder once its handover is done: the instance
    /// that took over from it (`to`, a successor or a split-brain winner
    /// that merged its state) confirmed, and this instance gave the name
    /// up. Close files, flush what belongs to the holder; its timers are
    /// cancelled already. `state` is what it handed over. Afterwards the
    /// instance goes on as a standby from the state [`TakeoverActor::init`]
    /// made, not from this one: what it handed over is older than its
    /// successor's state as soon as the successor serves, so a failover to
    /// this standby (without a newer checkpoint) must not start from it.
    /// The default does nothing. An error fails the instance.
    ///
    /// With synchronous standby, what this hook leaves in `state` is kept
    /// as this standby's copy of the state its successor started from, and
    /// the successor sends only its changes on top: leave the state as it
    /// is here (release what it refers to outside, not what is in it).
    fn on_handed_over(
        &self,
        ctx: &TakeoverCtx<Self>,
        to: &NodeName,
        state: &mut Self::State,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send {
        let _ = (ctx, to, state);
        async { Ok(()) }
    }

    /// A supervision event of the instance: a child that user code linked
    /// to it (`Actor::spawn_linked(.., ctx.myself().get_cell())`) stopped,
    /// failed or started. Unlike ractor's default, which stops an actor whose
    /// child ended, the default here logs and keeps the server running (a
    /// global server that stopped would hand nothing over). Return an error
    /// to fail the instance. Runs on any stage, holder or standby.
    fn handle_supervisor_evt(
        &self,
        ctx: &TakeoverCtx<Self>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send {
        let _ = (ctx, state);
        async move {
            match &event {
                SupervisionEvent::ActorFailed(child, why) => {
                    tracing::warn!(child = %child.get_id(), %why, "a linked child failed; the server goes on");
                }
                SupervisionEvent::ActorTerminated(child, _, why) => {
                    tracing::info!(child = %child.get_id(), ?why, "a linked child stopped; the server goes on");
                }
                _ => tracing::debug!(?event, "supervision event"),
            }
            Ok(())
        }
    }

    /// Split-brain healing: after a partition healed, two instances held the
    /// name; this one won (see [`crate::resolver::ConflictResolver`]) and `theirs` is the
    /// loser's state. The default keeps the winner's state (the loser's is
    /// reported in an event and dropped); override to merge.
    fn merge(
        &self,
        ctx: &TakeoverCtx<Self>,
        mine: &mut Self::State,
        theirs: Self::State,
        from: &crate::registry::RegistrationInfo,
    ) -> impl Future<Output = Result<MergeOutcome, ActorProcessingErr>> + Send {
        let _ = (ctx, mine, theirs, from);
        async { Ok(MergeOutcome::KeptWinner) }
    }

    /// Encodes the state for a takeover, a merge offer or a checkpoint. The
    /// default is the state's [`StateCodec`] (postcard for a serde state);
    /// override to use another format or to send only part of it.
    fn encode_state(&self, state: &Self::State) -> Result<Vec<u8>, StateCodecErr> {
        state.encode()
    }

    /// Decodes a transferred state. An error aborts the takeover; the old
    /// holder keeps the name and its state. The default is the state's
    /// [`StateCodec`]; override it together with [`Self::encode_state`].
    fn decode_state(&self, bytes: &[u8]) -> Result<Self::State, StateCodecErr> {
        Self::State::decode(bytes)
    }

    /// Synchronous standby ([`crate::TakeoverConfig::with_sync_standby`]):
    /// the change made to `state` since the last call of this hook,
    /// encoded, for the standby to apply with [`Self::apply_delta`]
    /// instead of receiving the whole state after each call. It is called
    /// after each handled call and info; record what changed in `state`
    /// (a `#[serde(skip)]` field, say) and take it out here.
    ///
    /// The default, `None`, sends the whole state each time, which is
    /// right for a small state. Opt in for a big one: with a delta of a
    /// few bytes, a call costs one small round trip to the standby
    /// whatever the state's size, and a takeover by a standby in sync
    /// moves nothing. An `Err` (or a delta over `state_part_bytes`) sends
    /// the whole state instead.
    fn take_delta(&self, state: &mut Self::State) -> Option<Result<Vec<u8>, StateCodecErr>> {
        let _ = state;
        None
    }

    /// Applies on a standby a delta made by [`Self::take_delta`] to the
    /// state it stored, in order (the crate checks that the delta follows
    /// the state it holds). An error drops the standby's stored state: the
    /// holder then sends it the whole state.
    fn apply_delta(&self, state: &mut Self::State, delta: &[u8]) -> Result<(), StateCodecErr> {
        let _ = (state, delta);
        Err(StateCodecErr::Decode(
            "this behaviour describes no deltas (TakeoverActor::apply_delta)".into(),
        ))
    }
}
