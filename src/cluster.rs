//! The real backend: [`Registry`] on `ractor::pg`, synced between nodes by
//! `ractor_cluster` over TCP with cookie authentication, optionally inside
//! mutual TLS ([`ClusterConfig::with_tls`], [`ClusterTls`]).
//!
//! How the pieces fit what pg gives (see the facts in the README):
//!
//! - **Metadata.** pg stores no metadata per member, and ractor's `node_id`
//!   differs from observer to observer. So each registration is a small
//!   *token* actor whose spawn name carries `(epoch, node, name)`; remote
//!   nodes see the token as a proxy whose `get_name()` still carries it. The
//!   token joins the group `name` in the scope `ractor_takeover` and passes
//!   every (serialized) message on to the instance; on its own node the view
//!   maps the token straight to the instance, so local calls stay unserialized.
//! - **Failure detection.** ractor_cluster pings but never times a pong out,
//!   so a dead or partitioned peer can stay in pg for a long time. Each node
//!   pings every peer every `heartbeat_interval` on two paths: its heartbeat
//!   actor on the session (a member of the scope's heartbeat group), and
//!   the beacon, a thread with a UDP socket of its own (`beacon`), which
//!   alone judges silence, by phi accrual above a floor of
//!   `interval x misses` (`detector`): a peer down has its registrations
//!   ignored and a [`RegistryEvent::NodeDown`] goes out, so placement can
//!   fail over. Why a path of its own: on the session a heartbeat waits
//!   behind megabytes of state parts and the session's backlog, and on the
//!   runtime behind CPU-bound handlers; a live node looked down under load.
//!   A separate watcher actor turns registration changes into events. A
//!   node whose beacon timer fires far late (the whole process stalled)
//!   suspects itself first: it gives every peer a fresh detection window
//!   before it judges any of them. A node whose runtime has run no task
//!   for [`ClusterConfig::runtime_timeout`] (wedged) falls silent on that
//!   path, so its peers declare it down and its names fail over.
//! - **Lease.** [`ClusterNode::lease_until`]: until when no other node can
//!   have declared this node down, from the send times of the pings its
//!   peers answered (see `docs/lease.md`).
//! - **Safe lookup.** It answers only after every configured peer, seed
//!   and member learnt from them is either heard from or known down
//!   (declared down, or refusing connections; a peer that accepts and stays
//!   silent is waited for up to [`ClusterConfig::startup_timeout`], a
//!   learnt member as long from when it was learnt), then after a ping
//!   round trip to every live peer that is not client-only: a session
//!   delivers in order, so the pong proves that every pg change the peer
//!   made before it has reached us (what `global:sync` does).
//! - **Big states, small frames.** Inbound frames are capped at
//!   `max_frame_bytes` (16 MiB by default, ractor_cluster's own) on every
//!   connection, before the cookie handshake too: the cap is how much an
//!   unauthenticated peer can make a node buffer per connection. States of
//!   any size (up to `max_state_bytes`) travel in parts under it (see
//!   [`crate::TakeoverConfig::state_part_bytes`]). Every node of a cluster
//!   must use the same setting.

mod beacon;
mod config;
mod detector;
mod drain;
mod guard;
mod heartbeat;
mod lease;
mod listener;
mod liveness;
mod marks;
mod registry;
mod store;
mod tls;
mod token;
mod watcher;

pub use config::{
    ClusterConfig, ClusterErr, PeerAddr, DEFAULT_MAX_FRAME_BYTES, DEFAULT_RUNTIME_TIMEOUT,
    MIN_FRAME_BYTES,
};
pub use marks::{TakebackHold, DRAINING_GROUP, HOLD_GROUP};
pub use tls::{ClusterTls, TlsErr};

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use ractor::{Actor, ActorCell, ActorId, ActorRef};
use ractor_cluster::{IncomingEncryptionMode, NodeServer, NodeServerMessage};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::registry::Watchers;
use crate::{LeaveReason, NodeName, RegistrationInfo, Registry, RegistryEvent};

