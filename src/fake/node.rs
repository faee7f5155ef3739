//! A fake node as a registry: its naming side and its transport side.

use std::collections::BTreeSet;
use std::time::Duration;

use ractor::message::SerializedMessage;
use ractor::ActorCell;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{FakeNode, ItemKind, NodeState, Op, World};
use crate::registry::{takes_messages, BoxFuture};
use crate::{
    LeaveReason, NameWatch, NodeName, Registration, RegistrationInfo, Registry, RegistryErr,
    RegistryEvent,
};

impl FakeNode {
    /// This node's name.
    pub fn id(&self) -> &NodeName {
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
        let peers: Vec<NodeName> = w.nodes.keys().filter(|p| **p != self.id).cloned().collect();
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
        let nodes: Vec<NodeName> = w.nodes.keys().cloned().collect();
        let epoch = crate::registry::next_epoch(seen, &self.id, &nodes);
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
        let peers: Vec<NodeName> = w.nodes.keys().filter(|p| **p != self.id).cloned().collect();
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
    fn node(&self) -> &NodeName {
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

    fn note_seen(&self, info: &RegistrationInfo) {
        let mut w = self.cluster.world();
        if let Some(node) = w.nodes.get_mut(&self.id).filter(|n| n.up) {
            node.saw(info);
        }
    }

    fn max_frame_bytes(&self) -> Option<usize> {
        self.cluster.frame_cap()
    }

    fn unregister(&self, info: &RegistrationInfo, reason: LeaveReason) {
        let mut w = self.cluster.world();
        self.remove_and_tell(&mut w, info, reason);
    }

    fn unregister_instance(&self, registration: &Registration, reason: LeaveReason) {
        let mut w = self.cluster.world();
        let info = registration.info();
        // An instance killed by a crash stops after its node restarted (a
        // real process's instances die with it): if the node took the same
        // epoch again since, the entry is the new instance's, and stays.
        let same = w
            .nodes
            .get(&self.id)
            .and_then(|n| n.view.get(&info.name))
            .and_then(|e| e.get(&(info.epoch, info.node.clone())))
            .is_some_and(|cell| cell.get_id() == registration.cell().get_id());
        if same {
            self.remove_and_tell(&mut w, info, reason);
        }
    }

    fn live_nodes(&self) -> BTreeSet<NodeName> {
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

    fn draining(&self) -> BTreeSet<NodeName> {
        let w = self.cluster.world();
        match w.nodes.get(&self.id) {
            Some(me) if me.up => me.draining(&self.id),
            _ => BTreeSet::new(),
        }
    }

    fn takeback_held(&self) -> bool {
        let w = self.cluster.world();
        w.nodes.get(&self.id).is_some_and(|me| me.up && me.held())
    }

    fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        let w = self.cluster.world();
        match w.nodes.get(&self.id) {
            Some(n) => n.events.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    fn watch(&self, name: &str) -> NameWatch {
        let w = self.cluster.world();
        match w.nodes.get(&self.id) {
            Some(n) => n.watchers.watch(name),
            None => NameWatch::closed(),
        }
    }

    fn lease_until(&self) -> Option<Instant> {
        // Void while paused (a peer may declare us down any moment) and
        // after a resume until every peer that did so re-synced with us (see
        // `faults`). Otherwise one longer than any test: the fake has no
        // heartbeat, and a split both sides detected keeps both leases, as
        // on the real backend (quorum mode is the answer there).
        let w = self.cluster.world();
        let me = w.nodes.get(&self.id)?;
        (me.up && me.fencing.is_empty() && !w.paused.contains_key(&self.id))
            .then(|| Instant::now() + Duration::from_secs(3600))
    }
}

impl crate::registry::Transport for FakeNode {
    fn send_wire(
        &self,
        to: &Registration,
        msg: SerializedMessage,
    ) -> Result<(), Option<SerializedMessage>> {
        let mut w = self.cluster.world();
        if !w.nodes.get(&self.id).is_some_and(|n| n.up) {
            return Err(Some(msg));
        }
        let node = to.node().clone();
        // A crashed node's sockets are closed (the OS closes them when the
        // process dies), so a send to it fails at once, as a send to a
        // stopped proxy does on a real cluster: the sender learns the
        // message was not sent. A partition still loses it silently.
        if !w.nodes.get(&node).is_some_and(|n| n.up) {
            return Err(Some(msg));
        }
        self.cluster.enqueue(
            &mut w,
            &self.id,
            &node,
            ItemKind::Wire {
                to: to.clone(),
                msg,
            },
        );
        Ok(())
    }

    fn attach(&self, instance: &ActorCell) {
        self.with_node(|n| n.attached.push(instance.clone()));
    }
}
