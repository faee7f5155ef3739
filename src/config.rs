//! Settings of one instance: [`TakeoverConfig`] (also at the crate root)
//! and the policies it takes: [`CheckpointPolicy`] (warm standby, also at
//! the root), [`SyncStandby`] with [`NoStandby`] (synchronous standby), and
//! [`MoveLimit`] (how many names a node moves at once).

use std::time::Duration;

use std::sync::Arc;

use crate::{ConfigErr, ConflictResolver, EventHub, NewerLineage, Placement};

/// Settings of a [`crate::TakeoverServer`]. Start from `Default` and change
/// what you need with the `with_*` methods.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TakeoverConfig {
    /// How many calls the new holder keeps while it waits for the old state.
    /// Why bounded: a stuck transfer must not grow memory without limit; a
    /// call over the bound is answered with `CallErr::BufferFull`, never dropped.
    /// Default: 10 000.
    pub buffer_capacity: usize,
    /// How long a new holder waits for the old state before it rolls the steal
    /// back (the old holder still looked alive) or starts as a failover (the
    /// old holder is gone). Default: 5 s; zero is refused at spawn.
    pub pull_timeout: Duration,
    /// How long the start-up safe lookup waits for the registry to settle
    /// (10 s by default). It must be at least the backend's
    /// [`crate::Registry::settle_time`] (on a real node, its
    /// `startup_timeout` plus the detection time and one heartbeat interval,
    /// 6.2 s with the defaults): an instance spawned as its node starts
    /// waits that long for a peer that is still connecting. A shorter one is
    /// refused when the instance spawns (`ConfigErr::WhereisBelowSettle`).
    pub whereis_timeout: Duration,
    /// The largest encoded state this instance sends or accepts (at least
    /// `state_part_bytes`). Default: 1 GiB.
    pub max_state_bytes: usize,
    /// A state larger than this (a takeover reply, a merge offer, a
    /// checkpoint) travels in parts of this size, each acknowledged, with at
    /// most two parts in flight; a smaller one in one message. It must be
    /// at least 1 and, with
    /// [`Self::PART_ENVELOPE_BYTES`] on top, fit in the backend's frame cap
    /// ([`crate::registry::Registry::max_frame_bytes`]). Default: 4 MiB, which leaves
    /// room under ractor_cluster's 16 MiB. Why not close to the cap: a part
    /// holds its link while it is written, heartbeats wait behind it.
    pub state_part_bytes: usize,
    /// Where the instance publishes its events. Default: a hub of its own
    /// (`EventHub::default()`, 1024 events); share one with
    /// [`Self::with_events`] to watch several instances.
    pub events: EventHub,
    /// Automatic failover and takeover by node priority. Default: `None`,
    /// which leaves moves to explicit [`crate::TakeoverRef::takeover`] and
    /// [`crate::TakeoverRef::failover`] calls.
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
    /// waiting for the grace. Default: 1 s.
    pub conflict_grace: Duration,
    /// Warm standby: send checkpoints of the state to the standbys.
    /// Default: `None` (off).
    pub checkpoint: Option<CheckpointPolicy>,
    /// Refuse to become holder without a majority of the placement's nodes
    /// live. Prevents two holders in a partition, at the cost of no holder at
    /// all in a minority partition (and in a cluster that has lost its
    /// majority). Needs a placement. Default: `false`.
    pub quorum: bool,
    /// How many answered calls (their keys and replies) the holder keeps,
    /// so that a call a [`crate::GlobalClient`] retries after an unknown
    /// outcome (`NoReply`, its holder's node down, a takeover in the
    /// middle) gets its original reply instead of running twice. The
    /// window travels with the state (takeovers, merges, checkpoints, and
    /// with synchronous standby each replica, as a delta with a delta).
    /// Past it, a retried call whose first try was more than this many
    /// keyed calls ago is refused unapplied with
    /// [`crate::CallErr::PastDedupWindow`], never applied a second time
    /// (see `docs/guarantees.md`). Size it as calls per second times the
    /// longest caller timeout. Memory: the encoded reply plus about 40
    /// bytes per entry, and as much in every state sent. Default: 4096;
    /// 0 is refused at spawn.
    pub dedup_window: usize,
    /// Synchronous standby: a holder answers a call only once the standby
    /// that would take over after a crash has stored the call's effect.
    /// Default: `None` (off). See [`SyncStandby`].
    pub sync: Option<SyncStandby>,
    /// How many placement takeovers (a preferred node taking its names back,
    /// state and all, or a standby taking a name off a draining node) the instances made from clones of this config run at
    /// once; the others wait their turn, first come first served. Why: a
    /// node that comes back with hundreds of names started every takeover
    /// at once, each pausing its callers and pulling a state, and the
    /// storm of steals, pulls and registry changes starved heartbeats and
    /// calls alike. Why here: one config is cloned for every name a node
    /// runs (as its event hub is), so the limit is the node's; give each
    /// node's instances their own with [`Self::with_move_limit`].
    /// Failovers of vacant names and explicit [`crate::TakeoverRef::takeover`]
    /// calls are not limited. Default: 32; 0 is refused at spawn
    /// (`ConfigErr::ZeroMoveLimit`).
    pub move_limit: MoveLimit,
}

