//! Calling the server by its global name; `client/ports` the calls whose
//! message carries a [`crate::Reply`], and the `call_t!`/`cast!` macros.

mod ports;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::concurrency::{oneshot, OneshotReceiver};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::dedup::{CallKey, ClientKeys};
use crate::message::wire::{answer_error, decode_answer, encode_args, wire_call};
use crate::protocol::sealed;
use crate::{
    CallErr, GlobalName, NameWatch, NodeName, Protocol, Registration, RegistrationInfo, Registry,
    RegistryEvent,
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
///
/// The same task follows this node's failure detector: when it marks a
/// node down, every call waiting on a holder there ends at once with
/// [`CallErr::HolderDown`], instead of waiting out its deadline on a node
/// that will not answer.
pub struct GlobalClient<A: Protocol> {
    inner: Arc<Inner>,
    /// Whether [`GlobalClient::call`] keys its calls and retries them when
    /// their outcome is unknown (see [`GlobalClient::with_retries`]). Per
    /// handle, not shared with clones made before it was set.
    retries: bool,
    _behaviour: PhantomData<fn() -> A>,
}

struct Inner {
    name: String,
    registry: Arc<dyn Registry>,
    cache: Mutex<Option<Registration>>,
    /// Set by the watcher when the cache may be stale.
    stale: Arc<AtomicBool>,
    /// How many times the watcher saw each node go down. Why a count and
    /// not a set: a call compares the count of its holder's node with the
    /// one it read before it sent, so a node that went down and came back
    /// up meanwhile still ends the call. Why a watch channel: one task (the
    /// watcher) tells every waiting call, with no task per call.
    downs: watch::Receiver<HashMap<NodeName, u64>>,
    watcher: JoinHandle<()>,
    /// This handle's identity and call counter, for exactly-once retries
    /// (see `crate::dedup`): shared by its clones, as the cache is.
    keys: ClientKeys,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl<A: Protocol> std::fmt::Debug for GlobalClient<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalClient")
            .field("name", &self.inner.name)
            .field("node", self.inner.registry.node())
            .finish_non_exhaustive()
    }
}

impl<A: Protocol> Clone for GlobalClient<A> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            retries: self.retries,
            _behaviour: PhantomData,
        }
    }
}

impl<A: Protocol> GlobalClient<A> {
    /// A handle for `name`, calling from the node whose view `registry` is.
    /// Must be created inside a tokio runtime (it starts the cache watcher).
    pub fn new(name: impl Into<String>, registry: Arc<dyn Registry>) -> Self {
        let name = name.into();
        let stale = Arc::new(AtomicBool::new(true));
        let (downs_tx, downs) = watch::channel(HashMap::new());
        let watcher = tokio::spawn(watch_registry(
            registry.watch(&name),
            stale.clone(),
            downs_tx,
        ));
        Self {
            inner: Arc::new(Inner {
                name,
                registry,
                cache: Mutex::new(None),
                stale,
                downs,
                watcher,
                keys: ClientKeys::new(),
            }),
            retries: true,
            _behaviour: PhantomData,
        }
    }

    /// Turns exactly-once retries of [`GlobalClient::call`] on (the
    /// default) or off. On, each call carries a key (this handle's random
    /// identity and a sequence number) and a call whose outcome is unknown
    /// (`NoReply`, `HolderDown`: its holder's node died, hung or was cut off
    /// while the call waited, or a takeover dropped it) is sent again,
    /// within the caller's deadline, to whoever holds the name then; the
    /// server's window of answered calls (`TakeoverConfig::dedup_window`)
    /// answers a call it applied already with its original reply instead
    /// of running it again. Off, such a call ends with that error, as
    /// before, and carries no key: for a request that is safe to apply
    /// twice, it saves the window's memory and the reply's encoding on the
    /// holder. Calls with a [`crate::Reply`] in the message
    /// ([`GlobalClient::call_with`], [`crate::call_t!`]) are never keyed
    /// nor retried after an unknown outcome (their answer is what the
    /// handler sends on the port, maybe later: see `call_with` for why).
    pub fn with_retries(mut self, on: bool) -> Self {
        self.retries = on;
        self
    }

    /// A handle for the typed `name`: a name declared for a protocol with
    /// other message or reply types does not compile here.
    pub fn named<N>(name: &GlobalName<N>, registry: Arc<dyn Registry>) -> Self
    where
        N: Protocol<Msg = A::Msg, Reply = A::Reply>,
    {
        Self::new(name.as_str(), registry)
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
        A::deliver(&self.inner.registry, &holder, msg, None);
        Ok(())
    }

