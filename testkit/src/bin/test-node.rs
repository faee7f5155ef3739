//! The node process of the real-process tests: one `ractor_cluster` node
//! running the power monitor (or, with `--names N`, `N` of them under the
//! names `svc-0..`, or with `--locks` the lock manager), printing `READY`
//! and one `EVENT` line per takeover event; or, as `test-node client`, a client node calling every name
//! without pause and printing each answer. Flags: `test-node --help`,
//! `test-node client --help`.

use clap::{Parser, Subcommand};
use ractor_takeover_testkit::client::{self, ClientArgs};
use ractor_takeover_testkit::node::{self, NodeArgs};

/// One node of a real cluster on loopback.
#[derive(Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    /// The node's flags, when no role is named.
    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Subcommand)]
enum Role {
    /// A client node calling the names `svc-0..` of a `--names` cluster.
    Client(ClientArgs),
}

#[tokio::main]
async fn main() -> Result<(), node::AnyErr> {
    node::init_tracing();
    match Cli::parse() {
        Cli {
            role: Some(Role::Client(args)),
            ..
        } => client::run_client(args).await,
        Cli { node, .. } => node::run(node).await,
    }
}
