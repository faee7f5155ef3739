//! A lock manager with a blocking acquire: the server of the deferred-reply
//! tests (fake and real) and of the test node's `--locks` role. An
//! `Acquire` of a held lock is answered when the lock is released, maybe
//! on another holder after a takeover, through the [`Reply`] it carries.

use std::collections::{HashMap, VecDeque};

use ractor::ActorProcessingErr;
use ractor_takeover::{
    decode_postcard, encode_postcard, Reply, StateCodecErr, TakeoverActor, TakeoverCtx,
};
use serde::{Deserialize, Serialize};

/// The global name the test node's `--locks` role runs it under.
pub const NAME: &str = "locks";

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

    fn encode_state(&self, s: &Locks) -> Result<Vec<u8>, StateCodecErr> {
        encode_postcard(s)
    }

    fn decode_state(&self, b: &[u8]) -> Result<Locks, StateCodecErr> {
        decode_postcard(b)
    }
}
