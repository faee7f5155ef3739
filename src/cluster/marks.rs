//! Marks a node sets for the whole cluster to see: "this node drains" and
//! "hold takeovers back".
//!
//! Each mark is a small marker actor in a pg group of the crate's scope;
//! its spawn name carries the node that set it, the way a token's carries
//! a registration (pg keeps nothing else). Why pg and not a protocol
//! message: every peer learns of it on the sessions that already carry the
//! registrations, a peer that connects later gets it in the initial sync,
//! and it dies with its node, so a node that crashes in the middle of a
//! drain (or of a restart wave it held) leaves no stale mark behind.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};

use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::{pg, Actor, ActorCell, ActorProcessingErr, ActorRef};

use super::SCOPE;
use crate::NodeName;

/// The pg group (in [`SCOPE`]) of the draining nodes' markers.
pub const DRAINING_GROUP: &str = "ractor_takeover|draining";

/// The pg group (in [`SCOPE`]) of the holds on takeovers back.
pub const HOLD_GROUP: &str = "ractor_takeover|hold";

const DRAIN_PREFIX: &str = "ractor_takeover|drain|";
const HOLD_PREFIX: &str = "ractor_takeover|holdmark|";

/// Which mark a group change is about.
pub(crate) enum Mark {
    Draining(NodeName),
    Hold,
}

/// Reads a mark from a group change: `None` for any other group.
pub(crate) fn mark_of(group: &str, cell: &ActorCell) -> Option<Mark> {
    let name = cell.get_name()?;
    match group {
        DRAINING_GROUP => name
            .strip_prefix(DRAIN_PREFIX)
            .map(|n| Mark::Draining(NodeName::new(n))),
        HOLD_GROUP => name.starts_with(HOLD_PREFIX).then_some(Mark::Hold),
        _ => None,
    }
}

/// The node a hold marker's name carries.
fn hold_node(name: &str) -> Option<NodeName> {
    let rest = name.strip_prefix(HOLD_PREFIX)?;
    let (node, _) = rest.rsplit_once('|')?;
    Some(NodeName::new(node))
}

/// The nodes whose drain markers are in view, among `counts` (this node,
/// and the peers it considers up: a silent peer's marker is ignored as its
/// registrations are).
pub(crate) fn draining(counts: impl Fn(&NodeName) -> bool) -> BTreeSet<NodeName> {
    pg::get_scoped_members(&SCOPE.to_string(), &DRAINING_GROUP.to_string())
        .iter()
        .filter_map(|c| c.get_name()?.strip_prefix(DRAIN_PREFIX).map(NodeName::new))
        .filter(|n| counts(n))
        .collect()
}

/// Whether a hold marker of a node among `counts` is in view.
pub(crate) fn held(counts: impl Fn(&NodeName) -> bool) -> bool {
    pg::get_scoped_members(&SCOPE.to_string(), &HOLD_GROUP.to_string())
        .iter()
        .filter_map(|c| hold_node(&c.get_name()?))
        .any(|n| counts(&n))
}

/// Starts a drain marker of `node` and joins it to the group.
pub(crate) async fn start_drain(node: &NodeName) -> Result<ActorRef<MarkerMsg>, ractor::SpawnErr> {
    let (marker, _) = Actor::spawn(Some(format!("{DRAIN_PREFIX}{node}")), Marker, ()).await?;
    pg::join_scoped(
        SCOPE.to_string(),
        DRAINING_GROUP.to_string(),
        vec![marker.get_cell()],
    );
    Ok(marker)
}

/// Starts a hold marker of `node` and joins it to the group.
pub(crate) async fn start_hold(node: &NodeName) -> Result<ActorRef<MarkerMsg>, ractor::SpawnErr> {
    // ractor's names are unique per process: number this node's holds.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let (marker, _) = Actor::spawn(Some(format!("{HOLD_PREFIX}{node}|{n}")), Marker, ()).await?;
    pg::join_scoped(
        SCOPE.to_string(),
        HOLD_GROUP.to_string(),
        vec![marker.get_cell()],
    );
    Ok(marker)
}

/// A hold on takeovers back ([`super::ClusterNode::hold_takeback`]): set
/// while this value lives, for every node of the cluster; released when it
/// is dropped (or [`TakebackHold::release`]d), or when its node goes away.
#[derive(Debug)]
pub struct TakebackHold {
    marker: ActorRef<MarkerMsg>,
}

impl TakebackHold {
    pub(crate) fn new(marker: ActorRef<MarkerMsg>) -> Self {
        Self { marker }
    }

    /// Releases the hold: standbys of higher priority than their name's
    /// holder take it back from now on.
    pub fn release(self) {}
}

impl Drop for TakebackHold {
    fn drop(&mut self) {
        // A stopping actor leaves its groups: every peer sees the Leave.
        self.marker.stop(None);
    }
}

/// A marker's messages: none is ever sent. Serializable so that
/// ractor_cluster shows the marker to peers (it syncs only actors that can
/// be reached remotely).
pub(crate) struct MarkerMsg(());

impl ractor::Message for MarkerMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        Err(BoxedDowncastErr)
    }

    fn deserialize(_: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        Err(BoxedDowncastErr)
    }
}

/// A mark in pg: alive while the mark holds; stopping it leaves the group.
pub(crate) struct Marker;

impl Actor for Marker {
    type Msg = MarkerMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<MarkerMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hold marker's name gives its node back, a node with `|` in it
    /// aside (node names must not contain it).
    #[test]
    fn hold_names_carry_their_node() {
        assert_eq!(
            hold_node("ractor_takeover|holdmark|client|3"),
            Some(NodeName::new("client"))
        );
        assert_eq!(hold_node("ractor_takeover|drain|a"), None);
    }
}
