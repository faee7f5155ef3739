//! Errors, one small enum per failure domain.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::NodeName;

/// Errors of a node's view of the cluster-global names.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryErr {
    /// The name is held by a live instance; registering again would create a
    /// second holder. Wait as a standby, or take the name over instead.
    AlreadyRegistered {
        /// The name.
        name: String,
        /// The node of the current holder.
        holder: NodeName,
        /// The holder's epoch.
        epoch: u64,
    },
    /// Registry changes stayed in flight for the whole wait: the view could
    /// not settle. Retry later or raise the timeout.
    NotSettled {
        /// How long the lookup waited.
        waited: Duration,
    },
    /// This node is down (crashed in the fake cluster, or its node server is gone).
    NodeDown(NodeName),
    /// The backend failed.
    Backend(String),
    /// This node is client-only (`ClusterConfig::client_only`): it calls
    /// global names and never holds one. Run the server on a node that is
    /// not client-only.
    ClientOnly(NodeName),
}

impl fmt::Display for RegistryErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyRegistered {
                name,
                holder,
                epoch,
            } => write!(
                f,
                "name {name:?} is already held by node {holder} at epoch {epoch}; wait as a standby or take it over"
            ),
            Self::NotSettled { waited } => write!(
                f,
                "registry changes were still in flight after {waited:?}; retry or raise the timeout"
            ),
            Self::NodeDown(node) => write!(f, "node {node} is down"),
            Self::Backend(msg) => write!(f, "registry backend failed: {msg}"),
            Self::ClientOnly(node) => write!(
                f,
                "node {node} is client-only and holds no name; run the server on another node"
            ),
        }
    }
}

impl std::error::Error for RegistryErr {}

/// A state that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StateCodecErr {
    /// Encoding the state failed on the old instance.
    Encode(String),
    /// Decoding the transferred bytes failed on the new instance.
    Decode(String),
    /// The encoded state is larger than the configured maximum.
    TooLarge {
        /// Size of the encoded state.
        bytes: usize,
        /// The configured maximum (`TakeoverConfig::max_state_bytes`).
        max: usize,
    },
}

impl fmt::Display for StateCodecErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Encode(e) => write!(f, "could not encode the state: {e}"),
            Self::Decode(e) => write!(
                f,
                "could not decode the transferred state: {e}; the old instance keeps serving"
            ),
            Self::TooLarge { bytes, max } => write!(
                f,
                "the encoded state is {bytes} bytes, over the maximum of {max}; raise max_state_bytes"
            ),
        }
    }
}

impl std::error::Error for StateCodecErr {}

/// Why a takeover (or a `go` request) did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TakeoverErr {
    /// The instance asked to take over is not a standby (it already holds the
    /// name, is pulling state, or is retiring).
    NotStandby,
    /// No live instance holds the name, so there is nothing to take over.
    /// Start the standby with a failover instead.
    NoHolder,
    /// The old instance did not send its state within the pull timeout while
    /// it still looked alive (a partition or a hung node). The steal was
    /// rolled back; the old instance keeps the name.
    Timeout {
        /// The pull timeout that passed.
        after: Duration,
    },
    /// The state could not be encoded, decoded, or was too large. The steal was
    /// rolled back; the old instance keeps the name and its state.
    State(StateCodecErr),
    /// The old instance refused the handover (it no longer held the name at
    /// the epoch the request named).
    Refused(String),
    /// The registry failed.
    Registry(RegistryErr),
    /// The instance stopped before the takeover completed.
    InstanceGone,
    /// Quorum mode is on and fewer than a majority of the placement's nodes
    /// are live: this instance may not become holder.
    NoQuorum,
}

impl fmt::Display for TakeoverErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotStandby => write!(f, "the instance is not a standby; only a standby can take over"),
            Self::NoHolder => write!(f, "no live instance holds the name; start a failover instead"),
            Self::Timeout { after } => write!(
                f,
                "the old instance sent no state within {after:?}; the takeover was rolled back and the old instance keeps the name"
            ),
            Self::State(e) => write!(f, "takeover aborted: {e}"),
            Self::Refused(why) => write!(f, "the old instance refused the handover: {why}"),
            Self::Registry(e) => write!(f, "takeover aborted by the registry: {e}"),
            Self::InstanceGone => write!(f, "the instance stopped before the takeover completed"),
            Self::NoQuorum => write!(
                f,
                "quorum mode: fewer than a majority of the placement's nodes are live, so no holder may start here"
            ),
        }
    }
}

