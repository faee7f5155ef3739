//! An in-process fake cluster with fault injection (feature `test-util`).
//!
//! Several real nodes cannot share one process (ractor's pg and name registry
//! are process statics), so tests of takeover logic run here: N fake nodes,
//! each with its own registry view, and one router that every cross-node
//! operation passes, registry changes and instance messages alike. Faults set
//! on the router apply everywhere at once:
//!
//! - `set_delay(a, b, d)`: everything from `a` to `b` arrives `d` later (links
//!   stay FIFO, like a TCP stream);
//! - `hold(a, b)` / `release(a, b)`: stop and restart a link (deterministic
//!   "slow network");
//! - `partition(a, b)` / `isolate(a)` / `heal(a, b)` / `heal_all()`: an
//!   *undetected* partition, as ractor_cluster has without a heartbeat: what
//!   crosses it is dropped silently and each side keeps the other's stale
//!   registrations; a heal re-syncs both views;
//! - `crash(a)` / `restart(a)`: every instance attached to `a` is killed at
//!   once, its view is lost, and the peers see it go down; a restart comes
//!   back empty and syncs;
//! - `pause(a)` / `resume(a)`, `set_frame_limit(a, b, max)`,
//!   `delay_dial(a, b, d)`: a hung process, ractor_cluster's frame cap, a
//!   slow dial after a restart (see `faults`);
//!
//! Every message between nodes travels in its wire form (ractor's
//! `SerializedMessage`), as on a real cluster: the fake is the transport of
//! `send_wire` (the registry's transport side). At the far end of a link it is handed to the
//! instance as ractor_cluster's session hands it (the instance decodes it,
//! or drops what does not decode), a refused call is re-routed by the same
//! code the real token actor runs, and a call's answer travels back over
//! the reverse link in bytes.
//!
//! The instances themselves are ordinary ractor actors in this process.
//!
//! Layout: here the cluster and its faults of the network; `view` one
//! node's view of the names; `link` what travels between nodes and arrives;
//! `node` a fake node as a registry; `faults` the faults of real machines.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ractor::message::SerializedMessage;
use ractor::{ActorCell, RpcReplyPort};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::{LeaveReason, NodeName, Registration, RegistrationInfo, Registry};

/// The fake cluster: a cheap `Clone` over shared state.
#[derive(Clone)]
pub struct FakeCluster {
    inner: Arc<Mutex<World>>,
}

impl std::fmt::Debug for FakeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<NodeName> = self.world().nodes.keys().cloned().collect();
        f.debug_struct("FakeCluster")
            .field("nodes", &nodes)
            .finish()
    }
}

/// One fake node's view; it implements [`Registry`].
#[derive(Clone)]
pub struct FakeNode {
    cluster: FakeCluster,
    id: NodeName,
}

impl std::fmt::Debug for FakeNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeNode").field("node", &self.id).finish()
    }
}

type Link = (NodeName, NodeName);

struct World {
    nodes: BTreeMap<NodeName, NodeState>,
    /// Partitioned pairs, smaller node first.
    cut: HashSet<Link>,
    delay: HashMap<Link, Duration>,
    /// Whether each link delivers: stopped while it is held or either end
    /// is paused (see `refresh_hold`).
    held: HashMap<Link, watch::Sender<bool>>,
    /// Links held by [`FakeCluster::hold`].
    user_held: HashSet<Link>,
    /// Paused nodes, with the pause's number (see `faults`).
    paused: HashMap<NodeName, faults::Pause>,
    pauses: u64,
    /// How long a silent (paused) node takes to be seen down by its peers.
    detection: Duration,
    /// The largest frame each link takes (see `faults`).
    frame_limit: HashMap<Link, usize>,
    /// The frame cap every node is configured with (see `faults`).
    frame_cap: Option<usize>,
    /// Each pair's session number: an item sent in an earlier session is
    /// lost (the session closed under it).
    session: HashMap<Link, u64>,
    /// Pairs whose session is not up yet after a restart, smaller node
    /// first, each with its dial's number: what would cross is dropped, as a
    /// cut does. Why numbered: a dial that a crash made moot must not end a
    /// later dial on the same pair (see `faults::dial_done`).
    dialing: HashMap<Link, u64>,
    /// Dials started so far: the next dial's number.
    dials: u64,
    /// Dial delays for the next restart of a node, per peer.
    dial_delay: HashMap<Link, Duration>,
    links: HashMap<Link, mpsc::UnboundedSender<Item>>,
    /// Items on each link, sent and not yet arrived.
    queued: HashMap<Link, usize>,
    /// Whether a node keeps the newest registration per name across a crash
    /// (as a real node with `ClusterConfig::state_dir` does).
    durable: bool,
    /// Extra time a message to a standby-group entry takes after it reached
    /// the node (see [`FakeCluster::delay_standby_entries`]), and each
    /// node's relay of those messages, in order.
    entry_delay: Duration,
    entry_relays: HashMap<NodeName, mpsc::UnboundedSender<link::Relayed>>,
}

