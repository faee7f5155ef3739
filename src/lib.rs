//! Erlang/OTP-style takeover and failover of cluster-global servers for
//! [ractor](https://docs.rs/ractor).
//!
//! One server per cluster under a global name. The first instance registers;
//! others wait as standbys. A takeover moves the name *and the state* to
//! another instance: the new instance steals the name first, so new calls come
//! to it and wait in a bounded buffer, then pulls the state from the old
//! instance with actor messages; the old instance answers what reached it
//! before, forwards what reaches it after, and retires once the new one runs.
//! No call is lost or answered twice across a takeover.
//!
//! ```
//! use std::time::Duration;
//! use ractor::ActorProcessingErr;
//! use ractor_takeover::fake::FakeCluster;
//! use ractor_takeover::{GlobalClient, StartType, TakeoverActor, TakeoverCtx, TakeoverServer};
//!
//! struct Counter;
//!
//! impl TakeoverActor for Counter {
//!     type Msg = u64; // add this much
//!     type Reply = u64; // the new total
//!     type State = u64; // serde: travels with postcard, nothing to write
//!     type Arguments = ();
//!     type Info = ();
//!
//!     async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<u64, ActorProcessingErr> {
//!         Ok(0)
//!     }
//!     async fn handle(&self, _: &TakeoverCtx<Self>, add: u64, total: &mut u64)
//!         -> Result<u64, ActorProcessingErr> {
//!         *total += add;
//!         Ok(*total)
//!     }
//! }
//!
//! # #[tokio::main] async fn main() {
//! let cluster = FakeCluster::new(["a", "b"]);
//! let t = Duration::from_secs(5);
//! let srv = |n| TakeoverServer::new("counter", Counter, cluster.registry(n), Default::default());
//! let (_on_a, _) = srv("a").spawn(()).await.unwrap(); // registers: Normal
//! let (on_b, _) = srv("b").spawn(()).await.unwrap(); // waits as standby
//!
//! let client = GlobalClient::<Counter>::new("counter", cluster.registry("b"));
//! assert_eq!(client.call(5, t).await, Ok(5));
//! let report = on_b.takeover(t).await.unwrap(); // steal, then pull the state
//! assert_eq!(report.start, StartType::Takeover { from: "a".into() });
//! assert_eq!(client.call(1, t).await, Ok(6)); // the state came along
//! # }
//! ```
//!
//! # Layout
//! The crate root holds what every user names: the behaviour
//! ([`TakeoverActor`], its [`TakeoverCtx`], [`StartType`], [`MergeOutcome`]),
//! the server and its handle ([`TakeoverServer`], [`TakeoverRef`]), the
//! client ([`GlobalClient`]), the settings ([`TakeoverConfig`],
//! [`CheckpointPolicy`], [`Placement`]), the [`HandoverReport`] and the
//! errors. The rest is in modules named for what they are:
//!
//! - [`event`]: [`TakeoverEvent`]s for subscribers;
//! - [`fence`]: [`FencingToken`] and
//!   [`EpochGate`](fence::EpochGate), epochs on side effects;
//! - [`resolver`]: [`ConflictResolver`], who
//!   keeps the name when a healed partition leaves two holders;
//! - [`registry`]: the [`Registry`] trait, one node's
//!   view of the global names, its events, epochs and node names;
//! - [`status`]: what an instance reports about itself, and the last move
//!   of its name;
//! - [`drain`]: what a node's drain reports (`ClusterNode::drain`);
//! - [`codec`]: how a state travels (postcard by default, or a
//!   [`StateCodec`] of your own), and
//!   `#[serde(with = "ractor_takeover::codec::bytes")]` for big blobs;
//! - [`cluster`]: the real backend, `ractor::pg` synced by `ractor_cluster`,
//!   with heartbeats and the token actors that carry registrations (its
//!   `Registry`, drain, heartbeat and beacon each in files of their own);
//! - `fake`: an in-process cluster with fault injection (feature
//!   `test-util`), the transport of the wire path in tests.
//! - [`reply`]: [`Reply`], a typed reply port in the message, answered now
//!   or later, and what happens to a held one across a takeover, a failover
//!   and a merge; [`call_t!`] and [`cast!`] of ractor's shape call with one.
//! - `metrics`: the names of the metrics recorded through the `metrics`
//!   facade (feature `metrics`), and what each counts.
//! - [`Protocol`] and [`GlobalName`] (here): the message and reply types a
//!   server and its clients share, so a client need not link the
//!   behaviour, and a name typed by its protocol.
//!
//! Private, so that nobody outside the crate can build or forge them: the
//! runtime actor (`server`: the actor, its state and its dispatch, one file
//! per side of the protocol, and the pure decisions in `server/phase`, one
//! file a stage), its message type and the handover protocol (`message`:
//! drawn on the protocol enum in `message/protocol.rs`), the wire form, and
//! the timers an instance sends itself.

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
// Feature badges on docs.rs (which builds with `--cfg docsrs` on nightly,
// see `[package.metadata.docs.rs]`); stable builds never see the attribute.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod behaviour;
mod client;
pub mod cluster;
pub mod codec;
pub mod config;
mod dedup;
pub mod drain;
mod error;
pub mod event;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod fake;
pub mod fence;
mod macros;
mod message;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
mod node;
mod placement;
mod protocol;
pub mod registry;
pub mod reply;
pub mod resolver;
mod server;
pub mod status;

pub use behaviour::MergeOutcome;
pub use behaviour::StartType;
pub use behaviour::TakeoverActor;
pub use behaviour::TakeoverCtx;
pub use client::GlobalClient;
pub use config::CheckpointPolicy;
pub use config::TakeoverConfig;
pub use error::CallErr;
pub use error::ConfigErr;
pub use error::InfoErr;
pub use error::StateCodecErr;
pub use error::TakeoverErr;
pub use message::HandoverReport;
pub use placement::Placement;
pub use protocol::GlobalName;
pub use protocol::Protocol;
pub use reply::Reply;
pub use server::TakeoverRef;
pub use server::TakeoverServer;

// The crate's own short paths to items whose public home is a module: the
// runtime's files name them from the root, as they always have.
pub(crate) use behaviour::CheckpointInfo;
pub(crate) use codec::StateCodec;
pub(crate) use error::RegistryErr;
pub(crate) use event::EventHub;
pub(crate) use event::EventKind;
pub(crate) use event::TakeoverEvent;
pub(crate) use fence::FencingToken;
pub(crate) use message::GoRequest;
pub(crate) use message::HandoverMsg;
pub(crate) use message::InstanceStatus;
pub(crate) use message::PartOf;
pub(crate) use message::Phase;
pub(crate) use message::ReplyErr;
pub(crate) use message::TakeoverMessage;
pub(crate) use node::NodeName;
pub(crate) use registry::Epoch;
pub(crate) use registry::LeaveReason;
pub(crate) use registry::NameWatch;
pub(crate) use registry::Registration;
pub(crate) use registry::RegistrationInfo;
pub(crate) use registry::Registry;
pub(crate) use registry::RegistryEvent;
pub(crate) use resolver::Claim;
pub(crate) use resolver::ConflictResolver;
pub(crate) use resolver::NewerLineage;

// Every Rust block of the README compiles (and runs, unless marked
// `no_run`) with the doctests, so the quick start cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_doctests {}
