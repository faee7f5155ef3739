//! Settings of one instance.

use std::time::Duration;

use std::sync::Arc;

use crate::{ConflictResolver, EventHub, NewerLineage, Placement};

/// Settings of a [`crate::TakeoverServer`]. Start from `Default` and change
/// what you need with the `with_*` methods.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TakeoverConfig {
    /// How many calls the new holder keeps while it waits for the old state.
    /// Why bounded: a stuck transfer must not grow memory without limit; a
    /// call over the bound is answered with `CallErr::BufferFull`, never dropped.
    pub buffer_capacity: usize,
    /// How long a new holder waits for the old state before it rolls the steal
    /// back (the old holder still looked alive) or starts as a failover (the
    /// old holder is gone).
    pub pull_timeout: Duration,
    /// How long the start-up safe lookup waits for the registry to settle.
    pub whereis_timeout: Duration,
    /// The largest encoded state this instance sends or accepts.
    pub max_state_bytes: usize,
    /// A state larger than this travels in parts of this size, each
    /// acknowledged, with at most two parts in flight (see
    /// [`crate::HandoverMsg::StatePart`]); a smaller one in one message.
    pub state_part_bytes: usize,
    /// Where the instance publishes its events.
    pub events: EventHub,
    /// Automatic failover and takeover by node priority; `None` leaves moves
    /// to explicit [`crate::takeover`] and [`crate::go`] calls.
    pub placement: Option<Placement>,
    /// Who wins when two holders of the name meet after a partition or a
    /// hang (default [`NewerLineage`]: the newer state wins).
    pub resolver: Arc<dyn ConflictResolver>,
    /// How often a holder that sees another registration of its name sends
    /// it its claim again while no claim came back (a lost message, or a
    /// view that lags), and how long it waits for a newer registration's
    /// handover request before it reports `ConflictSuspected`. A holder
    /// below the newer registration holds its calls (does not serve) until
    /// the state request or the claim comes, so a stale holder stops
    /// serving at once; a rival's claim settles the conflict without
    /// waiting for the grace.
    pub conflict_grace: Duration,
    /// Warm standby: send checkpoints of the state to the standbys. Off by default.
    pub checkpoint: Option<CheckpointPolicy>,
    /// Refuse to become holder without a majority of the placement's nodes
    /// live. Prevents two holders in a partition, at the cost of no holder at
    /// all in a minority partition (and in a cluster that has lost its
    /// majority). Needs a placement.
    pub quorum: bool,
}

/// When a holder sends checkpoints of its state to the standbys.
///
/// A failover then loses at most the calls handled since the last checkpoint
/// the new holder received: fewer than `every_calls`, or those of the last
/// `every` interval, plus any checkpoint still on its way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// After this many handled calls (at least 1).
    pub every_calls: Option<u64>,
    /// And/or at this interval (only when calls were handled since the last one).
    pub every: Option<Duration>,
}

impl CheckpointPolicy {
    /// A checkpoint after every `n` handled calls.
    pub fn every_calls(n: u64) -> Self {
        Self {
            every_calls: Some(n.max(1)),
            every: None,
        }
    }

    /// A checkpoint every `interval` (if anything changed).
    pub fn every(interval: Duration) -> Self {
        Self {
            every_calls: None,
            every: Some(interval),
        }
    }
}

impl Default for TakeoverConfig {
    fn default() -> Self {
        Self {
            buffer_capacity: 10_000,
            pull_timeout: Duration::from_secs(5),
            whereis_timeout: Duration::from_secs(5),
            max_state_bytes: 1 << 30,
            state_part_bytes: 4 << 20,
            events: EventHub::default(),
            placement: None,
            resolver: Arc::new(NewerLineage),
            conflict_grace: Duration::from_secs(1),
            checkpoint: None,
            quorum: false,
        }
    }
}

impl TakeoverConfig {
    /// Sets [`Self::buffer_capacity`].
    pub fn with_buffer_capacity(mut self, capacity: usize) -> Self {
        self.buffer_capacity = capacity;
        self
    }

    /// Sets [`Self::pull_timeout`].
    pub fn with_pull_timeout(mut self, timeout: Duration) -> Self {
        self.pull_timeout = timeout;
        self
    }

    /// Sets [`Self::whereis_timeout`].
    pub fn with_whereis_timeout(mut self, timeout: Duration) -> Self {
        self.whereis_timeout = timeout;
        self
    }

    /// Sets [`Self::state_part_bytes`] (at least 1).
    pub fn with_state_part_bytes(mut self, bytes: usize) -> Self {
        self.state_part_bytes = bytes.max(1);
        self
    }

    /// Sets [`Self::max_state_bytes`].
    pub fn with_max_state_bytes(mut self, max: usize) -> Self {
        self.max_state_bytes = max;
        self
    }

    /// Sets [`Self::placement`].
    pub fn with_placement(mut self, placement: Placement) -> Self {
        self.placement = Some(placement);
        self
    }

    /// Sets [`Self::resolver`].
    pub fn with_resolver(mut self, resolver: impl ConflictResolver) -> Self {
        self.resolver = Arc::new(resolver);
        self
    }

    /// Sets [`Self::conflict_grace`].
    pub fn with_conflict_grace(mut self, grace: Duration) -> Self {
        self.conflict_grace = grace;
        self
    }

    /// Turns warm standby on: see [`CheckpointPolicy`].
    pub fn with_checkpoints(mut self, policy: CheckpointPolicy) -> Self {
        self.checkpoint = Some(policy);
        self
    }

    /// Sets [`Self::quorum`].
    pub fn with_quorum(mut self, on: bool) -> Self {
        self.quorum = on;
        self
    }

    /// Sets [`Self::events`].
    pub fn with_events(mut self, events: EventHub) -> Self {
        self.events = events;
        self
    }
}
