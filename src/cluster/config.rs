//! A real node's settings ([`ClusterConfig`]), its peers' addresses, and the
//! errors of starting one.

use std::fmt;
use std::time::Duration;

use super::ClusterTls;
use crate::{ConfigErr, NodeName};

/// Settings of one real node.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// This node's stable identity, e.g. `"a"`. Unique in the cluster. No
    /// default: given to [`ClusterConfig::new`].
    pub node: NodeName,
    /// The host name peers reach this node by. Default: `127.0.0.1`.
    pub hostname: String,
    /// The TCP port to listen on. No default: given to [`ClusterConfig::new`].
    pub port: u16,
    /// The shared secret: a peer with another cookie never completes the
    /// handshake, so it never sees or joins any registration. No default:
    /// given to [`ClusterConfig::new`].
    pub cookie: String,
    /// Peers to connect to (and reconnect to), as `name@host:port`.
    /// Default: none.
    pub peers: Vec<PeerAddr>,
    /// How often the heartbeat pings every peer. Default: 200 ms.
    pub heartbeat_interval: Duration,
    /// How many intervals a peer may stay silent before it counts as down.
    /// Default: 5 (a dead peer is seen in about a second).
    pub heartbeat_misses: u32,
    /// The largest inbound frame accepted, on every connection (before
    /// authentication too). Default: [`DEFAULT_MAX_FRAME_BYTES`] (16 MiB); at least
    /// [`MIN_FRAME_BYTES`]. Why small: a peer that never authenticates can
    /// make the node buffer this much per connection. Big states do not
    /// need big frames: they travel in parts of `state_part_bytes`, which
    /// must fit under it (an instance checks when it starts).
    pub max_frame_bytes: u64,
    /// How long a registration's token lives on after it left the group, so
    /// that replies to calls the old instance forwarded still reach remote
    /// callers. Set it above your longest call timeout. Default: 30 s.
    pub token_linger: Duration,
    /// TLS for every session, accepted and dialed. Default: `None`, plain
    /// TCP. All nodes of a cluster must agree: a TLS node and a plain
    /// one never complete a session.
    pub tls: Option<ClusterTls>,
    /// A directory of this node's own (one per node) where it keeps the
    /// newest registration it has seen per name, so that its epochs never
    /// go back when its process restarts. Default: `None`, and then a restarted
    /// node that cannot reach a peer that saw the name's last holder may take
    /// an epoch again, and report a start on a vacant name as `Normal`.
    pub state_dir: Option<std::path::PathBuf>,
    /// How long, from the node's start, a configured peer whose session has
    /// not completed counts as *unknown* rather than down. Default: 5 s.
    /// Why: a safe lookup answers only once every configured peer is known,
    /// and a restarting node that took a slow peer for a dead one would see
    /// the name vacant and register beside the live holder there. A peer
    /// that refuses the TCP connection (nothing listens) is known down at
    /// once; one that accepts and stays silent (hung, or its accept loop
    /// held) is waited for up to this long.
    pub startup_timeout: Duration,
    /// The longest one dial of a peer may take (TCP connect, and the TLS
    /// handshake when TLS is on). Default: 2 s. ractor_cluster gives
    /// neither a timeout of its own: without one, a peer that accepts and
    /// never answers would hold the dial forever.
    pub handshake_timeout: Duration,
    /// The longest an accepted connection may take to authenticate, from
    /// its accept: the TLS handshake (when TLS is on) and ractor_cluster's
    /// cookie handshake (5 s by default). A connection not authenticated by
    /// then is closed. ractor_cluster gives the cookie handshake no limit:
    /// without one, a peer that connects and says nothing (or stops
    /// halfway) would keep its session open for good. Until it has
    /// authenticated, a connection's frames are also held to a small budget
    /// (4 KiB: the handshake's own are a few dozen bytes; a bigger frame's
    /// body is not read until then), and at most 64 connections
    /// authenticate at once (one over is closed at accept).
    pub auth_timeout: Duration,
    /// How much shorter a holder's lease is than the detection time
    /// (`None`, the default: a quarter of it). The margin must cover what
    /// can happen between a holder's lease check and its answer leaving
    /// (the handler's run, scheduling) plus the drift between the nodes'
    /// clock rates; a pause longer than the margin at that very moment can
    /// still let an answer out after the lease ran out. See
    /// [`Registry::lease_until`](crate::registry::Registry::lease_until).
    pub lease_margin: Option<Duration>,
    /// The phi accrual threshold of the failure detector (`None`: the fixed
    /// detector, silence for the detection time). Default: `Some(8.0)`, as
    /// Akka and Cassandra. With it a peer is down once it has been silent
    /// for at least the detection time *and* its silence is that unlikely
    /// (phi: minus log10 of the chance that a heartbeat is still to come,
    /// from the spread of its recent heartbeats), or once it has been silent
    /// for [`Self::max_detection`]. Why adaptive above a floor: under load
    /// or on a jittery network the heartbeats' spread grows, and so does the
    /// silence it takes to declare a peer down, so a slow peer is not taken
    /// for a dead one; the floor keeps the holder lease (counted from the
    /// detection time) provably shorter than any down.
    pub phi_threshold: Option<f64>,
    /// The longest silence before a peer is down whatever its phi, with the
    /// phi accrual detector. `None` (the default): twice the detection time
    /// (2 s with the defaults). At least the detection time.
    pub max_detection: Option<Duration>,
    /// A client-only node: it calls global names and never holds one (it is
    /// in no placement; [`Registry::register`](crate::registry::Registry::register)
    /// and `steal` refuse on it). Default: `false`. Its peers learn it from
    /// its heartbeats, and then neither count it for their holders' lease
    /// nor wait for it in a safe lookup: a client that hangs pauses nobody.
    pub client_only: bool,
    /// Seed nodes, `name@host:port`: members of a running cluster to join
    /// through. Default: none. A node dials its seeds at once (a seed need
    /// not know it), and every member it has a session with tells it the
    /// others (their names and addresses), which it then dials too; they
    /// learn it in turn. So a new node or a client lists one or two members
    /// instead of every node being listed everywhere. Safe lookups wait
    /// for seeds as for `peers`, and for every member learnt from them (up
    /// to `startup_timeout` from when it was learnt), so a joining node
    /// never takes a name held on a member it has not reached yet. A seed
    /// should not also list the joining node in its `peers` (both would
    /// dial at once).
    pub seeds: Vec<PeerAddr>,
    /// The longest this node's tokio runtime may go without running a task
    /// before its failure detector falls silent. Default: 5 s
    /// ([`DEFAULT_RUNTIME_TIMEOUT`]); at least one heartbeat interval.
    ///
    /// Why: the detector runs on a thread of its own, so that a runtime
    /// that is merely busy is not taken for a dead one; but a runtime that
    /// is *wedged* (every worker blocked by a task that never yields, or a
    /// deadlock) would then be answered for forever, and no standby would
    /// ever take its names. A task on the runtime ticks every quarter of
    /// this (at most every heartbeat interval); when the last tick is older
    /// than this, the detector neither sends nor answers heartbeats (it
    /// still listens, so it declares no live peer down), peers declare the
    /// node down by their usual rule, and standbys take its names. It
    /// speaks again at the runtime's next tick. Set it above the longest a
    /// handler of yours may hold every worker at once: the default leaves
    /// room for the 3 s of `tests/real_detector_load.rs`. A failover after
    /// a wedge takes about this plus the detection time.
    pub runtime_timeout: Duration,
}

