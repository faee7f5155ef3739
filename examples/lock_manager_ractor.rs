//! Run with: cargo run --example lock_manager_ractor
//!
//! The "before" of the migration guide (docs/migration.md): a lock manager
//! written as a plain `ractor::Actor`, in one process. `Acquire` of a held
//! lock is answered only when the lock is released (or its grant expires),
//! through the `RpcReplyPort` the message carries; a sweep timer expires
//! grants that were not released in time. `examples/lock_manager.rs` is the
//! same server as a global one.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use ractor::{call_t, cast, Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

/// How often the sweep runs, and how many sweeps a grant lives.
const SWEEP: Duration = Duration::from_millis(100);
const TTL_SWEEPS: u64 = 20;

enum LockMsg {
    /// Answered with a grant id once `key` is free.
    Acquire(String, RpcReplyPort<u64>),
    Release(String, u64),
    /// The timer: expire old grants.
    Sweep,
}

// With ractor's `cluster` feature on, a message type says whether it can
// cross nodes; this one stays in the process.
impl ractor::Message for LockMsg {}

#[derive(Default)]
struct Locks {
    next_id: u64,
    sweeps: u64,
    /// key -> (grant id, the sweep it was granted at)
    held: HashMap<String, (u64, u64)>,
    waiting: HashMap<String, VecDeque<RpcReplyPort<u64>>>,
}

impl Locks {
    /// The lock goes to the first waiter that still waits.
    fn grant_next(&mut self, key: &str) {
        while let Some(port) = self.waiting.get_mut(key).and_then(VecDeque::pop_front) {
            if port.send(self.next_id + 1).is_ok() {
                self.next_id += 1;
                self.held
                    .insert(key.to_string(), (self.next_id, self.sweeps));
                return;
            }
        }
    }
}

struct LockManager;

impl Actor for LockManager {
    type Msg = LockMsg;
    type State = Locks;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<LockMsg>,
        _: (),
    ) -> Result<Locks, ActorProcessingErr> {
        myself.send_interval(SWEEP, || LockMsg::Sweep);
        Ok(Locks::default())
    }

    async fn handle(
        &self,
        _: ActorRef<LockMsg>,
        msg: LockMsg,
        locks: &mut Locks,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LockMsg::Acquire(key, port) => {
                locks
                    .waiting
                    .entry(key.clone())
                    .or_default()
                    .push_back(port);
                if !locks.held.contains_key(&key) {
                    locks.grant_next(&key);
                }
            }
            LockMsg::Release(key, id) => {
                if locks.held.get(&key).is_some_and(|(held, _)| *held == id) {
                    locks.held.remove(&key);
                    locks.grant_next(&key);
                }
            }
            LockMsg::Sweep => {
                locks.sweeps += 1;
                let now = locks.sweeps;
                let expired: Vec<String> = locks
                    .held
                    .iter()
                    .filter(|(_, (_, at))| now - at > TTL_SWEEPS)
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in expired {
                    locks.held.remove(&key);
                    locks.grant_next(&key);
                }
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (locks, handle) = Actor::spawn(None, LockManager, ()).await?;
    let first = call_t!(locks, LockMsg::Acquire, 5_000, "door".to_string())?;
    println!("got the lock at once: grant {first}");
    let waiter = tokio::spawn({
        let locks = locks.clone();
        async move { call_t!(locks, LockMsg::Acquire, 5_000, "door".to_string()) }
    });
    tokio::task::yield_now().await;
    cast!(locks, LockMsg::Release("door".into(), first))?;
    let second = waiter.await??;
    println!("the waiter got grant {second} when it was released");
    // Never released: the sweep expires it, and the next caller gets the lock.
    let third = call_t!(locks, LockMsg::Acquire, 5_000, "door".to_string())?;
    println!("grant {second} expired; the next caller got grant {third}");
    assert!(first < second && second < third);
    locks.stop(None);
    handle.await?;
    Ok(())
}
