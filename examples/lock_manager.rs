//! Run with: cargo run --example lock_manager --features test-util
//!
//! The "after" of the migration guide (docs/migration.md): the lock manager
//! of `examples/lock_manager_ractor.rs` as a global server, on a fake
//! two-node cluster. `Acquire` of a held lock is answered only when the lock
//! is released (or its grant expires), through the `Reply` the message
//! carries; a sweep timer, which runs on the holder alone, expires grants
//! that were not released in time. Node `b` takes the server over while a
//! caller waits: the waiting caller is told `CallErr::Moved`, asks again,
//! and gets the lock from `b`. Then `b`'s node crashes while another caller
//! waits: told its holder is down, it asks again and `a`, which fails over,
//! grants it; the sweep, now on `a`, expires that grant. A plain ractor
//! supervisor links both instances and survives it all.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, ActorStatus, SupervisionEvent};
use ractor_takeover::fake::FakeCluster;
use ractor_takeover::{call_t, cast, CallErr, GlobalClient, Placement, Reply, StartType};
use ractor_takeover::{TakeoverActor, TakeoverConfig, TakeoverCtx, TakeoverServer};
use serde::{Deserialize, Serialize};

/// How often the sweep runs, and how many sweeps a grant lives.
const SWEEP: Duration = Duration::from_millis(100);
const TTL_SWEEPS: u64 = 20;

#[derive(Serialize, Deserialize)]
enum LockMsg {
    /// Answered with a grant id once `key` is free.
    Acquire(String, Reply<u64>),
    Release(String, u64),
}

/// The instance's own messages: the timer. Not a client call.
enum LockInfo {
    /// Expire old grants.
    Sweep,
}

#[derive(Default, Serialize, Deserialize)]
struct Locks {
    next_id: u64,
    sweeps: u64,
    /// key -> (grant id, the sweep it was granted at)
    held: HashMap<String, (u64, u64)>,
    waiting: HashMap<String, VecDeque<Reply<u64>>>,
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

impl TakeoverActor for LockManager {
    type Msg = LockMsg;
    type Reply = (); // every answer goes through a `Reply` in the message
    type State = Locks;
    type Arguments = ();
    type Info = LockInfo;

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<Locks, ActorProcessingErr> {
        Ok(Locks::default())
    }

    /// Runs on the holder alone, each time it starts holding.
    async fn go(
        &self,
        ctx: &TakeoverCtx<Self>,
        _: &StartType,
        _: &mut Locks,
    ) -> Result<(), ActorProcessingErr> {
        ctx.send_interval(SWEEP, || LockInfo::Sweep)?;
        Ok(())
    }

    async fn handle(
        &self,
        _: &TakeoverCtx<Self>,
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
        }
        Ok(())
    }

    async fn handle_info(
        &self,
        _: &TakeoverCtx<Self>,
        info: LockInfo,
        locks: &mut Locks,
    ) -> Result<(), ActorProcessingErr> {
        match info {
            LockInfo::Sweep => {
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

/// Acquires `key`, asking again when a takeover moved the server while
/// the call waited (`Moved`: handled, not answered), or when the holder's
/// node died (`HolderDown`, `NoReply`: its locks died with it).
async fn acquire(locks: &GlobalClient<LockManager>, key: &str) -> Result<(u64, u32), CallErr> {
    let mut retries = 0;
    loop {
        match call_t!(locks, LockMsg::Acquire, 5_000, key.to_string()) {
            Err(CallErr::Moved | CallErr::HolderDown { .. } | CallErr::NoReply) => retries += 1,
            other => return other.map(|grant| (grant, retries)),
        }
    }
}

/// A plain ractor supervisor: it links the instances and logs what
/// happens to them. A takeover does not stop them.
struct Supervisor;

impl Actor for Supervisor {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        event: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        println!("supervisor: {event:?}");
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = FakeCluster::new(["a", "b", "c"]);
    // Equal priority: nothing moves back by itself, a crash fails over.
    let config = TakeoverConfig::default().with_placement(Placement::parse("a, b"));
    let (supervisor, _) = Actor::spawn(None, Supervisor, ()).await?;
    let server = |n| TakeoverServer::new("locks", LockManager, cluster.registry(n), config.clone());
    let (_on_a, _) = server("a").spawn_linked((), supervisor.get_cell()).await?;
    let (on_b, _) = server("b").spawn_linked((), supervisor.get_cell()).await?;
    let locks = GlobalClient::<LockManager>::new("locks", cluster.registry("c"));

    let (first, _) = acquire(&locks, "door").await?;
    println!("got the lock at once on a: grant {first}");
    let waiter = tokio::spawn({
        let locks = locks.clone();
        async move { acquire(&locks, "door").await }
    });
    tokio::task::yield_now().await;
    let report = on_b.takeover(Duration::from_secs(5)).await?;
    println!(
        "b took over ({:?}) with the locks held and waited for",
        report.start
    );
    cast!(locks, LockMsg::Release("door".into(), first))?;
    let (second, retries) = waiter.await??;
    println!(
        "the waiter got grant {second} from b when it was released (asked {retries} more time(s))"
    );

    // b's node dies while a caller waits for the lock that grant 2 holds.
    let waiter = tokio::spawn({
        let locks = locks.clone();
        async move { acquire(&locks, "door").await }
    });
    tokio::task::yield_now().await;
    cluster.crash("b");
    let (third, retries) = waiter.await??;
    println!("b crashed; the waiter asked again {retries} time(s) and got grant {third} from a");

    // Never released: the sweep, which a started when it failed over,
    // expires it, and the next caller gets the lock.
    let (fourth, _) = acquire(&locks, "door").await?;
    println!("grant {third} expired on a; the next caller got grant {fourth}");
    assert_ne!(third, fourth, "the sweep freed the lock");
    assert_eq!(
        supervisor.get_status(),
        ActorStatus::Running,
        "the supervisor survived it all"
    );
    println!("the supervisor still runs, with the instance on a linked to it");
    Ok(())
}
