//! How a message reaches an instance, and where a refused call goes next.
//!
//! "Remote" is decided by node name: an instance on this node gets the typed
//! message; one on another node gets its wire form, through the registry's
//! transport (ractor_cluster on a real cluster, the fake's links in tests).
//! On the destination node, whoever hands the wire form to the instance (the
//! token actor on a real cluster, the fake's link end in tests) calls
//! [`send_wire`] there, so a refused call is re-routed by one function,
//! [`reroute`], on every backend.

use std::sync::Arc;

use ractor::message::SerializedMessage;
use ractor::{ActorId, Message, MessagingErr};

use super::wire;
use super::TakeoverMessage;
use crate::{CallErr, Registration, Registry, TakeoverActor};

/// Sends `msg` to the instance `to`: typed if it runs on this node, in its
/// wire form through the registry's transport if not.
///
/// A call whose instance refuses it (it retired and drains, or died) was not
/// handled, so it is re-routed to the holder in the view of the node where
/// it was refused. Other messages are dropped then; their senders time out.
pub(crate) fn deliver<A: TakeoverActor>(
    registry: &Arc<dyn Registry>,
    to: &Registration,
    msg: TakeoverMessage<A>,
) {
    if to.node() != registry.node() {
        if let Some(wire) = to_wire(msg) {
            send_wire(registry, to, wire);
        }
        return;
    }
    let Err(MessagingErr::SendErr(msg)) = to.cell().send_message(msg) else {
        return;
    };
    if !matches!(msg, TakeoverMessage::Call { .. }) {
        tracing::debug!(name = to.name(), "instance gone; protocol message dropped");
        return;
    }
    // Re-routed in its wire form, like a call refused on any other node.
    if let Some(wire) = to_wire(msg) {
        reroute(registry, to.name(), to.cell().get_id(), wire);
    }
}

fn to_wire<A: TakeoverActor>(msg: TakeoverMessage<A>) -> Option<SerializedMessage> {
    msg.serialize()
        .map_err(|_| tracing::warn!("message has no wire form; not sent"))
        .ok()
}

/// Sends a message in its wire form to `to`, as a node's session delivers
/// it: straight to the instance if it runs on this node (which decodes it,
/// or drops it logged, as ractor does), through the transport if not.
pub(crate) fn send_wire(registry: &Arc<dyn Registry>, to: &Registration, wire: SerializedMessage) {
    let refused = if to.node() == registry.node() {
        match to.cell().send_serialized(wire) {
            Ok(()) => None,
            Err(e) => match *e {
                MessagingErr::SendErr(wire) => Some(wire),
                _ => None,
            },
        }
    } else {
        registry.send_wire(to, wire).err().flatten()
    };
    if let Some(wire) = refused {
        reroute(registry, to.name(), to.cell().get_id(), wire);
    }
}

/// A message for `name` that the instance `refused` did not take: a call
/// goes on to the holder in this node's view, while its re-route budget
/// lasts; otherwise a caller is told the name has no holder.
pub(crate) fn reroute(
    registry: &Arc<dyn Registry>,
    name: &str,
    refused: ActorId,
    wire: SerializedMessage,
) {
    if !wire::is_call(&wire) {
        tracing::debug!(name, "instance gone; protocol message dropped");
        return;
    }
    let left = wire::reroutes_left(&wire);
    match registry
        .lookup(name)
        .filter(|h| h.cell().get_id() != refused)
    {
        Some(next) if left > 0 => {
            send_wire(registry, &next, wire::with_reroutes_left(wire, left - 1));
        }
        _ => wire::answer_err(wire, CallErr::NotRegistered(name.to_string())),
    }
}
