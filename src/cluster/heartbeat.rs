//! The heartbeat: what both heartbeat paths record (liveness, the holder
//! lease's evidence, the stall rule), and the session-side actor: pings on
//! each ractor_cluster session, the sync barrier of safe lookups, and peer
//! (re)connection.
//!
//! Two paths carry pings: the beacon's own UDP socket and thread
//! ([`super::beacon`], which also judges silence, so that load on the
//! node's runtime cannot make it declare a live peer down), and the session
//! (this actor). A sign of life on either counts. The session's pongs are
//! the ones a safe lookup waits for: a session delivers in order, so such a
//! pong proves every pg change its peer made before it is in.
//!
//! The actor lives in a pg scope of its own ([`HB_SCOPE`]): pg changes of
//! the registrations (a storm in a mass move) go to the watcher actor, so
//! they never queue ahead of a ping or a pong here.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::pg::GroupChangeMessage;
use ractor::{pg, Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::NodeServerMessage;
use tokio::time::Instant;

use super::{detector, ClusterConfig, PeerAddr, Shared};
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
    Ping {
        from: NodeName,
        seq: u64,
        client: bool,
    },
    /// From a peer: it is alive, and every change it made before is in.
    /// `inc`: its incarnation; `downs`: how many times it declared us down.
    Pong {
        from: NodeName,
        seq: u64,
        inc: u64,
        downs: u64,
        client: bool,
    },
    /// From a peer, when our session comes up: the members it knows,
    /// itself included, by name and `host:port` (client-only ones left out:
    /// nobody needs to dial them).
    Members(Vec<(NodeName, String)>),
    /// Local: ping everyone over the sessions, dial the missing.
    Tick,
    /// Local: the beacon declared this peer down.
    PeerDown(NodeName),
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

/// What a ping or pong carries on the session.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    from: NodeName,
    seq: u64,
    inc: u64,
    downs: u64,
    client: bool,
}

impl ractor::Message for HeartbeatMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        if let Self::Members(members) = self {
            return Ok(SerializedMessage::Cast {
                variant: "members".into(),
                args: postcard::to_allocvec(&members).map_err(|_| BoxedDowncastErr)?,
                metadata: None,
            });
        }
        let (variant, wire) = match self {
            Self::Ping { from, seq, client } => (
                "ping",
                Wire {
                    from,
                    seq,
                    inc: 0,
                    downs: 0,
                    client,
                },
            ),
            Self::Pong {
                from,
                seq,
                inc,
                downs,
                client,
            } => (
                "pong",
                Wire {
                    from,
                    seq,
                    inc,
                    downs,
                    client,
                },
            ),
            _ => return Err(BoxedDowncastErr),
        };
        Ok(SerializedMessage::Cast {
            variant: variant.into(),
            args: postcard::to_allocvec(&wire).map_err(|_| BoxedDowncastErr)?,
            metadata: None,
        })
    }

    fn deserialize(bytes: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        let SerializedMessage::Cast { variant, args, .. } = bytes else {
            return Err(BoxedDowncastErr);
        };
        if variant == "members" {
            let members = postcard::from_bytes(&args).map_err(|_| BoxedDowncastErr)?;
            return Ok(Self::Members(members));
        }
        let w: Wire = postcard::from_bytes(&args).map_err(|_| BoxedDowncastErr)?;
        match variant.as_str() {
            "ping" => Ok(Self::Ping {
                from: w.from,
                seq: w.seq,
                client: w.client,
            }),
            "pong" => Ok(Self::Pong {
                from: w.from,
                seq: w.seq,
                inc: w.inc,
                downs: w.downs,
                client: w.client,
            }),
            _ => Err(BoxedDowncastErr),
        }
    }
}

/// The detector's rule with these settings.
pub(crate) fn rule(config: &ClusterConfig) -> detector::Rule {
    detector::Rule {
        floor: config.detection_time(),
        ceiling: config.effective_max_detection(),
        phi: config.phi_threshold,
        // A quarter of the interval: scheduling jitter on a quiet host is
        // far below it, so regular beats keep detection at the floor.
        min_std_dev: config.heartbeat_interval / 4,
    }
}

