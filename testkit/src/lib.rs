//! Tooling of the `ractor_takeover` repository (not published): what the
//! real-process tests, the `cluster_demo` example and the bench share.
//!
//! # Layout
//!
//! - [`lock_manager`]: a lock manager with a blocking acquire, answered
//!   later through a `Reply`: the server of the deferred-reply tests.
//! - [`power_monitor`]: a power monitor (the classic Erlang takeover example), the server every real node
//!   here runs.
//! - [`node`]: one real node (a `ractor_cluster` node running the power
//!   monitor) and its command line, shared by the `test-node` binary and the
//!   demo's `node` role.
//! - [`procs`]: starting node processes on loopback, reading their output,
//!   free ports, temporary directories, and building the test node.
//! - [`client`]: the test node's client role, calling many names without
//!   pause and printing every answer.
//! - [`answers`]: those answers, and what they add up to (calls lost or
//!   duplicated, two holders, per-name failover and takeover times).
//! - [`many`]: a many-names cluster of node processes and that client, as
//!   the scale bench and `tests/real_many_names.rs` drive it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod answers;
pub mod client;
pub mod lock_manager;
pub mod many;
pub mod node;
pub mod power_monitor;
pub mod procs;
