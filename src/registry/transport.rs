//! The transport side of a backend: how a message reaches another node.
//!
//! `pub` in a private module: [`crate::Registry`] names it as a supertrait,
//! and nobody outside the crate can, which seals the registry.

use ractor::message::SerializedMessage;
use ractor::ActorCell;

use crate::Registration;

/// How a node's messages reach instances on other nodes.
pub trait Transport: Send + Sync + 'static {
    /// Sends a message in its wire form to the instance `to` on another
    /// node: ractor_cluster carries it on a real cluster (`to` is a proxy of
    /// the registration's token), the fake cluster's link does in tests. On
    /// the destination node it is handed to the instance as a session
    /// delivers it. `Err` means it was not sent (the session to the node is
    /// gone), with the message when the backend gives it back.
    fn send_wire(
        &self,
        to: &Registration,
        msg: SerializedMessage,
    ) -> Result<(), Option<SerializedMessage>>;

    /// Ties an instance's lifetime to this node's process (the fake cluster
    /// kills attached instances when the node crashes; a real process dies
    /// with its actors). The default does nothing.
    fn attach(&self, _instance: &ActorCell) {}
}
