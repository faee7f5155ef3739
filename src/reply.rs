//! [`Reply`]: a typed reply port that a message carries as its last field,
//! as ractor's `RpcReplyPort<T>` is, and that crosses nodes with it.
//!
//! ```text
//!   caller (client)             wire                  holder
//!   call_t!(c, M::Get, 500, k)
//!     M::Get(k, Reply<T>) --- Call{args, byte port} ---> decode: the Reply
//!                                                        binds to the byte port
//!                                                        handle(M::Get(k, reply))
//!     Result<T, CallErr> <----------- bytes ------------ reply.send(t), now or later
//! ```
//!
//! # Why node-bound ports
//!
//! A port answers through the call it came with: the byte port of the
//! caller's session (or of its own node, for a caller beside the holder).
//! That channel ends in the holder's process, so a port cannot move to
//! another node, and none of ractor_cluster's channels leads back to a
//! caller except the session the call came on. Movable ports would need a
//! reply inbox per node that every backend routes to, and a caller-side
//! table of calls waiting on it; node-bound ports keep the one rule every
//! other answer already follows (an answer goes back the way its call
//! came), so they work the same on the fake cluster and on ractor_cluster.
//!
//! # What happens to a port the handler keeps
//!
//! A port the handler keeps (in its state, to answer later) is never
//! dropped without an answer:
//!
//! - **Takeover**: when the old holder sends its state to the new one, every
//!   port it still holds is answered [`CallErr::Moved`]: the request was
//!   handled, its answer cannot come. Retry: the retry reaches the new
//!   holder. In the state the new holder decodes, those ports are
//!   *detached* ([`Reply::is_detached`]): [`Reply::send`] on one fails with
//!   [`ReplySendErr::Detached`], so a handler that answers waiters in turn
//!   skips them. If the takeover is then rolled back, the old holder serves
//!   again with ports already answered: `send` on them fails with
//!   [`ReplySendErr::CallerGone`].
//! - **Failover** (the holder crashed or its node went down): a caller on
//!   another node ends with [`CallErr::HolderDown`] as soon as its node marks
//!   the holder's node down, or with [`CallErr::Timeout`] at its deadline; an
//!   instance that stops while its node lives drops its state, and every
//!   port in it answers [`CallErr::ReplyDropped`]. A warm standby's
//!   checkpoint holds detached ports.
//! - **Merge** (split-brain healing): the loser answers its ports
//!   [`CallErr::Moved`] when it offers its state; the winner's
//!   [`crate::TakeoverActor::merge`] gets that state with the ports detached.
//! - **Checkpoint**: a checkpoint encodes ports as detached and answers
//!   nothing; the holder keeps serving them.
//! - **Dropped**: a port dropped without an answer answers
//!   [`CallErr::ReplyDropped`], as ractor's does when dropped.
//!
//! A caller never hangs past its deadline: every call has one.
//!
//! One port per message: a second `Reply` in the same message decodes
//! detached. A message with a port sent by a cast has a detached port.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use ractor::RpcReplyPort;
use serde::de::DeserializeOwned;
use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};
use tokio::time::Instant;

use crate::CallErr;

#[cfg(test)]
mod tests;

/// A typed reply port: put it as the last field of a request variant, as
/// with ractor's `RpcReplyPort<T>`, and answer it now or later with
/// [`Reply::send`]. The caller gets `Result<T, CallErr>`.
///
/// ```
/// use ractor_takeover::Reply;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// enum LockMessage {
///     /// Answered when the lock is free, maybe long after.
///     Acquire(String, Reply<u64>),
///     Release(String),
/// }
/// ```
///
/// Only the runtime makes one that leads to a caller (a client's call, or a
/// call decoded on the holder's node); one decoded anywhere else (from a
/// state, a checkpoint, a cast) is detached. See the [module
/// docs](crate::reply) for takeovers, failovers and merges.
pub struct Reply<T> {
    to: Option<Arc<Slot>>,
    _answer: PhantomData<fn(T)>,
}

/// Why [`Reply::send`] delivered nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplySendErr {
    /// The port came with a state from another instance (a takeover, a
    /// merge or a checkpoint), or with a cast: no caller waits on it here.
    /// Its caller, if any, was answered [`CallErr::Moved`] by the old
    /// holder, or ends at its deadline.
    Detached,
    /// The caller stopped waiting (its deadline passed, its channel closed),
    /// or was answered already (`Moved` on a rolled-back takeover).
    CallerGone,
    /// The answer does not encode for the wire; the caller got
    /// [`CallErr::Codec`] instead.
    Codec(String),
}

