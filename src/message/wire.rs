//! The wire form: ractor's `SerializedMessage`, which every message between
//! nodes travels in, on a real cluster (ractor_cluster carries it) and on
//! the fake one alike.
//!
//! Calls and handover messages are postcard bytes in `args`. A state (whole
//! or a part of it) is the payload itself, moved, not copied into a postcard
//! envelope; what goes with it rides in the metadata, a small serde struct
//! per variant. A call's metadata counts how often it may still be re-routed
//! (see `routing`).

use ractor::concurrency::oneshot;
use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::RpcReplyPort;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::answer::AnswerTo;
use super::{Answer, HandoverMsg, PartOf, TakeoverMessage};
use crate::dedup::CallKey;
use crate::reply::{decode_bound, Slot};
use crate::{CallErr, Epoch, TakeoverActor};

pub(crate) const VARIANT_CALL: &str = "ractor_takeover.call";
const VARIANT_HANDOVER: &str = "ractor_takeover.handover";
const VARIANT_STATE: &str = "ractor_takeover.state";
const VARIANT_STATE_PART: &str = "ractor_takeover.state_part";

/// How many nodes a call may be re-routed through when its instance turned
/// out to be gone on arrival (retired between lookup and delivery).
pub(crate) const MAX_REROUTES: u8 = 2;

/// A call's metadata. Absent, the call has its whole re-route budget and
/// no key.
#[derive(Serialize, Deserialize)]
struct CallMeta {
    reroutes_left: u8,
    /// Set by a [`crate::GlobalClient`] with retries on: what identifies
    /// the call across its tries (see `crate::dedup`).
    key: Option<CallKey>,
}

/// The metadata of a call under `key` with `left` re-routes to go; none
/// for a call with neither, as before keys.
fn call_meta(left: u8, key: Option<CallKey>) -> Option<Vec<u8>> {
    if left == MAX_REROUTES && key.is_none() {
        return None;
    }
    encode_meta(&CallMeta {
        reroutes_left: left,
        key,
    })
}

/// The metadata of the call `wire`, decoded (see [`call_meta_of`]).
fn read_call_meta(wire: &SerializedMessage) -> CallMeta {
    let meta = match wire {
        SerializedMessage::Call { metadata, .. } | SerializedMessage::Cast { metadata, .. } => {
            metadata.as_deref()
        }
        _ => None,
    };
    call_meta_of(meta)
}

/// A call's metadata bytes, decoded: none is the whole re-route budget and
/// no key; a damaged one has no re-routes left and no key.
fn call_meta_of(meta: Option<&[u8]>) -> CallMeta {
    match meta {
        None => CallMeta {
            reroutes_left: MAX_REROUTES,
            key: None,
        },
        Some(m) => decode_meta::<CallMeta>(Some(m)).unwrap_or(CallMeta {
            reroutes_left: 0,
            key: None,
        }),
    }
}

/// A whole state's metadata.
#[derive(Serialize, Deserialize)]
struct StateMeta {
    requester_epoch: Epoch,
}

/// A state part's metadata.
#[derive(Serialize, Deserialize)]
struct PartMeta {
    of: PartOf,
    offset: u64,
    total: u64,
}

fn encode_meta<T: Serialize>(meta: &T) -> Option<Vec<u8>> {
    // Integers and registration names always encode.
    postcard::to_allocvec(meta).ok()
}

/// Decodes metadata strictly: trailing bytes are an error, as a damaged
/// frame should be.
fn decode_meta<T: DeserializeOwned>(meta: Option<&[u8]>) -> Option<T> {
    match postcard::take_from_bytes::<T>(meta?) {
        Ok((v, [])) => Some(v),
        _ => None,
    }
}

/// Whether `wire` is a call (or cast) to a takeover server: a message that
/// was not handled when its instance refused it, so it may go on to the
/// holder. Protocol messages name the registration they are for, and are
/// never re-routed.
pub(crate) fn is_call(wire: &SerializedMessage) -> bool {
    match wire {
        SerializedMessage::Call { variant, .. } | SerializedMessage::Cast { variant, .. } => {
            variant == VARIANT_CALL
        }
        _ => false,
    }
}

/// How often the call `wire` may still be re-routed.
pub(crate) fn reroutes_left(wire: &SerializedMessage) -> u8 {
    read_call_meta(wire).reroutes_left
}

/// The call `wire` with `left` re-routes to go (its key kept).
pub(crate) fn with_reroutes_left(wire: SerializedMessage, left: u8) -> SerializedMessage {
    let meta = call_meta(left, read_call_meta(&wire).key);
    match wire {
        SerializedMessage::Call {
            variant,
            args,
            reply,
            ..
        } => SerializedMessage::Call {
            variant,
            args,
            reply,
            metadata: meta,
        },
        SerializedMessage::Cast { variant, args, .. } => SerializedMessage::Cast {
            variant,
            args,
            metadata: meta,
        },
        other => other,
    }
}

/// Answers the call `wire` with `err`, without knowing the server's reply
/// type: postcard encodes `Err(e)` of every `Result<_, CallErr>` the same.
pub(crate) fn answer_err(wire: SerializedMessage, err: CallErr) {
    if let SerializedMessage::Call { reply, .. } = wire {
        if let Ok(bytes) = postcard::to_allocvec(&Err::<(), CallErr>(err)) {
            let _ = reply.send(bytes);
        }
    }
}

/// Decodes a call's answer, sent in bytes (by a remote holder, or through a
/// [`crate::Reply`]).
pub(crate) fn decode_answer<R: DeserializeOwned>(bytes: &[u8]) -> Result<R, CallErr> {
    postcard::from_bytes::<Result<R, CallErr>>(bytes)
        .unwrap_or_else(|e| Err(CallErr::Codec(e.to_string())))
}

