//! The heartbeat actor: failure detection, the sync barrier of safe lookups,
//! peer (re)connection, and pg changes turned into registry events.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::pg::GroupChangeMessage;
use ractor::{pg, Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::NodeServerMessage;
use tokio::time::Instant;

use super::{member_info, ClusterConfig, Shared, SCOPE};
use crate::{LeaveReason, NodeId, RegistryEvent};

const GROUP: &str = "ractor_takeover|heartbeat";
const PREFIX: &str = "ractor_takeover|hb|";

pub(crate) fn actor_name(node: &NodeId) -> String {
    format!("{PREFIX}{node}")
}

fn node_of(cell: &ActorCell) -> Option<NodeId> {
    cell.get_name()?.strip_prefix(PREFIX).map(NodeId::new)
}

pub(crate) enum HeartbeatMsg {
    /// From a peer: answer with a pong.
    Ping { from: NodeId, seq: u64 },
    /// From a peer: it is alive, and every change it made before is in.
    Pong { from: NodeId, seq: u64 },
    /// Local: ping everyone, expire the silent, dial the missing.
    Tick,
    /// Local: answer once every live peer answered a ping sent from now on.
    Barrier(RpcReplyPort<()>),
}

impl ractor::Message for HeartbeatMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        let (variant, from, seq) = match self {
            Self::Ping { from, seq } => ("ping", from, seq),
            Self::Pong { from, seq } => ("pong", from, seq),
            _ => return Err(BoxedDowncastErr),
        };
        Ok(SerializedMessage::Cast {
            variant: variant.into(),
            args: postcard::to_allocvec(&(from, seq)).map_err(|_| BoxedDowncastErr)?,
            metadata: None,
        })
    }

    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        let SerializedMessage::Cast { variant, args, .. } = bytes else {
            return Err(BoxedDowncastErr);
        };
        let (from, seq): (NodeId, u64) = postcard::from_bytes(&args).map_err(|_| BoxedDowncastErr)?;
        match variant.as_str() {
            "ping" => Ok(Self::Ping { from, seq }),
            "pong" => Ok(Self::Pong { from, seq }),
            _ => Err(BoxedDowncastErr),
        }
    }
}

pub(crate) struct Heartbeat;

pub(crate) struct Args {
    pub(crate) config: ClusterConfig,
    pub(crate) shared: Arc<Shared>,
    pub(crate) node_server: ActorRef<NodeServerMessage>,
}

pub(crate) struct State {
    args: Args,
    seq: u64,
    last_heard: HashMap<NodeId, Instant>,
    barriers: Vec<(u64, BTreeSet<NodeId>, RpcReplyPort<()>)>,
    ticks: u64,
}

impl State {
    fn me(&self) -> &NodeId {
        &self.args.config.node
    }

    /// Our peers' heartbeat actors, as pg shows them.
    fn peer_cells(&self) -> Vec<(NodeId, ActorCell)> {
        pg::get_scoped_members(&SCOPE.to_string(), &GROUP.to_string())
            .into_iter()
            .filter(|c| !c.get_id().is_local())
            .filter_map(|c| node_of(&c).map(|n| (n, c)))
            .filter(|(n, _)| n != self.me())
            .collect()
    }

    fn ping_all(&mut self) -> BTreeSet<NodeId> {
        self.seq += 1;
        let mut pinged = BTreeSet::new();
        for (node, cell) in self.peer_cells() {
            let ping = HeartbeatMsg::Ping {
                from: self.me().clone(),
                seq: self.seq,
            };
            if cell.send_message(ping).is_ok() {
                pinged.insert(node);
            }
        }
        pinged
    }

    fn heard(&mut self, node: NodeId) {
        self.last_heard.insert(node.clone(), Instant::now());
        let new = self.args.shared.lock().alive.insert(node.clone());
        if new {
            tracing::info!(node = %self.me(), peer = %node, "peer up");
            self.args.shared.emit(RegistryEvent::NodeUp(node));
            self.args.shared.bump();
        }
    }

    fn down(&mut self, node: &NodeId, why: &str) {
        self.last_heard.remove(node);
        let was = self.args.shared.lock().alive.remove(node);
        if was {
            tracing::warn!(node = %self.me(), peer = %node, why, "peer down");
            self.args.shared.emit(RegistryEvent::NodeDown(node.clone()));
            self.args.shared.bump();
        }
        self.settle_barriers(node, u64::MAX);
    }

