//! The runtime actor's message type and how messages cross nodes.

use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::oneshot;
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

use crate::{
    CallErr, Epoch, Registration, RegistrationInfo, Registry, RegistryEvent, StartType,
    StateCodecErr, TakeoverActor, TakeoverErr,
};

/// The reply port of a call: the handler's reply, or why there is none.
pub type ReplyPort<A> = RpcReplyPort<Result<<A as TakeoverActor>::Reply, CallErr>>;

/// Where a call's answer goes: the typed port of a caller on this node, or
/// the byte port of a remote caller's session. Why both: answering a remote
/// caller straight in bytes saves a bridging task per call, in each
/// direction.
pub struct Answer<A: TakeoverActor>(AnswerTo<A>);

enum AnswerTo<A: TakeoverActor> {
    Typed(ReplyPort<A>),
    Bytes(RpcReplyPort<Vec<u8>>),
}

impl<A: TakeoverActor> Answer<A> {
    /// Sends the answer (encoded for a remote caller). A caller that gave up
    /// is not an error.
    pub fn send(self, answer: Result<A::Reply, CallErr>) {
        match self.0 {
            AnswerTo::Typed(port) => {
                let _ = port.send(answer);
            }
            AnswerTo::Bytes(port) => {
                if let Ok(bytes) = encode_answer::<A>(&answer) {
                    let _ = port.send(bytes);
                }
            }
        }
    }

    /// The caller's deadline, if it sent one.
    pub fn timeout(&self) -> Option<std::time::Duration> {
        match &self.0 {
            AnswerTo::Typed(port) => port.get_timeout(),
            AnswerTo::Bytes(port) => port.get_timeout(),
        }
    }
}

impl<A: TakeoverActor> From<ReplyPort<A>> for Answer<A> {
    fn from(port: ReplyPort<A>) -> Self {
        Self(AnswerTo::Typed(port))
    }
}

impl<A: TakeoverActor> From<ractor::concurrency::OneshotSender<Result<A::Reply, CallErr>>>
    for Answer<A>
{
    fn from(tx: ractor::concurrency::OneshotSender<Result<A::Reply, CallErr>>) -> Self {
        Self(AnswerTo::Typed(tx.into()))
    }
}

fn encode_answer<A: TakeoverActor>(answer: &Result<A::Reply, CallErr>) -> Result<Vec<u8>, ()> {
    postcard::to_allocvec(answer)
        .or_else(|e| {
            postcard::to_allocvec(&Err::<A::Reply, CallErr>(CallErr::Codec(e.to_string())))
        })
        .map_err(|_| ())
}

/// Decodes a remote call's answer.
pub(crate) fn decode_answer<A: TakeoverActor>(bytes: &[u8]) -> Result<A::Reply, CallErr> {
    postcard::from_bytes::<Result<A::Reply, CallErr>>(bytes)
        .unwrap_or_else(|e| Err(CallErr::Codec(e.to_string())))
}

/// A call in its wire form, answered through `reply` in bytes.
pub(crate) fn wire_call<A: TakeoverActor>(
    msg: &A::Msg,
    reply: RpcReplyPort<Vec<u8>>,
) -> Result<SerializedMessage, CallErr> {
    Ok(SerializedMessage::Call {
        variant: VARIANT_CALL.into(),
        args: postcard::to_allocvec(msg).map_err(|e| CallErr::Codec(e.to_string()))?,
        reply,
        metadata: None,
    })
}

