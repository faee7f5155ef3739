//! Calling the server by its global name.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::concurrency::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::message::routing::deliver;
use crate::message::wire::{decode_answer, wire_call};
use crate::ReplyPort;
use crate::{
    CallErr, NameWatch, Registration, RegistrationInfo, Registry, TakeoverActor, TakeoverMessage,
};

/// A handle to call a global server by name from one node, like ractor's
/// `cast!` and `call_t!` on an `ActorRef`. Cheap to clone; clones share one
/// cache.
///
/// It caches the resolved holder, so a call in the steady state costs one
/// message and its reply, nothing more. A background task watches this
/// node's registry and drops the cache on any change that concerns the name
/// (a registration, a departure, a node going down or up), so the next call
/// re-resolves by itself. A call that still reaches a retiring instance is
/// forwarded by it; the caller does not notice.
pub struct GlobalClient<A: TakeoverActor> {
    inner: Arc<Inner>,
    _behaviour: PhantomData<fn() -> A>,
}

struct Inner {
    name: String,
    registry: Arc<dyn Registry>,
    cache: Mutex<Option<Registration>>,
    /// Set by the watcher when the cache may be stale.
    stale: Arc<AtomicBool>,
    watcher: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl<A: TakeoverActor> Clone for GlobalClient<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _behaviour: PhantomData,
        }
    }
}

impl<A: TakeoverActor> GlobalClient<A> {
    /// A handle for `name`, calling from the node whose view `registry` is.
    /// Must be created inside a tokio runtime (it starts the cache watcher).
    pub fn new(name: impl Into<String>, registry: Arc<dyn Registry>) -> Self {
        let name = name.into();
        let stale = Arc::new(AtomicBool::new(true));
        let watcher = tokio::spawn(watch(registry.watch(&name), stale.clone()));
        Self {
            inner: Arc::new(Inner {
                name,
                registry,
                cache: Mutex::new(None),
                stale,
                watcher,
            }),
            _behaviour: PhantomData,
        }
    }

    /// The global name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The holder in this node's view, if any (possibly stale).
    pub fn whereis(&self) -> Option<RegistrationInfo> {
        self.holder().map(|r| r.info().clone())
    }

    /// The cached holder, re-resolved if the registry changed since.
    fn holder(&self) -> Option<Registration> {
        let inner = &self.inner;
        let mut cache = inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        // Clear the flag before reading the view: a change that lands while
        // we read sets it again, and the next call re-resolves.
        if inner.stale.swap(false, Ordering::AcqRel) || cache.as_ref().is_none_or(|h| !h.is_alive())
        {
            *cache = inner.registry.lookup(&inner.name);
        }
        cache.clone()
    }

    /// Sends a request whose reply is discarded. Fails only when no instance
    /// holds the name in this view.
    pub fn cast(&self, msg: A::Msg) -> Result<(), CallErr> {
        let holder = self
            .holder()
            .ok_or_else(|| CallErr::NotRegistered(self.inner.name.clone()))?;
        deliver(
            &self.inner.registry,
            &holder,
            TakeoverMessage::<A>::Call { msg, reply: None },
        );
        Ok(())
    }

    /// Sends a request and waits for its reply until `timeout` has passed.
    /// While no instance holds the name, it waits for one within the same
    /// deadline, then fails with [`CallErr::NotRegistered`].
    pub async fn call(&self, msg: A::Msg, timeout: Duration) -> Result<A::Reply, CallErr> {
        let deadline = Instant::now() + timeout;
        let holder = self.holder_before(deadline).await?;
        // By node name, not by actor id: on the fake cluster every instance
        // is a local actor, and a call to another node must still take the
        // wire path a real one takes.
        if holder.node() != self.inner.registry.node() {
            return self.call_remote(&holder, &msg, timeout, deadline).await;
        }
        let (tx, rx) = oneshot();
        deliver(
            &self.inner.registry,
            &holder,
            TakeoverMessage::<A>::Call {
                msg,
                reply: Some(ReplyPort::<A>::from((tx, timeout)).into()),
            },
        );
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => {
                // The instance or its link went away under us; look again next time.
                self.inner.stale.store(true, Ordering::Release);
                Err(CallErr::NoReply)
            }
            Err(_) => Err(CallErr::Timeout),
        }
    }

    /// A call to a holder on another node, in its wire form straight away:
    /// the answer comes back in bytes and is decoded here, with no bridging
    /// task in between.
    async fn call_remote(
        &self,
        holder: &Registration,
        msg: &A::Msg,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<A::Reply, CallErr> {
        let (tx, rx) = oneshot::<Vec<u8>>();
        let call = wire_call::<A>(msg, (tx, timeout).into())?;
        if self.inner.registry.send_wire(holder, call).is_err() {
            // The session to the holder's node is gone: the call was not sent.
            self.inner.stale.store(true, Ordering::Release);
            return Err(CallErr::NoReply);
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(bytes)) => decode_answer::<A>(&bytes),
            Ok(Err(_)) => {
                self.inner.stale.store(true, Ordering::Release);
                Err(CallErr::NoReply)
            }
            Err(_) => Err(CallErr::Timeout),
        }
    }

    async fn holder_before(&self, deadline: Instant) -> Result<Registration, CallErr> {
        if let Some(holder) = self.holder() {
            return Ok(holder);
        }
        let mut changes = self.inner.registry.watch(&self.inner.name);
        loop {
            self.inner.stale.store(true, Ordering::Release);
            if let Some(holder) = self.holder() {
                return Ok(holder);
            }
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return Err(CallErr::NotRegistered(self.inner.name.clone())),
            }
        }
    }
}

/// Marks the cache stale on every registry change that may move our name:
/// the watch brings only those (its own name's, and node up/down).
async fn watch(mut changes: NameWatch, stale: Arc<AtomicBool>) {
    while changes.recv().await.is_some() {
        stale.store(true, Ordering::Release);
    }
}
