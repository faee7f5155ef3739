//! Run with: cargo run --example fencing --features test-util
//!
//! Fencing a side effect with the holder's epoch. A global server writes
//! lines to a store outside the cluster (here an in-memory one; in real
//! life a database or a file server). Every write carries the holder's
//! `FencingToken`, and the store admits it through an `EpochGate`, which
//! refuses any token older than the newest it has admitted for that name.
//! After a takeover, a write from the old holder's tenure (a holder that
//! was cut off and did not know it was replaced) is refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::ActorProcessingErr;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::fence::{EpochGate, FencingToken, StaleEpochErr};
use ractor_takeover::{GlobalClient, TakeoverActor, TakeoverConfig, TakeoverCtx, TakeoverServer};

/// The store outside the cluster: it keeps an `EpochGate` of its own.
#[derive(Default)]
struct Store {
    gate: EpochGate,
    lines: Mutex<Vec<String>>,
}

impl Store {
    fn write(&self, token: &FencingToken, line: &str) -> Result<(), StaleEpochErr> {
        self.gate.admit(token)?;
        self.lines
            .lock()
            .unwrap()
            .push(format!("{line} (epoch {})", token.epoch));
        Ok(())
    }
}

/// Writes each call's line to the store, fenced by the holder's epoch, and
/// answers with the token it wrote under.
struct Writer {
    store: Arc<Store>,
}

impl TakeoverActor for Writer {
    type Msg = String;
    type Reply = FencingToken;
    type State = ();
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        ctx: &TakeoverCtx<Self>,
        line: String,
        _: &mut (),
    ) -> Result<FencingToken, ActorProcessingErr> {
        // Only a holder handles calls, and a holder always has a token.
        let token = ctx.fence().ok_or("a holder without a fencing token")?;
        self.store.write(&token, &line)?;
        Ok(token)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = FakeCluster::new(["a", "b"]);
    let store = Arc::new(Store::default());
    let server = |node: &str| {
        let writer = Writer {
            store: store.clone(),
        };
        TakeoverServer::new(
            "writer",
            writer,
            cluster.registry(node),
            TakeoverConfig::default(),
        )
    };
    let (_on_a, _) = server("a").spawn(()).await?;
    let (on_b, _) = server("b").spawn(()).await?;
    let client = GlobalClient::<Writer>::new("writer", cluster.registry("b"));
    let t = Duration::from_secs(5);

    let old_token = client.call("first line".into(), t).await?;
    println!("a wrote under {old_token:?}");

    // b takes the name over; its writes carry a newer epoch.
    on_b.takeover(t).await?;
    let new_token = client.call("second line".into(), t).await?;
    println!("b wrote under {new_token:?}");

    // A late write from a's tenure, as a holder that was cut off would
    // send it, is refused by the store.
    let late = store.write(&old_token, "late line from a");
    println!("late write from a: {late:?}");
    assert!(late.is_err(), "the gate refuses the old epoch");
    println!("the store holds: {:?}", store.lines.lock().unwrap());
    Ok(())
}