use heartbeat::{Heartbeat, HeartbeatMsg};
use watcher::{Watcher, WatcherMsg};

/// The pg scope every registration and heartbeat lives in.
pub const SCOPE: &str = "ractor_takeover";

/// A real node: its node server, heartbeat and view of the global names.
/// Cheap to clone; it implements [`Registry`].
///
/// One per OS process: pg is a process static, so two nodes in one process
/// would share (and corrupt) one view.
#[derive(Clone)]
pub struct ClusterNode {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("node", &self.inner.config.node)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ClusterConfig,
    node_server: ActorRef<NodeServerMessage>,
    heartbeat: ActorRef<HeartbeatMsg>,
    watcher: ActorRef<WatcherMsg>,
    /// The failure detector's own thread and socket (see `beacon`); it
    /// stops when the node is shut down or dropped.
    beacon: beacon::Beacon,
    /// The accept loop of the node's port (see `listener`); `None` when
    /// the node is attached to the application's own node server, which
    /// then listens itself.
    accept: Option<tokio::task::JoinHandle<()>>,
    /// Whether this crate started the node server (and so stops it in
    /// [`ClusterNode::shutdown`]), or the application did.
    owns_server: bool,
    shared: Arc<Shared>,
    /// This node's drain marker while it drains (see `marks`).
    drain_marker: Mutex<Option<ActorRef<marks::MarkerMsg>>>,
    /// The safe lookups' shared ping rounds (see [`ClusterNode::barrier`]).
    barriers: Barriers,
}

/// Tickets of the safe lookups that asked for a ping round, and the newest
/// one a completed round covers.
#[derive(Default)]
struct Barriers {
    asked: AtomicU64,
    /// Held while a round is out: who asks meanwhile waits for the next.
    covered: tokio::sync::Mutex<u64>,
}

/// What the heartbeat actor and the registry share.
pub(crate) struct Shared {
    pub(crate) started: Instant,
    /// When the node's runtime last proved it runs (see `liveness`).
    pub(crate) runtime: liveness::RuntimeClock,
    /// This process's incarnation (see `beacon::incarnation`).
    pub(crate) incarnation: u64,
    pub(crate) state: Mutex<SharedState>,
    pub(crate) events: broadcast::Sender<RegistryEvent>,
    /// The per-name watches of instances and clients ([`Registry::watch`]).
    pub(crate) watchers: Watchers,
    /// Bumped on every liveness change, for waiters.
    pub(crate) changed: watch::Sender<u64>,
}