impl fmt::Display for ReplySendErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Detached => write!(
                f,
                "the reply port came with a moved state or a cast; no caller waits on it here"
            ),
            Self::CallerGone => write!(
                f,
                "the caller stopped waiting or was answered already; nothing was sent"
            ),
            Self::Codec(e) => write!(
                f,
                "the answer does not encode ({e}); the caller was told so"
            ),
        }
    }
}

impl std::error::Error for ReplySendErr {}

impl<T: Serialize> Reply<T> {
    /// Answers the caller with `value`. Fails when no caller waits for it
    /// (see [`ReplySendErr`]): a handler that grants something (a lock, a
    /// lease) to the first of several waiters should grant it to the next
    /// one then.
    pub fn send(mut self, value: T) -> Result<(), ReplySendErr> {
        let Some(slot) = self.to.take() else {
            return Err(ReplySendErr::Detached);
        };
        slot.answer(&Ok::<&T, CallErr>(&value))
    }
}

impl<T> Reply<T> {
    /// A port no caller waits on, as one decoded from a state is.
    pub(crate) fn detached() -> Self {
        Self {
            to: None,
            _answer: PhantomData,
        }
    }

    /// A port answered through `slot`, which now belongs to it.
    pub(crate) fn bound(slot: Arc<Slot>) -> Self {
        slot.bind();
        Self {
            to: Some(slot),
            _answer: PhantomData,
        }
    }

    /// Whether no caller waits on this port any more: detached, answered
    /// (`Moved`), its caller's deadline passed, or its channel closed.
    /// A late answer to a closed port is not delivered.
    pub fn is_closed(&self) -> bool {
        self.to.as_ref().is_none_or(|s| s.is_closed())
    }

    /// Whether the port came with a state or a cast and leads to no caller.
    pub fn is_detached(&self) -> bool {
        self.to.is_none()
    }

    /// The caller's timeout, as it sent it.
    pub fn timeout(&self) -> Option<Duration> {
        self.to.as_ref().and_then(|s| s.timeout)
    }
}

impl<T> Drop for Reply<T> {
    /// A port dropped unanswered answers [`CallErr::ReplyDropped`].
    fn drop(&mut self) {
        if let Some(slot) = self.to.take() {
            let _ = slot.answer(&Err::<(), CallErr>(CallErr::ReplyDropped));
        }
    }
}

impl<T> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.to {
            None => "detached",
            Some(s) if s.is_closed() => "closed",
            Some(_) => "open",
        };
        f.debug_struct("Reply").field("state", &state).finish()
    }
}

/// On the wire a port is a unit: the channel it answers on is the call's
/// own (its byte port), not something in its arguments. Why nothing more:
/// any bytes here would be a claim a peer could forge; the call's port is
/// what ractor_cluster itself carries back.
impl<T> Serialize for Reply<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

/// Decoded while the runtime decodes a call, a port binds to that call's
/// byte port; decoded anywhere else (a state, a checkpoint, a cast), it is
/// detached.
impl<'de, T> Deserialize<'de> for Reply<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer)?;
        Ok(match BINDING.with(|b| b.borrow_mut().take()) {
            Some(slot) => Reply::bound(slot),
            None => Reply::detached(),
        })
    }
}

thread_local! {
    /// The call whose arguments are being decoded on this thread, for the
    /// port among them to bind to. Why a thread-local: serde gives a
    /// `Deserialize` impl no context, and the decode is synchronous (no
    /// await in between), so nothing else runs on the thread meanwhile.
    static BINDING: std::cell::RefCell<Option<Arc<Slot>>> = const { std::cell::RefCell::new(None) };
}

/// Decodes a call's arguments, binding the port among them (if any) to
/// `slot`.
pub(crate) fn decode_bound<M: DeserializeOwned>(
    slot: &Arc<Slot>,
    args: &[u8],
) -> Result<M, postcard::Error> {
    BINDING.with(|b| *b.borrow_mut() = Some(slot.clone()));
    let decoded = postcard::from_bytes(args);
    BINDING.with(|b| b.borrow_mut().take());
    decoded
}