/// A new ping round, sent on either path: its number, with its send time
/// kept for the lease.
pub(crate) fn next_round(shared: &Shared, config: &ClusterConfig) -> u64 {
    let now = Instant::now();
    let mut s = shared.lock();
    s.seq += 1;
    let seq = s.seq;
    s.sent.push_back((seq, now));
    // A pong older than the detection time gives no lease anyway.
    let keep = config.effective_max_detection() * 2;
    while s
        .sent
        .front()
        .is_some_and(|(_, at)| now.duration_since(*at) > keep)
    {
        s.sent.pop_front();
    }
    seq
}

/// `node` gave a sign of life (`beat`: a ping, of its own rhythm, else a
/// pong). It is up once it also has a session with us (its registrations
/// reach us there). Returns whether it just came up.
pub(crate) fn heard(
    shared: &Shared,
    config: &ClusterConfig,
    node: &NodeName,
    beat: bool,
    client: bool,
) -> bool {
    let now = Instant::now();
    let new = {
        let mut s = shared.lock();
        let arrivals = s.arrivals.entry(node.clone()).or_default();
        if beat {
            arrivals.beat(now, config.effective_max_detection());
        } else {
            arrivals.heard(now);
        }
        if client {
            s.clients.insert(node.clone());
        } else {
            s.clients.remove(node);
        }
        if !s.sessions.contains(node) {
            return false;
        }
        s.known_down.remove(node);
        s.alive.insert(node.clone())
    };
    if new {
        tracing::info!(node = %config.node, peer = %node, client, "peer up");
        shared.emit(RegistryEvent::NodeUp(node.clone()));
        shared.bump();
    }
    new
}

/// `node` answered ping `seq`: its lease evidence is that ping's send time,
/// unless `node` declared us down since it last synced with us on the
/// session (`downs` above what we accounted for): then a standby of its may
/// have taken a name of ours, and only a pong on the session, which comes
/// after its registrations, lets us count it again.
pub(crate) fn answered(
    shared: &Shared,
    node: &NodeName,
    seq: u64,
    inc: u64,
    downs: u64,
    on_session: bool,
) {
    let mut s = shared.lock();
    let Some(&(_, sent)) = s.sent.iter().find(|(n, _)| *n == seq) else {
        return;
    };
    let accounted = match s.accounted.get(node) {
        Some(&(i, d)) if i == inc => d,
        _ => 0,
    };
    if on_session {
        s.accounted
            .insert(node.clone(), (inc, accounted.max(downs)));
    } else if downs > accounted {
        return;
    }
    if s.alive.contains(node) {
        let at = s.answered.entry(node.clone()).or_insert(sent);
        *at = (*at).max(sent);
    }
}

/// Declares `node` down (if it was up). Returns whether it was.
pub(crate) fn declare_down(
    shared: &Shared,
    config: &ClusterConfig,
    node: &NodeName,
    why: &str,
) -> bool {
    let was = {
        let mut s = shared.lock();
        s.answered.remove(node);
        s.arrivals.remove(node);
        s.known_down.insert(node.clone());
        let was = s.alive.remove(node);
        if was {
            *s.downs.entry(node.clone()).or_default() += 1;
        }
        was
    };
    if was {
        tracing::warn!(node = %config.node, peer = %node, why, "peer down");
        shared.emit(RegistryEvent::NodeDown(node.clone()));
        shared.bump();
    }
    was
}

/// This process's beacon timer fired far late (`gap` after the previous
/// tick): the whole process stalled (stopped, starved or swapped; the
/// beacon's thread runs whatever the runtime does). Its sockets may hold
/// fresh pongs (and pg changes) it has not read, so it suspects itself
/// before anyone else: every peer gets a fresh detection window from now,
/// and the lease counts only pongs to pings sent from now on.
pub(crate) fn stalled(
    shared: &Shared,
    config: &ClusterConfig,
    gap: std::time::Duration,
    now: Instant,
) {
    tracing::warn!(node = %config.node, ?gap, "this node stalled: re-syncing before judging peers");
    {
        let mut s = shared.lock();
        for arrivals in s.arrivals.values_mut() {
            arrivals.refresh(now);
        }
        s.fence = Some(now);
    }
    shared.bump();
}

pub(crate) struct Heartbeat;

pub(crate) struct Args {
    pub(crate) config: ClusterConfig,
    pub(crate) shared: Arc<Shared>,
    pub(crate) node_server: ActorRef<NodeServerMessage>,
    /// Where peers reach this node, `host:port`, as told to them.
    pub(crate) advertised: String,
}

