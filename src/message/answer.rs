//! Where a call's answer goes.

use std::sync::Arc;

use ractor::RpcReplyPort;
use tokio::time::Instant;

use crate::dedup::CallKey;
use crate::message::wire::decode_answer;
use crate::reply::Slot;
use crate::{CallErr, TakeoverActor};

/// The reply port of a call: the handler's reply, or why there is none.
pub(crate) type ReplyPort<A> = RpcReplyPort<Result<<A as TakeoverActor>::Reply, CallErr>>;

/// Where a call's answer goes: the typed port of a caller on this node, or
/// a byte port: a remote caller's session's, or that of a caller (on any
/// node) whose message carries a [`crate::Reply`]. Why both: answering a
/// remote caller straight in bytes saves a bridging task per call, in each
/// direction.
///
/// The call's key ([`CallKey`], set by a [`crate::GlobalClient`] with
/// retries on) rides with its answer, not in the message: it goes wherever
/// the call is forwarded, and a cast has neither.
pub(crate) struct Answer<A: TakeoverActor> {
    pub(super) to: AnswerTo<A>,
    deadline: Option<Instant>,
    pub(super) key: Option<CallKey>,
    /// The call's re-route budget (see `routing::reroute`), which the call
    /// keeps across the instances that forward it: reset at each forward,
    /// a yielding or retiring instance whose refused forward came back to
    /// it sent it out again, in no time, for good (fault seed 3495692323
    /// with retries ran out of memory).
    pub(super) reroutes_left: u8,
}

impl<A: TakeoverActor> std::fmt::Debug for Answer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let to = match &self.to {
            AnswerTo::Typed(_) => "typed",
            AnswerTo::Bytes(_) => "bytes",
        };
        f.debug_struct("Answer")
            .field("to", &to)
            .field("deadline", &self.deadline)
            .field("key", &self.key)
            .field("reroutes_left", &self.reroutes_left)
            .finish()
    }
}

impl<A: TakeoverActor> Answer<A> {
    /// An answer to `to` by `deadline`, for a call without a key and with
    /// its whole re-route budget.
    fn new(to: AnswerTo<A>, deadline: Option<Instant>) -> Self {
        Self {
            to,
            deadline,
            key: None,
            reroutes_left: super::wire::MAX_REROUTES,
        }
    }

    /// A byte port, shared with the [`crate::Reply`] in the message if it
    /// has one, with its deadline counted from when the port was made.
    pub(crate) fn slot(slot: Arc<Slot>) -> Self {
        let deadline = slot.deadline();
        Self::new(AnswerTo::Bytes(slot), deadline)
    }

    /// This answer, for a call under `key`.
    pub(crate) fn with_key(mut self, key: Option<CallKey>) -> Self {
        self.key = key;
        self
    }

    /// This answer, for a call with `left` re-routes to go.
    pub(crate) fn with_reroutes_left(mut self, left: u8) -> Self {
        self.reroutes_left = left;
        self
    }

    /// The call's key, if its client gave it one.
    pub(crate) fn key(&self) -> Option<&CallKey> {
        self.key.as_ref()
    }

    /// The byte port, if the message carries a [`crate::Reply`] bound to it:
    /// the runtime keeps an eye on it while the handler holds the port.
    pub(crate) fn port_slot(&self) -> Option<&Arc<Slot>> {
        match &self.to {
            AnswerTo::Bytes(slot) if slot.is_bound() => Some(slot),
            _ => None,
        }
    }
}

pub(super) enum AnswerTo<A: TakeoverActor> {
    Typed(ReplyPort<A>),
    Bytes(Arc<Slot>),
}

impl<A: TakeoverActor> Answer<A> {
    /// Sends the answer (encoded for a byte port). A caller that gave up
    /// is not an error. When the message carries a [`crate::Reply`], the
    /// handler's own return value is not sent (the port answers), only
    /// errors are, if the port has not answered yet.
    pub(crate) fn send(self, answer: Result<A::Reply, CallErr>) {
        match self.to {
            AnswerTo::Typed(port) => {
                let _ = port.send(answer);
            }
            AnswerTo::Bytes(slot) => {
                if !(slot.is_bound() && answer.is_ok()) {
                    let _ = slot.answer(&answer);
                }
            }
        }
    }

    /// Sends an answer encoded already (`Ok(reply)` or an error, as a byte
    /// port sends it): a reply the window of answered calls kept, or one
    /// encoded once for the window and the caller both. A typed port gets
    /// it decoded.
    pub(crate) fn send_encoded(self, bytes: Vec<u8>) {
        match self.to {
            AnswerTo::Typed(port) => {
                let _ = port.send(decode_answer(&bytes));
            }
            AnswerTo::Bytes(slot) => {
                let _ = slot.answer_encoded(bytes);
            }
        }
    }

    /// When the caller stops waiting, if it set a timeout: counted from when
    /// the port reached this process (for a caller on this node, when it
    /// sent the call; for a remote one, when its session handed the call
    /// over), so it is never earlier than the caller's own deadline.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

impl<A: TakeoverActor> From<ReplyPort<A>> for Answer<A> {
    fn from(port: ReplyPort<A>) -> Self {
        let deadline = port.get_timeout().map(|t| Instant::now() + t);
        Self::new(AnswerTo::Typed(port), deadline)
    }
}

impl<A: TakeoverActor> From<ractor::concurrency::OneshotSender<Result<A::Reply, CallErr>>>
    for Answer<A>
{
    fn from(tx: ractor::concurrency::OneshotSender<Result<A::Reply, CallErr>>) -> Self {
        Self::new(AnswerTo::Typed(tx.into()), None)
    }
}
