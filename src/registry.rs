//! The registry abstraction: one node's view of the cluster-global names.
//!
//! A name may have several registrations at once (the old holder keeps its own
//! while it hands over). The *holder* is the live registration with the highest
//! `(epoch, node)` rank, so every node that sees the same membership resolves
//! the same holder, whatever order the changes reached it in.
//!
//! Backends: the in-process fake cluster (`crate::fake`, feature `test-util`)
//! and [`crate::cluster`], `ractor::pg` synced by `ractor_cluster`. The trait asks nothing
//! that pg cannot give: a backend keeps the `(name, epoch, node)` metadata
//! itself, and reaches an instance through an [`ActorCell`] (a proxy for a
//! remote one).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use ractor::{ActorCell, ActorStatus};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

mod transport;
mod watch;

pub(crate) use transport::Transport;
pub use watch::NameWatch;
pub(crate) use watch::Watchers;

pub use crate::error::RegistryErr;
pub use crate::node::NodeName;

/// A monotonically increasing number per name: each registration or steal
/// gets one higher than any the node has seen, and no two nodes ever take
/// the same one (each node takes epochs from a class of its own). It orders holders and is the fencing token
/// handed to user code.
pub type Epoch = u64;

/// The epoch a node takes for a new registration: the smallest above `seen`
/// (every epoch of the name it has seen) in the node's own class.
///
/// Why classes: nodes on two sides of a partition cannot see each other's
/// registrations, so "highest seen + 1" gave both sides the same epoch, and
/// user code that fences with the epoch alone could not tell the two holders
/// apart. With `nodes` the identities of every node of the cluster, the node
/// at index `i` of the sorted list takes only epochs `e` with
/// `(e - 1) % nodes.len() == i`: the first node's first epoch is 1, and two
/// nodes never take the same epoch, seen or not. Every node must be given
/// the same list; a node missing from it takes plain `seen + 1`.
pub(crate) fn next_epoch(seen: Epoch, node: &NodeName, nodes: &[NodeName]) -> Epoch {
    let mut sorted: Vec<&NodeName> = nodes.iter().collect();
    sorted.sort();
    sorted.dedup();
    let Some(slot) = sorted.iter().position(|n| *n == node) else {
        return seen.saturating_add(1);
    };
    let slots = sorted.len() as Epoch;
    // Saturating: an epoch near `u64::MAX` can come from the wire (a
    // forged or corrupt registration or merge offer); it must not panic
    // the instance that allocates the next one.
    let base = seen.saturating_add(1);
    let class = (base - 1) % slots;
    base.saturating_add((slot as Epoch + slots - class) % slots)
}

/// The highest epoch a node takes from a peer's word alone (see
/// [`Registry::note_seen`]). Each registration adds at most the number of
/// nodes to the highest epoch seen, so no node ever reaches it; one above
/// it is corrupt or forged, and taking it would bring every later epoch to
/// `u64::MAX`, where nodes can no longer take epochs of their own.
pub(crate) const EPOCH_CEILING: Epoch = Epoch::MAX / 2;

/// A boxed future, so that [`Registry`] can be used as `Arc<dyn Registry>`.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What identifies a registration on every node: name, epoch and node.
///
/// It is what travels in protocol messages (an `ActorCell` cannot).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegistrationInfo {
    /// The global name.
    pub name: String,
    /// The registration's epoch.
    pub epoch: Epoch,
    /// The node the instance runs on.
    pub node: NodeName,
}

impl RegistrationInfo {
    /// The registration of `name` at `epoch` on `node`.
    pub fn new(name: impl Into<String>, epoch: Epoch, node: impl Into<NodeName>) -> Self {
        Self {
            name: name.into(),
            epoch,
            node: node.into(),
        }
    }

    /// The rank that orders registrations of one name: epoch first, then the
    /// stable node identity. The highest live rank holds the name.
    pub fn rank(&self) -> (Epoch, &NodeName) {
        (self.epoch, &self.node)
    }
}

/// A registration as one node sees it: the metadata and a way to reach the
/// instance.
#[derive(Clone, Debug)]
pub struct Registration {
    info: RegistrationInfo,
    cell: ActorCell,
}

impl Registration {
    /// A registration from its metadata and the instance's cell.
    pub fn new(info: RegistrationInfo, cell: ActorCell) -> Self {
        Self { info, cell }
    }

    /// The metadata.
    pub fn info(&self) -> &RegistrationInfo {
        &self.info
    }

    /// The global name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// The epoch.
    pub fn epoch(&self) -> Epoch {
        self.info.epoch
    }

    /// The node the instance runs on.
    pub fn node(&self) -> &NodeName {
        &self.info.node
    }

    /// The instance (a proxy when it is remote).
    pub fn cell(&self) -> &ActorCell {
        &self.cell
    }

