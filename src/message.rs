//! The runtime actor's message type, and how messages cross nodes.
//!
//! - [`TakeoverMessage`] and [`GoRequest`] (here): what a
//!   [`crate::TakeoverServer`] takes;
//! - `answer`: where a call's answer goes ([`Answer`]);
//! - `protocol`: the handover protocol between instances ([`HandoverMsg`]);
//! - `status`: what an instance reports ([`InstanceStatus`], [`Phase`],
//!   [`HandoverReport`]);
//! - `wire`: the wire form, ractor's `SerializedMessage`, that every message
//!   between nodes travels in;
//! - `routing`: how a message reaches an instance, here or on another node,
//!   and where a refused call goes next.

mod answer;
mod info;
mod protocol;
pub(crate) mod routing;
mod status;
pub(crate) mod wire;

#[cfg(all(test, feature = "test-util"))]
mod tests;

pub(crate) use answer::Answer;
pub(crate) use info::OwnInfo;
// Where the server's files have always found it.
pub(crate) use protocol::{HandoverMsg, PartOf, ReplicaBody, ReplicaImage, ReplyErr};
pub(crate) use routing::deliver;
pub use status::{HandoverReport, InstanceStatus, Phase};

use ractor::RpcReplyPort;

use crate::{Epoch, RegistryEvent, TakeoverActor, TakeoverErr};

/// A message of a [`crate::TakeoverServer`].
///
/// Crate-private, and the `Msg` of a crate-private actor (see
/// `server::Runtime`), so no path outside the crate names it: nobody can
/// build a variant (a forged `HandoverDone`, a timer) and send it to an
/// instance they hold. Users send calls through [`crate::GlobalClient`] or
/// [`crate::TakeoverRef::send_call`]. (The wire form is another matter: a
/// peer that passed the cluster's cookie can send any bytes, which the
/// instance decodes strictly, see `wire`; the timers have no wire form.)
#[non_exhaustive]
pub(crate) enum TakeoverMessage<A: TakeoverActor> {
    /// A request; `reply` is `None` for a cast.
    Call {
        /// The request.
        msg: A::Msg,
        /// Where the reply goes (a `ReplyPort` converts into it).
        reply: Option<Answer<A>>,
    },
    /// Start this standby as a holder (manual takeover, or placement).
    Go {
        /// Takeover or failover.
        request: GoRequest,
        /// Answered when the instance runs as holder, or the attempt failed.
        reply: Option<RpcReplyPort<Result<HandoverReport, TakeoverErr>>>,
    },
    /// What this instance is doing.
    Status(RpcReplyPort<InstanceStatus>),
    /// A handover protocol message from another instance.
    Handover(HandoverMsg),
    /// A change in this node's registry view.
    Registry(RegistryEvent),
    /// The pull of the state at this epoch took too long.
    PullTimeout(Epoch),
    /// Time to re-check placement (a failover delay or a retry passed).
    PlacementTick,
    /// The conflict grace for a newer registration of this epoch passed.
    ConflictTick(Epoch),
    /// Time for a periodic checkpoint (holder at this epoch).
    CheckpointTick(Epoch),
    /// Synchronous standby: time to look at the standbys' acknowledgements
    /// (holder at this epoch).
    SyncTick(Epoch),
    /// A split-brain loser at this epoch got no answer to its offer.
    YieldTimeout(Epoch),
    /// A retiring holder has waited a while for `HandoverDone` from its
    /// successor at this epoch.
    RetireTick(Epoch),
    /// Sent by an instance to itself when its handler failed: it comes
    /// after every call queued before the failure, which are answered
    /// meanwhile, and then fails the instance with this reason.
    HandlerFailed(String),
    /// Time to drop states in parts, sent or received, that made no progress
    /// for a `pull_timeout`.
    TransferTick,
    /// A holder without a lease looks again whether it has one.
    LeaseTick,
    /// A standby waiting its turn for a placement takeover got one of the
    /// node's permits ([`crate::TakeoverConfig::move_limit`]); it holds it
    /// while it pulls.
    MovePermit(tokio::sync::OwnedSemaphorePermit),
    /// One of the instance's own messages, for
    /// [`crate::TakeoverActor::handle_info`]. Only
    /// [`crate::TakeoverCtx`] makes one; it has no wire form.
    Info(OwnInfo<A>),
}

impl<A: TakeoverActor> std::fmt::Debug for TakeoverMessage<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The request and its reply port are the user's types, not Debug.
        match self {
            Self::Call { reply, .. } => f
                .debug_struct("Call")
                .field("cast", &reply.is_none())
                .finish_non_exhaustive(),
            Self::Go { request, .. } => f.debug_tuple("Go").field(request).finish(),
            Self::Status(_) => f.write_str("Status"),
            Self::Handover(h) => f.debug_tuple("Handover").field(h).finish(),
            Self::Registry(e) => f.debug_tuple("Registry").field(e).finish(),
            Self::PullTimeout(e) => f.debug_tuple("PullTimeout").field(e).finish(),
            Self::PlacementTick => f.write_str("PlacementTick"),
            Self::ConflictTick(e) => f.debug_tuple("ConflictTick").field(e).finish(),
            Self::CheckpointTick(e) => f.debug_tuple("CheckpointTick").field(e).finish(),
            Self::SyncTick(e) => f.debug_tuple("SyncTick").field(e).finish(),
            Self::YieldTimeout(e) => f.debug_tuple("YieldTimeout").field(e).finish(),
            Self::RetireTick(e) => f.debug_tuple("RetireTick").field(e).finish(),
            Self::HandlerFailed(why) => f.debug_tuple("HandlerFailed").field(why).finish(),
            Self::TransferTick => f.write_str("TransferTick"),
            Self::LeaseTick => f.write_str("LeaseTick"),
            Self::MovePermit(_) => f.write_str("MovePermit"),
            Self::Info(info) => f.debug_tuple("Info").field(info).finish(),
        }
    }
}

/// How a standby should start.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum GoRequest {
    /// Steal the name from the current holder, then pull its state.
    Takeover,
    /// Take the name without state: the holder on `from` is gone.
    Failover {
        /// The node of the previous holder.
        from: crate::NodeName,
    },
}