    /// Sends a request and waits for its reply until `timeout` has passed.
    ///
    /// While no instance holds the name, it waits for one within the same
    /// deadline, then fails with [`CallErr::NotRegistered`]. A call that was
    /// certainly not handled is sent again, to the next holder, within the
    /// same deadline: one the holder's node refused (its session is gone,
    /// as after a crash), or one answered [`CallErr::NotRegistered`] or
    /// [`CallErr::InstanceStopped`] (a retiring or failed instance had
    /// nowhere to send it). It then waits for the view to change before it
    /// tries again; at the deadline it returns the last such error.
    ///
    /// With retries on (the default, see [`GlobalClient::with_retries`]), a
    /// call whose outcome is unknown ([`CallErr::NoReply`], or
    /// [`CallErr::HolderDown`] as soon as this node marks the holder's node
    /// down) is sent again too, under the same key, once the view changed
    /// (or after a short backoff, doubling from 10 ms), to whoever holds
    /// the name then: it is applied at most once, and its caller gets the
    /// reply of the one time it was. Past the server's window of answered
    /// calls it ends with [`CallErr::PastDedupWindow`] (not applied by the
    /// retry; maybe by an earlier try). At the deadline it returns the last
    /// error; once a try's outcome was unknown, a later try's "not applied"
    /// answer ([`CallErr::NotRegistered`], [`CallErr::InstanceStopped`],
    /// [`CallErr::BufferFull`], [`CallErr::NoStandby`]) speaks of that try
    /// only, and the call ends with the unknown outcome's error instead.
    /// With retries off, such a call ends with that error.
    pub async fn call(&self, msg: A::Msg, timeout: Duration) -> Result<A::Reply, CallErr> {
        let deadline = Instant::now() + timeout;
        let mut holder = self.holder_before(deadline).await?;
        // The guard keeps the call under way (below every later call's
        // floor) until this future ends, however it ends.
        let (mut key, _pending) = match self.retries.then(|| self.inner.keys.next()) {
            Some((key, pending)) => (Some(key), Some(pending)),
            None => (None, None),
        };
        // By node name, not by actor id: on the fake cluster every instance
        // is a local actor, and a call to another node must still take the
        // wire path a real one takes.
        if holder.node() == self.inner.registry.node() && key.is_none() {
            // Without retries a call to this node goes typed, once: it
            // cannot be sent twice (its message is moved).
            return self.call_local(&holder, msg, None, deadline).await;
        }
        // Encoded once for every try (a try on this node decodes it again).
        let args = encode_args(&msg)?;
        let mut msg = Some(msg);
        // Whether an earlier try may have been applied: then the window's
        // refusal is the caller's answer, not a reason to send again.
        let mut maybe_applied = false;
        // The first unknown outcome: what the caller learns if a later try
        // is answered "not handled" (that answer speaks of that try only).
        let mut unknown: Option<CallErr> = None;
        let mut backoff = RETRY_BACKOFF;
        loop {
            // Each try tells the oldest call still under way, as of now.
            if let Some(k) = key.as_mut() {
                k.floor = self.inner.keys.floor(k.seq);
            }
            let attempt = if holder.node() == self.inner.registry.node() {
                let m = match msg.take() {
                    Some(m) => m,
                    None => {
                        postcard::from_bytes(&args).map_err(|e| CallErr::Codec(e.to_string()))?
                    }
                };
                match self.call_local(&holder, m, key, deadline).await {
                    Err(e) if not_handled(&e) => Attempt::NotHandled(e),
                    done => Attempt::Done(done),
                }
            } else {
                match self.call_remote(&holder, &args, key, deadline).await {
                    Attempt::Done(done) => {
                        Attempt::Done(done.and_then(|bytes| decode_answer(&bytes)))
                    }
                    Attempt::NotHandled(e) => Attempt::NotHandled(e),
                }
            };
            let error = match attempt {
                Attempt::Done(Ok(reply)) => return Ok(reply),
                Attempt::Done(Err(CallErr::PastDedupWindow { applied }))
                    if !maybe_applied && key.is_some() =>
                {
                    // Refused unapplied because this handle had not heard of
                    // that many calls; no earlier try can have been applied,
                    // so the same call, now with what it heard, is new there.
                    self.inner.keys.heard(applied);
                    if let Some(k) = key.as_mut() {
                        k.seen = k.seen.max(applied);
                    }
                    continue;
                }
                Attempt::Done(Err(e)) if key.is_some() && outcome_unknown(&e) => {
                    maybe_applied = true;
                    unknown.get_or_insert_with(|| e.clone());
                    tracing::debug!(name = %self.inner.name, error = %e, "outcome unknown; retrying under the same key");
                    holder = self.holder_after_unknown(e, &mut backoff, deadline).await?;
                    continue;
                }
                Attempt::Done(done) => return done.map_err(|e| after_unknown(e, &unknown)),
                Attempt::NotHandled(e) => e,
            };
            holder = self
                .next_holder_after(&holder, error, deadline)
                .await
                .map_err(|e| after_unknown(e, &unknown))?;
        }
    }