    /// `node` answered up to `seq` (or is gone: `u64::MAX`).
    fn settle_barriers(&mut self, node: &NodeId, seq: u64) {
        let mut i = 0;
        while i < self.barriers.len() {
            if self.barriers[i].0 <= seq {
                self.barriers[i].1.remove(node);
            }
            if self.barriers[i].1.is_empty() {
                let (_, _, reply) = self.barriers.swap_remove(i);
                let _ = reply.send(());
            } else {
                i += 1;
            }
        }
    }

    fn dial_missing(&mut self) {
        let connected: BTreeSet<NodeId> = self.peer_cells().into_iter().map(|(n, _)| n).collect();
        for peer in &self.args.config.peers {
            if connected.contains(&peer.node) || peer.node == self.args.config.node {
                continue;
            }
            let server = self.args.node_server.clone();
            let addr = peer.addr.clone();
            tokio::spawn(async move {
                if let Err(e) = ractor_cluster::client_connect(&server, addr.as_str()).await {
                    tracing::debug!(%addr, error = %e, "peer not reachable yet");
                }
            });
        }
    }
}

impl Actor for Heartbeat {
    type Msg = HeartbeatMsg;
    type State = State;
    type Arguments = Args;

    async fn pre_start(
        &self,
        myself: ActorRef<HeartbeatMsg>,
        args: Args,
    ) -> Result<State, ActorProcessingErr> {
        pg::monitor_scope(SCOPE.to_string(), myself.get_cell());
        pg::join_scoped(SCOPE.to_string(), GROUP.to_string(), vec![myself.get_cell()]);
        myself.send_interval(args.config.heartbeat_interval, || HeartbeatMsg::Tick);
        Ok(State {
            args,
            seq: 0,
            last_heard: HashMap::new(),
            barriers: Vec::new(),
            ticks: 0,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<HeartbeatMsg>,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        state.dial_missing();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<HeartbeatMsg>,
        msg: HeartbeatMsg,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HeartbeatMsg::Ping { from, seq } => {
                state.heard(from.clone());
                if let Some((_, cell)) = state.peer_cells().into_iter().find(|(n, _)| *n == from) {
                    let _ = cell.send_message(HeartbeatMsg::Pong {
                        from: state.me().clone(),
                        seq,
                    });
                }
            }
            HeartbeatMsg::Pong { from, seq } => {
                state.heard(from.clone());
                state.settle_barriers(&from, seq);
            }
            HeartbeatMsg::Tick => {
                state.ticks += 1;
                state.ping_all();
                let detection = state.args.config.detection_time();
                let silent: Vec<NodeId> = state
                    .last_heard
                    .iter()
                    .filter(|(_, at)| at.elapsed() > detection)
                    .map(|(n, _)| n.clone())
                    .collect();
                for node in silent {
                    state.down(&node, "missed heartbeats");
                }
                // Dial every few ticks: a refused connect is cheap, but a
                // session being set up should get the time to finish.
                if state.ticks % 5 == 0 {
                    state.dial_missing();
                }
            }
            HeartbeatMsg::Barrier(reply) => {
                let pinged = state.ping_all();
                let alive = state.args.shared.lock().alive.clone();
                let waiting: BTreeSet<NodeId> = pinged.intersection(&alive).cloned().collect();
                if waiting.is_empty() {
                    let _ = reply.send(());
                } else {
                    state.barriers.push((state.seq, waiting, reply));
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<HeartbeatMsg>,
        event: SupervisionEvent,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ProcessGroupChanged(change) = event else {
            return Ok(());
        };
        match change {
            GroupChangeMessage::Join(scope, group, cells) if scope == SCOPE => {
                if group == GROUP {
                    return Ok(());
                }
                for cell in cells {
                    if let Some(info) = member_info(&cell, &group) {
                        {
                            let mut s = state.args.shared.lock();
                            let max = s.max_epoch.entry(info.name.clone()).or_default();
                            *max = (*max).max(info.epoch);
                        }
                        state.args.shared.emit(RegistryEvent::Registered(info));
                    }
                }
            }
            GroupChangeMessage::Leave(scope, group, cells) if scope == SCOPE => {
                for cell in cells {
                    if group == GROUP {
                        // The session closed (the OS closes a killed process's
                        // sockets at once): no need to wait for missed beats.
                        if let Some(node) = node_of(&cell).filter(|_| !cell.get_id().is_local()) {
                            state.down(&node, "session closed");
                        }
                    } else if let Some(info) = member_info(&cell, &group) {
                        state.args.shared.emit(RegistryEvent::Unregistered {
                            info,
                            reason: LeaveReason::Unregistered,
                        });
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
