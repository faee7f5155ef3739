//! Calling the server by its global name.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::oneshot;
use tokio::time::Instant;

use crate::message::deliver;
use crate::{CallErr, Registration, RegistrationInfo, Registry, TakeoverActor, TakeoverMessage};

/// A handle to call a global server by name from one node, like ractor's
/// `cast!` and `call_t!` on an `ActorRef`.
///
/// Each call resolves the holder in this node's view, so it follows takeovers
/// by itself; a call that reaches a retiring instance is forwarded by it.
pub struct GlobalClient<A: TakeoverActor> {
    name: String,
    registry: Arc<dyn Registry>,
    _behaviour: PhantomData<fn() -> A>,
}

impl<A: TakeoverActor> Clone for GlobalClient<A> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            registry: self.registry.clone(),
            _behaviour: PhantomData,
        }
    }
}

impl<A: TakeoverActor> GlobalClient<A> {
    /// A handle for `name`, calling from the node whose view `registry` is.
    pub fn new(name: impl Into<String>, registry: Arc<dyn Registry>) -> Self {
        Self {
            name: name.into(),
            registry,
            _behaviour: PhantomData,
        }
    }

    /// The global name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The holder in this node's view, if any (possibly stale).
    pub fn whereis(&self) -> Option<RegistrationInfo> {
        self.registry.lookup(&self.name).map(|r| r.info().clone())
    }

    /// Sends a request whose reply is discarded. Fails only when no instance
    /// holds the name in this view.
    pub fn cast(&self, msg: A::Msg) -> Result<(), CallErr> {
        let holder = self
            .registry
            .lookup(&self.name)
            .ok_or_else(|| CallErr::NotRegistered(self.name.clone()))?;
        deliver(
            &self.registry,
            &holder,
            TakeoverMessage::<A>::Call { msg, reply: None },
        );
        Ok(())
    }

    /// Sends a request and waits for its reply until `timeout` has passed.
    /// While no instance holds the name, it waits for one within the same
    /// deadline.
    pub async fn call(&self, msg: A::Msg, timeout: Duration) -> Result<A::Reply, CallErr> {
        let deadline = Instant::now() + timeout;
        let holder = self.holder_before(deadline).await?;
        let (tx, rx) = oneshot();
        deliver(
            &self.registry,
            &holder,
            TakeoverMessage::<A>::Call {
                msg,
                reply: Some(tx.into()),
            },
        );
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(CallErr::NoReply),
            Err(_) => Err(CallErr::Timeout),
        }
    }

    async fn holder_before(&self, deadline: Instant) -> Result<Registration, CallErr> {
        let mut changes = self.registry.subscribe();
        loop {
            if let Some(holder) = self.registry.lookup(&self.name) {
                return Ok(holder);
            }
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(_)) | Err(_) => return Err(CallErr::NotRegistered(self.name.clone())),
            }
        }
    }
}
