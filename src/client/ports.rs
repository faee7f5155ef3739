//! Calls whose message carries a [`Reply`]: the client side of
//! `crate::reply`, and what [`crate::call_t!`] expands to.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ractor::concurrency::{oneshot, OneshotReceiver};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::{down_count, wait_answer, Attempt, GlobalClient, Waited};
use crate::message::wire::{decode_answer, encode_args};
use crate::protocol::sealed;
use crate::reply::{decode_bound, Slot};
use crate::{CallErr, Protocol, Registration, Reply};

impl<A: Protocol> GlobalClient<A> {
    /// Sends the request that `make` builds around a fresh [`Reply`] and
    /// waits until `timeout` for what the handler sends on it, now or later:
    /// the call of ractor's `ActorRef::call`, which [`crate::call_t!`]
    /// writes for you.
    ///
    /// It finds the holder, waits for one and sends again a call that was
    /// certainly not handled, as [`GlobalClient::call`] does. Besides its
    /// errors, a deferred answer can end with [`CallErr::Moved`] (the state
    /// moved to another instance while the handler held the port: send the
    /// request again) or [`CallErr::ReplyDropped`] (the server dropped the
    /// port). The handler's own return value is not sent: the port answers.
    ///
    /// **Not exactly-once**: these calls carry no key, and a call whose
    /// outcome is unknown (`NoReply`, `HolderDown`) ends with that error;
    /// it is never sent again by itself, whatever
    /// [`GlobalClient::with_retries`] says. Why: the window of answered
    /// calls keeps a call's answer as it is known when the call has been
    /// applied, and here it is not known then. The answer is whatever the
    /// handler sends on the port, when it sends it: maybe during the call,
    /// maybe later from another call or an info, maybe never (a handover
    /// answers a held port `Moved`, a dropped one `ReplyDropped`). A
    /// retry would have to wait on the first try's port wherever it is
    /// (on the old holder, or in a state that moved), or get an answer
    /// the server cannot give (`Moved` tells the caller to send again,
    /// which is the duplicate the key is there to prevent). Make a request
    /// that must run once a [`GlobalClient::call`] (its reply is the
    /// handler's return value, kept in the window), or make it idempotent.
    pub async fn call_with<T, F>(&self, make: F, timeout: Duration) -> Result<T, CallErr>
    where
        T: DeserializeOwned,
        F: FnOnce(Reply<T>) -> A::Msg,
    {
        let deadline = Instant::now() + timeout;
        let mut holder = self.holder_before(deadline).await?;
        if holder.node() == self.inner.registry.node() {
            let (slot, rx) = byte_port(timeout);
            let msg = make(Reply::bound(slot.clone()));
            let bytes = self
                .call_local_port(&holder, msg, slot, rx, deadline)
                .await?;
            return decode_answer(&bytes);
        }
        // Encoded once, with the port as the unit it is on the wire (the
        // call's own byte port answers): every try sends the same bytes.
        let args = encode_args(&make(Reply::<T>::detached()))?;
        loop {
            let error = match self.call_remote(&holder, &args, None, deadline).await {
                Attempt::Done(done) => return done.and_then(|bytes| decode_answer(&bytes)),
                Attempt::NotHandled(e) => e,
            };
            holder = self.next_holder_after(&holder, error, deadline).await?;
            if holder.node() == self.inner.registry.node() {
                // The next holder is here: the request is decoded as the
                // holder's node decodes a call, its port bound to ours.
                let left = deadline.saturating_duration_since(Instant::now());
                let (slot, rx) = byte_port(left);
                let msg = decode_bound::<A::Msg>(&slot, &args)
                    .map_err(|e| CallErr::Codec(e.to_string()))?;
                let bytes = self
                    .call_local_port(&holder, msg, slot, rx, deadline)
                    .await?;
                return decode_answer(&bytes);
            }
        }
    }

    /// A call with a port to a holder on this node: the message goes typed,
    /// its answer comes in bytes (the port does not know the answer's type
    /// at the runtime's end).
    async fn call_local_port(
        &self,
        holder: &Registration,
        msg: A::Msg,
        slot: Arc<Slot>,
        rx: OneshotReceiver<Vec<u8>>,
        deadline: Instant,
    ) -> Result<Vec<u8>, CallErr> {
        let mut downs = self.inner.downs.clone();
        let seen = down_count(&mut downs, holder.node());
        A::deliver(
            &self.inner.registry,
            holder,
            msg,
            Some(sealed::Answer::Slot(sealed::SlotRef(slot))),
        );
        match wait_answer(rx, &mut downs, holder.node(), seen, deadline).await {
            Waited::Answer(bytes) => Ok(bytes),
            Waited::Closed => {
                self.inner.stale.store(true, Ordering::Release);
                Err(CallErr::NoReply)
            }
            Waited::Down => self.holder_down(holder),
            Waited::Deadline => Err(CallErr::Timeout),
        }
    }
}

/// A byte port with `timeout` and the receiving end.
fn byte_port(timeout: Duration) -> (Arc<Slot>, OneshotReceiver<Vec<u8>>) {
    let (tx, rx) = oneshot::<Vec<u8>>();
    (Slot::new((tx, timeout).into()), rx)
}
