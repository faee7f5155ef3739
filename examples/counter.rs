//! Run with: cargo run --example counter --features test-util
//!
//! The smallest global server: a counter, on a fake two-node cluster in one
//! process. The instance on `a` registers the name; the one on `b` waits as
//! a standby. A client calls it by name from anywhere in the cluster. A
//! takeover moves the name and the state to `b`, and the count goes on.

use std::time::Duration;

use ractor::ActorProcessingErr;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::{GlobalClient, TakeoverActor, TakeoverConfig, TakeoverCtx, TakeoverServer};

/// The behaviour: what the server does with each call, and what its state
/// is. The runtime around it (registration, standby, takeover) is the
/// crate's.
struct Counter;

impl TakeoverActor for Counter {
    /// A call: add this much.
    type Msg = u64;
    /// Its reply: the new total.
    type Reply = u64;
    /// The state that moves with the name.
    type State = u64;
    /// What `spawn` passes to `init`.
    type Arguments = u64;
    /// The instance's own messages (timers): none here.
    type Info = ();

    /// Runs when an instance starts, on the holder and on standbys alike.
    async fn init(&self, _: &TakeoverCtx<Self>, start: u64) -> Result<u64, ActorProcessingErr> {
        Ok(start)
    }

    /// Runs on the holder only, once per call, in arrival order.
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
    // Two fake nodes in this process; on real machines each node is a
    // process with a `cluster::ClusterNode` (see examples/real_node.rs).
    let cluster = FakeCluster::new(["a", "b"]);
    let server = |node: &str| {
        TakeoverServer::new(
            "counter",
            Counter,
            cluster.registry(node),
            TakeoverConfig::default(),
        )
    };

    // `spawn` returns once the instance has started: the first one finds
    // the name free and registers it, the second finds it held and waits.
    let (_on_a, _) = server("a").spawn(0).await?;
    let (on_b, _) = server("b").spawn(0).await?;

    // A client on any node calls the server by its global name.
    let client = GlobalClient::<Counter>::new("counter", cluster.registry("b"));
    let t = Duration::from_secs(5);
    println!("total: {}", client.call(5, t).await?);
    println!("total: {}", client.call(2, t).await?);

    // A takeover: b steals the name, pulls the state from a, and serves.
    // Calls sent meanwhile wait in b's buffer; none is lost.
    let report = on_b.takeover(t).await?;
    println!(
        "taken over by b: {:?} after a pause of {:?}",
        report.start, report.pause
    );

    // The state came along.
    let total = client.call(1, t).await?;
    println!("total: {total}");
    assert_eq!(total, 8);
    Ok(())
}