pub(crate) struct State {
    args: Args,
    barriers: Vec<(u64, BTreeSet<NodeName>, RpcReplyPort<()>)>,
    /// Dial rounds each configured peer has gone without a session.
    unconnected_ticks: HashMap<NodeName, u32>,
    /// Peers being dialed, and until when not to dial them again.
    dialing: HashMap<NodeName, Instant>,
    /// Peers being probed (start-up only).
    probing: BTreeSet<NodeName>,
    /// Peers we have had a session with: a seed or a learnt member is
    /// dialed at once until then (it may not know us), and by the pair
    /// rule after (it knows us now).
    met: BTreeSet<NodeName>,
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

    /// Pings every peer over its session; returns the round and who was pinged.
    fn ping_all(&mut self) -> (u64, BTreeSet<NodeName>) {
        let seq = next_round(&self.args.shared, &self.args.config);
        let mut pinged = BTreeSet::new();
        for (node, cell) in self.peer_cells() {
            let ping = HeartbeatMsg::Ping {
                from: self.me().clone(),
                seq,
                client: self.args.config.client_only,
            };
            if cell.send_message(ping).is_ok() {
                pinged.insert(node);
            }
        }
        (seq, pinged)
    }

    fn heard(&mut self, node: &NodeName, client: bool) {
        if heard(&self.args.shared, &self.args.config, node, false, client) {
            // A peer up that has not answered a ping voids the lease (it
            // may hold a name of ours, seen or not): ask it now rather than
            // at the next tick, so a node joining pauses holders for one
            // round trip, not up to an interval.
            self.ping_all();
        }
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
        self.met.extend(connected.iter().cloned());
        let configured: BTreeSet<NodeName> = self
            .args
            .config
            .peers
            .iter()
            .map(|p| p.node.clone())
            .collect();
        let learnt: Vec<PeerAddr> = self
            .args
            .shared
            .lock()
            .members
            .iter()
            .filter(|(n, _)| !configured.contains(*n))
            .map(|(n, (addr, _))| PeerAddr::new(n.clone(), addr.clone()))
            .collect();
        let seeds = self
            .args
            .config
            .seeds
            .iter()
            .filter(|p| !configured.contains(&p.node));
        let targets: Vec<(PeerAddr, bool)> = self
            .args
            .config
            .peers
            .iter()
            .map(|p| (p.clone(), false))
            .chain(seeds.cloned().map(|p| (p, true)))
            .chain(learnt.into_iter().map(|p| (p, true)))
            .collect();
        for (peer, joining) in targets {
            if connected.contains(&peer.node) || peer.node == me {
                self.unconnected_ticks.remove(&peer.node);
                continue;
            }
            let waited = self.unconnected_ticks.entry(peer.node.clone()).or_default();
            *waited += 1;
            // A seed or a member learnt from others may not know us, so it
            // would never dial: we do, at once, until we have met it. A
            // configured peer follows the pair rule (it may dial us too).
            let dial_now = joining && !self.met.contains(&peer.node);
            if !dial_now && peer.node < me && *waited < ORDERLESS_AFTER {
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
    /// The members this node knows, itself included, for a peer that just
    /// came up (client-only nodes left out).
    fn members(&self) -> Vec<(NodeName, String)> {
        let config = &self.args.config;
        let s = self.args.shared.lock();
        let mut out: HashMap<NodeName, String> = config
            .peers
            .iter()
            .chain(&config.seeds)
            .map(|p| (p.node.clone(), p.addr.clone()))
            .chain(s.members.iter().map(|(n, (a, _))| (n.clone(), a.clone())))
            .filter(|(n, _)| !s.clients.contains(n))
            .collect();
        if !config.client_only {
            out.insert(config.node.clone(), self.args.advertised.clone());
        }
        out.into_iter().collect()
    }

    /// A peer told us its members: the ones we did not know are learnt, and
    /// dialed at once.
    fn learn(&mut self, members: Vec<(NodeName, String)>) {
        let config = &self.args.config;
        let now = Instant::now();
        let mut s = self.args.shared.lock();
        for (node, addr) in members {
            let known = node == config.node
                || config
                    .peers
                    .iter()
                    .chain(&config.seeds)
                    .any(|p| p.node == node)
                || s.members.contains_key(&node);
            if !known {
                tracing::info!(node = %config.node, peer = %node, %addr, "member learnt");
                s.members.insert(node, (addr, now));
                s.learnt += 1;
            }
        }
    }

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
        // Nothing listens where a learnt member was: it left. Forget it (a
        // member that comes back tells us again when it joins).
        if s.members.remove(node).is_some() {
            tracing::info!(node = %self.args.config.node, peer = %node, "learnt member gone: forgotten");
        }
        if !s.alive.contains(node) && s.known_down.insert(node.clone()) {
            tracing::info!(node = %self.args.config.node, peer = %node, "peer not listening: known down");
            drop(s);
            self.args.shared.bump();
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
        pg::monitor_scope(HB_SCOPE.to_string(), myself.get_cell());
        pg::join_scoped(
            HB_SCOPE.to_string(),
            GROUP.to_string(),
            vec![myself.get_cell()],
        );
        myself.send_interval(args.config.heartbeat_interval, || HeartbeatMsg::Tick);
        let state = State {
            args,
            barriers: Vec::new(),
            unconnected_ticks: HashMap::new(),
            dialing: HashMap::new(),
            probing: BTreeSet::new(),
            met: BTreeSet::new(),
        };
        let sessions: BTreeSet<NodeName> = state.peer_cells().into_iter().map(|(n, _)| n).collect();
        state.args.shared.lock().sessions.extend(sessions);
        Ok(state)
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
            HeartbeatMsg::Ping { from, seq, client } => {
                state.heard(&from, client);
                if let Some((_, cell)) = state.peer_cells().into_iter().find(|(n, _)| *n == from) {
                    let shared = &state.args.shared;
                    let downs = shared.lock().downs.get(&from).copied().unwrap_or(0);
                    let _ = cell.send_message(HeartbeatMsg::Pong {
                        from: state.me().clone(),
                        seq,
                        inc: shared.incarnation,
                        downs,
                        client: state.args.config.client_only,
                    });
                }
            }
            HeartbeatMsg::Pong {
                from,
                seq,
                inc,
                downs,
                client,
            } => {
                state.heard(&from, client);
                answered(&state.args.shared, &from, seq, inc, downs, true);
                state.settle_barriers(&from, seq);
            }
            HeartbeatMsg::Tick => {
                // No judging here: this actor runs on the node's runtime,
                // whose timers a busy handler delays; the beacon judges.
                state.ping_all();
                state.dial_missing(&myself);
            }
            HeartbeatMsg::PeerDown(node) => state.settle_barriers(&node, u64::MAX),
            HeartbeatMsg::Members(members) => {
                state.learn(members);
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
                let (seq, pinged) = state.ping_all();
                let waiting: BTreeSet<NodeName> = {
                    let s = state.args.shared.lock();
                    // A client-only node holds nothing: nothing of its can be
                    // in flight that a lookup must wait for.
                    pinged
                        .into_iter()
                        .filter(|n| s.alive.contains(n) && !s.clients.contains(n))
                        .collect()
                };
                if waiting.is_empty() {
                    let _ = reply.send(());
                } else {
                    state.barriers.push((seq, waiting, reply));
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
            GroupChangeMessage::Join(scope, group, cells)
                if scope == HB_SCOPE && group == GROUP =>
            {
                let members = state.members();
                for cell in cells.iter().filter(|c| !c.get_id().is_local()) {
                    if let Some(node) = node_of(cell) {
                        state.args.shared.lock().sessions.insert(node);
                        // Before any pong of ours on this session: a peer
                        // that joins through us knows the members before
                        // its first safe lookup's round trip ends.
                        let _ = cell.send_message(HeartbeatMsg::Members(members.clone()));
                    }
                }
            }
            GroupChangeMessage::Leave(scope, group, cells)
                if scope == HB_SCOPE && group == GROUP =>
            {
                for cell in cells {
                    // The session closed (the OS closes a killed process's
                    // sockets at once): no need to wait for missed beats.
                    if let Some(node) = node_of(&cell).filter(|_| !cell.get_id().is_local()) {
                        state.args.shared.lock().sessions.remove(&node);
                        declare_down(
                            &state.args.shared,
                            &state.args.config,
                            &node,
                            "session closed",
                        );
                        state.settle_barriers(&node, u64::MAX);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
