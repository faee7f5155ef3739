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
//! - `set_serialize_messages(true)`: every message between nodes round-trips
//!   through its serialized form, to catch encoding bugs.
//!
//! The instances themselves are ordinary ractor actors in this process.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ractor::ActorCell;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use crate::registry::{takes_messages, BoxFuture, Delivery};
use crate::{
    Epoch, LeaveReason, NodeId, Registration, RegistrationInfo, Registry, RegistryErr,
    RegistryEvent,
};

/// The fake cluster: a cheap `Clone` over shared state.
#[derive(Clone)]
pub struct FakeCluster {
    inner: Arc<Mutex<World>>,
}

/// One fake node's view; it implements [`Registry`].
#[derive(Clone)]
pub struct FakeNode {
    cluster: FakeCluster,
    id: NodeId,
}

type Link = (NodeId, NodeId);

struct World {
    nodes: BTreeMap<NodeId, NodeState>,
    /// Partitioned pairs, smaller node first.
    cut: HashSet<Link>,
    delay: HashMap<Link, Duration>,
    held: HashMap<Link, watch::Sender<bool>>,
    links: HashMap<Link, mpsc::UnboundedSender<Item>>,
    /// Items on each link, sent and not yet arrived.
    queued: HashMap<Link, usize>,
    serialize: bool,
    /// Whether a node keeps the newest registration per name across a crash
    /// (as a real node with `ClusterConfig::state_dir` does).
    durable: bool,
}

struct NodeState {
    up: bool,
    incarnation: u64,
    view: HashMap<String, BTreeMap<(Epoch, NodeId), ActorCell>>,
    /// Registry changes queued towards this node: a safe lookup waits for 0.
    in_flight: usize,
    version: watch::Sender<u64>,
    events: broadcast::Sender<RegistryEvent>,
    attached: Vec<ActorCell>,
    /// Peers this node has seen go down and not come back.
    down: BTreeSet<NodeId>,
    /// The newest registration seen per name. Why kept apart from the view:
    /// epochs are fencing tokens, so a name must never get an epoch again
    /// after its registrations left; and its node is where the name was last
    /// held ([`Registry::newest_seen`]).
    newest: HashMap<String, RegistrationInfo>,
}

struct Item {
    due: Instant,
    from_incarnation: u64,
    to_incarnation: u64,
    kind: ItemKind,
}

enum ItemKind {
    Deliver(Delivery),
    Op(Op),
}

enum Op {
    Add(RegistrationInfo, ActorCell),
    Remove(RegistrationInfo, LeaveReason),
    NodeDown(NodeId),
    /// Replace every registration of `from` in the view with `entries`.
    Sync {
        from: NodeId,
        entries: Vec<(RegistrationInfo, ActorCell)>,
        /// The sender's newest registration seen per name.
        newest: Vec<RegistrationInfo>,
        /// The sender restarted: what it no longer has died with it.
        restarted: bool,
    },
}

