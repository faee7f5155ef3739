//! [`Protocol`]: what the clients of a global server need to know of it
//! (its message and reply types), apart from its behaviour; and
//! [`GlobalName`], a name typed by its protocol.
//!
//! Every [`TakeoverActor`] is its own protocol, so `GlobalClient<MyServer>`
//! works as it always did. A client node that should not link the server's
//! behaviour (its storage, its dependencies) names a protocol instead,
//! declared beside the message types:
//!
//! ```
//! use ractor_takeover::{GlobalName, Protocol, Reply};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub enum LockMessage {
//!     Acquire(String, Reply<u64>),
//!     Release(String, u64),
//! }
//!
//! /// The lock manager as its clients see it.
//! pub struct Locks;
//!
//! impl Protocol for Locks {
//!     type Msg = LockMessage;
//!     type Reply = ();
//! }
//!
//! /// Server and clients name it through this constant, so that a server of
//! /// another protocol under this name does not compile
//! /// (`TakeoverServer::named`), nor does a client of another one
//! /// (`GlobalClient::named`).
//! pub const LOCKS: GlobalName<Locks> = GlobalName::new("locks");
//!
//! /// On a client node: calls go as `call_t!(client, LockMessage::Acquire, ..)`.
//! fn client(registry: std::sync::Arc<dyn ractor_takeover::registry::Registry>)
//!     -> ractor_takeover::GlobalClient<Locks> {
//!     LOCKS.client(registry)
//! }
//! ```
//!
//! A client of another protocol for that name does not compile:
//!
//! ```compile_fail,E0271
//! # use std::sync::Arc;
//! # use ractor_takeover::{GlobalClient, GlobalName, Protocol, Registry};
//! struct Locks;
//! impl Protocol for Locks {
//!     type Msg = String;
//!     type Reply = u64;
//! }
//! struct Counter;
//! impl Protocol for Counter {
//!     type Msg = u64;
//!     type Reply = u64;
//! }
//! const LOCKS: GlobalName<Locks> = GlobalName::new("locks");
//!
//! fn client(registry: Arc<dyn Registry>) -> GlobalClient<Counter> {
//!     GlobalClient::named(&LOCKS, registry) // Counter's messages are not Locks'
//! }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use ractor::RpcReplyPort;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::message::routing;
use crate::message::wire;
use crate::{CallErr, Registration, Registry, TakeoverActor, TakeoverMessage};

/// The message and reply types that a global server and its clients share.
/// Implemented by every [`TakeoverActor`]; implement it on a type of your
/// own for clients that do not link the behaviour.
///
/// A client typed by a protocol of its own sends every call in its wire
/// form, to a holder on its own node too (the instance decodes it as it
/// decodes a call from another node); one typed by the behaviour hands a
/// call to a holder on its node typed, without encoding it.
pub trait Protocol: Send + Sync + 'static {
    /// The requests.
    type Msg: Serialize + DeserializeOwned + Send + 'static;
    /// The replies, for [`crate::GlobalClient::call`] (`()` when every
    /// message carries its own [`crate::Reply`]).
    type Reply: Serialize + DeserializeOwned + Send + 'static;

    /// Sends `msg` to `holder`. Not for users: the runtime's way to pick
    /// the typed path for a behaviour and the wire form for the others.
    #[doc(hidden)]
    fn deliver(
        registry: &Arc<dyn Registry>,
        holder: &Registration,
        msg: Self::Msg,
        answer: Option<sealed::Answer<Self::Reply>>,
    ) {
        let args = match wire::encode_args(&msg) {
            Ok(args) => args,
            Err(e) => {
                if let Some(answer) = answer {
                    answer.fail(e);
                }
                return;
            }
        };
        let call = match answer {
            None => wire::wire_cast(args),
            Some(sealed::Answer::Typed(port, key)) => {
                wire::wire_call(args, wire::bridge(port), key)
            }
            Some(sealed::Answer::Slot(sealed::SlotRef(slot))) => match slot.take_port() {
                Some(port) => wire::wire_call(args, port, None),
                None => return,
            },
        };
        // The port in `msg` (if any) gave its channel to `call` already.
        drop(msg);
        routing::send_wire(registry, holder, call);
    }
}