    /// After a try whose outcome is unknown: whoever holds the name once
    /// the view changed or `backoff` passed (the same holder is fine: a
    /// lost answer, a healed link), or `error` at the deadline.
    async fn holder_after_unknown(
        &self,
        error: CallErr,
        backoff: &mut Duration,
        deadline: Instant,
    ) -> Result<Registration, CallErr> {
        let mut changes = self.inner.registry.watch(&self.inner.name);
        let wake = (Instant::now() + *backoff).min(deadline);
        *backoff = (*backoff * 2).min(RETRY_BACKOFF_MAX);
        if let Ok(None) = tokio::time::timeout_at(wake, changes.recv()).await {
            // The watch closed (this node's registry stopped, or crashed on
            // the fake cluster): nothing wakes us, and trying again at once
            // spun until the deadline (with paused time, for good: fault
            // seed 3495692323 with retries ran out of memory). Wait out the
            // backoff.
            tokio::time::sleep_until(wake).await;
        }
        if Instant::now() >= deadline {
            return Err(error);
        }
        self.inner.stale.store(true, Ordering::Release);
        self.holder_before(deadline).await.map_err(|_| error)
    }

    /// A call to a holder on this node, typed.
    async fn call_local(
        &self,
        holder: &Registration,
        msg: A::Msg,
        key: Option<CallKey>,
        deadline: Instant,
    ) -> Result<A::Reply, CallErr> {
        let mut downs = self.inner.downs.clone();
        let seen = down_count(&mut downs, holder.node());
        let (tx, rx) = oneshot();
        let left = deadline.saturating_duration_since(Instant::now());
        A::deliver(
            &self.inner.registry,
            holder,
            msg,
            Some(sealed::Answer::Typed((tx, left).into(), key)),
        );
        match wait_answer(rx, &mut downs, holder.node(), seen, deadline).await {
            Waited::Answer(answer) => answer,
            Waited::Closed => {
                // The instance or its link went away under us; look again next time.
                self.inner.stale.store(true, Ordering::Release);
                Err(CallErr::NoReply)
            }
            Waited::Down => self.holder_down(holder),
            Waited::Deadline => Err(CallErr::Timeout),
        }
    }

    /// A call to a holder on another node, in its wire form straight away
    /// (`args` encoded once for every try): the answer comes back in bytes
    /// and is decoded by the caller, with no bridging task in between.
    async fn call_remote(
        &self,
        holder: &Registration,
        args: &[u8],
        key: Option<CallKey>,
        deadline: Instant,
    ) -> Attempt<Vec<u8>> {
        // Read before sending: a node that goes down from here on ends the call.
        let mut downs = self.inner.downs.clone();
        let seen = down_count(&mut downs, holder.node());
        let (tx, rx) = oneshot::<Vec<u8>>();
        let left = deadline.saturating_duration_since(Instant::now());
        let call = wire_call(args.to_vec(), (tx, left).into(), key);
        if self.inner.registry.send_wire(holder, call).is_err() {
            // The session to the holder's node is gone: the call was not sent.
            return Attempt::NotHandled(CallErr::NoReply);
        }
        Attempt::Done(
            match wait_answer(rx, &mut downs, holder.node(), seen, deadline).await {
                Waited::Answer(bytes) => match answer_error(&bytes) {
                    Some(e) if not_handled(&e) => return Attempt::NotHandled(e),
                    _ => Ok(bytes),
                },
                Waited::Closed => {
                    self.inner.stale.store(true, Ordering::Release);
                    Err(CallErr::NoReply)
                }
                Waited::Down => self.holder_down(holder),
                Waited::Deadline => Err(CallErr::Timeout),
            },
        )
    }

    /// After a try on `failed` that was certainly not handled (answered
    /// `error`): the next holder, or `error` if none comes by `deadline`.
    async fn next_holder_after(
        &self,
        failed: &Registration,
        error: CallErr,
        deadline: Instant,
    ) -> Result<Registration, CallErr> {
        self.inner.stale.store(true, Ordering::Release);
        self.next_holder(failed, deadline).await.ok_or(error)
    }

    fn holder_down<R>(&self, holder: &Registration) -> Result<R, CallErr> {
        self.inner.stale.store(true, Ordering::Release);
        tracing::debug!(name = %self.inner.name, node = %holder.node(), "holder's node marked down while a call waited");
        Err(CallErr::HolderDown {
            node: holder.node().clone(),
        })
    }