fn pair(a: &NodeId, b: &NodeId) -> Link {
    if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

impl NodeState {
    fn new() -> Self {
        Self {
            up: true,
            incarnation: 0,
            view: HashMap::new(),
            in_flight: 0,
            version: watch::channel(0).0,
            events: broadcast::channel(4096).0,
            attached: Vec::new(),
            down: BTreeSet::new(),
            newest: HashMap::new(),
        }
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    fn emit(&self, event: RegistryEvent) {
        let _ = self.events.send(event);
    }

    fn insert(&mut self, info: RegistrationInfo, cell: ActorCell) {
        self.saw(&info);
        let entries = self.view.entry(info.name.clone()).or_default();
        if entries
            .insert((info.epoch, info.node.clone()), cell)
            .is_none()
        {
            self.emit(RegistryEvent::Registered(info));
        }
    }

    fn saw(&mut self, info: &RegistrationInfo) {
        let newest = self
            .newest
            .entry(info.name.clone())
            .or_insert_with(|| info.clone());
        if info.rank() > newest.rank() {
            *newest = info.clone();
        }
    }

    fn remove(&mut self, info: &RegistrationInfo, reason: LeaveReason) -> bool {
        let Some(entries) = self.view.get_mut(&info.name) else {
            return false;
        };
        if entries.remove(&(info.epoch, info.node.clone())).is_none() {
            return false;
        }
        if entries.is_empty() {
            self.view.remove(&info.name);
        }
        self.emit(RegistryEvent::Unregistered {
            info: info.clone(),
            reason,
        });
        true
    }

    fn newest(&self) -> Vec<RegistrationInfo> {
        self.newest.values().cloned().collect()
    }

    fn entries_of(&self, node: &NodeId) -> Vec<(RegistrationInfo, ActorCell)> {
        let mut out = Vec::new();
        for (name, entries) in &self.view {
            for ((epoch, n), cell) in entries {
                if n == node {
                    out.push((
                        RegistrationInfo {
                            name: name.clone(),
                            epoch: *epoch,
                            node: n.clone(),
                        },
                        cell.clone(),
                    ));
                }
            }
        }
        out
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Add(info, cell) => self.insert(info, cell),
            Op::Remove(info, reason) => {
                self.remove(&info, reason);
            }
            Op::NodeDown(node) => {
                for (info, _) in self.entries_of(&node) {
                    self.remove(&info, LeaveReason::NodeDown);
                }
                self.down.insert(node.clone());
                self.emit(RegistryEvent::NodeDown(node));
            }
            Op::Sync {
                from,
                entries,
                newest,
                restarted,
            } => {
                for info in &newest {
                    self.saw(info);
                }
                let keep: HashSet<RegistrationInfo> =
                    entries.iter().map(|(i, _)| i.clone()).collect();
                for (info, _) in self.entries_of(&from) {
                    if !keep.contains(&info) {
                        let reason = if restarted {
                            LeaveReason::NodeDown
                        } else {
                            LeaveReason::Unregistered
                        };
                        self.remove(&info, reason);
                    }
                }
                for (info, cell) in entries {
                    self.insert(info, cell);
                }
                self.down.remove(&from);
                self.emit(RegistryEvent::NodeUp(from));
            }
        }
        self.changed();
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
            .map(|n| (NodeId::new(n), NodeState::new()))
            .collect();
        Self {
            inner: Arc::new(Mutex::new(World {
                nodes,
                cut: HashSet::new(),
                delay: HashMap::new(),
                held: HashMap::new(),
                links: HashMap::new(),
                queued: HashMap::new(),
                serialize: false,
                durable: false,
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
        let id = NodeId::new(name);
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
    pub fn nodes(&self) -> Vec<NodeId> {
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
        self.world()
            .held
            .entry(link)
            .or_insert_with(|| watch::channel(false).0)
            .send_replace(true);
    }

    /// Resumes a held link.
    pub fn release(&self, from: &str, to: &str) {
        let link: Link = (from.into(), to.into());
        if let Some(h) = self.world().held.get(&link) {
            h.send_replace(false);
        }
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
        let (a, b): (NodeId, NodeId) = (a.into(), b.into());
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
        let (a, b): (NodeId, NodeId) = (a.into(), b.into());
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
        let id: NodeId = node.into();
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
            n.changed();
            std::mem::take(&mut n.attached)
        };
        let peers: Vec<NodeId> = w.nodes.keys().filter(|p| **p != id).cloned().collect();
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
        let id: NodeId = node.into();
        let mut w = self.world();
        // A restarted node never hears from a peer that is down or behind a
        // cut link, so it counts it as down (a real node's heartbeat never
        // marks a peer live that it never heard from).
        let down: BTreeSet<NodeId> = w
            .nodes
            .iter()
            .filter(|(p, s)| !s.up || w.cut.contains(&pair(&id, p)))
            .map(|(p, _)| p.clone())
            .collect();
        match w.nodes.get_mut(&id) {
            Some(n) if !n.up => {
                n.up = true;
                n.down = down;
                n.down.remove(&id);
                n.changed();
            }
            _ => return,
        }
        let peers: Vec<NodeId> = w
            .nodes
            .iter()
            .filter(|(p, s)| **p != id && s.up)
            .map(|(p, _)| p.clone())
            .collect();
        for peer in peers {
            let entries = w.nodes[&peer].entries_of(&peer);
            let sync = Op::Sync {
                from: peer.clone(),
                entries,
                newest: w.nodes[&peer].newest(),
                restarted: false,
            };
            self.enqueue(&mut w, &peer, &id, ItemKind::Op(sync));
            let hello = Op::Sync {
                from: id.clone(),
                entries: Vec::new(),
                newest: Vec::new(),
                restarted: true,
            };
            self.enqueue(&mut w, &id, &peer, ItemKind::Op(hello));
        }
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

    /// Makes every message between nodes round-trip through its serialized form.
    pub fn set_serialize_messages(&self, on: bool) {
        self.world().serialize = on;
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
            .get(&NodeId::new(node))
            .is_some_and(|n| n.up)
    }

    /// The holder of `name` in each up node's view.
    pub fn holders(&self, name: &str) -> BTreeMap<NodeId, Option<RegistrationInfo>> {
        self.nodes()
            .into_iter()
            .filter(|n| self.is_up(n.as_str()))
            .map(|n| {
                let view = self.node(n.as_str()).lookup(name).map(|r| r.info().clone());
                (n, view)
            })
            .collect()
    }

    /// Queues `kind` on the link `from -> to`. Caller holds the lock.
    fn enqueue(&self, w: &mut World, from: &NodeId, to: &NodeId, kind: ItemKind) {
        let (Some(f), Some(t)) = (w.nodes.get(from), w.nodes.get(to)) else {
            return;
        };
        if !t.up {
            return;
        }
        let item = Item {
            due: Instant::now()
                + w.delay
                    .get(&(from.clone(), to.clone()))
                    .copied()
                    .unwrap_or_default(),
            from_incarnation: f.incarnation,
            to_incarnation: t.incarnation,
            kind,
        };
        if matches!(item.kind, ItemKind::Op(_)) {
            if let Some(t) = w.nodes.get_mut(to) {
                t.in_flight += 1;
                t.changed();
            }
        }
        let link = (from.clone(), to.clone());
        *w.queued.entry(link.clone()).or_default() += 1;
        let sender = match w.links.get(&link) {
            Some(s) => s.clone(),
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                let held = w
                    .held
                    .entry(link.clone())
                    .or_insert_with(|| watch::channel(false).0)
                    .subscribe();
                tokio::spawn(run_link(self.clone(), link.clone(), rx, held));
                w.links.insert(link, tx.clone());
                tx
            }
        };
        let _ = sender.send(item);
    }

    /// An item reached the end of its link: apply or deliver it, unless a
    /// fault dropped it on the way.
    fn arrive(&self, link: &Link, item: Item) {
        let (from, to) = link;
        let mut w = self.world();
        if let Some(n) = w.queued.get_mut(link) {
            *n -= 1;
        }
        let cut = w.cut.contains(&pair(from, to));
        let from_ok = matches!(item.kind, ItemKind::Op(Op::NodeDown(_)))
            || w.nodes
                .get(from)
                .is_some_and(|f| f.up && f.incarnation == item.from_incarnation);
        let Some(dest) = w.nodes.get_mut(to) else {
            return;
        };
        let same_dest = dest.up && dest.incarnation == item.to_incarnation;
        let deliverable = same_dest && from_ok && !cut;
        match item.kind {
            ItemKind::Op(op) => {
                if same_dest {
                    dest.in_flight -= 1;
                    if deliverable {
                        dest.apply(op);
                    } else {
                        dest.changed();
                    }
                }
            }
            ItemKind::Deliver(delivery) => {
                drop(w);
                if deliverable {
                    delivery(Arc::new(FakeNode {
                        cluster: self.clone(),
                        id: to.clone(),
                    }));
                }
            }
        }
    }
}

async fn run_link(
    cluster: FakeCluster,
    link: Link,
    mut items: mpsc::UnboundedReceiver<Item>,
    mut held: watch::Receiver<bool>,
) {
    while let Some(item) = items.recv().await {
        while *held.borrow_and_update() {
            if held.changed().await.is_err() {
                return;
            }
        }
        // No timer without a delay: a sleep, even a past one, waits for the
        // timer wheel's next tick (about a millisecond).
        if item.due > Instant::now() {
            tokio::time::sleep_until(item.due).await;
        }
        cluster.arrive(&link, item);
    }
}

impl FakeNode {
    /// This node's name.
    pub fn id(&self) -> &NodeId {
        &self.id
    }

    fn with_node<R>(&self, f: impl FnOnce(&mut NodeState) -> R) -> Option<R> {
        let mut w = self.cluster.world();
        w.nodes.get_mut(&self.id).filter(|n| n.up).map(f)
    }

    /// Removes this node's own registrations of `name` whose instance died,
    /// and tells the peers, the way `global` unregisters a crashed pid before
    /// `safe_whereis_name` answers.
    fn purge_dead(&self, w: &mut World, name: &str) {
        let Some(node) = w.nodes.get_mut(&self.id).filter(|n| n.up) else {
            return;
        };
        let dead: Vec<RegistrationInfo> = node
            .view
            .get(name)
            .into_iter()
            .flatten()
            .filter(|((_, n), cell)| *n == self.id && !takes_messages(cell))
            .map(|((epoch, n), _)| RegistrationInfo {
                name: name.to_string(),
                epoch: *epoch,
                node: n.clone(),
            })
            .collect();
        for info in dead {
            self.remove_and_tell(w, &info, LeaveReason::InstanceDied);
        }
    }

    /// Removes one of this node's registrations and sends the removal to every peer.
    fn remove_and_tell(&self, w: &mut World, info: &RegistrationInfo, reason: LeaveReason) {
        let Some(node) = w.nodes.get_mut(&self.id).filter(|n| n.up) else {
            return;
        };
        if !node.remove(info, reason.clone()) {
            return;
        }
        node.changed();
        let peers: Vec<NodeId> = w.nodes.keys().filter(|p| **p != self.id).cloned().collect();
        for peer in peers {
            self.cluster.enqueue(
                w,
                &self.id,
                &peer,
                ItemKind::Op(Op::Remove(info.clone(), reason.clone())),
            );
        }
    }

    /// Adds a registration here and sends it to every peer.
    fn add(
        &self,
        name: &str,
        cell: ActorCell,
        only_if_free: bool,
    ) -> Result<Registration, RegistryErr> {
        let mut w = self.cluster.world();
        self.purge_dead(&mut w, name);
        let Some(node) = w.nodes.get_mut(&self.id).filter(|n| n.up) else {
            return Err(RegistryErr::NodeDown(self.id.clone()));
        };
        if only_if_free {
            if let Some(((epoch, holder), _)) = node.view.get(name).and_then(|e| e.last_key_value())
            {
                return Err(RegistryErr::AlreadyRegistered {
                    name: name.to_string(),
                    holder: holder.clone(),
                    epoch: *epoch,
                });
            }
        }
        let seen = node.newest.get(name).map_or(0, |i| i.epoch);
        let nodes: Vec<NodeId> = w.nodes.keys().cloned().collect();
        let epoch = crate::next_epoch(seen, &self.id, &nodes);
        let Some(node) = w.nodes.get_mut(&self.id) else {
            return Err(RegistryErr::NodeDown(self.id.clone()));
        };
        let info = RegistrationInfo {
            name: name.to_string(),
            epoch,
            node: self.id.clone(),
        };
        node.insert(info.clone(), cell.clone());
        node.changed();
        let peers: Vec<NodeId> = w.nodes.keys().filter(|p| **p != self.id).cloned().collect();
        for peer in peers {
            self.cluster.enqueue(
                &mut w,
                &self.id,
                &peer,
                ItemKind::Op(Op::Add(info.clone(), cell.clone())),
            );
        }
        Ok(Registration::new(info, cell))
    }
}

impl Registry for FakeNode {
    fn node(&self) -> &NodeId {
        &self.id
    }

    fn members(&self, name: &str) -> Vec<Registration> {
        self.with_node(|n| {
            n.view
                .get(name)
                .into_iter()
                .flatten()
                .map(|((epoch, node), cell)| {
                    Registration::new(
                        RegistrationInfo {
                            name: name.to_string(),
                            epoch: *epoch,
                            node: node.clone(),
                        },
                        cell.clone(),
                    )
                })
                // Only this node can see its own instances die at once; a
                // remote death reaches it as a registry change.
                .filter(|r| r.node() != &self.id || r.is_alive())
                .collect()
        })
        .unwrap_or_default()
    }

    fn safe_lookup<'a>(
        &'a self,
        name: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<Registration>, RegistryErr>> {
        Box::pin(async move {
            let started = Instant::now();
            let deadline = started + timeout;
            loop {
                let mut version = {
                    let mut w = self.cluster.world();
                    let Some(node) = w.nodes.get_mut(&self.id).filter(|n| n.up) else {
                        return Err(RegistryErr::NodeDown(self.id.clone()));
                    };
                    if node.in_flight == 0 {
                        self.purge_dead(&mut w, name);
                        drop(w);
                        return Ok(self.lookup(name));
                    }
                    node.version.subscribe()
                };
                version.mark_unchanged();
                match tokio::time::timeout_at(deadline, version.changed()).await {
                    Ok(Ok(())) => {}
                    _ => {
                        return Err(RegistryErr::NotSettled {
                            waited: started.elapsed(),
                        })
                    }
                }
            }
        })
    }

    fn register<'a>(
        &'a self,
        name: &'a str,
        cell: ActorCell,
    ) -> BoxFuture<'a, Result<Registration, RegistryErr>> {
        Box::pin(async move { self.add(name, cell, true) })
    }

    fn steal<'a>(
        &'a self,
        name: &'a str,
        cell: ActorCell,
    ) -> BoxFuture<'a, Result<Registration, RegistryErr>> {
        Box::pin(async move { self.add(name, cell, false) })
    }

    fn newest_seen(&self, name: &str) -> Option<RegistrationInfo> {
        let w = self.cluster.world();
        w.nodes
            .get(&self.id)
            .filter(|n| n.up)
            .and_then(|n| n.newest.get(name).cloned())
    }

    fn unregister(&self, info: &RegistrationInfo, reason: LeaveReason) {
        let mut w = self.cluster.world();
        self.remove_and_tell(&mut w, info, reason);
    }

    fn live_nodes(&self) -> BTreeSet<NodeId> {
        let w = self.cluster.world();
        match w.nodes.get(&self.id) {
            Some(me) if me.up => w
                .nodes
                .keys()
                .filter(|n| !me.down.contains(*n))
                .cloned()
                .collect(),
            _ => BTreeSet::new(),
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        let w = self.cluster.world();
        match w.nodes.get(&self.id) {
            Some(n) => n.events.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    fn lease_until(&self) -> Option<Instant> {
        // The fake has no failure detector: no peer ever declares an up node
        // down by a timeout (a crash, which kills the node's instances, is
        // the only way down), so an up node always holds a lease, here one
        // longer than any test.
        self.cluster
            .is_up(self.id.as_str())
            .then(|| Instant::now() + Duration::from_secs(3600))
    }

    fn send_to(&self, to: &NodeId, delivery: Delivery) {
        if to == &self.id {
            if self.cluster.is_up(self.id.as_str()) {
                delivery(Arc::new(self.clone()));
            }
            return;
        }
        let mut w = self.cluster.world();
        if !w.nodes.get(&self.id).is_some_and(|n| n.up) {
            return;
        }
        self.cluster
            .enqueue(&mut w, &self.id, to, ItemKind::Deliver(delivery));
    }

    fn attach(&self, instance: &ActorCell) {
        self.with_node(|n| n.attached.push(instance.clone()));
    }

    fn serialize_messages(&self) -> bool {
        self.cluster.world().serialize
    }
}

#[cfg(test)]
mod tests;
