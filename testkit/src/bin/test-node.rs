//! The node process of the real-process tests: one `ractor_cluster` node
//! running the power monitor, printing `READY` and one `EVENT` line per
//! takeover event. Flags: `test-node --help`.

use clap::Parser;
use ractor_takeover_testkit::node::{self, NodeArgs};

/// One node of a real cluster on loopback.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

#[tokio::main]
async fn main() -> Result<(), node::AnyErr> {
    node::init_tracing();
    node::run(Cli::parse().node).await
}
