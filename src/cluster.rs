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
//!   runs a heartbeat actor (a member of the scope's heartbeat group) that
//!   pings every peer every `heartbeat_interval`; a peer silent for
//!   `heartbeat_misses` intervals is down: its registrations are ignored and
//!   a [`RegistryEvent::NodeDown`] goes out, so placement can fail over.
//!   The heartbeat actors live in a pg scope of their own, and a separate
//!   watcher actor turns registration changes into events, so a storm of pg
//!   changes never queues ahead of a ping. A node whose own heartbeat timer
//!   fires far late (it stalled) suspects itself first: it gives every peer
//!   a fresh detection window before it judges any of them.
//! - **Lease.** [`ClusterNode::lease_until`]: until when no other node can
//!   have declared this node down, from the send times of the pings its
//!   peers answered (see `docs/lease.md`).
//! - **Safe lookup.** It answers only after every configured peer is either
//!   heard from or known down (declared down, or refusing connections; a
//!   peer that accepts and stays silent is waited for up to
//!   [`ClusterConfig::startup_timeout`]), then after a ping round trip to
//!   every live peer: a session delivers in order, so the pong proves that
//!   every pg change the peer made before it has reached us (what
//!   `global:sync` does).
//! - **Big states, small frames.** Inbound frames are capped at
//!   `max_frame_bytes` (16 MiB by default, ractor_cluster's own) on every
//!   connection, before the cookie handshake too: the cap is how much an
//!   unauthenticated peer can make a node buffer per connection. States of
//!   any size (up to `max_state_bytes`) travel in parts under it (see
//!   [`crate::TakeoverConfig::state_part_bytes`]). Every node of a cluster
//!   must use the same setting.

mod heartbeat;
mod lease;
mod listener;
mod store;
mod tls;
mod token;
mod watcher;

pub use tls::{ClusterTls, TlsErr};

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ractor::{pg, Actor, ActorCell, ActorId, ActorRef};
use ractor_cluster::{IncomingEncryptionMode, NodeServer, NodeServerMessage};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::registry::{takes_messages, BoxFuture};
use crate::{
    ConfigErr, LeaveReason, NodeId, Registration, RegistrationInfo, Registry, RegistryErr,
    RegistryEvent,
};

use heartbeat::{Heartbeat, HeartbeatMsg};
use token::Token;
use watcher::{Watcher, WatcherMsg};

/// The pg scope every registration and heartbeat lives in.
pub const SCOPE: &str = "ractor_takeover";

