//! Exactly-once calls across retries: the key a [`crate::GlobalClient`]
//! puts on each call, and the server's bounded window of answered keys with
//! their replies, which travels with the state.
//!
//! ```text
//!   client (id c, seen s)                        holder (window: ordinals e+1 ..= n)
//!     |-- call {key (c, q, s)} -------------------->| (c, q) in the window: its reply, not applied again
//!     |   NoReply / HolderDown / Moved: unknown     | s < e, (c, q) not in it: PastDedupWindow{n},
//!     |-- the same call, same key, next holder --->|   not applied (it may have been, and left)
//!     |                                             | else: applied, (c, q) -> reply kept as n+1;
//!     |<-------------- reply -----------------------|   past the bound, the oldest leaves (e+1)
//! ```
//!
//! Why an ordinal and a `seen` on the key, and not a floor per client: a
//! window bounded in entries must also forget clients, and a retry from a
//! forgotten client would look new. Every applied keyed call takes the next
//! ordinal; `evicted` is the newest ordinal that left. A call carries the
//! newest ordinal its client had heard of before it sent the call (`seen`),
//! so if it was applied its ordinal is above `seen`: with `seen >= evicted`
//! it is still in the window if it was ever applied, and is new if it is
//! not. With `seen < evicted` nobody can tell, and the server refuses the
//! call, unapplied, with [`CallErr::PastDedupWindow`] and its newest
//! ordinal. A client whose earlier tries were all certainly not applied
//! (this is its first) takes that ordinal as its `seen` and sends again; a
//! retried call whose earlier try may have been applied gives the error to
//! its caller. A client hears of ordinals only then, so it is refused once
//! about every `dedup_window` calls the server applies; no answer carries
//! anything new.
//!
//! Why a `floor` on the key too: a try can outlive its call (held on a
//! link, or buffered by a holder that yielded) while a retry got the
//! answer elsewhere, from a lineage that never saw the first try. Applied
//! late in the other lineage, it lands after calls its client made later.
//! Each try says which of its client's calls had all ended (below
//! `floor`), the window keeps the highest floor per client it holds
//! entries of, and a key below it that it does not hold is refused
//! unapplied ([`Seen::Ended`]).
//!
//! The window lives in the state an instance sends (a takeover, a merge
//! offer, a checkpoint), after the user's bytes (see [`seal`]): it moves
//! with the state it describes, and a crash failover from a checkpoint
//! knows every call that checkpoint holds the effect of.
//!
//! With synchronous standby the window also rides with every replica: a
//! whole state carries it sealed as above, a delta carries a
//! [`WindowDelta`] (the entries recorded since the previous replica), so
//! that the standby a crash failover starts knows every call it holds the
//! effect of, and a retry there is answered, not applied a second time.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::{CallErr, StateCodecErr};

mod lineage;
pub(crate) use lineage::Lineage;

/// What identifies a call across its retries: the client handle's identity
/// and the call's sequence number in it, with the newest window ordinal
/// the client had heard of when it first sent the call.
///
/// `pub` in a private module because the sealed `Protocol::deliver`
/// answer names it: nobody outside the crate can reach or build one.
#[allow(unreachable_pub)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallKey {
    pub(crate) client: u128,
    pub(crate) seq: u64,
    pub(crate) seen: u64,
    /// Every call of this client below this sequence number had ended when
    /// this try was sent (answered, or given up with an unknown outcome):
    /// a try of one of them that arrives later is waited for by nobody.
    pub(crate) floor: u64,
}

/// A client handle's side: its identity and counters.
///
/// Why 128 random bits from the OS and not a node name and a counter: a
/// client process that restarts (or two handles in one process, or a
/// client-only node that comes back under the same name) must never reuse
/// a key of its earlier life, whose calls the window may still hold, and
/// nothing on the client survives a restart to count on. Two of a billion
/// handles share an identity with a chance of about 2^-68.
#[derive(Debug)]
pub(crate) struct ClientKeys {
    client: u128,
    next_seq: AtomicU64,
    /// The newest window ordinal heard of (from a `PastDedupWindow`).
    seen: AtomicU64,
    /// The calls under way (handles may be shared by concurrent tasks):
    /// the smallest is every key's `floor`.
    pending: Mutex<BTreeSet<u64>>,
}