    /// After a call `failed` could not take: a holder other than that one,
    /// waiting for the view to change until `deadline`.
    async fn next_holder(&self, failed: &Registration, deadline: Instant) -> Option<Registration> {
        // Subscribe before reading the view: a change from here on wakes us.
        let mut changes = self.inner.registry.watch(&self.inner.name);
        loop {
            self.inner.stale.store(true, Ordering::Release);
            if let Some(next) = self.holder().filter(|h| h.info() != failed.info()) {
                return Some(next);
            }
            match tokio::time::timeout_at(deadline, changes.recv()).await {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
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

/// Marks the cache stale on every registry change that may move `name` (the
/// watch brings only those: its own name's, and node up/down), and counts
/// the nodes that go down, for the calls waiting on them.
async fn watch_registry(
    mut changes: NameWatch,
    stale: Arc<AtomicBool>,
    downs: watch::Sender<HashMap<NodeName, u64>>,
) {
    while let Some(change) = changes.recv().await {
        if let RegistryEvent::NodeDown(node) = change {
            downs.send_modify(|d| *d.entry(node).or_default() += 1);
        }
        stale.store(true, Ordering::Release);
    }
}

/// The first wait before a retry of a call whose outcome is unknown, and
/// the most it doubles to. Why a backoff at all: a holder that keeps losing
/// answers (a flapping link) must not be sent the call in a tight loop; why
/// this short: a view change (a failover, a heal) ends the wait at once.
const RETRY_BACKOFF: Duration = Duration::from_millis(10);
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Whether a call answered `e` may or may not have been applied: a keyed
/// call is sent again then.
fn outcome_unknown(e: &CallErr) -> bool {
    matches!(
        e,
        CallErr::NoReply | CallErr::HolderDown { .. } | CallErr::Moved
    )
}

/// What a call ends with when a try is answered `e` after an earlier try's
/// outcome was `unknown`: an answer that this try was not applied (no
/// holder, a full buffer, no standby to store it) says nothing of the
/// earlier one, which may have been applied, so the caller gets the
/// unknown outcome (fault seeds 360501585 and others, with retries: `a`
/// applied a call whose answer was lost, and its retry was answered
/// `NoStandby`).
fn after_unknown(e: CallErr, unknown: &Option<CallErr>) -> CallErr {
    let not_applied = matches!(
        e,
        CallErr::NotRegistered(_)
            | CallErr::InstanceStopped(_)
            | CallErr::BufferFull { .. }
            | CallErr::NoStandby
    );
    match unknown {
        Some(u) if not_applied => u.clone(),
        _ => e,
    }
}

/// Whether a call answered `e` was certainly not handled, so that it may go
/// to the next holder.
fn not_handled(e: &CallErr) -> bool {
    matches!(e, CallErr::NotRegistered(_) | CallErr::InstanceStopped(_))
}

/// How one try of a remote call ended.
enum Attempt<R> {
    /// With this result, for the caller.
    Done(Result<R, CallErr>),
    /// Certainly not handled (not sent, or answered so): it may go to the
    /// next holder; the error is for the caller if none comes.
    NotHandled(CallErr),
}

/// How many times `node` went down so far; marks the channel read, so that
/// only a later change wakes [`wait_answer`].
fn down_count(downs: &mut watch::Receiver<HashMap<NodeName, u64>>, node: &NodeName) -> u64 {
    downs.borrow_and_update().get(node).copied().unwrap_or(0)
}

/// How waiting for an answer ended.
enum Waited<T> {
    Answer(T),
    /// The reply port was dropped unanswered.
    Closed,
    /// The holder's node was marked down.
    Down,
    Deadline,
}

/// Waits for `rx` until `deadline`, or until `node` goes down (its count
/// passes `seen`).
async fn wait_answer<T>(
    mut rx: OneshotReceiver<T>,
    downs: &mut watch::Receiver<HashMap<NodeName, u64>>,
    node: &NodeName,
    seen: u64,
    deadline: Instant,
) -> Waited<T> {
    let mut watching = true;
    loop {
        tokio::select! {
            answer = &mut rx => return match answer {
                Ok(answer) => Waited::Answer(answer),
                Err(_) => Waited::Closed,
            },
            changed = downs.changed(), if watching => {
                if changed.is_err() {
                    // The watcher is gone (the registry closed): the deadline still holds.
                    watching = false;
                } else if down_count(downs, node) > seen {
                    return Waited::Down;
                }
            }
            () = tokio::time::sleep_until(deadline) => return Waited::Deadline,
        }
    }
}