/// Settings of one real node.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// This node's stable identity, e.g. `"a"`. Unique in the cluster.
    pub node: NodeId,
    /// The host name peers reach this node by.
    pub hostname: String,
    /// The TCP port to listen on.
    pub port: u16,
    /// The shared secret: a peer with another cookie never completes the
    /// handshake, so it never sees or joins any registration.
    pub cookie: String,
    /// Peers to connect to (and reconnect to), as `name@host:port`.
    pub peers: Vec<PeerAddr>,
    /// How often the heartbeat pings every peer.
    pub heartbeat_interval: Duration,
    /// How many intervals a peer may stay silent before it counts as down.
    pub heartbeat_misses: u32,
    /// The largest inbound frame accepted, on every connection (before
    /// authentication too). Default [`DEFAULT_MAX_FRAME_BYTES`]; at least
    /// [`MIN_FRAME_BYTES`]. Why small: a peer that never authenticates can
    /// make the node buffer this much per connection. Big states do not
    /// need big frames: they travel in parts of `state_part_bytes`, which
    /// must fit under it (an instance checks when it starts).
    pub max_frame_bytes: u64,
    /// How long a registration's token lives on after it left the group, so
    /// that replies to calls the old instance forwarded still reach remote
    /// callers. Set it above your longest call timeout.
    pub token_linger: Duration,
    /// TLS for every session, accepted and dialed; `None` (the default) is
    /// plain TCP. All nodes of a cluster must agree: a TLS node and a plain
    /// one never complete a session.
    pub tls: Option<ClusterTls>,
    /// A directory of this node's own (one per node) where it keeps the
    /// newest registration it has seen per name, so that its epochs never
    /// go back when its process restarts. `None` (the default): a restarted
    /// node that cannot reach a peer that saw the name's last holder may take
    /// an epoch again, and report a start on a vacant name as `Normal`.
    pub state_dir: Option<std::path::PathBuf>,
    /// How long, from the node's start, a configured peer whose session has
    /// not completed counts as *unknown* rather than down (5 s by default).
    /// Why: a safe lookup answers only once every configured peer is known,
    /// and a restarting node that took a slow peer for a dead one would see
    /// the name vacant and register beside the live holder there. A peer
    /// that refuses the TCP connection (nothing listens) is known down at
    /// once; one that accepts and stays silent (hung, or its accept loop
    /// held) is waited for up to this long.
    pub startup_timeout: Duration,
    /// The longest one dial of a peer may take (TCP connect, and the TLS
    /// handshake when TLS is on; 2 s by default). ractor_cluster gives
    /// neither a timeout of its own: without one, a peer that accepts and
    /// never answers would hold the dial forever.
    pub handshake_timeout: Duration,
    /// How much shorter a holder's lease is than the detection time
    /// (`None`, the default: a quarter of it). The margin must cover what
    /// can happen between a holder's lease check and its answer leaving
    /// (the handler's run, scheduling) plus the drift between the nodes'
    /// clock rates; a pause longer than the margin at that very moment can
    /// still let an answer out after the lease ran out. See
    /// [`Registry::lease_until`].
    pub lease_margin: Option<Duration>,
}

impl ClusterConfig {
    /// A node named `node` listening on `127.0.0.1:port` with `cookie`. The
    /// defaults detect a dead peer in about a second (200 ms x 5).
    pub fn new(node: impl Into<NodeId>, port: u16, cookie: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            hostname: "127.0.0.1".into(),
            port,
            cookie: cookie.into(),
            peers: Vec::new(),
            heartbeat_interval: Duration::from_millis(200),
            heartbeat_misses: 5,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            token_linger: Duration::from_secs(30),
            tls: None,
            state_dir: None,
            startup_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(2),
            lease_margin: None,
        }
    }

    /// Sets [`Self::startup_timeout`].
    pub fn with_startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Sets [`Self::handshake_timeout`].
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`Self::lease_margin`].
    pub fn with_lease_margin(mut self, margin: Duration) -> Self {
        self.lease_margin = Some(margin);
        self
    }

    /// The lease margin in force: [`Self::lease_margin`], or a quarter of
    /// the detection time.
    pub fn effective_lease_margin(&self) -> Duration {
        self.lease_margin.unwrap_or(self.detection_time() / 4)
    }

    /// How long one answered heartbeat lets a holder answer, counted from
    /// when the heartbeat was sent: the detection time minus the margin.
    /// `None` when the margin leaves nothing ([`Self::validate`] refuses that).
    pub fn lease_duration(&self) -> Option<Duration> {
        self.detection_time()
            .checked_sub(self.effective_lease_margin())
            .filter(|d| !d.is_zero())
    }

    /// Refuses settings that cannot work; [`ClusterNode::start`] calls it.
    pub fn validate(&self) -> Result<(), ConfigErr> {
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigErr::ZeroTimeout("heartbeat_interval"));
        }
        if self.handshake_timeout.is_zero() {
            return Err(ConfigErr::ZeroTimeout("handshake_timeout"));
        }
        if self.lease_duration().is_none() {
            return Err(ConfigErr::NoLease {
                detection: self.detection_time(),
                margin: self.effective_lease_margin(),
            });
        }
        Ok(())
    }

    /// Refuses a server's settings that cannot work on a node with these
    /// settings ([`crate::TakeoverConfig::validate`] with this node's frame
    /// cap). A server spawned on this node's registry runs the same check
    /// itself (the registry reports its cap, [`Registry::max_frame_bytes`]);
    /// this is for checking settings before the node starts.
    pub fn check_takeover(&self, takeover: &crate::TakeoverConfig) -> Result<(), ConfigErr> {
        takeover.validate(usize::try_from(self.max_frame_bytes).ok())
    }

    /// Sets [`Self::state_dir`].
    pub fn with_state_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// Sets [`Self::tls`]: the node server accepts only TLS sessions and the
    /// node dials its peers with TLS.
    pub fn with_tls(mut self, tls: ClusterTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets [`Self::peers`].
    pub fn with_peers(mut self, peers: Vec<PeerAddr>) -> Self {
        self.peers = peers;
        self
    }

    /// Sets the heartbeat interval and the misses that mark a peer down.
    pub fn with_heartbeat(mut self, interval: Duration, misses: u32) -> Self {
        self.heartbeat_interval = interval;
        self.heartbeat_misses = misses.max(1);
        self
    }

    /// Sets [`Self::max_frame_bytes`].
    pub fn with_max_frame_bytes(mut self, max: u64) -> Self {
        self.max_frame_bytes = max;
        self
    }

    /// Sets [`Self::hostname`].
    pub fn with_hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = hostname.into();
        self
    }

    /// How long a peer may be silent before it counts as down.
    pub fn detection_time(&self) -> Duration {
        self.heartbeat_interval * self.heartbeat_misses
    }
}