/// A call under way on a [`ClientKeys`]: it ends (and the client's floor
/// may rise past it) when this is dropped, however the call ended,
/// cancelled futures included.
#[derive(Debug)]
pub(crate) struct Pending<'a> {
    keys: &'a ClientKeys,
    seq: u64,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.keys.lock().remove(&self.seq);
    }
}

impl ClientKeys {
    pub(crate) fn new() -> Self {
        Self {
            client: random_id(),
            next_seq: AtomicU64::new(1),
            seen: AtomicU64::new(0),
            pending: Mutex::new(BTreeSet::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh key for a new call, under way until the guard drops.
    pub(crate) fn next(&self) -> (CallKey, Pending<'_>) {
        let mut pending = self.lock();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        pending.insert(seq);
        let floor = pending.first().copied().unwrap_or(seq);
        drop(pending);
        let key = CallKey {
            client: self.client,
            seq,
            seen: self.seen.load(Ordering::Acquire),
            floor,
        };
        (key, Pending { keys: self, seq })
    }

    /// The floor for a try sent now: the oldest call still under way.
    pub(crate) fn floor(&self, seq: u64) -> u64 {
        self.lock().first().copied().unwrap_or(seq).min(seq)
    }

    /// The server applied calls up to `ordinal`: keys made from now on say so.
    pub(crate) fn heard(&self, ordinal: u64) {
        self.seen.fetch_max(ordinal, Ordering::AcqRel);
    }
}

fn random_id() -> u128 {
    let mut bytes = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut bytes) {
        // Without OS randomness, RandomState's keys (seeded from the OS at
        // first use, else from addresses and time) and the time: unique in
        // practice, if not by construction.
        tracing::warn!(error = %e, "no OS randomness for a client identity; using a hash of time and RandomState");
        use std::hash::{BuildHasher, Hasher};
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut halves = [0u64; 2];
        for half in &mut halves {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(nanos);
            h.write_u32(std::process::id());
            *half = h.finish();
        }
        return (u128::from(halves[0]) << 64) | u128::from(halves[1]);
    }
    u128::from_le_bytes(bytes)
}

/// What the window knows of a key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Applied already: its answer, encoded as a byte port sends it.
    Answered(Vec<u8>),
    /// It may have been applied and left the window: refuse it, unapplied,
    /// telling the newest ordinal.
    PastWindow { applied: u64 },
    /// Not in the window, and its client had ended every call up to one
    /// above it when it sent a later one: a late try (held on a link, or
    /// buffered by a holder that yielded) that nobody waits for. Refused
    /// unapplied, as [`Seen::PastWindow`] is: applied now, it would land
    /// after calls its client made later.
    Ended { applied: u64 },
    /// Never applied: apply it.
    New,
}

/// One answered call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    client: u128,
    seq: u64,
    /// The client's floor when this call was applied (see [`CallKey`]).
    floor: u64,
    /// Its answer, `Ok(reply)` encoded as a byte port sends it.
    reply: Vec<u8>,
}

/// The window of answered keys: the newest `capacity` of them, with their
/// replies, in ordinal order (entry `i` has ordinal `evicted + 1 + i`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Window {
    /// The ordinal of the newest entry that left the window (0: none did).
    evicted: u64,
    entries: VecDeque<Entry>,
    /// Where each key is: its ordinal. Rebuilt on decode.
    #[serde(skip)]
    index: HashMap<(u128, u64), u64>,
    /// Per client with entries in the window: how many, and the highest
    /// floor its calls brought. Rebuilt on decode. Why only those clients:
    /// the window forgets clients as it forgets their calls, so this stays
    /// bounded by the window; for a forgotten client `seen` still guards.
    #[serde(skip)]
    floors: HashMap<u128, (u32, u64)>,
    /// Synchronous standby: the newest ordinal a replica carried already
    /// (the entries after it go in the next [`WindowDelta`]), or `None`
    /// when the window changed otherwise than by recording (a merge
    /// renumbered it): the next replica must be a whole state.
    #[serde(skip)]
    replicated: Option<u64>,
    /// Which holders' replicas the state this window belongs to holds.
    pub(crate) lineage: Lineage,
}

