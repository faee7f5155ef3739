//! Driving an instance from outside: its handle, [`TakeoverRef`], with a
//! manual takeover or failover and a status query.

use std::fmt;
use std::time::Duration;

use ractor::{ActorCell, ActorRef, RpcReplyPort};

use crate::{
    CallErr, GoRequest, HandoverReport, InstanceStatus, NodeName, TakeoverActor, TakeoverErr,
    TakeoverMessage,
};

/// A running instance of a [`crate::TakeoverServer`]: what `spawn` returns
/// and [`crate::TakeoverCtx::myself`] gives, as ractor's `ActorRef` is.
///
/// It derefs to the instance's [`ActorCell`], so it links, monitors, stops
/// and kills like any ractor actor (`get_cell()` for a supervisor). Why not
/// the `ActorRef` itself: the instance's message type carries the handover
/// protocol and the timers it sends itself; outside the crate nobody can
/// name it, so nobody can forge a protocol message or a timer. What a user
/// may send it has a method here, or goes through [`crate::GlobalClient`].
pub struct TakeoverRef<A: TakeoverActor>(ActorRef<TakeoverMessage<A>>);

impl<A: TakeoverActor> TakeoverRef<A> {
    pub(crate) fn new(actor: ActorRef<TakeoverMessage<A>>) -> Self {
        Self(actor)
    }

    /// The instance's cell, to link it to a supervisor or monitor it.
    pub fn get_cell(&self) -> ActorCell {
        self.0.get_cell()
    }

    /// Asks this standby to take the name over from its current holder
    /// (steal, then pull the state), like `application:takeover/2`. Returns
    /// when the instance serves as holder, or with why it does not
    /// ([`TakeoverErr::Timeout`] when it did not answer within `timeout`).
    pub async fn takeover(&self, timeout: Duration) -> Result<HandoverReport, TakeoverErr> {
        self.go(GoRequest::Takeover, timeout).await
    }

    /// Asks this standby to take the name without state because its holder
    /// on node `from` is gone: the manual failover of a server without
    /// [`crate::Placement`] (with one, standbys fail over by themselves).
    /// Refused with [`TakeoverErr::NoQuorum`] in a minority when the
    /// settings ask for a quorum.
    pub async fn failover(
        &self,
        from: impl Into<NodeName>,
        timeout: Duration,
    ) -> Result<HandoverReport, TakeoverErr> {
        let from = from.into();
        self.go(GoRequest::Failover { from }, timeout).await
    }

    /// Sends a `go` request and waits for its outcome.
    async fn go(
        &self,
        request: GoRequest,
        timeout: Duration,
    ) -> Result<HandoverReport, TakeoverErr> {
        let outcome = self
            .0
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

    /// What the instance is doing: [`TakeoverErr::Timeout`] if it did not
    /// answer within `timeout`, [`TakeoverErr::InstanceGone`] if it stopped.
    pub async fn status(&self, timeout: Duration) -> Result<InstanceStatus, TakeoverErr> {
        match self.0.call(TakeoverMessage::Status, Some(timeout)).await {
            Ok(ractor::rpc::CallResult::Success(s)) => Ok(s),
            Ok(ractor::rpc::CallResult::Timeout) => Err(TakeoverErr::Timeout { after: timeout }),
            Ok(ractor::rpc::CallResult::SenderError) | Err(_) => Err(TakeoverErr::InstanceGone),
        }
    }

    /// Puts a request straight into this instance's mailbox, whatever it is
    /// doing (a standby or a retiring instance forwards it to the holder),
    /// and returns at once; the answer goes to `reply`. Calls sent one
    /// after another from one task are queued in that order. Fails with
    /// [`CallErr::InstanceStopped`] when the instance takes no messages.
    /// Most code calls by name with [`crate::GlobalClient`] instead.
    pub fn send_call(
        &self,
        msg: A::Msg,
        reply: RpcReplyPort<Result<A::Reply, CallErr>>,
    ) -> Result<(), CallErr> {
        self.0
            .send_message(TakeoverMessage::Call {
                msg,
                reply: Some(reply.into()),
            })
            .map_err(|e| CallErr::InstanceStopped(e.to_string()))
    }
}

impl<A: TakeoverActor> std::ops::Deref for TakeoverRef<A> {
    type Target = ActorCell;

    fn deref(&self) -> &ActorCell {
        &self.0
    }
}

impl<A: TakeoverActor> Clone for TakeoverRef<A> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<A: TakeoverActor> PartialEq for TakeoverRef<A> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<A: TakeoverActor> Eq for TakeoverRef<A> {}

impl<A: TakeoverActor> fmt::Debug for TakeoverRef<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TakeoverRef")
            .field(&self.0.get_id())
            .finish()
    }
}

impl<A: TakeoverActor> From<TakeoverRef<A>> for ActorCell {
    fn from(instance: TakeoverRef<A>) -> Self {
        instance.0.get_cell()
    }
}