    /// Whether the instance still takes messages. A draining or stopping
    /// instance refuses new messages (and ractor removes a stopping one from pg
    /// before its `post_stop` runs), so it can no longer hold a name.
    pub fn is_alive(&self) -> bool {
        takes_messages(&self.cell)
    }
}

/// Whether an actor still takes messages (ractor refuses sends from `Draining` on).
pub(crate) fn takes_messages(cell: &ActorCell) -> bool {
    cell.get_status() < ActorStatus::Draining
}

/// Why a registration left a node's view.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaveReason {
    /// The instance unregistered (it retired or rolled back a steal).
    Unregistered,
    /// The instance died.
    InstanceDied,
    /// The instance's node went down or was disconnected.
    NodeDown,
}

/// A change in one node's view.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RegistryEvent {
    /// A registration appeared.
    Registered(RegistrationInfo),
    /// A registration left.
    Unregistered {
        /// Which.
        info: RegistrationInfo,
        /// Why.
        reason: LeaveReason,
    },
    /// A peer node became reachable.
    NodeUp(NodeName),
    /// A peer node went down or was disconnected.
    NodeDown(NodeName),
    /// A node started draining (`draining: true`: placement moves its names
    /// away and moves none to it) or stopped (its drain was called off, or
    /// it went away; see [`Registry::draining`]).
    Draining {
        /// The node.
        node: NodeName,
        /// Whether it drains now.
        draining: bool,
    },
    /// A hold on takeovers back was set or released somewhere in the
    /// cluster (see [`Registry::takeback_held`]).
    TakebackHold {
        /// Whether takeovers back are held now.
        held: bool,
    },
}

/// One node's view of the cluster-global names: the naming side of a
/// backend (members, lookup, register, steal, unregister, the newest
/// registration seen, live nodes, changes).
///
/// Its transport side (how a message in its wire form reaches another node,
/// and how an instance is tied to its node) is a crate-private supertrait,
/// so the trait is sealed: the backends are this crate's
/// ([`crate::cluster::ClusterNode`] and the fake cluster); use them through
/// `Arc<dyn Registry>`.
pub trait Registry: transport::Transport {
    /// This node's stable identity.
    fn node(&self) -> &NodeName;

    /// The live registrations of `name` in this view, lowest rank first.
    /// Possibly stale: changes from other nodes may still be in flight.
    fn members(&self, name: &str) -> Vec<Registration>;

    /// The holder of `name` in this view (possibly stale), like
    /// `global:whereis_name`.
    fn lookup(&self, name: &str) -> Option<Registration> {
        self.members(name).pop()
    }

    /// Finds the registration `info` names, if this view has it and it is alive.
    fn resolve(&self, info: &RegistrationInfo) -> Option<Registration> {
        self.members(&info.name)
            .into_iter()
            .find(|r| r.info() == info)
    }

    /// The holder of `name` once no registry change that could concern it is
    /// in flight towards this node, ignoring dead and stopping instances; like
    /// `global:safe_whereis_name`. Fails with [`RegistryErr::NotSettled`] if the
    /// view does not settle within `timeout`.
    fn safe_lookup<'a>(
        &'a self,
        name: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<Registration>, RegistryErr>>;