/// What a window gained since the previous replica (synchronous standby):
/// the entries recorded since, oldest first, and where the holder's window
/// stands after them, so that the standby trims as the holder did and can
/// tell that the delta follows what it has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WindowDelta {
    entries: Vec<Entry>,
    evicted: u64,
    applied: u64,
}

impl WindowDelta {
    /// About how many bytes it takes on the wire.
    pub(crate) fn size(&self) -> usize {
        16 + self
            .entries
            .iter()
            .map(|e| e.reply.len() + 36)
            .sum::<usize>()
    }
}

impl Window {
    /// The newest ordinal taken.
    pub(crate) fn applied(&self) -> u64 {
        self.evicted + self.entries.len() as u64
    }

    /// How many answered keys it holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// What to do with a call under `key`.
    pub(crate) fn check(&self, key: &CallKey) -> Seen {
        if let Some(ordinal) = self.index.get(&(key.client, key.seq)) {
            let at = (ordinal - self.evicted - 1) as usize;
            return Seen::Answered(self.entries[at].reply.clone());
        }
        if key.seen < self.evicted {
            return Seen::PastWindow {
                applied: self.applied(),
            };
        }
        if self
            .floors
            .get(&key.client)
            .is_some_and(|(_, floor)| key.seq < *floor)
        {
            return Seen::Ended {
                applied: self.applied(),
            };
        }
        Seen::New
    }

    /// Records that the call under `key` was applied and answered `reply`
    /// (encoded as a byte port sends it); the oldest entries leave past
    /// `capacity`.
    pub(crate) fn record(&mut self, key: &CallKey, reply: Vec<u8>, capacity: usize) {
        self.push(Entry {
            client: key.client,
            seq: key.seq,
            floor: key.floor,
            reply,
        });
        while self.entries.len() > capacity {
            if self.pop_oldest() {
                self.evicted += 1;
            }
        }
    }

    fn push(&mut self, entry: Entry) {
        let ordinal = self.applied() + 1;
        self.index.insert((entry.client, entry.seq), ordinal);
        let f = self.floors.entry(entry.client).or_insert((0, 0));
        f.0 += 1;
        f.1 = f.1.max(entry.floor);
        self.entries.push_back(entry);
    }

    /// Drops the oldest entry (not counted in `evicted` here); whether
    /// there was one.
    fn pop_oldest(&mut self) -> bool {
        let Some(old) = self.entries.pop_front() else {
            return false;
        };
        self.index.remove(&(old.client, old.seq));
        if let Some(f) = self.floors.get_mut(&old.client) {
            f.0 -= 1;
            if f.0 == 0 {
                self.floors.remove(&old.client);
            }
        }
        true
    }

