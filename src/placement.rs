//! Priority placement, like Erlang's `distributed` kernel parameter.
//!
//! The nodes that may run the server are listed by priority, in groups of
//! equal priority: `a > b, c > d` means `a` first, then `b` or `c`, then `d`.
//! Every standby applies the same rules to its own view:
//!
//! - the name is vacant (the holder's node went down or the holder died):
//!   the live listed node of highest priority registers it after
//!   `failover_delay` and starts with `Failover { from }`; the k-th live node
//!   in that order waits `k` more `standby_grace` periods, in case the ones
//!   before it have no instance running; and while a node before it runs a
//!   standby of the name, it waits for that one to take the name, give up
//!   its place or go down (at most `in_line_timeout` more), so two nodes in
//!   line never both take it;
//! - the holder runs on a node of lower priority than the standby's: the
//!   standby takes over (`Takeover { from }`: steal, then pull the state);
//! - equal priority: the holder stays, so that nothing moves needlessly.
//!
//! Within a group, live nodes are ordered by their stable identity, so every
//! node that sees the same membership picks the same one.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::NodeName;

/// Which nodes may hold the name, in priority order, and how fast to fail over.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Placement {
    groups: Vec<Vec<NodeName>>,
    /// How long a vacant name waits before the first standby takes it, as
    /// Erlang's `failover` delay: a node that restarts quickly gets it back
    /// without a move. Default: zero.
    pub failover_delay: Duration,
    /// How much longer each next standby in priority order waits.
    /// Default: 1 s.
    pub standby_grace: Duration,
    /// How much longer than its own turn a standby waits on a vacant name
    /// while a node ahead of it in line runs a standby of the name, in case
    /// that instance hangs on a node still up. Normally the standby waits
    /// for the one ahead to act: take the name, give up its place, or go
    /// down (see the module docs). Why not the grace alone: a loaded node
    /// ahead may have taken the name already, its registration still on
    /// the way, and a second holder would be made. Default: 10 s.
    pub in_line_timeout: Duration,
    /// How long a standby waits before it tries again after a failed
    /// takeover: the base of an exponential backoff, doubled
    /// with every failure in a row, up to `retry_max` (see
    /// [`Self::retry_delay`]). Why back off: a takeover that keeps failing
    /// (a state that does not decode, a holder that refuses) pauses the
    /// holder's callers on every try. Default: 1 s.
    pub retry_after: Duration,
    /// The longest wait between two takeover tries. Default: 30 s.
    pub retry_max: Duration,
}

impl Placement {
    /// Nodes in priority order; each inner list is a group of equal priority.
    pub fn new<G, N>(groups: G) -> Self
    where
        G: IntoIterator,
        G::Item: IntoIterator<Item = N>,
        N: Into<NodeName>,
    {
        Self {
            groups: groups
                .into_iter()
                .map(|g| g.into_iter().map(Into::into).collect::<Vec<_>>())
                .filter(|g| !g.is_empty())
                .collect(),
            failover_delay: Duration::ZERO,
            standby_grace: Duration::from_secs(1),
            in_line_timeout: Duration::from_secs(10),
            retry_after: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
        }
    }

    /// Parses `"a > b, c > d"`: `>` separates priorities, `,` equal ones.
    pub fn parse(spec: &str) -> Self {
        Self::new(spec.split('>').map(|group| {
            group
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(NodeName::new)
                .collect::<Vec<_>>()
        }))
    }

    /// Sets [`Self::failover_delay`].
    pub fn with_failover_delay(mut self, delay: Duration) -> Self {
        self.failover_delay = delay;
        self
    }

    /// Sets [`Self::standby_grace`].
    pub fn with_standby_grace(mut self, grace: Duration) -> Self {
        self.standby_grace = grace;
        self
    }

    /// Sets [`Self::in_line_timeout`].
    pub fn with_in_line_timeout(mut self, timeout: Duration) -> Self {
        self.in_line_timeout = timeout;
        self
    }

    /// Sets [`Self::retry_after`].
    pub fn with_retry_after(mut self, retry: Duration) -> Self {
        self.retry_after = retry;
        self
    }

    /// Sets [`Self::retry_max`].
    pub fn with_retry_max(mut self, max: Duration) -> Self {
        self.retry_max = max;
        self
    }

    /// How long `node` waits before its next takeover try after `failures`
    /// failed tries in a row (at least 1): `retry_after` doubled per failure
    /// after the first, capped at `retry_max`, then "equal jitter": a wait
    /// drawn between half of that and all of it. Why jitter: standbys whose
    /// tries fail together must not retry together. The draw is a hash of
    /// the node and the failure count, so it differs between nodes and is
    /// the same on every run (tests replay it).
    pub fn retry_delay(&self, failures: u32, node: &NodeName) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        let full = self
            .retry_after
            .saturating_mul(1u32 << doublings)
            .min(self.retry_max.max(self.retry_after));
        let half = full / 2;
        let spread = (full - half).as_nanos() as u64;
        let draw = if spread == 0 {
            0
        } else {
            jitter_draw(node.as_str(), failures) % (spread + 1)
        };
        half + Duration::from_nanos(draw)
    }

    /// The groups, highest priority first.
    pub fn groups(&self) -> &[Vec<NodeName>] {
        &self.groups
    }

    /// The priority of `node`: 0 is the highest; `None` if it is not listed.
    pub fn priority(&self, node: &NodeName) -> Option<usize> {
        self.groups.iter().position(|g| g.contains(node))
    }

    /// Whether `a` has strictly higher priority than `b` (an unlisted node
    /// has the lowest).
    pub fn outranks(&self, a: &NodeName, b: &NodeName) -> bool {
        match (self.priority(a), self.priority(b)) {
            (Some(pa), Some(pb)) => pa < pb,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// The live listed nodes in the order they should take a vacant name.
    pub fn order(&self, live: &BTreeSet<NodeName>) -> Vec<NodeName> {
        self.groups
            .iter()
            .flat_map(|g| {
                let mut g: Vec<NodeName> =
                    g.iter().filter(|n| live.contains(*n)).cloned().collect();
                g.sort();
                g
            })
            .collect()
    }

    /// How long `me` waits on a vacant name before taking it, given the live
    /// nodes; `None` if it is not listed or not live.
    pub fn vacancy_wait(&self, me: &NodeName, live: &BTreeSet<NodeName>) -> Option<Duration> {
        let rank = self.order(live).iter().position(|n| n == me)?;
        Some(self.failover_delay + self.standby_grace * rank as u32)
    }
}

/// A number drawn from `node` and `failures` alone: FNV-1a over both, then
/// splitmix64's finalizer to spread the bits.
fn jitter_draw(node: &str, failures: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes().chain(failures.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests;
