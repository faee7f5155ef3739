//! Where a call's answer goes.

use ractor::RpcReplyPort;
use tokio::time::Instant;

use super::wire::encode_answer;
use crate::{CallErr, TakeoverActor};

/// The reply port of a call: the handler's reply, or why there is none.
pub(crate) type ReplyPort<A> = RpcReplyPort<Result<<A as TakeoverActor>::Reply, CallErr>>;

/// Where a call's answer goes: the typed port of a caller on this node, or
/// the byte port of a remote caller's session. Why both: answering a remote
/// caller straight in bytes saves a bridging task per call, in each
/// direction.
pub(crate) struct Answer<A: TakeoverActor>(pub(super) AnswerTo<A>, Option<Instant>);

impl<A: TakeoverActor> std::fmt::Debug for Answer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let to = match &self.0 {
            AnswerTo::Typed(_) => "typed",
            AnswerTo::Bytes(_) => "bytes",
        };
        f.debug_struct("Answer")
            .field("to", &to)
            .field("deadline", &self.1)
            .finish()
    }
}

impl<A: TakeoverActor> Answer<A> {
    /// A remote caller's byte port, with its deadline counted from now.
    pub(super) fn bytes(port: RpcReplyPort<Vec<u8>>) -> Self {
        let deadline = port.get_timeout().map(|t| Instant::now() + t);
        Self(AnswerTo::Bytes(port), deadline)
    }
}

pub(super) enum AnswerTo<A: TakeoverActor> {
    Typed(ReplyPort<A>),
    Bytes(RpcReplyPort<Vec<u8>>),
}

impl<A: TakeoverActor> Answer<A> {
    /// Sends the answer (encoded for a remote caller). A caller that gave up
    /// is not an error.
    pub(crate) fn send(self, answer: Result<A::Reply, CallErr>) {
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

    /// When the caller stops waiting, if it set a timeout: counted from when
    /// the port reached this process (for a caller on this node, when it
    /// sent the call; for a remote one, when its session handed the call
    /// over), so it is never earlier than the caller's own deadline.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.1
    }
}

impl<A: TakeoverActor> From<ReplyPort<A>> for Answer<A> {
    fn from(port: ReplyPort<A>) -> Self {
        let deadline = port.get_timeout().map(|t| Instant::now() + t);
        Self(AnswerTo::Typed(port), deadline)
    }
}

impl<A: TakeoverActor> From<ractor::concurrency::OneshotSender<Result<A::Reply, CallErr>>>
    for Answer<A>
{
    fn from(tx: ractor::concurrency::OneshotSender<Result<A::Reply, CallErr>>) -> Self {
        Self(AnswerTo::Typed(tx.into()), None)
    }
}
