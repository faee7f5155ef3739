//! A lock manager with a blocking acquire: the server of the deferred-reply
//! tests (fake and real) and of the test node's `--locks` role. An
//! `Acquire` of a held lock is answered when the lock is released, maybe
//! on another holder after a takeover, through the [`Reply`] it carries.
//! Also the tests' callers: [`waiter`] and what they must end with
//! ([`ends_granted`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorProcessingErr;
use ractor_takeover::{
    CallErr, GlobalClient, GlobalName, Protocol, Reply, TakeoverActor, TakeoverCtx,
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The global name the test node's `--locks` role runs it under.
pub const NAME: &str = "locks";

/// The lock manager as its clients see it: its messages and replies,
/// without the behaviour.
pub struct LockProtocol;

impl Protocol for LockProtocol {
    type Msg = LockMessage;
    type Reply = ();
}

/// [`NAME`], typed by [`LockProtocol`].
pub const LOCKS: GlobalName<LockProtocol> = GlobalName::new(NAME);

/// A lock granted: release it with its id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The lock.
    pub key: String,
    /// Unique per grant within a state's history.
    pub id: u64,
}

/// The lock manager's requests.
#[derive(Debug, Serialize, Deserialize)]
pub enum LockMessage {
    /// Answered with a grant once the lock is free.
    Acquire(String, Reply<Grant>),
    /// Releases a grant (a cast); the next open waiter gets the lock.
    Release(String, u64),
    /// How many callers wait on the lock (ports still open).
    Waiting(String, Reply<usize>),
}

/// Who holds each lock and who waits; the waiters' ports move with it
/// detached (see `ractor_takeover::reply`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Locks {
    next_id: u64,
    held: HashMap<String, u64>,
    waiting: HashMap<String, VecDeque<Reply<Grant>>>,
}

impl Locks {
    /// Grants `key` to the first waiter that still waits, if any.
    fn grant_next(&mut self, key: &str) {
        let Some(queue) = self.waiting.get_mut(key) else {
            return;
        };
        while let Some(waiter) = queue.pop_front() {
            let id = self.next_id + 1;
            if waiter
                .send(Grant {
                    key: key.to_string(),
                    id,
                })
                .is_ok()
            {
                self.next_id = id;
                self.held.insert(key.to_string(), id);
                return;
            }
        }
    }
}

/// The behaviour.
pub struct LockManager;

impl TakeoverActor for LockManager {
    type Msg = LockMessage;
    type Reply = ();
    type State = Locks;
    type Arguments = ();
    type Info = ();

    async fn init(&self, _: &TakeoverCtx<Self>, _: ()) -> Result<Locks, ActorProcessingErr> {
        Ok(Locks::default())
    }

    async fn handle(
        &self,
        _: &TakeoverCtx<Self>,
        msg: LockMessage,
        locks: &mut Locks,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LockMessage::Acquire(key, reply) => {
                let queue = locks.waiting.entry(key.clone()).or_default();
                queue.retain(|w| !w.is_closed());
                queue.push_back(reply);
                if !locks.held.contains_key(&key) {
                    locks.grant_next(&key);
                }
            }
            LockMessage::Release(key, id) => {
                if locks.held.get(&key) == Some(&id) {
                    locks.held.remove(&key);
                    locks.grant_next(&key);
                }
            }
            LockMessage::Waiting(key, reply) => {
                let open = locks
                    .waiting
                    .get(&key)
                    .map_or(0, |q| q.iter().filter(|w| !w.is_closed()).count());
                let _ = reply.send(open);
            }
        }
        Ok(())
    }
}