/// A message of a [`crate::TakeoverServer`].
///
/// Users send `Call`s (through [`crate::GlobalClient`] or directly);
/// the other variants are the handover protocol and the runtime's own.
#[non_exhaustive]
pub enum TakeoverMessage<A: TakeoverActor> {
    /// A request; `reply` is `None` for a cast.
    Call {
        /// The request.
        msg: A::Msg,
        /// Where the reply goes (a [`ReplyPort`] converts into it).
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
    /// A split-brain loser at this epoch got no answer to its offer.
    YieldTimeout(Epoch),
    /// A retiring holder has waited a while for `HandoverDone` from its
    /// successor at this epoch.
    RetireTick(Epoch),
}

/// Remote form: calls and handover messages travel as postcard bytes in
/// ractor's `SerializedMessage`; the rest (`Go`, `Status`, registry events,
/// timers) is local to a node and refuses to serialize.
impl<A: TakeoverActor> ractor::Message for TakeoverMessage<A> {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        match self {
            TakeoverMessage::Call { msg, reply } => {
                let args = postcard::to_allocvec(&msg).map_err(|e| {
                    tracing::warn!(error = %e, "call does not encode; not sent");
                    BoxedDowncastErr
                })?;
                match reply {
                    None => Ok(SerializedMessage::Cast {
                        variant: VARIANT_CALL.into(),
                        args,
                        metadata: None,
                    }),
                    Some(answer) => Ok(SerializedMessage::Call {
                        variant: VARIANT_CALL.into(),
                        args,
                        reply: match answer.0 {
                            AnswerTo::Typed(port) => bytes_port::<A>(port),
                            // Forwarded from a remote caller: its byte port
                            // goes on as it is, no bridge.
                            AnswerTo::Bytes(port) => port,
                        },
                        metadata: None,
                    }),
                }
            }
            // The state itself travels as the message's payload, moved, not
            // copied into a postcard envelope; the epoch rides in the metadata.
            TakeoverMessage::Handover(HandoverMsg::StateReply {
                requester_epoch,
                result: Ok(state),
            }) => Ok(SerializedMessage::Cast {
                variant: VARIANT_STATE.into(),
                args: state,
                metadata: Some(requester_epoch.to_le_bytes().to_vec()),
            }),
            // A part of a big state likewise: its bytes are the payload, the
            // epoch, offset and total length the metadata.
            TakeoverMessage::Handover(HandoverMsg::StatePart {
                requester_epoch,
                offset,
                total,
                bytes,
            }) => {
                let mut meta = Vec::with_capacity(24);
                for v in [requester_epoch, offset, total] {
                    meta.extend_from_slice(&v.to_le_bytes());
                }
                Ok(SerializedMessage::Cast {
                    variant: VARIANT_STATE_PART.into(),
                    args: bytes,
                    metadata: Some(meta),
                })
            }
            TakeoverMessage::Handover(h) => Ok(SerializedMessage::Cast {
                variant: VARIANT_HANDOVER.into(),
                args: postcard::to_allocvec(&h).map_err(|_| BoxedDowncastErr)?,
                metadata: None,
            }),
            _ => Err(BoxedDowncastErr),
        }
    }

    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match bytes {
            SerializedMessage::Cast { variant, args, .. } if variant == VARIANT_CALL => {
                let msg = postcard::from_bytes(&args).map_err(|e| {
                    tracing::warn!(error = %e, "a cast to this server does not decode; dropped");
                    BoxedDowncastErr
                })?;
                Ok(TakeoverMessage::Call { msg, reply: None })
            }
            SerializedMessage::Call {
                variant,
                args,
                reply,
                ..
            } if variant == VARIANT_CALL => match postcard::from_bytes(&args) {
                Ok(msg) => Ok(TakeoverMessage::Call {
                    msg,
                    reply: Some(Answer(AnswerTo::Bytes(reply))),
                }),
                Err(e) => {
                    // Tell the caller instead of letting ractor drop it silently.
                    let answer: Result<A::Reply, CallErr> = Err(CallErr::Codec(e.to_string()));
                    if let Ok(bytes) = postcard::to_allocvec(&answer) {
                        let _ = reply.send(bytes);
                    }
                    Err(BoxedDowncastErr)
                }
            },
            SerializedMessage::Cast {
                variant,
                args,
                metadata,
            } if variant == VARIANT_STATE => {
                let epoch: [u8; 8] = metadata
                    .as_deref()
                    .and_then(|m| m.try_into().ok())
                    .ok_or_else(|| {
                        tracing::warn!("state reply without a valid epoch; dropped");
                        BoxedDowncastErr
                    })?;
                Ok(TakeoverMessage::Handover(HandoverMsg::StateReply {
                    requester_epoch: u64::from_le_bytes(epoch),
                    result: Ok(args),
                }))
            }
            SerializedMessage::Cast {
                variant,
                args,
                metadata,
            } if variant == VARIANT_STATE_PART => {
                let meta: [u8; 24] = metadata
                    .as_deref()
                    .and_then(|m| m.try_into().ok())
                    .ok_or_else(|| {
                        tracing::warn!("state part without valid metadata; dropped");
                        BoxedDowncastErr
                    })?;
                let field = |i: usize| {
                    let mut v = [0u8; 8];
                    v.copy_from_slice(&meta[i * 8..i * 8 + 8]);
                    u64::from_le_bytes(v)
                };
                Ok(TakeoverMessage::Handover(HandoverMsg::StatePart {
                    requester_epoch: field(0),
                    offset: field(1),
                    total: field(2),
                    bytes: args,
                }))
            }
            SerializedMessage::Cast { variant, args, .. } if variant == VARIANT_HANDOVER => {
                postcard::from_bytes(&args)
                    .map(TakeoverMessage::Handover)
                    .map_err(|e| {
                        tracing::warn!(error = %e, "handover message does not decode; dropped");
                        BoxedDowncastErr
                    })
            }
            other => {
                tracing::warn!(?other, "unknown message for a takeover server; dropped");
                Err(BoxedDowncastErr)
            }
        }
    }
}