/// The default inbound frame cap: ractor_cluster's own 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: u64 = 16 << 20;

/// The smallest inbound frame cap a node starts with: below it, the
/// cluster's own messages (a peer's group sync, a part with its envelope)
/// may not fit.
pub const MIN_FRAME_BYTES: u64 = 64 << 10;

/// A peer's identity and address, written `name@host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    /// The peer's node identity.
    pub node: NodeId,
    /// `host:port`.
    pub addr: String,
}

impl std::str::FromStr for PeerAddr {
    type Err = ClusterErr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('@') {
            Some((node, addr)) if !node.is_empty() && addr.contains(':') => Ok(Self {
                node: NodeId::new(node),
                addr: addr.to_string(),
            }),
            _ => Err(ClusterErr::BadPeer(s.to_string())),
        }
    }
}

/// Why a real node could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterErr {
    /// A peer was not written `name@host:port`.
    BadPeer(String),
    /// An actor of the node (node server, heartbeat) failed to spawn.
    Spawn(ractor::SpawnErr),
    /// The state directory could not be opened, or its file did not decode.
    StateDir(std::io::Error),
    /// The settings cannot work together (see [`ClusterConfig::validate`]).
    Config(ConfigErr),
    /// The node's TCP port could not be bound.
    Listen(std::io::Error),
    /// `max_frame_bytes` is below [`MIN_FRAME_BYTES`].
    FrameCapTooSmall(u64),
}

impl fmt::Display for ClusterErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadPeer(p) => write!(f, "peer {p:?} is not written name@host:port"),
            Self::Spawn(e) => write!(f, "could not start the node: {e}"),
            Self::StateDir(e) => write!(f, "could not read the node's state directory: {e}"),
            Self::Config(e) => write!(f, "the node's settings cannot work: {e}"),
            Self::Listen(e) => write!(f, "could not listen on the node's port: {e}"),
            Self::FrameCapTooSmall(max) => write!(
                f,
                "max_frame_bytes is {max}, below the minimum of {MIN_FRAME_BYTES}; raise it"
            ),
        }
    }
}

impl std::error::Error for ClusterErr {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Spawn(e) => Some(e),
            Self::StateDir(e) => Some(e),
            Self::Config(e) => Some(e),
            Self::Listen(e) => Some(e),
            Self::BadPeer(_) | Self::FrameCapTooSmall(_) => None,
        }
    }
}

impl From<ractor::SpawnErr> for ClusterErr {
    fn from(value: ractor::SpawnErr) -> Self {
        Self::Spawn(value)
    }
}