/// The shared permits behind [`TakeoverConfig::move_limit`]: clones share
/// them.
#[derive(Clone, Debug)]
pub struct MoveLimit {
    limit: usize,
    permits: Arc<tokio::sync::Semaphore>,
}

impl MoveLimit {
    /// At most `limit` moves at once among the holders of clones.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            permits: Arc::new(tokio::sync::Semaphore::new(limit)),
        }
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Moves running now (permits out).
    pub fn running(&self) -> usize {
        self.limit.saturating_sub(self.permits.available_permits())
    }

    pub(crate) fn try_acquire(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    pub(crate) async fn acquire(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.permits.clone().acquire_owned().await.ok()
    }
}

impl Default for MoveLimit {
    fn default() -> Self {
        Self::new(32)
    }
}

/// Synchronous standby ([`TakeoverConfig::with_sync_standby`]): the holder
/// answers a call only after the next standby in priority has stored the
/// call's effect (the new state, or the delta the behaviour describes with
/// [`crate::TakeoverActor::take_delta`]). In quorum mode it also waits
/// until a majority of the placement's nodes (itself included) has it.
///
/// Which standby: the standbys of the highest placement priority that has
/// one (all of them, for a group of equal priority; all standbys without a
/// placement), since that is the one a crash failover starts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncStandby {
    /// What a holder does when no standby can store a call: see
    /// [`NoStandby`].
    pub on_no_standby: NoStandby,
    /// How long a holder waits for a standby's acknowledgement before it
    /// counts the standby unreachable (at least 1 ms). Why not the failure
    /// detector alone: a hung standby stays in view until it is declared
    /// down. Default: 500 ms.
    pub ack_timeout: Duration,
}

/// What a synchronous holder does when no standby it must wait for is in
/// view, or none acknowledged within [`SyncStandby::ack_timeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoStandby {
    /// Consistency: refuse new calls with [`crate::CallErr::NoStandby`]
    /// (not applied) while no standby is in view; calls already applied
    /// wait for an acknowledgement (a caller whose deadline passes gets
    /// `Timeout`: applied, maybe not stored). Nothing acknowledged is lost
    /// by a crash, and there is no holder that answers while alone.
    Refuse,
    /// Availability: answer at once, as warm standby would, and publish
    /// [`crate::EventKind::SyncLost`]; synchronous again, with
    /// [`crate::EventKind::SyncRestored`], once a standby has caught up.
    /// A crash while alone loses what was answered meanwhile.
    Async,
}

impl SyncStandby {
    /// Refuse calls when no standby can store them (consistency).
    pub fn refuse() -> Self {
        Self {
            on_no_standby: NoStandby::Refuse,
            ack_timeout: Duration::from_millis(500),
        }
    }

    /// Answer without a standby and say so (availability).
    pub fn fall_back_to_async() -> Self {
        Self {
            on_no_standby: NoStandby::Async,
            ack_timeout: Duration::from_millis(500),
        }
    }

    /// Sets [`Self::ack_timeout`].
    pub fn with_ack_timeout(mut self, timeout: Duration) -> Self {
        self.ack_timeout = timeout;
        self
    }
}

/// When a holder sends checkpoints of its state to the standbys.
///
/// A failover then loses at most the calls handled since the last checkpoint
/// the new holder received: fewer than `every_calls`, or those of the last
/// `every` interval, plus any checkpoint still on its way. A checkpoint
/// bigger than `state_part_bytes` travels in parts; while one is on its way
/// to a standby, the next ones skip that standby (so that one completes),
/// and the calls handled meanwhile wait for the next checkpoint after it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckpointPolicy {
    /// After this many handled calls (at least 1). No default: set by the
    /// constructor.
    pub every_calls: Option<u64>,
    /// And/or at this interval (only when calls were handled since the last
    /// one). No default: set by the constructor.
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

    /// This policy, and also a checkpoint every `interval` (if anything
    /// changed): `CheckpointPolicy::every_calls(100).and_every(interval)`.
    pub fn and_every(mut self, interval: Duration) -> Self {
        self.every = Some(interval);
        self
    }

    /// This policy, and also a checkpoint after every `n` handled calls.
    pub fn and_every_calls(mut self, n: u64) -> Self {
        self.every_calls = Some(n.max(1));
        self
    }
}