const VARIANT_CALL: &str = "ractor_takeover.call";
const VARIANT_HANDOVER: &str = "ractor_takeover.handover";
const VARIANT_STATE: &str = "ractor_takeover.state";
const VARIANT_STATE_PART: &str = "ractor_takeover.state_part";

/// The byte port a remote call travels with: its answer is decoded and passed
/// to the caller's typed port.
fn bytes_port<A: TakeoverActor>(port: ReplyPort<A>) -> RpcReplyPort<Vec<u8>> {
    let (tx, rx) = oneshot::<Vec<u8>>();
    let timeout = port.get_timeout();
    tokio::spawn(async move {
        if let Ok(bytes) = rx.await {
            let _ = port.send(decode_answer::<A>(&bytes));
        }
    });
    match timeout {
        Some(t) => (tx, t).into(),
        None => tx.into(),
    }
}

/// How a standby should start.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GoRequest {
    /// Steal the name from the current holder, then pull its state.
    Takeover,
    /// Take the name without state: the holder on `from` is gone.
    Failover {
        /// The node of the previous holder.
        from: crate::NodeId,
    },
}

/// The handover protocol, between two instances of one name.
///
/// ```text
///   new (standby)                 registry                 old (holder, epoch e)
///       | go(Takeover)               |                            |
///       |-- steal: epoch e' > e ---->|-- lookups resolve to new   |
///       |-- StateRequest{e, new} ------------------------------->| answers what came before,
///       |   buffers calls            |                            | encodes its state
///       |<------------------------------- StateReply{bytes} -----| then forwards every call
///       | decode, install, go(Takeover{from}),                    | that still reaches it
///       | serve buffered calls in order                           |
///       |-- HandoverDone ---------------------------------------->| unregisters, drains, stops
///       |                                                         |
///   on decode error / timeout while old is alive:                 |
///       |-- HandoverAborted ------------------------------------->| serves again, with its state
///       |-- unregister e', forward buffered calls to old          |
///   on old gone (node down, died) before the state: run as Failover, report StateLost
///
///   no HandoverDone after pull_timeout (lost on the way?):         |
///       |<------------------------------- HandoverQuery ---------| asks again, every pull_timeout
///       |-- HandoverDone (if it installed that state) ----------->|
///   successor gone with no HandoverDone: with no newer holder, or once a
///   newer holder answers HandoverUnknown (only the successor can confirm),
///   the old holder takes a new epoch and runs go(Failover{from:
///   successor's node}) from the state it sent (what the successor served
///   since then may be lost; a newer holder meets it as a split brain)
/// ```
///
/// A state larger than `TakeoverConfig::state_part_bytes` travels as
/// `StatePart`s instead of one `StateReply`, each acknowledged by a
/// `StatePartAck`, at most two unacknowledged; a part that does not continue
/// the ones received aborts the takeover as a state that does not decode does.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum HandoverMsg {
    /// New to old: send me your state (you hold at `holder_epoch`).
    StateRequest {
        /// The epoch the requester saw the old holder at.
        holder_epoch: Epoch,
        /// The requester's own (stolen) registration.
        requester: RegistrationInfo,
    },
    /// Old to new: the state, or why not.
    StateReply {
        /// The requester's epoch, to match the reply with its pull.
        requester_epoch: Epoch,
        /// The encoded state, or why there is none.
        #[serde(with = "raw_bytes_result")]
        result: Result<Vec<u8>, ReplyErr>,
    },
    /// Old to new: one part of a state larger than
    /// [`crate::TakeoverConfig::state_part_bytes`], in order. Why parts: a
    /// state sent whole sits in memory once more in each hop's buffer; in
    /// parts, the old holder frees its encoded copy as it goes and each side
    /// holds only a few parts in flight. The new instance acknowledges each
    /// part with `StatePartAck`; the old one keeps at most two parts ahead.
    StatePart {
        /// The requester's epoch, to match the part with its pull.
        requester_epoch: Epoch,
        /// Where the part starts in the encoded state.
        offset: u64,
        /// The encoded state's whole length.
        total: u64,
        /// The part's bytes.
        #[serde(with = "crate::bytes")]
        bytes: Vec<u8>,
    },
    /// New to old: the first `received` bytes of the state are in.
    StatePartAck {
        /// The requester (the new instance).
        requester: RegistrationInfo,
        /// How many bytes of the state it has.
        received: u64,
    },
    /// New to old: the state is in, retire.
    HandoverDone {
        /// The new holder.
        successor: RegistrationInfo,
    },
    /// New to old: the takeover failed, serve again.
    HandoverAborted {
        /// The instance whose takeover failed.
        successor: RegistrationInfo,
    },
    /// Split-brain loser to winner: my state (or why none); I forward to you
    /// from now on.
    MergeOffer {
        /// The loser.
        loser: RegistrationInfo,
        /// The winner's epoch as the loser saw it.
        winner_epoch: Epoch,
        /// The loser's encoded state.
        #[serde(with = "raw_bytes_result")]
        result: Result<Vec<u8>, ReplyErr>,
    },
    /// Winner to loser: your state is in (or reported); retire.
    MergeDone {
        /// The loser.
        loser: RegistrationInfo,
    },
    /// Holder to standby: a checkpoint of the state (warm standby).
    Checkpoint {
        /// The holder.
        holder: RegistrationInfo,
        /// Its number within the holder's epoch.
        seq: u64,
        /// Calls the holder had handled when it took it.
        handled: u64,
        /// The encoded state.
        #[serde(with = "crate::bytes")]
        bytes: Vec<u8>,
    },
    /// Old to new, when no `HandoverDone` came for a while (it may have been
    /// lost): did my state reach you? A successor that installed it answers
    /// `HandoverDone` again; one still pulling says nothing (its pull ends by
    /// itself, either way).
    HandoverQuery {
        /// The retiring holder that sent the state.
        old: RegistrationInfo,
        /// The registration the state was sent to.
        successor: RegistrationInfo,
    },
    /// Answer to a `HandoverQuery` from an instance that holds no state that
    /// came through `successor` (neither installed from the old holder nor
    /// taken over from `successor`).
    HandoverUnknown {
        /// The registration the query named.
        successor: RegistrationInfo,
    },
}

