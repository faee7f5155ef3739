//! Settings of one instance.

use std::time::Duration;

use crate::{EventHub, Placement};

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
    /// Where the instance publishes its events.
    pub events: EventHub,
    /// Automatic failover and takeover by node priority; `None` leaves moves
    /// to explicit [`crate::takeover`] and [`crate::go`] calls.
    pub placement: Option<Placement>,
}

impl Default for TakeoverConfig {
    fn default() -> Self {
        Self {
            buffer_capacity: 10_000,
            pull_timeout: Duration::from_secs(5),
            whereis_timeout: Duration::from_secs(5),
            max_state_bytes: 1 << 30,
            events: EventHub::default(),
            placement: None,
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

    /// Sets [`Self::events`].
    pub fn with_events(mut self, events: EventHub) -> Self {
        self.events = events;
        self
    }
}