impl std::error::Error for TakeoverErr {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::State(e) => Some(e),
            Self::Registry(e) => Some(e),
            _ => None,
        }
    }
}

impl From<RegistryErr> for TakeoverErr {
    fn from(value: RegistryErr) -> Self {
        Self::Registry(value)
    }
}

/// Why a call to a global name got no reply from the server's handler.
///
/// It travels back to the caller inside the reply, so it is serializable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CallErr {
    /// No instance holds the name (and no standby could take the call).
    NotRegistered(String),
    /// The deadline passed before a reply came.
    Timeout,
    /// The new holder's handover buffer was full; the call was not handled.
    /// Retry after the takeover, or raise `TakeoverConfig::buffer_capacity`.
    BufferFull {
        /// The buffer's capacity.
        capacity: usize,
    },
    /// The server's handler returned an error for this call (the server then
    /// fails, as a ractor actor does).
    Handler(String),
    /// The message could not be encoded or decoded on its way.
    Codec(String),
    /// The call was lost on its way or with its instance (a link failed, or
    /// the instance died before answering); it may not have been handled.
    NoReply,
    /// The server's handler panicked on this call. The instance stops, as a
    /// ractor actor does when it panics (its state may be half updated), and
    /// a standby takes the name; the call may have been partly applied.
    Panicked(String),
    /// The holder's handler failed (returned an error or panicked) on an
    /// earlier call while this one waited behind it; the instance stopped and
    /// this call was not handled. Retry: a standby takes the name.
    InstanceStopped(String),
    /// This node's failure detector marked the holder's node down while the
    /// call waited for its reply. The call may or may not have been applied:
    /// retry only a request that is safe to apply twice (or deduplicated).
    HolderDown {
        /// The holder's node.
        node: NodeName,
    },
    /// The call's [`crate::Reply`] was held by the handler (a deferred
    /// answer) when the server's state moved to another instance, by a
    /// takeover or a split-brain merge: the request was handled, its answer
    /// cannot come. Send it again: it reaches the new holder, in whose state
    /// the old port is detached.
    Moved,
    /// The server dropped the call's [`crate::Reply`] without answering it
    /// (its handler did, or its instance stopped with the port in its
    /// state). The request was handled, perhaps only in part.
    ReplyDropped,
    /// A retried call (an earlier try of it ended with its outcome
    /// unknown) whose key the server's window of answered calls no longer
    /// reaches back to: it was **not** applied now, and it may or may not
    /// have been applied before; the server cannot tell, so it does not run
    /// it a second time. Raise `TakeoverConfig::dedup_window` if this
    /// happens (more keyed calls were applied between this one's first try
    /// and its retry than the window holds). A first try that gets it is
    /// sent again by [`crate::GlobalClient`] itself and never reaches you.
    PastDedupWindow {
        /// How many keyed calls the server applied so far: the client
        /// sends it back, to say which calls it knows of.
        applied: u64,
    },
    /// Synchronous standby with [`crate::config::NoStandby::Refuse`]: no standby
    /// could store the call's effect, so the holder did not apply it.
    /// Retry once a standby runs (or choose `NoStandby::Async`).
    NoStandby,
}

impl fmt::Display for CallErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRegistered(name) => write!(f, "no instance holds the name {name:?}"),
            Self::Timeout => write!(f, "the call's deadline passed before a reply came"),
            Self::BufferFull { capacity } => write!(
                f,
                "the handover buffer is full ({capacity} calls); the call was not handled, retry after the takeover"
            ),
            Self::Handler(e) => write!(f, "the server's handler failed: {e}"),
            Self::Codec(e) => write!(f, "the message could not be encoded or decoded: {e}"),
            Self::NoReply => write!(
                f,
                "the call was lost on its way or with its instance; it may not have been handled"
            ),
            Self::Panicked(e) => write!(
                f,
                "the server's handler panicked on this call ({e}); the instance stops and a standby takes over"
            ),
            Self::InstanceStopped(e) => write!(
                f,
                "the holder stopped before handling this call (its handler failed: {e}); the call was not applied, retry"
            ),
            Self::NoStandby => write!(
                f,
                "no synchronous standby could store the call, so it was not applied; retry once a standby runs"
            ),
            Self::HolderDown { node } => write!(
                f,
                "the holder's node {node} was marked down while the call waited; it may or may not have been applied"
            ),
            Self::Moved => write!(
                f,
                "the server's state moved to another instance while this call waited for its deferred answer; send it again"
            ),
            Self::ReplyDropped => write!(
                f,
                "the server dropped this call's reply port without answering"
            ),
            Self::PastDedupWindow { applied } => write!(
                f,
                "this retried call is older than the server's window of answered calls (at {applied}): not applied now, it may or may not have been before; raise dedup_window"
            ),
        }
    }
}

