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
mod guard;
mod heartbeat;
mod lease;
mod listener;
mod liveness;
mod marks;
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ractor::{pg, Actor, ActorCell, ActorId, ActorRef};
use ractor_cluster::{IncomingEncryptionMode, NodeServer, NodeServerMessage};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::registry::{takes_messages, BoxFuture, Watchers};
use crate::{
    LeaveReason, NameWatch, NodeName, Registration, RegistrationInfo, Registry, RegistryErr,
    RegistryEvent,
};

use heartbeat::{Heartbeat, HeartbeatMsg};
use token::Token;
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

    /// Drains the node before it stops: every name it holds moves, by a
    /// planned takeover with its state, to the first live node in the
    /// name's placement that does not drain; placement moves no name here
    /// until [`undrain`](Self::undrain). Returns once each move is
    /// confirmed (this node's registration of the name is gone, its
    /// successor holds) and every call this node forwarded meanwhile has
    /// been answered (the answers travel through this process), or fails
    /// with [`DrainErr::Incomplete`] when `timeout` passes first, saying
    /// what did not move. The node keeps draining after either: stop it, or
    /// call [`undrain`](Self::undrain).
    ///
    /// How others learn of it: a marker actor of this node in the pg group
    /// [`DRAINING_GROUP`], which dies with the node, so a node that dies
    /// midway leaves no mark and its names fail over as from any node that
    /// died (see [`crate::drain`]). Only servers with a
    /// [`crate::Placement`] move; one without stays until the node stops.
    ///
    /// [`DrainErr::Incomplete`]: crate::drain::DrainErr::Incomplete
    pub async fn drain(
        &self,
        timeout: Duration,
    ) -> Result<crate::drain::DrainReport, crate::drain::DrainErr> {
        let started = Instant::now();
        let deadline = started + timeout;
        // The names held now: a takeover to this node that lands after the
        // mark is a name the placement of its node did not see us drain in.
        let names: BTreeSet<String> = self
            .shared()
            .lock()
            .local
            .values()
            .map(|(info, _, _)| info.name.clone())
            .collect();
        self.mark_draining()
            .await
            .map_err(|e| crate::drain::DrainErr::Announce(e.to_string()))?;
        tracing::info!(names = names.len(), "draining");
        let names = names
            .into_iter()
            .filter(|n| crate::drain::moves(n))
            .collect();
        let mut report = crate::drain::wait_moved(self, names, started, deadline).await;
        if report.is_ok() {
            self.flush_callers(deadline).await;
            let names = report.map(|r| r.moved.into_iter().map(|m| m.name).collect());
            report = match names {
                Ok(names) => crate::drain::wait_moved(self, names, started, deadline).await,
                Err(e) => Err(e),
            };
        }
        match &report {
            Ok(r) => tracing::info!(moved = r.moved.len(), took = ?r.took, "drained"),
            Err(e) => tracing::warn!(error = %e, "drain incomplete"),
        }
        report
    }

    /// After the names moved: makes sure that every call a peer sent to
    /// one of this node's registrations before it saw the registration
    /// leave is counted (see `crate::drain::relay`), so that the drain waits
    /// for its answer. A ping round trip to every live peer first: a
    /// session delivers in order, so once a peer answers, it has applied
    /// our registrations' leaves (it sends no more calls here) and every
    /// call it sent before has reached this process's mailboxes. Then each
    /// lingering token answers a flush call: it handled, and counted,
    /// every call queued before. Bounded by `deadline`: the wait for the
    /// answers that follows reports what is left.
    async fn flush_callers(&self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = self
            .inner
            .heartbeat
            .call(HeartbeatMsg::Barrier, Some(left))
            .await;
        let tokens: Vec<ActorCell> = {
            let mut s = self.shared().lock();
            s.lingering.retain(|_, (token, _)| takes_messages(token));
            s.lingering.values().map(|(t, _)| t.clone()).collect()
        };
        for token in tokens {
            let (tx, rx) = ractor::concurrency::oneshot::<Vec<u8>>();
            let flush = ractor::message::SerializedMessage::Call {
                variant: token::FLUSH.to_string(),
                args: Vec::new(),
                reply: tx.into(),
                metadata: None,
            };
            if token.send_serialized(flush).is_ok() {
                let _ = tokio::time::timeout_at(deadline, rx).await;
            }
        }
    }

    async fn mark_draining(&self) -> Result<(), ractor::SpawnErr> {
        if self.is_draining() {
            return Ok(());
        }
        let marker = marks::start_drain(&self.inner.config.node).await?;
        let mut slot = self
            .inner
            .drain_marker
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match &*slot {
            // Two drains at once: keep the first mark.
            Some(_) => marker.stop(None),
            None => *slot = Some(marker),
        }
        Ok(())
    }

    /// Calls a drain off: placement may move names here again.
    pub fn undrain(&self) {
        let marker = self
            .inner
            .drain_marker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(marker) = marker {
            marker.stop(None);
        }
    }

    /// Whether this node drains (its mark is set).
    pub fn is_draining(&self) -> bool {
        self.inner
            .drain_marker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Holds takeovers back on every node until the returned hold is
    /// dropped: a standby of higher priority than its name's holder does
    /// not take the name back meanwhile (vacant names and names on a
    /// draining node still move). For a rolling restart: hold, then drain
    /// and restart each node in turn, then release, so each name moves once
    /// per restart of its holder's node instead of back to every node that
    /// returns. Any node may hold, a client-only one too; the hold dies
    /// with its node, so a wave whose driver crashes does not hold forever.
    pub async fn hold_takeback(&self) -> Result<TakebackHold, ClusterErr> {
        let marker = marks::start_hold(&self.inner.config.node).await?;
        Ok(TakebackHold::new(marker))
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

    /// Waits until every configured peer is known: heard from, or known
    /// down (declared down, or refusing connections). A peer whose session
    /// has not completed is unknown until `startup_timeout` has passed since
    /// the start: taking it for down would show its names as vacant.
    async fn peers_known(&self, deadline: Instant) -> bool {
        let shared = self.shared();
        let mut changed = shared.changed.subscribe();
        let config = &self.inner.config;
        let give_up = shared.started + config.startup_timeout;
        loop {
            let now = Instant::now();
            let (known, wake) = {
                let s = shared.lock();
                let known = |node: &NodeName| {
                    s.alive.contains(node)
                        || s.known_down.contains(node)
                        || s.clients.contains(node)
                };
                let configured = now >= give_up
                    || config
                        .peers
                        .iter()
                        .chain(&config.seeds)
                        .all(|p| known(&p.node));
                // A member learnt from a seed or a peer is waited for as
                // long, from when it was learnt.
                let learnt = s
                    .members
                    .iter()
                    .all(|(node, (_, at))| known(node) || now >= *at + config.startup_timeout);
                let next = s
                    .members
                    .values()
                    .map(|(_, at)| *at + config.startup_timeout)
                    .filter(|at| *at > now)
                    .chain([give_up])
                    .min()
                    .unwrap_or(give_up);
                (configured && learnt, next.max(now).min(deadline))
            };
            if known {
                return true;
            }
            match tokio::time::timeout_at(wake, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return false,
                Err(_) if Instant::now() >= deadline => return false,
                Err(_) => {}
            }
        }
    }

    /// A ping round trip to every live peer begun after this call, shared
    /// with the safe lookups that wait meanwhile; `false` if it did not
    /// complete by `deadline`.
    ///
    /// Why shared: every instance's start runs a safe lookup, and one round
    /// of pings per lookup made the start-up of N names N rounds to every
    /// peer, on the heartbeat's own path. A round begun after a lookup asked
    /// proves for it what its own would have (every pg change a peer made
    /// before answering has reached us), so the lookups that asked while a
    /// round was out share the next one: at most two rounds per burst.
    async fn barrier(&self, deadline: Instant) -> bool {
        let rounds = &self.inner.barriers;
        let ticket = rounds.asked.fetch_add(1, Ordering::SeqCst) + 1;
        let Ok(mut covered) = tokio::time::timeout_at(deadline, rounds.covered.lock()).await else {
            return false;
        };
        if *covered >= ticket {
            return true;
        }
        // Every ticket handed out so far asked before this round begins.
        let upto = rounds.asked.load(Ordering::SeqCst);
        let barrier = self
            .inner
            .heartbeat
            .call(
                HeartbeatMsg::Barrier,
                Some(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        tracing::debug!(ok = barrier.is_ok(), upto, "safe_lookup: barrier done");
        match barrier {
            Ok(ractor::rpc::CallResult::Success(())) => {
                *covered = upto;
                true
            }
            _ => false,
        }
    }

    fn add(
        &self,
        name: &str,
        instance: ActorCell,
        only_if_free: bool,
    ) -> BoxFuture<'_, Result<Registration, RegistryErr>> {
        let name = name.to_string();
        Box::pin(async move {
            if self.inner.config.client_only {
                return Err(RegistryErr::ClientOnly(self.inner.config.node.clone()));
            }
            if only_if_free {
                if let Some(holder) = self.lookup(&name) {
                    return Err(RegistryErr::AlreadyRegistered {
                        name,
                        holder: holder.node().clone(),
                        epoch: holder.epoch(),
                    });
                }
            }
            let in_view = self
                .members(&name)
                .iter()
                .map(|r| r.epoch())
                .max()
                .unwrap_or(0);
            let seen = self
                .shared()
                .lock()
                .newest
                .get(&name)
                .map_or(0, |i| i.epoch);
            let nodes: Vec<NodeName> = std::iter::once(self.inner.config.node.clone())
                .chain(self.inner.config.peers.iter().map(|p| p.node.clone()))
                .collect();
            let epoch =
                crate::registry::next_epoch(seen.max(in_view), &self.inner.config.node, &nodes);
            let info = RegistrationInfo {
                name: name.clone(),
                epoch,
                node: self.inner.config.node.clone(),
            };
            // On disk before anyone can see it: a restart never reuses it.
            self.shared()
                .saw(&info)
                .map_err(|e| RegistryErr::Backend(format!("could not keep the epoch: {e}")))?;
            let lingering = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let args = token::TokenArgs {
                instance: instance.clone(),
                info: info.clone(),
                registry: self.registry(),
                lingering: lingering.clone(),
            };
            let (token, _) = Actor::spawn(Some(token::actor_name(&info)), Token, args)
                .await
                .map_err(|e| RegistryErr::Backend(e.to_string()))?;
            {
                let mut s = self.shared().lock();
                s.local.insert(
                    token.get_id(),
                    (info.clone(), instance.clone(), token.get_cell()),
                );
                s.local_by_info.insert(info.clone(), token.get_id());
                s.linger_flags.insert(token.get_id(), lingering);
            }
            pg::join_scoped(SCOPE.to_string(), name, vec![token.get_cell()]);
            Ok(Registration::new(info, instance))
        })
    }
}

/// Parses a member of a registration group into its registration.
pub(crate) fn member_info(cell: &ActorCell, group: &str) -> Option<RegistrationInfo> {
    let info = token::parse_name(&cell.get_name()?)?;
    (info.name == group).then_some(info)
}

impl Registry for ClusterNode {
    fn node(&self) -> &NodeName {
        &self.inner.config.node
    }

    fn newest_seen(&self, name: &str) -> Option<RegistrationInfo> {
        self.shared().lock().newest.get(name).cloned()
    }

    fn note_seen(&self, info: &RegistrationInfo) {
        if let Err(e) = self.shared().saw(info) {
            // The next steal still goes above it while this process lives.
            tracing::warn!(error = %e, ?info, "could not keep an epoch learnt from a peer");
        }
    }

    fn max_frame_bytes(&self) -> Option<usize> {
        usize::try_from(self.inner.config.max_frame_bytes).ok()
    }

    fn settle_time(&self) -> Option<Duration> {
        Some(self.inner.config.settle_time())
    }

    fn members(&self, name: &str) -> Vec<Registration> {
        let cells = pg::get_scoped_members(&SCOPE.to_string(), &name.to_string());
        let s = self.shared().lock();
        let me = &self.inner.config.node;
        let mut out: Vec<Registration> = cells
            .into_iter()
            .filter_map(|cell| {
                if let Some((info, instance, _)) = s.local.get(&cell.get_id()) {
                    return takes_messages(instance)
                        .then(|| Registration::new(info.clone(), instance.clone()));
                }
                let info = member_info(&cell, name)?;
                // A member of ours that is not in `local` is a leftover; one of
                // a silent peer is ignored until the peer is heard again.
                let live = info.node != *me && s.alive.contains(&info.node);
                (live && takes_messages(&cell)).then(|| Registration::new(info, cell))
            })
            .collect();
        out.sort_by(|a, b| a.info().rank().cmp(&b.info().rank()));
        out
    }

    fn safe_lookup<'a>(
        &'a self,
        name: &'a str,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Option<Registration>, RegistryErr>> {
        Box::pin(async move {
            let started = Instant::now();
            let deadline = started + timeout;
            let not_settled = || RegistryErr::NotSettled {
                waited: started.elapsed(),
            };
            // Again whenever the round trip taught us members (a peer tells
            // them before its pong): names may be held there.
            loop {
                let learnt = self.shared().lock().learnt;
                tracing::debug!("safe_lookup: waiting for peers");
                if !self.peers_known(deadline).await {
                    return Err(not_settled());
                }
                if !self.barrier(deadline).await {
                    return Err(not_settled());
                }
                if self.shared().lock().learnt == learnt {
                    break;
                }
            }
            // The watcher records the newest registrations (`newest_seen`)
            // from pg changes; let it catch up with what the barrier let in.
            let left = deadline.saturating_duration_since(Instant::now());
            match self.inner.watcher.call(WatcherMsg::Sync, Some(left)).await {
                Ok(ractor::rpc::CallResult::Success(())) => {}
                _ => return Err(not_settled()),
            }
            self.purge_dead(name);
            Ok(self.lookup(name))
        })
    }

    fn register<'a>(
        &'a self,
        name: &'a str,
        cell: ActorCell,
    ) -> BoxFuture<'a, Result<Registration, RegistryErr>> {
        self.add(name, cell, true)
    }

    fn steal<'a>(
        &'a self,
        name: &'a str,
        cell: ActorCell,
    ) -> BoxFuture<'a, Result<Registration, RegistryErr>> {
        self.add(name, cell, false)
    }

    fn unregister(&self, info: &RegistrationInfo, reason: LeaveReason) {
        let token = {
            let mut s = self.shared().lock();
            let id = s.local_by_info.remove(info);
            let token = id
                .and_then(|id| s.local.remove(&id))
                .map(|(_, _, token)| token);
            if let Some(token) = &token {
                s.leaving.insert(token.get_id(), reason.clone());
                if let Some(flag) = s.linger_flags.remove(&token.get_id()) {
                    flag.store(true, std::sync::atomic::Ordering::Release);
                    s.lingering.insert(token.get_id(), (token.clone(), flag));
                }
            }
            token
        };
        if let Some(token) = token {
            // A clean leave is told apart by a tombstone (see `token::tombstone`).
            if reason == LeaveReason::Unregistered {
                pg::join_scoped(
                    SCOPE.to_string(),
                    token::tombstone(&info.name),
                    vec![token.clone()],
                );
            }
            pg::leave_scoped(SCOPE.to_string(), info.name.clone(), vec![token.clone()]);
            // Out of the group at once (no new lookup finds it), but alive a
            // while longer: remote callers' reply ports hang off their proxies
            // of this token (see `token::Token`).
            ractor::time::exit_after(self.inner.config.token_linger, token);
        }
    }

    fn live_nodes(&self) -> BTreeSet<NodeName> {
        let mut live = self.shared().lock().alive.clone();
        live.insert(self.inner.config.node.clone());
        live
    }

    fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.shared().events.subscribe()
    }

    fn watch(&self, name: &str) -> NameWatch {
        self.shared().watchers.watch(name)
    }

    fn lease_until(&self) -> Option<Instant> {
        ClusterNode::lease_until(self)
    }

    fn draining(&self) -> BTreeSet<NodeName> {
        let s = self.shared().lock();
        let me = &self.inner.config.node;
        marks::draining(|n| n == me || s.alive.contains(n))
    }

    fn takeback_held(&self) -> bool {
        let s = self.shared().lock();
        let me = &self.inner.config.node;
        marks::held(|n| n == me || s.alive.contains(n))
    }
}