impl Default for TakeoverConfig {
    fn default() -> Self {
        Self {
            buffer_capacity: 10_000,
            pull_timeout: Duration::from_secs(5),
            whereis_timeout: Duration::from_secs(10),
            max_state_bytes: 1 << 30,
            state_part_bytes: 4 << 20,
            events: EventHub::default(),
            placement: None,
            resolver: Arc::new(NewerLineage),
            conflict_grace: Duration::from_secs(1),
            checkpoint: None,
            quorum: false,
            dedup_window: 4096,
            sync: None,
            move_limit: MoveLimit::default(),
        }
    }
}

impl TakeoverConfig {
    /// The room a state part's envelope (the message's variant, the
    /// transfer's metadata with the name and node identities,
    /// ractor_cluster's framing) needs on a link on top of the part's bytes:
    /// a part of `state_part_bytes` must fit in the frame cap with this much
    /// (16 KiB) to spare.
    pub const PART_ENVELOPE_BYTES: usize = 16 << 10;

    /// Checks that these settings can work on a backend whose frame cap is
    /// `frame_cap` bytes (`None`: no cap). [`crate::TakeoverServer`] runs it
    /// when the instance starts, so a setting that cannot work fails the
    /// spawn with this error instead of a handover later.
    pub fn validate(&self, frame_cap: Option<usize>) -> Result<(), ConfigErr> {
        let part = self.state_part_bytes;
        if part == 0 {
            return Err(ConfigErr::ZeroPartSize);
        }
        if let Some(cap) = frame_cap {
            if part.saturating_add(Self::PART_ENVELOPE_BYTES) > cap {
                return Err(ConfigErr::PartOverFrame {
                    part_bytes: part,
                    max_frame_bytes: cap as u64,
                });
            }
        }
        if self.max_state_bytes < part {
            return Err(ConfigErr::MaxStateBelowPart {
                max_state: self.max_state_bytes,
                part,
            });
        }
        if self.pull_timeout.is_zero() {
            return Err(ConfigErr::ZeroTimeout("pull_timeout"));
        }
        if let Some(CheckpointPolicy { every: Some(d), .. }) = &self.checkpoint {
            if d.is_zero() {
                return Err(ConfigErr::ZeroTimeout("the checkpoint interval"));
            }
        }
        if let Some(CheckpointPolicy {
            every_calls: None,
            every: None,
        }) = &self.checkpoint
        {
            return Err(ConfigErr::CheckpointNever);
        }
        if self.quorum && self.placement.is_none() {
            return Err(ConfigErr::QuorumWithoutPlacement);
        }
        if self.dedup_window == 0 {
            return Err(ConfigErr::ZeroDedupWindow);
        }
        if let Some(sync) = &self.sync {
            if sync.ack_timeout < Duration::from_millis(1) {
                return Err(ConfigErr::ZeroTimeout("the sync standby's ack_timeout"));
            }
        }
        if self.move_limit.limit() == 0 {
            return Err(ConfigErr::ZeroMoveLimit);
        }
        Ok(())
    }

    /// Checks [`Self::whereis_timeout`] against `settle`, the longest a
    /// safe lookup can need on the backend ([`crate::Registry::settle_time`];
    /// `None`: no bound known, nothing to check). [`crate::TakeoverServer`]
    /// runs it when the instance starts, beside [`Self::validate`].
    pub fn validate_whereis(&self, settle: Option<Duration>) -> Result<(), ConfigErr> {
        match settle {
            Some(settle) if self.whereis_timeout < settle => Err(ConfigErr::WhereisBelowSettle {
                whereis: self.whereis_timeout,
                settle,
            }),
            _ => Ok(()),
        }
    }

    /// Sets [`Self::move_limit`]: at most `limit` placement takeovers at
    /// once among this config and its clones (a fresh set of permits).
    pub fn with_move_limit(mut self, limit: usize) -> Self {
        self.move_limit = MoveLimit::new(limit);
        self
    }

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

    /// Sets [`Self::state_part_bytes`] (0 is refused when the instance starts).
    pub fn with_state_part_bytes(mut self, bytes: usize) -> Self {
        self.state_part_bytes = bytes;
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

    /// Turns synchronous standby on: see [`SyncStandby`]. It replaces
    /// checkpoints (every call's effect is replicated), so a
    /// [`CheckpointPolicy`] set beside it sends none.
    pub fn with_sync_standby(mut self, sync: SyncStandby) -> Self {
        self.sync = Some(sync);
        self
    }

    /// Sets [`Self::quorum`].
    pub fn with_quorum(mut self, on: bool) -> Self {
        self.quorum = on;
        self
    }

    /// Sets [`Self::dedup_window`].
    pub fn with_dedup_window(mut self, entries: usize) -> Self {
        self.dedup_window = entries;
        self
    }

    /// Sets [`Self::events`].
    pub fn with_events(mut self, events: EventHub) -> Self {
        self.events = events;
        self
    }
}

#[cfg(test)]
mod tests;