#[derive(Default)]
pub(crate) struct SharedState {
    /// Peers heard from within the detection time.
    pub(crate) alive: BTreeSet<NodeName>,
    /// Peers known not to be up: declared down after they were up, or
    /// refusing connections (nothing listens). A configured peer in neither
    /// set is *unknown* until `startup_timeout` has passed.
    pub(crate) known_down: BTreeSet<NodeName>,
    /// Per peer up, the send time of the latest ping it answered: the
    /// evidence of this node's lease (see `lease`).
    pub(crate) answered: HashMap<NodeName, Instant>,
    /// Set when this node stalled: pongs to pings sent before it give no lease.
    pub(crate) fence: Option<Instant>,
    /// The latest ping round (both paths share the numbers) and when each
    /// recent round was sent: a pong proves liveness as of its ping's send
    /// time, never as of its arrival.
    pub(crate) seq: u64,
    pub(crate) sent: std::collections::VecDeque<(u64, Instant)>,
    /// When each peer's heartbeats arrived, for the failure detector.
    pub(crate) arrivals: HashMap<NodeName, detector::Arrivals>,
    /// Peers with a ractor_cluster session (their heartbeat actor in pg): a
    /// peer is up only with one, since its registrations reach us there.
    pub(crate) sessions: BTreeSet<NodeName>,
    /// Peers whose heartbeats say they are client-only: they hold nothing,
    /// so they count neither for the lease nor for a safe lookup.
    pub(crate) clients: BTreeSet<NodeName>,
    /// How many times this node declared each peer down (told to the peer
    /// in each pong).
    pub(crate) downs: HashMap<NodeName, u64>,
    /// Per peer, `(its incarnation, how many of its downs of us a session
    /// pong has covered)`: a pong on the beacon's path that shows more
    /// gives no lease until one on the session comes (see
    /// `heartbeat::answered`).
    pub(crate) accounted: HashMap<NodeName, (u64, u64)>,
    /// Members learnt from seeds and peers (not configured here): where
    /// each listens, and when it was learnt (a safe lookup waits for it up
    /// to `startup_timeout` from then). `learnt` counts the additions.
    pub(crate) members: HashMap<NodeName, (String, Instant)>,
    pub(crate) learnt: u64,
    /// Our own registrations: token id -> (metadata, instance, token).
    pub(crate) local: HashMap<ActorId, (RegistrationInfo, ActorCell, ActorCell)>,
    /// `local` by metadata, so an unregistration finds its token without a
    /// scan of every registration of the node (thousands of names).
    local_by_info: HashMap<RegistrationInfo, ActorId>,
    /// The newest registration seen per name, live or gone: its epoch is
    /// the highest (fencing tokens never go back), and its node is where the
    /// name was last held.
    pub(crate) newest: HashMap<String, RegistrationInfo>,
    /// Why our own tokens left their group, for the Leave event (see
    /// `token::leave_reason`); taken when the event is emitted.
    pub(crate) leaving: HashMap<ActorId, LeaveReason>,
    /// Our tokens whose registration left, while they linger: the flag
    /// each token reads to count the calls that still reach it, and the
    /// token, which a drain flushes (see `crate::drain`).
    pub(crate) lingering: HashMap<ActorId, (ActorCell, Arc<std::sync::atomic::AtomicBool>)>,
    /// The lingering flags of our live tokens.
    pub(crate) linger_flags: HashMap<ActorId, Arc<std::sync::atomic::AtomicBool>>,
    /// Where `newest` is kept across restarts, if configured.
    store: Option<Arc<store::EpochStore>>,
    /// Bumped on every change of `newest`, so the store never writes an
    /// older snapshot over a newer one.
    newest_version: u64,
}

impl Shared {
    /// Records a registration seen in the view or made here, on disk too
    /// when it is the name's newest and a state directory is set. The file
    /// is written after the view's lock is released: an fsync must not hold
    /// up lookups (which take that lock) in the middle of a takeover.
    pub(crate) fn saw(&self, info: &RegistrationInfo) -> std::io::Result<()> {
        let pending = {
            let mut s = self.lock();
            match s.newest.get_mut(&info.name) {
                Some(newest) if info.rank() <= newest.rank() => return Ok(()),
                Some(newest) => *newest = info.clone(),
                None => {
                    s.newest.insert(info.name.clone(), info.clone());
                }
            }
            s.newest_version += 1;
            s.store
                .clone()
                .map(|store| (store, s.newest_version, s.newest.clone()))
        };
        match pending {
            Some((store, version, newest)) => store.save(version, &newest),
            None => Ok(()),
        }
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, SharedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn emit(&self, event: RegistryEvent) {
        self.watchers.emit(&event);
        let _ = self.events.send(event);
    }

    pub(crate) fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }
}