impl std::error::Error for CallErr {}

/// Settings that cannot work, refused before anything starts: a
/// [`crate::TakeoverConfig`] when its instance spawns (see
/// [`crate::TakeoverServer::spawn`]), a [`crate::cluster::ClusterConfig`]
/// when its node starts; instead of failing later, in the middle of a
/// handover.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErr {
    /// The lease margin leaves no lease: it is not shorter than the failure
    /// detection time (`heartbeat_interval x heartbeat_misses`). Lower the
    /// margin or raise the detection time.
    NoLease {
        /// The detection time.
        detection: Duration,
        /// The margin asked for.
        margin: Duration,
    },
    /// A timeout or interval that must be above zero is zero
    /// (`pull_timeout`, the checkpoint interval, the cluster's timeouts).
    ZeroTimeout(&'static str),
    /// A state part (`TakeoverConfig::state_part_bytes`, plus
    /// [`crate::TakeoverConfig::PART_ENVELOPE_BYTES`] for its message's envelope) does not
    /// fit in one frame of the backend ([`crate::Registry::max_frame_bytes`],
    /// `ClusterConfig::max_frame_bytes` on a real node): the first part
    /// would close the session, every time. Lower the part size or raise
    /// the frame cap.
    PartOverFrame {
        /// The part size asked for.
        part_bytes: usize,
        /// The frame cap.
        max_frame_bytes: u64,
    },
    /// `state_part_bytes` is 0: no state could be sent in parts.
    ZeroPartSize,
    /// `TakeoverConfig::dedup_window` is 0: no answered call could be
    /// kept, and every retried call would be refused
    /// ([`CallErr::PastDedupWindow`]). Set it to at least 1; turn retries
    /// off on the client instead ([`crate::GlobalClient::with_retries`]).
    ZeroDedupWindow,
    /// `max_state_bytes` is below `state_part_bytes`: every state that
    /// would need parts is refused anyway.
    MaxStateBelowPart {
        /// `max_state_bytes`.
        max_state: usize,
        /// `state_part_bytes`.
        part: usize,
    },
    /// `TakeoverConfig::whereis_timeout` is below the longest a safe lookup
    /// can need on the backend ([`crate::Registry::settle_time`]; on a real
    /// node `ClusterConfig::settle_time`: its `startup_timeout` plus the
    /// detection time and one heartbeat interval). An instance spawned while
    /// a peer is still connecting would fail its start with
    /// `RegistryErr::NotSettled`. Raise `whereis_timeout` or lower the
    /// node's `startup_timeout`.
    WhereisBelowSettle {
        /// `whereis_timeout`.
        whereis: Duration,
        /// The longest a safe lookup can need.
        settle: Duration,
    },
    /// The holder lease (the detection time minus the lease margin) is not
    /// longer than one heartbeat interval: it runs out before the next
    /// heartbeat's answer can renew it, so a healthy holder holds its calls
    /// for part of every interval. Lower the margin or the interval, or
    /// raise the misses.
    LeaseBelowInterval {
        /// The lease.
        lease: Duration,
        /// The heartbeat interval.
        interval: Duration,
    },
    /// `ClusterConfig::runtime_timeout` is shorter than the heartbeat
    /// interval: an ordinary late tick of a loaded runtime would be taken
    /// for a wedge, and the node would fall silent while it works. Raise
    /// it (the default is 5 s).
    RuntimeTimeoutBelowInterval {
        /// The runtime timeout.
        runtime_timeout: Duration,
        /// The heartbeat interval.
        interval: Duration,
    },
    /// `TakeoverConfig::quorum` is on but there is no placement: quorum is
    /// a majority of the placement's nodes, so there would be no quorum
    /// check at all. Set a placement or turn quorum off.
    QuorumWithoutPlacement,
    /// A checkpoint policy with neither `every_calls` nor `every`: warm
    /// standby is on but no checkpoint would ever be sent. Set one of them
    /// or turn checkpoints off.
    CheckpointNever,
    /// The phi accrual threshold is not a finite number above zero
    /// (`ClusterConfig::with_phi_accrual`): every peer would be down at
    /// once, or never by phi. Give it a value such as 8 (Akka's and
    /// Cassandra's default).
    BadPhiThreshold(String),
    /// The phi accrual detector's ceiling (`max_detection`) is below its
    /// floor, the detection time (`heartbeat_interval x heartbeat_misses`),
    /// which the holder lease is counted from. Raise `max_detection` or
    /// lower the detection time.
    MaxDetectionBelowFloor {
        /// The ceiling asked for.
        max_detection: Duration,
        /// The detection time (the floor).
        detection: Duration,
    },
    /// `TakeoverConfig::move_limit` is 0: no placement takeover could ever
    /// start, so a returning preferred node would never get its names
    /// back. Set it to at least 1.
    ZeroMoveLimit,
}