/// Where one call's answer goes, in bytes: shared by the runtime's
/// [`crate::Answer`] and the [`Reply`] in the message, so that whichever
/// answers first (the handler, or the runtime with an error) answers, once.
pub(crate) struct Slot {
    port: Mutex<Option<RpcReplyPort<Vec<u8>>>>,
    /// A [`Reply`] in the message owns the answer: the runtime sends only
    /// errors, not the handler's return value.
    bound: std::sync::atomic::AtomicBool,
    timeout: Option<Duration>,
    /// Counted from when the port reached this process, so never earlier
    /// than the caller's own deadline.
    deadline: Option<Instant>,
}

impl Slot {
    pub(crate) fn new(port: RpcReplyPort<Vec<u8>>) -> Arc<Self> {
        let timeout = port.get_timeout();
        Arc::new(Self {
            port: Mutex::new(Some(port)),
            bound: Default::default(),
            timeout,
            deadline: timeout.map(|t| Instant::now() + t),
        })
    }

    fn bind(&self) {
        self.bound.store(true, std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn is_bound(&self) -> bool {
        self.bound.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<RpcReplyPort<Vec<u8>>>> {
        self.port.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The byte port, for a call forwarded to another node: its answer comes
    /// from there now.
    pub(crate) fn take_port(&self) -> Option<RpcReplyPort<Vec<u8>>> {
        self.lock().take()
    }

    fn is_closed(&self) -> bool {
        self.deadline.is_some_and(|d| d <= Instant::now())
            || self.lock().as_ref().is_none_or(|p| p.is_closed())
    }

    /// Sends an answer encoded already, unless answered already or the
    /// caller's deadline passed.
    pub(crate) fn answer_encoded(&self, bytes: Vec<u8>) -> Result<(), ReplySendErr> {
        let Some(port) = self.take_port() else {
            return Err(ReplySendErr::CallerGone);
        };
        if self.deadline.is_some_and(|d| d <= Instant::now()) || port.is_closed() {
            return Err(ReplySendErr::CallerGone);
        }
        port.send(bytes).map_err(|_| ReplySendErr::CallerGone)
    }

    /// Sends `answer`, encoded, unless answered already or the caller's
    /// deadline passed.
    pub(crate) fn answer<R: Serialize>(
        &self,
        answer: &Result<R, CallErr>,
    ) -> Result<(), ReplySendErr> {
        let Some(port) = self.take_port() else {
            return Err(ReplySendErr::CallerGone);
        };
        if self.deadline.is_some_and(|d| d <= Instant::now()) || port.is_closed() {
            return Err(ReplySendErr::CallerGone);
        }
        let (bytes, result) = match postcard::to_allocvec(answer) {
            Ok(bytes) => (bytes, Ok(())),
            Err(e) => {
                let err = CallErr::Codec(e.to_string());
                match postcard::to_allocvec(&Err::<(), CallErr>(err)) {
                    Ok(bytes) => (bytes, Err(ReplySendErr::Codec(e.to_string()))),
                    Err(_) => return Err(ReplySendErr::Codec(e.to_string())),
                }
            }
        };
        port.send(bytes).map_err(|_| ReplySendErr::CallerGone)?;
        result
    }
}

/// The ports a holder's handler kept unanswered, so that a handover can
/// answer them [`CallErr::Moved`]. Weak: a port the handler answers or
/// drops leaves nothing behind.
#[derive(Default)]
pub(crate) struct HeldPorts {
    ports: Vec<Weak<Slot>>,
    /// Length after the last sweep of dead entries; the next sweep comes
    /// when the list has doubled, so keeping a port costs O(1) amortized.
    swept: usize,
}

impl HeldPorts {
    /// Notes `slot` if its port is still unanswered after the handler ran.
    pub(crate) fn keep(&mut self, slot: &Arc<Slot>) {
        if !slot.is_bound() || slot.lock().is_none() {
            return;
        }
        self.ports.push(Arc::downgrade(slot));
        if self.ports.len() > 2 * self.swept.max(16) {
            self.ports
                .retain(|w| w.upgrade().is_some_and(|s| s.lock().is_some()));
            self.swept = self.ports.len();
        }
    }

    /// Answers every port still held [`CallErr::Moved`]; returns how many.
    pub(crate) fn answer_moved(&mut self) -> usize {
        self.swept = 0;
        std::mem::take(&mut self.ports)
            .into_iter()
            .filter_map(|w| w.upgrade())
            .filter(|s| s.answer(&Err::<(), CallErr>(CallErr::Moved)).is_ok())
            .count()
    }
}
