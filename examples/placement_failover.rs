//! Run with: cargo run --example placement_failover --features test-util
//!
//! Placement and failover, on a fake three-node cluster in one process.
//! A counter runs on the nodes `a > b > c` (a first). With warm standby on
//! (a checkpoint after every call), we crash `a`: `b` fails over and starts
//! from the last checkpoint. Then `a` comes back, and since it ranks above
//! `b`, it takes the name back with the whole state.

use std::time::Duration;

use ractor::ActorProcessingErr;
use ractor_takeover::event::{EventHub, EventKind, TakeoverEvent};
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::registry::NodeName;
use ractor_takeover::*;

/// A counter: each call adds to the total and gets the new total back.
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

/// Waits for the next `Registered` event of any instance and returns how
/// that instance started (normal, failover or takeover) and on which node.
async fn next_holder(
    events: &mut tokio::sync::broadcast::Receiver<TakeoverEvent>,
) -> (NodeName, StartType) {
    loop {
        let event = events.recv().await.expect("the hub outlives the example");
        if let EventKind::Registered { start } = event.kind {
            return (event.node, start);
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = FakeCluster::new(["a", "b", "c"]);
    let hub = EventHub::default();
    let mut events = hub.subscribe();
    // Every node applies the same placement to its own view of the cluster:
    // the first live node in priority order holds the name.
    let config = TakeoverConfig::default()
        .with_placement(
            Placement::parse("a > b > c").with_failover_delay(Duration::from_millis(50)),
        )
        .with_checkpoints(CheckpointPolicy::every_calls(1))
        .with_events(hub);
    let server = |node: &str| {
        TakeoverServer::new("counter", Counter, cluster.registry(node), config.clone())
    };

    // Start an instance on every node: a registers, b and c wait as standbys.
    for node in ["a", "b", "c"] {
        server(node).spawn(()).await?;
    }
    println!("holder: {:?}", next_holder(&mut events).await);

    let client = GlobalClient::<Counter>::new("counter", cluster.registry("c"));
    let t = Duration::from_secs(5);
    for _ in 0..10 {
        client.call(1, t).await?;
    }
    println!("10 calls answered; total {}", client.call(0, t).await?);

    // The holder's node dies. b, next in priority, fails over from the
    // checkpoint that a sent after its last call.
    cluster.crash("a");
    let (node, start) = next_holder(&mut events).await;
    println!("a crashed; {node} holds now: {start:?}");
    assert_eq!(client.call(0, t).await?, 10, "warm standby kept every call");

    // a comes back (a supervisor restarts its instance): it outranks b, so
    // it takes the name back, state included.
    cluster.restart("a");
    server("a").spawn(()).await?;
    let (node, start) = next_holder(&mut events).await;
    println!("a restarted; {node} holds now: {start:?}");
    assert_eq!(
        client.call(5, t).await?,
        15,
        "the state came back with the name"
    );
    println!("total after the takeover back: 15");
    Ok(())
}