struct Item {
    due: Instant,
    session: u64,
    from_incarnation: u64,
    to_incarnation: u64,
    kind: ItemKind,
}

enum ItemKind {
    /// A message in its wire form, for the instance `to`.
    Wire {
        to: Registration,
        msg: SerializedMessage,
    },
    /// A call's answer, back to the caller's port.
    Answer(RpcReplyPort<Vec<u8>>, Vec<u8>),
    Op(Op),
}

enum Op {
    Add(RegistrationInfo, ActorCell),
    Remove(RegistrationInfo, LeaveReason),
    NodeDown(NodeName),
    /// Replace every registration of `from` in the view with `entries`.
    Sync {
        from: NodeName,
        entries: Vec<(RegistrationInfo, ActorCell)>,
        /// The sender's newest registration seen per name.
        newest: Vec<RegistrationInfo>,
        /// The sender restarted: what it no longer has died with it.
        restarted: bool,
        /// The sender's own marks (drain, holds).
        marks: Marks,
    },
    /// The sender's own marks changed.
    Marks {
        from: NodeName,
        marks: Marks,
    },
}

/// The marks a node sets for the whole cluster: it drains, it holds
/// takeovers back (as many holds as it took). On a real node each is a
/// marker actor in pg (`cluster::marks`); here they travel on the links as
/// registry changes do, and die with their node as pg's proxies do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    pub(crate) draining: bool,
    pub(crate) holds: u32,
}