impl crate::registry::Transport for ClusterNode {
    fn send_wire(
        &self,
        to: &Registration,
        msg: ractor::message::SerializedMessage,
    ) -> Result<(), Option<ractor::message::SerializedMessage>> {
        // `to` is our proxy of the registration's token: ractor_cluster
        // carries the message to its node, where the token hands it on.
        to.cell().send_serialized(msg).map_err(|e| match *e {
            ractor::MessagingErr::SendErr(msg) => Some(msg),
            _ => None,
        })
    }
}

impl ClusterNode {
    /// Unregisters our own registrations of `name` whose instance died
    /// (normally the instance does it as it stops; this covers a kill).
    /// Why one name: every instance's start runs a safe lookup, and a purge
    /// of every registration of the node made a start-up of N names cost
    /// N² checks; pg keeps our own members by group, so this reads only
    /// the few of `name`.
    fn purge_dead(&self, name: &str) {
        let tokens = pg::get_scoped_local_members(&SCOPE.to_string(), &name.to_string());
        let dead: Vec<RegistrationInfo> = {
            let s = self.shared().lock();
            tokens
                .iter()
                .filter_map(|token| s.local.get(&token.get_id()))
                .filter(|(_, instance, _)| !takes_messages(instance))
                .map(|(info, _, _)| info.clone())
                .collect()
        };
        for info in dead {
            self.unregister(&info, LeaveReason::InstanceDied);
        }
    }
}

#[cfg(test)]
mod tests;