/// A real node: its node server, heartbeat and view of the global names.
/// Cheap to clone; it implements [`Registry`].
///
/// One per OS process: pg is a process static, so two nodes in one process
/// would share (and corrupt) one view.
#[derive(Clone)]
pub struct ClusterNode {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClusterConfig,
    node_server: ActorRef<NodeServerMessage>,
    heartbeat: ActorRef<HeartbeatMsg>,
    watcher: ActorRef<WatcherMsg>,
    /// The accept loop of the node's port (see `listener`).
    accept: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
}

/// What the heartbeat actor and the registry share.
pub(crate) struct Shared {
    pub(crate) started: Instant,
    pub(crate) state: Mutex<SharedState>,
    pub(crate) events: broadcast::Sender<RegistryEvent>,
    /// Bumped on every liveness change, for waiters.
    pub(crate) changed: watch::Sender<u64>,
}

#[derive(Default)]
pub(crate) struct SharedState {
    /// Peers heard from within the detection time.
    pub(crate) alive: BTreeSet<NodeId>,
    /// Peers known not to be up: declared down after they were up, or
    /// refusing connections (nothing listens). A configured peer in neither
    /// set is *unknown* until `startup_timeout` has passed.
    pub(crate) known_down: BTreeSet<NodeId>,
    /// Per peer up, the send time of the latest ping it answered: the
    /// evidence of this node's lease (see `lease`).
    pub(crate) answered: HashMap<NodeId, Instant>,
    /// Set when this node stalled: pongs to pings sent before it give no lease.
    pub(crate) fence: Option<Instant>,
    /// Our own registrations: token id -> (metadata, instance, token).
    pub(crate) local: HashMap<ActorId, (RegistrationInfo, ActorCell, ActorCell)>,
    /// The newest registration seen per name, live or gone: its epoch is
    /// the highest (fencing tokens never go back), and its node is where the
    /// name was last held.
    pub(crate) newest: HashMap<String, RegistrationInfo>,
    /// Why our own tokens left their group, for the Leave event (see
    /// `token::leave_reason`); taken when the event is emitted.
    pub(crate) leaving: HashMap<ActorId, LeaveReason>,
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
        if config.max_frame_bytes < MIN_FRAME_BYTES {
            return Err(ClusterErr::FrameCapTooSmall(config.max_frame_bytes));
        }
        config.validate().map_err(ClusterErr::Config)?;
        let encryption = config
            .tls
            .as_ref()
            .map(|tls| IncomingEncryptionMode::Tls(tls.acceptor().clone()));
        let tcp = listener::bind(config.port)
            .await
            .map_err(ClusterErr::Listen)?;
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
        let mut state = SharedState::default();
        if let Some(dir) = &config.state_dir {
            let (store, newest) = store::EpochStore::open(dir).map_err(ClusterErr::StateDir)?;
            state.newest = newest;
            state.store = Some(Arc::new(store));
        }
        let (node_server, _) = Actor::spawn(None, server, ()).await?;
        let accept = tokio::spawn(listener::run(
            tcp,
            node_server.clone(),
            config.tls.as_ref().map(|tls| tls.acceptor().clone()),
            config.handshake_timeout,
        ));
        let shared = Arc::new(Shared {
            started: Instant::now(),
            state: Mutex::new(state),
            events: broadcast::channel(4096).0,
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
            },
        )
        .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                node_server,
                heartbeat,
                watcher,
                accept,
                shared,
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

    /// Stops the node's actors (node server, heartbeat, watcher); sessions close.
    pub fn shutdown(&self) {
        self.inner.heartbeat.stop(None);
        self.inner.watcher.stop(None);
        self.inner.accept.abort();
        self.inner.node_server.stop(None);
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
        lease::lease_until(&s.alive, &s.answered, s.fence, lease, Instant::now())
    }

