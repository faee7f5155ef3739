//! Run with: cargo run --example split_brain_merge --features test-util
//!
//! A healed split brain, with a `merge` of your own, on a fake two-node
//! cluster. A guest book runs on `a`; the link between `a` and `b` breaks,
//! `b` sees `a` as down and fails over, and each side signs its own copy.
//! When the link heals, two holders meet: the resolver picks one, the other
//! offers its state, and our `merge` keeps every signature from both sides.

use std::collections::BTreeSet;
use std::time::Duration;

use ractor::ActorProcessingErr;
use ractor_takeover::event::{EventHub, EventKind};
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::registry::RegistrationInfo;
use ractor_takeover::*;

/// A guest book: each call signs it and gets the number of signatures back.
struct GuestBook;

impl TakeoverActor for GuestBook {
    type Msg = String;
    type Reply = usize;
    type State = BTreeSet<String>;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<Self::State, ActorProcessingErr> {
        Ok(BTreeSet::new())
    }

    async fn handle(
        &self,
        _: &TakeoverCtx<Self>,
        guest: String,
        book: &mut Self::State,
    ) -> Result<usize, ActorProcessingErr> {
        book.insert(guest);
        Ok(book.len())
    }

    /// Runs on the winner of the conflict, with the loser's state. The
    /// default keeps the winner's state and drops the loser's; a set of
    /// signatures merges without conflict, so we keep both.
    async fn merge(
        &self,
        _: &TakeoverCtx<Self>,
        mine: &mut Self::State,
        theirs: Self::State,
        from: &RegistrationInfo,
    ) -> Result<MergeOutcome, ActorProcessingErr> {
        println!(
            "merging {} signatures from {} into {}",
            theirs.len(),
            from.node,
            mine.len()
        );
        mine.extend(theirs);
        Ok(MergeOutcome::Merged)
    }
}

/// Polls `check` every 10 ms until it holds or 10 s have passed.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = FakeCluster::new(["a", "b"]);
    let hub = EventHub::default();
    let mut events = hub.subscribe();
    let config = TakeoverConfig::default()
        .with_placement(Placement::parse("a > b").with_failover_delay(Duration::from_millis(50)))
        .with_events(hub);
    for node in ["a", "b"] {
        TakeoverServer::new("guests", GuestBook, cluster.registry(node), config.clone())
            .spawn(())
            .await?;
    }
    let on_a = GlobalClient::<GuestBook>::new("guests", cluster.registry("a"));
    let on_b = GlobalClient::<GuestBook>::new("guests", cluster.registry("b"));
    let t = Duration::from_secs(5);
    on_a.call("ada".into(), t).await?;

    // Each side sees the other as down: b fails over, and both hold.
    cluster.split("a", "b");
    eventually("b holds on its side", || {
        on_b.whereis()
            .is_some_and(|holder| holder.node.as_str() == "b")
    })
    .await;
    println!("split: a and b both hold the name");
    on_a.call("grace".into(), t).await?;
    on_b.call("linus".into(), t).await?;

    // The heal: the two holders meet, the resolver picks one on both sides
    // (by default the newer lineage: b, whose failover is the newer state),
    // and the loser offers its state to the winner.
    cluster.heal("a", "b");
    loop {
        let event = events.recv().await?;
        if let EventKind::SplitBrainHealed { loser, outcome, .. } = event.kind {
            println!(
                "healed: {} won, {} lost, its state {outcome:?}",
                event.node, loser.node
            );
            break;
        }
    }
    let signatures = on_a.call("margaret".into(), t).await?;
    println!("one more signature: {signatures} in the book");
    assert_eq!(signatures, 4, "ada, grace, linus and margaret");
    Ok(())
}