fn pair(a: &NodeName, b: &NodeName) -> Link {
    if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

impl FakeCluster {
    /// A cluster of the named nodes, all up and connected.
    pub fn new<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes = nodes
            .into_iter()
            .map(|n| (NodeName::new(n), NodeState::new()))
            .collect();
        Self {
            inner: Arc::new(Mutex::new(World {
                nodes,
                cut: HashSet::new(),
                delay: HashMap::new(),
                held: HashMap::new(),
                user_held: HashSet::new(),
                paused: HashMap::new(),
                pauses: 0,
                detection: Duration::from_secs(1),
                frame_limit: HashMap::new(),
                frame_cap: None,
                session: HashMap::new(),
                dialing: HashMap::new(),
                dials: 0,
                dial_delay: HashMap::new(),
                links: HashMap::new(),
                queued: HashMap::new(),
                durable: false,
                entry_delay: Duration::ZERO,
                entry_relays: HashMap::new(),
            })),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // A panic elsewhere while the lock was held leaves plain data behind;
        // keep going so the test reports its own failure.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fake node `name`. Panics if the cluster has no such node.
    pub fn node(&self, name: &str) -> FakeNode {
        let id = NodeName::new(name);
        assert!(
            self.world().nodes.contains_key(&id),
            "the fake cluster has no node {name:?}"
        );
        FakeNode {
            cluster: self.clone(),
            id,
        }
    }

    /// The fake node `name` as a registry for [`crate::TakeoverServer`].
    pub fn registry(&self, name: &str) -> Arc<dyn Registry> {
        Arc::new(self.node(name))
    }

    /// Every node's name.
    pub fn nodes(&self) -> Vec<NodeName> {
        self.world().nodes.keys().cloned().collect()
    }

    /// Delays everything sent from `from` to `to` by `delay`.
    pub fn set_delay(&self, from: &str, to: &str, delay: Duration) {
        self.world().delay.insert((from.into(), to.into()), delay);
    }

    /// Stops delivery from `from` to `to` until [`Self::release`]; what is
    /// sent meanwhile waits, in order.
    pub fn hold(&self, from: &str, to: &str) {
        let link: Link = (from.into(), to.into());
        let mut w = self.world();
        w.user_held.insert(link.clone());
        w.refresh_hold(&link);
    }

    /// Resumes a held link.
    pub fn release(&self, from: &str, to: &str) {
        let link: Link = (from.into(), to.into());
        let mut w = self.world();
        w.user_held.remove(&link);
        w.refresh_hold(&link);
    }

    /// Cuts `a` from `b` both ways, undetected: messages and registry changes
    /// between them are dropped, and each keeps the other's stale registrations.
    pub fn partition(&self, a: &str, b: &str) {
        tracing::info!("--- partition {a} from {b}");
        self.world().cut.insert(pair(&a.into(), &b.into()));
    }

    /// Cuts `a` from `b` both ways and lets each side notice at once, as a
    /// heartbeat timeout does on a real cluster: each drops the other's
    /// registrations and sees it go down. Both sides may then fail over: a
    /// split brain, healed by [`Self::heal`].
    pub fn split(&self, a: &str, b: &str) {
        tracing::info!("--- split {a} from {b} (detected)");
        let (a, b): (NodeName, NodeName) = (a.into(), b.into());
        let mut w = self.world();
        w.cut.insert(pair(&a, &b));
        for (me, other) in [(&a, &b), (&b, &a)] {
            if let Some(n) = w.nodes.get_mut(me).filter(|n| n.up) {
                n.apply(Op::NodeDown(other.clone()));
            }
        }
    }

    /// Cuts `node` from every other node.
    pub fn isolate(&self, node: &str) {
        for other in self.nodes() {
            if other.as_str() != node {
                self.partition(node, other.as_str());
            }
        }
    }

    /// Reconnects `a` and `b`; each sends the other its own registrations, as
    /// a new ractor_cluster session does.
    pub fn heal(&self, a: &str, b: &str) {
        tracing::info!("--- heal {a} and {b}");
        let (a, b): (NodeName, NodeName) = (a.into(), b.into());
        let mut w = self.world();
        if !w.cut.remove(&pair(&a, &b)) {
            return;
        }
        for (from, to) in [(&a, &b), (&b, &a)] {
            let entries = match w.nodes.get(from) {
                Some(n) if n.up => n.entries_of(from),
                _ => continue,
            };
            let sync = Op::Sync {
                from: from.clone(),
                entries,
                newest: w.nodes[from].newest(),
                marks: w.nodes[from].own,
                restarted: false,
            };
            self.enqueue(&mut w, from, to, ItemKind::Op(sync));
        }
    }

    /// Heals every partition.
    pub fn heal_all(&self) {
        let cuts: Vec<Link> = self.world().cut.iter().cloned().collect();
        for (a, b) in cuts {
            self.heal(a.as_str(), b.as_str());
        }
    }

    /// Crashes `node`: its attached instances are killed at once, its view is
    /// lost, and the peers it can reach see it go down (as when the OS closes
    /// a dead process's sockets).
    pub fn crash(&self, node: &str) {
        tracing::info!("--- crash {node}");
        let id: NodeName = node.into();
        let mut w = self.world();
        let durable = w.durable;
        let attached = {
            let Some(n) = w.nodes.get_mut(&id) else {
                return;
            };
            if !n.up {
                return;
            }
            n.up = false;
            n.incarnation += 1;
            n.view.clear();
            if !durable {
                n.newest.clear();
            }
            n.in_flight = 0;
            n.fencing.clear();
            n.own = Marks::default();
            n.marks.clear();
            n.changed();
            std::mem::take(&mut n.attached)
        };
        // A crashed process is no longer hung: its links carry the news.
        w.unpause(&id);
        w.dialing.retain(|(x, y), _| *x != id && *y != id);
        let peers: Vec<NodeName> = w.nodes.keys().filter(|p| **p != id).cloned().collect();
        for peer in peers {
            self.enqueue(&mut w, &id, &peer, ItemKind::Op(Op::NodeDown(id.clone())));
        }
        drop(w);
        for cell in attached {
            cell.kill();
        }
    }

    /// Restarts a crashed `node`, empty; it and its peers sync their views.
    pub fn restart(&self, node: &str) {
        tracing::info!("--- restart {node}");
        let id: NodeName = node.into();
        let mut w = self.world();
        // A restarted node never hears from a peer that is down or behind a
        // cut link, so it counts it as down (a real node's heartbeat never
        // marks a peer live that it never heard from).
        if w.nodes.get(&id).is_none_or(|n| n.up) {
            return;
        }
        let slow = self.start_slow_dials(&mut w, &id);
        let down: BTreeSet<NodeName> = w
            .nodes
            .iter()
            .filter(|(p, s)| !s.up || w.cut.contains(&pair(&id, p)) || slow.contains(*p))
            .map(|(p, _)| p.clone())
            .collect();
        if let Some(n) = w.nodes.get_mut(&id) {
            n.up = true;
            n.down = down;
            n.down.remove(&id);
            n.changed();
        }
        let peers: Vec<NodeName> = w
            .nodes
            .iter()
            .filter(|(p, s)| **p != id && s.up && !slow.contains(*p))
            .map(|(p, _)| p.clone())
            .collect();
        for peer in peers {
            self.sync_restarted(&mut w, &id, &peer);
        }
    }

    /// A new session between a restarted `node` and `peer`: each sends the
    /// other its own registrations; the peer learns that what `node` no
    /// longer has died with it. Caller holds the lock.
    fn sync_restarted(&self, w: &mut World, node: &NodeName, peer: &NodeName) {
        let sync = Op::Sync {
            from: peer.clone(),
            entries: w.nodes[peer].entries_of(peer),
            newest: w.nodes[peer].newest(),
            marks: w.nodes[peer].own,
            restarted: false,
        };
        self.enqueue(w, peer, node, ItemKind::Op(sync));
        let hello = Op::Sync {
            from: node.clone(),
            entries: w.nodes[node].entries_of(node),
            newest: w.nodes[node].newest(),
            marks: w.nodes[node].own,
            restarted: true,
        };
        self.enqueue(w, node, peer, ItemKind::Op(hello));
    }

    /// How many messages and registry changes are on the link `from -> to`:
    /// sent, and not yet arrived or dropped.
    pub fn queued(&self, from: &str, to: &str) -> usize {
        self.world()
            .queued
            .get(&(from.into(), to.into()))
            .copied()
            .unwrap_or(0)
    }

    /// Whether a node that crashes keeps the newest registration it saw per
    /// name (its epochs, [`Registry::newest_seen`]), as a real node with
    /// `ClusterConfig::state_dir` does. Off by default: a crash forgets
    /// everything, and a node that restarts cut off from every peer that knew
    /// may take an epoch again.
    pub fn set_durable(&self, on: bool) {
        self.world().durable = on;
    }

    /// Whether `node` is up.
    pub fn is_up(&self, node: &str) -> bool {
        self.world()
            .nodes
            .get(&NodeName::new(node))
            .is_some_and(|n| n.up)
    }

    /// How many registry changes `node`'s view has handed to the watches of
    /// its instances and clients ([`Registry::watch`]) since the cluster
    /// was made: the work a mass event costs a node, for scale tests.
    pub fn deliveries(&self, node: &str) -> u64 {
        self.world()
            .nodes
            .get(&NodeName::new(node))
            .map_or(0, |n| n.watchers.delivered())
    }

    /// Marks `node` as draining (or not): placement on every node it
    /// reaches moves its names away and none to it. See
    /// [`FakeCluster::drain`].
    pub fn set_draining(&self, node: &str, draining: bool) {
        self.set_marks(node, |m| m.draining = draining);
    }

    /// Holds takeovers back, as `ClusterNode::hold_takeback` does, on
    /// behalf of `node` until [`FakeCluster::release_takeback`]; dies with
    /// `node` if it crashes.
    pub fn hold_takeback(&self, node: &str) {
        self.set_marks(node, |m| m.holds += 1);
    }

    /// Releases one hold of `node`'s.
    pub fn release_takeback(&self, node: &str) {
        self.set_marks(node, |m| m.holds = m.holds.saturating_sub(1));
    }

    fn set_marks(&self, node: &str, change: impl FnOnce(&mut Marks)) {
        let id = NodeName::new(node);
        let mut w = self.world();
        let marks = {
            let Some(n) = w.nodes.get_mut(&id).filter(|n| n.up) else {
                return;
            };
            let before = n.own;
            change(&mut n.own);
            let after = n.own;
            n.marks_changed(&id, before, after);
            n.changed();
            after
        };
        tracing::info!(node, ?marks, "--- marks");
        let peers: Vec<NodeName> = w.nodes.keys().filter(|p| **p != id).cloned().collect();
        for peer in peers {
            let op = Op::Marks {
                from: id.clone(),
                marks,
            };
            self.enqueue(&mut w, &id, &peer, ItemKind::Op(op));
        }
    }

    /// Drains `node` as `ClusterNode::drain` does: marks it draining, then
    /// waits until each name it holds has moved and every call it forwarded
    /// was answered, or `timeout`.
    pub async fn drain(
        &self,
        node: &str,
        timeout: Duration,
    ) -> Result<crate::drain::DrainReport, crate::drain::DrainErr> {
        let started = Instant::now();
        let me = self.node(node);
        let names: Vec<String> = {
            let w = self.world();
            w.nodes
                .get(me.id())
                .map(|n| {
                    n.view
                        .iter()
                        .filter(|(name, regs)| {
                            crate::drain::moves(name) && regs.keys().any(|(_, at)| at == me.id())
                        })
                        .map(|(name, _)| name.clone())
                        .collect()
                })
                .unwrap_or_default()
        };
        self.set_draining(node, true);
        crate::drain::wait_moved(&me, names, started, started + timeout).await
    }

    /// The holder of `name` in each up node's view.
    pub fn holders(&self, name: &str) -> BTreeMap<NodeName, Option<RegistrationInfo>> {
        self.nodes()
            .into_iter()
            .filter(|n| self.is_up(n.as_str()))
            .map(|n| {
                let view = self.node(n.as_str()).lookup(name).map(|r| r.info().clone());
                (n, view)
            })
            .collect()
    }
}

mod link;
mod node;
mod view;

use view::NodeState;

mod faults;

#[cfg(test)]
mod tests;
