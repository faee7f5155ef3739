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
//!   before it have no instance running;
//! - the holder runs on a node of lower priority than the standby's: the
//!   standby takes over (`Takeover { from }`: steal, then pull the state);
//! - equal priority: the holder stays, so that nothing moves needlessly.
//!
//! Within a group, live nodes are ordered by their stable identity, so every
//! node that sees the same membership picks the same one.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::NodeId;

/// Which nodes may hold the name, in priority order, and how fast to fail over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    groups: Vec<Vec<NodeId>>,
    /// How long a vacant name waits before the first standby takes it, as
    /// Erlang's `failover` delay: a node that restarts quickly gets it back
    /// without a move.
    pub failover_delay: Duration,
    /// How much longer each next standby in priority order waits.
    pub standby_grace: Duration,
    /// How long a standby waits before it tries again after a failed takeover.
    pub retry_after: Duration,
}

impl Placement {
    /// Nodes in priority order; each inner list is a group of equal priority.
    pub fn new<G, N>(groups: G) -> Self
    where
        G: IntoIterator,
        G::Item: IntoIterator<Item = N>,
        N: Into<NodeId>,
    {
        Self {
            groups: groups
                .into_iter()
                .map(|g| g.into_iter().map(Into::into).collect::<Vec<_>>())
                .filter(|g| !g.is_empty())
                .collect(),
            failover_delay: Duration::ZERO,
            standby_grace: Duration::from_secs(1),
            retry_after: Duration::from_secs(1),
        }
    }

    /// Parses `"a > b, c > d"`: `>` separates priorities, `,` equal ones.
    pub fn parse(spec: &str) -> Self {
        Self::new(spec.split('>').map(|group| {
            group
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(NodeId::new)
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

    /// Sets [`Self::retry_after`].
    pub fn with_retry_after(mut self, retry: Duration) -> Self {
        self.retry_after = retry;
        self
    }

    /// The groups, highest priority first.
    pub fn groups(&self) -> &[Vec<NodeId>] {
        &self.groups
    }

    /// The priority of `node`: 0 is the highest; `None` if it is not listed.
    pub fn priority(&self, node: &NodeId) -> Option<usize> {
        self.groups.iter().position(|g| g.contains(node))
    }

    /// Whether `a` has strictly higher priority than `b` (an unlisted node
    /// has the lowest).
    pub fn outranks(&self, a: &NodeId, b: &NodeId) -> bool {
        match (self.priority(a), self.priority(b)) {
            (Some(pa), Some(pb)) => pa < pb,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// The live listed nodes in the order they should take a vacant name.
    pub fn order(&self, live: &BTreeSet<NodeId>) -> Vec<NodeId> {
        self.groups
            .iter()
            .flat_map(|g| {
                let mut g: Vec<NodeId> = g.iter().filter(|n| live.contains(*n)).cloned().collect();
                g.sort();
                g
            })
            .collect()
    }

    /// How long `me` waits on a vacant name before taking it, given the live
    /// nodes; `None` if it is not listed or not live.
    pub fn vacancy_wait(&self, me: &NodeId, live: &BTreeSet<NodeId>) -> Option<Duration> {
        let rank = self.order(live).iter().position(|n| n == me)?;
        Some(self.failover_delay + self.standby_grace * rank as u32)
    }
}

#[cfg(test)]
mod tests;
