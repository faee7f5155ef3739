//! The behaviour users implement: [`TakeoverActor`].

use std::future::Future;

use ractor::{ActorProcessingErr, ActorRef};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{
    Epoch, NodeName, Registration, StateCodec, StateCodecErr, TakeoverMessage, TakeoverRef,
};

/// How an instance came to hold the name, as `go` receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StartType {
    /// Nobody held the name; this instance registered it.
    Normal,
    /// The holder on `from` went away; this instance took the name. Without
    /// warm standby (`TakeoverConfig::checkpoint`) the state is this instance's
    /// own, from `init`; with it, the state is the last checkpoint received
    /// from the holder, described in `checkpoint`.
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
    /// The replies to them.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// The state that moves on takeover. A serde state travels with postcard
    /// and needs no codec of its own; any other implements [`StateCodec`]
    /// (see [`crate::codec`]).
    type State: StateCodec + Send + 'static;
    /// What `init` gets.
    type Arguments: Send + 'static;

    /// Builds the instance's initial state. Every instance runs it, holder or
    /// standby; a takeover replaces the state with the old holder's.
    fn init(
        &self,
        ctx: &TakeoverCtx<Self>,
        args: Self::Arguments,
    ) -> impl Future<Output = Result<Self::State, ActorProcessingErr>> + Send;

    /// The start phase, called once the instance holds the name and (on a
    /// takeover) has the old state, before any buffered call is served.
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
}
