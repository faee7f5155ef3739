//! Run with: cargo run --example lock_manager --features test-util
//!
//! A global lock manager with a blocking acquire, on a fake two-node
//! cluster: `Acquire` of a held lock is answered only when the lock is
//! released, through the `Reply` the message carries. Node `b` takes the
//! server over while a caller waits: the waiting caller is told `Moved`,
//! asks again, and gets the lock from `b` once it is released there. You
//! will see one line per step; it fails if the waiter was not told `Moved`
//! once, or got no lock.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use ractor::ActorProcessingErr;
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
enum LockMessage {
    /// Answered with a grant id once `key` is free.
    Acquire(String, Reply<u64>),
    Release(String, u64),
    /// How many callers wait for `key`.
    Waiting(String, Reply<usize>),
}

#[derive(Default, Serialize, Deserialize)]
struct Locks {
    next_id: u64,
    held: HashMap<String, u64>,
    /// Waiting callers. Their ports move with the state *detached*: the old
    /// holder answered them `CallErr::Moved`, and `send` on one fails.
    waiting: HashMap<String, VecDeque<Reply<u64>>>,
}

impl Locks {
    /// The lock goes to the first waiter that still waits.
    fn grant_next(&mut self, key: &str) {
        while let Some(waiter) = self.waiting.get_mut(key).and_then(VecDeque::pop_front) {
            if waiter.send(self.next_id + 1).is_ok() {
                self.next_id += 1;
                self.held.insert(key.to_string(), self.next_id);
                return;
            }
        }
    }
}

struct LockManager;

impl TakeoverActor for LockManager {
    type Msg = LockMessage;
    type Reply = (); // every answer goes through a `Reply`
    type State = Locks;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<Locks, ActorProcessingErr> {
        Ok(Locks::default())
    }

    // A sweep of expired grants would start here, on the holder alone,
    // once the instance has timers of its own.

    async fn handle(
        &self,
        _: &TakeoverCtx<Self>,
        msg: LockMessage,
        locks: &mut Locks,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LockMessage::Acquire(key, reply) => {
                locks
                    .waiting
                    .entry(key.clone())
                    .or_default()
                    .push_back(reply);
                if !locks.held.contains_key(&key) {
                    locks.grant_next(&key);
                }
            }
            LockMessage::Release(key, id) if locks.held.get(&key) == Some(&id) => {
                locks.held.remove(&key);
                locks.grant_next(&key);
            }
            LockMessage::Release(..) => {} // not the current grant
            LockMessage::Waiting(key, reply) => {
                let queue = locks.waiting.get(&key);
                let _ =
                    reply.send(queue.map_or(0, |q| q.iter().filter(|w| !w.is_closed()).count()));
            }
        }
        Ok(())
    }

    fn encode_state(&self, s: &Locks) -> Result<Vec<u8>, StateCodecErr> {
        encode_postcard(s)
    }
    fn decode_state(&self, b: &[u8]) -> Result<Locks, StateCodecErr> {
        decode_postcard(b)
    }
}

async fn waiting(client: &GlobalClient<LockManager>) -> Result<usize, CallErr> {
    call_t!(client, LockMessage::Waiting, 5_000, "door".to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = FakeCluster::new(["a", "b"]);
    let server = |n| {
        TakeoverServer::new(
            "locks",
            LockManager,
            cluster.registry(n),
            Default::default(),
        )
    };
    let (_on_a, _) = server("a").spawn(()).await?;
    let (on_b, _) = server("b").spawn(()).await?;
    let client = GlobalClient::<LockManager>::new("locks", cluster.registry("b"));

    let first = call_t!(client, LockMessage::Acquire, 5_000, "door".to_string())?;
    println!("got the lock at once: grant {first}");

    let waiter = tokio::spawn({
        let client = client.clone();
        async move {
            let mut moved = 0;
            loop {
                match call_t!(client, LockMessage::Acquire, 5_000, "door".to_string()) {
                    Err(CallErr::Moved) => moved += 1,
                    other => return other.map(|grant| (moved, grant)),
                }
            }
        }
    });
    while waiting(&client).await? == 0 {
        tokio::task::yield_now().await; // until the waiter waits on a
    }
    let report = takeover(&on_b, Duration::from_secs(5)).await?;
    println!("b took over ({:?}) while the waiter waited", report.start);
    while waiting(&client).await? == 0 {
        tokio::task::yield_now().await; // until it waits again, on b
    }

    cast!(client, LockMessage::Release("door".into(), first))?;
    println!("released grant {first} on b");
    let (moved, second) = waiter.await??;
    println!("the waiter, told Moved {moved} time(s) and asking again, got grant {second} from b");
    assert_eq!(moved, 1, "the takeover answered the waiting acquire once");
    assert!(second > first, "the grant ids went on with the state");
    Ok(())
}