/// The error an answer in bytes carries, if it is one, without knowing the
/// answer's type: postcard encodes `Err(e)` of every `Result<_, CallErr>`
/// the same (see [`answer_err`]).
pub(crate) fn answer_error(bytes: &[u8]) -> Option<CallErr> {
    postcard::from_bytes::<Result<(), CallErr>>(bytes)
        .ok()
        .and_then(Result::err)
}

/// Encodes a call's arguments.
pub(crate) fn encode_args<M: Serialize>(msg: &M) -> Result<Vec<u8>, CallErr> {
    postcard::to_allocvec(msg).map_err(|e| CallErr::Codec(e.to_string()))
}

/// A call in its wire form, its arguments encoded already, answered
/// through `reply` in bytes, under `key` if its client gave it one.
pub(crate) fn wire_call(
    args: Vec<u8>,
    reply: RpcReplyPort<Vec<u8>>,
    key: Option<CallKey>,
) -> SerializedMessage {
    SerializedMessage::Call {
        variant: VARIANT_CALL.into(),
        args,
        reply,
        metadata: call_meta(MAX_REROUTES, key),
    }
}

/// A cast in its wire form, its arguments encoded already.
pub(crate) fn wire_cast(args: Vec<u8>) -> SerializedMessage {
    SerializedMessage::Cast {
        variant: VARIANT_CALL.into(),
        args,
        metadata: None,
    }
}

/// Calls and handover messages serialize; the rest (`Go`, `Status`,
/// registry events, timers) is local to a node and refuses to.
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
                        metadata: call_meta(answer.reroutes_left, answer.key),
                        reply: match answer.to {
                            AnswerTo::Typed(port) => bridge(port),
                            // Forwarded from a remote caller (or one whose
                            // message carries a `Reply`): its byte port goes
                            // on as it is, no bridge, and the answer comes
                            // from where the call goes.
                            AnswerTo::Bytes(slot) => match slot.take_port() {
                                // Relayed and counted: the answer comes back
                                // through this process, which a drain must
                                // keep up until it has (see `crate::drain`).
                                Some(port) => crate::drain::relay::port(port),
                                None => {
                                    tracing::debug!("call answered already; not forwarded");
                                    return Err(BoxedDowncastErr);
                                }
                            },
                        },
                    }),
                }
            }
            TakeoverMessage::Handover(HandoverMsg::StateReply {
                requester_epoch,
                result: Ok(state),
            }) => Ok(SerializedMessage::Cast {
                variant: VARIANT_STATE.into(),
                args: state,
                metadata: encode_meta(&StateMeta { requester_epoch }),
            }),
            TakeoverMessage::Handover(HandoverMsg::StatePart {
                of,
                offset,
                total,
                bytes,
            }) => Ok(SerializedMessage::Cast {
                variant: VARIANT_STATE_PART.into(),
                args: bytes,
                metadata: encode_meta(&PartMeta { of, offset, total }),
            }),
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
                metadata,
            } if variant == VARIANT_CALL => {
                let meta = call_meta_of(metadata.as_deref());
                // A `Reply` among the arguments binds to the call's port.
                let slot = Slot::new(reply);
                match decode_bound(&slot, &args) {
                    Ok(msg) => Ok(TakeoverMessage::Call {
                        msg,
                        reply: Some(
                            Answer::slot(slot)
                                .with_key(meta.key)
                                .with_reroutes_left(meta.reroutes_left),
                        ),
                    }),
                    Err(e) => {
                        // Tell the caller instead of letting ractor drop it silently.
                        let _ = slot.answer(&Err::<(), CallErr>(CallErr::Codec(e.to_string())));
                        Err(BoxedDowncastErr)
                    }
                }
            }
            SerializedMessage::Cast {
                variant,
                args,
                metadata,
            } if variant == VARIANT_STATE => {
                let meta: StateMeta = decode_meta(metadata.as_deref()).ok_or_else(|| {
                    tracing::warn!("state reply without a valid epoch; dropped");
                    BoxedDowncastErr
                })?;
                Ok(TakeoverMessage::Handover(HandoverMsg::StateReply {
                    requester_epoch: meta.requester_epoch,
                    result: Ok(args),
                }))
            }
            SerializedMessage::Cast {
                variant,
                args,
                metadata,
            } if variant == VARIANT_STATE_PART => {
                let meta: PartMeta = decode_meta(metadata.as_deref()).ok_or_else(|| {
                    tracing::warn!("state part without valid metadata; dropped");
                    BoxedDowncastErr
                })?;
                Ok(TakeoverMessage::Handover(HandoverMsg::StatePart {
                    of: meta.of,
                    offset: meta.offset,
                    total: meta.total,
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

/// The byte port a call from a typed caller on this node travels with when
/// it goes to another node: its answer is decoded and passed to the typed
/// port. Why a task: ractor's reply port has no map. Only calls forwarded or
/// re-routed from a local caller need it (and those of a client typed by a
/// protocol, see `crate::protocol`); a [`crate::GlobalClient`] sends remote
/// calls in bytes from the start.
pub(crate) fn bridge<R: DeserializeOwned + Send + 'static>(
    port: RpcReplyPort<Result<R, CallErr>>,
) -> RpcReplyPort<Vec<u8>> {
    let (tx, rx) = oneshot::<Vec<u8>>();
    let timeout = port.get_timeout();
    tokio::spawn(async move {
        if let Ok(bytes) = rx.await {
            let _ = port.send(decode_answer::<R>(&bytes));
        }
    });
    match timeout {
        Some(t) => (tx, t).into(),
        None => tx.into(),
    }
}
