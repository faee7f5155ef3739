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
//! use ractor_takeover::*;
//!
//! struct Counter;
//!
//! impl TakeoverActor for Counter {
//!     type Msg = u64; // add this much
//!     type Reply = u64; // the new total
//!     type State = u64;
//!     type Arguments = ();
//!
//!     async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<u64, ActorProcessingErr> {
//!         Ok(0)
//!     }
//!     async fn handle(&self, _: &TakeoverCtx<Self>, add: u64, total: &mut u64)
//!         -> Result<u64, ActorProcessingErr> {
//!         *total += add;
//!         Ok(*total)
//!     }
//!     fn encode_state(&self, s: &u64) -> Result<Vec<u8>, StateCodecErr> { encode_postcard(s) }
//!     fn decode_state(&self, b: &[u8]) -> Result<u64, StateCodecErr> { decode_postcard(b) }
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
//! let report = takeover(&on_b, t).await.unwrap(); // steal, then pull the state
//! assert_eq!(report.start, StartType::Takeover { from: "a".into() });
//! assert_eq!(client.call(1, t).await, Ok(6)); // the state came along
//! # }
//! ```
//!
//! # Layout
//! - [`behaviour`](TakeoverActor): the trait users implement, the start types.
//! - `server`: the ractor actor that runs a behaviour, its dispatch and the
//!   one transition between stages (each stage carries its own data). Each
//!   side of the protocol has its own file under `server/`: `phase` (the
//!   decisions of every stage's exits, pure and unit-tested), `calls`
//!   (serve, buffer, forward; whether a holder may answer), `takeover` (the
//!   new holder: go, pull, install, abort), `handover` (the old holder:
//!   state request, parts, retiring, a lost `HandoverDone`), `placement`
//!   (start, automatic failover and takeover, quorum), `conflict`
//!   (split-brain healing), `checkpoint` (warm standbys).
//! - `message`: its message type; `message/answer` where a call's answer
//!   goes, `message/protocol` the handover protocol (drawn on
//!   [`HandoverMsg`]), `message/status` what an instance reports,
//!   `message/wire` the wire form every message between nodes travels in,
//!   `message/routing` how a message reaches an instance and where a refused
//!   call goes next.
//! - `registry`: the [`Registry`] trait, one node's view of the global names
//!   (naming); `registry/transport` its sealed transport side.
//! - [`cluster`]: the real backend, `ractor::pg` synced by `ractor_cluster`,
//!   with heartbeats and the token actors that carry registrations.
//! - `fake`: an in-process cluster with fault injection (feature
//!   `test-util`), the transport of the wire path in tests; `fake/faults`
//!   the faults of real machines (a paused node, a frame limit, a slow dial).
//! - `client`: [`GlobalClient`], calling the server by name.
//! - `placement`: [`Placement`], priority lists for automatic failover and
//!   takeover, like Erlang's `distributed` parameter.
//! - `event`: [`TakeoverEvent`]s for subscribers.
//! - `resolver`: [`ConflictResolver`], who keeps the name when a healed
//!   partition leaves two holders.
//! - `fence`: [`FencingToken`] and [`EpochGate`], epochs on side effects.
//! - [`bytes`]: `#[serde(with = "ractor_takeover::bytes")]` for big `Vec<u8>`
//!   fields of a state.
//! - `config`, `error`, `node`: settings (and [`CheckpointPolicy`]), errors,
//!   node identities.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod behaviour;
pub mod bytes;
mod client;
pub mod cluster;
mod config;
mod error;
mod event;
#[cfg(feature = "test-util")]
pub mod fake;
mod fence;
mod message;
mod node;
mod placement;
mod registry;
mod resolver;
mod server;

pub use behaviour::decode_postcard;
pub use behaviour::encode_postcard;
pub use behaviour::CheckpointInfo;
pub use behaviour::MergeOutcome;
pub use behaviour::StartType;
pub use behaviour::TakeoverActor;
pub use behaviour::TakeoverCtx;
pub use client::GlobalClient;
pub use config::CheckpointPolicy;
pub use config::TakeoverConfig;
pub use config::PART_ENVELOPE_BYTES;
pub use error::CallErr;
pub use error::ConfigErr;
pub use error::RegistryErr;
pub use error::StateCodecErr;
pub use error::TakeoverErr;
pub use event::EventHub;
pub use event::EventKind;
pub use event::TakeoverEvent;
pub use fence::EpochGate;
pub use fence::FencingToken;
pub use fence::StaleEpochErr;
pub use message::Answer;
pub use message::GoRequest;
pub use message::HandoverMsg;
pub use message::HandoverReport;
pub use message::InstanceStatus;
pub use message::PartOf;
pub use message::Phase;
pub use message::ReplyErr;
pub use message::ReplyPort;
pub use message::TakeoverMessage;
pub use node::NodeId;
pub use placement::Placement;
pub use registry::next_epoch;
pub use registry::BoxFuture;
pub use registry::Epoch;
pub use registry::LeaveReason;
pub use registry::NameWatch;
pub use registry::Registration;
pub use registry::RegistrationInfo;
pub use registry::Registry;
pub use registry::RegistryEvent;
pub use resolver::Claim;
pub use resolver::ConflictResolver;
pub use resolver::NewerLineage;
pub use resolver::PriorityThenEpoch;
pub use server::go;
pub use server::status;
pub use server::takeover;
pub use server::ServerState;
pub use server::TakeoverRef;
pub use server::TakeoverServer;
