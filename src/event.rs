//! Events: every transition of an instance, for subscribers and metrics.

use std::time::Duration;

use tokio::sync::broadcast;

use crate::{Epoch, NodeName, RegistrationInfo, StartType, TakeoverErr};

/// One transition of one instance.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TakeoverEvent {
    /// The global name.
    pub name: String,
    /// The node of the instance the event is about.
    pub node: NodeName,
    /// The instance's epoch when the event happened, if it had one.
    pub epoch: Option<Epoch>,
    /// What happened.
    pub kind: EventKind,
}

/// What happened to an instance.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EventKind {
    /// The instance holds the name and runs; `start` says how it started.
    Registered {
        /// Normal, failover or takeover.
        start: StartType,
    },
    /// The instance found the name held and waits for a `go`.
    Standby {
        /// The holder it saw, if any.
        holder: Option<RegistrationInfo>,
    },
    /// The instance stole the name and asked the old holder for its state.
    TakeoverStarted {
        /// The old holder.
        from: RegistrationInfo,
    },
    /// The old holder sent its state and now forwards what reaches it.
    StateSent {
        /// The new holder.
        to: RegistrationInfo,
        /// Size of the encoded state.
        bytes: usize,
    },
    /// The new holder received and installed the state.
    StateTransferred {
        /// The old holder.
        from: RegistrationInfo,
        /// Size of the encoded state.
        bytes: usize,
        /// From the steal to the installed state.
        duration: Duration,
    },
    /// The takeover finished: the new holder serves, buffered calls included.
    HandoverDone {
        /// The old holder.
        from: RegistrationInfo,
        /// From the steal until the buffered calls were served.
        pause: Duration,
        /// How many calls waited in the buffer.
        buffered: usize,
    },
    /// The takeover failed and was rolled back; the old holder keeps the name.
    TakeoverAborted {
        /// Why.
        error: TakeoverErr,
    },
    /// The old holder went away before its state arrived: the new holder runs
    /// as a failover, with the state it had (the old state is lost).
    StateLost {
        /// The old holder.
        from: RegistrationInfo,
    },
    /// The old holder got its name back after the takeover was aborted.
    HandoverResumed {
        /// The instance whose takeover failed.
        successor: RegistrationInfo,
    },
    /// The old holder retired: its state is safe with `to`, it unregistered,
    /// and it waits as a standby again (a `Standby` event follows).
    Retired {
        /// The new holder.
        to: RegistrationInfo,
        /// Calls it forwarded to the new holder.
        forwarded: usize,
    },
    /// A registration of the name ranked above ours did not ask for a
    /// handover within the conflict grace: two holders; resolution follows.
    ConflictSuspected {
        /// The other registration.
        other: RegistrationInfo,
    },
    /// Two holders met; this one won and keeps the name.
    ConflictWon {
        /// The loser.
        loser: RegistrationInfo,
    },
    /// Two holders met; this one lost, offered its state, and forwards.
    ConflictLost {
        /// The winner.
        winner: RegistrationInfo,
    },
    /// The winner of a conflict held its calls for the loser's state, which
    /// did not come within `pull_timeout` (lost on the way, or the loser
    /// could not send it): it serves without it. What the loser
    /// acknowledged and did not forward is not in this holder's state.
    MergeMissed {
        /// The loser it waited for.
        loser: RegistrationInfo,
    },
    /// The winner received the loser's state.
    SplitBrainHealed {
        /// The loser.
        loser: RegistrationInfo,
        /// Whether its state was merged or dropped (or could not be read: `None`).
        outcome: Option<crate::MergeOutcome>,
        /// Size of the loser's state.
        bytes: usize,
    },
    /// A holder sent a checkpoint to the standbys.
    CheckpointSent {
        /// Its number.
        seq: u64,
        /// Its size.
        bytes: usize,
        /// How many standbys it went to (a standby still receiving an
        /// earlier checkpoint in parts skips this one).
        standbys: usize,
    },
    /// A standby kept a checkpoint.
    CheckpointStored {
        /// From which holder.
        holder: RegistrationInfo,
        /// Its number.
        seq: u64,
    },
    /// A standby refused a checkpoint (stale epoch, wrong name, too large or
    /// undecodable); it keeps the one it had.
    CheckpointRejected {
        /// Why.
        reason: String,
    },
    /// Synchronous standby with `NoStandby::Async`: no standby stored the
    /// holder's calls (none in view, or none acknowledged within
    /// `ack_timeout`), so it answers them without, as warm standby would:
    /// a crash now loses what it answers until [`Self::SyncRestored`].
    SyncLost {
        /// Why.
        reason: String,
    },
    /// Synchronous standby: a standby has caught up again; the holder
    /// answers only what it stored.
    SyncRestored,
    /// A call was rejected because the handover buffer was full.
    BufferFull {
        /// The buffer's capacity.
        capacity: usize,
    },
    /// Quorum mode: the holder sees fewer than a majority of the placement's
    /// nodes live; it holds calls (in the handover buffer) instead of
    /// serving them, so a minority holder acknowledges nothing.
    QuorumLost {
        /// The nodes it sees live.
        live: Vec<crate::NodeName>,
    },
    /// Quorum mode: a majority is live again; the held calls are served.
    QuorumRegained,
    /// A takeover placement started failed (after its
    /// [`EventKind::TakeoverAborted`]); the standby tries again after
    /// `retry_in`, which grows with every failure in a row (see
    /// [`crate::Placement::retry_delay`]).
    TakeoverFailed {
        /// Why this try failed.
        error: TakeoverErr,
        /// Failed tries in a row, this one included.
        failures: u32,
        /// How long the standby waits before the next try.
        retry_in: Duration,
    },
    /// The handler failed on a call (it returned an error or panicked): the
    /// caller got the error, the instance gave the name up, answers the calls
    /// queued behind that one with [`crate::CallErr::InstanceStopped`], and
    /// stops, as a ractor actor does.
    HandlerFailed {
        /// What the caller was told.
        error: crate::CallErr,
    },
    /// The holder has no lease (see `Registry::lease_until`): this node
    /// stalled, or a peer has not answered since it came up, so another node
    /// may have declared it down. It holds calls (in the handover buffer)
    /// until the lease is back.
    LeaseLost,
    /// The lease is back; the held calls are served (unless a newer holder
    /// showed meanwhile).
    LeaseRegained,
}

/// Where instances publish their [`TakeoverEvent`]s. Cheap to clone; share one
/// hub between instances to watch them all.
///
/// A subscriber that falls more than the hub's capacity behind loses the
/// oldest events (it sees `RecvError::Lagged`); events are diagnostics, the
/// protocol never depends on them.
#[derive(Clone, Debug)]
pub struct EventHub {
    tx: broadcast::Sender<TakeoverEvent>,
}

impl EventHub {
    /// A hub that keeps up to `capacity` events for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    /// Subscribes to every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<TakeoverEvent> {
        self.tx.subscribe()
    }

    pub(crate) fn publish(&self, event: TakeoverEvent) {
        tracing::debug!(name = %event.name, node = %event.node, epoch = ?event.epoch, kind = ?event.kind, "takeover event");
        // No subscriber is not an error: events are optional diagnostics.
        let _ = self.tx.send(event);
    }
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new(1024)
    }
}
