//! The wire path on the fake cluster: what a call from another node takes.

use std::time::Duration;

use ractor::ActorProcessingErr;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::{wait_holders, wait_until, TIMEOUT};
use crate::fake::FakeCluster;
use crate::{CallErr, GlobalClient, TakeoverActor, TakeoverCtx, TakeoverServer};

/// A counter whose `Poison` request encodes but never decodes: a call that
/// gets it answered `CallErr::Codec` went through its wire form.
struct Counter;

#[derive(Serialize, Deserialize)]
enum Req {
    Add(u64),
    Poison(#[serde(deserialize_with = "refuse")] ()),
}

fn refuse<'de, D: Deserializer<'de>>(_: D) -> Result<(), D::Error> {
    Err(D::Error::custom("poison does not decode"))
}

impl TakeoverActor for Counter {
    type Msg = Req;
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
        req: Req,
        total: &mut u64,
    ) -> Result<u64, ActorProcessingErr> {
        if let Req::Add(n) = req {
            *total += n;
        }
        Ok(*total)
    }
}

/// A client call from another node takes the path it takes between real
/// nodes: the request crosses the link `b -> a` in its wire form, the
/// instance decodes it there (a request that does not decode is answered
/// `CallErr::Codec`, which a call on the holder's own node, typed all the
/// way, never is), and the answer crosses `a -> b` in bytes. Nothing needs
/// to be switched on: the fake carries every message between nodes so.
#[tokio::test]
async fn a_call_from_another_node_crosses_both_links_in_wire_form() {
    let cluster = FakeCluster::new(["a", "b"]);
    let (_server, _) = TakeoverServer::new("n", Counter, cluster.registry("a"), Default::default())
        .spawn(())
        .await
        .expect("spawn on a");
    wait_holders(&cluster, "n", Some(("a", 1))).await;
    let on_a = GlobalClient::<Counter>::new("n", cluster.registry("a"));
    let on_b = GlobalClient::<Counter>::new("n", cluster.registry("b"));

    tracing::info!("--- a call from b, both links held");
    cluster.hold("b", "a");
    cluster.hold("a", "b");
    let call = {
        let on_b = on_b.clone();
        tokio::spawn(async move { on_b.call(Req::Add(2), TIMEOUT).await })
    };
    wait_until("the request is on b -> a", || cluster.queued("b", "a") == 1).await;
    cluster.release("b", "a");
    wait_until("the answer is on a -> b", || cluster.queued("a", "b") == 1).await;
    assert!(
        !call.is_finished(),
        "answered before its answer crossed a -> b"
    );
    cluster.release("a", "b");
    assert_eq!(call.await.expect("call task"), Ok(2));

    tracing::info!("--- a request that does not decode");
    let short = Duration::from_secs(5);
    assert_eq!(on_a.call(Req::Poison(()), short).await, Ok(2));
    match on_b.call(Req::Poison(()), short).await {
        Err(CallErr::Codec(_)) => {}
        other => panic!("a call from b that does not decode on a: {other:?}"),
    }
    assert_eq!(on_b.call(Req::Add(1), short).await, Ok(3));
}