impl<A: TakeoverActor> Protocol for A {
    type Msg = A::Msg;
    type Reply = A::Reply;

    fn deliver(
        registry: &Arc<dyn Registry>,
        holder: &Registration,
        msg: Self::Msg,
        answer: Option<sealed::Answer<Self::Reply>>,
    ) {
        let reply = answer.map(|a| match a {
            sealed::Answer::Typed(port, key) => crate::message::Answer::from(port).with_key(key),
            sealed::Answer::Slot(sealed::SlotRef(slot)) => crate::message::Answer::slot(slot),
        });
        routing::deliver(registry, holder, TakeoverMessage::<A>::Call { msg, reply });
    }
}

// Why `pub` items in a private module: `Protocol::deliver`, a method of a
// public trait, names them, so they must be `pub`; kept out of users'
// reach, they cannot be built or matched outside the crate (tower's
// sealed pattern).
#[allow(unreachable_pub)]
pub(crate) mod sealed {
    //! Types a [`super::Protocol`] method names that users cannot.

    use super::*;

    /// Where a client's call is answered.
    pub enum Answer<R> {
        /// A typed port of a caller on this node, and the call's key if
        /// its client gave it one (see `crate::dedup`).
        Typed(
            RpcReplyPort<Result<R, CallErr>>,
            Option<crate::dedup::CallKey>,
        ),
        /// A byte port, shared with the `Reply` in the message.
        Slot(SlotRef),
    }

    /// A byte port, out of users' reach.
    pub struct SlotRef(pub(crate) Arc<crate::reply::Slot>);

    impl<R> std::fmt::Debug for Answer<R> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(match self {
                Answer::Typed(..) => "Answer::Typed",
                Answer::Slot(_) => "Answer::Slot",
            })
        }
    }

    impl std::fmt::Debug for SlotRef {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("SlotRef")
        }
    }

    impl<R: Serialize> Answer<R> {
        pub(crate) fn fail(self, e: CallErr) {
            match self {
                Answer::Typed(port, _) => {
                    let _ = port.send(Err(e));
                }
                Answer::Slot(SlotRef(slot)) => {
                    let _ = slot.answer(&Err::<(), CallErr>(e));
                }
            }
        }
    }
}

/// A global name typed by its [`Protocol`]: declare it once, as a constant
/// beside the protocol, and spawn servers ([`crate::TakeoverServer::named`])
/// and make clients ([`crate::GlobalClient::named`]) with it, so that a
/// server or a client of another protocol under this name does not compile.
pub struct GlobalName<P> {
    name: Cow<'static, str>,
    _protocol: PhantomData<fn() -> P>,
}

impl<P> GlobalName<P> {
    /// The name `name` for servers and clients of protocol `P`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name: Cow::Borrowed(name),
            _protocol: PhantomData,
        }
    }

    /// A name made at run time (from configuration, say).
    pub fn owned(name: String) -> Self {
        Self {
            name: Cow::Owned(name),
            _protocol: PhantomData,
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.name
    }
}

impl<P: Protocol> GlobalName<P> {
    /// A client of this name typed by its protocol, calling from the node
    /// whose view `registry` is (see [`crate::GlobalClient::named`]).
    pub fn client(&self, registry: Arc<dyn Registry>) -> crate::GlobalClient<P> {
        crate::GlobalClient::new(self.as_str(), registry)
    }
}

impl<P> Clone for GlobalName<P> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            _protocol: PhantomData,
        }
    }
}

impl<P> fmt::Debug for GlobalName<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("GlobalName").field(&self.name).finish()
    }
}

impl<P> fmt::Display for GlobalName<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}
