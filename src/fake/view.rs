//! One fake node's view of the names: what a registry change does to it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ractor::ActorCell;
use tokio::sync::{broadcast, watch};

use super::{Marks, Op};
use crate::registry::Watchers;
use crate::{Epoch, LeaveReason, NodeName, RegistrationInfo, RegistryEvent};

pub(super) struct NodeState {
    pub(super) up: bool,
    pub(super) incarnation: u64,
    pub(super) view: HashMap<String, BTreeMap<(Epoch, NodeName), ActorCell>>,
    /// Registry changes queued towards this node: a safe lookup waits for 0.
    pub(super) in_flight: usize,
    pub(super) version: watch::Sender<u64>,
    pub(super) events: broadcast::Sender<RegistryEvent>,
    /// The per-name watches ([`crate::Registry::watch`]): what instances
    /// and clients wake up for.
    pub(super) watchers: Watchers,
    pub(super) attached: Vec<ActorCell>,
    /// Peers this node has seen go down and not come back.
    pub(super) down: BTreeSet<NodeName>,
    /// The newest registration seen per name. Why kept apart from the view:
    /// epochs are fencing tokens, so a name must never get an epoch again
    /// after its registrations left; and its node is where the name was last
    /// held ([`Registry::newest_seen`]).
    pub(super) newest: HashMap<String, RegistrationInfo>,
    /// After a pause: peers that declared this node down and have not
    /// re-synced with it since. Its lease is void until none is left, as a
    /// real node's after a stall until every peer answered again.
    pub(super) fencing: BTreeSet<NodeName>,
    /// This node's own marks.
    pub(super) own: Marks,
    /// The marks of the peers, as the links brought them.
    pub(super) marks: BTreeMap<NodeName, Marks>,
}

impl NodeState {
    pub(super) fn new() -> Self {
        Self {
            up: true,
            incarnation: 0,
            view: HashMap::new(),
            in_flight: 0,
            version: watch::channel(0).0,
            events: broadcast::channel(4096).0,
            watchers: Watchers::default(),
            attached: Vec::new(),
            down: BTreeSet::new(),
            newest: HashMap::new(),
            fencing: BTreeSet::new(),
            own: Marks::default(),
            marks: BTreeMap::new(),
        }
    }

    /// The draining nodes in this view, `me` included if it drains.
    pub(super) fn draining(&self, me: &NodeName) -> BTreeSet<NodeName> {
        let mut out: BTreeSet<NodeName> = self
            .marks
            .iter()
            .filter(|(_, m)| m.draining)
            .map(|(n, _)| n.clone())
            .collect();
        if self.own.draining {
            out.insert(me.clone());
        }
        out
    }

    /// Whether any node in this view holds takeovers back.
    pub(super) fn held(&self) -> bool {
        self.own.holds > 0 || self.marks.values().any(|m| m.holds > 0)
    }

    /// Tells the watches what a change of `node`'s marks means.
    pub(super) fn marks_changed(&self, node: &NodeName, before: Marks, after: Marks) {
        if before.draining != after.draining {
            self.emit(RegistryEvent::Draining {
                node: node.clone(),
                draining: after.draining,
            });
        }
        if (before.holds > 0) != (after.holds > 0) {
            self.emit(RegistryEvent::TakebackHold { held: self.held() });
        }
    }

    fn set_peer_marks(&mut self, node: &NodeName, marks: Marks) {
        let before = self.marks.get(node).copied().unwrap_or_default();
        if marks == Marks::default() {
            self.marks.remove(node);
        } else {
            self.marks.insert(node.clone(), marks);
        }
        self.marks_changed(node, before, marks);
    }

    pub(super) fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    pub(super) fn emit(&self, event: RegistryEvent) {
        self.watchers.emit(&event);
        let _ = self.events.send(event);
    }

    pub(super) fn insert(&mut self, info: RegistrationInfo, cell: ActorCell) {
        self.saw(&info);
        let entries = self.view.entry(info.name.clone()).or_default();
        if entries
            .insert((info.epoch, info.node.clone()), cell)
            .is_none()
        {
            self.emit(RegistryEvent::Registered(info));
        }
    }

    pub(super) fn saw(&mut self, info: &RegistrationInfo) {
        let newest = self
            .newest
            .entry(info.name.clone())
            .or_insert_with(|| info.clone());
        if info.rank() > newest.rank() {
            *newest = info.clone();
        }
    }

    pub(super) fn remove(&mut self, info: &RegistrationInfo, reason: LeaveReason) -> bool {
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

    pub(super) fn newest(&self) -> Vec<RegistrationInfo> {
        self.newest.values().cloned().collect()
    }

    pub(super) fn entries_of(&self, node: &NodeName) -> Vec<(RegistrationInfo, ActorCell)> {
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

    pub(super) fn apply(&mut self, op: Op) {
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
                // A peer declared down no longer counts for the lease.
                self.fencing.remove(&node);
                // Its marks die with it, as its pg markers would.
                self.set_peer_marks(&node, Marks::default());
                self.emit(RegistryEvent::NodeDown(node));
            }
            Op::Sync {
                from,
                entries,
                newest,
                restarted,
                marks,
            } => {
                self.set_peer_marks(&from, marks);
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
                self.fencing.remove(&from);
                self.emit(RegistryEvent::NodeUp(from));
            }
            Op::Marks { from, marks } => self.set_peer_marks(&from, marks),
        }
        self.changed();
    }
}
