//! The many-names mode (`FAULT_NAMES=N`, issue 11): beside the ledger, each
//! schedule runs `N - 1` more global names (`extra-1..`, a counter each, an
//! instance on every up node, with the ledger's settings and placement but
//! an event hub of their own, so the ledger's checks see only the ledger's
//! events). They live through the same faults; after the ledger is quiet,
//! every one of them must end as the ledger does: one holder, on `a`, in
//! every node's view, within the same deadline. A name that does not is a
//! violation of invariant 1.
//!
//! Why not every invariant for every name: the ledger's checks read one
//! name's log and events; what many names add is load and interleaving,
//! hence races between names on one node (a mass failover when `a`
//! crashes, a mass takeover back when it restarts), which end in a name
//! with no holder or two.

use std::time::Duration;

use ractor::{Actor, ActorRef, ActorStatus};
use ractor_takeover::event::EventHub;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::registry::NodeName;
use ractor_takeover::{TakeoverConfig, TakeoverRef, TakeoverServer};
use tokio::time::Instant;

use crate::support::{Counter, Failures, Watchdog};
use crate::NODES;

/// Names per schedule, the ledger included (`FAULT_NAMES`, default 1: the
/// ledger alone).
pub fn names() -> usize {
    crate::env_u64("FAULT_NAMES").map_or(1, |n| n.max(1) as usize)
}

fn name(i: usize) -> String {
    format!("extra-{i}")
}

/// The extra names' instances, per node and name (`None`: none running).
pub struct Extras {
    config: TakeoverConfig,
    current: Vec<[Option<TakeoverRef<Counter>>; 3]>,
    /// Their supervisor. Why linked spawns: `spawn` waits out the start-up
    /// lookup, which a fault can make last seconds, and the schedule's
    /// faults must keep their times. Their failures are not the ledger's
    /// (a crash kills them); a panic is still counted by the suite.
    watchdog: ActorRef<()>,
}

impl Extras {
    /// `names() - 1` extra names with the ledger's `config`, none started.
    pub async fn new(config: &TakeoverConfig) -> Self {
        let (watchdog, _) = Actor::spawn(None, Watchdog, Failures::default())
            .await
            .expect("spawn the extra names' supervisor");
        Self {
            config: config.clone().with_events(EventHub::new(1 << 10)),
            current: (1..names()).map(|_| [None, None, None]).collect(),
            watchdog,
        }
    }

    /// Like the ledger's supervisor: every up node that is not hung runs an
    /// instance of every extra name; one that stopped (its node crashed) is
    /// replaced.
    pub async fn respawn(&mut self, cluster: &FakeCluster, paused: impl Fn(usize) -> bool) {
        for (i, slots) in self.current.iter_mut().enumerate() {
            for (n, slot) in slots.iter_mut().enumerate() {
                let gone = slot
                    .as_ref()
                    .is_none_or(|a| a.get_status() == ActorStatus::Stopped);
                if !gone || !cluster.is_up(NODES[n]) || paused(n) {
                    continue;
                }
                let server = TakeoverServer::new(
                    name(i + 1),
                    Counter::default(),
                    cluster.registry(NODES[n]),
                    self.config.clone(),
                );
                *slot = server
                    .spawn_linked((), self.watchdog.get_cell())
                    .await
                    .ok()
                    .map(|(a, _)| a);
            }
        }
    }

    /// Waits (with `deadline`, virtual time) until every extra name has one
    /// holder, on `a`, in every node's view.
    pub async fn quiesce(
        &mut self,
        cluster: &FakeCluster,
        deadline: Duration,
    ) -> Result<(), String> {
        let until = Instant::now() + deadline;
        loop {
            self.respawn(cluster, |_| false).await;
            let unsettled: Vec<String> = (1..=self.current.len())
                .filter_map(|i| {
                    let views = cluster.holders(&name(i));
                    let first = views.values().next().cloned().flatten();
                    let on_a = views.len() == NODES.len()
                        && first.as_ref().is_some_and(|h| h.node == NodeName::new("a"))
                        && views.values().all(|h| *h == first);
                    (!on_a).then(|| format!("{}: {views:?}", name(i)))
                })
                .collect();
            if unsettled.is_empty() {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(format!(
                    "{} of {} extra names not held once on a {deadline:?} after the ledger was quiet, e.g. {}",
                    unsettled.len(),
                    self.current.len(),
                    unsettled[0]
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every extra instance and their supervisor.
    pub fn stop(&self) {
        for a in self.current.iter().flatten().flatten() {
            a.stop(None);
        }
        self.watchdog.stop(None);
    }
}