/// Runs a node of the test node's `--locks` role: a `ractor_cluster` node
/// with one lock manager instance under [`NAME`], printing `READY
/// node=<name>` and the `EVENT` lines [`crate::node::run`] prints, until it
/// is killed (or its stdin closes, with `--exit-on-stdin-eof`). Why no
/// replacement of a retired instance: the tests of this role hand the name
/// over once; the node stays up, so that the calls its retiring instance
/// forwarded are still relayed.
pub async fn run(args: crate::node::NodeArgs) -> Result<(), crate::node::AnyErr> {
    use ractor_takeover::cluster::ClusterNode;
    use ractor_takeover::{Placement, TakeoverConfig, TakeoverServer};

    let name = args.name.clone();
    let node = ClusterNode::start(args.cluster.config(&name)?).await?;
    let placement = Placement::parse(&args.placement)
        .with_failover_delay(Duration::from_millis(args.failover_delay_ms));
    let config = TakeoverConfig::default()
        .with_placement(placement)
        .with_pull_timeout(Duration::from_millis(args.pull_timeout_ms));
    let mut events = config.events.subscribe();
    tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            println!(
                "EVENT t_ms={} node={} epoch={:?} {:?}",
                crate::node::unix_ms(),
                ev.node,
                ev.epoch,
                ev.kind
            );
        }
    });
    let (_instance, _handle) = TakeoverServer::new(NAME, LockManager, node.registry(), config)
        .spawn(())
        .await?;
    println!("READY node={name}");
    if args.exit_on_stdin_eof {
        crate::node::exit_on_stdin_eof();
    }
    std::future::pending::<()>().await;
    Ok(())
}

/// The lock the deferred-reply tests' callers contend for.
pub const KEY: &str = "k";

/// Errors a waiter may get and retry on: its state moved, its holder's node
/// went down, the holder dropped its port, or there was no holder for a
/// moment. A `Timeout` is not among them: that would be a hang.
pub fn retryable(e: &CallErr) -> bool {
    matches!(
        e,
        CallErr::Moved
            | CallErr::HolderDown { .. }
            | CallErr::ReplyDropped
            | CallErr::NoReply
            | CallErr::NotRegistered(_)
    )
}

/// A caller that acquires [`KEY`], retrying on a [`retryable`] error within
/// `timeout`, holds it for a moment (checking through `busy` that nobody
/// else does) and releases it. Returns every answer it got, the last one
/// its grant (or why it has none).
pub fn waiter<P: Protocol<Msg = LockMessage>>(
    client: GlobalClient<P>,
    busy: Arc<AtomicBool>,
    timeout: Duration,
) -> JoinHandle<Vec<Result<Grant, CallErr>>> {
    tokio::spawn(async move {
        let deadline = Instant::now() + timeout;
        let mut answers = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let answer = ractor_takeover::call_t!(
                client,
                LockMessage::Acquire,
                left.as_millis() as u64,
                KEY.to_string()
            );
            answers.push(answer.clone());
            match answer {
                Ok(grant) => {
                    assert!(
                        !busy.swap(true, Ordering::SeqCst),
                        "two holders of the lock"
                    );
                    busy.store(false, Ordering::SeqCst);
                    ractor_takeover::cast!(client, LockMessage::Release(KEY.into(), grant.id))
                        .expect("releases");
                    return answers;
                }
                Err(e) if retryable(&e) && Instant::now() < deadline => continue,
                Err(_) => return answers,
            }
        }
    })
}

/// How many callers wait on [`KEY`] (0 if the call failed).
pub async fn waiting<P: Protocol<Msg = LockMessage>>(client: &GlobalClient<P>) -> usize {
    ractor_takeover::call_t!(client, LockMessage::Waiting, 5_000, KEY.to_string()).unwrap_or(0)
}

/// Waits for every waiter; each must end with a grant of [`KEY`], after
/// only retryable errors, the first of which is one that `first` accepts.
/// Returns the grants' ids.
pub async fn ends_granted(
    waiters: Vec<JoinHandle<Vec<Result<Grant, CallErr>>>>,
    first: impl Fn(&CallErr) -> bool,
) -> Vec<u64> {
    let mut ids = Vec::new();
    for w in waiters {
        let answers = w.await.expect("the waiter ran");
        tracing::info!(?answers, "a waiter's answers");
        let (last, before) = answers.split_last().expect("at least one answer");
        let grant = last
            .clone()
            .unwrap_or_else(|e| panic!("a waiter ended without its grant: {e} ({answers:?})"));
        assert_eq!(grant.key, KEY);
        let first_err = before.first().and_then(|a| a.as_ref().err());
        assert!(
            first_err.is_some_and(&first),
            "the waiter first got another answer: {answers:?}"
        );
        assert!(
            before.iter().all(|a| a.as_ref().is_err_and(retryable)),
            "only retryable errors before the grant: {answers:?}"
        );
        ids.push(grant.id);
    }
    ids
}
