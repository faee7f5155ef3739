//! The heartbeat actor: failure detection, the holder lease's evidence, the
//! stall rule, the sync barrier of safe lookups, and peer (re)connection.
//!
//! It does nothing else, in a pg scope of its own ([`HB_SCOPE`]): pg changes
//! of the registrations (a storm in a mass move) go to the watcher actor, so
//! they never queue ahead of a ping or a pong here.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::pg::GroupChangeMessage;
use ractor::{pg, Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::NodeServerMessage;
use tokio::time::Instant;

use super::{lease, ClusterConfig, Shared};
use crate::{NodeName, RegistryEvent};

/// The pg scope of the heartbeat actors, apart from the registrations'.
pub(crate) const HB_SCOPE: &str = "ractor_takeover|hb";
const GROUP: &str = "ractor_takeover|heartbeat";
const PREFIX: &str = "ractor_takeover|hb|";

/// Heartbeats without a session before a node also dials a peer whose name
/// sorts first.
const ORDERLESS_AFTER: u32 = 25;

pub(crate) fn actor_name(node: &NodeName) -> String {
    format!("{PREFIX}{node}")
}

fn node_of(cell: &ActorCell) -> Option<NodeName> {
    cell.get_name()?.strip_prefix(PREFIX).map(NodeName::new)
}

pub(crate) enum HeartbeatMsg {
    /// From a peer: answer with a pong.
    Ping { from: NodeName, seq: u64 },
    /// From a peer: it is alive, and every change it made before is in.
    Pong { from: NodeName, seq: u64 },
    /// Local: ping everyone, expire the silent, dial the missing.
    Tick,
    /// Local: answer once every live peer answered a ping sent from now on.
    Barrier(RpcReplyPort<()>),
    /// Local: a dial finished; `refused`: nothing listens at the address.
    Dialed {
        node: NodeName,
        ok: bool,
        refused: bool,
    },
    /// Local: a TCP probe of a peer we wait to be dialed by, during start-up.
    Probed { node: NodeName, refused: bool },
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
        let (from, seq): (NodeName, u64) =
            postcard::from_bytes(&args).map_err(|_| BoxedDowncastErr)?;
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
    last_heard: HashMap<NodeName, Instant>,
    barriers: Vec<(u64, BTreeSet<NodeName>, RpcReplyPort<()>)>,
    ticks: u64,
    /// Dial rounds each configured peer has gone without a session.
    unconnected_ticks: HashMap<NodeName, u32>,
    /// Peers being dialed, and until when not to dial them again.
    dialing: HashMap<NodeName, Instant>,
    /// Peers being probed (start-up only).
    probing: BTreeSet<NodeName>,
    /// When each recent ping round was sent, by its sequence number: a pong
    /// proves liveness as of its ping's send time, never as of its arrival.
    sent: VecDeque<(u64, Instant)>,
    /// When the previous tick was handled, to tell a stall.
    last_tick: Instant,
}

impl State {
    fn me(&self) -> &NodeName {
        &self.args.config.node
    }

    /// Our peers' heartbeat actors, as pg shows them.
    fn peer_cells(&self) -> Vec<(NodeName, ActorCell)> {
        pg::get_scoped_members(&HB_SCOPE.to_string(), &GROUP.to_string())
            .into_iter()
            .filter(|c| !c.get_id().is_local())
            .filter_map(|c| node_of(&c).map(|n| (n, c)))
            .filter(|(n, _)| n != self.me())
            .collect()
    }

    fn ping_all(&mut self) -> BTreeSet<NodeName> {
        self.seq += 1;
        let now = Instant::now();
        self.sent.push_back((self.seq, now));
        // A pong older than the detection time gives no lease anyway.
        let keep = self.args.config.detection_time() * 2;
        while self
            .sent
            .front()
            .is_some_and(|(_, at)| now.duration_since(*at) > keep)
        {
            self.sent.pop_front();
        }
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

    /// `node` answered ping `seq`: its lease evidence is that ping's send time.
    fn answered(&mut self, node: &NodeName, seq: u64) {
        let Some(&(_, sent)) = self.sent.iter().find(|(s, _)| *s == seq) else {
            return;
        };
        let mut s = self.args.shared.lock();
        if s.alive.contains(node) {
            let at = s.answered.entry(node.clone()).or_insert(sent);
            *at = (*at).max(sent);
        }
    }

    fn heard(&mut self, node: NodeName) {
        self.last_heard.insert(node.clone(), Instant::now());
        let new = {
            let mut s = self.args.shared.lock();
            s.known_down.remove(&node);
            s.alive.insert(node.clone())
        };
        if new {
            tracing::info!(node = %self.me(), peer = %node, "peer up");
            self.args.shared.emit(RegistryEvent::NodeUp(node));
            self.args.shared.bump();
            // A peer up that has not answered a ping voids the lease (it
            // may hold a name of ours, seen or not): ask it now rather than
            // at the next tick, so a node joining (a client's, too) pauses
            // holders for one round trip, not up to an interval.
            self.ping_all();
        }
    }

    fn down(&mut self, node: &NodeName, why: &str) {
        self.last_heard.remove(node);
        let was = {
            let mut s = self.args.shared.lock();
            s.answered.remove(node);
            s.known_down.insert(node.clone());
            s.alive.remove(node)
        };
        if was {
            tracing::warn!(node = %self.me(), peer = %node, why, "peer down");
            self.args.shared.emit(RegistryEvent::NodeDown(node.clone()));
            self.args.shared.bump();
        }
        self.settle_barriers(node, u64::MAX);
    }

    /// `node` answered up to `seq` (or is gone: `u64::MAX`).
    fn settle_barriers(&mut self, node: &NodeName, seq: u64) {
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

    /// Dials the configured peers we have no session with. Only the node
    /// whose name sorts first dials a pair: when both dial at once,
    /// ractor_cluster keeps one session and stops the other, and the calls in
    /// flight through the proxies of the stopped one lose their replies. A
    /// peer that never dials us (configured one way only) is dialed anyway
    /// once `ORDERLESS_AFTER` ticks have passed without a session.
    fn dial_missing(&mut self, myself: &ActorRef<HeartbeatMsg>) {
        let connected: BTreeSet<NodeName> = self.peer_cells().into_iter().map(|(n, _)| n).collect();
        let me = self.args.config.node.clone();
        for peer in self.args.config.peers.clone() {
            if connected.contains(&peer.node) || peer.node == me {
                self.unconnected_ticks.remove(&peer.node);
                continue;
            }
            let waited = self.unconnected_ticks.entry(peer.node.clone()).or_default();
            *waited += 1;
            if peer.node < me && *waited < ORDERLESS_AFTER {
                self.probe(myself, &peer.node, &peer.addr);
                continue;
            }
            // One dial at a time per peer; after a connect, give the session
            // the detection time to finish its handshake before dialing again.
            if self
                .dialing
                .get(&peer.node)
                .is_some_and(|until| Instant::now() < *until)
            {
                continue;
            }
            let window = self.args.config.handshake_timeout;
            self.dialing
                .insert(peer.node.clone(), Instant::now() + window * 2);
            let server = self.args.node_server.clone();
            let addr = peer.addr.clone();
            let node = peer.node.clone();
            let myself = myself.clone();
            let tls = self.args.config.tls.clone();
            tokio::spawn(async move {
                let dial = async {
                    match tls {
                        Some(tls) => {
                            ractor_cluster::client_connect_enc(
                                &server,
                                addr.as_str(),
                                tls.connector().clone(),
                                tls.server_name().clone(),
                            )
                            .await
                        }
                        None => ractor_cluster::client_connect(&server, addr.as_str()).await,
                    }
                };
                // Neither the TCP connect nor the TLS handshake has a timeout
                // of its own (a peer that never answers the handshake would
                // hold the dial forever).
                let (ok, refused) = match tokio::time::timeout(window, dial).await {
                    Ok(Ok(())) => (true, false),
                    Ok(Err(e)) => {
                        tracing::debug!(%addr, error = %e, "peer not reachable yet");
                        let refused = matches!(
                            &e,
                            ractor_cluster::ClientConnectErr::Socket(io)
                                if io.kind() == std::io::ErrorKind::ConnectionRefused
                        );
                        (false, refused)
                    }
                    Err(_) => {
                        tracing::debug!(%addr, "dial timed out");
                        (false, false)
                    }
                };
                let _ = myself.send_message(HeartbeatMsg::Dialed { node, ok, refused });
            });
        }
    }
}

impl State {
    /// During start-up, finds out whether a peer that we wait to be dialed
    /// by listens at all: a refused connection means no process is there,
    /// so nothing can be registered there and the peer is known down; an
    /// accepted one (a live peer, or a hung one: the kernel accepts for it)
    /// leaves it unknown until it dials us or `startup_timeout` passes. The
    /// probe's connection closes at once without a byte sent.
    fn probe(&mut self, myself: &ActorRef<HeartbeatMsg>, node: &NodeName, addr: &str) {
        let shared = &self.args.shared;
        if shared.started.elapsed() >= self.args.config.startup_timeout
            || self.probing.contains(node)
        {
            return;
        }
        {
            let s = shared.lock();
            if s.alive.contains(node) || s.known_down.contains(node) {
                return;
            }
        }
        self.probing.insert(node.clone());
        let (node, addr, myself) = (node.clone(), addr.to_string(), myself.clone());
        let timeout = self.args.config.handshake_timeout;
        tokio::spawn(async move {
            let refused = matches!(
                tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr.as_str())).await,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
            );
            let _ = myself.send_message(HeartbeatMsg::Probed { node, refused });
        });
    }

    /// Nothing listens at `node`'s address: known down (not up, so no event).
    fn refused(&mut self, node: &NodeName) {
        let mut s = self.args.shared.lock();
        if !s.alive.contains(node) && s.known_down.insert(node.clone()) {
            tracing::info!(node = %self.args.config.node, peer = %node, "peer not listening: known down");
            drop(s);
            self.args.shared.bump();
        }
    }

    /// This process's timers fired far late: it stalled. Its sockets may
    /// hold fresh pongs (and pg changes) its timers have not seen, so it
    /// suspects itself before anyone else: every peer gets a fresh
    /// detection window from now, and the lease counts only pongs to pings
    /// sent from now on.
    fn stalled(&mut self, gap: std::time::Duration) {
        let now = Instant::now();
        tracing::warn!(node = %self.args.config.node, ?gap, "this node stalled: re-syncing before judging peers");
        for at in self.last_heard.values_mut() {
            *at = now;
        }
        self.args.shared.lock().fence = Some(now);
        self.args.shared.bump();
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
        pg::monitor_scope(HB_SCOPE.to_string(), myself.get_cell());
        pg::join_scoped(
            HB_SCOPE.to_string(),
            GROUP.to_string(),
            vec![myself.get_cell()],
        );
        myself.send_interval(args.config.heartbeat_interval, || HeartbeatMsg::Tick);
        Ok(State {
            args,
            seq: 0,
            last_heard: HashMap::new(),
            barriers: Vec::new(),
            ticks: 0,
            unconnected_ticks: HashMap::new(),
            dialing: HashMap::new(),
            probing: BTreeSet::new(),
            sent: VecDeque::new(),
            last_tick: Instant::now(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<HeartbeatMsg>,
        state: &mut State,
    ) -> Result<(), ActorProcessingErr> {
        state.dial_missing(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<HeartbeatMsg>,
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
                state.answered(&from, seq);
                state.settle_barriers(&from, seq);
            }
            HeartbeatMsg::Tick => {
                state.ticks += 1;
                let now = Instant::now();
                let gap = now.duration_since(state.last_tick);
                state.last_tick = now;
                let config = &state.args.config;
                if lease::is_stall(gap, config.heartbeat_interval, config.detection_time()) {
                    state.stalled(gap);
                }
                state.ping_all();
                let detection = state.args.config.detection_time();
                let silent: Vec<NodeName> = state
                    .last_heard
                    .iter()
                    .filter(|(_, at)| at.elapsed() > detection)
                    .map(|(n, _)| n.clone())
                    .collect();
                for node in silent {
                    state.down(&node, "missed heartbeats");
                }
                state.dial_missing(&myself);
            }
            HeartbeatMsg::Probed { node, refused } => {
                state.probing.remove(&node);
                if refused {
                    state.refused(&node);
                }
            }
            HeartbeatMsg::Dialed { node, ok, refused } => {
                if refused {
                    state.refused(&node);
                }
                if ok {
                    let grace = Instant::now() + state.args.config.detection_time();
                    state.dialing.insert(node, grace);
                } else {
                    state.dialing.remove(&node);
                }
            }
            HeartbeatMsg::Barrier(reply) => {
                let pinged = state.ping_all();
                let alive = state.args.shared.lock().alive.clone();
                let waiting: BTreeSet<NodeName> = pinged.intersection(&alive).cloned().collect();
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
        if let GroupChangeMessage::Leave(scope, group, cells) = change {
            if scope != HB_SCOPE || group != GROUP {
                return Ok(());
            }
            for cell in cells {
                // The session closed (the OS closes a killed process's
                // sockets at once): no need to wait for missed beats.
                if let Some(node) = node_of(&cell).filter(|_| !cell.get_id().is_local()) {
                    state.down(&node, "session closed");
                }
            }
        }
        Ok(())
    }
}