/// The default [`ClusterConfig::runtime_timeout`]: 5 s.
pub const DEFAULT_RUNTIME_TIMEOUT: Duration = Duration::from_secs(5);

impl ClusterConfig {
    /// A node named `node` listening on `127.0.0.1:port` with `cookie`. The
    /// defaults detect a dead peer in about a second (200 ms x 5).
    pub fn new(node: impl Into<NodeName>, port: u16, cookie: impl Into<String>) -> Self {
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
            auth_timeout: Duration::from_secs(5),
            lease_margin: None,
            phi_threshold: Some(8.0),
            max_detection: None,
            client_only: false,
            seeds: Vec::new(),
            runtime_timeout: DEFAULT_RUNTIME_TIMEOUT,
        }
    }

    /// Sets [`Self::runtime_timeout`].
    pub fn with_runtime_timeout(mut self, timeout: Duration) -> Self {
        self.runtime_timeout = timeout;
        self
    }

    /// How often the runtime proves it is alive to the failure detector:
    /// a quarter of [`Self::runtime_timeout`], at most one heartbeat
    /// interval.
    pub(crate) fn runtime_tick(&self) -> Duration {
        (self.runtime_timeout / 4).min(self.heartbeat_interval)
    }

    /// Sets [`Self::seeds`].
    pub fn with_seeds(mut self, seeds: Vec<PeerAddr>) -> Self {
        self.seeds = seeds;
        self
    }

    /// Sets the phi accrual detector (the default; see
    /// [`Self::phi_threshold`]): `threshold`, and the silence after which
    /// a peer is down whatever its phi (`max_detection`, at least the
    /// detection time).
    pub fn with_phi_accrual(mut self, threshold: f64, max_detection: Duration) -> Self {
        self.phi_threshold = Some(threshold);
        self.max_detection = Some(max_detection);
        self
    }

    /// Sets the fixed detector: a peer silent for the detection time is down.
    pub fn with_fixed_detector(mut self) -> Self {
        self.phi_threshold = None;
        self
    }

    /// Makes this a client-only node (see [`Self::client_only`]).
    pub fn client_only(mut self) -> Self {
        self.client_only = true;
        self
    }

    /// The longest silence before a peer is declared down: the detection
    /// time with the fixed detector, [`Self::max_detection`] (or twice the
    /// detection time) with phi accrual.
    pub fn effective_max_detection(&self) -> Duration {
        match self.phi_threshold {
            None => self.detection_time(),
            Some(_) => self.max_detection.unwrap_or(self.detection_time() * 2),
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

    /// Sets [`Self::auth_timeout`].
    pub fn with_auth_timeout(mut self, timeout: Duration) -> Self {
        self.auth_timeout = timeout;
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

    /// Refuses settings that cannot work; [`ClusterNode::start`](super::ClusterNode::start) calls it.
    pub fn validate(&self) -> Result<(), ConfigErr> {
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigErr::ZeroTimeout("heartbeat_interval"));
        }
        if self.handshake_timeout.is_zero() {
            return Err(ConfigErr::ZeroTimeout("handshake_timeout"));
        }
        if self.auth_timeout.is_zero() {
            return Err(ConfigErr::ZeroTimeout("auth_timeout"));
        }
        if self.runtime_timeout.is_zero() {
            return Err(ConfigErr::ZeroTimeout("runtime_timeout"));
        }
        // The runtime also runs the session heartbeat once per interval;
        // a bound below that takes an ordinary late tick of a loaded
        // runtime for a wedge, and the node would fall silent and be
        // declared down while it works.
        if self.runtime_timeout < self.heartbeat_interval {
            return Err(ConfigErr::RuntimeTimeoutBelowInterval {
                runtime_timeout: self.runtime_timeout,
                interval: self.heartbeat_interval,
            });
        }
        if let Some(phi) = self.phi_threshold {
            if !phi.is_finite() || phi <= 0.0 {
                return Err(ConfigErr::BadPhiThreshold(phi.to_string()));
            }
            if self.effective_max_detection() < self.detection_time() {
                return Err(ConfigErr::MaxDetectionBelowFloor {
                    max_detection: self.effective_max_detection(),
                    detection: self.detection_time(),
                });
            }
        }
        let Some(lease) = self.lease_duration() else {
            return Err(ConfigErr::NoLease {
                detection: self.detection_time(),
                margin: self.effective_lease_margin(),
            });
        };
        // The lease is renewed once per interval, by an answered heartbeat
        // counted from its send time: one no longer than the interval runs
        // out before the next renewal can come.
        if lease <= self.heartbeat_interval {
            return Err(ConfigErr::LeaseBelowInterval {
                lease,
                interval: self.heartbeat_interval,
            });
        }
        Ok(())
    }

    /// The longest a safe lookup can take on this node right after it
    /// starts, and so the shortest `TakeoverConfig::whereis_timeout` that
    /// works here: every configured peer must be known first (up to
    /// [`Self::startup_timeout`] for one that accepts and stays silent),
    /// then a ping round to the peers up, which a peer that went silent
    /// meanwhile ends only when it is declared down (the detection time,
    /// plus one interval for the tick that notices).
    pub fn settle_time(&self) -> Duration {
        self.startup_timeout + self.effective_max_detection() + self.heartbeat_interval
    }

    /// Refuses a server's settings that cannot work on a node with these
    /// settings ([`crate::TakeoverConfig::validate`] with this node's frame
    /// cap, [`crate::TakeoverConfig::validate_whereis`] with its
    /// [`Self::settle_time`]). A server spawned on this node's registry runs the same check
    /// itself (the registry reports its cap, [`Registry::max_frame_bytes`](crate::Registry::max_frame_bytes));
    /// this is for checking settings before the node starts.
    pub fn check_takeover(&self, takeover: &crate::TakeoverConfig) -> Result<(), ConfigErr> {
        takeover.validate(usize::try_from(self.max_frame_bytes).ok())?;
        takeover.validate_whereis(Some(self.settle_time()))
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

    /// How long a peer must be silent at least before it counts as down
    /// (the floor of the phi accrual detector, the whole rule of the fixed
    /// one): the holder lease is counted from it.
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
#[non_exhaustive]
pub struct PeerAddr {
    /// The peer's node identity.
    pub node: NodeName,
    /// `host:port`.
    pub addr: String,
}

impl PeerAddr {
    /// The peer `node`, listening at `addr` (`host:port`).
    pub fn new(node: impl Into<NodeName>, addr: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            addr: addr.into(),
        }
    }
}

impl std::str::FromStr for PeerAddr {
    type Err = ClusterErr;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('@') {
            Some((node, addr)) if !node.is_empty() && addr.contains(':') => Ok(Self {
                node: NodeName::new(node),
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
    /// The node's TCP port was free but the same port number could not be
    /// bound for UDP, where its failure detector listens (peers send their
    /// heartbeats to the port they dial). Usually another process holds
    /// that UDP port: free it, or pick a port free for both TCP and UDP.
    BeaconPort {
        /// The port number.
        port: u16,
        /// Why the bind failed.
        source: std::io::Error,
    },
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
            Self::BeaconPort { port, source } => write!(
                f,
                "could not bind UDP port {port} for the failure detector (the TCP port was free): {source}; free the UDP port or pick a port free for both"
            ),
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
            Self::BeaconPort { source, .. } => Some(source),
            Self::BadPeer(_) | Self::FrameCapTooSmall(_) => None,
        }
    }
}

impl From<ractor::SpawnErr> for ClusterErr {
    fn from(value: ractor::SpawnErr) -> Self {
        Self::Spawn(value)
    }
}