/// `Result<Vec<u8>, ReplyErr>` with the bytes as one serde `bytes` value
/// (same variant order as `Result`).
mod raw_bytes_result {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ReplyErr;

    #[derive(Serialize)]
    enum Out<'a> {
        Ok(#[serde(serialize_with = "crate::bytes::serialize")] &'a [u8]),
        Err(&'a ReplyErr),
    }

    #[derive(Deserialize)]
    enum In {
        Ok(#[serde(deserialize_with = "crate::bytes::deserialize")] Vec<u8>),
        Err(ReplyErr),
    }

    pub(super) fn serialize<S: Serializer>(
        v: &Result<Vec<u8>, ReplyErr>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match v {
            Ok(b) => Out::Ok(b),
            Err(e) => Out::Err(e),
        }
        .serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Result<Vec<u8>, ReplyErr>, D::Error> {
        Ok(match In::deserialize(d)? {
            In::Ok(b) => Ok(b),
            In::Err(e) => Err(e),
        })
    }
}

/// Why an old holder sent no state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ReplyErr {
    /// Its state could not be encoded or was too large.
    State(StateCodecErr),
    /// It does not hold the name at the epoch the request named.
    Refused(String),
}

/// What a finished takeover did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandoverReport {
    /// The new holder's registration.
    pub holder: RegistrationInfo,
    /// How it started (a takeover whose old holder vanished ends as a failover).
    pub start: StartType,
    /// Size of the transferred state (0 on a failover).
    pub state_bytes: usize,
    /// From the steal until the buffered calls were served.
    pub pause: Duration,
    /// Calls that waited in the buffer.
    pub buffered: usize,
}

/// The phase of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Phase {
    /// Waiting for a `go`.
    Standby,
    /// Stole the name, waiting for the old state.
    Pulling,
    /// Holds the name and serves.
    Holder,
    /// Handed its state over; forwards what reaches it.
    Retiring,
    /// Lost a split-brain conflict; offered its state to the winner and
    /// forwards what reaches it.
    Yielding,
}