    /// Rebuilds the index and the floors from the entries.
    fn rebuild(&mut self) {
        let base = self.evicted;
        self.index = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| ((e.client, e.seq), base + 1 + i as u64))
            .collect();
        self.floors.clear();
        for e in &self.entries {
            let f = self.floors.entry(e.client).or_insert((0, 0));
            f.0 += 1;
            f.1 = f.1.max(e.floor);
        }
    }

    /// A split-brain winner takes the loser's answered keys too: the loser
    /// applied them, and a retry must not apply them again here. They take
    /// new ordinals after ours (the loser's count is another lineage's).
    /// Why the loser's `evicted` counts too: a key that left the loser's
    /// window may have been applied there, so a `seen` below it cannot be
    /// told apart any more; ours rises by as many, to stay on the safe side.
    pub(crate) fn absorb(&mut self, theirs: Window, capacity: usize) {
        // Renumbered: no delta describes this; a whole state goes next.
        self.replicated = None;
        self.lineage.absorb(&theirs.lineage);
        self.evicted += theirs.evicted;
        self.rebuild();
        for e in theirs.entries {
            if !self.index.contains_key(&(e.client, e.seq)) {
                self.push(e);
            }
        }
        while self.entries.len() > capacity {
            if self.pop_oldest() {
                self.evicted += 1;
            }
        }
    }

    fn reindex(&mut self) {
        self.rebuild();
        self.replicated = Some(self.applied());
    }

    /// The ordinal of an answered key, if the window holds it.
    pub(crate) fn ordinal(&self, key: &CallKey) -> Option<u64> {
        self.index.get(&(key.client, key.seq)).copied()
    }

    /// Counts every entry as carried by a replica already: the window came
    /// with the state it describes (a transfer, a stored replica), which
    /// is where the next replica builds on.
    /// The state this window belongs to was replaced whole (a holder took
    /// a standby's replica instead of its own): the next replica must be
    /// a whole state.
    pub(crate) fn replaced(&mut self) {
        self.replicated = None;
    }

    pub(crate) fn settle(&mut self) {
        self.replicated = Some(self.applied());
    }

    /// What the window gained since the last call, for a delta replica
    /// (synchronous standby); `None` when no delta can say it (a merge
    /// renumbered the window, or entries left before a replica carried
    /// them): the replica must be a whole state. Either way, the next
    /// call starts from now.
    pub(crate) fn take_delta(&mut self) -> Option<WindowDelta> {
        let applied = self.applied();
        let from = self.replicated.replace(applied)?;
        if from < self.evicted || from > applied {
            return None;
        }
        let skip = (from - self.evicted) as usize;
        Some(WindowDelta {
            entries: self.entries.iter().skip(skip).cloned().collect(),
            evicted: self.evicted,
            applied,
        })
    }

    /// A standby applies a holder's [`WindowDelta`]. Refused, and the
    /// window left as it was, if the delta does not follow it (the holder
    /// had more or fewer entries before it than we have).
    pub(crate) fn apply_delta(&mut self, delta: &WindowDelta) -> Result<(), String> {
        let after = self.applied() + delta.entries.len() as u64;
        if after != delta.applied || delta.evicted < self.evicted || delta.evicted > after {
            return Err(format!(
                "the window of answered calls is at {} (evicted {}); the delta brings {} entries to {} (evicted {})",
                self.applied(),
                self.evicted,
                delta.entries.len(),
                delta.applied,
                delta.evicted
            ));
        }
        for e in &delta.entries {
            self.push(e.clone());
        }
        while self.evicted < delta.evicted {
            self.pop_oldest();
            self.evicted += 1;
        }
        self.replicated = Some(self.applied());
        Ok(())
    }
}

/// The bytes an instance sends for its state: the user's state as the
/// behaviour encoded it, then the window, then the window's length as 4
/// bytes little-endian. Why after and not around: the user's bytes (up to
/// `max_state_bytes`, 1 GiB) are not copied into an envelope, only
/// extended; the receiver reads the window from the end and hands the
/// user's decoder a slice.
pub(crate) fn seal(mut user: Vec<u8>, window: &Window) -> Result<Vec<u8>, StateCodecErr> {
    let w = postcard::to_allocvec(window).map_err(|e| StateCodecErr::Encode(e.to_string()))?;
    let len = u32::try_from(w.len())
        .map_err(|_| StateCodecErr::Encode("the window of answered calls is over 4 GiB".into()))?;
    user.reserve(w.len() + 4);
    user.extend_from_slice(&w);
    user.extend_from_slice(&len.to_le_bytes());
    Ok(user)
}

/// The inverse of [`seal`]: the user's bytes and the window.
pub(crate) fn open(bytes: &[u8]) -> Result<(&[u8], Window), StateCodecErr> {
    let bad = |why: &str| StateCodecErr::Decode(format!("the window of answered calls: {why}"));
    let Some(split) = bytes.len().checked_sub(4) else {
        return Err(bad("missing"));
    };
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[split..]);
    let len = u32::from_le_bytes(len) as usize;
    let Some(start) = split.checked_sub(len) else {
        return Err(bad("longer than the state"));
    };
    let mut window: Window = match postcard::take_from_bytes(&bytes[start..split]) {
        Ok((w, [])) => w,
        Ok(_) => return Err(bad("trailing bytes")),
        Err(e) => return Err(bad(&e.to_string())),
    };
    window.reindex();
    window.lineage.tidy();
    Ok((&bytes[..start], window))
}

/// The answer a client gets for a call the window refused.
pub(crate) fn past_window(applied: u64) -> CallErr {
    CallErr::PastDedupWindow { applied }
}

#[cfg(test)]
mod tests;
