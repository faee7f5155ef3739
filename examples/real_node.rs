//! Run with (one terminal per node, on one machine):
//!
//! ```sh
//! cargo run --example real_node -- --name a --port 47201 --peers b@127.0.0.1:47202
//! cargo run --example real_node -- --name b --port 47202 --peers a@127.0.0.1:47201 --calls 20
//! ```
//!
//! A global counter on real nodes: each process is one node of a cluster
//! (a `cluster::ClusterNode`: ractor_cluster plus this crate's heartbeat),
//! and runs one instance of the server, `a` preferred over `b`. With
//! `--calls N` the node also calls the counter N times, once a second, and
//! prints who answered. Stop `a` (Ctrl-C) while `b` calls: `b` fails over
//! (the count starts again: warm standby is off here); start `a` again and
//! it takes the name back, with the state.

use std::time::Duration;

use clap::Parser;
use ractor::ActorProcessingErr;
use ractor_takeover::cluster::{ClusterConfig, ClusterNode, PeerAddr};
use ractor_takeover::*;

#[derive(Parser)]
struct Args {
    /// This node's name; every node of the cluster has its own.
    #[arg(long)]
    name: String,
    /// The port this node listens on (loopback).
    #[arg(long)]
    port: u16,
    /// Every other node, as name@host:port, comma-separated.
    #[arg(long, value_delimiter = ',')]
    peers: Vec<PeerAddr>,
    /// The shared secret; a node with another cookie never joins.
    #[arg(long, default_value = "example-cookie")]
    cookie: String,
    /// Call the counter this many times (once a second), then exit.
    #[arg(long)]
    calls: Option<u32>,
}

/// The same counter as examples/counter.rs.
struct Counter;

impl TakeoverActor for Counter {
    type Msg = u64;
    type Reply = u64;
    type State = u64;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: &TakeoverCtx<Self>,
        add: u64,
        total: &mut u64,
    ) -> Result<u64, ActorProcessingErr> {
        *total += add;
        Ok(*total)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    // One ClusterNode per process: ractor's process groups are a process
    // static, so two nodes cannot share a process.
    let config =
        ClusterConfig::new(args.name.as_str(), args.port, args.cookie).with_peers(args.peers);
    let node = ClusterNode::start(config).await?;

    // The same placement on every node: a first, then b.
    let config = TakeoverConfig::default().with_placement(Placement::parse("a > b"));
    let (_server, _) = TakeoverServer::new("counter", Counter, node.registry(), config)
        .spawn(())
        .await?;
    println!("{}: started", args.name);

    let Some(calls) = args.calls else {
        // Serve until Ctrl-C; the instance answers wherever it holds.
        tokio::signal::ctrl_c().await?;
        node.shutdown();
        return Ok(());
    };
    let client = GlobalClient::<Counter>::new("counter", node.registry());
    for _ in 0..calls {
        let holder = client.whereis().map(|h| h.node.to_string());
        match client.call(1, Duration::from_secs(2)).await {
            Ok(total) => println!("total {total}, from {holder:?}"),
            // A call in flight to a node that was just stopped may fail;
            // the next one finds the new holder.
            Err(e) => println!("call failed: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    node.shutdown();
    Ok(())
}