    /// Registers `cell` under `name` if no live instance holds it in this view.
    fn register<'a>(
        &'a self,
        name: &'a str,
        cell: ActorCell,
    ) -> BoxFuture<'a, Result<Registration, RegistryErr>>;

    /// Registers `cell` under `name` with an epoch above every one in this view,
    /// so every lookup resolves to it from then on; does nothing to the old
    /// holder (like `global:re_register_name`).
    fn steal<'a>(
        &'a self,
        name: &'a str,
        cell: ActorCell,
    ) -> BoxFuture<'a, Result<Registration, RegistryErr>>;

    /// Removes a registration of this node's and tells the other nodes.
    fn unregister(&self, info: &RegistrationInfo, reason: LeaveReason);

    /// Removes `registration` as [`Self::unregister`] does, but only while
    /// this view has it for that same instance (`registration.cell()`). The
    /// server leaves its name through this one. Why: a node that restarts
    /// without a state directory may take the same epoch again, and an
    /// instance of its previous life that is still stopping must not remove
    /// the registration of the new one, which has the same name, epoch and
    /// node. The fake cluster checks the instance (its killed instances
    /// stop after the restart); the default removes by `info`, for a
    /// backend whose instances die with their process.
    fn unregister_instance(&self, registration: &Registration, reason: LeaveReason) {
        self.unregister(registration.info(), reason);
    }

    /// The nodes this one considers up, itself included: connected and
    /// answering heartbeats on a real cluster. Placement decides from it.
    fn live_nodes(&self) -> BTreeSet<NodeName>;

    /// Every change to this view, as it is applied: for diagnostics. A
    /// receiver that falls more than the stream's capacity behind loses the
    /// oldest changes (`RecvError::Lagged`); the crate's own instances and
    /// clients use [`Registry::watch`] instead.
    fn subscribe(&self) -> broadcast::Receiver<RegistryEvent>;

    /// The changes to `name` in this view, and every peer node going up or
    /// down, as they are applied; nothing is dropped for a slow reader.
    /// Why per name: an instance or a client wakes up only for what can
    /// concern it, so a mass event costs work per name that moves, not per
    /// name times every instance on the node.
    fn watch(&self, name: &str) -> NameWatch;

    /// Until when this node's holders may answer calls: an instant before
    /// which no other node can have declared this node down (and so let a
    /// standby take one of its names). `None`: no such proof now; a holder
    /// holds its calls until there is one again. A returned instant is in
    /// the future when returned. The real backend counts it from the send
    /// time of the latest heartbeat each peer it considers up answered, plus
    /// the detection time minus a margin (`ClusterConfig::lease_margin`),
    /// and voids it after this node stalled until every peer answered again.
    fn lease_until(&self) -> Option<tokio::time::Instant>;

    /// The nodes that drain in this view (this one included, if it does):
    /// placement moves their names to the next live node in priority and
    /// moves no name to them. Why a view of its own and not `live_nodes`:
    /// a draining node is up and still serves (and forwards) until each of
    /// its names has moved. A draining node that goes away drops out of it
    /// with its registrations. The default knows none.
    fn draining(&self) -> BTreeSet<NodeName> {
        BTreeSet::new()
    }

    /// Whether some node of this view holds takeovers back: a standby of
    /// higher priority than the holder's node does not take the name back
    /// while it is set (a vacant name, or a holder that drains, still
    /// moves). A rolling restart sets it, so that each name moves once per
    /// restart of its holder's node, not back and forth. The hold dies with
    /// the node that set it. The default: never held.
    fn takeback_held(&self) -> bool {
        false
    }

    /// The newest registration of `name` this node has seen, live or gone
    /// (its epoch is the highest this node knows). An instance that starts
    /// on a vacant name asks it to tell a first start (`StartType::Normal`)
    /// from a start after a holder went away (`StartType::Failover`, whose
    /// state is lost). A node forgets it when its process restarts; the fake
    /// cluster and the real backend also learn it from peers as they connect
    /// (the real backend only from registrations still alive). The default
    /// knows nothing.
    fn newest_seen(&self, _name: &str) -> Option<RegistrationInfo> {
        None
    }

    /// Records a registration this node learnt of from a peer's message,
    /// not from its view: the holder that made a standby's checkpoint,
    /// gone before this node saw it (the other side of a split brain that
    /// crashed before the heal). The next registration or steal of the
    /// name here then takes an epoch above it, so that fencing, and every
    /// standby that keeps that checkpoint, see the new holder as newer.
    /// The default records nothing.
    fn note_seen(&self, _info: &RegistrationInfo) {}

    /// The largest frame this node's messages may take on their way to a
    /// peer (`None`: no cap): a bigger one closes the session. On a real
    /// cluster it is [`crate::cluster::ClusterConfig::max_frame_bytes`]
    /// (every node of a cluster should share it); on the fake cluster the cap
    /// set with `FakeCluster::set_frame_cap`. An
    /// instance checks its `state_part_bytes` against it when it starts.
    /// The default knows none.
    fn max_frame_bytes(&self) -> Option<usize> {
        None
    }

    /// The longest a [`Registry::safe_lookup`] can need to settle on this
    /// node, right after the node started (`None`: no bound known). On a
    /// real node it is `ClusterConfig::settle_time` (a peer still connecting
    /// is waited for up to `startup_timeout`); the fake cluster knows none.
    /// An instance refuses a `whereis_timeout` below it when it starts: its
    /// start-up lookup would fail while a peer is still connecting.
    fn settle_time(&self) -> Option<Duration> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every epoch above `seen` belongs to exactly one node, each node gets
    /// the smallest of its own above `seen`, and the first node starts at 1.
    #[test]
    fn next_epoch_gives_each_node_its_own_epochs() {
        let nodes: Vec<NodeName> = ["c", "a", "b"].into_iter().map(NodeName::new).collect();
        assert_eq!(next_epoch(0, &NodeName::new("a"), &nodes), 1);
        assert_eq!(next_epoch(0, &NodeName::new("b"), &nodes), 2);
        assert_eq!(next_epoch(0, &NodeName::new("c"), &nodes), 3);
        for seen in 0..50 {
            let mut taken = BTreeSet::new();
            for node in &nodes {
                let e = next_epoch(seen, node, &nodes);
                assert!(e > seen && e <= seen + 3, "{node} after {seen}: {e}");
                assert!(taken.insert(e), "{node} after {seen}: {e} taken twice");
                // The same node always lands in the same class.
                assert_eq!(next_epoch(e, node, &nodes), e + 3);
            }
            assert_eq!(taken.len(), 3);
        }
        // A node the list does not know takes plain seen + 1.
        assert_eq!(next_epoch(7, &NodeName::new("z"), &nodes), 8);
    }
}