impl fmt::Display for ConfigErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoLease { detection, margin } => write!(
                f,
                "the lease margin {margin:?} is not below the detection time {detection:?}, so a holder never has a lease; lower the margin or raise the detection time"
            ),
            Self::ZeroTimeout(what) => write!(f, "{what} must be above zero"),
            Self::PartOverFrame {
                part_bytes,
                max_frame_bytes,
            } => write!(
                f,
                "state parts of {part_bytes} bytes (plus their envelope) do not fit in frames of at most {max_frame_bytes} bytes; lower state_part_bytes or raise max_frame_bytes"
            ),
            Self::ZeroPartSize => write!(f, "state_part_bytes is 0; set it to at least 1"),
            Self::ZeroDedupWindow => write!(
                f,
                "dedup_window is 0; set it to at least 1 (turn retries off on the client instead)"
            ),
            Self::ZeroMoveLimit => write!(
                f,
                "move_limit is 0, so no placement takeover could start; set it to at least 1"
            ),
            Self::MaxStateBelowPart { max_state, part } => write!(
                f,
                "max_state_bytes ({max_state}) is below state_part_bytes ({part}); raise max_state_bytes or lower the part size"
            ),
            Self::WhereisBelowSettle { whereis, settle } => write!(
                f,
                "whereis_timeout {whereis:?} is below the {settle:?} a start-up lookup can need on this node (its startup_timeout, the detection time and one heartbeat interval); raise whereis_timeout or lower startup_timeout"
            ),
            Self::LeaseBelowInterval { lease, interval } => write!(
                f,
                "the holder lease {lease:?} is not longer than the heartbeat interval {interval:?}, so it runs out before a heartbeat can renew it; lower the lease margin or the interval, or raise the misses"
            ),
            Self::RuntimeTimeoutBelowInterval {
                runtime_timeout,
                interval,
            } => write!(
                f,
                "runtime_timeout {runtime_timeout:?} is shorter than the heartbeat interval {interval:?}, so a loaded but working runtime would be taken for a wedged one; raise runtime_timeout"
            ),
            Self::QuorumWithoutPlacement => write!(
                f,
                "quorum is on but there is no placement to count a majority of; set a placement or turn quorum off"
            ),
            Self::CheckpointNever => write!(
                f,
                "the checkpoint policy sets neither every_calls nor every, so no checkpoint would be sent; set one or turn checkpoints off"
            ),
            Self::BadPhiThreshold(phi) => write!(
                f,
                "the phi accrual threshold {phi} is not a finite number above zero; use a value such as 8"
            ),
            Self::MaxDetectionBelowFloor {
                max_detection,
                detection,
            } => write!(
                f,
                "max_detection {max_detection:?} is below the detection time {detection:?} that the holder lease counts from; raise max_detection or lower the detection time"
            ),
        }
    }
}

impl std::error::Error for ConfigErr {}

/// Why an instance could not send itself an info or start a timer (see
/// [`crate::TakeoverCtx::send_after`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InfoErr {
    /// The instance does not hold the name (a standby, a pull, `init`):
    /// infos and timers belong to a holder. Start them in
    /// [`crate::TakeoverActor::go`].
    NotHolding,
    /// An interval of zero: give it a period above zero.
    ZeroPeriod,
    /// The instance no longer takes messages (it is stopping).
    Stopped,
}

impl fmt::Display for InfoErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotHolding => write!(
                f,
                "the instance does not hold the name; start infos and timers in `go`"
            ),
            Self::ZeroPeriod => write!(f, "an interval needs a period above zero"),
            Self::Stopped => write!(f, "the instance no longer takes messages"),
        }
    }
}

impl std::error::Error for InfoErr {}
