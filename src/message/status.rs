//! What an instance reports about itself and about a finished takeover.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Epoch, RegistrationInfo, StartType};

/// What a finished takeover did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HandoverReport {
    /// The new holder's registration.
    pub holder: RegistrationInfo,
    /// How it started (a takeover whose old holder vanished ends as a failover).
    pub start: StartType,
    /// Size of the transferred state (0 on a failover).
    pub state_bytes: usize,
    /// From the steal until the buffered calls were served.
    pub pause: Duration,
    /// Calls that waited in the buffer.
    pub buffered: usize,
}

/// The phase of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Phase {
    /// Waiting for a `go`.
    Standby,
    /// Stole the name, waiting for the old state.
    Pulling,
    /// Holds the name and serves.
    Holder,
    /// Handed its state over; forwards what reaches it.
    Retiring,
    /// Lost a split-brain conflict; offered its state to the winner and
    /// forwards what reaches it.
    Yielding,
}

/// What an instance is doing, from [`crate::TakeoverRef::status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InstanceStatus {
    /// Its phase.
    pub phase: Phase,
    /// Its epoch, while it has a registration.
    pub epoch: Option<Epoch>,
    /// Its node.
    pub node: crate::NodeName,
    /// The last time the name moved to this instance: from where, why,
    /// under which epoch. It stays after the instance hands the name on:
    /// the holder's is the newest.
    pub last_move: Option<LastMove>,
}

/// One move of a name to an instance ([`InstanceStatus::last_move`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LastMove {
    /// The node that held the name before, if known.
    pub from: Option<crate::NodeName>,
    /// Why the name moved.
    pub reason: crate::event::MoveReason,
    /// The epoch the instance held it under.
    pub epoch: Epoch,
}
