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
//!
//! This file holds the actor; what both paths record is in `record`, the
//! session's wire form of pings and pongs in `wire`, and peer
//! (re)connection (dialing, learnt members, start-up probes) in `dial`.

mod dial;
mod record;
mod wire;

pub(crate) use self::record::{
    answered, declare_down, heard, next_round, rule, runtime_resumed, stalled,
};

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ractor::pg::GroupChangeMessage;
use ractor::{pg, Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::NodeServerMessage;
use tokio::time::Instant;

use super::{ClusterConfig, Shared};
use crate::NodeName;

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
                    // Unless another session to the same node is still
                    // there: when both ends dial at once (a node resumed
                    // from a stop finds its peer's dials queued), ractor_cluster
                    // stops the duplicates, and their Leave may come after
                    // the Join of the session it keeps. Taken for a close,
                    // it left the peer down for good while its session
                    // carried its registrations and claims: two holders that
                    // never met (real_startup saw it).
                    let Some(node) = node_of(&cell).filter(|_| !cell.get_id().is_local()) else {
                        continue;
                    };
                    if state
                        .peer_cells()
                        .iter()
                        .any(|(n, c)| *n == node && c.get_id() != cell.get_id())
                    {
                        tracing::debug!(peer = %node, "a duplicate session to the peer closed; another carries on");
                        continue;
                    }
                    {
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