impl ClusterNode {
    /// Starts a node: the TCP node server (cookie auth, TLS if configured),
    /// the heartbeat, and (re)connection to the configured peers.
    pub async fn start(config: ClusterConfig) -> Result<Self, ClusterErr> {
        let state = Self::prepare(&config)?;
        let encryption = config
            .tls
            .as_ref()
            .map(|tls| IncomingEncryptionMode::Tls(tls.acceptor().clone()));
        let tcp = listener::bind(config.port)
            .await
            .map_err(ClusterErr::Listen)?;
        // The beacon's UDP socket takes the same port number, so peers find
        // it at the address they dial.
        let port = tcp.local_addr().map_err(ClusterErr::Listen)?.port();
        let udp = beacon::bind(port).map_err(|source| ClusterErr::BeaconPort { port, source })?;
        // The node server's own listener cannot be turned off: loopback
        // only, on a port nobody is told (see `listener`).
        let server = NodeServer::new(
            0,
            config.cookie.clone(),
            config.node.to_string(),
            config.hostname.clone(),
            encryption,
            Some(ractor_cluster::node::NodeConnectionMode::Isolated),
        )
        .with_listen_addr(std::net::Ipv4Addr::LOCALHOST.into())
        .with_max_inbound_frame_size(config.max_frame_bytes);
        let (node_server, _) = Actor::spawn(None, server, ()).await?;
        // Before the first accept: the gates learn of every authentication.
        let gates = guard::Gates::new();
        node_server
            .send_message(NodeServerMessage::SubscribeToEvents {
                id: "ractor_takeover::guard".into(),
                subscription: Box::new(guard::GateEvents(gates.clone())),
            })
            .map_err(|e| ClusterErr::Spawn(ractor::SpawnErr::StartupFailed(Box::new(e))))?;
        let accept = tokio::spawn(listener::run(
            tcp,
            node_server.clone(),
            config.tls.as_ref().map(|tls| tls.acceptor().clone()),
            listener::Limits {
                handshake: config.handshake_timeout,
                auth: config.auth_timeout,
            },
            gates,
        ));
        Self::run_on(config, state, node_server, udp, port, Some(accept), true).await
    }

    /// Attaches the crate's registry and heartbeat to a
    /// `ractor_cluster::NodeServer` the application already runs (with its
    /// own sessions, cookie and remote actors), instead of starting a
    /// second node server: [`start`](Self::start) is for a process that
    /// has none.
    ///
    /// What the application's node server must agree with in `config`:
    /// its name is `config.node` and its hostname `config.hostname` (peers
    /// know each other by the name in the session handshake); it listens
    /// on `config.port`, as advertised in the other nodes' `peers`; its
    /// cookie is the cluster's; its inbound frame cap is
    /// `config.max_frame_bytes` (states travel in parts under it); and it
    /// takes TLS exactly when `config.tls` is set (the heartbeat dials
    /// peers with it). The crate's own listener does not run: the
    /// application's node server accepts, under its own rules, so
    /// `handshake_timeout` bounds only the dials. Every node of the
    /// cluster, attached or started, must run this crate (the heartbeat
    /// and the registry live in the pg scope [`SCOPE`]).
    ///
    /// [`shutdown`](Self::shutdown) then stops only what this crate
    /// started; the node server stays the application's.
    pub async fn attach(
        node_server: ActorRef<NodeServerMessage>,
        config: ClusterConfig,
    ) -> Result<Self, ClusterErr> {
        let state = Self::prepare(&config)?;
        let port = config.port;
        let udp = beacon::bind(port).map_err(|source| ClusterErr::BeaconPort { port, source })?;
        Self::run_on(config, state, node_server, udp, port, None, false).await
    }

    /// Refuses settings that cannot work, and reads the state directory.
    fn prepare(config: &ClusterConfig) -> Result<SharedState, ClusterErr> {
        if config.max_frame_bytes < MIN_FRAME_BYTES {
            return Err(ClusterErr::FrameCapTooSmall(config.max_frame_bytes));
        }
        config.validate().map_err(ClusterErr::Config)?;
        let mut state = SharedState::default();
        if let Some(dir) = &config.state_dir {
            let (store, newest) = store::EpochStore::open(dir).map_err(ClusterErr::StateDir)?;
            state.newest = newest;
            state.store = Some(Arc::new(store));
        }
        Ok(state)
    }

