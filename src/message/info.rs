//! The instance's own messages: what [`crate::TakeoverCtx::send_info`] and
//! its timers send, handled by [`crate::TakeoverActor::handle_info`].

use crate::{Epoch, TakeoverActor};

/// An info of the instance, with the tenure it was sent in.
///
/// Its fields are private to the crate, and nothing outside it can make one:
/// only [`crate::TakeoverCtx`] does. Why: an info is not a call. A client
/// holding the instance's `ActorRef` must not be able to forge a timer
/// tick, and an info must never be forwarded to another instance (it has no
/// wire form, so it cannot be).
pub(crate) struct OwnInfo<A: TakeoverActor> {
    /// The tenure (the epoch at its `go`) it belongs to: an info of an
    /// earlier tenure is dropped.
    pub(crate) tenure: Epoch,
    pub(crate) info: A::Info,
}

impl<A: TakeoverActor> std::fmt::Debug for OwnInfo<A> {
    /// The tenure only: `A::Info` need not be `Debug`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnInfo")
            .field("tenure", &self.tenure)
            .finish_non_exhaustive()
    }
}