/// What an instance is doing, from [`TakeoverMessage::Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Its phase.
    pub phase: Phase,
    /// Its epoch, while it has a registration.
    pub epoch: Option<Epoch>,
    /// Its node.
    pub node: crate::NodeId,
}

/// How many nodes a message may be re-routed through when its instance turned
/// out to be gone on arrival (retired between lookup and delivery).
const MAX_REROUTES: u8 = 2;

/// Sends `msg` to the instance `to`, through the link from this node.
///
/// A call whose instance refuses it on arrival (it retired and drains, or
/// died) was not handled, so the destination node re-routes it to the holder
/// in its own view. Other messages are dropped then; their senders time out.
pub(crate) fn deliver<A: TakeoverActor>(
    registry: &Arc<dyn Registry>,
    to: &Registration,
    msg: TakeoverMessage<A>,
) {
    deliver_hops(registry, to, msg, MAX_REROUTES)
}

fn deliver_hops<A: TakeoverActor>(
    registry: &Arc<dyn Registry>,
    to: &Registration,
    msg: TakeoverMessage<A>,
    hops: u8,
) {
    let from = registry.node().clone();
    if to.node() == &from {
        send_here(registry, to, msg, hops);
        return;
    }
    let serialize = registry.serialize_messages();
    let to = to.clone();
    registry.send_to(
        &to.node().clone(),
        Box::new(move |dest: Arc<dyn Registry>| {
            let msg = if serialize {
                match roundtrip(msg) {
                    Some(m) => m,
                    None => return,
                }
            } else {
                msg
            };
            let msg = relay_reply(msg, &dest, &from);
            send_here(&dest, &to, msg, hops);
        }),
    );
}

/// Sends on this node; a refused call is re-routed to this view's holder.
fn send_here<A: TakeoverActor>(
    registry: &Arc<dyn Registry>,
    to: &Registration,
    msg: TakeoverMessage<A>,
    hops: u8,
) {
    let Err(ractor::MessagingErr::SendErr(msg)) = to.cell().send_message(msg) else {
        return;
    };
    let TakeoverMessage::Call { msg, reply } = msg else {
        tracing::debug!(name = to.name(), "instance gone; protocol message dropped");
        return;
    };
    match registry.lookup(to.name()) {
        Some(next) if hops > 0 && next.cell().get_id() != to.cell().get_id() => deliver_hops::<A>(
            registry,
            &next,
            TakeoverMessage::Call { msg, reply },
            hops - 1,
        ),
        _ => {
            if let Some(reply) = reply {
                reply.send(Err(CallErr::NotRegistered(to.name().to_string())));
            }
        }
    }
}

/// Makes a call's reply travel back over the reverse link, as it would over a
/// network, instead of straight through the in-process port.
fn relay_reply<A: TakeoverActor>(
    msg: TakeoverMessage<A>,
    dest: &Arc<dyn Registry>,
    origin: &crate::NodeId,
) -> TakeoverMessage<A> {
    match msg {
        TakeoverMessage::Call {
            msg,
            reply: Some(port),
        } if dest.node() != origin => {
            let (tx, rx) = oneshot::<Result<A::Reply, CallErr>>();
            let dest = dest.clone();
            let origin = origin.clone();
            tokio::spawn(async move {
                if let Ok(answer) = rx.await {
                    dest.send_to(
                        &origin,
                        Box::new(move |_| {
                            port.send(answer);
                        }),
                    );
                }
            });
            TakeoverMessage::Call {
                msg,
                reply: Some(tx.into()),
            }
        }
        other => other,
    }
}

/// Passes a message through the serialized form it has on a real link
/// (`ractor::Message::serialize`, then `deserialize`; a call's reply comes
/// back through the same byte ports). A message that fails is dropped, logged.
fn roundtrip<A: TakeoverActor>(msg: TakeoverMessage<A>) -> Option<TakeoverMessage<A>> {
    use ractor::Message;
    if !matches!(
        msg,
        TakeoverMessage::Call { .. } | TakeoverMessage::Handover(_)
    ) {
        return Some(msg);
    }
    msg.serialize()
        .and_then(TakeoverMessage::deserialize)
        .map_err(|_| tracing::warn!("message failed to round-trip through its wire form; dropped"))
        .ok()
}