    /// Starts the watcher and the heartbeat on `node_server`.
    async fn run_on(
        config: ClusterConfig,
        state: SharedState,
        node_server: ActorRef<NodeServerMessage>,
        udp: std::net::UdpSocket,
        port: u16,
        accept: Option<tokio::task::JoinHandle<()>>,
        owns_server: bool,
    ) -> Result<Self, ClusterErr> {
        let started = Instant::now();
        let shared = Arc::new(Shared {
            started,
            runtime: liveness::RuntimeClock::new(started),
            incarnation: beacon::incarnation(),
            state: Mutex::new(state),
            events: broadcast::channel(4096).0,
            watchers: Watchers::default(),
            changed: watch::channel(0).0,
        });
        let (watcher, _) = Actor::spawn(None, Watcher, shared.clone()).await?;
        let (heartbeat, _) = Actor::spawn(
            Some(heartbeat::actor_name(&config.node)),
            Heartbeat,
            heartbeat::Args {
                config: config.clone(),
                shared: shared.clone(),
                node_server: node_server.clone(),
                advertised: format!("{}:{port}", config.hostname),
            },
        )
        .await?;
        let beacon = beacon::Beacon::spawn(udp, config.clone(), shared.clone(), heartbeat.clone())
            .map_err(|e| ClusterErr::Spawn(ractor::SpawnErr::StartupFailed(Box::new(e))))?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                node_server,
                heartbeat,
                watcher,
                beacon,
                accept,
                owns_server,
                shared,
                barriers: Barriers::default(),
                drain_marker: Mutex::new(None),
            }),
        })
    }

    /// The node's settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// The ractor_cluster node server, to connect more peers or subscribe to
    /// its events.
    pub fn node_server(&self) -> &ActorRef<NodeServerMessage> {
        &self.inner.node_server
    }

    /// This node as a registry for [`crate::TakeoverServer`].
    pub fn registry(&self) -> Arc<dyn Registry> {
        Arc::new(self.clone())
    }

    /// Stops the node's actors (node server, heartbeat, watcher); sessions
    /// close. A node [attached](Self::attach) to the application's node
    /// server leaves that server running: only the heartbeat and the
    /// watcher stop.
    pub fn shutdown(&self) {
        self.inner.beacon.stop();
        self.inner.heartbeat.stop(None);
        self.inner.watcher.stop(None);
        if let Some(accept) = &self.inner.accept {
            accept.abort();
        }
        if self.inner.owns_server {
            self.inner.node_server.stop(None);
        }
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Until when this node's holders may answer: the earliest, over the
    /// peers this node considers up, of the send time of the latest
    /// heartbeat the peer answered plus [`ClusterConfig::lease_duration`].
    /// No other node can have declared this node down before then. `None`:
    /// no lease (a peer up has not answered yet, the lease ran out, or this
    /// node stalled and has not heard every peer since). Why send times: a
    /// pong read late, because it queued in the socket while this process
    /// was stopped, proves only that the peer heard us when we sent.
    pub fn lease_until(&self) -> Option<Instant> {
        let lease = self.inner.config.lease_duration()?;
        let s = self.shared().lock();
        // Client-only peers hold nothing and never take a name: whether
        // they could declare us down does not matter.
        let holders: BTreeSet<NodeName> = s.alive.difference(&s.clients).cloned().collect();
        lease::lease_until(&holders, &s.answered, s.fence, lease, Instant::now())
    }
}

/// Parses a member of a registration group into its registration.
pub(crate) fn member_info(cell: &ActorCell, group: &str) -> Option<RegistrationInfo> {
    let info = token::parse_name(&cell.get_name()?)?;
    (info.name == group).then_some(info)
}

#[cfg(test)]
mod tests;
