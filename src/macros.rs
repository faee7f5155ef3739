//! `call_t!` and `cast!` for a [`crate::GlobalClient`], of the same shape as
//! ractor's own for an `ActorRef`.
//!
//! Why the crate's own and not ractor's: ractor's expand to
//! `ActorRef::call`, which returns ractor's `CallResult`; a global call
//! also fails in ways of its own (no holder, a takeover, a holder's node
//! down), which [`crate::CallErr`] names. With both crates' macros in use,
//! name these by path: `ractor_takeover::call_t!`.

/// Calls a global server through a [`crate::GlobalClient`] and waits for
/// the answer on the message's [`crate::Reply`], as ractor's `call_t!` does
/// for an actor: `call_t!(client, Msg::Variant, timeout_ms, args...)` sends
/// `Msg::Variant(args..., reply)` and evaluates (awaits) to
/// `Result<T, CallErr>`. The timeout is in milliseconds, as in ractor.
///
/// Such a call is not keyed, so not retried after an unknown outcome
/// (`NoReply`, `HolderDown`): see [`crate::GlobalClient::call_with`] for
/// why, and use [`crate::GlobalClient::call`] for a request that must
/// run at most once across retries.
///
/// ```
/// use ractor::ActorProcessingErr;
/// use ractor_takeover::fake::FakeCluster;
/// use ractor_takeover::*;
/// use serde::{Deserialize, Serialize};
/// use std::collections::HashMap;
///
/// #[derive(Serialize, Deserialize)]
/// enum KvMessage {
///     Put(String, u64),
///     Get(String, Reply<Option<u64>>),
/// }
///
/// struct Kv;
///
/// impl TakeoverActor for Kv {
///     type Msg = KvMessage;
///     type Reply = (); // every answer goes through a `Reply`
///     type State = HashMap<String, u64>;
///     type Arguments = ();
///     type Info = ();
///
///     async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<Self::State, ActorProcessingErr> {
///         Ok(HashMap::new())
///     }
///     async fn handle(&self, _: &TakeoverCtx<Self>, msg: KvMessage, kv: &mut Self::State)
///         -> Result<(), ActorProcessingErr> {
///         match msg {
///             KvMessage::Put(k, v) => { kv.insert(k, v); }
///             KvMessage::Get(k, reply) => { let _ = reply.send(kv.get(&k).copied()); }
///         }
///         Ok(())
///     }
/// }
///
/// # #[tokio::main] async fn main() {
/// let cluster = FakeCluster::new(["a", "b"]);
/// let server = TakeoverServer::new("kv", Kv, cluster.registry("a"), Default::default());
/// let (_kv, _) = server.spawn(()).await.unwrap();
/// let client = GlobalClient::<Kv>::new("kv", cluster.registry("b"));
/// // A call waits for the holder to reach b's view; a cast fails at once
/// // (`CallErr::NotRegistered`) while it has not.
/// let none = call_t!(client, KvMessage::Get, 5_000, "x".to_string());
/// assert_eq!(none, Ok(None));
/// cast!(client, KvMessage::Put("x".into(), 7)).unwrap();
/// let x = call_t!(client, KvMessage::Get, 5_000, "x".to_string());
/// assert_eq!(x, Ok(Some(7)));
/// # }
/// ```
#[macro_export]
macro_rules! call_t {
    ($client:expr, $msg:expr, $timeout_ms:expr) => {
        $client
            .call_with(
                |reply| $msg(reply),
                ::std::time::Duration::from_millis($timeout_ms),
            )
            .await
    };
    ($client:expr, $msg:expr, $timeout_ms:expr, $($args:expr),+ $(,)?) => {
        $client
            .call_with(
                |reply| $msg($($args),+, reply),
                ::std::time::Duration::from_millis($timeout_ms),
            )
            .await
    };
}

/// Sends a request without waiting for an answer, through a
/// [`crate::GlobalClient`], as ractor's `cast!` does for an actor:
/// `cast!(client, msg)` is `client.cast(msg)`, a `Result<(), CallErr>`
/// that fails only when no instance holds the name in this node's view.
/// A [`crate::Reply`] in a cast message is detached. See
/// [`call_t!`](crate::call_t!) for an example.
#[macro_export]
macro_rules! cast {
    ($client:expr, $msg:expr) => {
        $client.cast($msg)
    };
}