    /// Waits until every configured peer is known: heard from, or known
    /// down (declared down, or refusing connections). A peer whose session
    /// has not completed is unknown until `startup_timeout` has passed since
    /// the start: taking it for down would show its names as vacant.
    async fn peers_known(&self, deadline: Instant) -> bool {
        let shared = self.shared();
        let mut changed = shared.changed.subscribe();
        let give_up = shared.started + self.inner.config.startup_timeout;
        loop {
            let known = {
                let s = shared.lock();
                self.inner
                    .config
                    .peers
                    .iter()
                    .all(|p| s.alive.contains(&p.node) || s.known_down.contains(&p.node))
            } || Instant::now() >= give_up;
            if known {
                return true;
            }
            let wake = give_up.min(deadline);
            match tokio::time::timeout_at(wake, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return false,
                Err(_) if Instant::now() >= deadline => return false,
                Err(_) => {}
            }
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
            let nodes: Vec<NodeId> = std::iter::once(self.inner.config.node.clone())
                .chain(self.inner.config.peers.iter().map(|p| p.node.clone()))
                .collect();
            let epoch = crate::next_epoch(seen.max(in_view), &self.inner.config.node, &nodes);
            let info = RegistrationInfo {
                name: name.clone(),
                epoch,
                node: self.inner.config.node.clone(),
            };
            // On disk before anyone can see it: a restart never reuses it.
            self.shared()
                .saw(&info)
                .map_err(|e| RegistryErr::Backend(format!("could not keep the epoch: {e}")))?;
            let args = token::TokenArgs {
                instance: instance.clone(),
                info: info.clone(),
                registry: self.registry(),
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
    fn node(&self) -> &NodeId {
        &self.inner.config.node
    }

    fn newest_seen(&self, name: &str) -> Option<RegistrationInfo> {
        self.shared().lock().newest.get(name).cloned()
    }

    fn max_frame_bytes(&self) -> Option<usize> {
        usize::try_from(self.inner.config.max_frame_bytes).ok()
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
            tracing::debug!("safe_lookup: waiting for peers");
            if !self.peers_known(deadline).await {
                return Err(not_settled());
            }
            let barrier = self
                .inner
                .heartbeat
                .call(HeartbeatMsg::Barrier, Some(deadline - Instant::now()))
                .await;
            tracing::debug!(ok = barrier.is_ok(), "safe_lookup: barrier done");
            match barrier {
                Ok(ractor::rpc::CallResult::Success(())) => {}
                _ => return Err(not_settled()),
            }
            // The watcher records the newest registrations (`newest_seen`)
            // from pg changes; let it catch up with what the barrier let in.
            let left = deadline.saturating_duration_since(Instant::now());
            match self.inner.watcher.call(WatcherMsg::Sync, Some(left)).await {
                Ok(ractor::rpc::CallResult::Success(())) => {}
                _ => return Err(not_settled()),
            }
            self.purge_dead();
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
            let id = s
                .local
                .iter()
                .find(|(_, (i, _, _))| i == info)
                .map(|(id, _)| *id);
            let token = id
                .and_then(|id| s.local.remove(&id))
                .map(|(_, _, token)| token);
            if let Some(token) = &token {
                s.leaving.insert(token.get_id(), reason.clone());
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

    fn live_nodes(&self) -> BTreeSet<NodeId> {
        let mut live = self.shared().lock().alive.clone();
        live.insert(self.inner.config.node.clone());
        live
    }

    fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.shared().events.subscribe()
    }

    fn lease_until(&self) -> Option<Instant> {
        ClusterNode::lease_until(self)
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
    /// Unregisters our own registrations whose instance died (normally the
    /// instance does it as it stops; this covers a kill).
    fn purge_dead(&self) {
        let dead: Vec<RegistrationInfo> = self
            .shared()
            .lock()
            .local
            .values()
            .filter(|(_, instance, _)| !takes_messages(instance))
            .map(|(info, _, _)| info.clone())
            .collect();
        for info in dead {
            self.unregister(&info, LeaveReason::InstanceDied);
        }
    }
}

#[cfg(test)]
mod tests;
